/*
 * The consumer's HTTP server: liveness (/healthz), readiness (/readyz), the stream overview
 * (/streams) and Prometheus metrics (/metrics), served with libmicrohttpd.
 *
 * DESIGN: libmicrohttpd runs the protocol on a pool of HTTP_THREADS threads, each with its own
 * epoll loop over the shared listening socket. /healthz and /readyz only read the service's
 * atomics and answer in microseconds. /streams and /metrics also ask Redis, on a connection
 * opened for the request (never a reader's: hiredis contexts belong to one thread) with
 * REDIS_TIMEOUT_MS limits; at most HTTP_THREADS - 1 requests do so at once (an atomic
 * counter), so however slow Redis is, one thread always stays free for the probes. A request
 * that finds no room answers without Redis (/metrics leaves the lag out, /streams says 503
 * busy).
 *
 * The listening socket is bound here, not by libmicrohttpd, so a port already in use is an
 * error with errno's words, reported before any thread starts. libmicrohttpd caps the
 * connections (in total and per client address), their memory and their idle time. A client
 * that keeps a connection busy by sending one byte at a time is never idle, so a reaper thread
 * also closes any request older than REQUEST_TIME_LIMIT_MS: each connection's socket is
 * duplicated when it opens (the duplicate keeps the descriptor number from being reused
 * before the connection's close is notified), its request start time is kept in a fixed
 * table, and the reaper shuts down the sockets of requests over the limit, which
 * libmicrohttpd then sees close. A request starts when its connection opens or its previous
 * request on a kept-alive connection completed.
 *
 * SIGPIPE: libmicrohttpd sends with MSG_NOSIGNAL and blocks SIGPIPE in its own threads; it
 * installs no handler, so main's SIG_IGN stands.
 *
 * Lock order: h->lock (the connection table and the stop flag) is the only lock this file
 * takes and a leaf: nothing is locked, logged or sent to the network while it is held (the
 * reaper's shutdown(2) calls on local sockets do not block).
 */

#include "health.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clock.h"
#include "dashboard.h"
#include "metrics.h"
#include "redis_conn.h"
#include "stats_ring.h"
#include "stream_info.h"
#include "version.h"

#define LOG_MODULE "http"

/* libmicrohttpd's threads. At most HTTP_THREADS - 1 of them talk to Redis at once. */
#define HTTP_THREADS 3
/* Open connections at once, in total and from one client address. */
#define MAX_CONNECTIONS        64
#define MAX_CONNECTIONS_PER_IP 32
/* A connection with no traffic for this long is closed by libmicrohttpd. */
#define IDLE_TIMEOUT_S 5
/* A request (from its first byte, or the previous request's end) taking longer is closed. */
#define REQUEST_TIME_LIMIT_MS 10000
#define REAPER_INTERVAL_MS    1000
/* Memory per connection: the request's headers must fit (a larger request gets 431). */
#define CONNECTION_MEMORY 16384
#define LISTEN_BACKLOG    64
/* Limits for a request's own Redis connection: connecting and each reply. */
#define REDIS_TIMEOUT_MS 1000

static const char text_plain[] = "text/plain; charset=utf-8";
static const char application_json[] = "application/json";
/* Sent with every response: only this server's own page, scripts, styles and JSON may load;
 * no inline script, no frame, no form. */
static const char content_security_policy[] =
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

typedef struct {
    int fd;           /* duplicate of the connection's socket; -1 when the slot is free */
    int64_t since_ns; /* CLOCK_MONOTONIC when the current request began */
    bool reaped;      /* shut down by the reaper; the slot frees when libmicrohttpd closes */
} conn_slot_t;

struct rs_health {
    const rs_config_t *cfg;
    rs_consumer_t *consumer;
    rs_logger_t *log;
    char addr[300];          /* "address:port" as configured, for messages */
    int listen_fd;           /* ours until libmicrohttpd takes it over; then -1 */
    int family;              /* of listen_fd */
    struct MHD_Daemon *mhd;  /* NULL when not serving */
    double start_time_s;     /* process_start_time_seconds */
    atomic_int redis_active; /* requests talking to Redis now */

    pthread_mutex_t lock;
    pthread_cond_t cond;                /* CLOCK_MONOTONIC; wakes the reaper to stop */
    bool stop;                          /* guarded by lock */
    conn_slot_t slots[MAX_CONNECTIONS]; /* guarded by lock */
    pthread_t reaper;
    bool reaper_started;
    rs_stats_ring_t *stats; /* written by the reaper once a second; read by requests */
};

/* ------------------------------------------------------------------------------------------ */
/* Process metrics from /proc.                                                                */

/* The process's start time in seconds since the epoch: /proc/self/stat's field 22 (clock
 * ticks after boot) plus /proc/stat's btime. Returns -1 when either cannot be read. */
static double read_start_time(void)
{
    char buf[1024];
    unsigned long long btime = 0, ticks = 0;
    bool have_btime = false, have_ticks = false;

    FILE *f = fopen("/proc/stat", "re");
    if (f != NULL) {
        while (fgets(buf, sizeof(buf), f) != NULL)
            if (sscanf(buf, "btime %llu", &btime) == 1) {
                have_btime = true;
                break;
            }
        fclose(f);
    }
    f = fopen("/proc/self/stat", "re");
    if (f != NULL) {
        size_t n = fread(buf, 1, sizeof(buf) - 1, f);
        buf[n] = '\0';
        fclose(f);
        /* The command name (field 2) may hold spaces and parentheses: skip to the last ')'.
         * Field 3 follows it; field 22 is 19 fields further. */
        char *p = strrchr(buf, ')');
        for (int field = 2; p != NULL && field < 22; field++)
            p = strchr(p + 1, ' ');
        have_ticks = p != NULL && sscanf(p + 1, "%llu", &ticks) == 1;
    }
    long hz = sysconf(_SC_CLK_TCK);
    if (!have_btime || !have_ticks || hz <= 0)
        return -1;
    return (double)btime + (double)ticks / (double)hz;
}

/* Fills the process_* fields of `m`; leaves has_process false when /proc cannot be read. */
static void read_process(const rs_health_t *h, rs_metrics_t *m)
{
    unsigned long long size, resident;
    FILE *f = fopen("/proc/self/statm", "re");
    if (f == NULL)
        return;
    int got = fscanf(f, "%llu %llu", &size, &resident);
    fclose(f);
    long page = sysconf(_SC_PAGESIZE);
    DIR *d = opendir("/proc/self/fd");
    if (got != 2 || page <= 0 || d == NULL) {
        if (d != NULL)
            closedir(d);
        return;
    }
    uint64_t fds = 0;
    int own = dirfd(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.' || atoi(e->d_name) == own)
            continue; /* ".", "..", and the descriptor reading the directory */
        fds++;
    }
    closedir(d);
    m->resident_memory_bytes = (uint64_t)resident * (uint64_t)page;
    m->open_fds = fds;
    m->start_time_seconds = h->start_time_s;
    m->has_process = true;
}

/* ------------------------------------------------------------------------------------------ */
/* Asking Redis.                                                                               */

/* Asks Redis about every stream of the snapshot `m` on a connection of this request's own. Returns
 * 0 with `info` filled (caller clears it), -1 with a message in `err` (Redis unreachable, or it
 * refused; the message never holds the password), or 1 when HTTP_THREADS - 1 requests are
 * asking Redis already. Blocks up to REDIS_TIMEOUT_MS for the connection and per reply. */
/* Opens this request's own Redis connection, counted in redis_active. Returns it connected
 * (release with close_redis()), or NULL with `*busy` telling whether HTTP_THREADS - 1 requests
 * are asking Redis already (1) or it could not be reached (0), and a message in `err`. */
static rs_redis_t *open_redis_at(rs_health_t *h, const rs_cluster_node_t *node, int *busy,
                                 char *err, size_t errlen)
{
    *busy = 0;
    if (atomic_fetch_add(&h->redis_active, 1) >= HTTP_THREADS - 1) {
        atomic_fetch_sub(&h->redis_active, 1);
        snprintf(err, errlen, "busy: other requests are asking Redis; retry in a second");
        *busy = 1;
        return NULL;
    }
    /* Not rs_redis_new_from_config(): the connect timeout is capped too, not only replies. */
    const rs_config_t *cfg = h->cfg;
    rs_redis_opts_t opts = {
        .host = node != NULL ? node->host : cfg->redis.host,
        .port = node != NULL ? node->port : cfg->redis.port,
        .username = cfg->redis.username,
        .password = cfg->redis.password,
        .db = cfg->redis.db,
        .connect_timeout_ms = cfg->redis.connect_timeout_ms < REDIS_TIMEOUT_MS
                                  ? cfg->redis.connect_timeout_ms
                                  : REDIS_TIMEOUT_MS,
        .command_timeout_ms = REDIS_TIMEOUT_MS,
        .client_name = "http",
    };
    rs_redis_t *r = rs_redis_new(&opts, h->log);
    if (r == NULL)
        snprintf(err, errlen, "out of memory");
    else if (rs_redis_connect(r) != RS_REDIS_OK)
        snprintf(err, errlen, "%s", rs_redis_errstr(r));
    else
        return r;
    rs_redis_free(r);
    atomic_fetch_sub(&h->redis_active, 1);
    return NULL;
}

/* open_redis_at() the server of standalone mode, or in cluster mode the master serving `key`
 * (`len` bytes). */
static rs_redis_t *open_redis(rs_health_t *h, const char *key, size_t len, int *busy, char *err,
                              size_t errlen)
{
    rs_cluster_t *cluster = rs_consumer_cluster(h->consumer);
    rs_cluster_node_t owner;
    *busy = 0;
    if (cluster == NULL)
        return open_redis_at(h, NULL, busy, err, errlen);
    if (rs_cluster_owner(cluster, key, len, &owner, err, errlen) != RS_REDIS_OK)
        return NULL;
    return open_redis_at(h, &owner, busy, err, errlen);
}

static void close_redis(rs_health_t *h, rs_redis_t *r)
{
    rs_redis_free(r);
    atomic_fetch_sub(&h->redis_active, 1);
}

/* ask_redis() in cluster mode: the streams grouped by the master serving them, one connection
 * per master, the answers put together in the order of `m`. */
static int ask_cluster(rs_health_t *h, const rs_metrics_t *m, bool consumers,
                       rs_streams_info_t *info, char *err, size_t errlen)
{
    rs_cluster_t *cluster = rs_consumer_cluster(h->consumer);
    size_t n = m->nstreams;
    rs_cluster_node_t *owner = calloc(n > 0 ? n : 1, sizeof(*owner));
    const char **names = calloc(n > 0 ? n : 1, sizeof(*names));
    size_t *index = calloc(n > 0 ? n : 1, sizeof(*index));
    bool *asked = calloc(n > 0 ? n : 1, sizeof(*asked));
    info->streams = calloc(n > 0 ? n : 1, sizeof(*info->streams));
    int rc = -1;
    if (owner == NULL || names == NULL || index == NULL || asked == NULL || info->streams == NULL) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    info->nstreams = n;
    for (size_t i = 0; i < n; i++) {
        const char *name = m->streams[i].name;
        info->streams[i].name = name;
        if (rs_cluster_owner(cluster, name, strlen(name), &owner[i], err, errlen) != RS_REDIS_OK)
            goto out;
    }
    rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (asked[i])
            continue;
        size_t k = 0;
        for (size_t j = i; j < n; j++) {
            if (!asked[j] && owner[j].port == owner[i].port &&
                strcmp(owner[j].host, owner[i].host) == 0) {
                asked[j] = true;
                index[k] = j;
                names[k++] = m->streams[j].name;
            }
        }
        int busy;
        rs_redis_t *r = open_redis_at(h, &owner[i], &busy, err, errlen);
        if (r == NULL) {
            rc = busy ? 1 : -1;
            break;
        }
        rs_streams_info_t part = {0};
        rc = rs_stream_info_fetch(r, names, k, consumers, &part, err, errlen);
        close_redis(h, r);
        for (size_t j = 0; rc == 0 && j < k; j++)
            info->streams[index[j]] = part.streams[j]; /* moved: part keeps no pointer */
        free(part.streams);
    }
out:
    if (rc != 0)
        rs_streams_info_clear(info);
    free(asked);
    free(index);
    free(names);
    free(owner);
    return rc;
}

static int ask_redis(rs_health_t *h, const rs_metrics_t *m, bool consumers, rs_streams_info_t *info,
                     char *err, size_t errlen)
{
    if (rs_consumer_cluster(h->consumer) != NULL)
        return ask_cluster(h, m, consumers, info, err, errlen);
    int busy;
    rs_redis_t *r = open_redis_at(h, NULL, &busy, err, errlen);
    if (r == NULL)
        return busy ? 1 : -1;
    int rc = -1;
    {
        const char **names = calloc(m->nstreams > 0 ? m->nstreams : 1, sizeof(*names));
        if (names == NULL) {
            snprintf(err, errlen, "out of memory");
        } else {
            for (size_t i = 0; i < m->nstreams; i++)
                names[i] = m->streams[i].name;
            rc = rs_stream_info_fetch(r, names, m->nstreams, consumers, info, err, errlen);
            free(names);
        }
    }
    close_redis(h, r);
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* Responses.                                                                                  */

/* Queues a response. `body` (len bytes) is taken over (freed with free()) when `owned`, copied
 * otherwise; NULL means the body could not be built (out of memory): 500. `header` and
 * `value` add one more header when not NULL. */
static enum MHD_Result respond(struct MHD_Connection *conn, unsigned status, const char *type,
                               char *body, size_t len, bool owned, const char *header,
                               const char *value)
{
    if (body == NULL) {
        status = MHD_HTTP_INTERNAL_SERVER_ERROR;
        type = text_plain;
        body = (char *)(uintptr_t) "out of memory\n"; /* copied below, never written */
        len = strlen(body);
        owned = false;
        header = NULL;
    }
    struct MHD_Response *resp = MHD_create_response_from_buffer(
        len, body, owned ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_MUST_COPY);
    if (resp == NULL) {
        if (owned)
            free(body);
        return MHD_NO; /* libmicrohttpd closes the connection */
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_X_CONTENT_TYPE_OPTIONS, "nosniff");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_SECURITY_POLICY, content_security_policy);
    MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
    if (header != NULL)
        MHD_add_response_header(resp, header, value);
    enum MHD_Result rc = MHD_queue_response(conn, status, resp);
    MHD_destroy_response(resp);
    return rc;
}

static enum MHD_Result respond_text(struct MHD_Connection *conn, unsigned status, const char *text)
{
    return respond(conn, status, text_plain, (char *)(uintptr_t)text, strlen(text), false, NULL,
                   NULL);
}

static enum MHD_Result serve_healthz(rs_health_t *h, struct MHD_Connection *conn)
{
    char why[2048];
    if (!rs_consumer_alive(h->consumer, why, sizeof(why)))
        return respond_text(conn, MHD_HTTP_SERVICE_UNAVAILABLE, why);
    return respond_text(conn, MHD_HTTP_OK,
                        rs_consumer_stopping(h->consumer) ? "OK: shutting down\n" : "OK\n");
}

static enum MHD_Result serve_readyz(rs_health_t *h, struct MHD_Connection *conn)
{
    char why[2048];
    if (!rs_consumer_ready(h->consumer, why, sizeof(why)))
        return respond_text(conn, MHD_HTTP_SERVICE_UNAVAILABLE, why);
    return respond_text(conn, MHD_HTTP_OK, "OK\n");
}

/* /streams and /metrics: a snapshot of the service, and Redis's view when it answers. */
static enum MHD_Result serve_snapshot(rs_health_t *h, struct MHD_Connection *conn, bool metrics)
{
    rs_metrics_t m = {.version = RS_VERSION};
    if (rs_consumer_snapshot(h->consumer, &m) != 0)
        return respond(conn, 0, NULL, NULL, 0, false, NULL, NULL);
    if (metrics)
        read_process(h, &m);

    rs_streams_info_t info = {0};
    char err[512];
    /* Both list every consumer of the group (XINFO CONSUMERS), other instances included. */
    int asked = ask_redis(h, &m, true, &info, err, sizeof(err));
    m.redis = asked == 0 ? &info : NULL;

    char *body;
    size_t len = 0;
    enum MHD_Result rc;
    if (metrics) {
        /* Without Redis only the lag is missing; everything else is this process's own. */
        body = rs_metrics_prometheus(&m, &len);
        rc = respond(conn, MHD_HTTP_OK, RS_METRICS_CONTENT_TYPE, body, len, true, NULL, NULL);
    } else if (asked == 0) {
        body = rs_metrics_streams_json(&m, &len);
        rc = respond(conn, MHD_HTTP_OK, application_json, body, len, true, NULL, NULL);
    } else {
        rs_log(h->log, RS_LOG_DEBUG, LOG_MODULE, "GET /streams: %s", err);
        body = rs_metrics_error_json(err, &len);
        rc = respond(conn, MHD_HTTP_SERVICE_UNAVAILABLE, application_json, body, len, true,
                     asked == 1 ? MHD_HTTP_HEADER_RETRY_AFTER : NULL, "1");
    }
    rs_streams_info_clear(&info);
    rs_consumer_snapshot_clear(&m);
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* The dashboard.                                                                              */

/* The consumer's handled and failed totals over every configured stream, into the ring at
 * this monotonic second. Reaper thread. */
static void sample_stats(rs_health_t *h)
{
    rs_metrics_t m = {0};
    if (rs_consumer_snapshot(h->consumer, &m) != 0)
        return;
    uint64_t handled = 0, failed = 0;
    for (size_t i = 0; i < m.nstreams; i++) {
        handled += m.streams[i].succeeded;
        failed += m.streams[i].failed;
    }
    rs_consumer_snapshot_clear(&m);
    rs_stats_ring_record(h->stats, rs_clock_monotonic_ns() / 1000000000, handled, failed);
}

static enum MHD_Result serve_asset(struct MHD_Connection *conn, const char *url)
{
    const rs_dashboard_asset_t *a = rs_dashboard_asset(url);
    if (a == NULL)
        return respond_text(conn, MHD_HTTP_NOT_FOUND, "not found\n");
    return respond(conn, MHD_HTTP_OK, a->content_type, (char *)(uintptr_t)a->data, a->len, false,
                   NULL, NULL);
}

static enum MHD_Result serve_stats(rs_health_t *h, struct MHD_Connection *conn)
{
    rs_metrics_t m = {.version = RS_VERSION};
    if (rs_consumer_snapshot(h->consumer, &m) != 0)
        return respond(conn, 0, NULL, NULL, 0, false, NULL, NULL);
    rs_stats_rate_t *rates = calloc(RS_STATS_RING_SECONDS, sizeof(*rates));
    char why[2048] = "";
    bool ready = rs_consumer_ready(h->consumer, why, sizeof(why));
    why[strcspn(why, "\n")] = '\0'; /* the first reason is enough for one line */
    char *body = NULL;
    size_t len = 0;
    if (rates != NULL) {
        rs_stats_ring_rates(h->stats, rs_clock_monotonic_ns() / 1000000000, rates);
        rs_dashboard_stats_t s = {
            .m = &m,
            .uptime_s = (double)rs_clock_realtime_ns() / 1e9 - h->start_time_s,
            .redis_ready = ready,
            .redis_state = ready ? "connected" : why,
            .rates = rates,
        };
        body = rs_dashboard_stats_json(&s, &len);
    }
    free(rates);
    rs_consumer_snapshot_clear(&m);
    return respond(conn, MHD_HTTP_OK, application_json, body, len, true, NULL, NULL);
}

static enum MHD_Result serve_problems(rs_health_t *h, struct MHD_Connection *conn)
{
    rs_log_problem_t *p = calloc(RS_LOG_PROBLEMS, sizeof(*p));
    char *body = NULL;
    size_t len = 0;
    if (p != NULL)
        body = rs_dashboard_problems_json(p, rs_logger_problems(h->log, p, RS_LOG_PROBLEMS), &len);
    free(p);
    return respond(conn, MHD_HTTP_OK, application_json, body, len, true, NULL, NULL);
}

static enum MHD_Result respond_error_json(struct MHD_Connection *conn, unsigned status,
                                          const char *message, bool retry)
{
    size_t len = 0;
    char *body = rs_metrics_error_json(message, &len);
    return respond(conn, status, application_json, body, len, true,
                   retry ? MHD_HTTP_HEADER_RETRY_AFTER : NULL, "1");
}

/* /api/deadletters?stream=NAME: only a configured stream's dead-letter stream is read. */
static enum MHD_Result serve_dead_letters(rs_health_t *h, struct MHD_Connection *conn)
{
    const char *stream = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "stream");
    if (stream == NULL || stream[0] == '\0')
        return respond_error_json(conn, MHD_HTTP_BAD_REQUEST,
                                  "missing the stream: use /api/deadletters?stream=NAME", false);
    rs_metrics_t m = {.version = RS_VERSION};
    if (rs_consumer_snapshot(h->consumer, &m) != 0)
        return respond(conn, 0, NULL, NULL, 0, false, NULL, NULL);
    bool configured = false;
    for (size_t i = 0; i < m.nstreams && !configured; i++)
        configured = strcmp(m.streams[i].name, stream) == 0;
    rs_consumer_snapshot_clear(&m);
    if (!configured)
        return respond_error_json(conn, MHD_HTTP_NOT_FOUND, "no such stream is configured", false);

    char dlq[1024], err[512];
    int busy = 0;
    rs_redis_t *r = NULL;
    if (rs_config_dlq_name(h->cfg, stream, dlq, sizeof(dlq), err, sizeof(err)) == 0)
        r = open_redis(h, dlq, strlen(dlq), &busy, err, sizeof(err));
    rs_info_entries_t e = {0};
    if (r != NULL) {
        int rc = rs_stream_info_recent(r, dlq, RS_DASHBOARD_DEAD_LETTERS, RS_DASHBOARD_FIELD_MAX,
                                       &e, err, sizeof(err));
        close_redis(h, r);
        if (rc != 0)
            r = NULL;
    }
    if (r == NULL) {
        rs_log(h->log, RS_LOG_DEBUG, LOG_MODULE, "GET /api/deadletters: %s", err);
        return respond_error_json(conn, MHD_HTTP_SERVICE_UNAVAILABLE, err, busy != 0);
    }
    size_t len = 0;
    char *body = rs_dashboard_dead_letters_json(stream, dlq, &e, h->cfg->path, &len);
    rs_info_entries_clear(&e);
    return respond(conn, MHD_HTTP_OK, application_json, body, len, true, NULL, NULL);
}

rs_health_route_t rs_health_route(const char *method, const char *url)
{
    static const struct {
        const char *path;
        rs_health_route_t route;
    } paths[] = {
        {"/healthz", RS_HEALTH_ROUTE_HEALTHZ},
        {"/readyz", RS_HEALTH_ROUTE_READYZ},
        {"/streams", RS_HEALTH_ROUTE_STREAMS},
        {"/metrics", RS_HEALTH_ROUTE_METRICS},
        {"/", RS_HEALTH_ROUTE_DASHBOARD},
        {"/app.js", RS_HEALTH_ROUTE_DASHBOARD},
        {"/style.css", RS_HEALTH_ROUTE_DASHBOARD},
        {"/api/stats", RS_HEALTH_ROUTE_API_STATS},
        {"/api/problems", RS_HEALTH_ROUTE_API_PROBLEMS},
        {"/api/deadletters", RS_HEALTH_ROUTE_API_DEADLETTERS},
    };

    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
        return RS_HEALTH_ROUTE_METHOD_NOT_ALLOWED;
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++)
        if (strcmp(url, paths[i].path) == 0)
            return paths[i].route;
    return RS_HEALTH_ROUTE_NOT_FOUND;
}

/* libmicrohttpd's access handler: called once the request's headers are in, then for each
 * piece of a request body, then once more at its end.
 *
 * Other methods than GET and HEAD are refused on the first call, so their body is never read
 * (libmicrohttpd closes the connection after the response). GET and HEAD are answered on the
 * last call: a response queued before libmicrohttpd knows the request is complete would make
 * it close the connection, and kept-alive connections save probes and scrapers a handshake.
 * A body sent with a GET is read and dropped, within the request time limit. */
static enum MHD_Result handle_request(void *cls, struct MHD_Connection *conn, const char *url,
                                      const char *method, const char *version,
                                      const char *upload_data, size_t *upload_data_size,
                                      void **req_cls)
{
    rs_health_t *h = cls;
    (void)version;
    (void)upload_data;

    rs_health_route_t route = rs_health_route(method, url);
    if (route == RS_HEALTH_ROUTE_METHOD_NOT_ALLOWED)
        return respond(conn, MHD_HTTP_METHOD_NOT_ALLOWED, text_plain,
                       (char *)(uintptr_t) "method not allowed: use GET or HEAD\n",
                       strlen("method not allowed: use GET or HEAD\n"), false,
                       MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    if (*req_cls == NULL) {
        *req_cls = h; /* any non-NULL mark: "headers seen" */
        return MHD_YES;
    }
    if (*upload_data_size != 0) {
        *upload_data_size = 0;
        return MHD_YES;
    }
    /* HEAD gets the same status and headers as GET; libmicrohttpd leaves the body out. */
    bool dashboard = h->cfg->health.dashboard;
    switch (route) {
    case RS_HEALTH_ROUTE_HEALTHZ:
        return serve_healthz(h, conn);
    case RS_HEALTH_ROUTE_READYZ:
        return serve_readyz(h, conn);
    case RS_HEALTH_ROUTE_STREAMS:
        return serve_snapshot(h, conn, false);
    case RS_HEALTH_ROUTE_METRICS:
        return serve_snapshot(h, conn, true);
    case RS_HEALTH_ROUTE_DASHBOARD:
        if (dashboard)
            return serve_asset(conn, url);
        break;
    case RS_HEALTH_ROUTE_API_STATS:
        if (dashboard)
            return serve_stats(h, conn);
        break;
    case RS_HEALTH_ROUTE_API_PROBLEMS:
        if (dashboard)
            return serve_problems(h, conn);
        break;
    case RS_HEALTH_ROUTE_API_DEADLETTERS:
        if (dashboard)
            return serve_dead_letters(h, conn);
        break;
    case RS_HEALTH_ROUTE_NOT_FOUND:
    case RS_HEALTH_ROUTE_METHOD_NOT_ALLOWED:
        break;
    }
    return respond_text(conn, MHD_HTTP_NOT_FOUND,
                        "not found: the paths are /healthz, /readyz, /streams and /metrics\n");
}

/* ------------------------------------------------------------------------------------------ */
/* Connection time limits.                                                                     */

/* A connection opened or closed: take or free its slot in the table (see DESIGN). */
static void notify_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                              enum MHD_ConnectionNotificationCode code)
{
    rs_health_t *h = cls;
    if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
        conn_slot_t *slot = *socket_context;
        if (slot == NULL)
            return;
        pthread_mutex_lock(&h->lock);
        close(slot->fd);
        slot->fd = -1;
        pthread_mutex_unlock(&h->lock);
        *socket_context = NULL;
        return;
    }
    *socket_context = NULL;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    int fd = ci != NULL ? fcntl(ci->connect_fd, F_DUPFD_CLOEXEC, 0) : -1;
    if (fd < 0)
        return; /* out of descriptors: this connection has only the idle timeout */
    pthread_mutex_lock(&h->lock);
    for (size_t i = 0; i < MAX_CONNECTIONS; i++) {
        if (h->slots[i].fd < 0) {
            h->slots[i] = (conn_slot_t){fd, rs_clock_monotonic_ns(), false};
            *socket_context = &h->slots[i];
            break;
        }
    }
    pthread_mutex_unlock(&h->lock);
    if (*socket_context == NULL)
        close(fd);
}

/* A request completed: the next one on this kept-alive connection starts its own clock. */
static void request_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
                              enum MHD_RequestTerminationCode code)
{
    rs_health_t *h = cls;
    (void)req_cls;
    (void)code;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    conn_slot_t *slot = ci != NULL ? ci->socket_context : NULL;
    if (slot == NULL)
        return;
    pthread_mutex_lock(&h->lock);
    slot->since_ns = rs_clock_monotonic_ns();
    pthread_mutex_unlock(&h->lock);
}

static void *reaper_main(void *arg)
{
    rs_health_t *h = arg;
    /* A first sample now, so that the rate of the first whole second already counts what was
     * handled since the start (a rate is the difference between consecutive seconds). */
    if (h->cfg->health.dashboard)
        sample_stats(h);
    for (;;) {
        /* At the next whole interval (second), so each second of the stats ring gets a sample. */
        const int64_t interval = (int64_t)REAPER_INTERVAL_MS * 1000000;
        int64_t wake = (rs_clock_monotonic_ns() / interval + 1) * interval;
        struct timespec ts = rs_clock_timespec(wake);
        unsigned closed = 0;
        pthread_mutex_lock(&h->lock);
        while (!h->stop && rs_clock_monotonic_ns() < wake)
            pthread_cond_timedwait(&h->cond, &h->lock, &ts);
        bool stop = h->stop;
        int64_t limit = rs_clock_monotonic_ns() - (int64_t)REQUEST_TIME_LIMIT_MS * 1000000;
        for (size_t i = 0; i < MAX_CONNECTIONS && !stop; i++) {
            conn_slot_t *s = &h->slots[i];
            if (s->fd >= 0 && !s->reaped && s->since_ns < limit) {
                shutdown(s->fd, SHUT_RDWR);
                s->reaped = true;
                closed++;
            }
        }
        pthread_mutex_unlock(&h->lock);
        if (stop)
            return NULL;
        if (h->cfg->health.dashboard)
            sample_stats(h);
        /* At most one line per interval, however many clients misbehave. */
        if (closed > 0)
            rs_log(h->log, RS_LOG_INFO, LOG_MODULE,
                   "closed %u connections whose request took longer than %d ms", closed,
                   REQUEST_TIME_LIMIT_MS);
    }
}

/* libmicrohttpd's own messages (a client's malformed request, a connection refused at the
 * limit). Anyone can trigger them at any rate, so they go to the debug level. */
__attribute__((format(printf, 2, 0))) static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    rs_health_t *h = cls;
    if (!rs_log_enabled(h->log, RS_LOG_DEBUG))
        return;
    char msg[512];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    size_t n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
    rs_log(h->log, RS_LOG_DEBUG, LOG_MODULE, "libmicrohttpd: %s", msg);
}

/* ------------------------------------------------------------------------------------------ */
/* Life cycle.                                                                                 */

/* Binds and listens on health.address:health.port (the first address it resolves to that
 * works). Returns 0, or -1 with a message naming the address in `err`. */
static int listen_on(rs_health_t *h, char *err, size_t errlen)
{
    char port[16], ebuf[128];
    snprintf(port, sizeof(port), "%d", h->cfg->health.port);
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC,
        .ai_socktype = SOCK_STREAM,
        .ai_flags = AI_PASSIVE | AI_NUMERICSERV,
    };
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(h->cfg->health.address, port, &hints, &res);
    if (rc != 0) {
        snprintf(err, errlen, "health server: cannot resolve %s: %s", h->addr, gai_strerror(rc));
        return -1;
    }
    int saved = EAFNOSUPPORT;
    for (const struct addrinfo *ai = res; ai != NULL && h->listen_fd < 0; ai = ai->ai_next) {
        if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6)
            continue;
        /* Non-blocking: the worker threads all accept on it, and the losers must not block. */
        int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0) {
            saved = errno;
            continue;
        }
        int one = 1; /* a restart must not wait for the old connections' TIME_WAIT */
        (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, LISTEN_BACKLOG) == 0) {
            h->listen_fd = fd;
            h->family = ai->ai_family;
        } else {
            saved = errno;
            close(fd);
        }
    }
    freeaddrinfo(res);
    if (h->listen_fd < 0) {
        snprintf(err, errlen, "health server: cannot listen on %s: %s", h->addr,
                 strerror_r(saved, ebuf, sizeof(ebuf)));
        return -1;
    }
    return 0;
}

rs_health_t *rs_health_new(const rs_config_t *cfg, rs_consumer_t *c, rs_logger_t *log, char *err,
                           size_t errlen)
{
    rs_health_t *h = calloc(1, sizeof(*h));
    if (h == NULL) {
        snprintf(err, errlen, "health server: out of memory");
        return NULL;
    }
    h->cfg = cfg;
    h->consumer = c;
    h->log = log;
    h->listen_fd = -1;
    atomic_init(&h->redis_active, 0);
    for (size_t i = 0; i < MAX_CONNECTIONS; i++)
        h->slots[i].fd = -1;
    bool v6 = strchr(cfg->health.address, ':') != NULL;
    snprintf(h->addr, sizeof(h->addr), "%s%s%s:%d", v6 ? "[" : "", cfg->health.address,
             v6 ? "]" : "", cfg->health.port);
    h->start_time_s = read_start_time();
    if (h->start_time_s < 0)
        h->start_time_s = (double)rs_clock_realtime_ns() / 1e9; /* close enough */
    pthread_mutex_init(&h->lock, NULL);
    rs_clock_cond_init(&h->cond);
    h->stats = rs_stats_ring_new();
    if (h->stats == NULL) {
        snprintf(err, errlen, "health server: out of memory");
        rs_health_free(h);
        return NULL;
    }
    if (listen_on(h, err, errlen) != 0) {
        rs_health_free(h);
        return NULL;
    }
    return h;
}

int rs_health_start(rs_health_t *h, char *err, size_t errlen)
{
    int rc = pthread_create(&h->reaper, NULL, reaper_main, h);
    if (rc != 0) {
        char ebuf[128];
        snprintf(err, errlen, "health server: cannot start its reaper thread: %s",
                 strerror_r(rc, ebuf, sizeof(ebuf)));
        return -1;
    }
    h->reaper_started = true;
    pthread_setname_np(h->reaper, "rs-http-reaper");

    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ERROR_LOG;
    if (h->family == AF_INET6)
        flags |= MHD_USE_IPv6;
    h->mhd = MHD_start_daemon(
        flags, (uint16_t)h->cfg->health.port, NULL, NULL, handle_request, h,
        MHD_OPTION_LISTEN_SOCKET, h->listen_fd, MHD_OPTION_THREAD_POOL_SIZE, (unsigned)HTTP_THREADS,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)MAX_CONNECTIONS, MHD_OPTION_PER_IP_CONNECTION_LIMIT,
        (unsigned)MAX_CONNECTIONS_PER_IP, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)IDLE_TIMEOUT_S,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)CONNECTION_MEMORY,
        MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned)LISTEN_BACKLOG, MHD_OPTION_NOTIFY_CONNECTION,
        notify_connection, h, MHD_OPTION_NOTIFY_COMPLETED, request_completed, h,
        MHD_OPTION_EXTERNAL_LOGGER, mhd_log, h, MHD_OPTION_END);
    if (h->mhd == NULL) {
        snprintf(err, errlen, "health server: libmicrohttpd could not start serving on %s",
                 h->addr);
        rs_health_stop(h);
        return -1;
    }
    h->listen_fd = -1; /* libmicrohttpd's now; MHD_stop_daemon() closes it */
    if (h->cfg->health.dashboard)
        rs_log(h->log, RS_LOG_INFO, LOG_MODULE,
               "serving /healthz, /readyz, /streams and /metrics on http://%s, and the dashboard "
               "at http://%s/",
               h->addr, h->addr);
    else
        rs_log(h->log, RS_LOG_INFO, LOG_MODULE,
               "serving /healthz, /readyz, /streams and /metrics on http://%s", h->addr);
    return 0;
}

void rs_health_stop(rs_health_t *h)
{
    if (h->mhd != NULL) {
        MHD_stop_daemon(h->mhd);
        h->mhd = NULL;
    }
    if (h->reaper_started) {
        pthread_mutex_lock(&h->lock);
        h->stop = true;
        pthread_cond_broadcast(&h->cond);
        pthread_mutex_unlock(&h->lock);
        pthread_join(h->reaper, NULL);
        h->reaper_started = false;
    }
}

void rs_health_free(rs_health_t *h)
{
    if (h == NULL)
        return;
    rs_health_stop(h);
    if (h->listen_fd >= 0)
        close(h->listen_fd);
    for (size_t i = 0; i < MAX_CONNECTIONS; i++)
        if (h->slots[i].fd >= 0)
            close(h->slots[i].fd); /* none once libmicrohttpd has stopped; defensive */
    pthread_cond_destroy(&h->cond);
    pthread_mutex_destroy(&h->lock);
    rs_stats_ring_free(h->stats);
    free(h);
}
