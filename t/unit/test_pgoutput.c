/* Unit tests for workers/pgoutput.c: every message kind, the relation cache, malformed input. */
#include <criterion/criterion.h>
#include <string.h>

#include "pgoutput.h"

typedef struct {
    uint8_t b[4096];
    size_t n;
} msg;

static void put_u8(msg *m, uint8_t v)
{
    m->b[m->n++] = v;
}
static void put_u16(msg *m, uint16_t v)
{
    put_u8(m, (uint8_t)(v >> 8));
    put_u8(m, (uint8_t)v);
}
static void put_u32(msg *m, uint32_t v)
{
    put_u16(m, (uint16_t)(v >> 16));
    put_u16(m, (uint16_t)v);
}
static void put_u64(msg *m, uint64_t v)
{
    put_u32(m, (uint32_t)(v >> 32));
    put_u32(m, (uint32_t)v);
}
static void put_str(msg *m, const char *s)
{
    size_t l = strlen(s) + 1;
    memcpy(m->b + m->n, s, l);
    m->n += l;
}
static void put_text(msg *m, const char *s)
{
    put_u8(m, 't');
    put_u32(m, (uint32_t)strlen(s));
    memcpy(m->b + m->n, s, strlen(s));
    m->n += strlen(s);
}

/* R for relid 16384 public.users (id int4 key, email text, note text). */
static msg relation_users(void)
{
    msg m = {.n = 0};
    put_u8(&m, 'R');
    put_u32(&m, 16384);
    put_str(&m, "public");
    put_str(&m, "users");
    put_u8(&m, 'd');
    put_u16(&m, 3);
    put_u8(&m, 1);
    put_str(&m, "id");
    put_u32(&m, 23);
    put_u32(&m, 0xffffffff);
    put_u8(&m, 0);
    put_str(&m, "email");
    put_u32(&m, 25);
    put_u32(&m, 0xffffffff);
    put_u8(&m, 0);
    put_str(&m, "note");
    put_u32(&m, 25);
    put_u32(&m, 0xffffffff);
    return m;
}

static pgo_decoder *d;
static char err[256];
static pgo_msg out;

static void setup(void)
{
    d = pgo_decoder_new();
    cr_assert_not_null(d);
    msg r = relation_users();
    cr_assert_eq(pgo_decode(d, r.b, r.n, &out, err, sizeof(err)), 0, "%s", err);
}
static void teardown(void)
{
    pgo_decoder_free(d);
}

TestSuite(pgoutput, .init = setup, .fini = teardown);

Test(pgoutput, relation_cached)
{
    cr_assert_eq(out.kind, PGO_RELATION);
    const pgo_relation *rel = pgo_relation_get(d, 16384);
    cr_assert_not_null(rel);
    cr_assert_str_eq(rel->nspname, "public");
    cr_assert_str_eq(rel->relname, "users");
    cr_assert_eq(rel->ncols, 3);
    cr_assert(rel->cols[0].key);
    cr_assert(!rel->cols[1].key);
    cr_assert_str_eq(rel->cols[1].name, "email");
    cr_assert_eq(rel->cols[2].type_oid, 25);
    cr_assert_eq(rel->cols[2].typmod, -1);
    cr_assert_null(pgo_relation_get(d, 1));
}

Test(pgoutput, begin_commit)
{
    msg m = {.n = 0};
    put_u8(&m, 'B');
    put_u64(&m, 0x16B3748);
    put_u64(&m, 817000000000000ULL);
    put_u32(&m, 777);
    cr_assert_eq(pgo_decode(d, m.b, m.n, &out, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(out.kind, PGO_BEGIN);
    cr_assert_eq(out.u.begin.final_lsn, 0x16B3748);
    cr_assert_eq(out.u.begin.commit_time, 817000000000000LL);
    cr_assert_eq(out.u.begin.xid, 777);

    m.n = 0;
    put_u8(&m, 'C');
    put_u8(&m, 0);
    put_u64(&m, 0x16B3748);
    put_u64(&m, 0x16B3790);
    put_u64(&m, 817000000000001ULL);
    cr_assert_eq(pgo_decode(d, m.b, m.n, &out, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(out.kind, PGO_COMMIT);
    cr_assert_eq(out.u.commit.end_lsn, 0x16B3790);
    cr_assert_eq(out.u.commit.commit_time, 817000000000001LL);
}

Test(pgoutput, insert_with_null_and_text)
{
    msg m = {.n = 0};
    put_u8(&m, 'I');
    put_u32(&m, 16384);
    put_u8(&m, 'N');
    put_u16(&m, 3);
    put_text(&m, "42");
    put_text(&m, "jane@corp.test");
    put_u8(&m, 'n');
    cr_assert_eq(pgo_decode(d, m.b, m.n, &out, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(out.kind, PGO_INSERT);
    cr_assert_str_eq(out.u.insert.rel->relname, "users");
    cr_assert_eq(out.u.insert.newtup.ncols, 3);
    cr_assert_eq(out.u.insert.newtup.cols[1].kind, PGO_VAL_TEXT);
    cr_assert_eq(out.u.insert.newtup.cols[1].len, 14);
    cr_assert(memcmp(out.u.insert.newtup.cols[1].data, "jane@corp.test", 14) == 0);
    cr_assert_eq(out.u.insert.newtup.cols[2].kind, PGO_VAL_NULL);
}

Test(pgoutput, update_with_old_tuple_and_unchanged_toast)
{
    msg m = {.n = 0};
    put_u8(&m, 'U');
    put_u32(&m, 16384);
    put_u8(&m, 'O');
    put_u16(&m, 3);
    put_text(&m, "42");
    put_text(&m, "old@corp.test");
    put_text(&m, "n1");
    put_u8(&m, 'N');
    put_u16(&m, 3);
    put_text(&m, "42");
    put_text(&m, "new@corp.test");
    put_u8(&m, 'u');
    cr_assert_eq(pgo_decode(d, m.b, m.n, &out, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(out.kind, PGO_UPDATE);
    cr_assert_eq(out.u.update.old_kind, 'O');
    cr_assert(memcmp(out.u.update.oldtup.cols[1].data, "old@corp.test", 13) == 0);
    cr_assert(memcmp(out.u.update.newtup.cols[1].data, "new@corp.test", 13) == 0);
    cr_assert_eq(out.u.update.newtup.cols[2].kind, PGO_VAL_UNCHANGED);
}

Test(pgoutput, update_without_old_tuple)
{
    msg m = {.n = 0};
    put_u8(&m, 'U');
    put_u32(&m, 16384);
    put_u8(&m, 'N');
    put_u16(&m, 3);
    put_text(&m, "1");
    put_text(&m, "a");
    put_text(&m, "b");
    cr_assert_eq(pgo_decode(d, m.b, m.n, &out, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(out.u.update.old_kind, 0);
    cr_assert_eq(out.u.update.newtup.ncols, 3);
    cr_assert(memcmp(out.u.update.newtup.cols[2].data, "b", 1) == 0);
}

Test(pgoutput, relation_replaced_after_alter)
{
    msg m = {.n = 0};
    put_u8(&m, 'R');
    put_u32(&m, 16384);
    put_str(&m, "public");
    put_str(&m, "people"); /* renamed */
    put_u8(&m, 'd');
    put_u16(&m, 1);
    put_u8(&m, 1);
    put_str(&m, "id");
    put_u32(&m, 20);
    put_u32(&m, 0xffffffff);
    cr_assert_eq(pgo_decode(d, m.b, m.n, &out, err, sizeof(err)), 0, "%s", err);
    const pgo_relation *rel = pgo_relation_get(d, 16384);
    cr_assert_str_eq(rel->relname, "people");
    cr_assert_eq(rel->ncols, 1);
    cr_assert_eq(rel->cols[0].type_oid, 20);

    /* an insert with the old width is now an error, not a mislabelled value */
    m.n = 0;
    put_u8(&m, 'I');
    put_u32(&m, 16384);
    put_u8(&m, 'N');
    put_u16(&m, 3);
    put_text(&m, "1");
    put_text(&m, "a");
    put_text(&m, "b");
    cr_assert_eq(pgo_decode(d, m.b, m.n, &out, err, sizeof(err)), -1);
    cr_assert(strstr(err, "3 columns") != NULL, "%s", err);
}

Test(pgoutput, many_relations_grow_cache)
{
    for (uint32_t id = 20000; id < 20500; id++) {
        msg m = relation_users();
        m.b[1] = (uint8_t)(id >> 24);
        m.b[2] = (uint8_t)(id >> 16);
        m.b[3] = (uint8_t)(id >> 8);
        m.b[4] = (uint8_t)id;
        cr_assert_eq(pgo_decode(d, m.b, m.n, &out, err, sizeof(err)), 0, "%s", err);
    }
    for (uint32_t id = 20000; id < 20500; id++)
        cr_assert_not_null(pgo_relation_get(d, id));
    cr_assert_not_null(pgo_relation_get(d, 16384));
    pgo_decoder_reset(d);
    cr_assert_null(pgo_relation_get(d, 16384));
}

Test(pgoutput, message_type_truncate_origin)
{
    msg m = {.n = 0};
    put_u8(&m, 'M');
    put_u8(&m, 1);
    put_u64(&m, 99);
    put_str(&m, "supabase_etl");
    put_u32(&m, 3);
    memcpy(m.b + m.n, "abc", 3);
    m.n += 3;
    cr_assert_eq(pgo_decode(d, m.b, m.n, &out, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(out.kind, PGO_MESSAGE);
    cr_assert_str_eq(out.u.message.prefix, "supabase_etl");
    cr_assert_eq(out.u.message.len, 3);

    m.n = 0;
    put_u8(&m, 'Y');
    put_u32(&m, 70000);
    put_str(&m, "public");
    put_str(&m, "mood");
    cr_assert_eq(pgo_decode(d, m.b, m.n, &out, err, sizeof(err)), 0, "%s", err);
    cr_assert_str_eq(out.u.type.name, "mood");

    m.n = 0;
    put_u8(&m, 'T');
    put_u32(&m, 2);
    put_u8(&m, 0);
    put_u32(&m, 16384);
    put_u32(&m, 16385);
    cr_assert_eq(pgo_decode(d, m.b, m.n, &out, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(out.u.truncate.nrelids, 2);

    m.n = 0;
    put_u8(&m, 'O');
    put_u64(&m, 5);
    put_str(&m, "origin1");
    cr_assert_eq(pgo_decode(d, m.b, m.n, &out, err, sizeof(err)), 0, "%s", err);
    cr_assert_str_eq(out.u.origin.name, "origin1");
}

Test(pgoutput, malformed_inputs_rejected)
{
    msg m = {.n = 0};
    cr_assert_eq(pgo_decode(d, m.b, 0, &out, err, sizeof(err)), -1);

    /* insert for an unknown relation */
    put_u8(&m, 'I');
    put_u32(&m, 999);
    put_u8(&m, 'N');
    put_u16(&m, 0);
    cr_assert_eq(pgo_decode(d, m.b, m.n, &out, err, sizeof(err)), -1);
    cr_assert(strstr(err, "relation 999") != NULL, "%s", err);

    /* value length past the end of the message */
    m.n = 0;
    put_u8(&m, 'I');
    put_u32(&m, 16384);
    put_u8(&m, 'N');
    put_u16(&m, 3);
    put_u8(&m, 't');
    put_u32(&m, 1000000);
    cr_assert_eq(pgo_decode(d, m.b, m.n, &out, err, sizeof(err)), -1);

    /* unterminated string */
    m.n = 0;
    put_u8(&m, 'Y');
    put_u32(&m, 1);
    m.b[m.n++] = 'x';
    cr_assert_eq(pgo_decode(d, m.b, m.n, &out, err, sizeof(err)), -1);

    /* trailing bytes */
    m.n = 0;
    put_u8(&m, 'O');
    put_u64(&m, 5);
    put_str(&m, "o");
    put_u8(&m, 0);
    cr_assert_eq(pgo_decode(d, m.b, m.n, &out, err, sizeof(err)), -1);
    cr_assert(strstr(err, "trailing") != NULL, "%s", err);

    /* unknown type */
    m.n = 0;
    put_u8(&m, 'Z');
    cr_assert_eq(pgo_decode(d, m.b, m.n, &out, err, sizeof(err)), -1);

    /* truncate with a count larger than the message */
    m.n = 0;
    put_u8(&m, 'T');
    put_u32(&m, 0x40000000);
    put_u8(&m, 0);
    cr_assert_eq(pgo_decode(d, m.b, m.n, &out, err, sizeof(err)), -1);
}

/* Found by fuzzing: a zero-column relation and an empty tuple before any value was ever decoded. */
Test(pgoutput, zero_column_relation_and_empty_tuple)
{
    pgo_decoder *fresh = pgo_decoder_new();
    msg m = {.n = 0};
    put_u8(&m, 'R');
    put_u32(&m, 7);
    put_str(&m, "");
    put_str(&m, "t");
    put_u8(&m, 'n');
    put_u16(&m, 0);
    cr_assert_eq(pgo_decode(fresh, m.b, m.n, &out, err, sizeof(err)), 0, "%s", err);
    cr_assert_str_eq(out.u.relation->nspname, "pg_catalog");
    m.n = 0;
    put_u8(&m, 'I');
    put_u32(&m, 7);
    put_u8(&m, 'N');
    put_u16(&m, 0);
    cr_assert_eq(pgo_decode(fresh, m.b, m.n, &out, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(out.u.insert.newtup.ncols, 0);
    pgo_decoder_free(fresh);
}
