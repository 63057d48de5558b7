#ifndef RS_CONFIG_H
#define RS_CONFIG_H

/*
 * The configuration both programs share: one libconfig file describes the whole deployment.
 *
 * Loading is strict. Every rejection (a syntax error, a wrong type, an unknown key, a missing
 * required value, an out-of-range number, a duplicate stream, an unknown handler, an empty
 * stream list) produces one message that names the file, the line where libconfig knows it,
 * and the setting, e.g.
 *     /etc/redstream/redstream.conf:12: workers.threads: must be between 1 and 1024, got 0
 * and the programs exit with RS_EXIT_CONFIG.
 *
 * Defaults live here and only here (config/redstream.conf shows the same values). They follow
 * the Go demo this project succeeds: Redis 127.0.0.1:6380 with password "redis123", group
 * "workers", streams events, logs and notifications, health port 8083, producer stream
 * "events", type "test", one message every 1000 ms.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "log.h"

/* sysexits.h's EX_CONFIG: the configuration is wrong. */
#define RS_EXIT_CONFIG 78

/* The most a configuration may hold, the file and everything it @includes together. The
 * example is 15 KiB; the cap keeps a wrong file (a log, a core dump) from being parsed, which
 * libconfig does in time quadratic in the length of its longest token. */
#define RS_CONFIG_MAX_BYTES (1024 * 1024)

/* Where the installed service looks when no -c/--config is given. */
#define RS_CONFIG_DEFAULT_PATH "/etc/redstream/redstream.conf"

/* The environment variable that overrides redis.password (and redis.password_file). */
#define RS_ENV_REDIS_PASSWORD "REDSTREAM_REDIS_PASSWORD"

/* The systemd credential (LoadCredential=redis-password:...) that, when the service manager
 * provides it in $CREDENTIALS_DIRECTORY, overrides redis.password and redis.password_file
 * (REDSTREAM_REDIS_PASSWORD still wins). */
#define RS_CREDENTIAL_REDIS_PASSWORD "redis-password"

typedef enum {
    RS_HANDLER_LOG = 0, /* one line per message on stdout */
    RS_HANDLER_DISCARD, /* ack without output (benchmarks) */
    RS_HANDLER_EXEC,    /* run a program per message, the message as JSON on its stdin */
    RS_HANDLER_HTTP,    /* send each message as a JSON request to a webhook URL */
} rs_handler_kind_t;

/* A list of strings from the configuration file (a libconfig array or list). */
typedef struct {
    char **items; /* n heap strings followed by a NULL, so it can serve as an argv */
    size_t n;
} rs_string_list_t;

/* Where the Redis password came from; printed instead of the password itself. */
typedef enum {
    RS_SECRET_NONE = 0,    /* no password: no AUTH is sent */
    RS_SECRET_DEFAULT,     /* the built-in default */
    RS_SECRET_CONFIG,      /* redis.password */
    RS_SECRET_FILE,        /* redis.password_file */
    RS_SECRET_ENVIRONMENT, /* REDSTREAM_REDIS_PASSWORD */
    RS_SECRET_CREDENTIAL,  /* the systemd credential RS_CREDENTIAL_REDIS_PASSWORD */
    RS_SECRET_FLAG,        /* a command-line flag */
} rs_secret_source_t;

/* How the entries of one stream are ordered when several workers handle them. */
typedef enum {
    RS_ORDERING_NONE = 0, /* "none": any worker, any order (the default) */
    RS_ORDERING_STREAM,   /* "stream": one at a time, in id order */
    RS_ORDERING_KEY,      /* "key": one at a time and in id order per value of key_field;
                           * different values in parallel */
} rs_ordering_t;

typedef struct {
    char *name;                /* the stream's key in Redis; unique in the list */
    rs_handler_kind_t handler; /* what runs for each entry */
    int line;                  /* line of the entry in the file, 0 for built-in defaults */
    rs_ordering_t ordering;    /* default RS_ORDERING_NONE */
    char *key_field;           /* the field whose value is the ordering key: set (non-empty) exactly
                                * when ordering is RS_ORDERING_KEY, NULL otherwise */

    /* Settings of the handler kinds that take any; only the chosen kind's are set. */
    struct {
        rs_string_list_t command; /* argv, n >= 1; items[0] is an absolute path */
        int timeout_ms;           /* 1..86400000, default 30000 */
    } exec;
    struct {
        char *url;                /* http:// or https:// */
        char *method;             /* "POST" (default), "PUT" or "PATCH" */
        rs_string_list_t headers; /* "Name: value" each; values may be secrets, never log */
        int timeout_ms;           /* whole request, 1..3600000, default 10000 */
        char *ca_file;            /* CA bundle for TLS verification (resolved against the
                                   * configuration file's directory), or NULL: the system's */
    } http;
} rs_stream_config_t;

typedef struct {
    char *path; /* the file loaded (the name given to rs_config_load_string()), or NULL when
                 * only built-in defaults apply */

    bool sets_nothing; /* the file holds no setting at all (comments only): every value is a
                        * default, which the programs point out */

    struct {
        char *host;
        int port;       /* 1..65535 */
        char *password; /* NULL or "" means no AUTH; never log it */
        rs_secret_source_t password_source;
        char *password_file;    /* as configured, or NULL */
        char *username;         /* Redis 6 ACL user, or NULL */
        int db;                 /* 0..1000000 */
        int connect_timeout_ms; /* 1..600000 */
        bool cluster;           /* redis.cluster: talk to a Redis Cluster (default false) */
        rs_string_list_t nodes; /* redis.nodes: cluster seed nodes, "host:port" each; empty
                                 * (the default): host:port is the one seed. Only read in
                                 * cluster mode (rs_config_cluster_seed()) */
    } redis;

    struct {
        char *name;
        char *consumer;               /* defaults to the host name */
        char *start_id;               /* "$", "0" or an entry id */
        int read_count;               /* entries per XREADGROUP, 1..100000 */
        int block_ms;                 /* XREADGROUP BLOCK, 1..600000 */
        int max_deliveries;           /* 1..1000000 */
        int claim_idle_ms;            /* 1..604800000 */
        int retry_base_ms;            /* first retry's backoff, 1..3600000 */
        int retry_max_ms;             /* longest retry backoff, retry_base_ms..3600000, and
                                       * below claim_idle_ms */
        int idle_consumer_timeout_ms; /* delete consumers idle this long with nothing
                                       * pending; 0 = never; 0..2147483647 */
        char *dead_letter_suffix;     /* non-empty */
    } group;

    struct {
        int threads;             /* 1..1024 */
        int queue_capacity;      /* 1..1048576 */
        int shutdown_timeout_ms; /* 0..3600000 */
    } workers;

    rs_stream_config_t *streams; /* at least one */
    size_t nstreams;

    struct {
        char *address;
        int port;                /* 1..65535 */
        int liveness_timeout_ms; /* 1000..3600000, at least twice group.block_ms: /healthz
                                  * fails when a reader has not completed a read for longer */
        bool dashboard;          /* serve the browser dashboard at / and /api/... (default) */
    } health;

    struct {
        bool enabled;
        char *endpoint;
        char *service_name;
        double sample_ratio; /* 0.0..1.0 */
    } tracing;

    struct {
        char *stream;
        char *type;
        int interval_ms; /* 0..86400000; 0 = no pause */
    } producer;

    struct {
        rs_log_level_t level;
    } log;
} rs_config_t;

/* Returns a configuration holding the built-in defaults, with the consumer name set to this
 * host's name and REDSTREAM_REDIS_PASSWORD (or the systemd credential) applied. Returns NULL
 * with a message in `err` (NULL allowed) when out of memory or the credential cannot be
 * read. Caller frees with rs_config_free(). Any thread. */
rs_config_t *rs_config_new_defaults(char *err, size_t errlen);

/* Reads and validates `path` on top of the defaults, then applies REDSTREAM_REDIS_PASSWORD or
 * the systemd credential.
 * Returns the configuration (caller frees with rs_config_free()), or NULL with the one
 * message described above in `err` (the file, line and setting). Besides what the settings
 * say, a file is refused when it cannot be read, is a directory, holds more than
 * RS_CONFIG_MAX_BYTES (with its includes), holds a NUL byte, or is empty (nothing but white
 * space: a file meant to keep every default says so in a comment); and so is an @include of
 * something missing, unreadable, not a regular file, including itself or nested deeper than
 * libconfig's 10 levels. Reads the file, its includes and the password file; does not touch
 * the network. Any thread. */
rs_config_t *rs_config_load(const char *path, char *err, size_t errlen);

/* rs_config_load() for a configuration held in memory (the fuzz harness, tools): the `len`
 * bytes of `text` (no NUL needed at the end) are validated exactly as a file named `name`
 * holding them would be, and `name` takes the file's place in messages, in cfg->path and as
 * the base of relative paths (redis.password_file, ca_file, @include). The files those name
 * are still read from disk, so text from an untrusted source must not reach this function
 * unchecked. A NUL byte in `text` is rejected ("NAME:LINE: contains a NUL byte"), since
 * libconfig would silently drop what follows it. Returns the configuration (caller frees
 * with rs_config_free()) or NULL with the message in `err`. Any thread. */
rs_config_t *rs_config_load_string(const char *text, size_t len, const char *name, char *err,
                                   size_t errlen);

/* Frees everything the configuration owns; NULL is ignored. */
void rs_config_free(rs_config_t *cfg);

/* Replaces redis.host and redis.port from "host:port", "[v6addr]:port" or "host" (keeping
 * the port). Returns 0, or -1 with a message naming `what` (e.g. "--redis-addr") in `err`. */
int rs_config_set_redis_addr(rs_config_t *cfg, const char *addr, const char *what, char *err,
                             size_t errlen);

/* Parses a cluster node's address, "host:port" or "[v6addr]:port" (the port is required),
 * into `host` (`hostlen` bytes) and `port`. Returns 0, or -1 with a message naming `what`
 * (e.g. "redis.nodes[1]") in `err`. Pure. */
int rs_config_parse_node(const char *addr, const char *what, char *host, size_t hostlen, int *port,
                         char *err, size_t errlen);

/* The `i`-th seed node of cluster mode: redis.nodes[i], or (when redis.nodes is empty and
 * i == 0) redis.host:redis.port. Writes it to `host`/`port` and returns 0, or returns -1
 * when there is no seed `i`. redis.nodes was validated at load. Pure. */
int rs_config_cluster_seed(const rs_config_t *cfg, size_t i, char *host, size_t hostlen, int *port);

/* Makes `addr` ("host:port") the only cluster seed (the producer's --redis-addr with
 * --cluster). Returns 0, or -1 with a message naming `what` in `err`. */
int rs_config_set_cluster_seed(rs_config_t *cfg, const char *addr, const char *what, char *err,
                               size_t errlen);

/* Writes into `out` the name of the dead-letter stream of `stream` under this configuration
 * (rs_cluster_dlq_name() with group.dead_letter_suffix and redis.cluster). Returns 0, or -1
 * with a message in `err` (a name load-time validation let through never fails). Pure. */
int rs_config_dlq_name(const rs_config_t *cfg, const char *stream, char *out, size_t outlen,
                       char *err, size_t errlen);

/* Replaces a string setting (`*slot` is one of cfg's char * fields) with a copy of `value`.
 * Returns 0, or -1 when out of memory. */
int rs_config_set_string(char **slot, const char *value);

/* True when the two stream entries have the same name, handler, ordering, key_field and handler
 * settings (a reload restarts a stream whose entry is not equal). Pure. */
bool rs_stream_config_equal(const rs_stream_config_t *a, const rs_stream_config_t *b);

/* A deep copy of one stream entry, independent of the configuration it came from. Returns
 * NULL when out of memory. Caller frees with rs_stream_config_free(). Any thread. */
rs_stream_config_t *rs_stream_config_dup(const rs_stream_config_t *sc);

/* Frees a copy made by rs_stream_config_dup(); NULL is ignored. */
void rs_stream_config_free(rs_stream_config_t *sc);

/* Lists in `out` (", "-separated, truncated to `outlen`) the settings that differ between the
 * `running` configuration and `next` and that a running consumer cannot apply: every key of
 * the redis, group, workers, health and tracing sections (the password compared by value,
 * wherever it came from; it is named, never shown). Returns how many differ. Pure. */
size_t rs_config_restart_keys(const rs_config_t *running, const rs_config_t *next, char *out,
                              size_t outlen);

/* The name used in configuration files for a handler kind ("log"). */
const char *rs_handler_kind_name(rs_handler_kind_t kind);

/* The configuration word for an ordering: "none", "stream" or "key". */
const char *rs_ordering_name(rs_ordering_t ordering);

/* A copy of `url` with any user:password@ replaced by ***@, for messages (a webhook's or the
 * collector's URL may carry credentials). Returns NULL when out of memory. Caller frees with
 * free(). Pure; any thread. */
char *rs_config_url_redacted(const char *url);

/* Writes a one-screen summary of `cfg` to `out` for --check-config. The password is never
 * written, only whether one is set and where it came from; nor are the http handler's header
 * values (only their names) or a password inside a URL (a webhook's or the collector's). */
void rs_config_print_summary(const rs_config_t *cfg, FILE *out);

#endif
