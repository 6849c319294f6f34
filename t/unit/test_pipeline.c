/*
 * Unit tests for supervisor/pipeline.c: ack order with out-of-order
 * durability, routing by channels, dedup, credit and ENOSPC backpressure,
 * group commit, TABLE_DONE, metrics, status, HTTP, reload. Config and rules
 * are built by hand (the rules accessors are stubbed below).
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <ev.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "pipeline.h"
#include "rules.h"
#include "sink.h"

/* ---- a rules_set by hand ---- */

struct rules_set {
    size_t n;
    struct {
        const char *id;
        const char *ch[4];
        size_t n_ch;
    } r[8];
};

size_t rules_count(const rules_set *rs)
{
    return rs->n;
}

const char *rules_id(const rules_set *rs, size_t i)
{
    return rs->r[i].id;
}

size_t rules_channel_count(const rules_set *rs, size_t i)
{
    return rs->r[i].n_ch;
}

const char *rules_channel(const rules_set *rs, size_t i, size_t k)
{
    return rs->r[i].ch[k];
}

/* ---- a sink the test drives: durable or not, completing when told ---- */

typedef struct {
    sink base;
    bool auto_complete; /* durable at flush, as jsonl */
    int flushes;
    char rules_seen[16][32];
    size_t n_seen;
} fake_sink;

static int fake_write(sink *s, const sink_record *r)
{
    fake_sink *f = (fake_sink *)s;
    if (f->n_seen < 16)
        snprintf(f->rules_seen[f->n_seen], sizeof(f->rules_seen[0]), "%s", r->f->rule_id);
    f->n_seen++;
    s->taken++;
    s->buffered += 100;
    return 0;
}

static void fake_complete(sink *s)
{
    s->durable_pos = s->taken;
    s->delivered = s->taken;
    s->buffered = 0;
    if (s->progress)
        s->progress(s->progress_ctx, s);
}

static void fake_flush(sink *s)
{
    fake_sink *f = (fake_sink *)s;
    f->flushes++;
    if (f->auto_complete || !s->durable)
        fake_complete(s);
}

static void fake_destroy(sink *s)
{
    free(s->name);
    free(s);
}

static const sink_ops fake_ops = {
    .kind = "fake", .write = fake_write, .flush = fake_flush, .destroy = fake_destroy};

static fake_sink *add_fake(pipeline *p, const char *name, bool durable, bool auto_complete)
{
    fake_sink *f = calloc(1, sizeof(*f));
    cr_assert_not_null(f);
    f->base.ops = &fake_ops;
    f->base.name = strdup(name);
    f->base.durable = durable;
    f->auto_complete = auto_complete;
    cr_assert_eq(pipeline_add_sink(p, &f->base), 0);
    return f;
}

/* ---- callbacks ---- */

static struct {
    uint64_t ack_seq[64], ack_lsn[64];
    int n_acks;
    uint64_t credit_bytes;
    int n_credits;
    char ready[8][64];
    int n_ready;
    int ready_before_ack; /* n_acks when the last ready came */
    pipeline_src *free_on_ack;
} cb;

static void on_ack(void *ctx, uint64_t seq, uint64_t lsn)
{
    (void)ctx;
    if (cb.n_acks < 64) {
        cb.ack_seq[cb.n_acks] = seq;
        cb.ack_lsn[cb.n_acks] = lsn;
    }
    cb.n_acks++;
    if (cb.free_on_ack) {
        pipeline_src *s = cb.free_on_ack;
        cb.free_on_ack = NULL;
        pipeline_src_free(s);
    }
}

static void on_credit(void *ctx, uint64_t bytes)
{
    (void)ctx;
    cb.credit_bytes += bytes;
    cb.n_credits++;
}

static void on_ready(void *ctx, const frame_table_done *t)
{
    (void)ctx;
    if (cb.n_ready < 8)
        snprintf(cb.ready[cb.n_ready], sizeof(cb.ready[0]), "%s.%s/%u/%llu", t->schema, t->table,
                 (unsigned)t->relid, (unsigned long long)t->seq);
    cb.n_ready++;
    cb.ready_before_ack = cb.n_acks;
}

/* ---- fixtures ---- */

static char dir[] = "/tmp/pgsense-test-pipe-XXXXXX";
static char jpath[256], logpath[256];
static struct ev_loop *loop;
static config cfg;
static config_db db;

static void setup(void)
{
    memset(&cb, 0, sizeof(cb));
    cr_assert_not_null(mkdtemp(dir));
    snprintf(jpath, sizeof(jpath), "%s/findings.jsonl", dir);
    snprintf(logpath, sizeof(logpath), "%s/supervisor.log", dir);
    cr_assert_eq(log_open_file(logpath), 0);
    log_setup(LOG_LVL_INFO, LOG_FMT_CONSOLE, NULL);
    loop = ev_loop_new(EVFLAG_AUTO);
    memset(&cfg, 0, sizeof(cfg));
    memset(&db, 0, sizeof(db));
    db.name = "orders";
    db.dbname = "app";
    db.host = "localhost";
    db.identity = "localhost/app";
    cfg.dbs = &db;
    cfg.n_dbs = 1;
    cfg.alerts.dedup_window_seconds = 300;
    cfg.alerts.dedup_max_entries = 1000;
    cfg.alerts.log_sink.enabled = false;
    cfg.alerts.stdout_sink.enabled = false;
    cfg.alerts.jsonl.enabled = false;
    cfg.alerts.jsonl.name = "jsonl";
    cfg.alerts.jsonl.path = jpath;
    cfg.server.enabled = false;
    cfg.server.listen = "127.0.0.1:0";
}

static void teardown(void)
{
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
    strcpy(dir, "/tmp/pgsense-test-pipe-XXXXXX");
    ev_loop_destroy(loop);
}

TestSuite(pipeline, .init = setup, .fini = teardown);

static const frame_pk pk42[] = {{"id", "42"}};

static frame_finding finding(const char *rule, uint8_t hash_byte)
{
    frame_finding f;
    memset(&f, 0, sizeof(f));
    f.rule_id = rule;
    f.description = "Email addresses";
    f.category = "PII";
    f.severity = FRAME_SEV_HIGH;
    f.schema = "public";
    f.table = "users";
    f.column = "contact";
    f.masked_sample = "ja****om";
    f.primary_keys = pk42;
    f.n_primary_keys = 1;
    f.lsn = 23456789;
    f.source = FRAME_SOURCE_STREAM;
    f.op = FRAME_OP_INSERT;
    f.commit_time = 1795687200123456LL;
    f.detected_at = 1795687200125000LL;
    f.value_hash[0] = hash_byte;
    return f;
}

static void send_findings(pipeline_src *s, uint64_t seq, const char *rule, uint8_t hash_byte, size_t bytes)
{
    frame_finding f = finding(rule, hash_byte);
    frame_findings ff = {.seq = seq, .findings = &f, .n_findings = 1};
    pipeline_findings(s, &ff, bytes);
}

static void send_txn_end(pipeline_src *s, uint64_t seq, uint64_t end_lsn, uint32_t n)
{
    frame_txn_end t = {.seq = seq, .commit_lsn = end_lsn - 8, .end_lsn = end_lsn, .n_findings = n};
    pipeline_txn_end(s, &t);
}

static pipeline *new_pipe(const rules_set *rs)
{
    char err[256];
    pipeline *p = pipeline_new(loop, &cfg, rs, err, sizeof(err));
    cr_assert_not_null(p, "%s", err);
    return p;
}

static pipeline_src *new_src(pipeline *p)
{
    pipeline_src *s = pipeline_src_new(p, "orders", "localhost/app", on_ack, on_credit, on_ready, NULL);
    cr_assert_not_null(s);
    return s;
}

static char *slurp(const char *p)
{
    FILE *f = fopen(p, "r");
    if (!f)
        return strdup("");
    static char buf[1 << 20];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = '\0';
    fclose(f);
    return strdup(buf);
}

/* Run the loop until every sink is idle (the jsonl sink's fdatasync runs on
 * its own thread and comes back through the loop): at most 5 s. */
static void settle(pipeline *p)
{
    for (int i = 0; i < 5000 && !pipeline_sinks_idle(p); i++) {
        ev_run(loop, EVRUN_NOWAIT);
        if (!pipeline_sinks_idle(p))
            usleep(1000);
    }
    ev_run(loop, EVRUN_NOWAIT);
}

static size_t count_lines(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

static char *capture(pipeline *p, int (*fn)(pipeline *, FILE *))
{
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    cr_assert_not_null(out);
    cr_assert_eq(fn(p, out), 0);
    cr_assert_eq(fclose(out), 0);
    return buf;
}

/* ---- tests ---- */

Test(pipeline, acks_in_seq_order_when_durability_completes_out_of_order)
{
    rules_set rs = {.n = 2, .r = {{"r-a", {"A"}, 1}, {"r-b", {"B"}, 1}}};
    pipeline *p = new_pipe(&rs);
    fake_sink *a = add_fake(p, "A", true, false), *b = add_fake(p, "B", true, false);
    pipeline_src *s = new_src(p);

    send_findings(s, 1, "r-a", 1, 500);
    send_txn_end(s, 1, 100, 1);
    send_findings(s, 2, "r-b", 2, 700);
    send_txn_end(s, 2, 200, 1);
    send_txn_end(s, 3, 300, 0); /* no findings: waits for its turn */
    cr_assert_eq(cb.n_acks, 0);
    cr_assert_eq(cb.credit_bytes, 1200, "credit returns when taken, not at txn end");
    cr_assert_eq(pipeline_src_unacked(s), 3);

    fake_complete(&b->base); /* seq 2 durable first: seq 1 still holds it */
    cr_assert_eq(cb.n_acks, 0);
    fake_complete(&a->base);
    cr_assert_eq(cb.n_acks, 1);
    cr_assert_eq(cb.ack_seq[0], 3);
    cr_assert_eq(cb.ack_lsn[0], 300);
    cr_assert_eq(pipeline_src_unacked(s), 0);

    /* a later seq with no durable route is acked as soon as it is its turn */
    send_txn_end(s, 4, 400, 0);
    cr_assert_eq(cb.n_acks, 2);
    cr_assert_eq(cb.ack_seq[1], 4);
    cr_assert_eq(cb.ack_lsn[1], 400);
    pipeline_src_free(s);
    pipeline_free(p);
}

Test(pipeline, routing_by_channels)
{
    rules_set rs = {
        .n = 3,
        .r = {{"only-stdout", {"stdout"}, 1}, {"unknown-ch", {"siem"}, 1}, {"both", {"jsonl", "stdout"}, 2}}};
    pipeline *p = new_pipe(&rs);
    fake_sink *j = add_fake(p, "jsonl", true, true), *o = add_fake(p, "stdout", false, false);
    pipeline_src *s = new_src(p);

    send_findings(s, 1, "only-stdout", 1, 100);
    send_findings(s, 1, "unknown-ch", 2, 100);
    send_findings(s, 1, "both", 3, 100);
    send_findings(s, 1, "no-channels", 4, 100); /* not in rules: every sink */
    send_txn_end(s, 1, 100, 4);

    cr_assert_eq(o->n_seen, 3);
    cr_assert_str_eq(o->rules_seen[0], "only-stdout");
    cr_assert_str_eq(o->rules_seen[1], "both");
    cr_assert_str_eq(o->rules_seen[2], "no-channels");
    cr_assert_eq(j->n_seen, 2);
    cr_assert_str_eq(j->rules_seen[0], "both");
    cr_assert_str_eq(j->rules_seen[1], "no-channels");

    cr_assert_eq(cb.n_acks, 0); /* jsonl needs its flush: end of this loop iteration */
    ev_run(loop, EVRUN_NOWAIT);
    cr_assert_eq(j->flushes, 1);
    cr_assert_eq(cb.n_acks, 1);
    cr_assert_eq(cb.ack_seq[0], 1);
    pipeline_src_free(s);
    pipeline_free(p);
}

Test(pipeline, only_non_durable_routes_ack_at_once)
{
    rules_set rs = {.n = 1, .r = {{"r", {"log"}, 1}}};
    pipeline *p = new_pipe(&rs);
    add_fake(p, "jsonl", true, false); /* never completes */
    fake_sink *l = add_fake(p, "log", false, false);
    pipeline_src *s = new_src(p);
    send_findings(s, 1, "r", 1, 100);
    send_txn_end(s, 1, 111, 1);
    cr_assert_eq(l->n_seen, 1);
    cr_assert_eq(cb.n_acks, 1);
    cr_assert_eq(cb.ack_lsn[0], 111);
    pipeline_src_free(s);
    pipeline_free(p);
}

Test(pipeline, dedup_suppresses_but_still_acks)
{
    pipeline *p = new_pipe(NULL);
    fake_sink *j = add_fake(p, "jsonl", true, true);
    pipeline_src *s = new_src(p);
    send_findings(s, 1, "email", 7, 100);
    send_txn_end(s, 1, 100, 1);
    send_findings(s, 2, "email", 7, 100); /* same key */
    send_txn_end(s, 2, 200, 1);
    send_findings(s, 3, "email", 8, 100); /* other value hash */
    send_txn_end(s, 3, 300, 1);
    cr_assert_eq(j->n_seen, 2);
    pipeline_drain(p);
    settle(p);
    cr_assert_eq(cb.n_acks, 1);
    cr_assert_eq(cb.ack_seq[0], 3);
    cr_assert_eq(cb.ack_lsn[0], 300);
    char *m = capture(p, pipeline_metrics_text);
    cr_assert_not_null(strstr(m, "pgsense_dedup_total{database=\"localhost/app\",outcome=\"passed\"} 2\n"),
                       "%s", m);
    cr_assert_not_null(
        strstr(m, "pgsense_dedup_total{database=\"localhost/app\",outcome=\"suppressed\"} 1\n"), "%s", m);
    cr_assert_not_null(
        strstr(m,
               "pgsense_findings_total{database=\"localhost/app\",category=\"PII\",severity=\"HIGH\"} 3\n"),
        "%s", m);
    free(m);
    pipeline_src_free(s);
    pipeline_free(p);
}

Test(pipeline, dedup_evictions_are_counted)
{
    cfg.alerts.dedup_max_entries = 2;
    pipeline *p = new_pipe(NULL);
    add_fake(p, "jsonl", true, true);
    pipeline_src *s = new_src(p);
    for (uint8_t i = 1; i <= 5; i++)
        send_findings(s, 1, "email", i, 100);
    send_txn_end(s, 1, 100, 5);
    char *m = capture(p, pipeline_metrics_text);
    cr_assert_not_null(strstr(m, "pgsense_dedup_total{database=\"localhost/app\",outcome=\"evicted\"} 3\n"),
                       "%s", m);
    free(m);
    pipeline_src_free(s);
    pipeline_free(p);
}

Test(pipeline, jsonl_end_to_end_exact_and_status)
{
    cfg.alerts.jsonl.enabled = true;
    pipeline *p = new_pipe(NULL);
    pipeline_src *s = new_src(p);
    send_findings(s, 1, "email-address", 1, 321);
    send_txn_end(s, 1, 5000, 1);
    char *c = slurp(jpath);
    cr_assert_str_eq(c, "", "nothing written before the flush");
    free(c);
    ev_run(loop, EVRUN_NOWAIT); /* end of the iteration: write, fdatasync on the sync thread */
    settle(p);                  /* its completion: ack */
    cr_assert_eq(cb.n_acks, 1);
    cr_assert_eq(cb.ack_lsn[0], 5000);
    c = slurp(jpath);
    char want[1024];
    snprintf(want, sizeof(want), "%s/finding.jsonl", PIPELINE_DATA_DIR);
    char *w = slurp(want);
    cr_assert_str_eq(c, w);
    free(c);
    free(w);
    char *st = capture(p, pipeline_status_json);
    cr_assert_str_eq(st, "[{\"name\":\"jsonl\",\"delivered\":1,\"errors\":0,\"dropped\":0}]");
    free(st);
    pipeline_src_free(s);
    pipeline_free(p);
}

Test(pipeline, group_commit_one_flush_one_ack)
{
    cfg.alerts.jsonl.enabled = true;
    pipeline *p = new_pipe(NULL);
    pipeline_src *s = new_src(p);
    for (uint64_t seq = 1; seq <= 50; seq++) {
        send_findings(s, seq, "email", (uint8_t)seq, 100);
        send_txn_end(s, seq, seq * 1000, 1);
    }
    cr_assert_eq(cb.n_acks, 0);
    ev_run(loop, EVRUN_NOWAIT);
    settle(p);
    cr_assert_eq(cb.n_acks, 1);
    cr_assert_eq(cb.ack_seq[0], 50);
    cr_assert_eq(cb.ack_lsn[0], 50000);
    char *c = slurp(jpath);
    cr_assert_eq(count_lines(c), 50);
    free(c);
    pipeline_src_free(s);
    pipeline_free(p);
}

Test(pipeline, open_transaction_is_flushed_by_the_batch_timer)
{
    cfg.alerts.jsonl.enabled = true;
    pipeline *p = new_pipe(NULL);
    pipeline_src *s = new_src(p);
    send_findings(s, 1, "email", 1, 100);
    ev_run(loop, EVRUN_ONCE); /* the 5 ms timer */
    settle(p);
    char *c = slurp(jpath);
    cr_assert_eq(count_lines(c), 1);
    free(c);
    cr_assert_eq(cb.n_acks, 0, "no ack before TXN_END");
    send_txn_end(s, 1, 100, 1);
    cr_assert_eq(cb.n_acks, 1, "already durable: acked at TXN_END");
    pipeline_src_free(s);
    pipeline_free(p);
}

static void break_when_acked(struct ev_loop *l, ev_timer *w, int revents)
{
    (void)w;
    (void)revents;
    if (cb.n_acks > 0)
        ev_break(l, EVBREAK_ALL);
}

static void give_up(struct ev_loop *l, ev_timer *w, int revents)
{
    (void)w;
    (void)revents;
    ev_break(l, EVBREAK_ALL);
}

Test(pipeline, enospc_backpressure_then_delivery)
{
    char link[300];
    snprintf(link, sizeof(link), "%s/link.jsonl", dir);
    cr_assert_eq(symlink("/dev/full", link), 0);
    cfg.alerts.jsonl.enabled = true;
    cfg.alerts.jsonl.path = link;
    pipeline *p = new_pipe(NULL);
    pipeline_src *s = new_src(p);

    send_findings(s, 1, "email", 1, 400);
    send_txn_end(s, 1, 1000, 1);
    ev_run(loop, EVRUN_NOWAIT); /* flush: ENOSPC */
    sink *j = pipeline_sink(p, "jsonl");
    cr_assert_not_null(j);
    cr_assert(j->blocked);
    cr_assert_eq(cb.n_acks, 0);
    uint64_t credit_before = cb.credit_bytes;

    /* from now on: no credit (the worker stops reading), no ack, nothing lost */
    send_findings(s, 2, "email", 2, 600);
    send_txn_end(s, 2, 2000, 1);
    send_findings(s, 3, "email", 3, 700);
    ev_run(loop, EVRUN_NOWAIT);
    cr_assert_eq(cb.credit_bytes, credit_before);
    cr_assert_eq(pipeline_src_withheld(s), 1300);
    cr_assert_eq(cb.n_acks, 0);
    cr_assert_geq(j->errors, 1);
    char *st = capture(p, pipeline_status_json);
    cr_assert_not_null(strstr(st, "\"errors\":"), "%s", st);
    cr_assert_null(strstr(st, "\"errors\":0"), "%s", st);
    free(st);

    /* space again: the retry timer reopens the path and delivers */
    cr_assert_eq(unlink(link), 0);
    cr_assert_eq(symlink(jpath, link), 0);
    ev_timer poll, guard;
    ev_timer_init(&poll, break_when_acked, 0.01, 0.01);
    ev_timer_init(&guard, give_up, 5.0, 0.);
    ev_timer_start(loop, &poll);
    ev_timer_start(loop, &guard);
    ev_run(loop, 0);
    ev_timer_stop(loop, &poll);
    ev_timer_stop(loop, &guard);
    cr_assert(!j->blocked);
    cr_assert_eq(cb.n_acks, 1);
    cr_assert_eq(cb.ack_seq[0], 2);
    cr_assert_eq(cb.ack_lsn[0], 2000);
    cr_assert_eq(pipeline_src_withheld(s), 0);
    cr_assert_eq(cb.credit_bytes, credit_before + 1300);
    char *c = slurp(jpath);
    cr_assert_eq(count_lines(c), 3, "%s", c);
    free(c);
    char *l = slurp(logpath);
    cr_assert_not_null(strstr(l, "No space left on device"), "%s", l);
    free(l);
    pipeline_src_free(s);
    pipeline_free(p);
}

Test(pipeline, table_done_ready_before_ack_and_copied)
{
    pipeline *p = new_pipe(NULL);
    fake_sink *j = add_fake(p, "jsonl", true, false);
    pipeline_src *s = new_src(p);
    send_findings(s, 1, "email", 1, 100);
    char schema[16] = "public", table[16] = "users";
    frame_table_done td = {.seq = 1, .relid = 16384, .schema = schema, .table = table, .snapshot_lsn = 77};
    pipeline_table_done(s, &td);
    strcpy(schema, "XXXXXX"); /* the pipeline kept its own copy */
    strcpy(table, "XXXXX");
    cr_assert_eq(cb.n_ready, 0);
    fake_complete(&j->base);
    cr_assert_eq(cb.n_ready, 1);
    cr_assert_str_eq(cb.ready[0], "public.users/16384/1");
    cr_assert_eq(cb.ready_before_ack, 0);
    cr_assert_eq(cb.n_acks, 1);
    cr_assert_eq(cb.ack_seq[0], 1);
    cr_assert_eq(cb.ack_lsn[0], 0, "no stream LSN among acked seqs");
    pipeline_src_free(s);
    pipeline_free(p);
}

Test(pipeline, src_freed_from_its_ack_callback)
{
    pipeline *p = new_pipe(NULL);
    fake_sink *j = add_fake(p, "jsonl", true, false);
    pipeline_src *s = new_src(p);
    send_findings(s, 1, "email", 1, 100);
    send_txn_end(s, 1, 100, 1);
    send_findings(s, 2, "email", 2, 100);
    cb.free_on_ack = s;
    fake_complete(&j->base);
    cr_assert_eq(cb.n_acks, 1);
    /* s is gone (ASan would catch a use after free); the pipeline still works */
    pipeline_src *s2 = new_src(p);
    send_txn_end(s2, 1, 100, 0);
    cr_assert_eq(cb.n_acks, 2);
    pipeline_src_free(s2);
    pipeline_free(p);
}

Test(pipeline, worker_gone_drops_unacked)
{
    pipeline *p = new_pipe(NULL);
    fake_sink *j = add_fake(p, "jsonl", true, false);
    pipeline_src *s = new_src(p);
    send_findings(s, 1, "email", 1, 100);
    send_txn_end(s, 1, 100, 1);
    pipeline_src_free(s);
    fake_complete(&j->base);
    cr_assert_eq(cb.n_acks, 0);
    pipeline_free(p);
}

Test(pipeline, protocol_violation_is_logged_not_fatal)
{
    pipeline *p = new_pipe(NULL);
    add_fake(p, "jsonl", true, true);
    pipeline_src *s = new_src(p);
    send_txn_end(s, 5, 500, 0);
    send_findings(s, 3, "email", 1, 100); /* older seq */
    send_txn_end(s, 5, 500, 0);           /* closed already */
    char *l = slurp(logpath);
    cr_assert_not_null(strstr(l, "protocol violation"), "%s", l);
    free(l);
    cr_assert_eq(cb.n_acks, 1);
    pipeline_src_free(s);
    pipeline_free(p);
}

Test(pipeline, metrics_from_stats_and_events)
{
    rules_set rs = {.n = 2, .r = {{"a", {0}, 0}, {"b", {0}, 0}}};
    pipeline *p = new_pipe(&rs);
    frame_script_error se[] = {{"lua-rule", 2}};
    frame_stats st;
    memset(&st, 0, sizeof(st));
    st.state = FRAME_WSTATE_STREAMING;
    st.events = 1200;
    st.lag_bytes = 4096;
    st.retained_wal_bytes = 81920;
    st.skipped_type = 7;
    st.reconnects = 1;
    st.script_errors = se;
    st.n_script_errors = 1;
    st.wal_status = "";
    pipeline_worker_stats(p, "orders", &st);
    st.events = 1300;
    se[0].count = 5;
    pipeline_worker_stats(p, "orders", &st);
    pipeline_worker_event(p, "orders", "restart");
    st.events = 50; /* the new process counts from 0 */
    se[0].count = 1;
    pipeline_worker_stats(p, "orders", &st);
    pipeline_reload_result(p, true);
    pipeline_reload_result(p, false);
    pipeline_reload_result(p, true);
    char *m = capture(p, pipeline_metrics_text);
    static const char *const want[] = {
        "# TYPE pgsense_events_total counter\npgsense_events_total{database=\"localhost/app\"} 1350\n",
        "pgsense_worker_restarts_total{database=\"localhost/app\"} 1\n",
        "pgsense_pipeline_connected{database=\"localhost/app\"} 1\n",
        "pgsense_pipeline_reconnects_total{database=\"localhost/app\"} 2\n",
        "pgsense_events_skipped_total{database=\"localhost/app\",reason=\"type\"} 14\n",
        "pgsense_config_reloads_total{status=\"ok\"} 2\npgsense_config_reloads_total{status=\"error\"} 1\n",
        "# TYPE pgsense_rules_loaded gauge\npgsense_rules_loaded 2\n",
        "pgsense_script_errors_total{rule_id=\"lua-rule\"} 6\n",
        "pgsense_replication_lag_bytes{database=\"localhost/app\"} 4096\n",
        "pgsense_retained_wal_bytes{database=\"localhost/app\"} 81920\n",
        "# HELP pgsense_alerts_total ",
        "# HELP pgsense_alerts_dropped_total ",
        "# HELP pgsense_queue_depth ",
        "# HELP pgsense_findings_total ",
        "# HELP pgsense_dedup_total ",
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        cr_assert_not_null(strstr(m, want[i]), "missing %s in:\n%s", want[i], m);
    free(m);
    pipeline_free(p);
}

Test(pipeline, alerts_metrics_per_sink)
{
    cfg.alerts.jsonl.enabled = true;
    pipeline *p = new_pipe(NULL);
    pipeline_src *s = new_src(p);
    send_findings(s, 1, "email", 1, 100);
    send_findings(s, 1, "email", 2, 100);
    send_txn_end(s, 1, 100, 2);
    pipeline_drain(p);
    settle(p);
    char *m = capture(p, pipeline_metrics_text);
    cr_assert_not_null(strstr(m, "pgsense_alerts_total{channel=\"jsonl\",status=\"ok\"} 2\n"
                                 "pgsense_alerts_total{channel=\"jsonl\",status=\"error\"} 0\n"),
                       "%s", m);
    cr_assert_not_null(strstr(m, "pgsense_alerts_dropped_total{channel=\"jsonl\"} 0\n"), "%s", m);
    cr_assert_not_null(strstr(m, "pgsense_queue_depth{database=\"localhost/app\"} 0\n"), "%s", m);
    free(m);
    pipeline_src_free(s);
    pipeline_free(p);
}

/* Send one request and drive the loop until the server closes the connection. */
static char *request(uint16_t port, const char *path)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0, "%s", strerror(errno));
    char req[256];
    int n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", path);
    cr_assert_eq(write(fd, req, (size_t)n), n);
    static char buf[65536];
    size_t len = 0;
    for (int i = 0; i < 2000; i++) {
        ev_run(loop, EVRUN_NOWAIT);
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (poll(&pfd, 1, 2) > 0) {
            ssize_t r = read(fd, buf + len, sizeof(buf) - 1 - len);
            if (r <= 0)
                break;
            len += (size_t)r;
        }
    }
    close(fd);
    buf[len] = '\0';
    return buf;
}

Test(pipeline, http_ready_follows_workers)
{
    cfg.server.enabled = true;
    pipeline *p = new_pipe(NULL);
    uint16_t port = pipeline_http_port(p);
    cr_assert_gt(port, 0);
    char *r = request(port, "/ready");
    cr_assert(strncmp(r, "HTTP/1.1 503", 12) == 0, "%s", r);
    frame_stats st;
    memset(&st, 0, sizeof(st));
    st.state = FRAME_WSTATE_STREAMING;
    st.wal_status = "";
    pipeline_worker_stats(p, "orders", &st);
    r = request(port, "/ready");
    cr_assert(strncmp(r, "HTTP/1.1 200", 12) == 0, "%s", r);
    pipeline_worker_event(p, "orders", "disconnected");
    r = request(port, "/ready");
    cr_assert(strncmp(r, "HTTP/1.1 503", 12) == 0, "%s", r);
    r = request(port, "/metrics");
    cr_assert(strncmp(r, "HTTP/1.1 200", 12) == 0, "%s", r);
    cr_assert_not_null(strstr(r, "pgsense_pipeline_connected{database=\"localhost/app\"} 0\n"), "%s", r);
    r = request(port, "/health");
    cr_assert_not_null(strstr(r, "\r\n\r\nok\n"), "%s", r);
    pipeline_free(p);
}

Test(pipeline, reload_reopens_and_failure_keeps_old)
{
    cfg.alerts.jsonl.enabled = true;
    cfg.alerts.log_sink.enabled = true;
    pipeline *p = new_pipe(NULL);
    pipeline_src *s = new_src(p);
    char err[256], other[300];

    /* a bad path: -1, everything as it was */
    cfg.alerts.jsonl.path = "/nonexistent-dir/f.jsonl";
    cr_assert_eq(pipeline_reconfigure(p, &cfg, NULL, err, sizeof(err)), -1);
    cr_assert_not_null(strstr(err, "/nonexistent-dir/f.jsonl"), "%s", err);
    send_findings(s, 1, "email", 1, 100);
    send_txn_end(s, 1, 100, 1);
    pipeline_drain(p);
    settle(p);
    cr_assert_eq(cb.n_acks, 1);
    char *c = slurp(jpath);
    cr_assert_eq(count_lines(c), 1);
    free(c);

    /* a new path, log sink off */
    snprintf(other, sizeof(other), "%s/other.jsonl", dir);
    cfg.alerts.jsonl.path = other;
    cfg.alerts.log_sink.enabled = false;
    cr_assert_eq(pipeline_reconfigure(p, &cfg, NULL, err, sizeof(err)), 0, "%s", err);
    cr_assert_null(pipeline_sink(p, "log"));
    send_findings(s, 2, "email", 2, 100);
    send_txn_end(s, 2, 200, 1);
    pipeline_drain(p);
    settle(p);
    cr_assert_eq(cb.n_acks, 2);
    c = slurp(other);
    cr_assert_eq(count_lines(c), 1);
    free(c);
    char *st = capture(p, pipeline_status_json);
    cr_assert_str_eq(st, "[{\"name\":\"jsonl\",\"delivered\":2,\"errors\":0,\"dropped\":0}]");
    free(st);
    pipeline_src_free(s);
    pipeline_free(p);
}

/* ---- latency: 1,000 one-row transactions per second through jsonl ---- */

#define LAT_N 1000
static struct {
    pipeline_src *s;
    uint64_t sent, acked;
    ev_tstamp sent_at[LAT_N + 1], acked_at[LAT_N + 1];
} lat;

static void lat_ack(void *ctx, uint64_t seq, uint64_t lsn)
{
    (void)ctx;
    (void)lsn;
    ev_tstamp now = ev_time();
    for (uint64_t q = lat.acked + 1; q <= seq && q <= LAT_N; q++)
        lat.acked_at[q] = now;
    lat.acked = seq;
    if (lat.acked >= LAT_N)
        ev_break(loop, EVBREAK_ALL);
}

static void lat_tick(struct ev_loop *l, ev_timer *w, int revents)
{
    (void)l;
    (void)revents;
    if (lat.sent >= LAT_N) {
        ev_timer_stop(l, w);
        return;
    }
    uint64_t seq = ++lat.sent;
    lat.sent_at[seq] = ev_time();
    send_findings(lat.s, seq, "email", (uint8_t)seq, 300);
    send_txn_end(lat.s, seq, seq * 100, 1);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

Test(pipeline, p99_commit_to_ack_under_50ms_at_1000_per_s, .timeout = 30)
{
    snprintf(jpath, sizeof(jpath), "%s/lat.jsonl", PIPELINE_BUILD_DIR);
    unlink(jpath);
    cfg.alerts.jsonl.enabled = true;
    cfg.alerts.dedup_window_seconds = 0;
    pipeline *p = new_pipe(NULL);
    memset(&lat, 0, sizeof(lat));
    lat.s = pipeline_src_new(p, "orders", "localhost/app", lat_ack, on_credit, on_ready, NULL);
    cr_assert_not_null(lat.s);
    ev_timer tick, guard;
    ev_timer_init(&tick, lat_tick, 0.001, 0.001);
    ev_timer_init(&guard, give_up, 20.0, 0.);
    ev_timer_start(loop, &tick);
    ev_timer_start(loop, &guard);
    ev_run(loop, 0);
    ev_timer_stop(loop, &tick);
    ev_timer_stop(loop, &guard);
    cr_assert_eq(lat.acked, LAT_N);
    static double d[LAT_N];
    for (size_t i = 0; i < LAT_N; i++)
        d[i] = lat.acked_at[i + 1] - lat.sent_at[i + 1];
    qsort(d, LAT_N, sizeof(d[0]), cmp_double);
    double p99 = d[LAT_N * 99 / 100];
    cr_log_info("commit-to-ack p50 %.3f ms, p99 %.3f ms, max %.3f ms", d[LAT_N / 2] * 1e3, p99 * 1e3,
                d[LAT_N - 1] * 1e3);
    cr_assert_lt(p99, 0.050, "p99 %.3f ms", p99 * 1e3);
    pipeline_src_free(lat.s);
    pipeline_free(p);
    unlink(jpath);
}
