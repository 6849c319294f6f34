/* Unit tests for supervisor/dedup.c: window, key fields, eviction, reload. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "dedup.h"

static uint8_t hash_a[FRAME_HASH_SIZE] = {1}, hash_b[FRAME_HASH_SIZE] = {2};
static char evicted[16][64];
static int n_evicted;

static void on_evict(void *ctx, const char *db)
{
    (void)ctx;
    if (n_evicted < 16)
        snprintf(evicted[n_evicted], sizeof(evicted[0]), "%s", db);
    n_evicted++;
}

static dedup_key key(const char *db, const char *col, const uint8_t *h)
{
    return (dedup_key){db, "public", "users", col, "email", h};
}

Test(dedup, repeat_within_window_is_suppressed_then_passes_after)
{
    dedup *d = dedup_new(300000, 100, NULL, NULL);
    dedup_key k = key("h/app", "email", hash_a);
    cr_assert_eq(dedup_check(d, &k, 1000), DEDUP_PASSED);
    cr_assert_eq(dedup_check(d, &k, 1001), DEDUP_SUPPRESSED);
    cr_assert_eq(dedup_check(d, &k, 300999), DEDUP_SUPPRESSED);
    /* a repeat does not extend the window: one delivery per window */
    cr_assert_eq(dedup_check(d, &k, 301000), DEDUP_PASSED);
    cr_assert_eq(dedup_count(d), 1);
    cr_assert_eq(dedup_evictions(d), 0);
    dedup_free(d);
}

Test(dedup, every_key_field_counts)
{
    dedup *d = dedup_new(60000, 100, NULL, NULL);
    dedup_key base = key("h/app", "email", hash_a);
    cr_assert_eq(dedup_check(d, &base, 0), DEDUP_PASSED);
    dedup_key v[6];
    for (int i = 0; i < 6; i++)
        v[i] = base;
    v[0].database = "h/other";
    v[1].schema = "s2";
    v[2].table = "t2";
    v[3].column = "c2";
    v[4].rule_id = "r2";
    v[5].value_hash = hash_b;
    for (int i = 0; i < 6; i++) {
        cr_assert_eq(dedup_check(d, &v[i], 1), DEDUP_PASSED, "field %d", i);
        cr_assert_eq(dedup_check(d, &v[i], 2), DEDUP_SUPPRESSED, "field %d", i);
    }
    /* fields are delimited: ("ab","c") is not ("a","bc") */
    dedup_key x = {"ab", "c", "t", "c", "r", hash_a}, y = {"a", "bc", "t", "c", "r", hash_a};
    cr_assert_eq(dedup_check(d, &x, 3), DEDUP_PASSED);
    cr_assert_eq(dedup_check(d, &y, 3), DEDUP_PASSED);
    dedup_free(d);
}

Test(dedup, window_zero_disables)
{
    dedup *d = dedup_new(0, 100, NULL, NULL);
    dedup_key k = key("h/app", "email", hash_a);
    cr_assert_eq(dedup_check(d, &k, 0), DEDUP_PASSED);
    cr_assert_eq(dedup_check(d, &k, 0), DEDUP_PASSED);
    cr_assert_eq(dedup_count(d), 0);
    dedup_free(d);
}

Test(dedup, full_table_evicts_oldest_and_reports_database)
{
    n_evicted = 0;
    dedup *d = dedup_new(60000, 2, on_evict, NULL);
    dedup_key a = key("db-a", "a", hash_a), b = key("db-b", "b", hash_a), c = key("db-c", "c", hash_a);
    cr_assert_eq(dedup_check(d, &a, 0), DEDUP_PASSED);
    cr_assert_eq(dedup_check(d, &b, 1), DEDUP_PASSED);
    cr_assert_eq(dedup_check(d, &c, 2), DEDUP_PASSED); /* evicts a */
    cr_assert_eq(n_evicted, 1);
    cr_assert_str_eq(evicted[0], "db-a");
    cr_assert_eq(dedup_evictions(d), 1);
    cr_assert_eq(dedup_count(d), 2);
    cr_assert_eq(dedup_check(d, &b, 3), DEDUP_SUPPRESSED);
    cr_assert_eq(dedup_check(d, &c, 3), DEDUP_SUPPRESSED);
    cr_assert_eq(dedup_check(d, &a, 4), DEDUP_PASSED); /* forgotten: evicts b */
    cr_assert_str_eq(evicted[1], "db-b");
    dedup_free(d);
}

Test(dedup, expiry_is_not_eviction)
{
    n_evicted = 0;
    dedup *d = dedup_new(1000, 10, on_evict, NULL);
    for (int i = 0; i < 5; i++) {
        char col[16];
        snprintf(col, sizeof(col), "c%d", i);
        dedup_key k = key("h/app", col, hash_a);
        cr_assert_eq(dedup_check(d, &k, (uint64_t)i * 100), DEDUP_PASSED);
    }
    dedup_expire(d, 1250); /* entries seen at 0, 100, 200 are older than 1 s */
    cr_assert_eq(dedup_count(d), 2);
    cr_assert_eq(n_evicted, 0);
    cr_assert_eq(dedup_evictions(d), 0);
    dedup_free(d);
}

Test(dedup, reload_shrinks_with_evictions_and_zero_window_clears)
{
    n_evicted = 0;
    dedup *d = dedup_new(60000, 10, on_evict, NULL);
    for (int i = 0; i < 10; i++) {
        char col[16];
        snprintf(col, sizeof(col), "c%d", i);
        dedup_key k = key("h/app", col, hash_a);
        cr_assert_eq(dedup_check(d, &k, (uint64_t)i), DEDUP_PASSED);
    }
    dedup_configure(d, 60000, 4);
    cr_assert_eq(dedup_count(d), 4);
    cr_assert_eq(n_evicted, 6);
    dedup_key newest = key("h/app", "c9", hash_a), oldest = key("h/app", "c0", hash_a);
    cr_assert_eq(dedup_check(d, &newest, 20), DEDUP_SUPPRESSED);
    cr_assert_eq(dedup_check(d, &oldest, 20), DEDUP_PASSED);
    dedup_configure(d, 0, 4);
    cr_assert_eq(dedup_count(d), 0);
    dedup_free(d);
}

Test(dedup, bounded_under_load)
{
    dedup *d = dedup_new(3600000, 100000, NULL, NULL);
    uint8_t h[FRAME_HASH_SIZE] = {0};
    for (uint32_t i = 0; i < 250000; i++) {
        memcpy(h, &i, sizeof(i));
        dedup_key k = key("h/app", "email", h);
        cr_assert_eq(dedup_check(d, &k, i / 100), DEDUP_PASSED);
    }
    cr_assert_eq(dedup_count(d), 100000);
    cr_assert_eq(dedup_evictions(d), 150000);
    uint32_t last = 249999;
    memcpy(h, &last, sizeof(last));
    dedup_key k = key("h/app", "email", h);
    cr_assert_eq(dedup_check(d, &k, 2500), DEDUP_SUPPRESSED);
    dedup_free(d);
}
