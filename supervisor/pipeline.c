/*
 * pipeline: the findings path of pgsense-supervisor.
 *
 * Per worker (pipeline_src) a FIFO of pending seqs. FINDINGS are deduped,
 * routed (a rule's channels, else every sink) and written into the sinks'
 * buffers; each pending seq remembers, per durable sink it routed to, the
 * sink's record count after its last finding. A sink's durable_pos only
 * grows, so "seq is durable in that sink" is durable_pos >= that count. The
 * head of the FIFO is acknowledged once closed (TXN_END / TABLE_DONE seen)
 * and durable in every sink it needs; acks therefore go out in seq order
 * even when sinks complete out of order, and cover several seqs at once
 * after a group flush.
 *
 * Credit goes back as soon as a FINDINGS frame is taken, unless a durable
 * sink it routes to is blocked (disk full): then the bytes are withheld
 * until no durable sink is blocked, so the worker runs out of credit and
 * stops reading the replication stream. Memory held meanwhile is bounded by
 * the workers' credit (credit_bytes each) plus one batch.
 *
 * Batching (latency targets p99 commit-to-sink < 50 ms at 1,000 rows/s and
 * < 250 ms at 10,000): a TXN_END / TABLE_DONE only asks for a flush; an
 * ev_prepare watcher does it at the end of the loop iteration, so every
 * transaction read in one iteration shares one write(2), and the jsonl
 * sink's fdatasync (on its sync thread) covers everything written while
 * the previous one ran (group commit). Findings of a transaction still open
 * are flushed at PIPELINE_BATCH_BYTES or after PIPELINE_BATCH_MS.
 */
#include "pipeline.h"

#include <errno.h>
#include <ev.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dedup.h"
#include "http.h"
#include "log.h"
#include "metrics.h"
#include "sink.h"
#include "sink_http.h"
#include "sink_postgres.h"

#define MOD "pipeline"

typedef struct {
    uint32_t sink_id;
    uint64_t pos; /* the sink's taken count after this seq's last finding */
} pending_req;

typedef struct pending {
    struct pending *next;
    uint64_t seq;
    bool closed;   /* TXN_END / TABLE_DONE seen */
    bool is_table; /* TABLE_DONE (else TXN_END) */
    uint64_t end_lsn;
    uint64_t n_findings; /* received, suppressed ones included */
    frame_table_done td; /* is_table: strings owned */
    pending_req *reqs;
    size_t n_reqs, cap_reqs;
} pending;

struct pipeline_src {
    pipeline *p;
    pipeline_src *prev, *next;
    char *worker, *database;
    pipeline_ack_cb ack;
    pipeline_credit_cb credit;
    pipeline_table_ready_cb ready;
    void *ctx;
    pending *head, *tail;
    size_t n_pending;
    uint64_t last_seq; /* highest seq seen */
    uint64_t withheld; /* credit bytes not returned yet */
    uint64_t queued;   /* findings in pending seqs (queue_depth) */
    int busy;          /* inside a callback */
    bool dead;         /* pipeline_src_free called from a callback */
};

typedef struct {
    char *rule_id;
    char **channels;
    size_t n_channels;
    sink **targets; /* resolved against the active sinks */
    size_t n_targets;
} route;

typedef struct {
    char *name, *identity;
} db_entry;

typedef struct {
    char *rule_id;
    uint64_t count;
} script_count;

typedef struct worker_state {
    struct worker_state *next;
    char *name;
    int state; /* frame_worker_state, -1 before the first STATS */
    bool have_stats;
    uint64_t events, reconnects, skipped[3];
    script_count *scripts;
    size_t n_scripts;
} worker_state;

struct pipeline {
    struct ev_loop *loop;
    sink **sinks;
    size_t n_sinks;
    sink **retiring; /* removed at reload, still flushing */
    size_t n_retiring;
    uint32_t next_sink_id;
    route *routes; /* sorted by rule_id */
    size_t n_routes;
    dedup *dd;
    pipeline_src *srcs;
    db_entry *dbs;
    size_t n_dbs;
    worker_state *workers;
    bool server_enabled;
    char *server_listen;
    http *http;
    ev_prepare prep;
    ev_timer batch;
    ev_timer sweep;
    bool flush_wanted;
    bool in_flush;
    metrics *m;
    metrics_family *m_events, *m_findings, *m_alerts, *m_alerts_dropped, *m_connected, *m_reconnects,
        *m_restarts, *m_dedup, *m_skipped, *m_reloads, *m_rules, *m_script_errors, *m_queue, *m_lag,
        *m_retained;
};

static void pipeline_flush_all(pipeline *p, bool force);
static void pipeline_advance_all(pipeline *p);

/* ---- small helpers ---- */

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void metric_add(pipeline *p, metrics_family *f, const char *const *v, int64_t d)
{
    (void)p;
    if (metrics_add(f, v, d) < 0)
        log_error(MOD, "out of memory updating a metric");
}

static void metric_set(pipeline *p, metrics_family *f, const char *const *v, int64_t x)
{
    (void)p;
    if (metrics_set(f, v, x) < 0)
        log_error(MOD, "out of memory updating a metric");
}

/* The label of a worker: its identity when configured, else its name. */
static const char *worker_database(pipeline *p, const char *worker)
{
    for (size_t i = 0; i < p->n_dbs; i++)
        if (strcmp(p->dbs[i].name, worker) == 0)
            return p->dbs[i].identity;
    for (pipeline_src *s = p->srcs; s; s = s->next)
        if (strcmp(s->worker, worker) == 0)
            return s->database;
    return worker;
}

static sink *find_sink_id(pipeline *p, uint32_t id)
{
    for (size_t i = 0; i < p->n_sinks; i++)
        if (p->sinks[i]->id == id)
            return p->sinks[i];
    for (size_t i = 0; i < p->n_retiring; i++)
        if (p->retiring[i]->id == id)
            return p->retiring[i];
    return NULL;
}

sink *pipeline_sink(pipeline *p, const char *name)
{
    for (size_t i = 0; i < p->n_sinks; i++)
        if (strcmp(p->sinks[i]->name, name) == 0)
            return p->sinks[i];
    return NULL;
}

static bool any_durable_blocked(pipeline *p)
{
    for (size_t i = 0; i < p->n_sinks; i++)
        if (p->sinks[i]->durable && p->sinks[i]->blocked)
            return true;
    for (size_t i = 0; i < p->n_retiring; i++)
        if (p->retiring[i]->durable && p->retiring[i]->blocked)
            return true;
    return false;
}

/* Add the sink's new counts to pgsense_alerts_total / pgsense_alerts_dropped_total. */
static void sync_sink_metrics(pipeline *p, sink *s)
{
    if (!p->m_alerts || !p->m_alerts_dropped)
        return; /* pipeline_new failed before the metrics existed */
    const char *ok[] = {s->name, "ok"}, *er[] = {s->name, "error"}, *dr[] = {s->name};
    metric_add(p, p->m_alerts, ok, (int64_t)(s->delivered - s->reported_delivered));
    metric_add(p, p->m_alerts, er, (int64_t)(s->errors - s->reported_errors));
    metric_add(p, p->m_alerts_dropped, dr, (int64_t)(s->dropped - s->reported_dropped));
    s->reported_delivered = s->delivered;
    s->reported_errors = s->errors;
    s->reported_dropped = s->dropped;
}

/* Close a sink: what it still holds is counted dropped and logged. */
static void sink_release(pipeline *p, sink *s)
{
    uint64_t lost = s->taken - s->durable_pos;
    if (lost > 0) {
        s->dropped += lost;
        log_error(MOD, "sink \"%s\" closed with %" PRIu64 " findings (%zu bytes) not delivered", s->name,
                  lost, s->buffered);
    }
    sync_sink_metrics(p, s);
    s->ops->destroy(s);
}

/* ---- routes ---- */

static int route_cmp(const void *a, const void *b)
{
    return strcmp(((const route *)a)->rule_id, ((const route *)b)->rule_id);
}

static void routes_free(route *r, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        for (size_t k = 0; k < r[i].n_channels; k++)
            free(r[i].channels[k]);
        free(r[i].channels);
        free(r[i].targets);
        free(r[i].rule_id);
    }
    free(r);
}

/* Copy the channel lists of the rules that have one (others go to every sink). */
static int routes_build(const rules_set *rules, route **out, size_t *n_out)
{
    size_t n = 0, cap = 0;
    route *r = NULL;
    size_t count = rules ? rules_count(rules) : 0;
    for (size_t i = 0; i < count; i++) {
        size_t nc = rules_channel_count(rules, i);
        if (nc == 0)
            continue;
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 8;
            route *nr = realloc(r, ncap * sizeof(*nr));
            if (!nr)
                goto fail;
            r = nr;
            cap = ncap;
        }
        route *e = &r[n];
        memset(e, 0, sizeof(*e));
        n++;
        e->rule_id = strdup(rules_id(rules, i));
        e->channels = calloc(nc, sizeof(char *));
        e->targets = calloc(nc, sizeof(sink *));
        if (!e->rule_id || !e->channels || !e->targets)
            goto fail;
        for (size_t k = 0; k < nc; k++) {
            e->channels[k] = strdup(rules_channel(rules, i, k));
            if (!e->channels[k])
                goto fail;
            e->n_channels = k + 1;
        }
    }
    if (n > 1)
        qsort(r, n, sizeof(*r), route_cmp);
    *out = r;
    *n_out = n;
    return 0;
fail:
    routes_free(r, n);
    return -1;
}

/* Point every route at the active sinks it names (after any sink change). */
static void routes_resolve(pipeline *p)
{
    for (size_t i = 0; i < p->n_routes; i++) {
        route *r = &p->routes[i];
        r->n_targets = 0;
        for (size_t k = 0; k < r->n_channels; k++) {
            sink *s = pipeline_sink(p, r->channels[k]);
            bool dup = false;
            for (size_t j = 0; s && j < r->n_targets; j++)
                dup = dup || r->targets[j] == s;
            if (s && !dup)
                r->targets[r->n_targets++] = s;
        }
    }
}

static const route *route_find(pipeline *p, const char *rule_id)
{
    size_t lo = 0, hi = p->n_routes;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(rule_id, p->routes[mid].rule_id);
        if (c == 0)
            return &p->routes[mid];
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

/* ---- configuration copies ---- */

static void dbs_free(db_entry *d, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(d[i].name);
        free(d[i].identity);
    }
    free(d);
}

static int dbs_copy(const config *cfg, db_entry **out, size_t *n_out)
{
    db_entry *d = cfg->n_dbs ? calloc(cfg->n_dbs, sizeof(*d)) : NULL;
    if (cfg->n_dbs && !d)
        return -1;
    for (size_t i = 0; i < cfg->n_dbs; i++) {
        const config_db *c = &cfg->dbs[i];
        d[i].name = strdup(c->name ? c->name : (c->dbname ? c->dbname : ""));
        d[i].identity = strdup(c->identity ? c->identity : "");
        if (!d[i].name || !d[i].identity) {
            dbs_free(d, cfg->n_dbs);
            return -1;
        }
    }
    *out = d;
    *n_out = cfg->n_dbs;
    return 0;
}

static uint64_t dedup_window_ms(const config *cfg)
{
    return cfg->alerts.dedup_window_seconds > 0 ? (uint64_t)cfg->alerts.dedup_window_seconds * 1000u : 0;
}

static size_t dedup_max(const config *cfg)
{
    return cfg->alerts.dedup_max_entries > 0 ? (size_t)cfg->alerts.dedup_max_entries : 0;
}

/* ---- sinks ---- */

static void on_sink_progress(void *ctx, sink *s);

static int sinks_push(sink ***arr, size_t *n, sink *s)
{
    sink **a = realloc(*arr, (*n + 1) * sizeof(*a));
    if (!a)
        return -1;
    a[(*n)++] = s;
    *arr = a;
    return 0;
}

static void sink_attach(pipeline *p, sink *s)
{
    s->id = ++p->next_sink_id;
    s->progress = on_sink_progress;
    s->progress_ctx = p;
    s->loop = p->loop;
}

typedef struct {
    const char *kind, *name;
} sink_want;

/* Bound of sinks_wanted(): log, stdout, jsonl, postgres, each webhook and slack entry. */
#define PIPELINE_MAX_SINKS (4 + CONFIG_MAX_WEBHOOKS + CONFIG_MAX_SLACK)

/* The sinks cfg enables, in status order; returns how many (<= PIPELINE_MAX_SINKS). */
static size_t sinks_wanted(const config *cfg, sink_want *w)
{
    size_t n = 0;
    if (cfg->alerts.log_sink.enabled)
        w[n++] = (sink_want){"log", "log"};
    if (cfg->alerts.stdout_sink.enabled)
        w[n++] = (sink_want){"stdout", "stdout"};
    if (cfg->alerts.jsonl.enabled)
        w[n++] = (sink_want){"jsonl", cfg->alerts.jsonl.name ? cfg->alerts.jsonl.name : "jsonl"};
    if (cfg->alerts.postgres.enabled)
        w[n++] = (sink_want){"postgres", "postgres"};
    for (size_t i = 0; i < cfg->alerts.n_webhooks && i < CONFIG_MAX_WEBHOOKS; i++)
        w[n++] = (sink_want){"webhook", cfg->alerts.webhooks[i].name};
    for (size_t i = 0; i < cfg->alerts.n_slack && i < CONFIG_MAX_SLACK; i++)
        w[n++] = (sink_want){"slack", cfg->alerts.slack[i].name};
    return n;
}

static sink *sink_create(pipeline *p, const config *cfg, const sink_want *w, char *err, size_t errlen)
{
    sink *s = NULL;
    if (strcmp(w->kind, "log") == 0)
        s = sink_log_new(p->loop, err, errlen);
    else if (strcmp(w->kind, "stdout") == 0)
        s = sink_stdout_new(p->loop, err, errlen);
    else if (strcmp(w->kind, "postgres") == 0)
        s = sink_postgres_new(p->loop, cfg, err, errlen);
    else if (strcmp(w->kind, "webhook") == 0 || strcmp(w->kind, "slack") == 0) {
        bool wh = strcmp(w->kind, "webhook") == 0;
        size_t n = wh ? cfg->alerts.n_webhooks : cfg->alerts.n_slack;
        for (size_t i = 0; i < n && !s; i++) {
            const char *name = wh ? cfg->alerts.webhooks[i].name : cfg->alerts.slack[i].name;
            if (name && w->name && strcmp(name, w->name) == 0)
                s = wh ? sink_webhook_new(p->loop, &cfg->alerts.webhooks[i], err, errlen)
                       : sink_slack_new(p->loop, &cfg->alerts.slack[i], err, errlen);
        }
    } else
        s = sink_jsonl_new(p->loop, w->name, cfg->alerts.jsonl.path, err, errlen);
    if (s)
        sink_attach(p, s);
    return s;
}

/* ---- metrics ---- */

static int metrics_setup(pipeline *p)
{
    static const char *const db[] = {"database"};
    static const char *const db_cat_sev[] = {"database", "category", "severity"};
    static const char *const ch_status[] = {"channel", "status"};
    static const char *const ch[] = {"channel"};
    static const char *const db_outcome[] = {"database", "outcome"};
    static const char *const db_reason[] = {"database", "reason"};
    static const char *const status[] = {"status"};
    static const char *const rule[] = {"rule_id"};
    metrics *m = p->m = metrics_new();
    if (!m)
        return -1;
    p->m_events = metrics_register(m, "pgsense_events_total", "Row changes seen by the workers.",
                                   METRICS_COUNTER, 1, db);
    p->m_findings = metrics_register(m, "pgsense_findings_total", "Findings received from the workers.",
                                     METRICS_COUNTER, 3, db_cat_sev);
    p->m_alerts = metrics_register(m, "pgsense_alerts_total",
                                   "Findings delivered (ok) and failed attempts (error) per sink.",
                                   METRICS_COUNTER, 2, ch_status);
    p->m_alerts_dropped = metrics_register(m, "pgsense_alerts_dropped_total", "Findings a sink gave up on.",
                                           METRICS_COUNTER, 1, ch);
    p->m_connected =
        metrics_register(m, "pgsense_pipeline_connected", "1 when the worker is connected to its database.",
                         METRICS_GAUGE, 1, db);
    p->m_reconnects = metrics_register(m, "pgsense_pipeline_reconnects_total",
                                       "Replication reconnects of the workers.", METRICS_COUNTER, 1, db);
    p->m_restarts = metrics_register(m, "pgsense_worker_restarts_total", "Worker process restarts.",
                                     METRICS_COUNTER, 1, db);
    p->m_dedup = metrics_register(m, "pgsense_dedup_total", "Dedup outcomes: passed, suppressed, evicted.",
                                  METRICS_COUNTER, 2, db_outcome);
    p->m_skipped = metrics_register(m, "pgsense_events_skipped_total",
                                    "Values not scanned, by reason: filter, type, scope.", METRICS_COUNTER, 2,
                                    db_reason);
    p->m_reloads = metrics_register(m, "pgsense_config_reloads_total", "Configuration reloads by outcome.",
                                    METRICS_COUNTER, 1, status);
    p->m_rules =
        metrics_register(m, "pgsense_rules_loaded", "Rules in the active rules set.", METRICS_GAUGE, 0, NULL);
    p->m_script_errors =
        metrics_register(m, "pgsense_script_errors_total",
                         "Script rule calls that failed or ran over budget.", METRICS_COUNTER, 1, rule);
    p->m_queue = metrics_register(m, "pgsense_queue_depth", "Findings taken but not acknowledged yet.",
                                  METRICS_GAUGE, 1, db);
    p->m_lag = metrics_register(m, "pgsense_replication_lag_bytes",
                                "Current server LSN minus the confirmed flush LSN.", METRICS_GAUGE, 1, db);
    p->m_retained =
        metrics_register(m, "pgsense_retained_wal_bytes", "Current server LSN minus the slot's restart LSN.",
                         METRICS_GAUGE, 1, db);
    if (!p->m_events || !p->m_findings || !p->m_alerts || !p->m_alerts_dropped || !p->m_connected ||
        !p->m_reconnects || !p->m_restarts || !p->m_dedup || !p->m_skipped || !p->m_reloads || !p->m_rules ||
        !p->m_script_errors || !p->m_queue || !p->m_lag || !p->m_retained)
        return -1;
    const char *ok[] = {"ok"}, *er[] = {"error"};
    if (metrics_add(p->m_reloads, ok, 0) < 0 || metrics_add(p->m_reloads, er, 0) < 0)
        return -1;
    return 0;
}

static void on_evict(void *ctx, const char *database)
{
    pipeline *p = ctx;
    const char *v[] = {database, "evicted"};
    metric_add(p, p->m_dedup, v, 1);
}

/* ---- HTTP callbacks ---- */

static int http_metrics(void *ctx, FILE *out)
{
    return pipeline_metrics_text(ctx, out);
}

static bool http_ready(void *ctx)
{
    return pipeline_ready(ctx);
}

/* ---- loop watchers ---- */

static void prep_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
    (void)loop;
    (void)revents;
    pipeline *p = w->data;
    if (p->flush_wanted)
        pipeline_flush_all(p, false);
}

static void batch_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    pipeline_flush_all(w->data, false);
}

static void sweep_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    pipeline *p = w->data;
    dedup_expire(p->dd, now_ms());
}

/* ---- life cycle ---- */

pipeline *pipeline_new(struct ev_loop *loop, const config *cfg, const rules_set *rules, char *err,
                       size_t errlen)
{
    sink_want want[PIPELINE_MAX_SINKS];
    pipeline *p = calloc(1, sizeof(*p));
    if (!p) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    p->loop = loop;
    ev_prepare_init(&p->prep, prep_cb);
    p->prep.data = p;
    ev_init(&p->batch, batch_cb);
    p->batch.data = p;
    ev_timer_init(&p->sweep, sweep_cb, PIPELINE_DEDUP_SWEEP_S, PIPELINE_DEDUP_SWEEP_S);
    p->sweep.data = p;

    if (metrics_setup(p) < 0 || dbs_copy(cfg, &p->dbs, &p->n_dbs) < 0 ||
        routes_build(rules, &p->routes, &p->n_routes) < 0) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    p->dd = dedup_new(dedup_window_ms(cfg), dedup_max(cfg), on_evict, p);
    if (!p->dd) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    size_t n = sinks_wanted(cfg, want);
    for (size_t i = 0; i < n; i++) {
        sink *s = sink_create(p, cfg, &want[i], err, errlen);
        if (!s)
            goto fail;
        if (sinks_push(&p->sinks, &p->n_sinks, s) < 0) {
            s->ops->destroy(s);
            snprintf(err, errlen, "out of memory");
            goto fail;
        }
    }
    routes_resolve(p);
    metric_set(p, p->m_rules, NULL, rules ? (int64_t)rules_count(rules) : 0);

    p->server_enabled = cfg->server.enabled;
    p->server_listen = strdup(cfg->server.listen ? cfg->server.listen : "127.0.0.1:9187");
    if (!p->server_listen) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    if (p->server_enabled) {
        http_handlers h = {.metrics = http_metrics, .ready = http_ready, .ctx = p};
        p->http = http_new(loop, p->server_listen, &h, err, errlen);
        if (!p->http)
            goto fail;
    }
    /* housekeeping watchers must not keep the loop alive by themselves */
    ev_prepare_start(loop, &p->prep);
    ev_unref(loop);
    ev_timer_start(loop, &p->sweep);
    ev_unref(loop);
    return p;
fail:
    pipeline_free(p);
    return NULL;
}

void pipeline_free(pipeline *p)
{
    if (!p)
        return;
    while (p->srcs) { /* first: no callback into a supervisor that is going away */
        pipeline_src *s = p->srcs;
        s->busy = 0;
        pipeline_src_free(s);
    }
    pipeline_flush_all(p, true);
    if (ev_is_active(&p->prep)) {
        ev_ref(p->loop);
        ev_prepare_stop(p->loop, &p->prep);
    }
    if (ev_is_active(&p->sweep)) {
        ev_ref(p->loop);
        ev_timer_stop(p->loop, &p->sweep);
    }
    ev_timer_stop(p->loop, &p->batch);
    http_free(p->http);
    for (size_t i = 0; i < p->n_sinks; i++)
        sink_release(p, p->sinks[i]);
    for (size_t i = 0; i < p->n_retiring; i++)
        sink_release(p, p->retiring[i]);
    free(p->sinks);
    free(p->retiring);
    routes_free(p->routes, p->n_routes);
    dedup_free(p->dd);
    dbs_free(p->dbs, p->n_dbs);
    while (p->workers) {
        worker_state *w = p->workers;
        p->workers = w->next;
        for (size_t i = 0; i < w->n_scripts; i++)
            free(w->scripts[i].rule_id);
        free(w->scripts);
        free(w->name);
        free(w);
    }
    metrics_free(p->m);
    free(p->server_listen);
    free(p);
}

int pipeline_reconfigure(pipeline *p, const config *cfg, const rules_set *rules, char *err, size_t errlen)
{
    sink_want want[PIPELINE_MAX_SINKS];
    sink *keep[PIPELINE_MAX_SINKS] = {NULL}, *fresh[PIPELINE_MAX_SINKS] = {NULL};
    route *routes = NULL;
    size_t n_routes = 0;
    db_entry *dbs = NULL;
    size_t n_dbs = 0, n = sinks_wanted(cfg, want), n_prepared = 0;
    sink **next = NULL;
    size_t n_next = 0;

    if (routes_build(rules, &routes, &n_routes) < 0 || dbs_copy(cfg, &dbs, &n_dbs) < 0) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    /* phase 1: open everything the new settings need; nothing changes yet */
    for (size_t i = 0; i < n; i++) {
        sink *old = pipeline_sink(p, want[i].name);
        if (old && !old->external && strcmp(old->ops->kind, want[i].kind) == 0) {
            if (old->ops->prepare && old->ops->prepare(old, cfg, err, errlen) < 0)
                goto fail;
            keep[i] = old;
            n_prepared = i + 1;
        } else {
            fresh[i] = sink_create(p, cfg, &want[i], err, errlen);
            if (!fresh[i])
                goto fail;
            n_prepared = i + 1;
        }
    }
    for (size_t i = 0; i < n; i++)
        if (sinks_push(&next, &n_next, keep[i] ? keep[i] : fresh[i]) < 0)
            goto oom;
    for (size_t i = 0; i < p->n_sinks; i++)
        if (p->sinks[i]->external && sinks_push(&next, &n_next, p->sinks[i]) < 0)
            goto oom;
    if (p->n_retiring + p->n_sinks > 0) {
        sink **r = realloc(p->retiring, (p->n_retiring + p->n_sinks) * sizeof(*r));
        if (!r)
            goto oom;
        p->retiring = r;
    }

    /* phase 2: commit (progress callbacks wait for the end) */
    p->in_flush = true;
    for (size_t i = 0; i < n; i++)
        if (keep[i] && keep[i]->ops->commit)
            keep[i]->ops->commit(keep[i]);
    for (size_t i = 0; i < p->n_sinks; i++) {
        sink *s = p->sinks[i];
        bool kept = s->external;
        for (size_t k = 0; k < n; k++)
            kept = kept || keep[k] == s;
        if (kept)
            continue;
        if (!s->blocked)
            s->ops->flush(s);
        if (s->durable_pos < s->taken) {
            log_warn(MOD, "sink \"%s\" removed by the reload: still delivering %" PRIu64 " findings", s->name,
                     s->taken - s->durable_pos);
            p->retiring[p->n_retiring++] = s;
        } else {
            sink_release(p, s);
        }
    }
    p->in_flush = false;
    free(p->sinks);
    p->sinks = next;
    p->n_sinks = n_next;
    routes_free(p->routes, p->n_routes);
    p->routes = routes;
    p->n_routes = n_routes;
    routes_resolve(p);
    dbs_free(p->dbs, p->n_dbs);
    p->dbs = dbs;
    p->n_dbs = n_dbs;
    dedup_configure(p->dd, dedup_window_ms(cfg), dedup_max(cfg));
    metric_set(p, p->m_rules, NULL, rules ? (int64_t)rules_count(rules) : 0);
    const char *listen = cfg->server.listen ? cfg->server.listen : "127.0.0.1:9187";
    if (cfg->server.enabled != p->server_enabled ||
        (p->server_enabled && strcmp(listen, p->server_listen) != 0))
        log_warn(MOD, "[server] changed: needs a restart; still %s%s",
                 p->server_enabled ? "serving on " : "disabled", p->server_enabled ? p->server_listen : "");
    pipeline_advance_all(p);
    return 0;

oom:
    snprintf(err, errlen, "out of memory");
fail:
    for (size_t i = 0; i < n_prepared; i++) {
        if (keep[i] && keep[i]->ops->abort)
            keep[i]->ops->abort(keep[i]);
        if (fresh[i])
            fresh[i]->ops->destroy(fresh[i]);
    }
    free(next);
    routes_free(routes, n_routes);
    dbs_free(dbs, n_dbs);
    return -1;
}

int pipeline_add_sink(pipeline *p, sink *s)
{
    sink_attach(p, s);
    s->external = true;
    if (sinks_push(&p->sinks, &p->n_sinks, s) < 0) {
        s->ops->destroy(s);
        return -1;
    }
    routes_resolve(p);
    return 0;
}

/* ---- sources ---- */

pipeline_src *pipeline_src_new(pipeline *p, const char *worker, const char *database, pipeline_ack_cb ack,
                               pipeline_credit_cb credit, pipeline_table_ready_cb ready, void *ctx)
{
    pipeline_src *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->worker = strdup(worker ? worker : "");
    s->database = strdup(database ? database : "");
    if (!s->worker || !s->database) {
        free(s->worker);
        free(s->database);
        free(s);
        return NULL;
    }
    s->p = p;
    s->ack = ack;
    s->credit = credit;
    s->ready = ready;
    s->ctx = ctx;
    s->next = p->srcs;
    if (p->srcs)
        p->srcs->prev = s;
    p->srcs = s;
    return s;
}

static void pending_free(pending *e)
{
    free((char *)e->td.schema);
    free((char *)e->td.table);
    free(e->reqs);
    free(e);
}

static void src_set_queue(pipeline_src *s)
{
    const char *v[] = {s->database};
    metric_set(s->p, s->p->m_queue, v, (int64_t)s->queued);
}

void pipeline_src_free(pipeline_src *s)
{
    if (!s)
        return;
    if (s->busy) { /* called from one of its callbacks: finish after it returns */
        s->dead = true;
        return;
    }
    pipeline *p = s->p;
    if (s->n_pending > 0)
        log_info(MOD, "worker %s gone with %zu unacknowledged transactions/tables: it resends them",
                 s->worker, s->n_pending);
    while (s->head) {
        pending *e = s->head;
        s->head = e->next;
        pending_free(e);
    }
    s->queued = 0;
    src_set_queue(s);
    if (s->prev)
        s->prev->next = s->next;
    else
        p->srcs = s->next;
    if (s->next)
        s->next->prev = s->prev;
    free(s->worker);
    free(s->database);
    free(s);
}

size_t pipeline_src_unacked(const pipeline_src *s)
{
    return s->n_pending;
}

uint64_t pipeline_src_withheld(const pipeline_src *s)
{
    return s->withheld;
}

/* Callbacks may free their own source: hold it while a pipeline_* call works on it. */
static void src_enter(pipeline_src *s)
{
    s->busy++;
}

static void src_leave(pipeline_src *s)
{
    if (--s->busy == 0 && s->dead)
        pipeline_src_free(s);
}

static pending *pending_new(pipeline_src *s, uint64_t seq)
{
    pending *e = calloc(1, sizeof(*e));
    if (!e) {
        log_error(MOD, "worker %s: out of memory tracking seq %" PRIu64 "; it will not be acknowledged",
                  s->worker, seq);
        return NULL;
    }
    e->seq = seq;
    if (s->tail)
        s->tail->next = e;
    else
        s->head = e;
    s->tail = e;
    s->n_pending++;
    s->last_seq = seq;
    return e;
}

/* The open pending entry for seq, creating it; NULL on a protocol violation or ENOMEM. */
static pending *pending_for(pipeline_src *s, uint64_t seq, const char *what)
{
    if (s->tail && s->tail->seq == seq && !s->tail->closed)
        return s->tail;
    if (seq > s->last_seq) {
        if (s->tail && !s->tail->closed)
            log_error(MOD,
                      "worker %s: seq %" PRIu64 " started before seq %" PRIu64
                      " ended (protocol violation); acknowledgements stop here until it restarts",
                      s->worker, seq, s->tail->seq);
        return pending_new(s, seq);
    }
    log_error(MOD, "worker %s: %s for seq %" PRIu64 " after seq %" PRIu64 " (protocol violation); ignored",
              s->worker, what, seq, s->last_seq);
    return NULL;
}

static int pending_require(pending *e, const sink *k)
{
    for (size_t i = 0; i < e->n_reqs; i++) {
        if (e->reqs[i].sink_id == k->id) {
            e->reqs[i].pos = k->taken;
            return 0;
        }
    }
    if (e->n_reqs == e->cap_reqs) {
        size_t cap = e->cap_reqs ? e->cap_reqs * 2 : 2;
        pending_req *r = realloc(e->reqs, cap * sizeof(*r));
        if (!r)
            return -1;
        e->reqs = r;
        e->cap_reqs = cap;
    }
    e->reqs[e->n_reqs++] = (pending_req){k->id, k->taken};
    return 0;
}

static bool pending_durable(pipeline *p, const pending *e)
{
    for (size_t i = 0; i < e->n_reqs; i++) {
        const sink *k = find_sink_id(p, e->reqs[i].sink_id);
        if (k && k->durable_pos < e->reqs[i].pos)
            return false; /* a sink that is gone was fully flushed before it went */
    }
    return true;
}

/*
 * Acknowledge the closed, durable prefix of s's FIFO in one ACK, telling the
 * memory store about tables first. Returns false when s was freed by a callback.
 */
static bool src_advance(pipeline_src *s)
{
    pipeline *p = s->p;
    uint64_t last = 0, end_lsn = 0;
    bool any = false;

    src_enter(s);
    while (s->head && s->head->closed && pending_durable(p, s->head) && !s->dead) {
        pending *e = s->head;
        s->head = e->next;
        if (!s->head)
            s->tail = NULL;
        s->n_pending--;
        s->queued -= e->n_findings;
        if (e->is_table) {
            if (s->ready)
                s->ready(s->ctx, &e->td);
        } else if (e->end_lsn > end_lsn) {
            end_lsn = e->end_lsn;
        }
        last = e->seq;
        any = true;
        pending_free(e);
    }
    if (any && !s->dead) {
        src_set_queue(s);
        if (s->ack)
            s->ack(s->ctx, last, end_lsn);
    }
    if (s->withheld > 0 && !s->dead && !any_durable_blocked(p)) {
        uint64_t b = s->withheld;
        s->withheld = 0;
        if (s->credit)
            s->credit(s->ctx, b);
    }
    bool alive = !(s->dead && s->busy == 1);
    src_leave(s);
    return alive;
}

/* Free retiring sinks that have delivered everything. */
static void retire_done(pipeline *p)
{
    size_t k = 0;
    for (size_t i = 0; i < p->n_retiring; i++) {
        sink *s = p->retiring[i];
        bool done = s->durable_pos >= s->taken;
        if (done) {
            log_info(MOD, "sink \"%s\" removed by the reload has delivered everything: closed", s->name);
            sink_release(p, s);
        } else {
            p->retiring[k++] = s;
        }
    }
    p->n_retiring = k;
}

static void pipeline_advance_all(pipeline *p)
{
    pipeline_src *s = p->srcs;
    while (s) {
        pipeline_src *next = s->next;
        src_advance(s);
        s = next;
    }
    retire_done(p);
}

static void on_sink_progress(void *ctx, sink *s)
{
    (void)s;
    pipeline *p = ctx;
    if (!p->in_flush)
        pipeline_advance_all(p);
}

/*
 * Flush every sink holding data. force: also the blocked ones (drain,
 * free), otherwise their own retry timer does it. Then acknowledge.
 */
static void pipeline_flush_all(pipeline *p, bool force)
{
    if (p->in_flush)
        return;
    p->in_flush = true;
    p->flush_wanted = false;
    ev_timer_stop(p->loop, &p->batch);
    for (size_t i = 0; i < p->n_sinks; i++) {
        sink *s = p->sinks[i];
        if (s->buffered > 0 && (force || !s->blocked))
            s->ops->flush(s);
    }
    for (size_t i = 0; i < p->n_retiring; i++) {
        sink *s = p->retiring[i];
        if (s->buffered > 0 && (force || !s->blocked))
            s->ops->flush(s);
    }
    p->in_flush = false;
    pipeline_advance_all(p);
}

void pipeline_drain(pipeline *p)
{
    pipeline_flush_all(p, true);
}

bool pipeline_sinks_idle(const pipeline *p)
{
    for (size_t i = 0; i < p->n_sinks; i++)
        if (p->sinks[i]->durable_pos < p->sinks[i]->taken)
            return false;
    return true;
}

/* ---- frames ---- */

void pipeline_findings(pipeline_src *s, const frame_findings *f, size_t frame_bytes)
{
    pipeline *p = s->p;
    src_enter(s);
    pending *e = pending_for(s, f->seq, "FINDINGS");
    bool withhold = false, big = false;
    uint64_t now = f->n_findings ? now_ms() : 0;

    for (uint32_t i = 0; i < f->n_findings; i++) {
        const frame_finding *fi = &f->findings[i];
        const char *sev = sink_severity_name(fi->severity);
        const char *fl[] = {s->database, fi->category, sev};
        metric_add(p, p->m_findings, fl, 1);
        if (e) {
            e->n_findings++;
            s->queued++;
        }
        dedup_key key = {s->database, fi->schema, fi->table, fi->column, fi->rule_id, fi->value_hash};
        bool pass = dedup_check(p->dd, &key, now) == DEDUP_PASSED;
        const char *dl[] = {s->database, pass ? "passed" : "suppressed"};
        metric_add(p, p->m_dedup, dl, 1);
        if (!pass)
            continue;

        const route *r = route_find(p, fi->rule_id);
        sink *const *targets = r ? r->targets : p->sinks;
        size_t n_targets = r ? r->n_targets : p->n_sinks;
        sink_record rec = {s->database, s->worker, fi};
        for (size_t k = 0; k < n_targets; k++) {
            sink *t = targets[k];
            if (t->ops->write(t, &rec) < 0 || !t->durable)
                continue;
            if (e && pending_require(e, t) < 0)
                log_error(MOD, "worker %s: out of memory tracking seq %" PRIu64, s->worker, f->seq);
            withhold = withhold || t->blocked;
            big = big || t->buffered >= PIPELINE_BATCH_BYTES;
        }
    }
    if (e)
        src_set_queue(s);

    if (big)
        pipeline_flush_all(p, false);
    else if (!ev_is_active(&p->batch)) {
        ev_timer_set(&p->batch, PIPELINE_BATCH_MS / 1000.0, 0.);
        ev_timer_start(p->loop, &p->batch);
    }
    /* a flush may have blocked a sink just now: look again */
    if (!withhold && any_durable_blocked(p)) {
        for (uint32_t i = 0; i < f->n_findings && !withhold; i++) {
            const route *r = route_find(p, f->findings[i].rule_id);
            size_t nt = r ? r->n_targets : p->n_sinks;
            for (size_t k = 0; k < nt; k++) {
                const sink *t = r ? r->targets[k] : p->sinks[k];
                withhold = withhold || (t->durable && t->blocked);
            }
        }
    }
    if (s->dead) {
        /* freed by a callback of the flush above */
    } else if (withhold) {
        s->withheld += frame_bytes; /* given back once no durable sink is blocked */
    } else if (s->credit) {
        uint64_t bytes = frame_bytes;
        if (s->withheld > 0 && !any_durable_blocked(p)) {
            bytes += s->withheld;
            s->withheld = 0;
        }
        s->credit(s->ctx, bytes);
    }
    src_leave(s);
}

/* Close e; ack at once if it needs nothing, else ask for a flush this iteration. */
static void pending_close(pipeline_src *s, pending *e)
{
    pipeline *p = s->p;
    e->closed = true;
    if (!pending_durable(p, e))
        p->flush_wanted = true; /* done by prep_cb at the end of this loop iteration */
    src_advance(s);
}

void pipeline_txn_end(pipeline_src *s, const frame_txn_end *t)
{
    src_enter(s);
    pending *e = pending_for(s, t->seq, "TXN_END");
    if (!e)
        goto out;
    if (t->n_findings != e->n_findings)
        log_warn(MOD, "worker %s: seq %" PRIu64 " announced %" PRIu32 " findings, %" PRIu64 " arrived",
                 s->worker, t->seq, t->n_findings, e->n_findings);
    e->end_lsn = t->end_lsn;
    pending_close(s, e);
out:
    src_leave(s);
}

void pipeline_table_done(pipeline_src *s, const frame_table_done *t)
{
    src_enter(s);
    pending *e = pending_for(s, t->seq, "TABLE_DONE");
    if (!e)
        goto out;
    e->is_table = true;
    e->td.seq = t->seq;
    e->td.relid = t->relid;
    e->td.snapshot_lsn = t->snapshot_lsn;
    e->td.schema = strdup(t->schema ? t->schema : "");
    e->td.table = strdup(t->table ? t->table : "");
    if (!e->td.schema || !e->td.table)
        log_error(MOD, "worker %s: out of memory recording table done; it will not be acknowledged",
                  s->worker);
    else
        pending_close(s, e);
out:
    src_leave(s);
}

/* ---- worker stats and events ---- */

static worker_state *worker_get(pipeline *p, const char *name)
{
    for (worker_state *w = p->workers; w; w = w->next)
        if (strcmp(w->name, name) == 0)
            return w;
    worker_state *w = calloc(1, sizeof(*w));
    if (!w || !(w->name = strdup(name))) {
        free(w);
        log_error(MOD, "out of memory tracking worker %s", name);
        return NULL;
    }
    w->state = -1;
    w->next = p->workers;
    p->workers = w;
    return w;
}

/* Add what a worker counter grew by; a smaller value means a new process that started at 0. */
static void counter_delta(pipeline *p, metrics_family *f, const char *const *labels, uint64_t *last,
                          uint64_t now)
{
    uint64_t d = now >= *last ? now - *last : now;
    *last = now;
    if (d > 0)
        metric_add(p, f, labels, (int64_t)d);
}

void pipeline_worker_stats(pipeline *p, const char *worker, const frame_stats *st)
{
    worker_state *w = worker_get(p, worker);
    if (!w)
        return;
    const char *db = worker_database(p, worker);
    const char *l[] = {db};
    w->state = st->state;
    w->have_stats = true;
    counter_delta(p, p->m_events, l, &w->events, st->events);
    counter_delta(p, p->m_reconnects, l, &w->reconnects, st->reconnects);
    static const char *const reasons[] = {"filter", "type", "scope"};
    const uint64_t skipped[] = {st->skipped_filter, st->skipped_type, st->skipped_scope};
    for (size_t i = 0; i < 3; i++) {
        const char *sl[] = {db, reasons[i]};
        counter_delta(p, p->m_skipped, sl, &w->skipped[i], skipped[i]);
    }
    for (uint32_t i = 0; i < st->n_script_errors; i++) {
        const frame_script_error *se = &st->script_errors[i];
        script_count *c = NULL;
        for (size_t k = 0; k < w->n_scripts && !c; k++)
            if (strcmp(w->scripts[k].rule_id, se->rule_id) == 0)
                c = &w->scripts[k];
        if (!c) {
            script_count *a = realloc(w->scripts, (w->n_scripts + 1) * sizeof(*a));
            char *id = strdup(se->rule_id);
            if (!a || !id) {
                free(id);
                if (a)
                    w->scripts = a;
                log_error(MOD, "out of memory counting script errors");
                continue;
            }
            w->scripts = a;
            c = &a[w->n_scripts++];
            c->rule_id = id;
            c->count = 0;
        }
        const char *rl[] = {se->rule_id};
        counter_delta(p, p->m_script_errors, rl, &c->count, se->count);
    }
    bool connected = st->state == FRAME_WSTATE_SNAPSHOT || st->state == FRAME_WSTATE_STREAMING;
    metric_set(p, p->m_connected, l, connected);
    metric_set(p, p->m_lag, l, (int64_t)st->lag_bytes);
    if (st->retained_wal_bytes >= 0)
        metric_set(p, p->m_retained, l, st->retained_wal_bytes);
}

void pipeline_worker_event(pipeline *p, const char *worker, const char *event)
{
    worker_state *w = worker_get(p, worker);
    if (!w)
        return;
    const char *l[] = {worker_database(p, worker)};
    if (strcmp(event, "restart") == 0) {
        metric_add(p, p->m_restarts, l, 1);
        metric_set(p, p->m_connected, l, 0);
        /* the new process counts from 0 */
        w->state = -1;
        w->events = w->reconnects = 0;
        memset(w->skipped, 0, sizeof(w->skipped));
        for (size_t i = 0; i < w->n_scripts; i++)
            w->scripts[i].count = 0;
    } else if (strcmp(event, "connected") == 0) {
        metric_set(p, p->m_connected, l, 1);
    } else if (strcmp(event, "disconnected") == 0) {
        metric_set(p, p->m_connected, l, 0);
        if (w->state == FRAME_WSTATE_STREAMING || w->state == FRAME_WSTATE_SNAPSHOT)
            w->state = FRAME_WSTATE_CONNECTING;
    } else {
        log_debug(MOD, "worker %s: unknown event \"%s\"", worker, event);
    }
}

void pipeline_reload_result(pipeline *p, bool ok)
{
    const char *l[] = {ok ? "ok" : "error"};
    metric_add(p, p->m_reloads, l, 1);
}

bool pipeline_ready(pipeline *p)
{
    for (size_t i = 0; i < p->n_dbs; i++) {
        worker_state *w = NULL;
        for (worker_state *it = p->workers; it && !w; it = it->next)
            if (strcmp(it->name, p->dbs[i].name) == 0)
                w = it;
        if (!w || w->state != FRAME_WSTATE_STREAMING)
            return false;
    }
    return true;
}

uint16_t pipeline_http_port(const pipeline *p)
{
    return p->http ? http_port(p->http) : 0;
}

/* ---- outputs ---- */

int pipeline_metrics_text(pipeline *p, FILE *out)
{
    for (size_t i = 0; i < p->n_sinks; i++)
        sync_sink_metrics(p, p->sinks[i]);
    for (size_t i = 0; i < p->n_retiring; i++)
        sync_sink_metrics(p, p->retiring[i]);
    return metrics_render(p->m, out);
}

int pipeline_status_json(pipeline *p, FILE *out)
{
    fputc('[', out);
    for (size_t i = 0; i < p->n_sinks; i++) {
        const sink *s = p->sinks[i];
        fputs(i ? ",{\"name\":\"" : "{\"name\":\"", out);
        for (const unsigned char *c = (const unsigned char *)s->name; *c; c++) {
            if (*c == '"' || *c == '\\')
                fprintf(out, "\\%c", *c);
            else if (*c < 0x20)
                fprintf(out, "\\u%04x", *c);
            else
                fputc(*c, out);
        }
        fprintf(out, "\",\"delivered\":%" PRIu64 ",\"errors\":%" PRIu64 ",\"dropped\":%" PRIu64 "}",
                s->delivered, s->errors, s->dropped);
    }
    fputc(']', out);
    return ferror(out) ? -1 : 0;
}
