/*
 * Fuzz harness for rs_duration_parse_ms(): durations come from the producer's command-line
 * flags ("500ms", "1h30m", "1.5s").
 *
 * The first input byte picks the limit (max_ms) from a table of the limits the flags use and
 * the extremes; the rest, up to a NUL, is the text. Beyond the sanitizers it checks:
 *   - a result is within 0..max_ms, and a failure always comes with a message;
 *   - the limit is exact: the same text passes with max_ms equal to the result and fails with
 *     one less;
 *   - "<result>ms" parses back to the result;
 *   - the result agrees (within 1 ms, in long double) with an independent reading of the
 *     same terms, so a unit or a fraction cannot be mis-scaled.
 */

#include <stdbool.h>
#include <string.h>

#include "duration.h"
#include "fuzz.h"

static const int64_t limits[] = {
    0, 1, 1000, 60000, 86400000, INT32_MAX, INT64_C(9223372036854), INT64_MAX,
};

/* Longest names first, as the unit table in duration.c; the size of each in nanoseconds. */
static const struct {
    const char *name;
    long double ns;
} units[] = {
    {"ns", 1.0L}, {"us", 1e3L}, {"\xc2\xb5s", 1e3L}, {"\xce\xbcs", 1e3L},
    {"ms", 1e6L}, {"s", 1e9L},  {"m", 60e9L},        {"h", 3600e9L},
};

/* The reference reading: the sum of the terms in nanoseconds, computed independently of
 * duration.c's integer arithmetic. Returns false when the text is not a list of terms. */
static bool reference_ns(const char *p, long double *out)
{
    long double total = 0;
    if (*p == '\0')
        return false;
    while (*p != '\0') {
        long double whole = 0, frac = 0, scale = 1;
        bool digits = false;
        for (; *p >= '0' && *p <= '9'; p++, digits = true)
            whole = whole * 10 + (*p - '0');
        if (*p == '.')
            for (p++; *p >= '0' && *p <= '9'; p++, digits = true) {
                scale /= 10;
                frac += (*p - '0') * scale;
            }
        size_t i = 0, n = sizeof(units) / sizeof(units[0]);
        while (i < n && strncmp(p, units[i].name, strlen(units[i].name)) != 0)
            i++;
        if (!digits || i == n)
            return false;
        p += strlen(units[i].name);
        total += (whole + frac) * units[i].ns;
    }
    *out = total;
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int64_t max_ms = limits[data[0] % (sizeof(limits) / sizeof(limits[0]))];
    char *text = malloc(size); /* the rest of the input and a NUL */
    if (text == NULL)
        return 0;
    memcpy(text, data + 1, size - 1);
    text[size - 1] = '\0';

    char err[256] = "";
    int64_t ms = -1;
    int rc = rs_duration_parse_ms(text, max_ms, &ms, err, sizeof(err));
    if (rc != 0) {
        FUZZ_CHECK(rc == -1, "returned %d", rc);
        FUZZ_CHECK(err[0] != '\0', "'%s' rejected without a message", text);
        free(text);
        return 0;
    }
    FUZZ_CHECK(ms >= 0 && ms <= max_ms, "'%s' gave %lld ms (max %lld)", text, (long long)ms,
               (long long)max_ms);

    int64_t again = -1;
    FUZZ_CHECK(rs_duration_parse_ms(text, ms, &again, err, sizeof(err)) == 0 && again == ms,
               "'%s' fails with max_ms = its own value %lld: %s", text, (long long)ms, err);
    if (ms > 0)
        FUZZ_CHECK(rs_duration_parse_ms(text, ms - 1, &again, err, sizeof(err)) == -1,
                   "'%s' (%lld ms) passes with max_ms %lld", text, (long long)ms,
                   (long long)(ms - 1));

    char plain[32];
    snprintf(plain, sizeof(plain), "%lldms", (long long)ms);
    FUZZ_CHECK(rs_duration_parse_ms(plain, INT64_MAX, &again, err, sizeof(err)) == 0 && again == ms,
               "'%s' does not parse back to %lld: %s", plain, (long long)ms, err);

    if (strcmp(text, "0") != 0) {
        long double ref = 0;
        FUZZ_CHECK(reference_ns(text, &ref), "'%s' accepted but is not a list of terms", text);
        long double diff = ref / 1e6L - (long double)ms;
        FUZZ_CHECK(diff > -1.0L && diff < 1.0L, "'%s' gave %lld ms, the terms sum to %Lf ms", text,
                   (long long)ms, ref / 1e6L);
    }
    free(text);
    return 0;
}
