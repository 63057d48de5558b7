/*
 * Fuzz harness for the way a reader turns an XREADGROUP reply into handler JSON: the input
 * is fed to hiredis's own RESP reader (as the reply would arrive from Redis), and each reply
 * it yields, of whatever shape, goes through the reader's path in entry.c:
 * rs_entry_block_new() over it as the entry list, rs_entry_from_reply() on each element,
 * rs_entry_to_json() on each entry built; then once more the way the retry scheduler calls
 * it (the whole reply as one element, no block).
 *
 * The first input byte picks the stream name (valid UTF-8, as the configuration requires)
 * and the delivery count; the rest is the RESP text. Beyond the sanitizers it checks:
 *   - a malformed element is refused with a message, a nil field list reports "deleted";
 *   - every well-formed element's entry fits in the block sized for the reply;
 *   - an entry holds exactly the reply's id, fields and delivery count, each NUL-terminated;
 *   - every entry built can be encoded, and the JSON parses back (jansson) to the same
 *     stream, id and delivery and, field by field, to the same bytes: a value as a string
 *     when it is UTF-8, else {"base64": ...}; a name as itself, or "base64:..." when it is not
 *     UTF-8, holds a NUL or starts with "base64:"; a repeated name as an array of its values
 *     in order.
 * Only hiredis APIs that are also in hiredis 1.x are used.
 */

#include <hiredis/hiredis.h>
#include <jansson.h>
#include <stdbool.h>
#include <string.h>

#include "entry.h"
#include "fuzz.h"

/* hiredis allocates an aggregate's element pointers as soon as it reads "*N" (and, in 1.x,
 * the RESP3 "%N", "~N", ">N", "|N"), before the elements arrive: a count this large is a
 * memory exhaustion of hiredis, not of ours. */
#define MAX_ARRAY_COUNT 65536

static const char *const stream_names[] = {"events", "logs:dlq", "\xc3\xa9v\xc3\xa9nements"};

static char *base64(const char *data, size_t len, const char *prefix)
{
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t plen = strlen(prefix);
    char *out = malloc(plen + (len + 2) / 3 * 4 + 1);
    FUZZ_CHECK(out != NULL, "out of memory");
    memcpy(out, prefix, plen);
    char *o = out + plen;
    const unsigned char *in = (const unsigned char *)data;
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < len)
            v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < len)
            v |= in[i + 2];
        *o++ = abc[v >> 18 & 63];
        *o++ = abc[v >> 12 & 63];
        *o++ = i + 1 < len ? abc[v >> 6 & 63] : '=';
        *o++ = i + 2 < len ? abc[v & 63] : '=';
    }
    *o = '\0';
    return out;
}

static bool is_utf8(const char *s, size_t len)
{
    json_t *probe = json_stringn(s, len); /* NULL for invalid UTF-8: JSON's own rule */
    bool utf8 = probe != NULL;
    json_decref(probe);
    return utf8;
}

/* The JSON key a field name must have (caller frees). */
static char *expected_key(const rs_field_t *f, size_t *keylen)
{
    bool plain = is_utf8(f->name, f->name_len) && memchr(f->name, '\0', f->name_len) == NULL &&
                 !(f->name_len >= 7 && memcmp(f->name, "base64:", 7) == 0);
    char *key = plain ? malloc(f->name_len + 1) : base64(f->name, f->name_len, "base64:");
    FUZZ_CHECK(key != NULL, "out of memory");
    if (plain) {
        memcpy(key, f->name, f->name_len);
        key[f->name_len] = '\0';
        *keylen = f->name_len;
    } else {
        *keylen = strlen(key);
    }
    return key;
}

/* Does JSON value `v` hold exactly the field value `f`? */
static bool value_matches(const json_t *v, const rs_field_t *f)
{
    if (json_is_string(v))
        return json_string_length(v) == f->value_len &&
               memcmp(json_string_value(v), f->value, f->value_len) == 0;
    const json_t *b = json_object_get(v, "base64");
    if (!json_is_object(v) || json_object_size(v) != 1 || !json_is_string(b) ||
        is_utf8(f->value, f->value_len))
        return false;
    char *want = base64(f->value, f->value_len, "");
    bool same = strcmp(want, json_string_value(b)) == 0;
    free(want);
    return same;
}

static void check_json(const rs_entry_t *e, const char *stream, uint64_t delivery)
{
    size_t len = 0;
    char *text = rs_entry_to_json(e, &len);
    FUZZ_CHECK(text != NULL, "entry %s of stream %s could not be encoded", e->id, stream);
    FUZZ_CHECK(strlen(text) == len, "reported length %zu, actual %zu", len, strlen(text));
    json_error_t jerr;
    json_t *root = json_loadb(text, len, JSON_ALLOW_NUL, &jerr);
    FUZZ_CHECK(root != NULL, "the JSON does not parse: %s: %s", jerr.text, text);
    FUZZ_CHECK(json_is_object(root) && json_object_size(root) == 4, "not the 4 keys: %s", text);
    FUZZ_CHECK(strcmp(json_string_value(json_object_get(root, "stream")), stream) == 0,
               "stream differs: %s", text);
    FUZZ_CHECK(strcmp(json_string_value(json_object_get(root, "id")), e->id) == 0, "id differs: %s",
               text);
    FUZZ_CHECK(json_integer_value(json_object_get(root, "delivery")) == (json_int_t)delivery,
               "delivery differs: %s", text);
    json_t *fields = json_object_get(root, "fields");
    FUZZ_CHECK(json_is_object(fields), "fields is not an object: %s", text);

    /* Each key's values, in entry order; `seen` counts the distinct keys. */
    size_t seen = 0;
    for (size_t i = 0; i < e->nfields; i++) {
        size_t keylen, first = i, count = 0, nth = 0;
        char *key = expected_key(&e->fields[i], &keylen);
        for (size_t j = 0; j < e->nfields; j++) {
            size_t kl;
            char *k = expected_key(&e->fields[j], &kl);
            if (kl == keylen && memcmp(k, key, kl) == 0) {
                if (count == 0)
                    first = j;
                if (j < i)
                    nth++;
                count++;
            }
            free(k);
        }
        seen += first == i;
        const json_t *v = json_object_getn(fields, key, keylen);
        FUZZ_CHECK(v != NULL, "field %zu's key '%s' missing: %s", i, key, text);
        if (count > 1) {
            FUZZ_CHECK(json_is_array(v) && json_array_size(v) == count,
                       "name repeated %zu times is not an array of them: %s", count, text);
            v = json_array_get(v, nth);
        }
        FUZZ_CHECK(value_matches(v, &e->fields[i]), "field %zu's value differs: %s", i, text);
        free(key);
    }
    FUZZ_CHECK(json_object_size(fields) == seen, "%zu keys for %zu names: %s",
               json_object_size(fields), seen, text);
    json_decref(root);
    free(text);
}

/* The entry holds exactly what the well-formed `element` says. */
static void check_entry(const rs_entry_t *e, const redisReply *element, const char *stream,
                        uint64_t delivery)
{
    const redisReply *idr = element->element[0], *list = element->element[1];
    FUZZ_CHECK(strlen(e->id) == idr->len && memcmp(e->id, idr->str, idr->len) == 0, "id differs");
    FUZZ_CHECK(e->stream_name == stream && e->delivery == delivery, "head differs");
    FUZZ_CHECK(e->nfields * 2 == list->elements, "%zu fields for %zu strings", e->nfields,
               (size_t)list->elements);
    for (size_t i = 0; i < e->nfields; i++) {
        const rs_field_t *f = &e->fields[i];
        const redisReply *n = list->element[2 * i], *v = list->element[2 * i + 1];
        FUZZ_CHECK(f->name_len == n->len && memcmp(f->name, n->str, n->len) == 0 &&
                       f->name[f->name_len] == '\0',
                   "field %zu's name differs", i);
        FUZZ_CHECK(f->value_len == v->len && memcmp(f->value, v->str, v->len) == 0 &&
                       f->value[f->value_len] == '\0',
                   "field %zu's value differs", i);
    }
}

/* One element through rs_entry_from_reply() and, when it builds, the JSON checks. Returns the
 * entry (caller frees) or NULL. */
static rs_entry_t *build(const redisReply *element, rs_entry_block_t *block, const char *stream,
                         uint64_t delivery)
{
    char err[256] = "";
    int deleted = -1;
    rs_entry_t *e =
        rs_entry_from_reply(element, block, NULL, stream, delivery, &deleted, err, sizeof(err));
    if (e == NULL) {
        FUZZ_CHECK(deleted == 0 || deleted == 1, "deleted left at %d", deleted);
        if (deleted)
            FUZZ_CHECK(element->type == REDIS_REPLY_ARRAY && element->elements == 2 &&
                           element->element[1]->type == REDIS_REPLY_NIL,
                       "'deleted' for an element with fields");
        else
            FUZZ_CHECK(err[0] != '\0' && strlen(err) < sizeof(err), "refused without a message");
        return NULL;
    }
    FUZZ_CHECK(deleted == 0, "an entry built and reported deleted");
    check_entry(e, element, stream, delivery);
    check_json(e, stream, delivery);
    return e;
}

static void check_reply(const redisReply *reply, const char *stream, uint64_t delivery)
{
    /* The reader: one block for the reply's entries, then each element. */
    rs_entry_block_t *block = rs_entry_block_new(reply);
    size_t n = reply->type == REDIS_REPLY_ARRAY ? reply->elements : 0;
    rs_entry_t **entries = calloc(n > 0 ? n : 1, sizeof(*entries));
    FUZZ_CHECK(entries != NULL, "out of memory");
    for (size_t i = 0; i < n; i++) {
        entries[i] = build(reply->element[i], block, stream, delivery);
        FUZZ_CHECK(entries[i] == NULL || block == NULL || entries[i]->block == block,
                   "entry %zu did not fit in the block sized for the reply", i);
        FUZZ_CHECK(entries[i] == NULL || block != NULL, "an entry built but no block for it");
    }
    rs_entry_block_release(block); /* the entries hold it now */
    for (size_t i = n; i > 0; i--)
        rs_entry_free(entries[i - 1]);
    free(entries);

    /* The retry scheduler: the reply as one element, on its own. */
    rs_entry_free(build(reply, NULL, stream, delivery));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || !fuzz_resp_counts_bounded(data, size, MAX_ARRAY_COUNT))
        return 0;
    const char *stream = stream_names[data[0] % (sizeof(stream_names) / sizeof(stream_names[0]))];
    uint64_t delivery = (uint64_t)(data[0] >> 2) + 1;

    redisReader *reader = redisReaderCreate();
    FUZZ_CHECK(reader != NULL, "out of memory");
    if (redisReaderFeed(reader, (const char *)data + 1, size - 1) == REDIS_OK) {
        void *reply = NULL;
        while (redisReaderGetReply(reader, &reply) == REDIS_OK && reply != NULL) {
            check_reply(reply, stream, delivery);
            freeReplyObject(reply);
            reply = NULL;
        }
    }
    redisReaderFree(reader);
    return 0;
}
