/* Unit tests for redis_conn.c: how Redis error replies are classified, and how a connection
 * to a server that accepts TCP and never answers ends (a loopback listener that never calls
 * accept(2): the kernel completes the TCP handshake, nobody ever writes). The connection to a
 * real redis-server is tested by the integration tests. */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "redis_conn.h"

/* A listening socket on 127.0.0.1 that never accepts; sets *port. */
static int silent_listener(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(fd, 16), 0);
    socklen_t len = sizeof(sa);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    *port = ntohs(sa.sin_port);
    return fd;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void redis_conn_classifies_errors(void **state)
{
    (void)state;
    static const struct {
        const char *msg;
        rs_redis_status_t want;
    } cases[] = {
        /* Redis 6+ credential refusals. */
        {"WRONGPASS invalid username-password pair or user is disabled.", RS_REDIS_ERR_AUTH},
        {"NOAUTH Authentication required.", RS_REDIS_ERR_AUTH},
        {"NOPERM this user has no permissions to run the 'xadd' command", RS_REDIS_ERR_AUTH},
        /* Older servers phrase it as a plain ERR. */
        {"ERR invalid password", RS_REDIS_ERR_AUTH},
        {"ERR AUTH <password> called without any password configured for the default user.",
         RS_REDIS_ERR_AUTH},
        /* Transient server states: retry like a lost connection. */
        {"LOADING Redis is loading the dataset in memory", RS_REDIS_ERR_IO},
        {"BUSY Redis is busy running a script.", RS_REDIS_ERR_IO},
        {"MASTERDOWN Link with MASTER is down", RS_REDIS_ERR_IO},
        {"TRYAGAIN Multiple keys request during rehashing of slot", RS_REDIS_ERR_IO},
        /* Everything else is a reply error retrying cannot fix. */
        {"WRONGTYPE Operation against a key holding the wrong kind of value", RS_REDIS_ERR_REPLY},
        {"ERR DB index is out of range", RS_REDIS_ERR_REPLY},
        {"NOGROUP No such key 'events' or consumer group 'workers'", RS_REDIS_ERR_REPLY},
        {"", RS_REDIS_ERR_REPLY},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        rs_redis_status_t got = rs_redis_classify_error(cases[i].msg, strlen(cases[i].msg));
        if (got != cases[i].want)
            fail_msg("'%s': got %d, want %d", cases[i].msg, got, cases[i].want);
    }
    assert_int_equal(rs_redis_classify_error(NULL, 0), RS_REDIS_ERR_REPLY);
}

/* A server that never answers fails the handshake after connect_timeout_ms, with a message
 * naming the address, the step and the timeout, and never the password. */
static void redis_conn_silent_server_times_out(void **state)
{
    (void)state;
    static const struct {
        const char *password; /* the handshake's first command: AUTH with one, else PING */
        const char *step;
    } cases[] = {
        {NULL, "PING"},
        {"s3cret-pw", "AUTH"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int port;
        int lfd = silent_listener(&port);
        rs_redis_opts_t o = {.host = "127.0.0.1",
                             .port = port,
                             .password = cases[i].password,
                             .connect_timeout_ms = 300,
                             .client_name = "test"};
        rs_redis_t *r = rs_redis_new(&o, NULL);
        assert_non_null(r);
        int64_t start = now_ms();
        assert_int_equal(rs_redis_connect(r), RS_REDIS_ERR_IO);
        int64_t took = now_ms() - start;
        assert_false(rs_redis_connected(r));
        char want[128];
        snprintf(want, sizeof(want), "redis 127.0.0.1:%d: %s: timed out after 300 ms", port,
                 cases[i].step);
        assert_string_equal(rs_redis_errstr(r), want);
        assert_null(strstr(rs_redis_errstr(r), "s3cret"));
        if (took < 250 || took > 5000)
            fail_msg("the handshake took %lld ms, want about 300", (long long)took);
        rs_redis_free(r);
        close(lfd);
    }
}

/* What the socket hook saw, and the thread that shuts the socket down like a stopping
 * reader does. */
typedef struct {
    atomic_int dup_fd; /* -1 until the hook published a dup */
    int calls_open, calls_closed;
} hook_state_t;

static void record_socket(void *arg, int fd)
{
    hook_state_t *h = arg;
    if (fd >= 0) {
        h->calls_open++;
        atomic_store(&h->dup_fd, fcntl(fd, F_DUPFD_CLOEXEC, 0));
    } else {
        h->calls_closed++;
    }
}

static void *shut_down_when_published(void *arg)
{
    hook_state_t *h = arg;
    for (int i = 0; i < 5000 && atomic_load(&h->dup_fd) < 0; i++)
        usleep(1000);
    usleep(50000); /* let the handshake's read start blocking */
    int fd = atomic_load(&h->dup_fd);
    if (fd >= 0)
        shutdown(fd, SHUT_RDWR);
    return NULL;
}

/* The hook hands out the socket before the handshake, so another thread can end a handshake
 * with a server that never answers at once instead of after connect_timeout_ms; it is told
 * when the connection is dropped. */
static void redis_conn_socket_hook_wakes_handshake(void **state)
{
    (void)state;
    int port;
    int lfd = silent_listener(&port);
    rs_redis_opts_t o = {
        .host = "127.0.0.1", .port = port, .connect_timeout_ms = 20000, .client_name = "test"};
    rs_redis_t *r = rs_redis_new(&o, NULL);
    assert_non_null(r);
    hook_state_t h = {.dup_fd = -1};
    rs_redis_on_socket(r, record_socket, &h);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, shut_down_when_published, &h), 0);
    int64_t start = now_ms();
    assert_int_equal(rs_redis_connect(r), RS_REDIS_ERR_IO);
    int64_t took = now_ms() - start;
    pthread_join(t, NULL);
    if (took > 5000)
        fail_msg("the handshake took %lld ms after the shutdown, want well under 20000",
                 (long long)took);
    assert_int_equal(h.calls_open, 1);
    assert_int_equal(h.calls_closed, 1);
    close(atomic_load(&h.dup_fd));
    rs_redis_free(r);
    close(lfd);
}

/* A wait that always reports a stop, counting its calls. */
static int stopping_wait(void *arg, long ms)
{
    (void)ms;
    ++*(int *)arg;
    return 1;
}

/* When the caller is stopping, a failed attempt ends rs_redis_connect_retry() without a
 * warning: a shutdown is not an outage. */
static void redis_conn_retry_stopping_logs_nothing(void **state)
{
    (void)state;
    int port;
    int lfd = silent_listener(&port);
    close(lfd); /* now nothing listens there: "Connection refused" */
    char *text = NULL;
    size_t len = 0;
    FILE *sink = open_memstream(&text, &len);
    assert_non_null(sink);
    rs_logger_t *log = rs_logger_new(sink, RS_LOG_DEBUG);
    rs_redis_opts_t o = {
        .host = "127.0.0.1", .port = port, .connect_timeout_ms = 1000, .client_name = "test"};
    rs_redis_t *r = rs_redis_new(&o, log);
    assert_non_null(r);
    int waits = 0;
    assert_int_equal(rs_redis_connect_retry(r, stopping_wait, &waits), RS_REDIS_ERR_IO);
    assert_int_equal(waits, 1);
    fflush(sink);
    assert_int_equal(len, 0);
    rs_redis_free(r);
    rs_logger_free(log);
    fclose(sink);
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(redis_conn_classifies_errors),
        cmocka_unit_test(redis_conn_silent_server_times_out),
        cmocka_unit_test(redis_conn_socket_hook_wakes_handshake),
        cmocka_unit_test(redis_conn_retry_stopping_logs_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
