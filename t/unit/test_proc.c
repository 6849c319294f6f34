/*
 * Unit tests for supervisor/proc.c's restart policy (backoff schedule with a
 * deterministic jitter source, exit-code meanings, healthy reset) and for
 * supervisor/status.c (status.json shape checked with json-c, atomic write).
 */
#include <criterion/criterion.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "proc.h"
#include "status.h"

/* ---- backoff ---- */

Test(backoff, doubles_from_one_second_to_sixty_without_jitter)
{
    const uint64_t want[] = {1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000, 60000};
    for (unsigned i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        cr_assert_eq(proc_backoff_ms(i, 0), want[i], "attempt %u: %llu", i,
                     (unsigned long long)proc_backoff_ms(i, 0));
    cr_assert_eq(proc_backoff_ms(1000, 0), 60000);
}

Test(backoff, jitter_stays_within_three_quarters_and_full)
{
    for (unsigned a = 0; a < 10; a++) {
        uint64_t full = proc_backoff_ms(a, 0);
        for (uint32_t r = 0; r < 100000; r += 7) {
            uint64_t d = proc_backoff_ms(a, r * 2654435761u);
            cr_assert(d <= full && d >= full * 3 / 4, "attempt %u rnd %u: %llu", a, r, (unsigned long long)d);
        }
    }
    cr_assert_eq(proc_backoff_ms(0, 250), 750);
    cr_assert_eq(proc_backoff_ms(0, 251), 1000); /* 251 % 251 */
}

Test(backoff, exit_one_backs_off_and_doubles)
{
    proc_backoff b = {0};
    uint64_t prev = 0;
    for (int i = 0; i < 8; i++) {
        proc_decision d = proc_exit_decide(&b, false, false, 1, 0.5, 0);
        cr_assert_eq(d.state, PROC_BACKOFF);
        cr_assert(d.delay_ms >= prev);
        prev = d.delay_ms;
    }
    cr_assert_eq(prev, 60000);
}

Test(backoff, healthy_minute_resets)
{
    proc_backoff b = {0};
    for (int i = 0; i < 5; i++)
        (void)proc_exit_decide(&b, false, false, 1, 1.0, 0);
    proc_decision d = proc_exit_decide(&b, false, false, 1, 59.0, 0);
    cr_assert_eq(d.delay_ms, 32000);
    d = proc_exit_decide(&b, false, false, 1, 61.0, 0);
    cr_assert_eq(d.delay_ms, 1000);
}

Test(backoff, signal_backs_off)
{
    proc_backoff b = {0};
    proc_decision d = proc_exit_decide(&b, false, true, 9, 31.0, 0);
    cr_assert_eq(d.state, PROC_BACKOFF);
    cr_assert_eq(d.delay_ms, 1000);
}

Test(backoff, fatal_fails_and_retries_in_five_minutes)
{
    proc_backoff b = {0};
    proc_decision d = proc_exit_decide(&b, false, false, 3, 1.0, 0);
    cr_assert_eq(d.state, PROC_FAILED);
    cr_assert_eq(d.delay_ms, 300000);
    cr_assert_eq(b.attempt, 0);
}

Test(backoff, signal_is_never_fatal)
{
    proc_backoff b = {0};
    proc_decision d = proc_exit_decide(&b, false, true, 3, 1.0, 0); /* SIGQUIT, not exit 3 */
    cr_assert_eq(d.state, PROC_BACKOFF);
}

Test(backoff, schema_change_restarts_at_once_then_backs_off)
{
    proc_backoff b = {0};
    proc_decision d = proc_exit_decide(&b, false, false, 4, 1.0, 0);
    cr_assert_eq(d.state, PROC_BACKOFF);
    cr_assert_eq(d.delay_ms, 0);
    d = proc_exit_decide(&b, false, false, 4, 1.0, 0);
    cr_assert_eq(d.delay_ms, 1000);
    d = proc_exit_decide(&b, false, false, 4, 1.0, 0);
    cr_assert_eq(d.delay_ms, 2000);
    d = proc_exit_decide(&b, false, false, 4, 120.0, 0); /* healthy again: at once */
    cr_assert_eq(d.delay_ms, 0);
}

Test(backoff, requested_stop_is_stopped_whatever_the_code)
{
    proc_backoff b = {0};
    cr_assert_eq(proc_exit_decide(&b, true, false, 0, 1.0, 0).state, PROC_STOPPED);
    cr_assert_eq(proc_exit_decide(&b, true, true, 9, 1.0, 0).state, PROC_STOPPED);
    cr_assert_eq(proc_exit_decide(&b, true, false, 1, 1.0, 0).state, PROC_STOPPED);
}

Test(backoff, unasked_clean_exit_is_restarted)
{
    proc_backoff b = {0};
    proc_decision d = proc_exit_decide(&b, false, false, 0, 1.0, 0);
    cr_assert_eq(d.state, PROC_BACKOFF);
    cr_assert_eq(d.delay_ms, 1000);
}

Test(proc, state_names_are_the_spec_ones)
{
    const char *want[] = {"starting", "connecting", "snapshot", "streaming", "backoff", "failed", "stopped"};
    for (int i = PROC_STARTING; i <= PROC_STOPPED; i++)
        cr_assert_str_eq(proc_state_name((proc_state)i), want[i]);
}

/* ---- status.json ---- */

static int sinks(void *ctx, FILE *out)
{
    (void)ctx;
    fputs("[{\"name\":\"jsonl\",\"delivered\":37,\"errors\":0,\"dropped\":0}]", out);
    return 0;
}

static status_table_error terr = {"public", "secret\"s", "permission denied for table secret\"s"};

static void two_workers(status_worker w[2])
{
    memset(w, 0, 2 * sizeof(*w));
    w[0] = (status_worker){.name = "orders",
                           .database = "127.0.0.1/app",
                           .slot = "pgsense_1a2b3c4d5e6f7a8b",
                           .log_file = "log/worker-orders.log",
                           .pid = 456,
                           .state = "streaming",
                           .has_stats = true,
                           .confirmed_lsn = 0x16B3748,
                           .retained_wal_bytes = 81920,
                           .wal_status = "reserved",
                           .events = 1200,
                           .findings = 37,
                           .tables_done = 3,
                           .tables_total = 3,
                           .table_errors = &terr,
                           .n_table_errors = 1};
    w[1] = (status_worker){.name = "billing",
                           .database = "db2/billing",
                           .slot = "pgsense_ffffffffffffffff",
                           .log_file = "log/worker-billing.log",
                           .pid = 0,
                           .state = "backoff",
                           .restarts = 2,
                           .has_exit = true,
                           .exit_signaled = true,
                           .exit_value = 9,
                           .exit_reason = "no heartbeat for 30 s (watchdog)",
                           .backoff_ms = 1500,
                           .retained_wal_bytes = -1,
                           .wal_status = ""};
}

static json_object *render(const status_worker *w, size_t n, status_sinks_fn fn)
{
    status_supervisor sup = {.pid = 123,
                             .started_at = 1795687200,
                             .now = 1795687212,
                             .rules_loaded = 14,
                             .reloads_ok = 1,
                             .reloads_failed = 0};
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    cr_assert_not_null(f);
    cr_assert_eq(status_render(f, &sup, w, n, fn, NULL), 0);
    fclose(f);
    cr_assert(len > 0 && buf[len - 1] == '\n');
    cr_assert_null(memchr(buf, '\n', len - 1), "one line");
    json_tokener *tok = json_tokener_new();
    json_object *o = json_tokener_parse_ex(tok, buf, (int)len);
    cr_assert_eq(json_tokener_get_error(tok), json_tokener_success, "invalid JSON: %s", buf);
    json_tokener_free(tok);
    free(buf);
    return o;
}

static json_object *get(json_object *o, const char *key, json_type t)
{
    json_object *v = NULL;
    cr_assert(json_object_object_get_ex(o, key, &v), "missing key %s", key);
    cr_assert(json_object_is_type(v, t), "key %s: type %d, want %d", key, json_object_get_type(v), t);
    return v;
}

Test(status, document_has_the_spec_keys)
{
    status_worker w[2];
    two_workers(w);
    json_object *o = render(w, 2, sinks);
    json_object *sup = get(o, "supervisor", json_type_object);
    cr_assert_eq(json_object_get_int(get(sup, "pid", json_type_int)), 123);
    cr_assert_str_eq(json_object_get_string(get(sup, "started_at", json_type_string)),
                     "2026-11-26T10:00:00Z");
    cr_assert_eq(json_object_get_int(get(sup, "uptime_s", json_type_int)), 12);
    cr_assert_eq(json_object_get_int(get(sup, "rules_loaded", json_type_int)), 14);
    get(sup, "reloads_ok", json_type_int);
    get(sup, "reloads_failed", json_type_int);

    json_object *ws = get(o, "workers", json_type_array);
    cr_assert_eq(json_object_array_length(ws), 2);
    json_object *a = json_object_array_get_idx(ws, 0);
    cr_assert_str_eq(json_object_get_string(get(a, "name", json_type_string)), "orders");
    cr_assert_str_eq(json_object_get_string(get(a, "database", json_type_string)), "127.0.0.1/app");
    cr_assert_eq(json_object_get_int(get(a, "pid", json_type_int)), 456);
    cr_assert_str_eq(json_object_get_string(get(a, "state", json_type_string)), "streaming");
    get(a, "restarts", json_type_int);
    get(a, "last_exit", json_type_null);
    get(a, "backoff_ms", json_type_int);
    cr_assert_str_eq(json_object_get_string(get(a, "slot", json_type_string)), "pgsense_1a2b3c4d5e6f7a8b");
    cr_assert_str_eq(json_object_get_string(get(a, "confirmed_lsn", json_type_string)), "0/16B3748");
    cr_assert_eq(json_object_get_int(get(a, "retained_wal_bytes", json_type_int)), 81920);
    cr_assert_str_eq(json_object_get_string(get(a, "wal_status", json_type_string)), "reserved");
    cr_assert_eq(json_object_get_int(get(a, "events", json_type_int)), 1200);
    cr_assert_eq(json_object_get_int(get(a, "findings", json_type_int)), 37);
    json_object *snap = get(a, "snapshot", json_type_object);
    cr_assert_eq(json_object_get_int(get(snap, "tables_done", json_type_int)), 3);
    cr_assert_eq(json_object_get_int(get(snap, "tables_total", json_type_int)), 3);
    json_object *te = get(a, "table_errors", json_type_array);
    cr_assert_eq(json_object_array_length(te), 1);
    cr_assert_str_eq(json_object_get_string(get(json_object_array_get_idx(te, 0), "table", json_type_string)),
                     "secret\"s");
    cr_assert_str_eq(json_object_get_string(get(a, "log_file", json_type_string)), "log/worker-orders.log");

    json_object *b = json_object_array_get_idx(ws, 1);
    get(b, "pid", json_type_null);
    get(b, "confirmed_lsn", json_type_null);
    get(b, "retained_wal_bytes", json_type_null);
    get(b, "wal_status", json_type_null);
    json_object *le = get(b, "last_exit", json_type_object);
    cr_assert_eq(json_object_get_int(get(le, "signal", json_type_int)), 9);
    cr_assert_str_eq(json_object_get_string(get(le, "reason", json_type_string)),
                     "no heartbeat for 30 s (watchdog)");
    cr_assert_eq(json_object_get_int(get(b, "backoff_ms", json_type_int)), 1500);
    cr_assert_eq(json_object_get_int(get(b, "restarts", json_type_int)), 2);

    json_object *s = get(o, "sinks", json_type_array);
    cr_assert_str_eq(json_object_get_string(get(json_object_array_get_idx(s, 0), "name", json_type_string)),
                     "jsonl");
    json_object_put(o);
}

Test(status, exit_code_and_control_characters)
{
    status_worker w[1];
    memset(w, 0, sizeof(w));
    w[0] = (status_worker){.name = "x",
                           .database = "h/d",
                           .slot = "s",
                           .log_file = "l",
                           .state = "failed",
                           .has_exit = true,
                           .exit_value = 3,
                           .exit_reason = "bad\x01 \\ \"creds\"\n",
                           .retained_wal_bytes = -1,
                           .wal_status = ""};
    json_object *o = render(w, 1, NULL);
    json_object *x = json_object_array_get_idx(get(o, "workers", json_type_array), 0);
    json_object *le = get(x, "last_exit", json_type_object);
    cr_assert_eq(json_object_get_int(get(le, "code", json_type_int)), 3);
    cr_assert_str_eq(json_object_get_string(get(le, "reason", json_type_string)), "bad\x01 \\ \"creds\"\n");
    cr_assert_eq(json_object_array_length(get(o, "sinks", json_type_array)), 0);
    json_object_put(o);
}

Test(status, no_workers)
{
    json_object *o = render(NULL, 0, sinks);
    cr_assert_eq(json_object_array_length(get(o, "workers", json_type_array)), 0);
    json_object_put(o);
}

Test(status, write_file_is_atomic_and_leaves_no_temp)
{
    char dir[] = "/tmp/pgsense-test-status-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    status_worker w[2];
    two_workers(w);
    status_supervisor sup = {.pid = 77, .started_at = 1, .now = 2};
    char err[256] = "";
    cr_assert_eq(status_write_file(dir, &sup, w, 2, sinks, NULL, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(status_write_file(dir, &sup, w, 1, sinks, NULL, err, sizeof(err)), 0, "%s", err);
    char path[512];
    snprintf(path, sizeof(path), "%s/status.json", dir);
    json_object *o = json_object_from_file(path);
    cr_assert_not_null(o);
    cr_assert_eq(json_object_array_length(get(o, "workers", json_type_array)), 1);
    json_object_put(o);
    snprintf(path, sizeof(path), "%s/.status.json.77.tmp", dir);
    cr_assert_neq(access(path, F_OK), 0);
    snprintf(path, sizeof(path), "%s/status.json", dir);
    unlink(path);
    rmdir(dir);
}

Test(status, write_file_into_missing_dir_fails_cleanly)
{
    status_supervisor sup = {.pid = 1};
    char err[256] = "";
    cr_assert_eq(status_write_file("/nonexistent/pgsense", &sup, NULL, 0, sinks, NULL, err, sizeof(err)), -1);
    cr_assert(strstr(err, "/nonexistent/pgsense") != NULL, "%s", err);
}
