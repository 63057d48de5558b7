#ifndef RS_CLOCK_H
#define RS_CLOCK_H

/* Time helpers: monotonic and wall-clock readings, and RFC 3339 timestamps. */

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* Length of the longest RFC 3339 text rs_clock_format_rfc3339() writes, plus the NUL. */
#define RS_RFC3339_LEN 32

/* Nanoseconds on CLOCK_MONOTONIC (for intervals and deadlines). Any thread. */
int64_t rs_clock_monotonic_ns(void);

/* Converts nanoseconds (e.g. a CLOCK_MONOTONIC deadline) to a timespec. Pure. */
struct timespec rs_clock_timespec(int64_t ns);

/* Initializes `cond` to measure pthread_cond_timedwait() deadlines on CLOCK_MONOTONIC, so a
 * wall-clock step can neither stretch nor cut a wait. Returns 0 or a pthread error code. */
int rs_clock_cond_init(pthread_cond_t *cond);

/* Nanoseconds since the Unix epoch on CLOCK_REALTIME. Any thread. */
int64_t rs_clock_realtime_ns(void);

/* Writes `t` as RFC 3339 in UTC with second precision ("2026-11-27T14:04:30Z"), the form Go's
 * time.RFC3339 gives for a UTC time, so entries match the demo's. Returns the length written,
 * or -1 when `len` is too small or `t` is outside years 0000-9999. Pure; any thread. */
int rs_clock_format_rfc3339(time_t t, char *buf, size_t len);

/* As above with milliseconds ("2026-11-27T14:04:30.123Z"), for log lines. */
int rs_clock_format_rfc3339_ms(int64_t realtime_ns, char *buf, size_t len);

#endif
