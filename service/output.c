/*
 * Record output shared by threads.
 *
 * DESIGN: one mutex per output serializes whole records; inside it, write(2) is called until
 * every byte is out (a pipe takes at most 64 KiB per call, and a 1 MiB entry must not be
 * split by another worker's line). The mutex is the output's own, not stdio's FILE lock:
 * a worker blocked here on a reader that stopped reading must not hold a lock that
 * exit(3), or ThreadSanitizer's _exit(), needs in order to flush stdio.
 */

#include "output.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

struct rs_output {
    int fd;
    pthread_mutex_t lock; /* held for a whole record */
};

rs_output_t *rs_output_new(int fd)
{
    rs_output_t *o = calloc(1, sizeof(*o));
    if (o == NULL)
        return NULL;
    o->fd = fd;
    pthread_mutex_init(&o->lock, NULL);
    return o;
}

void rs_output_free(rs_output_t *o)
{
    if (o == NULL)
        return;
    pthread_mutex_destroy(&o->lock);
    free(o);
}

int rs_output_write(rs_output_t *o, const char *buf, size_t len)
{
    int rc = 0;
    pthread_mutex_lock(&o->lock);
    while (len > 0) {
        ssize_t n = write(o->fd, buf, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = -1;
            break;
        }
        buf += n;
        len -= (size_t)n; /* 0 < n <= len */
    }
    int saved = errno;
    pthread_mutex_unlock(&o->lock);
    errno = saved;
    return rc;
}
