/*
 * Error replies to the consumer's stream commands, classified.
 *
 * DESIGN: a pure function of the reply's text. Redis puts a code in the first word of every
 * error (NOGROUP, WRONGTYPE, READONLY, OOM, ...), which is what is matched; the one code that
 * covers different situations, UNBLOCKED (a blocking XREADGROUP woken by the server), is told
 * apart by its text: "the stream key no longer exists" when the key was deleted (or replaced
 * by another type), "instance state changed (master -> replica?)" when the server was
 * demoted. Kept apart from redis_conn's rs_redis_classify_error(), which decides about the
 * connection handshake, because the same code means different things there: a NOPERM during
 * AUTH is a credentials problem, on an XADD to the dead-letter stream it is an ACL rule.
 */

#include "refusal.h"

#include <string.h>

/* True when `msg` (len bytes) begins with the word `code` followed by a space or its end. */
static bool has_code(const char *msg, size_t len, const char *code)
{
    size_t n = strlen(code);
    return len >= n && memcmp(msg, code, n) == 0 && (len == n || msg[n] == ' ');
}

static bool contains(const char *msg, size_t len, const char *needle)
{
    size_t n = strlen(needle);
    for (size_t i = 0; i + n <= len; i++) {
        if (memcmp(msg + i, needle, n) == 0)
            return true;
    }
    return false;
}

rs_refusal_t rs_refusal_of(const char *msg, size_t len)
{
    if (msg == NULL || len == 0)
        return RS_REFUSAL_OTHER;
    if (has_code(msg, len, "NOGROUP"))
        return RS_REFUSAL_NOGROUP;
    if (has_code(msg, len, "UNBLOCKED"))
        return contains(msg, len, "no longer exists") ? RS_REFUSAL_DELETED : RS_REFUSAL_NOT_READY;
    if (has_code(msg, len, "WRONGTYPE"))
        return RS_REFUSAL_WRONGTYPE;
    if (has_code(msg, len, "READONLY"))
        return RS_REFUSAL_READONLY;
    if (has_code(msg, len, "OOM"))
        return RS_REFUSAL_OOM;
    if (has_code(msg, len, "LOADING") || has_code(msg, len, "BUSY") ||
        has_code(msg, len, "MASTERDOWN") || has_code(msg, len, "TRYAGAIN"))
        return RS_REFUSAL_NOT_READY;
    /* Redis Cluster: a slot moved or being migrated, or the cluster without a quorum; the
     * connection follows the slot (rs_redis_route()) and the command is sent again. */
    if (has_code(msg, len, "MOVED") || has_code(msg, len, "ASK") ||
        has_code(msg, len, "CLUSTERDOWN"))
        return RS_REFUSAL_CLUSTER;
    if (has_code(msg, len, "NOPERM"))
        return RS_REFUSAL_NOPERM;
    return RS_REFUSAL_OTHER;
}

bool rs_refusal_transient(rs_refusal_t kind)
{
    return kind == RS_REFUSAL_READONLY || kind == RS_REFUSAL_NOT_READY ||
           kind == RS_REFUSAL_CLUSTER;
}

bool rs_refusal_group_gone(rs_refusal_t kind)
{
    return kind == RS_REFUSAL_NOGROUP || kind == RS_REFUSAL_DELETED;
}

const char *rs_refusal_hint(rs_refusal_t kind)
{
    switch (kind) {
    case RS_REFUSAL_NONE:
        return "no refusal";
    case RS_REFUSAL_NOGROUP:
        return "the consumer group or the stream was deleted";
    case RS_REFUSAL_DELETED:
        return "the stream was deleted";
    case RS_REFUSAL_WRONGTYPE:
        return "the key holds another type than a stream: rename or delete it";
    case RS_REFUSAL_READONLY:
        return "the server is a read-only replica: point redis.host at the master, or wait for "
               "a failover";
    case RS_REFUSAL_OOM:
        return "Redis is out of memory (maxmemory with a noeviction policy): raise maxmemory "
               "or free memory";
    case RS_REFUSAL_NOT_READY:
        return "the server is not ready (loading, busy, or changing role)";
    case RS_REFUSAL_CLUSTER:
        return "the cluster is moving the slot or has no quorum; following it";
    case RS_REFUSAL_NOPERM:
        return "the ACL user lacks a permission (see README, Least privilege in Redis)";
    case RS_REFUSAL_OTHER:
        return "Redis refused the command";
    }
    return "?";
}
