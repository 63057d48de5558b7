/*
 * The acknowledger thread: batched, pipelined XACKs, and dead letters, on a connection of its
 * own.
 *
 * DESIGN: workers append items to `pending` under `lock` and signal when the first item
 * arrives or a batch fills. An item is a plain ack (stream, id) or a dead letter (the whole
 * entry and its last error). The thread waits until ACK_BATCH items are waiting or
 * ACK_DELAY_NS has passed since the first one, swaps the whole array out, and sends it
 * outside the lock: one XACK per stream carrying up to ACK_BATCH ids, all of them pipelined,
 * then each dead letter as its own transaction (they are rare, and each needs a reply before
 * its next step). An item's callback runs as soon as Redis has answered for it, and the item
 * is marked done.
 *
 * A dead letter is written exactly once:
 *     XPENDING <stream> <group> <id> <id> 1    still pending? if not, an earlier try succeeded
 *     WATCH <dlq>; TYPE <dlq>                  a key of another type would fail the XADD...
 *     MULTI; XADD <dlq> * ...; XACK ...; EXEC  ...after the XACK ran: WATCH rules that out
 * EXEC returns nil when the dead-letter stream changed after WATCH (another consumer wrote a
 * dead letter); the transaction is then simply run again.
 *
 * If the connection fails, the items not yet done are kept and sent again after reconnecting
 * (XACK is idempotent, and the XPENDING check makes dead letters so), so nothing is dropped
 * while the process lives. The same holds when Redis refuses them for a while without anyone
 * having to change anything (refusal.h: READONLY from a replica during a failover, LOADING):
 * they are sent again after a backoff, logged once per step. A refusal that waiting cannot
 * fix (NOGROUP: the group is gone with its pending list; OOM for a dead letter) settles the
 * items as left pending: the entries come back through the reader (the group created again,
 * or the claim pass), and nothing is counted as done that was not. On stop the thread flushes what
 * is left, retrying until the deadline; what still could not be sent stays pending in Redis and is
 * delivered again after the restart.
 *
 * Cluster mode (rs_acker_set_cluster()): each stream's items go on a connection routed to the
 * master serving the stream (redis_routes.h), one stream after the other, in one pass that
 * never waits on a master: a stream whose master cannot be reached or refuses for now keeps
 * its items in the batch and is tried again after its route's backoff, while new items of the
 * other streams are taken and sent meanwhile. One master down (a failover takes seconds) must
 * not hold up the acks of the others: their entries would be claimed and handled again.
 *
 * Threads: workers call rs_acker_add() and rs_acker_dead_letter(); the acknowledger thread
 * owns the connection and the batch it is sending. The lock guards `pending`, `stopping` and
 * `deadline_ns` and is never held across a network call.
 */

#include "acker.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backoff.h"
#include "clock.h"
#include "entry.h"
#include "message.h"
#include "redis_conn.h"
#include "redis_routes.h"
#include "refusal.h"

#define ACK_BATCH       512                    /* ids per XACK, and items that trigger a flush */
#define ACK_DELAY_NS    (2 * INT64_C(1000000)) /* longest wait before a partial batch is sent */
#define DLQ_WATCH_TRIES 16                     /* EXEC aborted by concurrent dead letters */

typedef struct {
    void *stream;
    const char *stream_name;
    char id[RS_ENTRY_ID_MAX];
    rs_entry_t *dead; /* non-NULL: dead-letter this entry (owned) instead of a plain ack */
    char *error;      /* dead letters: the last error (owned) */
    bool done;        /* Redis has answered for it and the callback ran */
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
    /* The connection in use, acknowledger thread only: `own` in standalone mode; in cluster
     * mode the one of `routes` for the stream being sent (`only`, whose items alone are
     * sent then; NULL: all). */
    rs_redis_t *redis;
    rs_redis_t *own;
    rs_redis_routes_t *routes; /* NULL in standalone mode */
    const void *only;
    /* Cluster mode, acknowledger thread only: the streams a pass over the batch has tried. */
    const void **tried;
    size_t ntried, tried_cap;
    /* A transient refusal (see DESIGN), acknowledger thread only: its text, the backoff, and
     * how many sends in a row it refused. */
    char refusal[256];
    rs_backoff_t refused_backoff;
    unsigned refusals;

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
    a->own = rs_redis_new_from_config(cfg, "acker", cfg->redis.connect_timeout_ms, log);
    a->redis = a->own;
    if (a->redis == NULL) {
        snprintf(err, errlen, "acker: out of memory");
        free(a);
        return NULL;
    }
    rs_backoff_init(&a->refused_backoff, 100, 5000, 0);
    pthread_mutex_init(&a->lock, NULL);
    rs_clock_cond_init(&a->cond);
    return a;
}

int rs_acker_set_cluster(rs_acker_t *a, rs_cluster_t *cluster)
{
    a->routes =
        rs_redis_routes_new(a->cfg, cluster, "acker", a->cfg->redis.connect_timeout_ms, a->log);
    return a->routes != NULL ? 0 : -1;
}

/* True when `it` is not part of what is being sent now (cluster mode sends one stream at a
 * time, on that stream's connection). */
static bool other_stream(const rs_acker_t *a, const ack_item_t *it)
{
    return a->only != NULL && it->stream != a->only;
}

/* Makes room for `more` items in `l`. Caller holds the lock. Returns -1 when out of memory. */
static int reserve_items_locked(ack_list_t *l, size_t more)
{
    if (l->n + more <= l->cap)
        return 0;
    size_t cap = l->cap ? l->cap : ACK_BATCH;
    while (cap < l->n + more)
        cap *= 2;
    ack_item_t *items = realloc(l->items, cap * sizeof(*items));
    if (items == NULL)
        return -1;
    l->items = items;
    l->cap = cap;
    return 0;
}

/* Wakes the thread for the first item (it starts the batch's delay) and when a batch is full.
 * Caller holds the lock; `before` is the item count before the append. */
static void items_added_locked(rs_acker_t *a, size_t before)
{
    size_t n = a->pending.n;
    if (before == 0) {
        a->first_ns = rs_clock_monotonic_ns();
        pthread_cond_signal(&a->cond);
    } else if (before < ACK_BATCH && n >= ACK_BATCH) {
        pthread_cond_signal(&a->cond);
    }
}

/* Appends an item; returns -1 when out of memory. */
static int push_item(rs_acker_t *a, const ack_item_t *item)
{
    int rc = -1;
    pthread_mutex_lock(&a->lock);
    size_t before = a->pending.n;
    if (reserve_items_locked(&a->pending, 1) == 0) {
        a->pending.items[a->pending.n++] = *item;
        items_added_locked(a, before);
        rc = 0;
    }
    pthread_mutex_unlock(&a->lock);
    return rc;
}

int rs_acker_add(rs_acker_t *a, void *stream, const char *stream_name, const char *id)
{
    rs_ack_ref_t ref = {.stream = stream, .stream_name = stream_name, .id = id};
    return rs_acker_add_many(a, &ref, 1);
}

int rs_acker_add_many(rs_acker_t *a, const rs_ack_ref_t *refs, size_t n)
{
    if (n == 0)
        return 0;
    int rc = -1;
    pthread_mutex_lock(&a->lock);
    size_t before = a->pending.n;
    if (reserve_items_locked(&a->pending, n) == 0) {
        for (size_t i = 0; i < n; i++) {
            ack_item_t *it = &a->pending.items[a->pending.n++];
            *it = (ack_item_t){.stream = refs[i].stream, .stream_name = refs[i].stream_name};
            size_t len = strnlen(refs[i].id, sizeof(it->id) - 1);
            memcpy(it->id, refs[i].id, len);
            it->id[len] = '\0';
        }
        items_added_locked(a, before);
        rc = 0;
    }
    pthread_mutex_unlock(&a->lock);
    return rc;
}

int rs_acker_dead_letter(rs_acker_t *a, void *stream, const char *stream_name, rs_entry_t *e,
                         const char *error)
{
    ack_item_t it = {.stream = stream, .stream_name = stream_name, .dead = e};
    snprintf(it.id, sizeof(it.id), "%s", e->id);
    it.error = strdup(error);
    if (it.error == NULL || push_item(a, &it) != 0) {
        free(it.error);
        rs_entry_free(e);
        return -1;
    }
    return 0;
}

static void item_done(rs_acker_t *a, ack_item_t *it, rs_settled_t how)
{
    it->done = true;
    a->acked(a->acked_arg, it->stream, 1, how);
}

static void item_release(ack_item_t *it)
{
    rs_entry_free(it->dead);
    free(it->error);
    it->dead = NULL;
    it->error = NULL;
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
        struct timespec ts = rs_clock_timespec(wake);
        pthread_cond_timedwait(&a->cond, &a->lock, &ts);
    }
    pthread_mutex_unlock(&a->lock);
    return stop;
}

/* Records a transient refusal's text (`msg`, `len` bytes) for acker_main()'s log line. */
static void note_refusal(rs_acker_t *a, const char *what, const char *msg, size_t len)
{
    snprintf(a->refusal, sizeof(a->refusal), "%s refused: %.*s (%s)", what,
             len > 160 ? 160 : (int)len, msg, rs_refusal_hint(rs_refusal_of(msg, len)));
}

/* Sends the plain acks of `batch` not yet done: one pipelined XACK per run of up to ACK_BATCH
 * ids of one stream. Returns 0 when Redis answered every command, 1 when it refused some for
 * now (a transient refusal, noted in a->refusal: those items stay not done, to be sent
 * again), -1 on a connection failure (answered commands are done; the rest is sent again). */
static int send_acks(rs_acker_t *a, ack_list_t *batch)
{
    redisContext *c = rs_redis_context(a->redis);
    const char *group = a->cfg->group.name;
    bool *queued = calloc(batch->n, sizeof(*queued));
    const char **argv = malloc((3 + ACK_BATCH) * sizeof(*argv));
    size_t *argvlen = malloc((3 + ACK_BATCH) * sizeof(*argvlen));
    size_t *first = malloc(batch->n * sizeof(*first)); /* each command's first item */
    size_t *count = malloc(batch->n * sizeof(*count)); /* and how many ids it carries */
    size_t ncmds = 0;
    int rc = -1;
    if (queued == NULL || argv == NULL || argvlen == NULL || first == NULL || count == NULL) {
        rs_log(a->log, RS_LOG_ERROR, "acker", "out of memory building XACK; will retry");
        goto out;
    }

    for (size_t i = 0; i < batch->n; i++) {
        const ack_item_t *head = &batch->items[i];
        if (queued[i] || head->done || head->dead != NULL || other_stream(a, head))
            continue;
        int argc = 0;
        argv[argc] = "XACK", argvlen[argc++] = 4;
        argv[argc] = head->stream_name, argvlen[argc++] = strlen(head->stream_name);
        argv[argc] = group, argvlen[argc++] = strlen(group);
        for (size_t j = i; j < batch->n && argc < 3 + ACK_BATCH; j++) {
            const ack_item_t *it = &batch->items[j];
            if (queued[j] || it->done || it->dead != NULL || it->stream != head->stream)
                continue;
            argv[argc] = it->id;
            argvlen[argc++] = strlen(it->id);
            queued[j] = true;
        }
        if (redisAppendCommandArgv(c, argc, argv, argvlen) != REDIS_OK) {
            rs_redis_mark_broken(a->redis);
            goto out;
        }
        first[ncmds] = i;
        count[ncmds++] = (size_t)argc - 3;
    }

    int refused = 0;
    for (size_t k = 0; k < ncmds; k++) {
        redisReply *reply = rs_redis_read_reply(a->redis);
        if (reply == NULL)
            goto out;
        const ack_item_t *head = &batch->items[first[k]];
        rs_settled_t how = RS_SETTLED_ACKED;
        if (reply->type == REDIS_REPLY_ERROR &&
            rs_refusal_transient(rs_refusal_of(reply->str, reply->len))) {
            /* A replica during a failover, a server loading its data: these ids are
             * acknowledged later, when it accepts them again. */
            note_refusal(a, "XACK", reply->str, reply->len);
            refused = 1;
            freeReplyObject(reply);
            continue;
        }
        if (reply->type == REDIS_REPLY_ERROR) {
            /* WRONGTYPE (the stream was replaced by a key of another type), NOPERM: nobody
             * can acknowledge these ids now. They count as settled, so shutdown and the
             * reader's recovery do not wait on them; what is still pending in Redis comes
             * back through the reader. (A missing group is no error to XACK: Redis 7.0
             * answers 0, as for ids not pending.) */
            rs_log(a->log, RS_LOG_ERROR, "acker",
                   "stream=%s XACK of %zu ids refused: %s (%s); left unacknowledged",
                   head->stream_name, count[k], reply->str,
                   rs_refusal_hint(rs_refusal_of(reply->str, reply->len)));
            how = RS_SETTLED_LEFT_PENDING;
        } else if (reply->type != REDIS_REPLY_INTEGER) {
            rs_log(a->log, RS_LOG_ERROR, "acker", "stream=%s XACK: unexpected reply type %d",
                   head->stream_name, reply->type);
        }
        freeReplyObject(reply);
        /* Mark this command's items done: the first `count` queued ones of its stream from
         * its first item on, the order they were packed in. */
        void *stream = head->stream;
        size_t left = count[k];
        for (size_t j = first[k]; j < batch->n && left > 0; j++) {
            ack_item_t *it = &batch->items[j];
            if (queued[j] && !it->done && it->stream == stream) {
                it->done = true;
                left--;
            }
        }
        a->acked(a->acked_arg, stream, count[k], how);
    }
    rc = refused;

out:
    free(count);
    free(first);
    free(argvlen);
    free(argv);
    free(queued);
    return rc;
}

/* Runs one command built from string arguments and returns its reply (caller frees), or NULL
 * when the connection was lost. */
static redisReply *command(rs_acker_t *a, int argc, const char **argv)
{
    size_t argvlen[8];
    for (int i = 0; i < argc; i++)
        argvlen[i] = strlen(argv[i]);
    return rs_redis_command_argv(a->redis, argc, argv, argvlen);
}

/* Is entry `id` of `stream` still pending in the group? 1 yes, 0 no, -1 connection lost; -2
 * when Redis refused to say (the reply in *refusal, which the caller frees). */
static int still_pending(rs_acker_t *a, const ack_item_t *it, redisReply **refusal)
{
    const char *argv[] = {"XPENDING", it->stream_name, a->cfg->group.name, it->id, it->id, "1"};
    redisReply *reply = command(a, 6, argv);
    if (reply == NULL)
        return -1;
    if (reply->type == REDIS_REPLY_ERROR) {
        *refusal = reply;
        return -2;
    }
    int pending = reply->type == REDIS_REPLY_ARRAY && reply->elements > 0;
    freeReplyObject(reply);
    return pending;
}

/* Appends XADD <dlq> * <entry's fields> <metadata> to the pipeline. */
static int append_dead_letter_xadd(rs_acker_t *a, const char *dlq, const ack_item_t *it)
{
    const rs_entry_t *e = it->dead;
    size_t cap = 3 + 2 * e->nfields + 10;
    const char **argv = malloc(cap * sizeof(*argv));
    size_t *argvlen = malloc(cap * sizeof(*argvlen));
    if (argv == NULL || argvlen == NULL) {
        free(argv);
        free(argvlen);
        return -1;
    }
    char deliveries[24], when[RS_RFC3339_LEN];
    snprintf(deliveries, sizeof(deliveries), "%llu", (unsigned long long)e->delivery);
    if (rs_clock_format_rfc3339_ms(rs_clock_realtime_ns(), when, sizeof(when)) < 0)
        when[0] = '\0';
    const char *meta[] = {RS_DLQ_FIELD_STREAM,     it->stream_name,
                          RS_DLQ_FIELD_ID,         it->id,
                          RS_DLQ_FIELD_DELIVERIES, deliveries,
                          RS_DLQ_FIELD_ERROR,      it->error,
                          RS_DLQ_FIELD_TIME,       when};
    size_t n = 0;
    argv[n] = "XADD", argvlen[n++] = 4;
    argv[n] = dlq, argvlen[n++] = strlen(dlq);
    argv[n] = "*", argvlen[n++] = 1;
    for (size_t i = 0; i < e->nfields; i++) {
        argv[n] = e->fields[i].name, argvlen[n++] = e->fields[i].name_len;
        argv[n] = e->fields[i].value, argvlen[n++] = e->fields[i].value_len;
    }
    for (size_t i = 0; i < sizeof(meta) / sizeof(meta[0]); i++)
        argv[n] = meta[i], argvlen[n++] = strlen(meta[i]);
    int rc = redisAppendCommandArgv(rs_redis_context(a->redis), (int)n, argv, argvlen);
    free(argv);
    free(argvlen);
    return rc == REDIS_OK ? 0 : -1;
}

/* Writes one dead letter and acks its entry in one transaction (see DESIGN). Returns 0 when
 * Redis has answered for it (the item is then done), 1 when Redis refused it for now (a
 * transient refusal, noted in a->refusal: the item stays, to be sent again), -1 when the
 * connection was lost. */
static int send_dead_letter(rs_acker_t *a, ack_item_t *it)
{
    const rs_config_t *cfg = a->cfg;
    char dlq[1024], bad_name[256];
    if (rs_config_dlq_name(cfg, it->stream_name, dlq, sizeof(dlq), bad_name, sizeof(bad_name)) !=
        0) {
        /* Load-time validation refuses such names: not reached. */
        rs_log(a->log, RS_LOG_ERROR, "acker", "stream=%s id=%s not dead-lettered: %s",
               it->stream_name, it->id, bad_name);
        item_done(a, it, RS_SETTLED_LEFT_PENDING);
        return 0;
    }

    redisReply *refusal = NULL;
    int pending = still_pending(a, it, &refusal);
    if (pending == -1)
        return -1;
    if (pending == -2) {
        rs_refusal_t kind = rs_refusal_of(refusal->str, refusal->len);
        int rc = 0;
        if (rs_refusal_transient(kind)) {
            note_refusal(a, "XPENDING", refusal->str, refusal->len);
            rc = 1;
        } else {
            /* NOGROUP: the group went with its pending list. Not written, so not counted
             * as dead-lettered: the reader creates the group again and the entry is
             * delivered (and fails) again. */
            rs_log(a->log, RS_LOG_ERROR, "acker",
                   "stream=%s id=%s not dead-lettered: XPENDING refused: %s (%s); it is "
                   "delivered again if the group is created again",
                   it->stream_name, it->id, refusal->str, rs_refusal_hint(kind));
            item_done(a, it, RS_SETTLED_LEFT_PENDING);
        }
        freeReplyObject(refusal);
        return rc;
    }
    if (pending == 0) {
        /* A transaction whose reply was lost went through, or the entry was acknowledged
         * elsewhere: either way there is nothing left to do. */
        item_done(a, it, RS_SETTLED_DEAD_LETTERED);
        return 0;
    }
    for (int attempt = 0; attempt < DLQ_WATCH_TRIES; attempt++) {
        const char *watch[] = {"WATCH", dlq};
        const char *type[] = {"TYPE", dlq};
        redisReply *reply = command(a, 2, watch);
        if (reply == NULL)
            return -1;
        freeReplyObject(reply);
        if ((reply = command(a, 2, type)) == NULL)
            return -1;
        bool usable = reply->type == REDIS_REPLY_STATUS &&
                      (strcmp(reply->str, "stream") == 0 || strcmp(reply->str, "none") == 0);
        if (!usable) {
            rs_log(a->log, RS_LOG_ERROR, "acker",
                   "stream=%s id=%s cannot be dead-lettered: key %s holds a %s, not a stream; "
                   "the entry stays pending",
                   it->stream_name, it->id, dlq,
                   reply->type == REDIS_REPLY_STATUS ? reply->str : "value of unknown type");
            freeReplyObject(reply);
            const char *unwatch[] = {"UNWATCH"};
            if ((reply = command(a, 1, unwatch)) == NULL)
                return -1;
            freeReplyObject(reply);
            item_done(a, it, RS_SETTLED_LEFT_PENDING);
            return 0;
        }
        freeReplyObject(reply);

        redisContext *c = rs_redis_context(a->redis);
        const char *xack[] = {"XACK", it->stream_name, cfg->group.name, it->id};
        size_t xacklen[] = {4, strlen(it->stream_name), strlen(cfg->group.name), strlen(it->id)};
        if (redisAppendCommand(c, "MULTI") != REDIS_OK ||
            append_dead_letter_xadd(a, dlq, it) != 0 ||
            redisAppendCommandArgv(c, 4, xack, xacklen) != REDIS_OK ||
            redisAppendCommand(c, "EXEC") != REDIS_OK) {
            rs_redis_mark_broken(a->redis);
            return -1;
        }
        redisReply *replies[4] = {NULL};
        for (int k = 0; k < 4; k++) {
            if ((replies[k] = rs_redis_read_reply(a->redis)) == NULL) {
                for (int j = 0; j < k; j++)
                    freeReplyObject(replies[j]);
                return -1;
            }
        }
        const redisReply *exec = replies[3];
        int outcome; /* 1 written, 0 the watched key changed: again, -1 refused, 2 refused
                      * for now (transient: sent again later) */
        if (exec->type == REDIS_REPLY_NIL) {
            outcome = 0;
        } else if (exec->type == REDIS_REPLY_ARRAY && exec->elements == 2 &&
                   exec->element[0]->type == REDIS_REPLY_STRING) {
            outcome = 1;
            rs_log(a->log, RS_LOG_WARN, "acker",
                   "stream=%s id=%s dead-lettered to %s as %s after %llu deliveries: %s",
                   it->stream_name, it->id, dlq, exec->element[0]->str,
                   (unsigned long long)it->dead->delivery, it->error);
        } else {
            /* EXECABORT (a command refused while queued: OOM under maxmemory, READONLY on a
             * replica): nothing ran. */
            outcome = -1;
            const redisReply *why = exec;
            for (int k = 2; k >= 1; k--)
                if (replies[k]->type == REDIS_REPLY_ERROR)
                    why = replies[k];
            rs_refusal_t kind = why->type == REDIS_REPLY_ERROR ? rs_refusal_of(why->str, why->len)
                                                               : RS_REFUSAL_OTHER;
            if (rs_refusal_transient(kind)) {
                note_refusal(a, "dead letter", why->str, why->len);
                outcome = 2;
            } else {
                /* It stays pending for this consumer; the reader's claim pass takes it
                 * again after group.claim_idle_ms and, past max_deliveries, dead-letters
                 * it then. */
                rs_log(a->log, RS_LOG_ERROR, "acker",
                       "stream=%s id=%s dead letter refused by Redis: %s (%s); the entry stays "
                       "pending and is claimed again after group.claim_idle_ms",
                       it->stream_name, it->id,
                       why->type == REDIS_REPLY_ERROR ? why->str : "unexpected reply",
                       rs_refusal_hint(kind));
            }
        }
        for (int k = 0; k < 4; k++)
            freeReplyObject(replies[k]);
        if (outcome == 2)
            return 1; /* not done: sent again after a backoff */
        if (outcome != 0) {
            item_done(a, it, outcome > 0 ? RS_SETTLED_DEAD_LETTERED : RS_SETTLED_LEFT_PENDING);
            return 0;
        }
    }
    rs_log(a->log, RS_LOG_ERROR, "acker",
           "stream=%s id=%s: %s kept changing during %d tries; the entry stays pending",
           it->stream_name, it->id, dlq, DLQ_WATCH_TRIES);
    item_done(a, it, RS_SETTLED_LEFT_PENDING);
    return 0;
}

/* Sends everything in `batch` that is not done yet. Returns 0 when all of it is done, 1 when
 * Redis refused some of it for now (a->refusal says why), -1 on a connection failure. */
static int send_batch(rs_acker_t *a, ack_list_t *batch)
{
    if (!rs_redis_connected(a->redis))
        return -1;
    int rc = send_acks(a, batch);
    if (rc < 0)
        return -1;
    for (size_t i = 0; i < batch->n; i++) {
        ack_item_t *it = &batch->items[i];
        if (it->dead == NULL || it->done || other_stream(a, it))
            continue;
        int dl = send_dead_letter(a, it);
        if (dl < 0)
            return -1;
        if (dl > 0)
            rc = 1;
    }
    return rc;
}

/* Frees what the items own and returns how many were not done (given up at the deadline). */
static size_t drop_items(ack_list_t *l)
{
    size_t left = 0;
    for (size_t i = 0; i < l->n; i++) {
        left += !l->items[i].done;
        item_release(&l->items[i]);
    }
    l->n = 0;
    return left;
}

/* Standalone mode: sends what is not done in `batch` on a->redis until all of it is done,
 * reconnecting and backing off as needed. Returns 0, or 1 when the stop deadline passed
 * first. */
static int deliver(rs_acker_t *a, ack_list_t *batch)
{
    for (;;) {
        if (!rs_redis_connected(a->redis)) {
            rs_redis_status_t st = rs_redis_connect_retry(a->redis, acker_wait, a);
            if (st != RS_REDIS_OK) {
                if (st != RS_REDIS_ERR_IO)
                    rs_log(a->log, RS_LOG_ERROR, "acker", "%s", rs_redis_errstr(a->redis));
                if (acker_wait(a, st == RS_REDIS_ERR_IO ? 0 : 1000))
                    return 1;
                continue;
            }
        }
        int sent = send_batch(a, batch);
        if (sent == 0) {
            if (a->refusals > 0)
                rs_log(a->log, RS_LOG_INFO, "acker",
                       "Redis accepts acks and dead letters again after %u refusal%s", a->refusals,
                       a->refusals == 1 ? "" : "s");
            a->refusals = 0;
            rs_backoff_reset(&a->refused_backoff);
            return 0;
        }
        if (sent > 0) {
            /* Refused for now: the same items again after a backoff, one line per step. */
            long ms = (long)rs_backoff_next_ms(&a->refused_backoff);
            a->refusals++;
            rs_log(a->log, RS_LOG_WARN, "acker", "%s; sending again in %ld ms", a->refusal, ms);
            if (acker_wait(a, ms))
                return 1;
            continue;
        }
        rs_log(a->log, RS_LOG_WARN, "acker", "acks not sent: %s; sending again",
               rs_redis_errstr(a->redis));
        /* A short pause keeps a failure that is not the connection's (out of memory) from
         * spinning. */
        if (acker_wait(a, 10))
            return 1;
    }
}

/* True when a pass has tried `stream` already; otherwise remembers it (false), or, out of
 * memory, says it was tried so that it waits for the next pass. */
static bool tried_before(rs_acker_t *a, const void *stream)
{
    for (size_t i = 0; i < a->ntried; i++)
        if (a->tried[i] == stream)
            return true;
    if (a->ntried == a->tried_cap) {
        size_t cap = a->tried_cap ? 2 * a->tried_cap : 16;
        const void **grown = realloc(a->tried, cap * sizeof(*grown));
        if (grown == NULL)
            return true;
        a->tried = grown;
        a->tried_cap = cap;
    }
    a->tried[a->ntried++] = stream;
    return false;
}

/* Cluster mode: one pass over what is not done in `batch`, stream by stream, each on the
 * connection routed to its master, with one connection attempt at most. A stream whose master
 * cannot be reached or refuses for now keeps its items and is tried again after its route's
 * backoff, while the other streams go on: one master down must not hold up the acks of the
 * others (their entries would be claimed and handled again). Sets *again_ns to the earliest
 * time a stream left over is due again (INT64_MAX when nothing is left). */
static void deliver_routed(rs_acker_t *a, ack_list_t *batch, int64_t *again_ns)
{
    *again_ns = INT64_MAX;
    a->ntried = 0;
    for (size_t i = 0; i < batch->n; i++) {
        const ack_item_t *it = &batch->items[i];
        if (it->done || tried_before(a, it->stream))
            continue;
        /* The stream may be freed once its last item is done: keep its name for the log. */
        char name[128];
        snprintf(name, sizeof(name), "%s", it->stream_name);
        int64_t now = rs_clock_monotonic_ns();
        rs_redis_route_t *route = rs_redis_routes_get(a->routes, it->stream_name);
        if (route == NULL) {
            rs_log(a->log, RS_LOG_ERROR, "acker", "stream=%s out of memory; sending again", name);
            *again_ns = now + ACK_DELAY_NS < *again_ns ? now + ACK_DELAY_NS : *again_ns;
            continue;
        }
        if (now < route->retry_at_ns) {
            *again_ns = route->retry_at_ns < *again_ns ? route->retry_at_ns : *again_ns;
            continue;
        }
        int rc = -1;
        if (rs_redis_connected(route->redis) || rs_redis_connect(route->redis) == RS_REDIS_OK) {
            a->redis = route->redis;
            a->only = it->stream;
            rc = send_batch(a, batch);
        }
        if (rc == 0) {
            unsigned failed = rs_redis_route_succeeded(route);
            if (failed > 0)
                rs_log(a->log, RS_LOG_INFO, "acker",
                       "stream=%s acks and dead letters sent again after %u failed attempt%s", name,
                       failed, failed == 1 ? "" : "s");
            continue;
        }
        long ms = rs_redis_route_failed(route, now);
        rs_log(a->log, RS_LOG_WARN, "acker",
               "stream=%s acks and dead letters wait: %s; trying again in %ld ms", name,
               rc > 0 ? a->refusal : rs_redis_errstr(route->redis), ms);
        *again_ns = route->retry_at_ns < *again_ns ? route->retry_at_ns : *again_ns;
    }
    a->only = NULL;
    a->redis = a->own;
}

/* Frees the done items of `l` and moves the others, in order, to its front. */
static void keep_undone(ack_list_t *l)
{
    size_t k = 0;
    for (size_t i = 0; i < l->n; i++) {
        if (l->items[i].done)
            item_release(&l->items[i]);
        else
            l->items[k++] = l->items[i];
    }
    l->n = k;
}

/* Waits, lock held, until there is something to send: new items, or (cluster mode) the `left`
 * items left over in the batch once `again_ns` comes. Returns false when the stop deadline
 * passed with items left over, which the caller then gives up; true otherwise, also when
 * stopping with nothing left. */
static bool wait_for_work_locked(rs_acker_t *a, size_t left, int64_t again_ns)
{
    if (left > 0 && again_ns == INT64_MAX)
        again_ns = rs_clock_monotonic_ns() + ACK_DELAY_NS;
    for (;;) {
        int64_t now = rs_clock_monotonic_ns();
        if (a->pending.n > 0 || (left > 0 && now >= again_ns))
            return true;
        if (a->stopping && left == 0)
            return true;
        if (a->stopping && now >= a->deadline_ns)
            return false;
        int64_t wake = left > 0 ? again_ns : INT64_MAX;
        if (a->stopping && a->deadline_ns < wake)
            wake = a->deadline_ns;
        if (wake == INT64_MAX) {
            pthread_cond_wait(&a->cond, &a->lock);
        } else {
            struct timespec ts = rs_clock_timespec(wake);
            pthread_cond_timedwait(&a->cond, &a->lock, &ts);
        }
    }
}

/* Moves the pending items into `batch` (after what it still holds). Lock held. Out of memory,
 * they stay pending for the next round. */
static void take_pending_locked(rs_acker_t *a, ack_list_t *batch)
{
    if (batch->n == 0) {
        /* Swap: the (empty) batch buffer goes back for reuse. */
        ack_list_t tmp = a->pending;
        a->pending = *batch;
        a->pending.n = 0;
        *batch = tmp;
        return;
    }
    if (reserve_items_locked(batch, a->pending.n) != 0)
        return;
    memcpy(batch->items + batch->n, a->pending.items, a->pending.n * sizeof(*batch->items));
    batch->n += a->pending.n;
    a->pending.n = 0;
}

static void *acker_main(void *arg)
{
    rs_acker_t *a = arg;
    ack_list_t batch = {0};       /* being sent; in cluster mode, also what waits for its master */
    int64_t again_ns = INT64_MAX; /* cluster mode: when what is left in batch is due again */

    pthread_mutex_lock(&a->lock);
    for (;;) {
        if (!wait_for_work_locked(a, batch.n, again_ns)) {
            /* The stop deadline passed: what is left stays pending in Redis. */
            a->unsent += drop_items(&batch) + drop_items(&a->pending);
            break;
        }
        if (a->pending.n == 0 && batch.n == 0)
            break; /* stopping with nothing left */
        /* Let a batch build up for a moment, unless it is full or we are stopping. */
        while (a->pending.n > 0 && a->pending.n < ACK_BATCH && !a->stopping) {
            int64_t due = a->first_ns + ACK_DELAY_NS;
            if (rs_clock_monotonic_ns() >= due)
                break;
            struct timespec ts = rs_clock_timespec(due);
            pthread_cond_timedwait(&a->cond, &a->lock, &ts);
        }
        take_pending_locked(a, &batch);
        pthread_mutex_unlock(&a->lock);

        if (a->routes != NULL) {
            deliver_routed(a, &batch, &again_ns);
            keep_undone(&batch);
        } else if (deliver(a, &batch) != 0) {
            /* The stop deadline passed: what is left stays pending in Redis. */
            pthread_mutex_lock(&a->lock);
            a->unsent += drop_items(&batch) + drop_items(&a->pending);
            break;
        } else {
            (void)drop_items(&batch); /* all done: frees the dead letters' entries */
        }
        pthread_mutex_lock(&a->lock);
    }
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
    rs_redis_free(a->own);
    rs_redis_routes_free(a->routes);
    free(a->tried);
    (void)drop_items(&a->pending);
    free(a->pending.items);
    pthread_cond_destroy(&a->cond);
    pthread_mutex_destroy(&a->lock);
    free(a);
}

unsigned long rs_acker_reconnects(const rs_acker_t *a)
{
    return rs_redis_reconnects(a->own) +
           (a->routes != NULL ? rs_redis_routes_reconnects(a->routes) : 0);
}
