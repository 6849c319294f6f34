/*
 * pgsense-supervisor: loads pgsense.ini and rules.yaml, holds the pid file,
 * runs the libev loop and turns signals into its events (HUP reload, USR1
 * status, TERM/INT drain). Owns the current config and rules generation;
 * processes belong to proc, findings to the pipeline.
 */
#include "pgsense_config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <ev.h>

#include "config.h"
#include "frame.h"
#include "log.h"
#include "pipeline.h"
#include "proc.h"
#include "rules.h"
#include "status.h"
#include "store.h"

#define MOD "supervisor"

#ifndef PGSENSE_LIBEXECDIR
#define PGSENSE_LIBEXECDIR "/usr/local/libexec"
#endif

#define RULES_DEBOUNCE_S 0.2  /* a save is often several writes */
#define SHUTDOWN_LIMIT_S 29.0 /* leave the loop by then whatever happens */

extern char **environ;

/* ---- a rules generation: what was validated is exactly what is sent ---- */

typedef struct {
    proc_rules pr;
    frame_file *files; /* [0] rules.yaml, then each script once */
    uint32_t n;
    rules_set *set;
} rules_bundle;

typedef struct {
    char *dir; /* of rules.yaml: script paths are relative to it */
    char **bufs;
    size_t n;
} lookup_ctx;

static void bundle_free(rules_bundle *b)
{
    if (!b)
        return;
    for (uint32_t i = 0; i < b->n; i++) {
        free((char *)b->files[i].path);
        free((uint8_t *)b->files[i].data);
    }
    free(b->files);
    rules_free(b->set);
    free(b);
}

/* Read a whole regular file, at most max bytes; NUL-terminated. 0 or -1 with err. */
static int read_file(const char *path, size_t max, char **out, size_t *len, char *err, size_t errlen)
{
    int fd = -1, rc = -1;
    char *buf = NULL;
    do {
        fd = open(path, O_RDONLY | O_CLOEXEC);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0) {
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        goto fail;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "%s: not a regular file", path);
        goto fail;
    }
    if ((uintmax_t)st.st_size > max) {
        snprintf(err, errlen, "%s: larger than %zu bytes", path, max);
        goto fail;
    }
    size_t cap = (size_t)st.st_size + 1, n = 0;
    buf = malloc(cap);
    if (!buf) {
        snprintf(err, errlen, "%s: out of memory", path);
        goto fail;
    }
    for (;;) {
        ssize_t r = read(fd, buf + n, cap - 1 - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
            goto fail;
        }
        if (r == 0)
            break;
        n += (size_t)r;
        if (n == cap - 1)
            break; /* grew while we read: take what fstat promised */
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    buf = NULL;
    rc = 0;
fail:
    free(buf);
    if (fd >= 0)
        (void)close(fd);
    return rc;
}

static int lookup_script(void *vctx, const char *path, const char **data, size_t *len, char *errbuf,
                         size_t errlen)
{
    lookup_ctx *ctx = vctx;
    char full[PATH_MAX];
    if (path[0] == '/')
        snprintf(full, sizeof(full), "%s", path);
    else if ((size_t)snprintf(full, sizeof(full), "%s/%s", ctx->dir, path) >= sizeof(full))
        return -1;
    char **nb = realloc(ctx->bufs, (ctx->n + 1) * sizeof(char *));
    if (!nb)
        return -1;
    ctx->bufs = nb;
    char *buf;
    if (read_file(full, RULES_MAX_SCRIPT_BYTES, &buf, len, errbuf, errlen) != 0)
        return -1;
    ctx->bufs[ctx->n++] = buf;
    *data = buf;
    return 0;
}

static int bundle_add(rules_bundle *b, const char *path, const void *data, size_t len)
{
    for (uint32_t i = 1; i < b->n; i++)
        if (strcmp(b->files[i].path, path) == 0)
            return 0; /* a script named by several rules travels once */
    frame_file *nf = realloc(b->files, (b->n + 1) * sizeof(*nf));
    if (!nf)
        return -1;
    b->files = nf;
    char *p = strdup(path);
    uint8_t *d = malloc(len + 1);
    if (!p || !d) {
        free(p);
        free(d);
        return -1;
    }
    memcpy(d, data, len);
    d[len] = '\0';
    b->files[b->n].path = p;
    b->files[b->n].data = d;
    b->files[b->n].len = (uint32_t)len;
    b->n++;
    return 0;
}

/* One error line per problem; errors go to the log, and to stderr before the loop runs. */
static void report(bool to_stderr, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void report(bool to_stderr, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (to_stderr) {
        fputs("pgsense-supervisor: ", stderr);
        vfprintf(stderr, fmt, ap);
        fputc('\n', stderr);
    } else {
        log_vmsg(LOG_LVL_ERROR, MOD, fmt, ap);
    }
    va_end(ap);
}

/*
 * Load and validate rules.yaml from disk, with its scripts, into a bundle
 * that fits in one RULES frame. NULL on any error, each reported.
 */
static rules_bundle *bundle_load(const char *path, bool to_stderr)
{
    char err[512] = "";
    char *yaml = NULL;
    size_t ylen = 0;
    lookup_ctx lc = {0};
    rules_diag *diag = calloc(1, sizeof(*diag));
    rules_bundle *b = calloc(1, sizeof(*b));
    bool ok = false;
    if (!diag || !b) {
        report(to_stderr, "%s: out of memory", path);
        goto fail;
    }
    if (read_file(path, RULES_MAX_FILE_BYTES, &yaml, &ylen, err, sizeof(err)) != 0) {
        report(to_stderr, "%s", err);
        goto fail;
    }
    lc.dir = strdup(path);
    if (!lc.dir) {
        report(to_stderr, "%s: out of memory", path);
        goto fail;
    }
    char *slash = strrchr(lc.dir, '/');
    if (slash)
        *(slash == lc.dir ? slash + 1 : slash) = '\0';
    else
        strcpy(lc.dir, ".");
    if (rules_load_mem(path, yaml, ylen, lookup_script, &lc, &b->set, diag) != 0) {
        for (size_t i = 0; i < diag->count; i++)
            report(to_stderr, "%s:%u: %s", path, diag->items[i].line, diag->items[i].msg);
        if (diag->total > diag->count)
            report(to_stderr, "%s: %zu more errors", path, diag->total - diag->count);
        if (diag->count == 0)
            report(to_stderr, "%s: rejected", path);
        goto fail;
    }
    if (bundle_add(b, path, yaml, ylen) != 0)
        goto oom;
    for (size_t i = 0; i < rules_count(b->set); i++) {
        if (rules_type_of(b->set, i) != RULES_TYPE_SCRIPT)
            continue;
        size_t len = 0;
        const char *src = rules_script_source(b->set, i, &len);
        if (bundle_add(b, rules_script_path(b->set, i), src ? src : "", src ? len : 0) != 0)
            goto oom;
    }
    b->pr.files = b->files;
    b->pr.n_files = b->n;
    frame f = {.type = FRAME_RULES};
    f.rules.files = b->files;
    f.rules.n_files = b->n;
    size_t flen = 0;
    frame_status st = frame_encode(&f, NULL, 0, &flen, err, sizeof(err));
    if (st == FRAME_TOOBIG) {
        report(to_stderr, "%s: rules.yaml and its scripts take %zu bytes, over the %u-byte frame limit", path,
               flen, FRAME_MAX);
        goto fail;
    }
    if (st != FRAME_FULL && st != FRAME_OK) {
        report(to_stderr, "%s: cannot encode the rules: %s", path, err);
        goto fail;
    }
    ok = true;
    goto fail;
oom:
    report(to_stderr, "%s: out of memory", path);
fail:
    for (size_t i = 0; i < lc.n; i++)
        free(lc.bufs[i]);
    free(lc.bufs);
    free(lc.dir);
    free(yaml);
    free(diag);
    if (!ok) {
        bundle_free(b);
        return NULL;
    }
    return b;
}

static bool bundle_equal(const rules_bundle *a, const rules_bundle *b)
{
    if (a->n != b->n)
        return false;
    for (uint32_t i = 0; i < a->n; i++)
        if (strcmp(a->files[i].path, b->files[i].path) != 0 || a->files[i].len != b->files[i].len ||
            memcmp(a->files[i].data, b->files[i].data, a->files[i].len) != 0)
            return false;
    return true;
}

/* ---- the supervisor ---- */

typedef struct {
    struct ev_loop *loop;
    char *cfg_path;  /* absolute */
    char *rules_cli; /* -r, absolute, or NULL: the config's rules_file */
    config *cfg;
    rules_bundle *rules;
    uint64_t generation;
    pipeline *pipe;
    store *mem;
    proc_table *pt;
    char worker_path[PATH_MAX];
    char log_dir[PATH_MAX]; /* fixed for the process lifetime */
    time_t started_at;
    unsigned long reloads_ok, reloads_failed;
    bool shutting_down;
    ev_signal sighup, sigusr1, sigterm, sigint;
    ev_timer sink_grace; /* shutdown: waiting for asynchronous sinks */
    double sink_grace_left;
    ev_stat rules_watch;
    char watch_path[PATH_MAX];
    ev_timer debounce, deadline;
} sup;

static const char *rules_path(const sup *s, const config *cfg)
{
    return s->rules_cli ? s->rules_cli : cfg->rules_file;
}

static void log_config_diag(const config_diag *d)
{
    for (size_t i = 0; i < d->n; i++) {
        if (d->items[i].severity == CONFIG_DIAG_ERROR)
            log_error(MOD, "%s", d->items[i].text);
        else
            log_warn(MOD, "%s", d->items[i].text);
    }
    if (d->errors + d->warnings > d->n)
        log_error(MOD, "%zu more diagnostics not shown", d->errors + d->warnings - d->n);
}

static void watch_rules(sup *s, const char *path)
{
    if (ev_is_active(&s->rules_watch)) {
        if (strcmp(s->watch_path, path) == 0)
            return;
        ev_stat_stop(s->loop, &s->rules_watch);
    }
    snprintf(s->watch_path, sizeof(s->watch_path), "%s", path);
    ev_stat_set(&s->rules_watch, s->watch_path, 1.);
    ev_stat_start(s->loop, &s->rules_watch);
}

/*
 * Keys that need a restart: WARN and keep the running value by swapping it
 * into the new config (each config still frees what it holds).
 */
static void keep_restart_keys(const config *old, config *nc)
{
    if (old->pipeline.store != nc->pipeline.store) {
        log_warn(MOD, "[pipeline] store changed: needs a restart; keeping %s",
                 old->pipeline.store == CONFIG_STORE_POSTGRES ? "postgres" : "memory");
        nc->pipeline.store = old->pipeline.store;
    }
    if (old->server.enabled != nc->server.enabled) {
        log_warn(MOD, "[server] enabled changed: needs a restart; keeping %s",
                 old->server.enabled ? "true" : "false");
        nc->server.enabled = old->server.enabled;
    }
    const char *ol = old->server.listen ? old->server.listen : "",
               *nl = nc->server.listen ? nc->server.listen : "";
    if (strcmp(ol, nl) != 0) {
        log_warn(MOD, "[server] listen changed: needs a restart; keeping %s", ol);
        char *t = nc->server.listen;
        nc->server.listen = ((config *)old)->server.listen;
        ((config *)old)->server.listen = t;
    }
    if (strcmp(old->log.dir, nc->log.dir) != 0) {
        log_warn(MOD, "[log] dir changed: needs a restart; keeping %s", old->log.dir);
        char *t = nc->log.dir;
        nc->log.dir = ((config *)old)->log.dir;
        ((config *)old)->log.dir = t;
    }
}

static void reload_failed(sup *s)
{
    s->reloads_failed++;
    pipeline_reload_result(s->pipe, false);
    log_error(MOD, "reload rejected: the running configuration and rules are kept");
}

/* SIGHUP: SPEC section 2. */
static void do_reload(sup *s)
{
    config *nc = NULL;
    rules_bundle *nb = NULL;
    config_diag diag;
    config_diag_init(&diag);

    if (log_reopen() != 0)
        log_warn(MOD, "cannot reopen supervisor.log: %s", strerror(errno));
    proc_table_reopen_logs(s->pt);
    log_info(MOD, "SIGHUP: reloading %s", s->cfg_path);
    if (s->shutting_down)
        goto out;

    if (config_load(s->cfg_path, environ, &nc, &diag) != 0) {
        log_config_diag(&diag);
        reload_failed(s);
        goto out;
    }
    log_config_diag(&diag); /* warnings */
    nb = bundle_load(rules_path(s, nc), false);
    if (!nb) {
        reload_failed(s);
        goto out;
    }
    keep_restart_keys(s->cfg, nc);
    bool rules_changed = !bundle_equal(s->rules, nb);
    char err[512] = "";
    if (pipeline_reconfigure(s->pipe, nc, rules_changed ? nb->set : s->rules->set, err, sizeof(err)) != 0) {
        log_error(MOD, "sinks: %s", err);
        reload_failed(s);
        goto out;
    }
    if (rules_changed) {
        nb->pr.generation = ++s->generation;
        log_info(MOD, "rules changed: generation %llu (%zu rules) to every worker",
                 (unsigned long long)nb->pr.generation, rules_count(nb->set));
    }
    if (proc_table_reload(s->pt, nc, rules_changed ? &nb->pr : NULL) != 0)
        log_error(MOD, "reload: out of memory while applying; some workers may not have restarted");
    config_free(s->cfg);
    s->cfg = nc;
    nc = NULL;
    if (rules_changed) {
        bundle_free(s->rules);
        s->rules = nb;
        nb = NULL;
    }
    log_setup((log_level)s->cfg->log.level, (log_format)s->cfg->log.format, NULL);
    watch_rules(s, rules_path(s, s->cfg));
    s->reloads_ok++;
    pipeline_reload_result(s->pipe, true);
    log_info(MOD, "reload done");
out:
    config_diag_free(&diag);
    config_free(nc);
    bundle_free(nb);
}

/* The rules file changed on disk: the rules part of a reload. */
static void do_rules_reload(sup *s)
{
    if (s->shutting_down)
        return;
    const char *path = rules_path(s, s->cfg);
    rules_bundle *nb = bundle_load(path, false);
    if (!nb) {
        reload_failed(s);
        return;
    }
    if (bundle_equal(s->rules, nb)) {
        bundle_free(nb);
        return;
    }
    char err[512] = "";
    if (pipeline_reconfigure(s->pipe, s->cfg, nb->set, err, sizeof(err)) != 0) {
        log_error(MOD, "sinks: %s", err);
        bundle_free(nb);
        reload_failed(s);
        return;
    }
    nb->pr.generation = ++s->generation;
    log_info(MOD, "%s changed: rules generation %llu (%zu rules) to every worker", path,
             (unsigned long long)nb->pr.generation, rules_count(nb->set));
    proc_table_set_rules(s->pt, &nb->pr);
    bundle_free(s->rules);
    s->rules = nb;
    s->reloads_ok++;
    pipeline_reload_result(s->pipe, true);
}

static int sinks_json(void *ctx, FILE *out)
{
    return pipeline_status_json(ctx, out);
}

static void do_status(sup *s)
{
    const status_worker *rows = NULL;
    size_t n = proc_table_status(s->pt, &rows);
    status_supervisor ss = {
        .pid = (long)getpid(),
        .started_at = s->started_at,
        .now = time(NULL),
        .rules_loaded = rules_count(s->rules->set),
        .reloads_ok = s->reloads_ok,
        .reloads_failed = s->reloads_failed,
    };
    status_log_table(&ss, rows, n);
    char err[512];
    if (status_write_file(s->log_dir, &ss, rows, n, sinks_json, s->pipe, err, sizeof(err)) != 0)
        log_error(MOD, "status.json: %s", err);
    else
        log_info(MOD, "status written to %s/status.json", s->log_dir);
}

#define SINK_GRACE_S 5.0 /* asynchronous sinks (webhooks, Slack) may finish their deliveries */

static void sink_grace_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)revents;
    sup *s = w->data;
    s->sink_grace_left -= w->repeat;
    if (pipeline_sinks_idle(s->pipe) || s->sink_grace_left <= 0) {
        if (!pipeline_sinks_idle(s->pipe))
            log_warn(MOD, "shutdown: sinks still delivering after %.0f s; what is left is counted as dropped",
                     SINK_GRACE_S);
        ev_timer_stop(loop, w);
        ev_break(loop, EVBREAK_ALL);
    }
}

static void all_stopped(void *ctx)
{
    sup *s = ctx;
    log_info(MOD, "every worker stopped; draining the sinks");
    pipeline_drain(s->pipe);
    if (pipeline_sinks_idle(s->pipe)) {
        ev_break(s->loop, EVBREAK_ALL);
        return;
    }
    s->sink_grace_left = SINK_GRACE_S;
    ev_timer_init(&s->sink_grace, sink_grace_cb, 0.1, 0.1);
    s->sink_grace.data = s;
    ev_timer_start(s->loop, &s->sink_grace);
}

static void deadline_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)revents;
    (void)w;
    log_error(MOD, "shutdown: workers still running after %.0f s; leaving anyway", SHUTDOWN_LIMIT_S);
    ev_break(loop, EVBREAK_ALL);
}

static void signal_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
    (void)revents;
    sup *s = w->data;
    switch (w->signum) {
    case SIGHUP:
        do_reload(s);
        break;
    case SIGUSR1:
        do_status(s);
        break;
    default: /* SIGTERM, SIGINT */
        if (s->shutting_down) {
            log_info(MOD, "%s: already shutting down", strsignal(w->signum));
            break;
        }
        s->shutting_down = true;
        log_info(MOD, "%s: stopping every worker (drain, at most 30 s)", strsignal(w->signum));
        ev_stat_stop(loop, &s->rules_watch);
        ev_timer_stop(loop, &s->debounce);
        ev_timer_start(loop, &s->deadline);
        proc_table_shutdown(s->pt, all_stopped, s);
        break;
    }
}

static void rules_watch_cb(struct ev_loop *loop, ev_stat *w, int revents)
{
    (void)revents;
    sup *s = w->data;
    ev_timer_again(loop, &s->debounce);
}

static void debounce_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)revents;
    ev_timer_stop(loop, w);
    do_rules_reload(w->data);
}

/* ---- start-up helpers ---- */

static int mkdir_p(const char *dir)
{
    char buf[PATH_MAX];
    if ((size_t)snprintf(buf, sizeof(buf), "%s", dir) >= sizeof(buf)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    for (char *p = buf + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char c = *p;
            *p = '\0';
            if (mkdir(buf, 0750) != 0 && errno != EEXIST)
                return -1;
            *p = c;
            if (!c)
                break;
        }
    }
    return 0;
}

/*
 * Lock the pid file (flock: the lock belongs to the open file, so it
 * survives the daemon's forks). Returns the fd, or -1 after printing why.
 */
static int pidfile_lock(const char *path)
{
    int fd;
    do {
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0) {
        fprintf(stderr, "pgsense-supervisor: cannot open pid file %s: %s\n", path, strerror(errno));
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        char buf[32] = "";
        ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
        buf[n > 0 ? n : 0] = '\0';
        buf[strcspn(buf, "\r\n")] = '\0';
        if (e == EWOULDBLOCK)
            fprintf(
                stderr,
                "pgsense-supervisor: another instance (pid %s) holds the pid file %s; stop it first or use "
                "another --pid-file\n",
                buf[0] ? buf : "unknown", path);
        else
            fprintf(stderr, "pgsense-supervisor: cannot lock pid file %s: %s\n", path, strerror(e));
        (void)close(fd);
        return -1;
    }
    return fd;
}

static int pidfile_write(int fd)
{
    char buf[32];
    int n = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, buf, (size_t)n, 0) != n)
        return -1;
    return 0;
}

/* Double fork, new session, cwd /, stdin/stdout to /dev/null (stderr: the log, set later). */
static int daemonize(void)
{
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid > 0)
        _exit(0);
    if (setsid() < 0)
        return -1;
    pid = fork();
    if (pid < 0)
        return -1;
    if (pid > 0)
        _exit(0);
    if (chdir("/") != 0)
        return -1;
    int fd = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc =
        (dup2(fd, STDIN_FILENO) < 0 || dup2(fd, STDOUT_FILENO) < 0 || dup2(fd, STDERR_FILENO) < 0) ? -1 : 0;
    (void)close(fd);
    return rc;
}

/* fds 0-2 open, so nothing we open lands there by accident. */
static int ensure_stdio(void)
{
    for (int i = 0; i < 3; i++) {
        if (fcntl(i, F_GETFD) >= 0)
            continue;
        int fd = open("/dev/null", O_RDWR);
        if (fd < 0)
            return -1;
        if (fd != i) {
            (void)close(fd);
            return -1;
        }
    }
    return 0;
}

/* PGSENSE_WORKER, else next to this binary, else the libexec dir. */
static int find_worker(char *out, size_t len)
{
    const char *env = getenv("PGSENSE_WORKER");
    if (env && env[0]) {
        if (!realpath(env, out) || access(out, X_OK) != 0) {
            fprintf(stderr, "pgsense-supervisor: PGSENSE_WORKER=%s is not an executable file\n", env);
            return -1;
        }
        return 0;
    }
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n > 0) {
        self[n] = '\0';
        char *slash = strrchr(self, '/');
        if (slash) {
            *slash = '\0';
            if ((size_t)snprintf(out, len, "%s/pgsense-worker", self) < len && access(out, X_OK) == 0)
                return 0;
        }
    }
    if ((size_t)snprintf(out, len, "%s/pgsense-worker", PGSENSE_LIBEXECDIR) < len && access(out, X_OK) == 0)
        return 0;
    fprintf(stderr,
            "pgsense-supervisor: pgsense-worker not found next to this binary nor in %s: reinstall, or set "
            "PGSENSE_WORKER\n",
            PGSENSE_LIBEXECDIR);
    return -1;
}

static void usage(FILE *out)
{
    fprintf(out, "usage: pgsense-supervisor -c pgsense.ini [-r rules.yaml] [-d] [--pid-file FILE]\n"
                 "  -c, --config FILE    configuration (required)\n"
                 "  -r, --rules FILE     rules (default: rules_file of the configuration)\n"
                 "  -d, --daemon         run in the background\n"
                 "      --pid-file FILE  pid file, locked (default: [log] dir/pgsense.pid)\n"
                 "  -h, --help           this text\n");
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'}, {"rules", required_argument, NULL, 'r'},
        {"daemon", no_argument, NULL, 'd'},       {"pid-file", required_argument, NULL, 'P'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0},
    };
    const char *cfg_arg = NULL, *rules_arg = NULL, *pid_arg = NULL;
    bool daemon_mode = false;
    int c, rc = 1, pidfd = -1;
    char pid_path[PATH_MAX] = "";
    sup s;
    memset(&s, 0, sizeof(s));
    config_diag diag;
    config_diag_init(&diag);

    while ((c = getopt_long(argc, argv, "c:r:dh", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            cfg_arg = optarg;
            break;
        case 'r':
            rules_arg = optarg;
            break;
        case 'd':
            daemon_mode = true;
            break;
        case 'P':
            pid_arg = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (!cfg_arg || optind != argc) {
        if (!cfg_arg)
            fprintf(stderr, "pgsense-supervisor: -c pgsense.ini is required\n");
        else
            fprintf(stderr, "pgsense-supervisor: unexpected argument: %s\n", argv[optind]);
        usage(stderr);
        return 2;
    }
    if (ensure_stdio() != 0)
        return 1;
    struct sigaction ign;
    memset(&ign, 0, sizeof(ign));
    ign.sa_handler = SIG_IGN;
    if (sigaction(SIGPIPE, &ign, NULL) != 0)
        return 1;
    /* Until the loop's watchers take them over, a reload or status request must not kill us. */
    if (sigaction(SIGHUP, &ign, NULL) != 0 || sigaction(SIGUSR1, &ign, NULL) != 0)
        return 1;

    /* absolute paths: -d changes to / */
    s.cfg_path = realpath(cfg_arg, NULL);
    if (!s.cfg_path) {
        fprintf(stderr, "pgsense-supervisor: %s: %s\n", cfg_arg, strerror(errno));
        goto out;
    }
    if (rules_arg) {
        s.rules_cli = realpath(rules_arg, NULL);
        if (!s.rules_cli) {
            fprintf(stderr, "pgsense-supervisor: %s: %s\n", rules_arg, strerror(errno));
            goto out;
        }
    }
    if (config_load(s.cfg_path, environ, &s.cfg, &diag) != 0) {
        config_diag_print(&diag, stderr);
        goto out;
    }
    config_diag_print(&diag, stderr); /* warnings */
    s.rules = bundle_load(rules_path(&s, s.cfg), true);
    if (!s.rules)
        goto out;
    s.rules->pr.generation = s.generation = 1;
    if (find_worker(s.worker_path, sizeof(s.worker_path)) != 0)
        goto out;
    if ((size_t)snprintf(s.log_dir, sizeof(s.log_dir), "%s", s.cfg->log.dir) >= sizeof(s.log_dir) ||
        mkdir_p(s.log_dir) != 0) {
        fprintf(stderr, "pgsense-supervisor: cannot create log dir %s: %s\n", s.cfg->log.dir,
                strerror(errno));
        goto out;
    }
    if (pid_arg) {
        char *dup = strdup(pid_arg), *slash = dup ? strrchr(dup, '/') : NULL;
        char dir[PATH_MAX];
        if (!dup)
            goto out;
        if (slash)
            *slash = '\0';
        bool ok = realpath(slash ? (dup[0] ? dup : "/") : ".", dir) != NULL;
        if (ok && (size_t)snprintf(pid_path, sizeof(pid_path), "%s/%s", dir, slash ? slash + 1 : pid_arg) >=
                      sizeof(pid_path)) {
            ok = false;
            errno = ENAMETOOLONG;
        }
        free(dup);
        if (!ok) {
            fprintf(stderr, "pgsense-supervisor: pid file %s: %s\n", pid_arg, strerror(errno));
            goto out;
        }
    } else if ((size_t)snprintf(pid_path, sizeof(pid_path), "%s/pgsense.pid", s.log_dir) >=
               sizeof(pid_path)) {
        fprintf(stderr, "pgsense-supervisor: log dir path too long: %s\n", s.log_dir);
        goto out;
    }
    pidfd = pidfile_lock(pid_path);
    if (pidfd < 0)
        goto out;

    char sup_log[PATH_MAX + 32];
    snprintf(sup_log, sizeof(sup_log), "%s/supervisor.log", s.log_dir);
    log_setup((log_level)s.cfg->log.level, (log_format)s.cfg->log.format, NULL);
    if (log_open_file(sup_log) != 0) {
        fprintf(stderr, "pgsense-supervisor: cannot open %s: %s\n", sup_log, strerror(errno));
        goto out;
    }
    if (daemon_mode) {
        if (daemonize() != 0) {
            log_fatal(MOD, "cannot daemonize: %s", strerror(errno));
            goto out;
        }
        if (log_redirect_stderr() != 0)
            log_warn(MOD, "cannot send stderr to %s: %s", sup_log, strerror(errno));
    }
    if (pidfile_write(pidfd) != 0) {
        log_fatal(MOD, "cannot write pid file %s: %s", pid_path, strerror(errno));
        goto out;
    }

    proc_env env;
    memset(&env, 0, sizeof(env));
    if (getrandom(env.hash_key, sizeof(env.hash_key), 0) != (ssize_t)sizeof(env.hash_key)) {
        log_fatal(MOD, "cannot read the hash key from getrandom: %s", strerror(errno));
        goto out;
    }
    s.loop = ev_default_loop(EVFLAG_AUTO);
    if (!s.loop) {
        log_fatal(MOD, "cannot initialise libev");
        goto out;
    }
    s.started_at = time(NULL);
    char err[512] = "";
    s.pipe = pipeline_new(s.loop, s.cfg, s.rules->set, err, sizeof(err));
    if (!s.pipe) {
        log_fatal(MOD, "sinks: %s", err);
        fprintf(stderr, "pgsense-supervisor: sinks: %s\n", err);
        goto out;
    }
    if (s.cfg->pipeline.store == CONFIG_STORE_MEMORY) {
        s.mem = store_new();
        if (!s.mem)
            goto oom;
    }
    env.loop = s.loop;
    env.pipe = s.pipe;
    env.mem = s.mem;
    env.worker_path = s.worker_path;
    env.log_dir = s.log_dir;
    s.pt = proc_table_new(&env, s.cfg, &s.rules->pr);
    memset(env.hash_key, 0, sizeof(env.hash_key));
    if (!s.pt)
        goto oom;

    ev_signal_init(&s.sighup, signal_cb, SIGHUP);
    ev_signal_init(&s.sigusr1, signal_cb, SIGUSR1);
    ev_signal_init(&s.sigterm, signal_cb, SIGTERM);
    ev_signal_init(&s.sigint, signal_cb, SIGINT);
    s.sighup.data = s.sigusr1.data = s.sigterm.data = s.sigint.data = &s;
    ev_signal_start(s.loop, &s.sighup);
    ev_signal_start(s.loop, &s.sigusr1);
    ev_signal_start(s.loop, &s.sigterm);
    ev_signal_start(s.loop, &s.sigint);
    ev_stat_init(&s.rules_watch, rules_watch_cb, "", 1.);
    s.rules_watch.data = &s;
    watch_rules(&s, rules_path(&s, s.cfg));
    ev_init(&s.debounce, debounce_cb);
    s.debounce.repeat = RULES_DEBOUNCE_S;
    s.debounce.data = &s;
    ev_timer_init(&s.deadline, deadline_cb, SHUTDOWN_LIMIT_S, 0.);

    log_info(MOD, "pgsense-supervisor %s started, pid %ld, %zu databases, %zu rules, worker %s",
             PACKAGE_VERSION, (long)getpid(), s.cfg->n_dbs, rules_count(s.rules->set), s.worker_path);
    if (proc_table_start_all(s.pt) != 0)
        goto oom;
    ev_run(s.loop, 0);
    log_info(MOD, "stopped");
    rc = 0;
    goto out;
oom:
    log_fatal(MOD, "out of memory");
out:
    if (s.loop) {
        ev_signal_stop(s.loop, &s.sighup);
        ev_signal_stop(s.loop, &s.sigusr1);
        ev_signal_stop(s.loop, &s.sigterm);
        ev_signal_stop(s.loop, &s.sigint);
        ev_stat_stop(s.loop, &s.rules_watch);
        ev_timer_stop(s.loop, &s.debounce);
        ev_timer_stop(s.loop, &s.deadline);
    }
    proc_table_free(s.pt);
    pipeline_free(s.pipe);
    store_free(s.mem);
    bundle_free(s.rules);
    config_free(s.cfg);
    config_diag_free(&diag);
    free(s.cfg_path);
    free(s.rules_cli);
    if (pidfd >= 0) {
        (void)unlink(pid_path); /* ours: we hold the lock */
        (void)close(pidfd);
    }
    return rc;
}
