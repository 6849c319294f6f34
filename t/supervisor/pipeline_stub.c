/*
 * pipeline_stub: a stand-in for supervisor/pipeline.c in the supervisor's
 * integration tests: takes everything, returns credit at once and
 * acknowledges every TXN_END / TABLE_DONE at once (as if every sink were
 * durable and instant). Tests only; never linked into pgsense-supervisor.
 */
#include <stdlib.h>
#include <string.h>

#include "pipeline.h"

struct pipeline {
    unsigned long reloads_ok, reloads_failed;
    unsigned long findings;
};

struct pipeline_src {
    pipeline *p;
    pipeline_ack_cb ack;
    pipeline_credit_cb credit;
    pipeline_table_ready_cb ready;
    void *ctx;
};

pipeline *pipeline_new(struct ev_loop *loop, const config *cfg, const rules_set *rules, char *err,
                       size_t errlen)
{
    (void)loop;
    (void)cfg;
    (void)rules;
    pipeline *p = calloc(1, sizeof(*p));
    if (!p)
        snprintf(err, errlen, "out of memory");
    return p;
}

int pipeline_reconfigure(pipeline *p, const config *cfg, const rules_set *rules, char *err, size_t errlen)
{
    (void)p;
    (void)cfg;
    (void)rules;
    (void)err;
    (void)errlen;
    return 0;
}

void pipeline_free(pipeline *p)
{
    free(p);
}

pipeline_src *pipeline_src_new(pipeline *p, const char *worker, const char *database, pipeline_ack_cb ack,
                               pipeline_credit_cb credit, pipeline_table_ready_cb ready, void *ctx)
{
    (void)worker;
    (void)database;
    pipeline_src *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->p = p;
    s->ack = ack;
    s->credit = credit;
    s->ready = ready;
    s->ctx = ctx;
    return s;
}

void pipeline_src_free(pipeline_src *s)
{
    free(s);
}

void pipeline_findings(pipeline_src *s, const frame_findings *f, size_t frame_bytes)
{
    s->p->findings += f->n_findings;
    s->credit(s->ctx, frame_bytes);
}

void pipeline_txn_end(pipeline_src *s, const frame_txn_end *t)
{
    s->ack(s->ctx, t->seq, t->end_lsn);
}

void pipeline_table_done(pipeline_src *s, const frame_table_done *t)
{
    s->ready(s->ctx, t);
    s->ack(s->ctx, t->seq, 0);
}

void pipeline_worker_stats(pipeline *p, const char *worker, const frame_stats *st)
{
    (void)p;
    (void)worker;
    (void)st;
}

void pipeline_worker_event(pipeline *p, const char *worker, const char *event)
{
    (void)p;
    (void)worker;
    (void)event;
}

void pipeline_reload_result(pipeline *p, bool ok)
{
    if (ok)
        p->reloads_ok++;
    else
        p->reloads_failed++;
}

int pipeline_status_json(pipeline *p, FILE *out)
{
    fprintf(out, "[{\"name\":\"stub\",\"delivered\":%lu,\"errors\":0,\"dropped\":0}]", p->findings);
    return 0;
}

void pipeline_drain(pipeline *p)
{
    (void)p;
}

bool pipeline_sinks_idle(const pipeline *p)
{
    (void)p;
    return true;
}
