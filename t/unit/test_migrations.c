/*
 * Unit tests for src/migrations.c: versions, descriptions and SHA-384
 * checksums of the embedded files (against the files on disk and against
 * sha384sum), and the plan for fresh, partial, tampered and complete databases.
 */
#include <criterion/criterion.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "migrations.h"

#ifndef MIGRATIONS_DIR
#error MIGRATIONS_DIR must name src/migrations
#endif

static const int64_t V_BASE = 20250827000000LL, V_DDL = 20260415090000LL, V_MSG = 20260415100000LL;

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot open %s", path);
    char *buf = NULL;
    size_t cap = 0, n = 0;
    for (;;) {
        if (cap - n < 4096) {
            cap = cap ? cap * 2 : 8192;
            buf = realloc(buf, cap + 1);
            cr_assert_not_null(buf);
        }
        size_t r = fread(buf + n, 1, cap - n, f);
        n += r;
        if (r == 0)
            break;
    }
    fclose(f);
    buf[n] = '\0';
    *len = n;
    return buf;
}

static void hex384(const char *data, size_t len, char out[97])
{
    unsigned char md[48];
    unsigned int n = 0;
    cr_assert_eq(EVP_Digest(data, len, md, &n, EVP_sha384(), NULL), 1);
    migrations_hex(md, n, out);
}

static migrations_row row_of(const migration *m)
{
    migrations_row r = {.version = m->version, .checksum_len = 48, .success = true};
    memcpy(r.checksum, m->checksum, 48);
    return r;
}

Test(migrations, list_versions_descriptions_superuser)
{
    size_t n;
    const migration *ms = migrations_list(&n);
    cr_assert_not_null(ms);
    cr_assert_eq(n, 3);
    cr_assert_eq(ms[0].version, V_BASE);
    cr_assert_str_eq(ms[0].description, "base");
    cr_assert_eq(ms[1].version, V_DDL);
    cr_assert_str_eq(ms[1].description, "schema storage ddl support");
    cr_assert_eq(ms[2].version, V_MSG);
    cr_assert_str_eq(ms[2].description, "schema change messages");
    cr_assert(!ms[0].needs_superuser && !ms[1].needs_superuser && ms[2].needs_superuser);
    cr_assert_eq(migrations_find(V_DDL), &ms[1]);
    cr_assert_null(migrations_find(1));
}

Test(migrations, embedded_bytes_and_checksums_equal_the_files)
{
    static const char *const files[] = {"20250827000000_base.sql", "20260415090000_schema_storage_ddl_support.sql",
                                        "20260415100000_schema_change_messages.sql"};
    size_t n;
    const migration *ms = migrations_list(&n);
    for (size_t i = 0; i < 3; i++) {
        char path[1024], want[97], have[97];
        snprintf(path, sizeof(path), "%s/%s", MIGRATIONS_DIR, files[i]);
        size_t len;
        char *text = slurp(path, &len);
        cr_assert_eq(ms[i].sql_len, len, "%s: embedded %zu bytes, file %zu", files[i], ms[i].sql_len, len);
        cr_assert(memcmp(ms[i].sql, text, len) == 0, "%s: embedded text differs from the file", files[i]);
        hex384(text, len, want);
        migrations_hex(ms[i].checksum, 48, have);
        cr_assert_str_eq(have, want, "%s", files[i]);

        /* and what an operator would compute */
        char cmd[1200], line[256] = "";
        snprintf(cmd, sizeof(cmd), "sha384sum '%s'", path);
        FILE *p = popen(cmd, "r");
        cr_assert_not_null(p);
        cr_assert_not_null(fgets(line, sizeof(line), p));
        cr_assert_eq(pclose(p), 0);
        cr_assert(strncmp(line, have, 96) == 0, "%s: sha384sum %.96s, pgsense %s", files[i], line, have);
        free(text);
    }
    /* stable across calls */
    char a[97], b[97];
    migrations_hex(ms[0].checksum, 48, a);
    ms = migrations_list(&n);
    migrations_hex(ms[0].checksum, 48, b);
    cr_assert_str_eq(a, b);
}

Test(migrations, fresh_database_as_superuser_gets_all)
{
    migrations_plan_t p;
    cr_assert_eq(migrations_plan(NULL, 0, true, &p), 0);
    cr_assert_eq(p.n_steps, 3);
    cr_assert_eq(p.n_warnings, 0);
    cr_assert_eq(p.steps[0].m->version, V_BASE);
    cr_assert_eq(p.steps[2].m->version, V_MSG);
    cr_assert_not_null(strstr(p.steps[0].sql, "pg_advisory_xact_lock"));
    cr_assert_not_null(strstr(p.steps[0].sql, "INSERT INTO etl._sqlx_migrations"));
    cr_assert_null(strstr(p.steps[0].sql, "BEGIN;"), "one implicit transaction, no BEGIN");
    char hex[97];
    migrations_hex(p.steps[1].m->checksum, 48, hex);
    cr_assert_not_null(strstr(p.steps[1].sql, hex));
    migrations_plan_free(&p);
}

Test(migrations, non_superuser_skips_the_event_trigger_with_a_warning)
{
    migrations_plan_t p;
    cr_assert_eq(migrations_plan(NULL, 0, false, &p), 0);
    cr_assert_eq(p.n_steps, 2);
    cr_assert_eq(p.steps[1].m->version, V_DDL);
    cr_assert_eq(p.n_warnings, 1);
    cr_assert_not_null(strstr(p.warnings[0], "event trigger migration 20260415100000"));
    cr_assert_not_null(strstr(p.warnings[0], "skipped: needs a superuser"));
    cr_assert_not_null(strstr(p.warnings[0], "pgsense migrations --print-sql | psql"));
    migrations_plan_free(&p);

    /* later, a superuser run applies just the third */
    size_t n;
    const migration *ms = migrations_list(&n);
    migrations_row rows[2] = {row_of(&ms[1]), row_of(&ms[0])};
    cr_assert_eq(migrations_plan(rows, 2, true, &p), 0);
    cr_assert_eq(p.n_steps, 1);
    cr_assert_eq(p.steps[0].m->version, V_MSG);
    migrations_plan_free(&p);
}

Test(migrations, tampered_checksum_is_an_error)
{
    size_t n;
    const migration *ms = migrations_list(&n);
    migrations_row rows[2] = {row_of(&ms[0]), row_of(&ms[1])};
    rows[1].checksum[5] ^= 1;
    migrations_plan_t p;
    cr_assert_eq(migrations_plan(rows, 2, true, &p), -1);
    char want[97];
    migrations_hex(ms[1].checksum, 48, want);
    cr_assert_not_null(strstr(p.error, "migration 20260415090000 in etl._sqlx_migrations has checksum "));
    cr_assert_not_null(strstr(p.error, want));
    cr_assert_not_null(strstr(p.error, "changed by hand or by another version"));
    cr_assert_eq(p.n_steps, 0);
    migrations_plan_free(&p);

    /* a short checksum, and a failed row */
    migrations_row r = row_of(&ms[0]);
    r.checksum_len = 32;
    cr_assert_eq(migrations_plan(&r, 1, true, &p), -1);
    migrations_plan_free(&p);
    r = row_of(&ms[0]);
    r.success = false;
    cr_assert_eq(migrations_plan(&r, 1, true, &p), -1);
    cr_assert_not_null(strstr(p.error, "success = false"));
    migrations_plan_free(&p);
}

Test(migrations, all_applied_needs_nothing)
{
    size_t n;
    const migration *ms = migrations_list(&n);
    migrations_row rows[4] = {row_of(&ms[0]), row_of(&ms[1]), row_of(&ms[2]), {.version = 20990101000000LL}};
    migrations_plan_t p;
    for (int su = 0; su < 2; su++) {
        cr_assert_eq(migrations_plan(rows, 3, su, &p), 0);
        cr_assert_eq(p.n_steps, 0);
        cr_assert_eq(p.n_warnings, 0);
        migrations_plan_free(&p);
    }
    /* a version from a newer pgsense: warned about, not fatal */
    rows[3].checksum_len = 48;
    rows[3].success = true;
    cr_assert_eq(migrations_plan(rows, 4, false, &p), 0);
    cr_assert_eq(p.n_steps, 0);
    cr_assert_eq(p.n_warnings, 1);
    cr_assert_not_null(strstr(p.warnings[0], "20990101000000"));
    migrations_plan_free(&p);
}

Test(migrations, row_parse)
{
    migrations_row r;
    char err[256], hex[97];
    const migration *m = migrations_find(V_BASE);
    migrations_hex(m->checksum, 48, hex);
    cr_assert_eq(migrations_row_parse("20250827000000", hex, "t", &r, err, sizeof(err)), 0);
    cr_assert_eq(r.version, V_BASE);
    cr_assert_eq(r.checksum_len, 48);
    cr_assert(r.success);
    cr_assert(memcmp(r.checksum, m->checksum, 48) == 0);
    cr_assert_eq(migrations_row_parse("x1", hex, "t", &r, err, sizeof(err)), -1);
    cr_assert_eq(migrations_row_parse("1", "abc", "t", &r, err, sizeof(err)), -1);
    cr_assert_eq(migrations_row_parse("1", "zz", "t", &r, err, sizeof(err)), -1);
    cr_assert_eq(migrations_row_parse("1", "", "f", &r, err, sizeof(err)), 0);
    cr_assert(!r.success && r.checksum_len == 0);
}

Test(migrations, psql_script_shape)
{
    char *s = migrations_psql_script();
    cr_assert_not_null(s);
    cr_assert_not_null(strstr(s, "\\set ON_ERROR_STOP on"));
    cr_assert_not_null(strstr(s, "CREATE TABLE etl._sqlx_migrations"));
    size_t begins = 0, commits = 0;
    for (const char *p = s; (p = strstr(p, "\nBEGIN;\n")); p++)
        begins++;
    for (const char *p = s; (p = strstr(p, "\nCOMMIT;\n")); p++)
        commits++;
    cr_assert_eq(begins, 3);
    cr_assert_eq(commits, 3);
    cr_assert_not_null(strstr(s, "create event trigger supabase_etl_ddl_message_trigger"));
    free(s);
}
