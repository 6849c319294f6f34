/*
 * sink: the interface every alert sink implements (log, stdout, jsonl now;
 * webhooks, slack, postgres later) and the JSON line all of them share.
 * A sink owns its fd, buffer and timers; it never decides routing or acks.
 */
#ifndef PGSENSE_SINK_H_INCLUDED
#define PGSENSE_SINK_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "frame.h"

struct ev_loop;

/* One finding as a sink sees it; every pointer is valid during write() only. */
typedef struct {
    const char *database; /* identity "host/dbname" */
    const char *worker;   /* [databases] name */
    const frame_finding *f;
} sink_record;

typedef struct sink sink;

/*
 * Called by a sink when its durable position advanced, when it became
 * blocked or unblocked, or when a non-durable sink delivered. The pipeline
 * then walks its pending acknowledgements. Never called from inside
 * sink_ops.write.
 */
typedef void (*sink_progress_cb)(void *ctx, sink *s);

typedef struct {
    const char *kind; /* "log", "stdout", "jsonl" */
    /*
     * Take one record into the sink's buffer or queue (no blocking I/O).
     * 0: taken, s->taken was incremented; -1: refused (out of memory or
     * over a non-durable sink's bound), s->dropped was incremented.
     */
    int (*write)(sink *s, const sink_record *r);
    /*
     * Make everything taken so far delivered (and durable for a durable
     * sink). May complete at once (log, stdout) or later (jsonl: write(2)
     * now, fdatasync on its sync thread; HTTP, postgres): completion is
     * reported through progress.
     */
    void (*flush)(sink *s);
    /*
     * Reload, two phases so that a failure keeps the old settings: prepare
     * opens what the new settings need (cfg holds the sink's section, found
     * by s->name), commit switches to it, abort forgets it. prepare returns
     * 0 or -1 with err filled. NULL when the sink has nothing to reopen.
     */
    int (*prepare)(sink *s, const config *cfg, char *err, size_t errlen);
    void (*commit)(sink *s);
    void (*abort)(sink *s);
    void (*destroy)(sink *s); /* frees s; what is still buffered is lost */
} sink_ops;

/*
 * The common part; every sink embeds it first. Counters are the sink's;
 * the pipeline reads them and owns the fields marked "pipeline".
 */
struct sink {
    const sink_ops *ops;
    char *name;           /* channel name: "log", "stdout", the jsonl's name */
    bool durable;         /* acks wait for durable_pos */
    bool blocked;         /* durable sink that cannot write: credit is withheld */
    uint32_t id;          /* pipeline: unique for the pipeline's life, never reused */
    bool external;        /* pipeline: added with pipeline_add_sink, kept at reload */
    uint64_t taken;       /* records accepted by write */
    uint64_t durable_pos; /* records 1..durable_pos are done, in order: durable (durable
                             sink) or written out / given up (others) */
    uint64_t delivered;   /* records written out (durably for a durable sink) */
    uint64_t errors;      /* failed write / flush attempts */
    uint64_t dropped;     /* records refused or given up */
    size_t buffered;      /* bytes waiting for flush */
    uint64_t reported_delivered, reported_errors, reported_dropped; /* pipeline: metrics sync */
    sink_progress_cb progress;
    void *progress_ctx;
    struct ev_loop *loop;
};

/* Severity as every output spells it: "CRITICAL" ... "INFO"; "UNKNOWN" out of range. */
const char *sink_severity_name(unsigned sev);

/* ---- a growable byte buffer (sinks and the JSON formatter) ---- */

typedef struct {
    char *data;
    size_t len, cap;
} sink_buf;

__attribute__((warn_unused_result)) int sink_buf_reserve(sink_buf *b, size_t extra);
__attribute__((warn_unused_result)) int sink_buf_append(sink_buf *b, const void *p, size_t n);
void sink_buf_consume(sink_buf *b, size_t n); /* drop the first n bytes */
void sink_buf_free(sink_buf *b);

/*
 * Append r as one JSON line (SPEC section 5, keys in order, '\n' included).
 * Strings are escaped for JSON; invalid UTF-8 becomes U+FFFD. 0 or -1 (ENOMEM,
 * the buffer is left as it was).
 */
__attribute__((warn_unused_result)) int sink_format_json(sink_buf *b, const sink_record *r);

/* RFC 3339 UTC with microseconds: "2026-11-26T10:00:00.123456Z" (out >= 32 bytes). */
void sink_format_time(int64_t us, char *out, size_t outlen);

/* ---- constructors; NULL with err filled on failure ---- */

sink *sink_log_new(struct ev_loop *loop, char *err, size_t errlen);
sink *sink_stdout_new(struct ev_loop *loop, char *err, size_t errlen);
/* Also the test hook: any fd-backed path (a regular file, /dev/full). */
sink *sink_jsonl_new(struct ev_loop *loop, const char *name, const char *path, char *err, size_t errlen);

/* Bounds and timings. */
#define SINK_STDOUT_MAX_BUFFER  (4u * 1024u * 1024u) /* then stdout drops (counted) */
#define SINK_JSONL_RETRY_MIN_MS 100                  /* first retry after a failed flush */
#define SINK_JSONL_RETRY_MAX_MS 5000                 /* backoff cap */

/* jsonl: the path it writes to (tests, status). */
const char *sink_jsonl_path(const sink *s);

#endif /* PGSENSE_SINK_H_INCLUDED */
