/*
 * sink_jsonl: the durable JSON-lines sink (SPEC section 5) and the JSON line
 * shared with stdout. Owns its file, its batch buffer and its retry timer.
 *
 * Durability point: flush() does write(2) of the whole batch in the loop
 * (page cache) and hands fdatasync(2) to a sync thread, so a slow disk
 * never stalls the loop (workers, heartbeats, other sinks). One sync is in
 * flight at a time: findings taken meanwhile wait in the buffer and go out
 * as the next batch when it completes (group commit). Completion comes back
 * on an ev_async; only then do the batch's records count as durable, and
 * only durable records let a worker confirm its LSN to PostgreSQL. The
 * thread touches nothing but the fd number and the result it is handed.
 *
 * A failed flush (ENOSPC, EIO, a vanished directory) keeps the batch in
 * memory, rolls a partly written batch back (ftruncate) so the file holds
 * whole lines only, marks the sink blocked (the pipeline withholds credit:
 * backpressure up to the worker) and retries on a timer with backoff,
 * reopening the path each time, so a full disk that gets space again or a
 * path fixed by the operator is picked up without a reload.
 */
#include "sink.h"

#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

#define MOD "sink"

/* ---- buffer ---- */

int sink_buf_reserve(sink_buf *b, size_t extra)
{
    if (b->cap - b->len >= extra)
        return 0;
    if (extra > SIZE_MAX / 2 - b->len)
        return -1;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap - b->len < extra)
        cap *= 2;
    char *d = realloc(b->data, cap);
    if (!d)
        return -1;
    b->data = d;
    b->cap = cap;
    return 0;
}

int sink_buf_append(sink_buf *b, const void *p, size_t n)
{
    if (sink_buf_reserve(b, n) < 0)
        return -1;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

void sink_buf_consume(sink_buf *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
}

void sink_buf_free(sink_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

/* ---- the JSON line ---- */

const char *sink_severity_name(unsigned sev)
{
    static const char *const names[] = {"CRITICAL", "HIGH", "MEDIUM", "LOW", "INFO"};
    return sev < sizeof(names) / sizeof(names[0]) ? names[sev] : "UNKNOWN";
}

static const char *source_name(unsigned s)
{
    return s == FRAME_SOURCE_STREAM ? "stream" : s == FRAME_SOURCE_SNAPSHOT ? "snapshot" : "unknown";
}

static const char *op_name(unsigned op)
{
    switch (op) {
    case FRAME_OP_INSERT:
        return "insert";
    case FRAME_OP_UPDATE:
        return "update";
    case FRAME_OP_SNAPSHOT:
        return "snapshot";
    default:
        return "unknown";
    }
}

void sink_format_time(int64_t us, char *out, size_t outlen)
{
    /* floor division, so times before 1970 still print a valid instant */
    int64_t sec = us / 1000000, frac = us % 1000000;
    if (frac < 0) {
        frac += 1000000;
        sec -= 1;
    }
    time_t t = (time_t)sec;
    struct tm tm;
    if (!gmtime_r(&t, &tm)) {
        snprintf(out, outlen, "1970-01-01T00:00:00.000000Z");
        return;
    }
    snprintf(out, outlen, "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
             tm.tm_hour, tm.tm_min, tm.tm_sec, (int)frac);
}

/* Length of the valid UTF-8 sequence at s (n bytes left), 0 if invalid. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t len;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        len = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0)
            lo = 0xA0;
        else if (c == 0xED)
            hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F;
    } else
        return 0;
    if (n < len)
        return 0;
    if (s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if (s[i] < 0x80 || s[i] > 0xBF)
            return 0;
    return len;
}

/* Append s as a JSON string, quotes included. */
static int json_str(sink_buf *b, const char *str)
{
    const unsigned char *s = (const unsigned char *)(str ? str : "");
    size_t n = strlen((const char *)s);
    /* worst case: every byte becomes \u00XX (6) or U+FFFD (3) */
    if (n > (SIZE_MAX - 2) / 6 || sink_buf_reserve(b, n * 6 + 2) < 0)
        return -1;
    char *o = b->data + b->len;
    *o++ = '"';
    for (size_t i = 0; i < n;) {
        unsigned char c = s[i];
        if (c >= 0x80) {
            size_t l = utf8_seq(s + i, n - i);
            if (l == 0) {
                memcpy(o, "\xEF\xBF\xBD", 3); /* U+FFFD, one per invalid byte */
                o += 3;
                i++;
            } else {
                memcpy(o, s + i, l);
                o += l;
                i += l;
            }
            continue;
        }
        i++;
        switch (c) {
        case '"':
            *o++ = '\\';
            *o++ = '"';
            break;
        case '\\':
            *o++ = '\\';
            *o++ = '\\';
            break;
        case '\b':
            *o++ = '\\';
            *o++ = 'b';
            break;
        case '\f':
            *o++ = '\\';
            *o++ = 'f';
            break;
        case '\n':
            *o++ = '\\';
            *o++ = 'n';
            break;
        case '\r':
            *o++ = '\\';
            *o++ = 'r';
            break;
        case '\t':
            *o++ = '\\';
            *o++ = 't';
            break;
        default:
            if (c < 0x20) {
                static const char hex[] = "0123456789abcdef";
                *o++ = '\\';
                *o++ = 'u';
                *o++ = '0';
                *o++ = '0';
                *o++ = hex[c >> 4];
                *o++ = hex[c & 15];
            } else {
                *o++ = (char)c;
            }
        }
    }
    *o++ = '"';
    b->len = (size_t)(o - b->data);
    return 0;
}

static int json_lit(sink_buf *b, const char *lit)
{
    return sink_buf_append(b, lit, strlen(lit));
}

static int json_key_str(sink_buf *b, const char *key, const char *val)
{
    if (json_lit(b, key) < 0)
        return -1;
    return json_str(b, val);
}

int sink_format_json(sink_buf *b, const sink_record *r)
{
    const frame_finding *f = r->f;
    size_t start = b->len;
    char num[32], ts[40];

    if (json_key_str(b, "{\"database\":", r->database) < 0 ||
        json_key_str(b, ",\"worker\":", r->worker) < 0 || json_key_str(b, ",\"rule_id\":", f->rule_id) < 0 ||
        json_key_str(b, ",\"description\":", f->description) < 0 ||
        json_key_str(b, ",\"category\":", f->category) < 0 ||
        json_key_str(b, ",\"severity\":", sink_severity_name(f->severity)) < 0 ||
        json_key_str(b, ",\"schema_name\":", f->schema) < 0 ||
        json_key_str(b, ",\"table_name\":", f->table) < 0 ||
        json_key_str(b, ",\"column_name\":", f->column) < 0 ||
        json_key_str(b, ",\"masked_sample\":", f->masked_sample) < 0 ||
        json_lit(b, ",\"primary_keys\":[") < 0)
        goto fail;
    for (uint32_t i = 0; i < f->n_primary_keys; i++) {
        if ((i > 0 && json_lit(b, ",") < 0) || json_lit(b, "[") < 0 ||
            json_str(b, f->primary_keys[i].name) < 0 || json_lit(b, ",") < 0 ||
            json_str(b, f->primary_keys[i].value) < 0 || json_lit(b, "]") < 0)
            goto fail;
    }
    snprintf(num, sizeof(num), "%" PRIu64, f->lsn);
    if (json_lit(b, "],\"lsn\":") < 0 || json_lit(b, num) < 0 ||
        json_key_str(b, ",\"source\":", source_name(f->source)) < 0 ||
        json_key_str(b, ",\"op\":", op_name(f->op)) < 0 || json_lit(b, ",\"commit_time\":") < 0)
        goto fail;
    if (f->commit_time == FRAME_TIME_NULL) {
        if (json_lit(b, "null") < 0)
            goto fail;
    } else {
        sink_format_time(f->commit_time, ts, sizeof(ts));
        if (json_str(b, ts) < 0)
            goto fail;
    }
    sink_format_time(f->detected_at, ts, sizeof(ts));
    if (json_key_str(b, ",\"detected_at\":", ts) < 0 || json_lit(b, "}\n") < 0)
        goto fail;
    return 0;
fail:
    b->len = start;
    return -1;
}

/* ---- the jsonl sink ---- */

typedef struct {
    sink base;
    char *path;
    int fd;              /* -1 after a failure: reopened before the next attempt */
    bool dir_sync;       /* the file was created: fsync its directory once */
    sink_buf buf;        /* the batch: whole lines, taken - durable_pos of them */
    ev_timer retry;      /* armed while blocked */
    unsigned retry_ms;   /* current backoff */
    uint64_t fail_count; /* attempts failed since the last success */
    ev_tstamp fail_since, last_report;
    int last_errno;
    /* reload */
    char *next_path;
    int next_fd;
    bool next_created;
    /* the fdatasync in flight (loop thread's side) */
    bool inflight;
    size_t inflight_len;       /* bytes at the head of buf written and being synced */
    uint64_t inflight_records; /* records in them */
    int retired_fd;            /* replaced by a reload while being synced: closed on completion */
    ev_async synced;
    /* the sync thread; mu guards job, job_fd, done, result, stop */
    bool thread_started;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool job, done, stop;
    int job_fd, result;
} sink_jsonl;

/* Open path for appending; *created says whether it did not exist before. */
static int jsonl_open(const char *path, bool *created, char *err, size_t errlen)
{
    struct stat st;
    *created = stat(path, &st) < 0 && errno == ENOENT;
    int fd;
    do {
        fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOCTTY, 0640);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0 && err)
        snprintf(err, errlen, "cannot open jsonl file %s: %s (check [alerts.jsonl] path and its directory)",
                 path, strerror(errno));
    return fd;
}

/* fsync the directory holding path, so a created file's entry is durable too. */
static int jsonl_sync_dir(const char *path)
{
    char *copy = strdup(path);
    int rc = -1, fd = -1;
    if (!copy)
        goto out;
    fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        goto out;
    if (fsync(fd) < 0 && errno != EINVAL)
        goto out;
    rc = 0;
out:
    if (fd >= 0)
        close(fd);
    free(copy);
    return rc;
}

static int jsonl_write(sink *s, const sink_record *r)
{
    sink_jsonl *j = (sink_jsonl *)s;
    if (sink_format_json(&j->buf, r) < 0) {
        s->dropped++;
        log_error(MOD, "jsonl sink \"%s\": out of memory buffering a finding; it is lost", s->name);
        return -1;
    }
    s->taken++;
    s->buffered = j->buf.len;
    return 0;
}

/* Log a failed attempt, louder the longer it lasts. */
static void jsonl_report_failure(sink_jsonl *j, ev_tstamp now)
{
    sink *s = &j->base;
    if (j->fail_count == 1) {
        log_warn(MOD,
                 "jsonl sink \"%s\": cannot write %s: %s; %zu bytes of findings kept in memory, "
                 "workers paused (credit withheld), retrying",
                 s->name, j->path, strerror(j->last_errno), j->buf.len);
        j->last_report = now;
        return;
    }
    if (now - j->fail_since >= 30.0 && now - j->last_report >= 60.0) {
        log_error(MOD,
                  "jsonl sink \"%s\": still cannot write %s after %.0f s (%" PRIu64 " attempts): %s; "
                  "%zu bytes kept, replication paused: free space or fix the path",
                  s->name, j->path, now - j->fail_since, j->fail_count, strerror(j->last_errno), j->buf.len);
        j->last_report = now;
    } else {
        log_debug(MOD, "jsonl sink \"%s\": retry %" PRIu64 " failed: %s", s->name, j->fail_count,
                  strerror(j->last_errno));
    }
}

/*
 * A failed attempt: off bytes of this batch were written to a regular file
 * that was start_size long (rolled back so the file holds whole lines). The
 * batch stays in memory; the sink blocks and retries on a timer.
 */
static void jsonl_fail(sink_jsonl *j, int err, size_t off, bool regular, off_t start_size)
{
    sink *s = &j->base;
    j->last_errno = err;
    if (off > 0 && regular) {
        /* keep the file to whole lines: the batch is written again later */
        if (ftruncate(j->fd, start_size) < 0)
            log_error(MOD,
                      "jsonl sink \"%s\": cannot roll back a partial write to %s: %s; one line may be cut",
                      s->name, j->path, strerror(errno));
    }
    if (j->fd >= 0) {
        close(j->fd);
        j->fd = -1; /* reopen the path on retry: the operator may have fixed it */
    }
    s->errors++;
    s->buffered = j->buf.len;
    bool was_blocked = s->blocked;
    ev_tstamp now = ev_now(s->loop);
    if (!was_blocked) {
        j->fail_since = now;
        j->retry_ms = SINK_JSONL_RETRY_MIN_MS;
    } else if (j->retry_ms < SINK_JSONL_RETRY_MAX_MS) {
        j->retry_ms = j->retry_ms * 2 > SINK_JSONL_RETRY_MAX_MS ? SINK_JSONL_RETRY_MAX_MS : j->retry_ms * 2;
    }
    j->fail_count++;
    s->blocked = true;
    jsonl_report_failure(j, now);
    if (!ev_is_active(&j->retry)) {
        ev_timer_set(&j->retry, j->retry_ms / 1000.0, 0.);
        ev_timer_start(s->loop, &j->retry);
    }
    if (!was_blocked && s->progress)
        s->progress(s->progress_ctx, s);
}

static void *jsonl_sync_thread(void *arg)
{
    sink_jsonl *j = arg;
    pthread_mutex_lock(&j->mu);
    for (;;) {
        while (!j->job && !j->stop)
            pthread_cond_wait(&j->cv, &j->mu);
        if (!j->job)
            break; /* stop, nothing in flight */
        int fd = j->job_fd;
        j->job = false;
        pthread_mutex_unlock(&j->mu);
        int r = fdatasync(fd) < 0 ? errno : 0;
        pthread_mutex_lock(&j->mu);
        j->result = r;
        j->done = true;
        pthread_cond_broadcast(&j->cv);
        ev_async_send(j->base.loop, &j->synced);
    }
    pthread_mutex_unlock(&j->mu);
    return NULL;
}

/* Start the sync thread with every signal blocked: they belong to the loop. */
static int jsonl_start_thread(sink_jsonl *j)
{
    sigset_t all, old;
    sigfillset(&all);
    if (pthread_sigmask(SIG_SETMASK, &all, &old) != 0)
        return -1;
    int rc = pthread_create(&j->thread, NULL, jsonl_sync_thread, j);
    (void)pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        errno = rc;
        return -1;
    }
    j->thread_started = true;
    return 0;
}

static void jsonl_flush(sink *s)
{
    sink_jsonl *j = (sink_jsonl *)s;
    off_t start_size = -1;
    size_t off = 0;
    bool regular = false;
    struct stat st;

    if (j->inflight || j->buf.len == 0)
        return; /* in flight: the completion writes what came meanwhile */
    if (!j->thread_started && jsonl_start_thread(j) < 0) {
        log_error(MOD, "jsonl sink \"%s\": cannot start its sync thread: %s", s->name, strerror(errno));
        jsonl_fail(j, errno, 0, false, 0);
        return;
    }
    if (j->fd < 0) {
        bool created;
        j->fd = jsonl_open(j->path, &created, NULL, 0);
        if (j->fd < 0) {
            jsonl_fail(j, errno, 0, false, 0);
            return;
        }
        j->dir_sync = j->dir_sync || created;
    }
    if (fstat(j->fd, &st) == 0 && S_ISREG(st.st_mode)) {
        regular = true;
        start_size = st.st_size;
    }
    while (off < j->buf.len) {
        ssize_t n = write(j->fd, j->buf.data + off, j->buf.len - off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            jsonl_fail(j, errno, off, regular, start_size);
            return;
        }
        if (n == 0) {
            jsonl_fail(j, EIO, off, regular, start_size);
            return;
        }
        off += (size_t)n;
    }
    j->inflight = true;
    j->inflight_len = j->buf.len;
    j->inflight_records = s->taken - s->durable_pos;
    s->buffered = 0;
    pthread_mutex_lock(&j->mu);
    j->job_fd = j->fd;
    j->job = true;
    j->done = false;
    pthread_cond_signal(&j->cv);
    pthread_mutex_unlock(&j->mu);
}

/* The batch in flight is durable (err 0) or not. Loop thread only. */
static void jsonl_sync_done(sink_jsonl *j, int err)
{
    sink *s = &j->base;
    j->inflight = false;
    if (j->retired_fd >= 0) {
        /* a reload switched files while this one was syncing: it is done with it now */
        close(j->retired_fd);
        j->retired_fd = -1;
    }
    /* EINVAL/EROFS: a pipe or device that cannot sync */
    if (err != 0 && err != EINVAL && err != EROFS) {
        /* written but not known durable: write the batch again (it may then be in the file twice) */
        jsonl_fail(j, err, 0, false, 0);
        return;
    }
    if (j->dir_sync) {
        /* a new file's directory entry; a directory we cannot open is only worth a warning */
        if (jsonl_sync_dir(j->path) < 0)
            log_warn(MOD, "jsonl sink \"%s\": cannot fsync the directory of %s: %s", s->name, j->path,
                     strerror(errno));
        j->dir_sync = false;
    }
    sink_buf_consume(&j->buf, j->inflight_len);
    j->inflight_len = 0;
    s->buffered = j->buf.len;
    s->durable_pos += j->inflight_records;
    s->delivered += j->inflight_records;
    j->inflight_records = 0;
    if (s->blocked) {
        log_info(MOD, "jsonl sink \"%s\": writing %s again after %" PRIu64 " failed attempts (%.1f s)",
                 s->name, j->path, j->fail_count, ev_now(s->loop) - j->fail_since);
        s->blocked = false;
        ev_timer_stop(s->loop, &j->retry);
    }
    j->fail_count = 0;
    j->retry_ms = SINK_JSONL_RETRY_MIN_MS;
    if (j->buf.len > 0)
        jsonl_flush(s); /* what came while this batch was syncing: the next group commit */
    if (s->progress)
        s->progress(s->progress_ctx, s);
}

static void jsonl_synced_cb(struct ev_loop *loop, ev_async *w, int revents)
{
    (void)loop;
    (void)revents;
    sink_jsonl *j = w->data;
    pthread_mutex_lock(&j->mu);
    bool done = j->done;
    int err = j->result;
    j->done = false;
    pthread_mutex_unlock(&j->mu);
    if (done && j->inflight)
        jsonl_sync_done(j, err);
}

/* Block until the sync in flight (if any) completes, and account for it. */
static void jsonl_wait_inflight(sink_jsonl *j)
{
    if (!j->inflight)
        return;
    pthread_mutex_lock(&j->mu);
    while (!j->done)
        pthread_cond_wait(&j->cv, &j->mu);
    int err = j->result;
    j->done = false;
    pthread_mutex_unlock(&j->mu);
    jsonl_sync_done(j, err);
}

static void jsonl_retry_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    sink_jsonl *j = (sink_jsonl *)w->data;
    jsonl_flush(&j->base);
}

static int jsonl_prepare(sink *s, const config *cfg, char *err, size_t errlen)
{
    sink_jsonl *j = (sink_jsonl *)s;
    const char *path = cfg && cfg->alerts.jsonl.path ? cfg->alerts.jsonl.path : j->path;
    char *copy = strdup(path);
    if (!copy) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    bool created;
    int fd = jsonl_open(copy, &created, err, errlen);
    if (fd < 0) {
        free(copy);
        return -1;
    }
    j->next_path = copy;
    j->next_fd = fd;
    j->next_created = created;
    return 0;
}

static void jsonl_commit(sink *s)
{
    sink_jsonl *j = (sink_jsonl *)s;
    if (!j->next_path)
        return;
    if (j->fd >= 0 && j->inflight && j->retired_fd < 0)
        j->retired_fd = j->fd; /* the sync thread is on it: closed when it completes */
    else if (j->fd >= 0)
        close(j->fd);
    free(j->path);
    j->path = j->next_path;
    j->fd = j->next_fd;
    j->dir_sync = j->dir_sync || j->next_created;
    j->next_path = NULL;
    j->next_fd = -1;
}

static void jsonl_abort(sink *s)
{
    sink_jsonl *j = (sink_jsonl *)s;
    if (j->next_fd >= 0)
        close(j->next_fd);
    free(j->next_path);
    j->next_path = NULL;
    j->next_fd = -1;
}

static void jsonl_destroy(sink *s)
{
    sink_jsonl *j = (sink_jsonl *)s;
    jsonl_abort(s);
    if (j->thread_started) {
        /* a batch being synced is finished first (and counted), then the thread goes */
        j->base.progress = NULL;
        jsonl_wait_inflight(j);
        pthread_mutex_lock(&j->mu);
        j->stop = true;
        pthread_cond_signal(&j->cv);
        pthread_mutex_unlock(&j->mu);
        (void)pthread_join(j->thread, NULL);
    }
    if (s->loop) {
        ev_timer_stop(s->loop, &j->retry);
        if (ev_is_active(&j->synced)) {
            ev_ref(s->loop); /* it was unref'd when started */
            ev_async_stop(s->loop, &j->synced);
        }
    }
    pthread_mutex_destroy(&j->mu);
    pthread_cond_destroy(&j->cv);
    if (j->retired_fd >= 0)
        close(j->retired_fd);
    if (j->fd >= 0)
        close(j->fd);
    sink_buf_free(&j->buf);
    free(j->path);
    free(s->name);
    free(j);
}

static const sink_ops jsonl_ops = {
    .kind = "jsonl",
    .write = jsonl_write,
    .flush = jsonl_flush,
    .prepare = jsonl_prepare,
    .commit = jsonl_commit,
    .abort = jsonl_abort,
    .destroy = jsonl_destroy,
};

sink *sink_jsonl_new(struct ev_loop *loop, const char *name, const char *path, char *err, size_t errlen)
{
    sink_jsonl *j = calloc(1, sizeof(*j));
    if (!j) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    j->fd = -1;
    j->next_fd = -1;
    j->retired_fd = -1;
    pthread_mutex_init(&j->mu, NULL);
    pthread_cond_init(&j->cv, NULL);
    ev_async_init(&j->synced, jsonl_synced_cb);
    j->synced.data = j;
    if (loop) {
        ev_async_start(loop, &j->synced);
        ev_unref(loop); /* an idle sink must not keep the loop alive */
    }
    j->base.ops = &jsonl_ops;
    j->base.durable = true;
    j->base.loop = loop;
    j->retry_ms = SINK_JSONL_RETRY_MIN_MS;
    ev_timer_init(&j->retry, jsonl_retry_cb, 0., 0.);
    j->retry.data = j;
    j->base.name = strdup(name ? name : "jsonl");
    j->path = path ? strdup(path) : NULL;
    if (!j->base.name || !j->path) {
        snprintf(err, errlen, path ? "out of memory" : "jsonl sink \"%s\" has no path ([alerts.jsonl] path)",
                 name ? name : "jsonl");
        goto fail;
    }
    bool created;
    j->fd = jsonl_open(j->path, &created, err, errlen);
    if (j->fd < 0)
        goto fail;
    j->dir_sync = created;
    return &j->base;
fail:
    jsonl_destroy(&j->base);
    return NULL;
}

const char *sink_jsonl_path(const sink *s)
{
    return s->ops == &jsonl_ops ? ((const sink_jsonl *)s)->path : NULL;
}
