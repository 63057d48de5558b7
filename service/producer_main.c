/*
 * redstream-producer: publishes the Go demo's entries ("Message #<n>", a type, an RFC 3339
 * timestamp) to one Redis stream at a fixed interval, until SIGINT/SIGTERM or --count.
 *
 * It keeps the demo's flags (--redis-addr, --redis-pass, --stream, --type, --interval) on top
 * of the shared configuration file, so scripts written for `go run producer` keep working
 * while a packaged producer runs from /etc/redstream/redstream.conf. Flags override the file;
 * the REDSTREAM_REDIS_PASSWORD environment variable overrides the file's password and
 * --redis-pass overrides both.
 *
 * DESIGN: a single thread owns everything (the configuration, the logger, one rs_redis_t), so
 * there is no lock; the only global is the stop flag written by the signal handler.
 * Pacing uses absolute deadlines on CLOCK_MONOTONIC (deadline k = start + k * interval), so the
 * time an XADD takes does not accumulate into drift, and a wall-clock step cannot stall or
 * rush the schedule. When an XADD ends after the next deadline has already passed (an
 * outage, a slow server) the schedule restarts one interval from now instead of bursting to
 * catch up, as Go's time.Ticker drops ticks.
 * SIGINT and SIGTERM stay blocked except inside the waits, which are ppoll() calls that
 * unblock them atomically. clock_nanosleep(TIMER_ABSTIME) would be the obvious sleep, but a
 * signal arriving between the flag check and the call would then only be noticed at the next
 * deadline (up to a day away with a long --interval); with ppoll a pending signal interrupts
 * the wait at once with EINTR, and the flag is checked. A signal that arrives during an XADD
 * stays pending until the next wait, which comes at most one command timeout later.
 * Delivery is at-least-once: when the connection breaks during an XADD, the producer cannot
 * know whether Redis stored the entry, so after reconnecting it sends the same entry again,
 * and it may then appear twice (with different ids, same content).
 * Tracing (tracing.enabled): each entry gets a PRODUCER span around its XADD and carries the
 * span's context as a `traceparent` field. Spans go to the exporter's "rs-trace" thread (the
 * only other thread; it inherits the blocked SIGINT/SIGTERM, so signals still reach only this
 * thread's ppoll), which is flushed for at most FLUSH_MAX_MS when the producer stops.
 * Load mode (--rate): the load generator (loadgen.c) runs one thread per connection; they are
 * started after the stop signals are blocked, so main still takes every signal, in a ppoll on
 * the generator's "done" descriptor that also paces the --progress lines. Load mode makes no
 * spans: a span per entry would cost more than the XADD it measures, and the generator
 * reports its own latency percentiles.
 * Keys and partitions (--key-field, --keys, --hot-key-share, --partitions), in both modes:
 * message n's key and, with partitions, its stream "<stream>:<p>" are pure functions of n
 * (partition.h), so an entry sent again after a reconnection keeps both, and the load
 * generator's connections agree without sharing anything. They are flags only, not
 * configuration keys: they shape test and benchmark traffic, not a deployment.
 * Cluster mode (--cluster, or redis.cluster = true): one router (cluster.h) whose slot map is
 * fetched once at start, under the same one-attempt rule as the standalone connection (a seed
 * that cannot be asked, or that is no cluster node, ends the run with 69; refused
 * credentials with 77), then one connection per stream written, kept in an rs_redis_routes
 * table and routed to the master serving that stream. A -MOVED reply comes back from
 * rs_redis_command_argv() like a lost connection, so publish()'s usual reconnect-and-resend
 * takes the same entry to the new master; -ASK is followed inside redis_conn.c, and
 * TRYAGAIN/CLUSTERDOWN are retried like LOADING. --replay-dlq's connection is routed to the
 * dead-letter stream, whose slot is its stream's (rs_config_dlq_name()), so the replay's
 * MULTI/EXEC runs on one node. Load mode passes the router to the generator, which routes
 * each of its connections' streams itself.
 */

#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backoff.h"
#include "cli.h"
#include "clock.h"
#include "cluster.h"
#include "config.h"
#include "duration.h"
#include "latency.h"
#include "loadgen.h"
#include "log.h"
#include "message.h"
#include "partition.h"
#include "redis_conn.h"
#include "redis_routes.h"
#include "replay.h"
#include "trace.h"
#include "trace_export.h"
#include "version.h"

#define LOG_MODULE "producer"

/* The producer's commands are single XADDs answered in microseconds; the timeout only
 * catches a server that accepted the connection and hung. */
#define COMMAND_TIMEOUT_MIN_MS 5000

/* The longest --interval, matching producer.interval_ms's range in the configuration. */
#define INTERVAL_MAX_MS INT64_C(86400000)

#define NS_PER_MS INT64_C(1000000)

/* The longest the span exporter may take to flush when the producer stops. */
#define FLUSH_MAX_MS 2000

/* The longest --duration: 30 days. */
#define DURATION_MAX_MS INT64_C(2592000000)

/* --keys when not given. */
#define KEYS_DEFAULT 100

#define NS_PER_SEC INT64_C(1000000000)

static const char *const prog = "redstream-producer";

/* The signal that asked us to stop (SIGINT or SIGTERM), 0 while running. The one global the
 * house style allows: the handler can reach nothing else. */
static volatile sig_atomic_t stop_signal;

static void on_stop_signal(int sig)
{
    stop_signal = sig;
}

/* What the command line asked for, validated; applied on top of the configuration. */
typedef struct {
    const char *config_path; /* NULL: default path or built-in defaults */
    bool check_only;
    const char *redis_addr; /* NULL: keep the configuration's */
    bool cluster;           /* --cluster: cluster mode whatever redis.cluster says */
    char *redis_pass;       /* a copy (argv's is blanked); see flags_forget_password() */
    bool have_redis_pass;
    const char *stream;
    const char *type;
    bool have_interval;
    int64_t interval_ms;
    uint64_t count;         /* 0: run until stopped */
    uint64_t maxlen;        /* 0: no trimming */
    const char *replay_dlq; /* --replay-dlq: replay this dead-letter stream instead */
    bool dry_run;
    bool e2e; /* --e2e: add RS_FIELD_SENT_NS to every entry */
    /* Keyed publishing, in both modes. */
    const char *key_field; /* --key-field: NULL when not given */
    uint64_t keys;         /* 0: not given (KEYS_DEFAULT) */
    int hot_share;         /* RS_HOT_SHARE_NONE unless --hot-key-share */
    uint64_t partitions;   /* 0: not given (1, the stream itself) */
    const char *key_flag;  /* the first flag given that needs --key-field */
    /* Load mode, selected by --rate. */
    bool load;
    double rate;           /* messages/s over all connections; 0 = as fast as possible */
    uint64_t pipeline;     /* 0: not given (1) */
    uint64_t connections;  /* 0: not given (1) */
    uint64_t payload_size; /* 0: not given (the demo's "Message #<n>") */
    int64_t duration_ms;   /* 0: not given (no limit) */
    bool progress;
    const char *load_flag; /* the first flag given that only load mode takes */
} flags_t;

/* Everything the publishing loop uses; lives on main's stack. */
typedef struct {
    const rs_config_t *cfg;
    rs_logger_t *log;
    rs_redis_t *redis;         /* the connection in use: `own`, or in cluster mode the one of
                                  `routes` for the stream being written */
    rs_redis_t *own;           /* standalone mode's connection (in cluster mode: unused) */
    rs_cluster_t *cluster;     /* cluster mode's router; NULL in standalone mode */
    rs_redis_routes_t *routes; /* cluster mode: one connection per stream written */
    sigset_t wait_mask;        /* the signal mask inside waits: SIGINT/SIGTERM unblocked */
    int64_t interval_ns;
    uint64_t count;
    uint64_t maxlen;
    uint64_t published;
    rs_backoff_t busy_backoff;   /* paces retries while Redis answers LOADING, BUSY, ... */
    rs_trace_exporter_t *tracer; /* NULL when tracing is off */
    bool e2e;                    /* add RS_FIELD_SENT_NS to every entry */
    int command_timeout_ms;
    const char *key_field; /* NULL: entries carry no key */
    uint64_t keys;
    int hot_share;
    unsigned partitions; /* 1: the stream itself */
    char *stream_buf;    /* run()'s, with partitions: holds "<stream>:<p>" */
    size_t stream_cap;
} producer_t;

/* Where one entry goes and the key it carries. */
typedef struct {
    const char *stream;        /* producer.stream, or its partition (p->stream_buf) */
    char key[RS_KEY_TEXT_MAX]; /* "" without --key-field */
    size_t key_len;
} route_t;

/* publish()'s answer when a stop signal ended a wait; other answers are exit codes. */
#define PUBLISH_STOPPED (-1)

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: %s [OPTION]...\n"
            "\n"
            "Publishes entries {message: \"Message #<n>\", type, timestamp} to a Redis stream,\n"
            "one per interval, until interrupted (SIGINT/SIGTERM) or --count is reached.\n"
            "Flags override the configuration file.\n"
            "\n"
            "  -c, --config FILE        configuration file (default %s when it\n"
            "                           exists, otherwise built-in defaults)\n"
            "      --check-config       validate the configuration (with the flags applied),\n"
            "                           print a summary, and exit\n"
            "      --redis-addr H:P     Redis address, host:port or [v6addr]:port\n"
            "                           (default 127.0.0.1:6380); with --cluster a seed node\n"
            "      --cluster            talk to a Redis Cluster (also on when the configuration\n"
            "                           says redis.cluster = true): the slot map is asked of the\n"
            "                           seed (--redis-addr, else redis.nodes, else\n"
            "                           redis.host:port) and each stream is written on the master\n"
            "                           serving it, in every mode; redis.db must be 0\n"
            "      --redis-pass PASS    Redis password; prefer %s, because\n"
            "                           the command line is visible to other users (ps)\n"
            "      --stream NAME        stream to publish to (default events)\n"
            "      --type TYPE          the entries' type field (default test)\n"
            "      --interval DURATION  pause between entries: 500ms, 1s, 2m, 1h30m; 0 = none\n"
            "                           (default 1s)\n"
            "      --count N            stop after N entries (N >= 1; default: never)\n"
            "      --maxlen N           trim the stream to about N entries (XADD MAXLEN ~ N,\n"
            "                           N >= 1; default: no trimming)\n"
            "      --replay-dlq STREAM  instead of publishing, move the dead letters of STREAM\n"
            "                           (or of the dead-letter stream STREAM itself) back to\n"
            "                           their original streams; --count N moves at most N\n"
            "      --dry-run            with --replay-dlq: list what would move, change nothing\n"
            "      --e2e                add the field %s, the send time\n"
            "                           (CLOCK_REALTIME, ns), for the consumer's end-to-end\n"
            "                           latency; in both modes\n"
            "      --key-field F        add the field F to every entry, a key \"key-<k>\":\n"
            "                           message n gets k = (n - 1) mod K; in both modes\n"
            "      --keys K             with --key-field: K keys, 1..%" PRIu64 " (default %d)\n"
            "      --hot-key-share P    with --key-field: P%% of the messages (0..100, spread\n"
            "                           evenly) get key-0, the rest go round robin over\n"
            "                           key-1 .. key-<K-1> (needs K >= 2)\n"
            "      --partitions N       with --key-field: write each entry to the stream\n"
            "                           <stream>:<p>, p = FNV-1a-32(key) mod N, 1..%u\n"
            "                           (default 1: the stream itself, no suffix)\n"
            "  -h, --help               show this help and exit\n"
            "  -V, --version            show the version and exit\n"
            "\n"
            "Load mode, selected by --rate: XADDs over several connections (one thread each),\n"
            "pipelined and paced, then a summary on stdout ending in a machine-readable line\n"
            "  result: sent=N errors=E seconds=S rate=R p50_us=.. p90_us=.. p99_us=..\n"
            "          p999_us=.. max_us=..\n"
            "No line per entry is logged and no spans are made. Error replies are counted;\n"
            "only a first XADD that fails for good (e.g. WRONGTYPE) ends the run.\n"
            "      --rate R             messages per second over all connections;\n"
            "                           0 = as fast as Redis answers\n"
            "      --pipeline P         XADDs in flight per connection, 1..%d (default 1)\n"
            "      --connections C      connections, 1..%d (default 1)\n"
            "      --payload-size B     make the message field exactly B bytes, \"Message #<n>\"\n"
            "                           padded with x's, 1..%u (default: no padding)\n"
            "      --duration DURATION  stop writing after DURATION (as --interval; at most\n"
            "                           720h); with --count, whichever comes first\n"
            "      --count N            in load mode: N XADDs over all connections\n"
            "      --progress           a line on stderr each second: sent, errors, msg/s and\n"
            "                           XADD latency p50/p99 of that second\n"
            "      --maxlen N           applies in load mode too\n"
            "\n"
            "Environment: %s overrides redis.password.\n"
            "Exit status: 0 stopped by SIGINT/SIGTERM or --count reached, 1 runtime failure\n"
            "(e.g. the key is not a stream), 64 bad usage, 69 Redis unreachable at start\n"
            "(with --cluster also: the seed is not a cluster node), 77 Redis refused the\n"
            "credentials, 78 invalid configuration.\n",
            prog, RS_CONFIG_DEFAULT_PATH, RS_ENV_REDIS_PASSWORD, RS_FIELD_SENT_NS, RS_KEYS_MAX,
            KEYS_DEFAULT, RS_PARTITIONS_MAX, RS_LOADGEN_PIPELINE_MAX, RS_LOADGEN_CONNECTIONS_MAX,
            RS_LOADGEN_PAYLOAD_MAX, RS_ENV_REDIS_PASSWORD);
}

__attribute__((format(printf, 1, 2))) static void usage_error(const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    (void)vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s: %s\nTry '%s --help' for more information.\n", prog, msg, prog);
}

/* Parses a decimal N from `min` to `max` (no sign, no spaces, no trailing text). Returns 0, or
 * -1 after printing a usage error naming `flag`. */
static int parse_range(const char *flag, const char *text, uint64_t min, uint64_t max,
                       uint64_t *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long long v = text[0] >= '0' && text[0] <= '9' ? strtoull(text, &end, 10) : 0;
    if (end == NULL || *end != '\0' || errno != 0 || v < min || v > max) {
        usage_error("%s: must be a whole number from %" PRIu64 " to %" PRIu64 ", got '%s'", flag,
                    min, max, text);
        return -1;
    }
    *out = (uint64_t)v;
    return 0;
}

/* Parses a decimal N >= 1, at most INT64_MAX so Redis accepts it. As parse_range(). */
static int parse_positive(const char *flag, const char *text, uint64_t *out)
{
    return parse_range(flag, text, 1, (uint64_t)INT64_MAX, out);
}

/* Parses --rate: a decimal number of messages per second from 0 to RS_LOADGEN_RATE_MAX ("0",
 * "2500", "0.5"). Returns 0, or -1 after printing a usage error. */
static int parse_rate(const char *text, double *out)
{
    char *end = NULL;
    errno = 0;
    double v = text[0] >= '0' && text[0] <= '9' ? strtod(text, &end) : -1;
    if (end == NULL || *end != '\0' || errno != 0 || !(v >= 0 && v <= RS_LOADGEN_RATE_MAX)) {
        usage_error("--rate: must be a number of messages per second from 0 (as fast as "
                    "possible) to %.0f, got '%s'",
                    RS_LOADGEN_RATE_MAX, text);
        return -1;
    }
    *out = v;
    return 0;
}

/* Wipes and frees the --redis-pass copy once the configuration holds its own; the other
 * flags point into argv and stay valid. */
static void flags_forget_password(flags_t *fl)
{
    if (fl->redis_pass != NULL) {
        explicit_bzero(fl->redis_pass, strlen(fl->redis_pass));
        free(fl->redis_pass);
        fl->redis_pass = NULL;
    }
}

/* Remembers the first flag that needs --key-field, for the error when it is missing. */
static void note_key_flag(flags_t *fl, const char *flag)
{
    if (fl->key_flag == NULL)
        fl->key_flag = flag;
}

/* Checks the name given to --key-field. Returns 0, or -1 after printing a usage error. The
 * names the producer writes itself are refused (an entry with a field twice is ambiguous to
 * every reader), and so is the redstream. prefix, which dead letters use. */
static int check_key_field(const char *name)
{
    static const char *const taken[] = {RS_FIELD_MESSAGE, RS_FIELD_TYPE, RS_FIELD_TIMESTAMP,
                                        RS_FIELD_TRACEPARENT};
    if (name[0] == '\0') {
        usage_error("--key-field: must not be empty");
        return -1;
    }
    for (size_t i = 0; i < sizeof(taken) / sizeof(taken[0]); i++)
        if (strcmp(name, taken[i]) == 0) {
            usage_error("--key-field: '%s' is a field the producer already writes; choose "
                        "another name",
                        name);
            return -1;
        }
    if (strncmp(name, "redstream.", 10) == 0) {
        usage_error("--key-field: names starting with 'redstream.' are reserved, got '%s'", name);
        return -1;
    }
    return 0;
}

/* Remembers the first flag only load mode takes, for the error when --rate is missing. */
static void note_load_flag(flags_t *fl, const char *flag)
{
    if (fl->load_flag == NULL)
        fl->load_flag = flag;
}

/* Parses argv into `fl`. Returns 0 to run, 1 when --help or --version was answered, -1 on a
 * usage error (already printed). */
static int parse_flags(int argc, char **argv, flags_t *fl)
{
    enum {
        OPT_CHECK_CONFIG = 256,
        OPT_REDIS_ADDR,
        OPT_REDIS_PASS,
        OPT_CLUSTER,
        OPT_STREAM,
        OPT_TYPE,
        OPT_INTERVAL,
        OPT_COUNT,
        OPT_MAXLEN,
        OPT_REPLAY_DLQ,
        OPT_DRY_RUN,
        OPT_E2E,
        OPT_RATE,
        OPT_PIPELINE,
        OPT_CONNECTIONS,
        OPT_PAYLOAD_SIZE,
        OPT_DURATION,
        OPT_PROGRESS,
        OPT_KEY_FIELD,
        OPT_KEYS,
        OPT_HOT_KEY_SHARE,
        OPT_PARTITIONS,
    };
    static const struct option options[] = {
        {"config", required_argument, NULL, 'c'},
        {"check-config", no_argument, NULL, OPT_CHECK_CONFIG},
        {"redis-addr", required_argument, NULL, OPT_REDIS_ADDR},
        {"redis-pass", required_argument, NULL, OPT_REDIS_PASS},
        {"cluster", no_argument, NULL, OPT_CLUSTER},
        {"stream", required_argument, NULL, OPT_STREAM},
        {"type", required_argument, NULL, OPT_TYPE},
        {"interval", required_argument, NULL, OPT_INTERVAL},
        {"count", required_argument, NULL, OPT_COUNT},
        {"maxlen", required_argument, NULL, OPT_MAXLEN},
        {"replay-dlq", required_argument, NULL, OPT_REPLAY_DLQ},
        {"dry-run", no_argument, NULL, OPT_DRY_RUN},
        {"e2e", no_argument, NULL, OPT_E2E},
        {"rate", required_argument, NULL, OPT_RATE},
        {"pipeline", required_argument, NULL, OPT_PIPELINE},
        {"connections", required_argument, NULL, OPT_CONNECTIONS},
        {"payload-size", required_argument, NULL, OPT_PAYLOAD_SIZE},
        {"duration", required_argument, NULL, OPT_DURATION},
        {"progress", no_argument, NULL, OPT_PROGRESS},
        {"key-field", required_argument, NULL, OPT_KEY_FIELD},
        {"keys", required_argument, NULL, OPT_KEYS},
        {"hot-key-share", required_argument, NULL, OPT_HOT_KEY_SHARE},
        {"partitions", required_argument, NULL, OPT_PARTITIONS},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    char err[256];
    int opt;

    while ((opt = getopt_long(argc, argv, "c:hV", options, NULL)) != -1) {
        switch (opt) {
        case 'c':
            fl->config_path = optarg;
            break;
        case OPT_CHECK_CONFIG:
            fl->check_only = true;
            break;
        case OPT_REDIS_ADDR:
            fl->redis_addr = optarg;
            break;
        case OPT_CLUSTER:
            fl->cluster = true;
            break;
        case OPT_REDIS_PASS:
            flags_forget_password(fl);
            fl->redis_pass = strdup(optarg);
            if (fl->redis_pass == NULL) {
                fprintf(stderr, "%s: out of memory\n", prog);
                return -1;
            }
            fl->have_redis_pass = true;
            /* Blank argv's copy so /proc/<pid>/cmdline (ps) stops showing it. The window
             * before this line remains, hence the advice to use the environment. */
            memset(optarg, 'x', strlen(optarg));
            break;
        case OPT_STREAM:
        case OPT_TYPE:
            if (optarg[0] == '\0') {
                usage_error("--%s: must not be empty", opt == OPT_STREAM ? "stream" : "type");
                return -1;
            }
            if (opt == OPT_STREAM)
                fl->stream = optarg;
            else
                fl->type = optarg;
            break;
        case OPT_INTERVAL:
            if (rs_duration_parse_ms(optarg, INTERVAL_MAX_MS, &fl->interval_ms, err, sizeof(err)) !=
                0) {
                usage_error("--interval: %s", err);
                return -1;
            }
            fl->have_interval = true;
            break;
        case OPT_COUNT:
            if (parse_positive("--count", optarg, &fl->count) != 0)
                return -1;
            break;
        case OPT_MAXLEN:
            if (parse_positive("--maxlen", optarg, &fl->maxlen) != 0)
                return -1;
            break;
        case OPT_REPLAY_DLQ:
            if (optarg[0] == '\0') {
                usage_error("--replay-dlq: must not be empty");
                return -1;
            }
            fl->replay_dlq = optarg;
            break;
        case OPT_DRY_RUN:
            fl->dry_run = true;
            break;
        case OPT_E2E:
            fl->e2e = true;
            break;
        case OPT_RATE:
            if (parse_rate(optarg, &fl->rate) != 0)
                return -1;
            fl->load = true;
            break;
        case OPT_PIPELINE:
            if (parse_range("--pipeline", optarg, 1, RS_LOADGEN_PIPELINE_MAX, &fl->pipeline) != 0)
                return -1;
            note_load_flag(fl, "--pipeline");
            break;
        case OPT_CONNECTIONS:
            if (parse_range("--connections", optarg, 1, RS_LOADGEN_CONNECTIONS_MAX,
                            &fl->connections) != 0)
                return -1;
            note_load_flag(fl, "--connections");
            break;
        case OPT_PAYLOAD_SIZE:
            if (parse_range("--payload-size", optarg, 1, RS_LOADGEN_PAYLOAD_MAX,
                            &fl->payload_size) != 0)
                return -1;
            note_load_flag(fl, "--payload-size");
            break;
        case OPT_DURATION:
            if (rs_duration_parse_ms(optarg, DURATION_MAX_MS, &fl->duration_ms, err, sizeof(err)) !=
                0) {
                usage_error("--duration: %s", err);
                return -1;
            }
            if (fl->duration_ms < 1) {
                usage_error("--duration: must be at least 1ms, got '%s'", optarg);
                return -1;
            }
            note_load_flag(fl, "--duration");
            break;
        case OPT_PROGRESS:
            fl->progress = true;
            note_load_flag(fl, "--progress");
            break;
        case OPT_KEY_FIELD:
            if (check_key_field(optarg) != 0)
                return -1;
            fl->key_field = optarg;
            break;
        case OPT_KEYS:
            if (parse_range("--keys", optarg, 1, RS_KEYS_MAX, &fl->keys) != 0)
                return -1;
            note_key_flag(fl, "--keys");
            break;
        case OPT_HOT_KEY_SHARE: {
            uint64_t share;
            if (parse_range("--hot-key-share", optarg, 0, 100, &share) != 0)
                return -1;
            fl->hot_share = (int)share;
            note_key_flag(fl, "--hot-key-share");
            break;
        }
        case OPT_PARTITIONS:
            if (parse_range("--partitions", optarg, 1, RS_PARTITIONS_MAX, &fl->partitions) != 0)
                return -1;
            note_key_flag(fl, "--partitions");
            break;
        case 'h':
            usage(stdout);
            return 1;
        case 'V':
            printf("%s %s\n", prog, RS_VERSION);
            return 1;
        default:
            /* getopt_long has already named the offending flag. */
            fprintf(stderr, "Try '%s --help' for more information.\n", prog);
            return -1;
        }
    }
    if (optind < argc) {
        usage_error("unexpected argument '%s'", argv[optind]);
        return -1;
    }
    if (fl->dry_run && fl->replay_dlq == NULL) {
        usage_error("--dry-run: only meaningful with --replay-dlq");
        return -1;
    }
    if (fl->load_flag != NULL && !fl->load) {
        usage_error("%s: needs --rate (messages per second; --rate 0 = as fast as possible)",
                    fl->load_flag);
        return -1;
    }
    if (fl->load && fl->have_interval) {
        usage_error("--interval: not used with --rate (load mode paces by --rate)");
        return -1;
    }
    if (fl->replay_dlq != NULL && (fl->load || fl->e2e || fl->key_field != NULL)) {
        const char *flag = "--key-field";
        if (fl->load)
            flag = "--rate";
        else if (fl->e2e)
            flag = "--e2e";
        usage_error("%s: cannot be combined with --replay-dlq", flag);
        return -1;
    }
    if (fl->key_flag != NULL && fl->key_field == NULL) {
        usage_error("%s: needs --key-field (the field whose value is each entry's key)",
                    fl->key_flag);
        return -1;
    }
    if (fl->keys == 0)
        fl->keys = KEYS_DEFAULT;
    if (fl->hot_share != RS_HOT_SHARE_NONE && fl->keys < 2) {
        usage_error("--hot-key-share: needs --keys of at least 2 (key-0 is the hot key, the "
                    "others share the rest), got --keys %" PRIu64,
                    fl->keys);
        return -1;
    }
    if (fl->partitions == 0)
        fl->partitions = 1;
    return 0;
}

/* Applies the flags on top of the loaded configuration. Returns 0, or an exit code after
 * printing the reason. */
static int apply_flags(rs_config_t *cfg, const flags_t *fl)
{
    char err[256];

    if (fl->cluster)
        cfg->redis.cluster = true;
    if (cfg->redis.cluster && cfg->redis.db != 0) {
        /* A file that sets both was refused when it was loaded: --cluster made this. */
        usage_error("--cluster: redis.db is %d in the configuration, but a Redis Cluster has "
                    "only database 0 (set redis.db = 0)",
                    cfg->redis.db);
        return RS_EXIT_USAGE;
    }
    if (fl->redis_addr != NULL && cfg->redis.cluster) {
        /* The seed replaces redis.nodes: the cluster tells where everything else is. */
        if (rs_config_set_cluster_seed(cfg, fl->redis_addr, "--redis-addr", err, sizeof(err)) !=
            0) {
            usage_error("%s", err);
            return RS_EXIT_USAGE;
        }
    } else if (fl->redis_addr != NULL &&
               rs_config_set_redis_addr(cfg, fl->redis_addr, "--redis-addr", err, sizeof(err)) !=
                   0) {
        usage_error("%s", err);
        return RS_EXIT_USAGE;
    }
    if (fl->have_redis_pass) {
        if (rs_config_set_string(&cfg->redis.password, fl->redis_pass) != 0)
            goto oom;
        cfg->redis.password_source = fl->redis_pass[0] != '\0' ? RS_SECRET_FLAG : RS_SECRET_NONE;
    }
    if (fl->stream != NULL && rs_config_set_string(&cfg->producer.stream, fl->stream) != 0)
        goto oom;
    if (fl->type != NULL && rs_config_set_string(&cfg->producer.type, fl->type) != 0)
        goto oom;
    if (fl->have_interval)
        cfg->producer.interval_ms = (int)fl->interval_ms;
    return 0;
oom:
    fprintf(stderr, "%s: out of memory\n", prog);
    return RS_EXIT_FAILURE;
}

/* Installs the stop handlers, ignores SIGPIPE (see redis_conn.h), and blocks SIGINT/SIGTERM
 * outside the waits. Fills `wait_mask` with the mask the waits use. Returns 0 or -1. */
static int setup_signals(sigset_t *wait_mask)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sigemptyset(&sa.sa_mask);
    /* No SA_RESTART: an interrupted wait must return so the flag is seen. */
    sa.sa_flags = 0;
    sa.sa_handler = on_stop_signal;
    if (sigaction(SIGINT, &sa, NULL) != 0 || sigaction(SIGTERM, &sa, NULL) != 0)
        return -1;
    sa.sa_handler = SIG_IGN;
    if (sigaction(SIGPIPE, &sa, NULL) != 0)
        return -1;

    sigset_t stop_set;
    sigemptyset(&stop_set);
    sigaddset(&stop_set, SIGINT);
    sigaddset(&stop_set, SIGTERM);
    if (sigprocmask(SIG_BLOCK, &stop_set, wait_mask) != 0)
        return -1;
    sigdelset(wait_mask, SIGINT);
    sigdelset(wait_mask, SIGTERM);
    return 0;
}

/* Waits until CLOCK_MONOTONIC reaches `deadline_ns` or a stop signal arrives. Returns 0 when
 * the deadline passed, 1 when stopping. A pending signal is delivered on entry, so a stop
 * requested during the preceding XADD ends the wait at once. */
static int wait_until(const producer_t *p, int64_t deadline_ns)
{
    for (;;) {
        struct timespec ts = {0, 0};
        int64_t left = deadline_ns - rs_clock_monotonic_ns();
        if (left > 0) {
            ts.tv_sec = (time_t)(left / 1000000000);
            ts.tv_nsec = (long)(left % 1000000000);
        }
        /* EINTR means the handler ran; a timeout means the deadline is reached (rechecked
         * below in case the kernel woke us early). */
        (void)ppoll(NULL, 0, &ts, &p->wait_mask);
        if (stop_signal != 0)
            return 1;
        if (left <= 0 || rs_clock_monotonic_ns() >= deadline_ns)
            return 0;
    }
}

/* rs_redis_wait_fn for reconnecting: an interruptible sleep of `ms`. */
static int wait_ms(void *arg, long ms)
{
    const producer_t *p = arg;
    return wait_until(p, rs_clock_monotonic_ns() + (int64_t)ms * NS_PER_MS);
}

static const char *signal_name(int sig)
{
    switch (sig) {
    case SIGINT:
        return "SIGINT";
    case SIGTERM:
        return "SIGTERM";
    default:
        return "signal";
    }
}

static int exit_code_for(rs_redis_status_t st)
{
    switch (st) {
    case RS_REDIS_OK:
        return RS_EXIT_OK;
    case RS_REDIS_ERR_IO:
        return RS_EXIT_UNAVAILABLE;
    case RS_REDIS_ERR_AUTH:
        return RS_EXIT_NOPERM;
    case RS_REDIS_ERR_REPLY:
    default:
        return RS_EXIT_FAILURE;
    }
}

/* The length of an error reply's code, its first word ("BUSY", "LOADING"), for "%.*s". */
static int error_code_len(const redisReply *reply)
{
    size_t n = 0;
    while (n < reply->len && n < 32 && reply->str[n] != ' ')
        n++;
    return (int)n;
}

/* Fills `r` with message number `seq`'s key (with --key-field) and stream (with
 * --partitions, written into p->stream_buf). */
static void route_for(producer_t *p, uint64_t seq, route_t *r)
{
    r->stream = p->cfg->producer.stream;
    r->key[0] = '\0';
    r->key_len = 0;
    if (p->key_field == NULL)
        return;
    r->key_len = rs_key_format(r->key, rs_key_index(seq, p->keys, p->hot_share));
    if (p->partitions > 1) {
        snprintf(p->stream_buf, p->stream_cap, "%s:%" PRIu32, p->cfg->producer.stream,
                 rs_partition_of(r->key, r->key_len, p->partitions));
        r->stream = p->stream_buf;
    }
}

/* Connects p->redis, retrying with backoff. Returns 0, PUBLISH_STOPPED when a stop signal
 * ended a wait, or the exit code for a refusal (logged here). */
static int reconnect(producer_t *p)
{
    rs_redis_status_t st = rs_redis_connect_retry(p->redis, wait_ms, p);
    if (st == RS_REDIS_OK)
        return 0;
    /* rs_redis_connect_retry() gives up on I/O errors only when told to stop. */
    if (st == RS_REDIS_ERR_IO && stop_signal != 0)
        return PUBLISH_STOPPED;
    rs_log(p->log, RS_LOG_ERROR, LOG_MODULE, "%s", rs_redis_errstr(p->redis));
    return exit_code_for(st);
}

/* Publishes entry `e` to r->stream, with r's key, retrying the same entry through reconnects
 * and "not ready yet" replies. Returns 0 once Redis returned an id (copied into `id`, `idlen`
 * bytes), PUBLISH_STOPPED when a stop signal ended a wait, or the exit code for a failure
 * retrying cannot fix (logged here). */
static int publish(producer_t *p, const route_t *r, const rs_demo_entry_t *e, char *id,
                   size_t idlen)
{
    const char *stream = r->stream;
    const char *argv[RS_XADD_MAX_ARGS + 4];
    size_t argvlen[RS_XADD_MAX_ARGS + 4];
    char maxlen_buf[24];
    char sent_ns[24];
    int argc = rs_xadd_argv(stream, p->maxlen, maxlen_buf, e, argv, argvlen);
    if (p->key_field != NULL) {
        argv[argc] = p->key_field;
        argvlen[argc] = strlen(p->key_field);
        argv[argc + 1] = r->key;
        argvlen[argc + 1] = r->key_len;
        argc += 2;
    }
    if (p->e2e) {
        argv[argc] = RS_FIELD_SENT_NS;
        argvlen[argc] = strlen(RS_FIELD_SENT_NS);
        argv[argc + 1] = sent_ns;
        argc += 2;
    }

    for (;;) {
        /* Cluster mode: a stream's connection is made when its first entry is due. */
        if (!rs_redis_connected(p->redis)) {
            int rc = reconnect(p);
            if (rc != 0)
                return rc;
        }
        /* --e2e: the send time of this attempt, read just before the command is written. */
        if (p->e2e) {
            int n = snprintf(sent_ns, sizeof(sent_ns), "%" PRId64, rs_clock_realtime_ns());
            argvlen[argc - 1] = (size_t)n;
        }
        redisReply *reply = rs_redis_command_argv(p->redis, argc, argv, argvlen);
        if (reply == NULL) {
            rs_log(p->log, RS_LOG_WARN, LOG_MODULE,
                   "publish failed stream=%s message=\"%s\": %s; reconnecting, then sending "
                   "the same entry again (at-least-once: it may appear twice)",
                   stream, e->message, rs_redis_errstr(p->redis));
            int rc = reconnect(p);
            if (rc != 0)
                return rc;
            continue;
        }

        if (reply->type == REDIS_REPLY_STRING) {
            if (p->busy_backoff.attempt > 0)
                rs_log(p->log, RS_LOG_INFO, LOG_MODULE,
                       "redis %s accepts writes again after %u "
                       "attempts",
                       rs_redis_addr(p->redis), p->busy_backoff.attempt + 1);
            rs_log(p->log, RS_LOG_INFO, LOG_MODULE,
                   "published stream=%s id=%.*s message=\"%s\"%s%s", stream, (int)reply->len,
                   reply->str, e->message, r->key_len > 0 ? " key=" : "", r->key);
            snprintf(id, idlen, "%.*s", (int)reply->len, reply->str);
            freeReplyObject(reply);
            rs_backoff_reset(&p->busy_backoff);
            return 0;
        }

        int code = RS_EXIT_FAILURE;
        if (reply->type == REDIS_REPLY_ERROR) {
            int len = reply->len > 200 ? 200 : (int)reply->len;
            rs_redis_status_t kind = rs_redis_classify_error(reply->str, reply->len);
            if (kind == RS_REDIS_ERR_IO) {
                /* LOADING and the like: the server will get there; retry the same entry.
                 * Rate limit as for outages: the first reply in full, then one short line
                 * per backoff step, then the recovery. */
                int64_t ms = rs_backoff_next_ms(&p->busy_backoff);
                unsigned attempt = p->busy_backoff.attempt;
                if (attempt == 1)
                    rs_log(p->log, RS_LOG_WARN, LOG_MODULE,
                           "publish failed stream=%s message=\"%s\": redis %s: %.*s; retrying "
                           "in %" PRId64 " ms (attempt 1)",
                           stream, e->message, rs_redis_addr(p->redis), len, reply->str, ms);
                else
                    rs_log(p->log, RS_LOG_WARN, LOG_MODULE,
                           "redis %s still answers %.*s, retrying in %" PRId64 " ms (attempt %u)",
                           rs_redis_addr(p->redis), error_code_len(reply), reply->str, ms, attempt);
                freeReplyObject(reply);
                if (wait_ms(p, (long)ms) != 0)
                    return PUBLISH_STOPPED;
                continue;
            }
            /* WRONGTYPE, NOPERM, OOM, a syntax error: sending it again cannot help. */
            rs_log(p->log, RS_LOG_ERROR, LOG_MODULE, "publish failed stream=%s: redis %s: %.*s",
                   stream, rs_redis_addr(p->redis), len, reply->str);
            code = kind == RS_REDIS_ERR_AUTH ? RS_EXIT_NOPERM : RS_EXIT_FAILURE;
        } else {
            rs_log(p->log, RS_LOG_ERROR, LOG_MODULE,
                   "publish failed stream=%s: redis %s: unexpected reply type %d to XADD", stream,
                   rs_redis_addr(p->redis), reply->type);
        }
        freeReplyObject(reply);
        return code;
    }
}

/* Starts the PRODUCER span of entry `e` (a new trace) to `stream` and writes its context into
 * the entry. Returns 0, or -1 when no span could be started (the entry goes out untraced). */
static int start_span(producer_t *p, const char *stream, rs_span_t *span, rs_demo_entry_t *e)
{
    char name[RS_SPAN_TEXT_MAX];
    snprintf(name, sizeof(name), "%s publish", stream);
    if (rs_span_start(span, name, RS_SPAN_KIND_PRODUCER, NULL, p->cfg->tracing.sample_ratio) != 0)
        return -1;
    rs_traceparent_format(&span->ctx, e->traceparent);
    rs_span_set_str(span, "messaging.system", "redis");
    rs_span_set_str(span, "messaging.destination.name", stream);
    rs_span_set_str(span, "messaging.operation.type", "send");
    return 0;
}

/* Ends a PRODUCER span with publish()'s answer `rc` and the entry's id, and queues it. */
static void finish_span(producer_t *p, rs_span_t *span, int rc, const char *id)
{
    if (rc == 0)
        rs_span_set_str(span, "messaging.message.id", id);
    else
        rs_span_set_status(span, RS_SPAN_STATUS_ERROR,
                           rc == PUBLISH_STOPPED ? "stopped before Redis accepted the entry"
                                                 : "Redis refused the entry");
    rs_span_end(span);
    rs_trace_exporter_submit(p->tracer, span);
}

/* Cluster mode: makes the connection of `stream` (made, unconnected, on first use) the one
 * in use. Returns 0, or -1 when out of memory (logged). */
static int use_route(producer_t *p, const char *stream)
{
    rs_redis_route_t *route = rs_redis_routes_get(p->routes, stream);
    if (route != NULL) {
        p->redis = route->redis;
        return 0;
    }
    p->redis = p->own;
    rs_log(p->log, RS_LOG_ERROR, LOG_MODULE, "stream=%s: out of memory", stream);
    return -1;
}

/* Publishes until stopped, --count, or a fatal error. Returns the exit code. */
static int run(producer_t *p)
{
    const char *why = "error";
    int code = RS_EXIT_OK;
    uint64_t seq = 1;
    int64_t deadline = rs_clock_monotonic_ns();
    if (p->partitions > 1) {
        /* "<stream>:<p>": the stream, a colon, up to 10 digits and the NUL. */
        p->stream_cap = strlen(p->cfg->producer.stream) + 12;
        p->stream_buf = malloc(p->stream_cap);
        if (p->stream_buf == NULL) {
            rs_log(p->log, RS_LOG_ERROR, LOG_MODULE, "out of memory");
            return RS_EXIT_FAILURE;
        }
    }

    for (;;) {
        /* Delivers a stop signal that arrived during the last XADD (see DESIGN). */
        if (wait_until(p, 0) != 0) {
            why = signal_name(stop_signal);
            break;
        }
        rs_demo_entry_t e;
        if (rs_demo_entry_init(&e, seq, p->cfg->producer.type, time(NULL)) != 0) {
            rs_log(p->log, RS_LOG_ERROR, LOG_MODULE, "cannot format the current time");
            code = RS_EXIT_FAILURE;
            break;
        }
        route_t route;
        route_for(p, seq, &route);
        if (p->routes != NULL && use_route(p, route.stream) != 0) {
            code = RS_EXIT_FAILURE;
            break;
        }
        rs_span_t span;
        bool traced = p->tracer != NULL && start_span(p, route.stream, &span, &e) == 0;
        char id[64] = "";
        int rc = publish(p, &route, &e, id, sizeof(id));
        if (traced)
            finish_span(p, &span, rc, id);
        if (rc == PUBLISH_STOPPED) {
            why = signal_name(stop_signal);
            break;
        }
        if (rc != 0) {
            code = rc;
            break;
        }
        p->published++;
        seq++;
        if (p->count != 0 && p->published >= p->count) {
            why = "--count reached";
            break;
        }
        if (p->interval_ns > 0) {
            int64_t now = rs_clock_monotonic_ns();
            deadline += p->interval_ns;
            if (deadline <= now)
                deadline = now + p->interval_ns; /* fell behind: restart, no burst */
            if (wait_until(p, deadline) != 0) {
                why = signal_name(stop_signal);
                break;
            }
        }
    }
    rs_log(p->log, code == RS_EXIT_OK ? RS_LOG_INFO : RS_LOG_ERROR, LOG_MODULE,
           "stopped after %" PRIu64 " messages: %s (reconnects=%lu)", p->published, why,
           p->routes != NULL ? rs_redis_routes_reconnects(p->routes)
                             : rs_redis_reconnects(p->redis));
    free(p->stream_buf);
    p->stream_buf = NULL;
    return code;
}

/* The reason a load run ended, for the log line. */
static const char *load_end_reason(const flags_t *fl, const rs_loadgen_result_t *res)
{
    if (stop_signal != 0)
        return signal_name(stop_signal);
    if (res->failure != RS_REDIS_OK)
        return "error";
    if (fl->count != 0 && res->sent + res->errors >= fl->count)
        return "--count reached";
    return fl->duration_ms != 0 ? "--duration elapsed" : "finished";
}

/* Writes the keyed-publishing part of the starting log line into `buf`: "" without
 * --key-field, else " key_field=F keys=K [hot_key_share=P%] partitions=N (streams S:0 ..
 * S:<N-1>)". */
static void describe_keys(const producer_t *p, char *buf, size_t len)
{
    buf[0] = '\0';
    if (p->key_field == NULL)
        return;
    char hot[32] = "";
    if (p->hot_share != RS_HOT_SHARE_NONE)
        snprintf(hot, sizeof(hot), " hot_key_share=%d%%", p->hot_share);
    int n = snprintf(buf, len, " key_field=%s keys=%" PRIu64 "%s partitions=%u", p->key_field,
                     p->keys, hot, p->partitions);
    if (p->partitions > 1 && n > 0 && (size_t)n < len)
        snprintf(buf + n, len - (size_t)n, " (streams %s:0 .. %s:%u)", p->cfg->producer.stream,
                 p->cfg->producer.stream, p->partitions - 1);
}

/* Prints the summary of a load run to stdout: two lines for people, then the "result:" line
 * scripts parse (bench/ does). With partitions the figures are totals over all of them. */
static void print_load_summary(const producer_t *p, const flags_t *fl,
                               const rs_loadgen_result_t *res)
{
    const rs_latency_t *h = res->latency;
    double p50 = (double)rs_latency_percentile(h, 50) / 1e3;
    double p90 = (double)rs_latency_percentile(h, 90) / 1e3;
    double p99 = (double)rs_latency_percentile(h, 99) / 1e3;
    double p999 = (double)rs_latency_percentile(h, 99.9) / 1e3;
    double max = (double)rs_latency_max(h) / 1e3;
    const char *stream = p->cfg->producer.stream;
    if (p->partitions > 1)
        printf("load: %" PRIu64 " XADDs to streams %s:0 .. %s:%u (by the hash of field %s)",
               res->sent + res->errors, stream, stream, p->partitions - 1, p->key_field);
    else
        printf("load: %" PRIu64 " XADDs to stream %s", res->sent + res->errors, stream);
    printf(" over %" PRIu64 " connection%s, pipeline %" PRIu64 ": %" PRIu64 " sent, %" PRIu64
           " errors in %.3f s = %.1f msg/s\n",
           fl->connections, fl->connections == 1 ? "" : "s", fl->pipeline, res->sent, res->errors,
           res->seconds, res->rate);
    printf("XADD latency (us): min %.1f, mean %.1f, p50 %.1f, p90 %.1f, p99 %.1f, p99.9 %.1f, "
           "max %.1f\n",
           (double)rs_latency_min(h) / 1e3, rs_latency_mean(h) / 1e3, p50, p90, p99, p999, max);
    printf("result: sent=%" PRIu64 " errors=%" PRIu64 " seconds=%.3f rate=%.1f p50_us=%.1f "
           "p90_us=%.1f p99_us=%.1f p999_us=%.1f max_us=%.1f\n",
           res->sent, res->errors, res->seconds, res->rate, p50, p90, p99, p999, max);
    fflush(stdout);
}

/* Load mode (--rate): runs the load generator until --count, --duration, a stop signal or a
 * fatal error, printing --progress lines meanwhile, then the summary. `redis_desc` names the
 * server (or the cluster) for the log. Returns the exit code. */
static int run_load(producer_t *p, flags_t *fl, const char *redis_desc)
{
    if (fl->pipeline == 0)
        fl->pipeline = 1;
    if (fl->connections == 0)
        fl->connections = 1;
    rs_loadgen_opts_t o;
    memset(&o, 0, sizeof(o));
    o.cfg = p->cfg;
    o.log = p->log;
    o.rate = fl->rate;
    o.pipeline = (unsigned)fl->pipeline;
    o.connections = (unsigned)fl->connections;
    o.payload_size = (size_t)fl->payload_size;
    o.duration_ns = fl->duration_ms * NS_PER_MS;
    o.count = fl->count;
    o.maxlen = fl->maxlen;
    o.e2e = fl->e2e;
    o.key_field = p->key_field;
    o.keys = p->keys;
    o.hot_share = p->hot_share;
    o.partitions = p->partitions;
    o.progress = fl->progress;
    o.command_timeout_ms = p->command_timeout_ms;
    o.cluster = p->cluster;

    char err[512];
    rs_loadgen_t *lg = rs_loadgen_new(&o, err, sizeof(err));
    if (lg == NULL) {
        rs_log(p->log, RS_LOG_ERROR, LOG_MODULE, "%s", err);
        return RS_EXIT_FAILURE;
    }
    char count_text[24] = "unlimited", duration_text[32] = "unlimited";
    if (fl->count != 0)
        snprintf(count_text, sizeof(count_text), "%" PRIu64, fl->count);
    if (fl->duration_ms != 0)
        snprintf(duration_text, sizeof(duration_text), "%" PRId64 "ms", fl->duration_ms);
    char keys_text[256];
    describe_keys(p, keys_text, sizeof(keys_text));
    rs_log(p->log, RS_LOG_INFO, LOG_MODULE,
           "starting %s load mode%s%s stream=%s type=%s rate=%g%s connections=%" PRIu64
           " pipeline=%" PRIu64 " payload_size=%" PRIu64 " count=%s duration=%s maxlen=%" PRIu64
           " e2e=%s%s%s",
           prog, p->cluster != NULL ? " redis=" : "", p->cluster != NULL ? redis_desc : "",
           p->cfg->producer.stream, p->cfg->producer.type, fl->rate,
           fl->rate == 0 ? " (as fast as possible)" : "", fl->connections, fl->pipeline,
           fl->payload_size, count_text, duration_text, fl->maxlen, fl->e2e ? "on" : "off",
           keys_text, p->cfg->tracing.enabled ? " (tracing is off in load mode)" : "");

    rs_redis_status_t st = rs_loadgen_start(lg, err, sizeof(err));
    if (st != RS_REDIS_OK) {
        rs_log(p->log, RS_LOG_ERROR, LOG_MODULE, "%s", err);
        rs_loadgen_free(lg);
        return exit_code_for(st);
    }
    if (p->cluster != NULL)
        /* In cluster mode each connection has one socket per stream it writes. */
        rs_log(p->log, RS_LOG_INFO, LOG_MODULE,
               "connected %" PRIu64 " connection%s x %u stream%s to redis %s", fl->connections,
               fl->connections == 1 ? "" : "s", p->partitions, p->partitions == 1 ? "" : "s",
               redis_desc);
    else
        rs_log(p->log, RS_LOG_INFO, LOG_MODULE, "connected %" PRIu64 " connection%s to redis %s",
               fl->connections, fl->connections == 1 ? "" : "s", redis_desc);

    /* Wait for the generator to finish; a stop signal interrupts the ppoll at once (see
     * DESIGN) and asks the connections to stop, and the wait goes on until they have. */
    struct pollfd done = {.fd = rs_loadgen_done_fd(lg), .events = POLLIN, .revents = 0};
    int64_t next_tick = rs_clock_monotonic_ns() + NS_PER_SEC;
    bool stopping = false;
    for (;;) {
        struct timespec ts = {0, 0};
        if (fl->progress) {
            int64_t left = next_tick - rs_clock_monotonic_ns();
            ts = rs_clock_timespec(left > 0 ? left : 0);
        }
        int rc = ppoll(&done, 1, fl->progress ? &ts : NULL, &p->wait_mask);
        if (stop_signal != 0 && !stopping) {
            stopping = true;
            rs_log(p->log, RS_LOG_INFO, LOG_MODULE, "%s: stopping the connections",
                   signal_name(stop_signal));
            rs_loadgen_stop(lg);
        }
        if (rc > 0 && done.revents != 0)
            break;
        int64_t now = rs_clock_monotonic_ns();
        if (fl->progress && now >= next_tick) {
            char line[256];
            rs_loadgen_progress(lg, line, sizeof(line));
            fprintf(stderr, "progress: %s\n", line);
            next_tick += NS_PER_SEC;
            if (next_tick <= now)
                next_tick = now + NS_PER_SEC;
        }
    }
    rs_loadgen_join(lg);

    rs_loadgen_result_t res;
    rs_loadgen_result(lg, &res);
    print_load_summary(p, fl, &res);
    int code = res.failure == RS_REDIS_OK ? RS_EXIT_OK : exit_code_for(res.failure);
    rs_log(p->log, code == RS_EXIT_OK ? RS_LOG_INFO : RS_LOG_ERROR, LOG_MODULE,
           "stopped after %" PRIu64 " messages (%" PRIu64 " errors): %s", res.sent, res.errors,
           load_end_reason(fl, &res));
    rs_loadgen_free(lg);
    return code;
}

/* The dead-letter stream that --replay-dlq `name` means: `name` itself when it ends in
 * group.dead_letter_suffix, else the dead-letter stream of the stream `name`. In cluster mode
 * the dead-letter stream of "orders" is "{orders}:dlq" (rs_config_dlq_name()), and "orders",
 * "orders:dlq" and "{orders}:dlq" all name it: a name ending in the suffix is taken as its
 * stream's. Writes it to `out`; returns 0, or -1 with a message in `err`. */
static int replay_target(const rs_config_t *cfg, const char *name, char *out, size_t outlen,
                         char *err, size_t errlen)
{
    const char *suffix = cfg->group.dead_letter_suffix;
    size_t nlen = strlen(name), slen = strlen(suffix);
    bool is_dlq = nlen >= slen && strcmp(name + nlen - slen, suffix) == 0;
    if (!cfg->redis.cluster || (is_dlq && nlen == slen)) {
        if (is_dlq)
            snprintf(out, outlen, "%s", name);
        else
            snprintf(out, outlen, "%s%s", name, suffix);
        return 0;
    }
    if (!is_dlq)
        return rs_config_dlq_name(cfg, name, out, outlen, err, errlen);
    char *stream = strndup(name, nlen - slen);
    if (stream == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    int rc = rs_config_dlq_name(cfg, stream, out, outlen, err, errlen);
    free(stream);
    return rc;
}

/* --replay-dlq: moves the dead letters of `dlq` back, on p->redis (connected; in cluster mode
 * routed to `dlq`). A failure ends the replay: what was moved stays moved, and running it
 * again moves the rest. */
static int replay(producer_t *p, const char *dlq, bool dry_run)
{
    char err[512];
    long n = rs_replay_dlq(p->redis, p->log, dlq, p->count, dry_run, stdout, err, sizeof(err));
    if (n < 0) {
        rs_log(p->log, RS_LOG_ERROR, LOG_MODULE, "replaying %s: %s", dlq, err);
        return RS_EXIT_FAILURE;
    }
    rs_log(p->log, RS_LOG_INFO, LOG_MODULE, "%s %ld dead letters of %s",
           dry_run ? "listed" : "moved", n, dlq);
    return RS_EXIT_OK;
}

/* Writes "seed H:P" (or "seeds H:P, H:P, ...") of cluster mode into `buf`. */
static void describe_seeds(const rs_config_t *cfg, char *buf, size_t len)
{
    char host[RS_CLUSTER_HOST_MAX];
    int port;
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; used < len && rs_config_cluster_seed(cfg, i, host, sizeof(host), &port) == 0;
         i++) {
        bool v6 = strchr(host, ':') != NULL;
        int w = snprintf(buf + used, len - used, "%s%s%s%s:%d",
                         i == 0 ? (cfg->redis.nodes.n > 1 ? "seeds " : "seed ") : ", ",
                         v6 ? "[" : "", host, v6 ? "]" : "", port);
        if (w < 0)
            break;
        used += (size_t)w;
    }
}

/* Cluster mode: makes the router and fetches the slot map, one attempt as for the standalone
 * connection (see DESIGN), then the table of per-stream connections. Writes "cluster (seed
 * H:P, N masters)" into `desc` for log lines. Returns 0, or the exit code (logged). */
static int start_cluster(producer_t *p, char *desc, size_t desclen)
{
    char err[512], seeds[512];
    describe_seeds(p->cfg, seeds, sizeof(seeds));
    p->cluster = rs_cluster_new(p->cfg, p->log, err, sizeof(err));
    if (p->cluster == NULL) {
        rs_log(p->log, RS_LOG_ERROR, LOG_MODULE, "%s", err);
        return RS_EXIT_FAILURE;
    }
    rs_redis_status_t st = rs_cluster_refresh(p->cluster, err, sizeof(err));
    if (st != RS_REDIS_OK) {
        /* A seed that is no cluster node (RS_REDIS_ERR_REPLY) is as unusable as one that
         * does not answer: 69, like any Redis the producer cannot talk to at start. */
        rs_log(p->log, RS_LOG_ERROR, LOG_MODULE, "cannot use the redis cluster (%s): %s", seeds,
               err);
        return st == RS_REDIS_ERR_AUTH ? RS_EXIT_NOPERM : RS_EXIT_UNAVAILABLE;
    }
    size_t masters = rs_cluster_masters(p->cluster, NULL, 0);
    snprintf(desc, desclen, "cluster (%s, %zu master%s)", seeds, masters, masters == 1 ? "" : "s");
    p->routes = rs_redis_routes_new(p->cfg, p->cluster, "producer", p->command_timeout_ms, p->log);
    if (p->routes == NULL) {
        rs_log(p->log, RS_LOG_ERROR, LOG_MODULE, "out of memory");
        return RS_EXIT_FAILURE;
    }
    return 0;
}

/* Flushes the spans for at most FLUSH_MAX_MS and releases the exporter and libcurl. */
static void stop_tracing(producer_t *p)
{
    if (p->tracer == NULL)
        return;
    rs_trace_exporter_stop(p->tracer, rs_clock_monotonic_ns() + FLUSH_MAX_MS * NS_PER_MS);
    rs_trace_exporter_free(p->tracer);
    p->tracer = NULL;
    curl_global_cleanup();
}

int main(int argc, char **argv)
{
    flags_t fl;
    memset(&fl, 0, sizeof(fl));
    fl.hot_share = RS_HOT_SHARE_NONE;
    int rc = parse_flags(argc, argv, &fl);
    if (rc != 0) {
        flags_forget_password(&fl);
        return rc < 0 ? RS_EXIT_USAGE : RS_EXIT_OK;
    }

    rs_config_t *cfg = rs_cli_load_config(prog, fl.config_path);
    if (cfg == NULL) {
        flags_forget_password(&fl);
        return RS_EXIT_CONFIG;
    }
    rc = apply_flags(cfg, &fl);
    flags_forget_password(&fl);
    if (rc != 0) {
        rs_config_free(cfg);
        return rc;
    }
    if (fl.check_only) {
        rs_cli_print_check(prog, cfg);
        rs_config_free(cfg);
        return RS_EXIT_OK;
    }

    producer_t p;
    memset(&p, 0, sizeof(p));
    p.cfg = cfg;
    p.count = fl.count;
    p.maxlen = fl.maxlen;
    p.e2e = fl.e2e;
    p.key_field = fl.key_field;
    p.keys = fl.keys;
    p.hot_share = fl.hot_share;
    p.partitions = (unsigned)fl.partitions;
    p.interval_ns = (int64_t)cfg->producer.interval_ms * NS_PER_MS;
    rs_backoff_init(&p.busy_backoff, 100, 5000, 0);
    p.log = rs_logger_new(stderr, cfg->log.level);
    if (p.log == NULL || setup_signals(&p.wait_mask) != 0) {
        fprintf(stderr, "%s: %s\n", prog, p.log == NULL ? "out of memory" : strerror(errno));
        rs_logger_free(p.log);
        rs_config_free(cfg);
        return RS_EXIT_FAILURE;
    }
    /* The span exporter's thread needs libcurl's global state and jansson's hash seed set up
     * while this is the only thread. --replay-dlq and load mode make no spans. */
    if (cfg->tracing.enabled && fl.replay_dlq == NULL && !fl.load) {
        char err[512];
        json_object_seed(0);
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
            rs_log(p.log, RS_LOG_ERROR, LOG_MODULE, "cannot initialise libcurl");
            rs_logger_free(p.log);
            rs_config_free(cfg);
            return RS_EXIT_FAILURE;
        }
        p.tracer = rs_trace_exporter_new(cfg, RS_VERSION, p.log, err, sizeof(err));
        if (p.tracer == NULL || rs_trace_exporter_start(p.tracer, err, sizeof(err)) != 0) {
            rs_log(p.log, RS_LOG_ERROR, LOG_MODULE, "%s", err);
            rs_trace_exporter_free(p.tracer);
            curl_global_cleanup();
            rs_logger_free(p.log);
            rs_config_free(cfg);
            return RS_EXIT_FAILURE;
        }
    }

    int command_timeout = cfg->redis.connect_timeout_ms > COMMAND_TIMEOUT_MIN_MS
                              ? cfg->redis.connect_timeout_ms
                              : COMMAND_TIMEOUT_MIN_MS;
    p.command_timeout_ms = command_timeout;
    p.own = p.redis = rs_redis_new_from_config(cfg, "producer", command_timeout, p.log);
    if (p.redis == NULL) {
        rs_log(p.log, RS_LOG_ERROR, LOG_MODULE, "out of memory");
        rc = RS_EXIT_FAILURE;
        goto out;
    }
    char redis_desc[600];
    snprintf(redis_desc, sizeof(redis_desc), "%s", rs_redis_addr(p.redis));
    if (cfg->redis.cluster && (rc = start_cluster(&p, redis_desc, sizeof(redis_desc))) != 0)
        goto out;

    if (fl.load) {
        /* The generator has connections of its own; p.redis only names the address. */
        rc = run_load(&p, &fl, redis_desc);
        goto out;
    }

    char dlq[1024] = "";
    if (fl.replay_dlq != NULL) {
        char err[512];
        if (replay_target(cfg, fl.replay_dlq, dlq, sizeof(dlq), err, sizeof(err)) != 0) {
            usage_error("--replay-dlq: %s", err);
            rc = RS_EXIT_USAGE;
            goto out;
        }
        /* The replay's MULTI/EXEC writes the dead-letter stream and its stream, which share a
         * slot: one connection, to the master serving it. */
        if (p.routes != NULL && use_route(&p, dlq) != 0) {
            rc = RS_EXIT_FAILURE;
            goto out;
        }
    }

    char count_text[24] = "unlimited";
    if (p.count != 0)
        snprintf(count_text, sizeof(count_text), "%" PRIu64, p.count);
    char keys_text[256];
    describe_keys(&p, keys_text, sizeof(keys_text));
    rs_log(p.log, RS_LOG_INFO, LOG_MODULE,
           "starting %s redis=%s stream=%s type=%s interval_ms=%d count=%s maxlen=%" PRIu64
           " e2e=%s%s",
           prog, redis_desc, cfg->producer.stream, cfg->producer.type, cfg->producer.interval_ms,
           count_text, p.maxlen, p.e2e ? "on" : "off", keys_text);

    if (p.cluster != NULL && fl.replay_dlq == NULL) {
        /* The map was fetched: each stream's connection is made when its first entry is due
         * (with --partitions the streams may live on different masters). */
        rs_log(p.log, RS_LOG_INFO, LOG_MODULE,
               "connected to redis %s; each stream is written on the master serving it",
               redis_desc);
        rc = run(&p);
        goto out;
    }
    /* One attempt at start: a producer that cannot reach Redis at all is misconfigured more
     * often than not, and its supervisor (systemd's Restart=) owns the retry policy. */
    rs_redis_status_t st = rs_redis_connect(p.redis);
    if (st == RS_REDIS_OK) {
        if (p.cluster != NULL)
            rs_log(p.log, RS_LOG_INFO, LOG_MODULE, "connected to redis %s, the master of %s (%s)",
                   rs_redis_addr(p.redis), dlq, redis_desc);
        else
            rs_log(p.log, RS_LOG_INFO, LOG_MODULE, "connected to redis %s", rs_redis_addr(p.redis));
        rc = fl.replay_dlq != NULL ? replay(&p, dlq, fl.dry_run) : run(&p);
    } else {
        rs_log(p.log, RS_LOG_ERROR, LOG_MODULE, "%s", rs_redis_errstr(p.redis));
        rc = exit_code_for(st);
    }

out:
    stop_tracing(&p);
    rs_redis_routes_free(p.routes);
    rs_redis_free(p.own);
    rs_cluster_free(p.cluster); /* after every connection it routes */
    rs_logger_free(p.log);
    rs_config_free(cfg);
    return rc;
}
