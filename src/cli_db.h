/*
 * cli_db: what the `pgsense` command asks of the configured databases:
 * the --connect checks of `validate` and `slots list|drop`. Blocking libpq
 * (a command-line tool, not the event loop); never prints secrets.
 */
#ifndef PGSENSE_CLI_DB_H_INCLUDED
#define PGSENSE_CLI_DB_H_INCLUDED

#include <stdio.h>

#include "config.h"

/* validate --connect for one database: one [OK]/[WARN]/[ERROR] line per check; returns the error count. */
int cli_db_check(const config_db *db, FILE *out);

/* pgsense slots list -c F / pgsense slots drop -c F NAME */
int cli_slots_main(int argc, char **argv);

/* validate --connect for [alerts.postgres]: SELECT 1 as the sink's role; returns the error count (0 when disabled). */
int cli_pgsink_check(const config *cfg, FILE *out);

/* pgsense migrations --print-sql (cli_migrations.c) */
int cli_migrations_main(int argc, char **argv);

#endif /* PGSENSE_CLI_DB_H_INCLUDED */
