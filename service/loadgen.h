#ifndef RS_LOADGEN_H
#define RS_LOADGEN_H

/*
 * The producer's load generator (redstream-producer --rate): XADDs of the demo's entries to
 * one stream over C connections, one thread and one Redis connection each, at a target rate
 * or as fast as Redis answers, with up to P commands in flight per connection, measuring each
 * XADD's round trip in a log-linear histogram (latency.h).
 *
 * Entries have the demo's fields, message ("Message #<n>", numbered 1, 2, 3, ... over all
 * connections; with a payload size, padded or cut to exactly that many bytes), type and
 * timestamp (RFC 3339, UTC, whole seconds), then with a key field that field with the value
 * "key-<k>", k = rs_key_index(n, keys, hot_share) for message number n (partition.h), then
 * with e2e the field RS_FIELD_SENT_NS (message.h): CLOCK_REALTIME in nanoseconds, read as the
 * command is put into the write buffer. No tracing spans are made.
 * With partitions N > 1 each entry goes to the stream "<stream>:<p>", p = rs_partition_of(key,
 * N) (partition.h), instead of to the stream itself; the figures stay totals over all of them.
 *
 * Cluster mode (opts.cluster set): each connection thread has one Redis connection per stream
 * it writes (the stream, or each partition stream), routed to the master serving that stream
 * (rs_redis_route()), and writes each entry on its stream's connection. An XADD answered with
 * a redirection or a "try again" error (MOVED, ASK, TRYAGAIN, CLUSTERDOWN, LOADING, BUSY,
 * MASTERDOWN) was not stored: it is written again (after a MOVED on a connection to the new
 * master) and counted once, as sent or as an error, like every other XADD.
 *
 * Lifecycle, all from one controlling thread (the producer's main):
 *     rs_loadgen_new -> rs_loadgen_start -> [rs_loadgen_progress each second]
 *     -> (rs_loadgen_done_fd readable, or rs_loadgen_stop) -> rs_loadgen_join
 *     -> rs_loadgen_result -> rs_loadgen_free
 * The connection threads ("rs-load-<n>") inherit the caller's signal mask: block SIGINT and
 * SIGTERM before rs_loadgen_start() so that only the controlling thread takes them.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "latency.h"
#include "log.h"
#include "partition.h"
#include "redis_conn.h"

#define RS_LOADGEN_PIPELINE_MAX    65536
#define RS_LOADGEN_CONNECTIONS_MAX 1024
#define RS_LOADGEN_PAYLOAD_MAX     (512u * 1024 * 1024)
#define RS_LOADGEN_RATE_MAX        1e9 /* messages per second; far above what one Redis takes */
/* Cluster mode: connections x streams (partitions), the sockets the run opens, at most. */
#define RS_LOADGEN_CLUSTER_SOCKETS_MAX 4096

typedef struct {
    const rs_config_t *cfg; /* redis.*, producer.stream and producer.type; borrowed until
                               rs_loadgen_free() */
    rs_logger_t *log;       /* borrowed until rs_loadgen_free(); used from every thread */
    double rate;            /* messages per second over all connections; 0 = unpaced */
    unsigned pipeline;      /* XADDs in flight per connection, 1..RS_LOADGEN_PIPELINE_MAX */
    unsigned connections;   /* 1..RS_LOADGEN_CONNECTIONS_MAX */
    size_t payload_size;    /* 0: the demo's "Message #<n>"; else the message field's exact
                               length, up to RS_LOADGEN_PAYLOAD_MAX */
    int64_t duration_ns;    /* stop writing after this long; 0 = no limit */
    uint64_t count;         /* XADDs to write over all connections; 0 = no limit */
    uint64_t maxlen;        /* XADD MAXLEN ~ maxlen; 0 = no trimming */
    bool e2e;               /* add RS_FIELD_SENT_NS to every entry */
    const char *key_field;  /* NULL: no key; else the name of the key field every entry gets
                               (partition.h); borrowed until rs_loadgen_free() */
    uint64_t keys;          /* with key_field: how many keys, 1..RS_KEYS_MAX */
    int hot_share;          /* with key_field: RS_HOT_SHARE_NONE, or the percentage 0..100 of
                               messages that carry key 0 (then keys >= 2) */
    unsigned partitions;    /* 0 or 1: write to producer.stream; 2..RS_PARTITIONS_MAX (needs
                               key_field): to "<producer.stream>:<partition>" */
    bool progress;          /* keep per-second figures for rs_loadgen_progress() */
    int command_timeout_ms; /* a connection with XADDs unanswered this long is broken */
    rs_cluster_t *cluster;  /* NULL: standalone (cfg's redis.host:port); else cluster mode's
                               router (see above), whose map the caller has fetched; borrowed
                               until rs_loadgen_free(), shared with the connection threads */
} rs_loadgen_opts_t;

/* The figures of a finished run. */
typedef struct {
    uint64_t sent;               /* XADDs Redis answered with an id */
    uint64_t errors;             /* error replies, plus XADDs whose connection broke, or that were
                                    unanswered when the run stopped, before their reply (in
                                    cluster mode: plus those still waiting to be sent again
                                    then; a redirection is not an error) */
    double seconds;              /* from the start of the run to the last connection's end */
    double rate;                 /* sent / seconds */
    const rs_latency_t *latency; /* the round trip (command written to reply read) of every
                                    XADD that got an id, so its count is `sent`; borrowed
                                    until rs_loadgen_free() */
    rs_redis_status_t failure;   /* RS_REDIS_OK, or why the run was cut short: a connection's
                                    first XADD got an error retrying cannot fix
                                    (RS_REDIS_ERR_REPLY, or RS_REDIS_ERR_AUTH for NOPERM), or a
                                    reconnection was refused (RS_REDIS_ERR_AUTH) */
    char failure_msg[256];       /* its message (already logged); "" when none */
} rs_loadgen_result_t;

typedef struct rs_loadgen rs_loadgen_t;

/* Checks `opts` (copied) and allocates everything the run needs: the connections'
 * handles (unconnected), buffers, histograms. Returns NULL with a message in `err` when an
 * option is out of range (in cluster mode also: connections x streams above
 * RS_LOADGEN_CLUSTER_SOCKETS_MAX) or memory runs out. Caller frees with rs_loadgen_free(). */
rs_loadgen_t *rs_loadgen_new(const rs_loadgen_opts_t *opts, char *err, size_t errlen);

/* Stops and joins the threads if still running, then frees everything; NULL is ignored.
 * The controlling thread only. */
void rs_loadgen_free(rs_loadgen_t *lg);

/* Connects every connection in turn (blocking, up to the configured connect timeout each;
 * in cluster mode each connection's socket to each stream's master), then starts one thread
 * per connection, which from then on owns it. Returns RS_REDIS_OK, or
 * the first connection's failure (no thread started; the message in `err`, not logged), or
 * RS_REDIS_ERR_REPLY when a thread cannot be started. Once only; the controlling thread. */
rs_redis_status_t rs_loadgen_start(rs_loadgen_t *lg, char *err, size_t errlen);

/* A descriptor that becomes readable (POLLIN, and stays so) once every connection thread has
 * finished: count written and answered, duration over, stopped, or failed. For poll(2)
 * only: never read it. Valid until rs_loadgen_free(). Any thread. */
int rs_loadgen_done_fd(const rs_loadgen_t *lg);

/* Asks every connection to stop: no more XADDs are written, replies still in flight are
 * awaited for at most a second (those that do not come count as errors). Returns at once;
 * then wait for rs_loadgen_done_fd() or call rs_loadgen_join(). Any thread; idempotent. */
void rs_loadgen_stop(rs_loadgen_t *lg);

/* Waits for every connection thread to finish (after rs_loadgen_start() succeeded; at once
 * otherwise). Blocks; the controlling thread only. */
void rs_loadgen_join(rs_loadgen_t *lg);

/* Writes one progress line covering the time since the previous call (or the start):
 * "sent=%llu errors=%llu rate=%.1f p50_us=%.1f p99_us=%.1f", the totals so far, then the
 * messages per second and the XADD latency percentiles of that interval (opts.progress must be
 * set for the percentiles; they are 0 otherwise). Meant to be called about once a second.
 * Reads the threads' atomics without stopping them. The controlling thread only. */
void rs_loadgen_progress(rs_loadgen_t *lg, char *buf, size_t buflen);

/* Fills `out` with the run's figures. After rs_loadgen_join(); the controlling thread. */
void rs_loadgen_result(rs_loadgen_t *lg, rs_loadgen_result_t *out);

#endif
