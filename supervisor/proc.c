/*
 * proc: one row per database, one worker process per row. Everything runs in
 * the libev loop: channel reads and writes, the worker's stderr pipe, start
 * and kill timers, a one-second janitor (heartbeats out, watchdog) and the
 * ev_child reaper. No call here blocks except appends to local log files.
 */
#include "proc.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"

#define MOD "proc"

#define PROC_ERRBUF     4096u          /* bytes of one worker stderr line kept before it is cut */
#define PROC_READ_PAUSE (1024u * 1024) /* stop reading a worker while this much is queued to it */
#define PROC_REASON_MAX 256u

extern char **environ;

typedef struct proc proc;

struct proc {
    proc_table *pt;
    char *name, *identity, *slot, *log_path;
    proc_state state;
    pid_t pid;

    /* channel */
    int fd;
    frame_decoder *dec;
    frame_outq *outq;
    ev_io rio, wio;
    bool got_hello;
    bool reading;         /* inside rio_cb: credit is summed into credit_owed */
    uint64_t credit_owed; /* returned in one CREDIT frame when rio_cb ends */
    pipeline_src *src;
    bool connected; /* reported "connected" to the pipeline (worker has a PostgreSQL connection) */

    /* stderr pipe -> worker-NAME.log */
    int errfd, logfd;
    ev_io eio;
    char ebuf[PROC_ERRBUF];
    size_t elen;

    /* restarts */
    proc_backoff bo;
    unsigned restarts;
    ev_timer start_timer; /* backoff / failed retry / deferred start */
    ev_timer kill_timer;  /* SHUTDOWN not obeyed */
    ev_tstamp spawned_at, last_seen, last_hb_sent;
    bool stop_requested;               /* SHUTDOWN sent or SIGKILL for a stop: exit means stopped */
    bool removed;                      /* database gone: free the row once the worker exited */
    bool restart_after_stop;           /* settings changed: start again once the old worker exited */
    bool wait_slot;                    /* another row still holds this slot: start when it exits */
    bool version_failed;               /* HELLO with another protocol version */
    char kill_reason[PROC_REASON_MAX]; /* why we killed it, for last_exit */
    char exit_frame_reason[PROC_REASON_MAX];
    bool has_exit_frame;

    /* last exit */
    bool has_exit, exit_signaled;
    int exit_value;
    char exit_reason[PROC_REASON_MAX];

    /* STATS */
    bool has_stats;
    uint64_t events, findings, confirmed_lsn;
    int64_t retained_wal;
    uint64_t undelivered;
    char wal_status[32];
    uint32_t tables_done, tables_total;
    status_table_error terr[STATUS_MAX_TABLE_ERRORS];
    size_t n_terr;
};

struct proc_table {
    proc_env env;
    const config *cfg;
    const proc_rules *rules;
    proc **rows;
    size_t n, cap;
    ev_timer janitor;
    ev_child child;
    uint64_t rng;
    bool shutting_down;
    void (*done)(void *);
    void *done_ctx;
    bool done_called;
    status_worker *view;
    size_t view_cap;
};

static void proc_spawn(proc *p);
static void proc_stop(proc *p, const char *why);
static void proc_maybe_done(proc_table *pt);

/* ---- restart policy ---- */

const char *proc_state_name(proc_state st)
{
    switch (st) {
    case PROC_STARTING:
        return "starting";
    case PROC_CONNECTING:
        return "connecting";
    case PROC_SNAPSHOT:
        return "snapshot";
    case PROC_STREAMING:
        return "streaming";
    case PROC_BACKOFF:
        return "backoff";
    case PROC_FAILED:
        return "failed";
    case PROC_STOPPED:
        return "stopped";
    }
    return "unknown";
}

uint64_t proc_backoff_ms(unsigned attempt, uint32_t rnd)
{
    uint64_t d = PROC_BACKOFF_INITIAL_MS;
    for (unsigned i = 0; i < attempt && d < PROC_BACKOFF_MAX_MS; i++)
        d *= 2;
    if (d > PROC_BACKOFF_MAX_MS)
        d = PROC_BACKOFF_MAX_MS;
    return d - (uint64_t)rnd % (d / 4 + 1);
}

proc_decision proc_exit_decide(proc_backoff *b, bool stop_requested, bool signaled, int code, double ran_s,
                               uint32_t rnd)
{
    proc_decision d = {PROC_BACKOFF, 0};
    if (ran_s >= PROC_HEALTHY_S) {
        b->attempt = 0;
        b->schema_restart = false;
    }
    if (stop_requested) {
        d.state = PROC_STOPPED;
        return d;
    }
    if (!signaled && code == PROC_EXIT_FATAL) {
        d.state = PROC_FAILED;
        d.delay_ms = PROC_FAILED_RETRY_MS;
        return d;
    }
    if (!signaled && code == PROC_EXIT_SCHEMA && !b->schema_restart) {
        b->schema_restart = true;
        return d; /* at once */
    }
    d.delay_ms = proc_backoff_ms(b->attempt, rnd);
    if (b->attempt < 32)
        b->attempt++;
    return d;
}

static uint32_t proc_rand(proc_table *pt)
{
    /* xorshift64*: jitter only, no secrecy needed */
    pt->rng ^= pt->rng >> 12;
    pt->rng ^= pt->rng << 25;
    pt->rng ^= pt->rng >> 27;
    return (uint32_t)((pt->rng * 2685821657736338717ULL) >> 32);
}

/* ---- worker log (stderr pipe) ---- */

static void write_all(int fd, const char *buf, size_t len)
{
    while (len > 0 && fd >= 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return; /* the log file is where we would report it */
        }
        buf += n;
        len -= (size_t)n;
    }
}

static int open_log(const char *path)
{
    int fd;
    do {
        fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    } while (fd < 0 && errno == EINTR);
    return fd;
}

/* Write the complete lines in ebuf (all of it when flush_all) to the worker log. */
static void err_emit(proc *p, bool flush_all)
{
    size_t start = 0;
    for (size_t i = 0; i < p->elen; i++) {
        if (p->ebuf[i] == '\n') {
            write_all(p->logfd, p->ebuf + start, i + 1 - start);
            start = i + 1;
        }
    }
    if (start < p->elen && (flush_all || (start == 0 && p->elen == sizeof(p->ebuf)))) {
        /* a line longer than the buffer, or the last words of a dead worker: cut it */
        write_all(p->logfd, p->ebuf + start, p->elen - start);
        write_all(p->logfd, "\n", 1);
        start = p->elen;
    }
    memmove(p->ebuf, p->ebuf + start, p->elen - start);
    p->elen -= start;
}

static void err_close(proc *p)
{
    if (p->errfd < 0)
        return;
    ev_io_stop(p->pt->env.loop, &p->eio);
    (void)close(p->errfd);
    p->errfd = -1;
    err_emit(p, true);
}

/*
 * Read what the worker wrote to stderr; bounded buffer, never blocks. At
 * most max_reads reads (0: until EAGAIN/EOF, for a dead worker), so a
 * chatty worker cannot starve the loop.
 */
static void err_drain(proc *p, unsigned max_reads)
{
    for (unsigned i = 0; p->errfd >= 0 && (max_reads == 0 || i < max_reads); i++) {
        ssize_t n = read(p->errfd, p->ebuf + p->elen, sizeof(p->ebuf) - p->elen);
        if (n > 0) {
            p->elen += (size_t)n;
            err_emit(p, false);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        err_close(p); /* EOF or error */
    }
}

static void err_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    err_drain((proc *)w->data, 16);
}

/* ---- channel ---- */

static void chan_close(proc *p)
{
    proc_table *pt = p->pt;
    if (p->fd >= 0) {
        ev_io_stop(pt->env.loop, &p->rio);
        ev_io_stop(pt->env.loop, &p->wio);
        (void)close(p->fd);
        p->fd = -1;
    }
    frame_decoder_free(p->dec);
    p->dec = NULL;
    frame_outq_free(p->outq);
    p->outq = NULL;
    if (p->src) {
        pipeline_src_free(p->src);
        p->src = NULL;
    }
    if (p->connected) {
        pipeline_worker_event(pt->env.pipe, p->name, "disconnected");
        p->connected = false;
    }
}

/* Kill the worker for a reason of ours; its exit is then handled by the reaper. */
static void proc_kill(proc *p, const char *reason)
{
    if (!p->kill_reason[0])
        snprintf(p->kill_reason, sizeof(p->kill_reason), "%s", reason);
    /* SIGKILL before closing: the worker must not see EOF first and exit 0 */
    if (p->pid > 0)
        (void)kill(p->pid, SIGKILL);
    chan_close(p);
}

/* A channel failure: log it, close the channel, kill and (through the reaper) restart. */
static void proc_abort(proc *p, const char *what, const char *detail)
{
    log_error(MOD, "worker %s (pid %d): %s%s%s; killing it, it will be restarted", p->name, (int)p->pid, what,
              detail && detail[0] ? ": " : "", detail ? detail : "");
    char reason[PROC_REASON_MAX];
    snprintf(reason, sizeof(reason), "%s%s%s", what, detail && detail[0] ? ": " : "", detail ? detail : "");
    proc_kill(p, reason);
}

static void chan_flush(proc *p)
{
    if (p->fd < 0 || !p->outq)
        return;
    frame_status st = frame_outq_flush(p->outq, p->fd);
    if (st == FRAME_OK) {
        ev_io_stop(p->pt->env.loop, &p->wio);
        if (!ev_is_active(&p->rio))
            ev_io_start(p->pt->env.loop, &p->rio);
    } else if (st == FRAME_AGAIN) {
        ev_io_start(p->pt->env.loop, &p->wio);
        if (frame_outq_pending(p->outq) > PROC_READ_PAUSE)
            ev_io_stop(p->pt->env.loop, &p->rio); /* backpressure: it must read first */
    } else {
        /* the peer is gone: the reaper will tell why */
        log_warn(MOD, "worker %s (pid %d): send failed: %s", p->name, (int)p->pid, frame_outq_error(p->outq));
        chan_close(p);
    }
}

/* Queue a frame to the worker and try to send it. 0, or -1 when the channel is closed (aborted). */
static int chan_send(proc *p, const frame *f)
{
    if (p->fd < 0 || !p->outq)
        return -1;
    frame_status st = frame_outq_push(p->outq, f);
    if (st != FRAME_OK) {
        proc_abort(p, "cannot queue a frame to the worker", frame_status_name(st));
        return -1;
    }
    chan_flush(p);
    return p->fd >= 0 ? 0 : -1;
}

static void wio_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    chan_flush((proc *)w->data);
}

static void send_rules(proc *p, const proc_rules *r)
{
    frame f = {.type = FRAME_RULES};
    f.rules.generation = r->generation;
    f.rules.files = r->files;
    f.rules.n_files = r->n_files;
    (void)chan_send(p, &f);
}

/* ---- pipeline callbacks ---- */

static void ack_cb(void *ctx, uint64_t seq, uint64_t end_lsn)
{
    proc *p = ctx;
    frame f = {.type = FRAME_ACK};
    f.ack.seq = seq;
    f.ack.end_lsn = end_lsn;
    f.ack.credit = 0;
    (void)chan_send(p, &f);
}

static void send_credit(proc *p, uint64_t bytes)
{
    frame f = {.type = FRAME_CREDIT};
    f.credit.bytes = bytes;
    (void)chan_send(p, &f);
}

/* Credit taken back while reading is returned once, after the reads: one
 * CREDIT frame per wakeup instead of one per FINDINGS frame. */
static void credit_cb(void *ctx, uint64_t bytes)
{
    proc *p = ctx;
    if (p->reading)
        p->credit_owed += bytes;
    else
        send_credit(p, bytes);
}

static void ready_cb(void *ctx, const frame_table_done *t)
{
    proc *p = ctx;
    if (!p->pt->env.mem)
        return;
    if (store_table_ready(p->pt->env.mem, p->identity, t) != 0)
        log_warn(MOD,
                 "worker %s: cannot record table %s.%s in the memory store (out of memory): it will be "
                 "snapshotted again after a restart",
                 p->name, t->schema, t->table);
}

/* ---- incoming frames ---- */

static void take_stats(proc *p, const frame_stats *st)
{
    p->has_stats = true;
    p->events = st->events;
    p->findings = st->findings;
    p->confirmed_lsn = st->confirmed_lsn;
    p->retained_wal = st->retained_wal_bytes;
    p->undelivered = st->undelivered_findings;
    snprintf(p->wal_status, sizeof(p->wal_status), "%s", st->wal_status);
    p->tables_done = st->tables_done;
    p->tables_total = st->tables_total;
    p->n_terr = 0;
    for (uint32_t i = 0; i < st->n_table_errors && p->n_terr < STATUS_MAX_TABLE_ERRORS; i++) {
        status_table_error *e = &p->terr[p->n_terr++];
        snprintf(e->schema, sizeof(e->schema), "%s", st->table_errors[i].schema);
        snprintf(e->table, sizeof(e->table), "%s", st->table_errors[i].table);
        snprintf(e->reason, sizeof(e->reason), "%s", st->table_errors[i].reason);
    }
    proc_state ns = p->state;
    switch (st->state) {
    case FRAME_WSTATE_STARTING:
        ns = PROC_STARTING;
        break;
    case FRAME_WSTATE_CONNECTING:
        ns = PROC_CONNECTING;
        break;
    case FRAME_WSTATE_SNAPSHOT:
        ns = PROC_SNAPSHOT;
        break;
    case FRAME_WSTATE_STREAMING:
        ns = PROC_STREAMING;
        break;
    default: /* STOPPING: keep what it was doing */
        break;
    }
    if (ns != p->state)
        log_info(MOD, "worker %s: %s", p->name, proc_state_name(ns));
    p->state = ns;
    bool conn = ns == PROC_SNAPSHOT || ns == PROC_STREAMING;
    if (conn != p->connected) {
        p->connected = conn;
        pipeline_worker_event(p->pt->env.pipe, p->name, conn ? "connected" : "disconnected");
    }
    pipeline_worker_stats(p->pt->env.pipe, p->name, st);
}

/* The encoded size of a FINDINGS frame: what the worker charged against its credit. */
static size_t findings_bytes(const frame_findings *fs)
{
    size_t n = FRAME_FINDINGS_OVERHEAD;
    for (uint32_t i = 0; i < fs->n_findings; i++)
        n += frame_finding_size(&fs->findings[i]);
    return n;
}

/* One decoded frame. Returns false when the channel was closed meanwhile. */
static bool dispatch(proc *p, const frame *f)
{
    p->last_seen = ev_now(p->pt->env.loop);
    if (!p->got_hello) {
        if (f->type != FRAME_HELLO) {
            proc_abort(p, "protocol error", "first frame is not HELLO");
            return false;
        }
        p->got_hello = true;
        log_info(MOD, "worker %s: hello from pid %u", p->name, f->hello.pid);
        return true;
    }
    switch (f->type) {
    case FRAME_FINDINGS:
        /* the frame size is what the worker charged against its credit */
        if (p->src)
            pipeline_findings(p->src, &f->findings, findings_bytes(&f->findings));
        break;
    case FRAME_TXN_END:
        if (p->src)
            pipeline_txn_end(p->src, &f->txn_end);
        break;
    case FRAME_TABLE_DONE:
        if (p->src)
            pipeline_table_done(p->src, &f->table_done);
        break;
    case FRAME_HEARTBEAT:
        break;
    case FRAME_STATS:
        take_stats(p, &f->stats);
        break;
    case FRAME_RULES_RESULT:
        if (f->rules_result.ok) {
            log_info(MOD, "worker %s: rules generation %llu active", p->name,
                     (unsigned long long)f->rules_result.generation);
        } else {
            /* the supervisor validated these rules: the worker failed on something else (memory) */
            char why[PROC_REASON_MAX];
            snprintf(why, sizeof(why), "generation %llu: %s", (unsigned long long)f->rules_result.generation,
                     f->rules_result.error);
            proc_abort(p, "worker refused rules the supervisor accepted", why);
            return false;
        }
        break;
    case FRAME_EXIT:
        p->has_exit_frame = true;
        snprintf(p->exit_frame_reason, sizeof(p->exit_frame_reason), "%s", f->exit.reason);
        log_info(MOD, "worker %s: exiting with code %u: %s", p->name, f->exit.code, f->exit.reason);
        break;
    default:
        proc_abort(p, "protocol error", "unexpected frame");
        return false;
    }
    return p->fd >= 0;
}

/* Read once and handle every complete frame. Returns false on EOF or when the channel closed. */
static bool chan_read(proc *p)
{
    if (p->fd < 0)
        return false;
    frame_status rs = frame_decoder_read(p->dec, p->fd);
    if (rs == FRAME_ERR && errno == ECONNRESET)
        rs = FRAME_EOF; /* it exited with our frames unread: that is a close, not a failure */
    if (rs == FRAME_ERR) {
        proc_abort(p, "channel read failed", frame_decoder_error(p->dec));
        return false;
    }
    for (;;) {
        frame f;
        frame_status st = frame_next(p->dec, &f);
        if (st == FRAME_AGAIN)
            break;
        if (st == FRAME_VERSION) {
            log_error(MOD,
                      "worker %s: protocol version %u, supervisor speaks %u: the worker binary was upgraded; "
                      "restart the supervisor",
                      p->name, f.hello.version, FRAME_PROTOCOL_VERSION);
            p->version_failed = true;
            proc_kill(p, "restart the supervisor");
            return false;
        }
        if (st != FRAME_OK) {
            proc_abort(p, "malformed frame", frame_decoder_error(p->dec));
            return false;
        }
        if (!dispatch(p, &f))
            return false;
    }
    if (rs == FRAME_EOF) {
        if (frame_decoder_buffered(p->dec) > 0)
            log_warn(MOD, "worker %s: channel closed in the middle of a frame", p->name);
        chan_close(p);
        return false;
    }
    return rs == FRAME_OK;
}

/* Reads per readiness callback: one read(2) fills at most the decoder's
 * buffer (16 KiB to start), and the sinks flush once per loop iteration, so
 * one read per iteration would cap a worker at 16 KiB of findings per
 * iteration. Reading until the socket is empty, bounded so that
 * one busy worker cannot starve the others, lets a group commit take
 * everything that arrived meanwhile. */
#define PROC_READS_PER_WAKEUP 64

static void rio_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    proc *p = w->data;
    p->reading = true;
    for (int i = 0; i < PROC_READS_PER_WAKEUP; i++)
        if (!chan_read(p))
            break; /* drained (AGAIN) or closed */
    p->reading = false;
    uint64_t owed = p->credit_owed;
    p->credit_owed = 0;
    if (owed > 0 && p->fd >= 0)
        send_credit(p, owed);
}

/* ---- spawn ---- */

static bool slot_busy(const proc *p)
{
    for (size_t i = 0; i < p->pt->n; i++) {
        const proc *o = p->pt->rows[i];
        if (o != p && o->pid > 0 && strcmp(o->slot, p->slot) == 0)
            return true;
    }
    return false;
}

static void start_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    proc *p = w->data;
    if (p->pid == 0 && !p->pt->shutting_down && !p->stop_requested)
        proc_spawn(p);
}

static void kill_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    proc *p = w->data;
    if (p->pid > 0) {
        log_warn(MOD, "worker %s (pid %d) did not stop within %.0f s: SIGKILL", p->name, (int)p->pid,
                 PROC_STOP_KILL_S);
        proc_kill(p, "did not stop in time");
    }
}

static void fill_start(const proc *p, const config *cfg, const config_db *db, frame *f)
{
    memset(f, 0, sizeof(*f));
    f->type = FRAME_START;
    frame_start *s = &f->start;
    s->name = db->name;
    s->host = db->host;
    s->port = (uint16_t)db->port;
    s->dbname = db->dbname;
    s->username = db->username;
    s->password = db->password;
    s->publication = db->publication;
    s->sslmode = config_sslmode_name(db->sslmode);
    s->sslrootcert = db->sslrootcert;
    s->sslcert = db->sslcert;
    s->sslkey = db->sslkey;
    s->identity = db->identity;
    s->slot_name = db->slot;
    s->include_schemas.v = (const char *const *)db->scan.include_schemas.items;
    s->include_schemas.n = (uint32_t)db->scan.include_schemas.n;
    s->exclude_tables.v = (const char *const *)db->scan.exclude_tables.items;
    s->exclude_tables.n = (uint32_t)db->scan.exclude_tables.n;
    s->exclude_columns.v = (const char *const *)db->scan.exclude_columns.items;
    s->exclude_columns.n = (uint32_t)db->scan.exclude_columns.n;
    s->scan_numeric = db->scan.scan_numeric;
    s->primary_keys = db->scan.primary_keys == CONFIG_PK_OMIT ? FRAME_PK_OMIT : FRAME_PK_OMIT_MATCHING;
    s->store = cfg->pipeline.store == CONFIG_STORE_POSTGRES ? FRAME_STORE_POSTGRES : FRAME_STORE_MEMORY;
    s->snapshot_connections = (uint32_t)cfg->pipeline.snapshot_connections;
    s->publication_poll_s = (uint32_t)cfg->pipeline.publication_poll_s;
    s->max_retained_wal = cfg->pipeline.max_retained_wal;
    s->on_slot_lost = cfg->pipeline.on_slot_lost == CONFIG_SLOT_LOST_RECREATE ? FRAME_SLOT_LOST_RECREATE
                                                                              : FRAME_SLOT_LOST_FAIL;
    s->credit_bytes = cfg->pipeline.credit_bytes;
    memcpy(s->hash_key, p->pt->env.hash_key, FRAME_HASH_SIZE);
    s->log_level = (uint8_t)cfg->log.level;
    s->log_format = (uint8_t)cfg->log.format;
    s->heartbeat_ms = PROC_HEARTBEAT_MS;
    if (p->pt->env.mem && s->store == FRAME_STORE_MEMORY)
        s->tables = store_tables(p->pt->env.mem, p->identity, &s->n_tables);
}

/* HELLO, START (table list shortened until it fits in a frame), RULES. */
static int queue_handshake(proc *p, const config_db *db)
{
    frame f;
    frame_hello_init(&f, FRAME_ROLE_SUPERVISOR, (uint32_t)getpid());
    if (frame_outq_push(p->outq, &f) != FRAME_OK)
        return -1;
    fill_start(p, p->pt->cfg, db, &f);
    frame_status st;
    while ((st = frame_outq_push(p->outq, &f)) == FRAME_TOOBIG && f.start.n_tables > 0) {
        uint32_t keep = f.start.n_tables / 2;
        log_warn(MOD,
                 "worker %s: %u snapshotted tables do not fit in START; sending %u, the others are "
                 "snapshotted again",
                 p->name, f.start.n_tables, keep);
        f.start.n_tables = keep;
    }
    memset(&f, 0, sizeof(f)); /* no secret pointers left around */
    if (st != FRAME_OK)
        return -1;
    if (p->pt->rules) {
        f.type = FRAME_RULES;
        f.rules.generation = p->pt->rules->generation;
        f.rules.files = p->pt->rules->files;
        f.rules.n_files = p->pt->rules->n_files;
        if (frame_outq_push(p->outq, &f) != FRAME_OK)
            return -1;
    }
    return 0;
}

/* The environment a worker gets: only what libpq needs. Pointers into environ. */
static char **worker_env(void)
{
    size_t n = 0;
    for (char **e = environ; e && *e; e++)
        n++;
    char **out = calloc(n + 1, sizeof(char *));
    if (!out)
        return NULL;
    size_t k = 0;
    for (char **e = environ; e && *e; e++)
        if (strncmp(*e, "HOME=", 5) == 0 || strncmp(*e, "PGPASSFILE=", 11) == 0 ||
            strncmp(*e, "PGSSL", 5) == 0)
            out[k++] = *e;
    return out;
}

static void child_fail(const char *msg)
{
    /* async-signal-safe only: write(2) and _exit(2) */
    ssize_t r = write(STDERR_FILENO, msg, strlen(msg));
    (void)r;
    _exit(127);
}

/*
 * Between fork and exec: only async-signal-safe calls. Stdio first, the
 * channel onto fd 3 last (an fd being moved may itself be 3), then close
 * everything else and exec.
 */
static void child_exec(const char *path, char *const argv[], char *const envp[], int sock, int errw,
                       int nullfd)
{
    sigset_t all;
    sigemptyset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL);
    struct sigaction dfl;
    memset(&dfl, 0, sizeof(dfl));
    dfl.sa_handler = SIG_DFL;
    for (int s = 1; s < NSIG; s++)
        (void)sigaction(s, &dfl, NULL); /* SIGPIPE was ignored: exec would keep that */

    if (dup2(errw, STDERR_FILENO) < 0 || dup2(nullfd, STDIN_FILENO) < 0 || dup2(nullfd, STDOUT_FILENO) < 0)
        child_fail("pgsense-supervisor: cannot set up the worker's stdio\n");
    if (sock == 3) {
        if (fcntl(3, F_SETFD, 0) < 0)
            child_fail("pgsense-supervisor: cannot clear FD_CLOEXEC on fd 3\n");
    } else if (dup2(sock, 3) < 0) {
        child_fail("pgsense-supervisor: cannot move the channel to fd 3\n");
    }
#ifdef SYS_close_range
    (void)syscall(SYS_close_range, 4u, ~0u, 0u); /* everything is CLOEXEC anyway: belt and braces */
#endif
    execve(path, argv, envp);
    child_fail("pgsense-supervisor: cannot exec the worker binary (set PGSENSE_WORKER or reinstall)\n");
}

static void proc_spawn(proc *p)
{
    proc_table *pt = p->pt;
    struct ev_loop *loop = pt->env.loop;
    int sv[2] = {-1, -1}, ep[2] = {-1, -1}, nullfd = -1;
    char **envp = NULL;
    const char *fail_what = "out of memory";

    ev_timer_stop(loop, &p->start_timer);
    p->wait_slot = false;
    const config_db *db = config_find_db(pt->cfg, p->name);
    if (!db) {
        log_error(MOD, "worker %s: no such database in the configuration", p->name);
        p->state = PROC_STOPPED;
        return;
    }
    if (slot_busy(p)) {
        log_info(MOD, "worker %s: waiting for the previous holder of slot %s to exit", p->name, p->slot);
        p->wait_slot = true;
        p->state = PROC_STARTING;
        return;
    }
    if (p->logfd < 0) {
        p->logfd = open_log(p->log_path);
        if (p->logfd < 0)
            log_warn(MOD, "worker %s: cannot open %s: %s (its stderr is lost)", p->name, p->log_path,
                     strerror(errno));
    }

    p->dec = frame_decoder_new(FRAME_ROLE_SUPERVISOR);
    p->outq = frame_outq_new(0);
    envp = worker_env();
    if (!p->dec || !p->outq || !envp)
        goto fail;
    if (queue_handshake(p, db) != 0) {
        fail_what = "cannot encode START/RULES";
        goto fail;
    }
    fail_what = "socketpair";
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) != 0)
        goto fail;
    fail_what = "pipe";
    if (pipe2(ep, O_CLOEXEC) != 0)
        goto fail;
    if (fcntl(ep[0], F_SETFL, O_NONBLOCK) != 0)
        goto fail;
    fail_what = "/dev/null";
    nullfd = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (nullfd < 0)
        goto fail;

    char *argv[] = {(char *)"pgsense-worker", (char *)"--fd", (char *)"3", (char *)"--name", p->name, NULL};
    fail_what = "fork";
    pid_t pid = fork();
    if (pid < 0)
        goto fail;
    if (pid == 0)
        child_exec(pt->env.worker_path, argv, envp, sv[1], ep[1], nullfd);

    (void)close(sv[1]);
    (void)close(ep[1]);
    (void)close(nullfd);
    free(envp);
    p->pid = pid;
    p->fd = sv[0];
    p->errfd = ep[0];
    p->got_hello = false;
    p->has_exit_frame = false;
    p->exit_frame_reason[0] = '\0';
    p->kill_reason[0] = '\0';
    p->version_failed = false;
    p->stop_requested = false;
    p->state = PROC_STARTING;
    p->spawned_at = p->last_seen = p->last_hb_sent = ev_now(loop);
    ev_io_set(&p->rio, p->fd, EV_READ);
    ev_io_set(&p->wio, p->fd, EV_WRITE);
    ev_io_set(&p->eio, p->errfd, EV_READ);
    ev_io_start(loop, &p->rio);
    ev_io_start(loop, &p->eio);
    p->src = pipeline_src_new(pt->env.pipe, p->name, p->identity, ack_cb, credit_cb, ready_cb, p);
    if (!p->src)
        log_warn(MOD, "worker %s: the pipeline refused a source; its findings are dropped until a restart",
                 p->name);
    log_info(MOD, "worker %s: started pid %d (%s), log %s", p->name, (int)pid, p->identity, p->log_path);
    chan_flush(p);
    return;

fail:
    log_error(MOD, "worker %s: cannot start: %s: %s; retrying", p->name, fail_what, strerror(errno));
    for (int i = 0; i < 2; i++) {
        if (sv[i] >= 0)
            (void)close(sv[i]);
        if (ep[i] >= 0)
            (void)close(ep[i]);
    }
    if (nullfd >= 0)
        (void)close(nullfd);
    free(envp);
    frame_decoder_free(p->dec);
    p->dec = NULL;
    frame_outq_free(p->outq);
    p->outq = NULL;
    p->state = PROC_BACKOFF;
    uint64_t d = proc_backoff_ms(p->bo.attempt, proc_rand(pt));
    if (p->bo.attempt < 32)
        p->bo.attempt++;
    ev_timer_set(&p->start_timer, (double)d / 1000.0, 0.);
    ev_timer_start(loop, &p->start_timer);
}

/* ---- rows ---- */

static void proc_free(proc *p)
{
    if (!p)
        return;
    struct ev_loop *loop = p->pt->env.loop;
    chan_close(p);
    err_close(p);
    ev_timer_stop(loop, &p->start_timer);
    ev_timer_stop(loop, &p->kill_timer);
    if (p->logfd >= 0)
        (void)close(p->logfd);
    free(p->name);
    free(p->identity);
    free(p->slot);
    free(p->log_path);
    free(p);
}

static proc *proc_new(proc_table *pt, const config_db *db)
{
    proc *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    p->pt = pt;
    p->fd = p->errfd = p->logfd = -1;
    p->name = strdup(db->name);
    p->identity = strdup(db->identity);
    p->slot = strdup(db->slot);
    size_t len = strlen(pt->env.log_dir) + strlen(db->name) + 16;
    p->log_path = malloc(len);
    if (!p->name || !p->identity || !p->slot || !p->log_path) {
        proc_free(p);
        return NULL;
    }
    snprintf(p->log_path, len, "%s/worker-%s.log", pt->env.log_dir, db->name);
    ev_io_init(&p->rio, rio_cb, -1, EV_READ);
    ev_io_init(&p->wio, wio_cb, -1, EV_WRITE);
    ev_io_init(&p->eio, err_cb, -1, EV_READ);
    ev_timer_init(&p->start_timer, start_timer_cb, 0., 0.);
    ev_timer_init(&p->kill_timer, kill_timer_cb, PROC_STOP_KILL_S, 0.);
    p->rio.data = p->wio.data = p->eio.data = p;
    p->start_timer.data = p->kill_timer.data = p;
    p->state = PROC_STARTING;
    return p;
}

static int rows_add(proc_table *pt, proc *p)
{
    if (pt->n == pt->cap) {
        size_t cap = pt->cap ? pt->cap * 2 : 8;
        proc **nr = realloc(pt->rows, cap * sizeof(*nr));
        if (!nr)
            return -1;
        pt->rows = nr;
        pt->cap = cap;
    }
    pt->rows[pt->n++] = p;
    return 0;
}

static void rows_remove(proc_table *pt, proc *p)
{
    for (size_t i = 0; i < pt->n; i++) {
        if (pt->rows[i] == p) {
            memmove(&pt->rows[i], &pt->rows[i + 1], (pt->n - i - 1) * sizeof(*pt->rows));
            pt->n--;
            break;
        }
    }
    proc_free(p);
}

/* ---- stop ---- */

/*
 * Stop p's worker: SHUTDOWN drain, SIGKILL if it is still there after
 * PROC_STOP_KILL_S. A row without a process is settled at once.
 */
static void proc_stop(proc *p, const char *why)
{
    proc_table *pt = p->pt;
    ev_timer_stop(pt->env.loop, &p->start_timer);
    p->wait_slot = false;
    if (p->pid <= 0) {
        if (p->removed) {
            rows_remove(pt, p);
        } else if (p->restart_after_stop && !pt->shutting_down) {
            p->restart_after_stop = false;
            proc_spawn(p);
        } else {
            p->state = PROC_STOPPED;
        }
        return;
    }
    if (p->stop_requested)
        return;
    p->stop_requested = true;
    log_info(MOD, "worker %s (pid %d): stopping (%s)", p->name, (int)p->pid, why);
    frame f = {.type = FRAME_SHUTDOWN};
    f.shutdown.mode = FRAME_SHUTDOWN_DRAIN;
    f.shutdown.reason = why;
    if (chan_send(p, &f) != 0 && p->pid > 0)
        (void)kill(p->pid, SIGTERM); /* no channel: it exits on EOF anyway; make sure */
    ev_timer_set(&p->kill_timer, PROC_STOP_KILL_S, 0.);
    ev_timer_start(pt->env.loop, &p->kill_timer);
}

/* ---- reaping ---- */

static void kick_waiting(proc_table *pt)
{
    for (size_t i = 0; i < pt->n; i++) {
        proc *o = pt->rows[i];
        if (o->wait_slot && o->pid == 0 && !slot_busy(o) && !pt->shutting_down)
            proc_spawn(o);
    }
}

/* A worker exited: settle its row (restart, fail, stop or remove) and start whoever waited for its slot. */
static void proc_reaped(proc_table *pt, int pid, int wstatus)
{
    proc *p = NULL;
    for (size_t i = 0; i < pt->n && !p; i++)
        if (pt->rows[i]->pid == pid)
            p = pt->rows[i];
    if (!p)
        return;
    struct ev_loop *loop = pt->env.loop;

    /* its last frames (EXIT, findings) and last words are still buffered; pid 0 first: it may be reused */
    p->pid = 0;
    while (chan_read(p))
        ;
    chan_close(p);
    err_drain(p, 0);
    err_close(p);
    ev_timer_stop(loop, &p->kill_timer);

    bool signaled = WIFSIGNALED(wstatus);
    int value = signaled ? WTERMSIG(wstatus) : WEXITSTATUS(wstatus);
    double ran = ev_now(loop) - p->spawned_at;
    p->has_exit = true;
    p->exit_signaled = signaled;
    p->exit_value = value;
    if (p->kill_reason[0])
        snprintf(p->exit_reason, sizeof(p->exit_reason), "%s", p->kill_reason);
    else if (p->has_exit_frame && p->exit_frame_reason[0])
        snprintf(p->exit_reason, sizeof(p->exit_reason), "%s", p->exit_frame_reason);
    else if (signaled)
        snprintf(p->exit_reason, sizeof(p->exit_reason), "killed by signal %d (%s)", value, strsignal(value));
    else if (value == 127 && !p->got_hello)
        snprintf(p->exit_reason, sizeof(p->exit_reason), "could not exec %s", pt->env.worker_path);
    else
        snprintf(p->exit_reason, sizeof(p->exit_reason), "exited with code %d", value);

    if (p->version_failed) {
        p->state = PROC_FAILED; /* no restart loop: a SIGHUP retries */
        snprintf(p->exit_reason, sizeof(p->exit_reason), "restart the supervisor");
        log_error(MOD, "worker %s: failed: protocol version mismatch: restart the supervisor", p->name);
    } else if (pt->shutting_down) {
        p->state = PROC_STOPPED;
        log_info(MOD, "worker %s: stopped (%s %d)", p->name, signaled ? "signal" : "code", value);
    } else if (p->removed) {
        log_info(MOD, "worker %s: stopped, removed from the table", p->name);
        rows_remove(pt, p);
        p = NULL;
    } else if (p->restart_after_stop) {
        log_info(MOD, "worker %s: stopped; starting it with the new settings", p->name);
        p->restart_after_stop = false;
        p->stop_requested = false;
        proc_spawn(p);
    } else {
        proc_decision d = proc_exit_decide(&p->bo, p->stop_requested, signaled, value, ran, proc_rand(pt));
        p->state = d.state;
        if (d.state == PROC_STOPPED) {
            log_info(MOD, "worker %s: stopped", p->name);
        } else {
            if (d.state == PROC_FAILED)
                log_error(MOD, "worker %s (pid %d) failed: %s; fix it and send SIGHUP (retried every %u s)",
                          p->name, pid, p->exit_reason, PROC_FAILED_RETRY_MS / 1000);
            else if (p->kill_reason[0] || p->has_exit_frame)
                log_warn(MOD, "worker %s (pid %d) %s %d: %s; restart in %.1f s", p->name, pid,
                         signaled ? "killed by signal" : "exited with code", value, p->exit_reason,
                         (double)d.delay_ms / 1000.0);
            else
                log_warn(MOD, "worker %s (pid %d) %s; restart in %.1f s", p->name, pid, p->exit_reason,
                         (double)d.delay_ms / 1000.0);
            if (d.state == PROC_BACKOFF) {
                p->restarts++;
                pipeline_worker_event(pt->env.pipe, p->name, "restart");
            }
            ev_timer_set(&p->start_timer, (double)d.delay_ms / 1000.0, 0.);
            ev_timer_start(loop, &p->start_timer);
        }
    }
    kick_waiting(pt);
    proc_maybe_done(pt);
}

static void child_cb(struct ev_loop *loop, ev_child *w, int revents)
{
    (void)loop;
    (void)revents;
    if (!WIFEXITED(w->rstatus) && !WIFSIGNALED(w->rstatus))
        return; /* stopped / continued */
    proc_reaped(w->data, w->rpid, w->rstatus);
}

/* ---- janitor: heartbeats out, watchdog ---- */

static void janitor_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)revents;
    proc_table *pt = w->data;
    ev_tstamp now = ev_now(loop);
    for (size_t i = 0; i < pt->n; i++) {
        proc *p = pt->rows[i];
        if (p->pid <= 0)
            continue;
        if (now - p->last_seen > PROC_WATCHDOG_S && !p->kill_reason[0]) {
            log_error(MOD, "worker %s (pid %d): no heartbeat for %.0f s: SIGKILL, it will be restarted",
                      p->name, (int)p->pid, PROC_WATCHDOG_S);
            proc_kill(p, "no heartbeat for 30 s (watchdog)");
            continue;
        }
        if (p->fd >= 0 && p->got_hello && (now - p->last_hb_sent) * 1000.0 >= PROC_HEARTBEAT_MS) {
            p->last_hb_sent = now;
            frame f = {.type = FRAME_HEARTBEAT};
            f.heartbeat.sent_at = (int64_t)(ev_time() * 1e6);
            (void)chan_send(p, &f);
        }
    }
}

/* ---- table ---- */

proc_table *proc_table_new(const proc_env *env, const config *cfg, const proc_rules *rules)
{
    proc_table *pt = calloc(1, sizeof(*pt));
    if (!pt)
        return NULL;
    pt->env = *env;
    pt->cfg = cfg;
    pt->rules = rules;
    if (getrandom(&pt->rng, sizeof(pt->rng), GRND_NONBLOCK) != (ssize_t)sizeof(pt->rng) || pt->rng == 0)
        pt->rng = (uint64_t)getpid() * 0x9E3779B97F4A7C15ULL + (uint64_t)ev_time();
    ev_timer_init(&pt->janitor, janitor_cb, 1., 1.);
    pt->janitor.data = pt;
    ev_timer_start(env->loop, &pt->janitor);
    ev_child_init(&pt->child, child_cb, 0, 0);
    pt->child.data = pt;
    ev_child_start(env->loop, &pt->child);
    return pt;
}

void proc_table_free(proc_table *pt)
{
    if (!pt)
        return;
    ev_timer_stop(pt->env.loop, &pt->janitor);
    ev_child_stop(pt->env.loop, &pt->child);
    for (size_t i = 0; i < pt->n; i++)
        proc_free(pt->rows[i]);
    free(pt->rows);
    free(pt->view);
    free(pt);
}

int proc_table_start_all(proc_table *pt)
{
    for (size_t i = 0; i < pt->cfg->n_dbs; i++) {
        proc *p = proc_new(pt, &pt->cfg->dbs[i]);
        if (!p || rows_add(pt, p) != 0) {
            proc_free(p);
            return -1;
        }
    }
    for (size_t i = 0; i < pt->n; i++)
        proc_spawn(pt->rows[i]);
    return 0;
}

static bool start_settings_changed(const config *a, const config *b)
{
    return a->pipeline.snapshot_connections != b->pipeline.snapshot_connections ||
           a->pipeline.publication_poll_s != b->pipeline.publication_poll_s ||
           a->pipeline.max_retained_wal != b->pipeline.max_retained_wal ||
           a->pipeline.on_slot_lost != b->pipeline.on_slot_lost ||
           a->pipeline.credit_bytes != b->pipeline.credit_bytes;
}

/* Restart p with the settings now in the table's config: stop first, start on exit. */
static void restart_row(proc *p, const char *why)
{
    p->restart_after_stop = true;
    if (p->pid > 0) {
        proc_stop(p, why);
    } else {
        p->restart_after_stop = false;
        proc_spawn(p);
    }
}

int proc_table_reload(proc_table *pt, const config *new_cfg, const proc_rules *rules)
{
    const config *old = pt->cfg;
    bool all = start_settings_changed(old, new_cfg);
    size_t n_old = pt->n;
    bool *alive = calloc(n_old + 1, sizeof(bool));
    proc **added = calloc(new_cfg->n_dbs + 1, sizeof(proc *));
    int rc = -1;
    if (!alive || !added)
        goto fail;
    if (all)
        log_info(MOD, "[pipeline] settings changed: every worker restarts");

    pt->cfg = new_cfg;
    if (rules)
        pt->rules = rules;

    /* mark: every new entry revives its row or is added */
    size_t n_added = 0;
    for (size_t k = 0; k < new_cfg->n_dbs; k++) {
        const config_db *ndb = &new_cfg->dbs[k];
        proc *p = NULL;
        size_t idx = 0;
        for (size_t i = 0; i < n_old && !p; i++)
            if (!pt->rows[i]->removed && strcmp(pt->rows[i]->name, ndb->name) == 0) {
                p = pt->rows[i];
                idx = i;
            }
        if (!p) {
            proc *np = proc_new(pt, ndb);
            if (!np || rows_add(pt, np) != 0) {
                proc_free(np);
                log_error(MOD, "database %s: out of memory, not started", ndb->name);
                continue;
            }
            added[n_added++] = np;
            continue;
        }
        alive[idx] = true;
        const config_db *odb = config_find_db(old, p->name);
        if (odb && !config_db_same_identity(odb, ndb)) {
            log_warn(
                MOD,
                "database %s: host or dbname changed (%s -> %s): new slot %s; the old slot %s is orphaned "
                "and keeps WAL: drop it with `pgsense slots drop`",
                p->name, odb->identity, ndb->identity, ndb->slot, odb->slot);
            char *id = strdup(ndb->identity), *slot = strdup(ndb->slot);
            if (!id || !slot) {
                free(id);
                free(slot);
                goto fail;
            }
            if (pt->env.mem)
                store_forget(pt->env.mem, p->identity);
            free(p->identity);
            free(p->slot);
            p->identity = id;
            p->slot = slot;
            restart_row(p, "identity changed");
        } else if (odb && !config_db_same_connection(odb, ndb)) {
            log_info(MOD, "database %s: connection settings changed: restarting its worker", p->name);
            restart_row(p, "connection settings changed");
        } else if (odb && !config_scan_equal(&odb->scan, &ndb->scan)) {
            /* scan filters travel in START; a restart applies them (the slot keeps the position) */
            log_info(MOD, "database %s: scan filters changed: restarting its worker", p->name);
            restart_row(p, "scan filters changed");
        } else if (all) {
            restart_row(p, "pipeline settings changed");
        } else if (p->state == PROC_FAILED && p->pid == 0) {
            log_info(MOD, "database %s: retrying the failed worker", p->name);
            p->bo.attempt = 0;
            proc_spawn(p);
        } else if (rules && p->fd >= 0 && !p->stop_requested) {
            send_rules(p, rules);
        }
    }
    /* sweep: rows not revived */
    for (size_t i = n_old; i-- > 0;) {
        if (alive[i])
            continue;
        proc *p = pt->rows[i];
        if (p->removed)
            continue;
        log_warn(MOD,
                 "database %s removed: stopping its worker; its slot %s is kept (drop it with `pgsense "
                 "slots drop %s`)",
                 p->name, p->slot, p->slot);
        p->removed = true;
        p->restart_after_stop = false;
        proc_stop(p, "database removed"); /* may free p */
    }
    for (size_t i = 0; i < n_added; i++) {
        log_info(MOD, "database %s added", added[i]->name);
        proc_spawn(added[i]); /* waits if a removed row still holds its slot */
    }
    rc = 0;
fail:
    free(alive);
    free(added);
    return rc;
}

void proc_table_set_rules(proc_table *pt, const proc_rules *rules)
{
    pt->rules = rules;
    for (size_t i = 0; i < pt->n; i++) {
        proc *p = pt->rows[i];
        if (p->fd >= 0 && !p->stop_requested)
            send_rules(p, rules);
    }
}

void proc_table_reopen_logs(proc_table *pt)
{
    for (size_t i = 0; i < pt->n; i++) {
        proc *p = pt->rows[i];
        int fd = open_log(p->log_path);
        if (fd < 0) {
            log_warn(MOD, "worker %s: cannot reopen %s: %s (keeping the old file)", p->name, p->log_path,
                     strerror(errno));
            continue;
        }
        if (p->logfd >= 0)
            (void)close(p->logfd);
        p->logfd = fd;
    }
}

static void proc_maybe_done(proc_table *pt)
{
    if (!pt->shutting_down || pt->done_called)
        return;
    for (size_t i = 0; i < pt->n; i++)
        if (pt->rows[i]->pid > 0)
            return;
    pt->done_called = true;
    if (pt->done)
        pt->done(pt->done_ctx);
}

void proc_table_shutdown(proc_table *pt, void (*done)(void *ctx), void *ctx)
{
    pt->shutting_down = true;
    pt->done = done;
    pt->done_ctx = ctx;
    for (size_t i = 0; i < pt->n; i++) {
        proc *p = pt->rows[i];
        p->restart_after_stop = false;
        if (p->pid > 0)
            proc_stop(p, "supervisor shutting down");
        else {
            ev_timer_stop(pt->env.loop, &p->start_timer);
            p->wait_slot = false;
            p->state = PROC_STOPPED;
        }
    }
    proc_maybe_done(pt);
}

size_t proc_table_status(proc_table *pt, const status_worker **out)
{
    if (pt->n > pt->view_cap) {
        status_worker *nv = realloc(pt->view, pt->n * sizeof(*nv));
        if (!nv) {
            *out = NULL;
            return 0;
        }
        pt->view = nv;
        pt->view_cap = pt->n;
    }
    for (size_t i = 0; i < pt->n; i++) {
        const proc *p = pt->rows[i];
        status_worker *w = &pt->view[i];
        memset(w, 0, sizeof(*w));
        w->name = p->name;
        w->database = p->identity;
        w->slot = p->slot;
        w->log_file = p->log_path;
        w->pid = (int)p->pid;
        w->state = proc_state_name(p->state);
        w->restarts = p->restarts;
        w->has_exit = p->has_exit;
        w->exit_signaled = p->exit_signaled;
        w->exit_value = p->exit_value;
        w->exit_reason = p->exit_reason;
        if (ev_is_active(&p->start_timer)) {
            double left = ev_timer_remaining(pt->env.loop, (ev_timer *)&p->start_timer);
            w->backoff_ms = left > 0 ? (uint64_t)(left * 1000.0) : 0;
        }
        w->has_stats = p->has_stats;
        w->confirmed_lsn = p->confirmed_lsn;
        w->retained_wal_bytes = p->has_stats ? p->retained_wal : -1;
        w->undelivered_findings = p->undelivered;
        w->wal_status = p->wal_status;
        w->events = p->events;
        w->findings = p->findings;
        w->tables_done = p->tables_done;
        w->tables_total = p->tables_total;
        w->table_errors = p->terr;
        w->n_table_errors = p->n_terr;
    }
    *out = pt->view;
    return pt->n;
}
