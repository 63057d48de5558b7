/*
 * Clock readings and RFC 3339 formatting.
 *
 * DESIGN: thin wrappers over clock_gettime(2) and gmtime_r(3), kept in one place so every
 * module measures intervals on CLOCK_MONOTONIC (immune to wall-clock steps) and writes
 * timestamps in one format. The RFC 3339 text is UTC with a "Z", as Go's time.RFC3339 prints
 * a UTC time, so entries from this producer and from the Go demo look the same.
 */

#include "clock.h"

#include <stdio.h>

int64_t rs_clock_monotonic_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

struct timespec rs_clock_timespec(int64_t ns)
{
    struct timespec ts = {(time_t)(ns / 1000000000), (long)(ns % 1000000000)};
    return ts;
}

int rs_clock_cond_init(pthread_cond_t *cond)
{
    pthread_condattr_t attr;
    int rc = pthread_condattr_init(&attr);
    if (rc != 0)
        return rc;
    rc = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    if (rc == 0)
        rc = pthread_cond_init(cond, &attr);
    pthread_condattr_destroy(&attr);
    return rc;
}

int64_t rs_clock_realtime_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Formats the date and time of `t` without a zone; -1 outside years 0000-9999. */
static int format_utc(time_t t, char *buf, size_t len)
{
    struct tm tm;
    if (gmtime_r(&t, &tm) == NULL || tm.tm_year < -1900 || tm.tm_year > 9999 - 1900)
        return -1;
    int n = snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d", tm.tm_year + 1900, tm.tm_mon + 1,
                     tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
    return n < 0 || (size_t)n >= len ? -1 : n;
}

int rs_clock_format_rfc3339(time_t t, char *buf, size_t len)
{
    int n = format_utc(t, buf, len);
    if (n < 0 || (size_t)n + 2 > len)
        return -1;
    buf[n] = 'Z';
    buf[n + 1] = '\0';
    return n + 1;
}

int rs_clock_format_rfc3339_ms(int64_t realtime_ns, char *buf, size_t len)
{
    /* Floor division, so instants before the epoch round towards the past like the seconds. */
    int64_t sec = realtime_ns / 1000000000;
    int64_t rem = realtime_ns % 1000000000;
    if (rem < 0) {
        sec -= 1;
        rem += 1000000000;
    }
    int n = format_utc((time_t)sec, buf, len);
    if (n < 0)
        return -1;
    int m = snprintf(buf + n, len - (size_t)n, ".%03dZ", (int)(rem / 1000000));
    return m < 0 || (size_t)m >= len - (size_t)n ? -1 : n + m;
}
