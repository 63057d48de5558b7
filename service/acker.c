/*
 * The acknowledger thread: batched, pipelined XACKs on a connection of its own.
 *
 * DESIGN: workers append (stream, id) pairs to `pending` under `lock` and signal when the
 * first pair arrives or a batch fills. The thread waits until ACK_BATCH pairs are waiting or
 * ACK_DELAY_NS has passed since the first one, swaps the whole array out, and sends it
 * outside the lock: one XACK per stream carrying up to ACK_BATCH ids, all of them pipelined,
 * then reads the replies. Only after Redis confirms a stream's XACK is its callback run (the
 * consumer uses it to track entries in flight).
 *
 * If the connection fails, the batch it held is kept and sent again after reconnecting (XACK
 * is idempotent: acking an acked id is a no-op), so an ack is never dropped while the process
 * lives. On stop the thread flushes what is left, retrying until the deadline; what still
 * could not be sent stays pending in Redis and is delivered again after the restart.
 *
 * Threads: workers call rs_acker_add(); the acknowledger thread owns the connection and the
 * batch it is sending. The lock guards `pending`, `stopping` and `deadline_ns` and is never
 * held across a network call.
 */

#include "acker.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "entry.h"
#include "redis_conn.h"

#define ACK_BATCH    512                    /* ids per XACK, and pairs that trigger a flush */
#define ACK_DELAY_NS (2 * INT64_C(1000000)) /* longest wait before a partial batch is sent */

typedef struct {
    void *stream;
    const char *stream_name;
    char id[RS_ENTRY_ID_MAX];
} ack_item_t;

typedef struct {
    ack_item_t *items;
    size_t n, cap;
} ack_list_t;

struct rs_acker {
    const rs_config_t *cfg;
    rs_logger_t *log;
    rs_acked_fn acked;
    void *acked_arg;
    rs_redis_t *redis; /* acknowledger thread only */

    pthread_t thread;
    bool started;

    pthread_mutex_t lock;
    pthread_cond_t cond; /* CLOCK_MONOTONIC; work arrived, or stop */
    ack_list_t pending;  /* guarded by lock */
    int64_t first_ns;    /* when pending's first pair arrived; guarded by lock */
    bool stopping;       /* guarded by lock */
    int64_t deadline_ns; /* guarded by lock; valid once stopping */
    size_t unsent;       /* written by the thread before it exits, read after join */
};

static void timespec_from_ns(struct timespec *ts, int64_t ns)
{
    ts->tv_sec = (time_t)(ns / 1000000000);
    ts->tv_nsec = (long)(ns % 1000000000);
}

rs_acker_t *rs_acker_new(const rs_config_t *cfg, rs_logger_t *log, rs_acked_fn acked,
                         void *acked_arg, char *err, size_t errlen)
{
    rs_acker_t *a = calloc(1, sizeof(*a));
    if (a == NULL) {
        snprintf(err, errlen, "acker: out of memory");
        return NULL;
    }
    a->cfg = cfg;
    a->log = log;
    a->acked = acked;
    a->acked_arg = acked_arg;
    rs_redis_opts_t opts = {
        .host = cfg->redis.host,
        .port = cfg->redis.port,
        .username = cfg->redis.username,
        .password = cfg->redis.password,
        .db = cfg->redis.db,
        .connect_timeout_ms = cfg->redis.connect_timeout_ms,
        .command_timeout_ms = cfg->redis.connect_timeout_ms,
        .client_name = "acker",
    };
    a->redis = rs_redis_new(&opts, log);
    if (a->redis == NULL) {
        snprintf(err, errlen, "acker: out of memory");
        free(a);
        return NULL;
    }
    pthread_mutex_init(&a->lock, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&a->cond, &attr);
    pthread_condattr_destroy(&attr);
    return a;
}

int rs_acker_add(rs_acker_t *a, void *stream, const char *stream_name, const char *id)
{
    int rc = 0;
    pthread_mutex_lock(&a->lock);
    ack_list_t *l = &a->pending;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : ACK_BATCH;
        ack_item_t *items = realloc(l->items, cap * sizeof(*items));
        if (items == NULL) {
            rc = -1;
            goto out;
        }
        l->items = items;
        l->cap = cap;
    }
    ack_item_t *it = &l->items[l->n++];
    it->stream = stream;
    it->stream_name = stream_name;
    snprintf(it->id, sizeof(it->id), "%s", id);
    if (l->n == 1) {
        a->first_ns = rs_clock_monotonic_ns();
        pthread_cond_signal(&a->cond);
    } else if (l->n == ACK_BATCH) {
        pthread_cond_signal(&a->cond);
    }
out:
    pthread_mutex_unlock(&a->lock);
    return rc;
}

/* The reconnect wait: returns non-zero when the stop deadline has passed. */
static int acker_wait(void *arg, long ms)
{
    rs_acker_t *a = arg;
    int64_t until = rs_clock_monotonic_ns() + (int64_t)ms * 1000000;
    int stop = 0;
    pthread_mutex_lock(&a->lock);
    for (;;) {
        int64_t now = rs_clock_monotonic_ns();
        if (a->stopping && now >= a->deadline_ns) {
            stop = 1;
            break;
        }
        int64_t wake = a->stopping && a->deadline_ns < until ? a->deadline_ns : until;
        if (now >= wake)
            break;
        struct timespec ts;
        timespec_from_ns(&ts, wake);
        pthread_cond_timedwait(&a->cond, &a->lock, &ts);
    }
    pthread_mutex_unlock(&a->lock);
    return stop;
}

/* Sends every pair in `batch`: one pipelined XACK per run of up to ACK_BATCH ids of one
 * stream. Returns 0 when Redis answered every command, -1 on a connection failure (nothing
 * is considered acknowledged then; the caller sends the whole batch again). */
static int send_batch(rs_acker_t *a, ack_list_t *batch)
{
    if (!rs_redis_connected(a->redis))
        return -1;
    redisContext *c = rs_redis_context(a->redis);
    const char *group = a->cfg->group.name;

    /* Group pairs by stream: mark each pair once it is part of a command. */
    bool *done = calloc(batch->n, sizeof(*done));
    const char **argv = malloc((3 + ACK_BATCH) * sizeof(*argv));
    size_t *argvlen = malloc((3 + ACK_BATCH) * sizeof(*argvlen));
    /* For each command: the stream cookie and name, and how many ids it carries. */
    ack_item_t *cmds = malloc(batch->n * sizeof(*cmds));
    size_t *cmd_ids = malloc(batch->n * sizeof(*cmd_ids));
    size_t ncmds = 0;
    int rc = -1;
    if (done == NULL || argv == NULL || argvlen == NULL || cmds == NULL || cmd_ids == NULL) {
        rs_log(a->log, RS_LOG_ERROR, "acker", "out of memory building XACK; will retry");
        goto out;
    }

    for (size_t i = 0; i < batch->n; i++) {
        if (done[i])
            continue;
        const ack_item_t *head = &batch->items[i];
        int argc = 0;
        argv[argc] = "XACK", argvlen[argc++] = 4;
        argv[argc] = head->stream_name, argvlen[argc++] = strlen(head->stream_name);
        argv[argc] = group, argvlen[argc++] = strlen(group);
        for (size_t j = i; j < batch->n && argc < 3 + ACK_BATCH; j++) {
            if (done[j] || batch->items[j].stream != head->stream)
                continue;
            argv[argc] = batch->items[j].id;
            argvlen[argc++] = strlen(batch->items[j].id);
            done[j] = true;
        }
        if (redisAppendCommandArgv(c, argc, argv, argvlen) != REDIS_OK) {
            rs_redis_mark_broken(a->redis);
            goto out;
        }
        cmds[ncmds] = *head;
        cmd_ids[ncmds++] = (size_t)argc - 3;
    }

    for (size_t k = 0; k < ncmds; k++) {
        void *reply_ptr = NULL;
        if (redisGetReply(c, &reply_ptr) != REDIS_OK) {
            rs_redis_mark_broken(a->redis);
            goto out;
        }
        redisReply *reply = reply_ptr;
        if (reply->type == REDIS_REPLY_ERROR) {
            /* NOGROUP and the like: the ids cannot be acknowledged by anyone. They are
             * counted as settled so shutdown does not wait on them; if the group comes
             * back they are delivered again. */
            rs_log(a->log, RS_LOG_ERROR, "acker", "stream=%s XACK of %zu ids refused: %s",
                   cmds[k].stream_name, cmd_ids[k], reply->str);
        } else if (reply->type != REDIS_REPLY_INTEGER) {
            rs_log(a->log, RS_LOG_ERROR, "acker", "stream=%s XACK: unexpected reply type %d",
                   cmds[k].stream_name, reply->type);
        }
        freeReplyObject(reply);
    }
    /* Every command was answered: now report them, in order. */
    for (size_t k = 0; k < ncmds; k++)
        a->acked(a->acked_arg, cmds[k].stream, cmd_ids[k]);
    rc = 0;

out:
    free(cmd_ids);
    free(cmds);
    free(argvlen);
    free(argv);
    free(done);
    return rc;
}

static void *acker_main(void *arg)
{
    rs_acker_t *a = arg;
    ack_list_t batch = {0};

    pthread_mutex_lock(&a->lock);
    for (;;) {
        while (a->pending.n == 0 && !a->stopping)
            pthread_cond_wait(&a->cond, &a->lock);
        if (a->pending.n == 0)
            break; /* stopping with nothing left */
        /* Let a batch build up for a moment, unless it is full or we are stopping. */
        while (a->pending.n < ACK_BATCH && !a->stopping) {
            int64_t due = a->first_ns + ACK_DELAY_NS;
            if (rs_clock_monotonic_ns() >= due)
                break;
            struct timespec ts;
            timespec_from_ns(&ts, due);
            pthread_cond_timedwait(&a->cond, &a->lock, &ts);
        }
        /* Take the pending list; hand the (empty) batch buffer back for reuse. */
        ack_list_t tmp = a->pending;
        a->pending = batch;
        a->pending.n = 0;
        batch = tmp;
        pthread_mutex_unlock(&a->lock);

        for (;;) {
            if (!rs_redis_connected(a->redis)) {
                rs_redis_status_t st = rs_redis_connect_retry(a->redis, acker_wait, a);
                if (st != RS_REDIS_OK) {
                    if (st != RS_REDIS_ERR_IO)
                        rs_log(a->log, RS_LOG_ERROR, "acker", "%s", rs_redis_errstr(a->redis));
                    if (acker_wait(a, st == RS_REDIS_ERR_IO ? 0 : 1000)) {
                        /* The stop deadline passed: what is left stays pending in Redis. */
                        pthread_mutex_lock(&a->lock);
                        a->unsent += batch.n + a->pending.n;
                        a->pending.n = 0;
                        goto done;
                    }
                    continue;
                }
            }
            if (send_batch(a, &batch) == 0)
                break;
            rs_log(a->log, RS_LOG_WARN, "acker", "%zu acks not sent: %s; sending again", batch.n,
                   rs_redis_errstr(a->redis));
            /* A short pause keeps a failure that is not the connection's (out of memory)
             * from spinning. */
            if (acker_wait(a, 10)) {
                pthread_mutex_lock(&a->lock);
                a->unsent += batch.n + a->pending.n;
                a->pending.n = 0;
                goto done;
            }
        }
        batch.n = 0;
        pthread_mutex_lock(&a->lock);
    }
done:
    pthread_mutex_unlock(&a->lock);
    free(batch.items);
    return NULL;
}

int rs_acker_start(rs_acker_t *a, char *err, size_t errlen)
{
    /* The first connection is made by the thread itself, so a Redis that is down at
     * start delays nothing here. */
    int rc = pthread_create(&a->thread, NULL, acker_main, a);
    if (rc != 0) {
        snprintf(err, errlen, "acker: cannot start thread: %s", strerror(rc));
        return -1;
    }
    pthread_setname_np(a->thread, "rs-acker");
    a->started = true;
    return 0;
}

size_t rs_acker_stop(rs_acker_t *a, int64_t deadline_ns)
{
    if (!a->started)
        return 0;
    pthread_mutex_lock(&a->lock);
    a->stopping = true;
    a->deadline_ns = deadline_ns;
    pthread_cond_broadcast(&a->cond);
    pthread_mutex_unlock(&a->lock);
    pthread_join(a->thread, NULL);
    a->started = false;
    return a->unsent;
}

void rs_acker_free(rs_acker_t *a)
{
    if (a == NULL)
        return;
    if (a->started)
        (void)rs_acker_stop(a, rs_clock_monotonic_ns());
    rs_redis_free(a->redis);
    free(a->pending.items);
    pthread_cond_destroy(&a->cond);
    pthread_mutex_destroy(&a->lock);
    free(a);
}
