/*
 * The replay driver: runs a harness's LLVMFuzzerTestOneInput() once on every file of the
 * directories (or on the files) named on the command line, in name order, and exits 0 when
 * every input passed. Linked with each harness in the normal, ASan and TSan builds (gcc, no
 * libFuzzer), so ctest replays the seed corpus and its regression cases in all three; a
 * crash or a broken invariant aborts the process with the harness's message, after the name
 * of the input was printed.
 *
 * DESIGN: each input is copied into an allocation of exactly its size, so AddressSanitizer
 * catches a read past its end as libFuzzer's own buffer would. A directory with no input
 * fails: a wrong path must not pass as an empty corpus.
 */

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

/* A harness needs no initialisation unless it defines this (libFuzzer's convention). */
__attribute__((weak)) int LLVMFuzzerInitialize(int *argc, char ***argv);

/* Reads all of `path` into a new allocation of exactly its size (at least one byte, so an
 * empty input is a valid pointer too). Returns it with *size set, or NULL with a message
 * printed. */
static uint8_t *read_input(const char *path, size_t *size)
{
    FILE *fp = fopen(path, "rb");
    if (fp == NULL) {
        fprintf(stderr, "replay: cannot open %s: %s\n", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fileno(fp), &st) != 0 || !S_ISREG(st.st_mode)) {
        fprintf(stderr, "replay: %s is not a regular file\n", path);
        fclose(fp);
        return NULL;
    }
    size_t n = (size_t)st.st_size; /* a regular file's size is not negative */
    uint8_t *buf = malloc(n > 0 ? n : 1);
    if (buf == NULL || fread(buf, 1, n, fp) != n) {
        fprintf(stderr, "replay: cannot read %s\n", path);
        free(buf);
        fclose(fp);
        return NULL;
    }
    fclose(fp);
    *size = n;
    return buf;
}

static int run_file(const char *path)
{
    size_t size = 0;
    uint8_t *data = read_input(path, &size);
    if (data == NULL)
        return -1;
    fprintf(stderr, "replay: %s (%zu bytes)\n", path, size);
    LLVMFuzzerTestOneInput(data, size);
    free(data);
    return 0;
}

static int skip_hidden(const struct dirent *de)
{
    return de->d_name[0] != '.';
}

/* Runs every file of `dir` in name order. Returns how many ran, or -1. */
static long run_dir(const char *dir)
{
    struct dirent **names = NULL;
    int n = scandir(dir, &names, skip_hidden, alphasort);
    if (n < 0) {
        fprintf(stderr, "replay: cannot list %s: %s\n", dir, strerror(errno));
        return -1;
    }
    long ran = 0;
    for (int i = 0; i < n; i++) {
        char path[4096];
        if (ran >= 0) {
            int w = snprintf(path, sizeof(path), "%s/%s", dir, names[i]->d_name);
            if (w < 0 || (size_t)w >= sizeof(path)) {
                fprintf(stderr, "replay: path too long in %s\n", dir);
                ran = -1;
            } else {
                ran = run_file(path) == 0 ? ran + 1 : -1;
            }
        }
        free(names[i]);
    }
    free(names);
    return ran;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s DIR-OR-FILE...\n", argv[0]);
        return 64;
    }
    if (LLVMFuzzerInitialize != NULL)
        LLVMFuzzerInitialize(&argc, &argv);
    long total = 0;
    for (int i = 1; i < argc; i++) {
        struct stat st;
        long ran;
        if (stat(argv[i], &st) == 0 && S_ISDIR(st.st_mode))
            ran = run_dir(argv[i]);
        else
            ran = run_file(argv[i]) == 0 ? 1 : -1;
        if (ran <= 0) {
            fprintf(stderr, "replay: %s: %s\n", argv[i], ran == 0 ? "no inputs" : "failed");
            return 1;
        }
        total += ran;
    }
    fprintf(stderr, "replay: %ld inputs passed\n", total);
    return 0;
}
