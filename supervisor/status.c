/*
 * status: status.json and the log table. JSON is written by hand (a fixed
 * shape, a handful of strings to escape) so the supervisor needs no JSON
 * library at run time; the unit test checks the shape with json-c.
 */
#include "status.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "lsn.h"
#include "jsonw.h"

#define MOD "status"

static void json_time(FILE *out, time_t t)
{
    struct tm tm;
    char buf[32];
    gmtime_r(&t, &tm);
    strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
    jsonw_str(out, buf);
}

static void render_worker(FILE *out, const status_worker *w)
{
    fputs("{\"name\":", out);
    jsonw_str(out, w->name);
    fputs(",\"database\":", out);
    jsonw_str(out, w->database);
    fputs(",\"pid\":", out);
    if (w->pid > 0)
        fprintf(out, "%d", w->pid);
    else
        fputs("null", out);
    fputs(",\"state\":", out);
    jsonw_str(out, w->state);
    fprintf(out, ",\"restarts\":%u,\"last_exit\":", w->restarts);
    if (w->has_exit) {
        fprintf(out, "{\"%s\":%d,\"reason\":", w->exit_signaled ? "signal" : "code", w->exit_value);
        jsonw_str(out, w->exit_reason);
        fputc('}', out);
    } else {
        fputs("null", out);
    }
    fprintf(out, ",\"backoff_ms\":%" PRIu64 ",\"slot\":", w->backoff_ms);
    jsonw_str(out, w->slot);
    fputs(",\"confirmed_lsn\":", out);
    if (w->has_stats && w->confirmed_lsn) {
        char lsn[LSN_TEXT_MAX];
        lsn_format(w->confirmed_lsn, lsn);
        jsonw_str(out, lsn);
    } else {
        fputs("null", out);
    }
    fputs(",\"retained_wal_bytes\":", out);
    if (w->has_stats && w->retained_wal_bytes >= 0)
        fprintf(out, "%" PRId64, w->retained_wal_bytes);
    else
        fputs("null", out);
    fputs(",\"wal_status\":", out);
    if (w->has_stats && w->wal_status && w->wal_status[0])
        jsonw_str(out, w->wal_status);
    else
        fputs("null", out);
    fprintf(out,
            ",\"events\":%" PRIu64 ",\"findings\":%" PRIu64 ",\"undelivered_findings\":%" PRIu64
            ",\"snapshot\":{\"tables_done\":%" PRIu32 ",\"tables_total\":%" PRIu32 "},\"table_errors\":[",
            w->events, w->findings, w->undelivered_findings, w->tables_done, w->tables_total);
    for (size_t i = 0; i < w->n_table_errors; i++) {
        const status_table_error *e = &w->table_errors[i];
        fputs(i ? ",{\"schema\":" : "{\"schema\":", out);
        jsonw_str(out, e->schema);
        fputs(",\"table\":", out);
        jsonw_str(out, e->table);
        fputs(",\"reason\":", out);
        jsonw_str(out, e->reason);
        fputc('}', out);
    }
    fputs("],\"log_file\":", out);
    jsonw_str(out, w->log_file);
    fputc('}', out);
}

int status_render(FILE *out, const status_supervisor *sup, const status_worker *w, size_t n,
                  status_sinks_fn sinks, void *sinks_ctx)
{
    long uptime = (long)(sup->now - sup->started_at);
    fprintf(out, "{\"supervisor\":{\"pid\":%ld,\"started_at\":", sup->pid);
    json_time(out, sup->started_at);
    fprintf(out, ",\"uptime_s\":%ld,\"rules_loaded\":%zu,\"reloads_ok\":%lu,\"reloads_failed\":%lu},",
            uptime < 0 ? 0 : uptime, sup->rules_loaded, sup->reloads_ok, sup->reloads_failed);
    fputs("\"workers\":[", out);
    for (size_t i = 0; i < n; i++) {
        if (i)
            fputc(',', out);
        render_worker(out, &w[i]);
    }
    fputs("],\"sinks\":", out);
    if (!sinks || sinks(sinks_ctx, out) != 0) {
        if (sinks)
            return -1;
        fputs("[]", out);
    }
    fputs("}\n", out);
    if (fflush(out) != 0 || ferror(out))
        return -1;
    return 0;
}

int status_write_file(const char *dir, const status_supervisor *sup, const status_worker *w, size_t n,
                      status_sinks_fn sinks, void *sinks_ctx, char *err, size_t errlen)
{
    char tmp[4096], final[4096];
    int fd = -1, dfd = -1, rc = -1;
    FILE *f = NULL;

    if ((size_t)snprintf(final, sizeof(final), "%s/status.json", dir) >= sizeof(final) ||
        (size_t)snprintf(tmp, sizeof(tmp), "%s/.status.json.%ld.tmp", dir, sup->pid) >= sizeof(tmp)) {
        snprintf(err, errlen, "log dir path too long");
        goto fail;
    }
    do {
        fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0) {
        snprintf(err, errlen, "cannot create %s: %s", tmp, strerror(errno));
        goto fail;
    }
    f = fdopen(fd, "w");
    if (!f) {
        snprintf(err, errlen, "fdopen %s: %s", tmp, strerror(errno));
        goto fail;
    }
    fd = -1; /* owned by f now */
    if (status_render(f, sup, w, n, sinks, sinks_ctx) != 0) {
        snprintf(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
        goto fail;
    }
    if (fsync(fileno(f)) != 0) {
        snprintf(err, errlen, "fsync %s: %s", tmp, strerror(errno));
        goto fail;
    }
    int cr = fclose(f);
    f = NULL;
    if (cr != 0) {
        snprintf(err, errlen, "close %s: %s", tmp, strerror(errno));
        goto fail;
    }
    if (rename(tmp, final) != 0) {
        snprintf(err, errlen, "rename %s to %s: %s", tmp, final, strerror(errno));
        goto fail;
    }
    tmp[0] = '\0'; /* nothing left to unlink */
    do {
        dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    } while (dfd < 0 && errno == EINTR);
    if (dfd >= 0 && fsync(dfd) != 0) {
        snprintf(err, errlen, "fsync %s: %s", dir, strerror(errno));
        goto fail;
    }
    rc = 0;
fail:
    if (f)
        (void)fclose(f);
    if (fd >= 0)
        (void)close(fd);
    if (dfd >= 0)
        (void)close(dfd);
    if (rc != 0 && tmp[0])
        (void)unlink(tmp);
    return rc;
}

void status_log_table(const status_supervisor *sup, const status_worker *w, size_t n)
{
    log_info(MOD, "supervisor pid %ld, up %lds, %zu rules, reloads ok %lu failed %lu, %zu workers", sup->pid,
             (long)(sup->now - sup->started_at), sup->rules_loaded, sup->reloads_ok, sup->reloads_failed, n);
    log_info(MOD, "%-20s %-10s %8s %8s %-24s %10s %-18s %12s %10s %7s", "NAME", "STATE", "PID", "RESTARTS",
             "LAST EXIT", "BACKOFF_MS", "CONFIRMED_LSN", "EVENTS", "FINDINGS", "TABLES");
    for (size_t i = 0; i < n; i++) {
        char pid[16] = "-", lsn[LSN_TEXT_MAX] = "-", tables[24], ex[64] = "-";
        if (w[i].pid > 0)
            snprintf(pid, sizeof(pid), "%d", w[i].pid);
        if (w[i].has_stats && w[i].confirmed_lsn)
            lsn_format(w[i].confirmed_lsn, lsn);
        if (w[i].has_exit)
            snprintf(ex, sizeof(ex), "%s %d: %.40s", w[i].exit_signaled ? "signal" : "code", w[i].exit_value,
                     w[i].exit_reason ? w[i].exit_reason : "");
        snprintf(tables, sizeof(tables), "%" PRIu32 "/%" PRIu32, w[i].tables_done, w[i].tables_total);
        log_info(MOD, "%-20s %-10s %8s %8u %-24s %10" PRIu64 " %-18s %12" PRIu64 " %10" PRIu64 " %7s",
                 w[i].name, w[i].state, pid, w[i].restarts, ex, w[i].backoff_ms, lsn, w[i].events,
                 w[i].findings, tables);
        for (size_t k = 0; k < w[i].n_table_errors; k++)
            log_info(MOD, "%-20s table %s.%s: %s", w[i].name, w[i].table_errors[k].schema,
                     w[i].table_errors[k].table, w[i].table_errors[k].reason);
    }
}
