/*
 * The configuration both programs share: built-in defaults, loading a libconfig file (or the
 * same text held in memory) on top of them, the REDSTREAM_REDIS_PASSWORD override, the
 * --redis-addr style override and the --check-config summary.
 *
 * This is where input from the configuration file enters the program, so everything is
 * validated here and what leaves (an rs_config_t) is trusted by the rest of the service: every
 * number is in its documented range, every required string is non-empty, every stream name is
 * unique and has a known handler and ordering (with a key_field exactly when it is "key"). A
 * rejection produces one message, "FILE:LINE: SETTING: problem", and nothing else is
 * reported; the caller decides what happens next.
 *
 * DESIGN: the accepted keys are described by tables (one per section, one for the keys every
 * stream entry takes, one per handler kind for keys only that handler takes) that give each
 * key's kind, the offset of its field and its range. One generic routine applies a key from a
 * table, and the same tables drive "unknown setting" detection and the "did you mean"
 * suggestion, so a key cannot be accepted without being known or known without being checked.
 * Checks that involve several keys (password vs password_file, a stream consuming another
 * stream's dead letters) run after the keys they involve have passed on their own. The file
 * is walked in its own order, so the first problem in the file is the one reported. The
 * loader builds a complete configuration from the defaults and hands it over only when
 * everything passed; on failure it frees it, so a caller never sees a half-loaded
 * configuration. There is no shared state: any thread may load, and each rs_config_t is owned
 * by one caller. Strings in rs_config_t are always heap copies so rs_config_free() can free
 * them uniformly, and every string replaced or freed is wiped first because one of them is
 * the Redis password.
 */

#include "config.h"

#include "cluster_slot.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <libconfig.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* The longest first line accepted from redis.password_file. */
#define PASSWORD_FILE_MAX 4096

/* Suggest a known key for an unknown one only when it is this close (edit distance). */
#define SUGGEST_MAX_DISTANCE 2

/* Room for a setting's path in messages, e.g. "streams[12].handler". */
#define SETTING_PATH_MAX 256

/* ------------------------------------------------------------------------------------------ */
/* Defaults: the only place they are written down (config/redstream.conf shows the same).     */

static const char *const default_streams[] = {"events", "logs", "notifications"};

/* Used as the consumer name when the host name cannot be read. */
#define FALLBACK_CONSUMER "redstream"

/* ------------------------------------------------------------------------------------------ */
/* Small helpers.                                                                             */

/* Frees a string that may hold a secret; wiping every string costs nothing at this size and
 * spares callers of rs_config_set_string() from knowing which slot is the password. */
static void wipe_free(char *s)
{
    if (s != NULL) {
        explicit_bzero(s, strlen(s));
        free(s);
    }
}

/* strerror() is not thread-safe and rs_config_load() may run on any thread; _GNU_SOURCE
 * selects the GNU strerror_r, which returns the text (possibly a static string). */
static const char *errno_text(int errnum, char *buf, size_t buflen)
{
    return strerror_r(errnum, buf, buflen);
}

int rs_config_set_string(char **slot, const char *value)
{
    char *copy = NULL;

    if (value != NULL) {
        copy = strdup(value);
        if (copy == NULL)
            return -1;
    }
    wipe_free(*slot);
    *slot = copy;
    return 0;
}

/* Wiped like every string: a webhook header is typically an Authorization token. */
static void free_string_list(rs_string_list_t *list)
{
    if (list->items != NULL) {
        for (size_t i = 0; i < list->n; i++)
            wipe_free(list->items[i]);
        free(list->items);
    }
    list->items = NULL;
    list->n = 0;
}

static void free_streams(rs_stream_config_t *streams, size_t n)
{
    if (streams == NULL)
        return;
    for (size_t i = 0; i < n; i++) {
        free(streams[i].name);
        free(streams[i].key_field);
        free_string_list(&streams[i].exec.command);
        wipe_free(streams[i].http.url); /* may carry user:password@ */
        free(streams[i].http.method);
        free_string_list(&streams[i].http.headers);
        free(streams[i].http.ca_file);
    }
    free(streams);
}

/* Reads the first line of the secret file `path` into a new string in `*out` (caller wipes and
 * frees it). With `private_only`, refuses a file that group or others may read: the point of a
 * password file is that only the service's user sees the secret. Returns 0, or -1 with the
 * problem in `why` (never the file's contents). */
static int read_secret_file(const char *path, bool private_only, char **out, char *why,
                            size_t whylen)
{
    char ebuf[128];
    char buf[PASSWORD_FILE_MAX + 1];
    struct stat st;
    size_t len = 0;
    int rc = -1;

    /* O_NONBLOCK: opening a named pipe no one writes to would otherwise wait forever; it is
     * refused below as not a regular file, and a regular file reads the same either way. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        snprintf(why, whylen, "cannot read %s: %s", path, errno_text(errno, ebuf, sizeof(ebuf)));
        return -1;
    }
    /* fstat on the open descriptor, so the file checked is the file read. */
    if (fstat(fd, &st) != 0) {
        snprintf(why, whylen, "cannot read %s: %s", path, errno_text(errno, ebuf, sizeof(ebuf)));
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(why, whylen, "%s is not a regular file", path);
        goto out;
    }
    if (private_only && (st.st_mode & 077) != 0) {
        snprintf(why, whylen, "%s is readable by group or others (mode %03o); chmod 600 %s", path,
                 (unsigned)(st.st_mode & 0777), path);
        goto out;
    }
    while (len < sizeof(buf) - 1) {
        ssize_t got = read(fd, buf + len, sizeof(buf) - 1 - len);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            snprintf(why, whylen, "cannot read %s: %s", path,
                     errno_text(errno, ebuf, sizeof(ebuf)));
            goto out;
        }
        if (got == 0)
            break;
        len += (size_t)got; /* got > 0 here */
    }
    char *nl = memchr(buf, '\n', len);
    if (nl == NULL && len == sizeof(buf) - 1) {
        snprintf(why, whylen, "the first line of %s is longer than %d bytes", path,
                 PASSWORD_FILE_MAX - 1);
        goto out;
    }
    if (nl != NULL)
        len = (size_t)(nl - buf); /* nl points into buf */
    while (len > 0 && (buf[len - 1] == '\r' || buf[len - 1] == '\n'))
        len--;
    if (len == 0) {
        snprintf(why, whylen, "%s is empty (the password is its first line)", path);
        goto out;
    }
    if (memchr(buf, '\0', len) != NULL) {
        snprintf(why, whylen, "the first line of %s contains a NUL byte", path);
        goto out;
    }
    buf[len] = '\0';
    *out = strdup(buf);
    if (*out == NULL) {
        snprintf(why, whylen, "out of memory");
        goto out;
    }
    rc = 0;
out:
    explicit_bzero(buf, sizeof(buf));
    close(fd);
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* Built-in defaults.                                                                         */

static char *host_name_copy(void)
{
    /* gethostname() need not terminate a truncated name, so the last byte stays zero. */
    char host[256] = {0};

    if (gethostname(host, sizeof(host) - 1) != 0 || host[0] == '\0')
        return strdup(FALLBACK_CONSUMER);
    return strdup(host);
}

void rs_config_free(rs_config_t *cfg)
{
    if (cfg == NULL)
        return;
    free(cfg->path);
    free(cfg->redis.host);
    wipe_free(cfg->redis.password);
    free(cfg->redis.password_file);
    free(cfg->redis.username);
    free_string_list(&cfg->redis.nodes);
    free(cfg->group.name);
    free(cfg->group.consumer);
    free(cfg->group.start_id);
    free(cfg->group.dead_letter_suffix);
    free_streams(cfg->streams, cfg->nstreams);
    free(cfg->health.address);
    free(cfg->tracing.endpoint);
    free(cfg->tracing.service_name);
    free(cfg->producer.stream);
    free(cfg->producer.type);
    free(cfg);
}

/* The built-in defaults without the environment applied, so that rs_config_load() can apply
 * REDSTREAM_REDIS_PASSWORD once, after the file. */
static rs_config_t *config_defaults(void)
{
    rs_config_t *cfg = calloc(1, sizeof(*cfg));
    if (cfg == NULL)
        return NULL;

    cfg->redis.host = strdup("127.0.0.1");
    cfg->redis.port = 6380;
    cfg->redis.password = strdup("redis123");
    cfg->redis.password_source = RS_SECRET_DEFAULT;
    cfg->redis.password_file = NULL;
    cfg->redis.username = NULL;
    cfg->redis.db = 0;
    cfg->redis.connect_timeout_ms = 2000;

    cfg->group.name = strdup("workers");
    cfg->group.consumer = host_name_copy();
    cfg->group.start_id = strdup("0");
    cfg->group.read_count = 1000;
    cfg->group.block_ms = 5000;
    cfg->group.max_deliveries = 10;
    cfg->group.claim_idle_ms = 60000;
    cfg->group.retry_base_ms = 1000;
    cfg->group.retry_max_ms = 30000;
    cfg->group.idle_consumer_timeout_ms = 86400000;
    cfg->group.dead_letter_suffix = strdup(":dlq");

    cfg->workers.threads = 8;
    cfg->workers.queue_capacity = 1024;
    cfg->workers.shutdown_timeout_ms = 10000;

    cfg->health.address = strdup("127.0.0.1");
    cfg->health.port = 8083;
    cfg->health.liveness_timeout_ms = 30000;
    cfg->health.dashboard = true;

    cfg->tracing.enabled = false;
    cfg->tracing.endpoint = strdup("http://127.0.0.1:4318/v1/traces");
    cfg->tracing.service_name = strdup("redstream");
    cfg->tracing.sample_ratio = 1.0;

    cfg->producer.stream = strdup("events");
    cfg->producer.type = strdup("test");
    cfg->producer.interval_ms = 1000;

    cfg->log.level = RS_LOG_INFO;

    bool ok = cfg->redis.host != NULL && cfg->redis.password != NULL && cfg->group.name != NULL &&
              cfg->group.consumer != NULL && cfg->group.start_id != NULL &&
              cfg->group.dead_letter_suffix != NULL && cfg->health.address != NULL &&
              cfg->tracing.endpoint != NULL && cfg->tracing.service_name != NULL &&
              cfg->producer.stream != NULL && cfg->producer.type != NULL;

    cfg->streams = calloc(ARRAY_LEN(default_streams), sizeof(*cfg->streams));
    if (cfg->streams != NULL) {
        cfg->nstreams = ARRAY_LEN(default_streams);
        for (size_t i = 0; i < cfg->nstreams; i++) {
            cfg->streams[i].name = strdup(default_streams[i]);
            cfg->streams[i].handler = RS_HANDLER_LOG;
            cfg->streams[i].line = 0;
            ok = ok && cfg->streams[i].name != NULL;
        }
    }
    if (!ok || cfg->streams == NULL) {
        rs_config_free(cfg);
        return NULL;
    }
    return cfg;
}

/* The password's sources beyond the file, strongest first:
 *   1. REDSTREAM_REDIS_PASSWORD: set and non-empty, it is the password; set and empty, it means
 *      "no password" (the way to turn AUTH off without editing the file);
 *   2. the systemd credential RS_CREDENTIAL_REDIS_PASSWORD in $CREDENTIALS_DIRECTORY (the
 *      unit's LoadCredential=), when that file exists; systemd makes it readable by the
 *      service alone, so its mode is not checked;
 *   3. whatever the file and the defaults said.
 * Returns 0, or -1 with a message in `err` (an unreadable credential, out of memory). */
static int apply_environment(rs_config_t *cfg, char *err, size_t errlen)
{
    const char *env = getenv(RS_ENV_REDIS_PASSWORD);

    if (env != NULL && env[0] == '\0') {
        wipe_free(cfg->redis.password);
        cfg->redis.password = NULL;
        cfg->redis.password_source = RS_SECRET_NONE;
        return 0;
    }
    if (env != NULL) {
        if (rs_config_set_string(&cfg->redis.password, env) != 0) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        cfg->redis.password_source = RS_SECRET_ENVIRONMENT;
        return 0;
    }
    const char *dir = getenv("CREDENTIALS_DIRECTORY");
    if (dir == NULL || dir[0] == '\0')
        return 0;
    char path[PATH_MAX];
    struct stat st;
    if (snprintf(path, sizeof(path), "%s/%s", dir, RS_CREDENTIAL_REDIS_PASSWORD) >=
        (int)sizeof(path)) {
        snprintf(err, errlen, "$CREDENTIALS_DIRECTORY is too long");
        return -1;
    }
    if (stat(path, &st) != 0 && errno == ENOENT)
        return 0; /* the unit loads no such credential */
    char why[PATH_MAX + 128];
    char *password = NULL;
    if (read_secret_file(path, false, &password, why, sizeof(why)) != 0) {
        snprintf(err, errlen, "systemd credential %s: %s", RS_CREDENTIAL_REDIS_PASSWORD, why);
        return -1;
    }
    wipe_free(cfg->redis.password);
    cfg->redis.password = password;
    cfg->redis.password_source = RS_SECRET_CREDENTIAL;
    return 0;
}

rs_config_t *rs_config_new_defaults(char *err, size_t errlen)
{
    rs_config_t *cfg = config_defaults();

    if (err == NULL)
        errlen = 0; /* snprintf(NULL, 0, ...) is valid and writes nothing */
    if (cfg == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (apply_environment(cfg, err, errlen) != 0) {
        rs_config_free(cfg);
        return NULL;
    }
    return cfg;
}

/* ------------------------------------------------------------------------------------------ */
/* Error reporting while loading.                                                             */

typedef struct {
    const char *path; /* the configuration file as given (or the name of a text in memory) */
    char *dir;        /* its directory: the include dir and the base of relative paths */
    const char *text; /* the main file's text, NUL-terminated, when loaded from memory;
                       * NULL when libconfig reads the file itself */
    char *err;
    size_t errlen;
} loader_t;

/* The directory part of `path` ("." when there is none), as a new string. */
static char *directory_of(const char *path)
{
    const char *slash = strrchr(path, '/');

    if (slash == NULL)
        return strdup(".");
    if (slash == path)
        return strdup("/");
    return strndup(path, (size_t)(slash - path)); /* slash > path here */
}

/* Resolves `name` against the configuration file's directory unless it is absolute.
 * Returns 0, or -1 when the result does not fit. */
static int resolve_path(const loader_t *ld, const char *name, char *buf, size_t buflen)
{
    int n;

    if (name[0] == '/' || strcmp(ld->dir, ".") == 0)
        n = snprintf(buf, buflen, "%s", name);
    else
        n = snprintf(buf, buflen, "%s/%s", ld->dir, name);
    return (n < 0 || (size_t)n >= buflen) ? -1 : 0;
}

/* The file a setting or a parse error comes from, for messages and for re-reading. The main
 * file is read from a stream, so libconfig records no name for it (NULL) and it is `path`;
 * an @include is recorded under the name written in the directive, which libconfig resolved
 * against the include dir (the main file's directory), and doing the same here makes the
 * name usable from the caller's working directory. */
static void source_name(const loader_t *ld, const char *file, char *buf, size_t buflen)
{
    if (file == NULL || strcmp(file, ld->path) == 0 || resolve_path(ld, file, buf, buflen) != 0)
        snprintf(buf, buflen, "%s", file != NULL ? file : ld->path);
}

/* Reports "FILE:LINE: SETTING: problem" for the setting `where` (its file and line) and
 * returns -1 so callers can `return fail_at(...)`. */
__attribute__((format(printf, 4, 5))) static int fail_at(const loader_t *ld,
                                                         const config_setting_t *where,
                                                         const char *setting, const char *fmt, ...)
{
    char problem[512];
    char file[PATH_MAX];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(problem, sizeof(problem), fmt, ap);
    va_end(ap);

    source_name(ld, where != NULL ? config_setting_source_file(where) : NULL, file, sizeof(file));
    unsigned line = where != NULL ? config_setting_source_line(where) : 0;
    if (line > 0)
        snprintf(ld->err, ld->errlen, "%s:%u: %s: %s", file, line, setting, problem);
    else /* only the root has no line, and nothing is reported against the root itself */
        snprintf(ld->err, ld->errlen, "%s: %s: %s", file, setting, problem);
    return -1;
}

static int fail_oom(const loader_t *ld)
{
    snprintf(ld->err, ld->errlen, "%s: out of memory", ld->path);
    return -1;
}

/* "an integer", "a string", ...: what a setting is, for "must be X, got Y". */
static const char *type_phrase(int type)
{
    switch (type) {
    case CONFIG_TYPE_GROUP:
        return "a group";
    case CONFIG_TYPE_INT:
    case CONFIG_TYPE_INT64:
        return "an integer";
    case CONFIG_TYPE_FLOAT:
        return "a floating-point number";
    case CONFIG_TYPE_STRING:
        return "a string";
    case CONFIG_TYPE_BOOL:
        return "a boolean";
    case CONFIG_TYPE_ARRAY:
        return "an array";
    case CONFIG_TYPE_LIST:
        return "a list";
    default:
        return "an unknown type";
    }
}

/* Optimal string alignment distance (Levenshtein plus adjacent transpositions, since "raed"
 * for "read" is the typical typo). Names longer than the row buffers count as far apart. */
static size_t edit_distance(const char *a, const char *b)
{
    enum { MAXLEN = 64 };
    size_t la = strlen(a), lb = strlen(b);
    size_t rows[3][MAXLEN + 1];

    if (la > MAXLEN || lb > MAXLEN)
        return SIZE_MAX;
    size_t *prev2 = rows[0], *prev = rows[1], *cur = rows[2];
    for (size_t j = 0; j <= lb; j++)
        prev[j] = j;
    for (size_t i = 1; i <= la; i++) {
        cur[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
            size_t best = prev[j] + 1; /* deletion */
            if (cur[j - 1] + 1 < best)
                best = cur[j - 1] + 1; /* insertion */
            if (prev[j - 1] + cost < best)
                best = prev[j - 1] + cost; /* substitution */
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                prev2[j - 2] + 1 < best)
                best = prev2[j - 2] + 1; /* transposition */
            cur[j] = best;
        }
        size_t *t = prev2;
        prev2 = prev;
        prev = cur;
        cur = t;
    }
    return prev[lb];
}

/* The closest known name seen so far, fed one candidate at a time so that names from several
 * tables (a stream entry's common keys and its handler's keys) can compete. */
typedef struct {
    const char *typed;
    const char *best;
    size_t distance;
} suggestion_t;

static void suggest_consider(suggestion_t *sg, const char *known)
{
    size_t d = edit_distance(sg->typed, known);
    if (d <= SUGGEST_MAX_DISTANCE && (sg->best == NULL || d < sg->distance)) {
        sg->best = known;
        sg->distance = d;
    }
}

static int fail_unknown(const loader_t *ld, const config_setting_t *s, const char *setting,
                        const suggestion_t *sg)
{
    if (sg->best != NULL)
        return fail_at(ld, s, setting, "unknown setting (misspelled?), did you mean '%s'?",
                       sg->best);
    return fail_at(ld, s, setting, "unknown setting (misspelled?)");
}

/* ------------------------------------------------------------------------------------------ */
/* Reading integers.                                                                          */

static bool is_name_char(int c)
{
    return isalnum(c) || c == '_' || c == '-' || c == '*';
}

/* If `p` (just past a setting's name) continues with "= LITERAL" or ": LITERAL", copies the
 * integer literal into `num` and returns true. */
static bool literal_after_name(const char *p, char *num, size_t numlen)
{
    p += strspn(p, " \t");
    if (*p != '=' && *p != ':')
        return false;
    p++;
    p += strspn(p, " \t");
    size_t n = strspn(p, "+-0123456789abcdefABCDEFxX");
    if (n == 0 || n >= numlen)
        return false;
    memcpy(num, p, n);
    num[n] = '\0';
    return true;
}

/* Copies line `line` (1-based) of the setting's source into `text` as fgets() would: at most
 * textlen - 1 bytes, the newline included when it fits. The main file's text is taken from
 * memory when the loader has it; any other file is read again. Returns false when there is
 * no such line or the file cannot be read. */
static bool read_source_line(const loader_t *ld, const config_setting_t *s, unsigned line,
                             char *text, size_t textlen)
{
    const char *source = config_setting_source_file(s);

    if (ld->text != NULL && source == NULL) {
        const char *p = ld->text;
        for (unsigned at = 1; at < line && p != NULL; at++) {
            p = strchr(p, '\n');
            p = p != NULL ? p + 1 : NULL;
        }
        if (p == NULL || *p == '\0')
            return false;
        size_t n = strcspn(p, "\n");
        n += p[n] == '\n';
        n = n < textlen - 1 ? n : textlen - 1;
        memcpy(text, p, n);
        text[n] = '\0';
        return true;
    }
    char file[PATH_MAX];
    source_name(ld, source, file, sizeof(file));
    /* Only a regular file can be read twice; a pipe (-c <(...)) could block or be empty. */
    struct stat st;
    if (stat(file, &st) != 0 || !S_ISREG(st.st_mode))
        return false;
    FILE *fp = fopen(file, "re");
    if (fp == NULL)
        return false;
    for (unsigned at = 1; at < line;) {
        int c = getc(fp);
        if (c == EOF)
            break;
        if (c == '\n')
            at++;
    }
    bool have = fgets(text, (int)textlen, fp) != NULL; /* textlen is a small buffer's size */
    fclose(fp);
    return have;
}

/* libconfig 1.5 converts a decimal literal without the L suffix with atoi(), so
 * "port = 4294967297" arrives as 1 and would pass the range check. It keeps no copy of the
 * text, so this reads the setting's line again and parses the literal itself, skipping strings
 * and comments on the line. Returns true, with the literal in `lit`, when "NAME = LITERAL"
 * is found and its value differs from `parsed`. Best effort: when the line cannot be read or
 * no literal follows the name on it (a value on the next line, or a name inside a comment
 * opened on an earlier line), the parsed value stands; any candidate that matches `parsed`
 * clears the alarm, so a stray occurrence can never reject a correct value. */
static bool int_literal_truncated(const loader_t *ld, const config_setting_t *s, long long parsed,
                                  char *lit, size_t litlen)
{
    const char *name = config_setting_name(s);
    unsigned line = config_setting_source_line(s);
    char text[1024];
    bool mismatch = false, match = false;
    bool in_string = false, in_comment = false;

    if (name == NULL || line == 0 || !read_source_line(ld, s, line, text, sizeof(text)))
        return false;

    size_t nlen = strlen(name);
    for (size_t i = 0; text[i] != '\0' && !match; i++) {
        char c = text[i];
        if (in_string) {
            if (c == '\\' && text[i + 1] != '\0')
                i++;
            else if (c == '"')
                in_string = false;
            continue;
        }
        if (in_comment) {
            if (c == '*' && text[i + 1] == '/') {
                in_comment = false;
                i++;
            }
            continue;
        }
        if (c == '"') {
            in_string = true;
            continue;
        }
        if (c == '#' || (c == '/' && text[i + 1] == '/'))
            break;
        if (c == '/' && text[i + 1] == '*') {
            in_comment = true;
            i++;
            continue;
        }
        char num[64];
        if (strncmp(text + i, name, nlen) != 0 ||
            (i > 0 && is_name_char((unsigned char)text[i - 1])) ||
            !literal_after_name(text + i + nlen, num, sizeof(num)))
            continue;
        const char *digits = num + (num[0] == '+' || num[0] == '-');
        bool hex = digits[0] == '0' && (digits[1] == 'x' || digits[1] == 'X');
        char *end;
        errno = 0;
        long long v = strtoll(num, &end, hex ? 16 : 10);
        if (*end != '\0')
            continue; /* not an integer literal after all */
        if (errno != ERANGE && v == parsed) {
            match = true;
        } else if (!mismatch) {
            mismatch = true;
            snprintf(lit, litlen, "%s", num);
        }
    }
    /* The same line may hold the password. */
    explicit_bzero(text, sizeof(text));
    return mismatch && !match;
}

/* Reads an integer setting (int or int64). Returns 0 with the value, 1 when libconfig
 * truncated the literal (now in `lit`), -1 when the setting is not an integer. */
static int read_integer(const loader_t *ld, const config_setting_t *s, long long *out, char *lit,
                        size_t litlen)
{
    int type = config_setting_type(s);

    if (type != CONFIG_TYPE_INT && type != CONFIG_TYPE_INT64)
        return -1;
    *out = config_setting_get_int64(s);
    if (type == CONFIG_TYPE_INT && int_literal_truncated(ld, s, *out, lit, litlen))
        return 1;
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Key tables.                                                                                */

typedef enum {
    KEY_STRING,      /* char *, a heap copy */
    KEY_INT,         /* int in [min, max] */
    KEY_BOOL,        /* bool; only true or false */
    KEY_RATIO,       /* double in [0, 1], written as a float or an integer */
    KEY_LOG_LEVEL,   /* rs_log_level_t, written as its name */
    KEY_HANDLER,     /* rs_handler_kind_t, written as its name */
    KEY_ORDERING,    /* rs_ordering_t, written as its name */
    KEY_STRING_LIST, /* rs_string_list_t from an array or list of strings */
} key_kind_t;

#define KEY_NONEMPTY 0x1u /* KEY_STRING: "" is rejected; KEY_STRING_LIST: an empty list is */

/* Checks a string's text beyond non-emptiness. Returns 0, or -1 with the problem in `why`. */
typedef int (*string_check_fn)(const char *value, char *why, size_t whylen);

/* One accepted key. `offset` locates its field in the struct the table describes
 * (rs_config_t for sections, rs_stream_config_t for stream entries). */
typedef struct key_spec {
    const char *name;
    key_kind_t kind;
    size_t offset;
    long long min, max; /* KEY_INT */
    unsigned flags;
    string_check_fn check; /* KEY_STRING, and each element of a KEY_STRING_LIST; NULL when
                            * any text is fine */
} key_spec_t;

#define K_STRING(name, type, field, flags, check)                                                  \
    {                                                                                              \
        name, KEY_STRING, offsetof(type, field), 0, 0, flags, check                                \
    }
#define K_INT(name, type, field, min, max)                                                         \
    {                                                                                              \
        name, KEY_INT, offsetof(type, field), min, max, 0, NULL                                    \
    }
#define K_OTHER(name, kind, type, field)                                                           \
    {                                                                                              \
        name, kind, offsetof(type, field), 0, 0, 0, NULL                                           \
    }
#define K_LIST(name, type, field, flags, check)                                                    \
    {                                                                                              \
        name, KEY_STRING_LIST, offsetof(type, field), 0, 0, flags, check                           \
    }

/* Redis accepts "$" (only entries added from now on) or an entry id "MS" / "MS-SEQ", each part
 * a decimal 64-bit number; "0" is the smallest id and so means the whole history. */
static bool is_u64_decimal(const char *s, size_t n)
{
    if (n == 0 || n > 20 || strspn(s, "0123456789") < n)
        return false;
    char buf[21];
    memcpy(buf, s, n);
    buf[n] = '\0';
    errno = 0;
    (void)strtoull(buf, NULL, 10);
    return errno != ERANGE;
}

static int check_start_id(const char *value, char *why, size_t whylen)
{
    if (strcmp(value, "$") == 0)
        return 0;
    const char *dash = strchr(value, '-');
    bool ok = dash == NULL ? is_u64_decimal(value, strlen(value))
                           : is_u64_decimal(value, (size_t)(dash - value)) &&
                                 is_u64_decimal(dash + 1, strlen(dash + 1));
    if (ok)
        return 0;
    snprintf(why, whylen,
             "must be \"$\" (new entries only), \"0\" (the whole history) or an entry id "
             "such as \"1700000000000-0\", got '%s'",
             value);
    return -1;
}

/* A stream's name is written into every entry's JSON, which only holds UTF-8: a name that is
 * not would make every handler fail every entry. jansson's own test decides, as it does when
 * the entry is encoded. */
static int check_stream_name(const char *value, char *why, size_t whylen)
{
    json_t *probe = json_stringn(value, strlen(value)); /* NULL for invalid UTF-8 */
    bool utf8 = probe != NULL;
    json_decref(probe);
    if (utf8)
        return 0;
    snprintf(why, whylen, "must be valid UTF-8 (it is written into each entry's JSON)");
    return -1;
}

static int check_endpoint(const char *value, char *why, size_t whylen)
{
    const char *rest = NULL;

    if (strncasecmp(value, "http://", 7) == 0)
        rest = value + 7;
    else if (strncasecmp(value, "https://", 8) == 0)
        rest = value + 8;
    if (rest != NULL && rest[0] != '\0' && rest[0] != '/')
        return 0;
    snprintf(why, whylen, "must start with http:// or https:// and name a host, got '%s'", value);
    return -1;
}

/* A cluster seed must say where to connect: "host:port", the port included. */
static int check_node(const char *value, char *why, size_t whylen)
{
    char host[256];
    int port;
    return rs_config_parse_node(value, NULL, host, sizeof(host), &port, why, whylen);
}

static const key_spec_t redis_keys[] = {
    K_STRING("host", rs_config_t, redis.host, KEY_NONEMPTY, NULL),
    K_INT("port", rs_config_t, redis.port, 1, 65535),
    /* "" is allowed and means no AUTH; password and password_file are reconciled in
     * finish_redis(). */
    K_STRING("password", rs_config_t, redis.password, 0, NULL),
    K_STRING("password_file", rs_config_t, redis.password_file, KEY_NONEMPTY, NULL),
    K_STRING("username", rs_config_t, redis.username, KEY_NONEMPTY, NULL),
    K_INT("db", rs_config_t, redis.db, 0, 1000000),
    K_INT("connect_timeout_ms", rs_config_t, redis.connect_timeout_ms, 1, 600000),
    K_OTHER("cluster", KEY_BOOL, rs_config_t, redis.cluster),
    K_LIST("nodes", rs_config_t, redis.nodes, 0, check_node),
};

static const key_spec_t group_keys[] = {
    K_STRING("name", rs_config_t, group.name, KEY_NONEMPTY, NULL),
    K_STRING("consumer", rs_config_t, group.consumer, KEY_NONEMPTY, NULL),
    K_STRING("start_id", rs_config_t, group.start_id, KEY_NONEMPTY, check_start_id),
    K_INT("read_count", rs_config_t, group.read_count, 1, 100000),
    K_INT("block_ms", rs_config_t, group.block_ms, 1, 600000),
    K_INT("max_deliveries", rs_config_t, group.max_deliveries, 1, 1000000),
    K_INT("claim_idle_ms", rs_config_t, group.claim_idle_ms, 1, 604800000),
    K_INT("retry_base_ms", rs_config_t, group.retry_base_ms, 1, 3600000),
    K_INT("retry_max_ms", rs_config_t, group.retry_max_ms, 1, 3600000),
    K_INT("idle_consumer_timeout_ms", rs_config_t, group.idle_consumer_timeout_ms, 0, INT_MAX),
    K_STRING("dead_letter_suffix", rs_config_t, group.dead_letter_suffix, KEY_NONEMPTY, NULL),
};

static const key_spec_t workers_keys[] = {
    K_INT("threads", rs_config_t, workers.threads, 1, 1024),
    K_INT("queue_capacity", rs_config_t, workers.queue_capacity, 1, 1048576),
    K_INT("shutdown_timeout_ms", rs_config_t, workers.shutdown_timeout_ms, 0, 3600000),
};

static const key_spec_t health_keys[] = {
    K_STRING("address", rs_config_t, health.address, KEY_NONEMPTY, NULL),
    K_INT("port", rs_config_t, health.port, 1, 65535),
    K_INT("liveness_timeout_ms", rs_config_t, health.liveness_timeout_ms, 1000, 3600000),
    K_OTHER("dashboard", KEY_BOOL, rs_config_t, health.dashboard),
};

static const key_spec_t tracing_keys[] = {
    K_OTHER("enabled", KEY_BOOL, rs_config_t, tracing.enabled),
    K_STRING("endpoint", rs_config_t, tracing.endpoint, KEY_NONEMPTY, check_endpoint),
    K_STRING("service_name", rs_config_t, tracing.service_name, KEY_NONEMPTY, NULL),
    K_OTHER("sample_ratio", KEY_RATIO, rs_config_t, tracing.sample_ratio),
};

static const key_spec_t producer_keys[] = {
    K_STRING("stream", rs_config_t, producer.stream, KEY_NONEMPTY, NULL),
    K_STRING("type", rs_config_t, producer.type, KEY_NONEMPTY, NULL),
    K_INT("interval_ms", rs_config_t, producer.interval_ms, 0, 86400000),
};

static const key_spec_t log_keys[] = {
    K_OTHER("level", KEY_LOG_LEVEL, rs_config_t, log.level),
};

/* Keys every stream entry takes, whatever its handler. ordering and key_field go together:
 * check_ordering() runs after the entry's keys. */
static const key_spec_t stream_keys[] = {
    K_STRING("name", rs_stream_config_t, name, KEY_NONEMPTY, check_stream_name),
    K_OTHER("handler", KEY_HANDLER, rs_stream_config_t, handler),
    K_OTHER("ordering", KEY_ORDERING, rs_stream_config_t, ordering),
    K_STRING("key_field", rs_stream_config_t, key_field, KEY_NONEMPTY, NULL),
};

/* The configuration words of rs_ordering_t, indexed by its values. */
static const char *const ordering_names[] = {
    [RS_ORDERING_NONE] = "none",
    [RS_ORDERING_STREAM] = "stream",
    [RS_ORDERING_KEY] = "key",
};

const char *rs_ordering_name(rs_ordering_t ordering)
{
    return (size_t)ordering < ARRAY_LEN(ordering_names) ? ordering_names[ordering] : "?";
}

/* ------------------------------------------------------------------------------------------ */
/* Handlers.                                                                                  */

/* One handler kind. `keys` lists the keys only this kind accepts inside a stream entry, with
 * offsets into rs_stream_config_t, so parsing, unknown-key detection and suggestions pick
 * them up without further code. `defaults` (NULL: none) sets the kind's defaults before the
 * entry's keys are read; `finish` (NULL: none) runs after every key passed on its own, for
 * required keys and checks that involve several. Both return 0 or -1 with the message set. */
typedef struct {
    rs_handler_kind_t kind;
    const char *name;
    const key_spec_t *keys;
    size_t nkeys;
    int (*defaults)(const loader_t *ld, rs_stream_config_t *sc);
    int (*finish)(const loader_t *ld, const config_setting_t *entry, const char *base,
                  rs_stream_config_t *sc);
} handler_spec_t;

/* HTTP header names are RFC 9110 tokens. */
#define HTTP_TOKEN_CHARS                                                                           \
    "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"

/* Headers the http handler writes itself: a configured copy would contradict the body or the
 * retry semantics. */
static const char *const reserved_headers[] = {"Content-Type", "Content-Length",
                                               "Transfer-Encoding", "Idempotency-Key"};

/* "Name: value". Values are often credentials (Authorization), so no message quotes the
 * value: only the name, which is not secret, and the offending character. */
static int check_header(const char *value, char *why, size_t whylen)
{
    size_t nlen = strspn(value, HTTP_TOKEN_CHARS);
    int nl = nlen > 64 ? 64 : (int)nlen; /* the name as printed; bounded */

    if (nlen == 0 || value[nlen] != ':') {
        unsigned char c = (unsigned char)value[nlen];
        if (nlen == 0 && c == ':')
            snprintf(why, whylen, "must be \"Name: value\", got an empty name");
        else if (nlen == 0)
            snprintf(why, whylen,
                     "must be \"Name: value\", the name made of letters, digits and "
                     "!#$%%&'*+-.^_`|~");
        else if (c == '\0')
            snprintf(why, whylen, "must be \"Name: value\", with a ':' after the name");
        else if (isprint(c))
            snprintf(why, whylen, "must be \"Name: value\": the name '%.*s' is followed by '%c'",
                     nl, value, c);
        else
            snprintf(why, whylen,
                     "must be \"Name: value\": the name '%.*s' is followed by byte 0x%02x", nl,
                     value, c);
        return -1;
    }
    for (size_t i = 0; i < ARRAY_LEN(reserved_headers); i++) {
        if (strlen(reserved_headers[i]) == nlen &&
            strncasecmp(value, reserved_headers[i], nlen) == 0) {
            snprintf(why, whylen, "header '%.*s' is set by the handler and cannot be configured",
                     nl, value);
            return -1;
        }
    }
    const char *v = value + nlen + 1;
    v += strspn(v, " \t");
    /* libcurl reads "Name:" with nothing after it as "remove this header". */
    if (*v == '\0') {
        snprintf(why, whylen, "header '%.*s' has an empty value", nl, value);
        return -1;
    }
    for (; *v != '\0'; v++) {
        unsigned char c = (unsigned char)*v;
        if ((c < 0x20 && c != '\t') || c == 0x7f) {
            snprintf(why, whylen,
                     "the value of header '%.*s' contains a control character (byte 0x%02x); "
                     "a line break would inject further headers",
                     nl, value, c);
            return -1;
        }
    }
    return 0;
}

static int check_method(const char *value, char *why, size_t whylen)
{
    if (strcmp(value, "POST") == 0 || strcmp(value, "PUT") == 0 || strcmp(value, "PATCH") == 0)
        return 0;
    snprintf(why, whylen, "must be \"POST\", \"PUT\" or \"PATCH\", got '%s'", value);
    return -1;
}

/* A webhook URL: http(s), a host, and nothing libcurl would have to guess about. The URL is
 * quoted in messages, since the one thing in it that may be secret (user:password@) is
 * already in the configuration file the reader is looking at. */
static int check_url(const char *value, char *why, size_t whylen)
{
    if (check_endpoint(value, why, whylen) != 0)
        return -1;
    for (const char *p = value; *p != '\0'; p++) {
        if (isspace((unsigned char)*p) || iscntrl((unsigned char)*p)) {
            snprintf(why, whylen, "must not contain whitespace or control characters");
            return -1;
        }
    }
    return 0;
}

static const key_spec_t exec_keys[] = {
    K_LIST("command", rs_stream_config_t, exec.command, KEY_NONEMPTY, NULL),
    K_INT("timeout_ms", rs_stream_config_t, exec.timeout_ms, 1, 86400000),
};

static const key_spec_t http_keys[] = {
    K_STRING("url", rs_stream_config_t, http.url, KEY_NONEMPTY, check_url),
    K_STRING("method", rs_stream_config_t, http.method, KEY_NONEMPTY, check_method),
    K_LIST("headers", rs_stream_config_t, http.headers, 0, check_header),
    K_INT("timeout_ms", rs_stream_config_t, http.timeout_ms, 1, 3600000),
    K_STRING("ca_file", rs_stream_config_t, http.ca_file, KEY_NONEMPTY, NULL),
};

static int exec_defaults(const loader_t *ld, rs_stream_config_t *sc)
{
    (void)ld;
    sc->exec.timeout_ms = 30000;
    return 0;
}

static int exec_finish(const loader_t *ld, const config_setting_t *entry, const char *base,
                       rs_stream_config_t *sc)
{
    char setting[SETTING_PATH_MAX];
    const config_setting_t *cmd = config_setting_get_member(entry, "command");

    if (cmd == NULL) {
        snprintf(setting, sizeof(setting), "%s.command", base);
        return fail_at(ld, entry, setting,
                       "required setting is missing (the program and its arguments, e.g. "
                       "[\"/usr/local/bin/handle\", \"--flag\"])");
    }
    /* No shell and no PATH search: what runs is exactly the file named. */
    const char *prog = sc->exec.command.items[0]; /* KEY_NONEMPTY: n >= 1 */
    if (prog[0] != '/') {
        snprintf(setting, sizeof(setting), "%s.command[0]", base);
        return fail_at(ld, config_setting_get_elem(cmd, 0), setting,
                       "must be an absolute path (the program is run directly, without a shell "
                       "or a PATH search), got '%s'",
                       prog);
    }
    return 0;
}

static int http_defaults(const loader_t *ld, rs_stream_config_t *sc)
{
    sc->http.timeout_ms = 10000;
    return rs_config_set_string(&sc->http.method, "POST") == 0 ? 0 : fail_oom(ld);
}

static int http_finish(const loader_t *ld, const config_setting_t *entry, const char *base,
                       rs_stream_config_t *sc)
{
    char setting[SETTING_PATH_MAX];

    if (sc->http.url == NULL) {
        snprintf(setting, sizeof(setting), "%s.url", base);
        return fail_at(ld, entry, setting,
                       "required setting is missing (the webhook, e.g. "
                       "\"https://hooks.example.com/redstream\")");
    }
    if (sc->http.ca_file != NULL) {
        /* Resolved now, like password_file, so the service's working directory plays no
         * part; checked now so a typo stops the program instead of failing every request. */
        char path[PATH_MAX], ebuf[128];
        const config_setting_t *ca = config_setting_get_member(entry, "ca_file");
        snprintf(setting, sizeof(setting), "%s.ca_file", base);
        if (resolve_path(ld, sc->http.ca_file, path, sizeof(path)) != 0)
            return fail_at(ld, ca, setting, "path is too long");
        if (access(path, R_OK) != 0)
            return fail_at(ld, ca, setting, "cannot read %s: %s", path,
                           errno_text(errno, ebuf, sizeof(ebuf)));
        if (rs_config_set_string(&sc->http.ca_file, path) != 0)
            return fail_oom(ld);
    }
    return 0;
}

static const handler_spec_t handler_specs[] = {
    {RS_HANDLER_LOG, "log", NULL, 0, NULL, NULL},
    {RS_HANDLER_DISCARD, "discard", NULL, 0, NULL, NULL},
    {RS_HANDLER_EXEC, "exec", exec_keys, ARRAY_LEN(exec_keys), exec_defaults, exec_finish},
    {RS_HANDLER_HTTP, "http", http_keys, ARRAY_LEN(http_keys), http_defaults, http_finish},
};

static const handler_spec_t *handler_by_kind(rs_handler_kind_t kind)
{
    for (size_t i = 0; i < ARRAY_LEN(handler_specs); i++)
        if (handler_specs[i].kind == kind)
            return &handler_specs[i];
    return NULL;
}

static const handler_spec_t *handler_by_name(const char *name)
{
    for (size_t i = 0; i < ARRAY_LEN(handler_specs); i++)
        if (strcmp(handler_specs[i].name, name) == 0)
            return &handler_specs[i];
    return NULL;
}

const char *rs_handler_kind_name(rs_handler_kind_t kind)
{
    const handler_spec_t *h = handler_by_kind(kind);
    return h != NULL ? h->name : "?";
}

/* ------------------------------------------------------------------------------------------ */
/* Applying a key.                                                                            */

static const key_spec_t *find_key(const key_spec_t *keys, size_t nkeys, const char *name)
{
    for (size_t i = 0; i < nkeys; i++)
        if (strcmp(keys[i].name, name) == 0)
            return &keys[i];
    return NULL;
}

/* A KEY_STRING_LIST: ["a", "b"] or ("a", "b"), each element a string passing k->check. An
 * element's problem is reported at the element as SETTING[i]. The list replaces `*slot` only
 * when every element passed. */
static int apply_string_list(const loader_t *ld, const key_spec_t *k, const config_setting_t *s,
                             const char *setting, rs_string_list_t *slot)
{
    int type = config_setting_type(s);

    if (type != CONFIG_TYPE_ARRAY && type != CONFIG_TYPE_LIST)
        return fail_at(ld, s, setting, "must be a list of strings like [\"a\", \"b\"], got %s",
                       type_phrase(type));
    int n = config_setting_length(s);
    if ((k->flags & KEY_NONEMPTY) && n <= 0)
        return fail_at(ld, s, setting, "must not be empty");
    size_t count = n > 0 ? (size_t)n : 0;
    rs_string_list_t list = {calloc(count + 1, sizeof(char *)), 0}; /* + the NULL */
    if (list.items == NULL)
        return fail_oom(ld);
    int rc = 0;
    for (size_t i = 0; i < count && rc == 0; i++) {
        const config_setting_t *el = config_setting_get_elem(s, (unsigned)i); /* i < n */
        char elem[SETTING_PATH_MAX + 16];
        char why[384];
        snprintf(elem, sizeof(elem), "%s[%zu]", setting, i);
        int et = config_setting_type(el);
        if (et != CONFIG_TYPE_STRING) {
            rc = fail_at(ld, el, elem, "must be a string, got %s", type_phrase(et));
        } else if (k->check != NULL &&
                   k->check(config_setting_get_string(el), why, sizeof(why)) != 0) {
            rc = fail_at(ld, el, elem, "%s", why);
        } else if ((list.items[i] = strdup(config_setting_get_string(el))) == NULL) {
            rc = fail_oom(ld);
        } else {
            list.n++;
        }
    }
    if (rc != 0) {
        free_string_list(&list);
        return -1;
    }
    free_string_list(slot);
    *slot = list;
    return 0;
}

/* Checks setting `s` against `k` and stores its value in the field `k` names inside `base`.
 * `setting` is its path for messages ("redis.port"). Returns 0 or -1 with the message set. */
static int apply_key(const loader_t *ld, const key_spec_t *k, const config_setting_t *s,
                     const char *setting, void *base)
{
    void *field = (char *)base + k->offset;
    int type = config_setting_type(s);
    char lit[64];
    long long n;

    switch (k->kind) {
    case KEY_STRING: {
        if (type != CONFIG_TYPE_STRING)
            return fail_at(ld, s, setting, "must be a string, got %s", type_phrase(type));
        const char *v = config_setting_get_string(s);
        if ((k->flags & KEY_NONEMPTY) && v[0] == '\0')
            return fail_at(ld, s, setting, "must not be empty");
        char why[384];
        if (k->check != NULL && k->check(v, why, sizeof(why)) != 0)
            return fail_at(ld, s, setting, "%s", why);
        char **slot = field;
        return rs_config_set_string(slot, v) == 0 ? 0 : fail_oom(ld);
    }
    case KEY_INT: {
        int rc = read_integer(ld, s, &n, lit, sizeof(lit));
        if (rc < 0)
            return fail_at(ld, s, setting, "must be an integer, got %s", type_phrase(type));
        if (rc > 0)
            return fail_at(ld, s, setting, "must be between %lld and %lld, got %s", k->min, k->max,
                           lit);
        if (n < k->min || n > k->max)
            return fail_at(ld, s, setting, "must be between %lld and %lld, got %lld", k->min,
                           k->max, n);
        int *slot = field;
        *slot = (int)n; /* every range in the tables lies within int */
        return 0;
    }
    case KEY_BOOL: {
        if (type != CONFIG_TYPE_BOOL)
            return fail_at(ld, s, setting, "must be a boolean (true or false), got %s",
                           type_phrase(type));
        bool *slot = field;
        *slot = config_setting_get_bool(s) != 0;
        return 0;
    }
    case KEY_RATIO: {
        double v;
        if (type == CONFIG_TYPE_FLOAT) {
            v = config_setting_get_float(s);
        } else {
            int rc = read_integer(ld, s, &n, lit, sizeof(lit));
            if (rc < 0)
                return fail_at(ld, s, setting, "must be a number between 0 and 1, got %s",
                               type_phrase(type));
            if (rc > 0)
                return fail_at(ld, s, setting, "must be between 0 and 1, got %s", lit);
            v = (double)n; /* exact: only 0 and 1 pass below */
        }
        if (!(v >= 0.0 && v <= 1.0)) /* written this way so NaN fails too */
            return fail_at(ld, s, setting, "must be between 0 and 1, got %g", v);
        double *slot = field;
        *slot = v;
        return 0;
    }
    case KEY_LOG_LEVEL: {
        if (type != CONFIG_TYPE_STRING)
            return fail_at(ld, s, setting, "must be a string, got %s", type_phrase(type));
        const char *v = config_setting_get_string(s);
        rs_log_level_t *slot = field;
        if (rs_log_level_parse(v, slot) != 0)
            return fail_at(ld, s, setting, "must be one of error, warn, info, debug, got '%s'", v);
        return 0;
    }
    case KEY_HANDLER: {
        if (type != CONFIG_TYPE_STRING)
            return fail_at(ld, s, setting, "must be a string, got %s", type_phrase(type));
        const char *v = config_setting_get_string(s);
        const handler_spec_t *h = handler_by_name(v);
        if (h == NULL) {
            char known[256] = "";
            size_t used = 0;
            for (size_t i = 0; i < ARRAY_LEN(handler_specs) && used < sizeof(known); i++) {
                int w = snprintf(known + used, sizeof(known) - used, "%s%s", i > 0 ? ", " : "",
                                 handler_specs[i].name);
                if (w < 0)
                    break;
                used += (size_t)w;
            }
            return fail_at(ld, s, setting, "unknown handler '%s' (known: %s)", v, known);
        }
        rs_handler_kind_t *slot = field;
        *slot = h->kind;
        return 0;
    }
    case KEY_ORDERING: {
        if (type != CONFIG_TYPE_STRING)
            return fail_at(ld, s, setting, "must be a string, got %s", type_phrase(type));
        const char *v = config_setting_get_string(s);
        char known[64] = "";
        size_t used = 0;
        for (size_t i = 0; i < ARRAY_LEN(ordering_names); i++) {
            if (strcmp(ordering_names[i], v) == 0) {
                rs_ordering_t *slot = field;
                *slot = (rs_ordering_t)i; /* the names are indexed by the values */
                return 0;
            }
            int w = snprintf(known + used, sizeof(known) - used, "%s%s", i > 0 ? ", " : "",
                             ordering_names[i]);
            used += w > 0 && (size_t)w < sizeof(known) - used ? (size_t)w : 0;
        }
        return fail_at(ld, s, setting, "unknown ordering '%s' (known: %s)", v, known);
    }
    case KEY_STRING_LIST:
        return apply_string_list(ld, k, s, setting, field);
    }
    return fail_at(ld, s, setting, "internal error: unhandled key kind");
}

/* ------------------------------------------------------------------------------------------ */
/* Sections.                                                                                  */

typedef struct section_spec section_spec_t;

struct section_spec {
    const char *name;
    const key_spec_t *keys;
    size_t nkeys;
    /* Parses the section's setting into cfg. */
    int (*parse)(const loader_t *ld, const section_spec_t *spec, const config_setting_t *s,
                 rs_config_t *cfg);
    /* Checks that involve several keys of the section, after each passed on its own; NULL
     * when there are none. */
    int (*finish)(const loader_t *ld, const config_setting_t *s, rs_config_t *cfg);
};

static int read_password_file(const loader_t *ld, const config_setting_t *s, rs_config_t *cfg)
{
    const char *setting = "redis.password_file";
    char path[PATH_MAX];
    char why[PATH_MAX + 128];
    char *password = NULL;

    if (resolve_path(ld, cfg->redis.password_file, path, sizeof(path)) != 0)
        return fail_at(ld, s, setting, "path is too long");
    if (read_secret_file(path, true, &password, why, sizeof(why)) != 0)
        return fail_at(ld, s, setting, "%s", why);
    wipe_free(cfg->redis.password);
    cfg->redis.password = password;
    cfg->redis.password_source = RS_SECRET_FILE;
    return 0;
}

static int finish_redis(const loader_t *ld, const config_setting_t *s, rs_config_t *cfg)
{
    const config_setting_t *pw = config_setting_get_member(s, "password");
    const config_setting_t *pf = config_setting_get_member(s, "password_file");

    if (pw != NULL && pf != NULL)
        return fail_at(ld, pf, "redis.password_file",
                       "cannot be combined with redis.password (line %u); set only one",
                       config_setting_source_line(pw));
    if (pw != NULL) {
        /* An empty password in the file turns AUTH off; NULL says so unambiguously. */
        if (cfg->redis.password[0] == '\0') {
            wipe_free(cfg->redis.password);
            cfg->redis.password = NULL;
            cfg->redis.password_source = RS_SECRET_NONE;
        } else {
            cfg->redis.password_source = RS_SECRET_CONFIG;
        }
    }
    if (pf != NULL)
        return read_password_file(ld, pf, cfg);
    return 0;
}

/* The retry backoff must fit below claim_idle_ms: an entry waiting for its retry looks idle
 * to the group, and XAUTOCLAIM (ours or another instance's) would take it away first. */
static int finish_group(const loader_t *ld, const config_setting_t *s, rs_config_t *cfg)
{
    const config_setting_t *max = config_setting_get_member(s, "retry_max_ms");
    const config_setting_t *where = max != NULL ? max : s;
    if (cfg->group.retry_max_ms < cfg->group.retry_base_ms)
        return fail_at(ld, where, "group.retry_max_ms",
                       "must not be below group.retry_base_ms (%d), got %d",
                       cfg->group.retry_base_ms, cfg->group.retry_max_ms);
    if (cfg->group.retry_max_ms >= cfg->group.claim_idle_ms)
        return fail_at(ld, where, "group.retry_max_ms",
                       "must be below group.claim_idle_ms (%d), got %d: an entry waiting "
                       "for its retry would be claimed by XAUTOCLAIM first",
                       cfg->group.claim_idle_ms, cfg->group.retry_max_ms);
    return 0;
}

/* A section that is a group of keys from spec->keys. */
static int parse_group(const loader_t *ld, const section_spec_t *spec, const config_setting_t *s,
                       rs_config_t *cfg)
{
    if (!config_setting_is_group(s))
        return fail_at(ld, s, spec->name, "must be a group ({ key = value; ... }), got %s",
                       type_phrase(config_setting_type(s)));
    int n = config_setting_length(s);
    for (int i = 0; i < n; i++) {
        const config_setting_t *m = config_setting_get_elem(s, (unsigned)i); /* 0 <= i < n */
        const char *name = config_setting_name(m);
        char setting[SETTING_PATH_MAX];
        snprintf(setting, sizeof(setting), "%s.%s", spec->name, name);
        const key_spec_t *k = find_key(spec->keys, spec->nkeys, name);
        if (k == NULL) {
            suggestion_t sg = {.typed = name};
            for (size_t j = 0; j < spec->nkeys; j++)
                suggest_consider(&sg, spec->keys[j].name);
            return fail_unknown(ld, m, setting, &sg);
        }
        if (apply_key(ld, k, m, setting, cfg) != 0)
            return -1;
    }
    return spec->finish != NULL ? spec->finish(ld, s, cfg) : 0;
}

/* ordering and key_field, once both are read: key_field names the field whose value is the
 * ordering key, so ordering = "key" needs it, and with any other ordering it would be silently
 * ignored, which is refused rather than let a reader believe entries are ordered per key. */
static int check_ordering(const loader_t *ld, const config_setting_t *entry, const char *base,
                          const rs_stream_config_t *sc)
{
    char setting[SETTING_PATH_MAX];
    const config_setting_t *os = config_setting_get_member(entry, "ordering");

    if (sc->ordering == RS_ORDERING_KEY && sc->key_field == NULL) {
        snprintf(setting, sizeof(setting), "%s.ordering", base);
        return fail_at(ld, os, setting,
                       "key_field is required when ordering = \"key\" (the entry field whose "
                       "value is the ordering key, e.g. key_field = \"customer\")");
    }
    if (sc->ordering != RS_ORDERING_KEY && sc->key_field != NULL) {
        snprintf(setting, sizeof(setting), "%s.key_field", base);
        return fail_at(ld, config_setting_get_member(entry, "key_field"), setting,
                       "applies only when ordering = \"key\", and ordering is \"%s\"%s; set "
                       "ordering = \"key\" or remove key_field",
                       rs_ordering_name(sc->ordering), os == NULL ? " (the default)" : "");
    }
    return 0;
}

/* One entry of `streams`: { name = "events"; handler = "log"; ... }. The handler is read first
 * because it decides which further keys the entry may hold. */
static int parse_stream_entry(const loader_t *ld, const config_setting_t *e, unsigned index,
                              rs_stream_config_t *out)
{
    char base[32];
    char setting[SETTING_PATH_MAX];

    snprintf(base, sizeof(base), "streams[%u]", index);
    if (!config_setting_is_group(e))
        return fail_at(ld, e, base, "must be a group like { name = \"events\"; }, got %s",
                       type_phrase(config_setting_type(e)));
    unsigned line = config_setting_source_line(e);
    out->line = line > INT_MAX ? INT_MAX : (int)line; /* checked just before */
    out->handler = RS_HANDLER_LOG;

    const config_setting_t *hs = config_setting_get_member(e, "handler");
    if (hs != NULL) {
        snprintf(setting, sizeof(setting), "%s.handler", base);
        if (apply_key(ld, find_key(stream_keys, ARRAY_LEN(stream_keys), "handler"), hs, setting,
                      out) != 0)
            return -1;
    }
    const handler_spec_t *h = handler_by_kind(out->handler);
    if (h->defaults != NULL && h->defaults(ld, out) != 0)
        return -1;

    int n = config_setting_length(e);
    for (int i = 0; i < n; i++) {
        const config_setting_t *m = config_setting_get_elem(e, (unsigned)i); /* 0 <= i < n */
        const char *name = config_setting_name(m);
        if (m == hs)
            continue;
        snprintf(setting, sizeof(setting), "%s.%s", base, name);
        const key_spec_t *k = find_key(stream_keys, ARRAY_LEN(stream_keys), name);
        if (k == NULL)
            k = find_key(h->keys, h->nkeys, name);
        if (k == NULL) {
            suggestion_t sg = {.typed = name};
            for (size_t j = 0; j < ARRAY_LEN(stream_keys); j++)
                suggest_consider(&sg, stream_keys[j].name);
            for (size_t j = 0; j < h->nkeys; j++)
                suggest_consider(&sg, h->keys[j].name);
            return fail_unknown(ld, m, setting, &sg);
        }
        if (apply_key(ld, k, m, setting, out) != 0)
            return -1;
    }
    if (out->name == NULL) {
        snprintf(setting, sizeof(setting), "%s.name", base);
        return fail_at(ld, e, setting, "required setting is missing (the stream's key in Redis)");
    }
    if (check_ordering(ld, e, base, out) != 0)
        return -1;
    return h->finish != NULL ? h->finish(ld, e, base, out) : 0;
}

/* `streams`: a list of groups that replaces the default list as a whole. */
static int parse_streams(const loader_t *ld, const section_spec_t *spec, const config_setting_t *s,
                         rs_config_t *cfg)
{
    if (!config_setting_is_list(s))
        return fail_at(ld, s, spec->name,
                       "must be a list of groups, e.g. ( { name = \"events\"; } ), got %s",
                       type_phrase(config_setting_type(s)));
    int n = config_setting_length(s);
    if (n <= 0)
        return fail_at(ld, s, spec->name, "must list at least one stream");

    size_t count = (size_t)n; /* n > 0 */
    rs_stream_config_t *list = calloc(count, sizeof(*list));
    if (list == NULL)
        return fail_oom(ld);
    for (size_t i = 0; i < count; i++) {
        const config_setting_t *e = config_setting_get_elem(s, (unsigned)i); /* i < n */
        if (parse_stream_entry(ld, e, (unsigned)i, &list[i]) != 0)
            goto fail;
        for (size_t j = 0; j < i; j++) {
            if (strcmp(list[j].name, list[i].name) == 0) {
                char setting[SETTING_PATH_MAX];
                snprintf(setting, sizeof(setting), "streams[%zu].name", i);
                fail_at(ld, config_setting_get_member(e, "name"), setting,
                        "duplicate stream '%s' (first at line %d)", list[i].name, list[j].line);
                goto fail;
            }
        }
    }
    free_streams(cfg->streams, cfg->nstreams);
    cfg->streams = list;
    cfg->nstreams = count;
    return 0;
fail:
    free_streams(list, count);
    return -1;
}

static const section_spec_t section_specs[] = {
    {"redis", redis_keys, ARRAY_LEN(redis_keys), parse_group, finish_redis},
    {"group", group_keys, ARRAY_LEN(group_keys), parse_group, finish_group},
    {"workers", workers_keys, ARRAY_LEN(workers_keys), parse_group, NULL},
    {"streams", NULL, 0, parse_streams, NULL},
    {"health", health_keys, ARRAY_LEN(health_keys), parse_group, NULL},
    {"tracing", tracing_keys, ARRAY_LEN(tracing_keys), parse_group, NULL},
    {"producer", producer_keys, ARRAY_LEN(producer_keys), parse_group, NULL},
    {"log", log_keys, ARRAY_LEN(log_keys), parse_group, NULL},
};

/* Where a message about stream `i` points: its entry's name in the file, or, for the
 * built-in stream list, `fallback` in section `section` (NULL when the file lacks it too). */
static const config_setting_t *stream_setting(const config_setting_t *root, size_t i,
                                              const char *section, const char *fallback,
                                              char *setting, size_t settinglen)
{
    const config_setting_t *list = config_setting_get_member(root, "streams");
    const config_setting_t *where;
    if (list != NULL) {
        where = config_setting_get_elem(list, (unsigned)i); /* i < length */
        snprintf(setting, settinglen, "streams[%zu].name", i);
        return where != NULL ? config_setting_get_member(where, "name") : NULL;
    }
    where = config_setting_get_member(root, section);
    snprintf(setting, settinglen, "%s.%s", section, fallback);
    return where != NULL ? config_setting_get_member(where, fallback) : NULL;
}

/* The dead letters of stream X go to X + dead_letter_suffix (in cluster mode, with a hash tag
 * when X has none: rs_cluster_dlq_name()). Each stream must have such a name, and no stream
 * listed may be another one's: consuming it would hand dead letters back to the workers that
 * gave up on them. Runs after all sections because `group` and `redis` may come after
 * `streams` in the file. */
static int check_dead_letter_streams(const loader_t *ld, const config_setting_t *root,
                                     const rs_config_t *cfg)
{
    char setting[SETTING_PATH_MAX];
    char dlq[1024], why[512];

    for (size_t j = 0; j < cfg->nstreams; j++) {
        const char *origin = cfg->streams[j].name;
        if (rs_config_dlq_name(cfg, origin, dlq, sizeof(dlq), why, sizeof(why)) != 0) {
            const config_setting_t *where =
                stream_setting(root, j, "group", "dead_letter_suffix", setting, sizeof(setting));
            return fail_at(ld, where, setting, "%s", why);
        }
        for (size_t i = 0; i < cfg->nstreams; i++) {
            const char *name = cfg->streams[i].name;
            if (i == j || strcmp(name, dlq) != 0)
                continue;
            /* The built-in streams cannot collide with each other, so a collision involves
             * a `streams` list from the file unless the suffix itself makes one. */
            const config_setting_t *where =
                stream_setting(root, i, "group", "dead_letter_suffix", setting, sizeof(setting));
            return fail_at(ld, where, setting,
                           "stream '%s' is where the dead letters of stream '%s' go "
                           "(group.dead_letter_suffix is '%s'); consuming it would "
                           "re-process dead letters",
                           name, origin, cfg->group.dead_letter_suffix);
        }
    }
    return 0;
}

/* A Redis Cluster has only database 0 (SELECT is refused). */
static int check_cluster(const loader_t *ld, const config_setting_t *root, const rs_config_t *cfg)
{
    if (!cfg->redis.cluster || cfg->redis.db == 0)
        return 0;
    const config_setting_t *redis = config_setting_get_member(root, "redis");
    const config_setting_t *where = redis != NULL ? config_setting_get_member(redis, "db") : NULL;
    return fail_at(ld, where, "redis.db",
                   "must be 0 with redis.cluster = true (a Redis Cluster has only database 0), "
                   "got %d",
                   cfg->redis.db);
}

/* An idle stream's reader completes a read only once per group.block_ms (the BLOCK timeout),
 * so /healthz's window must leave room for that, twice over for the reply's latency and a
 * claim pass; otherwise an idle but healthy reader would be reported as stalled. Checked after
 * every section, since `health` and `group` may come in either order; reported at the key the
 * file set. */
static int check_liveness_window(const loader_t *ld, const config_setting_t *root,
                                 const rs_config_t *cfg)
{
    int window = cfg->health.liveness_timeout_ms, block = cfg->group.block_ms;
    if ((long long)window >= 2LL * block)
        return 0;
    const config_setting_t *health = config_setting_get_member(root, "health");
    const config_setting_t *where =
        health != NULL ? config_setting_get_member(health, "liveness_timeout_ms") : NULL;
    if (where != NULL)
        return fail_at(ld, where, "health.liveness_timeout_ms",
                       "must be at least twice group.block_ms (%d), got %d: an idle reader "
                       "completes a read only once per block_ms",
                       block, window);
    const config_setting_t *group = config_setting_get_member(root, "group");
    where = group != NULL ? config_setting_get_member(group, "block_ms") : NULL;
    return fail_at(ld, where, "group.block_ms",
                   "must be at most half of health.liveness_timeout_ms (%d), got %d: an idle "
                   "reader completes a read only once per block_ms; raise "
                   "health.liveness_timeout_ms",
                   window, block);
}

static int parse_root(const loader_t *ld, const config_setting_t *root, rs_config_t *cfg)
{
    int n = config_setting_length(root);

    for (int i = 0; i < n; i++) {
        const config_setting_t *s = config_setting_get_elem(root, (unsigned)i); /* 0 <= i < n */
        const char *name = config_setting_name(s);
        const section_spec_t *spec = NULL;
        for (size_t j = 0; j < ARRAY_LEN(section_specs) && spec == NULL; j++)
            if (strcmp(section_specs[j].name, name) == 0)
                spec = &section_specs[j];
        if (spec == NULL) {
            suggestion_t sg = {.typed = name};
            for (size_t j = 0; j < ARRAY_LEN(section_specs); j++)
                suggest_consider(&sg, section_specs[j].name);
            return fail_unknown(ld, s, name, &sg);
        }
        if (spec->parse(ld, spec, s, cfg) != 0)
            return -1;
    }
    if (check_cluster(ld, root, cfg) != 0 || check_dead_letter_streams(ld, root, cfg) != 0)
        return -1;
    return check_liveness_window(ld, root, cfg);
}

/* Wipes a string setting's text in libconfig's own copy; anything else is left alone. */
static void wipe_parsed_string(const config_setting_t *s)
{
    if (s != NULL && config_setting_type(s) == CONFIG_TYPE_STRING) {
        /* libconfig hands out a const view of a string it allocated and owns. */
        char *text = (char *)(uintptr_t)config_setting_get_string(s);
        explicit_bzero(text, strlen(text));
    }
}

/* libconfig keeps its own copy of every string it parsed, and config_destroy() frees them
 * without wiping; the password and the webhooks' headers (Authorization tokens) are the ones
 * worth wiping. */
static void wipe_parsed_password(const config_t *lc)
{
    wipe_parsed_string(config_lookup(lc, "redis.password"));
    const config_setting_t *streams = config_lookup(lc, "streams");
    int n = streams != NULL && config_setting_is_list(streams) ? config_setting_length(streams) : 0;
    for (int i = 0; i < n; i++) {
        const config_setting_t *e = config_setting_get_elem(streams, (unsigned)i); /* i < n */
        const config_setting_t *hs =
            config_setting_is_group(e) ? config_setting_get_member(e, "headers") : NULL;
        int nh = hs != NULL && config_setting_is_aggregate(hs) ? config_setting_length(hs) : 0;
        for (int j = 0; j < nh; j++)
            wipe_parsed_string(config_setting_get_elem(hs, (unsigned)j)); /* j < nh */
    }
}

/* ------------------------------------------------------------------------------------------ */
/* The text's size, and its @includes before libconfig follows them.                         */

/* libconfig 1.5 follows "@include" without looking at what it opens: a directory makes its
 * scanner call exit(2) ("input in flex scanner failed"), a FIFO or a device is read for as
 * long as it gives data, and its scanner takes time quadratic in the length of one token (a
 * 10 MB comment line takes minutes). So the include tree is walked first, the way libconfig
 * will walk it: the directive is "@include" at the start of a line (after blanks), outside
 * block comments, then blanks and a quoted name; the name is opened as the include dir (the
 * main file's directory), "/" and the name, whichever file holds the directive; at most
 * INCLUDE_DEPTH_MAX includes are open at once. What libconfig could not handle is refused
 * with the file and line of the directive. A name with a backslash is refused too: how
 * libconfig unescapes it is not worth guessing. The walk reads each file whole (within
 * RS_CONFIG_MAX_BYTES for all of them together) and frees it before libconfig reads it. */

#define INCLUDE_DEPTH_MAX 10 /* libconfig's MAX_INCLUDE_DEPTH */

typedef struct {
    const loader_t *ld;
    size_t total;                            /* bytes of the main text and includes read */
    struct stat open[INCLUDE_DEPTH_MAX + 1]; /* the files being read, outermost first */
    int nopen;
    int depth; /* includes being read (the main text not counted) */
} include_walk_t;

static int scan_includes(include_walk_t *w, const char *label, const char *text, size_t len);

/* Reports "LABEL:LINE: @include "NAME": problem" and returns -1. */
__attribute__((format(printf, 5, 6))) static int fail_include(const include_walk_t *w,
                                                              const char *label, unsigned line,
                                                              const char *name, const char *fmt,
                                                              ...)
{
    char problem[PATH_MAX + 128];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(problem, sizeof(problem), fmt, ap);
    va_end(ap);
    snprintf(w->ld->err, w->ld->errlen, "%s:%u: @include \"%s\": %s", label, line, name, problem);
    return -1;
}

/* Wipes (it may hold the password) and frees the first `len` bytes of `buf`. */
static void free_text(char *buf, size_t len)
{
    if (buf != NULL)
        explicit_bzero(buf, len);
    free(buf);
}

/* Reads `fp` to its end, but no more than `max` + 1 bytes, into a new NUL-terminated buffer.
 * Returns it with its length in *len (*len > max: the file is larger than `max`), or NULL
 * with errno set. The caller frees it with free_text(). Grows by copying rather than realloc
 * so that no copy of the text is left unwiped. */
static char *read_bounded(FILE *fp, size_t max, size_t *len)
{
    size_t cap = 0, n = 0;
    char *buf = NULL;

    for (;;) {
        if (n == cap) {
            if (cap > max)
                break; /* max + 1 bytes read: more than allowed */
            size_t next = cap == 0 ? 4096 : cap * 2;
            next = next > max + 1 ? max + 1 : next;
            char *grown = malloc(next + 1);
            if (grown == NULL) {
                free_text(buf, n);
                errno = ENOMEM;
                return NULL;
            }
            if (n > 0)
                memcpy(grown, buf, n);
            free_text(buf, n);
            buf = grown;
            cap = next;
        }
        size_t got = fread(buf + n, 1, cap - n, fp);
        n += got;
        if (got == 0) {
            if (ferror(fp)) {
                int saved = errno;
                free_text(buf, n);
                errno = saved;
                return NULL;
            }
            break;
        }
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

/* Checks one directive's target, then walks the target's own includes. */
static int check_include(include_walk_t *w, const char *label, unsigned line, const char *name)
{
    const loader_t *ld = w->ld;
    char path[PATH_MAX], shown[PATH_MAX], ebuf[128];
    struct stat st;

    if (name[0] == '\0')
        return fail_include(w, label, line, name, "the name is empty");
    if (name[0] == '/')
        return fail_include(w, label, line, name,
                            "an absolute path is not supported (names are relative to %s)",
                            ld->dir);
    if (strchr(name, '\\') != NULL)
        return fail_include(w, label, line, name, "a backslash in the name is not supported");
    /* `path` is exactly what libconfig opens; `shown` names the file in messages, as
     * source_name() does for what libconfig reports. */
    int n = snprintf(path, sizeof(path), "%s/%s", ld->dir, name);
    if (n < 0 || (size_t)n >= sizeof(path) || resolve_path(ld, name, shown, sizeof(shown)) != 0)
        return fail_include(w, label, line, name, "the path is too long");
    if (stat(path, &st) != 0)
        return fail_include(w, label, line, name, "cannot read %s: %s", shown,
                            errno_text(errno, ebuf, sizeof(ebuf)));
    if (S_ISDIR(st.st_mode))
        return fail_include(w, label, line, name, "%s is a directory", shown);
    if (!S_ISREG(st.st_mode))
        return fail_include(w, label, line, name, "%s is not a regular file", shown);
    for (int i = 0; i < w->nopen; i++)
        if (w->open[i].st_dev == st.st_dev && w->open[i].st_ino == st.st_ino)
            return fail_include(w, label, line, name,
                                "includes %s, which is already being read (an include loop)",
                                shown);
    if (w->depth == INCLUDE_DEPTH_MAX)
        return fail_include(w, label, line, name, "includes are nested more than %d deep",
                            INCLUDE_DEPTH_MAX);
    FILE *fp = fopen(path, "re");
    if (fp == NULL)
        return fail_include(w, label, line, name, "cannot read %s: %s", shown,
                            errno_text(errno, ebuf, sizeof(ebuf)));
    size_t room = RS_CONFIG_MAX_BYTES - w->total, len = 0;
    char *text = read_bounded(fp, room, &len);
    int saved = errno;
    fclose(fp);
    if (text == NULL)
        return fail_include(w, label, line, name, "cannot read %s: %s", shown,
                            errno_text(saved, ebuf, sizeof(ebuf)));
    int rc;
    if (len > room) {
        rc = fail_include(w, label, line, name,
                          "too large: the configuration and its includes hold more than %d bytes",
                          RS_CONFIG_MAX_BYTES);
    } else {
        w->total += len;
        w->open[w->nopen++] = st;
        w->depth++;
        rc = scan_includes(w, shown, text, len);
        w->depth--;
        w->nopen--;
    }
    free_text(text, len);
    return rc;
}

/* Finds the @include directives in one file's text (see above) and checks each. */
static int scan_includes(include_walk_t *w, const char *label, const char *text, size_t len)
{
    static const char directive[] = "@include";
    bool in_string = false, in_block = false;
    unsigned line = 1;

    const char *nul = memchr(text, '\0', len);
    if (nul != NULL) {
        for (const char *p = text; p < nul; p++)
            line += *p == '\n';
        snprintf(w->ld->err, w->ld->errlen, "%s:%u: contains a NUL byte (a configuration is text)",
                 label, line);
        return -1;
    }
    /* text[len] is the NUL after the text, so looking one byte ahead is always safe. */
    for (size_t i = 0; i < len; i++) {
        if (i > 0 && text[i - 1] == '\n')
            line++;
        if ((i == 0 || text[i - 1] == '\n') && !in_block) {
            size_t k = i + strspn(text + i, " \t");
            if (strncmp(text + k, directive, sizeof(directive) - 1) == 0 &&
                strchr(" \t", text[k + sizeof(directive) - 1]) != NULL &&
                text[k + sizeof(directive) - 1] != '\0') {
                k += sizeof(directive) - 1;
                k += strspn(text + k, " \t");
                size_t end = k + 1 + strcspn(text + k + 1, "\"\n");
                if (text[k] == '"' && text[end] == '"') {
                    char name[PATH_MAX];
                    size_t nlen = end - k - 1;
                    if (nlen >= sizeof(name)) {
                        snprintf(w->ld->err, w->ld->errlen, "%s:%u: @include: the name is too long",
                                 label, line);
                        return -1;
                    }
                    memcpy(name, text + k + 1, nlen);
                    name[nlen] = '\0';
                    if (check_include(w, label, line, name) != 0)
                        return -1;
                    i = end; /* the directive's quotes open no string */
                    continue;
                }
            }
        }
        char c = text[i], next = text[i + 1];
        if (in_block) {
            if (c == '*' && next == '/') {
                in_block = false;
                i++;
            }
        } else if (in_string) {
            if (c == '\\' && next != '\0')
                i++;
            else if (c == '"')
                in_string = false;
        } else if (c == '"') {
            in_string = true;
        } else if (c == '#' || (c == '/' && next == '/')) {
            i += strcspn(text + i, "\n") - 1; /* the loop's i++ lands on the newline */
        } else if (c == '/' && next == '*') {
            in_block = true;
            i++;
        }
    }
    return 0;
}

/* Walks the include tree of ld->text, whose `len` bytes count towards RS_CONFIG_MAX_BYTES.
 * Returns 0, or -1 with the message in ld->err. */
static int check_includes(const loader_t *ld, size_t len)
{
    include_walk_t w = {.ld = ld, .total = len};
    struct stat st;

    /* The main file too, when the name is one, so that including it is seen as a loop. */
    if (stat(ld->path, &st) == 0 && S_ISREG(st.st_mode))
        w.open[w.nopen++] = st;
    return scan_includes(&w, ld->path, ld->text, len);
}

/* What both loaders share: parses the configuration named ld->path with libconfig (from `fp`
 * when not NULL, else from ld->text, whose includes are checked first), validates it on top
 * of the defaults and applies the environment. Returns the configuration, or NULL with the
 * one message in ld->err. */
static rs_config_t *load(const loader_t *ld, FILE *fp)
{
    if (fp == NULL && check_includes(ld, strlen(ld->text)) != 0)
        return NULL;
    rs_config_t *cfg = config_defaults();
    if (ld->dir == NULL || cfg == NULL || (cfg->path = strdup(ld->path)) == NULL) {
        fail_oom(ld);
        rs_config_free(cfg);
        return NULL;
    }

    config_t lc;
    int rc = -1;
    config_init(&lc);
    config_set_include_dir(&lc, ld->dir);
    int read_ok = fp != NULL ? config_read(&lc, fp) : config_read_string(&lc, ld->text);
    if (!read_ok) {
        if (config_error_type(&lc) == CONFIG_ERR_FILE_IO) {
            snprintf(ld->err, ld->errlen, "%s: cannot read: %s", ld->path, config_error_text(&lc));
        } else {
            char file[PATH_MAX];
            const char *text = config_error_text(&lc);
            source_name(ld, config_error_file(&lc), file, sizeof(file));
            /* libconfig's text is often just "syntax error"; don't say it twice. */
            bool plain = text == NULL || strcmp(text, "syntax error") == 0;
            snprintf(ld->err, ld->errlen, "%s:%d: syntax error%s%s", file, config_error_line(&lc),
                     plain ? "" : ": ", plain ? "" : text);
        }
    } else {
        rc = parse_root(ld, config_root_setting(&lc), cfg);
        if (rc == 0 && apply_environment(cfg, ld->err, ld->errlen) != 0)
            rc = -1;
        cfg->sets_nothing = config_setting_length(config_root_setting(&lc)) == 0;
        wipe_parsed_password(&lc);
    }
    config_destroy(&lc);
    if (rc != 0) {
        rs_config_free(cfg);
        return NULL;
    }
    return cfg;
}

rs_config_t *rs_config_load(const char *path, char *err, size_t errlen)
{
    char ebuf[128];
    struct stat st;

    if (err == NULL)
        errlen = 0; /* snprintf(NULL, 0, ...) is valid and writes nothing */
    else if (errlen > 0)
        err[0] = '\0';
    if (path == NULL || path[0] == '\0') {
        snprintf(err, errlen, "configuration file name is empty");
        return NULL;
    }
    /* Checked first so that a directory or a missing file gets a plain message instead of
     * libconfig's generic "file I/O error". */
    if (stat(path, &st) != 0) {
        snprintf(err, errlen, "%s: cannot read: %s", path, errno_text(errno, ebuf, sizeof(ebuf)));
        return NULL;
    }
    if (S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "%s: is a directory", path);
        return NULL;
    }
    /* Opened here rather than by config_read_file() so that a refusal comes with errno's
     * reason ("Permission denied") instead of libconfig's "file I/O error". The text is read
     * whole (bounded: a pipe, -c <(...), has no size to check first) and parsed from memory,
     * so libconfig records no file name for the main file's settings, and source_name()
     * supplies it. */
    FILE *fp = fopen(path, "re");
    if (fp == NULL) {
        snprintf(err, errlen, "%s: cannot read: %s", path, errno_text(errno, ebuf, sizeof(ebuf)));
        return NULL;
    }
    size_t len = 0;
    char *text = read_bounded(fp, RS_CONFIG_MAX_BYTES, &len);
    int saved = errno;
    fclose(fp);
    if (text == NULL) {
        snprintf(err, errlen, "%s: cannot read: %s", path, errno_text(saved, ebuf, sizeof(ebuf)));
        return NULL;
    }
    rs_config_t *cfg = rs_config_load_string(text, len, path, err, errlen);
    free_text(text, len);
    return cfg;
}

rs_config_t *rs_config_load_string(const char *text, size_t len, const char *name, char *err,
                                   size_t errlen)
{
    if (err == NULL)
        errlen = 0; /* snprintf(NULL, 0, ...) is valid and writes nothing */
    else if (errlen > 0)
        err[0] = '\0';
    if (name == NULL || name[0] == '\0') {
        snprintf(err, errlen, "configuration name is empty");
        return NULL;
    }
    if (len > RS_CONFIG_MAX_BYTES) {
        snprintf(err, errlen, "%s: too large: more than %d bytes (is it a configuration file?)",
                 name, RS_CONFIG_MAX_BYTES);
        return NULL;
    }
    /* libconfig reads a C string: text after a NUL would be dropped without a word. */
    const char *nul = len > 0 ? memchr(text, '\0', len) : NULL;
    if (nul != NULL) {
        unsigned line = 1;
        for (const char *p = text; p < nul; p++)
            line += *p == '\n';
        snprintf(err, errlen, "%s:%u: contains a NUL byte (a configuration is text)", name, line);
        return NULL;
    }
    /* An empty file is most likely one that was truncated or never written: starting on the
     * defaults (another Redis, the demo's streams) would hide that. */
    size_t blank = 0;
    while (blank < len && isspace((unsigned char)text[blank]))
        blank++;
    if (blank == len) {
        snprintf(err, errlen,
                 "%s: is empty (a file meant to keep every default says so in a comment)", name);
        return NULL;
    }
    char *copy = malloc(len + 1);
    if (copy == NULL) {
        snprintf(err, errlen, "%s: out of memory", name);
        return NULL;
    }
    if (len > 0)
        memcpy(copy, text, len);
    copy[len] = '\0';

    loader_t ld = {
        .path = name, .dir = directory_of(name), .text = copy, .err = err, .errlen = errlen};
    rs_config_t *cfg = load(&ld, NULL);
    free(ld.dir);
    explicit_bzero(copy, len); /* it may hold the password */
    free(copy);
    return cfg;
}

/* ------------------------------------------------------------------------------------------ */
/* Overrides and the summary.                                                                 */

/* "6380" -> 6380; digits only, 1..65535. */
static int parse_port(const char *text, int *out)
{
    size_t n = strlen(text);

    if (n == 0 || n > 5 || strspn(text, "0123456789") != n)
        return -1;
    long v = strtol(text, NULL, 10);
    if (v < 1 || v > 65535)
        return -1;
    *out = (int)v; /* 1..65535 */
    return 0;
}

/* Splits "host:port", "[v6addr]:port" or (when `need_port` is false) "host" into the host's
 * bytes in `addr` (*host, *hostlen) and the port (*port, left alone when none is written).
 * Returns 0, or -1 with a message naming `what` in `err`. */
static int split_addr(const char *addr, const char *what, bool need_port, const char **host,
                      size_t *hostlen, int *port, char *err, size_t errlen)
{
    const char *start, *host_end, *port_text = NULL;
    char what_buf[128] = "";
    if (what != NULL)
        snprintf(what_buf, sizeof(what_buf), "%s: ", what);
    what = what_buf;

    if (addr == NULL || addr[0] == '\0') {
        snprintf(err, errlen, "%sempty address (expected host:port)", what);
        return -1;
    }
    if (addr[0] == '[') {
        const char *close = strchr(addr, ']');
        if (close == NULL) {
            snprintf(err, errlen, "%smissing ']' in '%s' (expected [address]:port)", what, addr);
            return -1;
        }
        start = addr + 1;
        host_end = close;
        if (close[1] == ':') {
            port_text = close + 2;
        } else if (close[1] != '\0') {
            snprintf(err, errlen, "%sunexpected text after ']' in '%s' (expected [address]:port)",
                     what, addr);
            return -1;
        }
    } else {
        const char *colon = strchr(addr, ':');
        if (colon != NULL && strchr(colon + 1, ':') != NULL) {
            snprintf(err, errlen, "%s'%s' has several ':'; write an IPv6 address as [::1]:6380",
                     what, addr);
            return -1;
        }
        start = addr;
        host_end = colon != NULL ? colon : addr + strlen(addr);
        if (colon != NULL)
            port_text = colon + 1;
    }
    if (host_end == start) {
        snprintf(err, errlen, "%sempty host in '%s'", what, addr);
        return -1;
    }
    for (const char *p = start; p < host_end; p++) {
        if (isspace((unsigned char)*p) || iscntrl((unsigned char)*p)) {
            snprintf(err, errlen, "%shost in '%s' contains whitespace or control characters", what,
                     addr);
            return -1;
        }
    }
    if (port_text == NULL && need_port) {
        snprintf(err, errlen, "%s'%s' has no port (expected host:port)", what, addr);
        return -1;
    }
    if (port_text != NULL && parse_port(port_text, port) != 0) {
        snprintf(err, errlen, "%sport must be a number between 1 and 65535, got '%s'", what,
                 port_text);
        return -1;
    }
    *host = start;
    *hostlen = (size_t)(host_end - start);
    return 0;
}

int rs_config_set_redis_addr(rs_config_t *cfg, const char *addr, const char *what, char *err,
                             size_t errlen)
{
    const char *host;
    size_t hostlen;
    int port = cfg->redis.port;

    if (err == NULL)
        errlen = 0;
    if (what == NULL)
        what = "redis address";
    if (split_addr(addr, what, false, &host, &hostlen, &port, err, errlen) != 0)
        return -1;
    char *copy = strndup(host, hostlen); /* hostlen > 0 */
    if (copy == NULL) {
        snprintf(err, errlen, "%s: out of memory", what);
        return -1;
    }
    free(cfg->redis.host);
    cfg->redis.host = copy;
    cfg->redis.port = port;
    return 0;
}

int rs_config_parse_node(const char *addr, const char *what, char *host, size_t hostlen, int *port,
                         char *err, size_t errlen)
{
    const char *h;
    size_t n;
    int p = 0;

    if (err == NULL)
        errlen = 0;
    if (split_addr(addr, what, true, &h, &n, &p, err, errlen) != 0)
        return -1;
    if (n >= hostlen) {
        snprintf(err, errlen, "%s%shost in '%s' is longer than %zu bytes", what ? what : "",
                 what ? ": " : "", addr, hostlen - 1);
        return -1;
    }
    memcpy(host, h, n);
    host[n] = '\0';
    *port = p;
    return 0;
}

int rs_config_cluster_seed(const rs_config_t *cfg, size_t i, char *host, size_t hostlen, int *port)
{
    if (cfg->redis.nodes.n == 0) {
        if (i > 0)
            return -1;
        snprintf(host, hostlen, "%s", cfg->redis.host);
        *port = cfg->redis.port;
        return 0;
    }
    if (i >= cfg->redis.nodes.n)
        return -1;
    return rs_config_parse_node(cfg->redis.nodes.items[i], "redis.nodes", host, hostlen, port, NULL,
                                0);
}

int rs_config_set_cluster_seed(rs_config_t *cfg, const char *addr, const char *what, char *err,
                               size_t errlen)
{
    char host[256];
    int port;
    if (rs_config_parse_node(addr, what, host, sizeof(host), &port, err, errlen) != 0)
        return -1;
    rs_string_list_t list = {calloc(2, sizeof(char *)), 1};
    if (list.items == NULL || (list.items[0] = strdup(addr)) == NULL) {
        free(list.items);
        snprintf(err, errlen, "%s: out of memory", what);
        return -1;
    }
    free_string_list(&cfg->redis.nodes);
    cfg->redis.nodes = list;
    return 0;
}

int rs_config_dlq_name(const rs_config_t *cfg, const char *stream, char *out, size_t outlen,
                       char *err, size_t errlen)
{
    return rs_cluster_dlq_name(stream, cfg->group.dead_letter_suffix, cfg->redis.cluster, out,
                               outlen, err, errlen);
}

/* Where the password came from, never the password. */
static void describe_password(const rs_config_t *cfg, char *buf, size_t buflen)
{
    if (cfg->redis.password == NULL || cfg->redis.password[0] == '\0') {
        snprintf(buf, buflen, "none");
        return;
    }
    switch (cfg->redis.password_source) {
    case RS_SECRET_DEFAULT:
        snprintf(buf, buflen, "set (built-in default)");
        break;
    case RS_SECRET_CONFIG:
        snprintf(buf, buflen, "set (from the configuration file)");
        break;
    case RS_SECRET_FILE:
        snprintf(buf, buflen, "set (from file %s)",
                 cfg->redis.password_file != NULL ? cfg->redis.password_file : "?");
        break;
    case RS_SECRET_ENVIRONMENT:
        snprintf(buf, buflen, "set (from environment %s)", RS_ENV_REDIS_PASSWORD);
        break;
    case RS_SECRET_CREDENTIAL:
        snprintf(buf, buflen, "set (from systemd credential %s)", RS_CREDENTIAL_REDIS_PASSWORD);
        break;
    case RS_SECRET_FLAG:
        snprintf(buf, buflen, "set (from a command-line flag)");
        break;
    case RS_SECRET_NONE:
    default:
        snprintf(buf, buflen, "set");
        break;
    }
}

/* An IPv6 literal needs brackets before ":port". */
static void print_addr(FILE *out, const char *host, int port)
{
    if (strchr(host, ':') != NULL)
        fprintf(out, "[%s]:%d", host, port);
    else
        fprintf(out, "%s:%d", host, port);
}

/* Where a URL's user:password@ is: sets `*host` to the start of the authority and returns its
 * last '@', or NULL when the URL has no user information. */
static const char *url_userinfo_at(const char *url, const char **host)
{
    const char *scheme_end = strstr(url, "://");
    const char *authority_end;
    const char *at = NULL;

    *host = scheme_end != NULL ? scheme_end + 3 : url;
    authority_end = *host + strcspn(*host, "/?#");
    for (const char *p = *host; p < authority_end; p++)
        if (*p == '@')
            at = p;
    return at;
}

/* A URL with any user:password@ replaced by ***@. */
static void print_url_redacted(FILE *out, const char *url)
{
    const char *host;
    const char *at = url_userinfo_at(url, &host);

    if (at == NULL)
        fprintf(out, "%s", url);
    else
        fprintf(out, "%.*s***%s", (int)(host - url), url, at); /* host > url */
}

char *rs_config_url_redacted(const char *url)
{
    const char *host;
    const char *at = url_userinfo_at(url, &host);
    char *copy = NULL;

    if (at == NULL)
        return strdup(url);
    if (asprintf(&copy, "%.*s***%s", (int)(host - url), url, at) < 0) /* host > url */
        return NULL;
    return copy;
}

/* An argument as a shell would need it, so the printed command can be read unambiguously. */
static void print_shell_word(FILE *out, const char *arg)
{
    if (arg[0] != '\0' && strspn(arg, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                      "0123456789_-+=/.,:@%") == strlen(arg)) {
        fprintf(out, "%s", arg);
        return;
    }
    fputc('\'', out);
    for (const char *p = arg; *p != '\0'; p++) {
        if (*p == '\'')
            fprintf(out, "'\\''");
        else
            fputc(*p, out);
    }
    fputc('\'', out);
}

/* The second summary line of a stream whose handler takes settings. Header values are never
 * printed (they are typically credentials), only their names. */
static void print_handler_settings(FILE *out, const rs_stream_config_t *sc)
{
    const char *indent = "                             ";

    switch (sc->handler) {
    case RS_HANDLER_LOG:
    case RS_HANDLER_DISCARD:
        return;
    case RS_HANDLER_EXEC:
        fprintf(out, "%scommand", indent);
        for (size_t i = 0; i < sc->exec.command.n; i++) {
            fputc(' ', out);
            print_shell_word(out, sc->exec.command.items[i]);
        }
        fprintf(out, ", timeout %d ms\n", sc->exec.timeout_ms);
        return;
    case RS_HANDLER_HTTP:
        fprintf(out, "%s%s ", indent, sc->http.method);
        print_url_redacted(out, sc->http.url);
        fprintf(out, ", timeout %d ms", sc->http.timeout_ms);
        if (sc->http.headers.n > 0) {
            fprintf(out, ", headers");
            for (size_t i = 0; i < sc->http.headers.n; i++) {
                const char *h = sc->http.headers.items[i];
                fprintf(out, "%s %.*s", i > 0 ? "," : "", (int)strcspn(h, ":"), h);
            }
        }
        if (sc->http.ca_file != NULL)
            fprintf(out, ", CA file %s", sc->http.ca_file);
        fprintf(out, "\n");
        return;
    }
}

void rs_config_print_summary(const rs_config_t *cfg, FILE *out)
{
    char pw[PATH_MAX + 64];

    describe_password(cfg, pw, sizeof(pw));
    fprintf(out, "redis:    ");
    if (cfg->redis.cluster) {
        fprintf(out, "cluster, seed%s ", cfg->redis.nodes.n > 1 ? "s" : "");
        if (cfg->redis.nodes.n == 0)
            print_addr(out, cfg->redis.host, cfg->redis.port);
        for (size_t i = 0; i < cfg->redis.nodes.n; i++)
            fprintf(out, "%s%s", i > 0 ? " " : "", cfg->redis.nodes.items[i]);
    } else {
        print_addr(out, cfg->redis.host, cfg->redis.port);
    }
    fprintf(out, ", db %d, user %s, password %s, connect timeout %d ms\n", cfg->redis.db,
            cfg->redis.username != NULL ? cfg->redis.username : "(default)", pw,
            cfg->redis.connect_timeout_ms);
    fprintf(out, "group:    %s, consumer %s, start id %s\n", cfg->group.name, cfg->group.consumer,
            cfg->group.start_id);
    fprintf(out,
            "          read %d per call, block %d ms, claim after %d ms idle, "
            "dead letter after %d deliveries to <stream>%s\n",
            cfg->group.read_count, cfg->group.block_ms, cfg->group.claim_idle_ms,
            cfg->group.max_deliveries, cfg->group.dead_letter_suffix);
    fprintf(out, "          retry backoff %d..%d ms, ", cfg->group.retry_base_ms,
            cfg->group.retry_max_ms);
    if (cfg->group.idle_consumer_timeout_ms > 0)
        fprintf(out, "remove consumers idle %d ms with nothing pending\n",
                cfg->group.idle_consumer_timeout_ms);
    else
        fprintf(out, "never remove idle consumers\n");
    fprintf(out, "workers:  %d threads, queue capacity %d, shutdown timeout %d ms\n",
            cfg->workers.threads, cfg->workers.queue_capacity, cfg->workers.shutdown_timeout_ms);
    fprintf(out, "streams:  %zu\n", cfg->nstreams);
    for (size_t i = 0; i < cfg->nstreams; i++) {
        const rs_stream_config_t *sc = &cfg->streams[i];
        fprintf(out, "  %-24s handler %s", sc->name, rs_handler_kind_name(sc->handler));
        /* "none", the default, is left out so most streams' lines stay short. */
        if (sc->ordering == RS_ORDERING_KEY)
            fprintf(out, ", ordering key (key_field %s)", sc->key_field);
        else if (sc->ordering != RS_ORDERING_NONE)
            fprintf(out, ", ordering %s", rs_ordering_name(sc->ordering));
        fprintf(out, "\n");
        print_handler_settings(out, sc);
    }
    fprintf(out, "health:   ");
    print_addr(out, cfg->health.address, cfg->health.port);
    fprintf(out, ", liveness timeout %d ms, dashboard %s\n", cfg->health.liveness_timeout_ms,
            cfg->health.dashboard ? "on" : "off");
    fprintf(out, "tracing:  %s, endpoint ", cfg->tracing.enabled ? "enabled" : "disabled");
    print_url_redacted(out, cfg->tracing.endpoint); /* a collector may take user:password@ */
    fprintf(out, ", service %s, sample ratio %g\n", cfg->tracing.service_name,
            cfg->tracing.sample_ratio);
    if (cfg->producer.interval_ms > 0)
        fprintf(out, "producer: stream %s, type %s, one message every %d ms\n",
                cfg->producer.stream, cfg->producer.type, cfg->producer.interval_ms);
    else
        fprintf(out, "producer: stream %s, type %s, no pause between messages\n",
                cfg->producer.stream, cfg->producer.type);
    fprintf(out, "log:      level %s\n", rs_log_level_name(cfg->log.level));
}

/* ------------------------------------------------------------------------------------------ */
/* Copies and comparisons, for a reload.                                                      */
/*                                                                                            */
/* Both walk the same key tables the loader reads, so a key added to a table is copied,       */
/* compared and reported without further code.                                                */

static bool string_equal(const char *a, const char *b)
{
    return a == b || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static bool list_equal(const rs_string_list_t *a, const rs_string_list_t *b)
{
    if (a->n != b->n)
        return false;
    for (size_t i = 0; i < a->n; i++)
        if (!string_equal(a->items[i], b->items[i]))
            return false;
    return true;
}

/* Does key `k` hold the same value in the structs `a` and `b` it describes? */
static bool key_equal(const key_spec_t *k, const void *a, const void *b)
{
    const char *pa = (const char *)a + k->offset;
    const char *pb = (const char *)b + k->offset;

    switch (k->kind) {
    case KEY_STRING:
        return string_equal(*(char *const *)(const void *)pa, *(char *const *)(const void *)pb);
    case KEY_INT:
        return *(const int *)(const void *)pa == *(const int *)(const void *)pb;
    case KEY_BOOL:
        return *(const bool *)(const void *)pa == *(const bool *)(const void *)pb;
    case KEY_RATIO:
        return memcmp(pa, pb, sizeof(double)) == 0;
    case KEY_LOG_LEVEL:
        return *(const rs_log_level_t *)(const void *)pa ==
               *(const rs_log_level_t *)(const void *)pb;
    case KEY_HANDLER:
        return *(const rs_handler_kind_t *)(const void *)pa ==
               *(const rs_handler_kind_t *)(const void *)pb;
    case KEY_ORDERING:
        return *(const rs_ordering_t *)(const void *)pa == *(const rs_ordering_t *)(const void *)pb;
    case KEY_STRING_LIST:
        return list_equal((const rs_string_list_t *)(const void *)pa,
                          (const rs_string_list_t *)(const void *)pb);
    }
    return false;
}

/* Replaces the string or list key `k` of `dst` (a shallow copy of its source) with a deep
 * copy. Returns 0, or -1 when out of memory (the key is then empty, so freeing is safe). */
static int key_copy(const key_spec_t *k, void *dst)
{
    char *p = (char *)dst + k->offset;

    if (k->kind == KEY_STRING) {
        char **slot = (char **)(void *)p;
        if (*slot == NULL)
            return 0;
        *slot = strdup(*slot);
        return *slot != NULL ? 0 : -1;
    }
    if (k->kind != KEY_STRING_LIST)
        return 0;
    rs_string_list_t *list = (rs_string_list_t *)(void *)p;
    if (list->items == NULL)
        return 0;
    char **items = calloc(list->n + 1, sizeof(*items));
    if (items == NULL) {
        list->items = NULL;
        list->n = 0;
        return -1;
    }
    for (size_t i = 0; i < list->n; i++) {
        items[i] = strdup(list->items[i]);
        if (items[i] == NULL) {
            list->items = items;
            list->n = i;
            return -1;
        }
    }
    list->items = items;
    return 0;
}

/* Every key a stream entry of kind `kind` may set: the common ones, then the handler's. */
static void stream_key_tables(rs_handler_kind_t kind, const key_spec_t *tables[2], size_t n[2])
{
    const handler_spec_t *h = handler_by_kind(kind);
    tables[0] = stream_keys;
    n[0] = ARRAY_LEN(stream_keys);
    tables[1] = h != NULL ? h->keys : NULL;
    n[1] = h != NULL ? h->nkeys : 0;
}

bool rs_stream_config_equal(const rs_stream_config_t *a, const rs_stream_config_t *b)
{
    if (a->handler != b->handler)
        return false;
    const key_spec_t *tables[2];
    size_t n[2];
    stream_key_tables(a->handler, tables, n);
    for (size_t t = 0; t < 2; t++)
        for (size_t i = 0; i < n[t]; i++)
            if (!key_equal(&tables[t][i], a, b))
                return false;
    return true;
}

rs_stream_config_t *rs_stream_config_dup(const rs_stream_config_t *sc)
{
    rs_stream_config_t *copy = malloc(sizeof(*copy));
    if (copy == NULL)
        return NULL;
    *copy = *sc;
    /* Only the chosen handler's keys are set, but clear the other kinds' strings anyway so
     * the copy can never share a pointer with `sc`. */
    for (size_t h = 0; h < ARRAY_LEN(handler_specs); h++) {
        if (handler_specs[h].kind == sc->handler)
            continue;
        for (size_t i = 0; i < handler_specs[h].nkeys; i++) {
            const key_spec_t *k = &handler_specs[h].keys[i];
            char *p = (char *)copy + k->offset;
            if (k->kind == KEY_STRING)
                *(char **)(void *)p = NULL;
            else if (k->kind == KEY_STRING_LIST)
                *(rs_string_list_t *)(void *)p = (rs_string_list_t){0};
        }
    }
    const key_spec_t *tables[2];
    size_t n[2];
    stream_key_tables(sc->handler, tables, n);
    int rc = 0;
    for (size_t t = 0; t < 2; t++)
        for (size_t i = 0; i < n[t]; i++)
            rc |= key_copy(&tables[t][i], copy);
    if (rc != 0) {
        rs_stream_config_free(copy);
        return NULL;
    }
    return copy;
}

void rs_stream_config_free(rs_stream_config_t *sc)
{
    free_streams(sc, sc != NULL ? 1 : 0);
}

/* The sections whose settings a running consumer cannot change (rs_config_restart_keys()). */
static const char *const restart_sections[] = {"redis", "group", "workers", "health", "tracing"};

size_t rs_config_restart_keys(const rs_config_t *running, const rs_config_t *next, char *out,
                              size_t outlen)
{
    size_t changed = 0, used = 0;

    if (outlen > 0)
        out[0] = '\0';
    for (size_t i = 0; i < ARRAY_LEN(section_specs); i++) {
        const section_spec_t *spec = &section_specs[i];
        bool restart = false;
        for (size_t j = 0; j < ARRAY_LEN(restart_sections); j++)
            restart = restart || strcmp(spec->name, restart_sections[j]) == 0;
        if (!restart)
            continue;
        for (size_t k = 0; k < spec->nkeys; k++) {
            if (key_equal(&spec->keys[k], running, next))
                continue;
            int w = snprintf(out + used, used < outlen ? outlen - used : 0, "%s%s.%s",
                             changed > 0 ? ", " : "", spec->name, spec->keys[k].name);
            used += w > 0 ? (size_t)w : 0;
            changed++;
        }
    }
    return changed;
}
