/*
 * The "exec" handler: runs a configured program once per entry. The program gets the entry
 * on stdin as one JSON object on one newline-terminated line (rs_entry_to_json, the line the
 * log handler prints), and REDSTREAM_STREAM, REDSTREAM_ID and REDSTREAM_DELIVERY in its
 * environment. Its exit status is the outcome: 0 succeeds, 75 (EX_TEMPFAIL) asks for a
 * retry, any other status or a signal fails for good; a program still running at timeout_ms
 * is killed and the entry is retried. Every line the program writes goes to the log (stdout
 * at info, stderr at warn), tagged with the stream and the entry id.
 *
 * DESIGN: one call is one child, driven by the calling worker thread alone; the handler
 * object is immutable after construction, so workers share it without locks.
 *   - Spawning: posix_spawn (vfork-like, safe in a threaded process) of argv[0] as written
 *     (an absolute path, checked by the configuration: no shell, no PATH search). The
 *     environment is built from scratch (PATH plus the three variables), never inherited,
 *     so REDSTREAM_REDIS_PASSWORD and whatever else the service was given stay with it. The
 *     child gets an empty signal mask and default dispositions for the signals the service
 *     blocks or ignores (SIGPIPE is ignored here, and an ignored signal survives exec).
 *   - Descriptors: our pipes are created O_CLOEXEC, so another worker's child never holds
 *     this child's stdin open (which would withhold its EOF). hiredis 0.14 opens its sockets
 *     without FD_CLOEXEC, so the child also closes every descriptor from 3 up
 *     (posix_spawn_file_actions_addclosefrom_np, glibc 2.34+, found by CMake). Without it,
 *     the descriptors open without FD_CLOEXEC when the child is spawned are closed one by
 *     one; a Redis socket opened by another thread in that very instant could still leak.
 *   - Process group: the child leads a group of its own (POSIX_SPAWN_SETPGROUP), so a
 *     timeout can signal everything it started: SIGTERM to the group, then SIGKILL after
 *     min(5 s, timeout_ms) if the child has not exited, and SIGKILL again to whatever is left
 *     of the group once it has. The child's exit is seen without reaping it (waitid with
 *     WNOWAIT) until those signals are sent: an unreaped child keeps its pid, and so the
 *     group id, from being recycled for an unrelated process.
 *   - I/O: one poll() loop with the deadline multiplexes writing stdin (non-blocking, so a
 *     1 MiB entry cannot deadlock against a child that writes before it reads), reading
 *     stdout and stderr, and the child's exit (a pidfd; where the kernel has none, waitpid
 *     with WNOHANG every 10 ms). EPIPE on stdin means the child stopped reading: the rest of
 *     the entry is dropped and the exit status still decides. At most 64 KiB of output per
 *     entry is logged; the rest is read and discarded so the child never blocks on a full
 *     pipe. Once the child has exited, what it left in the pipes is read and the pipes are
 *     closed: a background grandchild holding them open does not hold the worker.
 *   - Reaping: every path that spawned a child ends in waitpid() for it, after a kill when
 *     needed, so no zombie is left behind. Nothing else in the service reaps children.
 */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "clock.h"
#include "handler.h"

/* sysexits.h's EX_TEMPFAIL: "try again later". */
#define EXEC_EXIT_TEMPFAIL 75

/* Output logged per entry, both streams together; the rest is read and discarded. */
#define EXEC_LOG_CAP (64 * 1024)

/* A line longer than this is logged in pieces of this size. */
#define EXEC_LINE_MAX 2048

/* Longest wait between SIGTERM and SIGKILL (shorter when timeout_ms is). */
#define EXEC_GRACE_MAX_MS 5000

/* Without a pidfd, how often the loop looks for the child's exit. */
#define EXEC_EXIT_POLL_MS 10

/* How much is read from the pipes after the child exited, at most (a grandchild may keep
 * writing into them forever). */
#define EXEC_DRAIN_MAX (1024 * 1024)

#define EXEC_ENV_PATH "PATH=/usr/local/bin:/usr/bin:/bin"

typedef struct {
    rs_handler_t base;
    char **argv; /* copies, NULL-terminated; argv[0] is absolute */
    int timeout_ms;
} exec_handler_t;

/* One of the child's output pipes, split into lines for the log. */
typedef struct {
    int fd; /* our read end; -1 once closed */
    rs_log_level_t level;
    const char *name; /* "stdout" or "stderr" */
    char line[EXEC_LINE_MAX];
    size_t len;
} output_t;

/* The state of one run, on the worker's stack. */
typedef struct {
    rs_logger_t *log;
    const rs_entry_t *e;
    output_t out[2];
    size_t logged;      /* output bytes logged so far */
    bool capped;        /* the cap was reached and the log says so */
    char last_err[200]; /* the last stderr line, for the failure report */
} run_t;

/* The GNU strerror_r (selected by _GNU_SOURCE) returns the text, possibly static. */
static const char *errno_text(int errnum, char *buf, size_t buflen)
{
    return strerror_r(errnum, buf, buflen);
}

static void close_fd(int *fd)
{
    if (*fd >= 0) {
        close(*fd);
        *fd = -1;
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Output to the log.                                                                         */

static void emit_line(run_t *r, output_t *o)
{
    size_t len = o->len;

    o->len = 0;
    if (len > 0 && o->line[len - 1] == '\r')
        len--;
    if (r->logged >= EXEC_LOG_CAP) {
        if (!r->capped) {
            r->capped = true;
            rs_log(r->log, RS_LOG_WARN, "exec",
                   "stream=%s id=%s output beyond %d bytes is not logged", r->e->stream_name,
                   r->e->id, EXEC_LOG_CAP);
        }
        return;
    }
    if (len > EXEC_LOG_CAP - r->logged)
        len = EXEC_LOG_CAP - r->logged;
    r->logged += len;
    /* Control characters (a NUL would end the text, an escape sequence would reach a
     * terminal) become '?'; rs_log flattens nothing but line breaks. */
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)o->line[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            o->line[i] = '?';
    }
    rs_log(r->log, o->level, "exec", "stream=%s id=%s %s: %.*s", r->e->stream_name, r->e->id,
           o->name, (int)len, o->line); /* len <= EXEC_LINE_MAX */
    if (o->level == RS_LOG_WARN && len > 0) {
        size_t keep = len < sizeof(r->last_err) - 1 ? len : sizeof(r->last_err) - 1;
        memcpy(r->last_err, o->line, keep);
        r->last_err[keep] = '\0';
    }
}

static void consume(run_t *r, output_t *o, const char *buf, size_t n)
{
    if (r->capped)
        return; /* read and discarded */
    for (size_t i = 0; i < n; i++) {
        if (buf[i] == '\n') {
            emit_line(r, o);
            continue;
        }
        if (o->len == sizeof(o->line))
            emit_line(r, o);
        o->line[o->len++] = buf[i];
    }
}

/* Reads what one pipe has. Returns the bytes read, 0 at EOF (the pipe is then closed) or
 * when nothing is available. */
static size_t read_output(run_t *r, output_t *o)
{
    char buf[16384];

    for (;;) {
        ssize_t n = read(o->fd, buf, sizeof(buf));
        if (n > 0) {
            consume(r, o, buf, (size_t)n);
            return (size_t)n;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return 0;
        /* EOF, or an error that will not go away: either way nothing more comes. */
        if (o->len > 0)
            emit_line(r, o);
        close_fd(&o->fd);
        return 0;
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Spawning.                                                                                  */

/* Moves `*fd` to a descriptor >= 3 (still close-on-exec), so that wiring the child's 0, 1
 * and 2 can never overwrite another of the pipes; only matters when the service itself runs
 * with a standard descriptor closed. Returns 0 or an errno value. */
static int above_stdio(int *fd)
{
    if (*fd > 2)
        return 0;
    int moved = fcntl(*fd, F_DUPFD_CLOEXEC, 3);
    if (moved < 0)
        return errno;
    close(*fd);
    *fd = moved;
    return 0;
}

/* A pipe whose both ends are close-on-exec and >= 3; `nonblock_end` (0 read, 1 write) is
 * the service's end and gets O_NONBLOCK (the child's end stays blocking, as programs
 * expect). Returns 0 or an errno value. */
static int make_pipe(int fds[2], int nonblock_end)
{
    if (pipe2(fds, O_CLOEXEC) != 0)
        return errno;
    int rc = above_stdio(&fds[0]);
    if (rc == 0)
        rc = above_stdio(&fds[1]);
    if (rc == 0 && fcntl(fds[nonblock_end], F_SETFL, O_NONBLOCK) != 0)
        rc = errno;
    if (rc != 0) {
        close_fd(&fds[0]);
        close_fd(&fds[1]);
    }
    return rc;
}

#ifndef RS_HAVE_SPAWN_ADDCLOSEFROM
/* Without posix_spawn_file_actions_addclosefrom_np: closes, in the child, each descriptor
 * from 3 up that is open without FD_CLOEXEC right now (see DESIGN for the race). */
static int add_inherited_closes(posix_spawn_file_actions_t *fa)
{
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL)
        return errno;
    int self = dirfd(d);
    struct dirent *de;
    int rc = 0;
    while (rc == 0 && (de = readdir(d)) != NULL) {
        char *end;
        long fd = strtol(de->d_name, &end, 10);
        if (*end != '\0' || end == de->d_name || fd < 3 || fd > INT_MAX || fd == self)
            continue;
        int flags = fcntl((int)fd, F_GETFD); /* fd <= INT_MAX */
        if (flags >= 0 && !(flags & FD_CLOEXEC))
            rc = posix_spawn_file_actions_addclose(fa, (int)fd);
    }
    closedir(d);
    return rc;
}
#endif

/* Starts argv[0] with stdin, stdout and stderr on the pipes' child ends, in a process group
 * of its own. Returns 0 with *pid set, or an errno value. */
static int spawn_child(char *const argv[], char *const envp[], int in_fd, int out_fd, int err_fd,
                       pid_t *pid)
{
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    sigset_t none, defaults;
    int rc;

    if ((rc = posix_spawn_file_actions_init(&fa)) != 0)
        return rc;
    if ((rc = posix_spawnattr_init(&attr)) != 0) {
        posix_spawn_file_actions_destroy(&fa);
        return rc;
    }
    sigemptyset(&none);
    sigemptyset(&defaults);
    sigaddset(&defaults, SIGPIPE);
    sigaddset(&defaults, SIGINT);
    sigaddset(&defaults, SIGTERM);
    sigaddset(&defaults, SIGHUP);
    sigaddset(&defaults, SIGQUIT);
    sigaddset(&defaults, SIGCHLD);
    /* dup2 clears FD_CLOEXEC on the copies 0, 1 and 2; the originals (>= 3) are closed
     * with everything else from 3 up. */
    if ((rc = posix_spawn_file_actions_adddup2(&fa, in_fd, STDIN_FILENO)) == 0 &&
        (rc = posix_spawn_file_actions_adddup2(&fa, out_fd, STDOUT_FILENO)) == 0 &&
        (rc = posix_spawn_file_actions_adddup2(&fa, err_fd, STDERR_FILENO)) == 0 &&
#ifdef RS_HAVE_SPAWN_ADDCLOSEFROM
        (rc = posix_spawn_file_actions_addclosefrom_np(&fa, 3)) == 0 &&
#else
        (rc = add_inherited_closes(&fa)) == 0 &&
#endif
        (rc = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
                                                  POSIX_SPAWN_SETSIGDEF)) == 0 &&
        (rc = posix_spawnattr_setpgroup(&attr, 0)) == 0 &&
        (rc = posix_spawnattr_setsigmask(&attr, &none)) == 0 &&
        (rc = posix_spawnattr_setsigdefault(&attr, &defaults)) == 0)
        rc = posix_spawn(pid, argv[0], &fa, &attr, argv, envp);
    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&fa);
    return rc;
}

/* A descriptor that becomes readable when `pid` exits, or -1 when the kernel (before 5.3)
 * or a seccomp filter refuses pidfd_open. */
static int open_pidfd(pid_t pid)
{
#ifdef SYS_pidfd_open
    long fd = syscall(SYS_pidfd_open, pid, 0); /* always close-on-exec */
    return fd >= 0 && fd <= INT_MAX ? (int)fd : -1;
#else
    (void)pid;
    return -1;
#endif
}

/* True once `pid` has exited. It is left unreaped on purpose: as a zombie it keeps its pid,
 * and so its process group id, reserved, and the group can still be signalled without any
 * chance of reaching an unrelated process that was given the recycled number. */
static bool child_exited(pid_t pid)
{
    for (;;) {
        siginfo_t info = {0};
        if (waitid(P_PID, (id_t)pid, &info, WEXITED | WNOHANG | WNOWAIT) == 0)
            return info.si_pid == pid; /* 0 while it runs */
        if (errno != EINTR)
            return true; /* ECHILD: there is nothing to wait for; reaping will say so */
    }
}

/* Waits for `pid` and reaps it. Returns 0 with its status, or an errno value (ECHILD, only
 * if something else in the process reaped it, which nothing does). */
static int reap(pid_t pid, int *status)
{
    while (waitpid(pid, status, 0) < 0) {
        if (errno != EINTR)
            return errno;
    }
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* One entry.                                                                                 */

/* What happened to the child, for the outcome. */
typedef struct {
    int status;       /* from waitpid */
    bool timed_out;   /* killed at timeout_ms */
    bool killed;      /* needed SIGKILL after the grace period */
    size_t unwritten; /* bytes of the entry the child did not read */
    int wait_error;   /* errno of a failed waitpid; `status` is then meaningless */
} child_end_t;

/* Feeds the entry to the child, logs its output and waits for it, within the deadline.
 * Closes the service's pipe ends. Always reaps the child. */
static void supervise(const exec_handler_t *eh, run_t *r, pid_t pid, int in_fd, const char *json,
                      size_t json_len, child_end_t *end)
{
    int64_t now = rs_clock_monotonic_ns();
    int64_t deadline = now + (int64_t)eh->timeout_ms * 1000000;
    int64_t grace_ms = eh->timeout_ms < EXEC_GRACE_MAX_MS ? eh->timeout_ms : EXEC_GRACE_MAX_MS;
    int pidfd = open_pidfd(pid);
    size_t off = 0;
    bool exited = false;
    char ebuf[128];

    while (!exited) {
        now = rs_clock_monotonic_ns();
        if (now >= deadline) {
            /* An exit not yet seen by poll is not a timeout. */
            if (!end->timed_out && child_exited(pid))
                break;
            if (!end->timed_out) {
                end->timed_out = true;
                close_fd(&in_fd);
                kill(-pid, SIGTERM);
                deadline = now + grace_ms * 1000000;
                continue;
            }
            end->killed = true;
            kill(-pid, SIGKILL);
            break;
        }

        struct pollfd pfd[4];
        int idx_in = -1, idx_out[2] = {-1, -1}, idx_pid = -1;
        nfds_t n = 0;
        if (in_fd >= 0) {
            idx_in = (int)n;
            pfd[n++] = (struct pollfd){.fd = in_fd, .events = POLLOUT};
        }
        for (int i = 0; i < 2; i++) {
            if (r->out[i].fd >= 0) {
                idx_out[i] = (int)n;
                pfd[n++] = (struct pollfd){.fd = r->out[i].fd, .events = POLLIN};
            }
        }
        if (pidfd >= 0) {
            idx_pid = (int)n;
            pfd[n++] = (struct pollfd){.fd = pidfd, .events = POLLIN};
        }
        int64_t wait_ms = (deadline - now + 999999) / 1000000;
        if (pidfd < 0 && wait_ms > EXEC_EXIT_POLL_MS)
            wait_ms = EXEC_EXIT_POLL_MS;
        int ready = poll(pfd, n, (int)wait_ms); /* wait_ms <= 86400000 */
        if (ready < 0 && errno != EINTR) {
            /* Cannot happen with valid descriptors; stop feeding and fall back to the
             * deadline rather than spin. */
            rs_log(r->log, RS_LOG_ERROR, "exec", "stream=%s id=%s poll: %s", r->e->stream_name,
                   r->e->id, errno_text(errno, ebuf, sizeof(ebuf)));
            close_fd(&in_fd);
            usleep(EXEC_EXIT_POLL_MS * 1000);
        }
        if (ready <= 0) {
            if (pidfd < 0)
                exited = child_exited(pid);
            continue;
        }

        if (idx_in >= 0 && pfd[idx_in].revents != 0) {
            size_t chunk = json_len - off < 65536 ? json_len - off : 65536;
            ssize_t w = write(in_fd, json + off, chunk);
            if (w > 0)
                off += (size_t)w;
            else if (w < 0 && errno != EAGAIN && errno != EINTR) {
                /* EPIPE: the child closed its stdin (or exited) before reading it all.
                 * Not a failure by itself: its exit status decides. */
                rs_log(r->log, RS_LOG_DEBUG, "exec",
                       "stream=%s id=%s the program stopped reading stdin after %zu of %zu "
                       "bytes: %s",
                       r->e->stream_name, r->e->id, off, json_len,
                       errno_text(errno, ebuf, sizeof(ebuf)));
                close_fd(&in_fd);
            }
            if (off == json_len)
                close_fd(&in_fd); /* EOF tells the child the entry is complete */
        }
        for (int i = 0; i < 2; i++)
            if (idx_out[i] >= 0 && pfd[idx_out[i]].revents != 0)
                read_output(r, &r->out[i]);
        if (idx_pid < 0 || pfd[idx_pid].revents != 0)
            exited = child_exited(pid);
    }

    /* What the child wrote before it exited is in the pipes now; what a grandchild writes
     * later is not waited for. */
    for (int i = 0; i < 2; i++) {
        size_t drained = 0, got;
        while (r->out[i].fd >= 0 && drained < EXEC_DRAIN_MAX &&
               (got = read_output(r, &r->out[i])) > 0)
            drained += got;
        if (r->out[i].len > 0)
            emit_line(r, &r->out[i]);
        close_fd(&r->out[i].fd);
    }
    end->unwritten = json_len - off;
    close_fd(&in_fd);
    close_fd(&pidfd);
    /* A timed-out child may leave members of its group behind (a shell's own children). The
     * child is not reaped yet, so the group id is still ours. */
    if (end->timed_out)
        kill(-pid, SIGKILL);
    end->wait_error = reap(pid, &end->status);
}

/* PATH (`path_var`, borrowed) and the REDSTREAM_* variables, nothing inherited. Returns 0, or
 * -1 when out of memory; free with free_env(). */
static int build_env(const rs_entry_t *e, char *path_var, char *envp[5])
{
    envp[0] = path_var;
    if (asprintf(&envp[1], "REDSTREAM_STREAM=%s", e->stream_name) < 0)
        envp[1] = NULL;
    if (asprintf(&envp[2], "REDSTREAM_ID=%s", e->id) < 0)
        envp[2] = NULL;
    if (asprintf(&envp[3], "REDSTREAM_DELIVERY=%llu", (unsigned long long)e->delivery) < 0)
        envp[3] = NULL;
    envp[4] = NULL;
    return envp[1] == NULL || envp[2] == NULL || envp[3] == NULL ? -1 : 0;
}

static void free_env(char *envp[5])
{
    for (int i = 1; i < 4; i++)
        free(envp[i]);
}

/* Resource shortages pass; a missing or non-executable program does not fix itself. */
static bool spawn_error_is_transient(int err)
{
    return err == EAGAIN || err == ENOMEM || err == EMFILE || err == ENFILE || err == EINTR;
}

static rs_outcome_t exec_handle(rs_handler_t *h, unsigned worker, const rs_entry_t *e,
                                rs_handler_report_t *report)
{
    (void)worker;
    exec_handler_t *eh = (exec_handler_t *)h;
    char path_var[] = EXEC_ENV_PATH; /* writable, as posix_spawn's envp type asks */
    char *envp[5] = {NULL, NULL, NULL, NULL, NULL};
    int in[2] = {-1, -1}, out[2] = {-1, -1}, err[2] = {-1, -1};
    char ebuf[128];
    rs_outcome_t outcome = RS_OUTCOME_RETRY;
    size_t json_len = 0;
    char *json = rs_entry_to_json(e, &json_len);

    if (json == NULL || build_env(e, path_var, envp) != 0) {
        snprintf(report->error, sizeof(report->error), "out of memory preparing the program");
        goto out;
    }
    /* One line, newline-terminated, so `read -r line` in a shell gets it too; the newline
     * replaces the terminating NUL, which a write does not need. */
    json[json_len++] = '\n';
    int rc = make_pipe(in, 1);
    if (rc == 0)
        rc = make_pipe(out, 0);
    if (rc == 0)
        rc = make_pipe(err, 0);
    if (rc != 0) {
        snprintf(report->error, sizeof(report->error), "cannot create pipes: %s",
                 errno_text(rc, ebuf, sizeof(ebuf)));
        goto out;
    }
    pid_t pid;
    rc = spawn_child(eh->argv, envp, in[0], out[1], err[1], &pid);
    /* The child has its copies (or there is no child); ours would keep its pipes open. */
    close_fd(&in[0]);
    close_fd(&out[1]);
    close_fd(&err[1]);
    if (rc != 0) {
        snprintf(report->error, sizeof(report->error), "cannot run %s: %s", eh->argv[0],
                 errno_text(rc, ebuf, sizeof(ebuf)));
        outcome = spawn_error_is_transient(rc) ? RS_OUTCOME_RETRY : RS_OUTCOME_FAIL;
        goto out;
    }

    run_t r = {.log = h->log, .e = e};
    r.out[0] = (output_t){.fd = out[0], .level = RS_LOG_INFO, .name = "stdout"};
    r.out[1] = (output_t){.fd = err[0], .level = RS_LOG_WARN, .name = "stderr"};
    out[0] = err[0] = -1; /* owned by r now */
    child_end_t end = {0};
    supervise(eh, &r, pid, in[1], json, json_len, &end);
    in[1] = -1; /* closed by supervise */

    const char *tail_sep = r.last_err[0] != '\0' ? "; last stderr line: " : "";
    if (end.wait_error != 0) {
        snprintf(report->error, sizeof(report->error), "lost track of the program: waitpid: %s",
                 errno_text(end.wait_error, ebuf, sizeof(ebuf)));
        outcome = RS_OUTCOME_RETRY;
    } else if (end.timed_out) {
        snprintf(report->error, sizeof(report->error), "timed out after %d ms (%s)%s%s",
                 eh->timeout_ms,
                 end.killed ? "killed with SIGKILL after SIGTERM was ignored" : "ended by SIGTERM",
                 tail_sep, r.last_err);
        outcome = RS_OUTCOME_RETRY;
    } else if (WIFEXITED(end.status) && WEXITSTATUS(end.status) == 0) {
        outcome = RS_OUTCOME_SUCCESS;
        if (end.unwritten > 0)
            rs_log(h->log, RS_LOG_DEBUG, "exec",
                   "stream=%s id=%s succeeded without reading the last %zu bytes of stdin",
                   e->stream_name, e->id, end.unwritten);
    } else if (WIFEXITED(end.status)) {
        int code = WEXITSTATUS(end.status);
        snprintf(report->error, sizeof(report->error), "exited with status %d%s%s%s", code,
                 code == EXEC_EXIT_TEMPFAIL ? " (EX_TEMPFAIL)" : "", tail_sep, r.last_err);
        outcome = code == EXEC_EXIT_TEMPFAIL ? RS_OUTCOME_RETRY : RS_OUTCOME_FAIL;
    } else {
        int sig = WIFSIGNALED(end.status) ? WTERMSIG(end.status) : 0;
        const char *abbrev = sig > 0 ? sigabbrev_np(sig) : NULL;
        snprintf(report->error, sizeof(report->error), "killed by signal %d (SIG%s)%s%s", sig,
                 abbrev != NULL ? abbrev : "?", tail_sep, r.last_err);
        outcome = RS_OUTCOME_FAIL;
    }

out:
    for (int i = 0; i < 2; i++) {
        close_fd(&in[i]);
        close_fd(&out[i]);
        close_fd(&err[i]);
    }
    free_env(envp);
    free(json);
    return outcome;
}

static void free_argv(char **argv)
{
    if (argv == NULL)
        return;
    for (char **a = argv; *a != NULL; a++)
        free(*a);
    free(argv);
}

static void exec_free(rs_handler_t *h)
{
    exec_handler_t *eh = (exec_handler_t *)h;
    if (eh == NULL)
        return;
    free_argv(eh->argv);
    free(eh);
}

static const rs_handler_ops_t exec_ops = {"exec", exec_handle, exec_free};

rs_handler_t *rs_handler_exec_new(const rs_stream_config_t *sc, rs_logger_t *log, char *err,
                                  size_t errlen)
{
    exec_handler_t *eh = calloc(1, sizeof(*eh));
    if (eh == NULL)
        goto oom;
    eh->base.ops = &exec_ops;
    eh->base.log = log;
    eh->timeout_ms = sc->exec.timeout_ms;
    eh->argv = calloc(sc->exec.command.n + 1, sizeof(char *));
    if (eh->argv == NULL)
        goto oom;
    for (size_t i = 0; i < sc->exec.command.n; i++)
        if ((eh->argv[i] = strdup(sc->exec.command.items[i])) == NULL)
            goto oom;
    /* A program missing now may be installed before the first entry arrives, so this is a
     * warning; each entry's run reports the failure as it finds it. */
    if (access(eh->argv[0], X_OK) != 0) {
        char ebuf[128];
        rs_log(log, RS_LOG_WARN, "exec", "stream=%s program %s is not executable: %s", sc->name,
               eh->argv[0], errno_text(errno, ebuf, sizeof(ebuf)));
    }
    return &eh->base;
oom:
    snprintf(err, errlen, "stream %s: cannot create the exec handler: out of memory", sc->name);
    exec_free(eh ? &eh->base : NULL);
    return NULL;
}
