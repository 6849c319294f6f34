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

Test(log, held_records_written_together_in_order)
{
    log_setup(LOG_LVL_INFO, LOG_FMT_CONSOLE, NULL);
    log_info("x", "before");
    log_hold();
    log_info("x", "held one");
    log_warn("x", "held two");
    cr_assert_gt(log_held(), 0);
    char *s = slurp(path);
    cr_assert_not_null(strstr(s, "before"));
    cr_assert_null(strstr(s, "held one"), "written before log_release: %s", s);
    log_release();
    cr_assert_eq(log_held(), 0);
    log_info("x", "after");
    s = slurp(path);
    char *a = strstr(s, "held one"), *b = strstr(s, "held two"), *c = strstr(s, "after");
    cr_assert(a && b && c && a < b && b < c, "got: %s", s);
}

Test(log, fatal_and_reopen_write_what_is_held_first)
{
    log_setup(LOG_LVL_INFO, LOG_FMT_CONSOLE, NULL);
    log_hold();
    log_info("x", "held");
    log_fatal("x", "dying");
    char *s = slurp(path);
    char *a = strstr(s, "held"), *b = strstr(s, "dying");
    cr_assert(a && b && a < b, "got: %s", s);
    log_info("x", "held before a reopen");
    cr_assert_eq(log_reopen(), 0);
    s = slurp(path);
    cr_assert_not_null(strstr(s, "held before a reopen"));
    log_release();
}

Test(log, hold_buffer_full_writes_and_keeps_every_line)
{
    log_setup(LOG_LVL_INFO, LOG_FMT_CONSOLE, NULL);
    log_hold();
    /* ~100 bytes a line: 1,000 lines overflow the 64 KiB hold buffer once */
    for (int i = 0; i < 1000; i++)
        log_info("x", "line %04d %s", i, "padding padding padding padding padding padding");
    log_release();
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f);
    char line[512];
    int n = 0;
    while (fgets(line, sizeof(line), f)) {
        char want[32];
        snprintf(want, sizeof(want), "line %04d ", n);
        cr_assert_not_null(strstr(line, want), "line %d: %s", n, line);
        n++;
    }
    fclose(f);
    cr_assert_eq(n, 1000);
}
