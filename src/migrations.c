/*
 * migrations: the embedded migration files turned into versions, checksums
 * and SQL (see header). Owns the static migration table; it never connects
 * and never logs: callers print the warnings and errors it returns.
 */
#include "migrations.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SUPERUSER_MARK "requires: superuser"
#define MAX_MIGRATIONS 64

static migration table[MAX_MIGRATIONS];
static size_t table_n;
static bool table_built, table_failed;

/* "20250827000000_schema_storage.sql" -> version, "schema storage" (sqlx's rule). */
static int parse_name(const char *name, migration *m)
{
    const char *us = strchr(name, '_');
    size_t len = strlen(name);
    if (!us || us == name || us - name > 18 || len < 5 || strcmp(name + len - 4, ".sql") != 0)
        return -1;
    int64_t v = 0;
    for (const char *p = name; p < us; p++) {
        if (!isdigit((unsigned char)*p))
            return -1;
        v = v * 10 + (*p - '0');
    }
    size_t dlen = (size_t)(name + len - 4 - (us + 1));
    if (dlen == 0 || dlen >= sizeof(m->description))
        return -1;
    for (size_t i = 0; i < dlen; i++)
        m->description[i] = us[1 + i] == '_' ? ' ' : us[1 + i];
    m->description[dlen] = '\0';
    m->version = v;
    return 0;
}

static int sha384(const char *data, size_t len, unsigned char out[MIGRATIONS_CHECKSUM_LEN])
{
    unsigned int n = 0;
    if (EVP_Digest(data, len, out, &n, EVP_sha384(), NULL) != 1 || n != MIGRATIONS_CHECKSUM_LEN)
        return -1;
    return 0;
}

/* The superuser mark must be in a comment line of the file's header. */
static bool needs_superuser(const char *sql)
{
    const char *p = sql;
    while (p[0] == '-' && p[1] == '-') {
        const char *eol = strchr(p, '\n');
        size_t n = eol ? (size_t)(eol - p) : strlen(p);
        for (size_t i = 0; i + sizeof(SUPERUSER_MARK) - 1 <= n; i++)
            if (memcmp(p + i, SUPERUSER_MARK, sizeof(SUPERUSER_MARK) - 1) == 0)
                return true;
        if (!eol)
            break;
        p = eol + 1;
    }
    return false;
}

static int cmp_version(const void *a, const void *b)
{
    const migration *x = a, *y = b;
    return x->version < y->version ? -1 : x->version > y->version;
}

const migration *migrations_list(size_t *n)
{
    if (!table_built) {
        table_built = true;
        table_failed = migrations_n_files > MAX_MIGRATIONS;
        for (size_t i = 0; !table_failed && i < migrations_n_files; i++) {
            migration *m = &table[i];
            const migrations_file *f = &migrations_files[i];
            if (parse_name(f->name, m) < 0 || sha384(f->sql, f->len, m->checksum) < 0) {
                table_failed = true;
                break;
            }
            m->sql = f->sql;
            m->sql_len = f->len;
            m->needs_superuser = needs_superuser(f->sql);
        }
        if (!table_failed) {
            table_n = migrations_n_files;
            qsort(table, table_n, sizeof(table[0]), cmp_version);
        }
    }
    *n = table_failed ? 0 : table_n;
    return table_failed ? NULL : table;
}

const migration *migrations_find(int64_t version)
{
    size_t n;
    const migration *ms = migrations_list(&n);
    for (size_t i = 0; i < n; i++)
        if (ms[i].version == version)
            return &ms[i];
    return NULL;
}

void migrations_hex(const unsigned char *in, size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[in[i] >> 4];
        out[2 * i + 1] = hex[in[i] & 15];
    }
    out[2 * n] = '\0';
}

/* ---- the fixed queries ---- */

/* sqlx's own table, created outside the migrations as sqlx does. */
#define SQLX_TABLE_DDL                                                                                           \
    "CREATE TABLE etl._sqlx_migrations (version bigint PRIMARY KEY, description text NOT NULL, "                \
    "installed_on timestamptz NOT NULL DEFAULT now(), success boolean NOT NULL, checksum bytea NOT NULL, "     \
    "execution_time bigint NOT NULL)"

const char *migrations_bootstrap_sql(void)
{
    return "DO $pgsense$ BEGIN "
           "IF pg_catalog.to_regnamespace('etl') IS NULL THEN CREATE SCHEMA etl; END IF; "
           "IF pg_catalog.to_regclass('etl._sqlx_migrations') IS NULL THEN " SQLX_TABLE_DDL "; END IF; "
           "END $pgsense$";
}

const char *migrations_state_sql(void)
{
    return "SELECT version, pg_catalog.encode(checksum, 'hex'), success FROM etl._sqlx_migrations ORDER BY version";
}

const char *migrations_superuser_sql(void)
{
    return "SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user";
}

/* ---- rows and plan ---- */

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int migrations_row_parse(const char *version, const char *checksum_hex, const char *success, migrations_row *row,
                         char *err, size_t errlen)
{
    memset(row, 0, sizeof(*row));
    char *end = NULL;
    errno = 0;
    long long v = version ? strtoll(version, &end, 10) : 0;
    if (!version || !*version || errno || *end) {
        snprintf(err, errlen, "etl._sqlx_migrations: version \"%.40s\" is not an integer", version ? version : "");
        return -1;
    }
    row->version = v;
    size_t n = checksum_hex ? strlen(checksum_hex) : 0;
    if (n % 2) {
        snprintf(err, errlen, "etl._sqlx_migrations: version %lld has a malformed checksum", v);
        return -1;
    }
    /* a checksum of another length is kept as a mismatch, not a parse error */
    row->checksum_len = n / 2;
    for (size_t i = 0; i < n / 2; i++) {
        int hi = hexval(checksum_hex[2 * i]), lo = hexval(checksum_hex[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            snprintf(err, errlen, "etl._sqlx_migrations: version %lld has a malformed checksum", v);
            return -1;
        }
        if (i < MIGRATIONS_CHECKSUM_LEN)
            row->checksum[i] = (unsigned char)(hi << 4 | lo);
    }
    row->success = success && (success[0] == 't' || success[0] == '1');
    return 0;
}

static int plan_warn(migrations_plan_t *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int plan_warn(migrations_plan_t *p, const char *fmt, ...)
{
    char buf[MIGRATIONS_ERR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    char **w = realloc(p->warnings, (p->n_warnings + 1) * sizeof(*w));
    if (!w)
        return -1;
    p->warnings = w;
    if (!(w[p->n_warnings] = strdup(buf)))
        return -1;
    p->n_warnings++;
    return 0;
}

int migrations_plan(const migrations_row *rows, size_t n_rows, bool superuser, migrations_plan_t *plan)
{
    size_t n;
    memset(plan, 0, sizeof(*plan));
    const migration *ms = migrations_list(&n);
    if (!ms) {
        snprintf(plan->error, sizeof(plan->error), "cannot build the migration list (libcrypto SHA-384 failed)");
        return -1;
    }
    /* every recorded row first: a mismatch stops everything, even a later one */
    for (size_t r = 0; r < n_rows; r++) {
        const migrations_row *row = &rows[r];
        const migration *m = migrations_find(row->version);
        if (!m) {
            if (plan_warn(plan,
                          "etl._sqlx_migrations records migration %" PRId64
                          ", which this pgsense does not know (applied by a newer version?); ignored",
                          row->version) < 0)
                goto oom;
            continue;
        }
        if (!row->success) {
            snprintf(plan->error, sizeof(plan->error),
                     "migration %" PRId64 " (%s) is recorded in etl._sqlx_migrations as failed (success = false): "
                     "check the etl schema by hand, then DELETE FROM etl._sqlx_migrations WHERE version = %" PRId64
                     "; and restart",
                     m->version, m->description, m->version);
            return -1;
        }
        if (row->checksum_len != MIGRATIONS_CHECKSUM_LEN ||
            memcmp(row->checksum, m->checksum, MIGRATIONS_CHECKSUM_LEN) != 0) {
            char have[2 * MIGRATIONS_CHECKSUM_LEN + 1], want[2 * MIGRATIONS_CHECKSUM_LEN + 1];
            migrations_hex(row->checksum,
                           row->checksum_len < MIGRATIONS_CHECKSUM_LEN ? row->checksum_len : MIGRATIONS_CHECKSUM_LEN,
                           have);
            migrations_hex(m->checksum, MIGRATIONS_CHECKSUM_LEN, want);
            snprintf(plan->error, sizeof(plan->error),
                     "migration %" PRId64 " in etl._sqlx_migrations has checksum %s but pgsense's file has %s: "
                     "the etl schema was changed by hand or by another version; restore it (or drop schema etl, "
                     "which re-snapshots every table) and restart",
                     m->version, row->checksum_len ? have : "(empty)", want);
            return -1;
        }
    }
    for (size_t i = 0; i < n; i++) {
        const migration *m = &ms[i];
        bool applied = false;
        for (size_t r = 0; r < n_rows && !applied; r++)
            applied = rows[r].version == m->version;
        if (applied)
            continue;
        if (m->needs_superuser && !superuser) {
            if (plan_warn(plan,
                          "event trigger migration %" PRId64 " (%s) skipped: needs a superuser; scanning goes on "
                          "without schema history; apply it later with `pgsense migrations --print-sql | psql` as "
                          "a superuser",
                          m->version, m->description) < 0)
                goto oom;
            continue;
        }
        migrations_step *s = realloc(plan->steps, (plan->n_steps + 1) * sizeof(*s));
        if (!s)
            goto oom;
        plan->steps = s;
        s[plan->n_steps].m = m;
        if (!(s[plan->n_steps].sql = migrations_apply_sql(m)))
            goto oom;
        plan->n_steps++;
    }
    return 0;
oom:
    snprintf(plan->error, sizeof(plan->error), "out of memory planning the etl migrations");
    return -1;
}

void migrations_plan_free(migrations_plan_t *plan)
{
    for (size_t i = 0; i < plan->n_steps; i++)
        free(plan->steps[i].sql);
    free(plan->steps);
    for (size_t i = 0; i < plan->n_warnings; i++)
        free(plan->warnings[i]);
    free(plan->warnings);
    plan->steps = NULL;
    plan->warnings = NULL;
    plan->n_steps = plan->n_warnings = 0;
}

/* ---- SQL text ---- */

typedef struct {
    char *s;
    size_t len, cap;
    bool oom;
} strbuf;

static void sb_add(strbuf *b, const char *p, size_t n)
{
    if (b->oom)
        return;
    if (b->cap - b->len <= n) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap - b->len <= n) {
            if (cap > SIZE_MAX / 2) {
                b->oom = true;
                return;
            }
            cap *= 2;
        }
        char *s = realloc(b->s, cap);
        if (!s) {
            b->oom = true;
            return;
        }
        b->s = s;
        b->cap = cap;
    }
    memcpy(b->s + b->len, p, n);
    b->len += n;
    b->s[b->len] = '\0';
}

static void sb_printf(strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void sb_printf(strbuf *b, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(buf)) {
        b->oom = true; /* never happens with our fixed formats; refuse rather than truncate */
        return;
    }
    sb_add(b, buf, (size_t)n);
}

static char *sb_finish(strbuf *b)
{
    if (b->oom || !b->s) {
        free(b->s);
        return NULL;
    }
    return b->s;
}

/* The INSERT recording m; descriptions are [a-z0-9 ] (file names), so quoting is plain. */
static void add_record(strbuf *b, const migration *m)
{
    char hex[2 * MIGRATIONS_CHECKSUM_LEN + 1];
    migrations_hex(m->checksum, MIGRATIONS_CHECKSUM_LEN, hex);
    sb_printf(b,
              "INSERT INTO etl._sqlx_migrations (version, description, success, checksum, execution_time)\n"
              "VALUES (%" PRId64 ", '%s', true, pg_catalog.decode('%s', 'hex'),\n"
              "        (extract(epoch FROM pg_catalog.clock_timestamp() - pg_catalog.now()) * 1e9)::bigint);\n",
              m->version, m->description, hex);
}

static bool plain_description(const migration *m)
{
    for (const char *p = m->description; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != ' ')
            return false;
    return true;
}

char *migrations_apply_sql(const migration *m)
{
    strbuf b = {0};
    if (!plain_description(m))
        return NULL;
    sb_printf(&b, "SELECT pg_catalog.pg_advisory_xact_lock(%lld);\n", MIGRATIONS_LOCK_KEY);
    sb_add(&b, m->sql, m->sql_len);
    add_record(&b, m);
    return sb_finish(&b);
}

char *migrations_psql_script(void)
{
    size_t n;
    const migration *ms = migrations_list(&n);
    if (!ms)
        return NULL;
    strbuf b = {0};
    sb_printf(&b, "-- pgsense: the etl schema for store = postgres (%zu migrations).\n"
                  "-- Run as a superuser in the scanned database: pgsense migrations --print-sql | psql -d DB\n"
                  "-- Safe to run again: applied versions are skipped; a changed one stops the script.\n"
                  "\\set ON_ERROR_STOP on\n\n",
              n);
    sb_printf(&b, "%s;\n\n", migrations_bootstrap_sql());
    for (size_t i = 0; i < n; i++) {
        const migration *m = &ms[i];
        char hex[2 * MIGRATIONS_CHECKSUM_LEN + 1];
        if (!plain_description(m)) {
            free(b.s);
            return NULL;
        }
        migrations_hex(m->checksum, MIGRATIONS_CHECKSUM_LEN, hex);
        sb_printf(&b, "-- migration %" PRId64 " %s%s\n", m->version, m->description,
                  m->needs_superuser ? " (needs a superuser)" : "");
        sb_printf(&b,
                  "DO $pgsense$ BEGIN IF EXISTS (SELECT 1 FROM etl._sqlx_migrations WHERE version = %" PRId64
                  " AND (NOT success OR checksum <> pg_catalog.decode('%s', 'hex'))) THEN RAISE EXCEPTION "
                  "'migration %" PRId64 " in etl._sqlx_migrations is failed or has another checksum than "
                  "pgsense''s file: the etl schema was changed by hand or by another version'; END IF; END "
                  "$pgsense$;\n",
                  m->version, hex, m->version);
        sb_printf(&b,
                  "SELECT NOT EXISTS (SELECT 1 FROM etl._sqlx_migrations WHERE version = %" PRId64
                  ") AS pgsense_apply \\gset\n"
                  "\\if :pgsense_apply\n"
                  "BEGIN;\n",
                  m->version);
        sb_add(&b, m->sql, m->sql_len);
        add_record(&b, m);
        sb_printf(&b, "COMMIT;\n\\else\n\\echo migration %" PRId64 " already applied\n\\endif\n\n", m->version);
    }
    return sb_finish(&b);
}
