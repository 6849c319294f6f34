/*
 * pipeline: the supervisor's findings path: takes FINDINGS / TXN_END /
 * TABLE_DONE from each worker, dedups, routes to sinks, returns credit,
 * acknowledges in seq order once durable, keeps metrics and serves HTTP.
 * It owns sinks, dedup, metrics and the HTTP server; it never touches a
 * worker's socket or process (callbacks send CREDIT / ACK for it).
 */
#ifndef PGSENSE_PIPELINE_H_INCLUDED
#define PGSENSE_PIPELINE_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "config.h"
#include "frame.h"
#include "rules.h"

struct ev_loop;
struct sink;

typedef struct pipeline pipeline;         /* owns sinks, dedup, metrics, HTTP */
typedef struct pipeline_src pipeline_src; /* one per worker process */
typedef void (*pipeline_ack_cb)(void *ctx, uint64_t seq, uint64_t end_lsn); /* send ACK to the worker */
typedef void (*pipeline_credit_cb)(void *ctx, uint64_t bytes);              /* send CREDIT to the worker */
typedef void (*pipeline_table_ready_cb)(
    void *ctx, const frame_table_done *t); /* acked TABLE_DONE: update the memory store */

/* Batching of durable sinks (see pipeline.c): a batch is flushed at the end
 * of the loop iteration that saw a TXN_END / TABLE_DONE, when a sink holds
 * PIPELINE_BATCH_BYTES, or PIPELINE_BATCH_MS after its first record. */
#define PIPELINE_BATCH_BYTES   (1024u * 1024u)
#define PIPELINE_BATCH_MS      5
#define PIPELINE_DEDUP_SWEEP_S 1.0 /* dedup expiry timer */

/*
 * Opens the enabled sinks of cfg->alerts (log, stdout, jsonl), dedup from
 * [alerts], routes from rules (may be NULL: no channels), and the HTTP
 * server when [server] enabled. cfg and rules are copied from: the caller
 * may free them after the call. NULL with err filled on failure.
 */
pipeline *pipeline_new(struct ev_loop *loop, const config *cfg, const rules_set *rules, char *err,
                       size_t errlen);
/* SIGHUP: sinks reopened (logrotate) or replaced, dedup and routes updated; 0, or -1 with the old kept. */
__attribute__((warn_unused_result)) int
pipeline_reconfigure(pipeline *p, const config *cfg, const rules_set *rules, char *err, size_t errlen);
/* Flushes what it can first; findings still buffered are lost (counted dropped). */
void pipeline_free(pipeline *p);

/*
 * One per worker process; database is its identity "host/dbname" (the
 * JSONL "database", the dedup key, the metrics label). NULL on ENOMEM.
 * Callbacks may be called from any pipeline_* call and from the loop; they
 * may call pipeline_src_free on their own source.
 */
pipeline_src *pipeline_src_new(pipeline *p, const char *worker, const char *database, pipeline_ack_cb ack,
                               pipeline_credit_cb credit, pipeline_table_ready_cb ready, void *ctx);
void pipeline_src_free(
    pipeline_src *s); /* worker gone: unacked work dropped (the worker will resend after restart) */
void pipeline_findings(pipeline_src *s, const frame_findings *f, size_t frame_bytes);
void pipeline_txn_end(pipeline_src *s, const frame_txn_end *t);
void pipeline_table_done(pipeline_src *s, const frame_table_done *t);
void pipeline_worker_stats(pipeline *p, const char *worker, const frame_stats *st); /* for metrics */
void pipeline_worker_event(pipeline *p, const char *worker,
                           const char *event);     /* "restart", "connected", "disconnected" for metrics */
void pipeline_reload_result(pipeline *p, bool ok); /* pgsense_config_reloads_total */
/* The "sinks" array of status.json: [{"name","delivered","errors","dropped"}]; 0 or -1. */
int pipeline_status_json(pipeline *p, FILE *out);
void pipeline_drain(pipeline *p);
/* Whether every sink has delivered (or given up on) all it took: asynchronous sinks may lag. */
bool pipeline_sinks_idle(const pipeline *p); /* flush everything now (shutdown) */

/* ---- additions ---- */

/* Seqs taken but not acknowledged yet (shutdown: wait for 0). */
size_t pipeline_src_unacked(const pipeline_src *s);
/* Credit bytes withheld because a durable sink is blocked. */
uint64_t pipeline_src_withheld(const pipeline_src *s);
/* Prometheus text of every metric (what /metrics serves); 0 or -1. */
__attribute__((warn_unused_result)) int pipeline_metrics_text(pipeline *p, FILE *out);
/* /ready: every configured worker is streaming. */
bool pipeline_ready(pipeline *p);
/* The HTTP server's bound port, 0 when [server] is disabled. */
uint16_t pipeline_http_port(const pipeline *p);
/*
 * Plug in a sink built elsewhere (future async sinks, tests); the pipeline
 * owns it from now on, also on failure (-1: ENOMEM). Kept across reloads.
 */
__attribute__((warn_unused_result)) int pipeline_add_sink(pipeline *p, struct sink *s);
/* An active sink by channel name, NULL if none. */
struct sink *pipeline_sink(pipeline *p, const char *name);

#endif /* PGSENSE_PIPELINE_H_INCLUDED */
