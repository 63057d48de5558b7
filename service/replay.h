#ifndef RS_REPLAY_H
#define RS_REPLAY_H

/*
 * Replaying dead letters: moving entries of a dead-letter stream back to the streams they
 * came from, once whatever made them fail has been fixed (redstream-producer --replay-dlq).
 */

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "log.h"
#include "redis_conn.h"

/* Moves up to `max` entries (0: all) of dead-letter stream `dlq`, oldest first, back to the
 * stream named by their redstream.original_stream field, with their original fields only.
 * Each move is one MULTI/EXEC of XADD to the original stream and XDEL from `dlq`, so an entry
 * is never in both or in neither. With `dry_run` nothing changes and the entries that would
 * move are listed. Writes one line per entry to `out`; entries without the dead-letter
 * fields are skipped with a warning on `log`.
 * Returns the number of entries moved (or listed), or -1 with a message in `err` (Redis
 * unreachable or refusing; entries moved before that stay moved). Blocks on Redis. Owner
 * thread of `r`. */
long rs_replay_dlq(rs_redis_t *r, rs_logger_t *log, const char *dlq, uint64_t max, bool dry_run,
                   FILE *out, char *err, size_t errlen);

#endif
