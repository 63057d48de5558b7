/*
 * Parsing of durations given on the command line ("500ms", "1s", "2m", "1h30m", "1.5s").
 *
 * DESIGN: the notation is Go's time.ParseDuration, because the producer keeps the Go demo's
 * flags and users' scripts pass them as before. The value is accumulated in nanoseconds in
 * 64-bit integers with overflow checks (no floating point, so "0.3s" is exactly 300 ms), then
 * converted to milliseconds, the unit the configuration uses everywhere. A value that is not
 * a whole number of milliseconds is refused rather than silently rounded.
 */

#include "duration.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#define NS_PER_MS INT64_C(1000000)

static const struct {
    const char *name;
    int64_t ns;
} units[] = {
    /* Longer names first so "ms" is not taken for "m". */
    {"ns", 1},
    {"us", 1000},
    {"\xc2\xb5s", 1000}, /* U+00B5 MICRO SIGN */
    {"\xce\xbcs", 1000}, /* U+03BC GREEK SMALL LETTER MU */
    {"ms", NS_PER_MS},
    {"s", 1000 * NS_PER_MS},
    {"m", 60 * 1000 * NS_PER_MS},
    {"h", 3600 * 1000 * NS_PER_MS},
};

/* Matches the unit at *p, advancing past it. Returns its size in ns, or 0 when unknown. */
static int64_t match_unit(const char **p)
{
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        size_t n = strlen(units[i].name);
        if (strncmp(*p, units[i].name, n) == 0) {
            *p += n;
            return units[i].ns;
        }
    }
    return 0;
}

int rs_duration_parse_ms(const char *text, int64_t max_ms, int64_t *out_ms, char *err,
                         size_t errlen)
{
    const char *p = text;
    if (*p == '\0') {
        snprintf(err, errlen, "empty duration");
        return -1;
    }
    if (*p == '-' || *p == '+') {
        snprintf(err, errlen, "duration '%s' must not be signed", text);
        return -1;
    }
    if (strcmp(p, "0") == 0) {
        *out_ms = 0;
        return 0;
    }

    int64_t total_ns = 0;
    while (*p != '\0') {
        /* Integer part, then an optional fraction, as in "1.5s" or ".5s". */
        int64_t whole = 0, frac = 0, scale = 1;
        bool digits = false, overflow = false;
        while (isdigit((unsigned char)*p)) {
            if (__builtin_mul_overflow(whole, 10, &whole) ||
                __builtin_add_overflow(whole, *p - '0', &whole))
                overflow = true;
            digits = true;
            p++;
        }
        if (*p == '.') {
            p++;
            while (isdigit((unsigned char)*p)) {
                /* Digits past nanosecond precision cannot change the result. */
                if (scale < INT64_C(1000000000000000000)) {
                    frac = frac * 10 + (*p - '0');
                    scale *= 10;
                }
                digits = true;
                p++;
            }
        }
        if (!digits) {
            snprintf(err, errlen, "invalid duration '%s' (use e.g. 500ms, 1s, 2m)", text);
            return -1;
        }
        if (*p == '\0') {
            snprintf(err, errlen, "missing unit in duration '%s' (use e.g. 500ms, 1s, 2m)", text);
            return -1;
        }
        int64_t unit = match_unit(&p);
        if (unit == 0) {
            snprintf(err, errlen, "unknown unit in duration '%s' (known: ns, us, ms, s, m, h)",
                     text);
            return -1;
        }
        int64_t term;
        /* frac < scale, so frac * unit / scale < unit; compute it without overflowing. */
        __int128 frac_ns = (__int128)frac * unit / scale;
        if (overflow || __builtin_mul_overflow(whole, unit, &term) ||
            __builtin_add_overflow(term, (int64_t)frac_ns, &term) ||
            __builtin_add_overflow(total_ns, term, &total_ns)) {
            snprintf(err, errlen, "duration '%s' is too large", text);
            return -1;
        }
    }

    if (total_ns % NS_PER_MS != 0) {
        snprintf(err, errlen, "duration '%s' is not a whole number of milliseconds", text);
        return -1;
    }
    int64_t ms = total_ns / NS_PER_MS;
    if (ms > max_ms) {
        snprintf(err, errlen, "duration '%s' is too large (at most %lld ms)", text,
                 (long long)max_ms);
        return -1;
    }
    *out_ms = ms;
    return 0;
}
