#ifndef RS_OUTPUT_H
#define RS_OUTPUT_H

/*
 * An output that several threads write whole records to: the log handler's stdout.
 *
 * Each rs_output_write() reaches the descriptor as one unit, never interleaved with another
 * thread's, however large and however many write(2) calls it takes. It uses write(2) under a
 * mutex of its own rather than stdio, so a writer blocked on a full pipe holds no lock that
 * exit paths (stdio flushing at exit, a sanitizer's _exit) would wait for.
 */

#include <stddef.h>

typedef struct rs_output rs_output_t;

/* Creates an output writing to `fd` (borrowed: not closed by rs_output_free()). Returns NULL
 * when out of memory. Caller frees with rs_output_free(). */
rs_output_t *rs_output_new(int fd);

/* Frees the output; NULL is ignored. No thread may be writing to it. */
void rs_output_free(rs_output_t *o);

/* Writes all `len` bytes of `buf`, retrying short writes and EINTR. Blocks while the
 * descriptor cannot take more (a slow reader of a pipe). Returns 0, or -1 with errno set
 * (EPIPE when the reader went away: SIGPIPE must be ignored). Any thread. */
int rs_output_write(rs_output_t *o, const char *buf, size_t len);

#endif
