/*
 * log: leveled logging for every pgsense process, console or JSON lines,
 * with a per-process prefix; owns the log fd and its reopen, nothing else.
 * Callers never pass row data: log texts name objects, causes and fixes only.
 */
#ifndef PGSENSE_LOG_H_INCLUDED
#define PGSENSE_LOG_H_INCLUDED

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

typedef enum {
    LOG_LVL_DEBUG, /* developer detail */
    LOG_LVL_INFO,  /* normal operation */
    LOG_LVL_WARN,  /* works, but an operator should look */
    LOG_LVL_ERROR, /* something failed */
    LOG_LVL_FATAL, /* the process is about to exit */
} log_level;

typedef enum {
    LOG_FMT_CONSOLE, /* "2026-11-26T10:00:00.123Z INFO [orders] module: text" */
    LOG_FMT_JSON,    /* one JSON object per line */
} log_format;

/* Parse "debug|info|warn|error" / "console|json"; false on anything else. */
bool log_level_parse(const char *s, log_level *out);
bool log_format_parse(const char *s, log_format *out);
const char *log_level_name(log_level lvl);

/* Process-wide settings; prefix is e.g. the worker name (copied, may be NULL). */
void log_setup(log_level min, log_format fmt, const char *prefix);

/*
 * Send output to path (append, CLOEXEC) instead of stderr; path is kept so
 * log_reopen() can reopen it after logrotate. Returns 0 or -1 with errno.
 */
__attribute__((warn_unused_result)) int log_open_file(const char *path);
__attribute__((warn_unused_result)) int log_reopen(void);

/* Duplicate the log fd onto stderr so a child's crash message lands there too. */
__attribute__((warn_unused_result)) int log_redirect_stderr(void);

void log_msg(log_level lvl, const char *module, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void log_vmsg(log_level lvl, const char *module, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

/*
 * Between log_hold() and log_release() records (below FATAL) are kept in a
 * 64 KiB buffer and written together, whole lines in one write(2): for a
 * caller that logs many records per event-loop iteration. FATAL, a reopen or
 * a full buffer writes what is held first, so the order is kept. Not for a
 * process that logs in a forked child (held records would be written twice):
 * the supervisor's children only exec.
 */
void log_hold(void);
void log_release(void);
/* Bytes held and not written yet. */
size_t log_held(void);

#define log_debug(mod, ...) log_msg(LOG_LVL_DEBUG, (mod), __VA_ARGS__)
#define log_info(mod, ...) log_msg(LOG_LVL_INFO, (mod), __VA_ARGS__)
#define log_warn(mod, ...) log_msg(LOG_LVL_WARN, (mod), __VA_ARGS__)
#define log_error(mod, ...) log_msg(LOG_LVL_ERROR, (mod), __VA_ARGS__)
#define log_fatal(mod, ...) log_msg(LOG_LVL_FATAL, (mod), __VA_ARGS__)

#endif /* PGSENSE_LOG_H_INCLUDED */
