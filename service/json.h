#ifndef RS_JSON_H
#define RS_JSON_H

/*
 * The small pieces every JSON renderer of the service shares (entry.c, metrics.c,
 * dashboard.c): one rule for text that may not be valid UTF-8, a base64 encoder for bytes
 * that must not be altered, and helpers that build a jansson tree while counting failures
 * instead of checking every call.
 *
 * The text rule: bytes from outside (stream, group and consumer names, entry ids, log lines)
 * are shown as they are when they are valid UTF-8 (RFC 3629); otherwise each byte that does
 * not start a valid sequence becomes U+FFFD, the Unicode replacement character, and the rest
 * is kept. NUL bytes are valid UTF-8 and are kept (jansson escapes them as \u0000).
 *
 * Everything here is pure (no I/O, no shared state): any thread may call it.
 */

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Calls put(arg, p, n) for each piece of s[0..len) in order: each valid UTF-8 sequence as it
 * is (p points into s), and U+FFFD's three bytes for each byte that does not start one
 * (overlong forms, surrogates, code points past U+10FFFF, stray continuation bytes and cut
 * sequences are invalid). The pieces are at most 4 bytes, so the output is at most 3 times
 * `len` long. Used for every output that must be UTF-8 (Prometheus labels, JSON). */
void rs_json_utf8_each(const char *s, size_t len, void (*put)(void *arg, const char *p, size_t n),
                       void *arg);

/* A JSON string of the bytes s[0..len) made valid UTF-8 by the rule above (`s` may be NULL
 * when len is 0). Returns a new reference (the caller owns it), or NULL when out of memory. */
json_t *rs_json_text(const char *s, size_t len);

/* rs_json_text() of a NUL-terminated string, or JSON null when `s` is NULL. Returns a new
 * reference, or NULL when out of memory. */
json_t *rs_json_cstr(const char *s);

/* An integer for a counter: `v`, or INT64_MAX when `v` does not fit JSON's signed 64 bits
 * (jansson's json_int_t). Returns a new reference, or NULL when out of memory. */
json_t *rs_json_u64(uint64_t v);

/* `prefix` followed by data[0..len) in standard base64 (RFC 4648 section 4, with padding), as
 * a NUL-terminated heap string the caller frees with free(). `data` may be NULL when len is
 * 0. Returns NULL when out of memory or when the result's size would overflow size_t. */
char *rs_json_base64(const void *data, size_t len, const char *prefix);

/* json_object_set_new(obj, key, value), counting a failure in *bad instead of returning it:
 * a NULL `value` (an allocation that failed earlier) and a NULL `obj` count as failures too.
 * Takes ownership of `value` in every case (released when it cannot be set). */
void rs_json_set(json_t *obj, const char *key, json_t *value, int *bad);

/* json_array_append_new(arr, value), counting a failure in *bad as rs_json_set() does. Takes
 * ownership of `value` in every case. */
void rs_json_append(json_t *arr, json_t *value, int *bad);

/* Serialises `root` with json_dumps(root, flags), followed by a line feed when `newline` (so
 * `curl` output ends cleanly), and stores the text's length in *len when `len` is not NULL.
 * Takes ownership of `root` (NULL is accepted) and releases it. Returns a NUL-terminated heap
 * string the caller frees with free(), or NULL when `root` is NULL, when `bad` is not 0 (a
 * part of the tree is missing: nothing half-built is ever returned) or when out of memory. */
char *rs_json_finish(json_t *root, int bad, size_t flags, bool newline, size_t *len);

#endif
