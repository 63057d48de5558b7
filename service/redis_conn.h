#ifndef RS_REDIS_CONN_H
#define RS_REDIS_CONN_H

/*
 * A connection to Redis owned by one thread: connect with a timeout, AUTH (password, or ACL
 * user and password), SELECT, TCP keepalive, and reconnection with capped exponential backoff
 * plus jitter. hiredis contexts are not thread-safe, so an rs_redis_t is used by exactly one
 * thread for its whole life; each reader, the ack path and the producer have their own.
 *
 * Errors keep hiredis's convention: the object carries `err`-style state readable with
 * rs_redis_errstr(), and every message names the address and carries Redis's own words
 * ("redis 127.0.0.1:6380: AUTH failed: WRONGPASS invalid username-password pair ...").
 * The password never appears in any message.
 *
 * Works with hiredis 0.14 (Debian 12) and 1.x.
 *
 * A program using this module must ignore SIGPIPE (signal(SIGPIPE, SIG_IGN)) before the first
 * connection: hiredis writes with write(2), so a server that goes away mid-command would
 * otherwise kill the process instead of producing RS_REDIS_ERR_IO.
 */

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "log.h"

typedef struct {
    const char *host; /* borrowed for the call to rs_redis_new() only: copied */
    int port;
    const char *username;    /* NULL: AUTH with the password alone */
    const char *password;    /* NULL or "": no AUTH */
    int db;                  /* SELECTed when not 0 */
    int connect_timeout_ms;  /* for the TCP connect and the AUTH/SELECT/PING handshake;
                                0 = the kernel's own limit */
    int command_timeout_ms;  /* for each reply; 0 = wait forever (use with BLOCK) */
    const char *client_name; /* for log lines ("producer", "reader events") */
    int backoff_base_ms;     /* first reconnect wait; 0 = 100 */
    int backoff_cap_ms;      /* longest reconnect wait; 0 = 5000 */
} rs_redis_opts_t;

typedef struct rs_redis rs_redis_t;

/* The cluster router (cluster.h). */
typedef struct rs_cluster rs_cluster_t;

/* Result of rs_redis_connect(): the kinds callers treat differently. */
typedef enum {
    RS_REDIS_OK = 0,
    RS_REDIS_ERR_IO = -1,    /* unreachable, timed out, connection lost, or not ready yet
                                (LOADING, BUSY, MASTERDOWN, TRYAGAIN): worth retrying */
    RS_REDIS_ERR_AUTH = -2,  /* Redis refused the credentials (WRONGPASS, NOAUTH, NOPERM) */
    RS_REDIS_ERR_REPLY = -3, /* any other error reply, e.g. SELECT out of range */
} rs_redis_status_t;

/* Called between reconnect attempts to wait `ms` milliseconds. Returns 0 when the wait ran
 * out, non-zero when the caller is stopping (then rs_redis_connect_retry() gives up). */
typedef int (*rs_redis_wait_fn)(void *arg, long ms);

/* Told about the socket of each TCP connection the handle makes (fd >= 0), right after the
 * TCP connect and before the handshake, and told when that connection is dropped (fd == -1).
 * `fd` is borrowed: valid until the call with -1. Runs on the owner thread, inside
 * rs_redis_connect() and whatever call drops the connection (never rs_redis_free()). */
typedef void (*rs_redis_socket_fn)(void *arg, int fd);

/* Creates an unconnected handle; copies everything in `opts`. `log` is borrowed for the
 * handle's lifetime. Returns NULL only when out of memory. Caller frees with rs_redis_free(). */
rs_redis_t *rs_redis_new(const rs_redis_opts_t *opts, rs_logger_t *log);

/* Creates an unconnected handle for the server cfg->redis describes (address, user, password,
 * db, connect timeout), named `client_name` in messages, waiting at most `command_timeout_ms`
 * for each reply (0 = forever). `cfg` is read during the call only. Otherwise as
 * rs_redis_new(). */
rs_redis_t *rs_redis_new_from_config(const rs_config_t *cfg, const char *client_name,
                                     int command_timeout_ms, rs_logger_t *log);

/* Installs `fn` (NULL: none), called with `arg` as rs_redis_socket_fn says. An owner that is
 * stopped from another thread keeps a dup of the socket and shutdown(2)s it to wake the owner:
 * this ends a handshake with a server that accepted and never answers at once, instead of
 * after connect_timeout_ms (the TCP connect itself still runs to its timeout). `arg` is
 * borrowed for the handle's lifetime. Owner thread, before the first connect. */
void rs_redis_on_socket(rs_redis_t *r, rs_redis_socket_fn fn, void *arg);

/* Frees the handle and closes its connection; NULL is ignored. Owner thread only. */
void rs_redis_free(rs_redis_t *r);

/* One connection attempt: TCP connect within connect_timeout_ms, keepalive, AUTH, SELECT, and
 * a PING that proves the session usable. Blocks up to the timeouts. Returns RS_REDIS_OK or one
 * of the errors above, with the message in rs_redis_errstr(). Does not log. Owner thread.
 * A routed handle (rs_redis_route()) whose master cannot be reached has the router refresh
 * its map, and when the key's slot has another master now, that one is tried at once too. */
rs_redis_status_t rs_redis_connect(rs_redis_t *r);

/* Connects, retrying RS_REDIS_ERR_IO with backoff until it succeeds or `wait` reports a stop.
 * Logs the first failure as a warning, then one line per backoff step, then the recovery; an
 * attempt that fails because the caller is stopping (wait(arg, 0) reports the stop) is not
 * logged.
 * Authentication and other reply errors are not retried. Returns RS_REDIS_OK, the
 * non-retryable error, or RS_REDIS_ERR_IO when stopped. Owner thread only. */
rs_redis_status_t rs_redis_connect_retry(rs_redis_t *r, rs_redis_wait_fn wait, void *arg);

/* True while the handle holds a usable connection. Owner thread only. */
bool rs_redis_connected(const rs_redis_t *r);

/* Runs one command given as binary-safe arguments and returns its reply, which the caller
 * frees with freeReplyObject(). Returns NULL on a connection error: the connection is then
 * closed (rs_redis_connected() is false) and rs_redis_errstr() says why. An error *reply*
 * (type REDIS_REPLY_ERROR) is returned like any other; the caller checks reply->type.
 * Blocks up to command_timeout_ms. Owner thread only. */
redisReply *rs_redis_command_argv(rs_redis_t *r, int argc, const char **argv,
                                  const size_t *argvlen);

/* The hiredis context, for pipelining with redisAppendCommandArgv()/redisGetReply(); NULL when
 * not connected. Borrowed until the next call on `r`. After a hiredis call fails, call
 * rs_redis_mark_broken() so the handle drops the dead context. Owner thread only. */
redisContext *rs_redis_context(rs_redis_t *r);

/* Closes the connection after a failure seen through rs_redis_context(), recording the
 * context's error. Owner thread only. */
void rs_redis_mark_broken(rs_redis_t *r);

/* The last error's message; "" when none. Borrowed until the next call on `r`. */
const char *rs_redis_errstr(const rs_redis_t *r);

/* "host:port" of the server, for messages. Borrowed until the handle next connects (a routed
 * handle may connect elsewhere then). Owner thread only. */
const char *rs_redis_addr(const rs_redis_t *r);

/* Number of successful connections after the first (for metrics). Any thread; lock-free
 * (the handle must outlive the call). */
unsigned long rs_redis_reconnects(const rs_redis_t *r);

/* Binds the handle to the `len`-byte key `key` of the Redis Cluster that `cluster` routes
 * (cluster mode): from now on each connect goes to the master that serves the key's slot,
 * whatever address the handle was made with, and
 *  - a -MOVED reply to rs_redis_command_argv() updates the router and closes the connection:
 *    the call returns NULL (RS_REDIS_ERR_IO, "moved to ..."), and the caller's usual
 *    reconnect reaches the new master;
 *  - a -ASK reply (the slot is being migrated and the key is already on the target) is
 *    retried once on a short-lived connection to the target, after ASKING; the call returns
 *    that reply;
 *  - a failed TCP connect makes the router refresh its map (a master that died is replaced
 *    by its replica), so the next attempt may go elsewhere.
 * The key is copied; `cluster` is borrowed for the handle's lifetime. Call before the first
 * connect. Owner thread only. */
void rs_redis_route(rs_redis_t *r, rs_cluster_t *cluster, const char *key, size_t len);

/* Reads the next reply of a pipeline appended through rs_redis_context() and returns it (the
 * caller frees it with freeReplyObject()), or NULL when the connection failed or there is
 * none: the connection is then closed as by rs_redis_mark_broken() and rs_redis_errstr() says
 * why. An error reply is returned like any other; on a routed handle a -MOVED or -ASK reply
 * is also noted as rs_redis_redirected() says. Blocks up to command_timeout_ms. Owner thread
 * only. */
redisReply *rs_redis_read_reply(rs_redis_t *r);

/* For replies read through rs_redis_context() (pipelines): when `reply` is a -MOVED or -ASK
 * error and the handle is routed, tells the router (MOVED) and marks the connection to be
 * dropped: rs_redis_connected() is false from now on, but the context stays readable so the
 * caller can read the rest of its pipeline, and the next connect goes to the key's master.
 * The caller handles the reply itself as a refusal that passes (refusal.h). Returns true when
 * the reply was such a redirection. Owner thread only. */
bool rs_redis_redirected(rs_redis_t *r, const redisReply *reply);

/* Classifies the text of an error reply (reply->str, reply->len of a REDIS_REPLY_ERROR) so
 * every caller draws the same line: RS_REDIS_ERR_AUTH when Redis refuses the credentials or
 * the permission (WRONGPASS, NOAUTH, NOPERM, "ERR ... AUTH ..." / "ERR invalid password" from
 * older servers); RS_REDIS_ERR_IO when the server is not ready yet and a later retry can
 * succeed (LOADING, BUSY, MASTERDOWN, TRYAGAIN, CLUSTERDOWN, and the redirections MOVED and
 * ASK); RS_REDIS_ERR_REPLY for everything else
 * (WRONGTYPE, syntax errors, ...), which retrying cannot fix. Pure; any thread. */
rs_redis_status_t rs_redis_classify_error(const char *msg, size_t len);

#endif
