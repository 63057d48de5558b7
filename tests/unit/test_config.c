/*
 * Unit tests for config.c: the built-in defaults, the example configuration, every rejection
 * with its "FILE:LINE: SETTING: problem" message, the password sources, --redis-addr parsing
 * and the --check-config summary.
 *
 * Each test runs in a fresh temporary directory (the fixture) that teardown removes, and
 * REDSTREAM_REDIS_PASSWORD is cleared before each test so a developer's environment cannot
 * change the outcome.
 */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"

#define EXAMPLE_CONFIG RS_SOURCE_DIR "/config/redstream.conf"
#define ARRAY_LEN(a)   (sizeof(a) / sizeof((a)[0]))

typedef struct {
    char dir[PATH_MAX];
} fixture_t;

static int fixture_setup(void **state)
{
    fixture_t *fx = calloc(1, sizeof(*fx));
    const char *tmp = getenv("TMPDIR");

    if (fx == NULL)
        return -1;
    snprintf(fx->dir, sizeof(fx->dir), "%s/rs_test_config.XXXXXX",
             tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp");
    if (mkdtemp(fx->dir) == NULL) {
        free(fx);
        return -1;
    }
    unsetenv(RS_ENV_REDIS_PASSWORD);
    *state = fx;
    return 0;
}

/* Removes the fixture directory; tests create only plain files and one level of
 * subdirectories in it. */
static void remove_tree(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;

    if (d == NULL)
        return;
    while ((de = readdir(d)) != NULL) {
        char path[PATH_MAX];
        struct stat st;
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
        if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode))
            remove_tree(path);
        else
            unlink(path);
    }
    closedir(d);
    rmdir(dir);
}

static int fixture_teardown(void **state)
{
    fixture_t *fx = *state;

    unsetenv(RS_ENV_REDIS_PASSWORD);
    unsetenv("CREDENTIALS_DIRECTORY");
    remove_tree(fx->dir);
    free(fx);
    return 0;
}

/* Writes `len` bytes to a new uniquely named file in `dir` with `mode`; returns its path
 * (caller frees). */
static char *write_temp(const char *dir, const void *data, size_t len, mode_t mode)
{
    char *path = NULL;

    if (asprintf(&path, "%s/cfg-XXXXXX", dir) < 0)
        fail_msg("out of memory");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, len), (ssize_t)len);
    assert_int_equal(fchmod(fd, mode), 0);
    close(fd);
    return path;
}

static char *write_config(const char *dir, const char *text)
{
    return write_temp(dir, text, strlen(text), 0644);
}

/* Writes `text` to dir/name with `mode`; returns the path (caller frees). */
static char *write_named(const char *dir, const char *name, const char *text, mode_t mode)
{
    char *path = NULL;

    if (asprintf(&path, "%s/%s", dir, name) < 0)
        fail_msg("out of memory");
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    assert_int_equal(fchmod(fd, mode), 0); /* explicit, so the umask plays no part */
    close(fd);
    return path;
}

/* Fails the test unless `haystack` contains `needle`, showing both. */
static void assert_contains(const char *haystack, const char *needle)
{
    if (strstr(haystack, needle) == NULL)
        fail_msg("expected \"%s\" in \"%s\"", needle, haystack);
}

/* Loads `text` from a temp file expecting a rejection that names the file, `line` (0: no
 * line check), `setting` (NULL: none) and `phrase`. */
static void expect_rejected(const char *dir, const char *text, int line, const char *setting,
                            const char *phrase)
{
    char err[1024] = "";
    char *path = write_config(dir, text);
    rs_config_t *cfg = rs_config_load(path, err, sizeof(err));

    if (cfg != NULL)
        fail_msg("accepted:\n%s", text);
    assert_contains(err, path);
    if (line > 0) {
        char where[PATH_MAX + 32];
        snprintf(where, sizeof(where), "%s:%d: ", path, line);
        assert_contains(err, where);
    }
    if (setting != NULL) {
        char named[128];
        snprintf(named, sizeof(named), ": %s: ", setting);
        assert_contains(err, named);
    }
    assert_contains(err, phrase);
    assert_null(strchr(err, '\n')); /* one line */
    unlink(path);
    free(path);
}

/* Loads `text` from a temp file expecting success; caller frees the result. */
static rs_config_t *expect_loaded(const char *dir, const char *text)
{
    char err[1024] = "";
    char *path = write_config(dir, text);
    rs_config_t *cfg = rs_config_load(path, err, sizeof(err));

    if (cfg == NULL)
        fail_msg("rejected: %s\n%s", err, text);
    unlink(path);
    free(path);
    return cfg;
}

/* Compares the settings that the example file and the defaults must agree on. */
static void assert_same_settings(const rs_config_t *a, const rs_config_t *b)
{
    assert_string_equal(a->redis.host, b->redis.host);
    assert_int_equal(a->redis.port, b->redis.port);
    assert_string_equal(a->redis.password, b->redis.password);
    assert_int_equal(a->redis.password_source, b->redis.password_source);
    assert_true(a->redis.password_file == NULL && b->redis.password_file == NULL);
    assert_true(a->redis.username == NULL && b->redis.username == NULL);
    assert_int_equal(a->redis.db, b->redis.db);
    assert_int_equal(a->redis.connect_timeout_ms, b->redis.connect_timeout_ms);
    assert_string_equal(a->group.name, b->group.name);
    assert_string_equal(a->group.consumer, b->group.consumer);
    assert_string_equal(a->group.start_id, b->group.start_id);
    assert_int_equal(a->group.read_count, b->group.read_count);
    assert_int_equal(a->group.block_ms, b->group.block_ms);
    assert_int_equal(a->group.max_deliveries, b->group.max_deliveries);
    assert_int_equal(a->group.claim_idle_ms, b->group.claim_idle_ms);
    assert_int_equal(a->group.retry_base_ms, b->group.retry_base_ms);
    assert_int_equal(a->group.retry_max_ms, b->group.retry_max_ms);
    assert_int_equal(a->group.idle_consumer_timeout_ms, b->group.idle_consumer_timeout_ms);
    assert_string_equal(a->group.dead_letter_suffix, b->group.dead_letter_suffix);
    assert_int_equal(a->workers.threads, b->workers.threads);
    assert_int_equal(a->workers.queue_capacity, b->workers.queue_capacity);
    assert_int_equal(a->workers.shutdown_timeout_ms, b->workers.shutdown_timeout_ms);
    assert_int_equal(a->nstreams, b->nstreams);
    for (size_t i = 0; i < a->nstreams; i++) {
        assert_string_equal(a->streams[i].name, b->streams[i].name);
        assert_int_equal(a->streams[i].handler, b->streams[i].handler);
        assert_int_equal(a->streams[i].ordering, b->streams[i].ordering);
        assert_true(a->streams[i].key_field == NULL && b->streams[i].key_field == NULL);
    }
    assert_string_equal(a->health.address, b->health.address);
    assert_int_equal(a->health.port, b->health.port);
    assert_int_equal(a->health.liveness_timeout_ms, b->health.liveness_timeout_ms);
    assert_int_equal(a->tracing.enabled, b->tracing.enabled);
    assert_string_equal(a->tracing.endpoint, b->tracing.endpoint);
    assert_string_equal(a->tracing.service_name, b->tracing.service_name);
    assert_true(a->tracing.sample_ratio == b->tracing.sample_ratio);
    assert_string_equal(a->producer.stream, b->producer.stream);
    assert_string_equal(a->producer.type, b->producer.type);
    assert_int_equal(a->producer.interval_ms, b->producer.interval_ms);
    assert_int_equal(a->log.level, b->log.level);
}

/* ------------------------------------------------------------------------------------------ */

static void config_defaults_match_spec(void **state)
{
    (void)state;
    rs_config_t *cfg = rs_config_new_defaults(NULL, 0);
    char host[256] = {0};

    assert_non_null(cfg);
    assert_null(cfg->path);
    assert_string_equal(cfg->redis.host, "127.0.0.1");
    assert_int_equal(cfg->redis.port, 6380);
    assert_string_equal(cfg->redis.password, "redis123");
    assert_int_equal(cfg->redis.password_source, RS_SECRET_DEFAULT);
    assert_null(cfg->redis.password_file);
    assert_null(cfg->redis.username);
    assert_int_equal(cfg->redis.db, 0);
    assert_int_equal(cfg->redis.connect_timeout_ms, 2000);
    assert_string_equal(cfg->group.name, "workers");
    assert_int_equal(gethostname(host, sizeof(host) - 1), 0);
    assert_string_equal(cfg->group.consumer, host);
    assert_string_equal(cfg->group.start_id, "0");
    assert_int_equal(cfg->group.read_count, 1000);
    assert_int_equal(cfg->group.block_ms, 5000);
    assert_int_equal(cfg->group.max_deliveries, 10);
    assert_int_equal(cfg->group.claim_idle_ms, 60000);
    assert_int_equal(cfg->group.retry_base_ms, 1000);
    assert_int_equal(cfg->group.retry_max_ms, 30000);
    assert_int_equal(cfg->group.idle_consumer_timeout_ms, 86400000);
    assert_string_equal(cfg->group.dead_letter_suffix, ":dlq");
    assert_int_equal(cfg->workers.threads, 8);
    assert_int_equal(cfg->workers.queue_capacity, 1024);
    assert_int_equal(cfg->workers.shutdown_timeout_ms, 10000);
    assert_int_equal(cfg->nstreams, 3);
    static const char *const names[] = {"events", "logs", "notifications"};
    for (size_t i = 0; i < ARRAY_LEN(names); i++) {
        assert_string_equal(cfg->streams[i].name, names[i]);
        assert_int_equal(cfg->streams[i].handler, RS_HANDLER_LOG);
        assert_int_equal(cfg->streams[i].line, 0);
        assert_int_equal(cfg->streams[i].ordering, RS_ORDERING_NONE);
        assert_null(cfg->streams[i].key_field);
    }
    assert_string_equal(cfg->health.address, "127.0.0.1");
    assert_int_equal(cfg->health.port, 8083);
    assert_int_equal(cfg->health.liveness_timeout_ms, 30000);
    assert_false(cfg->tracing.enabled);
    assert_string_equal(cfg->tracing.endpoint, "http://127.0.0.1:4318/v1/traces");
    assert_string_equal(cfg->tracing.service_name, "redstream");
    assert_true(cfg->tracing.sample_ratio == 1.0);
    assert_string_equal(cfg->producer.stream, "events");
    assert_string_equal(cfg->producer.type, "test");
    assert_int_equal(cfg->producer.interval_ms, 1000);
    assert_int_equal(cfg->log.level, RS_LOG_INFO);
    rs_config_free(cfg);
}

static void config_example_matches_defaults(void **state)
{
    (void)state;
    char err[1024] = "";
    rs_config_t *loaded = rs_config_load(EXAMPLE_CONFIG, err, sizeof(err));
    if (loaded == NULL)
        fail_msg("%s", err);
    rs_config_t *defaults = rs_config_new_defaults(NULL, 0);
    assert_non_null(defaults);

    assert_string_equal(loaded->path, EXAMPLE_CONFIG);
    assert_same_settings(loaded, defaults);
    /* The example leaves password commented out, so the built-in default applies. */
    assert_int_equal(loaded->redis.password_source, RS_SECRET_DEFAULT);
    /* Its streams come from the file, with their lines. */
    for (size_t i = 0; i < loaded->nstreams; i++)
        assert_true(loaded->streams[i].line > 0);
    rs_config_free(loaded);
    rs_config_free(defaults);
}

/* Every rejection: the message names the file, the line and the setting. */
static void config_rejects_bad_settings(void **state)
{
    const fixture_t *fx = *state;
    static const struct {
        const char *text;
        int line;
        const char *setting;
        const char *phrase;
    } cases[] = {
        /* a syntax error, reported at libconfig's line */
        {"# comment\nredis = {\n    port = ;\n};\n", 3, NULL, "syntax error"},
        /* an unclosed group: libconfig reports the end of the file */
        {"redis = {\n  port = 1;\n", 3, NULL, "syntax error"},
        /* an unterminated string */
        {"group = { name = \"unterminated; };\nx = 1;\n", 3, NULL, "syntax error"},
        /* prose instead of settings */
        {"\n\nthis is not a config\n", 3, NULL, "syntax error"},
        /* the same section twice; libconfig's own text follows "syntax error: " */
        {"log = { level = \"info\"; };\nlog = { level = \"warn\"; };\n", 2, NULL,
         "syntax error: duplicate setting name"},

        /* wrong types */
        {"redis = {\n  port = \"6380\";\n};\n", 2, "redis.port",
         "must be an integer, got a string"},
        {"group = { block_ms = 5000.0; };\n", 1, "group.block_ms",
         "must be an integer, got a floating-point number"},
        {"workers = { threads = true; };\n", 1, "workers.threads",
         "must be an integer, got a boolean"},
        {"workers = { queue_capacity = [ 1 ]; };\n", 1, "workers.queue_capacity",
         "must be an integer, got an array"},
        {"redis = { host = 127; };\n", 1, "redis.host", "must be a string, got an integer"},
        {"redis = { password = 123; };\n", 1, "redis.password", "must be a string, got an integer"},
        {"group = { start_id = 0; };\n", 1, "group.start_id", "must be a string, got an integer"},
        {"tracing = { enabled = \"yes\"; };\n", 1, "tracing.enabled",
         "must be a boolean (true or false), got a string"},
        {"tracing = { enabled = 1; };\n", 1, "tracing.enabled",
         "must be a boolean (true or false), got an integer"},
        {"tracing = { sample_ratio = \"0.5\"; };\n", 1, "tracing.sample_ratio",
         "must be a number between 0 and 1, got a string"},
        {"log = { level = 3; };\n", 1, "log.level", "must be a string, got an integer"},

        /* a section that is not a group */
        {"redis = 5;\n", 1, "redis", "must be a group ({ key = value; ... }), got an integer"},
        {"\nworkers = ( 1 );\n", 2, "workers",
         "must be a group ({ key = value; ... }), got a list"},

        /* unknown keys, with a suggestion when one is close */
        {"\nredsi = { port = 1; };\n", 2, "redsi",
         "unknown setting (misspelled?), did you mean 'redis'?"},
        {"metrics = { port = 1; };\n", 1, "metrics", "unknown setting (misspelled?)"},
        {"group = {\n  name = \"g\";\n  read_cont = 5;\n};\n", 3, "group.read_cont",
         "unknown setting (misspelled?), did you mean 'read_count'?"},
        {"group = { raed_count = 5; };\n", 1, "group.raed_count", "did you mean 'read_count'?"},
        {"workers = { banana = 1; };\n", 1, "workers.banana", "unknown setting (misspelled?)"},
        {"redis = { password-file = \"x\"; };\n", 1, "redis.password-file",
         "did you mean 'password_file'?"},
        {"streams = (\n  { name = \"a\"; },\n  { name = \"b\"; hanlder = \"log\"; }\n);\n", 3,
         "streams[1].hanlder", "unknown setting (misspelled?), did you mean 'handler'?"},
        {"streams = ( { name = \"a\"; url = \"http://x\"; } );\n", 1, "streams[0].url",
         "unknown setting (misspelled?)"},

        /* streams must be a non-empty list of groups */
        {"streams = { name = \"a\"; };\n", 1, "streams", "must be a list of groups"},
        {"streams = [ \"events\" ];\n", 1, "streams", "must be a list of groups"},
        {"streams = ( \"events\" );\n", 1, "streams[0]", "must be a group"},
        {"streams = ( );\n", 1, "streams", "must list at least one stream"},

        /* a stream without a name, reported at the entry's line */
        {"streams = (\n  { name = \"a\"; },\n  { handler = \"log\"; }\n);\n", 3, "streams[1].name",
         "required setting is missing"},
        {"streams = ( { name = \"\"; } );\n", 1, "streams[0].name", "must not be empty"},
        {"streams = ( { name = 5; } );\n", 1, "streams[0].name",
         "must be a string, got an integer"},
        /* a name that is not UTF-8 (Latin-1 "café") could not be written into entries' JSON */
        {"streams = ( { name = \"caf\\xe9\"; } );\n", 1, "streams[0].name", "must be valid UTF-8"},

        /* a duplicate stream names the first occurrence */
        {"streams = (\n  { name = \"events\"; },\n  { name = \"logs\"; },\n"
         "  { name = \"events\"; }\n);\n",
         4, "streams[2].name", "duplicate stream 'events' (first at line 2)"},

        /* handlers */
        {"streams = ( { name = \"a\"; handler = \"foo\"; } );\n", 1, "streams[0].handler",
         "unknown handler 'foo' (known: log, discard, exec, http)"},
        {"streams = ( { name = \"a\"; handler = 1; } );\n", 1, "streams[0].handler",
         "must be a string, got an integer"},

        /* ordering: one of three words, exactly as written */
        {"streams = ( { name = \"a\";\n  ordering = \"keys\"; } );\n", 2, "streams[0].ordering",
         "unknown ordering 'keys' (known: none, stream, key)"},
        {"streams = ( { name = \"a\"; ordering = \"KEY\"; key_field = \"k\"; } );\n", 1,
         "streams[0].ordering", "unknown ordering 'KEY'"},
        {"streams = ( { name = \"a\"; ordering = \"\"; } );\n", 1, "streams[0].ordering",
         "unknown ordering ''"},
        {"streams = ( { name = \"a\"; ordering = 1; } );\n", 1, "streams[0].ordering",
         "must be a string, got an integer"},
        {"streams = ( { name = \"a\"; ordering = true; } );\n", 1, "streams[0].ordering",
         "must be a string, got a boolean"},
        /* ordering = "key" needs key_field, reported at the ordering (any handler) */
        {"streams = (\n  { name = \"a\"; },\n  { name = \"b\";\n    ordering = \"key\"; }\n);\n", 4,
         "streams[1].ordering", "key_field is required when ordering = \"key\""},
        {"streams = ( { name = \"a\"; handler = \"exec\"; command = [ \"/x\" ];\n"
         "  ordering = \"key\"; } );\n",
         2, "streams[0].ordering", "key_field is required when ordering = \"key\""},
        /* key_field with any other ordering would be ignored: refused, at the key_field */
        {"streams = ( { name = \"a\"; ordering = \"stream\";\n  key_field = \"user\"; } );\n", 2,
         "streams[0].key_field",
         "applies only when ordering = \"key\", and ordering is \"stream\"; set ordering = "
         "\"key\" or remove key_field"},
        {"streams = ( { name = \"a\"; ordering = \"none\"; key_field = \"user\"; } );\n", 1,
         "streams[0].key_field", "and ordering is \"none\"; set"},
        {"streams = ( { name = \"a\";\n  key_field = \"user\"; } );\n", 2, "streams[0].key_field",
         "and ordering is \"none\" (the default); set"},
        /* key_field must be a non-empty string */
        {"streams = ( { name = \"a\"; ordering = \"key\"; key_field = \"\"; } );\n", 1,
         "streams[0].key_field", "must not be empty"},
        {"streams = ( { name = \"a\"; ordering = \"key\"; key_field = 7; } );\n", 1,
         "streams[0].key_field", "must be a string, got an integer"},
        {"streams = ( { name = \"a\"; ordering = \"key\"; key_field = [ \"a\", \"b\" ]; } );\n", 1,
         "streams[0].key_field", "must be a string, got an array"},
        /* misspellings are suggested, also next to a handler's own keys */
        {"streams = ( { name = \"a\"; orderng = \"key\"; } );\n", 1, "streams[0].orderng",
         "did you mean 'ordering'?"},
        {"streams = ( { name = \"a\"; handler = \"http\"; url = \"http://h/\";\n"
         "  ordering = \"key\"; key_feild = \"user\"; } );\n",
         2, "streams[0].key_feild", "did you mean 'key_field'?"},
        /* ordering is per stream entry, not a section */
        {"workers = { ordering = \"key\"; };\n", 1, "workers.ordering",
         "unknown setting (misspelled?)"},

        /* exec: command is required, a non-empty list of strings, and runs an absolute path */
        {"streams = (\n  { name = \"a\";\n    handler = \"exec\"; }\n);\n", 2, "streams[0].command",
         "required setting is missing"},
        {"streams = ( { name = \"a\"; handler = \"exec\";\n  command = [ ]; } );\n", 2,
         "streams[0].command", "must not be empty"},
        {"streams = ( { name = \"a\"; handler = \"exec\"; command = \"/bin/true\"; } );\n", 1,
         "streams[0].command", "must be a list of strings like [\"a\", \"b\"], got a string"},
        {"streams = ( { name = \"a\"; handler = \"exec\";\n  command = ( \"/bin/x\", 5 ); } );\n",
         2, "streams[0].command[1]", "must be a string, got an integer"},
        {"streams = ( { name = \"a\"; handler = \"exec\";\n  command = [ \"handle\", \"-v\" ]; } "
         ");\n",
         2, "streams[0].command[0]",
         "must be an absolute path (the program is run directly, "
         "without a shell or a PATH search), got 'handle'"},
        {"streams = ( { name = \"a\"; handler = \"exec\"; command = [ \"\" ]; } );\n", 1,
         "streams[0].command[0]", "must be an absolute path"},
        {"streams = ( { name = \"a\"; handler = \"exec\"; command = [ \"/x\" ];\n"
         "  timeout_ms = 0; } );\n",
         2, "streams[0].timeout_ms", "must be between 1 and 86400000, got 0"},
        {"streams = ( { name = \"a\"; handler = \"exec\"; command = [ \"/x\" ];\n"
         "  timeout_ms = 86400001; } );\n",
         2, "streams[0].timeout_ms", "must be between 1 and 86400000, got 86400001"},
        {"streams = ( { name = \"a\"; handler = \"exec\"; command = [ \"/x\" ];\n"
         "  timeout_ms = \"5s\"; } );\n",
         2, "streams[0].timeout_ms", "must be an integer, got a string"},
        /* unknown keys, also those of another kind, with suggestions from the kind's own */
        {"streams = ( { name = \"a\"; handler = \"exec\"; command = [ \"/x\" ];\n"
         "  comand = [ \"/x\" ]; } );\n",
         2, "streams[0].comand", "did you mean 'command'?"},
        {"streams = ( { name = \"a\"; handler = \"exec\"; command = [ \"/x\" ];\n"
         "  url = \"http://h/\"; } );\n",
         2, "streams[0].url", "unknown setting (misspelled?)"},
        {"streams = ( { name = \"a\"; command = [ \"/x\" ]; } );\n", 1, "streams[0].command",
         "unknown setting (misspelled?)"},

        /* http: url is required, http(s) with a host */
        {"streams = (\n  { name = \"a\"; handler = \"http\"; }\n);\n", 2, "streams[0].url",
         "required setting is missing"},
        {"streams = ( { name = \"a\"; handler = \"http\";\n  url = \"ftp://h/x\"; } );\n", 2,
         "streams[0].url", "must start with http:// or https:// and name a host, got 'ftp://h/x'"},
        {"streams = ( { name = \"a\"; handler = \"http\"; url = \"hooks.example.com\"; } );\n", 1,
         "streams[0].url", "must start with http:// or https://"},
        {"streams = ( { name = \"a\"; handler = \"http\"; url = \"https://\"; } );\n", 1,
         "streams[0].url", "name a host"},
        {"streams = ( { name = \"a\"; handler = \"http\"; url = \"http://h/a b\"; } );\n", 1,
         "streams[0].url", "must not contain whitespace or control characters"},
        {"streams = ( { name = \"a\"; handler = \"http\"; url = \"\"; } );\n", 1, "streams[0].url",
         "must not be empty"},
        /* methods with a body only */
        {"streams = ( { name = \"a\"; handler = \"http\"; url = \"http://h/\";\n"
         "  method = \"GET\"; } );\n",
         2, "streams[0].method", "must be \"POST\", \"PUT\" or \"PATCH\", got 'GET'"},
        {"streams = ( { name = \"a\"; handler = \"http\"; url = \"http://h/\"; method = \"post\"; "
         "} );\n",
         1, "streams[0].method", "got 'post'"},
        /* timeouts */
        {"streams = ( { name = \"a\"; handler = \"http\"; url = \"http://h/\";\n"
         "  timeout_ms = 0; } );\n",
         2, "streams[0].timeout_ms", "must be between 1 and 3600000, got 0"},
        {"streams = ( { name = \"a\"; handler = \"http\"; url = \"http://h/\"; timeout_ms = "
         "3600001; } );\n",
         1, "streams[0].timeout_ms", "must be between 1 and 3600000, got 3600001"},
        /* malformed headers, reported at the element; the value is never quoted */
        {"streams = ( { name = \"a\"; handler = \"http\"; url = \"http://h/\";\n"
         "  headers = [ \"X-Ok: 1\",\n    \"Authorization Bearer s3cr3t\" ]; } );\n",
         3, "streams[0].headers[1]",
         "must be \"Name: value\": the name 'Authorization' is followed by ' '"},
        {"streams = ( { name = \"a\"; handler = \"http\"; url = \"http://h/\";\n"
         "  headers = [ \"no-colon\" ]; } );\n",
         2, "streams[0].headers[0]", "must be \"Name: value\", with a ':' after the name"},
        {"streams = ( { name = \"a\"; handler = \"http\"; url = \"http://h/\";\n"
         "  headers = [ \": v\" ]; } );\n",
         2, "streams[0].headers[0]", "got an empty name"},
        {"streams = ( { name = \"a\"; handler = \"http\"; url = \"http://h/\";\n"
         "  headers = [ \"X-Empty:  \" ]; } );\n",
         2, "streams[0].headers[0]", "header 'X-Empty' has an empty value"},
        {"streams = ( { name = \"a\"; handler = \"http\"; url = \"http://h/\";\n"
         "  headers = [ \"X-Inject: a\\r\\nHost: evil\" ]; } );\n",
         2, "streams[0].headers[0]",
         "the value of header 'X-Inject' contains a control character (byte 0x0d)"},
        {"streams = ( { name = \"a\"; handler = \"http\"; url = \"http://h/\";\n"
         "  headers = [ \"content-type: text/plain\" ]; } );\n",
         2, "streams[0].headers[0]",
         "header 'content-type' is set by the handler and cannot be configured"},
        {"streams = ( { name = \"a\"; handler = \"http\"; url = \"http://h/\";\n"
         "  headers = [ \"Idempotency-Key: x\" ]; } );\n",
         2, "streams[0].headers[0]", "is set by the handler"},
        {"streams = ( { name = \"a\"; handler = \"http\"; url = \"http://h/\";\n"
         "  headers = \"X-A: 1\"; } );\n",
         2, "streams[0].headers", "must be a list of strings"},
        {"streams = ( { name = \"a\"; handler = \"http\"; url = \"http://h/\";\n"
         "  headers = ( 1 ); } );\n",
         2, "streams[0].headers[0]", "must be a string, got an integer"},
        /* a CA file that cannot be read, resolved against the configuration's directory */
        {"streams = ( { name = \"a\"; handler = \"http\"; url = \"https://h/\";\n"
         "  ca_file = \"no-such-ca.pem\"; } );\n",
         2, "streams[0].ca_file", "/no-such-ca.pem: No such file or directory"},
        {"streams = ( { name = \"a\"; handler = \"http\"; url = \"https://h/\"; ca_file = \"\"; } "
         ");\n",
         1, "streams[0].ca_file", "must not be empty"},
        /* the other kind's keys, and a misspelling */
        {"streams = ( { name = \"a\"; handler = \"http\"; url = \"http://h/\";\n"
         "  command = [ \"/x\" ]; } );\n",
         2, "streams[0].command", "unknown setting (misspelled?)"},
        {"streams = ( { name = \"a\"; handler = \"http\"; url = \"http://h/\";\n"
         "  header = [ \"X-A: 1\" ]; } );\n",
         2, "streams[0].header", "did you mean 'headers'?"},

        /* a stream that is another stream's dead-letter stream */
        {"streams = (\n  { name = \"events\"; },\n  { name = \"events:dlq\"; }\n);\n", 3,
         "streams[1].name", "dead letters of stream 'events'"},
        /* ... also when the suffix is set after the streams */
        {"streams = (\n  { name = \"jobs-dead\"; },\n  { name = \"jobs\"; }\n);\n"
         "group = { dead_letter_suffix = \"-dead\"; };\n",
         2, "streams[0].name", "re-process dead letters"},

        /* numbers out of range */
        {"redis = { port = 0; };\n", 1, "redis.port", "must be between 1 and 65535, got 0"},
        {"redis = { port = 70000; };\n", 1, "redis.port", "must be between 1 and 65535, got 70000"},
        {"redis = { db = -1; };\n", 1, "redis.db", "must be between 0 and 1000000, got -1"},
        {"redis = { connect_timeout_ms = 0; };\n", 1, "redis.connect_timeout_ms",
         "must be between 1 and 600000, got 0"},
        {"group = { read_count = 0; };\n", 1, "group.read_count",
         "must be between 1 and 100000, got 0"},
        {"group = { block_ms = 600001; };\n", 1, "group.block_ms",
         "must be between 1 and 600000, got 600001"},
        {"group = { max_deliveries = 0; };\n", 1, "group.max_deliveries",
         "must be between 1 and 1000000, got 0"},
        {"group = { claim_idle_ms = 604800001; };\n", 1, "group.claim_idle_ms",
         "must be between 1 and 604800000, got 604800001"},
        /* Retry backoff: in range, ordered, and below claim_idle_ms. */
        {"group = { retry_base_ms = 0; };\n", 1, "group.retry_base_ms",
         "must be between 1 and 3600000, got 0"},
        {"group = {\n retry_base_ms = 5000;\n retry_max_ms = 4000;\n};\n", 3, "group.retry_max_ms",
         "must not be below group.retry_base_ms (5000), got 4000"},
        {"group = {\n claim_idle_ms = 10000;\n retry_max_ms = 10000;\n};\n", 3,
         "group.retry_max_ms", "must be below group.claim_idle_ms (10000), got 10000"},
        {"group = { claim_idle_ms = 20000; };\n", 1, "group.retry_max_ms",
         "must be below group.claim_idle_ms (20000), got 30000"},
        {"group = { idle_consumer_timeout_ms = -1; };\n", 1, "group.idle_consumer_timeout_ms",
         "must be between 0 and 2147483647, got -1"},
        {"workers = { threads = 0; };\n", 1, "workers.threads",
         "must be between 1 and 1024, got 0"},
        {"workers = { threads = 1025; };\n", 1, "workers.threads",
         "must be between 1 and 1024, got 1025"},
        {"workers = { queue_capacity = 0; };\n", 1, "workers.queue_capacity",
         "must be between 1 and 1048576, got 0"},
        {"workers = { shutdown_timeout_ms = -1; };\n", 1, "workers.shutdown_timeout_ms",
         "must be between 0 and 3600000, got -1"},
        {"health = { port = 70000; };\n", 1, "health.port",
         "must be between 1 and 65535, got 70000"},
        {"health = { liveness_timeout_ms = 999; };\n", 1, "health.liveness_timeout_ms",
         "must be between 1000 and 3600000, got 999"},
        {"health = { liveness_timeout_ms = 3600001; };\n", 1, "health.liveness_timeout_ms",
         "must be between 1000 and 3600000, got 3600001"},
        /* The liveness window must hold two BLOCK timeouts of an idle reader: reported at
         * the window when the file sets it (whatever the order of the sections)... */
        {"health = {\n liveness_timeout_ms = 9999;\n};\n", 2, "health.liveness_timeout_ms",
         "must be at least twice group.block_ms (5000), got 9999"},
        {"group = { block_ms = 2000; };\nhealth = { liveness_timeout_ms = 3000; };\n", 2,
         "health.liveness_timeout_ms", "must be at least twice group.block_ms (2000), got 3000"},
        /* ... and at block_ms when only that is set */
        {"group = {\n block_ms = 15001;\n};\n", 2, "group.block_ms",
         "must be at most half of health.liveness_timeout_ms (30000), got 15001"},
        {"producer = { interval_ms = -5; };\n", 1, "producer.interval_ms",
         "must be between 0 and 86400000, got -5"},
        {"tracing = { sample_ratio = 1.5; };\n", 1, "tracing.sample_ratio",
         "must be between 0 and 1, got 1.5"},
        {"tracing = { sample_ratio = -1; };\n", 1, "tracing.sample_ratio",
         "must be between 0 and 1, got -1"},
        /* a 64-bit literal (L suffix) */
        {"group = { claim_idle_ms = 9999999999L; };\n", 1, "group.claim_idle_ms", "got 9999999999"},
        /* literals libconfig 1.5 silently truncates to 32 bits (4294967297 reads as 1,
         * 4294967296 as 0, 0x100000008 as 8): the original text is checked */
        {"redis = { port = 4294967297; };\n", 1, "redis.port",
         "must be between 1 and 65535, got 4294967297"},
        {"redis = {\n  db = 4294967296;\n};\n", 2, "redis.db",
         "must be between 0 and 1000000, got 4294967296"},
        /* ... also when the same words appear in a string or comment on the line */
        {"redis = { host = \"db = 0\"; db = 4294967296; }; # db = 0\n", 1, "redis.db",
         "got 4294967296"},
        {"workers = { threads = 0x100000008; };\n", 1, "workers.threads", "got 0x100000008"},
        {"tracing = { sample_ratio = 4294967297; };\n", 1, "tracing.sample_ratio",
         "got 4294967297"},

        /* empty strings where a value is required */
        {"redis = { host = \"\"; };\n", 1, "redis.host", "must not be empty"},
        {"redis = { username = \"\"; };\n", 1, "redis.username", "must not be empty"},
        {"redis = { password_file = \"\"; };\n", 1, "redis.password_file", "must not be empty"},
        {"group = { name = \"\"; };\n", 1, "group.name", "must not be empty"},
        {"group = { consumer = \"\"; };\n", 1, "group.consumer", "must not be empty"},
        {"group = { dead_letter_suffix = \"\"; };\n", 1, "group.dead_letter_suffix",
         "must not be empty"},
        {"group = { start_id = \"\"; };\n", 1, "group.start_id", "must not be empty"},
        {"health = { address = \"\"; };\n", 1, "health.address", "must not be empty"},
        {"tracing = { service_name = \"\"; };\n", 1, "tracing.service_name", "must not be empty"},
        {"tracing = { endpoint = \"\"; };\n", 1, "tracing.endpoint", "must not be empty"},
        {"producer = { stream = \"\"; };\n", 1, "producer.stream", "must not be empty"},
        {"producer = { type = \"\"; };\n", 1, "producer.type", "must not be empty"},

        /* start ids Redis would refuse */
        {"group = { start_id = \"abc\"; };\n", 1, "group.start_id",
         "must be \"$\" (new entries only), \"0\" (the whole history) or an entry id"},
        {"group = { start_id = \"1-\"; };\n", 1, "group.start_id", "got '1-'"},
        {"group = { start_id = \"-1\"; };\n", 1, "group.start_id", "got '-1'"},
        {"group = { start_id = \"1-2-3\"; };\n", 1, "group.start_id", "got '1-2-3'"},
        {"group = { start_id = \"$0\"; };\n", 1, "group.start_id", "got '$0'"},
        {"group = { start_id = \"18446744073709551616-0\"; };\n", 1, "group.start_id",
         "got '18446744073709551616-0'"},

        /* log levels */
        {"log = { level = \"verbose\"; };\n", 1, "log.level",
         "must be one of error, warn, info, debug, got 'verbose'"},

        /* tracing endpoints */
        {"tracing = { endpoint = \"ftp://collector/v1/traces\"; };\n", 1, "tracing.endpoint",
         "must start with http:// or https://"},
        {"tracing = { endpoint = \"127.0.0.1:4318\"; };\n", 1, "tracing.endpoint",
         "must start with http:// or https://"},
        {"tracing = { endpoint = \"http://\"; };\n", 1, "tracing.endpoint", "name a host"},

        /* password and password_file together, reported at the second */
        {"redis = {\n  password = \"x\";\n  password_file = \"p\";\n};\n", 3, "redis.password_file",
         "cannot be combined with redis.password (line 2)"},
        /* a password file that does not exist, resolved against the config's directory */
        {"redis = { password_file = \"no-such-file\"; };\n", 1, "redis.password_file",
         "/no-such-file: No such file or directory"},
    };

    for (size_t i = 0; i < ARRAY_LEN(cases); i++)
        expect_rejected(fx->dir, cases[i].text, cases[i].line, cases[i].setting, cases[i].phrase);
}

static void config_accepts_valid_variants(void **state)
{
    const fixture_t *fx = *state;
    rs_config_t *cfg;

    /* a discard handler, an omitted handler (log) and names with odd characters */
    cfg = expect_loaded(fx->dir, "streams = (\n  { name = \"bench\"; handler = \"discard\"; },\n"
                                 "  { name = \"orders:v2\"; }\n);\n");
    assert_int_equal(cfg->nstreams, 2);
    assert_string_equal(cfg->streams[0].name, "bench");
    assert_int_equal(cfg->streams[0].handler, RS_HANDLER_DISCARD);
    assert_int_equal(cfg->streams[0].line, 2);
    assert_string_equal(cfg->streams[1].name, "orders:v2");
    assert_int_equal(cfg->streams[1].handler, RS_HANDLER_LOG);
    rs_config_free(cfg);

    /* every accepted start id form */
    static const char *const ids[] = {
        "$", "0", "0-0", "123", "1700000000000-0", "18446744073709551615-18446744073709551615"};
    for (size_t i = 0; i < ARRAY_LEN(ids); i++) {
        char text[256];
        snprintf(text, sizeof(text), "group = { start_id = \"%s\"; };\n", ids[i]);
        cfg = expect_loaded(fx->dir, text);
        assert_string_equal(cfg->group.start_id, ids[i]);
        rs_config_free(cfg);
    }

    /* bounds of the ranges, 64-bit literals, integer ratios, https and ACL users */
    cfg = expect_loaded(fx->dir, "redis = { port = 65535; db = 1000000; username = \"app\";\n"
                                 "  connect_timeout_ms = 1L; };\n"
                                 "workers = { threads = 1024; shutdown_timeout_ms = 0; };\n"
                                 "producer = { interval_ms = 0; };\n"
                                 "tracing = { enabled = true; sample_ratio = 0;\n"
                                 "  endpoint = \"HTTPS://otel.example:4318/v1/traces\"; };\n"
                                 "log = { level = \"debug\"; };\n");
    assert_int_equal(cfg->redis.port, 65535);
    assert_int_equal(cfg->redis.db, 1000000);
    assert_string_equal(cfg->redis.username, "app");
    assert_int_equal(cfg->redis.connect_timeout_ms, 1);
    assert_int_equal(cfg->workers.threads, 1024);
    assert_int_equal(cfg->workers.shutdown_timeout_ms, 0);
    assert_int_equal(cfg->producer.interval_ms, 0);
    assert_true(cfg->tracing.enabled);
    assert_true(cfg->tracing.sample_ratio == 0.0);
    assert_int_equal(cfg->log.level, RS_LOG_DEBUG);
    rs_config_free(cfg);

    /* a float ratio, hex integers, a value on the line after its name, and names inside
     * strings and comments next to a correct value (the truncation check must not trip) */
    cfg = expect_loaded(fx->dir, "tracing = { sample_ratio = 0.25; };\n"
                                 "workers = { queue_capacity = 0x400; threads =\n 4; };\n"
                                 "redis = { host = \"db = 7\"; db = 5; /* db = 9 */ };\n"
                                 "producer = { interval_ms = 20; }; # interval_ms = 99999999999\n");
    assert_true(cfg->tracing.sample_ratio == 0.25);
    assert_int_equal(cfg->workers.queue_capacity, 1024);
    assert_int_equal(cfg->workers.threads, 4);
    assert_int_equal(cfg->redis.db, 5);
    assert_string_equal(cfg->redis.host, "db = 7");
    assert_int_equal(cfg->producer.interval_ms, 20);
    rs_config_free(cfg);

    /* a liveness window of exactly twice block_ms, and a long BLOCK with a wide window */
    cfg = expect_loaded(fx->dir, "group = { block_ms = 500; };\n"
                                 "health = { liveness_timeout_ms = 1000; };\n");
    assert_int_equal(cfg->health.liveness_timeout_ms, 1000);
    rs_config_free(cfg);
    cfg = expect_loaded(fx->dir, "health = { liveness_timeout_ms = 120000; };\n"
                                 "group = { block_ms = 60000; };\n");
    assert_int_equal(cfg->group.block_ms, 60000);
    assert_int_equal(cfg->health.liveness_timeout_ms, 120000);
    rs_config_free(cfg);

    /* a password in the file, and an empty one meaning no AUTH */
    cfg = expect_loaded(fx->dir, "redis = { password = \"hunter2\"; };\n");
    assert_string_equal(cfg->redis.password, "hunter2");
    assert_int_equal(cfg->redis.password_source, RS_SECRET_CONFIG);
    rs_config_free(cfg);
    cfg = expect_loaded(fx->dir, "redis = { password = \"\"; };\n");
    assert_null(cfg->redis.password);
    assert_int_equal(cfg->redis.password_source, RS_SECRET_NONE);
    rs_config_free(cfg);

    /* empty sections and comments only: all defaults */
    cfg = expect_loaded(fx->dir, "# nothing\nredis = { };\n// still nothing\n/* at all */\n");
    assert_int_equal(cfg->redis.port, 6380);
    assert_int_equal(cfg->nstreams, 3);
    rs_config_free(cfg);
}

/* A problem inside an @include'd file names that file, resolved against the config's
 * directory, and the line in it. */
static void config_reports_included_file(void **state)
{
    const fixture_t *fx = *state;
    char err[1024] = "";
    char *inc = write_named(fx->dir, "workers.inc", "\nworkers = { threads = 0; };\n", 0644);
    char *path = write_config(fx->dir, "redis = { port = 6380; };\n@include \"workers.inc\"\n");
    char where[PATH_MAX + 32];

    assert_null(rs_config_load(path, err, sizeof(err)));
    snprintf(where, sizeof(where), "%s:2: workers.threads: must be between 1 and 1024", inc);
    assert_contains(err, where);
    free(path);

    /* a syntax error inside the included file */
    free(write_named(fx->dir, "workers.inc", "workers = {\n  threads = ;\n};\n", 0644));
    path = write_config(fx->dir, "@include \"workers.inc\"\n");
    assert_null(rs_config_load(path, err, sizeof(err)));
    snprintf(where, sizeof(where), "%s:2: syntax error", inc);
    assert_contains(err, where);
    free(path);

    /* a working include */
    free(write_named(fx->dir, "workers.inc", "workers = { threads = 3; };\n", 0644));
    path = write_config(fx->dir, "@include \"workers.inc\"\n");
    rs_config_t *cfg = rs_config_load(path, err, sizeof(err));
    if (cfg == NULL)
        fail_msg("%s", err);
    assert_int_equal(cfg->workers.threads, 3);
    rs_config_free(cfg);
    free(path);
    free(inc);
}

static void config_env_overrides_password(void **state)
{
    const fixture_t *fx = *state;
    char err[1024] = "";
    rs_config_t *cfg;

    /* set and non-empty: the defaults take it */
    setenv(RS_ENV_REDIS_PASSWORD, "from-env", 1);
    cfg = rs_config_new_defaults(NULL, 0);
    assert_non_null(cfg);
    assert_string_equal(cfg->redis.password, "from-env");
    assert_int_equal(cfg->redis.password_source, RS_SECRET_ENVIRONMENT);
    rs_config_free(cfg);

    /* ... and it wins over a password in the file */
    cfg = expect_loaded(fx->dir, "redis = { password = \"from-file\"; };\n");
    assert_string_equal(cfg->redis.password, "from-env");
    assert_int_equal(cfg->redis.password_source, RS_SECRET_ENVIRONMENT);
    rs_config_free(cfg);

    /* ... and over the example file's default */
    cfg = rs_config_load(EXAMPLE_CONFIG, err, sizeof(err));
    assert_non_null(cfg);
    assert_string_equal(cfg->redis.password, "from-env");
    rs_config_free(cfg);

    /* set but empty: no password at all */
    setenv(RS_ENV_REDIS_PASSWORD, "", 1);
    cfg = rs_config_new_defaults(NULL, 0);
    assert_non_null(cfg);
    assert_null(cfg->redis.password);
    assert_int_equal(cfg->redis.password_source, RS_SECRET_NONE);
    rs_config_free(cfg);
    cfg = expect_loaded(fx->dir, "redis = { password = \"from-file\"; };\n");
    assert_null(cfg->redis.password);
    assert_int_equal(cfg->redis.password_source, RS_SECRET_NONE);
    rs_config_free(cfg);

    /* unset: the file decides again */
    unsetenv(RS_ENV_REDIS_PASSWORD);
    cfg = expect_loaded(fx->dir, "redis = { password = \"from-file\"; };\n");
    assert_string_equal(cfg->redis.password, "from-file");
    assert_int_equal(cfg->redis.password_source, RS_SECRET_CONFIG);
    rs_config_free(cfg);
}

static void config_password_file_is_read(void **state)
{
    const fixture_t *fx = *state;
    rs_config_t *cfg;

    /* mode 600, CRLF line ending, later lines ignored; a relative path is resolved against
     * the config file's directory, not the working directory */
    free(write_named(fx->dir, "secret", "s3cret\r\nsecond line\n", 0600));
    cfg = expect_loaded(fx->dir, "redis = { password_file = \"secret\"; };\n");
    assert_string_equal(cfg->redis.password, "s3cret");
    assert_int_equal(cfg->redis.password_source, RS_SECRET_FILE);
    assert_string_equal(cfg->redis.password_file, "secret");
    rs_config_free(cfg);

    /* an absolute path, a file without a final newline, owner read-only */
    char *abs = write_named(fx->dir, "secret2", "no-newline", 0400);
    char text[PATH_MAX + 64];
    snprintf(text, sizeof(text), "redis = { password_file = \"%s\"; };\n", abs);
    cfg = expect_loaded(fx->dir, text);
    assert_string_equal(cfg->redis.password, "no-newline");
    rs_config_free(cfg);
    free(abs);

    /* the environment still wins over the file */
    setenv(RS_ENV_REDIS_PASSWORD, "from-env", 1);
    cfg = expect_loaded(fx->dir, "redis = { password_file = \"secret\"; };\n");
    assert_string_equal(cfg->redis.password, "from-env");
    assert_int_equal(cfg->redis.password_source, RS_SECRET_ENVIRONMENT);
    rs_config_free(cfg);
}

static void config_password_file_is_refused(void **state)
{
    const fixture_t *fx = *state;
    static const struct {
        const char *content;
        mode_t mode;
        const char *phrase;
    } cases[] = {
        /* readable by everyone */
        {"topsecret\n", 0644, "is readable by group or others (mode 644); chmod 600"},
        /* readable by the group */
        {"topsecret\n", 0640, "is readable by group or others (mode 640); chmod 600"},
        /* readable by others only */
        {"topsecret\n", 0604, "is readable by group or others (mode 604); chmod 600"},
        /* writable by others is no better */
        {"topsecret\n", 0602, "chmod 600"},
        /* an empty file */
        {"", 0600, "is empty"},
        /* an empty first line */
        {"\ntopsecret\n", 0600, "is empty"},
        /* only a line ending */
        {"\r\n", 0600, "is empty"},
    };

    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        char err[1024] = "";
        char *secret = write_named(fx->dir, "pw", cases[i].content, cases[i].mode);
        char *path = write_config(fx->dir, "\nredis = { password_file = \"pw\"; };\n");
        char where[PATH_MAX + 64];

        assert_null(rs_config_load(path, err, sizeof(err)));
        snprintf(where, sizeof(where), "%s:2: redis.password_file: %s", path, secret);
        assert_contains(err, where);
        assert_contains(err, cases[i].phrase);
        assert_null(strstr(err, "topsecret")); /* never the contents */
        unlink(path);
        unlink(secret);
        free(path);
        free(secret);
    }

    /* a directory is not a password file */
    char sub[PATH_MAX + 32];
    snprintf(sub, sizeof(sub), "%s/pwdir", fx->dir);
    assert_int_equal(mkdir(sub, 0700), 0);
    expect_rejected(fx->dir, "redis = { password_file = \"pwdir\"; };\n", 1, "redis.password_file",
                    "is not a regular file");

    /* nor is a named pipe, and nobody writing to it must not make the load wait forever */
    snprintf(sub, sizeof(sub), "%s/pwfifo", fx->dir);
    assert_int_equal(mkfifo(sub, 0600), 0);
    expect_rejected(fx->dir, "redis = { password_file = \"pwfifo\"; };\n", 1, "redis.password_file",
                    "is not a regular file");
}

static void config_rejects_unusable_paths(void **state)
{
    const fixture_t *fx = *state;
    char err[1024] = "";
    char expect[PATH_MAX + 128];

    /* a directory */
    assert_null(rs_config_load(fx->dir, err, sizeof(err)));
    snprintf(expect, sizeof(expect), "%s: is a directory", fx->dir);
    assert_string_equal(err, expect);

    /* a file that does not exist */
    char missing[PATH_MAX + 32];
    snprintf(missing, sizeof(missing), "%s/absent.conf", fx->dir);
    assert_null(rs_config_load(missing, err, sizeof(err)));
    snprintf(expect, sizeof(expect), "%s: cannot read: No such file or directory", missing);
    assert_string_equal(err, expect);

    /* below a file, not a directory */
    char *file = write_config(fx->dir, "");
    snprintf(missing, sizeof(missing), "%s/x.conf", file);
    assert_null(rs_config_load(missing, err, sizeof(err)));
    assert_contains(err, "cannot read: Not a directory");

    /* an empty name */
    assert_null(rs_config_load("", err, sizeof(err)));
    assert_contains(err, "empty");

    /* a file without read permission (root reads it anyway, so only checked as non-root) */
    if (geteuid() != 0) {
        assert_int_equal(chmod(file, 0), 0);
        assert_null(rs_config_load(file, err, sizeof(err)));
        snprintf(expect, sizeof(expect), "%s: cannot read: Permission denied", file);
        assert_string_equal(err, expect);
    }

    /* a NULL err buffer is allowed */
    assert_null(rs_config_load(fx->dir, NULL, 0));
    free(file);
}

/* An empty file (nothing but white space) is refused: most likely it was truncated or never
 * written, and the defaults would start the service against another Redis. A file of comments
 * only is a deliberate "all defaults": accepted, and flagged so the programs can say so. */
static void config_empty_and_comments_only(void **state)
{
    const fixture_t *fx = *state;
    static const char *const empty[] = {
        "",              /* no byte at all */
        "\n",            /* one newline */
        " \t\r\n\n  \n", /* white space of every kind */
    };

    for (size_t i = 0; i < ARRAY_LEN(empty); i++)
        expect_rejected(fx->dir, empty[i], 0, NULL,
                        ": is empty (a file meant to keep every default says so in a comment)");

    rs_config_t *cfg = expect_loaded(fx->dir, "# every default\n/* on purpose */\n");
    rs_config_t *defaults = rs_config_new_defaults(NULL, 0);
    assert_non_null(defaults);
    assert_non_null(cfg->path);
    assert_true(cfg->sets_nothing);
    assert_same_settings(cfg, defaults);
    rs_config_free(cfg);
    rs_config_free(defaults);

    /* one setting, even an empty section, is something */
    cfg = expect_loaded(fx->dir, "# almost nothing\nlog = { };\n");
    assert_false(cfg->sets_nothing);
    rs_config_free(cfg);
}

static void config_rejects_garbage(void **state)
{
    const fixture_t *fx = *state;
    uint32_t seed = 12345;

    /* Deterministic pseudo-random bytes (NULs and high bytes included) of many lengths;
     * the first byte is never a comment start, which would make the rest a valid comment. */
    for (int round = 0; round < 64; round++) {
        unsigned char bytes[2048];
        size_t len = 1 + (size_t)round * 31;
        for (size_t i = 0; i < len; i++) {
            seed = seed * 1103515245u + 12345u;
            bytes[i] = (unsigned char)(seed >> 16);
        }
        if (bytes[0] == '#' || bytes[0] == '/' || bytes[0] <= ' ')
            bytes[0] = '!';
        char err[1024] = "";
        char *path = write_temp(fx->dir, bytes, len, 0644);
        rs_config_t *cfg = rs_config_load(path, err, sizeof(err));
        if (cfg != NULL)
            fail_msg("garbage round %d accepted", round);
        assert_contains(err, path);
        unlink(path);
        free(path);
    }
}

/* rs_config_load_string() validates text exactly as rs_config_load() validates the same text
 * in a file: same verdict, same message, equal configuration. */
static void config_load_string_matches_file(void **state)
{
    const fixture_t *fx = *state;
    static const char *const texts[] = {
        /* valid, with a stream and its handler */
        "workers = { threads = 3; };\nstreams = ( { name = \"a\"; handler = \"discard\"; } );\n",
        /* a range error on line 2 */
        "# x\ngroup = { block_ms = 0; };\n",
        /* a syntax error on line 3 */
        "redis = {\n  port = 1;\n  host = ;\n};\n",
        /* a literal libconfig 1.5 truncates (4294967297 arrives as 1): found in the text held
         * in memory as in the file */
        "workers = {\n  threads = 4294967297;\n};\n",
        /* empty */
        "",
    };

    for (size_t i = 0; i < ARRAY_LEN(texts); i++) {
        char ferr[1024] = "", serr[1024] = "";
        char *path = write_named(fx->dir, "c.conf", texts[i], 0644);
        rs_config_t *f = rs_config_load(path, ferr, sizeof(ferr));
        rs_config_t *s =
            rs_config_load_string(texts[i], strlen(texts[i]), path, serr, sizeof(serr));
        if ((f == NULL) != (s == NULL) || strcmp(ferr, serr) != 0)
            fail_msg("text %zu: file \"%s\", string \"%s\"", i, ferr, serr);
        if (s != NULL) {
            char keys[256];
            assert_string_equal(s->path, path);
            assert_int_equal(rs_config_restart_keys(f, s, keys, sizeof(keys)), 0);
            assert_int_equal(s->nstreams, f->nstreams);
            assert_true(rs_stream_config_equal(&s->streams[0], &f->streams[0]));
        }
        rs_config_free(f);
        rs_config_free(s);
        free(path);
    }
    /* the truncated literal is named with its line */
    char err[1024] = "";
    const char *text = texts[3];
    assert_null(rs_config_load_string(text, strlen(text), "mem.conf", err, sizeof(err)));
    assert_string_equal(err, "mem.conf:2: workers.threads: must be between 1 and 1024, "
                             "got 4294967297");
}

/* Text need not end in a NUL, but may not hold one: libconfig would drop what follows. */
static void config_load_string_rejects_nul(void **state)
{
    (void)state;
    static const char text[] = "log = { level = \"warn\"; };\nx\0 = 1;\n";
    char err[256] = "";

    assert_null(rs_config_load_string(text, sizeof(text) - 1, "mem.conf", err, sizeof(err)));
    assert_string_equal(err, "mem.conf:2: contains a NUL byte (a configuration is text)");
    /* the first line alone, not NUL-terminated within its length, loads */
    rs_config_t *cfg = rs_config_load_string(text, 27, "mem.conf", err, sizeof(err));
    assert_non_null(cfg);
    assert_int_equal(cfg->log.level, RS_LOG_WARN);
    rs_config_free(cfg);
    assert_null(rs_config_load_string("", 0, "", err, sizeof(err)));
    assert_string_equal(err, "configuration name is empty");
}

static void config_set_redis_addr_accepts(void **state)
{
    (void)state;
    static const struct {
        const char *addr;
        const char *host;
        int port;
    } cases[] = {
        {"redis.internal:6379", "redis.internal", 6379}, /* host and port */
        {"10.0.0.5:1", "10.0.0.5", 1},                   /* lowest port */
        {"10.0.0.5:65535", "10.0.0.5", 65535},           /* highest port */
        {"[::1]:6381", "::1", 6381},                     /* bracketed IPv6 */
        {"[fe80::1%eth0]", "fe80::1%eth0", 6380},        /* IPv6 alone keeps the port */
        {"cache", "cache", 6380},                        /* host alone keeps the port */
        {"cache:06379", "cache", 6379},                  /* leading zero is still decimal */
    };

    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        char err[256] = "";
        rs_config_t *cfg = rs_config_new_defaults(NULL, 0);
        assert_non_null(cfg);
        if (rs_config_set_redis_addr(cfg, cases[i].addr, "--redis-addr", err, sizeof(err)) != 0)
            fail_msg("'%s' rejected: %s", cases[i].addr, err);
        assert_string_equal(cfg->redis.host, cases[i].host);
        assert_int_equal(cfg->redis.port, cases[i].port);
        rs_config_free(cfg);
    }
}

static void config_set_redis_addr_rejects(void **state)
{
    (void)state;
    static const struct {
        const char *addr;
        const char *phrase;
    } cases[] = {
        {"", "empty address"},                                          /* nothing */
        {":6380", "empty host"},                                        /* no host */
        {"[]:6380", "empty host"},                                      /* no host in brackets */
        {"host:", "port must be a number between 1 and 65535, got ''"}, /* no port */
        {"host:0", "got '0'"},                                          /* port too low */
        {"host:65536", "got '65536'"},                                  /* port too high */
        {"host:99999999999", "got '99999999999'"},                      /* port overflowing */
        {"host:63a", "got '63a'"},                                      /* junk after the port */
        {"host:-1", "got '-1'"},                                        /* a sign */
        {"host: 6380", "got ' 6380'"},                                  /* a space */
        {"::1", "write an IPv6 address as [::1]:6380"},                 /* IPv6 without brackets */
        {"[::1", "missing ']'"},                                        /* unclosed bracket */
        {"[::1]6380", "unexpected text after ']'"},                     /* no colon after bracket */
        {"my host:6380", "whitespace"},                                 /* space in the host */
    };

    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        char err[256] = "";
        rs_config_t *cfg = rs_config_new_defaults(NULL, 0);
        assert_non_null(cfg);
        if (rs_config_set_redis_addr(cfg, cases[i].addr, "--redis-addr", err, sizeof(err)) == 0)
            fail_msg("'%s' accepted", cases[i].addr);
        assert_contains(err, "--redis-addr: ");
        assert_contains(err, cases[i].phrase);
        /* a rejected address changes nothing */
        assert_string_equal(cfg->redis.host, "127.0.0.1");
        assert_int_equal(cfg->redis.port, 6380);
        rs_config_free(cfg);
    }
}

/* Reads what rs_config_print_summary() writes; caller frees. */
static char *summary_of(const rs_config_t *cfg)
{
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);

    assert_non_null(out);
    rs_config_print_summary(cfg, out);
    fclose(out);
    return text;
}

static void config_summary_hides_password(void **state)
{
    const fixture_t *fx = *state;
    rs_config_t *cfg = rs_config_new_defaults(NULL, 0);
    char *text;

    /* the built-in default */
    assert_non_null(cfg);
    text = summary_of(cfg);
    assert_contains(text, "password set (built-in default)");
    assert_null(strstr(text, "redis123"));
    assert_contains(text, "127.0.0.1:6380");
    assert_contains(text, "events");
    assert_contains(text, "notifications");
    assert_contains(text, "handler log");
    assert_contains(text, "127.0.0.1:8083");
    assert_contains(text, "level info");
    free(text);
    rs_config_free(cfg);

    /* from the environment */
    setenv(RS_ENV_REDIS_PASSWORD, "env-secret", 1);
    cfg = rs_config_new_defaults(NULL, 0);
    assert_non_null(cfg);
    text = summary_of(cfg);
    assert_contains(text, "set (from environment REDSTREAM_REDIS_PASSWORD)");
    assert_null(strstr(text, "env-secret"));
    free(text);
    rs_config_free(cfg);
    unsetenv(RS_ENV_REDIS_PASSWORD);

    /* from a file */
    free(write_named(fx->dir, "secret", "file-secret\n", 0600));
    cfg = expect_loaded(fx->dir, "redis = { password_file = \"secret\"; host = \"::1\"; };\n");
    text = summary_of(cfg);
    assert_contains(text, "set (from file secret)");
    assert_contains(text, "[::1]:6380");
    assert_null(strstr(text, "file-secret"));
    free(text);
    rs_config_free(cfg);

    /* none */
    cfg = expect_loaded(fx->dir, "redis = { password = \"\"; };\n");
    text = summary_of(cfg);
    assert_contains(text, "password none");
    free(text);
    rs_config_free(cfg);

    /* the collector's credentials in the tracing endpoint */
    cfg = expect_loaded(fx->dir,
                        "tracing = { endpoint = \"https://u:trace-secret@otel:4318/v1\"; };\n");
    text = summary_of(cfg);
    assert_contains(text, "endpoint https://***@otel:4318/v1,");
    assert_null(strstr(text, "trace-secret"));
    free(text);
    rs_config_free(cfg);
}

static void config_url_redacted(void **state)
{
    (void)state;
    static const struct {
        const char *url, *want;
    } cases[] = {
        /* no user information: unchanged */
        {"http://127.0.0.1:4318/v1/traces", "http://127.0.0.1:4318/v1/traces"},
        /* user and password */
        {"https://u:p4ss@host:8443/x", "https://***@host:8443/x"},
        /* a user alone is hidden too (it may be a token) */
        {"http://token@host/", "http://***@host/"},
        /* an '@' in the password: the last one before the path ends the user information */
        {"http://u:a@b@host/p", "http://***@host/p"},
        /* an '@' after the authority (path, query, fragment) is not user information */
        {"http://host/p@q?x=@#@", "http://host/p@q?x=@#@"},
        /* without a scheme the authority starts at the beginning */
        {"u:p@host:1", "***@host:1"},
        /* empty */
        {"", ""},
    };

    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        char *got = rs_config_url_redacted(cases[i].url);
        assert_non_null(got);
        assert_string_equal(got, cases[i].want);
        free(got);
    }
}

static void config_set_string_and_names(void **state)
{
    (void)state;
    char *slot = NULL;

    /* set, replace, clear */
    assert_int_equal(rs_config_set_string(&slot, "a"), 0);
    assert_string_equal(slot, "a");
    assert_int_equal(rs_config_set_string(&slot, "bc"), 0);
    assert_string_equal(slot, "bc");
    assert_int_equal(rs_config_set_string(&slot, NULL), 0);
    assert_null(slot);

    /* handler names as written in files */
    assert_string_equal(rs_handler_kind_name(RS_HANDLER_LOG), "log");
    assert_string_equal(rs_handler_kind_name(RS_HANDLER_DISCARD), "discard");
    assert_string_equal(rs_handler_kind_name(RS_HANDLER_EXEC), "exec");
    assert_string_equal(rs_handler_kind_name(RS_HANDLER_HTTP), "http");

    /* freeing NULL is allowed */
    rs_config_free(NULL);
}

/* The exec and http handlers' settings: defaults, every key read, the CA file resolved, and a
 * summary that shows the command and the URL but no header value or URL password. */
static void config_handler_settings(void **state)
{
    const fixture_t *fx = *state;
    rs_config_t *cfg;
    char *text;

    /* only the required keys: the defaults apply */
    cfg = expect_loaded(fx->dir,
                        "streams = (\n"
                        "  { name = \"jobs\"; handler = \"exec\"; command = [\"/bin/true\"]; },\n"
                        "  { name = \"hooks\"; handler = \"http\"; url = \"http://h/x\"; }\n"
                        ");\n");
    assert_int_equal(cfg->streams[0].handler, RS_HANDLER_EXEC);
    assert_int_equal(cfg->streams[0].exec.command.n, 1);
    assert_string_equal(cfg->streams[0].exec.command.items[0], "/bin/true");
    assert_null(cfg->streams[0].exec.command.items[1]); /* usable as an argv */
    assert_int_equal(cfg->streams[0].exec.timeout_ms, 30000);
    assert_int_equal(cfg->streams[1].handler, RS_HANDLER_HTTP);
    assert_string_equal(cfg->streams[1].http.url, "http://h/x");
    assert_string_equal(cfg->streams[1].http.method, "POST");
    assert_int_equal(cfg->streams[1].http.headers.n, 0);
    assert_int_equal(cfg->streams[1].http.timeout_ms, 10000);
    assert_null(cfg->streams[1].http.ca_file);
    rs_config_free(cfg);

    /* every key, a list as well as an array, bounds of the ranges */
    char *ca = write_named(fx->dir, "ca.pem", "not really a certificate\n", 0644);
    cfg = expect_loaded(
        fx->dir,
        "streams = (\n"
        "  { name = \"jobs\"; handler = \"exec\"; timeout_ms = 86400000;\n"
        "    command = ( \"/usr/local/bin/handle\", \"--flag\", \"two words\", \"\" ); },\n"
        "  { name = \"hooks\"; handler = \"http\"; method = \"PATCH\";\n"
        "    url = \"https://user:pa55@hooks.example.com:8443/in?x=1\";\n"
        "    headers = [ \"Authorization: Bearer tok-123\", \"X-Tenant:\tblue\" ];\n"
        "    timeout_ms = 1; ca_file = \"ca.pem\"; }\n"
        ");\n");
    const rs_stream_config_t *ex = &cfg->streams[0], *hs = &cfg->streams[1];
    assert_int_equal(ex->exec.timeout_ms, 86400000);
    assert_int_equal(ex->exec.command.n, 4);
    assert_string_equal(ex->exec.command.items[2], "two words");
    assert_string_equal(ex->exec.command.items[3], "");
    assert_string_equal(hs->http.method, "PATCH");
    assert_int_equal(hs->http.timeout_ms, 1);
    assert_int_equal(hs->http.headers.n, 2);
    assert_string_equal(hs->http.headers.items[1], "X-Tenant:\tblue");
    assert_string_equal(hs->http.ca_file, ca); /* resolved against the file's directory */

    text = summary_of(cfg);
    assert_contains(text, "handler exec");
    assert_contains(text,
                    "command /usr/local/bin/handle --flag 'two words' '', timeout 86400000 ms");
    assert_contains(text, "handler http");
    assert_contains(text, "PATCH https://***@hooks.example.com:8443/in?x=1, timeout 1 ms");
    assert_contains(text, "headers Authorization, X-Tenant");
    assert_null(strstr(text, "tok-123"));
    assert_null(strstr(text, "blue"));
    assert_null(strstr(text, "pa55"));
    free(text);
    rs_config_free(cfg);
    free(ca);

    /* a rejected header never shows its value */
    char err[1024] = "";
    char *path =
        write_config(fx->dir, "streams = ( { name = \"a\"; handler = \"http\";\n"
                              "  url = \"http://h/\"; headers = [ \"Auth\\ntok-456\" ]; } );\n");
    assert_null(rs_config_load(path, err, sizeof(err)));
    assert_contains(err, "streams[0].headers[0]");
    assert_null(strstr(err, "tok-456"));
    free(path);

    /* a handler kind that takes no settings prints no second line */
    cfg = expect_loaded(fx->dir, "streams = ( { name = \"bench\"; handler = \"discard\"; } );\n");
    text = summary_of(cfg);
    assert_null(strstr(text, "command"));
    assert_null(strstr(text, "POST"));
    free(text);
    rs_config_free(cfg);
}

static void config_credential_password(void **state)
{
    const fixture_t *fx = *state;
    char err[1024] = "";
    char creds[PATH_MAX + 8];
    rs_config_t *cfg;

    snprintf(creds, sizeof(creds), "%s/creds", fx->dir);
    assert_int_equal(mkdir(creds, 0700), 0);
    setenv("CREDENTIALS_DIRECTORY", creds, 1);

    /* the directory without our credential: the file decides */
    cfg = expect_loaded(fx->dir, "redis = { password = \"from-file\"; };\n");
    assert_string_equal(cfg->redis.password, "from-file");
    rs_config_free(cfg);

    /* the credential wins over the file and the defaults; its mode is systemd's business */
    free(write_named(creds, RS_CREDENTIAL_REDIS_PASSWORD, "from-credential\n", 0444));
    cfg = expect_loaded(fx->dir, "redis = { password = \"from-file\"; };\n");
    assert_string_equal(cfg->redis.password, "from-credential");
    assert_int_equal(cfg->redis.password_source, RS_SECRET_CREDENTIAL);
    char *text = summary_of(cfg);
    assert_contains(text, "systemd credential redis-password");
    assert_null(strstr(text, "from-credential"));
    free(text);
    rs_config_free(cfg);
    cfg = rs_config_new_defaults(err, sizeof(err));
    assert_non_null(cfg);
    assert_string_equal(cfg->redis.password, "from-credential");
    rs_config_free(cfg);

    /* ... but not over the environment */
    setenv(RS_ENV_REDIS_PASSWORD, "from-env", 1);
    cfg = expect_loaded(fx->dir, "# defaults\n");
    assert_string_equal(cfg->redis.password, "from-env");
    rs_config_free(cfg);
    unsetenv(RS_ENV_REDIS_PASSWORD);

    /* an empty credential is an error that names it, not a silent "no password" */
    free(write_named(creds, RS_CREDENTIAL_REDIS_PASSWORD, "", 0400));
    char *path = write_config(fx->dir, "# defaults\n");
    assert_null(rs_config_load(path, err, sizeof(err)));
    assert_contains(err, "systemd credential redis-password");
    assert_contains(err, "is empty");
    assert_null(rs_config_new_defaults(err, sizeof(err)));
    assert_contains(err, "is empty");
    free(path);
}

static void config_stream_copy_and_compare(void **state)
{
    const fixture_t *fx = *state;
    rs_config_t *a = expect_loaded(
        fx->dir, "streams = ( { name = \"hook\"; handler = \"http\"; url = \"http://h/x\";\n"
                 "  headers = [ \"Authorization: Bearer t\" ]; timeout_ms = 500; },\n"
                 "  { name = \"run\"; handler = \"exec\"; command = [ \"/bin/cat\", \"-u\" ]; },\n"
                 "  { name = \"plain\"; handler = \"log\"; } );\n");
    rs_config_t *b = expect_loaded(
        fx->dir, "streams = ( { name = \"hook\"; handler = \"http\"; url = \"http://h/x\";\n"
                 "  headers = [ \"Authorization: Bearer u\" ]; timeout_ms = 500; },\n"
                 "  { name = \"run\"; handler = \"exec\"; command = [ \"/bin/cat\", \"-u\" ]; },\n"
                 "  { name = \"plain\"; handler = \"discard\"; } );\n");

    /* a copy equals its source, shares no string with it, and outlives it */
    for (size_t i = 0; i < a->nstreams; i++) {
        rs_stream_config_t *copy = rs_stream_config_dup(&a->streams[i]);
        assert_non_null(copy);
        assert_true(rs_stream_config_equal(copy, &a->streams[i]));
        assert_ptr_not_equal(copy->name, a->streams[i].name);
        if (copy->handler == RS_HANDLER_HTTP)
            assert_ptr_not_equal(copy->http.headers.items[0], a->streams[i].http.headers.items[0]);
        rs_stream_config_free(copy);
    }
    /* a header value changed (http), nothing changed (exec), the handler kind changed (log) */
    assert_false(rs_stream_config_equal(&a->streams[0], &b->streams[0]));
    assert_true(rs_stream_config_equal(&a->streams[1], &b->streams[1]));
    assert_false(rs_stream_config_equal(&a->streams[2], &b->streams[2]));
    rs_stream_config_free(NULL);
    rs_config_free(a);
    rs_config_free(b);
}

/* ordering and key_field: every accepted value, the default, the summary, and copies and
 * comparisons that include both (a reload restarts a stream whose ordering changed). */
static void config_stream_ordering(void **state)
{
    const fixture_t *fx = *state;
    static const char text[] =
        "streams = (\n"
        "  { name = \"plain\"; },\n"
        "  { name = \"none\"; ordering = \"none\"; },\n"
        "  { name = \"serial\"; handler = \"discard\"; ordering = \"stream\"; },\n"
        "  { name = \"orders\"; handler = \"http\"; url = \"http://h/o\";\n"
        "    ordering = \"key\"; key_field = \"customer\"; },\n"
        "  { key_field = \"user id\"; ordering = \"key\"; name = \"jobs\"; handler = \"exec\";\n"
        "    command = [ \"/bin/true\" ]; }\n"
        ");\n";
    rs_config_t *a = expect_loaded(fx->dir, text);

    /* left out: "none", no key_field */
    assert_int_equal(a->nstreams, 5);
    assert_int_equal(a->streams[0].ordering, RS_ORDERING_NONE);
    assert_null(a->streams[0].key_field);
    /* each word, with any handler; key_field (any text) only with "key", in any key order */
    assert_int_equal(a->streams[1].ordering, RS_ORDERING_NONE);
    assert_null(a->streams[1].key_field);
    assert_int_equal(a->streams[2].ordering, RS_ORDERING_STREAM);
    assert_null(a->streams[2].key_field);
    assert_int_equal(a->streams[3].ordering, RS_ORDERING_KEY);
    assert_string_equal(a->streams[3].key_field, "customer");
    assert_string_equal(a->streams[3].http.url, "http://h/o");
    assert_int_equal(a->streams[4].ordering, RS_ORDERING_KEY);
    assert_string_equal(a->streams[4].key_field, "user id");
    assert_int_equal(a->streams[4].handler, RS_HANDLER_EXEC);

    /* the words as written in files, and a value outside the enum */
    assert_string_equal(rs_ordering_name(RS_ORDERING_NONE), "none");
    assert_string_equal(rs_ordering_name(RS_ORDERING_STREAM), "stream");
    assert_string_equal(rs_ordering_name(RS_ORDERING_KEY), "key");
    assert_string_equal(rs_ordering_name((rs_ordering_t)42), "?");

    /* the summary names a stream's ordering, and key_field with "key"; "none" adds nothing */
    char *sum = summary_of(a);
    assert_contains(sum, "  plain                    handler log\n");
    assert_contains(sum, "  none                     handler log\n");
    assert_contains(sum, "  serial                   handler discard, ordering stream\n");
    assert_contains(sum,
                    "  orders                   handler http, ordering key (key_field customer)\n"
                    "                             POST http://h/o");
    assert_contains(sum,
                    "  jobs                     handler exec, ordering key (key_field user id)\n");
    free(sum);

    /* a copy carries both, key_field in a string of its own */
    for (size_t i = 0; i < a->nstreams; i++) {
        rs_stream_config_t *copy = rs_stream_config_dup(&a->streams[i]);
        assert_non_null(copy);
        assert_true(rs_stream_config_equal(copy, &a->streams[i]));
        assert_int_equal(copy->ordering, a->streams[i].ordering);
        if (a->streams[i].key_field == NULL) {
            assert_null(copy->key_field);
        } else {
            assert_string_equal(copy->key_field, a->streams[i].key_field);
            assert_ptr_not_equal(copy->key_field, a->streams[i].key_field);
        }
        rs_stream_config_free(copy);
    }

    /* the same text again: equal stream by stream */
    rs_config_t *same = expect_loaded(fx->dir, text);
    for (size_t i = 0; i < a->nstreams; i++)
        assert_true(rs_stream_config_equal(&a->streams[i], &same->streams[i]));
    rs_config_free(same);

    /* each change of ordering or key_field makes the entry differ (the reload restarts the
     * stream); an explicit "none" equals one left out; none of it is a restart key */
    rs_config_t *b =
        expect_loaded(fx->dir, "streams = (\n"
                               "  { name = \"plain\"; ordering = \"stream\"; },\n"
                               "  { name = \"none\"; },\n"
                               "  { name = \"serial\"; handler = \"discard\"; },\n"
                               "  { name = \"orders\"; handler = \"http\"; url = \"http://h/o\";\n"
                               "    ordering = \"key\"; key_field = \"Customer\"; },\n"
                               "  { name = \"jobs\"; handler = \"exec\"; ordering = \"stream\";\n"
                               "    command = [ \"/bin/true\" ]; }\n"
                               ");\n");
    assert_false(rs_stream_config_equal(&a->streams[0], &b->streams[0])); /* none -> stream */
    assert_true(rs_stream_config_equal(&a->streams[1], &b->streams[1]));  /* none either way */
    assert_false(rs_stream_config_equal(&a->streams[2], &b->streams[2])); /* stream -> none */
    assert_false(rs_stream_config_equal(&a->streams[3], &b->streams[3])); /* another key_field */
    assert_false(rs_stream_config_equal(&a->streams[4], &b->streams[4])); /* key -> stream */
    assert_false(rs_stream_config_equal(&b->streams[4], &a->streams[4])); /* and back */
    char out[128];
    assert_int_equal(rs_config_restart_keys(a, b, out, sizeof(out)), 0);
    rs_config_free(a);
    rs_config_free(b);
}

static void config_restart_keys_named(void **state)
{
    const fixture_t *fx = *state;
    char out[256];
    rs_config_t *a = expect_loaded(fx->dir, "workers = { threads = 4; };\n");
    rs_config_t *b =
        expect_loaded(fx->dir, "workers = { threads = 4; };\n"
                               "log = { level = \"debug\"; };\n"
                               "producer = { interval_ms = 5; };\n"
                               "streams = ( { name = \"other\"; handler = \"log\"; } );\n");
    rs_config_t *c = expect_loaded(fx->dir, "workers = { threads = 2; };\n"
                                            "redis = { port = 7000; password = \"other\"; };\n"
                                            "tracing = { sample_ratio = 0.5; };\n");

    /* streams, log and producer settings are not restart keys */
    assert_int_equal(rs_config_restart_keys(a, b, out, sizeof(out)), 0);
    assert_string_equal(out, "");
    /* each changed key is named, the password by name only */
    assert_int_equal(rs_config_restart_keys(a, c, out, sizeof(out)), 4);
    assert_string_equal(out, "redis.port, redis.password, workers.threads, tracing.sample_ratio");
    /* a short buffer truncates the list, the count stays right */
    assert_int_equal(rs_config_restart_keys(a, c, out, 12), 4);
    assert_string_equal(out, "redis.port,");
    rs_config_free(a);
    rs_config_free(b);
    rs_config_free(c);
}

/* A file larger than RS_CONFIG_MAX_BYTES is refused before libconfig parses it (its scanner
 * is quadratic in the length of a token); up to the limit it is parsed; a NUL byte is named
 * with its line. */
static void config_rejects_oversized_and_binary(void **state)
{
    const fixture_t *fx = *state;
    char err[1024] = "";
    size_t max = RS_CONFIG_MAX_BYTES;
    char *text = malloc(max + 2);
    assert_non_null(text);

    /* exactly the limit, in short comment lines: accepted */
    for (size_t i = 0; i < max; i++)
        text[i] = i % 64 == 63 ? '\n' : (i % 64 == 0 ? '#' : 'x');
    text[max - 1] = '\n';
    text[max] = '\0';
    rs_config_t *cfg = expect_loaded(fx->dir, text);
    assert_true(cfg->sets_nothing);
    rs_config_free(cfg);

    /* one byte more: refused, naming the file and the limit */
    text[max] = '#';
    text[max + 1] = '\0';
    char *path = write_config(fx->dir, text);
    assert_null(rs_config_load(path, err, sizeof(err)));
    char want[PATH_MAX + 128];
    snprintf(want, sizeof(want), "%s: too large: more than %d bytes", path, RS_CONFIG_MAX_BYTES);
    assert_contains(err, want);
    unlink(path);
    free(path);
    /* the string loader says the same */
    assert_null(rs_config_load_string(text, max + 1, "mem.conf", err, sizeof(err)));
    assert_contains(err, "mem.conf: too large: more than");
    free(text);

    /* a NUL byte on line 3 */
    static const char nul[] = "# one\nlog = { level = \"info\"; };\n# three \0 and more\n";
    path = write_temp(fx->dir, nul, sizeof(nul) - 1, 0644);
    assert_null(rs_config_load(path, err, sizeof(err)));
    snprintf(want, sizeof(want), "%s:3: contains a NUL byte", path);
    assert_contains(err, want);
    unlink(path);
    free(path);
}

/* What an @include names is checked before libconfig opens it: libconfig 1.5 exits the
 * process on a directory, reads a FIFO or a device without end, and has no size limit. Each
 * refusal names the file and line of the directive and the problem, on one line. */
static void config_checks_include_targets(void **state)
{
    const fixture_t *fx = *state;
    char sub[PATH_MAX + 8], fifo[PATH_MAX + 16];

    snprintf(sub, sizeof(sub), "%s/sub", fx->dir);
    assert_int_equal(mkdir(sub, 0755), 0);
    snprintf(fifo, sizeof(fifo), "%s/pipe.inc", fx->dir);
    assert_int_equal(mkfifo(fifo, 0644), 0);
    free(write_named(fx->dir, "ok.inc", "log = { level = \"debug\"; };\n", 0644));
    free(write_named(fx->dir, "loop_a.inc", "\n@include \"loop_b.inc\"\n", 0644));
    free(write_named(fx->dir, "loop_b.inc", "@include \"loop_a.inc\"\n", 0644));
    static const struct {
        const char *text;
        int line;           /* of the directive in the main file */
        const char *phrase; /* in the message */
    } refused[] = {
        /* a directory: libconfig would exit(2) */
        {"@include \"sub\"\n", 1, "/sub is a directory"},
        /* "" and "." are the include directory itself */
        {"\n@include \"\"\n", 2, "@include \"\": the name is empty"},
        {"@include \".\"\n", 1, "is a directory"},
        /* missing */
        {"@include \"absent.inc\"\n", 1, "absent.inc: No such file or directory"},
        /* a FIFO would block the load; a device would never end */
        {"@include \"pipe.inc\"\n", 1, "pipe.inc is not a regular file"},
        {"@include \"../../../../../../../../dev/zero\"\n", 1, "is not a regular file"},
        /* libconfig resolves every name against the include directory */
        {"@include \"/etc/hostname\"\n", 1, "an absolute path is not supported"},
        /* how libconfig unescapes a name is not guessed */
        {"@include \"ok\\\\.inc\"\n", 1, "a backslash in the name is not supported"},
        /* blanks before the directive and between it and the name, as libconfig allows */
        {"workers = { threads = 2; };\n \t@include \t \"sub\"\n", 2, "is a directory"},
        /* a loop through two included files */
        {"@include \"loop_a.inc\"\n", 0, "loop_b.inc:1: @include \"loop_a.inc\": includes"},
    };

    for (size_t i = 0; i < ARRAY_LEN(refused); i++) {
        char err[1024] = "";
        char *path = write_config(fx->dir, refused[i].text);
        if (rs_config_load(path, err, sizeof(err)) != NULL)
            fail_msg("accepted:\n%s", refused[i].text);
        if (refused[i].line > 0) {
            char where[PATH_MAX + 32];
            snprintf(where, sizeof(where), "%s:%d: @include ", path, refused[i].line);
            assert_contains(err, where);
        }
        assert_contains(err, refused[i].phrase);
        assert_null(strchr(err, '\n'));
        unlink(path);
        free(path);
    }

    /* the file including itself */
    char err[1024] = "";
    char *self = write_named(fx->dir, "self.conf", "# me again\n@include \"self.conf\"\n", 0644);
    assert_null(rs_config_load(self, err, sizeof(err)));
    assert_contains(err, ":2: @include \"self.conf\": includes");
    assert_contains(err, "(an include loop)");
    free(self);

    /* nesting: libconfig opens at most 10 includes at once; 10 pass, 11 are refused */
    for (int depth = 10; depth <= 11; depth++) {
        for (int k = 1; k <= depth; k++) {
            char name[32], body[64];
            snprintf(name, sizeof(name), "n%d.inc", k);
            if (k < depth)
                snprintf(body, sizeof(body), "@include \"n%d.inc\"\n", k + 1);
            else
                snprintf(body, sizeof(body), "log = { level = \"warn\"; };\n");
            free(write_named(fx->dir, name, body, 0644));
        }
        char *path = write_config(fx->dir, "@include \"n1.inc\"\n");
        rs_config_t *cfg = rs_config_load(path, err, sizeof(err));
        if (depth == 10) {
            if (cfg == NULL)
                fail_msg("10 nested includes refused: %s", err);
            assert_int_equal(cfg->log.level, RS_LOG_WARN);
            rs_config_free(cfg);
        } else {
            assert_null(cfg);
            assert_contains(err,
                            "n10.inc:1: @include \"n11.inc\": includes are nested more than 10");
        }
        unlink(path);
        free(path);
    }

    /* the file and its includes together may not pass the limit */
    size_t half = RS_CONFIG_MAX_BYTES / 2 + 1;
    char *big = malloc(half + 1);
    assert_non_null(big);
    for (size_t i = 0; i < half; i++)
        big[i] = i % 64 == 63 ? '\n' : (i % 64 == 0 ? '#' : 'x');
    big[half - 1] = '\n';
    big[half] = '\0';
    free(write_named(fx->dir, "big.inc", big, 0644));
    free(big);
    char *path = write_config(fx->dir, "@include \"big.inc\"\n@include \"big.inc\"\n");
    assert_null(rs_config_load(path, err, sizeof(err)));
    assert_contains(err, ":2: @include \"big.inc\": too large");
    unlink(path);
    free(path);

    /* directives libconfig does not follow are not checked: in a block comment, in a line
     * comment, inside a string, not at the start of a line */
    rs_config_t *cfg = expect_loaded(
        fx->dir, "/*\n@include \"sub\"\n*/\n# @include \"sub\"\n// @include \"sub\"\n"
                 "producer = { stream = \"@include \\\"sub\\\"\"; };\n@include \"ok.inc\"\n");
    assert_int_equal(cfg->log.level, RS_LOG_DEBUG);
    assert_string_equal(cfg->producer.stream, "@include \"sub\"");
    rs_config_free(cfg);
    expect_rejected(fx->dir, "log = { }; @include \"sub\"\n", 1, NULL, "syntax error");
}

/* Cluster mode (redis.cluster, redis.nodes): the seeds, the refusals that name the setting,
 * and the dead-letter names that keep a stream's dead letters on its slot. */
static void config_cluster_mode(void **state)
{
    fixture_t *fx = *state;
    char host[256], err[256];
    int port = 0;

    /* Off by default; the one seed is then redis.host:port. */
    rs_config_t *cfg = expect_loaded(fx->dir, "log = { level = \"info\"; };\n");
    assert_false(cfg->redis.cluster);
    assert_int_equal(cfg->redis.nodes.n, 0);
    assert_int_equal(rs_config_cluster_seed(cfg, 0, host, sizeof(host), &port), 0);
    assert_string_equal(host, "127.0.0.1");
    assert_int_equal(port, 6380);
    assert_int_equal(rs_config_cluster_seed(cfg, 1, host, sizeof(host), &port), -1);
    rs_config_free(cfg);

    /* Seeds in the file, IPv6 bracketed; --redis-addr replaces them. */
    cfg = expect_loaded(fx->dir, "redis = { cluster = true;\n"
                                 "  nodes = [ \"10.0.0.1:7000\", \"[::1]:7001\" ]; };\n");
    assert_true(cfg->redis.cluster);
    assert_int_equal(cfg->redis.nodes.n, 2);
    assert_int_equal(rs_config_cluster_seed(cfg, 1, host, sizeof(host), &port), 0);
    assert_string_equal(host, "::1");
    assert_int_equal(port, 7001);
    assert_int_equal(rs_config_set_cluster_seed(cfg, "h:9", "--redis-addr", err, sizeof(err)), 0);
    assert_int_equal(cfg->redis.nodes.n, 1);
    assert_int_equal(rs_config_cluster_seed(cfg, 0, host, sizeof(host), &port), 0);
    assert_string_equal(host, "h");
    assert_int_equal(port, 9);
    assert_int_equal(rs_config_set_cluster_seed(cfg, "h", "--redis-addr", err, sizeof(err)), -1);
    assert_contains(err, "--redis-addr: 'h' has no port");

    /* Dead-letter names: a tag keeps the name; otherwise the stream becomes the tag. */
    char dlq[64];
    assert_int_equal(rs_config_dlq_name(cfg, "orders", dlq, sizeof(dlq), err, sizeof(err)), 0);
    assert_string_equal(dlq, "{orders}:dlq");
    assert_int_equal(rs_config_dlq_name(cfg, "{eu}.orders", dlq, sizeof(dlq), err, sizeof(err)), 0);
    assert_string_equal(dlq, "{eu}.orders:dlq");
    cfg->redis.cluster = false; /* standalone: as it always was */
    assert_int_equal(rs_config_dlq_name(cfg, "orders", dlq, sizeof(dlq), err, sizeof(err)), 0);
    assert_string_equal(dlq, "orders:dlq");
    rs_config_free(cfg);

    /* Settings refused, each naming the line and the setting. */
    expect_rejected(fx->dir, "redis = {\n cluster = true;\n db = 2;\n};\n", 3, "redis.db",
                    "must be 0 with redis.cluster = true");
    expect_rejected(fx->dir, "redis = {\n nodes = [ \"a:1\", \"b\" ];\n};\n", 2, "redis.nodes[1]",
                    "'b' has no port");
    expect_rejected(fx->dir, "redis = {\n nodes = [ \"a:0\" ];\n};\n", 2, "redis.nodes[0]",
                    "port must be a number between 1 and 65535");
    expect_rejected(fx->dir, "redis = { cluster = \"yes\"; };\n", 1, "redis.cluster", "");
    /* A stream whose slot no dead-letter name could share. */
    expect_rejected(fx->dir,
                    "redis = { cluster = true; };\nstreams = (\n  { name = \"a}b\"; }\n);\n", 3,
                    "streams[0].name", "hash tag");
    /* The cluster name of a dead-letter stream, listed as a stream. */
    expect_rejected(fx->dir,
                    "redis = { cluster = true; };\nstreams = (\n  { name = \"ev\"; },\n"
                    "  { name = \"{ev}:dlq\"; }\n);\n",
                    4, "streams[1].name", "dead letters of stream 'ev'");
    /* ... which is no clash in standalone mode. */
    cfg = expect_loaded(fx->dir,
                        "streams = (\n  { name = \"ev\"; },\n  { name = \"{ev}:dlq\"; }\n);\n");
    rs_config_free(cfg);
}

#define FIXTURE_TEST(f) cmocka_unit_test_setup_teardown(f, fixture_setup, fixture_teardown)

int main(void)
{
    /* One test per line reads better than the grid clang-format would pack them into. */
    /* clang-format off */
    const struct CMUnitTest tests[] = {
        FIXTURE_TEST(config_defaults_match_spec),
        FIXTURE_TEST(config_example_matches_defaults),
        FIXTURE_TEST(config_rejects_bad_settings),
        FIXTURE_TEST(config_accepts_valid_variants),
        FIXTURE_TEST(config_reports_included_file),
        FIXTURE_TEST(config_env_overrides_password),
        FIXTURE_TEST(config_password_file_is_read),
        FIXTURE_TEST(config_password_file_is_refused),
        FIXTURE_TEST(config_rejects_unusable_paths),
        FIXTURE_TEST(config_empty_and_comments_only),
        FIXTURE_TEST(config_rejects_garbage),
        FIXTURE_TEST(config_load_string_matches_file),
        FIXTURE_TEST(config_load_string_rejects_nul),
        FIXTURE_TEST(config_set_redis_addr_accepts),
        FIXTURE_TEST(config_set_redis_addr_rejects),
        FIXTURE_TEST(config_summary_hides_password),
        FIXTURE_TEST(config_url_redacted),
        FIXTURE_TEST(config_handler_settings),
        FIXTURE_TEST(config_set_string_and_names),
        FIXTURE_TEST(config_credential_password),
        FIXTURE_TEST(config_stream_copy_and_compare),
        FIXTURE_TEST(config_stream_ordering),
        FIXTURE_TEST(config_restart_keys_named),
        FIXTURE_TEST(config_rejects_oversized_and_binary),
        FIXTURE_TEST(config_checks_include_targets),
        FIXTURE_TEST(config_cluster_mode),
    };
    /* clang-format on */
    return cmocka_run_group_tests(tests, NULL, NULL);
}
