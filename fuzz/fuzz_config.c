/*
 * Fuzz harness for the configuration loader's validation: the input is the text of a
 * configuration file, loaded with rs_config_load_string() (libconfig's parser, then every
 * check of config.c) as if it were <tmp>/redstream.conf in a private directory that holds
 * only that file, so relative paths (password_file, ca_file) name nothing else.
 *
 * An input containing "@include" is skipped: libconfig's scanner recognises the directive
 * only spelled exactly so, and an include reads whatever file it names (/dev/stdin would
 * block, a large file would be read whole); the product reads includes on purpose, and
 * tests/unit/test_config.c covers them.
 *
 * Beyond the sanitizers it checks:
 *   - the file loader agrees: the same text written to <tmp>/redstream.conf and loaded with
 *     rs_config_load() gives the same verdict, the same message, or an equal configuration
 *     (text with a NUL byte is refused by the string loader with a message naming it);
 *   - a refusal has a message, and the message starts with the file's name;
 *   - an accepted configuration keeps the documented invariants (ranges, at least one stream,
 *     unique non-empty names, exec's absolute program, http's URL and method, a non-empty
 *     key_field exactly when ordering is "key", retry backoff below claim_idle_ms, liveness
 *     at least twice block_ms), compares equal to itself, deep copies each stream equal,
 *     prints its summary, and every stream name can be written into an entry's JSON
 *     (handlers would otherwise fail every entry of the stream).
 */

#include <ftw.h>
#include <limits.h>
#include <stdbool.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "entry.h"
#include "fuzz.h"

static char dir[PATH_MAX];  /* the private directory, made once */
static char path[PATH_MAX]; /* dir/redstream.conf */
static FILE *devnull;       /* where the summary is printed */

static int remove_entry(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static void remove_dir(void)
{
    nftw(dir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    /* The environment must not change the outcome. */
    unsetenv(RS_ENV_REDIS_PASSWORD);
    unsetenv("CREDENTIALS_DIRECTORY");
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof(dir), "%s/rs_fuzz_config.XXXXXX",
             tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp");
    FUZZ_CHECK(mkdtemp(dir) != NULL, "cannot make a directory in %s", dir);
    atexit(remove_dir);
    int n = snprintf(path, sizeof(path), "%s/redstream.conf", dir);
    FUZZ_CHECK(n > 0 && (size_t)n < sizeof(path), "TMPDIR is too long");
    devnull = fopen("/dev/null", "we");
    FUZZ_CHECK(devnull != NULL, "cannot open /dev/null");
    return 0;
}

static void check_same(const rs_config_t *a, const rs_config_t *b)
{
    char keys[512];
    FUZZ_CHECK(rs_config_restart_keys(a, b, keys, sizeof(keys)) == 0, "differ in %s", keys);
    FUZZ_CHECK(a->nstreams == b->nstreams, "%zu and %zu streams", a->nstreams, b->nstreams);
    for (size_t i = 0; i < a->nstreams; i++)
        FUZZ_CHECK(rs_stream_config_equal(&a->streams[i], &b->streams[i]), "stream %zu differs", i);
    FUZZ_CHECK(strcmp(a->producer.stream, b->producer.stream) == 0 &&
                   strcmp(a->producer.type, b->producer.type) == 0 &&
                   a->producer.interval_ms == b->producer.interval_ms &&
                   a->log.level == b->log.level,
               "producer or log settings differ");
}

static void check_stream(const rs_stream_config_t *sc, size_t i, const rs_config_t *cfg)
{
    FUZZ_CHECK(sc->name != NULL && sc->name[0] != '\0', "stream %zu has no name", i);
    for (size_t j = 0; j < i; j++)
        FUZZ_CHECK(strcmp(cfg->streams[j].name, sc->name) != 0, "stream '%s' twice", sc->name);
    switch (sc->handler) {
    case RS_HANDLER_LOG:
    case RS_HANDLER_DISCARD:
        break;
    case RS_HANDLER_EXEC:
        FUZZ_CHECK(sc->exec.command.n >= 1 && sc->exec.command.items[0][0] == '/' &&
                       sc->exec.command.items[sc->exec.command.n] == NULL,
                   "stream '%s': exec command not an absolute argv", sc->name);
        FUZZ_CHECK(sc->exec.timeout_ms >= 1 && sc->exec.timeout_ms <= 86400000, "exec timeout");
        break;
    case RS_HANDLER_HTTP:
        FUZZ_CHECK(sc->http.url != NULL && sc->http.method != NULL, "http without url/method");
        FUZZ_CHECK(strcmp(sc->http.method, "POST") == 0 || strcmp(sc->http.method, "PUT") == 0 ||
                       strcmp(sc->http.method, "PATCH") == 0,
                   "http method '%s'", sc->http.method);
        FUZZ_CHECK(sc->http.timeout_ms >= 1 && sc->http.timeout_ms <= 3600000, "http timeout");
        break;
    default:
        FUZZ_CHECK(false, "stream '%s': handler kind %d", sc->name, (int)sc->handler);
    }
    FUZZ_CHECK(sc->ordering == RS_ORDERING_NONE || sc->ordering == RS_ORDERING_STREAM ||
                   sc->ordering == RS_ORDERING_KEY,
               "stream '%s': ordering %d", sc->name, (int)sc->ordering);
    FUZZ_CHECK((sc->ordering == RS_ORDERING_KEY) ==
                   (sc->key_field != NULL && sc->key_field[0] != '\0'),
               "stream '%s': ordering %s with key_field %s", sc->name,
               rs_ordering_name(sc->ordering), sc->key_field != NULL ? sc->key_field : "(none)");
    rs_stream_config_t *copy = rs_stream_config_dup(sc);
    FUZZ_CHECK(copy != NULL && rs_stream_config_equal(sc, copy), "stream %zu's copy differs", i);
    rs_stream_config_free(copy);

    /* What every handler does with each entry of the stream. */
    rs_field_t field = {"message", 7, "x", 1};
    rs_entry_t *e = rs_entry_new(NULL, sc->name, "1-0", 1, &field, 1);
    FUZZ_CHECK(e != NULL, "out of memory");
    size_t len;
    char *json = rs_entry_to_json(e, &len);
    FUZZ_CHECK(json != NULL, "stream name '%s' cannot be written into an entry's JSON", sc->name);
    free(json);
    rs_entry_free(e);
}

static void check_accepted(const rs_config_t *cfg)
{
    FUZZ_CHECK(cfg->path != NULL && strcmp(cfg->path, path) == 0, "path '%s'", cfg->path);
    FUZZ_CHECK(cfg->redis.host != NULL && cfg->redis.host[0] != '\0', "empty redis.host");
    FUZZ_CHECK(cfg->redis.port >= 1 && cfg->redis.port <= 65535, "redis.port");
    FUZZ_CHECK(cfg->redis.db >= 0 && cfg->redis.db <= 1000000, "redis.db");
    FUZZ_CHECK(cfg->group.read_count >= 1 && cfg->group.block_ms >= 1, "group counts");
    FUZZ_CHECK(cfg->group.retry_base_ms <= cfg->group.retry_max_ms &&
                   cfg->group.retry_max_ms < cfg->group.claim_idle_ms,
               "retry backoff %d..%d, claim %d", cfg->group.retry_base_ms, cfg->group.retry_max_ms,
               cfg->group.claim_idle_ms);
    FUZZ_CHECK(cfg->group.dead_letter_suffix[0] != '\0', "empty dead_letter_suffix");
    FUZZ_CHECK(cfg->workers.threads >= 1 && cfg->workers.threads <= 1024, "workers.threads");
    FUZZ_CHECK(cfg->workers.queue_capacity >= 1, "workers.queue_capacity");
    FUZZ_CHECK(cfg->health.port >= 1 && cfg->health.port <= 65535, "health.port");
    FUZZ_CHECK((long long)cfg->health.liveness_timeout_ms >= 2LL * cfg->group.block_ms,
               "liveness %d, block %d", cfg->health.liveness_timeout_ms, cfg->group.block_ms);
    FUZZ_CHECK(cfg->tracing.sample_ratio >= 0.0 && cfg->tracing.sample_ratio <= 1.0,
               "sample ratio");
    FUZZ_CHECK(cfg->producer.interval_ms >= 0, "producer.interval_ms");
    FUZZ_CHECK(cfg->nstreams >= 1 && cfg->streams != NULL, "no streams");
    for (size_t i = 0; i < cfg->nstreams; i++)
        check_stream(&cfg->streams[i], i, cfg);

    char keys[512];
    FUZZ_CHECK(rs_config_restart_keys(cfg, cfg, keys, sizeof(keys)) == 0, "differs from itself");
    rs_config_print_summary(cfg, devnull);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    if (memmem(data, size, "@include", 8) != NULL)
        return 0;
    bool nul = memchr(data, '\0', size) != NULL;

    /* The file for the file loader is written first, so that both loaders find the same
     * files: the text may name its own file as password_file or ca_file. */
    if (!nul) {
        FILE *fp = fopen(path, "we");
        FUZZ_CHECK(fp != NULL && fwrite(data, 1, size, fp) == size && fclose(fp) == 0,
                   "cannot write %s", path);
    }

    char err[1024] = "";
    rs_config_t *cfg = rs_config_load_string(text, size, path, err, sizeof(err));
    if (cfg == NULL) {
        FUZZ_CHECK(err[0] != '\0', "refused without a message");
        FUZZ_CHECK(strncmp(err, path, strlen(path)) == 0, "message without the file: %s", err);
    } else {
        check_accepted(cfg);
    }
    if (nul) {
        FUZZ_CHECK(cfg == NULL && strstr(err, "contains a NUL byte") != NULL,
                   "NUL byte not refused: %s", err);
        return 0;
    }

    char ferr[1024] = "";
    rs_config_t *fcfg = rs_config_load(path, ferr, sizeof(ferr));
    FUZZ_CHECK((cfg == NULL) == (fcfg == NULL), "string loader %s, file loader %s: %s%s",
               cfg != NULL ? "accepts" : "refuses", fcfg != NULL ? "accepts" : "refuses", err,
               ferr);
    if (cfg == NULL)
        FUZZ_CHECK(strcmp(err, ferr) == 0, "messages differ:\n  string: %s\n  file:   %s", err,
                   ferr);
    else
        check_same(cfg, fcfg);
    rs_config_free(fcfg);
    rs_config_free(cfg);
    return 0;
}
