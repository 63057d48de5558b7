/*
 * The reader thread of one stream.
 *
 * DESIGN: a small state machine run by one thread that owns one Redis connection:
 *
 *     CONNECT -> GROUP -> RECOVER -> READ --(NOGROUP, stream deleted)--> GROUP
 *        ^__________________|__________|  (any lost connection)
 *                                       READ --(READONLY, LOADING, ...)--> RECOVER
 *
 * CONNECT retries with backoff (logged once per step by redis_conn). GROUP creates the
 * consumer group with MKSTREAM, BUSYGROUP meaning it already exists: the first time at
 * group.start_id, after the group vanished at the restart point recorded while it existed
 * (refresh_restart_point(), at GROUP and at every claim pass), so no entry it had not settled
 * is skipped. RECOVER first waits until none of this stream's entries is in flight (so
 * nothing still queued or in a worker is fetched twice), then re-reads this consumer's
 * pending entries from id 0 with their delivery counts from XPENDING. READ blocks in
 * XREADGROUP ... >.
 *
 * Refusals (error replies, classified by refusal.c) are waited out with backoff in the state
 * that met them, one log line per step naming the stream and the cause, then one line for
 * the recovery; meanwhile the reader is not ready but alive (the wait is not a stall). A
 * refusal the server leaves by itself (a replica during a failover) leads to RECOVER, since
 * the data may have changed under the reader.
 *
 * Backpressure: before every XREADGROUP the reader reserves queue slots and asks for no more
 * entries than it got; when the queue is full it sleeps in rs_queue_reserve() and Redis keeps
 * the backlog. A reader holds its reservation while it blocks in XREADGROUP, so it never
 * reserves more than batch_max, its fair share of the queue: an idle stream must not sit on
 * the room that another stream's entries, or a due retry, need.
 *
 * Health: the thread publishes what it is doing and when it last completed a read in
 * atomics, which the HTTP server's /healthz reads without a lock. Time spent waiting for the
 * workers (for room in the queue, or for in-flight entries to settle) is added to the
 * progress time when the wait ends, so it never counts towards a stall: a reader held back by
 * slow handlers is alive. Time spent reconnecting does count: a reader that cannot reach
 * Redis for longer than the liveness window is reported, naming its stream.
 *
 * Waking for shutdown: the thread may sleep in three places, and rs_reader_stop() reaches
 * each: the socket (shutdown(2) on a dup of it, so a stale descriptor can never hit a
 * reused number; published as soon as the TCP connection exists, so a handshake with a
 * server that never answers is woken too), the queue (rs_queue_wake), and the reader's own
 * condition variable (used for backoff waits) or the stream's (waiting for in-flight entries to
 * settle).
 *
 * Lock order: r->lock is a leaf; it is never held while another lock is taken or across a
 * network call.
 */

#include "reader.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "backoff.h"
#include "clock.h"
#include "redis_conn.h"
#include "refusal.h"
#include "stream_id.h"

typedef enum { ST_CONNECT, ST_GROUP, ST_RECOVER, ST_READ, ST_CLAIM } reader_state_t;

/* Bounds on the time between two claim passes (half of group.claim_idle_ms). */
#define CLAIM_INTERVAL_MIN_MS 100
#define CLAIM_INTERVAL_MAX_MS 30000
/* XAUTOCLAIM calls in one pass; a bigger backlog is taken over in later passes. */
#define CLAIM_MAX_CALLS 100

/* Deletes a consumer only if it has nothing pending, in one atomic step: between XINFO and
 * DELCONSUMER it might have received entries, and deleting it would drop them from the
 * group's pending list, so they would never be delivered again. */
static const char delete_idle_consumer_lua[] =
    "if #redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, ARGV[2]) > 0 then "
    "return -1 end "
    "return redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])";

struct rs_reader {
    const rs_config_t *cfg;
    rs_stream_t *stream;
    rs_queue_t *q;
    rs_logger_t *log;
    rs_redis_t *redis;         /* reader thread only */
    rs_backoff_t errors;       /* waits after error replies; reader thread only */
    unsigned refusals;         /* commands Redis refused in a row; reader thread only */
    bool has_restart;          /* `restart` is known; reader thread only */
    rs_stream_id_t restart;    /* where the group is created again if it vanishes
                                * (refresh_restart_point()); reader thread only */
    size_t batch_max;          /* most entries asked for (and queue slots held) per read */
    atomic_size_t batch_limit; /* <= batch_max: the fair share now (rs_reader_set_batch_limit) */
    size_t ahead;         /* slots reserved for an XREADGROUP sent ahead, whose reply is unread (0:
                           * none); reader thread only */
    rs_entry_t **batch;   /* batch_max slots; reader thread only */
    uint64_t *counts;     /* batch_max delivery counts; reader thread only */
    const char **deleted; /* batch_max ids of deleted entries; reader thread only */

    int64_t claim_interval_ms; /* between two XAUTOCLAIM passes */
    int64_t next_claim_ns;     /* CLOCK_MONOTONIC; reader thread only */

    pthread_t thread;
    bool started;
    atomic_bool stop;
    atomic_bool ready;

    /* Health: written by the reader thread (and by rs_reader_start() before it), read by any
     * thread through rs_reader_health(). */
    atomic_bool alive;
    atomic_int activity;           /* rs_reader_activity_t */
    atomic_llong progress_ns;      /* CLOCK_MONOTONIC of the last completed read, moved on by
                                    * the time spent waiting for the workers since */
    atomic_llong waiting_since_ns; /* 0, or when the current wait for the workers began */
    atomic_int connect_error;      /* rs_redis_status_t of the last connection attempt */
    atomic_int refused;            /* rs_refusal_t of the last command, RS_REFUSAL_NONE once
                                    * one is accepted */

    pthread_mutex_t lock;
    pthread_cond_t cond;   /* CLOCK_MONOTONIC; broadcast by rs_reader_stop() */
    int wake_fd;           /* dup of the connection's socket, or -1; guarded by lock */
    rs_cluster_t *cluster; /* cluster mode's router, or NULL; borrowed */
};

rs_reader_t *rs_reader_new(const rs_config_t *cfg, rs_stream_t *stream, rs_queue_t *q,
                           size_t batch_max, rs_logger_t *log)
{
    rs_reader_t *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return NULL;
    r->batch_max = batch_max > 0 ? batch_max : 1;
    atomic_init(&r->batch_limit, r->batch_max);
    r->batch = calloc(r->batch_max, sizeof(*r->batch));
    r->counts = calloc(r->batch_max, sizeof(*r->counts));
    r->deleted = calloc(r->batch_max, sizeof(*r->deleted));
    char name[96];
    snprintf(name, sizeof(name), "reader %s", stream->name);
    /* A reply may take the whole BLOCK time; beyond that plus a margin, Redis hangs. */
    r->redis = rs_redis_new_from_config(cfg, name,
                                        cfg->group.block_ms + cfg->redis.connect_timeout_ms, log);
    if (r->batch == NULL || r->counts == NULL || r->deleted == NULL || r->redis == NULL) {
        rs_redis_free(r->redis);
        free(r->deleted);
        free(r->counts);
        free(r->batch);
        free(r);
        return NULL;
    }
    r->cfg = cfg;
    r->stream = stream;
    r->q = q;
    r->log = log;
    r->wake_fd = -1;
    r->claim_interval_ms = cfg->group.claim_idle_ms / 2;
    if (r->claim_interval_ms < CLAIM_INTERVAL_MIN_MS)
        r->claim_interval_ms = CLAIM_INTERVAL_MIN_MS;
    if (r->claim_interval_ms > CLAIM_INTERVAL_MAX_MS)
        r->claim_interval_ms = CLAIM_INTERVAL_MAX_MS;
    rs_backoff_init(&r->errors, 100, 5000, 0);
    pthread_mutex_init(&r->lock, NULL);
    rs_clock_cond_init(&r->cond);
    return r;
}

/* The reader completed a read (or something as telling: the group's creation). */
static void made_progress(rs_reader_t *r)
{
    atomic_store(&r->progress_ns, rs_clock_monotonic_ns());
}

/* Brackets a wait that does not count towards a stall: for the workers (see DESIGN), or
 * after Redis refused a command (refusal_backoff()). Returns the activity to restore. */
static rs_reader_activity_t begin_worker_wait(rs_reader_t *r, rs_reader_activity_t why)
{
    rs_reader_activity_t was = (rs_reader_activity_t)atomic_load(&r->activity);
    atomic_store(&r->activity, (int)why);
    atomic_store(&r->waiting_since_ns, rs_clock_monotonic_ns());
    return was;
}

static void end_worker_wait(rs_reader_t *r, rs_reader_activity_t was)
{
    int64_t since = atomic_load(&r->waiting_since_ns);
    /* Progress first, then the flag: a health check that sees the flag cleared also sees
     * the progress time moved on. */
    atomic_fetch_add(&r->progress_ns, rs_clock_monotonic_ns() - since);
    atomic_store(&r->waiting_since_ns, 0);
    atomic_store(&r->activity, (int)was);
}

/* rs_queue_reserve() as a wait for the workers. */
static size_t reserve_slots(rs_reader_t *r, size_t max)
{
    size_t limit = atomic_load_explicit(&r->batch_limit, memory_order_relaxed);
    if (max > limit)
        max = limit;
    rs_reader_activity_t was = begin_worker_wait(r, RS_READER_WAITING_FOR_ROOM);
    size_t k = rs_queue_reserve(r->q, max, &r->stop);
    end_worker_wait(r, was);
    return k;
}

/* Sleeps `ms` or until stopped. Returns non-zero when stopped (rs_redis_wait_fn). */
static int reader_wait(void *arg, long ms)
{
    rs_reader_t *r = arg;
    int64_t until = rs_clock_monotonic_ns() + (int64_t)ms * 1000000;
    struct timespec ts = rs_clock_timespec(until);
    pthread_mutex_lock(&r->lock);
    while (!atomic_load(&r->stop) && rs_clock_monotonic_ns() < until)
        pthread_cond_timedwait(&r->cond, &r->lock, &ts);
    pthread_mutex_unlock(&r->lock);
    return atomic_load(&r->stop);
}

/* rs_redis_socket_fn: keeps a dup of the connection's socket for rs_reader_stop() to shut
 * down from the moment the TCP connection exists, so a stop also ends a handshake with a
 * server that never answers (fd -1: the connection was dropped, the dup is closed). */
static void track_socket(void *arg, int fd)
{
    rs_reader_t *r = arg;
    pthread_mutex_lock(&r->lock);
    if (r->wake_fd >= 0)
        close(r->wake_fd);
    r->wake_fd = fd >= 0 ? fcntl(fd, F_DUPFD_CLOEXEC, 0) : -1;
    if (atomic_load(&r->stop) && r->wake_fd >= 0)
        shutdown(r->wake_fd, SHUT_RDWR); /* stop() ran before the socket existed */
    pthread_mutex_unlock(&r->lock);
}

static void forget_socket(rs_reader_t *r)
{
    pthread_mutex_lock(&r->lock);
    if (r->wake_fd >= 0)
        close(r->wake_fd);
    r->wake_fd = -1;
    pthread_mutex_unlock(&r->lock);
}

/* Called after a command returned NULL: the connection is gone. */
/* Gives back the slots of an XREADGROUP sent ahead whose reply will never be read (the
 * connection is gone, or the reader stops). What Redis delivered for it stays pending for
 * this consumer and comes back with the next recovery pass. */
static void drop_ahead(rs_reader_t *r)
{
    rs_queue_unreserve(r->q, r->ahead);
    r->ahead = 0;
}

static reader_state_t connection_lost(rs_reader_t *r)
{
    drop_ahead(r);
    atomic_store(&r->ready, false);
    atomic_store(&r->refused, (int)RS_REFUSAL_NONE);
    forget_socket(r);
    if (!atomic_load(&r->stop))
        rs_log(r->log, RS_LOG_WARN, "reader", "stream=%s lost the connection: %s; reconnecting",
               r->stream->name, rs_redis_errstr(r->redis));
    return ST_CONNECT;
}

/* Waits after an error reply, with backoff, logging the reply once per step. */
static void error_backoff(rs_reader_t *r, const char *what, const char *msg)
{
    long ms = (long)rs_backoff_next_ms(&r->errors);
    rs_log(r->log, RS_LOG_ERROR, "reader", "stream=%s %s: %s; retrying in %ld ms", r->stream->name,
           what, msg, ms);
    reader_wait(r, ms);
}

/* Writes "key <name> is a <type>; " into `buf` for a WRONGTYPE refusal ("" when TYPE is
 * refused too; a lost connection is noticed by the next command). */
static void describe_key(rs_reader_t *r, char *buf, size_t buflen)
{
    const char *argv[] = {"TYPE", r->stream->name};
    size_t argvlen[] = {4, strlen(r->stream->name)};
    redisReply *reply = rs_redis_command_argv(r->redis, 2, argv, argvlen);
    buf[0] = '\0';
    if (reply != NULL && reply->type == REDIS_REPLY_STATUS)
        snprintf(buf, buflen, "key %s is a %s; ", r->stream->name, reply->str);
    freeReplyObject(reply);
}

/* Waits after Redis refused one of the reader's commands (`what`: "XREADGROUP", ...), with
 * backoff, logging the refusal once per step with its cause and remedy. Meanwhile the reader
 * is not ready (/readyz names the cause) but counts as alive: Redis answers and the thread
 * works, and restarting the process cannot fix what Redis refuses (a key of another type, a
 * read-only replica, maxmemory). accepted() ends the run. */
static void refusal_backoff(rs_reader_t *r, const char *what, const redisReply *reply)
{
    bool is_err = reply->type == REDIS_REPLY_ERROR;
    rs_refusal_t kind = is_err ? rs_refusal_of(reply->str, reply->len) : RS_REFUSAL_OTHER;
    char key[128] = "";
    if (kind == RS_REFUSAL_WRONGTYPE)
        describe_key(r, key, sizeof(key));
    atomic_store(&r->ready, false);
    atomic_store(&r->refused, (int)kind);
    r->refusals++;
    long ms = (long)rs_backoff_next_ms(&r->errors);
    rs_log(r->log,
           kind == RS_REFUSAL_NOT_READY || kind == RS_REFUSAL_CLUSTER ? RS_LOG_WARN : RS_LOG_ERROR,
           "reader", "stream=%s %s refused: %s (%s%s); retrying in %ld ms", r->stream->name, what,
           is_err ? reply->str : "unexpected reply", key, rs_refusal_hint(kind), ms);
    rs_reader_activity_t was = begin_worker_wait(r, RS_READER_REFUSED);
    reader_wait(r, ms);
    end_worker_wait(r, was);
}

/* Redis accepted a command of the reader, with its group in place: ends a run of refusals
 * (logging the recovery once) and makes the reader ready again. */
static void accepted(rs_reader_t *r)
{
    if (r->refusals == 0)
        return;
    rs_log(r->log, RS_LOG_INFO, "reader",
           "stream=%s Redis accepts the reader's commands again after %u refusal%s",
           r->stream->name, r->refusals, r->refusals == 1 ? "" : "s");
    r->refusals = 0;
    rs_backoff_reset(&r->errors);
    atomic_store(&r->refused, (int)RS_REFUSAL_NONE);
    atomic_store(&r->ready, true);
}

/* Looks the group up in XINFO GROUPS (a read: allowed on a replica and under maxmemory):
 * sets *found, and *last_delivered when found. An error reply (no such key, WRONGTYPE) means
 * not found. Returns -1 when the connection was lost. */
static int find_group(rs_reader_t *r, bool *found, rs_stream_id_t *last_delivered)
{
    const char *group = r->cfg->group.name;
    const char *argv[] = {"XINFO", "GROUPS", r->stream->name};
    size_t argvlen[] = {5, 6, strlen(r->stream->name)};
    redisReply *reply = rs_redis_command_argv(r->redis, 3, argv, argvlen);
    if (reply == NULL)
        return -1;
    *found = false;
    for (size_t i = 0; reply->type == REDIS_REPLY_ARRAY && i < reply->elements && !*found; i++) {
        const redisReply *g = reply->element[i];
        if (g->type != REDIS_REPLY_ARRAY)
            continue;
        const redisReply *name = NULL, *last = NULL;
        for (size_t j = 0; j + 1 < g->elements; j += 2) {
            const redisReply *k = g->element[j];
            if (k->type != REDIS_REPLY_STRING && k->type != REDIS_REPLY_STATUS)
                continue;
            if (strcmp(k->str, "name") == 0)
                name = g->element[j + 1];
            else if (strcmp(k->str, "last-delivered-id") == 0)
                last = g->element[j + 1];
        }
        if (name == NULL || name->type != REDIS_REPLY_STRING || name->len != strlen(group) ||
            memcmp(name->str, group, name->len) != 0)
            continue;
        *found = last != NULL &&
                 (last->type == REDIS_REPLY_STRING || last->type == REDIS_REPLY_STATUS) &&
                 rs_stream_id_parse(last->str, last->len, last_delivered) == 0;
    }
    freeReplyObject(reply);
    return 0;
}

/* Records where the group is created again if it vanishes (rs_stream_id_restart_point()):
 * its last-delivered-id from XINFO GROUPS, then its smallest pending id from XPENDING, in
 * that order, so an entry delivered between the two is after the first and not skipped. Run
 * once the group is in place and at every claim pass; a stale point only means more entries
 * delivered again. Keeps the previous point when Redis refuses either. Returns -1 when the
 * connection was lost. */
static int refresh_restart_point(rs_reader_t *r)
{
    bool found = false;
    rs_stream_id_t last = {0, 0}, first = {0, 0};
    if (find_group(r, &found, &last) != 0)
        return -1;
    if (!found)
        return 0;
    const char *argv[] = {"XPENDING", r->stream->name, r->cfg->group.name};
    size_t argvlen[] = {8, strlen(r->stream->name), strlen(r->cfg->group.name)};
    redisReply *reply = rs_redis_command_argv(r->redis, 3, argv, argvlen);
    if (reply == NULL)
        return -1;
    /* [count, smallest id, greatest id, [[consumer, count], ...]]; nil ids when empty. */
    bool ok = false, has_pending = false;
    if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 4 &&
        reply->element[0]->type == REDIS_REPLY_INTEGER) {
        const redisReply *smallest = reply->element[1];
        has_pending = reply->element[0]->integer > 0;
        ok = !has_pending || (smallest->type == REDIS_REPLY_STRING &&
                              rs_stream_id_parse(smallest->str, smallest->len, &first) == 0);
    }
    freeReplyObject(reply);
    if (ok) {
        r->restart = rs_stream_id_restart_point(last, has_pending, first);
        r->has_restart = true;
    }
    return 0;
}

static reader_state_t do_connect(rs_reader_t *r)
{
    rs_redis_status_t st = rs_redis_connect_retry(r->redis, reader_wait, r);
    atomic_store(&r->connect_error, (int)st);
    /* On success track_socket() has already published the socket. */
    if (st == RS_REDIS_OK)
        return ST_GROUP;
    if (st != RS_REDIS_ERR_IO) /* authentication or another refusal: keep trying, slowly */
        error_backoff(r, "cannot connect", rs_redis_errstr(r->redis));
    return ST_CONNECT;
}

static bool is_error(const redisReply *reply, const char *prefix)
{
    return reply->type == REDIS_REPLY_ERROR && strncmp(reply->str, prefix, strlen(prefix)) == 0;
}

/* Creates the group (and the stream) unless they exist. The first time at group.start_id;
 * when the group vanished while running (XGROUP DESTROY, the stream deleted, Redis restarted
 * without its data), at the restart point recorded while it existed, so that the entries it
 * had not settled, and those added while it was gone, are all delivered. */
static reader_state_t do_group(rs_reader_t *r)
{
    const rs_config_t *cfg = r->cfg;
    char restart[RS_STREAM_ID_LEN];
    const char *at = cfg->group.start_id;
    if (r->has_restart) {
        rs_stream_id_format(r->restart, restart, sizeof(restart));
        at = restart;
    }
    const char *argv[] = {"XGROUP", "CREATE", r->stream->name, cfg->group.name, at, "MKSTREAM"};
    size_t argvlen[6];
    for (int i = 0; i < 6; i++)
        argvlen[i] = strlen(argv[i]);
    redisReply *reply = rs_redis_command_argv(r->redis, 6, argv, argvlen);
    if (reply == NULL)
        return connection_lost(r);
    bool exists = true;
    if (reply->type == REDIS_REPLY_STATUS) {
        if (r->has_restart)
            rs_log(r->log, RS_LOG_WARN, "reader",
                   "stream=%s created group %s again at %s: every entry after that id is "
                   "delivered, so none it had not settled is skipped (some may be handled "
                   "twice)",
                   r->stream->name, cfg->group.name, at);
        else
            rs_log(r->log, RS_LOG_INFO, "reader", "stream=%s created group %s at %s",
                   r->stream->name, cfg->group.name, at);
    } else if (reply->type == REDIS_REPLY_ERROR &&
               (rs_refusal_of(reply->str, reply->len) == RS_REFUSAL_OOM ||
                rs_refusal_of(reply->str, reply->len) == RS_REFUSAL_NOPERM)) {
        /* Under maxmemory Redis refuses XGROUP CREATE before it looks whether the group
         * exists, but reading and acknowledging are still allowed; an ACL user may lack
         * XGROUP CREATE on purpose, its groups made beforehand. An existing group is all
         * the reader needs. */
        rs_stream_id_t last;
        if (find_group(r, &exists, &last) != 0) {
            freeReplyObject(reply);
            return connection_lost(r);
        }
        if (exists)
            rs_log(r->log, RS_LOG_WARN, "reader",
                   "stream=%s XGROUP CREATE refused (%s) but group %s exists; reading on",
                   r->stream->name, reply->str, cfg->group.name);
    } else if (!is_error(reply, "BUSYGROUP")) {
        exists = false;
    }
    if (!exists) {
        refusal_backoff(r, "XGROUP CREATE", reply);
        freeReplyObject(reply);
        return ST_GROUP;
    }
    freeReplyObject(reply);
    if (refresh_restart_point(r) != 0)
        return connection_lost(r);
    accepted(r);
    rs_backoff_reset(&r->errors);
    atomic_store(&r->ready, true);
    made_progress(r);
    return ST_RECOVER;
}

/* Checks that every element of an entry list has a string id that fits an entry. */
static bool valid_entries(const redisReply *list)
{
    if (list->type != REDIS_REPLY_ARRAY)
        return false;
    for (size_t i = 0; i < list->elements; i++) {
        const redisReply *e = list->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
            e->element[0]->type != REDIS_REPLY_STRING || e->element[0]->len == 0 ||
            e->element[0]->len >= RS_ENTRY_ID_MAX)
            return false;
    }
    return true;
}

/* Finds the entry list in an XREADGROUP reply ([[stream, [[id, fields], ...]]]). Returns NULL
 * for a malformed reply. */
static const redisReply *entry_list(const redisReply *reply)
{
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 1)
        return NULL;
    const redisReply *s = reply->element[0];
    if (s->type != REDIS_REPLY_ARRAY || s->elements != 2 || !valid_entries(s->element[1]))
        return NULL;
    return s->element[1];
}

/* Acknowledges entries found deleted from the stream while pending (nil fields): they can
 * never be handled, so retrying them would loop forever. */
static int ack_deleted(rs_reader_t *r, const char **ids, size_t n)
{
    if (n == 0)
        return 0;
    const char *argv[3 + 64];
    size_t argvlen[3 + 64];
    argv[0] = "XACK", argv[1] = r->stream->name, argv[2] = r->cfg->group.name;
    for (int i = 0; i < 3; i++)
        argvlen[i] = strlen(argv[i]);
    for (size_t i = 0; i < n; i++) {
        argv[3 + i] = ids[i];
        argvlen[3 + i] = strlen(ids[i]);
    }
    redisReply *reply = rs_redis_command_argv(r->redis, (int)(3 + n), argv, argvlen);
    if (reply == NULL)
        return -1;
    freeReplyObject(reply);
    atomic_fetch_add(&r->stream->stats.deleted, n);
    for (size_t i = 0; i < n; i++)
        rs_log(r->log, RS_LOG_WARN, "reader",
               "stream=%s id=%s was deleted from the stream while pending; acknowledged",
               r->stream->name, ids[i]);
    return 0;
}

/* Looks up delivery counts of ids first..last for this consumer. `counts` receives, for each
 * entry of `list` in order, its count (1 when XPENDING does not list it). Returns -1 when the
 * connection was lost. */
static int pending_counts(rs_reader_t *r, const redisReply *list, uint64_t *counts)
{
    for (size_t i = 0; i < list->elements; i++)
        counts[i] = 1;
    const redisReply *first = list->element[0]->element[0];
    const redisReply *last = list->element[list->elements - 1]->element[0];
    char count[24];
    snprintf(count, sizeof(count), "%zu", (size_t)list->elements);
    const char *argv[] = {"XPENDING", r->stream->name, r->cfg->group.name,    first->str,
                          last->str,  count,           r->cfg->group.consumer};
    size_t argvlen[7];
    for (int i = 0; i < 7; i++)
        argvlen[i] = strlen(argv[i]);
    redisReply *reply = rs_redis_command_argv(r->redis, 7, argv, argvlen);
    if (reply == NULL)
        return -1;
    if (reply->type == REDIS_REPLY_ARRAY) {
        /* Both lists are in id order: walk them together. */
        size_t j = 0;
        for (size_t i = 0; i < reply->elements && j < list->elements; i++) {
            const redisReply *p = reply->element[i];
            if (p->type != REDIS_REPLY_ARRAY || p->elements != 4 ||
                p->element[0]->type != REDIS_REPLY_STRING ||
                p->element[3]->type != REDIS_REPLY_INTEGER)
                continue;
            while (j < list->elements &&
                   strcmp(list->element[j]->element[0]->str, p->element[0]->str) != 0)
                j++;
            if (j < list->elements && p->element[3]->integer > 0)
                counts[j++] = (uint64_t)p->element[3]->integer;
        }
    }
    freeReplyObject(reply);
    return 0;
}

/* Turns a reply's entries into queue entries and pushes them into reserved slots, with
 * delivery counts from r->counts (NULL: all 1). Entries found deleted (nil fields) are
 * acknowledged at once. Sets *pushed; returns -1 when the connection was lost. */
static int push_entries(rs_reader_t *r, const redisReply *list, const uint64_t *counts,
                        size_t *pushed)
{
    size_t n = 0, ndeleted = 0;
    rs_entry_block_t *block = rs_entry_block_new(list);
    for (size_t i = 0; i < list->elements; i++) {
        char err[256];
        int deleted;
        rs_entry_t *e = rs_entry_from_reply(list->element[i], block, r->stream, r->stream->name,
                                            counts ? counts[i] : 1, &deleted, err, sizeof(err));
        if (e != NULL) {
            rs_stream_order_entry(r->stream, e);
            r->batch[n++] = e;
        } else if (deleted) {
            r->deleted[ndeleted++] = list->element[i]->element[0]->str;
        } else {
            /* Left pending in Redis; it comes back on the next recovery. */
            rs_log(r->log, RS_LOG_ERROR, "reader", "%s", err);
        }
    }
    rs_entry_block_release(block); /* the entries hold it now */
    if (n > 0) {
        rs_stream_begin(r->stream, (long)n);
        atomic_fetch_add(&r->stream->stats.received, n);
        rs_queue_push_reserved(r->q, r->batch, n);
    }
    *pushed = n;
    for (size_t off = 0; off < ndeleted; off += 64) {
        if (ack_deleted(r, r->deleted + off, ndeleted - off < 64 ? ndeleted - off : 64) != 0)
            return -1;
    }
    return 0;
}

/* The arguments of XREADGROUP for up to `count` entries after `id` (">" for new ones),
 * blocking up to `block_ms` (-1: no BLOCK), in `argv`/`argvlen` (room for 11); `count_s` and
 * `block_s` (24 bytes each) hold the numbers. Returns argc. */
static int xreadgroup_args(const rs_reader_t *r, size_t count, long block_ms, const char *id,
                           char *count_s, char *block_s, const char **argv, size_t *argvlen)
{
    snprintf(count_s, 24, "%zu", count);
    snprintf(block_s, 24, "%ld", block_ms);
    int argc = 0;
    argv[argc++] = "XREADGROUP";
    argv[argc++] = "GROUP";
    argv[argc++] = r->cfg->group.name;
    argv[argc++] = r->cfg->group.consumer;
    argv[argc++] = "COUNT";
    argv[argc++] = count_s;
    if (block_ms >= 0) {
        argv[argc++] = "BLOCK";
        argv[argc++] = block_s;
    }
    argv[argc++] = "STREAMS";
    argv[argc++] = r->stream->name;
    argv[argc++] = id;
    for (int i = 0; i < argc; i++)
        argvlen[i] = strlen(argv[i]);
    return argc;
}

/* Sends XREADGROUP (xreadgroup_args()) and returns its reply, or NULL when the connection
 * was lost. */
static redisReply *xreadgroup(rs_reader_t *r, size_t count, long block_ms, const char *id)
{
    char count_s[24], block_s[24];
    const char *argv[11];
    size_t argvlen[11];
    int argc = xreadgroup_args(r, count, block_ms, id, count_s, block_s, argv, argvlen);
    return rs_redis_command_argv(r->redis, argc, argv, argvlen);
}

/* Handles an error reply (or a malformed one) to `what` (XREADGROUP, XAUTOCLAIM): when the
 * group or the whole stream vanished, creates them again (do_group()); any other refusal is
 * waited out with backoff. After one the server leaves by itself (READONLY during a failover,
 * LOADING, a change of role) the data may not be what it was: a failover loses the last
 * writes to the old master, acks included. So the reader goes on with a recovery pass, as
 * after a reconnection: once Redis accepts its commands again, its pending entries are read
 * again. Other refusals are retried in the same state. */
static reader_state_t read_error(rs_reader_t *r, const char *what, const redisReply *reply,
                                 reader_state_t same)
{
    rs_refusal_t kind =
        reply->type == REDIS_REPLY_ERROR ? rs_refusal_of(reply->str, reply->len) : RS_REFUSAL_OTHER;
    /* Cluster mode: the slot moved (the read sent ahead saw -MOVED or -ASK, which
     * rs_redis_read_reply() noted by marking the connection to be dropped), or the key left
     * this node, which is what a migration does to it (MIGRATE deletes it here once it is on
     * the target). Either way the reader reconnects to the master serving the slot now and
     * goes on from the group, as after any reconnection; a stream that was really deleted is
     * created again there. */
    if (r->cluster != NULL && (!rs_redis_connected(r->redis) || kind == RS_REFUSAL_DELETED)) {
        if (rs_redis_connected(r->redis)) {
            char err[256];
            (void)rs_cluster_refresh(r->cluster, err, sizeof(err)); /* failures logged there */
            rs_redis_mark_broken(r->redis);
        }
        rs_log(r->log, RS_LOG_INFO, "reader",
               "stream=%s %s: %s; following the stream to the master serving its slot",
               r->stream->name, what, reply->str);
        drop_ahead(r);
        atomic_store(&r->ready, false);
        forget_socket(r);
        return ST_CONNECT;
    }
    if (rs_refusal_group_gone(kind)) {
        rs_log(r->log, RS_LOG_WARN, "reader", "stream=%s %s: %s (%s); creating group %s again",
               r->stream->name, what, reply->str, rs_refusal_hint(kind), r->cfg->group.name);
        atomic_store(&r->ready, false);
        return ST_GROUP;
    }
    refusal_backoff(r, what, reply);
    return rs_refusal_transient(kind) ? ST_RECOVER : same;
}

static reader_state_t do_recover(rs_reader_t *r)
{
    rs_reader_activity_t was = begin_worker_wait(r, RS_READER_WAITING_FOR_SETTLE);
    bool settled = rs_stream_wait_settled(r->stream, &r->stop);
    end_worker_wait(r, was);
    if (!settled)
        return ST_RECOVER; /* stopping */
    char last[RS_ENTRY_ID_MAX] = "0";
    size_t total = 0, cap = r->batch_max;
    reader_state_t next = ST_READ;
    for (;;) {
        size_t k = reserve_slots(r, cap);
        if (k == 0) {
            next = ST_RECOVER;
            break;
        }
        redisReply *reply = xreadgroup(r, k, -1, last);
        if (reply == NULL) {
            rs_queue_unreserve(r->q, k);
            next = connection_lost(r);
            break;
        }
        if (reply->type != REDIS_REPLY_ERROR) {
            made_progress(r);
            accepted(r);
        }
        const redisReply *list = reply->type == REDIS_REPLY_NIL ? NULL : entry_list(reply);
        if (list == NULL || list->elements == 0) {
            rs_queue_unreserve(r->q, k);
            if (reply->type != REDIS_REPLY_NIL && list == NULL)
                next = read_error(r, "XREADGROUP", reply, ST_RECOVER);
            freeReplyObject(reply);
            break;
        }
        if (pending_counts(r, list, r->counts) != 0) {
            rs_queue_unreserve(r->q, k);
            freeReplyObject(reply);
            next = connection_lost(r);
            break;
        }
        const redisReply *tail = list->element[list->elements - 1]->element[0];
        memcpy(last, tail->str, (size_t)tail->len);
        last[tail->len] = '\0';

        size_t pushed;
        int rc = push_entries(r, list, r->counts, &pushed);
        rs_queue_unreserve(r->q, k - pushed);
        total += pushed;
        freeReplyObject(reply);
        if (rc != 0) {
            next = connection_lost(r);
            break;
        }
    }
    if (next == ST_READ && total > 0)
        rs_log(r->log, RS_LOG_INFO, "reader",
               "stream=%s re-read %zu pending entries of consumer %s", r->stream->name, total,
               r->cfg->group.consumer);
    return next;
}

/* The BLOCK of a read: group.block_ms, or less so as to wake up for the next claim pass. */
static long read_block_ms(const rs_reader_t *r)
{
    int64_t until_claim = (r->next_claim_ns - rs_clock_monotonic_ns()) / 1000000;
    long block = r->cfg->group.block_ms;
    if (until_claim < block)
        block = until_claim > 1 ? (long)until_claim : 1;
    return block;
}

/* Sends the next XREADGROUP ... > before the entries of the current reply are built and
 * queued, so Redis prepares the next batch meanwhile instead of waiting for us: worth it only
 * when the current reply was a full batch (more is waiting), when room for another batch is
 * free right now, and when no claim pass is due (its XAUTOCLAIM must not interleave with an
 * outstanding reply). */
static void read_ahead(rs_reader_t *r, size_t got, size_t asked)
{
    if (got < asked || atomic_load(&r->stop) || rs_clock_monotonic_ns() >= r->next_claim_ns)
        return;
    size_t limit = atomic_load_explicit(&r->batch_limit, memory_order_relaxed);
    size_t k = rs_queue_try_reserve(r->q, limit < r->batch_max ? limit : r->batch_max);
    if (k == 0)
        return;
    char count_s[24], block_s[24];
    const char *argv[11];
    size_t argvlen[11];
    int argc = xreadgroup_args(r, k, read_block_ms(r), ">", count_s, block_s, argv, argvlen);
    redisContext *c = rs_redis_context(r->redis);
    int done = 0;
    if (redisAppendCommandArgv(c, argc, argv, argvlen) != REDIS_OK) {
        rs_queue_unreserve(r->q, k);
        rs_redis_mark_broken(r->redis); /* the next read reports it */
        return;
    }
    r->ahead = k;
    while (!done) {
        if (redisBufferWrite(c, &done) != REDIS_OK) {
            rs_redis_mark_broken(r->redis);
            return; /* the next read fails and drops the reservation */
        }
    }
}

static reader_state_t do_read(rs_reader_t *r)
{
    size_t k = r->ahead;
    redisReply *reply;
    if (k > 0) {
        reply = rs_redis_read_reply(r->redis); /* the XREADGROUP sent ahead */
    } else {
        k = reserve_slots(r, r->batch_max);
        if (k == 0)
            return ST_READ; /* stopping */
        r->ahead = k;       /* so that connection_lost() gives the slots back */
        reply = xreadgroup(r, k, read_block_ms(r), ">");
    }
    if (reply == NULL)
        return connection_lost(r);
    r->ahead = 0; /* the slots of this reply are ours to fill now */
    reader_state_t next = ST_READ;
    size_t pushed = 0;
    if (reply->type != REDIS_REPLY_ERROR) {
        made_progress(r); /* entries, or nil after a BLOCK timeout */
        accepted(r);
    }
    if (reply->type != REDIS_REPLY_NIL) {
        const redisReply *list = entry_list(reply);
        if (list == NULL) {
            next = read_error(r, "XREADGROUP", reply, ST_READ);
        } else {
            read_ahead(r, list->elements, k);
            if (push_entries(r, list, NULL, &pushed) != 0)
                next = connection_lost(r);
        }
    }
    rs_queue_unreserve(r->q, k - pushed);
    freeReplyObject(reply);
    /* A claim pass waits until no reply is outstanding. */
    if (next == ST_READ && r->ahead == 0 && rs_clock_monotonic_ns() >= r->next_claim_ns)
        next = ST_CLAIM;
    return next;
}

/* Reads a field of an XINFO CONSUMERS entry (a flat name/value array). */
static const redisReply *info_field(const redisReply *info, const char *name)
{
    for (size_t i = 0; i + 1 < info->elements; i += 2) {
        const redisReply *k = info->element[i];
        if (k->type == REDIS_REPLY_STRING && strcmp(k->str, name) == 0)
            return info->element[i + 1];
    }
    return NULL;
}

/* Deletes the group's consumers that have been idle longer than idle_consumer_timeout_ms
 * with nothing pending (never this one). Returns -1 when the connection was lost. */
static int delete_idle_consumers(rs_reader_t *r)
{
    const rs_config_t *cfg = r->cfg;
    const char *argv[] = {"XINFO", "CONSUMERS", r->stream->name, cfg->group.name};
    size_t argvlen[4];
    for (int i = 0; i < 4; i++)
        argvlen[i] = strlen(argv[i]);
    redisReply *reply = rs_redis_command_argv(r->redis, 4, argv, argvlen);
    if (reply == NULL)
        return -1;
    int rc = 0;
    for (size_t i = 0; reply->type == REDIS_REPLY_ARRAY && i < reply->elements && rc == 0; i++) {
        const redisReply *info = reply->element[i];
        if (info->type != REDIS_REPLY_ARRAY)
            continue;
        const redisReply *name = info_field(info, "name");
        const redisReply *pending = info_field(info, "pending");
        const redisReply *idle = info_field(info, "idle");
        if (name == NULL || name->type != REDIS_REPLY_STRING || pending == NULL ||
            pending->type != REDIS_REPLY_INTEGER || idle == NULL ||
            idle->type != REDIS_REPLY_INTEGER || pending->integer != 0 ||
            idle->integer <= cfg->group.idle_consumer_timeout_ms ||
            strcmp(name->str, cfg->group.consumer) == 0)
            continue;
        const char *eval[] = {"EVAL",          delete_idle_consumer_lua, "1",
                              r->stream->name, cfg->group.name,          name->str};
        size_t evallen[6];
        for (int j = 0; j < 6; j++)
            evallen[j] = strlen(eval[j]);
        evallen[5] = (size_t)name->len; /* consumer names are binary-safe */
        redisReply *del = rs_redis_command_argv(r->redis, 6, eval, evallen);
        if (del == NULL) {
            rc = -1;
        } else if (del->type == REDIS_REPLY_INTEGER && del->integer >= 0) {
            rs_log(r->log, RS_LOG_INFO, "reader",
                   "stream=%s removed consumer %s from group %s: idle %lld ms, nothing pending",
                   r->stream->name, name->str, cfg->group.name, idle->integer);
        } else if (del->type == REDIS_REPLY_ERROR) {
            rs_log(r->log, RS_LOG_WARN, "reader", "stream=%s cannot remove consumer %s: %s",
                   r->stream->name, name->str, del->str);
        }
        freeReplyObject(del);
    }
    freeReplyObject(reply);
    return rc;
}

/* One claim pass: XAUTOCLAIM entries pending longer than claim_idle_ms on any consumer of
 * the group (a crashed instance, or a reply of ours that was lost), carrying the cursor until
 * the pending list has been walked, and queue them like new entries with their delivery
 * counts. Then remove consumers that went away for good. */
static reader_state_t do_claim(rs_reader_t *r)
{
    const rs_config_t *cfg = r->cfg;
    char cursor[RS_ENTRY_ID_MAX] = "0-0";
    char idle[24];
    snprintf(idle, sizeof(idle), "%d", cfg->group.claim_idle_ms);
    size_t claimed = 0;
    reader_state_t next = ST_READ;

    for (int call = 0; call < CLAIM_MAX_CALLS; call++) {
        size_t k = reserve_slots(r, r->batch_max);
        if (k == 0)
            return ST_CLAIM; /* stopping */
        char count[24];
        snprintf(count, sizeof(count), "%zu", k);
        const char *argv[] = {"XAUTOCLAIM", r->stream->name, cfg->group.name, cfg->group.consumer,
                              idle,         cursor,          "COUNT",         count};
        size_t argvlen[8];
        for (int i = 0; i < 8; i++)
            argvlen[i] = strlen(argv[i]);
        redisReply *reply = rs_redis_command_argv(r->redis, 8, argv, argvlen);
        if (reply == NULL) {
            rs_queue_unreserve(r->q, k);
            return connection_lost(r);
        }
        /* Redis 7: [next cursor, [entries], [deleted ids]]; 6.2 has no third element. */
        if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 2 ||
            reply->element[0]->type != REDIS_REPLY_STRING ||
            reply->element[0]->len >= RS_ENTRY_ID_MAX || !valid_entries(reply->element[1])) {
            rs_queue_unreserve(r->q, k);
            next = read_error(r, "XAUTOCLAIM", reply, ST_READ);
            freeReplyObject(reply);
            break;
        }
        made_progress(r);
        accepted(r);
        const redisReply *list = reply->element[1];
        size_t pushed = 0;
        int rc = 0;
        if (list->elements > 0) {
            rc = pending_counts(r, list, r->counts);
            if (rc == 0)
                rc = push_entries(r, list, r->counts, &pushed);
        }
        rs_queue_unreserve(r->q, k - pushed);
        claimed += pushed;
        if (rc == 0 && reply->elements >= 3 && reply->element[2]->type == REDIS_REPLY_ARRAY) {
            /* Trimmed from the stream while pending: Redis has already dropped them from
             * the pending list; acknowledging them again is harmless and keeps the count. */
            const redisReply *gone = reply->element[2];
            for (size_t off = 0; off < gone->elements && rc == 0; off += 64) {
                const char *ids[64];
                size_t n = 0;
                for (size_t i = off; i < gone->elements && n < 64; i++)
                    if (gone->element[i]->type == REDIS_REPLY_STRING)
                        ids[n++] = gone->element[i]->str;
                rc = ack_deleted(r, ids, n);
            }
        }
        memcpy(cursor, reply->element[0]->str, (size_t)reply->element[0]->len);
        cursor[reply->element[0]->len] = '\0';
        freeReplyObject(reply);
        if (rc != 0)
            return connection_lost(r);
        if (strcmp(cursor, "0-0") == 0)
            break;
    }
    if (claimed > 0) {
        atomic_fetch_add(&r->stream->stats.claimed, claimed);
        rs_log(r->log, RS_LOG_INFO, "reader",
               "stream=%s claimed %zu entries pending longer than %d ms", r->stream->name, claimed,
               cfg->group.claim_idle_ms);
    }
    if (next == ST_READ && cfg->group.idle_consumer_timeout_ms > 0 && delete_idle_consumers(r) != 0)
        return connection_lost(r);
    if (next == ST_READ && refresh_restart_point(r) != 0)
        return connection_lost(r);
    r->next_claim_ns = rs_clock_monotonic_ns() + r->claim_interval_ms * 1000000;
    return next;
}

static void *reader_main(void *arg)
{
    rs_reader_t *r = arg;
    reader_state_t st = ST_CONNECT;
    rs_redis_on_socket(r->redis, track_socket, r);
    static const rs_reader_activity_t activity_of[] = {
        [ST_CONNECT] = RS_READER_CONNECTING, [ST_GROUP] = RS_READER_CREATING_GROUP,
        [ST_RECOVER] = RS_READER_RECOVERING, [ST_READ] = RS_READER_READING,
        [ST_CLAIM] = RS_READER_CLAIMING,
    };
    while (!atomic_load(&r->stop)) {
        atomic_store(&r->activity, (int)activity_of[st]);
        switch (st) {
        case ST_CONNECT:
            st = do_connect(r);
            break;
        case ST_GROUP:
            st = do_group(r);
            break;
        case ST_RECOVER:
            st = do_recover(r);
            break;
        case ST_READ:
            st = do_read(r);
            break;
        case ST_CLAIM:
            st = do_claim(r);
            break;
        }
    }
    drop_ahead(r);
    atomic_store(&r->ready, false);
    forget_socket(r);
    atomic_store(&r->activity, (int)RS_READER_STOPPED);
    atomic_store(&r->alive, false);
    return NULL;
}

int rs_reader_start(rs_reader_t *r, char *err, size_t errlen)
{
    /* Published before the thread exists, so a health check never sees a started service
     * with a reader that is not alive yet. */
    atomic_store(&r->progress_ns, rs_clock_monotonic_ns());
    atomic_store(&r->activity, (int)RS_READER_STARTING);
    atomic_store(&r->alive, true);
    int rc = pthread_create(&r->thread, NULL, reader_main, r);
    if (rc != 0) {
        atomic_store(&r->alive, false);
        snprintf(err, errlen, "stream %s: cannot start reader thread: %s", r->stream->name,
                 strerror(rc));
        return -1;
    }
    r->started = true;
    char name[16]; /* thread names are cut to 15 bytes */
    snprintf(name, sizeof(name), "rs-rd-%.9s", r->stream->name);
    pthread_setname_np(r->thread, name);
    return 0;
}

void rs_reader_stop(rs_reader_t *r)
{
    pthread_mutex_lock(&r->lock);
    atomic_store(&r->stop, true);
    if (r->wake_fd >= 0)
        shutdown(r->wake_fd, SHUT_RDWR);
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->lock);
    rs_queue_wake(r->q);
    rs_stream_wake(r->stream);
}

void rs_reader_set_batch_limit(rs_reader_t *r, size_t n)
{
    if (n > r->batch_max)
        n = r->batch_max;
    atomic_store_explicit(&r->batch_limit, n > 0 ? n : 1, memory_order_relaxed);
}

void rs_reader_join(rs_reader_t *r)
{
    if (r->started) {
        pthread_join(r->thread, NULL);
        r->started = false;
    }
}

bool rs_reader_ready(const rs_reader_t *r)
{
    return atomic_load(&r->ready);
}

void rs_reader_health(const rs_reader_t *r, int64_t now_ns, rs_reader_health_t *out)
{
    out->alive = atomic_load(&r->alive);
    out->ready = atomic_load(&r->ready);
    out->activity = (rs_reader_activity_t)atomic_load(&r->activity);
    /* The flag before the time: see end_worker_wait(). */
    int64_t waiting_since = atomic_load(&r->waiting_since_ns);
    int64_t progress = atomic_load(&r->progress_ns);
    out->stalled_ns = waiting_since != 0 || now_ns < progress ? 0 : now_ns - progress;
    out->last_connect_error = atomic_load(&r->connect_error);
    out->refused = (rs_refusal_t)atomic_load(&r->refused);
}

const char *rs_reader_activity_name(rs_reader_activity_t activity)
{
    switch (activity) {
    case RS_READER_STARTING:
        return "starting";
    case RS_READER_CONNECTING:
        return "connecting to Redis";
    case RS_READER_CREATING_GROUP:
        return "creating the consumer group";
    case RS_READER_RECOVERING:
        return "re-reading its pending entries";
    case RS_READER_READING:
        return "reading";
    case RS_READER_CLAIMING:
        return "claiming idle entries";
    case RS_READER_WAITING_FOR_ROOM:
        return "waiting for room in the work queue";
    case RS_READER_WAITING_FOR_SETTLE:
        return "waiting for its in-flight entries to settle";
    case RS_READER_REFUSED:
        return "waiting after Redis refused its command";
    case RS_READER_STOPPED:
        return "stopped";
    }
    return "?";
}

void rs_reader_route(rs_reader_t *r, rs_cluster_t *cluster)
{
    r->cluster = cluster;
    rs_redis_route(r->redis, cluster, r->stream->name, strlen(r->stream->name));
}

unsigned long rs_reader_reconnects(const rs_reader_t *r)
{
    return rs_redis_reconnects(r->redis);
}

void rs_reader_free(rs_reader_t *r)
{
    if (r == NULL)
        return;
    rs_redis_free(r->redis);
    pthread_cond_destroy(&r->cond);
    pthread_mutex_destroy(&r->lock);
    free(r->deleted);
    free(r->counts);
    free(r->batch);
    free(r);
}
