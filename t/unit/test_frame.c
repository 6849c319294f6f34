/*
 * Unit tests for src/frame.c: round trips of every frame type, incremental
 * decoding, limits, malformed input, version mismatch, partial writes, EOF.
 * With PGSENSE_FRAME_CORPUS=dir set, also writes the fuzzer's seed files.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "frame.h"

/* ------------------------------------------------------------------------ */
/* One realistic frame of each type.                                        */

static const char *const include_schemas[] = {"public", "billing"};
static const char *const exclude_tables[] = {"audit_*", "tmp_*", "ü_tables"};
static const char *const exclude_columns[] = {"*_hash"};
static const frame_table_state tables[] = {
    {"public", "users", 16384, FRAME_TABLE_READY, 0x16B3748},
    {"billing", "cards", 16390, FRAME_TABLE_SNAPSHOT, UINT64_MAX},
};
static const char rules_yaml[] = "rules:\n  - id: email\n    builtin: email\n    category: PII\n";
static const uint8_t lua_bytes[] = {'f', 'u', 'n', 0, 'c', 0xff, '\n'};
static const frame_file files[] = {
    {"rules.yaml", (const uint8_t *)rules_yaml, sizeof(rules_yaml) - 1},
    {"scripts/custom.lua", lua_bytes, sizeof(lua_bytes)},
    {"empty.lua", NULL, 0},
};
static const frame_pk pks_a[] = {{"id", "42"}, {"tenant", "acme"}};
static const frame_finding findings[] = {
    {.rule_id = "email-address",
     .description = "Email addresses",
     .category = "PII",
     .severity = FRAME_SEV_HIGH,
     .schema = "public",
     .table = "users",
     .column = "contact",
     .masked_sample = "ja****om",
     .primary_keys = pks_a,
     .n_primary_keys = 2,
     .lsn = 23456789,
     .source = FRAME_SOURCE_STREAM,
     .op = FRAME_OP_UPDATE,
     .commit_time = 1795687200123456,
     .detected_at = 1795687200125000,
     .value_hash = {1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15, 16,
                    17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 0xff}},
    {.rule_id = "credit-card",
     .description = "Credit card numbers",
     .category = "PCI_DSS",
     .severity = FRAME_SEV_CRITICAL,
     .schema = "billing",
     .table = "cards",
     .column = "pan",
     .masked_sample = "41***************11",
     .lsn = 0x16B3748,
     .source = FRAME_SOURCE_SNAPSHOT,
     .op = FRAME_OP_SNAPSHOT,
     .commit_time = FRAME_TIME_NULL,
     .detected_at = -1,
     .value_hash = {0xaa}},
};
static const frame_table_error table_errors[] = {
    {"billing", "secrets", "permission denied for table secrets (42501)"},
};
static const frame_script_error script_errors[] = {{"custom", 3}, {"other", UINT64_MAX}};

static void sample(int type, frame *f)
{
    memset(f, 0, sizeof(*f));
    f->type = (frame_type)type;
    switch (type) {
    case FRAME_HELLO:
        frame_hello_init(f, FRAME_ROLE_WORKER, 4242);
        break;
    case FRAME_START: {
        frame_start *s = &f->start;
        s->name = "orders";
        s->host = "db.example.com";
        s->port = 5433;
        s->dbname = "app";
        s->username = "pgsense";
        s->password = "s3cr3t pass";
        s->publication = "pgsense_pub";
        s->sslmode = "verify-full";
        s->sslrootcert = "/etc/ssl/root.crt";
        s->sslcert = "";
        s->sslkey = NULL; /* encodes as "" */
        s->identity = "db.example.com/app";
        s->slot_name = "pgsense_1a2b3c4d5e6f7a8b";
        s->include_schemas = (frame_strlist){include_schemas, 2};
        s->exclude_tables = (frame_strlist){exclude_tables, 3};
        s->exclude_columns = (frame_strlist){exclude_columns, 1};
        s->scan_numeric = true;
        s->primary_keys = FRAME_PK_OMIT;
        s->store = FRAME_STORE_POSTGRES;
        s->snapshot_connections = 2;
        s->publication_poll_s = 60;
        s->max_retained_wal = 10ull << 30;
        s->on_slot_lost = FRAME_SLOT_LOST_RECREATE;
        s->credit_bytes = 8388608;
        for (int i = 0; i < (int)FRAME_HASH_SIZE; i++)
            s->hash_key[i] = (uint8_t)(0xa0 + i);
        s->log_level = 3;
        s->log_format = 1;
        s->heartbeat_ms = 5000;
        s->tables = tables;
        s->n_tables = 2;
        break;
    }
    case FRAME_RULES:
        f->rules.generation = 7;
        f->rules.files = files;
        f->rules.n_files = 3;
        break;
    case FRAME_RULES_RESULT:
        f->rules_result.generation = 7;
        f->rules_result.ok = false;
        f->rules_result.error = "rules.yaml:3: unknown key \"patern\"";
        break;
    case FRAME_FINDINGS:
        f->findings.seq = 99;
        f->findings.findings = findings;
        f->findings.n_findings = 2;
        break;
    case FRAME_TXN_END:
        f->txn_end = (frame_txn_end){99, 0x16B3700, 0x16B3748, 1795687200123456, 2};
        break;
    case FRAME_TABLE_DONE:
        f->table_done = (frame_table_done){100, 16390, "billing", "cards", 0x16B3000};
        break;
    case FRAME_ACK:
        f->ack = (frame_ack){99, 0x16B3748, 4096};
        break;
    case FRAME_CREDIT:
        f->credit.bytes = 1u << 20;
        break;
    case FRAME_HEARTBEAT:
        f->heartbeat.sent_at = 1795687200000001;
        break;
    case FRAME_STATS: {
        frame_stats *s = &f->stats;
        s->state = FRAME_WSTATE_STREAMING;
        s->events = 1200;
        s->findings = 37;
        s->confirmed_lsn = 0x16B3748;
        s->current_lsn = 0x16B4000;
        s->lag_bytes = 0x8b8;
        s->retained_wal_bytes = -1;
        s->wal_status = "reserved";
        s->tables_done = 3;
        s->tables_total = 4;
        s->table_errors = table_errors;
        s->n_table_errors = 1;
        s->skipped_filter = 10;
        s->skipped_type = 11;
        s->skipped_scope = 12;
        s->reconnects = 1;
        s->script_errors = script_errors;
        s->n_script_errors = 2;
        s->undelivered_findings = 5;
        break;
    }
    case FRAME_SHUTDOWN:
        f->shutdown.mode = FRAME_SHUTDOWN_DRAIN;
        f->shutdown.reason = "SIGTERM";
        break;
    case FRAME_EXIT:
        f->exit.code = 3;
        f->exit.reason = "publication \"pgsense_pub\" does not exist in database app";
        break;
    default:
        cr_assert_fail("no sample for type %d", type);
    }
}

/* Encode f into a malloc'd buffer. */
static uint8_t *encode(const frame *f, size_t *len)
{
    size_t need = 0;
    char err[128];
    cr_assert_eq(frame_encode(f, NULL, 0, &need, err, sizeof(err)), FRAME_FULL, "%s", err);
    uint8_t *buf = malloc(need);
    cr_assert_not_null(buf);
    cr_assert_eq(frame_encode(f, buf, need, len, err, sizeof(err)), FRAME_OK, "%s", err);
    cr_assert_eq(*len, need);
    return buf;
}

/* All sample frames, concatenated. */
static uint8_t *encode_all(size_t *total, size_t ends[FRAME_TYPE_MAX + 1])
{
    uint8_t *all = NULL;
    *total = 0;
    for (int t = FRAME_HELLO; t <= FRAME_TYPE_MAX; t++) {
        frame f;
        size_t len;
        sample(t, &f);
        uint8_t *b = encode(&f, &len);
        all = realloc(all, *total + len);
        cr_assert_not_null(all);
        memcpy(all + *total, b, len);
        *total += len;
        ends[t] = *total;
        free(b);
    }
    return all;
}

static frame_decoder *decoder_with(const uint8_t *b, size_t n)
{
    frame_decoder *dec = frame_decoder_new(FRAME_ROLE_ANY);
    cr_assert_not_null(dec);
    cr_assert_eq(frame_decoder_feed(dec, b, n), n);
    return dec;
}

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* Decode one hand-made frame of type with payload p; returns the status, error text in err. */
static frame_status decode_raw(int type, const void *p, size_t n, frame_role self, char *err, size_t errlen)
{
    uint8_t *b = malloc(n + 5);
    put32(b, (uint32_t)(n + 1));
    b[4] = (uint8_t)type;
    if (n > 0)
        memcpy(b + 5, p, n);
    frame_decoder *dec = frame_decoder_new(self);
    cr_assert_eq(frame_decoder_feed(dec, b, n + 5), n + 5);
    frame f;
    frame_status st = frame_next(dec, &f);
    snprintf(err, errlen, "%s", frame_decoder_error(dec));
    frame_decoder_free(dec);
    free(b);
    return st;
}

/* ------------------------------------------------------------------------ */

Test(frame, roundtrip_every_type_equal)
{
    for (int t = FRAME_HELLO; t <= FRAME_TYPE_MAX; t++) {
        frame in, out;
        size_t len;
        sample(t, &in);
        uint8_t *b = encode(&in, &len);
        cr_assert_eq(b[4], t);
        cr_assert_eq(((size_t)b[0] << 24 | (size_t)b[1] << 16 | (size_t)b[2] << 8 | b[3]), len - 4);
        frame_decoder *dec = decoder_with(b, len);
        cr_assert_eq(frame_next(dec, &out), FRAME_OK, "%s: %s", frame_type_name(t), frame_decoder_error(dec));
        cr_assert_eq((int)out.type, t);
        cr_assert(frame_equal(&in, &out), "%s differs after a round trip", frame_type_name(t));
        cr_assert_eq(frame_next(dec, &out), FRAME_AGAIN);
        cr_assert_eq(frame_decoder_buffered(dec), 0);
        frame_decoder_free(dec);
        free(b);
    }
}

/* Decode one sample of type with explicit field checks below. */
static frame_decoder *roundtrip(int type, frame *out)
{
    frame in;
    size_t len;
    sample(type, &in);
    uint8_t *b = encode(&in, &len);
    frame_decoder *dec = decoder_with(b, len);
    free(b);
    cr_assert_eq(frame_next(dec, out), FRAME_OK, "%s", frame_decoder_error(dec));
    cr_assert_eq((int)out->type, type);
    return dec;
}

Test(frame, roundtrip_hello_fields)
{
    frame f;
    frame_decoder *dec = roundtrip(FRAME_HELLO, &f);
    cr_assert_eq(f.hello.version, FRAME_PROTOCOL_VERSION);
    cr_assert_eq(f.hello.role, FRAME_ROLE_WORKER);
    cr_assert_eq(f.hello.pid, 4242);
    frame_decoder_free(dec);
}

Test(frame, roundtrip_start_fields)
{
    frame f;
    frame_decoder *dec = roundtrip(FRAME_START, &f);
    const frame_start *s = &f.start;
    cr_assert_str_eq(s->name, "orders");
    cr_assert_str_eq(s->host, "db.example.com");
    cr_assert_eq(s->port, 5433);
    cr_assert_str_eq(s->password, "s3cr3t pass");
    cr_assert_str_eq(s->sslkey, ""); /* NULL went out as "" */
    cr_assert_str_eq(s->slot_name, "pgsense_1a2b3c4d5e6f7a8b");
    cr_assert_eq(s->exclude_tables.n, 3);
    cr_assert_str_eq(s->exclude_tables.v[2], "ü_tables");
    cr_assert_str_eq(s->include_schemas.v[1], "billing");
    cr_assert(s->scan_numeric);
    cr_assert_eq(s->primary_keys, FRAME_PK_OMIT);
    cr_assert_eq(s->store, FRAME_STORE_POSTGRES);
    cr_assert_eq(s->max_retained_wal, 10ull << 30);
    cr_assert_eq(s->on_slot_lost, FRAME_SLOT_LOST_RECREATE);
    cr_assert_eq(s->credit_bytes, 8388608);
    cr_assert_eq(s->hash_key[0], 0xa0);
    cr_assert_eq(s->hash_key[31], 0xa0 + 31);
    cr_assert_eq(s->log_level, 3);
    cr_assert_eq(s->log_format, 1);
    cr_assert_eq(s->heartbeat_ms, 5000);
    cr_assert_eq(s->n_tables, 2);
    cr_assert_str_eq(s->tables[1].table, "cards");
    cr_assert_eq(s->tables[1].relid, 16390);
    cr_assert_eq(s->tables[1].state, FRAME_TABLE_SNAPSHOT);
    cr_assert_eq(s->tables[1].snapshot_lsn, UINT64_MAX);
    frame_decoder_free(dec);
}

Test(frame, roundtrip_rules_bytes_keep_nul_and_get_terminator)
{
    frame f;
    frame_decoder *dec = roundtrip(FRAME_RULES, &f);
    cr_assert_eq(f.rules.generation, 7);
    cr_assert_eq(f.rules.n_files, 3);
    cr_assert_str_eq(f.rules.files[0].path, "rules.yaml");
    cr_assert_str_eq((const char *)f.rules.files[0].data, rules_yaml);
    cr_assert_eq(f.rules.files[1].len, sizeof(lua_bytes));
    cr_assert_arr_eq(f.rules.files[1].data, lua_bytes, sizeof(lua_bytes));
    cr_assert_eq(f.rules.files[1].data[sizeof(lua_bytes)], 0);
    cr_assert_eq(f.rules.files[2].len, 0);
    cr_assert_not_null(f.rules.files[2].data);
    frame_decoder_free(dec);

    dec = roundtrip(FRAME_RULES_RESULT, &f);
    cr_assert_eq(f.rules_result.generation, 7);
    cr_assert_not(f.rules_result.ok);
    cr_assert_str_eq(f.rules_result.error, "rules.yaml:3: unknown key \"patern\"");
    frame_decoder_free(dec);
}

Test(frame, roundtrip_findings_fields)
{
    frame f;
    frame_decoder *dec = roundtrip(FRAME_FINDINGS, &f);
    cr_assert_eq(f.findings.seq, 99);
    cr_assert_eq(f.findings.n_findings, 2);
    const frame_finding *a = &f.findings.findings[0], *b = &f.findings.findings[1];
    cr_assert_str_eq(a->rule_id, "email-address");
    cr_assert_str_eq(a->description, "Email addresses");
    cr_assert_str_eq(a->category, "PII");
    cr_assert_eq(a->severity, FRAME_SEV_HIGH);
    cr_assert_str_eq(a->column, "contact");
    cr_assert_str_eq(a->masked_sample, "ja****om");
    cr_assert_eq(a->n_primary_keys, 2);
    cr_assert_str_eq(a->primary_keys[1].name, "tenant");
    cr_assert_str_eq(a->primary_keys[1].value, "acme");
    cr_assert_eq(a->lsn, 23456789);
    cr_assert_eq(a->op, FRAME_OP_UPDATE);
    cr_assert_eq(a->commit_time, 1795687200123456);
    cr_assert_eq(a->detected_at, 1795687200125000);
    cr_assert_eq(a->value_hash[31], 0xff);
    cr_assert_eq(b->n_primary_keys, 0);
    cr_assert_eq(b->source, FRAME_SOURCE_SNAPSHOT);
    cr_assert_eq(b->commit_time, FRAME_TIME_NULL);
    cr_assert_eq(b->detected_at, -1);
    cr_assert_str_eq(b->masked_sample, "41***************11");
    frame_decoder_free(dec);
}

Test(frame, roundtrip_small_frames_fields)
{
    frame f;
    frame_decoder *dec = roundtrip(FRAME_TXN_END, &f);
    cr_assert_eq(f.txn_end.seq, 99);
    cr_assert_eq(f.txn_end.commit_lsn, 0x16B3700);
    cr_assert_eq(f.txn_end.end_lsn, 0x16B3748);
    cr_assert_eq(f.txn_end.commit_time, 1795687200123456);
    cr_assert_eq(f.txn_end.n_findings, 2);
    frame_decoder_free(dec);

    dec = roundtrip(FRAME_TABLE_DONE, &f);
    cr_assert_eq(f.table_done.seq, 100);
    cr_assert_eq(f.table_done.relid, 16390);
    cr_assert_str_eq(f.table_done.schema, "billing");
    cr_assert_str_eq(f.table_done.table, "cards");
    cr_assert_eq(f.table_done.snapshot_lsn, 0x16B3000);
    frame_decoder_free(dec);

    dec = roundtrip(FRAME_ACK, &f);
    cr_assert_eq(f.ack.seq, 99);
    cr_assert_eq(f.ack.end_lsn, 0x16B3748);
    cr_assert_eq(f.ack.credit, 4096);
    frame_decoder_free(dec);

    dec = roundtrip(FRAME_CREDIT, &f);
    cr_assert_eq(f.credit.bytes, 1u << 20);
    frame_decoder_free(dec);

    dec = roundtrip(FRAME_HEARTBEAT, &f);
    cr_assert_eq(f.heartbeat.sent_at, 1795687200000001);
    frame_decoder_free(dec);

    dec = roundtrip(FRAME_SHUTDOWN, &f);
    cr_assert_eq(f.shutdown.mode, FRAME_SHUTDOWN_DRAIN);
    cr_assert_str_eq(f.shutdown.reason, "SIGTERM");
    frame_decoder_free(dec);

    dec = roundtrip(FRAME_EXIT, &f);
    cr_assert_eq(f.exit.code, 3);
    cr_assert_str_eq(f.exit.reason, "publication \"pgsense_pub\" does not exist in database app");
    frame_decoder_free(dec);
}

Test(frame, roundtrip_stats_fields)
{
    frame f;
    frame_decoder *dec = roundtrip(FRAME_STATS, &f);
    const frame_stats *s = &f.stats;
    cr_assert_eq(s->state, FRAME_WSTATE_STREAMING);
    cr_assert_eq(s->events, 1200);
    cr_assert_eq(s->findings, 37);
    cr_assert_eq(s->confirmed_lsn, 0x16B3748);
    cr_assert_eq(s->current_lsn, 0x16B4000);
    cr_assert_eq(s->lag_bytes, 0x8b8);
    cr_assert_eq(s->retained_wal_bytes, -1);
    cr_assert_str_eq(s->wal_status, "reserved");
    cr_assert_eq(s->tables_done, 3);
    cr_assert_eq(s->tables_total, 4);
    cr_assert_eq(s->n_table_errors, 1);
    cr_assert_str_eq(s->table_errors[0].reason, "permission denied for table secrets (42501)");
    cr_assert_eq(s->skipped_filter, 10);
    cr_assert_eq(s->skipped_type, 11);
    cr_assert_eq(s->skipped_scope, 12);
    cr_assert_eq(s->reconnects, 1);
    cr_assert_eq(s->n_script_errors, 2);
    cr_assert_str_eq(s->script_errors[1].rule_id, "other");
    cr_assert_eq(s->script_errors[1].count, UINT64_MAX);
    cr_assert_eq(s->undelivered_findings, 5);
    frame_decoder_free(dec);
}

Test(frame, equal_notices_a_changed_field)
{
    frame a, b;
    sample(FRAME_FINDINGS, &a);
    sample(FRAME_FINDINGS, &b);
    cr_assert(frame_equal(&a, &b));
    frame_finding changed[2];
    memcpy(changed, findings, sizeof(changed));
    changed[1].value_hash[5] = 1;
    b.findings.findings = changed;
    cr_assert_not(frame_equal(&a, &b));
    frame_pk pk[2] = {{"id", "42"}, {"tenant", "acmf"}};
    memcpy(changed, findings, sizeof(changed));
    changed[0].primary_keys = pk;
    cr_assert_not(frame_equal(&a, &b));
}

/* Feed everything one byte at a time: a frame appears exactly when its last byte arrives. */
Test(frame, one_byte_at_a_time)
{
    size_t total, ends[FRAME_TYPE_MAX + 1];
    uint8_t *all = encode_all(&total, ends);
    frame_decoder *dec = frame_decoder_new(FRAME_ROLE_ANY);
    int next_type = FRAME_HELLO;
    for (size_t i = 0; i < total; i++) {
        cr_assert_eq(frame_decoder_feed(dec, all + i, 1), 1);
        frame f;
        frame_status st = frame_next(dec, &f);
        if (i + 1 == ends[next_type]) {
            cr_assert_eq(st, FRAME_OK, "byte %zu: %s", i, frame_decoder_error(dec));
            frame want;
            sample(next_type, &want);
            cr_assert(frame_equal(&want, &f), "%s differs", frame_type_name(next_type));
            next_type++;
        } else {
            cr_assert_eq(st, FRAME_AGAIN, "byte %zu gave %s", i, frame_status_name(st));
        }
    }
    cr_assert_eq(next_type, FRAME_TYPE_MAX + 1);
    frame_decoder_free(dec);
    free(all);
}

Test(frame, random_chunks)
{
    size_t total, ends[FRAME_TYPE_MAX + 1];
    uint8_t *all = encode_all(&total, ends);
    srand(12345);
    for (int round = 0; round < 200; round++) {
        frame_decoder *dec = frame_decoder_new(FRAME_ROLE_ANY);
        int next_type = FRAME_HELLO;
        size_t off = 0;
        while (off < total) {
            size_t chunk = 1 + (size_t)rand() % (round % 2 ? 700 : 40);
            if (chunk > total - off)
                chunk = total - off;
            cr_assert_eq(frame_decoder_feed(dec, all + off, chunk), chunk);
            off += chunk;
            frame f;
            frame_status st;
            while ((st = frame_next(dec, &f)) == FRAME_OK) {
                frame want;
                sample(next_type, &want);
                cr_assert(frame_equal(&want, &f), "round %d: %s differs", round, frame_type_name(next_type));
                cr_assert_geq(off, ends[next_type]);
                next_type++;
            }
            cr_assert_eq(st, FRAME_AGAIN, "%s", frame_decoder_error(dec));
        }
        cr_assert_eq(next_type, FRAME_TYPE_MAX + 1);
        frame_decoder_free(dec);
    }
    free(all);
}

static void nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    cr_assert(fl >= 0);
    cr_assert_eq(fcntl(fd, F_SETFL, fl | O_NONBLOCK), 0);
}

Test(frame, several_frames_in_one_read)
{
    size_t total, ends[FRAME_TYPE_MAX + 1];
    uint8_t *all = encode_all(&total, ends);
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    cr_assert_eq(write(sv[0], all, total), (ssize_t)total);
    frame_decoder *dec = frame_decoder_new(FRAME_ROLE_ANY);
    cr_assert_eq(frame_decoder_read(dec, sv[1]), FRAME_OK);
    cr_assert_eq(frame_decoder_buffered(dec), total);
    int n = 0;
    frame f;
    while (frame_next(dec, &f) == FRAME_OK) {
        frame want;
        sample(FRAME_HELLO + n, &want);
        cr_assert(frame_equal(&want, &f));
        n++;
    }
    cr_assert_eq(n, FRAME_TYPE_MAX);
    cr_assert_eq(frame_decoder_read(dec, sv[1]), FRAME_AGAIN);
    frame_decoder_free(dec);
    close(sv[0]);
    close(sv[1]);
    free(all);
}

Test(frame, length_over_limit_fails_before_buffering)
{
    uint8_t hdr[4096] = {0};
    put32(hdr, 16u << 20); /* 16 MiB */
    hdr[4] = FRAME_RULES;
    frame_decoder *dec = frame_decoder_new(FRAME_ROLE_ANY);
    size_t before = frame_decoder_alloc(dec);
    cr_assert_eq(frame_decoder_feed(dec, hdr, sizeof(hdr)), sizeof(hdr));
    cr_assert_eq(frame_decoder_feed(dec, hdr, sizeof(hdr)), sizeof(hdr));
    cr_assert_eq(frame_decoder_alloc(dec), before, "buffer grew for an invalid length");
    frame f;
    cr_assert_eq(frame_next(dec, &f), FRAME_ERR);
    cr_assert_not_null(strstr(frame_decoder_error(dec), "exceeds the 1048572-byte limit"), "%s",
                       frame_decoder_error(dec));
    cr_assert_eq(frame_next(dec, &f), FRAME_ERR, "errors are sticky");
    frame_decoder_free(dec);

    /* one past the limit, through a socket, after only 4 bytes */
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    put32(hdr, FRAME_MAX - 3);
    cr_assert_eq(write(sv[0], hdr, 4), 4);
    dec = frame_decoder_new(FRAME_ROLE_SUPERVISOR);
    cr_assert_eq(frame_decoder_read(dec, sv[1]), FRAME_OK);
    cr_assert_eq(frame_next(dec, &f), FRAME_ERR);
    cr_assert_eq(frame_decoder_alloc(dec), before);
    frame_decoder_free(dec);
    close(sv[0]);
    close(sv[1]);
}

/* A RULES frame of exactly total bytes (total >= 34). */
static void rules_of_size(frame *f, frame_file *file, uint8_t **data, size_t total)
{
    /* header 5, generation 8, count 4, path (4 + 1), data length 4 */
    size_t n = total - 5 - 8 - 4 - 5 - 4;
    *data = malloc(n);
    cr_assert_not_null(*data);
    memset(*data, 'x', n);
    *file = (frame_file){"r", *data, (uint32_t)n};
    memset(f, 0, sizeof(*f));
    f->type = FRAME_RULES;
    f->rules.generation = 1;
    f->rules.files = file;
    f->rules.n_files = 1;
}

Test(frame, exactly_frame_max_passes_one_more_is_refused)
{
    frame f, out;
    frame_file file;
    uint8_t *data;
    rules_of_size(&f, &file, &data, FRAME_MAX);
    size_t len;
    uint8_t *b = encode(&f, &len);
    cr_assert_eq(len, FRAME_MAX);
    frame_decoder *dec = frame_decoder_new(FRAME_ROLE_WORKER);
    size_t off = 0;
    while (off < len) { /* the buffer grows to FRAME_MAX once the header is seen */
        size_t k = frame_decoder_feed(dec, b + off, len - off);
        cr_assert_gt(k, 0);
        off += k;
    }
    cr_assert_eq(frame_decoder_alloc(dec), FRAME_MAX);
    cr_assert_eq(frame_next(dec, &out), FRAME_OK, "%s", frame_decoder_error(dec));
    cr_assert(frame_equal(&f, &out));
    frame_decoder_free(dec);
    free(b);
    free(data);

    rules_of_size(&f, &file, &data, FRAME_MAX + 1);
    uint8_t small[64];
    char err[160];
    cr_assert_eq(frame_encode(&f, small, sizeof(small), &len, err, sizeof(err)), FRAME_TOOBIG);
    cr_assert_eq(len, FRAME_MAX + 1);
    cr_assert_not_null(strstr(err, "exceeds"), "%s", err);
    frame_outq *q = frame_outq_new(0);
    cr_assert_eq(frame_outq_push(q, &f), FRAME_TOOBIG);
    cr_assert_eq(frame_outq_pending(q), 0);
    frame_outq_free(q);
    free(data);
}

Test(frame, encode_into_small_buffer_reports_size)
{
    frame f;
    sample(FRAME_ACK, &f);
    uint8_t b[10];
    size_t len;
    cr_assert_eq(frame_encode(&f, b, sizeof(b), &len, NULL, 0), FRAME_FULL);
    cr_assert_eq(len, 5 + 24);
    uint8_t big[29];
    cr_assert_eq(frame_encode(&f, big, sizeof(big), &len, NULL, 0), FRAME_OK);
    const uint8_t want[] = {0, 0, 0, 25,   FRAME_ACK, 0,    0, 0, 0, 0, 0, 0, 99,   0, 0,
                            0, 0, 1, 0x6B, 0x37,      0x48, 0, 0, 0, 0, 0, 0, 0x10, 0};
    cr_assert_arr_eq(big, want, sizeof(want));
}

Test(frame, encode_refuses_invalid_fields)
{
    frame f;
    char err[160];
    size_t len;
    uint8_t b[256];
    sample(FRAME_SHUTDOWN, &f);
    f.shutdown.mode = 7;
    cr_assert_eq(frame_encode(&f, b, sizeof(b), &len, err, sizeof(err)), FRAME_ERR);
    cr_assert_str_eq(err, "SHUTDOWN.mode: value out of range");
    sample(FRAME_FINDINGS, &f);
    f.findings.findings = NULL;
    cr_assert_eq(frame_encode(&f, b, sizeof(b), &len, err, sizeof(err)), FRAME_ERR);
    f.type = (frame_type)99;
    cr_assert_eq(frame_encode(&f, b, sizeof(b), &len, err, sizeof(err)), FRAME_ERR);
    frame_outq *q = frame_outq_new(0);
    sample(FRAME_SHUTDOWN, &f);
    f.shutdown.mode = 2;
    cr_assert_eq(frame_outq_push(q, &f), FRAME_ERR);
    cr_assert_eq(frame_outq_pending(q), 0);
    cr_assert_not_null(strstr(frame_outq_error(q), "mode"));
    frame_outq_free(q);
}

Test(frame, truncated_payload)
{
    char err[192];
    uint8_t p[7] = {0};
    /* HEARTBEAT needs 8 bytes */
    cr_assert_eq(decode_raw(FRAME_HEARTBEAT, p, 7, FRAME_ROLE_ANY, err, sizeof(err)), FRAME_ERR);
    cr_assert_str_eq(err, "HEARTBEAT: field sent_at: payload ends 1 bytes short");
    /* a string whose length runs past the payload */
    uint8_t s[] = {0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 1, 0, 0, 0, 50, 'a', 'b'};
    cr_assert_eq(decode_raw(FRAME_TABLE_DONE, s, sizeof(s), FRAME_ROLE_ANY, err, sizeof(err)), FRAME_ERR);
    cr_assert_str_eq(err, "TABLE_DONE: field schema: length 50 exceeds the 2 bytes left");
    /* empty payload */
    cr_assert_eq(decode_raw(FRAME_ACK, NULL, 0, FRAME_ROLE_ANY, err, sizeof(err)), FRAME_ERR);

    /* every proper prefix of a valid payload fails */
    frame f;
    size_t len;
    sample(FRAME_START, &f);
    uint8_t *b = encode(&f, &len);
    for (size_t cut = 0; cut < len - 5; cut++)
        cr_assert_eq(decode_raw(FRAME_START, b + 5, cut, FRAME_ROLE_ANY, err, sizeof(err)), FRAME_ERR,
                     "prefix %zu accepted", cut);
    free(b);
}

Test(frame, trailing_bytes)
{
    char err[192];
    uint8_t p[27] = {0};
    p[7] = 1;
    cr_assert_eq(decode_raw(FRAME_ACK, p, 24, FRAME_ROLE_ANY, err, sizeof(err)), FRAME_OK, "%s", err);
    cr_assert_eq(decode_raw(FRAME_ACK, p, 27, FRAME_ROLE_ANY, err, sizeof(err)), FRAME_ERR);
    cr_assert_str_eq(err, "ACK: 3 trailing bytes after the payload");
}

Test(frame, absurd_array_counts)
{
    char err[192];
    /* FINDINGS: seq, then a count of 4 billion findings in 4 bytes */
    uint8_t p[] = {0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0};
    cr_assert_eq(decode_raw(FRAME_FINDINGS, p, sizeof(p), FRAME_ROLE_ANY, err, sizeof(err)), FRAME_ERR);
    cr_assert_str_eq(err,
                     "FINDINGS: field findings: count 4294967295 exceeds what the 4 bytes left can hold");
    /* STATS table_errors: count 2 with room for one empty triple only */
    frame f;
    size_t len;
    sample(FRAME_STATS, &f);
    f.stats.n_table_errors = 0;
    f.stats.n_script_errors = 0;
    uint8_t *b = encode(&f, &len);
    /* offset of table_errors count: 5 hdr + 1 + 5*8 + 8 + (4+8) + 4 + 4 */
    size_t at = 5 + 1 + 40 + 8 + 12 + 8;
    cr_assert_eq(b[at + 3], 0);
    b[at + 3] = 200;
    cr_assert_eq(decode_raw(FRAME_STATS, b + 5, len - 5, FRAME_ROLE_ANY, err, sizeof(err)), FRAME_ERR);
    cr_assert_not_null(strstr(err, "table_errors: count 200"), "%s", err);
    free(b);
}

Test(frame, nul_in_string_bad_enum_bad_bool)
{
    char err[192];
    uint8_t p[] = {1, 0, 0, 0, 3, 'a', 0, 'b'};
    cr_assert_eq(decode_raw(FRAME_EXIT, p, sizeof(p), FRAME_ROLE_ANY, err, sizeof(err)), FRAME_ERR);
    cr_assert_str_eq(err, "EXIT: field reason: string of length 3 contains a NUL byte");
    p[6] = 'c';
    cr_assert_eq(decode_raw(FRAME_EXIT, p, sizeof(p), FRAME_ROLE_ANY, err, sizeof(err)), FRAME_OK, "%s", err);

    uint8_t sd[] = {2, 0, 0, 0, 0};
    cr_assert_eq(decode_raw(FRAME_SHUTDOWN, sd, sizeof(sd), FRAME_ROLE_ANY, err, sizeof(err)), FRAME_ERR);
    cr_assert_str_eq(err, "SHUTDOWN: field mode: value 2 out of range 0..1");

    uint8_t rr[] = {0, 0, 0, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0};
    cr_assert_eq(decode_raw(FRAME_RULES_RESULT, rr, sizeof(rr), FRAME_ROLE_ANY, err, sizeof(err)), FRAME_ERR);
    cr_assert_str_eq(err, "RULES_RESULT: field ok: boolean value 2 is neither 0 nor 1");

    /* a nested field names its path */
    frame f;
    size_t len;
    sample(FRAME_FINDINGS, &f);
    uint8_t *b = encode(&f, &len);
    /* severity of finding 0: after seq, count, rule_id, description, category */
    size_t at = 5 + 8 + 4 + (4 + 13) + (4 + 15) + (4 + 3);
    cr_assert_eq(b[at], FRAME_SEV_HIGH);
    b[at] = 5;
    cr_assert_eq(decode_raw(FRAME_FINDINGS, b + 5, len - 5, FRAME_ROLE_ANY, err, sizeof(err)), FRAME_ERR);
    cr_assert_str_eq(err, "FINDINGS: field findings.severity: value 5 out of range 0..4");
    free(b);
}

Test(frame, unknown_type_and_zero_length)
{
    char err[192];
    cr_assert_eq(decode_raw(0, NULL, 0, FRAME_ROLE_ANY, err, sizeof(err)), FRAME_ERR);
    cr_assert_str_eq(err, "unknown frame type 0");
    cr_assert_eq(decode_raw(200, "abc", 3, FRAME_ROLE_ANY, err, sizeof(err)), FRAME_ERR);
    cr_assert_str_eq(err, "unknown frame type 200");
    uint8_t z[4] = {0};
    frame_decoder *dec = decoder_with(z, 4);
    frame f;
    cr_assert_eq(frame_next(dec, &f), FRAME_ERR);
    cr_assert_str_eq(frame_decoder_error(dec), "frame length 0: no type byte");
    frame_decoder_free(dec);
}

Test(frame, version_mismatch_is_distinct)
{
    char err[192];
    /* a future HELLO: version 2 and a payload of another shape */
    uint8_t v2[] = {'P', 'G', 'S', 'N', 0, 2, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9};
    uint8_t b[64];
    put32(b, sizeof(v2) + 1);
    b[4] = FRAME_HELLO;
    memcpy(b + 5, v2, sizeof(v2));
    frame_decoder *dec = frame_decoder_new(FRAME_ROLE_SUPERVISOR);
    cr_assert_eq(frame_decoder_feed(dec, b, sizeof(v2) + 5), sizeof(v2) + 5);
    frame f;
    cr_assert_eq(frame_next(dec, &f), FRAME_VERSION);
    cr_assert_eq((int)f.type, FRAME_HELLO);
    cr_assert_eq(f.hello.version, 2);
    cr_assert_not_null(strstr(frame_decoder_error(dec), "restart the supervisor"));
    cr_assert_eq(frame_next(dec, &f), FRAME_VERSION, "sticky");
    frame_decoder_free(dec);

    /* an older one, just as short */
    uint8_t v0[] = {'P', 'G', 'S', 'N', 0, 0};
    cr_assert_eq(decode_raw(FRAME_HELLO, v0, sizeof(v0), FRAME_ROLE_ANY, err, sizeof(err)), FRAME_VERSION);

    /* wrong magic: malformed, not a version problem */
    uint8_t bad[] = {'P', 'G', 'S', 'X', 0, 1, 2, 0, 0, 0, 1};
    cr_assert_eq(decode_raw(FRAME_HELLO, bad, sizeof(bad), FRAME_ROLE_ANY, err, sizeof(err)), FRAME_ERR);
    cr_assert_not_null(strstr(err, "bad magic"), "%s", err);
    bad[3] = 'N';
    cr_assert_eq(decode_raw(FRAME_HELLO, bad, sizeof(bad), FRAME_ROLE_ANY, err, sizeof(err)), FRAME_OK, "%s",
                 err);

    /* the encoder sends what it is given */
    frame h;
    frame_hello_init(&h, FRAME_ROLE_WORKER, 1);
    h.hello.version = 3;
    size_t len;
    uint8_t *e = encode(&h, &len);
    dec = decoder_with(e, len);
    cr_assert_eq(frame_next(dec, &f), FRAME_VERSION);
    cr_assert_eq(f.hello.version, 3);
    frame_decoder_free(dec);
    free(e);
}

Test(frame, direction_and_hello_role_checked)
{
    char err[192];
    frame f;
    size_t len;
    sample(FRAME_START, &f);
    uint8_t *b = encode(&f, &len);
    cr_assert_eq(decode_raw(FRAME_START, b + 5, len - 5, FRAME_ROLE_SUPERVISOR, err, sizeof(err)), FRAME_ERR);
    cr_assert_str_eq(err, "START frame is not expected from a worker");
    cr_assert_eq(decode_raw(FRAME_START, b + 5, len - 5, FRAME_ROLE_WORKER, err, sizeof(err)), FRAME_OK, "%s",
                 err);
    free(b);

    sample(FRAME_FINDINGS, &f);
    b = encode(&f, &len);
    cr_assert_eq(decode_raw(FRAME_FINDINGS, b + 5, len - 5, FRAME_ROLE_WORKER, err, sizeof(err)), FRAME_ERR);
    cr_assert_str_eq(err, "FINDINGS frame is not expected from a supervisor");
    free(b);

    frame_hello_init(&f, FRAME_ROLE_WORKER, 7);
    b = encode(&f, &len);
    cr_assert_eq(decode_raw(FRAME_HELLO, b + 5, len - 5, FRAME_ROLE_SUPERVISOR, err, sizeof(err)), FRAME_OK);
    cr_assert_eq(decode_raw(FRAME_HELLO, b + 5, len - 5, FRAME_ROLE_WORKER, err, sizeof(err)), FRAME_ERR);
    cr_assert_str_eq(err, "HELLO from a worker, expected a supervisor");
    free(b);
}

Test(frame, error_text_never_quotes_payload)
{
    char err[192];
    /* a secret-looking string with a NUL: the text names the field, not the bytes */
    uint8_t p[] = {1, 0, 0, 0, 8, 'h', 'u', 'n', 't', 'e', 'r', '2', 0};
    cr_assert_eq(decode_raw(FRAME_EXIT, p, sizeof(p), FRAME_ROLE_ANY, err, sizeof(err)), FRAME_ERR);
    cr_assert_null(strstr(err, "hunter"), "%s", err);
}

Test(frame, findings_split_by_size)
{
    enum { N = 200 };
    static frame_finding many[N];
    static char sample_text[20000];
    memset(sample_text, '*', sizeof(sample_text) - 1);
    for (int i = 0; i < N; i++) {
        many[i] = findings[i % 2];
        many[i].masked_sample = sample_text;
    }
    size_t one = frame_finding_size(&many[0]);
    frame f = {.type = FRAME_FINDINGS};
    f.findings.seq = 1;
    f.findings.findings = many;
    f.findings.n_findings = 1;
    size_t len1, len2;
    cr_assert_eq(frame_encode(&f, NULL, 0, &len1, NULL, 0), FRAME_FULL);
    cr_assert_eq(len1, FRAME_FINDINGS_OVERHEAD + one);
    f.findings.n_findings = 2;
    cr_assert_eq(frame_encode(&f, NULL, 0, &len2, NULL, 0), FRAME_FULL);
    cr_assert_eq(len2, len1 + frame_finding_size(&many[1]));

    uint32_t sent = 0, frames = 0;
    while (sent < N) {
        uint32_t k = frame_findings_fit(many + sent, N - sent, FRAME_MAX);
        cr_assert_gt(k, 0);
        f.findings.findings = many + sent;
        f.findings.n_findings = k;
        cr_assert_eq(frame_encode(&f, NULL, 0, &len1, NULL, 0), FRAME_FULL);
        cr_assert_leq(len1, FRAME_MAX);
        if (sent + k < N) {
            f.findings.n_findings = k + 1;
            cr_assert_eq(frame_encode(&f, NULL, 0, &len1, NULL, 0), FRAME_TOOBIG);
        }
        sent += k;
        frames++;
    }
    size_t all = 0;
    for (int i = 0; i < N; i++)
        all += frame_finding_size(&many[i]);
    size_t room = FRAME_MAX - FRAME_FINDINGS_OVERHEAD;
    cr_assert_eq(sent, N);
    cr_assert_geq(frames, (all + room - 1) / room);
    cr_assert_leq(frames, (all + room - 1) / room + 1, "frames %u for %zu bytes", frames, all);

    static char huge[FRAME_MAX];
    memset(huge, 'h', sizeof(huge) - 1);
    many[0].description = huge;
    cr_assert_eq(frame_findings_fit(many, N, FRAME_MAX), 0);
}

Test(frame, partial_writes_through_small_socket_buffer)
{
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    nonblock(sv[0]);
    nonblock(sv[1]);
    int small = 4096;
    cr_assert_eq(setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)), 0);
    cr_assert_eq(setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &small, sizeof(small)), 0);

    frame_outq *q = frame_outq_new(0);
    frame_decoder *dec = frame_decoder_new(FRAME_ROLE_ANY);
    enum { ROUNDS = 40 };
    int pushed = 0, received = 0, again = 0;
    static char big[200000];
    memset(big, 'm', sizeof(big) - 1);
    static frame_finding bigf[2];
    bigf[0] = findings[0];
    bigf[1] = findings[1];
    bigf[1].masked_sample = big;

    for (int r = 0; r < ROUNDS; r++) {
        for (int t = FRAME_HELLO; t <= FRAME_TYPE_MAX; t++) {
            frame f;
            sample(t, &f);
            if (t == FRAME_FINDINGS && r % 4 == 0)
                f.findings.findings = bigf;
            f.type = (frame_type)t;
            cr_assert_eq(frame_outq_push(q, &f), FRAME_OK, "%s", frame_outq_error(q));
            pushed++;
        }
    }
    size_t total = frame_outq_pending(q);
    cr_assert_gt(total, 2000000);
    int next_type = FRAME_HELLO, round = 0;
    frame_status fst;
    while ((fst = frame_outq_flush(q, sv[0])) != FRAME_OK || received < pushed) {
        cr_assert_neq(fst, FRAME_ERR, "%s", frame_outq_error(q));
        if (fst == FRAME_AGAIN)
            again++;
        frame_status rst = frame_decoder_read(dec, sv[1]);
        cr_assert(rst == FRAME_OK || rst == FRAME_AGAIN, "read gave %s", frame_status_name(rst));
        frame f;
        frame_status st;
        while ((st = frame_next(dec, &f)) == FRAME_OK) {
            frame want;
            sample(next_type, &want);
            if (next_type == FRAME_FINDINGS && round % 4 == 0)
                want.findings.findings = bigf;
            cr_assert(frame_equal(&want, &f), "frame %d (%s) differs", received, frame_type_name(next_type));
            received++;
            if (++next_type > FRAME_TYPE_MAX) {
                next_type = FRAME_HELLO;
                round++;
            }
        }
        cr_assert_eq(st, FRAME_AGAIN, "%s", frame_decoder_error(dec));
    }
    cr_assert_eq(received, pushed);
    cr_assert_gt(again, 10, "writes were never partial (%d)", again);
    cr_assert_eq(frame_outq_pending(q), 0);
    frame_outq_free(q);
    frame_decoder_free(dec);
    close(sv[0]);
    close(sv[1]);
}

Test(frame, outq_limit_refuses_without_queueing)
{
    frame_outq *q = frame_outq_new(1); /* raised to the minimum, 2 * FRAME_MAX */
    cr_assert_eq(frame_outq_limit(q), 2 * FRAME_MAX);
    frame f;
    frame_file file;
    uint8_t *data;
    rules_of_size(&f, &file, &data, 700000);
    cr_assert_eq(frame_outq_push(q, &f), FRAME_OK);
    cr_assert_eq(frame_outq_push(q, &f), FRAME_OK);
    cr_assert_eq(frame_outq_pending(q), 1400000);
    cr_assert_eq(frame_outq_push(q, &f), FRAME_FULL);
    cr_assert_eq(frame_outq_pending(q), 1400000);
    frame hb;
    sample(FRAME_HEARTBEAT, &hb);
    cr_assert_eq(frame_outq_push(q, &hb), FRAME_OK, "small control frames still fit");
    frame_outq_free(q);
    free(data);
}

Test(frame, flush_to_closed_peer_is_an_error_not_a_signal)
{
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    close(sv[1]);
    frame_outq *q = frame_outq_new(0);
    frame f;
    sample(FRAME_HEARTBEAT, &f);
    cr_assert_eq(frame_outq_push(q, &f), FRAME_OK);
    cr_assert_eq(frame_outq_flush(q, sv[0]), FRAME_ERR);
    cr_assert_eq(errno, EPIPE);
    cr_assert_not_null(strstr(frame_outq_error(q), "send:"));
    frame_outq_free(q);
    close(sv[0]);
}

Test(frame, flush_to_a_pipe_uses_write)
{
    int p[2];
    cr_assert_eq(pipe(p), 0);
    frame_outq *q = frame_outq_new(0);
    frame f;
    sample(FRAME_CREDIT, &f);
    cr_assert_eq(frame_outq_push(q, &f), FRAME_OK);
    cr_assert_eq(frame_outq_flush(q, p[1]), FRAME_OK);
    frame_decoder *dec = frame_decoder_new(FRAME_ROLE_WORKER);
    cr_assert_eq(frame_decoder_read(dec, p[0]), FRAME_OK);
    frame out;
    cr_assert_eq(frame_next(dec, &out), FRAME_OK);
    cr_assert_eq(out.credit.bytes, 1u << 20);
    frame_decoder_free(dec);
    frame_outq_free(q);
    close(p[0]);
    close(p[1]);
}

Test(frame, eof_reported_and_truncated_frame_visible)
{
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    frame f;
    size_t len;
    sample(FRAME_TXN_END, &f);
    uint8_t *b = encode(&f, &len);
    cr_assert_eq(write(sv[0], b, len), (ssize_t)len);
    cr_assert_eq(write(sv[0], b, 10), 10);
    close(sv[0]);
    frame_decoder *dec = frame_decoder_new(FRAME_ROLE_SUPERVISOR);
    cr_assert_eq(frame_decoder_read(dec, sv[1]), FRAME_OK);
    frame out;
    cr_assert_eq(frame_next(dec, &out), FRAME_OK);
    cr_assert_eq(out.txn_end.end_lsn, 0x16B3748);
    cr_assert_eq(frame_next(dec, &out), FRAME_AGAIN, "a short read is not a frame");
    cr_assert_eq(frame_decoder_read(dec, sv[1]), FRAME_EOF);
    cr_assert_eq(frame_decoder_buffered(dec), 10);
    frame_decoder_free(dec);
    close(sv[1]);
    free(b);
}

Test(frame, read_error_is_reported)
{
    frame_decoder *dec = frame_decoder_new(FRAME_ROLE_ANY);
    cr_assert_eq(frame_decoder_read(dec, -1), FRAME_ERR);
    cr_assert_eq(errno, EBADF);
    cr_assert_not_null(strstr(frame_decoder_error(dec), "read:"));
    frame_decoder_free(dec);
}

Test(frame, names)
{
    cr_assert_str_eq(frame_type_name(FRAME_TABLE_DONE), "TABLE_DONE");
    cr_assert_str_eq(frame_type_name(0), "unknown");
    cr_assert_str_eq(frame_type_name(FRAME_TYPE_MAX + 1), "unknown");
    cr_assert_str_eq(frame_status_name(FRAME_VERSION), "protocol version mismatch");
}

/*
 * Seeds for t/fuzz/fuzz_frame: the fuzzer takes its first byte as the chunk
 * size selector, so each seed is that byte and then one or more frames.
 */
Test(frame, write_fuzz_corpus)
{
    const char *dir = getenv("PGSENSE_FRAME_CORPUS");
    if (dir == NULL)
        return;
    for (int t = FRAME_HELLO; t <= FRAME_TYPE_MAX + 1; t++) {
        uint8_t *b;
        size_t len;
        char path[512], name[32];
        if (t <= FRAME_TYPE_MAX) {
            frame f;
            sample(t, &f);
            b = encode(&f, &len);
            snprintf(name, sizeof(name), "%s", frame_type_name(t));
        } else {
            size_t ends[FRAME_TYPE_MAX + 1];
            b = encode_all(&len, ends);
            snprintf(name, sizeof(name), "ALL");
        }
        for (char *c = name; *c; c++)
            *c = (char)(*c >= 'A' && *c <= 'Z' ? *c - 'A' + 'a' : *c);
        snprintf(path, sizeof(path), "%s/%02d-%s", dir, t, name);
        FILE *fp = fopen(path, "wb");
        cr_assert_not_null(fp, "%s: %s", path, strerror(errno));
        uint8_t sel = (uint8_t)((t % 8) | (t % 2 ? 0x18 : 0)); /* chunk sizes vary, role ANY */
        cr_assert_eq(fwrite(&sel, 1, 1, fp), 1);
        cr_assert_eq(fwrite(b, 1, len, fp), len);
        cr_assert_eq(fclose(fp), 0);
        free(b);
    }
}
