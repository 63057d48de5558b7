/*
 * One thread's connection to Redis: the handshake (TCP connect, keepalive, AUTH, SELECT, PING),
 * running commands, and reconnecting with backoff when the server goes away.
 *
 * Every failure is turned into one of three answers the callers act on differently: I/O
 * (retry later), authentication (a person must fix the credentials) and any other error
 * reply (a bug or a misconfiguration retrying cannot fix). The message beside it always
 * names the server and carries hiredis's or Redis's own words, so a log line is enough to
 * diagnose an outage; the password is never part of it.
 *
 * DESIGN: an rs_redis_t wraps at most one redisContext and is used by one thread, like the
 * context itself, so there is no lock. The invariant is that `ctx` is either NULL or a
 * context that has passed the whole handshake and has not failed since: any hiredis error
 * drops it at once (hiredis contexts are not reusable after an I/O error), so
 * rs_redis_connected() never lies and the next rs_redis_connect() always starts clean.
 * The handshake runs under connect_timeout_ms and only then switches the socket to
 * command_timeout_ms, because a reader that blocks in XREADGROUP needs a reply timeout longer
 * than its BLOCK (it uses block_ms + connect_timeout_ms) but must still not hang on a server
 * that accepts TCP and never answers. Both are SO_RCVTIMEO/SO_SNDTIMEO on a blocking socket,
 * so a thread can only be woken early by shutdown(2) on the socket: the on_socket hook hands
 * the socket out before the handshake for that.
 * Only APIs present in both hiredis 0.14 and 1.x are used; REDIS_ERR_TIMEOUT (1.x only) is
 * tested with #ifdef because it is a macro.
 */

#include "redis_conn.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>

#include "backoff.h"
#include "cluster.h"

/* Log module for every line this file writes. */
#define LOG_MODULE "redis"

/* Defaults for the reconnect backoff when the options leave them 0. */
#define DEFAULT_BACKOFF_BASE_MS 100
#define DEFAULT_BACKOFF_CAP_MS  5000

/* Longest command name copied into an error message ("XREADGROUP" fits). */
#define MAX_COMMAND_NAME 24

struct rs_redis {
    redisContext *ctx; /* NULL, or a context past the handshake; see DESIGN */
    rs_logger_t *log;  /* borrowed */

    char *host;
    int port;
    char *addr; /* "host:port", or "[v6]:port"; for messages */
    char *username;
    char *password; /* wiped with explicit_bzero() before it is freed */
    int db;
    int connect_timeout_ms;
    int command_timeout_ms;
    char *client_name;
    rs_redis_socket_fn on_socket; /* NULL, or told about each connection's socket */
    void *on_socket_arg;

    /* Cluster mode (rs_redis_route()): the router, the key whose master each connect
     * reaches, and whether the connection must be dropped at the next chance (a redirection
     * read from a pipeline). */
    rs_cluster_t *cluster;
    char *route_key;
    size_t route_len;
    bool stale;

    rs_backoff_t backoff;
    /* Successful handshakes, including the first. Written by the owner thread, read by any
     * (the HTTP server's /metrics), hence atomic. */
    atomic_ulong connects;

    rs_redis_status_t err; /* the last failure's kind, RS_REDIS_OK when none */
    char errstr[256];      /* "redis <addr>: <what>: <why>", or "" */
};

static char *dup_or_null(const char *s)
{
    return s != NULL ? strdup(s) : NULL;
}

/* Frees a string that may hold a secret, wiping it first so it does not linger in freed heap
 * memory (where a core dump or a later bug could expose it). */
static void free_secret(char *s)
{
    if (s == NULL)
        return;
    explicit_bzero(s, strlen(s));
    free(s);
}

static struct timeval timeval_from_ms(int ms)
{
    struct timeval tv;
    tv.tv_sec = ms / 1000;
    tv.tv_usec = (ms % 1000) * 1000;
    return tv;
}

/* Records a failure of kind `status` with the message "redis <addr>: <fmt...>". */
__attribute__((format(printf, 3, 4))) static void set_error(rs_redis_t *r, rs_redis_status_t status,
                                                            const char *fmt, ...)
{
    int n = snprintf(r->errstr, sizeof(r->errstr), "redis %s: ", r->addr);
    if (n < 0 || (size_t)n >= sizeof(r->errstr))
        n = 0;
    va_list ap;
    va_start(ap, fmt);
    (void)vsnprintf(r->errstr + n, sizeof(r->errstr) - (size_t)n, fmt, ap);
    va_end(ap);
    r->err = status;
}

static void clear_error(rs_redis_t *r)
{
    r->err = RS_REDIS_OK;
    r->errstr[0] = '\0';
}

static void drop_context(rs_redis_t *r)
{
    if (r->ctx != NULL) {
        if (r->on_socket != NULL)
            r->on_socket(r->on_socket_arg, -1);
        redisFree(r->ctx);
        r->ctx = NULL;
    }
}

/* hiredis's description of a failed context. A read timeout shows up in hiredis 0.14 as an
 * I/O error with EAGAIN ("Resource temporarily unavailable"), which says nothing to an
 * operator, so it is reworded; `saved_errno` is errno right after the failing call. */
static const char *context_error(const redisContext *c, int saved_errno, int timeout_ms, char *buf,
                                 size_t len)
{
    if (c == NULL)
        return "out of memory";
#ifdef REDIS_ERR_TIMEOUT
    if (c->err == REDIS_ERR_TIMEOUT) {
        snprintf(buf, len, "timed out after %d ms (%s)", timeout_ms, c->errstr);
        return buf;
    }
#endif
    if (c->err == REDIS_ERR_IO && (saved_errno == EAGAIN || saved_errno == EWOULDBLOCK)) {
        snprintf(buf, len, "timed out after %d ms", timeout_ms);
        return buf;
    }
    return c->errstr[0] != '\0' ? c->errstr : "unknown error";
}

/* Copies argv[0] into `buf` for messages: only the command's name, never its arguments
 * (AUTH's argument is the password), and only printable characters. */
static const char *command_name(int argc, const char **argv, const size_t *argvlen, char *buf,
                                size_t len)
{
    size_t n = 0;
    if (argc > 0 && argv[0] != NULL) {
        for (size_t i = 0; i < argvlen[0] && n + 1 < len; i++) {
            char ch = argv[0][i];
            buf[n++] = (ch > ' ' && ch < 0x7f) ? ch : '?';
        }
    }
    buf[n] = '\0';
    return n > 0 ? buf : "command";
}

static int starts_with(const char *msg, size_t len, const char *prefix)
{
    size_t n = strlen(prefix);
    return len >= n && memcmp(msg, prefix, n) == 0;
}

/* True when `needle` (lower case) occurs in msg[0..len) ignoring case. */
static int contains_nocase(const char *msg, size_t len, const char *needle)
{
    size_t n = strlen(needle);
    for (size_t i = 0; i + n <= len; i++) {
        if (strncasecmp(msg + i, needle, n) == 0)
            return 1;
    }
    return 0;
}

rs_redis_status_t rs_redis_classify_error(const char *msg, size_t len)
{
    if (msg == NULL)
        return RS_REDIS_ERR_REPLY;
    /* Redis 6+ answers with these codes. */
    if (starts_with(msg, len, "WRONGPASS") || starts_with(msg, len, "NOAUTH") ||
        starts_with(msg, len, "NOPERM"))
        return RS_REDIS_ERR_AUTH;
    /* Older servers and some proxies use a plain ERR: "ERR invalid password", "ERR Client sent
     * AUTH, but no password is set", "ERR AUTH <password> called without any password
     * configured ...". */
    if (starts_with(msg, len, "ERR") &&
        (contains_nocase(msg, len, "auth") || contains_nocase(msg, len, "password")))
        return RS_REDIS_ERR_AUTH;
    /* States a server leaves by itself: loading a dataset, a busy script, a replica whose
     * master is down, a cluster slot being migrated. */
    if (starts_with(msg, len, "LOADING") || starts_with(msg, len, "BUSY") ||
        starts_with(msg, len, "MASTERDOWN") || starts_with(msg, len, "TRYAGAIN") ||
        starts_with(msg, len, "CLUSTERDOWN") || starts_with(msg, len, "MOVED ") ||
        starts_with(msg, len, "ASK "))
        return RS_REDIS_ERR_IO;
    return RS_REDIS_ERR_REPLY;
}

/* The length of an error reply's text as an int for "%.*s", bounded so a huge reply cannot
 * overflow the conversion (the message is truncated by errstr's size anyway). */
static int reply_text_len(const redisReply *reply)
{
    return reply->len > 200 ? 200 : (int)reply->len;
}

/* Runs one handshake command. Returns RS_REDIS_OK when the reply is a status reply equal to
 * `expect`; otherwise records the failure (as `what`) and returns its kind. An error reply to
 * AUTH is always an authentication failure, whatever its code, because the only thing AUTH
 * can refuse is the credentials (for example "ERR wrong number of arguments" when an ACL user
 * is given to a Redis 5 server). */
static rs_redis_status_t handshake_command(rs_redis_t *r, const char *what, int argc,
                                           const char **argv, const size_t *argvlen,
                                           const char *expect, int is_auth)
{
    errno = 0;
    redisReply *reply = redisCommandArgv(r->ctx, argc, argv, argvlen);
    if (reply == NULL) {
        char buf[160];
        set_error(r, RS_REDIS_ERR_IO, "%s: %s", what,
                  context_error(r->ctx, errno, r->connect_timeout_ms, buf, sizeof(buf)));
        return RS_REDIS_ERR_IO;
    }

    rs_redis_status_t st = RS_REDIS_OK;
    if (reply->type == REDIS_REPLY_ERROR) {
        st = is_auth ? RS_REDIS_ERR_AUTH : rs_redis_classify_error(reply->str, reply->len);
        set_error(r, st, "%s failed: %.*s", what, reply_text_len(reply), reply->str);
    } else if (reply->type != REDIS_REPLY_STATUS || reply->len != strlen(expect) ||
               memcmp(reply->str, expect, reply->len) != 0) {
        st = RS_REDIS_ERR_REPLY;
        set_error(r, st, "%s: unexpected reply (type %d) instead of %s", what, reply->type, expect);
    }
    freeReplyObject(reply);
    return st;
}

/* Points the handle at host:port (a copy), rebuilding the address used in messages.
 * Returns -1 when out of memory (the handle is then unchanged). */
static int set_address(rs_redis_t *r, const char *host, int port)
{
    /* IPv6 literals are bracketed so the port stays readable: "[::1]:6379". */
    bool v6 = strchr(host, ':') != NULL;
    size_t len = strlen(host) + sizeof("[]:65535") + 16;
    char *h = strdup(host), *addr = malloc(len);
    if (h == NULL || addr == NULL) {
        free(h);
        free(addr);
        return -1;
    }
    snprintf(addr, len, "%s%s%s:%d", v6 ? "[" : "", host, v6 ? "]" : "", port);
    free(r->host);
    free(r->addr);
    r->host = h;
    r->addr = addr;
    r->port = port;
    return 0;
}

rs_redis_t *rs_redis_new(const rs_redis_opts_t *opts, rs_logger_t *log)
{
    rs_redis_t *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return NULL;
    r->log = log;
    r->db = opts->db;
    r->connect_timeout_ms = opts->connect_timeout_ms > 0 ? opts->connect_timeout_ms : 0;
    r->command_timeout_ms = opts->command_timeout_ms > 0 ? opts->command_timeout_ms : 0;
    r->client_name = strdup(opts->client_name != NULL ? opts->client_name : "redis");
    r->username = dup_or_null(opts->username);
    /* An empty password means "no AUTH", so it is stored as none. */
    if (opts->password != NULL && opts->password[0] != '\0')
        r->password = strdup(opts->password);

    int fail = r->client_name == NULL || (opts->username != NULL && r->username == NULL) ||
               (opts->password != NULL && opts->password[0] != '\0' && r->password == NULL) ||
               set_address(r, opts->host != NULL ? opts->host : "127.0.0.1", opts->port) != 0;
    if (fail) {
        rs_redis_free(r);
        return NULL;
    }

    int base = opts->backoff_base_ms > 0 ? opts->backoff_base_ms : DEFAULT_BACKOFF_BASE_MS;
    int cap = opts->backoff_cap_ms > 0 ? opts->backoff_cap_ms : DEFAULT_BACKOFF_CAP_MS;
    rs_backoff_init(&r->backoff, base, cap, 0);
    clear_error(r);
    return r;
}

rs_redis_t *rs_redis_new_from_config(const rs_config_t *cfg, const char *client_name,
                                     int command_timeout_ms, rs_logger_t *log)
{
    rs_redis_opts_t opts = {
        .host = cfg->redis.host,
        .port = cfg->redis.port,
        .username = cfg->redis.username,
        .password = cfg->redis.password,
        .db = cfg->redis.db,
        .connect_timeout_ms = cfg->redis.connect_timeout_ms,
        .command_timeout_ms = command_timeout_ms,
        .client_name = client_name,
    };
    return rs_redis_new(&opts, log);
}

void rs_redis_on_socket(rs_redis_t *r, rs_redis_socket_fn fn, void *arg)
{
    r->on_socket = fn;
    r->on_socket_arg = arg;
}

void rs_redis_free(rs_redis_t *r)
{
    if (r == NULL)
        return;
    r->on_socket = NULL; /* the owner may be half torn down already */
    drop_context(r);
    free(r->host);
    free(r->addr);
    free(r->client_name);
    free(r->route_key);
    free_secret(r->username);
    free_secret(r->password);
    free(r);
}

void rs_redis_route(rs_redis_t *r, rs_cluster_t *cluster, const char *key, size_t len)
{
    free(r->route_key);
    r->route_key = malloc(len + 1);
    r->cluster = cluster; /* a key that could not be copied makes each connect fail */
    r->route_len = len;
    if (r->route_key != NULL) {
        memcpy(r->route_key, key, len);
        r->route_key[len] = '\0';
    }
}

/* Cluster mode: points the handle at the master serving its key. Returns RS_REDIS_OK or the
 * router's failure, recorded as the handle's error. */
static rs_redis_status_t follow_route(rs_redis_t *r)
{
    if (r->route_key == NULL) {
        set_error(r, RS_REDIS_ERR_IO, "out of memory");
        return RS_REDIS_ERR_IO;
    }
    rs_cluster_node_t owner;
    char err[256];
    rs_redis_status_t st =
        rs_cluster_owner(r->cluster, r->route_key, r->route_len, &owner, err, sizeof(err));
    if (st != RS_REDIS_OK) {
        /* The router's message already names the node it asked. */
        r->err = st;
        snprintf(r->errstr, sizeof(r->errstr), "%s", err);
        return st;
    }
    if ((owner.port != r->port || strcmp(owner.host, r->host) != 0) &&
        set_address(r, owner.host, owner.port) != 0) {
        set_error(r, RS_REDIS_ERR_IO, "out of memory");
        return RS_REDIS_ERR_IO;
    }
    return RS_REDIS_OK;
}

static rs_redis_status_t connect_once(rs_redis_t *r);

rs_redis_status_t rs_redis_connect(rs_redis_t *r)
{
    rs_redis_status_t st = connect_once(r);
    if (st != RS_REDIS_ERR_IO || r->cluster == NULL || r->route_key == NULL)
        return st;
    /* Cluster mode: the master just tried may have died and the refresh after the failure
     * (connect_once()) may name its successor, typically because another thread saw the
     * failover first. Then the successor is tried at once, not after a backoff step that can
     * reach seconds. */
    rs_cluster_node_t owner;
    char err[256];
    if (rs_cluster_owner(r->cluster, r->route_key, r->route_len, &owner, err, sizeof(err)) !=
            RS_REDIS_OK ||
        (owner.port == r->port && strcmp(owner.host, r->host) == 0))
        return st;
    return connect_once(r);
}

/* One connection attempt: rs_redis_connect() without the second chance. */
static rs_redis_status_t connect_once(rs_redis_t *r)
{
    drop_context(r);
    clear_error(r);
    r->stale = false;
    if (r->cluster != NULL) {
        rs_redis_status_t st = follow_route(r);
        if (st != RS_REDIS_OK)
            return st;
    }

    errno = 0;
    if (r->connect_timeout_ms > 0)
        r->ctx = redisConnectWithTimeout(r->host, r->port, timeval_from_ms(r->connect_timeout_ms));
    else
        r->ctx = redisConnect(r->host, r->port);
    if (r->ctx == NULL || r->ctx->err != 0) {
        char buf[160];
        set_error(r, RS_REDIS_ERR_IO, "connect: %s",
                  context_error(r->ctx, errno, r->connect_timeout_ms, buf, sizeof(buf)));
        drop_context(r);
        if (r->cluster != NULL) {
            /* The master may have died and a replica taken over: the next attempt asks
             * the router, which then knows. */
            char err[256];
            (void)rs_cluster_refresh(r->cluster, err, sizeof(err));
        }
        return RS_REDIS_ERR_IO;
    }

    /* hiredis 0.14 opens its socket without SOCK_CLOEXEC; a handler's child process must
     * never inherit a connection to Redis (the exec handler also closes every descriptor in
     * the child, this is the second line of defence). */
    int fdflags = fcntl(r->ctx->fd, F_GETFD);
    if (fdflags >= 0)
        (void)fcntl(r->ctx->fd, F_SETFD, fdflags | FD_CLOEXEC);
    /* From here on the owner can wake a handshake stuck on a server that never answers. */
    if (r->on_socket != NULL)
        r->on_socket(r->on_socket_arg, r->ctx->fd);

    /* Keepalive lets the kernel notice a peer that vanished without a FIN (a rebooted host,
     * a dropped NAT entry) even while a reader sits in a long BLOCK. */
    if (redisEnableKeepAlive(r->ctx) != REDIS_OK) {
        set_error(r, RS_REDIS_ERR_IO, "keepalive: %s", r->ctx->errstr);
        drop_context(r);
        return RS_REDIS_ERR_IO;
    }
    /* The handshake is bounded by the connect timeout even when commands are not. */
    if (redisSetTimeout(r->ctx, timeval_from_ms(r->connect_timeout_ms)) != REDIS_OK) {
        set_error(r, RS_REDIS_ERR_IO, "set timeout: %s", r->ctx->errstr);
        drop_context(r);
        return RS_REDIS_ERR_IO;
    }

    rs_redis_status_t st = RS_REDIS_OK;
    if (r->password != NULL) {
        /* hiredis copies the command into its output buffer and frees it without wiping;
         * that copy is outside our control, which is why this is only "securely-ish". */
        const char *argv[3];
        size_t argvlen[3];
        int argc = 0;
        argv[argc] = "AUTH";
        argvlen[argc++] = 4;
        if (r->username != NULL && r->username[0] != '\0') {
            argv[argc] = r->username;
            argvlen[argc++] = strlen(r->username);
        }
        argv[argc] = r->password;
        argvlen[argc++] = strlen(r->password);
        st = handshake_command(r, "AUTH", argc, argv, argvlen, "OK", 1);
    }
    if (st == RS_REDIS_OK && r->db != 0) {
        char dbtext[24];
        char what[32];
        int n = snprintf(dbtext, sizeof(dbtext), "%d", r->db);
        snprintf(what, sizeof(what), "SELECT %d", r->db);
        const char *argv[2] = {"SELECT", dbtext};
        size_t argvlen[2] = {6, (size_t)n};
        st = handshake_command(r, what, 2, argv, argvlen, "OK", 0);
    }
    if (st == RS_REDIS_OK) {
        /* PING proves the session usable: without a password it is where NOAUTH shows, and
         * while a restarted server loads its dataset it answers LOADING. */
        const char *argv[1] = {"PING"};
        size_t argvlen[1] = {4};
        st = handshake_command(r, "PING", 1, argv, argvlen, "PONG", 0);
    }
    if (st == RS_REDIS_OK &&
        redisSetTimeout(r->ctx, timeval_from_ms(r->command_timeout_ms)) != REDIS_OK) {
        set_error(r, RS_REDIS_ERR_IO, "set timeout: %s", r->ctx->errstr);
        st = RS_REDIS_ERR_IO;
    }
    if (st != RS_REDIS_OK) {
        drop_context(r);
        return st;
    }
    atomic_fetch_add_explicit(&r->connects, 1, memory_order_relaxed);
    return RS_REDIS_OK;
}

/* The wait used when the caller passes none: sleeps the whole time, never stops early. */
static int plain_wait(void *arg, long ms)
{
    (void)arg;
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
    return 0;
}

rs_redis_status_t rs_redis_connect_retry(rs_redis_t *r, rs_redis_wait_fn wait, void *arg)
{
    char last[sizeof(r->errstr)];
    unsigned attempts = 0;

    if (wait == NULL)
        wait = plain_wait;
    rs_backoff_reset(&r->backoff);
    last[0] = '\0';
    for (;;) {
        attempts++;
        rs_redis_status_t st = rs_redis_connect(r);
        if (st == RS_REDIS_OK) {
            if (attempts == 1)
                rs_log(r->log, RS_LOG_INFO, LOG_MODULE, "%s: connected to redis %s", r->client_name,
                       r->addr);
            else
                rs_log(r->log, RS_LOG_INFO, LOG_MODULE,
                       "%s: connected to redis %s after %u attempts", r->client_name, r->addr,
                       attempts);
            rs_backoff_reset(&r->backoff);
            return RS_REDIS_OK;
        }
        /* Credentials and other refusals do not heal by waiting: the caller decides (and
         * reports) what happens next. */
        if (st != RS_REDIS_ERR_IO)
            return st;
        /* Stopping (the owner may have shut the socket down to get here): not an outage. */
        if (wait(arg, 0) != 0)
            return RS_REDIS_ERR_IO;

        /* Rate limit: the first failure and any change of reason are logged in full, the
         * rest as one short line per backoff step (at most one per cap_ms at worst). */
        int64_t ms = rs_backoff_next_ms(&r->backoff);
        if (strcmp(last, r->errstr) != 0) {
            rs_log(r->log, RS_LOG_WARN, LOG_MODULE,
                   "%s: %s; retrying in %" PRId64 " ms (attempt %u)", r->client_name, r->errstr, ms,
                   attempts);
            memcpy(last, r->errstr, sizeof(last));
        } else {
            rs_log(r->log, RS_LOG_WARN, LOG_MODULE,
                   "%s: redis %s still unreachable, retrying in %" PRId64 " ms (attempt %u)",
                   r->client_name, r->addr, ms, attempts);
        }
        if (wait(arg, (long)ms) != 0)
            return RS_REDIS_ERR_IO;
    }
}

bool rs_redis_connected(const rs_redis_t *r)
{
    return r->ctx != NULL && !r->stale;
}

/* Runs the command once on node `to` after ASKING, on a connection made for it (a migration
 * is short, and ASK concerns one key at a time). Returns the reply, or NULL with the error
 * recorded. */
static redisReply *ask_once(rs_redis_t *r, const rs_cluster_node_t *to, int argc, const char **argv,
                            const size_t *argvlen)
{
    rs_redis_opts_t opts = {
        .host = to->host,
        .port = to->port,
        .username = r->username,
        .password = r->password,
        .connect_timeout_ms = r->connect_timeout_ms,
        .command_timeout_ms = r->command_timeout_ms,
        .client_name = r->client_name,
    };
    rs_redis_t *t = rs_redis_new(&opts, r->log);
    if (t == NULL) {
        set_error(r, RS_REDIS_ERR_IO, "ASK: out of memory");
        return NULL;
    }
    redisReply *reply = NULL;
    if (rs_redis_connect(t) == RS_REDIS_OK) {
        const char *asking[] = {"ASKING"};
        const size_t askinglen[] = {6};
        redisReply *ok = rs_redis_command_argv(t, 1, asking, askinglen);
        if (ok != NULL && ok->type != REDIS_REPLY_ERROR)
            reply = rs_redis_command_argv(t, argc, argv, argvlen);
        else if (ok != NULL)
            snprintf(t->errstr, sizeof(t->errstr), "redis %s: ASKING refused: %.*s", t->addr,
                     reply_text_len(ok), ok->str);
        freeReplyObject(ok);
    }
    if (reply == NULL)
        set_error(r, RS_REDIS_ERR_IO, "following ASK: %s", t->errstr);
    rs_redis_free(t);
    return reply;
}

redisReply *rs_redis_read_reply(rs_redis_t *r)
{
    void *reply = NULL;
    if (r->ctx == NULL) {
        if (r->errstr[0] == '\0')
            set_error(r, RS_REDIS_ERR_IO, "reading a reply: not connected");
        r->err = RS_REDIS_ERR_IO;
        return NULL;
    }
    errno = 0;
    if (redisGetReply(r->ctx, &reply) != REDIS_OK || reply == NULL) {
        rs_redis_mark_broken(r);
        return NULL;
    }
    (void)rs_redis_redirected(r, reply);
    return reply;
}

bool rs_redis_redirected(rs_redis_t *r, const redisReply *reply)
{
    if (r->cluster == NULL || reply == NULL || reply->type != REDIS_REPLY_ERROR)
        return false;
    rs_redirect_t to;
    rs_redirect_kind_t kind = rs_cluster_redirect_parse(reply->str, reply->len, r->host, &to);
    if (kind == RS_REDIRECT_NONE)
        return false;
    if (kind == RS_REDIRECT_MOVED)
        rs_cluster_moved(r->cluster, to.slot, &to.node);
    set_error(r, RS_REDIS_ERR_IO, "%s slot %u to %s:%d",
              kind == RS_REDIRECT_MOVED ? "moved" : "asked to follow", to.slot, to.node.host,
              to.node.port);
    r->stale = true;
    return true;
}

redisReply *rs_redis_command_argv(rs_redis_t *r, int argc, const char **argv, const size_t *argvlen)
{
    char name[MAX_COMMAND_NAME];
    if (r->stale)
        drop_context(r); /* keeps the error that made it stale */
    if (r->ctx == NULL) {
        /* Keep the error that closed the connection: it is the useful one. */
        if (r->errstr[0] == '\0')
            set_error(r, RS_REDIS_ERR_IO, "%s: not connected",
                      command_name(argc, argv, argvlen, name, sizeof(name)));
        r->err = RS_REDIS_ERR_IO;
        return NULL;
    }
    errno = 0;
    redisReply *reply = redisCommandArgv(r->ctx, argc, argv, argvlen);
    if (reply == NULL) {
        char buf[160];
        int saved = errno;
        set_error(r, RS_REDIS_ERR_IO, "%s: %s",
                  command_name(argc, argv, argvlen, name, sizeof(name)),
                  context_error(r->ctx, saved, r->command_timeout_ms, buf, sizeof(buf)));
        drop_context(r);
        return NULL;
    }
    if (r->cluster != NULL && reply->type == REDIS_REPLY_ERROR) {
        rs_redirect_t to;
        switch (rs_cluster_redirect_parse(reply->str, reply->len, r->host, &to)) {
        case RS_REDIRECT_MOVED:
            set_error(r, RS_REDIS_ERR_IO, "%s: slot %u moved to %s:%d",
                      command_name(argc, argv, argvlen, name, sizeof(name)), to.slot, to.node.host,
                      to.node.port);
            freeReplyObject(reply);
            rs_cluster_moved(r->cluster, to.slot, &to.node);
            drop_context(r);
            return NULL;
        case RS_REDIRECT_ASK:
            freeReplyObject(reply);
            reply = ask_once(r, &to.node, argc, argv, argvlen);
            if (reply == NULL)
                drop_context(r);
            return reply;
        case RS_REDIRECT_NONE:
            break;
        }
    }
    return reply;
}

redisContext *rs_redis_context(rs_redis_t *r)
{
    return r->ctx;
}

void rs_redis_mark_broken(rs_redis_t *r)
{
    if (r->ctx == NULL)
        return;
    char buf[160];
    set_error(r, RS_REDIS_ERR_IO, "connection lost: %s",
              context_error(r->ctx, errno, r->command_timeout_ms, buf, sizeof(buf)));
    drop_context(r);
}

const char *rs_redis_errstr(const rs_redis_t *r)
{
    return r->errstr;
}

const char *rs_redis_addr(const rs_redis_t *r)
{
    return r->addr;
}

unsigned long rs_redis_reconnects(const rs_redis_t *r)
{
    unsigned long n = atomic_load_explicit(&r->connects, memory_order_relaxed);
    return n > 0 ? n - 1 : 0;
}
