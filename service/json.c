/*
 * The JSON helpers the renderers share (see json.h): the UTF-8 repair rule, base64, and the
 * failure-counting tree builders.
 *
 * DESIGN: jansson builds and escapes every JSON text of the service; what it cannot take is a
 * string that is not valid UTF-8 (json_stringn() refuses it outright). So text from outside is
 * tried as it is first (the common case costs nothing extra), and only on refusal rebuilt with
 * U+FFFD for each invalid byte, by the same walk the Prometheus renderer uses for its labels:
 * one rule for every output. Bytes that must survive exactly (an entry's field values, a dead
 * letter's binary values) are base64 instead, by the caller's choice. Builders count failures
 * in an int rather than checking each call, and rs_json_finish() refuses a tree with any, so a
 * body is either whole or not produced. Everything is pure and allocation is the only side
 * effect, so any thread may call it.
 */

#include "json.h"

#include <stdlib.h>
#include <string.h>

/* The UTF-8 encoding of U+FFFD, the replacement character. */
#define REPLACEMENT     "\xef\xbf\xbd"
#define REPLACEMENT_LEN 3

/* Length of the valid UTF-8 sequence at s[0..len), len > 0, or 0 when it is not one (overlong
 * forms, surrogates and code points past U+10FFFF are invalid, as in RFC 3629). */
static size_t utf8_sequence(const unsigned char *s, size_t len)
{
    if (s[0] < 0x80)
        return 1;
    size_t n;
    unsigned min;
    unsigned cp;
    if ((s[0] & 0xe0) == 0xc0)
        n = 2, min = 0x80, cp = s[0] & 0x1fu;
    else if ((s[0] & 0xf0) == 0xe0)
        n = 3, min = 0x800, cp = s[0] & 0x0fu;
    else if ((s[0] & 0xf8) == 0xf0)
        n = 4, min = 0x10000, cp = s[0] & 0x07u;
    else
        return 0;
    if (n > len)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3fu);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

void rs_json_utf8_each(const char *s, size_t len, void (*put)(void *arg, const char *p, size_t n),
                       void *arg)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        size_t n = utf8_sequence(u + i, len - i);
        if (n == 0) {
            put(arg, REPLACEMENT, REPLACEMENT_LEN);
            i++;
        } else {
            put(arg, s + i, n);
            i += n;
        }
    }
}

typedef struct {
    char *buf;
    size_t len;
} sink_t;

/* Appends to a buffer sized for the worst case beforehand. */
static void put_sink(void *arg, const char *p, size_t n)
{
    sink_t *s = arg;
    memcpy(s->buf + s->len, p, n);
    s->len += n;
}

json_t *rs_json_text(const char *s, size_t len)
{
    if (s == NULL)
        s = "";
    json_t *j = json_stringn(s, len); /* NULL also when s is not valid UTF-8 */
    if (j != NULL)
        return j;
    if (len > (SIZE_MAX - 1) / REPLACEMENT_LEN)
        return NULL;
    /* Each byte becomes at most U+FFFD's three bytes. */
    sink_t sink = {malloc(len * REPLACEMENT_LEN + 1), 0};
    if (sink.buf == NULL)
        return NULL;
    rs_json_utf8_each(s, len, put_sink, &sink);
    j = json_stringn(sink.buf, sink.len);
    free(sink.buf);
    return j;
}

json_t *rs_json_cstr(const char *s)
{
    return s != NULL ? rs_json_text(s, strlen(s)) : json_null();
}

json_t *rs_json_u64(uint64_t v)
{
    return json_integer(v > (uint64_t)INT64_MAX ? INT64_MAX : (json_int_t)v);
}

/* Standard base64 (RFC 4648, with padding). None of our dependencies exports an encoder
 * (libcurl keeps its own private), and these dozen lines are simpler than a new package. */
char *rs_json_base64(const void *data, size_t len, const char *prefix)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t plen = strlen(prefix);
    size_t groups = len / 3 + (len % 3 != 0 ? 1u : 0u);
    if (groups > (SIZE_MAX - plen - 1) / 4)
        return NULL;
    char *out = malloc(plen + groups * 4 + 1);
    if (out == NULL)
        return NULL;
    memcpy(out, prefix, plen);
    char *o = out + plen;
    const unsigned char *in = data;
    size_t i = 0;
    for (; i + 2 < len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        *o++ = alphabet[v >> 18 & 63];
        *o++ = alphabet[v >> 12 & 63];
        *o++ = alphabet[v >> 6 & 63];
        *o++ = alphabet[v & 63];
    }
    if (i < len) { /* one or two bytes left: pad to a whole group */
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < len)
            v |= (uint32_t)in[i + 1] << 8;
        *o++ = alphabet[v >> 18 & 63];
        *o++ = alphabet[v >> 12 & 63];
        *o++ = i + 1 < len ? alphabet[v >> 6 & 63] : '=';
        *o++ = '=';
    }
    *o = '\0';
    return out;
}

void rs_json_set(json_t *obj, const char *key, json_t *value, int *bad)
{
    /* json_object_set_new() releases `value` itself when it fails, NULL `obj` included. */
    if (value == NULL || json_object_set_new(obj, key, value) != 0)
        (*bad)++;
}

void rs_json_append(json_t *arr, json_t *value, int *bad)
{
    if (value == NULL || json_array_append_new(arr, value) != 0)
        (*bad)++;
}

char *rs_json_finish(json_t *root, int bad, size_t flags, bool newline, size_t *len)
{
    char *text = root != NULL && bad == 0 ? json_dumps(root, flags) : NULL;
    json_decref(root);
    if (text == NULL)
        return NULL;
    size_t n = strlen(text);
    if (newline) {
        char *grown = realloc(text, n + 2);
        if (grown == NULL) {
            free(text);
            return NULL;
        }
        text = grown;
        text[n++] = '\n';
        text[n] = '\0';
    }
    if (len != NULL)
        *len = n;
    return text;
}
