#ifndef RS_LOG_H
#define RS_LOG_H

/*
 * Logging: one line per event on stderr, which journald collects under systemd.
 *
 * A line reads "2026-11-27T14:04:30.123Z INFO  producer: published stream=events id=1-0".
 * When stderr is connected to the journal (JOURNAL_STREAM is set) the timestamp is left out
 * and the line starts with the syslog priority prefix ("<6>") that journald understands.
 *
 * Secrets never reach a log line: callers must not pass passwords to rs_log().
 */

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

typedef enum {
    RS_LOG_ERROR = 0,
    RS_LOG_WARN = 1,
    RS_LOG_INFO = 2,
    RS_LOG_DEBUG = 3,
} rs_log_level_t;

typedef struct rs_logger rs_logger_t;

/* How many recent problems (warnings and errors) a logger keeps for the dashboard. */
#define RS_LOG_PROBLEMS 50

/* One warning or error as it was logged, for the dashboard's "recent problems". */
typedef struct {
    int64_t time_ns;      /* CLOCK_REALTIME when it was logged */
    rs_log_level_t level; /* RS_LOG_ERROR or RS_LOG_WARN */
    char module[16];      /* "worker", "reader"... (cut to fit) */
    char stream[128];     /* the message's "stream=NAME" (cut to fit), or "" */
    char message[512];    /* the text, one line, cut to fit */
} rs_log_problem_t;

/* Creates a logger writing to `sink` (borrowed for the logger's lifetime; normally stderr)
 * at `level`. Returns NULL only when out of memory. Caller frees with rs_logger_free(). */
rs_logger_t *rs_logger_new(FILE *sink, rs_log_level_t level);

/* Frees the logger; NULL is ignored. No thread may log through it afterwards. */
void rs_logger_free(rs_logger_t *lg);

/* Changes the threshold; takes effect for every thread at once. Any thread. */
void rs_logger_set_level(rs_logger_t *lg, rs_log_level_t level);

/* The level now. Any thread; lock-free. */
rs_log_level_t rs_logger_level(const rs_logger_t *lg);

/* True when a message at `level` would be written. Any thread; lock-free. Use it to skip
 * expensive argument formatting on hot paths. */
bool rs_log_enabled(const rs_logger_t *lg, rs_log_level_t level);

/* Writes one line at `level` tagged with `module` ("config", "producer", "redis", ...).
 * The formatted text is truncated at 4 KiB and newlines in it are escaped, so one call is
 * always one line. Lines from different threads never interleave. Any thread; never fails
 * visibly (a failed write to the sink is ignored). A NULL logger writes to stderr at info. */
void rs_log(rs_logger_t *lg, rs_log_level_t level, const char *module, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Copies the most recent warnings and errors the logger wrote (at most RS_LOG_PROBLEMS, and at
 * most `max`) into `out`, newest first. Returns how many. Lines below the logger's level were
 * never written and are not kept. Any thread; takes the ring's own lock briefly (never waits
 * for a write to the sink). */
size_t rs_logger_problems(rs_logger_t *lg, rs_log_problem_t *out, size_t max);

/* Parses "error", "warn", "info" or "debug". Returns 0, or -1 for any other text. */
int rs_log_level_parse(const char *text, rs_log_level_t *out);

/* The lower-case name of a level ("info"); "?" for an out-of-range value. */
const char *rs_log_level_name(rs_log_level_t level);

#endif
