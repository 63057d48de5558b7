/*
 * Logging for both programs.
 *
 * Every event is one line on the sink (stderr), so journald, `docker logs` and a terminal all
 * show the same thing. Messages are formatted into a stack buffer first and written with one
 * fwrite under the logger's mutex, so lines from different threads never interleave and a
 * message never spans two lines (embedded newlines are escaped: a field value from a stream
 * must not be able to forge a log line).
 *
 * DESIGN: the logger is an object, not a global, because two things about it change while
 * threads run: the level (a reload changes it at once) and the ring of recent problems the
 * dashboard shows (the last RS_LOG_PROBLEMS warnings and errors, copied as they are written,
 * under a mutex of their own so that reading them never waits for a blocked sink). The level
 * is a C11 atomic read without the lock, so a disabled debug line costs one relaxed load. The
 * sink's mutex only orders writes to the sink; it is
 * never held across anything that can block for long (a stderr write to a full pipe can
 * block, which stalls other loggers but no lock of any other module).
 */

#include "log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"

/* Longest message text kept; longer ones are cut and marked with "...". */
#define LOG_MAX_MESSAGE 4096

struct rs_logger {
    FILE *sink;
    _Atomic int level;
    bool journal; /* stderr goes to journald: syslog prefixes, no timestamps */
    pthread_mutex_t lock;
    /* The recent problems, a ring guarded by problems_lock (a leaf, never held while writing
     * to the sink, so reading the ring never waits for a blocked stderr): the next slot to
     * write is nproblems % RS_LOG_PROBLEMS. */
    pthread_mutex_t problems_lock;
    rs_log_problem_t problems[RS_LOG_PROBLEMS];
    uint64_t nproblems;
};

static const char *const level_names[] = {"error", "warn", "info", "debug"};
static const char *const level_tags[] = {"ERROR", "WARN ", "INFO ", "DEBUG"};
/* syslog priorities: LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG. */
static const int level_syslog[] = {3, 4, 6, 7};

rs_logger_t *rs_logger_new(FILE *sink, rs_log_level_t level)
{
    rs_logger_t *lg = calloc(1, sizeof(*lg));
    if (lg == NULL)
        return NULL;
    lg->sink = sink;
    atomic_init(&lg->level, (int)level);
    /* systemd sets JOURNAL_STREAM when stdout/stderr are connected to the journal. */
    lg->journal = getenv("JOURNAL_STREAM") != NULL;
    pthread_mutex_init(&lg->lock, NULL);
    pthread_mutex_init(&lg->problems_lock, NULL);
    return lg;
}

void rs_logger_free(rs_logger_t *lg)
{
    if (lg == NULL)
        return;
    pthread_mutex_destroy(&lg->lock);
    pthread_mutex_destroy(&lg->problems_lock);
    free(lg);
}

void rs_logger_set_level(rs_logger_t *lg, rs_log_level_t level)
{
    atomic_store_explicit(&lg->level, (int)level, memory_order_relaxed);
}

rs_log_level_t rs_logger_level(const rs_logger_t *lg)
{
    return (rs_log_level_t)atomic_load_explicit(&lg->level, memory_order_relaxed);
}

bool rs_log_enabled(const rs_logger_t *lg, rs_log_level_t level)
{
    if (lg == NULL)
        return level <= RS_LOG_INFO;
    return (int)level <= atomic_load_explicit(&lg->level, memory_order_relaxed);
}

/* Replaces the line breaks that would break the one-line-per-event rule, in place. */
static void flatten_line(char *s)
{
    for (; *s != '\0'; s++) {
        if (*s == '\n' || *s == '\r')
            *s = ' ';
    }
}

/* Copies at most dstlen - 1 bytes of `src` (n bytes), NUL-terminated, never cutting a UTF-8
 * sequence in two. */
static void copy_cut(char *dst, size_t dstlen, const char *src, size_t n)
{
    if (n > dstlen - 1) {
        n = dstlen - 1;
        while (n > 0 && ((unsigned char)src[n] & 0xC0) == 0x80)
            n--; /* src[n] continues a sequence: cut before the sequence's start */
    }
    memcpy(dst, src, n);
    dst[n] = '\0';
}

/* Fills `p` from a warning or error: its stream is the value of the first "stream=" that
 * starts a word, up to the next space. */
static void fill_problem(rs_log_problem_t *p, rs_log_level_t level, const char *module,
                         const char *msg)
{
    p->time_ns = rs_clock_realtime_ns();
    p->level = level;
    copy_cut(p->module, sizeof(p->module), module, strlen(module));
    copy_cut(p->message, sizeof(p->message), msg, strlen(msg));
    p->stream[0] = '\0';
    for (const char *at = strstr(msg, "stream="); at != NULL; at = strstr(at + 1, "stream=")) {
        if (at != msg && at[-1] != ' ')
            continue;
        const char *v = at + strlen("stream=");
        copy_cut(p->stream, sizeof(p->stream), v, strcspn(v, " "));
        break;
    }
}

size_t rs_logger_problems(rs_logger_t *lg, rs_log_problem_t *out, size_t max)
{
    if (lg == NULL)
        return 0;
    pthread_mutex_lock(&lg->problems_lock);
    size_t n = 0;
    for (uint64_t i = lg->nproblems; i > 0 && n < max && n < RS_LOG_PROBLEMS; i--)
        out[n++] = lg->problems[(i - 1) % RS_LOG_PROBLEMS];
    pthread_mutex_unlock(&lg->problems_lock);
    return n;
}

void rs_log(rs_logger_t *lg, rs_log_level_t level, const char *module, const char *fmt, ...)
{
    if (level < RS_LOG_ERROR || level > RS_LOG_DEBUG || !rs_log_enabled(lg, level))
        return;

    char msg[LOG_MAX_MESSAGE];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof(msg))
        memcpy(msg + sizeof(msg) - 4, "...", 4);
    flatten_line(msg);

    char line[LOG_MAX_MESSAGE + 128];
    int len;
    if (lg != NULL && lg->journal) {
        len = snprintf(line, sizeof(line), "<%d>%s: %s\n", level_syslog[level], module, msg);
    } else {
        char ts[RS_RFC3339_LEN];
        if (rs_clock_format_rfc3339_ms(rs_clock_realtime_ns(), ts, sizeof(ts)) < 0)
            strcpy(ts, "-");
        len = snprintf(line, sizeof(line), "%s %s %s: %s\n", ts, level_tags[level], module, msg);
    }
    if (len < 0)
        return;
    size_t size = (size_t)len < sizeof(line) ? (size_t)len : sizeof(line) - 1;

    FILE *sink = lg != NULL ? lg->sink : stderr;
    if (lg != NULL && level <= RS_LOG_WARN) {
        pthread_mutex_lock(&lg->problems_lock);
        fill_problem(&lg->problems[lg->nproblems++ % RS_LOG_PROBLEMS], level, module, msg);
        pthread_mutex_unlock(&lg->problems_lock);
    }
    if (lg != NULL)
        pthread_mutex_lock(&lg->lock);
    (void)fwrite(line, 1, size, sink);
    (void)fflush(sink);
    if (lg != NULL)
        pthread_mutex_unlock(&lg->lock);
}

int rs_log_level_parse(const char *text, rs_log_level_t *out)
{
    for (int i = RS_LOG_ERROR; i <= RS_LOG_DEBUG; i++) {
        if (strcmp(text, level_names[i]) == 0) {
            *out = (rs_log_level_t)i;
            return 0;
        }
    }
    return -1;
}

const char *rs_log_level_name(rs_log_level_t level)
{
    if (level < RS_LOG_ERROR || level > RS_LOG_DEBUG)
        return "?";
    return level_names[level];
}
