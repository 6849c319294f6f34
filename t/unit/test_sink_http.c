/*
 * test_sink_http: the pure parts of the HTTP sinks: Slack message rendering
 * (Block Kit shape, colours, escaping, Block Kit limits), Slack answers,
 * retry/backoff arithmetic, URL origins, and the webhook sink's queue bound
 * with no receiver at all (the loop is never run).
 */
#include <criterion/criterion.h>
#include <ev.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#include "httpc.h"
#include "sink.h"
#include "sink_http.h"

static sink_slack_item item(unsigned sev, const char *rule, const char *sample)
{
    return (sink_slack_item){.database = "localhost/app",
                             .worker = "orders",
                             .rule_id = rule,
                             .description = "Credit card numbers",
                             .category = "PCI_DSS",
                             .severity = sev,
                             .schema = "public",
                             .table = "users",
                             .column = "note",
                             .masked_sample = sample,
                             .keys = "id=42",
                             .source = "stream",
                             .op = "insert"};
}

static json_object *get(json_object *o, const char *key)
{
    json_object *v = NULL;
    cr_assert(json_object_object_get_ex(o, key, &v), "key %s missing", key);
    return v;
}

static json_object *parse(const char *s)
{
    json_object *o = json_tokener_parse(s);
    cr_assert_not_null(o, "not JSON: %s", s);
    return o;
}

Test(slack_render, one_finding_has_fields_color_and_fallback)
{
    sink_slack_item it = item(FRAME_SEV_CRITICAL, "credit-card", "40**********81");
    sink_slack_opts o = {"#alerts", "pgsense", ":lock:"};
    size_t used = 0;
    char *s = sink_slack_render(&it, 1, &o, &used);
    cr_assert_not_null(s);
    cr_assert_eq(used, 1);
    json_object *m = parse(s);
    cr_assert_str_eq(json_object_get_string(get(m, "channel")), "#alerts");
    cr_assert_str_eq(json_object_get_string(get(m, "username")), "pgsense");
    cr_assert_str_eq(json_object_get_string(get(m, "icon_emoji")), ":lock:");
    const char *text = json_object_get_string(get(m, "text"));
    cr_assert(strstr(text, "CRITICAL") && strstr(text, ":red_circle:"), "%s", text);
    cr_assert_eq(json_object_array_length(get(m, "blocks")), 1);
    json_object *att = json_object_array_get_idx(get(m, "attachments"), 0);
    cr_assert_str_eq(json_object_get_string(get(att, "color")), sink_slack_color(FRAME_SEV_CRITICAL));
    json_object *sec = json_object_array_get_idx(get(att, "blocks"), 0);
    cr_assert_str_eq(json_object_get_string(get(sec, "type")), "section");
    json_object *fields = get(sec, "fields");
    cr_assert_eq(json_object_array_length(fields), 8);
    const char *want[] = {"*Rule*\n`credit-card`",
                          "*Severity*\nCRITICAL",
                          "*Database*\nlocalhost/app",
                          "*Table.column*\n`public.users.note`",
                          "*Masked sample*\n`40**********81`",
                          "*Keys*\nid=42",
                          "*Source / op*\nstream / insert",
                          "*Category*\nPCI_DSS"};
    for (size_t i = 0; i < 8; i++) {
        json_object *f = json_object_array_get_idx(fields, i);
        cr_assert_str_eq(json_object_get_string(get(f, "type")), "mrkdwn");
        cr_assert_str_eq(json_object_get_string(get(f, "text")), want[i]);
    }
    json_object_put(m);
    free(s);
}

Test(slack_render, batch_lists_findings_worst_color_and_counts)
{
    sink_slack_item its[3] = {item(FRAME_SEV_MEDIUM, "phone", "+1*******12"),
                              item(FRAME_SEV_HIGH, "email-address", "ja****om"),
                              item(FRAME_SEV_HIGH, "email-address", "jo****om")};
    sink_slack_opts o = {"C123", NULL, NULL};
    size_t used = 0;
    char *s = sink_slack_render(its, 3, &o, &used);
    cr_assert_not_null(s);
    cr_assert_eq(used, 3);
    json_object *m = parse(s);
    cr_assert(!json_object_object_get_ex(m, "username", NULL));
    cr_assert(!json_object_object_get_ex(m, "icon_emoji", NULL));
    cr_assert_str_eq(json_object_get_string(get(m, "text")), "pgsense: 3 findings (2 HIGH, 1 MEDIUM)");
    json_object *hdr = json_object_array_get_idx(get(m, "blocks"), 0);
    cr_assert_str_eq(json_object_get_string(get(hdr, "type")), "header");
    json_object *att = json_object_array_get_idx(get(m, "attachments"), 0);
    cr_assert_str_eq(json_object_get_string(get(att, "color")), sink_slack_color(FRAME_SEV_HIGH));
    json_object *blocks = get(att, "blocks");
    cr_assert_eq(json_object_array_length(blocks), 1);
    const char *list = json_object_get_string(get(get(json_object_array_get_idx(blocks, 0), "text"), "text"));
    cr_assert(strstr(list, ":large_yellow_circle: *MEDIUM* `phone`"), "%s", list);
    cr_assert(strstr(list, "`ja****om` (id=42) stream/insert\n"), "%s", list);
    cr_assert_eq(strchr(list, '\n') != NULL, true);
    json_object_put(m);
    free(s);
}

Test(slack_render, escapes_mrkdwn_and_json)
{
    sink_slack_item it = item(FRAME_SEV_LOW, "x", "<a&b>`\"\\\n");
    sink_slack_opts o = {"C1", NULL, NULL};
    size_t used = 0;
    char *s = sink_slack_render(&it, 1, &o, &used);
    cr_assert_not_null(s);
    json_object *m = parse(s);
    json_object *att = json_object_array_get_idx(get(m, "attachments"), 0);
    json_object *f =
        json_object_array_get_idx(get(json_object_array_get_idx(get(att, "blocks"), 0), "fields"), 4);
    cr_assert_str_eq(json_object_get_string(get(f, "text")), "*Masked sample*\n`&lt;a&amp;b&gt;'\"\\ `");
    json_object_put(m);
    free(s);
}

Test(slack_render, block_kit_limits_split_big_batches)
{
    enum { N = 1000 };
    sink_slack_item *its = calloc(N, sizeof(*its));
    cr_assert_not_null(its);
    for (size_t i = 0; i < N; i++)
        its[i] = item(FRAME_SEV_INFO, "a-rather-long-rule-identifier-for-the-test",
                      "ab**************************yz");
    sink_slack_opts o = {"C1", NULL, NULL};
    size_t used = 0;
    char *s = sink_slack_render(its, N, &o, &used);
    cr_assert_not_null(s);
    cr_assert(used > 100 && used < N, "used %zu", used);
    json_object *m = parse(s);
    json_object *att = json_object_array_get_idx(get(m, "attachments"), 0);
    json_object *blocks = get(att, "blocks");
    cr_assert_leq(json_object_array_length(blocks), SINK_SLACK_MAX_SECTIONS);
    for (size_t i = 0; i < json_object_array_length(blocks); i++) {
        const char *t =
            json_object_get_string(get(get(json_object_array_get_idx(blocks, i), "text"), "text"));
        cr_assert_leq(strlen(t), 3000);
    }
    json_object_put(m);
    free(s);
    free(its);
}

Test(slack_answer, ok_error_and_garbage)
{
    char code[32];
    cr_assert_eq(sink_slack_parse_answer("{\"ok\":true,\"ts\":\"1.2\"}", code, sizeof(code)), 1);
    cr_assert_eq(
        sink_slack_parse_answer("{\"ok\":false,\"error\":\"channel_not_found\"}", code, sizeof(code)), 0);
    cr_assert_str_eq(code, "channel_not_found");
    cr_assert_eq(sink_slack_parse_answer("{\"ok\":false,\"error\":\"bad\\n<x>\"}", code, sizeof(code)), 0);
    cr_assert_str_eq(code, "badx");
    cr_assert_eq(sink_slack_parse_answer("{\"ok\":false}", code, sizeof(code)), 0);
    cr_assert_str_eq(code, "unknown");
    cr_assert_eq(sink_slack_parse_answer("<html>", code, sizeof(code)), -1);
    cr_assert_eq(sink_slack_parse_answer("{\"ok\":\"yes\"}", code, sizeof(code)), -1);
    cr_assert(sink_slack_error_retryable("ratelimited"));
    cr_assert(sink_slack_error_retryable("internal_error"));
    cr_assert(!sink_slack_error_retryable("invalid_auth"));
    cr_assert(!sink_slack_error_retryable("channel_not_found"));
}

Test(retry, retryable_statuses)
{
    cr_assert(httpc_retryable(0, 28));
    cr_assert(httpc_retryable(429, 0));
    cr_assert(httpc_retryable(408, 0));
    cr_assert(httpc_retryable(500, 0));
    cr_assert(httpc_retryable(503, 0));
    cr_assert(!httpc_retryable(400, 0));
    cr_assert(!httpc_retryable(401, 0));
    cr_assert(!httpc_retryable(404, 0));
    cr_assert(!httpc_retryable(301, 0));
}

Test(retry, backoff_doubles_caps_and_jitters_down)
{
    long want[] = {250, 500, 1000, 2000, 4000, 8000, 10000, 10000};
    for (unsigned a = 1; a <= 8; a++)
        cr_assert_eq(httpc_backoff_ms(a, 250, 10000, 0), want[a - 1], "attempt %u", a);
    cr_assert_eq(httpc_backoff_ms(1000000, 250, 10000, 0), 10000);
    cr_assert_eq(httpc_backoff_ms(0, 250, 10000, 0), 250);
    /* jitter takes off at most 20 % */
    cr_assert_eq(httpc_backoff_ms(3, 250, 10000, 0.5), 900);
    long j = httpc_backoff_ms(7, 250, 10000, 0.999);
    cr_assert(j > 8000 && j <= 10000, "%ld", j);
    cr_assert_eq(httpc_backoff_ms(1, 250, 10000, 5.0), httpc_backoff_ms(1, 250, 10000, 0.999999));
    cr_assert_eq(httpc_backoff_ms(40, 1000, 30000, 0), 30000);
}

Test(retry, retry_after_wins_and_is_capped)
{
    httpc_result r = {.status = 429, .retry_after_ms = 3000};
    cr_assert_eq(httpc_retry_delay_ms(&r, 5, 250, 10000, 0), 3000);
    r.retry_after_ms = 60000; /* longer than the backoff cap: honoured */
    cr_assert_eq(httpc_retry_delay_ms(&r, 1, 250, 10000, 0), 60000);
    r.retry_after_ms = 10L * HTTPC_RETRY_AFTER_MAX_MS;
    cr_assert_eq(httpc_retry_delay_ms(&r, 1, 250, 10000, 0), HTTPC_RETRY_AFTER_MAX_MS);
    r.retry_after_ms = -1;
    cr_assert_eq(httpc_retry_delay_ms(&r, 2, 250, 10000, 0), 500);
    cr_assert_eq(httpc_retry_delay_ms(NULL, 3, 250, 10000, 0), 1000);
}

Test(url, origin_hides_credentials_and_path)
{
    char o[128];
    httpc_url_origin("https://user:secret@hooks.example.com:8443/services/T0/B0/XXXX?token=y", o, sizeof(o));
    cr_assert_str_eq(o, "https://hooks.example.com:8443");
    httpc_url_origin("http://127.0.0.1:9/hook", o, sizeof(o));
    cr_assert_str_eq(o, "http://127.0.0.1:9");
}

static frame_finding finding(uint64_t lsn)
{
    static const frame_pk pk[] = {{"id", "42"}};
    return (frame_finding){.rule_id = "email-address",
                           .description = "Email addresses",
                           .category = "PII",
                           .severity = FRAME_SEV_HIGH,
                           .schema = "public",
                           .table = "users",
                           .column = "contact",
                           .masked_sample = "ja****om",
                           .primary_keys = pk,
                           .n_primary_keys = 1,
                           .lsn = lsn,
                           .source = FRAME_SOURCE_STREAM,
                           .op = FRAME_OP_INSERT,
                           .commit_time = FRAME_TIME_NULL,
                           .detected_at = 0};
}

Test(webhook, queue_bound_drops_or_blocks)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    cr_assert_not_null(loop);
    char err[256];
    config_webhook cw = {.name = "webhook", .url = "http://127.0.0.1:9/hook", .timeout_ms = 1000};
    sink *s = sink_webhook_new(loop, &cw, err, sizeof(err));
    cr_assert_not_null(s, "%s", err);
    cr_assert(!s->durable);
    frame_finding f = finding(1);
    sink_record r = {"localhost/app", "orders", &f};
    for (int i = 0; i < SINK_WEBHOOK_QUEUE_MAX; i++)
        cr_assert_eq(s->ops->write(s, &r), 0);
    cr_assert_eq(s->ops->write(s, &r), -1);
    cr_assert_eq(s->dropped, 1);
    cr_assert_eq(s->taken, SINK_WEBHOOK_QUEUE_MAX);
    cr_assert_eq(sink_webhook_queued(s), SINK_WEBHOOK_QUEUE_MAX);
    cr_assert(!s->blocked);
    s->ops->destroy(s);

    cw.durable = true;
    cw.name = "webhook-2";
    s = sink_webhook_new(loop, &cw, err, sizeof(err));
    cr_assert_not_null(s, "%s", err);
    cr_assert(s->durable);
    for (int i = 0; i < SINK_WEBHOOK_QUEUE_MAX + 5; i++)
        cr_assert_eq(s->ops->write(s, &r), 0); /* durable: never refused, blocked instead */
    cr_assert(s->blocked);
    cr_assert_eq(s->dropped, 0);
    cr_assert_eq(s->durable_pos, 0);
    s->ops->destroy(s);
    ev_loop_destroy(loop);
}

Test(webhook, bad_url_refused_without_quoting_it)
{
    char err[256];
    config_webhook cw = {.name = "hook", .url = "ftp://secret@host/x", .timeout_ms = 1000};
    sink *s = sink_webhook_new(EV_DEFAULT, &cw, err, sizeof(err));
    cr_assert_null(s);
    cr_assert(strstr(err, "hook") && !strstr(err, "secret"), "%s", err);
}
