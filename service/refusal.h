#ifndef RS_REFUSAL_H
#define RS_REFUSAL_H

/*
 * What an error reply to one of the consumer's stream commands (XGROUP CREATE, XREADGROUP,
 * XAUTOCLAIM, XCLAIM, XACK, the dead-letter transaction) means for it, so the reader, the
 * acknowledger and the retry scheduler draw the same lines and say the same words:
 *
 *   - the group or the stream is gone: create them again (the reader does);
 *   - the server refuses for now but will accept the same command later without anyone
 *     touching the data (a read-only replica before a failover, LOADING, a role change):
 *     keep the work and send it again after a backoff;
 *   - something only an operator can fix (a key of another type, maxmemory, an ACL rule):
 *     log it clearly, retry slowly, and leave the entries pending in Redis meanwhile.
 *
 * Connection-level failures are redis_conn's business (rs_redis_classify_error()).
 */

#include <stdbool.h>
#include <stddef.h>

typedef enum {
    RS_REFUSAL_NONE = 0,  /* no refusal (the last command succeeded) */
    RS_REFUSAL_NOGROUP,   /* NOGROUP: the consumer group, or the whole stream key, is gone */
    RS_REFUSAL_DELETED,   /* UNBLOCKED ... no longer exists: the stream key was deleted while
                           * a blocking read waited on it */
    RS_REFUSAL_WRONGTYPE, /* WRONGTYPE: the key holds another type than a stream */
    RS_REFUSAL_READONLY,  /* READONLY: the server is a read-only replica */
    RS_REFUSAL_OOM,       /* OOM: maxmemory reached under a noeviction policy */
    RS_REFUSAL_NOT_READY, /* LOADING, BUSY, MASTERDOWN, TRYAGAIN, or UNBLOCKED by a change of
                           * the server's role: a state the server leaves by itself */
    RS_REFUSAL_CLUSTER,   /* MOVED, ASK (a slot moved or being migrated) or CLUSTERDOWN: Redis
                           * Cluster reconfiguring, which it finishes by itself */
    RS_REFUSAL_NOPERM,    /* NOPERM: the ACL user may not run the command or touch the key */
    RS_REFUSAL_OTHER,     /* any other error reply */
} rs_refusal_t;

/* Classifies the text of an error reply (reply->str, reply->len of a REDIS_REPLY_ERROR).
 * NULL or empty text is RS_REFUSAL_OTHER. Pure; any thread. */
rs_refusal_t rs_refusal_of(const char *msg, size_t len);

/* True when the same command can succeed later without anyone changing the data or the
 * configuration (RS_REFUSAL_READONLY, RS_REFUSAL_NOT_READY, RS_REFUSAL_CLUSTER): the work is kept
 * and sent again after a backoff instead of being given up. Pure; any thread. */
bool rs_refusal_transient(rs_refusal_t kind);

/* True when the reader should create the group (and the stream) again: RS_REFUSAL_NOGROUP,
 * RS_REFUSAL_DELETED. Pure; any thread. */
bool rs_refusal_group_gone(rs_refusal_t kind);

/* A short phrase naming the cause and what fixes it, for log lines and /readyz ("the server
 * is a read-only replica: point redis.host at the master, or wait for a failover"). A static
 * string. Pure; any thread. */
const char *rs_refusal_hint(rs_refusal_t kind);

#endif
