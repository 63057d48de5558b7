#ifndef RS_ENTRY_H
#define RS_ENTRY_H

/*
 * One stream entry on its way from a reader to a handler: the stream, the id, every field
 * binary-safe, and the delivery count Redis keeps for it.
 *
 * Field names and values are byte strings with lengths: they may hold NUL bytes or invalid
 * UTF-8, and values are never truncated (Redis allows 512 MiB). An entry is one contiguous
 * piece of memory, either its own allocation or a part of a block shared by the entries of
 * one reply (rs_entry_block_t): handing it from thread to thread is a pointer move, and
 * rs_entry_free() releases it either way.
 */

#include <hiredis/hiredis.h>
#include <stddef.h>
#include <stdint.h>

#include "traceparent.h"

/* Longest entry id text ("18446744073709551615-18446744073709551615") plus the NUL. */
#define RS_ENTRY_ID_MAX 48

struct rs_stream; /* the consumer's per-stream state; opaque here */

/* One allocation holding the entries built from one reply, freed with the last of them. */
typedef struct rs_entry_block rs_entry_block_t;

typedef struct {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
} rs_field_t;

struct rs_lane; /* an ordering lane of the work queue (queue.c); opaque here */

typedef struct rs_entry {
    rs_entry_block_t *block;  /* the shared block it lives in, or NULL: its own allocation */
    struct rs_stream *stream; /* borrowed: the stream outlives all of its entries */
    const char *stream_name;  /* borrowed, as `stream` */
    char id[RS_ENTRY_ID_MAX];
    uint64_t delivery; /* times Redis has delivered it, this delivery included */
    /* The trace context of the consumer span handling this entry, set by the worker just
     * before it calls the handler and cleared after (borrowed from the worker's stack);
     * NULL when tracing is off. Handlers that call out (http) propagate it. */
    const rs_trace_context_t *trace;
    size_t nfields;
    rs_field_t *fields; /* nfields pairs, inside the same allocation */

    /* Ordering, for the work queue (queue.h). Whoever queues a new entry sets `order_scope`
     * (NULL: unordered, the default) and the key's bytes (`order_key`, inside the entry or a
     * static string); the queue sets `lane`, and the entry carries it until its handling is
     * over. `next` links the entry into the queue's lists. Constructors set all of these to
     * NULL/0. */
    const void *order_scope;
    const char *order_key;
    size_t order_key_len;
    struct rs_lane *lane;
    struct rs_entry *next;
} rs_entry_t;

/* A block sized for every well-formed entry of `list` (the entry array of an XREADGROUP or
 * XAUTOCLAIM reply), holding one reference for the caller. Returns NULL when out of memory or
 * when there is no entry to build: rs_entry_from_reply() then allocates each entry on its own.
 * The caller releases its reference with rs_entry_block_release() once every entry is built;
 * the block is freed when its last entry is. Any thread. */
rs_entry_block_t *rs_entry_block_new(const redisReply *list);

/* Drops one reference to the block; the last frees it. NULL is ignored. Any thread. */
void rs_entry_block_release(rs_entry_block_t *b);

/* Builds an entry from one element of an XREADGROUP/XCLAIM reply: a two-element array of the
 * id (string) and the field list (array of strings, names and values alternating), in `block`
 * when it has room (NULL: an allocation of its own). Copies everything, so the reply may be
 * freed afterwards.
 * Returns the entry (caller frees with rs_entry_free()), or NULL with a message in `err` when
 * the element is malformed or memory runs out. An element whose field list is nil (an entry
 * deleted while pending) is reported through *deleted = 1 and NULL with no error, so the
 * caller can acknowledge it instead of retrying it forever. Pure; any thread. */
rs_entry_t *rs_entry_from_reply(const redisReply *element, rs_entry_block_t *block,
                                struct rs_stream *stream, const char *stream_name,
                                uint64_t delivery, int *deleted, char *err, size_t errlen);

/* Builds an entry from parts (tests and tools). Copies everything. NULL when out of memory. */
rs_entry_t *rs_entry_new(struct rs_stream *stream, const char *stream_name, const char *id,
                         uint64_t delivery, const rs_field_t *fields, size_t nfields);

/* Frees the entry (or releases its part of a block); NULL is ignored. Any thread. */
void rs_entry_free(rs_entry_t *e);

/* Encodes the entry as one JSON object on one line, without a trailing newline:
 *   {"stream":"events","id":"1-0","delivery":1,"fields":{"message":"Message #1",...}}
 * A field value that is valid UTF-8 (NUL bytes included, escaped as \u0000) is a JSON
 * string; any other value is {"base64":"..."} so the JSON stays valid and nothing is lost.
 * A field name that is not valid UTF-8, holds a NUL byte, or itself starts with "base64:",
 * is written as "base64:" followed by the name in base64. A name the entry holds more than once
 * maps to an array of its values in entry order. Returns a string the caller frees with free() and
 * its length in *len, or NULL when out of memory. Pure; any thread. */
char *rs_entry_to_json(const rs_entry_t *e, size_t *len);

#endif
