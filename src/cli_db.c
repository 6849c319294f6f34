/*
 * cli_db: `validate --connect` checks and `slots list|drop`, with plain
 * blocking libpq. Messages name the object, the cause and the SQL that
 * fixes it; server messages are cut to their first line.
 */
#include "cli_db.h"

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#define MAX_PARAMS 16

static void first_line(const char *msg, char *out, size_t cap)
{
    size_t n = strcspn(msg ? msg : "", "\n");
    if (n >= cap)
        n = cap - 1;
    memcpy(out, msg ? msg : "", n);
    out[n] = '\0';
}

static PGconn *db_connect(const config_db *db, char *err, size_t errlen)
{
    const char *keys[MAX_PARAMS], *vals[MAX_PARAMS];
    char port[8];
    int n = 0;
    snprintf(port, sizeof(port), "%d", db->port);
    static const char *const names[] = {"host", "port", "dbname", "user", "password", "sslmode", "sslrootcert",
                                        "sslcert", "sslkey", "application_name", "connect_timeout", "options"};
    const char *values[] = {db->host,       port,           db->dbname,    db->username,
                            db->password,   config_sslmode_name(db->sslmode), db->sslrootcert, db->sslcert,
                            db->sslkey,     "pgsense-cli",  "10",          "-c search_path="};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]) && n < MAX_PARAMS - 1; i++) {
        if (!values[i])
            continue;
        keys[n] = names[i];
        vals[n] = values[i];
        n++;
    }
    keys[n] = NULL;
    vals[n] = NULL;
    PGconn *c = PQconnectdbParams(keys, vals, 0);
    if (!c || PQstatus(c) != CONNECTION_OK) {
        first_line(c ? PQerrorMessage(c) : "out of memory", err, errlen);
        PQfinish(c);
        return NULL;
    }
    return c;
}

/* One-row, one-or-more-column query with up to two text parameters; NULL on error (err set). */
static PGresult *query(PGconn *c, const char *sql, const char *p1, const char *p2, char *err, size_t errlen)
{
    const char *params[2] = {p1, p2};
    int np = p2 ? 2 : p1 ? 1 : 0;
    PGresult *r = PQexecParams(c, sql, np, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK && PQresultStatus(r) != PGRES_COMMAND_OK) {
        const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
        const char *msg = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
        snprintf(err, errlen, "%s: %s", state ? state : "-----", msg ? msg : "query failed");
        PQclear(r);
        return NULL;
    }
    return r;
}

static bool local_host(const char *h)
{
    return !h || h[0] == '/' || strcmp(h, "localhost") == 0 || strcmp(h, "127.0.0.1") == 0 ||
           strcmp(h, "::1") == 0;
}

int cli_db_check(const config_db *db, FILE *out)
{
    char err[512];
    int errors = 0;
    PGconn *c = db_connect(db, err, sizeof(err));
    if (!c) {
        fprintf(out, "[ERROR] database %s (%s): cannot connect: %s\n", db->name, db->identity, err);
        return 1;
    }
    int v = PQserverVersion(c);
    fprintf(out, "[OK] database %s: connected to %s as %s\n", db->name, db->identity, PQuser(c));
    if (v < 150000) {
        fprintf(out, "[ERROR] database %s: PostgreSQL %d.%d is too old: pgsense needs 15 or newer\n", db->name,
                v / 10000, v % 10000);
        errors++;
    } else {
        fprintf(out, "[OK] database %s: PostgreSQL %d.%d\n", db->name, v / 10000, v % 10000);
    }
    PGresult *r = query(c,
                        "SELECT current_setting('wal_level'), current_setting('max_slot_wal_keep_size'),"
                        " (SELECT rolreplication OR rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user)"
                        " OR EXISTS (SELECT 1 FROM pg_catalog.pg_roles r WHERE r.rolname = 'rds_replication'"
                        "            AND pg_catalog.pg_has_role(current_user, r.oid, 'MEMBER')), current_user",
                        NULL, NULL, err, sizeof(err));
    if (!r) {
        fprintf(out, "[ERROR] database %s: %s\n", db->name, err);
        PQfinish(c);
        return errors + 1;
    }
    char user[128];
    snprintf(user, sizeof(user), "%s", PQgetvalue(r, 0, 3));
    if (strcmp(PQgetvalue(r, 0, 0), "logical") != 0) {
        fprintf(out, "[ERROR] database %s: wal_level is %s: ALTER SYSTEM SET wal_level = logical; and restart\n",
                db->name, PQgetvalue(r, 0, 0));
        errors++;
    } else {
        fprintf(out, "[OK] database %s: wal_level = logical\n", db->name);
    }
    if (strcmp(PQgetvalue(r, 0, 1), "-1") == 0)
        fprintf(out,
                "[WARN] database %s: max_slot_wal_keep_size is unlimited: a slot that stops advancing can fill "
                "the disk; consider ALTER SYSTEM SET max_slot_wal_keep_size = '50GB';\n",
                db->name);
    if (PQgetvalue(r, 0, 2)[0] != 't') {
        fprintf(out, "[ERROR] database %s: role %s lacks REPLICATION: ALTER ROLE %s WITH REPLICATION;\n", db->name,
                user, user);
        errors++;
    } else {
        fprintf(out, "[OK] database %s: role %s may replicate\n", db->name, user);
    }
    PQclear(r);

    if (!local_host(db->host) && db->sslmode != CONFIG_SSL_VERIFY_FULL)
        fprintf(out, "[WARN] database %s: sslmode = %s to a remote host: use sslmode = verify-full\n", db->name,
                config_sslmode_name(db->sslmode));

    r = query(c, "SELECT pubupdate OR pubdelete FROM pg_catalog.pg_publication WHERE pubname = $1",
              db->publication, NULL, err, sizeof(err));
    if (!r || PQntuples(r) == 0) {
        fprintf(out,
                "[ERROR] database %s: publication \"%s\" does not exist: CREATE PUBLICATION %s FOR ALL TABLES WITH "
                "(publish = 'insert, update');\n",
                db->name, db->publication, db->publication);
        errors++;
    } else {
        bool needs_identity = PQgetvalue(r, 0, 0)[0] == 't';
        PQclear(r);
        r = query(c,
                  "SELECT t.schemaname, t.tablename,"
                  " pg_catalog.has_table_privilege(c.oid, 'SELECT'),"
                  " c.relreplident = 'n' OR (c.relreplident = 'd' AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_index i"
                  "   WHERE i.indrelid = c.oid AND i.indisprimary))"
                  " FROM pg_catalog.pg_publication_tables t"
                  " JOIN pg_catalog.pg_namespace n ON n.nspname = t.schemaname"
                  " JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid AND c.relname = t.tablename"
                  " WHERE t.pubname = $1 ORDER BY 1, 2",
                  db->publication, NULL, err, sizeof(err));
        if (!r) {
            fprintf(out, "[ERROR] database %s: cannot list the published tables: %s\n", db->name, err);
            errors++;
        } else {
            int n = PQntuples(r), unreadable = 0;
            for (int i = 0; i < n; i++) {
                const char *s = PQgetvalue(r, i, 0), *t = PQgetvalue(r, i, 1);
                if (PQgetvalue(r, i, 2)[0] != 't') {
                    fprintf(out, "[ERROR] database %s: no SELECT on %s.%s: GRANT SELECT ON %s.%s TO %s;\n",
                            db->name, s, t, s, t, user);
                    unreadable++;
                }
                if (needs_identity && PQgetvalue(r, i, 3)[0] == 't')
                    fprintf(out,
                            "[WARN] database %s: %s.%s has no replica identity while publication %s publishes "
                            "UPDATE/DELETE: its UPDATEs will fail (add a primary key, or publish = 'insert')\n",
                            db->name, s, t, db->publication);
            }
            errors += unreadable;
            if (!unreadable)
                fprintf(out, "[OK] database %s: publication %s, %d table(s), all readable\n", db->name,
                        db->publication, n);
        }
    }
    if (r)
        PQclear(r);

    r = query(c,
              "SELECT active_pid, wal_status, confirmed_flush_lsn, database = current_database()"
              " FROM pg_catalog.pg_replication_slots WHERE slot_name = $1",
              db->slot, NULL, err, sizeof(err));
    if (!r) {
        fprintf(out, "[ERROR] database %s: cannot read pg_replication_slots: %s\n", db->name, err);
        errors++;
    } else if (PQntuples(r) == 0) {
        fprintf(out, "[OK] database %s: slot %s not created yet (created at first start)\n", db->name, db->slot);
    } else if (strcmp(PQgetvalue(r, 0, 1), "lost") == 0) {
        fprintf(out,
                "[ERROR] database %s: slot %s was invalidated (wal_status lost): set on_slot_lost = recreate or "
                "`pgsense slots drop -c ... %s`\n",
                db->name, db->slot, db->slot);
        errors++;
    } else if (PQgetvalue(r, 0, 3)[0] != 't') {
        fprintf(out, "[ERROR] database %s: slot %s belongs to another database\n", db->name, db->slot);
        errors++;
    } else if (!PQgetisnull(r, 0, 0)) {
        fprintf(out, "[WARN] database %s: slot %s is active (server pid %s), confirmed %s\n", db->name, db->slot,
                PQgetvalue(r, 0, 0), PQgetvalue(r, 0, 2));
    } else {
        fprintf(out, "[OK] database %s: slot %s present, inactive, confirmed %s, wal_status %s\n", db->name,
                db->slot, PQgetvalue(r, 0, 2), PQgetvalue(r, 0, 1));
    }
    if (r)
        PQclear(r);
    PQfinish(c);
    return errors;
}

/*
 * [alerts.postgres] with --connect: connect as the sink's role and SELECT 1.
 * The table itself is created by the sink at its first connection.
 */
int cli_pgsink_check(const config *cfg, FILE *out)
{
    const config_pgsink *pg = &cfg->alerts.postgres;
    if (!pg->enabled)
        return 0;
    const char *keys[MAX_PARAMS], *vals[MAX_PARAMS];
    char port[12], err[512];
    int n = 0;
    snprintf(port, sizeof(port), "%d", pg->port);
    static const char *const names[] = {"host", "port", "dbname", "user", "password", "sslmode",
                                        "application_name", "connect_timeout", "client_encoding"};
    const char *values[] = {pg->host, port, pg->dbname, pg->username, pg->password,
                            config_sslmode_name(pg->sslmode), "pgsense-cli", "10", "UTF8"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]) && n < MAX_PARAMS - 1; i++) {
        if (!values[i])
            continue;
        keys[n] = names[i];
        vals[n] = values[i];
        n++;
    }
    keys[n] = vals[n] = NULL;
    PGconn *c = PQconnectdbParams(keys, vals, 0);
    if (!c || PQstatus(c) != CONNECTION_OK) {
        first_line(c ? PQerrorMessage(c) : "out of memory", err, sizeof(err));
        fprintf(out, "[ERROR] sink postgres: cannot connect to database %s on %s:%d: %s\n", pg->dbname,
                pg->host ? pg->host : "localhost", pg->port, err);
        PQfinish(c);
        return 1;
    }
    PGresult *r = query(c, "SELECT 1", NULL, NULL, err, sizeof(err));
    int errors = 0;
    if (!r) {
        fprintf(out, "[ERROR] sink postgres: SELECT 1 failed: %s\n", err);
        errors = 1;
    } else {
        fprintf(out, "[OK] sink postgres: connected to database %s on %s:%d as %s\n", pg->dbname,
                pg->host ? pg->host : "localhost", pg->port, PQuser(c));
        PQclear(r);
    }
    if (!local_host(pg->host) && pg->sslmode != CONFIG_SSL_VERIFY_FULL)
        fprintf(out, "[WARN] sink postgres: sslmode = %s to a remote host: use sslmode = verify-full\n",
                config_sslmode_name(pg->sslmode));
    PQfinish(c);
    return errors;
}

static const char SLOTS_SQL[] =
    "SELECT slot_name, database, COALESCE(active_pid::text, '-'), COALESCE(confirmed_flush_lsn::text, '-'),"
    " COALESCE(restart_lsn::text, '-'),"
    " COALESCE(pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_lsn(), restart_lsn)::int8::text, '-'),"
    " COALESCE(wal_status, '-')"
    " FROM pg_catalog.pg_replication_slots WHERE slot_name LIKE 'pgsense\\_%' ORDER BY 1";

static int slots_list(const config *cfg)
{
    int errors = 0;
    printf("%-10s %-26s %-12s %-8s %-14s %-14s %-14s %s\n", "database", "slot", "db", "active", "confirmed",
           "restart", "retained_wal", "wal_status");
    for (size_t i = 0; i < cfg->n_dbs; i++) {
        const config_db *db = &cfg->dbs[i];
        char err[512];
        PGconn *c = db_connect(db, err, sizeof(err));
        if (!c) {
            fprintf(stderr, "pgsense slots: %s (%s): %s\n", db->name, db->identity, err);
            errors++;
            continue;
        }
        PGresult *r = query(c, SLOTS_SQL, NULL, NULL, err, sizeof(err));
        if (!r) {
            fprintf(stderr, "pgsense slots: %s: %s\n", db->name, err);
            errors++;
        } else {
            for (int k = 0; k < PQntuples(r); k++) {
                bool ours = strcmp(PQgetvalue(r, k, 0), db->slot) == 0;
                if (!ours && strcmp(PQgetvalue(r, k, 1), db->dbname) != 0)
                    continue; /* another database's slot: listed under its own entry */
                printf("%-10s %-26s %-12s %-8s %-14s %-14s %-14s %s%s\n", db->name, PQgetvalue(r, k, 0),
                       PQgetvalue(r, k, 1), PQgetvalue(r, k, 2), PQgetvalue(r, k, 3), PQgetvalue(r, k, 4),
                       PQgetvalue(r, k, 5), PQgetvalue(r, k, 6), ours ? "" : "  (not configured: orphaned?)");
            }
            PQclear(r);
        }
        PQfinish(c);
    }
    return errors ? 1 : 0;
}

static int slots_drop(const config *cfg, const char *name)
{
    if (strncmp(name, "pgsense_", 8) != 0) {
        fprintf(stderr, "pgsense slots drop: %s is not a pgsense slot (pgsense_...)\n", name);
        return 1;
    }
    for (size_t i = 0; i < cfg->n_dbs; i++) {
        const config_db *db = &cfg->dbs[i];
        char err[512];
        PGconn *c = db_connect(db, err, sizeof(err));
        if (!c) {
            fprintf(stderr, "pgsense slots: %s (%s): %s\n", db->name, db->identity, err);
            continue;
        }
        PGresult *r = query(c, "SELECT active_pid FROM pg_catalog.pg_replication_slots WHERE slot_name = $1", name,
                            NULL, err, sizeof(err));
        if (!r || PQntuples(r) == 0) {
            if (r)
                PQclear(r);
            PQfinish(c);
            continue;
        }
        if (!PQgetisnull(r, 0, 0)) {
            fprintf(stderr,
                    "pgsense slots drop: slot %s is active (server pid %s): stop its pgsense worker first\n", name,
                    PQgetvalue(r, 0, 0));
            PQclear(r);
            PQfinish(c);
            return 1;
        }
        PQclear(r);
        r = query(c, "SELECT pg_catalog.pg_drop_replication_slot($1)", name, NULL, err, sizeof(err));
        if (!r) {
            fprintf(stderr, "pgsense slots drop: %s: %s\n", name, err);
            PQfinish(c);
            return 1;
        }
        PQclear(r);
        PQfinish(c);
        printf("dropped slot %s on %s\n", name, db->identity);
        return 0;
    }
    fprintf(stderr, "pgsense slots drop: no slot %s on any configured server\n", name);
    return 1;
}

int cli_slots_main(int argc, char **argv)
{
    const char *config_path = NULL, *verb = NULL, *name = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-c") == 0 && i + 1 < argc)
            config_path = argv[++i];
        else if (!verb)
            verb = argv[i];
        else if (!name)
            name = argv[i];
        else
            goto usage;
    }
    if (!config_path || !verb || (strcmp(verb, "list") == 0 && name) ||
        (strcmp(verb, "drop") == 0 && !name) || (strcmp(verb, "list") != 0 && strcmp(verb, "drop") != 0))
        goto usage;
    extern char **environ;
    config_diag diag;
    config_diag_init(&diag);
    config *cfg = NULL;
    if (config_load(config_path, environ, &cfg, &diag) != 0) {
        config_diag_print(&diag, stderr);
        config_diag_free(&diag);
        return 1;
    }
    config_diag_free(&diag);
    int rc = strcmp(verb, "list") == 0 ? slots_list(cfg) : slots_drop(cfg, name);
    config_free(cfg);
    return rc;
usage:
    fprintf(stderr, "usage: pgsense slots list -c pgsense.ini\n       pgsense slots drop -c pgsense.ini NAME\n");
    return 2;
}
