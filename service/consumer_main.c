/*
 * redstream-consumer: the daemon's entry point.
 *
 * Parses the command line, loads and validates the configuration (or only reports it, with
 * --check-config), then runs the consumer service until SIGINT or SIGTERM. SIGHUP re-reads
 * the configuration file and applies it (rs_consumer_reload()).
 *
 * DESIGN: signals are blocked in every thread (the mask is set before any thread starts and
 * inherited) and the main thread takes them synchronously with sigtimedwait(2). No handler
 * runs asynchronously, so no global flag is needed, and the main thread is the one place
 * that decides what a signal means. The timeout is the main thread's tick: a second, a tenth
 * of one while starting or while a reload retires streams, and never more than a quarter of
 * the systemd watchdog's interval. Each tick finishes reloads in progress, keeps systemd's
 * STATUS= current, and pings the watchdog when the consumer's threads are alive.
 *
 * systemd's notify protocol (notify.c): READY=1 once every reader is connected with its
 * group, RELOADING=1 then READY=1 around a reload, STOPPING=1 when the shutdown begins.
 *
 * The HTTP server (health.c) binds its port before the consumer starts, so a port already in
 * use stops the program (exit 1) before any thread runs or Redis is contacted; from then on
 * /readyz says 503 until every reader is connected. It is stopped only after the consumer has
 * stopped, so /readyz answers 503 ("shutting down") for the whole graceful shutdown.
 */

#include <errno.h>
#include <curl/curl.h>
#include <getopt.h>
#include <jansson.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "clock.h"
#include "config.h"
#include "consumer.h"
#include "health.h"
#include "notify.h"
#include "version.h"

#define NS_PER_SEC   INT64_C(1000000000)
#define TICK_NS      NS_PER_SEC        /* the main thread's tick when all is calm */
#define TICK_BUSY_NS (NS_PER_SEC / 10) /* while starting or retiring streams */

static const char *const prog = "redstream-consumer";

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: %s [-c FILE] [--check-config]\n"
            "\n"
            "Consumes the Redis streams listed in the configuration with a consumer group.\n"
            "\n"
            "  -c, --config FILE   configuration file (default %s when it exists,\n"
            "                      otherwise built-in defaults)\n"
            "      --check-config  validate the configuration, print a summary, and exit\n"
            "  -h, --help          show this help and exit\n"
            "  -V, --version       show the version and exit\n"
            "\n"
            "Signals: SIGHUP reloads the configuration; SIGTERM and SIGINT stop gracefully.\n"
            "Environment: %s overrides redis.password.\n"
            "Exit status: 0 stopped cleanly, 1 runtime failure, 64 bad usage,\n"
            "             78 invalid configuration.\n",
            prog, RS_CONFIG_DEFAULT_PATH, RS_ENV_REDIS_PASSWORD);
}

/* SIGHUP: reads the configuration file again and applies it. A file that does not pass
 * validation changes nothing. `ready` says whether systemd was told READY=1 already: only
 * then is the reload announced to it (RELOADING=1 ... READY=1). */
static void reload(rs_consumer_t *c, const rs_config_t *cfg, rs_logger_t *log, rs_notify_t *notify,
                   bool ready)
{
    if (cfg->path == NULL) {
        rs_log(log, RS_LOG_WARN, "main",
               "SIGHUP: nothing to reload: running on built-in defaults (no configuration "
               "file); restart with -c FILE");
        return;
    }
    if (ready)
        rs_notify_reloading(notify);
    rs_log(log, RS_LOG_INFO, "main", "SIGHUP: reloading %s", cfg->path);
    char err[1024];
    rs_config_t *next = rs_config_load(cfg->path, err, sizeof(err));
    if (next != NULL && next->sets_nothing)
        rs_log(log, RS_LOG_WARN, "main",
               "reload: %s sets nothing (comments only): applying the built-in defaults",
               cfg->path);
    if (next == NULL)
        rs_log(log, RS_LOG_ERROR, "main", "reload rejected, the running configuration stays: %s",
               err);
    else if (rs_consumer_reload(c, next, err, sizeof(err)) != 0)
        rs_log(log, RS_LOG_ERROR, "main", "reload: %s", err);
    rs_config_free(next);
    if (ready) {
        char status[256];
        rs_consumer_status(c, status, sizeof(status));
        rs_notify_ready(notify, status);
    }
}

/* The first line of `text` (the first of several reasons), for STATUS=. */
static void first_line(char *text)
{
    text[strcspn(text, "\n")] = '\0';
}

/* Runs the consumer until SIGINT or SIGTERM: the main thread's loop. */
static void serve(rs_consumer_t *c, const rs_config_t *cfg, rs_logger_t *log,
                  const sigset_t *signals, rs_notify_t *notify)
{
    bool ready = false, watchdog_ok = true;
    size_t retiring = 0;
    for (;;) {
        int64_t wait =
            rs_notify_max_sleep_ns(notify, ready && retiring == 0 ? TICK_NS : TICK_BUSY_NS);
        struct timespec tick = {(time_t)(wait / NS_PER_SEC), (long)(wait % NS_PER_SEC)};
        int sig = sigtimedwait(signals, NULL, &tick);
        if (sig == SIGINT || sig == SIGTERM) {
            rs_log(log, RS_LOG_INFO, "main", "received %s", strsignal(sig));
            return;
        }
        if (sig == SIGHUP)
            reload(c, cfg, log, notify, ready);
        retiring = rs_consumer_tick(c);

        char text[1024];
        if (ready) {
            rs_consumer_status(c, text, sizeof(text));
            rs_notify_status(notify, text);
        } else if (rs_consumer_ready(c, text, sizeof(text))) {
            ready = true;
            rs_consumer_status(c, text, sizeof(text));
            rs_notify_ready(notify, text);
            rs_log(log, RS_LOG_INFO, "main", "ready: every stream's reader is connected");
        } else {
            char status[sizeof(text) + 16];
            first_line(text);
            snprintf(status, sizeof(status), "starting: %s", text);
            rs_notify_status(notify, status);
        }

        int64_t now = rs_clock_monotonic_ns();
        if (rs_notify_watchdog_due(notify, now)) {
            /* No ping while a thread is dead or stuck: systemd then restarts the service. */
            bool ok = rs_consumer_watchdog(c, text, sizeof(text));
            if (ok)
                rs_notify_watchdog(notify, now);
            else if (watchdog_ok)
                rs_log(log, RS_LOG_ERROR, "main", "watchdog not fed: %s", text);
            watchdog_ok = ok;
        }
    }
}

/* Large entries (Redis allows values of 512 MiB) pass through a few large buffers: the
 * reply, the entry, its JSON. Each time glibc frees such a buffer it raises its mmap
 * threshold (up to 32 MiB), after which the next ones are carved from the arenas, where they
 * stay resident once freed: a few 16 MiB entries left the consumer at 250 MiB for good. A
 * fixed threshold (which turns that adjustment off) gives every allocation of 4 MiB or more
 * a mapping of its own, returned to the system when freed; the smaller ones, the common
 * case, are served by the arenas as before. Runs before any thread starts. */
static void tune_malloc(void)
{
#if defined(__GLIBC__) && defined(M_MMAP_THRESHOLD) && defined(M_TRIM_THRESHOLD)
    mallopt(M_MMAP_THRESHOLD, 4 * 1024 * 1024);
    mallopt(M_TRIM_THRESHOLD, 8 * 1024 * 1024); /* twice the threshold, as glibc would */
#endif
}

/* Runs the service until SIGINT or SIGTERM. Returns the exit status. */
static int run(const rs_config_t *cfg)
{
    tune_malloc();
    rs_logger_t *log = rs_logger_new(stderr, cfg->log.level);
    if (log == NULL) {
        fprintf(stderr, "%s: out of memory\n", prog);
        return RS_EXIT_FAILURE;
    }
    /* Writes to a closed socket must fail with EPIPE, not kill the process. */
    signal(SIGPIPE, SIG_IGN);
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    sigaddset(&stop_signals, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);
    rs_notify_t notify;
    rs_notify_init(&notify);
    /* jansson seeds its hash function on first use; do it here, before threads exist. */
    json_object_seed(0);
    /* libcurl's global state (TLS libraries included) is set up once, before any thread
     * exists, as curl_global_init requires; the http handler's handles rely on it. */
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        rs_log(log, RS_LOG_ERROR, "main", "cannot initialise libcurl");
        rs_logger_free(log);
        return RS_EXIT_FAILURE;
    }

    char err[512];
    rs_consumer_t *c = rs_consumer_new(cfg, log, err, sizeof(err));
    if (c == NULL) {
        rs_log(log, RS_LOG_ERROR, "main", "%s", err);
        rs_logger_free(log);
        return RS_EXIT_FAILURE;
    }
    rs_log(log, RS_LOG_INFO, "main", "%s %s starting (configuration %s)", prog, RS_VERSION,
           cfg->path != NULL ? cfg->path : "built-in defaults");
    rs_health_t *health = rs_health_new(cfg, c, log, err, sizeof(err));
    if (health == NULL || rs_health_start(health, err, sizeof(err)) != 0) {
        rs_log(log, RS_LOG_ERROR, "main", "%s", err);
        rs_health_free(health);
        rs_consumer_free(c);
        curl_global_cleanup();
        rs_logger_free(log);
        return RS_EXIT_FAILURE;
    }
    int rc = RS_EXIT_OK;
    if (rs_consumer_start(c, err, sizeof(err)) != 0) {
        rs_log(log, RS_LOG_ERROR, "main", "%s", err);
        rc = RS_EXIT_FAILURE;
    } else {
        serve(c, cfg, log, &stop_signals, &notify);
    }
    char status[256];
    rs_consumer_status(c, status, sizeof(status));
    char stopping[sizeof(status) + 16];
    snprintf(stopping, sizeof(stopping), "stopping: %s", status);
    rs_notify_stopping(&notify, stopping);
    if (rs_consumer_stop(c) != 0) {
        /* A handler is stuck inside a worker that still uses the service's memory: leave
         * without freeing it. Its entry stays pending in Redis. Not even stdout is flushed:
         * the stuck worker may hold its lock (the log handler blocked on a full pipe), and
         * every handler flushes its own output before an entry is acknowledged anyway. */
        _exit(rc);
    }
    rs_health_stop(health);
    rs_health_free(health);
    rs_consumer_free(c);
    curl_global_cleanup();
    rs_logger_free(log);
    return rc;
}

int main(int argc, char **argv)
{
    enum { OPT_CHECK_CONFIG = 256 };
    static const struct option options[] = {
        {"config", required_argument, NULL, 'c'},
        {"check-config", no_argument, NULL, OPT_CHECK_CONFIG},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    const char *config_path = NULL;
    int check_only = 0;
    int opt;

    while ((opt = getopt_long(argc, argv, "c:hV", options, NULL)) != -1) {
        switch (opt) {
        case 'c':
            config_path = optarg;
            break;
        case OPT_CHECK_CONFIG:
            check_only = 1;
            break;
        case 'h':
            usage(stdout);
            return RS_EXIT_OK;
        case 'V':
            printf("%s %s\n", prog, RS_VERSION);
            return RS_EXIT_OK;
        default:
            usage(stderr);
            return RS_EXIT_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "%s: unexpected argument '%s'\n", prog, argv[optind]);
        return RS_EXIT_USAGE;
    }

    rs_config_t *cfg = rs_cli_load_config(prog, config_path);
    if (cfg == NULL)
        return RS_EXIT_CONFIG;
    if (check_only) {
        rs_cli_print_check(prog, cfg);
        rs_config_free(cfg);
        return RS_EXIT_OK;
    }
    int rc = run(cfg);
    rs_config_free(cfg);
    return rc;
}
