/*
 * log: leveled logging, console or JSON lines. Each write(2) carries whole
 * records, so lines from several processes sharing a file never interleave
 * mid-line: one record per write, or, between log_hold() and log_release(),
 * every record held in one write.
 */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define LOG_LINE_MAX 4096
#define LOG_HOLD_MAX (64 * 1024) /* held records are written when this fills */

static log_level g_min = LOG_LVL_INFO;
static log_format g_fmt = LOG_FMT_CONSOLE;
static char g_prefix[64];
static int g_fd = -1; /* -1: stderr */
static char *g_path;
static bool g_holding;
static char g_held[LOG_HOLD_MAX];
static size_t g_held_len;

static const char *const level_names[] = {"DEBUG", "INFO", "WARN", "ERROR", "FATAL"};

const char *log_level_name(log_level lvl)
{
    if ((unsigned)lvl > LOG_LVL_FATAL)
        return "?";
    return level_names[lvl];
}

bool log_level_parse(const char *s, log_level *out)
{
    static const char *const names[] = {"debug", "info", "warn", "error"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (strcmp(s, names[i]) == 0) {
            *out = (log_level)i;
            return true;
        }
    }
    if (strcmp(s, "warning") == 0) {
        *out = LOG_LVL_WARN;
        return true;
    }
    return false;
}

bool log_format_parse(const char *s, log_format *out)
{
    if (strcmp(s, "console") == 0)
        *out = LOG_FMT_CONSOLE;
    else if (strcmp(s, "json") == 0)
        *out = LOG_FMT_JSON;
    else
        return false;
    return true;
}

void log_setup(log_level min, log_format fmt, const char *prefix)
{
    g_min = min;
    g_fmt = fmt;
    snprintf(g_prefix, sizeof(g_prefix), "%s", prefix ? prefix : "");
}

static void write_all(int fd, const char *buf, size_t len);

static void write_held(void)
{
    if (g_held_len > 0)
        write_all(g_fd >= 0 ? g_fd : STDERR_FILENO, g_held, g_held_len);
    g_held_len = 0;
}

void log_hold(void)
{
    g_holding = true;
}

void log_release(void)
{
    write_held();
    g_holding = false;
}

size_t log_held(void)
{
    return g_held_len;
}

static int open_log(const char *path)
{
    int fd;
    do {
        fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    } while (fd < 0 && errno == EINTR);
    return fd;
}

int log_open_file(const char *path)
{
    int fd = open_log(path);
    if (fd < 0)
        return -1;
    char *copy = strdup(path);
    if (!copy) {
        close(fd);
        errno = ENOMEM;
        return -1;
    }
    write_held();
    if (g_fd >= 0)
        close(g_fd);
    free(g_path);
    g_fd = fd;
    g_path = copy;
    return 0;
}

int log_reopen(void)
{
    if (!g_path)
        return 0;
    int fd = open_log(g_path);
    if (fd < 0)
        return -1;
    write_held();
    if (g_fd >= 0)
        close(g_fd);
    g_fd = fd;
    return 0;
}

int log_redirect_stderr(void)
{
    if (g_fd < 0)
        return 0;
    write_held();
    return dup2(g_fd, STDERR_FILENO) < 0 ? -1 : 0;
}

/* Append s to buf as a JSON string body (no quotes); bounded by cap. */
static size_t json_escape(char *buf, size_t pos, size_t cap, const char *s)
{
    for (; *s && pos + 7 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            buf[pos++] = '\\';
            buf[pos++] = (char)c;
        } else if (c == '\n') {
            buf[pos++] = '\\';
            buf[pos++] = 'n';
        } else if (c == '\t') {
            buf[pos++] = '\\';
            buf[pos++] = 't';
        } else if (c < 0x20) {
            pos += (size_t)snprintf(buf + pos, cap - pos, "\\u%04x", c);
        } else {
            buf[pos++] = (char)c;
        }
    }
    return pos;
}

static void write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return; /* nowhere left to report a logging failure */
        }
        buf += n;
        len -= (size_t)n;
    }
}

void log_vmsg(log_level lvl, const char *module, const char *fmt, va_list ap)
{
    if (lvl < g_min)
        return;
    int saved_errno = errno;

    char text[LOG_LINE_MAX / 2];
    vsnprintf(text, sizeof(text), fmt, ap);
    /* One record per line: a newline inside the text would forge a record. */
    for (char *p = text; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';

    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    char ts[40];
    size_t tl = strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(ts + tl, sizeof(ts) - tl, ".%03ldZ", (long)(tv.tv_usec / 1000));

    char line[LOG_LINE_MAX];
    size_t pos;
    if (g_fmt == LOG_FMT_JSON) {
        pos = (size_t)snprintf(line, sizeof(line), "{\"ts\":\"%s\",\"level\":\"%s\",\"pid\":%ld,", ts,
                               log_level_name(lvl), (long)getpid());
        if (g_prefix[0]) {
            pos += (size_t)snprintf(line + pos, sizeof(line) - pos, "\"worker\":\"");
            pos = json_escape(line, pos, sizeof(line), g_prefix);
            pos += (size_t)snprintf(line + pos, sizeof(line) - pos, "\",");
        }
        pos += (size_t)snprintf(line + pos, sizeof(line) - pos, "\"module\":\"");
        pos = json_escape(line, pos, sizeof(line), module ? module : "");
        pos += (size_t)snprintf(line + pos, sizeof(line) - pos, "\",\"msg\":\"");
        pos = json_escape(line, pos, sizeof(line), text);
        if (pos + 3 > sizeof(line))
            pos = sizeof(line) - 3;
        line[pos++] = '"';
        line[pos++] = '}';
    } else {
        int n;
        if (g_prefix[0])
            n = snprintf(line, sizeof(line), "%s %s [%s] %s: %s", ts, log_level_name(lvl), g_prefix,
                         module ? module : "-", text);
        else
            n = snprintf(line, sizeof(line), "%s %s %s: %s", ts, log_level_name(lvl),
                         module ? module : "-", text);
        pos = n < 0 ? 0 : (size_t)n;
        if (pos > sizeof(line) - 2)
            pos = sizeof(line) - 2;
    }
    line[pos++] = '\n';
    if (g_holding && lvl < LOG_LVL_FATAL) {
        if (g_held_len + pos > sizeof(g_held))
            write_held();
        memcpy(g_held + g_held_len, line, pos);
        g_held_len += pos;
    } else {
        write_held();
        write_all(g_fd >= 0 ? g_fd : STDERR_FILENO, line, pos);
    }
    errno = saved_errno;
}

void log_msg(log_level lvl, const char *module, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vmsg(lvl, module, fmt, ap);
    va_end(ap);
}
