/*
 * redstream-bench-limit: the baselines the benchmark (bench/run.sh) compares redstream with.
 * Each subcommand is the least a program can do with plain hiredis to get a job done, so the
 * difference to redstream is what redstream's own machinery costs:
 *
 *   drain  creates a consumer group at 0 on one stream and consumes it to the end with
 *          XREADGROUP COUNT 1000 plus one XACK carrying every id of the batch, the XACK
 *          pipelined with the next read (one round trip per batch). The practical ceiling:
 *          at this rate redis-server itself is the bottleneck.
 *   e2e    the bare XADD -> XREADGROUP BLOCK pair: one thread XADDs entries carrying their
 *          send time (field redstream.sent_ns, CLOCK_REALTIME ns) at a fixed rate, another
 *          thread, on its own connection, reads them with XREADGROUP COUNT 100 BLOCK 1000 and
 *          records now - sent_ns per entry; acks are pipelined as in drain. The floor for
 *          end-to-end latency.
 *   watch  polls XINFO GROUPS on one connection every --interval-ms until every stream's group
 *          has nothing pending and no lag, and prints when the first entry was acknowledged
 *          and when all were. The benchmark uses it to time the consumer from outside without
 *          starting a redis-cli process per poll (which would steal CPU from what it measures).
 *
 * Each subcommand prints one line "result: key=value ..." on stdout; progress and errors go to
 * stderr. Exit status 0, 1 on a failure (Redis unreachable, an error or malformed reply, the
 * time limit reached), 64 on bad usage.
 *
 * DESIGN: deliberately minimal and single-purpose. drain and watch run on the main thread with
 * one hiredis context. e2e has two threads, each with its own context (hiredis contexts are
 * not thread-safe): "bench-send" paces XADDs on absolute CLOCK_MONOTONIC deadlines (deadline k
 * = start + k / rate, so time spent in XADD does not accumulate into drift; a late XADD is
 * followed at once by the next, never skipped), "bench-recv" reads; they share only two
 * atomics (entries sent, sender finished). Every loop is bounded by --timeout-ms, and every
 * reply's type is checked before use. No signal handling: the bounds end every run.
 */

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <hiredis/hiredis.h>

#include "latency.h"

#define PROG "redstream-bench-limit"

#define EXIT_USAGE 64

#define DRAIN_COUNT  1000 /* XREADGROUP COUNT in drain */
#define E2E_COUNT    100  /* XREADGROUP COUNT in e2e */
#define E2E_BLOCK_MS 1000 /* XREADGROUP BLOCK in e2e */
#define MAX_STREAMS  256  /* --stream may be repeated (watch only) */

#define NS_PER_MS INT64_C(1000000)
#define NS_PER_S  INT64_C(1000000000)

/* The field the e2e sender writes and the consumer's --e2e support reads. */
#define SENT_FIELD "redstream.sent_ns"

typedef struct {
    const char *host;
    int port;
    const char *password; /* NULL or "": no AUTH */
    const char *streams[MAX_STREAMS];
    size_t nstreams;
    const char *group;
    const char *consumer;
    long long rate;        /* e2e: entries per second */
    long long duration_ms; /* e2e: how long to send, unless --count */
    long long count;       /* e2e: entries to send; drain: stop after; watch: expected total */
    long long timeout_ms;  /* bound on the whole run */
    long long interval_ms; /* watch: poll interval */
} options_t;

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * NS_PER_S + ts.tv_nsec;
}

static int64_t real_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * NS_PER_S + ts.tv_nsec;
}

static void sleep_until_mono(int64_t deadline_ns)
{
    struct timespec ts = {.tv_sec = (time_t)(deadline_ns / NS_PER_S),
                          .tv_nsec = (long)(deadline_ns % NS_PER_S)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
    }
}

/* --- connection and replies ------------------------------------------------------------- */

/* Describes a reply that is not what `what` expected (an error reply's text included). */
static void bad_reply(const redisReply *r, const char *what, char *err, size_t errlen)
{
    if (r == NULL)
        snprintf(err, errlen, "%s: no reply", what);
    else if (r->type == REDIS_REPLY_ERROR)
        snprintf(err, errlen, "%s: Redis answered: %.*s", what, (int)(r->len > 200 ? 200 : r->len),
                 r->str);
    else
        snprintf(err, errlen, "%s: unexpected reply type %d", what, r->type);
}

/* Describes a failed hiredis call on `c` (connection lost, timeout, protocol error). */
static void conn_error(const redisContext *c, const char *what, char *err, size_t errlen)
{
    snprintf(err, errlen, "%s: %s", what, c->errstr[0] ? c->errstr : "connection error");
}

/* Connects and authenticates. Returns the context (caller frees with redisFree()) or NULL
 * with `err` set. Commands time out after `command_timeout_ms`. */
static redisContext *connect_redis(const options_t *o, long long command_timeout_ms, char *err,
                                   size_t errlen)
{
    struct timeval connect_tv = {.tv_sec = 2, .tv_usec = 0};
    redisContext *c = redisConnectWithTimeout(o->host, o->port, connect_tv);
    if (c == NULL) {
        snprintf(err, errlen, "connect to %s:%d: out of memory", o->host, o->port);
        return NULL;
    }
    if (c->err) {
        snprintf(err, errlen, "connect to %s:%d: %s", o->host, o->port, c->errstr);
        redisFree(c);
        return NULL;
    }
    struct timeval cmd_tv = {.tv_sec = (time_t)(command_timeout_ms / 1000),
                             .tv_usec = (suseconds_t)((command_timeout_ms % 1000) * 1000)};
    if (redisSetTimeout(c, cmd_tv) != REDIS_OK) {
        conn_error(c, "set timeout", err, errlen);
        redisFree(c);
        return NULL;
    }
    if (o->password != NULL && o->password[0] != '\0') {
        const char *argv[] = {"AUTH", o->password};
        redisReply *r = redisCommandArgv(c, 2, argv, NULL);
        if (r == NULL) {
            conn_error(c, "AUTH", err, errlen);
            redisFree(c);
            return NULL;
        }
        bool ok = r->type == REDIS_REPLY_STATUS && strcmp(r->str, "OK") == 0;
        if (!ok)
            bad_reply(r, "AUTH", err, errlen); /* the password is never part of the message */
        freeReplyObject(r);
        if (!ok) {
            redisFree(c);
            return NULL;
        }
    }
    return c;
}

/* XGROUP CREATE stream group 0 MKSTREAM; an existing group is fine (it is then used from where
 * it stands). Returns 0 or -1 with `err` set. */
static int create_group(redisContext *c, const char *stream, const char *group, char *err,
                        size_t errlen)
{
    const char *argv[] = {"XGROUP", "CREATE", stream, group, "0", "MKSTREAM"};
    redisReply *r = redisCommandArgv(c, 6, argv, NULL);
    if (r == NULL) {
        conn_error(c, "XGROUP CREATE", err, errlen);
        return -1;
    }
    int rc = 0;
    if (r->type == REDIS_REPLY_STATUS && strcmp(r->str, "OK") == 0) {
        rc = 0;
    } else if (r->type == REDIS_REPLY_ERROR && strncmp(r->str, "BUSYGROUP", 9) == 0) {
        fprintf(stderr, "%s: group %s already exists on %s; using it as it stands\n", PROG, group,
                stream);
    } else {
        bad_reply(r, "XGROUP CREATE", err, errlen);
        rc = -1;
    }
    freeReplyObject(r);
    return rc;
}

/* Checks an XREADGROUP reply for one stream and finds its entries. Returns the number of
 * entries (0 for a nil reply: nothing new) with *entries pointing at the reply's entry array,
 * or -1 with `err` set when the reply is malformed. Each entry is [id, fields] with a string id
 * and an array of fields (nil fields, a deleted entry, only occur when reading history). */
static long batch_entries(const redisReply *r, const redisReply **entries, char *err, size_t errlen)
{
    *entries = NULL;
    if (r->type == REDIS_REPLY_NIL)
        return 0;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 1 ||
        r->element[0]->type != REDIS_REPLY_ARRAY || r->element[0]->elements != 2 ||
        r->element[0]->element[0]->type != REDIS_REPLY_STRING ||
        r->element[0]->element[1]->type != REDIS_REPLY_ARRAY) {
        bad_reply(r, "XREADGROUP", err, errlen);
        if (r->type != REDIS_REPLY_ERROR)
            snprintf(err, errlen, "XREADGROUP: malformed reply (expected [[stream, entries]])");
        return -1;
    }
    const redisReply *list = r->element[0]->element[1];
    for (size_t i = 0; i < list->elements; i++) {
        const redisReply *e = list->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
            e->element[0]->type != REDIS_REPLY_STRING ||
            (e->element[1]->type != REDIS_REPLY_ARRAY && e->element[1]->type != REDIS_REPLY_NIL)) {
            snprintf(err, errlen, "XREADGROUP: malformed entry %zu (expected [id, fields])", i);
            return -1;
        }
    }
    *entries = list;
    return (long)list->elements;
}

/* --- the read/ack exchange (drain and e2e) ---------------------------------------------- */

/* A consumer's commands, formatted once: XREADGROUP's argv, and room for an XACK carrying a
 * whole batch. */
typedef struct {
    const char *read_argv[11];
    int read_argc;
    const char **ack_argv; /* "XACK" stream group id... */
    size_t *ack_lens;
} exchange_t;

static int exchange_init(exchange_t *x, const options_t *o, const char *count, const char *block_ms,
                         size_t max_batch)
{
    int n = 0;
    x->read_argv[n++] = "XREADGROUP";
    x->read_argv[n++] = "GROUP";
    x->read_argv[n++] = o->group;
    x->read_argv[n++] = o->consumer;
    x->read_argv[n++] = "COUNT";
    x->read_argv[n++] = count;
    if (block_ms != NULL) {
        x->read_argv[n++] = "BLOCK";
        x->read_argv[n++] = block_ms;
    }
    x->read_argv[n++] = "STREAMS";
    x->read_argv[n++] = o->streams[0];
    x->read_argv[n++] = ">";
    x->read_argc = n;
    x->ack_argv = calloc(max_batch + 3, sizeof(*x->ack_argv));
    x->ack_lens = calloc(max_batch + 3, sizeof(*x->ack_lens));
    if (x->ack_argv == NULL || x->ack_lens == NULL)
        return -1;
    x->ack_argv[0] = "XACK";
    x->ack_argv[1] = o->streams[0];
    x->ack_argv[2] = o->group;
    for (size_t i = 0; i < 3; i++)
        x->ack_lens[i] = strlen(x->ack_argv[i]);
    return 0;
}

static void exchange_free(exchange_t *x)
{
    free(x->ack_argv);
    free(x->ack_lens);
}

/* Appends (does not send) an XACK for every id in `entries`. Returns the number of ids, 0 when
 * there are none (nothing appended), or -1 with `err` set. */
static long append_ack(redisContext *c, exchange_t *x, const redisReply *entries, char *err,
                       size_t errlen)
{
    size_t n = entries != NULL ? entries->elements : 0;
    if (n == 0)
        return 0;
    for (size_t i = 0; i < n; i++) {
        const redisReply *id = entries->element[i]->element[0];
        x->ack_argv[3 + i] = id->str;
        x->ack_lens[3 + i] = id->len;
    }
    if (redisAppendCommandArgv(c, (int)(n + 3), x->ack_argv, x->ack_lens) != REDIS_OK) {
        conn_error(c, "XACK", err, errlen);
        return -1;
    }
    return (long)n;
}

/* Reads the reply of an XACK of `n` ids (sending what was appended first) and checks that it
 * acknowledged all of them. Returns 0 or -1 with `err` set. */
static int check_ack(redisContext *c, long n, char *err, size_t errlen)
{
    void *v = NULL;
    if (redisGetReply(c, &v) != REDIS_OK) {
        conn_error(c, "XACK", err, errlen);
        return -1;
    }
    redisReply *r = v;
    bool ok = r->type == REDIS_REPLY_INTEGER && r->integer == n;
    if (!ok) {
        bad_reply(r, "XACK", err, errlen);
        if (r->type == REDIS_REPLY_INTEGER)
            snprintf(err, errlen, "XACK: acknowledged %lld of %ld ids", r->integer, n);
    }
    freeReplyObject(r);
    return ok ? 0 : -1;
}

/* Acknowledges every id in `entries` on its own (the last batch). Returns 0 or -1. */
static int ack_only(redisContext *c, exchange_t *x, const redisReply *entries, char *err,
                    size_t errlen)
{
    long n = append_ack(c, x, entries, err, errlen);
    if (n <= 0)
        return (int)n;
    return check_ack(c, n, err, errlen);
}

/* Sends XACK for every id in `entries` (when there are any) and the next XREADGROUP in one
 * write, checks the XACK's reply, and returns the XREADGROUP's reply in *out (caller frees
 * with freeReplyObject()). Returns 0 or -1 with `err` set. Blocks for up to one read (BLOCK)
 * plus the command timeout. */
static int ack_and_read(redisContext *c, exchange_t *x, const redisReply *entries, redisReply **out,
                        char *err, size_t errlen)
{
    *out = NULL;
    long n = append_ack(c, x, entries, err, errlen);
    if (n < 0)
        return -1;
    if (redisAppendCommandArgv(c, x->read_argc, x->read_argv, NULL) != REDIS_OK) {
        conn_error(c, "XREADGROUP", err, errlen);
        return -1;
    }
    if (n > 0 && check_ack(c, n, err, errlen) != 0)
        return -1;
    void *v = NULL;
    if (redisGetReply(c, &v) != REDIS_OK) {
        conn_error(c, "XREADGROUP", err, errlen);
        return -1;
    }
    *out = v;
    return 0;
}

/* --- drain ------------------------------------------------------------------------------ */

static int cmd_drain(const options_t *o)
{
    char err[512] = "";
    redisContext *c = connect_redis(o, 30000, err, sizeof(err));
    if (c == NULL) {
        fprintf(stderr, "%s: %s\n", PROG, err);
        return 1;
    }
    exchange_t x;
    char count[16];
    snprintf(count, sizeof(count), "%d", DRAIN_COUNT);
    if (exchange_init(&x, o, count, NULL, DRAIN_COUNT) != 0) {
        fprintf(stderr, "%s: out of memory\n", PROG);
        exchange_free(&x);
        redisFree(c);
        return 1;
    }
    int rc = 1;
    long long total = 0;
    if (create_group(c, o->streams[0], o->group, err, sizeof(err)) != 0)
        goto out;

    int64_t start = mono_ns();
    int64_t deadline = start + o->timeout_ms * NS_PER_MS;
    redisReply *prev = NULL;
    const redisReply *prev_entries = NULL;
    for (;;) {
        redisReply *r = NULL;
        int step = ack_and_read(c, &x, prev_entries, &r, err, sizeof(err));
        freeReplyObject(prev); /* the ids were copied into the output buffer */
        prev = NULL;
        if (step != 0)
            goto out;
        const redisReply *entries = NULL;
        long n = batch_entries(r, &entries, err, sizeof(err));
        if (n < 0) {
            freeReplyObject(r);
            goto out;
        }
        if (n == 0) {
            freeReplyObject(r);
            break;
        }
        total += n;
        prev = r;
        prev_entries = entries;
        if (mono_ns() > deadline) {
            freeReplyObject(prev);
            snprintf(err, sizeof(err), "time limit of %lld ms reached after %lld entries",
                     o->timeout_ms, total);
            goto out;
        }
        if (o->count > 0 && total >= o->count) {
            step = ack_only(c, &x, prev_entries, err, sizeof(err));
            freeReplyObject(prev);
            if (step != 0)
                goto out;
            break;
        }
    }
    double seconds = (double)(mono_ns() - start) / 1e9;
    printf("result: entries=%lld seconds=%.3f rate=%.0f\n", total, seconds,
           seconds > 0 ? (double)total / seconds : 0.0);
    rc = 0;
out:
    if (rc != 0)
        fprintf(stderr, "%s: drain: %s\n", PROG, err);
    exchange_free(&x);
    redisFree(c);
    return rc;
}

/* --- e2e -------------------------------------------------------------------------------- */

typedef struct {
    const options_t *o;
    long long total;   /* entries to send */
    atomic_llong sent; /* written by the sender */
    atomic_bool send_done;
    int send_rc; /* the sender's result, read after joining it */
    char send_err[512];
    int recv_rc;
    char recv_err[512];
    long long received;
    rs_latency_t *hist; /* owned by the receiver thread while it runs */
} e2e_t;

static void *e2e_send(void *arg)
{
    e2e_t *e = arg;
    const options_t *o = e->o;
    pthread_setname_np(pthread_self(), "bench-send");
    e->send_rc = 1;
    redisContext *c = connect_redis(o, 10000, e->send_err, sizeof(e->send_err));
    if (c == NULL)
        goto out;
    int64_t start = mono_ns();
    int64_t stop = start + o->timeout_ms * NS_PER_MS;
    for (long long k = 0; k < e->total; k++) {
        int64_t due = start + (int64_t)(k * NS_PER_S / o->rate);
        if (due > stop) {
            snprintf(e->send_err, sizeof(e->send_err), "time limit reached after %lld entries", k);
            goto out;
        }
        sleep_until_mono(due);
        char message[32], sent[32];
        snprintf(message, sizeof(message), "Message #%lld", k + 1);
        snprintf(sent, sizeof(sent), "%" PRId64, real_ns());
        /* The demo's fields (timestamp fixed: it only has to be the same size), then the
         * send time, as redstream-producer --e2e writes them. */
        const char *argv[] = {
            "XADD",      o->streams[0],          "*",        "message", message, "type", "test",
            "timestamp", "2026-11-27T14:04:30Z", SENT_FIELD, sent};
        redisReply *r = redisCommandArgv(c, 11, argv, NULL);
        if (r == NULL) {
            conn_error(c, "XADD", e->send_err, sizeof(e->send_err));
            goto out;
        }
        bool ok = r->type == REDIS_REPLY_STRING;
        if (!ok)
            bad_reply(r, "XADD", e->send_err, sizeof(e->send_err));
        freeReplyObject(r);
        if (!ok)
            goto out;
        atomic_store(&e->sent, k + 1);
    }
    e->send_rc = 0;
out:
    atomic_store(&e->send_done, true);
    redisFree(c);
    return NULL;
}

/* Records now - sent_ns for each entry of a batch that carries the field. */
static void record_batch(e2e_t *e, const redisReply *entries)
{
    for (size_t i = 0; i < entries->elements; i++) {
        const redisReply *fields = entries->element[i]->element[1];
        if (fields->type != REDIS_REPLY_ARRAY)
            continue;
        for (size_t f = 0; f + 1 < fields->elements; f += 2) {
            const redisReply *name = fields->element[f];
            const redisReply *value = fields->element[f + 1];
            if (name->type != REDIS_REPLY_STRING || value->type != REDIS_REPLY_STRING ||
                name->len != sizeof(SENT_FIELD) - 1 || memcmp(name->str, SENT_FIELD, name->len))
                continue;
            char *end = NULL;
            errno = 0;
            long long sent = strtoll(value->str, &end, 10);
            if (errno == 0 && end != value->str && *end == '\0')
                rs_latency_record(e->hist, real_ns() - (int64_t)sent);
            break;
        }
    }
}

static void *e2e_recv(void *arg)
{
    e2e_t *e = arg;
    const options_t *o = e->o;
    pthread_setname_np(pthread_self(), "bench-recv");
    e->recv_rc = 1;
    exchange_t x;
    char count[16], block[16];
    snprintf(count, sizeof(count), "%d", E2E_COUNT);
    snprintf(block, sizeof(block), "%d", E2E_BLOCK_MS);
    redisContext *c = NULL;
    if (exchange_init(&x, o, count, block, E2E_COUNT) != 0) {
        snprintf(e->recv_err, sizeof(e->recv_err), "out of memory");
        goto out;
    }
    c = connect_redis(o, E2E_BLOCK_MS + 10000, e->recv_err, sizeof(e->recv_err));
    if (c == NULL)
        goto out;
    int64_t deadline = mono_ns() + o->timeout_ms * NS_PER_MS;
    redisReply *prev = NULL;
    const redisReply *prev_entries = NULL;
    while (e->received < e->total) {
        if (mono_ns() > deadline) {
            snprintf(e->recv_err, sizeof(e->recv_err), "time limit reached after %lld entries",
                     e->received);
            freeReplyObject(prev);
            goto out;
        }
        redisReply *r = NULL;
        int step = ack_and_read(c, &x, prev_entries, &r, e->recv_err, sizeof(e->recv_err));
        freeReplyObject(prev);
        prev = NULL;
        prev_entries = NULL;
        if (step != 0)
            goto out;
        const redisReply *entries = NULL;
        long n = batch_entries(r, &entries, e->recv_err, sizeof(e->recv_err));
        if (n < 0) {
            freeReplyObject(r);
            goto out;
        }
        if (n == 0) {
            freeReplyObject(r);
            /* A whole BLOCK passed without an entry: once the sender has finished, nothing
             * more is coming (it failed, or entries were lost). */
            if (atomic_load(&e->send_done) && e->received >= atomic_load(&e->sent))
                break;
            continue;
        }
        record_batch(e, entries);
        e->received += n;
        prev = r;
        prev_entries = entries;
    }
    if (prev != NULL) {
        int step = ack_only(c, &x, prev_entries, e->recv_err, sizeof(e->recv_err));
        freeReplyObject(prev);
        if (step != 0)
            goto out;
    }
    e->recv_rc = 0;
out:
    exchange_free(&x);
    redisFree(c);
    return NULL;
}

static int cmd_e2e(const options_t *o)
{
    char err[512] = "";
    e2e_t e = {.o = o};
    e.total = o->count > 0 ? o->count : o->rate * o->duration_ms / 1000;
    if (e.total < 1) {
        fprintf(stderr, "%s: e2e: nothing to send (rate x duration < 1)\n", PROG);
        return EXIT_USAGE;
    }
    e.hist = rs_latency_new();
    if (e.hist == NULL) {
        fprintf(stderr, "%s: out of memory\n", PROG);
        return 1;
    }
    /* The group exists before either thread starts, so no entry is sent before it. */
    redisContext *c = connect_redis(o, 10000, err, sizeof(err));
    if (c == NULL || create_group(c, o->streams[0], o->group, err, sizeof(err)) != 0) {
        fprintf(stderr, "%s: e2e: %s\n", PROG, err);
        redisFree(c);
        rs_latency_free(e.hist);
        return 1;
    }
    redisFree(c);

    pthread_t recv_thread, send_thread;
    int prc = pthread_create(&recv_thread, NULL, e2e_recv, &e);
    if (prc != 0) {
        fprintf(stderr, "%s: pthread_create: %s\n", PROG, strerror(prc));
        rs_latency_free(e.hist);
        return 1;
    }
    prc = pthread_create(&send_thread, NULL, e2e_send, &e);
    if (prc != 0) {
        /* The receiver stops at its first empty read once it sees the sender "done". */
        fprintf(stderr, "%s: pthread_create: %s\n", PROG, strerror(prc));
        atomic_store(&e.send_done, true);
        pthread_join(recv_thread, NULL);
        rs_latency_free(e.hist);
        return 1;
    }
    pthread_join(send_thread, NULL);
    pthread_join(recv_thread, NULL);

    int rc = 0;
    if (e.send_rc != 0) {
        fprintf(stderr, "%s: e2e: sender: %s\n", PROG, e.send_err);
        rc = 1;
    }
    if (e.recv_rc != 0) {
        fprintf(stderr, "%s: e2e: receiver: %s\n", PROG, e.recv_err);
        rc = 1;
    }
    fprintf(stderr, "%s: e2e: sent=%lld received=%lld rate=%lld/s\n", PROG, atomic_load(&e.sent),
            e.received, o->rate);
    if (rc == 0) {
        char line[256];
        rs_latency_format(e.hist, line, sizeof(line));
        printf("result: %s\n", line);
    }
    rs_latency_free(e.hist);
    return rc;
}

/* --- watch ------------------------------------------------------------------------------ */

/* Finds field `name` in an XINFO GROUPS entry (a flat [name, value, ...] array). */
static const redisReply *info_field(const redisReply *group, const char *name)
{
    for (size_t i = 0; i + 1 < group->elements; i += 2) {
        const redisReply *k = group->element[i];
        if ((k->type == REDIS_REPLY_STRING || k->type == REDIS_REPLY_STATUS) &&
            strcmp(k->str, name) == 0)
            return group->element[i + 1];
    }
    return NULL;
}

typedef struct {
    bool found;     /* the group exists */
    long long read; /* entries-read (delivered to the group) */
    long long pending;
    long long lag; /* -1 when Redis reports nil (unknown) */
} group_state_t;

/* Reads the state of `group` from an XINFO GROUPS reply. Returns 0, or -1 with `err` set on a
 * malformed reply. A missing stream (ERR no such key) counts as "no group yet". */
static int group_state(const redisReply *r, const char *group, group_state_t *st, char *err,
                       size_t errlen)
{
    memset(st, 0, sizeof(*st));
    if (r->type == REDIS_REPLY_ERROR && strstr(r->str, "no such key") != NULL)
        return 0;
    if (r->type != REDIS_REPLY_ARRAY) {
        bad_reply(r, "XINFO GROUPS", err, errlen);
        return -1;
    }
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *g = r->element[i];
        if (g->type != REDIS_REPLY_ARRAY)
            continue;
        const redisReply *name = info_field(g, "name");
        if (name == NULL || name->type != REDIS_REPLY_STRING || strcmp(name->str, group) != 0)
            continue;
        const redisReply *pending = info_field(g, "pending");
        const redisReply *read = info_field(g, "entries-read");
        const redisReply *lag = info_field(g, "lag");
        if (pending == NULL || pending->type != REDIS_REPLY_INTEGER || read == NULL ||
            (read->type != REDIS_REPLY_INTEGER && read->type != REDIS_REPLY_NIL) || lag == NULL ||
            (lag->type != REDIS_REPLY_INTEGER && lag->type != REDIS_REPLY_NIL)) {
            snprintf(err, errlen,
                     "XINFO GROUPS: group %s lacks pending/entries-read/lag (Redis 7 needed)",
                     group);
            return -1;
        }
        st->found = true;
        st->pending = pending->integer;
        st->read = read->type == REDIS_REPLY_INTEGER ? read->integer : 0;
        st->lag = lag->type == REDIS_REPLY_INTEGER ? lag->integer : -1;
        return 0;
    }
    return 0;
}

static int cmd_watch(const options_t *o)
{
    char err[512] = "";
    redisContext *c = connect_redis(o, 10000, err, sizeof(err));
    if (c == NULL) {
        fprintf(stderr, "%s: watch: %s\n", PROG, err);
        return 1;
    }
    int64_t start = mono_ns();
    int64_t deadline = start + o->timeout_ms * NS_PER_MS;
    int64_t first_ack_ns = 0;
    long long acked_at_first = 0, read_total = 0, acked = 0;
    int rc = 1;
    for (int64_t next = start;; next += o->interval_ms * NS_PER_MS) {
        sleep_until_mono(next);
        for (size_t s = 0; s < o->nstreams; s++) {
            const char *argv[] = {"XINFO", "GROUPS", o->streams[s]};
            if (redisAppendCommandArgv(c, 3, argv, NULL) != REDIS_OK) {
                conn_error(c, "XINFO GROUPS", err, sizeof(err));
                goto out;
            }
        }
        bool settled = true;
        read_total = 0;
        acked = 0;
        for (size_t s = 0; s < o->nstreams; s++) {
            void *v = NULL;
            if (redisGetReply(c, &v) != REDIS_OK) {
                conn_error(c, "XINFO GROUPS", err, sizeof(err));
                goto out;
            }
            group_state_t st;
            int grc = group_state(v, o->group, &st, err, sizeof(err));
            freeReplyObject(v);
            if (grc != 0)
                goto out; /* the remaining replies die with the context */
            read_total += st.read;
            acked += st.read - st.pending;
            if (!st.found || st.pending != 0 || st.lag != 0)
                settled = false;
        }
        int64_t now = real_ns();
        if (first_ack_ns == 0 && acked > 0) {
            first_ack_ns = now;
            acked_at_first = acked;
        }
        if (settled && read_total >= o->count) {
            printf("result: settled=yes entries=%lld first_ack_ns=%" PRId64
                   " acked_at_first=%lld settled_ns=%" PRId64 "\n",
                   read_total, first_ack_ns, acked_at_first, now);
            rc = 0;
            break;
        }
        if (mono_ns() > deadline) {
            snprintf(err, sizeof(err),
                     "not settled after %lld ms (entries read %lld, acknowledged %lld)",
                     o->timeout_ms, read_total, acked);
            break;
        }
    }
out:
    if (rc != 0)
        fprintf(stderr, "%s: watch: %s\n", PROG, err);
    redisFree(c);
    return rc;
}

/* --- command line ----------------------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: " PROG " drain|e2e|watch [OPTION]...\n"
            "\n"
            "Baselines for bench/run.sh, with plain hiredis:\n"
            "  drain  consume --stream to the end: XREADGROUP COUNT %d + one pipelined XACK\n"
            "         per batch; prints \"result: entries=N seconds=S rate=R\"\n"
            "  e2e    XADD at --rate for --duration-ms (or --count entries) with field\n"
            "         " SENT_FIELD ", read with XREADGROUP BLOCK on another connection;\n"
            "         prints \"result: n=.. p50_us=.. p90_us=.. p99_us=.. p999_us=.. "
            "max_us=..\"\n"
            "  watch  poll XINFO GROUPS every --interval-ms until every --stream's group has\n"
            "         nothing pending and no lag (and --count entries were read); prints\n"
            "         \"result: settled=yes entries=N first_ack_ns=T acked_at_first=A "
            "settled_ns=T\"\n"
            "         (CLOCK_REALTIME ns)\n"
            "\n"
            "  --host H          Redis host (default 127.0.0.1)\n"
            "  --port P          Redis port (default 6380)\n"
            "  --password PASS   AUTH password (default: $REDSTREAM_REDIS_PASSWORD; none)\n"
            "  --stream S        the stream (default bench); watch: may be repeated\n"
            "  --group G         the consumer group (default bench)\n"
            "  --consumer C      the consumer name (default limit)\n"
            "  --rate R          e2e: entries per second (default 1000)\n"
            "  --duration-ms D   e2e: how long to send (default 10000)\n"
            "  --count N         e2e: entries to send (instead of --duration-ms);\n"
            "                    drain: stop after N; watch: entries that must be read\n"
            "  --timeout-ms T    give up (exit 1) after T ms (default 600000)\n"
            "  --interval-ms I   watch: poll interval (default 20)\n"
            "  -h, --help        show this help\n",
            DRAIN_COUNT);
}

/* Parses a whole decimal number in [min, max]. Returns 0 or -1. */
static int parse_ll(const char *s, long long min, long long max, long long *out)
{
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

int main(int argc, char **argv)
{
    options_t o = {.host = "127.0.0.1",
                   .port = 6380,
                   .password = getenv("REDSTREAM_REDIS_PASSWORD"),
                   .group = "bench",
                   .consumer = "limit",
                   .rate = 1000,
                   .duration_ms = 10000,
                   .timeout_ms = 600000,
                   .interval_ms = 20};
    static const struct option longopts[] = {{"host", required_argument, NULL, 'H'},
                                             {"port", required_argument, NULL, 'p'},
                                             {"password", required_argument, NULL, 'a'},
                                             {"stream", required_argument, NULL, 's'},
                                             {"group", required_argument, NULL, 'g'},
                                             {"consumer", required_argument, NULL, 'C'},
                                             {"rate", required_argument, NULL, 'r'},
                                             {"duration-ms", required_argument, NULL, 'd'},
                                             {"count", required_argument, NULL, 'n'},
                                             {"timeout-ms", required_argument, NULL, 't'},
                                             {"interval-ms", required_argument, NULL, 'i'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    if (argc < 2 || argv[1][0] == '-') {
        if (argc >= 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
            usage(stdout);
            return 0;
        }
        fprintf(stderr, "%s: missing subcommand (drain, e2e or watch)\n", PROG);
        usage(stderr);
        return EXIT_USAGE;
    }
    const char *cmd = argv[1];
    optind = 2;
    int opt;
    long long v = 0;
    while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        const char *bad = NULL;
        switch (opt) {
        case 'H':
            o.host = optarg;
            break;
        case 'p':
            if (parse_ll(optarg, 1, 65535, &v) != 0)
                bad = "--port: expected 1..65535";
            o.port = (int)v;
            break;
        case 'a':
            o.password = optarg;
            break;
        case 's':
            if (o.nstreams == MAX_STREAMS)
                bad = "--stream: too many streams";
            else
                o.streams[o.nstreams++] = optarg;
            break;
        case 'g':
            o.group = optarg;
            break;
        case 'C':
            o.consumer = optarg;
            break;
        case 'r':
            if (parse_ll(optarg, 1, 10000000, &o.rate) != 0)
                bad = "--rate: expected 1..10000000";
            break;
        case 'd':
            if (parse_ll(optarg, 1, 86400000, &o.duration_ms) != 0)
                bad = "--duration-ms: expected 1..86400000";
            break;
        case 'n':
            if (parse_ll(optarg, 1, 1000000000, &o.count) != 0)
                bad = "--count: expected 1..1000000000";
            break;
        case 't':
            if (parse_ll(optarg, 1, 86400000, &o.timeout_ms) != 0)
                bad = "--timeout-ms: expected 1..86400000";
            break;
        case 'i':
            if (parse_ll(optarg, 1, 60000, &o.interval_ms) != 0)
                bad = "--interval-ms: expected 1..60000";
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            return EXIT_USAGE; /* getopt_long has named the flag */
        }
        if (bad != NULL) {
            fprintf(stderr, "%s: %s, got '%s'\n", PROG, bad, optarg);
            return EXIT_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "%s: unexpected argument '%s'\n", PROG, argv[optind]);
        return EXIT_USAGE;
    }
    if (o.nstreams == 0)
        o.streams[o.nstreams++] = "bench";
    bool watch = strcmp(cmd, "watch") == 0;
    if (!watch && o.nstreams != 1) {
        fprintf(stderr, "%s: %s takes one --stream\n", PROG, cmd);
        return EXIT_USAGE;
    }
    /* A server that goes away must end in an error message, not in death by SIGPIPE. */
    signal(SIGPIPE, SIG_IGN);
    if (strcmp(cmd, "drain") == 0)
        return cmd_drain(&o);
    if (strcmp(cmd, "e2e") == 0)
        return cmd_e2e(&o);
    if (watch)
        return cmd_watch(&o);
    fprintf(stderr, "%s: unknown subcommand '%s' (drain, e2e or watch)\n", PROG, cmd);
    return EXIT_USAGE;
}
