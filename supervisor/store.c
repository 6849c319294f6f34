/*
 * store: memory store of snapshotted tables per database identity. A plain
 * array per identity: a handful of databases with at most thousands of
 * tables each, updated once per snapshotted table.
 */
#include "store.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    char *identity;
    frame_table_state *tables; /* schema/table strings owned here (cast away const) */
    uint32_t n, cap;
} store_db;

struct store {
    store_db *dbs;
    size_t n, cap;
};

store *store_new(void)
{
    return calloc(1, sizeof(store));
}

static void db_clear(store_db *d)
{
    for (uint32_t i = 0; i < d->n; i++) {
        free((char *)d->tables[i].schema);
        free((char *)d->tables[i].table);
    }
    free(d->tables);
    free(d->identity);
    memset(d, 0, sizeof(*d));
}

void store_free(store *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n; i++)
        db_clear(&s->dbs[i]);
    free(s->dbs);
    free(s);
}

static store_db *find_db(const store *s, const char *identity)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->dbs[i].identity, identity) == 0)
            return &s->dbs[i];
    return NULL;
}

static store_db *get_db(store *s, const char *identity)
{
    store_db *d = find_db(s, identity);
    if (d)
        return d;
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 4;
        store_db *nd = realloc(s->dbs, cap * sizeof(*nd));
        if (!nd)
            return NULL;
        s->dbs = nd;
        s->cap = cap;
    }
    char *id = strdup(identity);
    if (!id)
        return NULL;
    d = &s->dbs[s->n++];
    memset(d, 0, sizeof(*d));
    d->identity = id;
    return d;
}

int store_table_ready(store *s, const char *identity, const frame_table_done *t)
{
    char *schema = NULL, *table = NULL;
    store_db *d = get_db(s, identity);
    if (!d)
        goto fail;
    schema = strdup(t->schema);
    table = strdup(t->table);
    if (!schema || !table)
        goto fail;

    frame_table_state *e = NULL;
    for (uint32_t i = 0; i < d->n && !e; i++)
        if (d->tables[i].relid == t->relid)
            e = &d->tables[i];
    for (uint32_t i = 0; i < d->n && !e; i++)
        if (strcmp(d->tables[i].schema, t->schema) == 0 && strcmp(d->tables[i].table, t->table) == 0)
            e = &d->tables[i];
    if (!e) {
        if (d->n >= STORE_MAX_TABLES)
            goto fail;
        if (d->n == d->cap) {
            uint32_t cap = d->cap ? d->cap * 2 : 16;
            frame_table_state *nt = realloc(d->tables, (size_t)cap * sizeof(*nt));
            if (!nt)
                goto fail;
            d->tables = nt;
            d->cap = cap;
        }
        e = &d->tables[d->n++];
        memset(e, 0, sizeof(*e));
    }
    free((char *)e->schema);
    free((char *)e->table);
    e->schema = schema;
    e->table = table;
    e->relid = t->relid;
    e->state = FRAME_TABLE_READY;
    e->snapshot_lsn = t->snapshot_lsn;
    return 0;
fail:
    free(schema);
    free(table);
    return -1;
}

const frame_table_state *store_tables(const store *s, const char *identity, uint32_t *n)
{
    const store_db *d = find_db(s, identity);
    *n = d ? d->n : 0;
    return d && d->n ? d->tables : NULL;
}

void store_forget(store *s, const char *identity)
{
    store_db *d = find_db(s, identity);
    if (!d)
        return;
    db_clear(d);
    size_t i = (size_t)(d - s->dbs);
    memmove(&s->dbs[i], &s->dbs[i + 1], (s->n - i - 1) * sizeof(*d));
    s->n--;
}

size_t store_identities(const store *s)
{
    return s->n;
}
