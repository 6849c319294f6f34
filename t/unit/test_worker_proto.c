/* Unit tests for workers/replproto.c, workers/pgtypes.c and src/lsn.c. */
#include <criterion/criterion.h>
#include <string.h>

#include "lsn.h"
#include "pgtypes.h"
#include "replproto.h"

Test(lsn, format_and_parse)
{
    char buf[LSN_TEXT_MAX];
    lsn_format(0x16B3748, buf);
    cr_assert_str_eq(buf, "0/16B3748");
    lsn_format(0xFFFFFFFFFFFFFFFFull, buf);
    cr_assert_str_eq(buf, "FFFFFFFF/FFFFFFFF");
    uint64_t v;
    cr_assert(lsn_parse("16/B374D848", &v));
    cr_assert_eq(v, 0x16B374D848ull);
    cr_assert(!lsn_parse("", &v));
    cr_assert(!lsn_parse("0/", &v));
    cr_assert(!lsn_parse("/1", &v));
    cr_assert(!lsn_parse("1/2/3", &v));
    cr_assert(!lsn_parse("123456789/0", &v));
    cr_assert(!lsn_parse("0/xyz", &v));
}

Test(replproto, xlogdata_and_keepalive)
{
    uint8_t w[30] = {'w'};
    w[8] = 0x10;  /* wal_start = 0x10 */
    w[16] = 0x20; /* wal_end = 0x20 */
    w[24] = 0x05;
    memcpy(w + 25, "Bxyzq", 5);
    repl_msg m;
    cr_assert_eq(repl_parse(w, sizeof(w), &m), 0);
    cr_assert_eq(m.kind, REPL_XLOGDATA);
    cr_assert_eq(m.wal_start, 0x10);
    cr_assert_eq(m.wal_end, 0x20);
    cr_assert_eq(m.send_time, 5);
    cr_assert_eq(m.payload_len, 5);
    cr_assert_eq(m.payload[0], 'B');
    cr_assert_eq(repl_parse(w, 24, &m), -1, "streaming header too small");

    uint8_t k[18] = {'k'};
    k[8] = 0x99;
    k[17] = 1;
    cr_assert_eq(repl_parse(k, sizeof(k), &m), 0);
    cr_assert_eq(m.kind, REPL_KEEPALIVE);
    cr_assert_eq(m.wal_end, 0x99);
    cr_assert(m.reply_requested);
    cr_assert_eq(repl_parse(k, 17, &m), -1);
    uint8_t z = 'z';
    cr_assert_eq(repl_parse(&z, 1, &m), -1);
}

Test(replproto, status_update_layout)
{
    uint8_t out[REPL_STATUS_LEN];
    repl_build_status(out, 0x0102030405060708ull, 0x1112131415161718ull, 0x21, 0x31, true);
    cr_assert_eq(out[0], 'r');
    cr_assert_eq(out[1], 0x01);
    cr_assert_eq(out[8], 0x08);
    cr_assert_eq(out[9], 0x11);
    cr_assert_eq(out[24], 0x21);
    cr_assert_eq(out[32], 0x31);
    cr_assert_eq(out[33], 1);
    /* now is after 2026-01-01 in PostgreSQL's epoch */
    cr_assert_gt(repl_now_pg_us(), (int64_t)820454400 * 1000000);
}

/* A fake catalog: 70000 domain over int4, 70001 array of 70000, 70002 enum, 70003 domain over text. */
static int fake_catalog(void *ctx, uint32_t oid, uint32_t *under)
{
    int *calls = ctx;
    (*calls)++;
    switch (oid) {
    case 70000: *under = 23; return 0;
    case 70001: *under = 70000; return 0;
    case 70002: *under = 0; return 0;
    case 70003: *under = 25; return 0;
    default: return -1;
    }
}

Test(pgtypes, builtins)
{
    cr_assert_eq(pgtypes_builtin(25), PGT_SCAN);    /* text */
    cr_assert_eq(pgtypes_builtin(3802), PGT_SCAN);  /* jsonb */
    cr_assert_eq(pgtypes_builtin(1009), PGT_SCAN);  /* text[] */
    cr_assert_eq(pgtypes_builtin(2950), PGT_SKIP);  /* uuid */
    cr_assert_eq(pgtypes_builtin(1185), PGT_SKIP);  /* timestamptz[] */
    cr_assert_eq(pgtypes_builtin(1700), PGT_SKIP_NUMERIC);
    cr_assert_eq(pgtypes_builtin(1007), PGT_SKIP_NUMERIC); /* int4[] */
    cr_assert_eq(pgtypes_builtin(70000), PGT_UNKNOWN);
}

Test(pgtypes, domains_arrays_and_cache)
{
    pgtypes_cache *c = pgtypes_cache_new();
    int calls = 0;
    cr_assert(!pgtypes_scanned(c, 70001, false, fake_catalog, &calls), "array of domain over int4");
    cr_assert(pgtypes_scanned(c, 70001, true, fake_catalog, &calls), "scan_numeric");
    cr_assert(pgtypes_scanned(c, 70002, false, fake_catalog, &calls), "enum is text");
    cr_assert(pgtypes_scanned(c, 70003, false, fake_catalog, &calls), "domain over text");
    int before = calls;
    cr_assert(!pgtypes_scanned(c, 70001, false, fake_catalog, &calls));
    cr_assert_eq(calls, before, "answer cached");
    cr_assert(pgtypes_scanned(c, 99999, false, fake_catalog, &calls), "unresolvable: scanned");
    pgtypes_cache_reset(c);
    cr_assert(!pgtypes_scanned(c, 70000, false, fake_catalog, &calls));
    cr_assert_gt(calls, before);
    pgtypes_cache_free(c);
}
