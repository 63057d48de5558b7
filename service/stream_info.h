#ifndef RS_STREAM_INFO_H
#define RS_STREAM_INFO_H

/*
 * What Redis reports about the configured streams, for the HTTP server's /streams overview
 * and the consumer-lag gauge of /metrics: each stream's length (XLEN), its consumer groups
 * (XINFO GROUPS: pending count, last delivered id, entries read, lag) and, on request, each
 * group's consumers (XINFO CONSUMERS: pending count, idle time).
 *
 * Names that come from Redis (groups, consumers, ids) are binary-safe: each is kept with its
 * length and may hold any byte, NUL included.
 */

#include <stdbool.h>
#include <stddef.h>

#include "redis_conn.h"

/* A string from a Redis reply: `len` bytes at `str` (NUL-terminated too, for convenience). */
typedef struct {
    char *str;
    size_t len;
} rs_info_string_t;

typedef struct {
    rs_info_string_t name;
    long long pending; /* entries delivered to it and not acknowledged */
    long long idle_ms; /* since its last interaction with Redis */
} rs_consumer_info_t;

typedef struct {
    rs_info_string_t name;
    rs_info_string_t last_delivered_id;
    long long consumers; /* as XINFO GROUPS counts them */
    long long pending;
    bool has_entries_read; /* Redis 7+, and not nil */
    long long entries_read;
    bool has_lag; /* Redis 7+, and not nil (Redis cannot always tell, e.g. after XDEL) */
    long long lag;
    size_t nconsumer_list; /* filled only when asked for (rs_stream_info_fetch's `consumers`) */
    rs_consumer_info_t *consumer_list;
} rs_group_info_t;

typedef struct {
    const char *name; /* borrowed from the caller's list */
    bool exists;      /* false: no such key (length 0, no groups) */
    char *error;      /* NULL, or Redis's error for this stream (e.g. WRONGTYPE) */
    long long length;
    size_t ngroups;
    rs_group_info_t *groups;
} rs_stream_info_t;

typedef struct {
    size_t nstreams;
    rs_stream_info_t *streams; /* in the order of the names asked for */
} rs_streams_info_t;

/* Asks Redis, on the connected `redis`, about the `n` streams in `names` (borrowed until
 * rs_streams_info_clear()), with XINFO CONSUMERS for every group when `consumers` is true.
 * The commands are pipelined: two round trips at most, whatever the number of streams. Each
 * reply's type is checked; an error reply about one stream (WRONGTYPE, no such key) is kept in
 * that stream's `error` or `exists` and is not a failure. Returns 0 and fills `out` (caller
 * clears it with rs_streams_info_clear()), or -1 with a message in `err` when the connection
 * failed (it is then closed; the message names the server and never holds the password) or
 * memory ran out. Blocks up to the connection's command timeout per reply. Owner thread of
 * `redis`. */
int rs_stream_info_fetch(rs_redis_t *redis, const char *const *names, size_t n, bool consumers,
                         rs_streams_info_t *out, char *err, size_t errlen);

/* Frees everything `info` holds and zeroes it; safe on a zeroed or already cleared struct. */
void rs_streams_info_clear(rs_streams_info_t *info);

/* One field of an entry read for the dashboard: its name and value, each cut to the `max`
 * bytes rs_stream_info_recent() was given (`cut` says whether either was). */
typedef struct {
    rs_info_string_t name, value;
    bool cut;
} rs_info_field_t;

typedef struct {
    rs_info_string_t id;
    size_t nfields;
    rs_info_field_t *fields;
} rs_info_entry_t;

typedef struct {
    bool exists; /* false: no such key (or not a stream: then `error` says so) */
    char *error; /* NULL, or Redis's error about the key (e.g. WRONGTYPE) */
    size_t nentries;
    rs_info_entry_t *entries; /* newest first */
} rs_info_entries_t;

/* Reads the newest `count` entries of stream `key` (XREVRANGE key + - COUNT count) on the
 * connected `redis`, copying each field name and value cut to `max` bytes. An error reply
 * about the key is kept in `out->error`, not a failure. Returns 0 with `out` filled (caller
 * clears it with rs_info_entries_clear()), or -1 with a message in `err` when the connection
 * failed (it is then closed; the message never holds the password) or memory ran out. Owner
 * thread of `redis`. */
int rs_stream_info_recent(rs_redis_t *redis, const char *key, size_t count, size_t max,
                          rs_info_entries_t *out, char *err, size_t errlen);

/* Frees everything `e` holds and zeroes it; safe on a zeroed or already cleared struct. */
void rs_info_entries_clear(rs_info_entries_t *e);

#endif
