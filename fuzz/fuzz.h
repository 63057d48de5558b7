#ifndef RS_FUZZ_H
#define RS_FUZZ_H

/*
 * What every harness in fuzz/ shares: the libFuzzer entry points, declared here so the
 * harnesses also compile with gcc's -Wmissing-prototypes when they are linked with
 * replay_main.c instead of libFuzzer, and the check that turns a broken invariant into a
 * crash both drivers report.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Runs one input; returns 0 (libFuzzer reserves other values). Called once per input, on the
 * driver's thread; `data` is only valid during the call. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Optional one-time set-up before the first input; returns 0. A harness that defines it is
 * given the driver's argc/argv (libFuzzer's flags or the replay driver's paths). */
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* Aborts with a message when `cond` is false: the fuzzer saves the input as a crash and the
 * replay driver fails. Used for the invariants each harness checks beyond the sanitizers'. */
#define FUZZ_CHECK(cond, ...)                                                                      \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: invariant failed: %s: ", __FILE__, __LINE__, #cond);           \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* True when no aggregate header in the RESP bytes announces more than `max` elements. hiredis
 * allocates an aggregate's element pointers as soon as it reads "*N", before the elements
 * arrive, so a huge count is a memory exhaustion of hiredis, not of the code under test: the
 * harnesses that feed RESP to hiredis skip such inputs. Checks every such byte, not only those
 * hiredis would read as a type: a little too strict, never lax. */
static inline bool fuzz_resp_counts_bounded(const uint8_t *data, size_t size,
                                            unsigned long long max)
{
    for (size_t i = 0; i < size; i++) {
        if (data[i] == '\0' || strchr("*%~>|", data[i]) == NULL)
            continue;
        size_t j = i + 1;
        if (j < size && data[j] == '-')
            j++;
        unsigned long long n = 0;
        for (; j < size && data[j] >= '0' && data[j] <= '9'; j++) {
            n = n * 10 + (unsigned)(data[j] - '0');
            if (n > max)
                return false;
        }
    }
    return true;
}

#endif
