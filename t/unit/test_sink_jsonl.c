/* Unit tests for the sinks: the exact JSON line, jsonl flush/reopen/ENOSPC retry, log levels. */
#include <criterion/criterion.h>
#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "sink.h"

static char dir[] = "/tmp/pgsense-test-sink-XXXXXX";
static char path[256], logpath[256];
static struct ev_loop *loop;

static char *slurp(const char *p)
{
    FILE *f = fopen(p, "r");
    if (!f)
        return strdup("");
    static char buf[65536];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = '\0';
    fclose(f);
    return strdup(buf);
}

static void setup(void)
{
    cr_assert_not_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/findings.jsonl", dir);
    snprintf(logpath, sizeof(logpath), "%s/supervisor.log", dir);
    cr_assert_eq(log_open_file(logpath), 0);
    log_setup(LOG_LVL_DEBUG, LOG_FMT_CONSOLE, NULL);
    loop = ev_loop_new(EVFLAG_AUTO);
    umask(022);
}

static void teardown(void)
{
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
    strcpy(dir, "/tmp/pgsense-test-sink-XXXXXX");
    ev_loop_destroy(loop);
}

TestSuite(sink, .init = setup, .fini = teardown);

static const frame_pk spec_pk[] = {{"id", "42"}};

/* The finding of SPEC section 5's example. */
static frame_finding spec_finding(void)
{
    frame_finding f;
    memset(&f, 0, sizeof(f));
    f.rule_id = "email-address";
    f.description = "Email addresses";
    f.category = "PII";
    f.severity = FRAME_SEV_HIGH;
    f.schema = "public";
    f.table = "users";
    f.column = "contact";
    f.masked_sample = "ja****om";
    f.primary_keys = spec_pk;
    f.n_primary_keys = 1;
    f.lsn = 23456789;
    f.source = FRAME_SOURCE_STREAM;
    f.op = FRAME_OP_INSERT;
    f.commit_time = 1795687200123456LL;
    f.detected_at = 1795687200125000LL;
    return f;
}

static char *expected(const char *name)
{
    char p[512];
    snprintf(p, sizeof(p), "%s/%s", PIPELINE_DATA_DIR, name);
    return slurp(p);
}

Test(sink, json_line_is_spec_exact)
{
    frame_finding f = spec_finding();
    sink_record r = {"localhost/app", "orders", &f};
    sink_buf b = {0};
    cr_assert_eq(sink_format_json(&b, &r), 0);
    cr_assert_eq(sink_buf_append(&b, "", 1), 0);
    char *want = expected("finding.jsonl");
    cr_assert_str_eq(b.data, want);
    free(want);
    sink_buf_free(&b);
}

Test(sink, json_escapes_controls_quotes_and_bad_utf8)
{
    frame_finding f;
    memset(&f, 0, sizeof(f));
    f.rule_id = "r";
    f.description = "tab\there\nnl \x01 \x1f";
    f.category = "PII";
    f.severity = FRAME_SEV_CRITICAL;
    f.schema = "sch";
    f.table = "t\xc3\xa4"
              "ble";
    f.column = "c\xff\xc3"
               "d";
    f.masked_sample = "**";
    f.source = FRAME_SOURCE_SNAPSHOT;
    f.op = FRAME_OP_SNAPSHOT;
    f.commit_time = FRAME_TIME_NULL;
    f.detected_at = -1;
    sink_record r = {"db\"1/x", "w\\1", &f};
    sink_buf b = {0};
    cr_assert_eq(sink_format_json(&b, &r), 0);
    cr_assert_eq(sink_buf_append(&b, "", 1), 0);
    char *want = expected("escaped.jsonl");
    cr_assert_str_eq(b.data, want);
    free(want);
    sink_buf_free(&b);
}

Test(sink, time_format)
{
    char ts[40];
    sink_format_time(0, ts, sizeof(ts));
    cr_assert_str_eq(ts, "1970-01-01T00:00:00.000000Z");
    sink_format_time(1795687200000001LL, ts, sizeof(ts));
    cr_assert_str_eq(ts, "2026-11-26T10:00:00.000001Z");
}

static int progress_calls;
static void on_progress(void *ctx, sink *s)
{
    (void)ctx;
    (void)s;
    progress_calls++;
}

static void write_spec(sink *s, int n)
{
    frame_finding f = spec_finding();
    sink_record r = {"localhost/app", "orders", &f};
    for (int i = 0; i < n; i++)
        cr_assert_eq(s->ops->write(s, &r), 0);
}

/* Run the loop until the sink's fdatasync (on its sync thread) has come back: at most 5 s. */
static void settle(sink *s)
{
    for (int i = 0; i < 5000 && s->durable_pos < s->taken && !s->blocked; i++) {
        ev_run(loop, EVRUN_NOWAIT);
        if (s->durable_pos < s->taken && !s->blocked)
            usleep(1000);
    }
}

Test(sink, jsonl_flush_writes_batch_and_moves_durable_pos)
{
    char err[256];
    sink *s = sink_jsonl_new(loop, "jsonl", path, err, sizeof(err));
    cr_assert_not_null(s, "%s", err);
    s->progress = on_progress;
    progress_calls = 0;
    cr_assert(s->durable);
    write_spec(s, 3);
    cr_assert_eq(s->taken, 3);
    cr_assert_eq(s->durable_pos, 0);
    /* nothing reaches the file before the flush */
    char *c = slurp(path);
    cr_assert_str_eq(c, "");
    free(c);
    s->ops->flush(s);
    /* written at once, durable when the sync thread's fdatasync comes back */
    cr_assert_eq(s->buffered, 0);
    cr_assert_eq(progress_calls, 0);
    settle(s);
    cr_assert_eq(s->durable_pos, 3);
    cr_assert_eq(s->delivered, 3);
    cr_assert_eq(s->buffered, 0);
    cr_assert_eq(progress_calls, 1);
    c = slurp(path);
    char *one = expected("finding.jsonl");
    char three[4096];
    snprintf(three, sizeof(three), "%s%s%s", one, one, one);
    cr_assert_str_eq(c, three);
    free(c);
    free(one);
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0640);
    s->ops->destroy(s);
}

Test(sink, jsonl_reopen_after_rename)
{
    char err[256], rotated[300];
    sink *s = sink_jsonl_new(loop, "jsonl", path, err, sizeof(err));
    cr_assert_not_null(s, "%s", err);
    write_spec(s, 1);
    s->ops->flush(s);
    snprintf(rotated, sizeof(rotated), "%s.1", path);
    cr_assert_eq(rename(path, rotated), 0);
    cr_assert_eq(s->ops->prepare(s, NULL, err, sizeof(err)), 0, "%s", err);
    s->ops->commit(s);
    /* the first batch may still be syncing on the old file: this one waits for it, then goes to the new file */
    write_spec(s, 2);
    s->ops->flush(s);
    settle(s);
    cr_assert_eq(s->durable_pos, 3);
    char *one = expected("finding.jsonl"), *old = slurp(rotated), *cur = slurp(path);
    char two[4096];
    snprintf(two, sizeof(two), "%s%s", one, one);
    cr_assert_str_eq(old, one);
    cr_assert_str_eq(cur, two);
    free(one);
    free(old);
    free(cur);
    s->ops->destroy(s);
}

Test(sink, jsonl_prepare_failure_keeps_old)
{
    char err[256];
    sink *s = sink_jsonl_new(loop, "jsonl", path, err, sizeof(err));
    cr_assert_not_null(s, "%s", err);
    config cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.alerts.jsonl.path = "/nonexistent-dir/x.jsonl";
    cr_assert_eq(s->ops->prepare(s, &cfg, err, sizeof(err)), -1);
    cr_assert_not_null(strstr(err, "/nonexistent-dir/x.jsonl"), "%s", err);
    s->ops->abort(s);
    cr_assert_str_eq(sink_jsonl_path(s), path);
    write_spec(s, 1);
    s->ops->flush(s);
    settle(s);
    cr_assert_eq(s->durable_pos, 1);
    s->ops->destroy(s);
}

static void stop_when_unblocked(struct ev_loop *l, ev_timer *w, int revents)
{
    (void)revents;
    sink *s = w->data;
    if (!s->blocked)
        ev_break(l, EVBREAK_ALL);
}

static void give_up(struct ev_loop *l, ev_timer *w, int revents)
{
    (void)w;
    (void)revents;
    ev_break(l, EVBREAK_ALL);
}

Test(sink, jsonl_enospc_keeps_data_and_retries)
{
    char err[256], link[300];
    snprintf(link, sizeof(link), "%s/link.jsonl", dir);
    cr_assert_eq(symlink("/dev/full", link), 0);
    sink *s = sink_jsonl_new(loop, "jsonl", link, err, sizeof(err));
    cr_assert_not_null(s, "%s", err);
    write_spec(s, 2);
    s->ops->flush(s);
    cr_assert(s->blocked);
    cr_assert_eq(s->durable_pos, 0);
    cr_assert_eq(s->errors, 1);
    cr_assert_gt(s->buffered, 0);
    char *l = slurp(logpath);
    cr_assert_not_null(strstr(l, "No space left on device"), "%s", l);
    free(l);

    /* the operator makes room: the path now leads to a writable file */
    cr_assert_eq(unlink(link), 0);
    cr_assert_eq(symlink(path, link), 0);
    ev_timer poll;
    ev_timer_init(&poll, stop_when_unblocked, 0.01, 0.01);
    poll.data = s;
    ev_timer_start(loop, &poll);
    ev_timer guard;
    ev_timer_init(&guard, give_up, 5.0, 0.);
    ev_timer_start(loop, &guard);
    ev_run(loop, 0);
    ev_timer_stop(loop, &poll);
    ev_timer_stop(loop, &guard);
    cr_assert(!s->blocked);
    cr_assert_eq(s->durable_pos, 2);
    cr_assert_eq(s->delivered, 2);
    char *one = expected("finding.jsonl"), *cur = slurp(path);
    char two[4096];
    snprintf(two, sizeof(two), "%s%s", one, one);
    cr_assert_str_eq(cur, two);
    free(one);
    free(cur);
    s->ops->destroy(s);
}

Test(sink, log_sink_levels_and_masked_sample_only)
{
    char err[256];
    log_setup(LOG_LVL_INFO, LOG_FMT_CONSOLE, NULL);
    sink *s = sink_log_new(loop, err, sizeof(err));
    cr_assert_not_null(s);
    cr_assert(!s->durable);
    frame_finding f = spec_finding();
    sink_record r = {"localhost/app", "orders", &f};
    static const char *const want[] = {" ERROR ", " ERROR ", " WARN ", " WARN ", " INFO "};
    for (unsigned sev = 0; sev < 5; sev++) {
        cr_assert_eq(truncate(logpath, 0), 0);
        f.severity = (uint8_t)sev;
        cr_assert_eq(s->ops->write(s, &r), 0);
        char *l = slurp(logpath);
        cr_assert_null(strstr(l, "sample="), "written before the flush: %s", l); /* held: one write per flush */
        free(l);
        cr_assert_gt(s->buffered, 0);
        s->ops->flush(s);
        cr_assert_eq(s->buffered, 0);
        l = slurp(logpath);
        cr_assert_not_null(strstr(l, want[sev]), "severity %u: %s", sev, l);
        cr_assert_not_null(strstr(l, "sample=\"ja****om\""), "%s", l);
        cr_assert_not_null(strstr(l, sink_severity_name(sev)), "%s", l);
        free(l);
    }
    cr_assert_eq(s->delivered, 5);
    s->ops->destroy(s);
}

Test(sink, stdout_sink_prints_json_line)
{
    char err[256];
    char out[300];
    snprintf(out, sizeof(out), "%s/stdout.txt", dir);
    fflush(stdout);
    int saved = dup(1);
    int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    cr_assert(fd >= 0 && saved >= 0);
    cr_assert_eq(dup2(fd, 1), 1);
    close(fd);
    sink *s = sink_stdout_new(loop, err, sizeof(err));
    cr_assert_eq(dup2(saved, 1), 1);
    close(saved);
    cr_assert_not_null(s, "%s", err);
    write_spec(s, 1);
    s->ops->flush(s);
    cr_assert_eq(s->delivered, 1);
    char *one = expected("finding.jsonl"), *cur = slurp(out);
    cr_assert_str_eq(cur, one);
    free(one);
    free(cur);
    s->ops->destroy(s);
}
