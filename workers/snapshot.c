/*
 * snapshot: initial table copy (see header). Each connection walks the
 * shared table queue: columns from pg_catalog, user types resolved, then
 * SAVEPOINT + COPY (SELECT ...) TO STDOUT inside its imported snapshot, so
 * one unreadable table rolls back to its savepoint and the rest go on.
 */
#include "snapshot.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "pgconn.h"
#include "pgtypes.h"

#define CHUNK_BYTES (256 * 1024) /* findings per unit before it is closed and acked on its own */
#define SQL_MAX     65536

typedef enum {
    SC_CONNECTING,
    SC_IMPORTING,
    SC_IMPORTED, /* waiting for the others before taking tables */
    SC_WORKING,
    SC_CLOSING, /* COMMIT sent */
    SC_DONE,
} sc_state;

typedef struct sconn {
    struct snapshot *s;
    pgconn *pc;
    int idx;
    sc_state state;
    const catalog_table *cur;
    catalog_columns cols;
    scan_table *st;
    uint16_t *colmap; /* COPY field -> column of st */
    pgo_value *vals;
    unit *u;
    uint64_t rows;
} sconn;

struct snapshot {
    snapshot_opts o;
    catalog_table *tables;
    size_t n, next, remaining;
    char snapname[128];
    uint64_t lsn;
    sconn *conns;
    int nconns;
    int imported;
    bool import_reported;
    bool finished_reported;
    bool paused;
    pgtypes_cache *types;
    ev_timer reaper;
};

static void take_table(sconn *c);
static void table_finished(sconn *c, const char *error);

/* COPY text format: backslash escapes per PostgreSQL's copyfromparse.c. */
int snapshot_parse_copy_row(char *line, size_t len, pgo_value *vals, uint16_t nvals)
{
    if (len > 0 && line[len - 1] == '\n')
        len--;
    uint16_t f = 0;
    size_t i = 0;
    while (f < nvals) {
        if (i + 2 <= len && line[i] == '\\' && line[i + 1] == 'N' &&
            (i + 2 == len || line[i + 2] == '\t')) {
            vals[f].kind = PGO_VAL_NULL;
            vals[f].data = NULL;
            vals[f].len = 0;
            i += 2;
        } else {
            char *start = line + i;
            char *out = start;
            while (i < len && line[i] != '\t') {
                char ch = line[i++];
                if (ch != '\\' || i >= len) {
                    *out++ = ch;
                    continue;
                }
                ch = line[i++];
                switch (ch) {
                case 'b': *out++ = '\b'; break;
                case 'f': *out++ = '\f'; break;
                case 'n': *out++ = '\n'; break;
                case 'r': *out++ = '\r'; break;
                case 't': *out++ = '\t'; break;
                case 'v': *out++ = '\v'; break;
                case 'x': {
                    int v = 0, k = 0;
                    while (k < 2 && i < len && line[i] && strchr("0123456789abcdefABCDEF", line[i])) {
                        char h = line[i++];
                        v = v * 16 + (h <= '9' ? h - '0' : (h | 0x20) - 'a' + 10);
                        k++;
                    }
                    *out++ = (char)v;
                    break;
                }
                case '0': case '1': case '2': case '3': case '4': case '5': case '6': case '7': {
                    int v = ch - '0', k = 1;
                    while (k < 3 && i < len && line[i] >= '0' && line[i] <= '7') {
                        v = v * 8 + (line[i++] - '0');
                        k++;
                    }
                    *out++ = (char)v;
                    break;
                }
                default:
                    *out++ = ch;
                    break;
                }
            }
            vals[f].kind = PGO_VAL_TEXT;
            vals[f].data = start;
            vals[f].len = (uint32_t)(out - start);
        }
        f++;
        if (i >= len)
            break;
        if (line[i] != '\t')
            return -1;
        i++; /* the tab */
    }
    return (f == nvals && i >= len) ? 0 : -1;
}

static void reap(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    snapshot *s = w->data;
    bool all_closed = true;
    for (int i = 0; i < s->nconns; i++) {
        if (s->conns[i].state == SC_DONE && s->conns[i].pc) {
            pgconn_free(s->conns[i].pc);
            s->conns[i].pc = NULL;
        }
        if (s->conns[i].pc)
            all_closed = false;
    }
    /* Finished once every table is over and every connection closed (or failed). */
    if (all_closed && !s->finished_reported) {
        s->finished_reported = true;
        s->o.finished(s->o.ctx);
    }
}

static void conn_done(sconn *c)
{
    c->state = SC_DONE;
    ev_timer_start(c->s->o.loop, &c->s->reaper); /* free outside libpq's callbacks */
}

static void fail_import(snapshot *s, const char *err)
{
    if (s->import_reported)
        return;
    s->import_reported = true;
    s->o.imported(s->o.ctx, false, err);
}

static void maybe_imported(snapshot *s)
{
    if (s->import_reported || s->imported < s->nconns)
        return;
    s->import_reported = true;
    s->o.imported(s->o.ctx, true, NULL);
    for (int i = 0; i < s->nconns; i++)
        if (s->conns[i].state == SC_IMPORTED)
            take_table(&s->conns[i]);
}

static void on_import(pgconn *pc, void *ctx, const PGresult *res)
{
    sconn *c = ctx;
    snapshot *s = c->s;
    char err[512];
    if (!res || (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK)) {
        pgconn_result_error(res, err, sizeof(err));
        if (!res)
            snprintf(err, sizeof(err), "%s", pgconn_error(pc));
        conn_done(c);
        fail_import(s, err);
        return;
    }
    c->state = SC_IMPORTED;
    s->imported++;
    maybe_imported(s);
}

static void start_import(sconn *c);

/* Connection 0 exported a fresh snapshot: note its name and LSN, let the others import it. */
static void on_export(pgconn *pc, void *ctx, const PGresult *res)
{
    sconn *c = ctx;
    snapshot *s = c->s;
    char err[512];
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1 || PQnfields(res) != 2) {
        pgconn_result_error(res, err, sizeof(err));
        if (!res)
            snprintf(err, sizeof(err), "%s", pgconn_error(pc));
        conn_done(c);
        fail_import(s, err);
        return;
    }
    snprintf(s->snapname, sizeof(s->snapname), "%s", PQgetvalue(res, 0, 0));
    uint64_t hi = 0, lo = 0;
    if (sscanf(PQgetvalue(res, 0, 1), "%lX/%lX", &hi, &lo) == 2)
        s->lsn = (hi << 32) | lo;
    c->state = SC_IMPORTED;
    s->imported++;
    for (int i = 1; i < s->nconns; i++)
        start_import(&s->conns[i]);
    maybe_imported(s);
}

static void start_import(sconn *c)
{
    snapshot *s = c->s;
    if (c->state != SC_IMPORTING)
        return; /* not connected yet: it imports once connected */
    char sql[512];
    if (!s->snapname[0]) {
        if (c->idx != 0)
            return; /* waits for connection 0's export */
        snprintf(sql, sizeof(sql),
                 "SET row_security = off; BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY;"
                 " SELECT pg_catalog.pg_export_snapshot(), pg_catalog.pg_current_wal_lsn()");
        if (pgconn_query(c->pc, sql, on_export, NULL, c) < 0)
            fail_import(s, pgconn_error(c->pc));
        return;
    }
    char *lit = PQescapeLiteral(pgconn_raw(c->pc), s->snapname, strlen(s->snapname));
    if (!lit) {
        fail_import(s, "out of memory");
        return;
    }
    snprintf(sql, sizeof(sql),
             "SET row_security = off; BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY;"
             " SET TRANSACTION SNAPSHOT %s",
             lit);
    PQfreemem(lit);
    if (pgconn_query(c->pc, sql, on_import, NULL, c) < 0)
        fail_import(s, pgconn_error(c->pc));
}

static void on_connected(pgconn *pc, void *ctx, bool ok, const char *err)
{
    (void)pc;
    sconn *c = ctx;
    if (!ok) {
        conn_done(c);
        fail_import(c->s, err);
        return;
    }
    c->state = SC_IMPORTING;
    start_import(c);
}

static void release_table(sconn *c)
{
    catalog_columns_free(&c->cols);
    scan_table_free(c->st);
    c->st = NULL;
    free(c->colmap);
    c->colmap = NULL;
    free(c->vals);
    c->vals = NULL;
    c->cur = NULL;
}

static int on_copy_row(pgconn *pc, void *ctx, const char *data, size_t len)
{
    (void)pc;
    sconn *c = ctx;
    snapshot *s = c->s;
    char *line = (char *)data; /* libpq's buffer is ours until PQfreemem */
    if (snapshot_parse_copy_row(line, len, c->vals, c->st->ncols) < 0) {
        log_warn("snapshot", "table %s.%s: a COPY row with an unexpected shape was skipped", c->cur->schema,
                 c->cur->table);
        return 0;
    }
    scan_origin o = {.lsn = s->lsn, .source = FRAME_SOURCE_SNAPSHOT, .op = FRAME_OP_SNAPSHOT,
                     .commit_time = FRAME_TIME_NULL};
    if (scanner_row(s->o.scan, c->st, c->vals, NULL, &o, c->u) < 0)
        return -1;
    c->rows++;
    if (unit_bytes(c->u) >= CHUNK_BYTES) {
        uint64_t seq;
        if (unit_end_txn(c->u, s->o.ch, s->o.seq, 0, 0, FRAME_TIME_NULL, &seq) < 0)
            return -1;
    }
    if (s->paused || chan_credit(s->o.ch) <= 0 || chan_congested(s->o.ch)) {
        s->paused = true;
        return 1;
    }
    return 0;
}

static void on_copy_done(pgconn *pc, void *ctx, const PGresult *res)
{
    sconn *c = ctx;
    char err[512];
    if (!res) {
        snprintf(err, sizeof(err), "%s", pgconn_error(pc));
        table_finished(c, err);
        return;
    }
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        pgconn_result_error(res, err, sizeof(err));
        table_finished(c, err);
        return;
    }
    table_finished(c, NULL);
}

static void on_rollback(pgconn *pc, void *ctx, const PGresult *res)
{
    (void)pc;
    (void)res;
    sconn *c = ctx;
    take_table(c);
}

/* Build the COPY for the current table from its columns and start it. */
static void start_copy(sconn *c)
{
    snapshot *s = c->s;
    const catalog_table *t = c->cur;
    PGconn *raw = pgconn_raw(c->pc);
    size_t n = c->cols.n;
    const char **names = calloc(n ? n : 1, sizeof(char *));
    bool *scanned = calloc(n ? n : 1, sizeof(bool));
    bool *keys = calloc(n ? n : 1, sizeof(bool));
    c->colmap = calloc(n ? n : 1, sizeof(uint16_t));
    char *sql = malloc(SQL_MAX);
    char *qname = catalog_qualified_name(raw, t->schema, t->table);
    uint16_t k = 0;
    bool finish = false;    /* the table ends here: nothing to COPY, or an error */
    const char *error = NULL;
    if (!names || !scanned || !keys || !c->colmap || !sql || !qname)
        goto nomem;

    size_t pos = (size_t)snprintf(sql, SQL_MAX, "SAVEPOINT pgsense_table; COPY (SELECT ");
    for (size_t i = 0; i < n; i++) {
        const catalog_column *col = &c->cols.cols[i];
        bool listed = !t->attnames;
        for (size_t a = 0; t->attnames && a < t->n_attnames; a++)
            if (strcmp(t->attnames[a], col->name) == 0)
                listed = true;
        if (!listed)
            continue;
        bool key = c->cols.has_pk ? col->pk : col->replident;
        bool type_ok = pgtypes_scanned(s->types, col->type_oid, scanner_scan_numeric(s->o.scan), NULL, NULL);
        if (!type_ok && !key)
            continue;
        char *qi = PQescapeIdentifier(raw, col->name, strlen(col->name));
        if (!qi)
            goto nomem;
        int w = snprintf(sql + pos, SQL_MAX - pos, "%s%s", k ? ", " : "", qi);
        PQfreemem(qi);
        if (w < 0 || (size_t)w >= SQL_MAX - pos)
            goto toolong;
        pos += (size_t)w;
        names[k] = col->name;
        scanned[k] = type_ok;
        keys[k] = key;
        k++;
    }
    if (k == 0) {
        /* Nothing text-like to read: the table is done at once. */
        finish = true;
        goto out;
    }
    int w = snprintf(sql + pos, SQL_MAX - pos, " FROM %s%s%s%s%s) TO STDOUT", t->relkind == 'p' ? "" : "ONLY ",
                     qname, t->rowfilter ? " WHERE (" : "", t->rowfilter ? t->rowfilter : "",
                     t->rowfilter ? ")" : "");
    if (w < 0 || (size_t)w >= SQL_MAX - pos)
        goto toolong;
    c->st = scan_table_new(s->o.scan, t->schema, t->table, k, names, scanned, keys);
    c->vals = calloc(k, sizeof(pgo_value));
    if (!c->st || !c->vals)
        goto nomem;
    c->rows = 0;
    if (pgconn_query(c->pc, sql, on_copy_done, on_copy_row, c) < 0) {
        finish = true;
        error = pgconn_error(c->pc);
        goto out;
    }
    if (s->paused)
        pgconn_pause(c->pc);
    goto out;
toolong:
    finish = true;
    error = "column list too long for one COPY";
    goto out;
nomem:
    finish = true;
    error = "out of memory";
out:
    /* One cleanup path; the table is finished (done or failed) only after it. */
    free(names);
    free(scanned);
    free(keys);
    free(sql);
    free(qname);
    if (finish)
        table_finished(c, error);
}

static void on_types(pgconn *pc, void *ctx, const PGresult *res)
{
    sconn *c = ctx;
    char err[512];
    catalog_typemap map;
    if (!res || catalog_parse_types(res, &map, err, sizeof(err)) < 0) {
        if (res && PQresultStatus(res) == PGRES_FATAL_ERROR)
            pgconn_result_error(res, err, sizeof(err));
        else if (!res)
            snprintf(err, sizeof(err), "%s", pgconn_error(pc));
        table_finished(c, err);
        return;
    }
    for (size_t i = 0; i < c->cols.n; i++)
        (void)pgtypes_scanned(c->s->types, c->cols.cols[i].type_oid, false, catalog_typemap_resolve, &map);
    catalog_typemap_free(&map);
    start_copy(c);
}

static void on_columns(pgconn *pc, void *ctx, const PGresult *res)
{
    sconn *c = ctx;
    char err[512];
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
        pgconn_result_error(res, err, sizeof(err));
        if (!res)
            snprintf(err, sizeof(err), "%s", pgconn_error(pc));
        table_finished(c, err);
        return;
    }
    if (catalog_parse_columns(res, &c->cols, err, sizeof(err)) < 0) {
        table_finished(c, err);
        return;
    }
    /* User types (domains, arrays of them, enums) need the catalog once. */
    uint32_t unknown[64];
    size_t nu = 0;
    for (size_t i = 0; i < c->cols.n && nu < 64; i++)
        if (pgtypes_builtin(c->cols.cols[i].type_oid) == PGT_UNKNOWN)
            unknown[nu++] = c->cols.cols[i].type_oid;
    if (nu == 0) {
        start_copy(c);
        return;
    }
    char sql[4096];
    if (catalog_sql_types(unknown, nu, sql, sizeof(sql)) < 0 || pgconn_query(c->pc, sql, on_types, NULL, c) < 0)
        table_finished(c, "cannot ask the catalog for user types");
}

static void on_commit(pgconn *pc, void *ctx, const PGresult *res)
{
    (void)pc;
    (void)res;
    conn_done(ctx);
}

static void take_table(sconn *c)
{
    snapshot *s = c->s;
    if (s->next >= s->n) {
        if (c->state != SC_DONE && c->state != SC_CLOSING) {
            /* End the read-only transaction; the reaper frees the connection once it is answered. */
            c->state = SC_CLOSING;
            if (pgconn_query(c->pc, "COMMIT", on_commit, NULL, c) < 0)
                conn_done(c);
        }
        return;
    }
    c->state = SC_WORKING;
    c->cur = &s->tables[s->next++];
    char sql[2048];
    if (catalog_sql_columns(c->cur->relid, sql, sizeof(sql)) < 0 ||
        pgconn_query(c->pc, sql, on_columns, NULL, c) < 0)
        table_finished(c, pgconn_error(c->pc));
}

/* The current table is over: TABLE_DONE, or an error noted and the savepoint rolled back. */
static void table_finished(sconn *c, const char *error)
{
    snapshot *s = c->s;
    const catalog_table *t = c->cur;
    bool rollback = false;
    if (error) {
        unit_reset(c->u); /* its findings will come again when the table is retried */
        s->o.table_error(s->o.ctx, t, error);
        rollback = true;
    } else {
        uint64_t seq = 0;
        if (unit_end_table(c->u, s->o.ch, s->o.seq, t->relid, t->schema, t->table, s->lsn, &seq) < 0) {
            s->o.table_error(s->o.ctx, t, "cannot queue findings for the supervisor");
            rollback = true;
        } else {
            log_info("snapshot", "table %s.%s: %llu rows scanned", t->schema, t->table,
                     (unsigned long long)c->rows);
            s->o.table_sent(s->o.ctx, t, seq);
        }
    }
    release_table(c);
    s->remaining--;
    if (rollback && c->pc && c->state != SC_DONE) {
        if (pgconn_query(c->pc, "ROLLBACK TO SAVEPOINT pgsense_table", on_rollback, NULL, c) == 0)
            return;
        conn_done(c);
        return;
    }
    if (!error && c->pc && c->state != SC_DONE &&
        pgconn_query(c->pc, "RELEASE SAVEPOINT pgsense_table", NULL, NULL, NULL) < 0) {
        conn_done(c);
        return;
    }
    take_table(c);
}

static void copy_table(catalog_table *dst, const catalog_table *src)
{
    memset(dst, 0, sizeof(*dst));
    dst->relid = src->relid;
    dst->schema = strdup(src->schema);
    dst->table = strdup(src->table);
    dst->relkind = src->relkind;
    if (src->rowfilter)
        dst->rowfilter = strdup(src->rowfilter);
    if (src->attnames) {
        dst->attnames = calloc(src->n_attnames ? src->n_attnames : 1, sizeof(char *));
        for (size_t i = 0; dst->attnames && i < src->n_attnames; i++) {
            dst->attnames[i] = strdup(src->attnames[i]);
            if (dst->attnames[i])
                dst->n_attnames++;
        }
    }
}

snapshot *snapshot_start(const snapshot_opts *o, const catalog_table *tables, size_t n, const char *snapshot_name,
                         uint64_t lsn)
{
    snapshot *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->o = *o;
    s->lsn = lsn;
    if (snapshot_name)
        snprintf(s->snapname, sizeof(s->snapname), "%s", snapshot_name);
    s->tables = calloc(n ? n : 1, sizeof(catalog_table));
    s->types = pgtypes_cache_new();
    if (!s->tables || !s->types)
        goto fail;
    for (size_t i = 0; i < n; i++) {
        copy_table(&s->tables[i], &tables[i]);
        s->n++;
        if (!s->tables[i].schema || !s->tables[i].table)
            goto fail;
    }
    s->remaining = n;
    ev_timer_init(&s->reaper, reap, 0., 0.);
    s->reaper.data = s;
    s->nconns = o->connections < 1 ? 1 : o->connections;
    if ((size_t)s->nconns > n)
        s->nconns = (int)n;
    if (n == 0) {
        o->imported(o->ctx, true, NULL);
        s->import_reported = true;
        s->finished_reported = true;
        o->finished(o->ctx);
        return s;
    }
    s->conns = calloc((size_t)s->nconns, sizeof(sconn));
    if (!s->conns)
        goto fail;
    for (int i = 0; i < s->nconns; i++) {
        sconn *c = &s->conns[i];
        c->s = s;
        c->idx = i;
        c->u = unit_new();
        char label[32];
        snprintf(label, sizeof(label), "snapshot-%d", i);
        c->pc = pgconn_new(o->loop, o->conn_keys, o->conn_values, label);
        if (!c->u || !c->pc)
            goto fail;
        if (pgconn_connect(c->pc, on_connected, c) < 0) {
            char err[512];
            snprintf(err, sizeof(err), "%s", pgconn_error(c->pc));
            conn_done(c);
            fail_import(s, err);
            return s;
        }
    }
    return s;
fail:
    snapshot_free(s);
    return NULL;
}

void snapshot_free(snapshot *s)
{
    if (!s)
        return;
    ev_timer_stop(s->o.loop, &s->reaper);
    for (int i = 0; s->conns && i < s->nconns; i++) {
        release_table(&s->conns[i]);
        pgconn_free(s->conns[i].pc);
        unit_free(s->conns[i].u);
    }
    free(s->conns);
    catalog_tables tt = {.items = s->tables, .n = s->n};
    catalog_tables_free(&tt);
    pgtypes_cache_free(s->types);
    free(s);
}

void snapshot_pause(snapshot *s)
{
    s->paused = true;
    for (int i = 0; i < s->nconns; i++)
        if (s->conns[i].pc && s->conns[i].state == SC_WORKING)
            pgconn_pause(s->conns[i].pc);
}

void snapshot_resume(snapshot *s)
{
    if (!s->paused)
        return;
    s->paused = false;
    for (int i = 0; i < s->nconns; i++)
        if (s->conns[i].pc && s->conns[i].state != SC_DONE)
            pgconn_resume(s->conns[i].pc);
}

size_t snapshot_remaining(const snapshot *s)
{
    return s->remaining;
}

uint64_t snapshot_lsn(const snapshot *s)
{
    return s->lsn;
}
