/*
 * sink_log: the "log" sink, one human line per finding through log.h at a
 * level mapped from the severity. Owns nothing but that mapping; it never
 * sees a raw value (only the masked sample) and is not durable. Lines are
 * held by log.h until the pipeline's flush at the end of the loop iteration,
 * so a burst of findings costs one write(2), not one per finding.
 */
#include "sink.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "lsn.h"

/* As the Rust original: critical/high error, medium/low warn, info info. */
static log_level severity_level(unsigned sev)
{
    switch (sev) {
    case FRAME_SEV_CRITICAL:
    case FRAME_SEV_HIGH:
        return LOG_LVL_ERROR;
    case FRAME_SEV_MEDIUM:
    case FRAME_SEV_LOW:
        return LOG_LVL_WARN;
    default:
        return LOG_LVL_INFO;
    }
}

/* Copy s into out (bounded), control characters shown as '?': one record per line. */
static const char *clean(const char *s, char *out, size_t outlen)
{
    size_t i = 0;
    for (; s && *s && i + 1 < outlen; s++)
        out[i++] = ((unsigned char)*s < 0x20 || *s == 0x7f) ? '?' : *s;
    out[i] = '\0';
    return out;
}

static int log_sink_write(sink *s, const sink_record *r)
{
    const frame_finding *f = r->f;
    char pk[512], rule[128], cat[64], db[256], sch[128], tab[128], col[128], sample[256], lsn[LSN_TEXT_MAX];
    size_t pos = 0;

    pk[0] = '\0';
    for (uint32_t i = 0; i < f->n_primary_keys && pos + 1 < sizeof(pk); i++) {
        char name[96], val[160];
        int n = snprintf(pk + pos, sizeof(pk) - pos, "%s%s=%s", i ? "," : "",
                         clean(f->primary_keys[i].name, name, sizeof(name)),
                         clean(f->primary_keys[i].value, val, sizeof(val)));
        if (n < 0)
            break;
        pos += (size_t)n;
    }
    lsn_format(f->lsn, lsn);
    log_hold();
    log_msg(severity_level(f->severity), "alert",
            "finding %s severity=%s category=%s database=%s table=%s.%s column=%s sample=\"%s\" pk=[%s] "
            "lsn=%s source=%s worker=%s",
            clean(f->rule_id, rule, sizeof(rule)), sink_severity_name(f->severity),
            clean(f->category, cat, sizeof(cat)), clean(r->database, db, sizeof(db)),
            clean(f->schema, sch, sizeof(sch)), clean(f->table, tab, sizeof(tab)),
            clean(f->column, col, sizeof(col)), clean(f->masked_sample, sample, sizeof(sample)), pk, lsn,
            f->source == FRAME_SOURCE_SNAPSHOT ? "snapshot" : "stream", r->worker);
    s->taken++;
    s->durable_pos++;
    s->delivered++;
    s->buffered = log_held() > 0 ? log_held() : 1; /* 0 would mean no flush is needed */
    return 0;
}

static void log_sink_flush(sink *s)
{
    log_release();
    s->buffered = 0;
}

static void log_sink_destroy(sink *s)
{
    log_release();
    free(s->name);
    free(s);
}

static const sink_ops log_ops = {
    .kind = "log",
    .write = log_sink_write,
    .flush = log_sink_flush,
    .destroy = log_sink_destroy,
};

sink *sink_log_new(struct ev_loop *loop, char *err, size_t errlen)
{
    sink *s = calloc(1, sizeof(*s));
    if (!s || !(s->name = strdup("log"))) {
        free(s);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->ops = &log_ops;
    s->loop = loop;
    return s;
}
