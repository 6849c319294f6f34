/*
 * pgstore: migrations and persisted state for store = postgres (see
 * header). Start-up is a chain of queries: bootstrap, read the applied
 * migrations, superuser?, plan, each step, re-plan once on a failed step
 * (another instance may have applied it), then read etl.replication_state.
 */
#include "pgstore.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "lsn.h"
#include "migrations.h"

#define TRIGGER_VERSION INT64_C(20260415100000)

struct pgstore {
    pgconn *side;
    char *slot;
    char *slot_lit; /* quoted literal */
    pgstore_table_cb table_cb;
    pgstore_ready_cb ready_cb;
    void *ctx;
    migrations_row *rows;
    size_t n_rows;
    bool superuser;
    bool replanned;
    bool history;
    migrations_plan_t plan;
    bool have_plan;
    size_t step;
    uint64_t saved_lsn;
};

static void read_rows(pgstore *s);

static void finish(pgstore *s, bool ok, int code, const char *err)
{
    if (s->have_plan) {
        migrations_plan_free(&s->plan);
        s->have_plan = false;
    }
    s->ready_cb(s->ctx, ok, code, err);
}

static void fail_res(pgstore *s, const char *what, const PGresult *res)
{
    char err[600], msg[700];
    if (res)
        pgconn_result_error(res, err, sizeof(err));
    else
        snprintf(err, sizeof(err), "%s", pgconn_error(s->side));
    snprintf(msg, sizeof(msg), "store = postgres: %s: %s", what, err);
    finish(s, false, 1, msg);
}

static bool ok_res(const PGresult *res)
{
    return res && (PQresultStatus(res) == PGRES_COMMAND_OK || PQresultStatus(res) == PGRES_TUPLES_OK);
}

static void on_states(pgconn *c, void *ctx, const PGresult *res)
{
    (void)c;
    pgstore *s = ctx;
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK || PQnfields(res) != 5) {
        fail_res(s, "cannot read etl.replication_state", res);
        return;
    }
    for (int i = 0; i < PQntuples(res); i++) {
        uint32_t relid = (uint32_t)strtoul(PQgetvalue(res, i, 0), NULL, 10);
        bool ready = strcmp(PQgetvalue(res, i, 3), "ready") == 0;
        s->table_cb(s->ctx, relid, PQgetvalue(res, i, 1), PQgetvalue(res, i, 2), ready);
    }
    finish(s, true, 0, NULL);
}

static void read_states(pgstore *s)
{
    char sql[512];
    snprintf(sql, sizeof(sql),
             "SELECT table_id, schema_name, table_name, state, snapshot_lsn FROM etl.replication_state"
             " WHERE pipeline_id = %s AND table_id <> 0",
             s->slot_lit);
    if (pgconn_query(s->side, sql, on_states, NULL, s) < 0)
        fail_res(s, "cannot read etl.replication_state", NULL);
}

static void run_step(pgstore *s);

static void on_step(pgconn *c, void *ctx, const PGresult *res)
{
    (void)c;
    pgstore *s = ctx;
    const migration *m = s->plan.steps[s->step].m;
    if (!ok_res(res)) {
        if (!s->replanned && res) {
            s->replanned = true; /* another instance may have applied it meanwhile */
            migrations_plan_free(&s->plan);
            s->have_plan = false;
            read_rows(s);
            return;
        }
        char what[128];
        snprintf(what, sizeof(what), "migration %" PRId64 " failed", m->version);
        fail_res(s, what, res);
        return;
    }
    log_info("store", "applied migration %" PRId64 " (%s)", m->version, m->description);
    if (m->version == TRIGGER_VERSION)
        s->history = true;
    s->step++;
    run_step(s);
}

static void run_step(pgstore *s)
{
    if (s->step >= s->plan.n_steps) {
        read_states(s);
        return;
    }
    if (pgconn_query(s->side, s->plan.steps[s->step].sql, on_step, NULL, s) < 0)
        fail_res(s, "cannot send a migration", NULL);
}

static void make_plan(pgstore *s)
{
    if (migrations_plan(s->rows, s->n_rows, s->superuser, &s->plan) < 0) {
        char msg[sizeof(s->plan.error) + 64];
        snprintf(msg, sizeof(msg), "store = postgres: %s", s->plan.error);
        migrations_plan_free(&s->plan);
        finish(s, false, 3, msg);
        return;
    }
    s->have_plan = true;
    for (size_t i = 0; i < s->plan.n_warnings; i++)
        log_warn("store", "%s", s->plan.warnings[i]);
    for (size_t i = 0; i < s->n_rows; i++)
        if (s->rows[i].version == TRIGGER_VERSION && s->rows[i].success)
            s->history = true;
    s->step = 0;
    run_step(s);
}

static void on_superuser(pgconn *c, void *ctx, const PGresult *res)
{
    (void)c;
    pgstore *s = ctx;
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
        fail_res(s, "cannot tell whether the role is a superuser", res);
        return;
    }
    s->superuser = PQgetvalue(res, 0, 0)[0] == 't';
    make_plan(s);
}

static void on_rows(pgconn *c, void *ctx, const PGresult *res)
{
    (void)c;
    pgstore *s = ctx;
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK || PQnfields(res) != 3) {
        fail_res(s, "cannot read etl._sqlx_migrations", res);
        return;
    }
    free(s->rows);
    s->n_rows = 0;
    int n = PQntuples(res);
    s->rows = calloc(n ? (size_t)n : 1, sizeof(*s->rows));
    if (!s->rows) {
        finish(s, false, 1, "out of memory");
        return;
    }
    for (int i = 0; i < n; i++) {
        char err[256];
        if (migrations_row_parse(PQgetvalue(res, i, 0), PQgetvalue(res, i, 1), PQgetvalue(res, i, 2),
                                 &s->rows[s->n_rows], err, sizeof(err)) < 0) {
            char msg[400];
            snprintf(msg, sizeof(msg), "store = postgres: etl._sqlx_migrations: %s", err);
            finish(s, false, 3, msg);
            return;
        }
        s->n_rows++;
    }
    if (pgconn_query(s->side, migrations_superuser_sql(), on_superuser, NULL, s) < 0)
        fail_res(s, "cannot send a query", NULL);
}

static void read_rows(pgstore *s)
{
    if (pgconn_query(s->side, migrations_state_sql(), on_rows, NULL, s) < 0)
        fail_res(s, "cannot send a query", NULL);
}

static void on_bootstrap(pgconn *c, void *ctx, const PGresult *res)
{
    (void)c;
    pgstore *s = ctx;
    if (!ok_res(res)) {
        fail_res(s,
                 "cannot create the etl schema (the role needs CREATE on the database, or apply `pgsense "
                 "migrations --print-sql` as a superuser first)",
                 res);
        return;
    }
    read_rows(s);
}

pgstore *pgstore_new(pgconn *side, const char *slot)
{
    pgstore *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->side = side;
    s->slot = strdup(slot);
    s->slot_lit = s->slot ? PQescapeLiteral(pgconn_raw(side), slot, strlen(slot)) : NULL;
    if (!s->slot || !s->slot_lit) {
        pgstore_free(s);
        return NULL;
    }
    return s;
}

void pgstore_free(pgstore *s)
{
    if (!s)
        return;
    if (s->have_plan)
        migrations_plan_free(&s->plan);
    free(s->rows);
    free(s->slot);
    PQfreemem(s->slot_lit);
    free(s);
}

int pgstore_start(pgstore *s, pgstore_table_cb table_cb, pgstore_ready_cb ready_cb, void *ctx)
{
    s->table_cb = table_cb;
    s->ready_cb = ready_cb;
    s->ctx = ctx;
    return pgconn_query(s->side, migrations_bootstrap_sql(), on_bootstrap, NULL, s);
}

bool pgstore_schema_history(const pgstore *s)
{
    return s->history;
}

static void on_write(pgconn *c, void *ctx, const PGresult *res)
{
    (void)c;
    const char *what = ctx;
    if (!ok_res(res)) {
        char err[600];
        pgconn_result_error(res, err, sizeof(err));
        log_warn("store", "cannot save %s: %s", what, err);
    }
}

static void write_sql(pgstore *s, const char *sql, const char *what)
{
    if (pgconn_query(s->side, sql, on_write, NULL, (void *)what) < 0)
        log_warn("store", "cannot save %s: %s", what, pgconn_error(s->side));
}

void pgstore_slot_created(pgstore *s)
{
    char sql[256];
    snprintf(sql, sizeof(sql), "DELETE FROM etl.replication_state WHERE pipeline_id = %s", s->slot_lit);
    write_sql(s, sql, "the reset of table states for a new slot");
}

void pgstore_table_ready(pgstore *s, uint32_t relid, const char *schema, const char *table, uint64_t snapshot_lsn)
{
    PGconn *raw = pgconn_raw(s->side);
    char *sch = PQescapeLiteral(raw, schema, strlen(schema));
    char *tab = PQescapeLiteral(raw, table, strlen(table));
    char lsn[LSN_TEXT_MAX];
    lsn_format(snapshot_lsn, lsn);
    char sql[1024];
    if (sch && tab) {
        snprintf(sql, sizeof(sql),
                 "INSERT INTO etl.replication_state (pipeline_id, table_id, schema_name, table_name, state,"
                 " snapshot_lsn, updated_at) VALUES (%s, %u, %s, %s, 'ready', '%s', now())"
                 " ON CONFLICT (pipeline_id, table_id) DO UPDATE SET state = 'ready', schema_name = EXCLUDED.schema_name,"
                 " table_name = EXCLUDED.table_name, snapshot_lsn = EXCLUDED.snapshot_lsn, error_reason = NULL,"
                 " updated_at = now()",
                 s->slot_lit, relid, sch, tab, lsn);
        write_sql(s, sql, "a table state");
    }
    PQfreemem(sch);
    PQfreemem(tab);
}

void pgstore_confirmed(pgstore *s, uint64_t lsn)
{
    if (lsn == 0 || lsn == s->saved_lsn)
        return;
    s->saved_lsn = lsn;
    char l[LSN_TEXT_MAX], sql[512];
    lsn_format(lsn, l);
    snprintf(sql, sizeof(sql),
             "INSERT INTO etl.replication_state (pipeline_id, table_id, state, confirmed_lsn, updated_at)"
             " VALUES (%s, 0, 'ready', '%s', now()) ON CONFLICT (pipeline_id, table_id)"
             " DO UPDATE SET confirmed_lsn = EXCLUDED.confirmed_lsn, updated_at = now()",
             s->slot_lit, l);
    write_sql(s, sql, "the confirmed position");
}

void pgstore_schema_message(pgstore *s, uint64_t lsn, const char *json, size_t len)
{
    PGconn *raw = pgconn_raw(s->side);
    char *j = PQescapeLiteral(raw, json, len);
    if (!j) {
        log_warn("store", "cannot save a schema change: out of memory");
        return;
    }
    char l[LSN_TEXT_MAX];
    lsn_format(lsn, l);
    size_t cap = strlen(j) + 2048;
    char *sql = malloc(cap);
    if (sql) {
        /* The message holds names and types only (etl.emit_schema_change_messages), never row data. */
        snprintf(sql, cap,
                 "WITH m AS (SELECT %s::jsonb AS j), s AS ("
                 " INSERT INTO etl.table_schemas (pipeline_id, table_id, schema_name, table_name, snapshot_id)"
                 " SELECT %s, (j->>'table_id')::oid, j->>'schema_name', j->>'table_name', '%s' FROM m"
                 " ON CONFLICT (pipeline_id, table_id, snapshot_id) DO NOTHING RETURNING id)"
                 " INSERT INTO etl.table_columns (table_schema_id, column_name, column_order, type_oid, type_name,"
                 " type_modifier, nullable, primary_key_ordinal)"
                 " SELECT s.id, c->>'column_name', (c->>'column_order')::int, (c->>'type_oid')::oid,"
                 " c->>'type_name', (c->>'type_modifier')::int, (c->>'nullable')::boolean,"
                 " (c->>'primary_key_ordinal')::int FROM s, m, jsonb_array_elements(m.j->'columns') c",
                 j, s->slot_lit, l);
        write_sql(s, sql, "a schema change");
        free(sql);
    }
    PQfreemem(j);
}
