/*
 * Fuzz harness for the health server's request handling, two ways:
 *
 *   1. the pure decision, rs_health_route(), on the first two words of the input's first
 *      line, checked against the contract in health.h (405 for any method but GET and HEAD,
 *      then an exact match of the endpoints' paths, the dashboard's included, else 404);
 *   2. the real access handler: the input, as raw bytes, is parsed by libmicrohttpd and
 *      reaches health.c's handle_request() and the endpoints behind it, for a server object
 *      made by rs_health_new() in front of a consumer that was built but never started,
 *      whose Redis address refuses connections (a socket bound and never listening).
 *
 * To reach the file's static functions unchanged, this file includes health.c (its non-static
 * functions are then this program's, and the library's copy is never linked in). The daemon
 * is not rs_health_start()'s: that one runs three epoll threads on a listening socket, and
 * with edge-triggered epoll libmicrohttpd can miss a client's end of input that arrives with
 * the request's last bytes, waiting out its 5 s idle timeout. Here the daemon runs in the
 * caller's thread (external select, MHD_run()) with no listening socket; each input is one
 * connection, one end of a socketpair handed over with MHD_add_connection(), with the same
 * access handler, connection notifications, memory and connection limits and logger as the
 * product's. It is deterministic and fast.
 *
 * Checks: the server closes the connection once the client's input has ended (within a
 * bounded number of MHD_run() rounds) and frees its slot; any answer starts with "HTTP/1.";
 * when the input begins with a plain request line ("METHOD /path HTTP/1.x") and the answer
 * is not libmicrohttpd's own refusal of a malformed request (400, 413, 414, 431, 501, 505),
 * its status is the route's: /healthz 503 and /readyz 503 (the consumer is "starting"),
 * /streams 503 (Redis refuses), /metrics 200, the dashboard's /, /api/stats and
 * /api/problems 200 (health.dashboard is on by default), /api/deadletters 400 (a plain
 * request line has no query, so no stream), else 404 or 405.
 */

#include "health.c" /* NOLINT: deliberate, see above */

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>

#include "fuzz.h"

/* The server and what it borrows, made once for the process, freed at exit. */
static rs_config_t *cfg;
static rs_logger_t *logger;
static rs_consumer_t *consumer;
static rs_health_t *health;
static struct MHD_Daemon *daemon_;
static int redis_fd = -1; /* bound, never listening: connections to it are refused */

/* MHD_run() rounds an input may take before the server must have closed. */
#define MAX_ROUNDS 1000

/* Binds a TCP socket to 127.0.0.1 on a free port. Returns it with *port set, or -1. */
static int bind_loopback(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
    socklen_t len = sizeof(sa);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &len) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    *port = ntohs(sa.sin_port);
    return fd;
}

static void teardown(void)
{
    if (daemon_ != NULL)
        MHD_stop_daemon(daemon_);
    rs_health_free(health);
    rs_consumer_free(consumer);
    rs_config_free(cfg);
    rs_logger_free(logger);
    if (redis_fd >= 0)
        close(redis_fd);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    char err[512] = "";
    int port = 0;
    unsetenv(RS_ENV_REDIS_PASSWORD);
    unsetenv("CREDENTIALS_DIRECTORY");
    cfg = rs_config_new_defaults(err, sizeof(err));
    FUZZ_CHECK(cfg != NULL, "%s", err);
    redis_fd = bind_loopback(&port);
    FUZZ_CHECK(redis_fd >= 0, "cannot bind a loopback socket: %s", strerror(errno));
    FUZZ_CHECK(rs_config_set_string(&cfg->redis.host, "127.0.0.1") == 0 &&
                   rs_config_set_string(&cfg->health.address, "127.0.0.1") == 0,
               "out of memory");
    cfg->redis.port = port;
    cfg->health.port = 0; /* rs_health_new() binds a port nothing uses */
    cfg->workers.threads = 1;
    logger = rs_logger_new(stderr, RS_LOG_ERROR);
    FUZZ_CHECK(logger != NULL, "out of memory");
    consumer = rs_consumer_new(cfg, logger, err, sizeof(err));
    FUZZ_CHECK(consumer != NULL, "%s", err);
    health = rs_health_new(cfg, consumer, logger, err, sizeof(err));
    FUZZ_CHECK(health != NULL, "%s", err);
    /* rs_health_start()'s options, less the listening socket and the threads. */
    daemon_ = MHD_start_daemon(
        MHD_USE_NO_LISTEN_SOCKET | MHD_USE_ERROR_LOG, 0, NULL, NULL, handle_request, health,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)MAX_CONNECTIONS, MHD_OPTION_PER_IP_CONNECTION_LIMIT,
        (unsigned)MAX_CONNECTIONS_PER_IP, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)IDLE_TIMEOUT_S,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)CONNECTION_MEMORY, MHD_OPTION_NOTIFY_CONNECTION,
        notify_connection, health, MHD_OPTION_NOTIFY_COMPLETED, request_completed, health,
        MHD_OPTION_EXTERNAL_LOGGER, mhd_log, health, MHD_OPTION_END);
    FUZZ_CHECK(daemon_ != NULL, "libmicrohttpd would not start");
    atexit(teardown);
    return 0;
}

/* Copies the bytes of `in` (`len`) up to the first of `stops`, a NUL or the end into `out` as
 * a string; returns how many bytes that was. */
static size_t take_until(const char *in, size_t len, const char *stops, char *out, size_t outlen)
{
    size_t n = 0;
    while (n < len && in[n] != '\0' && strchr(stops, in[n]) == NULL)
        n++;
    size_t copy = n < outlen - 1 ? n : outlen - 1;
    memcpy(out, in, copy);
    out[copy] = '\0';
    return n;
}

/* Part 1: the pure decision against the contract. */
static rs_health_route_t check_route(const char *method, const char *url)
{
    static const char *const paths[] = {
        "/healthz", "/readyz",    "/streams",   "/metrics",      "/",
        "/app.js",  "/style.css", "/api/stats", "/api/problems", "/api/deadletters"};
    static const rs_health_route_t routes[] = {
        RS_HEALTH_ROUTE_HEALTHZ,        RS_HEALTH_ROUTE_READYZ,    RS_HEALTH_ROUTE_STREAMS,
        RS_HEALTH_ROUTE_METRICS,        RS_HEALTH_ROUTE_DASHBOARD, RS_HEALTH_ROUTE_DASHBOARD,
        RS_HEALTH_ROUTE_DASHBOARD,      RS_HEALTH_ROUTE_API_STATS, RS_HEALTH_ROUTE_API_PROBLEMS,
        RS_HEALTH_ROUTE_API_DEADLETTERS};
    rs_health_route_t route = rs_health_route(method, url);
    bool allowed = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
    rs_health_route_t want =
        allowed ? RS_HEALTH_ROUTE_NOT_FOUND : RS_HEALTH_ROUTE_METHOD_NOT_ALLOWED;
    for (size_t i = 0; allowed && i < sizeof(paths) / sizeof(paths[0]); i++)
        if (strcmp(url, paths[i]) == 0)
            want = routes[i];
    FUZZ_CHECK(route == want, "'%s' '%s' routed to %d, not %d", method, url, (int)route, (int)want);
    return route;
}

/* Is the input's first line "METHOD /path HTTP/1.x\r\n", with an uppercase method and a path
 * libmicrohttpd passes on unchanged (no escapes, no query)? Sets method and url then. */
static bool plain_request_line(const char *in, size_t len, char *method, size_t mlen, char *url,
                               size_t ulen)
{
    static const char pchar[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/_-";
    size_t m = 0;
    while (m < len && in[m] >= 'A' && in[m] <= 'Z')
        m++;
    if (m == 0 || m >= mlen || m + 1 >= len || in[m] != ' ' || in[m + 1] != '/')
        return false;
    size_t u = m + 1;
    while (u < len && in[u] != '\0' && strchr(pchar, in[u]) != NULL)
        u++;
    if (u - (m + 1) >= ulen || len - u < 11 || memcmp(in + u, " HTTP/1.", 8) != 0 ||
        (in[u + 8] != '0' && in[u + 8] != '1') || memcmp(in + u + 9, "\r\n", 2) != 0)
        return false;
    memcpy(method, in, m);
    method[m] = '\0';
    memcpy(url, in + m + 1, u - (m + 1));
    url[u - (m + 1)] = '\0';
    return true;
}

/* Part 2: hands one end of a socketpair to the daemon as a connection from 127.0.0.1, writes
 * the input into the other and ends it, then runs the daemon until it closes the connection,
 * collecting the answer in `resp` (truncated to resplen - 1, NUL-terminated). Returns its
 * length. */
static size_t exchange(const uint8_t *data, size_t size, char *resp, size_t resplen)
{
    int sv[2];
    FUZZ_CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) == 0,
               "socketpair: %s", strerror(errno));
    struct sockaddr_in peer = {.sin_family = AF_INET, .sin_port = htons(40000)};
    peer.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    FUZZ_CHECK(MHD_add_connection(daemon_, sv[1], (struct sockaddr *)&peer, sizeof(peer)) ==
                   MHD_YES,
               "MHD_add_connection refused the connection");

    size_t sent = 0, got = 0;
    bool ended = false, closed = false;
    for (int round = 0; round < MAX_ROUNDS && !closed; round++) {
        /* Feed as much as the socket takes; the daemon may stop reading (a 405 answered
         * before the body), and what it never reads is dropped with the connection. */
        while (sent < size) {
            ssize_t w = send(sv[0], data + sent, size - sent, MSG_NOSIGNAL);
            if (w <= 0)
                break;
            sent += (size_t)w;
        }
        if (sent == size && !ended) {
            shutdown(sv[0], SHUT_WR);
            ended = true;
        }
        MHD_run(daemon_);
        for (;;) {
            char buf[4096];
            ssize_t r = recv(sv[0], buf, sizeof(buf), 0);
            if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
                closed = true;
                break;
            }
            if (r < 0)
                break;
            size_t take = (size_t)r < resplen - 1 - got ? (size_t)r : resplen - 1 - got;
            memcpy(resp + got, buf, take);
            got += take;
        }
    }
    FUZZ_CHECK(closed,
               "the server kept the connection open after %d rounds (%zu of %zu bytes "
               "taken, %zu answered)",
               MAX_ROUNDS, sent, size, got);
    close(sv[0]);
    MHD_run(daemon_); /* frees the closed connection */
    const union MHD_DaemonInfo *di =
        MHD_get_daemon_info(daemon_, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
    FUZZ_CHECK(di != NULL && di->num_connections == 0, "%u connections left open",
               di != NULL ? di->num_connections : 0);
    for (size_t i = 0; i < MAX_CONNECTIONS; i++)
        FUZZ_CHECK(health->slots[i].fd < 0, "connection slot %zu still taken", i);
    resp[got] = '\0';
    return got;
}

static int expected_status(rs_health_route_t route)
{
    switch (route) {
    case RS_HEALTH_ROUTE_HEALTHZ:
    case RS_HEALTH_ROUTE_READYZ:
    case RS_HEALTH_ROUTE_STREAMS:
        return 503;
    case RS_HEALTH_ROUTE_METRICS:
    case RS_HEALTH_ROUTE_DASHBOARD:
    case RS_HEALTH_ROUTE_API_STATS:
    case RS_HEALTH_ROUTE_API_PROBLEMS:
        return 200;
    case RS_HEALTH_ROUTE_API_DEADLETTERS:
        return 400;
    case RS_HEALTH_ROUTE_NOT_FOUND:
        return 404;
    case RS_HEALTH_ROUTE_METHOD_NOT_ALLOWED:
        return 405;
    }
    return -1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *in = (const char *)data;
    char method[64], url[256];

    /* Part 1 on the first line's first two words, whatever they are. */
    size_t m = take_until(in, size, " \r\n", method, sizeof(method));
    if (m < size && in[m] == ' ')
        take_until(in + m + 1, size - m - 1, " \r\n", url, sizeof(url));
    else
        url[0] = '\0';
    check_route(method, url);

    /* Part 2. */
    static char resp[1 << 20];
    size_t got = exchange(data, size, resp, sizeof(resp));
    if (got == 0)
        return 0; /* closed without an answer: an incomplete request */
    FUZZ_CHECK(got >= 8 && memcmp(resp, "HTTP/1.", 7) == 0, "answer '%.40s'", resp);
    int status = 0;
    if (got < 13 || sscanf(resp + 9, "%3d", &status) != 1 || resp[12] != ' ')
        return 0;
    if (!plain_request_line(in, size, method, sizeof(method), url, sizeof(url)))
        return 0;
    static const int refusals[] = {400, 413, 414, 431, 501, 505};
    for (size_t i = 0; i < sizeof(refusals) / sizeof(refusals[0]); i++)
        if (status == refusals[i])
            return 0;
    rs_health_route_t route = check_route(method, url);
    FUZZ_CHECK(status == expected_status(route), "%s %s answered %d, expected %d", method, url,
               status, expected_status(route));
    return 0;
}
