/*
 * Stream entries: built from hiredis replies, freed in one call, encoded as JSON.
 *
 * DESIGN: an entry is one contiguous piece of memory laid out as
 *     [rs_entry_t][rs_field_t x nfields][name0 NUL value0 NUL name1 NUL ...]
 * so no pointer inside can outlive its bytes. A reader builds all the entries of one reply in
 * one shared block (rs_entry_block_t: a reference count, then the entries back to back),
 * so a batch costs one malloc in the reader and one free in whichever worker releases the
 * last entry: with an allocation per entry, the workers' frees of memory the reader
 * allocated contended with the reader's mallocs on the allocator's arena lock, which was
 * most of the consumer's time at full speed. An entry built alone (tests, XCLAIM retries) is
 * its own allocation. Every string also gets a NUL after its length, for the convenience of
 * handlers that know their data is text; the lengths remain the truth.
 *
 * The JSON encoding is the one place that turns an entry into text for the outside world
 * (the log handler now, exec and HTTP handlers later). JSON cannot carry arbitrary bytes, so
 * a value that is not valid UTF-8 becomes {"base64": "..."} rather than being corrupted or
 * dropped. jansson decides validity: json_stringn() refuses invalid UTF-8.
 */

#include "entry.h"

#include <jansson.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

/* Adds the bytes one field needs to *size; returns -1 on overflow. */
static int add_field_size(size_t *size, size_t name_len, size_t value_len)
{
    size_t need = name_len + value_len + 2 + sizeof(rs_field_t);
    if (need < name_len || *size > SIZE_MAX - need)
        return -1;
    *size += need;
    return 0;
}

struct rs_entry_block {
    atomic_size_t refs; /* the builder's reference plus one per entry not yet freed */
    size_t size, used;  /* bytes after the header, and how many are handed out */
    alignas(max_align_t) char data[];
};

/* Rounds an entry's size up so the next one in a block is aligned. */
static size_t aligned_size(size_t size)
{
    size_t a = alignof(max_align_t);
    return size > SIZE_MAX - a ? SIZE_MAX : (size + a - 1) / a * a;
}

/* Allocates an entry of `size` bytes with room for `nfields` (from `block` when it has room,
 * else on its own) and fills its head. The field bytes start at the returned *cursor. */
static rs_entry_t *entry_alloc(rs_entry_block_t *block, size_t size, size_t nfields,
                               struct rs_stream *stream, const char *stream_name, const char *id,
                               size_t id_len, uint64_t delivery, char **cursor)
{
    rs_entry_t *e;
    size_t need = aligned_size(size);
    if (block != NULL && block->size - block->used >= need) {
        e = (rs_entry_t *)(void *)(block->data + block->used);
        block->used += need;
        atomic_fetch_add_explicit(&block->refs, 1, memory_order_relaxed);
    } else {
        e = malloc(size);
        if (e == NULL)
            return NULL;
        block = NULL;
    }
    e->block = block;
    e->stream = stream;
    e->stream_name = stream_name;
    memcpy(e->id, id, id_len);
    e->id[id_len] = '\0';
    e->delivery = delivery;
    e->trace = NULL;
    e->order_scope = NULL;
    e->order_key = NULL;
    e->order_key_len = 0;
    e->lane = NULL;
    e->next = NULL;
    e->nfields = nfields;
    e->fields = (rs_field_t *)(e + 1);
    *cursor = (char *)(e->fields + nfields);
    return e;
}

/* Copies one field's bytes to *cursor, NUL-terminating each, and records it as field i. */
static void entry_set_field(rs_entry_t *e, size_t i, const char *name, size_t name_len,
                            const char *value, size_t value_len, char **cursor)
{
    char *p = *cursor;
    rs_field_t *f = &e->fields[i];
    f->name = p;
    f->name_len = name_len;
    if (name_len > 0)
        memcpy(p, name, name_len);
    p[name_len] = '\0';
    p += name_len + 1;
    f->value = p;
    f->value_len = value_len;
    if (value_len > 0)
        memcpy(p, value, value_len);
    p[value_len] = '\0';
    *cursor = p + value_len + 1;
}

rs_entry_t *rs_entry_new(struct rs_stream *stream, const char *stream_name, const char *id,
                         uint64_t delivery, const rs_field_t *fields, size_t nfields)
{
    size_t id_len = strlen(id), size = sizeof(rs_entry_t);
    if (id_len >= RS_ENTRY_ID_MAX)
        return NULL;
    for (size_t i = 0; i < nfields; i++) {
        if (add_field_size(&size, fields[i].name_len, fields[i].value_len) != 0)
            return NULL;
    }
    char *cursor;
    rs_entry_t *e =
        entry_alloc(NULL, size, nfields, stream, stream_name, id, id_len, delivery, &cursor);
    if (e == NULL)
        return NULL;
    for (size_t i = 0; i < nfields; i++)
        entry_set_field(e, i, fields[i].name, fields[i].name_len, fields[i].value,
                        fields[i].value_len, &cursor);
    return e;
}

/* Redis writes entry ids as "<ms>-<seq>", two decimal numbers. Anything else in a reply is
 * refused: the id goes into the entry's JSON (which needs UTF-8), a webhook's
 * Idempotency-Key header and the exec handler's environment unescaped. */
static bool is_entry_id(const char *s, size_t len)
{
    size_t ms = strspn(s, "0123456789");
    if (ms == 0 || ms >= len || s[ms] != '-')
        return false;
    size_t seq = strspn(s + ms + 1, "0123456789");
    return seq > 0 && ms + 1 + seq == len;
}

/* Checks one element of a reply and computes the size of its entry. Returns 0 with *size set,
 * 1 when the entry was deleted (nil fields), or -1 with a message in `err`. */
static int element_size(const redisReply *element, const char *stream_name, size_t *size, char *err,
                        size_t errlen)
{
    if (element == NULL || element->type != REDIS_REPLY_ARRAY || element->elements != 2 ||
        element->element[0]->type != REDIS_REPLY_STRING) {
        snprintf(err, errlen, "stream %s: malformed entry in reply", stream_name);
        return -1;
    }
    const redisReply *idr = element->element[0];
    const redisReply *list = element->element[1];
    if (idr->len == 0 || idr->len >= RS_ENTRY_ID_MAX) {
        snprintf(err, errlen, "stream %s: entry id of %zu bytes in reply", stream_name,
                 (size_t)idr->len);
        return -1;
    }
    if (!is_entry_id(idr->str, (size_t)idr->len)) {
        snprintf(err, errlen, "stream %s: entry id in reply is not <ms>-<seq>", stream_name);
        return -1;
    }
    if (list->type == REDIS_REPLY_NIL) {
        /* XREADGROUP with an explicit id returns nil fields for an entry deleted (trimmed)
         * after it was delivered. It can never be handled. */
        return 1;
    }
    if (list->type != REDIS_REPLY_ARRAY || list->elements % 2 != 0) {
        snprintf(err, errlen, "stream %s: entry %.*s has a malformed field list", stream_name,
                 (int)idr->len, idr->str);
        return -1;
    }
    *size = sizeof(rs_entry_t);
    for (size_t i = 0; i < list->elements; i += 2) {
        const redisReply *n = list->element[i], *v = list->element[i + 1];
        if (n->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING) {
            snprintf(err, errlen, "stream %s: entry %.*s has a field that is not a string",
                     stream_name, (int)idr->len, idr->str);
            return -1;
        }
        if (add_field_size(size, (size_t)n->len, (size_t)v->len) != 0) {
            snprintf(err, errlen, "stream %s: entry %.*s is too large", stream_name, (int)idr->len,
                     idr->str);
            return -1;
        }
    }
    return 0;
}

rs_entry_block_t *rs_entry_block_new(const redisReply *list)
{
    if (list == NULL || list->type != REDIS_REPLY_ARRAY || list->elements == 0)
        return NULL;
    size_t total = 0;
    char err[256]; /* element_size() wants room for its message; unused here */
    for (size_t i = 0; i < list->elements; i++) {
        size_t size;
        if (element_size(list->element[i], "", &size, err, sizeof(err)) != 0)
            continue;
        size = aligned_size(size);
        if (total > SIZE_MAX - sizeof(rs_entry_block_t) - size)
            return NULL; /* absurd: let each entry fail on its own */
        total += size;
    }
    if (total == 0)
        return NULL;
    rs_entry_block_t *b = malloc(sizeof(*b) + total);
    if (b == NULL)
        return NULL;
    atomic_init(&b->refs, 1);
    b->size = total;
    b->used = 0;
    return b;
}

void rs_entry_block_release(rs_entry_block_t *b)
{
    if (b != NULL && atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) == 1)
        free(b);
}

rs_entry_t *rs_entry_from_reply(const redisReply *element, rs_entry_block_t *block,
                                struct rs_stream *stream, const char *stream_name,
                                uint64_t delivery, int *deleted, char *err, size_t errlen)
{
    size_t size = 0;
    int rc = element_size(element, stream_name, &size, err, errlen);
    *deleted = rc == 1;
    if (rc != 0)
        return NULL;
    const redisReply *idr = element->element[0];
    const redisReply *list = element->element[1];
    size_t nfields = list->elements / 2;
    char *cursor;
    rs_entry_t *e = entry_alloc(block, size, nfields, stream, stream_name, idr->str,
                                (size_t)idr->len, delivery, &cursor);
    if (e == NULL) {
        snprintf(err, errlen, "stream %s: out of memory for entry %.*s", stream_name, (int)idr->len,
                 idr->str);
        return NULL;
    }
    for (size_t i = 0; i < nfields; i++) {
        const redisReply *n = list->element[2 * i], *v = list->element[2 * i + 1];
        entry_set_field(e, i, n->str, (size_t)n->len, v->str, (size_t)v->len, &cursor);
    }
    return e;
}

void rs_entry_free(rs_entry_t *e)
{
    if (e == NULL)
        return;
    if (e->block != NULL)
        rs_entry_block_release(e->block);
    else
        free(e);
}

/* A JSON value for bytes: a string when they are UTF-8, else {"base64": "..."}. */
static json_t *json_bytes(const char *data, size_t len)
{
    json_t *s = json_stringn(data, len);
    if (s != NULL)
        return s;
    char *b64 = rs_json_base64(data, len, "");
    if (b64 == NULL)
        return NULL;
    json_t *obj = json_pack("{s:s}", "base64", b64);
    free(b64);
    return obj;
}

#define ENCODED_NAME_PREFIX "base64:"

/* The JSON key for a field name: the name itself when it is UTF-8 without a NUL byte and
 * does not start with "base64:", otherwise "base64:" and the name in base64. So a key
 * starting with "base64:" is always an encoded name, and no two different names share a key.
 * A NUL is valid UTF-8 and JSON can escape it, but parsers that keep keys as C strings
 * (jansson among them) refuse "\u0000" in a key, so such a name is encoded too. Returns a
 * string the caller frees, or NULL when out of memory. */
static char *field_key(const char *name, size_t len, size_t *keylen)
{
    size_t plen = strlen(ENCODED_NAME_PREFIX);
    bool plain = !(len >= plen && memcmp(name, ENCODED_NAME_PREFIX, plen) == 0) &&
                 (len == 0 || memchr(name, '\0', len) == NULL);
    if (plain) {
        json_t *probe = json_stringn(name, len); /* NULL for invalid UTF-8 */
        plain = probe != NULL;
        json_decref(probe);
    }
    char *key;
    if (plain) {
        key = malloc(len + 1);
        if (key != NULL) {
            memcpy(key, name, len);
            key[len] = '\0';
            *keylen = len;
        }
    } else {
        key = rs_json_base64(name, len, ENCODED_NAME_PREFIX);
        if (key != NULL)
            *keylen = strlen(key);
    }
    return key;
}

/* Adds `value` (stolen) under `key`. A name Redis holds twice (XADD allows it) becomes an
 * array of its values in entry order, so no value is lost; a single value is never an array,
 * so the two cases cannot be confused. Returns 0, or -1 when out of memory. */
static int add_field(json_t *fields, const char *key, size_t keylen, json_t *value)
{
    json_t *prev = json_object_getn(fields, key, keylen);
    if (prev == NULL)
        return json_object_setn_new(fields, key, keylen, value);
    if (json_is_array(prev))
        return json_array_append_new(prev, value);
    json_t *all = json_array();
    if (all == NULL || json_array_append(all, prev) != 0 ||
        json_array_append_new(all, value) != 0) {
        json_decref(all);
        return -1;
    }
    return json_object_setn_new(fields, key, keylen, all);
}

char *rs_entry_to_json(const rs_entry_t *e, size_t *len)
{
    json_t *fields = json_object();
    json_t *root = json_pack("{s:s, s:s, s:I, s:o}", "stream", e->stream_name, "id", e->id,
                             "delivery", (json_int_t)e->delivery, "fields", fields);
    if (root == NULL)
        return NULL;
    for (size_t i = 0; i < e->nfields; i++) {
        const rs_field_t *f = &e->fields[i];
        size_t keylen = 0;
        char *key = field_key(f->name, f->name_len, &keylen);
        json_t *value = json_bytes(f->value, f->value_len);
        int rc = key != NULL && value != NULL ? add_field(fields, key, keylen, value) : -1;
        if (key == NULL || value == NULL)
            json_decref(value);
        free(key);
        if (rc != 0)
            goto fail;
    }
    return rs_json_finish(root, 0, JSON_COMPACT, false, len);

fail:
    json_decref(root);
    return NULL;
}
