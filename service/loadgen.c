/*
 * The producer's load generator: pipelined XADDs over several connections at a target rate,
 * with every round trip measured, for benchmarks and capacity tests (redstream-producer
 * --rate). The demo mode (one XADD per interval, with spans) stays in producer_main.c.
 *
 * DESIGN: one thread per connection ("rs-load-<n>"), each with its own rs_redis_t, so no
 * lock is taken while running. A connection keeps up to `pipeline` XADDs in flight: it builds
 * the commands' protocol text itself into a reusable buffer (only the message number, the
 * payload, the timestamp, the key and the send time change between entries, and with
 * partitions the stream, picked from names rendered once; the rest is rendered once at
 * creation), hands each batch to hiredis with redisAppendFormattedCommand() and writes it,
 * then waits in ppoll() for replies, for the next send time, or for the stop eventfd.
 * Replies are read with redisBufferRead() and redisGetReplyFromReader(), so the thread never
 * blocks inside hiredis while it could be writing, and a stop is seen at once.
 * Timing: each command's write time goes into a ring of `pipeline` slots (Redis answers in
 * order), and its reply's read time minus that is its latency, recorded in the connection's
 * own rs_latency_t (single writer) and merged by the controlling thread at the end. With
 * partitions a second ring of the same slots holds each command's partition, so an error
 * reply names the stream it came from.
 * Keys: message n's key and partition are pure functions of n (partition.h), so connections
 * need no shared state to agree on them.
 * Pacing is an absolute CLOCK_MONOTONIC schedule: message n (1, 2, 3, ... over all
 * connections) is due at start + (n - 1) / rate, and connection i sends messages i + 1,
 * i + 1 + C, i + 1 + 2C, ..., so the connections interleave evenly and the time a write takes
 * never accumulates into drift; a connection that falls behind catches up as fast as its
 * pipeline allows. After a reconnection the schedule restarts from that moment, so an outage
 * is not followed by a burst.
 * Per-second progress: each connection also records into one of two "window" histograms,
 * chosen by the controlling thread's epoch counter. When a connection first sees a new epoch
 * it empties that epoch's window and tags it with the epoch (release); the controlling
 * thread, having advanced the epoch, reads the previous epoch's windows whose tag matches
 * (acquire). A window is emptied only two epochs after it was read, so reader and writer never
 * meet on one, and a connection idle for a second leaves no stale figures behind.
 * Commands lost with a broken connection are counted as errors, not sent again (unlike the
 * demo mode): a load test wants a steady stream, not at-least-once delivery.
 * Cluster mode (opts.cluster): the same thread per connection, but with one "link" (a routed
 * rs_redis_t, rs_redis_route()) per stream, since partition streams live on different
 * masters; the standalone loop (conn_run()) is left as it is, and the cluster loop
 * (conn_run_links()) shares only the rendering of commands. Each message taken from the
 * schedule is queued, by number, on its stream's link; a link that can write (connected, not
 * redirected, no backoff pending) renders its whole queue into hiredis's buffer and writes
 * it, so a batch goes out grouped per master. Each link's ring holds its in-flight commands'
 * message numbers and write times (growing up to the pipeline). The pipeline bounds the
 * connection's messages taken and not yet answered, queued or in flight, over all its links,
 * so a link that cannot write (its master failing over) stalls the schedule rather than
 * queueing without bound. A reply that says the entry was not stored (MOVED, ASK, TRYAGAIN,
 * CLUSTERDOWN, ... : rs_redis_classify_error() says RS_REDIS_ERR_IO) puts its message back at
 * the head of the queue: the message is counted once, when it is finally answered. A
 * redirection also marks the link to be dropped (rs_redis_redirected()); its remaining
 * replies are still read, then it reconnects to the master the router names now. A broken
 * link counts what was in flight as errors, as a broken standalone connection does, and
 * reconnects with its own backoff while the other links go on.
 */

#include "loadgen.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "backoff.h"
#include "clock.h"
#include "message.h"
#include "partition.h"

#define LOG_MODULE "loadgen"

/* Commands are written once this much protocol text has been built, so a large payload with a
 * deep pipeline does not need a buffer of pipeline x payload bytes. */
#define FLUSH_BYTES (64 * 1024)

/* How long a stopped connection waits for the replies still in flight. */
#define STOP_DRAIN_MS 1000

/* The connection threads need a few KiB of stack; 1024 of them at glibc's default of 8 MiB
 * would reserve 8 GiB of address space. */
#define THREAD_STACK_BYTES (512 * 1024)

#define NS_PER_SEC 1000000000.0

/* Cluster mode: the backoff of a link between refused rounds (TRYAGAIN while a slot moves,
 * CLUSTERDOWN during a failover) and between failed connects. */
#define LINK_BACKOFF_BASE_MS 10
#define LINK_BACKOFF_CAP_MS  2000

/* The longest decimal text of a uint64_t. */
#define U64_DIGITS 20

/* Cluster mode: one of a connection thread's sockets, routed to one partition's stream. */
typedef struct {
    rs_redis_t *redis; /* routed to the stream of partition `part` */
    unsigned part;
    /* Commands written and awaiting replies (`inflight`, oldest at `head`), then those
     * appended to hiredis's buffer but not yet written (`unflushed`, `unflushed_bytes`):
     * each one's message number and write time, in a ring of `cap` slots that grows up to the
     * pipeline (most links of a many-partition run never need that many). */
    uint64_t *msg_at;
    int64_t *sent_at;
    size_t cap, head, inflight, unflushed, unflushed_bytes;
    /* Messages waiting to be written, by number: the `resends` (refused, oldest first), then
     * the new ones, `queued` in all. Written all together once the link can take them. */
    uint64_t *queue;
    size_t queued, queue_cap, resends;
    int64_t last_activity_ns; /* the last reply, or the write that started a busy period */
    int64_t not_before_ns;    /* no connect and no write before this: a backoff step */
    rs_backoff_t backoff;     /* between refusals in a row, and between failed connects */
    unsigned refusals;        /* rounds of refused XADDs in a row (see link_reply()) */
    bool refused_round;       /* a refusal since the last write: the backoff already stepped */
    unsigned failures;        /* failed connects in a row */
} link_t;

typedef struct conn conn_t;

struct conn {
    rs_loadgen_t *lg;
    unsigned index;
    rs_redis_t *redis; /* the caller's until rs_loadgen_start(), then this thread's */
    pthread_t thread;

    /* What to write: messages index + 1 + k * connections for k = 0 .. quota - 1. */
    uint64_t quota;     /* UINT64_MAX: no limit */
    uint64_t written;   /* commands built so far (k of the next one) */
    bool writing_done;  /* quota reached, duration over, or stopping */
    double interval_ns; /* between this connection's messages; 0 = unpaced */
    int64_t base_ns;    /* message base_k is due at base_ns */
    uint64_t base_k;

    /* In flight: the write times of the commands awaiting replies, oldest at ring_head. */
    int64_t *sent_at;  /* `pipeline` slots */
    uint16_t *part_at; /* the same slots: each command's partition; NULL without partitions */
    size_t ring_head;
    size_t inflight;
    size_t unflushed;         /* commands built into `out` and not yet written */
    int64_t last_activity_ns; /* the last reply, or the write that started a busy period */

    char *out; /* protocol text of the unflushed commands */
    size_t out_len, out_cap;
    char timestamp[RS_RFC3339_LEN];
    size_t timestamp_len;
    int64_t timestamp_second; /* the second `timestamp` shows; -1 before the first */

    /* Figures: written by this thread only, read by the controlling thread at any time. */
    _Atomic uint64_t sent;
    _Atomic uint64_t errors;
    rs_latency_t *total;
    rs_latency_t *window[2];          /* with opts.progress only */
    _Atomic unsigned window_epoch[2]; /* the epoch each window was emptied for */
    unsigned cur_epoch;

    bool answered;     /* a reply has arrived on this connection */
    bool error_logged; /* the first error reply has been logged */

    /* Cluster mode only: one link per stream (lg->partitions of them), the poll set (one
     * entry per link, then the stop eventfd) with the link each entry polls, and the messages
     * taken from the schedule and not yet answered (queued, unflushed or in flight), which
     * the pipeline bounds. `redis` is NULL then. */
    link_t *links;
    struct pollfd *pfds;
    unsigned *pfd_link;
    size_t outstanding;

    /* Read by the controlling thread after the join. */
    int64_t finished_ns;
    rs_redis_status_t failure;
    char failure_msg[256];
};

struct rs_loadgen {
    rs_loadgen_opts_t o;
    const char *stream; /* cfg's */
    bool paced;
    unsigned partitions; /* 1: the stream itself; else <stream>:0 .. <stream>:<partitions-1> */

    /* The constant protocol text of every XADD: `verb` the argument count and XADD, then the
     * stream as a bulk string, then `head` up to the message field's name, `middle` from the
     * type field to the timestamp field's name, `key` the key field's name (with a key field),
     * `tail` the send time field's name. `pad` is the payload's padding. */
    char *verb, *head, *middle, *key, *tail, *pad;
    size_t verb_len, head_len, middle_len, key_len, tail_len;
    /* Partition p's stream: its name at names + name_off[p] (NUL-terminated), its bulk string
     * text at bulks + bulk_off[p], bulk_off[p + 1] - bulk_off[p] bytes. One entry without
     * partitions. */
    char *names, *bulks;
    size_t *name_off, *bulk_off;
    size_t cmd_max; /* the longest one command's text can be */

    conn_t *conns;
    int stop_fd; /* eventfd: readable once stopping; never read */
    int done_fd; /* eventfd: readable once every thread has finished; never read */
    atomic_bool stopping;
    atomic_uint running;    /* threads not yet finished */
    _Atomic unsigned epoch; /* advanced by rs_loadgen_progress() */
    unsigned threads_started;
    bool start_called, joined;
    int64_t start_ns;

    /* The controlling thread's. */
    rs_latency_t *summary;
    rs_latency_t *interval;
    uint64_t prev_sent;
    int64_t prev_ns;
};

/* --- small helpers -------------------------------------------------------------------------- */

/* Adds to a counter this thread alone writes (see latency.c for why not a fetch_add). */
static inline void count_add(_Atomic uint64_t *c, uint64_t n)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
                          memory_order_relaxed);
}

static inline uint64_t count_read(const _Atomic uint64_t *c)
{
    return atomic_load_explicit(c, memory_order_relaxed);
}

static inline bool is_stopping(const rs_loadgen_t *lg)
{
    return atomic_load_explicit(&lg->stopping, memory_order_relaxed);
}

/* Writes the decimal text of `v` at `p`; returns the end. */
static char *put_u64(char *p, uint64_t v)
{
    char tmp[U64_DIGITS];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    while (n > 0)
        *p++ = tmp[--n];
    return p;
}

/* Writes the bulk string header "$<len>\r\n"; returns the end. */
static char *put_bulk_header(char *p, size_t len)
{
    *p++ = '$';
    p = put_u64(p, len);
    *p++ = '\r';
    *p++ = '\n';
    return p;
}

static char *put_crlf(char *p)
{
    *p++ = '\r';
    *p++ = '\n';
    return p;
}

/* Writes `s` as a bulk string; returns the end. */
static char *put_bulk(char *p, const char *s, size_t len)
{
    p = put_bulk_header(p, len);
    memcpy(p, s, len);
    return put_crlf(p + len);
}

static char *put_bulk_str(char *p, const char *s)
{
    return put_bulk(p, s, strlen(s));
}

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    (void)vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* --- creation ------------------------------------------------------------------------------- */

/* Renders the stream names, one per partition, as text and as bulk strings. Returns 0, or -1
 * when out of memory. */
static int render_streams(rs_loadgen_t *lg)
{
    unsigned n = lg->partitions;
    size_t slen = strlen(lg->stream);
    /* A name is the stream, ':', the partition's digits and a NUL; as a bulk string it has
     * "$<len>\r\n" before it and "\r\n" after. */
    size_t name_max = slen + 1 + 10 + 1;
    lg->names = malloc(n * name_max);
    lg->bulks = malloc(n * (name_max + 3 + U64_DIGITS + 2));
    lg->name_off = malloc((n + 1) * sizeof(*lg->name_off));
    lg->bulk_off = malloc((n + 1) * sizeof(*lg->bulk_off));
    if (lg->names == NULL || lg->bulks == NULL || lg->name_off == NULL || lg->bulk_off == NULL)
        return -1;
    size_t name_at = 0;
    char *b = lg->bulks;
    for (unsigned i = 0; i < n; i++) {
        char *name = lg->names + name_at;
        int len = n == 1 ? snprintf(name, name_max, "%s", lg->stream)
                         : snprintf(name, name_max, "%s:%u", lg->stream, i);
        lg->name_off[i] = name_at;
        lg->bulk_off[i] = (size_t)(b - lg->bulks);
        name_at += (size_t)len + 1;
        b = put_bulk(b, name, (size_t)len);
    }
    lg->name_off[n] = name_at;
    lg->bulk_off[n] = (size_t)(b - lg->bulks);
    return 0;
}

/* Partition p's stream name. */
static const char *stream_name(const rs_loadgen_t *lg, unsigned p)
{
    return lg->names + lg->name_off[p];
}

/* Renders the constant parts of the XADD text. Returns 0, or -1 when out of memory. */
static int render_constant_parts(rs_loadgen_t *lg)
{
    const char *type = lg->o.cfg->producer.type;
    const char *key_field = lg->o.key_field;
    size_t tlen = strlen(type), klen = key_field != NULL ? strlen(key_field) : 0;
    unsigned argc = 2u + (lg->o.maxlen > 0 ? 3u : 0u) + 1u + 6u + (key_field != NULL ? 2u : 0u) +
                    (lg->o.e2e ? 2u : 0u);

    if (render_streams(lg) != 0)
        return -1;
    lg->verb = malloc(64);
    lg->head = malloc(160);
    lg->middle = malloc(tlen + 80);
    lg->key = malloc(klen + 3 + U64_DIGITS + 2);
    lg->tail = malloc(64);
    if (lg->verb == NULL || lg->head == NULL || lg->middle == NULL || lg->key == NULL ||
        lg->tail == NULL)
        return -1;

    char *p = lg->verb;
    *p++ = '*';
    p = put_u64(p, argc);
    p = put_crlf(p);
    p = put_bulk_str(p, "XADD");
    lg->verb_len = (size_t)(p - lg->verb);

    p = lg->head;
    if (lg->o.maxlen > 0) {
        char num[U64_DIGITS];
        char *end = put_u64(num, lg->o.maxlen);
        p = put_bulk_str(p, "MAXLEN");
        p = put_bulk_str(p, "~");
        p = put_bulk(p, num, (size_t)(end - num));
    }
    p = put_bulk_str(p, "*");
    p = put_bulk_str(p, RS_FIELD_MESSAGE);
    lg->head_len = (size_t)(p - lg->head);

    p = put_bulk_str(lg->middle, RS_FIELD_TYPE);
    p = put_bulk(p, type, tlen);
    p = put_bulk_str(p, RS_FIELD_TIMESTAMP);
    lg->middle_len = (size_t)(p - lg->middle);

    if (key_field != NULL) {
        p = put_bulk(lg->key, key_field, klen);
        lg->key_len = (size_t)(p - lg->key);
    }

    p = put_bulk_str(lg->tail, RS_FIELD_SENT_NS);
    lg->tail_len = (size_t)(p - lg->tail);

    size_t stream_max = 0;
    for (unsigned i = 0; i < lg->partitions; i++) {
        size_t len = lg->bulk_off[i + 1] - lg->bulk_off[i];
        stream_max = len > stream_max ? len : stream_max;
    }
    /* "Message #<n>" needs at most 9 + 20 bytes; bulk headers at most 1 + 20 + 2. */
    size_t message_max = lg->o.payload_size > 0 ? lg->o.payload_size : 9 + U64_DIGITS;
    lg->cmd_max = lg->verb_len + stream_max + lg->head_len + (3 + U64_DIGITS) + message_max + 2 +
                  lg->middle_len + (3 + U64_DIGITS) + RS_RFC3339_LEN + 2 + lg->key_len +
                  (3 + U64_DIGITS) + RS_KEY_TEXT_MAX + 2 + lg->tail_len + (3 + U64_DIGITS) +
                  U64_DIGITS + 2;

    if (lg->o.payload_size > 0) {
        /* The message is "Message #<n>", then a space and x's up to the payload size. */
        lg->pad = malloc(lg->o.payload_size);
        if (lg->pad == NULL)
            return -1;
        memset(lg->pad, 'x', lg->o.payload_size);
        lg->pad[0] = ' ';
    }
    return 0;
}

/* Cluster mode: makes `cn`'s links, one per stream, each routed to its stream (unconnected),
 * and the poll set. Returns 0, or -1 when out of memory. */
static int links_init(rs_loadgen_t *lg, conn_t *cn)
{
    unsigned n = lg->partitions;
    cn->links = calloc(n, sizeof(*cn->links));
    cn->pfds = calloc(n + 1, sizeof(*cn->pfds));
    cn->pfd_link = calloc(n, sizeof(*cn->pfd_link));
    if (cn->links == NULL || cn->pfds == NULL || cn->pfd_link == NULL)
        return -1;
    for (unsigned i = 0; i < n; i++) {
        link_t *l = &cn->links[i];
        const char *stream = stream_name(lg, i);
        char name[80];
        snprintf(name, sizeof(name), "load %u %s", cn->index, stream);
        l->part = i;
        l->redis = rs_redis_new_from_config(lg->o.cfg, name, lg->o.command_timeout_ms, lg->o.log);
        if (l->redis == NULL)
            return -1;
        rs_redis_route(l->redis, lg->o.cluster, stream, strlen(stream));
        rs_backoff_init(&l->backoff, LINK_BACKOFF_BASE_MS, LINK_BACKOFF_CAP_MS, 0);
    }
    return 0;
}

static int conn_init(rs_loadgen_t *lg, conn_t *cn, unsigned index)
{
    const rs_loadgen_opts_t *o = &lg->o;
    cn->lg = lg;
    cn->index = index;
    cn->timestamp_second = -1;
    cn->failure = RS_REDIS_OK;
    if (o->count == 0)
        cn->quota = UINT64_MAX;
    else
        cn->quota = o->count / o->connections + (index < o->count % o->connections ? 1 : 0);
    if (lg->paced)
        cn->interval_ns = (double)o->connections * NS_PER_SEC / o->rate;

    char name[32];
    snprintf(name, sizeof(name), "load %u", index);
    if (o->cluster == NULL)
        cn->redis = rs_redis_new_from_config(o->cfg, name, o->command_timeout_ms, o->log);
    else if (links_init(lg, cn) != 0)
        return -1;
    cn->sent_at = malloc(o->pipeline * sizeof(*cn->sent_at));
    if (lg->partitions > 1)
        cn->part_at = malloc(o->pipeline * sizeof(*cn->part_at));
    cn->out_cap = FLUSH_BYTES + lg->cmd_max;
    cn->out = malloc(cn->out_cap);
    cn->total = rs_latency_new();
    if (o->progress) {
        cn->window[0] = rs_latency_new();
        cn->window[1] = rs_latency_new();
    }
    atomic_init(&cn->sent, 0);
    atomic_init(&cn->errors, 0);
    atomic_init(&cn->window_epoch[0], 0);
    atomic_init(&cn->window_epoch[1], 0);
    if ((o->cluster == NULL && cn->redis == NULL) || cn->sent_at == NULL || cn->out == NULL ||
        cn->total == NULL || (lg->partitions > 1 && cn->part_at == NULL) ||
        (o->progress && (cn->window[0] == NULL || cn->window[1] == NULL)))
        return -1;
    return 0;
}

rs_loadgen_t *rs_loadgen_new(const rs_loadgen_opts_t *opts, char *err, size_t errlen)
{
    if (!(opts->rate >= 0 && opts->rate <= RS_LOADGEN_RATE_MAX)) { /* also NaN */
        set_err(err, errlen, "rate must be from 0 to %.0f messages per second",
                RS_LOADGEN_RATE_MAX);
        return NULL;
    }
    if (opts->pipeline < 1 || opts->pipeline > RS_LOADGEN_PIPELINE_MAX) {
        set_err(err, errlen, "pipeline must be from 1 to %d", RS_LOADGEN_PIPELINE_MAX);
        return NULL;
    }
    if (opts->connections < 1 || opts->connections > RS_LOADGEN_CONNECTIONS_MAX) {
        set_err(err, errlen, "connections must be from 1 to %d", RS_LOADGEN_CONNECTIONS_MAX);
        return NULL;
    }
    if (opts->payload_size > RS_LOADGEN_PAYLOAD_MAX || opts->duration_ns < 0 ||
        opts->command_timeout_ms <= 0) {
        set_err(err, errlen, "payload size, duration or command timeout out of range");
        return NULL;
    }
    if (opts->partitions > RS_PARTITIONS_MAX || (opts->partitions > 1 && opts->key_field == NULL)) {
        set_err(err, errlen, "partitions must be from 1 to %u, and more than 1 needs a key field",
                RS_PARTITIONS_MAX);
        return NULL;
    }
    if (opts->cluster != NULL &&
        (uint64_t)opts->connections * (opts->partitions > 1 ? opts->partitions : 1) >
            RS_LOADGEN_CLUSTER_SOCKETS_MAX) {
        set_err(err, errlen,
                "in cluster mode each connection opens one socket per stream: %u connections x "
                "%u streams is more than %d",
                opts->connections, opts->partitions, RS_LOADGEN_CLUSTER_SOCKETS_MAX);
        return NULL;
    }
    if (opts->key_field != NULL &&
        (opts->key_field[0] == '\0' || opts->keys < 1 || opts->keys > RS_KEYS_MAX ||
         opts->hot_share < RS_HOT_SHARE_NONE || opts->hot_share > 100 ||
         (opts->hot_share != RS_HOT_SHARE_NONE && opts->keys < 2))) {
        set_err(err, errlen,
                "key field empty, keys not from 1 to %" PRIu64 ", or hot key share not from 0 to "
                "100 (with at least 2 keys)",
                RS_KEYS_MAX);
        return NULL;
    }

    rs_loadgen_t *lg = calloc(1, sizeof(*lg));
    if (lg == NULL) {
        set_err(err, errlen, "out of memory");
        return NULL;
    }
    lg->o = *opts;
    lg->stream = opts->cfg->producer.stream;
    lg->paced = opts->rate > 0;
    lg->partitions = opts->partitions > 1 ? opts->partitions : 1;
    lg->stop_fd = eventfd(0, EFD_CLOEXEC);
    lg->done_fd = eventfd(0, EFD_CLOEXEC);
    atomic_init(&lg->stopping, false);
    atomic_init(&lg->running, 0);
    atomic_init(&lg->epoch, 0);
    if (lg->stop_fd < 0 || lg->done_fd < 0) {
        set_err(err, errlen, "eventfd: %s", strerror(errno));
        rs_loadgen_free(lg);
        return NULL;
    }

    lg->conns = calloc(opts->connections, sizeof(*lg->conns));
    lg->summary = rs_latency_new();
    lg->interval = rs_latency_new();
    bool ok = lg->conns != NULL && lg->summary != NULL && lg->interval != NULL &&
              render_constant_parts(lg) == 0;
    for (unsigned i = 0; ok && i < opts->connections; i++)
        ok = conn_init(lg, &lg->conns[i], i) == 0;
    if (!ok) {
        set_err(err, errlen, "out of memory (%u connections, pipeline %u, payload %zu bytes)",
                opts->connections, opts->pipeline, opts->payload_size);
        rs_loadgen_free(lg);
        return NULL;
    }
    return lg;
}

void rs_loadgen_free(rs_loadgen_t *lg)
{
    if (lg == NULL)
        return;
    if (lg->threads_started > 0 && !lg->joined) {
        rs_loadgen_stop(lg);
        rs_loadgen_join(lg);
    }
    if (lg->conns != NULL) {
        for (unsigned i = 0; i < lg->o.connections; i++) {
            conn_t *cn = &lg->conns[i];
            rs_redis_free(cn->redis);
            for (unsigned j = 0; cn->links != NULL && j < lg->partitions; j++) {
                link_t *l = &cn->links[j];
                rs_redis_free(l->redis);
                free(l->msg_at);
                free(l->sent_at);
                free(l->queue);
            }
            free(cn->links);
            free(cn->pfds);
            free(cn->pfd_link);
            free(cn->sent_at);
            free(cn->part_at);
            free(cn->out);
            rs_latency_free(cn->total);
            rs_latency_free(cn->window[0]);
            rs_latency_free(cn->window[1]);
        }
        free(lg->conns);
    }
    free(lg->verb);
    free(lg->head);
    free(lg->middle);
    free(lg->key);
    free(lg->tail);
    free(lg->pad);
    free(lg->names);
    free(lg->bulks);
    free(lg->name_off);
    free(lg->bulk_off);
    rs_latency_free(lg->summary);
    rs_latency_free(lg->interval);
    if (lg->stop_fd >= 0)
        close(lg->stop_fd);
    if (lg->done_fd >= 0)
        close(lg->done_fd);
    free(lg);
}

/* --- one connection's thread ---------------------------------------------------------------- */

/* When message k of `cn` is due, on CLOCK_MONOTONIC. */
static int64_t due_ns(const conn_t *cn, uint64_t k)
{
    double offset = (double)(k - cn->base_k) * cn->interval_ns;
    if (offset >= 9e18)
        return INT64_MAX;
    return cn->base_ns + (int64_t)offset;
}

/* Makes `timestamp` show the second of `realtime_ns`. */
static void refresh_timestamp(conn_t *cn, int64_t realtime_ns)
{
    int64_t second = realtime_ns / 1000000000;
    if (second == cn->timestamp_second)
        return;
    int n = rs_clock_format_rfc3339((time_t)second, cn->timestamp, sizeof(cn->timestamp));
    cn->timestamp_len = n > 0 ? (size_t)n : 0;
    cn->timestamp_second = second;
}

/* Writes message number `n`'s key into `key` (RS_KEY_TEXT_MAX bytes) and its length into
 * *klen (0 without a key field), and returns its partition (0 without partitions). */
static inline unsigned message_key(const rs_loadgen_t *lg, uint64_t n, char *key, size_t *klen)
{
    *klen = 0;
    if (lg->o.key_field == NULL)
        return 0;
    *klen = rs_key_format(key, rs_key_index(n, lg->o.keys, lg->o.hot_share));
    return lg->partitions > 1 ? rs_partition_of(key, *klen, lg->partitions) : 0;
}

/* Writes the text of message number `n`'s XADD, to partition `part` with key `key` (`klen`
 * bytes), at `p`, which has room for lg->cmd_max bytes. Returns the end. */
static inline char *render_xadd(conn_t *cn, char *p, uint64_t n, unsigned part, const char *key,
                                size_t klen)
{
    const rs_loadgen_t *lg = cn->lg;
    int64_t sent_ns = 0;
    if (lg->o.e2e) {
        sent_ns = rs_clock_realtime_ns();
        refresh_timestamp(cn, sent_ns);
    }

    char message[9 + U64_DIGITS];
    memcpy(message, "Message #", 9);
    size_t mlen = (size_t)(put_u64(message + 9, n) - message);

    memcpy(p, lg->verb, lg->verb_len);
    p += lg->verb_len;
    size_t blen = lg->bulk_off[part + 1] - lg->bulk_off[part];
    memcpy(p, lg->bulks + lg->bulk_off[part], blen);
    p += blen;
    memcpy(p, lg->head, lg->head_len);
    p += lg->head_len;
    if (lg->o.payload_size == 0) {
        p = put_bulk(p, message, mlen);
    } else {
        size_t size = lg->o.payload_size;
        size_t keep = mlen < size ? mlen : size;
        p = put_bulk_header(p, size);
        memcpy(p, message, keep);
        memcpy(p + keep, lg->pad, size - keep);
        p = put_crlf(p + size);
    }
    memcpy(p, lg->middle, lg->middle_len);
    p += lg->middle_len;
    p = put_bulk(p, cn->timestamp, cn->timestamp_len);
    if (lg->o.key_field != NULL) {
        memcpy(p, lg->key, lg->key_len);
        p = put_bulk(p + lg->key_len, key, klen);
    }
    if (lg->o.e2e) {
        memcpy(p, lg->tail, lg->tail_len);
        p += lg->tail_len;
        char num[U64_DIGITS];
        p = put_bulk(p, num, (size_t)(put_u64(num, (uint64_t)sent_ns) - num));
    }
    return p;
}

/* Builds the text of the next XADD (message number index + 1 + written * connections) at the
 * end of `out`, which has room for lg->cmd_max more bytes, and notes its partition in the
 * slot it will occupy once written. */
static void build_xadd(conn_t *cn)
{
    const rs_loadgen_t *lg = cn->lg;
    uint64_t n = (uint64_t)cn->index + 1 + cn->written * lg->o.connections;
    char key[RS_KEY_TEXT_MAX];
    size_t klen;
    unsigned part = message_key(lg, n, key, &klen);
    if (lg->partitions > 1) {
        size_t slot = (cn->ring_head + cn->inflight + cn->unflushed) % lg->o.pipeline;
        cn->part_at[slot] = (uint16_t)part;
    }
    char *end = render_xadd(cn, cn->out + cn->out_len, n, part, key, klen);
    cn->out_len = (size_t)(end - cn->out);
}

/* Records `fatal` as the reason the run stops, logs it, and stops every connection. */
static void fail_run(conn_t *cn, rs_redis_status_t why, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void fail_run(conn_t *cn, rs_redis_status_t why, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    (void)vsnprintf(cn->failure_msg, sizeof(cn->failure_msg), fmt, ap);
    va_end(ap);
    cn->failure = why;
    rs_log(cn->lg->o.log, RS_LOG_ERROR, LOG_MODULE, "connection %u: %s", cn->index,
           cn->failure_msg);
    rs_loadgen_stop(cn->lg);
}

/* Writes the commands built in `out`, stamping their write time. Returns 0, or -1 when the
 * connection broke (the caller calls connection_lost()). */
static int flush(conn_t *cn)
{
    redisContext *c = rs_redis_context(cn->redis);
    if (redisAppendFormattedCommand(c, cn->out, cn->out_len) != REDIS_OK)
        return -1;
    size_t slots = cn->lg->o.pipeline;
    size_t at = (cn->ring_head + cn->inflight) % slots;
    int64_t now = rs_clock_monotonic_ns();
    for (size_t j = 0; j < cn->unflushed; j++) {
        cn->sent_at[at] = now;
        if (++at == slots)
            at = 0;
    }
    if (cn->inflight == 0)
        cn->last_activity_ns = now;
    cn->inflight += cn->unflushed;
    cn->unflushed = 0;
    cn->out_len = 0;
    int done = 0;
    while (!done)
        if (redisBufferWrite(c, &done) != REDIS_OK)
            return -1;
    return 0;
}

/* Forgets the broken connection: what was in flight counts as errors. `why` NULL: the
 * handle's own error. The next loop iteration reconnects. */
static void connection_lost(conn_t *cn, const char *why)
{
    uint64_t lost = cn->inflight + cn->unflushed;
    if (rs_redis_connected(cn->redis))
        rs_redis_mark_broken(cn->redis);
    count_add(&cn->errors, lost);
    cn->inflight = 0;
    cn->unflushed = 0;
    cn->ring_head = 0;
    cn->out_len = 0;
    rs_log(cn->lg->o.log, RS_LOG_WARN, LOG_MODULE,
           "connection %u: %s; %" PRIu64 " XADDs in flight counted as errors", cn->index,
           why != NULL ? why : rs_redis_errstr(cn->redis), lost);
}

/* Whether the connection's next message may be written at `now`: false when its quota is
 * written or the run's end has come (cn->writing_done is then set), or when it is not due yet
 * (*next_due is then when it is). */
static bool next_is_due(conn_t *cn, int64_t now, int64_t end_ns, int64_t *next_due)
{
    if (cn->written >= cn->quota) {
        cn->writing_done = true;
        return false;
    }
    if (cn->lg->paced) {
        int64_t due = due_ns(cn, cn->written);
        if (due >= end_ns) {
            cn->writing_done = true;
            return false;
        }
        if (due > now) {
            *next_due = due;
            return false;
        }
    } else if (now >= end_ns) {
        cn->writing_done = true;
        return false;
    }
    return true;
}

/* Builds and writes every XADD that is due, as far as the pipeline has room. Sets
 * *next_due to when the next one is due if that is in the future (INT64_MAX otherwise).
 * Returns 0, or -1 when the connection broke. */
static int write_due(conn_t *cn, int64_t now, int64_t end_ns, int64_t *next_due)
{
    const rs_loadgen_t *lg = cn->lg;
    *next_due = INT64_MAX;
    if (!lg->o.e2e)
        refresh_timestamp(cn, rs_clock_realtime_ns());
    while (cn->inflight + cn->unflushed < lg->o.pipeline) {
        if (!next_is_due(cn, now, end_ns, next_due))
            break;
        if (cn->out_len + lg->cmd_max > cn->out_cap && flush(cn) != 0)
            return -1;
        build_xadd(cn);
        cn->written++;
        cn->unflushed++;
    }
    if (cn->unflushed > 0 && flush(cn) != 0)
        return -1;
    return 0;
}

/* Records a successful XADD's round trip. */
static void record(conn_t *cn, int64_t ns)
{
    rs_latency_record(cn->total, ns);
    if (cn->window[0] == NULL)
        return;
    unsigned e = atomic_load_explicit(&cn->lg->epoch, memory_order_relaxed);
    if (e != cn->cur_epoch) {
        rs_latency_reset(cn->window[e & 1]);
        atomic_store_explicit(&cn->window_epoch[e & 1], e, memory_order_release);
        cn->cur_epoch = e;
    }
    rs_latency_record(cn->window[e & 1], ns);
}

/* Accounts for one reply read at `now`. Returns 0, -1 when the stream of replies makes no
 * sense (a reply without a command), or 1 when the run must stop (already arranged). */
static int on_reply(conn_t *cn, const redisReply *reply, int64_t now)
{
    if (cn->inflight == 0) {
        connection_lost(cn, "a reply arrived for no command");
        return -1;
    }
    int64_t written_at = cn->sent_at[cn->ring_head];
    unsigned part = cn->part_at != NULL ? cn->part_at[cn->ring_head] : 0;
    if (++cn->ring_head == cn->lg->o.pipeline)
        cn->ring_head = 0;
    cn->inflight--;
    cn->last_activity_ns = now;
    bool first = !cn->answered;
    cn->answered = true;

    if (reply->type == REDIS_REPLY_STRING) {
        count_add(&cn->sent, 1);
        record(cn, now - written_at);
        return 0;
    }
    count_add(&cn->errors, 1);
    const char *addr = rs_redis_addr(cn->redis);
    if (reply->type == REDIS_REPLY_ERROR) {
        int len = reply->len > 200 ? 200 : (int)reply->len;
        rs_redis_status_t kind = rs_redis_classify_error(reply->str, reply->len);
        if (first && kind != RS_REDIS_ERR_IO) {
            /* WRONGTYPE, NOPERM, OOM, a syntax error: every XADD would fail the same way. */
            fail_run(cn, kind == RS_REDIS_ERR_AUTH ? RS_REDIS_ERR_AUTH : RS_REDIS_ERR_REPLY,
                     "XADD to stream %s failed: redis %s: %.*s", stream_name(cn->lg, part), addr,
                     len, reply->str);
            return 1;
        }
        if (!cn->error_logged)
            rs_log(cn->lg->o.log, RS_LOG_WARN, LOG_MODULE,
                   "connection %u: XADD to stream %s failed: redis %s: %.*s (further errors "
                   "are counted, not logged)",
                   cn->index, stream_name(cn->lg, part), addr, len, reply->str);
    } else if (!cn->error_logged) {
        rs_log(cn->lg->o.log, RS_LOG_WARN, LOG_MODULE,
               "connection %u: unexpected reply type %d to XADD from redis %s (further errors "
               "are counted, not logged)",
               cn->index, reply->type, addr);
    }
    cn->error_logged = true;
    return 0;
}

/* Reads what the socket has and accounts for every complete reply. Returns 0, -1 when the
 * connection broke (connection_lost() done), or 1 when the run must stop. */
static int read_replies(conn_t *cn)
{
    redisContext *c = rs_redis_context(cn->redis);
    if (redisBufferRead(c) != REDIS_OK) {
        connection_lost(cn, NULL);
        return -1;
    }
    int64_t now = rs_clock_monotonic_ns();
    for (;;) {
        void *reply = NULL;
        if (redisGetReplyFromReader(c, &reply) != REDIS_OK) {
            connection_lost(cn, NULL);
            return -1;
        }
        if (reply == NULL)
            return 0;
        int rc = on_reply(cn, reply, now);
        freeReplyObject(reply);
        if (rc != 0)
            return rc;
    }
}

/* rs_redis_wait_fn: sleeps `ms` unless the run stops first (then returns 1). */
static int wait_unless_stopped(void *arg, long ms)
{
    const rs_loadgen_t *lg = arg;
    struct pollfd pfd = {.fd = lg->stop_fd, .events = POLLIN, .revents = 0};
    int rc = poll(&pfd, 1, ms > INT_MAX ? INT_MAX : (int)ms);
    return rc > 0 || is_stopping(lg) ? 1 : 0;
}

/* Reconnects with backoff. Returns 0, or -1 when stopping or refused (then the run stops). */
static int reconnect(conn_t *cn)
{
    rs_redis_status_t st = rs_redis_connect_retry(cn->redis, wait_unless_stopped, cn->lg);
    if (st == RS_REDIS_OK) {
        /* Restart the schedule now rather than burst through what the outage missed. */
        cn->base_ns = rs_clock_monotonic_ns();
        cn->base_k = cn->written;
        return 0;
    }
    if (st != RS_REDIS_ERR_IO) /* RS_REDIS_ERR_IO: told to stop */
        fail_run(cn, st, "%s", rs_redis_errstr(cn->redis));
    return -1;
}

/* Waits up to `limit_ms` for the replies still in flight; those that do not come count as
 * errors. */
static void drain(conn_t *cn, int limit_ms)
{
    int64_t deadline = rs_clock_monotonic_ns() + (int64_t)limit_ms * 1000000;
    while (cn->inflight > 0 && rs_redis_connected(cn->redis)) {
        int64_t left = deadline - rs_clock_monotonic_ns();
        if (left <= 0)
            break;
        struct pollfd pfd = {.fd = rs_redis_context(cn->redis)->fd, .events = POLLIN, .revents = 0};
        struct timespec ts = rs_clock_timespec(left);
        int rc = ppoll(&pfd, 1, &ts, NULL);
        if (rc < 0 && errno != EINTR)
            break;
        if (rc > 0 && read_replies(cn) != 0)
            break;
    }
    if (cn->inflight > 0) {
        rs_log(cn->lg->o.log, RS_LOG_WARN, LOG_MODULE,
               "connection %u: %zu XADDs unanswered when stopping, counted as errors", cn->index,
               cn->inflight);
        count_add(&cn->errors, cn->inflight);
        cn->inflight = 0;
    }
}

/* Standalone mode's connection thread: the loop the DESIGN note describes. */
static void conn_run(conn_t *cn)
{
    rs_loadgen_t *lg = cn->lg;
    int64_t end_ns = lg->o.duration_ns > 0 ? lg->start_ns + lg->o.duration_ns : INT64_MAX;
    int64_t reply_timeout_ns = (int64_t)lg->o.command_timeout_ms * 1000000;
    int drain_ms = lg->o.command_timeout_ms;

    for (;;) {
        if (is_stopping(lg)) {
            drain_ms = STOP_DRAIN_MS < drain_ms ? STOP_DRAIN_MS : drain_ms;
            break;
        }
        if (!rs_redis_connected(cn->redis)) {
            if (reconnect(cn) != 0)
                break;
            continue;
        }
        int64_t now = rs_clock_monotonic_ns();
        int64_t next_due = INT64_MAX;
        if (!cn->writing_done && write_due(cn, now, end_ns, &next_due) != 0) {
            connection_lost(cn, NULL);
            continue;
        }
        if (cn->writing_done && cn->inflight == 0)
            break;

        /* Wait for a reply, the next due time, or the stop. */
        int64_t deadline = next_due;
        if (cn->inflight > 0 && cn->last_activity_ns + reply_timeout_ns < deadline)
            deadline = cn->last_activity_ns + reply_timeout_ns;
        int64_t left = deadline - rs_clock_monotonic_ns();
        struct timespec ts = rs_clock_timespec(left > 0 ? left : 0);
        struct pollfd pfd[2] = {
            {.fd = rs_redis_context(cn->redis)->fd,
             .events = cn->inflight > 0 ? POLLIN : 0,
             .revents = 0},
            {.fd = lg->stop_fd, .events = POLLIN, .revents = 0},
        };
        int rc = ppoll(pfd, 2, &ts, NULL);
        if (rc < 0) {
            if (errno == EINTR)
                continue;
            fail_run(cn, RS_REDIS_ERR_REPLY, "ppoll: %s", strerror(errno));
            break;
        }
        if (pfd[0].revents != 0) {
            if (read_replies(cn) > 0)
                break;
            continue;
        }
        if (pfd[1].revents != 0)
            continue; /* stopping: seen at the top */
        if (cn->inflight > 0 &&
            rs_clock_monotonic_ns() - cn->last_activity_ns >= reply_timeout_ns) {
            char why[96];
            snprintf(why, sizeof(why), "redis %s: no reply for %d ms", rs_redis_addr(cn->redis),
                     lg->o.command_timeout_ms);
            connection_lost(cn, why);
        }
    }
    if (cn->failure == RS_REDIS_OK)
        drain(cn, drain_ms);
    else if (cn->inflight > 0) {
        count_add(&cn->errors, cn->inflight);
        cn->inflight = 0;
    }
}

/* --- cluster mode: one connection thread's links ---------------------------------------------- */

/* Makes room in `l`'s ring for one more command. Returns 0, or -1 when out of memory. The
 * caller keeps the ring within the pipeline (cn->outstanding never exceeds it). */
static int link_reserve(link_t *l, size_t pipeline)
{
    size_t used = l->inflight + l->unflushed;
    if (used < l->cap)
        return 0;
    size_t cap = l->cap == 0 ? 16 : 2 * l->cap;
    if (cap > pipeline)
        cap = pipeline;
    if (cap <= used)
        return -1; /* not reached: the pipeline bounds `used` */
    uint64_t *msg_at = malloc(cap * sizeof(*msg_at));
    int64_t *sent_at = malloc(cap * sizeof(*sent_at));
    if (msg_at == NULL || sent_at == NULL) {
        free(msg_at);
        free(sent_at);
        return -1;
    }
    for (size_t i = 0; i < used; i++) {
        size_t from = (l->head + i) % l->cap;
        msg_at[i] = l->msg_at[from];
        sent_at[i] = l->sent_at[from];
    }
    free(l->msg_at);
    free(l->sent_at);
    l->msg_at = msg_at;
    l->sent_at = sent_at;
    l->cap = cap;
    l->head = 0;
    return 0;
}

/* Queues message `n` on `l`: after the other resends when `resend`, else last. Returns 0, or
 * -1 when out of memory. */
static int link_enqueue(link_t *l, uint64_t n, bool resend)
{
    if (l->queued == l->queue_cap) {
        size_t cap = l->queue_cap == 0 ? 16 : 2 * l->queue_cap;
        uint64_t *q = realloc(l->queue, cap * sizeof(*q));
        if (q == NULL)
            return -1;
        l->queue = q;
        l->queue_cap = cap;
    }
    if (resend) {
        memmove(l->queue + l->resends + 1, l->queue + l->resends,
                (l->queued - l->resends) * sizeof(*l->queue));
        l->queue[l->resends++] = n;
    } else {
        l->queue[l->queued] = n;
    }
    l->queued++;
    return 0;
}

/* Drops the first `k` queued messages (they were written). */
static void link_dequeue(link_t *l, size_t k)
{
    memmove(l->queue, l->queue + k, (l->queued - k) * sizeof(*l->queue));
    l->queued -= k;
    l->resends = l->resends > k ? l->resends - k : 0;
}

/* Forgets `l`'s broken connection, as connection_lost() does: what was written on it counts
 * as errors. What is queued stays queued, for the next connection. `why` NULL: the handle's
 * own error. */
static void link_lost(conn_t *cn, link_t *l, const char *why)
{
    uint64_t lost = l->inflight + l->unflushed;
    if (rs_redis_context(l->redis) != NULL)
        rs_redis_mark_broken(l->redis);
    count_add(&cn->errors, lost);
    cn->outstanding -= lost;
    l->inflight = 0;
    l->unflushed = 0;
    l->unflushed_bytes = 0;
    l->head = 0;
    rs_log(cn->lg->o.log, RS_LOG_WARN, LOG_MODULE,
           "connection %u: stream %s: %s; %" PRIu64 " XADDs in flight counted as errors", cn->index,
           stream_name(cn->lg, l->part), why != NULL ? why : rs_redis_errstr(l->redis), lost);
}

/* One connection attempt for `l`, to the master its stream's slot has now. Returns 0 when
 * connected, 1 when the attempt failed and the next one is scheduled (l->not_before_ns), or
 * -1 when the run must stop (refused; fail_run() done). */
static int link_connect(conn_t *cn, link_t *l, int64_t now)
{
    char before[300];
    snprintf(before, sizeof(before), "%s", rs_redis_addr(l->redis));
    rs_redis_status_t st = rs_redis_connect(l->redis);
    const char *stream = stream_name(cn->lg, l->part);
    if (st == RS_REDIS_OK) {
        if (l->failures > 0) {
            rs_log(cn->lg->o.log, RS_LOG_INFO, LOG_MODULE,
                   "connection %u: stream %s: connected to redis %s after %u failed attempts",
                   cn->index, stream, rs_redis_addr(l->redis), l->failures);
            /* As after a standalone reconnection: no burst for the time lost. */
            cn->base_ns = rs_clock_monotonic_ns();
            cn->base_k = cn->written;
            rs_backoff_reset(&l->backoff);
        } else if (strcmp(before, rs_redis_addr(l->redis)) != 0) {
            rs_log(cn->lg->o.log, RS_LOG_INFO, LOG_MODULE,
                   "connection %u: stream %s: now on redis %s (was %s)", cn->index, stream,
                   rs_redis_addr(l->redis), before);
        }
        l->failures = 0;
        return 0;
    }
    if (st != RS_REDIS_ERR_IO) {
        fail_run(cn, st, "%s", rs_redis_errstr(l->redis));
        return -1;
    }
    int64_t ms = rs_backoff_next_ms(&l->backoff);
    if (l->failures++ == 0)
        rs_log(cn->lg->o.log, RS_LOG_WARN, LOG_MODULE,
               "connection %u: stream %s: %s; retrying with backoff (from %" PRId64 " ms)",
               cn->index, stream, rs_redis_errstr(l->redis), ms);
    l->not_before_ns = now + ms * 1000000;
    return 1;
}

/* Writes the commands appended to `l`'s hiredis buffer, stamping their write time. Returns 0,
 * or -1 when the link broke (link_lost() done). */
static int link_flush(conn_t *cn, link_t *l)
{
    redisContext *c = rs_redis_context(l->redis);
    int64_t now = rs_clock_monotonic_ns();
    size_t at = (l->head + l->inflight) % l->cap;
    for (size_t j = 0; j < l->unflushed; j++) {
        l->sent_at[at] = now;
        if (++at == l->cap)
            at = 0;
    }
    if (l->inflight == 0)
        l->last_activity_ns = now;
    l->inflight += l->unflushed;
    l->unflushed = 0;
    l->unflushed_bytes = 0;
    int done = 0;
    while (!done) {
        if (redisBufferWrite(c, &done) != REDIS_OK) {
            link_lost(cn, l, NULL);
            return -1;
        }
    }
    return 0;
}

/* Writes every message queued on `l` (connected), resends first. Returns 0, -1 when the link
 * broke (link_lost() done; what was not written stays queued), or 1 when the run must stop
 * (out of memory; fail_run() done). */
static int link_write(conn_t *cn, link_t *l)
{
    const rs_loadgen_t *lg = cn->lg;
    redisContext *c = rs_redis_context(l->redis);
    size_t i = 0;
    for (; i < l->queued; i++) {
        if (link_reserve(l, lg->o.pipeline) != 0) {
            link_dequeue(l, i);
            fail_run(cn, RS_REDIS_ERR_REPLY, "out of memory");
            return 1;
        }
        uint64_t n = l->queue[i];
        char key[RS_KEY_TEXT_MAX];
        size_t klen;
        (void)message_key(lg, n, key, &klen); /* its partition is l->part */
        char *end = render_xadd(cn, cn->out, n, l->part, key, klen);
        size_t len = (size_t)(end - cn->out);
        if (redisAppendFormattedCommand(c, cn->out, len) != REDIS_OK) {
            link_dequeue(l, i);
            link_lost(cn, l, "out of memory");
            return -1;
        }
        l->msg_at[(l->head + l->inflight + l->unflushed) % l->cap] = n;
        l->unflushed++;
        l->unflushed_bytes += len;
        if (l->unflushed_bytes >= FLUSH_BYTES && link_flush(cn, l) != 0) {
            link_dequeue(l, i + 1);
            return -1;
        }
    }
    link_dequeue(l, i);
    l->refused_round = false;
    if (l->unflushed > 0 && link_flush(cn, l) != 0)
        return -1;
    return 0;
}

/* Accounts for one reply read on `l` at `now`. Returns 0, -1 when the replies make no sense
 * (link_lost() done), or 1 when the run must stop (already arranged). */
static int link_reply(conn_t *cn, link_t *l, const redisReply *reply, int64_t now)
{
    const rs_loadgen_t *lg = cn->lg;
    if (l->inflight == 0) {
        link_lost(cn, l, "a reply arrived for no command");
        return -1;
    }
    uint64_t n = l->msg_at[l->head];
    int64_t written_at = l->sent_at[l->head];
    if (++l->head == l->cap)
        l->head = 0;
    l->inflight--;
    l->last_activity_ns = now;
    bool first = !cn->answered;
    cn->answered = true;
    const char *stream = stream_name(lg, l->part);
    const char *addr = rs_redis_addr(l->redis);

    if (reply->type == REDIS_REPLY_STRING) {
        cn->outstanding--;
        count_add(&cn->sent, 1);
        record(cn, now - written_at);
        if (l->refusals > 0) {
            rs_log(lg->o.log, RS_LOG_INFO, LOG_MODULE,
                   "connection %u: stream %s: redis %s accepts XADDs again", cn->index, stream,
                   addr);
            l->refusals = 0;
            rs_backoff_reset(&l->backoff);
        }
        return 0;
    }
    int len = reply->type == REDIS_REPLY_ERROR ? (reply->len > 200 ? 200 : (int)reply->len) : 0;
    if (reply->type == REDIS_REPLY_ERROR &&
        rs_redis_classify_error(reply->str, reply->len) == RS_REDIS_ERR_IO) {
        /* MOVED, ASK, TRYAGAIN, CLUSTERDOWN, LOADING, ...: not stored. The message goes back
         * to the queue, and out again once the link can take it: after a MOVED at once, on a
         * connection to the new master (rs_redis_redirected() marks this one to be dropped
         * once its replies are read, and tells the router), otherwise after a backoff step.
         * The backoff steps once per round of refusals, not once per refused XADD. */
        bool moved = reply->len > 6 && memcmp(reply->str, "MOVED ", 6) == 0;
        (void)rs_redis_redirected(l->redis, reply);
        if (link_enqueue(l, n, true) != 0) {
            cn->outstanding--;
            count_add(&cn->errors, 1);
            fail_run(cn, RS_REDIS_ERR_REPLY, "out of memory");
            return 1;
        }
        if (!l->refused_round) {
            l->refused_round = true;
            int64_t ms = moved && l->refusals == 0 ? 0 : rs_backoff_next_ms(&l->backoff);
            l->not_before_ns = now + ms * 1000000;
            if (l->refusals++ == 0)
                rs_log(lg->o.log, RS_LOG_WARN, LOG_MODULE,
                       "connection %u: XADD to stream %s refused by redis %s: %.*s; sending "
                       "it again (refusals in a row are logged once)",
                       cn->index, stream, addr, len, reply->str);
        }
        return 0;
    }
    cn->outstanding--;
    count_add(&cn->errors, 1);
    if (reply->type == REDIS_REPLY_ERROR) {
        rs_redis_status_t kind = rs_redis_classify_error(reply->str, reply->len);
        if (first) {
            /* WRONGTYPE, NOPERM, OOM, a syntax error: every XADD would fail the same way. */
            fail_run(cn, kind == RS_REDIS_ERR_AUTH ? RS_REDIS_ERR_AUTH : RS_REDIS_ERR_REPLY,
                     "XADD to stream %s failed: redis %s: %.*s", stream, addr, len, reply->str);
            return 1;
        }
        if (!cn->error_logged)
            rs_log(lg->o.log, RS_LOG_WARN, LOG_MODULE,
                   "connection %u: XADD to stream %s failed: redis %s: %.*s (further errors "
                   "are counted, not logged)",
                   cn->index, stream, addr, len, reply->str);
    } else if (!cn->error_logged) {
        rs_log(lg->o.log, RS_LOG_WARN, LOG_MODULE,
               "connection %u: unexpected reply type %d to XADD from redis %s (further errors "
               "are counted, not logged)",
               cn->index, reply->type, addr);
    }
    cn->error_logged = true;
    return 0;
}

/* Reads what `l`'s socket has and accounts for every complete reply. Returns 0, -1 when the
 * link broke (link_lost() done), or 1 when the run must stop. */
static int link_read(conn_t *cn, link_t *l)
{
    redisContext *c = rs_redis_context(l->redis);
    if (redisBufferRead(c) != REDIS_OK) {
        link_lost(cn, l, NULL);
        return -1;
    }
    int64_t now = rs_clock_monotonic_ns();
    for (;;) {
        void *reply = NULL;
        if (redisGetReplyFromReader(c, &reply) != REDIS_OK) {
            link_lost(cn, l, NULL);
            return -1;
        }
        if (reply == NULL)
            return 0;
        int rc = link_reply(cn, l, reply, now);
        freeReplyObject(reply);
        if (rc != 0)
            return rc;
    }
}

/* Takes the messages that are due from the schedule, as far as the pipeline has room, and
 * queues each on its stream's link. Sets *next_due as write_due() does. Returns 0, or 1 when
 * the run must stop (out of memory; fail_run() done). */
static int take_due(conn_t *cn, int64_t now, int64_t end_ns, int64_t *next_due)
{
    const rs_loadgen_t *lg = cn->lg;
    *next_due = INT64_MAX;
    while (cn->outstanding < lg->o.pipeline) {
        if (!next_is_due(cn, now, end_ns, next_due))
            break;
        uint64_t n = (uint64_t)cn->index + 1 + cn->written * lg->o.connections;
        char key[RS_KEY_TEXT_MAX];
        size_t klen;
        unsigned part = message_key(lg, n, key, &klen);
        if (link_enqueue(&cn->links[part], n, false) != 0) {
            fail_run(cn, RS_REDIS_ERR_REPLY, "out of memory");
            return 1;
        }
        cn->written++;
        cn->outstanding++;
    }
    return 0;
}

/* Connects the links that have messages queued and no connection (never made, broken, or
 * dropped after a redirection once its replies were read), and writes the queues of the
 * links that can take them. Lowers *wake to the next time one of them needs a look. Returns
 * 0, or 1 when the run must stop. */
static int serve_links(conn_t *cn, int64_t now, int64_t *wake)
{
    for (unsigned i = 0; i < cn->lg->partitions; i++) {
        link_t *l = &cn->links[i];
        if (l->queued == 0)
            continue;
        if (now < l->not_before_ns) {
            *wake = l->not_before_ns < *wake ? l->not_before_ns : *wake;
            continue;
        }
        if (!rs_redis_connected(l->redis)) {
            if (l->inflight > 0)
                continue; /* redirected: its replies are read first */
            int rc = link_connect(cn, l, now);
            if (rc < 0)
                return 1;
            if (rc > 0) {
                *wake = l->not_before_ns < *wake ? l->not_before_ns : *wake;
                continue;
            }
        }
        int rc = link_write(cn, l);
        if (rc > 0)
            return 1;
        if (rc < 0)
            *wake = now; /* reconnect at once: its queue is still there */
    }
    return 0;
}

/* Cluster mode's end: waits up to `limit_ms` for the replies still in flight on every link;
 * those that do not come, and the messages still queued (refused and not yet sent again),
 * count as errors. */
static void drain_links(conn_t *cn, int limit_ms)
{
    const rs_loadgen_t *lg = cn->lg;
    int64_t deadline = rs_clock_monotonic_ns() + (int64_t)limit_ms * 1000000;
    for (;;) {
        nfds_t np = 0;
        for (unsigned i = 0; i < lg->partitions; i++) {
            link_t *l = &cn->links[i];
            if (l->inflight > 0 && rs_redis_context(l->redis) != NULL) {
                cn->pfds[np] = (struct pollfd){rs_redis_context(l->redis)->fd, POLLIN, 0};
                cn->pfd_link[np++] = i;
            }
        }
        int64_t left = deadline - rs_clock_monotonic_ns();
        if (np == 0 || left <= 0)
            break;
        struct timespec ts = rs_clock_timespec(left);
        int rc = ppoll(cn->pfds, np, &ts, NULL);
        if (rc < 0 && errno != EINTR)
            break;
        for (nfds_t j = 0; rc > 0 && j < np; j++)
            if (cn->pfds[j].revents != 0)
                (void)link_read(cn, &cn->links[cn->pfd_link[j]]);
    }
    uint64_t left = 0;
    for (unsigned i = 0; i < lg->partitions; i++) {
        link_t *l = &cn->links[i];
        left += l->inflight + l->unflushed + l->queued;
        l->inflight = l->unflushed = l->queued = l->resends = 0;
    }
    if (left > 0) {
        if (cn->failure == RS_REDIS_OK)
            rs_log(lg->o.log, RS_LOG_WARN, LOG_MODULE,
                   "connection %u: %" PRIu64 " XADDs unanswered or not yet sent again when "
                   "stopping, counted as errors",
                   cn->index, left);
        count_add(&cn->errors, left);
    }
    cn->outstanding = 0;
}

/* Cluster mode's connection thread: conn_main()'s loop over one link per stream. */
static void conn_run_links(conn_t *cn)
{
    rs_loadgen_t *lg = cn->lg;
    int64_t end_ns = lg->o.duration_ns > 0 ? lg->start_ns + lg->o.duration_ns : INT64_MAX;
    int64_t reply_timeout_ns = (int64_t)lg->o.command_timeout_ms * 1000000;
    int drain_ms = lg->o.command_timeout_ms;

    for (;;) {
        if (is_stopping(lg)) {
            drain_ms = STOP_DRAIN_MS < drain_ms ? STOP_DRAIN_MS : drain_ms;
            break;
        }
        int64_t now = rs_clock_monotonic_ns();
        if (!lg->o.e2e)
            refresh_timestamp(cn, rs_clock_realtime_ns());
        int64_t wake = INT64_MAX;
        if (!cn->writing_done && take_due(cn, now, end_ns, &wake) != 0)
            break;
        if (serve_links(cn, now, &wake) != 0)
            break;
        if (cn->writing_done && cn->outstanding == 0)
            break;

        /* Wait for a reply on any link, the next due time or backoff step, a reply timeout,
         * or the stop. */
        nfds_t np = 0;
        for (unsigned i = 0; i < lg->partitions; i++) {
            link_t *l = &cn->links[i];
            if (l->inflight == 0 || rs_redis_context(l->redis) == NULL)
                continue;
            cn->pfds[np] = (struct pollfd){rs_redis_context(l->redis)->fd, POLLIN, 0};
            cn->pfd_link[np++] = i;
            if (l->last_activity_ns + reply_timeout_ns < wake)
                wake = l->last_activity_ns + reply_timeout_ns;
        }
        cn->pfds[np] = (struct pollfd){lg->stop_fd, POLLIN, 0};
        int64_t left = wake - rs_clock_monotonic_ns();
        struct timespec ts = rs_clock_timespec(left > 0 ? left : 0);
        int rc = ppoll(cn->pfds, np + 1, &ts, NULL);
        if (rc < 0) {
            if (errno == EINTR)
                continue;
            fail_run(cn, RS_REDIS_ERR_REPLY, "ppoll: %s", strerror(errno));
            break;
        }
        if (cn->pfds[np].revents != 0)
            continue; /* stopping: seen at the top */
        bool stop = false;
        for (nfds_t j = 0; rc > 0 && j < np && !stop; j++)
            if (cn->pfds[j].revents != 0)
                stop = link_read(cn, &cn->links[cn->pfd_link[j]]) > 0;
        if (stop)
            break;
        now = rs_clock_monotonic_ns();
        for (unsigned i = 0; i < lg->partitions; i++) {
            link_t *l = &cn->links[i];
            if (l->inflight > 0 && now - l->last_activity_ns >= reply_timeout_ns) {
                char why[96];
                snprintf(why, sizeof(why), "redis %s: no reply for %d ms", rs_redis_addr(l->redis),
                         lg->o.command_timeout_ms);
                link_lost(cn, l, why);
            }
        }
    }
    drain_links(cn, cn->failure == RS_REDIS_OK ? drain_ms : 0);
}

static void *conn_main(void *arg)
{
    conn_t *cn = arg;
    rs_loadgen_t *lg = cn->lg;
    /* Sleeps end within a microsecond of the deadline instead of the default 50 us slack,
     * which matters for pacing at tens of thousands of messages per second. */
    (void)prctl(PR_SET_TIMERSLACK, 1000UL, 0UL, 0UL, 0UL);
    if (lg->o.cluster != NULL)
        conn_run_links(cn);
    else
        conn_run(cn);

    cn->finished_ns = rs_clock_monotonic_ns();
    if (atomic_fetch_sub_explicit(&lg->running, 1, memory_order_acq_rel) == 1) {
        uint64_t one = 1;
        if (write(lg->done_fd, &one, sizeof(one)) < 0) {
            /* Cannot happen for an eventfd far from overflow; the join still works. */
        }
    }
    return NULL;
}

/* --- control -------------------------------------------------------------------------------- */

/* Raises the soft limit on open files, up to the hard limit, when `connections` sockets would
 * not fit under it (the usual soft limit is 1024). When they still do not fit, the connect
 * that runs out says "Too many open files". */
static void raise_file_limit(unsigned connections)
{
    struct rlimit rl;
    rlim_t need = (rlim_t)connections + 64; /* the process's other descriptors */
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= need)
        return;
    rl.rlim_cur = rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need ? rl.rlim_max : need;
    (void)setrlimit(RLIMIT_NOFILE, &rl);
}

rs_redis_status_t rs_loadgen_start(rs_loadgen_t *lg, char *err, size_t errlen)
{
    if (lg->start_called) {
        set_err(err, errlen, "the load generator was already started");
        return RS_REDIS_ERR_REPLY;
    }
    lg->start_called = true;
    bool cluster = lg->o.cluster != NULL;
    raise_file_limit(lg->o.connections * (cluster ? lg->partitions : 1));
    for (unsigned i = 0; i < lg->o.connections; i++) {
        for (unsigned j = 0; j < (cluster ? lg->partitions : 1); j++) {
            rs_redis_t *r = cluster ? lg->conns[i].links[j].redis : lg->conns[i].redis;
            rs_redis_status_t st = rs_redis_connect(r);
            if (st != RS_REDIS_OK) {
                set_err(err, errlen, "%s", rs_redis_errstr(r));
                return st;
            }
        }
    }

    pthread_attr_t attr;
    int rc = pthread_attr_init(&attr);
    if (rc == 0)
        rc = pthread_attr_setstacksize(&attr, THREAD_STACK_BYTES);
    if (rc != 0) {
        set_err(err, errlen, "thread attributes: %s", strerror(rc));
        return RS_REDIS_ERR_REPLY;
    }
    lg->start_ns = rs_clock_monotonic_ns();
    lg->prev_ns = lg->start_ns;
    atomic_store(&lg->running, lg->o.connections);
    for (unsigned i = 0; i < lg->o.connections; i++) {
        conn_t *cn = &lg->conns[i];
        if (lg->paced)
            cn->base_ns = lg->start_ns + (int64_t)((double)i * NS_PER_SEC / lg->o.rate);
        else
            cn->base_ns = lg->start_ns;
        rc = pthread_create(&cn->thread, &attr, conn_main, cn);
        if (rc != 0) {
            set_err(err, errlen, "cannot start connection thread %u: %s", i, strerror(rc));
            rs_loadgen_stop(lg);
            atomic_fetch_sub(&lg->running, lg->o.connections - i);
            pthread_attr_destroy(&attr);
            rs_loadgen_join(lg);
            return RS_REDIS_ERR_REPLY;
        }
        char name[24]; /* at most "rs-load-1023": within the 15 characters allowed */
        snprintf(name, sizeof(name), "rs-load-%u", i);
        pthread_setname_np(cn->thread, name);
        lg->threads_started++;
    }
    pthread_attr_destroy(&attr);
    return RS_REDIS_OK;
}

int rs_loadgen_done_fd(const rs_loadgen_t *lg)
{
    return lg->done_fd;
}

void rs_loadgen_stop(rs_loadgen_t *lg)
{
    if (atomic_exchange(&lg->stopping, true))
        return;
    uint64_t one = 1;
    if (write(lg->stop_fd, &one, sizeof(one)) < 0) {
        /* Cannot happen for a fresh eventfd; the threads also check the flag. */
    }
}

void rs_loadgen_join(rs_loadgen_t *lg)
{
    if (lg->joined)
        return;
    for (unsigned i = 0; i < lg->threads_started; i++)
        pthread_join(lg->conns[i].thread, NULL);
    lg->joined = true;
}

void rs_loadgen_progress(rs_loadgen_t *lg, char *buf, size_t buflen)
{
    int64_t now = rs_clock_monotonic_ns();
    unsigned e = atomic_load_explicit(&lg->epoch, memory_order_relaxed) + 1;
    atomic_store_explicit(&lg->epoch, e, memory_order_relaxed);
    rs_latency_reset(lg->interval);
    uint64_t sent = 0, errors = 0;
    for (unsigned i = 0; i < lg->o.connections; i++) {
        conn_t *cn = &lg->conns[i];
        sent += count_read(&cn->sent);
        errors += count_read(&cn->errors);
        unsigned prev = e - 1;
        if (cn->window[0] != NULL &&
            atomic_load_explicit(&cn->window_epoch[prev & 1], memory_order_acquire) == prev)
            rs_latency_merge(lg->interval, cn->window[prev & 1]);
    }
    double seconds = (double)(now - lg->prev_ns) / NS_PER_SEC;
    double rate = seconds > 0 ? (double)(sent - lg->prev_sent) / seconds : 0.0;
    snprintf(buf, buflen, "sent=%" PRIu64 " errors=%" PRIu64 " rate=%.1f p50_us=%.1f p99_us=%.1f",
             sent, errors, rate, (double)rs_latency_percentile(lg->interval, 50) / 1e3,
             (double)rs_latency_percentile(lg->interval, 99) / 1e3);
    lg->prev_sent = sent;
    lg->prev_ns = now;
}

void rs_loadgen_result(rs_loadgen_t *lg, rs_loadgen_result_t *out)
{
    memset(out, 0, sizeof(*out));
    out->failure = RS_REDIS_OK;
    rs_latency_reset(lg->summary);
    int64_t end = lg->start_ns;
    for (unsigned i = 0; i < lg->o.connections; i++) {
        const conn_t *cn = &lg->conns[i];
        out->sent += count_read(&cn->sent);
        out->errors += count_read(&cn->errors);
        rs_latency_merge(lg->summary, cn->total);
        if (cn->finished_ns > end)
            end = cn->finished_ns;
        if (out->failure == RS_REDIS_OK && cn->failure != RS_REDIS_OK) {
            out->failure = cn->failure;
            snprintf(out->failure_msg, sizeof(out->failure_msg), "%s", cn->failure_msg);
        }
    }
    out->seconds = (double)(end - lg->start_ns) / NS_PER_SEC;
    out->rate = out->seconds > 0 ? (double)out->sent / out->seconds : 0.0;
    out->latency = lg->summary;
}
