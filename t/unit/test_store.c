/* Unit tests for supervisor/store.c: the memory store of snapshotted tables. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "store.h"

static frame_table_done td(uint32_t relid, const char *schema, const char *table, uint64_t lsn)
{
    frame_table_done t = {.seq = 1, .relid = relid, .schema = schema, .table = table, .snapshot_lsn = lsn};
    return t;
}

Test(store, empty_identity_has_no_tables)
{
    store *s = store_new();
    uint32_t n = 99;
    cr_assert_null(store_tables(s, "h/db", &n));
    cr_assert_eq(n, 0);
    store_free(s);
}

Test(store, ready_tables_are_kept_per_identity)
{
    store *s = store_new();
    frame_table_done a = td(16384, "public", "users", 100), b = td(16390, "public", "orders", 100);
    frame_table_done c = td(16384, "public", "users", 200);
    cr_assert_eq(store_table_ready(s, "h/a", &a), 0);
    cr_assert_eq(store_table_ready(s, "h/a", &b), 0);
    cr_assert_eq(store_table_ready(s, "h/b", &c), 0);
    uint32_t n;
    const frame_table_state *t = store_tables(s, "h/a", &n);
    cr_assert_eq(n, 2);
    cr_assert_str_eq(t[0].table, "users");
    cr_assert_eq(t[0].state, FRAME_TABLE_READY);
    cr_assert_eq(t[0].snapshot_lsn, 100);
    cr_assert_str_eq(t[1].table, "orders");
    t = store_tables(s, "h/b", &n);
    cr_assert_eq(n, 1);
    cr_assert_eq(t[0].snapshot_lsn, 200);
    cr_assert_eq(store_identities(s), 2);
    store_free(s);
}

Test(store, same_relid_or_same_name_updates_in_place)
{
    store *s = store_new();
    frame_table_done a = td(1, "public", "users", 10);
    frame_table_done renamed = td(1, "public", "people", 20);
    frame_table_done recreated = td(7, "public", "people", 30);
    cr_assert_eq(store_table_ready(s, "x", &a), 0);
    cr_assert_eq(store_table_ready(s, "x", &renamed), 0);
    uint32_t n;
    const frame_table_state *t = store_tables(s, "x", &n);
    cr_assert_eq(n, 1);
    cr_assert_str_eq(t[0].table, "people");
    cr_assert_eq(t[0].snapshot_lsn, 20);
    cr_assert_eq(store_table_ready(s, "x", &recreated), 0);
    t = store_tables(s, "x", &n);
    cr_assert_eq(n, 1);
    cr_assert_eq(t[0].relid, 7);
    cr_assert_eq(t[0].snapshot_lsn, 30);
    store_free(s);
}

Test(store, strings_are_copied)
{
    store *s = store_new();
    char schema[] = "public", table[] = "users";
    frame_table_done a = td(5, schema, table, 1);
    cr_assert_eq(store_table_ready(s, "x", &a), 0);
    strcpy(table, "XXXXX");
    uint32_t n;
    cr_assert_str_eq(store_tables(s, "x", &n)[0].table, "users");
    store_free(s);
}

Test(store, forget_drops_one_identity)
{
    store *s = store_new();
    frame_table_done a = td(5, "public", "users", 1);
    cr_assert_eq(store_table_ready(s, "x", &a), 0);
    cr_assert_eq(store_table_ready(s, "y", &a), 0);
    store_forget(s, "x");
    store_forget(s, "never-seen");
    uint32_t n;
    cr_assert_null(store_tables(s, "x", &n));
    cr_assert_not_null(store_tables(s, "y", &n));
    cr_assert_eq(store_identities(s), 1);
    store_free(s);
}

Test(store, many_tables_grow)
{
    store *s = store_new();
    char name[32];
    for (uint32_t i = 0; i < 5000; i++) {
        snprintf(name, sizeof(name), "t%u", i);
        frame_table_done a = td(i + 1, "s", name, i);
        cr_assert_eq(store_table_ready(s, "x", &a), 0);
    }
    uint32_t n;
    const frame_table_state *t = store_tables(s, "x", &n);
    cr_assert_eq(n, 5000);
    cr_assert_str_eq(t[4999].table, "t4999");
    store_free(s);
}
