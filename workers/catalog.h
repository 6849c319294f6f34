/*
 * catalog: the SQL the worker asks of pg_catalog (never of user tables) and
 * the parsing of the answers: published tables, key columns, user types,
 * slot statistics, server checks. Text in, structs out; no I/O.
 */
#ifndef PGSENSE_CATALOG_H_INCLUDED
#define PGSENSE_CATALOG_H_INCLUDED

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One published table (pg_publication_tables). */
typedef struct {
    uint32_t relid;
    char *schema;
    char *table;
    char relkind;     /* 'r' table, 'p' partitioned */
    char **attnames;  /* publication column list, NULL: all columns */
    size_t n_attnames;
    char *rowfilter;  /* publication row filter, NULL: none */
} catalog_table;

typedef struct {
    catalog_table *items;
    size_t n;
} catalog_tables;

/* Columns of a relation with their type and key membership. */
typedef struct {
    char *name;
    uint32_t type_oid;
    bool pk;       /* in the primary key */
    bool replident; /* in the replica identity index */
} catalog_column;

typedef struct {
    catalog_column *cols;
    size_t n;
    bool has_pk;
} catalog_columns;

/* Server checks: one row. */
typedef struct {
    char wal_level[32];
    bool publication_exists;
    bool pubviaroot;
    bool can_replicate; /* REPLICATION, superuser, or rds_replication */
    char current_user[128];
    char slot_exists;   /* 0 no, 1 yes */
    int slot_active_pid; /* 0: not active */
    char slot_wal_status[32];
    char slot_plugin[64];
    bool slot_other_db;  /* the slot exists for another database */
} catalog_checks;

/* Slot statistics for status and metrics. */
typedef struct {
    bool found;
    int64_t retained_bytes; /* current - restart_lsn */
    int64_t lag_bytes;      /* current - confirmed_flush_lsn */
    uint64_t confirmed_lsn;
    uint64_t current_lsn;
    char wal_status[32];
} catalog_slot_stats;

/* SQL builders: write into buf (cap bytes); -1 if it does not fit. conn quotes literals. */
int catalog_sql_checks(PGconn *conn, const char *publication, const char *slot, char *buf, size_t cap);
int catalog_sql_tables(PGconn *conn, const char *publication, char *buf, size_t cap);
int catalog_sql_columns(uint32_t relid, char *buf, size_t cap);
/* Underlying type (domain base / array element) of each user type in oids, recursively. */
int catalog_sql_types(const uint32_t *oids, size_t n, char *buf, size_t cap);
int catalog_sql_slot_stats(PGconn *conn, const char *slot, char *buf, size_t cap);

/* Parsers: 0, or -1 with err (shape of the result not as expected, ENOMEM). */
int catalog_parse_checks(const PGresult *res, catalog_checks *out, char *err, size_t errlen);
int catalog_parse_tables(const PGresult *res, catalog_tables *out, char *err, size_t errlen);
int catalog_parse_columns(const PGresult *res, catalog_columns *out, char *err, size_t errlen);
int catalog_parse_slot_stats(const PGresult *res, catalog_slot_stats *out, char *err, size_t errlen);

void catalog_tables_free(catalog_tables *t);
void catalog_columns_free(catalog_columns *c);

/* Type map from catalog_sql_types' answer: oid -> underlying (0: neither domain nor array). */
typedef struct {
    uint32_t *oid;
    uint32_t *under;
    size_t n;
} catalog_typemap;

int catalog_parse_types(const PGresult *res, catalog_typemap *out, char *err, size_t errlen);
void catalog_typemap_free(catalog_typemap *m);
/* pgtypes_resolver over a typemap (ctx = catalog_typemap *). */
int catalog_typemap_resolve(void *ctx, uint32_t oid, uint32_t *under);

/* Parse a PostgreSQL text array literal of identifiers ({a,"b c"}) into items. */
int catalog_parse_name_array(const char *s, char ***items, size_t *n);

/* "schema"."table" quoted for SQL (PQescapeIdentifier); malloc'ed. */
char *catalog_qualified_name(PGconn *conn, const char *schema, const char *table);

#endif /* PGSENSE_CATALOG_H_INCLUDED */
