/*
 * cli_migrations: `pgsense migrations --print-sql`, the psql script an
 * operator runs as a superuser to install the store = postgres schema by
 * hand. Prints only; it never connects.
 */
#include "cli_db.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "migrations.h"

static void usage(FILE *out)
{
    fprintf(out, "usage: pgsense migrations --print-sql\n"
                 "  prints the SQL that installs pgsense's etl schema (store = postgres); run it as a\n"
                 "  superuser in each scanned database: pgsense migrations --print-sql | psql -d DB\n");
}

int cli_migrations_main(int argc, char **argv)
{
    bool print_sql = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--print-sql") == 0) {
            print_sql = true;
        } else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "pgsense migrations: unknown argument \"%s\"\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    if (!print_sql) {
        usage(stderr);
        return 2;
    }
    char *sql = migrations_psql_script();
    if (!sql) {
        fprintf(stderr, "pgsense migrations: cannot build the script (out of memory or libcrypto failure)\n");
        return 1;
    }
    size_t len = strlen(sql);
    int rc = fwrite(sql, 1, len, stdout) == len && fflush(stdout) == 0 ? 0 : 1;
    if (rc)
        fprintf(stderr, "pgsense migrations: cannot write to stdout\n");
    free(sql);
    return rc;
}
