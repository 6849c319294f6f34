/*
 * pgsense-worker: one process per [[databases]] entry. Talks to the
 * supervisor over fd 3 (docs/protocol.md), to PostgreSQL over a logical
 * replication connection (pgoutput), a side connection for pg_catalog, and
 * snapshot COPY connections. Everything runs in one libev loop; libpq is
 * used in non-blocking mode only.
 *
 * Exit codes (SPEC section 1): 0 clean stop, 1 error (restarted with
 * backoff), 3 fatal (needs the operator), 4 schema change not applied.
 */
#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <unistd.h>

#include "catalog.h"
#include "chan.h"
#include "engine.h"
#include "frame.h"
#include "log.h"
#include "lsn.h"
#include "pgconn.h"
#include "pgoutput.h"
#include "pgstore.h"
#include "pgtypes.h"
#include "replproto.h"
#include "rules.h"
#include "scan.h"
#include "snapshot.h"
#include "unit.h"

#define EXIT_OK     0
#define EXIT_ERROR  1
#define EXIT_FATAL  3
#define EXIT_SCHEMA 4

#define FEEDBACK_S      1.0  /* standby status update period */
#define STATS_S         2.0  /* STATS to the supervisor */
#define SLOT_STATS_S    5.0  /* pg_replication_slots query */
#define DRAIN_S         25.0 /* SHUTDOWN drain bound (the supervisor allows 30) */
#define UNIT_FLUSH_BYTES (256 * 1024)
#define MAX_CONN_PARAMS 20

typedef enum {
    W_WAIT_START,  /* HELLO / START / first RULES */
    W_CONNECTING,  /* side + replication connections, checks, slot */
    W_IMPORTING,   /* snapshot connections importing the exported snapshot */
    W_STREAMING,   /* START_REPLICATION running */
    W_DRAINING,    /* SHUTDOWN drain */
} wstate;

typedef struct {
    uint64_t seq;
    uint64_t end_lsn;
    uint32_t findings;
    ev_tstamp sent;
} pending_ack;

typedef struct {
    uint64_t seq;
    uint32_t relid;
    uint64_t snapshot_lsn;
} pending_table;

typedef struct {
    uint32_t relid;
    uint8_t state; /* frame_table_state_kind */
    char *schema, *table;
    char reason[256];
} table_state;

typedef struct {
    uint32_t relid;
    scan_table *st;
} rel_entry;

typedef struct {
    struct ev_loop *loop;
    chan *ch;
    char name[64];
    wstate state;
    bool got_hello, got_start, have_rules;

    /* settings from START */
    char *host, *dbname, *username, *password, *publication, *sslmode, *sslrootcert, *sslcert, *sslkey;
    char *identity, *slot;
    char port[8];
    uint8_t on_slot_lost;
    uint8_t store; /* frame_store */
    uint64_t max_retained_wal;
    int snapshot_connections;
    uint32_t publication_poll_s;
    const char *conn_keys[MAX_CONN_PARAMS];
    const char *conn_vals[MAX_CONN_PARAMS];
    const char *repl_keys[MAX_CONN_PARAMS];
    const char *repl_vals[MAX_CONN_PARAMS];
    char appname[96];

    /* rules */
    rules_set *rules;
    engine *eng;
    rules_set *next_rules; /* compiled, waiting for a transaction boundary */
    engine *next_eng;
    scanner *scan;

    /* PostgreSQL */
    pgconn *side, *repl;
    pgstore *pgs; /* store = postgres */
    pgo_decoder *dec;
    pgtypes_cache *types;
    catalog_checks checks;
    bool slot_created;
    char exported[128];
    uint64_t consistent_lsn;

    /* tables */
    table_state *tables;
    size_t n_tables, cap_tables;
    rel_entry *rels;
    size_t n_rels, cap_rels;
    const pgo_relation *pending_rel; /* waiting for its catalog answer */
    snapshot *snap;
    snapshot *snap_old; /* freed outside its callbacks */
    pending_table *ptables;
    size_t n_ptables, cap_ptables;

    /* stream */
    unit_seq seq;
    unit *txn;
    bool in_txn;
    uint64_t txn_lsn;
    int64_t txn_time;
    uint64_t last_end;      /* end LSN of the last transaction processed */
    uint64_t received;      /* highest WAL position seen */
    uint64_t keepalive_end; /* last keepalive's end */
    uint64_t confirmed;     /* flush position reported */
    pending_ack *acks;
    size_t n_acks, cap_acks;
    uint64_t undelivered;
    bool overflow; /* over max_retained_wal with the sinks stuck: reading on, findings counted, not sent */
    uint64_t reconnects;
    catalog_slot_stats slot_stats;
    ev_tstamp last_wal_warn;

    ev_timer feedback, stats, slot_timer, poll, drain, deferred;
} worker;

static worker W;

static void stream_resume_if_possible(void);
static void start_snapshot(const catalog_table *tables, size_t n, const char *snapname, uint64_t lsn);
static void query_tables(bool initial);

/* ---- exits ---------------------------------------------------------- */

/*
 * End COPY BOTH the way pg_recvlogical does: CopyDone, read what the server
 * still sends until it ends the stream, then the final result. Bounded by
 * timeout_ms; only used on the way out.
 */
static void repl_close_cleanly(PGconn *conn, int timeout_ms)
{
    if (PQputCopyEnd(conn, NULL) != 1)
        return;
    struct timeval start, now;
    gettimeofday(&start, NULL);
    bool copying = true;
    for (;;) {
        if (PQflush(conn) < 0)
            return;
        if (copying) {
            char *buf = NULL;
            int n = PQgetCopyData(conn, &buf, 1);
            if (buf)
                PQfreemem(buf);
            if (n == -2)
                return;
            if (n > 0)
                continue;
            if (n == -1)
                copying = false; /* the server ended the stream: its results follow */
        }
        if (!copying) {
            PGresult *res = NULL;
            while (!PQisBusy(conn) && (res = PQgetResult(conn)) != NULL)
                PQclear(res);
            if (!PQisBusy(conn))
                return; /* every result read: the connection is idle */
        }
        gettimeofday(&now, NULL);
        long waited = (now.tv_sec - start.tv_sec) * 1000 + (now.tv_usec - start.tv_usec) / 1000;
        if (waited >= timeout_ms)
            return;
        struct pollfd p = {.fd = PQsocket(conn), .events = POLLIN};
        if (poll(&p, 1, (int)(timeout_ms - waited)) < 0 && errno != EINTR)
            return;
        if (!PQconsumeInput(conn))
            return;
    }
}

static void worker_exit(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));
static void worker_exit(int code, const char *fmt, ...)
{
    char reason[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof(reason), fmt, ap);
    va_end(ap);
    if (code == EXIT_OK)
        log_info("worker", "exiting: %s", reason);
    else
        log_error("worker", "exiting with code %d: %s", code, reason);
    if (W.ch) {
        frame f = {.type = FRAME_EXIT};
        f.exit.code = (uint8_t)code;
        f.exit.reason = reason;
        if (chan_send(W.ch, &f) == 0)
            chan_flush_blocking(W.ch, 1000);
    }
    /* Terminate each connection politely: the slot is released at once, no "client lost" in the server log. */
    snapshot_free(W.snap);
    snapshot_free(W.snap_old);
    if (W.repl && (W.state == W_STREAMING || W.state == W_DRAINING))
        repl_close_cleanly(pgconn_raw(W.repl), 3000);
    pgconn_free(W.repl);
    pgstore_free(W.pgs);
    pgconn_free(W.side);
    exit(code);
}

/* ---- small helpers -------------------------------------------------- */

static char *dup_or_null(const char *s)
{
    if (!s || !*s)
        return NULL;
    char *d = strdup(s);
    if (!d)
        worker_exit(EXIT_ERROR, "out of memory");
    return d;
}

static table_state *table_find(uint32_t relid)
{
    for (size_t i = 0; i < W.n_tables; i++)
        if (W.tables[i].relid == relid)
            return &W.tables[i];
    return NULL;
}

static table_state *table_add(uint32_t relid, const char *schema, const char *table, uint8_t state)
{
    table_state *t = table_find(relid);
    if (t)
        return t;
    if (W.n_tables == W.cap_tables) {
        size_t cap = W.cap_tables ? W.cap_tables * 2 : 32;
        table_state *n = realloc(W.tables, cap * sizeof(*n));
        if (!n)
            worker_exit(EXIT_ERROR, "out of memory");
        W.tables = n;
        W.cap_tables = cap;
    }
    t = &W.tables[W.n_tables++];
    memset(t, 0, sizeof(*t));
    t->relid = relid;
    t->schema = strdup(schema);
    t->table = strdup(table);
    t->state = state;
    if (!t->schema || !t->table)
        worker_exit(EXIT_ERROR, "out of memory");
    return t;
}

static uint32_t tables_done(void)
{
    uint32_t n = 0;
    for (size_t i = 0; i < W.n_tables; i++)
        if (W.tables[i].state == FRAME_TABLE_READY)
            n++;
    return n;
}

static rel_entry *rel_find(uint32_t relid)
{
    for (size_t i = 0; i < W.n_rels; i++)
        if (W.rels[i].relid == relid)
            return &W.rels[i];
    return NULL;
}

static void rel_set(uint32_t relid, scan_table *st)
{
    rel_entry *r = rel_find(relid);
    if (!r) {
        if (W.n_rels == W.cap_rels) {
            size_t cap = W.cap_rels ? W.cap_rels * 2 : 32;
            rel_entry *n = realloc(W.rels, cap * sizeof(*n));
            if (!n)
                worker_exit(EXIT_ERROR, "out of memory");
            W.rels = n;
            W.cap_rels = cap;
        }
        r = &W.rels[W.n_rels++];
        r->relid = relid;
        r->st = NULL;
    }
    scan_table_free(r->st);
    r->st = st;
}

/* ---- supervisor channel --------------------------------------------- */

static void send_stats(void)
{
    const scan_counters *sc = scanner_counters(W.scan);
    frame f = {.type = FRAME_STATS};
    frame_stats *s = &f.stats;
    if (W.state == W_STREAMING || W.state == W_DRAINING)
        s->state = (W.snap && snapshot_remaining(W.snap) > 0) ? FRAME_WSTATE_SNAPSHOT : FRAME_WSTATE_STREAMING;
    else if (W.state == W_IMPORTING)
        s->state = FRAME_WSTATE_SNAPSHOT;
    else if (W.state == W_CONNECTING)
        s->state = FRAME_WSTATE_CONNECTING;
    else
        s->state = FRAME_WSTATE_STARTING;
    if (W.state == W_DRAINING)
        s->state = FRAME_WSTATE_STOPPING;
    s->events = sc ? sc->events : 0;
    s->findings = sc ? sc->findings : 0;
    s->confirmed_lsn = W.confirmed ? W.confirmed : W.slot_stats.confirmed_lsn;
    s->current_lsn = W.slot_stats.current_lsn;
    s->lag_bytes = W.slot_stats.lag_bytes > 0 ? (uint64_t)W.slot_stats.lag_bytes : 0;
    s->retained_wal_bytes = W.slot_stats.found ? W.slot_stats.retained_bytes : -1;
    s->wal_status = W.slot_stats.wal_status;
    s->tables_done = tables_done();
    s->tables_total = (uint32_t)W.n_tables;
    frame_table_error errs[64];
    uint32_t ne = 0;
    for (size_t i = 0; i < W.n_tables && ne < 64; i++) {
        if (W.tables[i].state != FRAME_TABLE_ERROR)
            continue;
        errs[ne].schema = W.tables[i].schema;
        errs[ne].table = W.tables[i].table;
        errs[ne].reason = W.tables[i].reason;
        ne++;
    }
    s->table_errors = errs;
    s->n_table_errors = ne;
    s->skipped_filter = sc ? sc->skipped_filter : 0;
    s->skipped_type = sc ? sc->skipped_type : 0;
    s->skipped_scope = sc ? sc->skipped_scope : 0;
    s->reconnects = W.reconnects;
    frame_script_error se[64];
    uint32_t nse = 0;
    for (size_t i = 0; W.eng && i < rules_count(W.rules) && nse < 64; i++) {
        uint64_t c = engine_script_errors(W.eng, i);
        if (c) {
            se[nse].rule_id = rules_id(W.rules, i);
            se[nse].count = c;
            nse++;
        }
    }
    s->script_errors = se;
    s->n_script_errors = nse;
    s->undelivered_findings = W.undelivered;
    if (chan_send(W.ch, &f) < 0)
        log_warn("worker", "cannot queue stats for the supervisor");
}

typedef struct {
    const frame_rules *r;
} rules_lookup_ctx;

static int rules_lookup(void *ctx, const char *path, const char **data, size_t *len, char *errbuf, size_t errlen)
{
    const frame_rules *r = ((rules_lookup_ctx *)ctx)->r;
    for (uint32_t i = 1; i < r->n_files; i++) {
        if (strcmp(r->files[i].path, path) == 0) {
            *data = (const char *)r->files[i].data;
            *len = r->files[i].len;
            return 0;
        }
    }
    snprintf(errbuf, errlen, "script %s was not sent by the supervisor", path);
    return -1;
}

static void apply_next_rules(void)
{
    if (!W.next_eng)
        return;
    engine_free(W.eng);
    rules_free(W.rules);
    W.eng = W.next_eng;
    W.rules = W.next_rules;
    W.next_eng = NULL;
    W.next_rules = NULL;
    scanner_set_engine(W.scan, W.eng);
    log_info("rules", "%zu rules active", rules_count(W.rules));
}

static void on_rules(const frame_rules *r)
{
    frame res = {.type = FRAME_RULES_RESULT};
    res.rules_result.generation = r->generation;
    char err[2048] = "";
    rules_set *rs = NULL;
    engine *e = NULL;
    if (r->n_files < 1) {
        snprintf(err, sizeof(err), "no rules file in the RULES frame");
    } else {
        rules_diag diag;
        rules_lookup_ctx lc = {.r = r};
        if (rules_load_mem(r->files[0].path, (const char *)r->files[0].data, r->files[0].len, rules_lookup, &lc,
                           &rs, &diag) < 0) {
            if (diag.count > 0)
                snprintf(err, sizeof(err), "%s:%u: %s", diag.file, diag.items[0].line, diag.items[0].msg);
            else
                snprintf(err, sizeof(err), "rules rejected");
        } else if (!(e = engine_new(rs, err, sizeof(err)))) {
            rules_free(rs);
            rs = NULL;
        }
    }
    res.rules_result.ok = e != NULL;
    res.rules_result.error = err;
    if (chan_send(W.ch, &res) < 0)
        worker_exit(EXIT_ERROR, "cannot answer the supervisor");
    if (!e) {
        log_error("rules", "rules generation %" PRIu64 " refused: %s", r->generation, err);
        if (!W.have_rules)
            worker_exit(EXIT_FATAL, "rules rejected: %s", err);
        return;
    }
    engine_free(W.next_eng);
    rules_free(W.next_rules);
    W.next_eng = e;
    W.next_rules = rs;
    if (!W.in_txn)
        apply_next_rules();
    if (!W.have_rules) {
        W.have_rules = true;
        extern void connect_start(void);
        connect_start();
    }
}

static void on_start(const frame_start *st)
{
    snprintf(W.name, sizeof(W.name), "%s", st->name);
    log_setup((log_level)st->log_level, (log_format)st->log_format, W.name);
    W.host = dup_or_null(st->host);
    W.dbname = dup_or_null(st->dbname);
    W.username = dup_or_null(st->username);
    W.password = dup_or_null(st->password);
    W.publication = dup_or_null(st->publication);
    W.sslmode = dup_or_null(st->sslmode);
    W.sslrootcert = dup_or_null(st->sslrootcert);
    W.sslcert = dup_or_null(st->sslcert);
    W.sslkey = dup_or_null(st->sslkey);
    W.identity = dup_or_null(st->identity);
    W.slot = dup_or_null(st->slot_name);
    if (!W.dbname || !W.publication || !W.slot || !W.identity)
        worker_exit(EXIT_FATAL, "START lacks dbname, publication, slot or identity");
    snprintf(W.port, sizeof(W.port), "%u", st->port ? st->port : 5432);
    W.on_slot_lost = st->on_slot_lost;
    W.store = st->store;
    W.max_retained_wal = st->max_retained_wal;
    W.snapshot_connections = st->snapshot_connections ? (int)st->snapshot_connections : 2;
    W.publication_poll_s = st->publication_poll_s ? st->publication_poll_s : 60;
    ev_timer_set(&W.poll, W.publication_poll_s, W.publication_poll_s);
    W.scan = scanner_new(st);
    if (!W.scan)
        worker_exit(EXIT_ERROR, "out of memory");
    chan_credit_set(W.ch, (int64_t)(st->credit_bytes ? st->credit_bytes : 8388608));
    chan_heartbeat(W.ch, st->heartbeat_ms ? st->heartbeat_ms : 5000);
    for (uint32_t i = 0; i < st->n_tables; i++)
        table_add(st->tables[i].relid, st->tables[i].schema, st->tables[i].table, st->tables[i].state);

    /* libpq parameters: the normal connection, and the replication one. */
    snprintf(W.appname, sizeof(W.appname), "pgsense-%s", W.name);
    const char *keys[] = {"host", "port", "dbname", "user", "password", "sslmode", "sslrootcert", "sslcert",
                          "sslkey"};
    const char *vals[] = {W.host, W.port, W.dbname, W.username, W.password, W.sslmode, W.sslrootcert,
                          W.sslcert, W.sslkey};
    int n = 0;
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        if (!vals[i])
            continue;
        W.conn_keys[n] = keys[i];
        W.conn_vals[n] = vals[i];
        n++;
    }
    W.conn_keys[n] = "application_name";
    W.conn_vals[n++] = W.appname;
    W.conn_keys[n] = "client_encoding";
    W.conn_vals[n++] = "UTF8";
    W.conn_keys[n] = "connect_timeout";
    W.conn_vals[n++] = "10";
    W.conn_keys[n] = "options";
    W.conn_vals[n++] = "-c search_path=";
    for (int i = 0; i < n; i++) {
        W.repl_keys[i] = W.conn_keys[i];
        W.repl_vals[i] = W.conn_vals[i];
    }
    W.repl_keys[n] = "replication";
    W.repl_vals[n] = "database";
    W.repl_keys[n + 1] = NULL;
    W.repl_vals[n + 1] = NULL;
    W.conn_keys[n] = NULL;
    W.conn_vals[n] = NULL;
    log_info("worker", "started for %s, slot %s, publication %s", W.identity, W.slot, W.publication);
}

static void finish_drain(void);
static void start_drain(bool immediate);

/* Acknowledged seqs: confirm their LSNs, mark snapshotted tables ready. */
static void on_ack(const frame_ack *a)
{
    chan_credit_add(W.ch, a->credit);
    size_t k = 0;
    while (k < W.n_acks && W.acks[k].seq <= a->seq) {
        if (W.acks[k].end_lsn > W.confirmed)
            W.confirmed = W.acks[k].end_lsn;
        k++;
    }
    if (k) {
        memmove(W.acks, W.acks + k, (W.n_acks - k) * sizeof(*W.acks));
        W.n_acks -= k;
    }
    if (a->end_lsn > W.confirmed && a->end_lsn <= W.last_end)
        W.confirmed = a->end_lsn;
    k = 0;
    while (k < W.n_ptables && W.ptables[k].seq <= a->seq) {
        table_state *t = table_find(W.ptables[k].relid);
        if (t) {
            t->state = FRAME_TABLE_READY;
            t->reason[0] = '\0';
            if (W.pgs)
                pgstore_table_ready(W.pgs, t->relid, t->schema, t->table, W.ptables[k].snapshot_lsn);
        }
        k++;
    }
    if (k) {
        memmove(W.ptables, W.ptables + k, (W.n_ptables - k) * sizeof(*W.ptables));
        W.n_ptables -= k;
    }
    if (W.n_acks == 0 && !W.in_txn) {
        if (W.last_end > W.confirmed)
            W.confirmed = W.last_end;
        if (W.keepalive_end > W.confirmed)
            W.confirmed = W.keepalive_end;
    }
    if (W.state == W_DRAINING && W.n_acks == 0)
        finish_drain();
    stream_resume_if_possible();
}

/* Stop reading; exit once every sent transaction is acknowledged (or DRAIN_S passed). */
static void start_drain(bool immediate)
{
    if (W.state == W_DRAINING)
        return;
    if (immediate || W.state != W_STREAMING)
        worker_exit(EXIT_OK, "shutdown requested");
    log_info("worker", "draining: %zu transaction(s) awaiting acknowledgement", W.n_acks);
    W.state = W_DRAINING;
    if (W.repl)
        pgconn_pause(W.repl);
    if (W.snap)
        snapshot_pause(W.snap);
    ev_timer_start(W.loop, &W.drain);
    if (W.n_acks == 0)
        finish_drain();
}

static void on_sigterm(struct ev_loop *loop, ev_signal *w, int revents)
{
    (void)loop;
    (void)w;
    (void)revents;
    start_drain(false);
}

static void on_frame(void *ctx, const frame *f)
{
    (void)ctx;
    switch (f->type) {
    case FRAME_HELLO:
        W.got_hello = true;
        break;
    case FRAME_START:
        if (!W.got_hello || W.got_start)
            worker_exit(EXIT_ERROR, "protocol: START out of order");
        W.got_start = true;
        on_start(&f->start);
        break;
    case FRAME_RULES:
        if (!W.got_start)
            worker_exit(EXIT_ERROR, "protocol: RULES before START");
        on_rules(&f->rules);
        break;
    case FRAME_ACK:
        on_ack(&f->ack);
        break;
    case FRAME_CREDIT:
        chan_credit_add(W.ch, f->credit.bytes);
        if (W.overflow && chan_credit(W.ch) > 0) {
            W.overflow = false;
            log_info("stream", "sinks take findings again: leaving the max_retained_wal overflow");
        }
        stream_resume_if_possible();
        break;
    case FRAME_HEARTBEAT:
        break;
    case FRAME_SHUTDOWN:
        start_drain(f->shutdown.mode == FRAME_SHUTDOWN_IMMEDIATE);
        break;
    default:
        log_warn("worker", "unexpected %s frame ignored", frame_type_name(f->type));
        break;
    }
}

static void on_chan_closed(void *ctx, bool eof, const char *reason)
{
    (void)ctx;
    if (eof)
        worker_exit(EXIT_OK, "the supervisor is gone");
    worker_exit(EXIT_ERROR, "supervisor channel failed: %s", reason);
}

/* ---- feedback, stats ------------------------------------------------- */

static void send_feedback(bool reply)
{
    if (!W.repl || W.state < W_STREAMING)
        return;
    uint8_t msg[REPL_STATUS_LEN];
    uint64_t flush = W.confirmed;
    repl_build_status(msg, W.received, flush, flush, repl_now_pg_us(), reply);
    if (pgconn_copy_send(W.repl, msg, sizeof(msg)) < 0)
        worker_exit(EXIT_ERROR, "replication connection lost (status update failed): %s", pgconn_error(W.repl));
}

static void on_feedback(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)w;
    (void)revents;
    send_feedback(false);
}

static void on_stats(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)w;
    (void)revents;
    if (W.scan)
        send_stats();
    if (W.pgs && W.state == W_STREAMING)
        pgstore_confirmed(W.pgs, W.confirmed);
}

/*
 * WAL held for an undelivered finding: say so louder the longer it lasts;
 * past max_retained_wal, move on (SPEC section 6): confirm what was sent,
 * read on without credit and count the findings that are not delivered.
 */
static void wal_retention_check(void)
{
    if (!W.slot_stats.found)
        return;
    if (W.overflow)
        return; /* left when the supervisor returns credit (FRAME_CREDIT) */
    bool stuck = W.n_acks > 0 || (W.repl && pgconn_paused(W.repl) && chan_credit(W.ch) <= 0);
    if (!stuck)
        return;
    if (W.max_retained_wal && W.slot_stats.retained_bytes > 0 &&
        (uint64_t)W.slot_stats.retained_bytes > W.max_retained_wal && !W.overflow) {
        uint64_t lost = 0;
        for (size_t i = 0; i < W.n_acks; i++)
            lost += W.acks[i].findings;
        W.undelivered += lost;
        if (W.n_acks && W.acks[W.n_acks - 1].end_lsn > W.confirmed)
            W.confirmed = W.acks[W.n_acks - 1].end_lsn;
        log_error("stream",
                  "retained WAL %" PRId64 " bytes is over max_retained_wal %" PRIu64
                  ": moving on without acknowledgement of %zu transaction(s); %" PRIu64
                  " finding(s) counted as undelivered, and findings are counted, not sent, until the sinks "
                  "take them again",
                  W.slot_stats.retained_bytes, W.max_retained_wal, W.n_acks, lost);
        W.n_acks = 0;
        W.overflow = true;
        stream_resume_if_possible();
        return;
    }
    if (W.n_acks == 0)
        return;
    ev_tstamp now = ev_now(W.loop);
    ev_tstamp waited = now - W.acks[0].sent;
    if (waited < 10 || now - W.last_wal_warn < 15)
        return;
    W.last_wal_warn = now;
    log_level lvl = waited >= 300 ? LOG_LVL_ERROR : waited >= 30 ? LOG_LVL_WARN : LOG_LVL_INFO;
    log_msg(lvl, "stream",
            "waiting %.0f s for the sinks to acknowledge %zu transaction(s); slot %s retains %" PRId64
            " bytes of WAL",
            waited, W.n_acks, W.slot, W.slot_stats.retained_bytes);
}

static void on_slot_stats_result(pgconn *c, void *ctx, const PGresult *res)
{
    (void)c;
    (void)ctx;
    char err[256];
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK)
        return;
    catalog_slot_stats st;
    if (catalog_parse_slot_stats(res, &st, err, sizeof(err)) < 0)
        return;
    if (!st.found && W.state == W_STREAMING) {
        log_error("stream", "slot %s vanished", W.slot);
    }
    W.slot_stats = st;
    if (st.found && strcmp(st.wal_status, "lost") == 0) {
        if (W.on_slot_lost == FRAME_SLOT_LOST_RECREATE)
            worker_exit(EXIT_ERROR, "slot %s was invalidated by the server (wal_status lost); it will be recreated",
                        W.slot);
        worker_exit(EXIT_FATAL,
                    "slot %s was invalidated by the server (wal_status lost): findings since its last confirmed "
                    "position are unknown; set on_slot_lost = recreate, or drop it with `pgsense slots drop`",
                    W.slot);
    }
    wal_retention_check();
}

static void on_slot_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)w;
    (void)revents;
    /*
     * The catalog connection dies first when the server shuts down; a paused
     * stream would otherwise keep the walsender waiting for a confirmation
     * that cannot come (fast shutdown hangs). Nothing unacknowledged was
     * confirmed, so leaving is safe: the supervisor restarts us.
     */
    if (W.side && pgconn_broken(W.side))
        worker_exit(EXIT_ERROR, "connection to %s lost: %s", W.identity, pgconn_error(W.side));
    if (!W.side || pgconn_busy(W.side))
        return;
    char sql[1024];
    if (catalog_sql_slot_stats(pgconn_raw(W.side), W.slot, sql, sizeof(sql)) == 0 &&
        pgconn_query(W.side, sql, on_slot_stats_result, NULL, NULL) < 0)
        log_warn("worker", "side connection: %s", pgconn_error(W.side));
}

static void on_poll(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)w;
    (void)revents;
    if (W.state == W_STREAMING && !W.snap && W.side && !pgconn_busy(W.side))
        query_tables(false);
}

static void on_deferred(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)w;
    (void)revents;
    if (W.snap_old) {
        snapshot_free(W.snap_old);
        W.snap_old = NULL;
    }
}

/* ---- drain ---------------------------------------------------------- */

static void finish_drain(void)
{
    send_feedback(false); /* repl_close_cleanly flushes it before CopyDone */
    char lsn[LSN_TEXT_MAX];
    lsn_format(W.confirmed, lsn);
    worker_exit(EXIT_OK, "drained; confirmed %s", lsn);
}

static void on_drain_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)w;
    (void)revents;
    log_warn("worker", "drain: %zu transaction(s) still unacknowledged after %.0f s; they will be resent",
             W.n_acks, DRAIN_S);
    finish_drain();
}

/* ---- stream ---------------------------------------------------------- */

static bool may_read(void)
{
    if (W.state != W_STREAMING || W.pending_rel)
        return false;
    if (W.overflow)
        return !chan_congested(W.ch);
    return chan_credit(W.ch) > 0 && !chan_congested(W.ch);
}

static void stream_resume_if_possible(void)
{
    if (W.state != W_STREAMING)
        return;
    if (chan_congested(W.ch) || (chan_credit(W.ch) <= 0 && !W.overflow))
        return;
    if (W.snap && chan_credit(W.ch) > 0)
        snapshot_resume(W.snap);
    if (W.repl && pgconn_paused(W.repl) && !W.pending_rel)
        pgconn_resume(W.repl);
}

static void push_ack(uint64_t seq, uint64_t end_lsn, uint32_t findings)
{
    if (W.n_acks == W.cap_acks) {
        size_t cap = W.cap_acks ? W.cap_acks * 2 : 256;
        pending_ack *n = realloc(W.acks, cap * sizeof(*n));
        if (!n)
            worker_exit(EXIT_ERROR, "out of memory");
        W.acks = n;
        W.cap_acks = cap;
    }
    W.acks[W.n_acks++] = (pending_ack){seq, end_lsn, findings, ev_now(W.loop)};
}

/* Build the scanner's view of a relation once the catalog has answered. */
static void relation_ready(const pgo_relation *rel, const catalog_columns *cols, catalog_typemap *types)
{
    const char **names = calloc(rel->ncols ? rel->ncols : 1, sizeof(char *));
    bool *scanned = calloc(rel->ncols ? rel->ncols : 1, sizeof(bool));
    bool *keys = calloc(rel->ncols ? rel->ncols : 1, sizeof(bool));
    if (!names || !scanned || !keys)
        worker_exit(EXIT_ERROR, "out of memory");
    bool numeric = scanner_scan_numeric(W.scan);
    for (uint16_t i = 0; i < rel->ncols; i++) {
        names[i] = rel->cols[i].name;
        scanned[i] = pgtypes_scanned(W.types, rel->cols[i].type_oid, numeric,
                                     types ? catalog_typemap_resolve : NULL, types);
        keys[i] = false;
        bool found = false;
        for (size_t k = 0; cols && k < cols->n; k++) {
            if (strcmp(cols->cols[k].name, rel->cols[i].name) == 0) {
                keys[i] = cols->has_pk ? cols->cols[k].pk : cols->cols[k].replident;
                found = true;
            }
        }
        if (!found && rel->replident != 'f')
            keys[i] = rel->cols[i].key; /* catalog unavailable: the replica identity, unless FULL */
    }
    scan_table *st = scan_table_new(W.scan, rel->nspname, rel->relname, rel->ncols, names, scanned, keys);
    free(names);
    free(scanned);
    free(keys);
    if (!st)
        worker_exit(EXIT_ERROR, "out of memory");
    rel_set(rel->relid, st);
}

typedef struct {
    uint32_t relid;
    catalog_columns cols;
    bool have_cols;
} relq;

static void relation_answered(relq *q, catalog_typemap *types)
{
    const pgo_relation *rel = pgo_relation_get(W.dec, q->relid);
    if (rel)
        relation_ready(rel, q->have_cols ? &q->cols : NULL, types);
    if (q->have_cols)
        catalog_columns_free(&q->cols);
    free(q);
    W.pending_rel = NULL;
    stream_resume_if_possible();
}

static void on_rel_types(pgconn *c, void *ctx, const PGresult *res)
{
    (void)c;
    relq *q = ctx;
    catalog_typemap map = {0};
    char err[256];
    bool ok = res && catalog_parse_types(res, &map, err, sizeof(err)) == 0;
    relation_answered(q, ok ? &map : NULL);
    catalog_typemap_free(&map);
}

static void on_rel_columns(pgconn *c, void *ctx, const PGresult *res)
{
    relq *q = ctx;
    char err[256];
    if (res && PQresultStatus(res) == PGRES_TUPLES_OK && catalog_parse_columns(res, &q->cols, err, sizeof(err)) == 0)
        q->have_cols = true;
    const pgo_relation *rel = pgo_relation_get(W.dec, q->relid);
    uint32_t unknown[64];
    size_t nu = 0;
    for (uint16_t i = 0; rel && i < rel->ncols && nu < 64; i++)
        if (pgtypes_builtin(rel->cols[i].type_oid) == PGT_UNKNOWN)
            unknown[nu++] = rel->cols[i].type_oid;
    char sql[4096];
    if (nu && c && catalog_sql_types(unknown, nu, sql, sizeof(sql)) == 0 &&
        pgconn_query(c, sql, on_rel_types, NULL, q) == 0)
        return;
    relation_answered(q, NULL);
}

/* A Relation message: ask the catalog for keys and user types before going on. */
static int on_relation(const pgo_relation *rel)
{
    relq *q = calloc(1, sizeof(*q));
    if (!q)
        worker_exit(EXIT_ERROR, "out of memory");
    q->relid = rel->relid;
    char sql[2048];
    if (W.side && catalog_sql_columns(rel->relid, sql, sizeof(sql)) == 0 &&
        pgconn_query(W.side, sql, on_rel_columns, NULL, q) == 0) {
        W.pending_rel = rel;
        return 1; /* pause until answered */
    }
    relation_ready(rel, NULL, NULL);
    free(q);
    return 0;
}

static void scan_change(const pgo_relation *rel, const pgo_tuple *newtup, const pgo_tuple *oldtup, uint8_t op)
{
    rel_entry *r = rel_find(rel->relid);
    if (!r || !r->st)
        worker_exit(EXIT_SCHEMA, "change for %s.%s without its relation information", rel->nspname,
                    rel->relname);
    scan_origin o = {.lsn = W.txn_lsn, .source = FRAME_SOURCE_STREAM, .op = op,
                     .commit_time = W.txn_time == FRAME_TIME_NULL ? FRAME_TIME_NULL
                                                                 : W.txn_time + PGO_EPOCH_OFFSET_US};
    if (scanner_row(W.scan, r->st, newtup->cols, oldtup ? oldtup->cols : NULL, &o, W.txn) < 0)
        worker_exit(EXIT_ERROR, "out of memory while scanning");
    if (W.overflow) {
        if (unit_count(W.txn) > 0) { /* counted, not sent: the sinks cannot take them */
            W.undelivered += unit_count(W.txn);
            unit_drop_pending(W.txn);
        }
    } else if (unit_bytes(W.txn) >= UNIT_FLUSH_BYTES && unit_flush(W.txn, W.ch, &W.seq) < 0) {
        worker_exit(EXIT_ERROR, "cannot send findings to the supervisor");
    }
}

static int on_xlogdata(const repl_msg *m)
{
    pgo_msg msg;
    char err[512];
    if (pgo_decode(W.dec, m->payload, m->payload_len, &msg, err, sizeof(err)) < 0)
        worker_exit(EXIT_SCHEMA, "%s", err);
    switch (msg.kind) {
    case PGO_BEGIN:
        W.in_txn = true;
        W.txn_lsn = msg.u.begin.final_lsn;
        W.txn_time = msg.u.begin.commit_time;
        unit_reset(W.txn);
        break;
    case PGO_COMMIT: {
        uint64_t seq = 0;
        uint32_t n = unit_total(W.txn);
        int64_t ct = msg.u.commit.commit_time + PGO_EPOCH_OFFSET_US;
        if (W.overflow) {
            /* Moving on: close what the supervisor already has (its acks go in seq order), confirm the rest. */
            W.undelivered += unit_count(W.txn);
            unit_drop_pending(W.txn);
            if (unit_has_seq(W.txn) &&
                unit_end_txn(W.txn, W.ch, &W.seq, msg.u.commit.commit_lsn, msg.u.commit.end_lsn, ct, &seq) < 0)
                worker_exit(EXIT_ERROR, "cannot send a transaction end to the supervisor");
            unit_reset(W.txn);
            if (msg.u.commit.end_lsn > W.confirmed)
                W.confirmed = msg.u.commit.end_lsn;
            W.in_txn = false;
            W.last_end = msg.u.commit.end_lsn;
            apply_next_rules();
            break;
        }
        if (unit_end_txn(W.txn, W.ch, &W.seq, msg.u.commit.commit_lsn, msg.u.commit.end_lsn, ct, &seq) < 0)
            worker_exit(EXIT_ERROR, "cannot send a transaction end to the supervisor");
        push_ack(seq, msg.u.commit.end_lsn, n);
        W.in_txn = false;
        W.last_end = msg.u.commit.end_lsn;
        apply_next_rules();
        break;
    }
    case PGO_RELATION:
        return on_relation(msg.u.relation);
    case PGO_TYPE:
        pgtypes_cache_reset(W.types);
        break;
    case PGO_INSERT:
        scan_change(msg.u.insert.rel, &msg.u.insert.newtup, NULL, FRAME_OP_INSERT);
        break;
    case PGO_UPDATE:
        scan_change(msg.u.update.rel, &msg.u.update.newtup, msg.u.update.old_kind ? &msg.u.update.oldtup : NULL,
                    FRAME_OP_UPDATE);
        break;
    case PGO_MESSAGE:
        if (W.pgs && strcmp(msg.u.message.prefix, PGSTORE_MESSAGE_PREFIX) == 0)
            pgstore_schema_message(W.pgs, msg.u.message.lsn, msg.u.message.content, msg.u.message.len);
        break;
    case PGO_DELETE:
    case PGO_TRUNCATE:
    case PGO_ORIGIN:
        break;
    }
    return 0;
}

static int on_copydata(pgconn *c, void *ctx, const char *data, size_t len)
{
    (void)c;
    (void)ctx;
    repl_msg m;
    if (repl_parse((const uint8_t *)data, len, &m) < 0) {
        log_warn("stream", "unknown replication message ignored");
        return 0;
    }
    if (m.wal_end > W.received)
        W.received = m.wal_end;
    int pause = 0;
    if (m.kind == REPL_KEEPALIVE) {
        if (!W.in_txn) {
            W.keepalive_end = m.wal_end;
            if (W.n_acks == 0 && m.wal_end > W.confirmed)
                W.confirmed = m.wal_end;
        }
        if (m.reply_requested)
            send_feedback(false);
    } else {
        pause = on_xlogdata(&m);
    }
    if (pause || !may_read())
        return 1;
    return 0;
}

static void on_stream_end(pgconn *c, void *ctx, const PGresult *res)
{
    (void)ctx;
    char err[512];
    if (W.state == W_DRAINING)
        return;
    if (!res) {
        worker_exit(EXIT_ERROR, "replication connection lost: %s", pgconn_error(c));
    }
    pgconn_result_error(res, err, sizeof(err));
    if (PQresultStatus(res) == PGRES_COMMAND_OK)
        worker_exit(EXIT_ERROR, "the server ended replication");
    if (strcmp(pgconn_sqlstate(res), "42704") == 0)
        worker_exit(EXIT_FATAL, "replication stopped: %s (does publication \"%s\" still exist? CREATE PUBLICATION %s FOR ALL TABLES WITH (publish = 'insert, update');)",
                    err, W.publication, W.publication);
    worker_exit(EXIT_ERROR, "replication stopped: %s", err);
}

static void start_streaming(void)
{
    char *slot = PQescapeIdentifier(pgconn_raw(W.repl), W.slot, strlen(W.slot));
    char *pubq = PQescapeIdentifier(pgconn_raw(W.repl), W.publication, strlen(W.publication));
    char *publit = pubq ? PQescapeLiteral(pgconn_raw(W.repl), pubq, strlen(pubq)) : NULL;
    if (!slot || !pubq || !publit)
        worker_exit(EXIT_ERROR, "out of memory");
    char sql[1024];
    bool messages = W.pgs && pgstore_schema_history(W.pgs);
    snprintf(sql, sizeof(sql), "START_REPLICATION SLOT %s LOGICAL 0/0 (proto_version '1', publication_names %s%s)",
             slot, publit, messages ? ", messages 'true'" : "");
    PQfreemem(slot);
    PQfreemem(pubq);
    PQfreemem(publit);
    if (pgconn_query(W.repl, sql, on_stream_end, on_copydata, NULL) < 0)
        worker_exit(EXIT_ERROR, "cannot start replication: %s", pgconn_error(W.repl));
    W.state = W_STREAMING;
    ev_timer_start(W.loop, &W.feedback);
    ev_timer_start(W.loop, &W.poll);
    log_info("stream", "streaming from slot %s", W.slot);
    if (chan_credit(W.ch) <= 0 || chan_congested(W.ch))
        pgconn_pause(W.repl);
}

/* ---- snapshot -------------------------------------------------------- */

static void push_ptable(uint64_t seq, uint32_t relid, uint64_t snapshot_lsn)
{
    if (W.n_ptables == W.cap_ptables) {
        size_t cap = W.cap_ptables ? W.cap_ptables * 2 : 32;
        pending_table *n = realloc(W.ptables, cap * sizeof(*n));
        if (!n)
            worker_exit(EXIT_ERROR, "out of memory");
        W.ptables = n;
        W.cap_ptables = cap;
    }
    W.ptables[W.n_ptables++] = (pending_table){seq, relid, snapshot_lsn};
}

static void snap_imported(void *ctx, bool ok, const char *err)
{
    (void)ctx;
    if (!ok)
        worker_exit(EXIT_ERROR, "snapshot connection: %s", err);
    if (W.state == W_IMPORTING)
        start_streaming();
}

static void snap_table_sent(void *ctx, const catalog_table *t, uint64_t seq)
{
    (void)ctx;
    push_ptable(seq, t->relid, W.snap ? snapshot_lsn(W.snap) : 0);
}

static void snap_table_error(void *ctx, const catalog_table *t, const char *reason)
{
    (void)ctx;
    table_state *ts = table_find(t->relid);
    if (ts) {
        ts->state = FRAME_TABLE_ERROR;
        snprintf(ts->reason, sizeof(ts->reason), "%s", reason);
    }
    log_error("snapshot", "table %s.%s cannot be read: %s (retried every %u s)", t->schema, t->table, reason,
              W.publication_poll_s);
}

static void snap_finished(void *ctx)
{
    (void)ctx;
    log_info("snapshot", "snapshot run finished: %u of %zu table(s) done, the rest awaiting acknowledgement or "
                         "retried",
             tables_done(), W.n_tables);
    W.snap_old = W.snap; /* freed from a timer, outside the snapshot's own callbacks */
    W.snap = NULL;
    ev_timer_start(W.loop, &W.deferred);
}

/* Copy tables[0..n) (n > 0) with a snapshot: the slot's exported one, or a fresh one (snapname NULL). */
static void start_snapshot(const catalog_table *tables, size_t n, const char *snapname, uint64_t lsn)
{
    snapshot_opts o = {
        .loop = W.loop,
        .conn_keys = W.conn_keys,
        .conn_values = W.conn_vals,
        .connections = W.snapshot_connections,
        .scan = W.scan,
        .ch = W.ch,
        .seq = &W.seq,
        .imported = snap_imported,
        .table_sent = snap_table_sent,
        .table_error = snap_table_error,
        .finished = snap_finished,
        .ctx = NULL,
    };
    for (size_t i = 0; i < n; i++) {
        table_state *t = table_add(tables[i].relid, tables[i].schema, tables[i].table, FRAME_TABLE_SNAPSHOT);
        t->state = FRAME_TABLE_SNAPSHOT;
    }
    log_info("snapshot", "snapshot of %zu table(s) over %d connection(s)%s", n, W.snapshot_connections,
             snapname ? " from the slot's exported snapshot" : "");
    snapshot *s = snapshot_start(&o, tables, n, snapname, lsn);
    if (!s)
        worker_exit(EXIT_ERROR, "cannot start the snapshot");
    W.snap = s;
}

/* Tables the publication has: on the first run decide what to snapshot, later find new ones. */
static void on_tables(pgconn *c, void *ctx, const PGresult *res)
{
    bool initial = ctx != NULL;
    char err[512];
    catalog_tables tabs;
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
        pgconn_result_error(res, err, sizeof(err));
        if (!res)
            snprintf(err, sizeof(err), "%s", pgconn_error(c));
        if (initial)
            worker_exit(EXIT_ERROR, "cannot list the tables of publication %s: %s", W.publication, err);
        log_warn("worker", "cannot poll publication %s: %s", W.publication, err);
        return;
    }
    if (catalog_parse_tables(res, &tabs, err, sizeof(err)) < 0) {
        if (initial)
            worker_exit(EXIT_ERROR, "%s", err);
        return;
    }
    catalog_table *todo = calloc(tabs.n ? tabs.n : 1, sizeof(catalog_table));
    size_t n = 0;
    if (!todo)
        worker_exit(EXIT_ERROR, "out of memory");
    for (size_t i = 0; i < tabs.n; i++) {
        catalog_table *t = &tabs.items[i];
        if (scanner_table_excluded(W.scan, t->schema, t->table))
            continue;
        table_state *ts = table_find(t->relid);
        bool need = W.slot_created || !ts || ts->state == FRAME_TABLE_ERROR ||
                    (initial && ts->state != FRAME_TABLE_READY);
        if (!initial && ts && ts->state == FRAME_TABLE_SNAPSHOT)
            need = false;
        if (need)
            todo[n++] = *t;
    }
    if (initial) {
        if (W.slot_created && n) {
            start_snapshot(todo, n, W.exported, W.consistent_lsn); /* streams once imported */
        } else if (W.slot_created) {
            start_streaming();
        } else {
            start_streaming();
            if (n)
                start_snapshot(todo, n, NULL, 0);
        }
        W.slot_created = false;
    } else if (n) {
        log_info("worker", "publication %s: %zu table(s) to snapshot", W.publication, n);
        start_snapshot(todo, n, NULL, 0);
    }
    free(todo);
    catalog_tables_free(&tabs);
}

static void query_tables(bool initial)
{
    char sql[2048];
    if (catalog_sql_tables(pgconn_raw(W.side), W.publication, sql, sizeof(sql)) < 0 ||
        pgconn_query(W.side, sql, on_tables, NULL, initial ? (void *)1 : NULL) < 0)
        worker_exit(EXIT_ERROR, "side connection: %s", pgconn_error(W.side));
}

/* ---- slot ------------------------------------------------------------ */

static void on_slot_created(pgconn *c, void *ctx, const PGresult *res)
{
    (void)c;
    (void)ctx;
    char err[512];
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK || PQnfields(res) < 3) {
        pgconn_result_error(res, err, sizeof(err));
        if (res && strcmp(pgconn_sqlstate(res), "42710") == 0)
            worker_exit(EXIT_ERROR, "slot %s appeared while it was being created; retrying", W.slot);
        if (res && strcmp(pgconn_sqlstate(res), "53400") == 0)
            worker_exit(EXIT_FATAL, "cannot create slot %s: %s (raise max_replication_slots)", W.slot, err);
        worker_exit(EXIT_ERROR, "cannot create slot %s: %s", W.slot, err);
    }
    if (!lsn_parse(PQgetvalue(res, 0, 1), &W.consistent_lsn))
        worker_exit(EXIT_ERROR, "slot %s: unexpected consistent point", W.slot);
    snprintf(W.exported, sizeof(W.exported), "%s", PQgetvalue(res, 0, 2));
    W.slot_created = true;
    if (W.pgs)
        pgstore_slot_created(W.pgs);
    log_info("stream", "created slot %s at %s", W.slot, PQgetvalue(res, 0, 1));
    /* The exported snapshot lives until the replication connection's next command. */
    W.state = W_IMPORTING;
    query_tables(true);
}

static void create_slot(void)
{
    char *slot = PQescapeIdentifier(pgconn_raw(W.repl), W.slot, strlen(W.slot));
    if (!slot)
        worker_exit(EXIT_ERROR, "out of memory");
    char sql[512];
    snprintf(sql, sizeof(sql), "CREATE_REPLICATION_SLOT %s LOGICAL pgoutput (SNAPSHOT 'export')", slot);
    PQfreemem(slot);
    if (pgconn_query(W.repl, sql, on_slot_created, NULL, NULL) < 0)
        worker_exit(EXIT_ERROR, "%s", pgconn_error(W.repl));
}

static void on_slot_dropped(pgconn *c, void *ctx, const PGresult *res)
{
    (void)c;
    (void)ctx;
    char err[512];
    if (!res || PQresultStatus(res) != PGRES_COMMAND_OK) {
        pgconn_result_error(res, err, sizeof(err));
        worker_exit(EXIT_ERROR, "cannot drop lost slot %s: %s", W.slot, err);
    }
    /* A new slot means a full snapshot: forget what was snapshotted before. */
    for (size_t i = 0; i < W.n_tables; i++)
        W.tables[i].state = FRAME_TABLE_PENDING;
    create_slot();
}

static void slot_lost(const char *how)
{
    if (W.on_slot_lost != FRAME_SLOT_LOST_RECREATE)
        worker_exit(EXIT_FATAL,
                    "slot %s %s: changes since its last confirmed position were not scanned; set on_slot_lost = "
                    "recreate to start over with a new slot and a full snapshot",
                    W.slot, how);
    log_warn("stream", "slot %s %s: recreating it and taking a full snapshot (on_slot_lost = recreate)", W.slot,
             how);
    if (W.checks.slot_exists) {
        char *slot = PQescapeIdentifier(pgconn_raw(W.repl), W.slot, strlen(W.slot));
        char sql[512];
        snprintf(sql, sizeof(sql), "DROP_REPLICATION_SLOT %s", slot ? slot : "");
        PQfreemem(slot);
        if (pgconn_query(W.repl, sql, on_slot_dropped, NULL, NULL) < 0)
            worker_exit(EXIT_ERROR, "%s", pgconn_error(W.repl));
        return;
    }
    for (size_t i = 0; i < W.n_tables; i++)
        W.tables[i].state = FRAME_TABLE_PENDING;
    create_slot();
}

static void on_identify(pgconn *c, void *ctx, const PGresult *res)
{
    (void)ctx;
    char err[512];
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1 || PQnfields(res) < 4) {
        pgconn_result_error(res, err, sizeof(err));
        worker_exit(EXIT_ERROR, "IDENTIFY_SYSTEM failed: %s", res ? err : pgconn_error(c));
    }
    if (PQgetisnull(res, 0, 3))
        worker_exit(EXIT_FATAL, "the replication connection is not bound to a database");
    log_info("stream", "server %s, timeline %s, WAL at %s", PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1),
             PQgetvalue(res, 0, 2));
    bool known_tables = false;
    for (size_t i = 0; i < W.n_tables; i++)
        if (W.tables[i].state == FRAME_TABLE_READY)
            known_tables = true;
    if (W.checks.slot_exists) {
        if (W.checks.slot_other_db)
            worker_exit(EXIT_FATAL, "slot %s belongs to another database; drop it with `pgsense slots drop`",
                        W.slot);
        if (strcmp(W.checks.slot_plugin, "pgoutput") != 0)
            worker_exit(EXIT_FATAL, "slot %s uses plugin %s, not pgoutput; drop it with `pgsense slots drop`",
                        W.slot, W.checks.slot_plugin);
        if (W.checks.slot_active_pid)
            worker_exit(EXIT_ERROR, "slot %s is in use by server process %d (another pgsense?); retrying later",
                        W.slot, W.checks.slot_active_pid);
        if (strcmp(W.checks.slot_wal_status, "lost") == 0) {
            slot_lost("was invalidated by the server (wal_status lost)");
            return;
        }
        log_info("stream", "resuming slot %s", W.slot);
        W.state = W_IMPORTING;
        query_tables(true);
        return;
    }
    if (known_tables) {
        slot_lost("vanished (failover, or dropped by hand)");
        return;
    }
    create_slot();
}

static void on_search_path(pgconn *c, void *ctx, const PGresult *res)
{
    (void)ctx;
    char err[512];
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
        pgconn_result_error(res, err, sizeof(err));
        worker_exit(EXIT_ERROR, "cannot secure search_path: %s", res ? err : pgconn_error(c));
    }
    if (pgconn_query(W.repl, "IDENTIFY_SYSTEM", on_identify, NULL, NULL) < 0)
        worker_exit(EXIT_ERROR, "%s", pgconn_error(W.repl));
}

/* Connection failures that retrying will not cure get exit code 3. */
static bool fatal_connect_error(const char *err)
{
    static const char *const fatal[] = {"password authentication failed", "no password supplied",
                                        "does not exist",                 "no pg_hba.conf entry",
                                        "must be superuser or replication role", "permission denied to start WAL sender",
                                        "certificate verify failed",      "server does not support SSL"};
    for (size_t i = 0; i < sizeof(fatal) / sizeof(fatal[0]); i++)
        if (strstr(err, fatal[i]))
            return true;
    return false;
}

static void on_repl_connected(pgconn *c, void *ctx, bool ok, const char *err)
{
    (void)c;
    (void)ctx;
    if (!ok) {
        if (strstr(err, "replication role") || strstr(err, "WAL sender"))
            worker_exit(EXIT_FATAL, "role %s cannot replicate: %s: ALTER ROLE %s WITH REPLICATION;",
                        W.checks.current_user, err, W.checks.current_user);
        worker_exit(fatal_connect_error(err) ? EXIT_FATAL : EXIT_ERROR, "replication connection to %s: %s",
                    W.identity, err);
    }
    if (pgconn_query(W.repl, "SELECT pg_catalog.set_config('search_path', '', false)", on_search_path, NULL,
                     NULL) < 0)
        worker_exit(EXIT_ERROR, "%s", pgconn_error(W.repl));
}

static void open_replication(void)
{
    W.repl = pgconn_new(W.loop, W.repl_keys, W.repl_vals, "replication");
    if (!W.repl || pgconn_connect(W.repl, on_repl_connected, NULL) < 0)
        worker_exit(EXIT_ERROR, "cannot start the replication connection: %s",
                    W.repl ? pgconn_error(W.repl) : "out of memory");
}

static void on_store_table(void *ctx, uint32_t relid, const char *schema, const char *table, bool ready)
{
    (void)ctx;
    table_state *t = table_add(relid, schema, table, ready ? FRAME_TABLE_READY : FRAME_TABLE_PENDING);
    if (ready)
        t->state = FRAME_TABLE_READY;
}

static void on_store_ready(void *ctx, bool ok, int code, const char *err)
{
    (void)ctx;
    if (!ok)
        worker_exit(code, "%s", err);
    log_info("store", "store = postgres: %u table(s) already snapshotted; schema history %s", tables_done(),
             pgstore_schema_history(W.pgs) ? "kept" : "not kept (event trigger not installed)");
    open_replication();
}

static void on_checks(pgconn *c, void *ctx, const PGresult *res)
{
    (void)ctx;
    char err[512];
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
        pgconn_result_error(res, err, sizeof(err));
        worker_exit(EXIT_ERROR, "server checks failed: %s", res ? err : pgconn_error(c));
    }
    if (catalog_parse_checks(res, &W.checks, err, sizeof(err)) < 0)
        worker_exit(EXIT_ERROR, "server checks: %s", err);
    if (strcmp(W.checks.wal_level, "logical") != 0)
        worker_exit(EXIT_FATAL,
                    "wal_level is %s on %s, logical replication needs logical: ALTER SYSTEM SET wal_level = "
                    "logical; then restart PostgreSQL",
                    W.checks.wal_level, W.identity);
    if (!W.checks.publication_exists)
        worker_exit(EXIT_FATAL,
                    "publication \"%s\" does not exist in database %s: CREATE PUBLICATION %s FOR ALL TABLES WITH "
                    "(publish = 'insert, update');",
                    W.publication, W.dbname, W.publication);
    if (!W.checks.can_replicate)
        worker_exit(EXIT_FATAL, "role %s lacks the REPLICATION attribute: ALTER ROLE %s WITH REPLICATION;",
                    W.checks.current_user, W.checks.current_user);
    if (W.store == FRAME_STORE_POSTGRES) {
        W.pgs = pgstore_new(W.side, W.slot);
        if (!W.pgs || pgstore_start(W.pgs, on_store_table, on_store_ready, NULL) < 0)
            worker_exit(EXIT_ERROR, "store = postgres: cannot start: %s", pgconn_error(W.side));
        return;
    }
    open_replication();
}

static void on_side_connected(pgconn *c, void *ctx, bool ok, const char *err)
{
    (void)ctx;
    if (!ok)
        worker_exit(fatal_connect_error(err) ? EXIT_FATAL : EXIT_ERROR, "connection to %s: %s", W.identity, err);
    int v = PQserverVersion(pgconn_raw(c));
    if (v < 150000)
        worker_exit(EXIT_FATAL, "PostgreSQL %d.%d on %s is too old: pgsense needs PostgreSQL 15 or newer",
                    v / 10000, v % 10000, W.identity);
    char sql[4096];
    if (catalog_sql_checks(pgconn_raw(c), W.publication, W.slot, sql, sizeof(sql)) < 0 ||
        pgconn_query(c, sql, on_checks, NULL, NULL) < 0)
        worker_exit(EXIT_ERROR, "side connection: %s", pgconn_error(c));
    ev_timer_start(W.loop, &W.slot_timer);
}

void connect_start(void);
void connect_start(void)
{
    W.state = W_CONNECTING;
    W.side = pgconn_new(W.loop, W.conn_keys, W.conn_vals, "catalog");
    if (!W.side || pgconn_connect(W.side, on_side_connected, NULL) < 0)
        worker_exit(EXIT_ERROR, "cannot start a connection to %s: %s", W.identity,
                    W.side ? pgconn_error(W.side) : "out of memory");
}

/* ---- start-up --------------------------------------------------------- */

/* SPEC section 1: no core dumps, no ptrace, no environment but what libpq needs. */
static void harden(void)
{
    struct rlimit rl = {0, 0};
    if (setrlimit(RLIMIT_CORE, &rl) != 0)
        fprintf(stderr, "pgsense-worker: setrlimit(RLIMIT_CORE): %s\n", strerror(errno));
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0)
        fprintf(stderr, "pgsense-worker: prctl(PR_SET_DUMPABLE): %s\n", strerror(errno));
    extern char **environ;
    static char *kept[32];
    size_t n = 0;
    for (char **e = environ; e && *e && n < 31; e++) {
        if (strncmp(*e, "HOME=", 5) == 0 || strncmp(*e, "PGPASSFILE=", 11) == 0 || strncmp(*e, "PGSSL", 5) == 0 ||
            strncmp(*e, "TZ=", 3) == 0)
            kept[n++] = strdup(*e);
    }
    if (clearenv() != 0)
        fprintf(stderr, "pgsense-worker: clearenv failed\n");
    for (size_t i = 0; i < n; i++)
        if (kept[i] && putenv(kept[i]) != 0)
            fprintf(stderr, "pgsense-worker: putenv failed\n");
    signal(SIGPIPE, SIG_IGN);
}

int main(int argc, char **argv)
{
    int fd = -1;
    const char *name = "worker";
    static const struct option opts[] = {{"fd", required_argument, NULL, 'f'},
                                         {"name", required_argument, NULL, 'n'},
                                         {NULL, 0, NULL, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (ch) {
        case 'f':
            fd = atoi(optarg);
            break;
        case 'n':
            name = optarg;
            break;
        default:
            fprintf(stderr, "usage: pgsense-worker --fd N [--name NAME] (started by pgsense-supervisor)\n");
            return 2;
        }
    }
    if (fd < 3) {
        fprintf(stderr, "usage: pgsense-worker --fd N [--name NAME] (started by pgsense-supervisor)\n");
        return 2;
    }
    harden();
    log_setup(LOG_LVL_INFO, LOG_FMT_CONSOLE, name);
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0 || fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) {
        log_fatal("worker", "fd %d is not usable: %s", fd, strerror(errno));
        return EXIT_ERROR;
    }
    detect_init();
    W.loop = EV_DEFAULT;
    W.seq.next = 1;
    W.ch = chan_new(W.loop, fd, on_frame, on_chan_closed, NULL);
    W.dec = pgo_decoder_new();
    W.types = pgtypes_cache_new();
    W.txn = unit_new();
    if (!W.ch || !W.dec || !W.types || !W.txn) {
        log_fatal("worker", "out of memory");
        return EXIT_ERROR;
    }
    ev_timer_init(&W.feedback, on_feedback, FEEDBACK_S, FEEDBACK_S);
    ev_timer_init(&W.stats, on_stats, STATS_S, STATS_S);
    ev_timer_init(&W.slot_timer, on_slot_timer, 0.5, SLOT_STATS_S);
    ev_timer_init(&W.drain, on_drain_timeout, DRAIN_S, 0.);
    ev_timer_init(&W.deferred, on_deferred, 0., 0.);
    ev_timer_init(&W.poll, on_poll, 60., 60.);
    ev_timer_start(W.loop, &W.stats);
    /* The supervisor coordinates stops: a terminal's ^C reaches the whole process group. */
    signal(SIGINT, SIG_IGN);
    static ev_signal sigterm;
    ev_signal_init(&sigterm, on_sigterm, SIGTERM);
    ev_signal_start(W.loop, &sigterm);
    frame hello;
    frame_hello_init(&hello, FRAME_ROLE_WORKER, (uint32_t)getpid());
    if (chan_send(W.ch, &hello) < 0) {
        log_fatal("worker", "cannot greet the supervisor");
        return EXIT_ERROR;
    }
    ev_run(W.loop, 0);
    return EXIT_OK;
}
