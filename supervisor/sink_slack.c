/*
 * sink_slack: findings to Slack ([[alerts.slack]]) with chat.postMessage:
 * Block Kit message, attachment colour by severity, a rich layout for one
 * finding and a list for several. Owns its queue, batch and retry timers
 * and its token (sent as a Bearer header, never logged); not durable.
 *
 * Batching: the head of the queue is posted once batch_size findings wait
 * or the oldest has waited batch_window_ms, one message in flight at a
 * time. A failed post (no answer, 429 with Retry-After, 5xx, a retryable
 * Slack error) is retried with backoff up to max_retries times, then its
 * findings are dropped and counted; a permanent Slack error
 * ({"ok":false,"error":"channel_not_found"}) drops them at once. Every
 * failed attempt counts in errors and its Slack error code is logged.
 */
#include <ev.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "httpc.h"
#include "log.h"
#include "sink.h"
#include "sink_http.h"

#define MOD "sink"

#define SLACK_LOG_EVERY_S 10.0 /* at most one drop line per this many seconds */
#define SLACK_FIELD_MAX   300  /* bytes of one value shown (rule, table, sample, keys...) */
#define SLACK_TIMEOUT_MS  10000

/* ---- rendering ---- */

static const char *const sev_colors[] = {"#B00020", "#E8590C", "#F2C744", "#2F80ED", "#9E9E9E"};
static const char *const sev_emojis[] = {":red_circle:", ":large_orange_circle:", ":large_yellow_circle:",
                                         ":large_blue_circle:", ":white_circle:"};

const char *sink_slack_color(unsigned severity)
{
    return severity < 5 ? sev_colors[severity] : "#9E9E9E";
}

const char *sink_slack_emoji(unsigned severity)
{
    return severity < 5 ? sev_emojis[severity] : ":grey_question:";
}

/*
 * Append s for Slack mrkdwn: &, <, > escaped, control characters as spaces,
 * backticks as ' (inside code spans), cut at max bytes on a UTF-8 boundary
 * with an ellipsis.
 */
static int md_append(sink_buf *b, const char *s, size_t max)
{
    const unsigned char *p = (const unsigned char *)(s ? s : "");
    size_t used = 0;
    for (; *p; p++) {
        if (used >= max && (*p & 0xC0) != 0x80)
            return sink_buf_append(b, "\xE2\x80\xA6", 3);
        const char *rep = NULL;
        char one = (char)*p;
        if (*p == '&')
            rep = "&amp;";
        else if (*p == '<')
            rep = "&lt;";
        else if (*p == '>')
            rep = "&gt;";
        else if (*p < 0x20 || *p == 0x7f)
            one = ' ';
        else if (*p == '`')
            one = '\'';
        int rc = rep ? sink_buf_append(b, rep, strlen(rep)) : sink_buf_append(b, &one, 1);
        if (rc < 0)
            return -1;
        used++;
    }
    return 0;
}

static int lit(sink_buf *b, const char *s)
{
    return sink_buf_append(b, s, strlen(s));
}

/* The terminated text of b, or NULL when b could not grow. */
static const char *buf_str(sink_buf *b)
{
    if (sink_buf_append(b, "", 1) < 0)
        return NULL;
    b->len--;
    return b->data;
}

/* One finding as one mrkdwn list line. */
static int line_of(sink_buf *b, const sink_slack_item *it)
{
    if (lit(b, sink_slack_emoji(it->severity)) < 0 || lit(b, " *") < 0 ||
        lit(b, sink_severity_name(it->severity)) < 0 || lit(b, "* `") < 0 ||
        md_append(b, it->rule_id, SLACK_FIELD_MAX) < 0 || lit(b, "` in ") < 0 ||
        md_append(b, it->database, SLACK_FIELD_MAX) < 0 || lit(b, " `") < 0 ||
        md_append(b, it->schema, SLACK_FIELD_MAX) < 0 || lit(b, ".") < 0 ||
        md_append(b, it->table, SLACK_FIELD_MAX) < 0 || lit(b, ".") < 0 ||
        md_append(b, it->column, SLACK_FIELD_MAX) < 0 || lit(b, "`: `") < 0 ||
        md_append(b, it->masked_sample, SLACK_FIELD_MAX) < 0 || lit(b, "`") < 0)
        return -1;
    if (it->keys && *it->keys &&
        (lit(b, " (") < 0 || md_append(b, it->keys, SLACK_FIELD_MAX) < 0 || lit(b, ")") < 0))
        return -1;
    if (lit(b, " ") < 0 || md_append(b, it->source, 32) < 0 || lit(b, "/") < 0 ||
        md_append(b, it->op, 32) < 0)
        return -1;
    return 0;
}

/* json-c helpers: a failure anywhere sets *bad, checked once at the end. */
static json_object *jstr(const char *s, bool *bad)
{
    json_object *o = json_object_new_string(s ? s : "");
    if (!o)
        *bad = true;
    return o;
}

static void jadd(json_object *obj, const char *key, json_object *val, bool *bad)
{
    if (!obj || !val || json_object_object_add(obj, key, val) != 0) {
        json_object_put(val);
        *bad = true;
    }
}

static void jpush(json_object *arr, json_object *val, bool *bad)
{
    if (!arr || !val || json_object_array_add(arr, val) != 0) {
        json_object_put(val);
        *bad = true;
    }
}

/* {"type":"mrkdwn","text":text} */
static json_object *jmd(const char *text, bool *bad)
{
    json_object *o = json_object_new_object();
    jadd(o, "type", jstr("mrkdwn", bad), bad);
    jadd(o, "text", jstr(text, bad), bad);
    return o;
}

/* {"type":"section","text":mrkdwn} */
static json_object *jsection(const char *text, bool *bad)
{
    json_object *o = json_object_new_object();
    jadd(o, "type", jstr("section", bad), bad);
    jadd(o, "text", jmd(text, bad), bad);
    return o;
}

/* A field of the one-finding layout: "*Title*\nvalue", value optionally as code. */
static json_object *jfield(sink_buf *b, const char *title, const char *value, bool code, bool *bad)
{
    b->len = 0;
    if (lit(b, "*") < 0 || lit(b, title) < 0 || lit(b, "*\n") < 0 || (code && lit(b, "`") < 0) ||
        md_append(b, value && *value ? value : "-", SLACK_FIELD_MAX) < 0 || (code && lit(b, "`") < 0) ||
        !buf_str(b)) {
        *bad = true;
        return NULL;
    }
    return jmd(b->data, bad);
}

static json_object *render_one(const sink_slack_item *it, json_object *root, sink_buf *b, bool *bad)
{
    char tmp[64];
    /* fallback text (notifications) and the headline */
    b->len = 0;
    if (lit(b, sink_slack_emoji(it->severity)) < 0 || lit(b, " *") < 0 ||
        lit(b, sink_severity_name(it->severity)) < 0 || lit(b, "* ") < 0 ||
        md_append(b, it->description && *it->description ? it->description : it->rule_id, SLACK_FIELD_MAX) <
            0 ||
        lit(b, " in ") < 0 || md_append(b, it->database, SLACK_FIELD_MAX) < 0 || !buf_str(b)) {
        *bad = true;
        return NULL;
    }
    jadd(root, "text", jstr(b->data, bad), bad);
    json_object *blocks = json_object_new_array();
    jpush(blocks, jsection(b->data, bad), bad);
    jadd(root, "blocks", blocks, bad);

    json_object *fields = json_object_new_array();
    jpush(fields, jfield(b, "Rule", it->rule_id, true, bad), bad);
    jpush(fields, jfield(b, "Severity", sink_severity_name(it->severity), false, bad), bad);
    jpush(fields, jfield(b, "Database", it->database, false, bad), bad);
    b->len = 0;
    if (md_append(b, it->schema, SLACK_FIELD_MAX) < 0 || lit(b, ".") < 0 ||
        md_append(b, it->table, SLACK_FIELD_MAX) < 0 || lit(b, ".") < 0 ||
        md_append(b, it->column, SLACK_FIELD_MAX) < 0 || !buf_str(b)) {
        *bad = true;
    } else {
        char *col = strdup(b->data); /* jfield reuses b */
        if (!col)
            *bad = true;
        jpush(fields, jfield(b, "Table.column", col, true, bad), bad);
        free(col);
    }
    jpush(fields, jfield(b, "Masked sample", it->masked_sample, true, bad), bad);
    jpush(fields, jfield(b, "Keys", it->keys, false, bad), bad);
    snprintf(tmp, sizeof(tmp), "%s / %s", it->source ? it->source : "", it->op ? it->op : "");
    jpush(fields, jfield(b, "Source / op", tmp, false, bad), bad);
    jpush(fields, jfield(b, "Category", it->category, false, bad), bad);
    json_object *sec = json_object_new_object();
    jadd(sec, "type", jstr("section", bad), bad);
    jadd(sec, "fields", fields, bad);
    json_object *ablocks = json_object_new_array();
    jpush(ablocks, sec, bad);
    if (it->worker && *it->worker) {
        b->len = 0;
        if (lit(b, "pgsense worker ") < 0 || md_append(b, it->worker, SLACK_FIELD_MAX) < 0 || !buf_str(b)) {
            *bad = true;
        } else {
            json_object *ctx = json_object_new_object(), *els = json_object_new_array();
            jadd(ctx, "type", jstr("context", bad), bad);
            jpush(els, jmd(b->data, bad), bad);
            jadd(ctx, "elements", els, bad);
            jpush(ablocks, ctx, bad);
        }
    }
    return ablocks;
}

static json_object *render_many(const sink_slack_item *items, size_t n, json_object *root, sink_buf *b,
                                size_t *n_used, unsigned *worst, bool *bad)
{
    json_object *ablocks = json_object_new_array();
    sink_buf line = {0};
    size_t used = 0, sections = 0;
    size_t counts[6] = {0};
    b->len = 0;
    for (; used < n; used++) {
        line.len = 0;
        if (line_of(&line, &items[used]) < 0) {
            *bad = true;
            break;
        }
        if (b->len > 0 && b->len + 1 + line.len > SINK_SLACK_SECTION_CHARS) {
            if (sections + 1 >= SINK_SLACK_MAX_SECTIONS)
                break; /* the rest goes into the next message */
            if (!buf_str(b)) {
                *bad = true;
                break;
            }
            jpush(ablocks, jsection(b->data, bad), bad);
            sections++;
            b->len = 0;
        }
        if ((b->len > 0 && lit(b, "\n") < 0) || sink_buf_append(b, line.data, line.len) < 0) {
            *bad = true;
            break;
        }
        unsigned sev = items[used].severity < 5 ? items[used].severity : 5;
        counts[sev]++;
        if (items[used].severity < *worst)
            *worst = items[used].severity;
    }
    if (b->len > 0 && buf_str(b))
        jpush(ablocks, jsection(b->data, bad), bad);
    sink_buf_free(&line);
    *n_used = used;

    /* headline and fallback: "pgsense: 5 findings (2 CRITICAL, 3 HIGH)" */
    char head[160];
    int pos = snprintf(head, sizeof(head), "pgsense: %zu findings (", used);
    bool first = true;
    for (unsigned sev = 0; sev < 6 && pos > 0 && (size_t)pos < sizeof(head); sev++) {
        if (!counts[sev])
            continue;
        pos += snprintf(head + pos, sizeof(head) - (size_t)pos, "%s%zu %s", first ? "" : ", ", counts[sev],
                        sev < 5 ? sink_severity_name(sev) : "OTHER");
        first = false;
    }
    if (pos > 0 && (size_t)pos < sizeof(head) - 1)
        snprintf(head + pos, sizeof(head) - (size_t)pos, ")");
    jadd(root, "text", jstr(head, bad), bad);
    json_object *hdr = json_object_new_object(), *htext = json_object_new_object();
    jadd(htext, "type", jstr("plain_text", bad), bad);
    jadd(htext, "text", jstr(head, bad), bad);
    jadd(hdr, "type", jstr("header", bad), bad);
    jadd(hdr, "text", htext, bad);
    json_object *blocks = json_object_new_array();
    jpush(blocks, hdr, bad);
    jadd(root, "blocks", blocks, bad);
    return ablocks;
}

char *sink_slack_render(const sink_slack_item *items, size_t n, const sink_slack_opts *o, size_t *n_used)
{
    bool bad = false;
    sink_buf b = {0};
    char *out = NULL;
    unsigned worst = n ? items[0].severity : FRAME_SEV_INFO;
    *n_used = 0;
    if (n == 0)
        return NULL;
    json_object *root = json_object_new_object();
    if (!root)
        return NULL;
    jadd(root, "channel", jstr(o->channel, &bad), &bad);
    if (o->username && *o->username)
        jadd(root, "username", jstr(o->username, &bad), &bad);
    if (o->icon_emoji && *o->icon_emoji)
        jadd(root, "icon_emoji", jstr(o->icon_emoji, &bad), &bad);
    json_object *ablocks;
    size_t used = 1;
    if (n == 1)
        ablocks = render_one(&items[0], root, &b, &bad);
    else
        ablocks = render_many(items, n, root, &b, &used, &worst, &bad);
    json_object *att = json_object_new_object(), *atts = json_object_new_array();
    jadd(att, "color", jstr(sink_slack_color(worst), &bad), &bad);
    jadd(att, "blocks", ablocks, &bad);
    jpush(atts, att, &bad);
    jadd(root, "attachments", atts, &bad);
    if (!bad && used > 0) {
        const char *txt =
            json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
        out = txt ? strdup(txt) : NULL;
    }
    json_object_put(root);
    sink_buf_free(&b);
    if (out)
        *n_used = used;
    return out;
}

int sink_slack_parse_answer(const char *body, char *code, size_t codelen)
{
    if (codelen)
        code[0] = '\0';
    json_object *root = body ? json_tokener_parse(body) : NULL;
    json_object *ok = NULL, *er = NULL;
    if (!root || !json_object_is_type(root, json_type_object) ||
        !json_object_object_get_ex(root, "ok", &ok) || !json_object_is_type(ok, json_type_boolean)) {
        json_object_put(root);
        return -1;
    }
    int rc = json_object_get_boolean(ok) ? 1 : 0;
    if (rc == 0 && codelen && json_object_object_get_ex(root, "error", &er) &&
        json_object_is_type(er, json_type_string)) {
        const char *s = json_object_get_string(er);
        size_t k = 0;
        for (; s && *s && k + 1 < codelen; s++)
            if ((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '_')
                code[k++] = *s;
        code[k] = '\0';
    }
    if (rc == 0 && codelen && !code[0])
        snprintf(code, codelen, "unknown");
    json_object_put(root);
    return rc;
}

bool sink_slack_error_retryable(const char *code)
{
    static const char *const retry[] = {"ratelimited",      "rate_limited",        "internal_error",
                                        "fatal_error",      "service_unavailable", "request_timeout",
                                        "team_added_to_org"};
    for (size_t i = 0; i < sizeof(retry) / sizeof(retry[0]); i++)
        if (strcmp(code, retry[i]) == 0)
            return true;
    return false;
}

/* ---- the sink ---- */

typedef struct slack_item {
    struct slack_item *next;
    ev_tstamp queued_at;
    sink_slack_item v; /* strings point into data */
    size_t size;
    char data[];
} slack_item;

typedef struct {
    char *channel, *username, *icon_emoji, *url; /* url: {api_url}/chat.postMessage */
    char *auth;                                  /* "Authorization: Bearer ...": secret */
    size_t batch_size;
    double window_s;
    unsigned max_retries;
    char origin[256];
} slack_conf;

typedef struct {
    sink base;
    httpc *http;
    slack_conf conf, next;
    bool have_next;
    slack_item *head, *tail;
    size_t n_items;
    httpc_req *req;    /* the message in flight */
    size_t batch_n;    /* findings in it */
    unsigned attempts; /* failed posts of the head batch */
    ev_timer window;   /* batch_window_ms after the oldest waiting finding */
    ev_timer retry;    /* pause after a failed post */
    ev_tstamp last_drop_log;
    uint64_t drops_unlogged;
} sink_slack;

static void conf_free(slack_conf *c)
{
    free(c->channel);
    free(c->username);
    free(c->icon_emoji);
    free(c->url);
    if (c->auth) {
        memset(c->auth, 0, strlen(c->auth)); /* the token */
        free(c->auth);
    }
    memset(c, 0, sizeof(*c));
}

static char *dup_or_null(const char *s, bool *bad)
{
    if (!s)
        return NULL;
    char *d = strdup(s);
    if (!d)
        *bad = true;
    return d;
}

static int conf_build(slack_conf *c, const config_slack *s, char *err, size_t errlen)
{
    bool bad = false;
    const char *name = s->name ? s->name : "slack";
    const char *api = s->api_url ? s->api_url : "https://slack.com/api";
    memset(c, 0, sizeof(*c));
    if (!s->token || !*s->token || strpbrk(s->token, "\r\n")) {
        snprintf(err, errlen, "slack \"%s\": no usable token (set token_file)", name);
        return -1;
    }
    if (!s->channel || !*s->channel) {
        snprintf(err, errlen, "slack \"%s\": channel is required", name);
        return -1;
    }
    if (strncmp(api, "http://", 7) != 0 && strncmp(api, "https://", 8) != 0) {
        snprintf(err, errlen, "slack \"%s\": api_url must start with http:// or https://", name);
        return -1;
    }
    size_t alen = strlen(api);
    while (alen > 0 && api[alen - 1] == '/')
        alen--;
    c->channel = dup_or_null(s->channel, &bad);
    c->username = dup_or_null(s->username, &bad);
    c->icon_emoji = dup_or_null(s->icon_emoji, &bad);
    size_t ulen = alen + sizeof("/chat.postMessage");
    size_t tlen = strlen(s->token) + sizeof("Authorization: Bearer ");
    c->url = malloc(ulen);
    c->auth = malloc(tlen);
    if (bad || !c->url || !c->auth) {
        conf_free(c);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    snprintf(c->url, ulen, "%.*s/chat.postMessage", (int)alen, api);
    snprintf(c->auth, tlen, "Authorization: Bearer %s", s->token);
    c->batch_size = s->batch_size > 0 ? (size_t)s->batch_size : 20;
    c->window_s = s->batch_window_ms >= 0 ? s->batch_window_ms / 1000.0 : 2.0;
    c->max_retries = s->max_retries >= 0 ? (unsigned)s->max_retries : 3;
    httpc_url_origin(api, c->origin, sizeof(c->origin));
    return 0;
}

static const config_slack *conf_find(const config *cfg, const char *name)
{
    for (size_t i = 0; cfg && i < cfg->alerts.n_slack; i++)
        if (cfg->alerts.slack[i].name && strcmp(cfg->alerts.slack[i].name, name) == 0)
            return &cfg->alerts.slack[i];
    return NULL;
}

static void slack_schedule(sink_slack *k);
static void slack_done_cb(void *ctx, const httpc_result *r);

static void slack_log_drop(sink_slack *k, uint64_t n, const char *why)
{
    sink *s = &k->base;
    ev_tstamp now = ev_now(s->loop);
    k->drops_unlogged += n;
    if (now - k->last_drop_log < SLACK_LOG_EVERY_S)
        return;
    log_error(MOD, "slack \"%s\": %" PRIu64 " finding(s) dropped (%s); %" PRIu64 " dropped in all", s->name,
              k->drops_unlogged, why, s->dropped);
    k->drops_unlogged = 0;
    k->last_drop_log = now;
}

/* Remove the first n findings (posted or given up). */
static void slack_pop(sink_slack *k, size_t n)
{
    sink *s = &k->base;
    for (size_t i = 0; i < n && k->head; i++) {
        slack_item *it = k->head;
        k->head = it->next;
        if (!k->head)
            k->tail = NULL;
        k->n_items--;
        s->buffered -= it->size;
        s->durable_pos++;
        free(it);
    }
    k->attempts = 0;
}

static void slack_send(sink_slack *k)
{
    sink *s = &k->base;
    size_t n = k->n_items < k->conf.batch_size ? k->n_items : k->conf.batch_size;
    sink_slack_item *v = calloc(n, sizeof(*v));
    char err[256];
    if (!v)
        goto oom;
    slack_item *it = k->head;
    for (size_t i = 0; i < n; i++, it = it->next)
        v[i] = it->v;
    sink_slack_opts o = {k->conf.channel, k->conf.username, k->conf.icon_emoji};
    size_t used = 0;
    char *body = sink_slack_render(v, n, &o, &used);
    free(v);
    if (!body)
        goto oom;
    const char *headers[] = {"Content-Type: application/json; charset=utf-8", k->conf.auth};
    k->req = httpc_start(k->http, "POST", k->conf.url, headers, 2, body, strlen(body), SLACK_TIMEOUT_MS,
                         slack_done_cb, k, err, sizeof(err));
    free(body);
    if (!k->req) {
        log_error(MOD, "slack \"%s\": %s; retrying", s->name, err);
        goto later;
    }
    k->batch_n = used;
    return;
oom:
    log_error(MOD, "slack \"%s\": out of memory building a message; retrying", s->name);
later:
    ev_timer_set(&k->retry, SINK_SLACK_RETRY_MIN_MS / 1000.0, 0.);
    ev_timer_start(s->loop, &k->retry);
}

/* Post the head batch if it is due, else arm the window timer. */
static void slack_schedule(sink_slack *k)
{
    sink *s = &k->base;
    if (k->req || ev_is_active(&k->retry))
        return;
    ev_timer_stop(s->loop, &k->window);
    if (!k->head)
        return;
    ev_tstamp due = k->head->queued_at + k->conf.window_s, now = ev_now(s->loop);
    if (k->n_items >= k->conf.batch_size || due <= now) {
        slack_send(k);
        return;
    }
    ev_timer_set(&k->window, due - now, 0.);
    ev_timer_start(s->loop, &k->window);
}

/* The post finished. Calls progress last: the pipeline may destroy the sink from it. */
static void slack_done_cb(void *ctx, const httpc_result *r)
{
    sink_slack *k = ctx;
    sink *s = &k->base;
    char code[64] = "";
    size_t n = k->batch_n;
    bool retry = false, drop = false;
    k->req = NULL;
    k->batch_n = 0;
    if (r->status >= 200 && r->status < 300) {
        int a = sink_slack_parse_answer(r->body, code, sizeof(code));
        if (a == 1) {
            s->delivered += n;
            slack_pop(k, n);
        } else {
            s->errors++;
            if (a < 0)
                snprintf(code, sizeof(code), "not a Slack API answer (HTTP %ld)", r->status);
            log_error(MOD, "slack \"%s\" (%s): chat.postMessage failed: %s", s->name, k->conf.origin, code);
            if (a < 0 || sink_slack_error_retryable(code))
                retry = true;
            else
                drop = true;
        }
    } else {
        s->errors++;
        retry = httpc_retryable(r->status, r->curl_code);
        drop = !retry;
        if (r->status)
            log_warn(MOD, "slack \"%s\" (%s): chat.postMessage answered HTTP %ld%s", s->name, k->conf.origin,
                     r->status, r->retry_after_ms >= 0 ? " with Retry-After" : "");
        else
            log_warn(MOD, "slack \"%s\" (%s): chat.postMessage: %s", s->name, k->conf.origin, r->error);
        snprintf(code, sizeof(code), r->status ? "HTTP %ld" : "no answer", r->status);
    }
    if (retry) {
        k->attempts++;
        if (k->attempts > k->conf.max_retries) {
            drop = true;
        } else {
            long delay = httpc_retry_delay_ms(r, k->attempts, SINK_SLACK_RETRY_MIN_MS,
                                              SINK_SLACK_RETRY_MAX_MS, drand48());
            log_info(MOD, "slack \"%s\": retry %u of %u in %ld ms", s->name, k->attempts, k->conf.max_retries,
                     delay);
            ev_timer_set(&k->retry, (double)delay / 1000.0, 0.);
            ev_timer_start(s->loop, &k->retry);
        }
    }
    if (drop) {
        char why[128];
        snprintf(why, sizeof(why), "%s after %u attempt(s)", code, k->attempts + (retry ? 0 : 1));
        s->dropped += n;
        slack_pop(k, n);
        slack_log_drop(k, n, why);
    }
    bool moved = !retry || drop;
    slack_schedule(k);
    if (moved && s->progress)
        s->progress(s->progress_ctx, s);
}

static void slack_timer_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    slack_schedule(t->data);
}

/* Bounded "id=42, region=eu" of a finding's keys. */
static void keys_text(const frame_finding *f, char *out, size_t outlen)
{
    size_t pos = 0;
    out[0] = '\0';
    for (uint32_t i = 0; i < f->n_primary_keys && pos + 1 < outlen; i++) {
        int n = snprintf(out + pos, outlen - pos, "%s%s=%s", i ? ", " : "", f->primary_keys[i].name,
                         f->primary_keys[i].value);
        if (n < 0)
            break;
        pos += (size_t)n;
    }
}

static int slack_write(sink *s, const sink_record *r)
{
    sink_slack *k = (sink_slack *)s;
    const frame_finding *f = r->f;
    if (k->n_items >= SINK_SLACK_QUEUE_MAX) {
        s->dropped++;
        slack_log_drop(k, 1, "queue full: Slack is slow or unreachable");
        return -1;
    }
    char keys[512];
    keys_text(f, keys, sizeof(keys));
    const char *src = f->source == FRAME_SOURCE_SNAPSHOT ? "snapshot" : "stream";
    const char *op = f->op == FRAME_OP_INSERT ? "insert" : f->op == FRAME_OP_UPDATE ? "update" : "snapshot";
    const char *strs[] = {r->database, r->worker, f->rule_id,       f->description, f->category, f->schema,
                          f->table,    f->column, f->masked_sample, keys,           src,         op};
    enum { N_STRS = sizeof(strs) / sizeof(strs[0]) };
    size_t lens[N_STRS], total = 0;
    for (size_t i = 0; i < N_STRS; i++) {
        lens[i] = strlen(strs[i] ? strs[i] : "");
        total += lens[i] + 1;
    }
    slack_item *it = malloc(sizeof(*it) + total);
    if (!it) {
        s->dropped++;
        log_error(MOD, "slack \"%s\": out of memory queueing a finding; it is lost", s->name);
        return -1;
    }
    memset(it, 0, sizeof(*it));
    const char *p[N_STRS];
    char *o = it->data;
    for (size_t i = 0; i < N_STRS; i++) {
        memcpy(o, strs[i] ? strs[i] : "", lens[i] + 1);
        p[i] = o;
        o += lens[i] + 1;
    }
    it->v = (sink_slack_item){.database = p[0],
                              .worker = p[1],
                              .rule_id = p[2],
                              .description = p[3],
                              .category = p[4],
                              .severity = f->severity,
                              .schema = p[5],
                              .table = p[6],
                              .column = p[7],
                              .masked_sample = p[8],
                              .keys = p[9],
                              .source = p[10],
                              .op = p[11]};
    it->size = total;
    it->queued_at = ev_now(s->loop);
    if (k->tail)
        k->tail->next = it;
    else
        k->head = it;
    k->tail = it;
    k->n_items++;
    s->taken++;
    s->buffered += total;
    return 0;
}

static void slack_flush(sink *s)
{
    slack_schedule((sink_slack *)s);
}

static int slack_prepare(sink *s, const config *cfg, char *err, size_t errlen)
{
    sink_slack *k = (sink_slack *)s;
    const config_slack *c = conf_find(cfg, s->name);
    if (!c) {
        snprintf(err, errlen, "slack \"%s\" is not in the new configuration", s->name);
        return -1;
    }
    if (k->have_next)
        conf_free(&k->next);
    k->have_next = false;
    if (conf_build(&k->next, c, err, errlen) < 0)
        return -1;
    k->have_next = true;
    return 0;
}

static void slack_commit(sink *s)
{
    sink_slack *k = (sink_slack *)s;
    if (!k->have_next)
        return;
    conf_free(&k->conf);
    k->conf = k->next;
    memset(&k->next, 0, sizeof(k->next));
    k->have_next = false;
    ev_timer_stop(s->loop, &k->retry); /* new settings may fix what failed */
    slack_schedule(k);
}

static void slack_abort(sink *s)
{
    sink_slack *k = (sink_slack *)s;
    if (k->have_next)
        conf_free(&k->next);
    k->have_next = false;
}

static void slack_destroy(sink *s)
{
    sink_slack *k = (sink_slack *)s;
    slack_abort(s);
    if (k->drops_unlogged > 0) /* what the rate limit held back */
        log_error(MOD, "slack \"%s\": %" PRIu64 " more finding(s) dropped; %" PRIu64 " dropped in all",
                  s->name, k->drops_unlogged, s->dropped);
    if (s->loop) {
        ev_timer_stop(s->loop, &k->retry);
        ev_timer_stop(s->loop, &k->window);
    }
    if (k->req)
        httpc_cancel(k->http, k->req);
    while (k->head) {
        slack_item *it = k->head;
        k->head = it->next;
        free(it);
    }
    httpc_release(k->http);
    conf_free(&k->conf);
    free(s->name);
    free(k);
}

static const sink_ops slack_ops = {
    .kind = "slack",
    .write = slack_write,
    .flush = slack_flush,
    .prepare = slack_prepare,
    .commit = slack_commit,
    .abort = slack_abort,
    .destroy = slack_destroy,
};

sink *sink_slack_new(struct ev_loop *loop, const config_slack *cfg, char *err, size_t errlen)
{
    sink_slack *k = calloc(1, sizeof(*k));
    if (!k) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    k->base.ops = &slack_ops;
    k->base.loop = loop;
    ev_timer_init(&k->retry, slack_timer_cb, 0., 0.);
    k->retry.data = k;
    ev_timer_init(&k->window, slack_timer_cb, 0., 0.);
    k->window.data = k;
    k->last_drop_log = -1e9;
    k->base.name = strdup(cfg->name ? cfg->name : "slack");
    if (!k->base.name) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    if (conf_build(&k->conf, cfg, err, errlen) < 0)
        goto fail;
    k->http = httpc_acquire(loop, err, errlen);
    if (!k->http)
        goto fail;
    return &k->base;
fail:
    slack_destroy(&k->base);
    return NULL;
}
