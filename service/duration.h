#ifndef RS_DURATION_H
#define RS_DURATION_H

/*
 * Durations given on the command line, in the notation the Go demo's flags used
 * ("500ms", "1s", "2m", "1h30m", "1.5s"). Configuration files use plain integers in
 * milliseconds instead (keys ending in _ms), so this is for flags only.
 */

#include <stddef.h>
#include <stdint.h>

/* Parses `text` into whole milliseconds. Accepted: one or more <decimal><unit> terms with
 * units ns, us (or µs), ms, s, m, h, as Go's time.ParseDuration; a bare "0". Rejected, with a
 * message in `err`: an empty string, a missing or unknown unit, a negative sign, a value
 * that is not a whole number of milliseconds, and anything above `max_ms`.
 * Returns 0 and sets *out_ms, or -1. Pure; any thread. */
int rs_duration_parse_ms(const char *text, int64_t max_ms, int64_t *out_ms, char *err,
                         size_t errlen);

#endif
