/*
 * sink_postgres: the durable PostgreSQL sink. Owns one libpq connection in
 * non-blocking mode on the supervisor's libev loop, the queue of findings
 * not yet committed, and its reconnect and watchdog timers.
 *
 * Durability point: one multi-row INSERT with parameters (a single
 * statement, so a single transaction) per batch; durable_pos advances only
 * when every result of that statement has been read without an error (the
 * commit happened). A broken connection or any other failure keeps the
 * rows, marks the sink blocked (the pipeline withholds credit, so workers
 * pause and the slot holds the WAL), closes the connection and reconnects
 * with backoff; the schema and table are created again if missing at every
 * connect. A result that was lost with the connection is retried: at least
 * once, dedup and the id column absorb the repeat.
 *
 * A row the server rejects for its data (SQLSTATE class 22 or 23, e.g. a
 * character the database encoding cannot hold) would block the sink for
 * ever: such a batch is retried row by row and the rejected rows are
 * dropped, counted and logged with their SQLSTATE only.
 *
 * Logs never carry the password nor DETAIL/CONTEXT lines (they can quote
 * row data): server errors are reduced to SQLSTATE and primary message.
 */
#include "sink_postgres.h"

#include <ev.h>
#include <fnmatch.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"

#define MOD    "sink"
#define NCOLS  16
#define IDENT_MAX 63

/* Columns in insert order; the casts apply to the parameters. */
static const char *const col_names[NCOLS] = {
    "database",   "worker",      "rule_id",       "description", "category",    "severity",
    "schema_name", "table_name", "column_name",   "masked_sample", "primary_key", "lsn",
    "source",     "op",          "commit_time",   "detected_at",
};
static const char *const col_casts[NCOLS] = {
    "", "", "", "", "", "", "", "", "", "", "::jsonb", "::bigint", "", "", "::timestamptz", "::timestamptz",
};

/* One queued finding: its parameters, in one allocation. */
typedef struct row {
    struct row *next;
    size_t bytes;
    const char *v[NCOLS]; /* NULL: SQL NULL */
    char data[];
} row;

typedef enum {
    PG_DOWN,       /* no connection; the retry timer (re)connects */
    PG_CONNECTING, /* PQconnectPoll in progress */
    PG_SETUP,      /* CREATE SCHEMA / TABLE if missing */
    PG_IDLE,       /* ready for a batch */
    PG_INSERTING,  /* a batch in flight */
} pg_state;

typedef struct {
    char *host, *dbname, *username, *password, *schema, *table;
    int port, sslmode;
} pg_settings;

typedef struct {
    sink base;
    pg_settings set, next; /* next: prepared by a reload, switched in at commit */
    bool have_next;
    PGconn *conn;
    pg_state state;
    ev_io rio, wio;
    int fd;
    ev_timer retry;    /* reconnect with backoff */
    ev_timer watchdog; /* a connect or an INSERT that takes too long */
    unsigned retry_ms;
    char *target;      /* "schema"."table", escaped with PQescapeIdentifier */
    row *head, *tail;  /* taken, not yet durable, in order */
    uint64_t queued;   /* rows in the queue */
    uint32_t inflight; /* rows of the batch in flight (the queue's first ones) */
    bool flush_wanted; /* flush() asked since the queue was last empty */
    uint64_t single_left; /* rows to send one per statement after a data error */
    bool batch_failed; /* an error result was read for the batch in flight */
    char batch_err[256];
    bool batch_data_error;
    uint64_t fail_count;
    ev_tstamp fail_since, last_report;
    char last_err[256];
} sink_pg;

static void pg_connect_start(sink_pg *p);
static void pg_send_batch(sink_pg *p);
static void pg_fail(sink_pg *p, const char *why);

/* ---- settings ---- */

static void settings_free(pg_settings *s)
{
    free(s->host);
    free(s->dbname);
    free(s->username);
    if (s->password) {
        memset(s->password, 0, strlen(s->password));
        free(s->password);
    }
    free(s->schema);
    free(s->table);
    memset(s, 0, sizeof(*s));
}

static int dup_opt(char **dst, const char *src)
{
    *dst = NULL;
    if (!src)
        return 0;
    *dst = strdup(src);
    return *dst ? 0 : -1;
}

static int settings_copy(pg_settings *s, const config_pgsink *c)
{
    memset(s, 0, sizeof(*s));
    s->port = c->port;
    s->sslmode = c->sslmode;
    if (dup_opt(&s->host, c->host ? c->host : "localhost") < 0 || dup_opt(&s->dbname, c->dbname) < 0 ||
        dup_opt(&s->username, c->username) < 0 || dup_opt(&s->password, c->password) < 0 ||
        dup_opt(&s->schema, c->schema ? c->schema : "pgsense") < 0 ||
        dup_opt(&s->table, c->table ? c->table : "findings") < 0) {
        settings_free(s);
        return -1;
    }
    return 0;
}

static bool str_eq(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static bool settings_equal(const pg_settings *a, const pg_settings *b)
{
    return a->port == b->port && a->sslmode == b->sslmode && str_eq(a->host, b->host) &&
           str_eq(a->dbname, b->dbname) && str_eq(a->username, b->username) && str_eq(a->password, b->password) &&
           str_eq(a->schema, b->schema) && str_eq(a->table, b->table);
}

/* libpq's spelling; local so the unit tests need not link config.c. */
static const char *sslmode_name(int m)
{
    static const char *const names[] = {"disable", "allow", "prefer", "require", "verify-ca", "verify-full"};
    return m >= 0 && m < (int)(sizeof(names) / sizeof(names[0])) ? names[m] : "prefer";
}

/* ---- load-time checks ---- */

static bool ident_ok(const char *s)
{
    if (!s || !((s[0] >= 'A' && s[0] <= 'Z') || (s[0] >= 'a' && s[0] <= 'z') || s[0] == '_'))
        return false;
    size_t n = 0;
    for (const char *p = s; *p; p++, n++)
        if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_'))
            return false;
    return n <= IDENT_MAX;
}

/* Local addresses all name "this machine" (a socket directory included). */
static bool host_local(const char *h)
{
    return !h || !*h || h[0] == '/' || h[0] == '@' || strcmp(h, "localhost") == 0 ||
           strcmp(h, "127.0.0.1") == 0 || strcmp(h, "::1") == 0;
}

static bool same_server(const char *h1, int p1, const char *h2, int p2)
{
    if (p1 != p2)
        return false;
    if (host_local(h1) && host_local(h2))
        return true;
    return h1 && h2 && strcasecmp(h1, h2) == 0;
}

static bool glob_any(const config_list *l, const char *s)
{
    for (size_t i = 0; i < l->n; i++)
        if (fnmatch(l->items[i], s, 0) == 0)
            return true;
    return false;
}

/* The worker's rule (workers/scan.c scanner_table_excluded), on the config. */
static bool scan_excludes(const config_scan *sc, const char *schema, const char *table)
{
    if (sc->include_schemas.n && !glob_any(&sc->include_schemas, schema))
        return true;
    if (sc->exclude_tables.n) {
        char qualified[2 * IDENT_MAX + 2];
        snprintf(qualified, sizeof(qualified), "%s.%s", schema, table);
        if (glob_any(&sc->exclude_tables, table) || glob_any(&sc->exclude_tables, qualified))
            return true;
    }
    return false;
}

int sink_postgres_check_config(const config *cfg, char *err, size_t errlen)
{
    const config_pgsink *pg = &cfg->alerts.postgres;
    const char *schema = pg->schema ? pg->schema : "pgsense", *table = pg->table ? pg->table : "findings";
    if (!pg->dbname) {
        snprintf(err, errlen, "[alerts.postgres] has no dbname (add dbname = ...)");
        return -1;
    }
    if (!ident_ok(schema) || !ident_ok(table)) {
        snprintf(err, errlen,
                 "[alerts.postgres] schema \"%.80s\" / table \"%.80s\": names must match [A-Za-z_][A-Za-z0-9_]{0,62}",
                 schema, table);
        return -1;
    }
    for (size_t i = 0; i < cfg->n_dbs; i++) {
        const config_db *db = &cfg->dbs[i];
        if (!same_server(pg->host ? pg->host : "localhost", pg->port, db->host, db->port) ||
            !str_eq(pg->dbname, db->dbname))
            continue;
        if (scan_excludes(&db->scan, schema, table))
            continue;
        snprintf(err, errlen,
                 "[alerts.postgres] writes findings into %s.%s in database %s, which [[databases]] entry \"%s\" "
                 "scans: its own findings would be scanned again; add exclude_tables = %s to that entry's "
                 "[databases.scan] (or write to another database)",
                 schema, table, pg->dbname, db->name, table);
        return -1;
    }
    return 0;
}

/* ---- rows ---- */

/* Bytes of the valid UTF-8 sequence at s (n left), 0 when invalid. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0], lo = 0x80, hi = 0xBF;
    size_t len;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        len = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        lo = c == 0xE0 ? 0xA0 : 0x80;
        hi = c == 0xED ? 0x9F : 0xBF;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        lo = c == 0xF0 ? 0x90 : 0x80;
        hi = c == 0xF4 ? 0x8F : 0xBF;
    } else
        return 0;
    if (n < len || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if (s[i] < 0x80 || s[i] > 0xBF)
            return 0;
    return len;
}

/* Worst-case size of put_text(s, json). */
static size_t text_cap(const char *s, bool json)
{
    return (s ? strlen(s) : 0) * (json ? 6 : 3) + 3;
}

/*
 * Copy s into out as valid UTF-8 (an invalid byte becomes U+FFFD), as a
 * JSON string body when json. Returns the bytes written, NUL excluded.
 */
static size_t put_text(char *out, const char *str, bool json)
{
    const unsigned char *s = (const unsigned char *)(str ? str : "");
    size_t n = strlen((const char *)s), o = 0;
    for (size_t i = 0; i < n;) {
        unsigned char c = s[i];
        size_t l = utf8_len(s + i, n - i);
        if (l == 0) {
            memcpy(out + o, "\xEF\xBF\xBD", 3);
            o += 3;
            i++;
            continue;
        }
        if (json && (c == '"' || c == '\\')) {
            out[o++] = '\\';
            out[o++] = (char)c;
        } else if (json && c < 0x20) {
            o += (size_t)snprintf(out + o, 7, "\\u%04x", c);
        } else {
            memcpy(out + o, s + i, l);
            o += l;
        }
        i += l;
    }
    out[o] = '\0';
    return o;
}

static const char *source_text(unsigned s)
{
    return s == FRAME_SOURCE_STREAM ? "stream" : s == FRAME_SOURCE_SNAPSHOT ? "snapshot" : "unknown";
}

static const char *op_text(unsigned op)
{
    return op == FRAME_OP_INSERT ? "insert" : op == FRAME_OP_UPDATE ? "update" : op == FRAME_OP_SNAPSHOT ? "snapshot"
                                                                                                        : "unknown";
}

static row *row_new(const sink_record *r)
{
    const frame_finding *f = r->f;
    char lsn[24], ct[40], dt[40];
    snprintf(lsn, sizeof(lsn), "%" PRIu64, f->lsn > INT64_MAX ? (uint64_t)INT64_MAX : f->lsn);
    if (f->commit_time != FRAME_TIME_NULL)
        sink_format_time(f->commit_time, ct, sizeof(ct));
    sink_format_time(f->detected_at, dt, sizeof(dt));
    const char *plain[NCOLS] = {r->database,    r->worker,   f->rule_id,
                                f->description, f->category, sink_severity_name(f->severity),
                                f->schema,      f->table,    f->column,
                                f->masked_sample, NULL,      lsn,
                                source_text(f->source), op_text(f->op),
                                f->commit_time == FRAME_TIME_NULL ? NULL : ct, dt};
    size_t cap = 0;
    for (int i = 0; i < NCOLS; i++)
        if (i != 10)
            cap += text_cap(plain[i], false);
    cap += 3; /* {} */
    for (uint32_t k = 0; k < f->n_primary_keys; k++)
        cap += text_cap(f->primary_keys[k].name, true) + text_cap(f->primary_keys[k].value, true) + 4;
    row *w = malloc(sizeof(*w) + cap);
    if (!w)
        return NULL;
    w->next = NULL;
    w->bytes = cap;
    char *o = w->data;
    for (int i = 0; i < NCOLS; i++) {
        if (i == 10) {
            /* primary_key: {"name": "value", ...} */
            w->v[i] = o;
            *o++ = '{';
            for (uint32_t k = 0; k < f->n_primary_keys; k++) {
                if (k)
                    *o++ = ',';
                *o++ = '"';
                o += put_text(o, f->primary_keys[k].name, true);
                *o++ = '"';
                *o++ = ':';
                *o++ = '"';
                o += put_text(o, f->primary_keys[k].value, true);
                *o++ = '"';
            }
            *o++ = '}';
            *o++ = '\0';
            continue;
        }
        if (!plain[i] && (i == 14)) {
            w->v[i] = NULL;
            continue;
        }
        w->v[i] = o;
        o += put_text(o, plain[i], false) + 1;
    }
    return w;
}

/* ---- the connection ---- */

static void watch(sink_pg *p, bool rd, bool wr)
{
    int fd = p->conn ? PQsocket(p->conn) : -1;
    if (fd != p->fd) {
        ev_io_stop(p->base.loop, &p->rio);
        ev_io_stop(p->base.loop, &p->wio);
        p->fd = fd;
        if (fd < 0)
            return;
        ev_io_set(&p->rio, fd, EV_READ);
        ev_io_set(&p->wio, fd, EV_WRITE);
    }
    if (fd < 0)
        return;
    if (rd)
        ev_io_start(p->base.loop, &p->rio);
    else
        ev_io_stop(p->base.loop, &p->rio);
    if (wr)
        ev_io_start(p->base.loop, &p->wio);
    else
        ev_io_stop(p->base.loop, &p->wio);
}

static void pg_close(sink_pg *p)
{
    ev_io_stop(p->base.loop, &p->rio);
    ev_io_stop(p->base.loop, &p->wio);
    ev_timer_stop(p->base.loop, &p->watchdog);
    p->fd = -1;
    if (p->conn)
        PQfinish(p->conn);
    p->conn = NULL;
    p->state = PG_DOWN;
    p->inflight = 0;
}

static void watchdog_arm(sink_pg *p)
{
    ev_timer_stop(p->base.loop, &p->watchdog);
    ev_timer_set(&p->watchdog, SINK_PG_STEP_TIMEOUT_MS / 1000.0, 0.);
    ev_timer_start(p->base.loop, &p->watchdog);
}

/* First line of a libpq message (never DETAIL/CONTEXT). */
static void first_line(const char *msg, char *out, size_t cap)
{
    if (!msg || !*msg)
        msg = "connection lost";
    size_t n = strcspn(msg, "\n");
    if (n >= cap)
        n = cap - 1;
    memcpy(out, msg, n);
    out[n] = '\0';
}

static void result_error(const PGresult *res, char *out, size_t cap)
{
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
    snprintf(out, cap, "%s: %s", state ? state : "-----", msg ? msg : PQresStatus(PQresultStatus(res)));
}

static bool data_error(const PGresult *res)
{
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    return state && (strncmp(state, "22", 2) == 0 || strncmp(state, "23", 2) == 0);
}

/* Log a failure, louder the longer the sink stays down. */
static void report_failure(sink_pg *p, ev_tstamp now)
{
    sink *s = &p->base;
    if (p->fail_count == 1) {
        log_warn(MOD,
                 "postgres sink: %s (database %s on %s:%d); %" PRIu64 " findings kept in memory, %s, retrying",
                 p->last_err, p->set.dbname, p->set.host, p->set.port, p->queued,
                 s->blocked ? "workers paused (credit withheld)" : "nothing waiting");
        p->last_report = now;
    } else if (now - p->fail_since >= 30.0 && now - p->last_report >= 60.0) {
        log_error(MOD,
                  "postgres sink: still failing after %.0f s (%" PRIu64 " attempts): %s; %" PRIu64
                  " findings kept%s",
                  now - p->fail_since, p->fail_count, p->last_err, p->queued,
                  s->blocked ? ", replication paused: check the server and [alerts.postgres]" : "");
        p->last_report = now;
    } else {
        log_debug(MOD, "postgres sink: attempt %" PRIu64 " failed: %s", p->fail_count, p->last_err);
    }
}

/* Anything but a data error: drop the connection, keep the rows, retry with backoff. */
static void pg_fail(sink_pg *p, const char *why)
{
    sink *s = &p->base;
    snprintf(p->last_err, sizeof(p->last_err), "%s", why);
    pg_close(p);
    s->errors++;
    ev_tstamp now = ev_now(s->loop);
    if (p->fail_count == 0) {
        p->fail_since = now;
        p->retry_ms = SINK_PG_RETRY_MIN_MS;
    } else if (p->retry_ms < SINK_PG_RETRY_MAX_MS) {
        p->retry_ms = p->retry_ms * 2 > SINK_PG_RETRY_MAX_MS ? SINK_PG_RETRY_MAX_MS : p->retry_ms * 2;
    }
    p->fail_count++;
    bool was_blocked = s->blocked;
    if (p->queued > 0)
        s->blocked = true;
    report_failure(p, now);
    ev_timer_stop(s->loop, &p->retry);
    ev_timer_set(&p->retry, p->retry_ms / 1000.0, 0.);
    ev_timer_start(s->loop, &p->retry);
    if (!was_blocked && s->blocked && s->progress)
        s->progress(s->progress_ctx, s);
}

static void retry_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    sink_pg *p = w->data;
    if (p->state == PG_DOWN)
        pg_connect_start(p);
}

static void watchdog_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    sink_pg *p = w->data;
    pg_fail(p, p->state == PG_INSERTING ? "INSERT did not complete within 30 s" : "connect did not complete within 30 s");
}

static void pg_connect_start(sink_pg *p)
{
    char port[12];
    snprintf(port, sizeof(port), "%d", p->set.port);
    const char *keys[16], *vals[16];
    int n = 0;
    static const char *const names[] = {"host",     "port",    "dbname",           "user",
                                        "password", "sslmode", "application_name", "client_encoding",
                                        "options",  "keepalives", "keepalives_idle", "keepalives_interval",
                                        "keepalives_count"};
    const char *values[] = {p->set.host, port, p->set.dbname, p->set.username, p->set.password,
                            sslmode_name(p->set.sslmode), "pgsense-sink", "UTF8",
                            "-c search_path=pg_catalog -c statement_timeout=30000", "1", "30", "10", "3"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (!values[i])
            continue;
        keys[n] = names[i];
        vals[n] = values[i];
        n++;
    }
    keys[n] = vals[n] = NULL;

    ev_timer_stop(p->base.loop, &p->retry);
    p->conn = PQconnectStartParams(keys, vals, 0);
    if (!p->conn) {
        pg_fail(p, "out of memory starting a connection");
        return;
    }
    if (PQstatus(p->conn) == CONNECTION_BAD) {
        char e[256];
        first_line(PQerrorMessage(p->conn), e, sizeof(e));
        pg_fail(p, e);
        return;
    }
    p->state = PG_CONNECTING;
    p->fd = -1;
    watchdog_arm(p);
    watch(p, false, true);
}

/* Push libpq's output; arm the write watcher while bytes remain. */
static int flush_out(sink_pg *p)
{
    int r = PQflush(p->conn);
    if (r < 0)
        return -1;
    if (r > 0)
        ev_io_start(p->base.loop, &p->wio);
    else
        ev_io_stop(p->base.loop, &p->wio);
    return 0;
}

static void conn_error(sink_pg *p)
{
    char e[256];
    first_line(PQerrorMessage(p->conn), e, sizeof(e));
    pg_fail(p, e);
}

/* Create the schema and table when missing; a role without CREATE passes when they exist. */
static void pg_setup(sink_pg *p)
{
    char *sch = PQescapeIdentifier(p->conn, p->set.schema, strlen(p->set.schema));
    char *tab = PQescapeIdentifier(p->conn, p->set.table, strlen(p->set.table));
    char qual[2 * (IDENT_MAX * 2 + 3) + 2], sql[2048];
    char *lit = NULL;
    if (!sch || !tab)
        goto oom;
    snprintf(qual, sizeof(qual), "%s.%s", sch, tab);
    lit = PQescapeLiteral(p->conn, qual, strlen(qual));
    char *slit = PQescapeLiteral(p->conn, sch, strlen(sch));
    if (!lit || !slit) {
        PQfreemem(slit);
        goto oom;
    }
    free(p->target);
    p->target = strdup(qual);
    int n = snprintf(sql, sizeof(sql),
                     "DO $pgsense$ BEGIN "
                     "IF pg_catalog.to_regnamespace(%s) IS NULL THEN CREATE SCHEMA %s; END IF; "
                     "IF pg_catalog.to_regclass(%s) IS NULL THEN CREATE TABLE %s ("
                     "id bigserial PRIMARY KEY, database text, worker text, rule_id text, description text, "
                     "category text, severity text, schema_name text, table_name text, column_name text, "
                     "masked_sample text NOT NULL, primary_key jsonb NOT NULL DEFAULT '{}', lsn bigint, "
                     "source text, op text, commit_time timestamptz, "
                     "detected_at timestamptz NOT NULL DEFAULT pg_catalog.now()); END IF; END $pgsense$",
                     slit, sch, lit, qual);
    PQfreemem(slit);
    if (!p->target || n < 0 || (size_t)n >= sizeof(sql))
        goto oom;
    PQfreemem(sch);
    PQfreemem(tab);
    PQfreemem(lit);
    if (!PQsendQuery(p->conn, sql)) {
        conn_error(p);
        return;
    }
    p->state = PG_SETUP;
    p->batch_failed = false;
    watchdog_arm(p);
    if (flush_out(p) < 0)
        conn_error(p);
    return;
oom:
    PQfreemem(sch);
    PQfreemem(tab);
    PQfreemem(lit);
    pg_fail(p, "out of memory preparing the findings table");
}

static void connect_step(sink_pg *p)
{
    switch (PQconnectPoll(p->conn)) {
    case PGRES_POLLING_READING:
        watch(p, true, false);
        return;
    case PGRES_POLLING_WRITING:
        watch(p, false, true);
        return;
    case PGRES_POLLING_OK:
        if (PQsetnonblocking(p->conn, 1) != 0) {
            conn_error(p);
            return;
        }
        watch(p, true, false);
        pg_setup(p);
        return;
    default:
        conn_error(p);
        return;
    }
}

/* Build and send the next batch: the queue's first rows (one when retrying a data error). */
static void pg_send_batch(sink_pg *p)
{
    if (p->state != PG_IDLE || !p->head || !p->flush_wanted)
        return;
    uint32_t n = p->queued > SINK_PG_BATCH_ROWS ? SINK_PG_BATCH_ROWS : (uint32_t)p->queued;
    if (p->single_left > 0)
        n = 1;
    size_t cap = 512 + strlen(p->target) + (size_t)n * NCOLS * 32;
    char *sql = malloc(cap);
    const char **params = malloc((size_t)n * NCOLS * sizeof(*params));
    if (!sql || !params) {
        free(sql);
        free(params);
        pg_fail(p, "out of memory building a batch");
        return;
    }
    size_t o = 0;
#define ADD(...)                                                                                                   \
    do {                                                                                                           \
        if (o < cap) {                                                                                             \
            int k_ = snprintf(sql + o, cap - o, __VA_ARGS__);                                                      \
            o = k_ < 0 ? cap : o + (size_t)k_;                                                                     \
        }                                                                                                          \
    } while (0)
    ADD("INSERT INTO %s (", p->target);
    for (int c = 0; c < NCOLS; c++)
        ADD("%s%s", c ? ", " : "", col_names[c]);
    ADD(") VALUES ");
    row *w = p->head;
    for (uint32_t i = 0; i < n; i++, w = w->next) {
        ADD("%s(", i ? ", " : "");
        for (int c = 0; c < NCOLS; c++) {
            params[i * NCOLS + (uint32_t)c] = w->v[c];
            ADD("%s$%u%s", c ? ", " : "", i * NCOLS + (unsigned)c + 1, col_casts[c]);
        }
        ADD(")");
    }
#undef ADD
    int ok = o < cap && PQsendQueryParams(p->conn, sql, (int)(n * NCOLS), NULL, params, NULL, NULL, 0);
    free(sql);
    free(params);
    if (!ok) {
        conn_error(p);
        return;
    }
    p->inflight = n;
    p->state = PG_INSERTING;
    p->batch_failed = false;
    p->batch_data_error = false;
    watchdog_arm(p);
    if (flush_out(p) < 0)
        conn_error(p);
}

/* The first n rows are done (committed, or given up): advance the counters. */
static void rows_done(sink_pg *p, uint32_t n, bool delivered)
{
    sink *s = &p->base;
    for (uint32_t i = 0; i < n && p->head; i++) {
        row *w = p->head;
        p->head = w->next;
        if (!p->head)
            p->tail = NULL;
        s->buffered -= w->bytes < s->buffered ? w->bytes : s->buffered;
        free(w);
        p->queued--;
        s->durable_pos++;
        if (delivered)
            s->delivered++;
        else
            s->dropped++;
    }
    if (!p->head) {
        s->buffered = 0;
        p->flush_wanted = false;
    }
}

/* Every result of the command in flight has been read. */
static void command_done(sink_pg *p)
{
    sink *s = &p->base;
    ev_timer_stop(s->loop, &p->watchdog);
    if (p->state == PG_SETUP) {
        if (p->batch_failed) {
            char e[300];
            snprintf(e, sizeof(e), "cannot create %s: %s", p->target ? p->target : "the findings table",
                     p->batch_err);
            pg_fail(p, e);
            return;
        }
        p->state = PG_IDLE;
        if (p->fail_count > 0)
            log_info(MOD, "postgres sink: connected to %s on %s:%d again after %" PRIu64 " failed attempts",
                     p->set.dbname, p->set.host, p->set.port, p->fail_count);
        if (!s->blocked) {
            p->fail_count = 0;
            p->retry_ms = SINK_PG_RETRY_MIN_MS;
        }
        pg_send_batch(p);
        return;
    }
    uint32_t n = p->inflight;
    p->inflight = 0;
    p->state = PG_IDLE;
    if (p->batch_failed && !p->batch_data_error) {
        pg_fail(p, p->batch_err);
        return;
    }
    if (p->batch_failed) {
        s->errors++;
        if (n == 1) {
            log_error(MOD, "postgres sink: the server rejected a finding (%s); it is dropped", p->batch_err);
            rows_done(p, 1, false);
            if (p->single_left)
                p->single_left--;
        } else {
            log_warn(MOD, "postgres sink: a batch of %u findings was rejected (%s); retrying them one by one", n,
                     p->batch_err);
            p->single_left = n;
        }
    } else {
        rows_done(p, n, true);
        if (p->single_left)
            p->single_left = p->single_left > n ? p->single_left - n : 0;
    }
    /* the server answered: the sink works again */
    if (s->blocked)
        log_info(MOD, "postgres sink: writing again after %" PRIu64 " failed attempts (%.1f s)", p->fail_count,
                 ev_now(s->loop) - p->fail_since);
    s->blocked = false;
    p->fail_count = 0;
    p->retry_ms = SINK_PG_RETRY_MIN_MS;
    if (s->progress)
        s->progress(s->progress_ctx, s);
    pg_send_batch(p);
}

/* Read what arrived: results of the command in flight, or an error while idle. */
static void pg_input(sink_pg *p)
{
    if (!PQconsumeInput(p->conn)) {
        conn_error(p);
        return;
    }
    if (p->state != PG_SETUP && p->state != PG_INSERTING) {
        /* idle: the server may be telling us it goes away */
        PGresult *res;
        while (!PQisBusy(p->conn) && (res = PQgetResult(p->conn)) != NULL)
            PQclear(res);
        if (PQstatus(p->conn) == CONNECTION_BAD)
            conn_error(p);
        return;
    }
    while (!PQisBusy(p->conn)) {
        PGresult *res = PQgetResult(p->conn);
        if (!res) {
            if (PQstatus(p->conn) == CONNECTION_BAD) {
                conn_error(p);
                return;
            }
            command_done(p);
            return;
        }
        ExecStatusType st = PQresultStatus(res);
        if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK && !p->batch_failed) {
            p->batch_failed = true;
            p->batch_data_error = data_error(res);
            result_error(res, p->batch_err, sizeof(p->batch_err));
        }
        PQclear(res);
    }
}

static void on_read(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    sink_pg *p = w->data;
    if (p->state == PG_CONNECTING) {
        connect_step(p);
        return;
    }
    if (!p->conn)
        return;
    if (ev_is_active(&p->wio) && flush_out(p) < 0) {
        conn_error(p);
        return;
    }
    pg_input(p);
}

static void on_write(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    sink_pg *p = w->data;
    if (p->state == PG_CONNECTING) {
        connect_step(p);
        return;
    }
    if (p->conn && flush_out(p) < 0)
        conn_error(p);
}

/* ---- sink ops ---- */

static int pg_write(sink *s, const sink_record *r)
{
    sink_pg *p = (sink_pg *)s;
    row *w = row_new(r);
    if (!w) {
        s->dropped++;
        log_error(MOD, "postgres sink: out of memory buffering a finding; it is lost");
        return -1;
    }
    if (p->tail)
        p->tail->next = w;
    else
        p->head = w;
    p->tail = w;
    p->queued++;
    s->taken++;
    s->buffered += w->bytes;
    return 0;
}

static void pg_flush(sink *s)
{
    sink_pg *p = (sink_pg *)s;
    if (!p->head)
        return;
    p->flush_wanted = true;
    if (p->state == PG_IDLE) {
        pg_send_batch(p);
    } else if (p->state == PG_DOWN && !s->blocked) {
        /* down with findings to write: credit is withheld until it is back */
        s->blocked = true;
        if (!ev_is_active(&p->retry))
            pg_connect_start(p);
        if (s->progress && s->blocked)
            s->progress(s->progress_ctx, s);
    }
}

static int pg_prepare(sink *s, const config *cfg, char *err, size_t errlen)
{
    sink_pg *p = (sink_pg *)s;
    if (sink_postgres_check_config(cfg, err, errlen) < 0)
        return -1;
    if (p->have_next)
        settings_free(&p->next);
    if (settings_copy(&p->next, &cfg->alerts.postgres) < 0) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    p->have_next = true;
    return 0;
}

static void pg_commit(sink *s)
{
    sink_pg *p = (sink_pg *)s;
    if (!p->have_next)
        return;
    p->have_next = false;
    if (settings_equal(&p->set, &p->next)) {
        settings_free(&p->next);
        return;
    }
    settings_free(&p->set);
    p->set = p->next;
    memset(&p->next, 0, sizeof(p->next));
    /* a batch in flight is lost with the old connection: its rows stay queued and go to the new one */
    log_info(MOD, "postgres sink: reconnecting with the new settings (database %s on %s:%d, table %s.%s)",
             p->set.dbname, p->set.host, p->set.port, p->set.schema, p->set.table);
    pg_close(p);
    ev_timer_stop(s->loop, &p->retry);
    pg_connect_start(p);
}

static void pg_abort(sink *s)
{
    sink_pg *p = (sink_pg *)s;
    if (p->have_next)
        settings_free(&p->next);
    p->have_next = false;
}

static void pg_destroy(sink *s)
{
    sink_pg *p = (sink_pg *)s;
    pg_abort(s);
    if (s->loop)
        ev_timer_stop(s->loop, &p->retry);
    if (s->loop)
        pg_close(p);
    while (p->head) {
        row *w = p->head;
        p->head = w->next;
        free(w);
    }
    settings_free(&p->set);
    free(p->target);
    free(s->name);
    free(p);
}

static const sink_ops pg_ops = {
    .kind = "postgres",
    .write = pg_write,
    .flush = pg_flush,
    .prepare = pg_prepare,
    .commit = pg_commit,
    .abort = pg_abort,
    .destroy = pg_destroy,
};

sink *sink_postgres_new(struct ev_loop *loop, const config *cfg, char *err, size_t errlen)
{
    if (sink_postgres_check_config(cfg, err, errlen) < 0)
        return NULL;
    sink_pg *p = calloc(1, sizeof(*p));
    if (!p) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    p->base.ops = &pg_ops;
    p->base.durable = true;
    p->base.loop = loop;
    p->fd = -1;
    p->retry_ms = SINK_PG_RETRY_MIN_MS;
    ev_init(&p->rio, on_read);
    ev_init(&p->wio, on_write);
    p->rio.data = p->wio.data = p;
    ev_timer_init(&p->retry, retry_cb, 0., 0.);
    ev_timer_init(&p->watchdog, watchdog_cb, 0., 0.);
    p->retry.data = p->watchdog.data = p;
    p->base.name = strdup("postgres");
    if (!p->base.name || settings_copy(&p->set, &cfg->alerts.postgres) < 0) {
        snprintf(err, errlen, "out of memory");
        p->base.loop = NULL;
        pg_destroy(&p->base);
        return NULL;
    }
    pg_connect_start(p);
    return &p->base;
}

bool sink_postgres_connected(const sink *s)
{
    const sink_pg *p = (const sink_pg *)s;
    return s->ops == &pg_ops && (p->state == PG_IDLE || p->state == PG_INSERTING);
}
