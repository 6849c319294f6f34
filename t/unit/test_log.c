/* Unit tests for src/log.c: levels, formats, prefix, reopen. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

static char path[] = "/tmp/pgsense-test-log-XXXXXX";

static char *slurp(const char *p)
{
    FILE *f = fopen(p, "r");
    cr_assert_not_null(f);
    static char buf[8192];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static void setup(void)
{
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    close(fd);
    cr_assert_eq(log_open_file(path), 0);
}

static void teardown(void)
{
    unlink(path);
    strcpy(path, "/tmp/pgsense-test-log-XXXXXX");
}

TestSuite(log, .init = setup, .fini = teardown);

Test(log, console_line_has_level_prefix_module)
{
    log_setup(LOG_LVL_INFO, LOG_FMT_CONSOLE, "orders");
    log_info("slot", "created slot %s", "pgsense_1");
    char *s = slurp(path);
    cr_assert(strstr(s, " INFO [orders] slot: created slot pgsense_1\n") != NULL, "got: %s", s);
}

Test(log, below_level_is_dropped)
{
    log_setup(LOG_LVL_WARN, LOG_FMT_CONSOLE, NULL);
    log_info("x", "hidden");
    log_warn("x", "shown");
    char *s = slurp(path);
    cr_assert_null(strstr(s, "hidden"));
    cr_assert_not_null(strstr(s, "WARN x: shown"));
}

Test(log, json_escapes_and_one_line)
{
    log_setup(LOG_LVL_DEBUG, LOG_FMT_JSON, "w\"1");
    log_error("frame", "bad \"frame\"\nsecond line");
    char *s = slurp(path);
    cr_assert_not_null(strstr(s, "\"level\":\"ERROR\""), "got: %s", s);
    cr_assert_not_null(strstr(s, "\"worker\":\"w\\\"1\""), "got: %s", s);
    cr_assert_not_null(strstr(s, "\"msg\":\"bad \\\"frame\\\" second line\"}\n"), "got: %s", s);
    /* exactly one newline: the record terminator */
    cr_assert_eq(strchr(s, '\n'), s + strlen(s) - 1);
}

Test(log, reopen_after_rotation)
{
    log_setup(LOG_LVL_INFO, LOG_FMT_CONSOLE, NULL);
    char rotated[64];
    snprintf(rotated, sizeof(rotated), "%s.1", path);
    cr_assert_eq(rename(path, rotated), 0);
    log_info("x", "to the old file");
    cr_assert_eq(log_reopen(), 0);
    log_info("x", "to the new file");
    char *s = slurp(path);
    cr_assert_not_null(strstr(s, "to the new file"));
    cr_assert_null(strstr(s, "to the old file"));
    s = slurp(rotated);
    cr_assert_not_null(strstr(s, "to the old file"));
    unlink(rotated);
}

Test(log, parse_names)
{
    log_level l;
    log_format f;
    cr_assert(log_level_parse("warn", &l) && l == LOG_LVL_WARN);
    cr_assert(!log_level_parse("loud", &l));
    cr_assert(log_format_parse("json", &f) && f == LOG_FMT_JSON);
    cr_assert(!log_format_parse("xml", &f));
}
