/* catalog: SQL for pg_catalog and parsing of the answers (see header). */
#include "catalog.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lsn.h"

static int fmt(char *buf, size_t cap, const char *f, ...) __attribute__((format(printf, 3, 4)));
static int fmt(char *buf, size_t cap, const char *f, ...)
{
    va_list ap;
    va_start(ap, f);
    int n = vsnprintf(buf, cap, f, ap);
    va_end(ap);
    return (n < 0 || (size_t)n >= cap) ? -1 : 0;
}

/* A quoted literal for SQL, or NULL. */
static char *lit(PGconn *conn, const char *s)
{
    return PQescapeLiteral(conn, s, strlen(s));
}

int catalog_sql_checks(PGconn *conn, const char *publication, const char *slot, char *buf, size_t cap)
{
    char *pub = lit(conn, publication);
    char *sl = lit(conn, slot);
    int r = -1;
    if (pub && sl)
        r = fmt(buf, cap,
                "SELECT pg_catalog.current_setting('wal_level'),"
                " EXISTS (SELECT 1 FROM pg_catalog.pg_publication WHERE pubname = %s),"
                " COALESCE((SELECT pubviaroot FROM pg_catalog.pg_publication WHERE pubname = %s), false),"
                " (SELECT rolreplication OR rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user)"
                "  OR EXISTS (SELECT 1 FROM pg_catalog.pg_roles r WHERE r.rolname = 'rds_replication'"
                "             AND pg_catalog.pg_has_role(current_user, r.oid, 'MEMBER')),"
                " current_user,"
                " s.active_pid, s.wal_status, s.plugin,"
                " s.slot_name IS NOT NULL AND s.database IS DISTINCT FROM pg_catalog.current_database()"
                " FROM (SELECT 1) AS one"
                " LEFT JOIN pg_catalog.pg_replication_slots s ON s.slot_name = %s",
                pub, pub, sl);
    PQfreemem(pub);
    PQfreemem(sl);
    return r;
}

int catalog_sql_tables(PGconn *conn, const char *publication, char *buf, size_t cap)
{
    char *pub = lit(conn, publication);
    if (!pub)
        return -1;
    int r = fmt(buf, cap,
                "SELECT c.oid, t.schemaname, t.tablename, c.relkind, t.attnames, t.rowfilter"
                " FROM pg_catalog.pg_publication_tables t"
                " JOIN pg_catalog.pg_namespace n ON n.nspname = t.schemaname"
                " JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid AND c.relname = t.tablename"
                " WHERE t.pubname = %s ORDER BY 2, 3",
                pub);
    PQfreemem(pub);
    return r;
}

int catalog_sql_columns(uint32_t relid, char *buf, size_t cap)
{
    return fmt(buf, cap,
               "SELECT a.attname, a.atttypid,"
               " EXISTS (SELECT 1 FROM pg_catalog.pg_index i WHERE i.indrelid = a.attrelid"
               "         AND i.indisprimary AND a.attnum = ANY (i.indkey)),"
               " EXISTS (SELECT 1 FROM pg_catalog.pg_index i WHERE i.indrelid = a.attrelid"
               "         AND i.indisreplident AND a.attnum = ANY (i.indkey))"
               " FROM pg_catalog.pg_attribute a"
               " WHERE a.attrelid = %u AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
               relid);
}

int catalog_sql_types(const uint32_t *oids, size_t n, char *buf, size_t cap)
{
    size_t pos = 0;
    if (fmt(buf, cap,
            "WITH RECURSIVE r(oid, under) AS ("
            " SELECT t.oid, CASE WHEN t.typtype = 'd' THEN t.typbasetype"
            "  WHEN t.typcategory = 'A' THEN t.typelem ELSE 0 END"
            " FROM pg_catalog.pg_type t WHERE t.oid IN (") < 0)
        return -1;
    pos = strlen(buf);
    for (size_t i = 0; i < n; i++) {
        if (fmt(buf + pos, cap - pos, "%s%u", i ? "," : "", oids[i]) < 0)
            return -1;
        pos += strlen(buf + pos);
    }
    return fmt(buf + pos, cap - pos,
               ") UNION SELECT t.oid, CASE WHEN t.typtype = 'd' THEN t.typbasetype"
               "  WHEN t.typcategory = 'A' THEN t.typelem ELSE 0 END"
               " FROM pg_catalog.pg_type t JOIN r ON t.oid = r.under WHERE r.under >= 16384)"
               " SELECT oid, under FROM r");
}

int catalog_sql_slot_stats(PGconn *conn, const char *slot, char *buf, size_t cap)
{
    char *sl = lit(conn, slot);
    if (!sl)
        return -1;
    int r = fmt(buf, cap,
                "SELECT pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_lsn(), restart_lsn)::int8,"
                " pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_lsn(), confirmed_flush_lsn)::int8,"
                " confirmed_flush_lsn, pg_catalog.pg_current_wal_lsn(), wal_status"
                " FROM pg_catalog.pg_replication_slots WHERE slot_name = %s",
                sl);
    PQfreemem(sl);
    return r;
}

static int expect(const PGresult *res, int ncols, char *err, size_t errlen)
{
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK || PQnfields(res) != ncols) {
        snprintf(err, errlen, "unexpected catalog answer");
        return -1;
    }
    return 0;
}

static bool tbool(const PGresult *res, int row, int col)
{
    const char *v = PQgetvalue(res, row, col);
    return v && v[0] == 't';
}

static void copy_field(char *dst, size_t cap, const PGresult *res, int row, int col)
{
    snprintf(dst, cap, "%s", PQgetisnull(res, row, col) ? "" : PQgetvalue(res, row, col));
}

int catalog_parse_checks(const PGresult *res, catalog_checks *out, char *err, size_t errlen)
{
    if (expect(res, 9, err, errlen) < 0 || PQntuples(res) != 1)
        return -1;
    memset(out, 0, sizeof(*out));
    copy_field(out->wal_level, sizeof(out->wal_level), res, 0, 0);
    out->publication_exists = tbool(res, 0, 1);
    out->pubviaroot = tbool(res, 0, 2);
    out->can_replicate = tbool(res, 0, 3);
    copy_field(out->current_user, sizeof(out->current_user), res, 0, 4);
    out->slot_exists = !PQgetisnull(res, 0, 7);
    out->slot_active_pid = PQgetisnull(res, 0, 5) ? 0 : atoi(PQgetvalue(res, 0, 5));
    copy_field(out->slot_wal_status, sizeof(out->slot_wal_status), res, 0, 6);
    copy_field(out->slot_plugin, sizeof(out->slot_plugin), res, 0, 7);
    out->slot_other_db = tbool(res, 0, 8);
    return 0;
}

/* Parse {a,"b c",d} (PostgreSQL array output of names). */
int catalog_parse_name_array(const char *s, char ***items, size_t *n)
{
    *items = NULL;
    *n = 0;
    size_t len = strlen(s);
    if (len < 2 || s[0] != '{' || s[len - 1] != '}')
        return -1;
    char **v = calloc(len, sizeof(char *)); /* never more items than bytes */
    char *tmp = malloc(len + 1);
    if (!v || !tmp) {
        free(v);
        free(tmp);
        return -1;
    }
    size_t count = 0;
    const char *p = s + 1;
    while (*p && *p != '}') {
        size_t t = 0;
        if (*p == '"') {
            p++;
            while (*p && *p != '"') {
                if (*p == '\\' && p[1])
                    p++;
                tmp[t++] = *p++;
            }
            if (*p != '"')
                goto fail;
            p++;
        } else {
            while (*p && *p != ',' && *p != '}')
                tmp[t++] = *p++;
        }
        tmp[t] = '\0';
        v[count] = strdup(tmp);
        if (!v[count])
            goto fail;
        count++;
        if (*p == ',')
            p++;
    }
    free(tmp);
    *items = v;
    *n = count;
    return 0;
fail:
    for (size_t i = 0; i < count; i++)
        free(v[i]);
    free(v);
    free(tmp);
    return -1;
}

int catalog_parse_tables(const PGresult *res, catalog_tables *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    if (expect(res, 6, err, errlen) < 0)
        return -1;
    int n = PQntuples(res);
    out->items = calloc(n ? (size_t)n : 1, sizeof(catalog_table));
    if (!out->items)
        goto nomem;
    for (int i = 0; i < n; i++) {
        catalog_table *t = &out->items[i];
        out->n++;
        t->relid = (uint32_t)strtoul(PQgetvalue(res, i, 0), NULL, 10);
        t->schema = strdup(PQgetvalue(res, i, 1));
        t->table = strdup(PQgetvalue(res, i, 2));
        t->relkind = PQgetvalue(res, i, 3)[0];
        if (!t->schema || !t->table)
            goto nomem;
        if (!PQgetisnull(res, i, 4) &&
            catalog_parse_name_array(PQgetvalue(res, i, 4), &t->attnames, &t->n_attnames) < 0) {
            snprintf(err, errlen, "cannot parse the column list of %s.%s", t->schema, t->table);
            catalog_tables_free(out);
            return -1;
        }
        if (!PQgetisnull(res, i, 5)) {
            t->rowfilter = strdup(PQgetvalue(res, i, 5));
            if (!t->rowfilter)
                goto nomem;
        }
    }
    return 0;
nomem:
    snprintf(err, errlen, "out of memory");
    catalog_tables_free(out);
    return -1;
}

void catalog_tables_free(catalog_tables *t)
{
    for (size_t i = 0; i < t->n; i++) {
        catalog_table *x = &t->items[i];
        free(x->schema);
        free(x->table);
        for (size_t k = 0; k < x->n_attnames; k++)
            free(x->attnames[k]);
        free(x->attnames);
        free(x->rowfilter);
    }
    free(t->items);
    t->items = NULL;
    t->n = 0;
}

int catalog_parse_columns(const PGresult *res, catalog_columns *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    if (expect(res, 4, err, errlen) < 0)
        return -1;
    int n = PQntuples(res);
    out->cols = calloc(n ? (size_t)n : 1, sizeof(catalog_column));
    if (!out->cols)
        goto nomem;
    for (int i = 0; i < n; i++) {
        catalog_column *c = &out->cols[i];
        c->name = strdup(PQgetvalue(res, i, 0));
        if (!c->name)
            goto nomem;
        out->n++;
        c->type_oid = (uint32_t)strtoul(PQgetvalue(res, i, 1), NULL, 10);
        c->pk = tbool(res, i, 2);
        c->replident = tbool(res, i, 3);
        if (c->pk)
            out->has_pk = true;
    }
    return 0;
nomem:
    snprintf(err, errlen, "out of memory");
    catalog_columns_free(out);
    return -1;
}

void catalog_columns_free(catalog_columns *c)
{
    for (size_t i = 0; i < c->n; i++)
        free(c->cols[i].name);
    free(c->cols);
    c->cols = NULL;
    c->n = 0;
}

int catalog_parse_slot_stats(const PGresult *res, catalog_slot_stats *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    if (expect(res, 5, err, errlen) < 0)
        return -1;
    if (PQntuples(res) == 0)
        return 0;
    out->found = true;
    out->retained_bytes = PQgetisnull(res, 0, 0) ? -1 : strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    out->lag_bytes = PQgetisnull(res, 0, 1) ? -1 : strtoll(PQgetvalue(res, 0, 1), NULL, 10);
    if (!PQgetisnull(res, 0, 2) && !lsn_parse(PQgetvalue(res, 0, 2), &out->confirmed_lsn))
        out->confirmed_lsn = 0;
    if (!lsn_parse(PQgetvalue(res, 0, 3), &out->current_lsn))
        out->current_lsn = 0;
    copy_field(out->wal_status, sizeof(out->wal_status), res, 0, 4);
    return 0;
}

int catalog_parse_types(const PGresult *res, catalog_typemap *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    if (expect(res, 2, err, errlen) < 0)
        return -1;
    int n = PQntuples(res);
    out->oid = calloc(n ? (size_t)n : 1, sizeof(uint32_t));
    out->under = calloc(n ? (size_t)n : 1, sizeof(uint32_t));
    if (!out->oid || !out->under) {
        catalog_typemap_free(out);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (int i = 0; i < n; i++) {
        out->oid[i] = (uint32_t)strtoul(PQgetvalue(res, i, 0), NULL, 10);
        out->under[i] = (uint32_t)strtoul(PQgetvalue(res, i, 1), NULL, 10);
    }
    out->n = (size_t)n;
    return 0;
}

void catalog_typemap_free(catalog_typemap *m)
{
    free(m->oid);
    free(m->under);
    m->oid = m->under = NULL;
    m->n = 0;
}

int catalog_typemap_resolve(void *ctx, uint32_t oid, uint32_t *under)
{
    const catalog_typemap *m = ctx;
    for (size_t i = 0; i < m->n; i++) {
        if (m->oid[i] == oid) {
            *under = m->under[i];
            return 0;
        }
    }
    return -1;
}

char *catalog_qualified_name(PGconn *conn, const char *schema, const char *table)
{
    char *s = PQescapeIdentifier(conn, schema, strlen(schema));
    char *t = PQescapeIdentifier(conn, table, strlen(table));
    char *out = NULL;
    if (s && t) {
        size_t n = strlen(s) + strlen(t) + 2;
        out = malloc(n);
        if (out)
            snprintf(out, n, "%s.%s", s, t);
    }
    PQfreemem(s);
    PQfreemem(t);
    return out;
}
