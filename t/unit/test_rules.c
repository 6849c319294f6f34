/* Unit tests for src/rules.c: rules.yaml loading, every error with its file:line, accessors. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rules.h"

static rules_diag diag;

/* In-memory scripts for rules_load_mem. */
static const char *const scripts[][2] = {
    {"ok.lua", "function detect(v) return {} end"},
    {"loop.lua", "function detect(v) while true do end end"},
    {"nodetect.lua", "x = 1"},
    {"bomb.lua", "function detect(v) local t = {} while true do t[#t + 1] = string.rep('x', 65536) end end"},
};

static int mem_lookup(void *ctx, const char *path, const char **data, size_t *len, char *err, size_t errlen)
{
    (void)ctx;
    for (size_t i = 0; i < sizeof(scripts) / sizeof(scripts[0]); i++) {
        if (strcmp(path, scripts[i][0]) == 0) {
            *data = scripts[i][1];
            *len = strlen(scripts[i][1]);
            return 0;
        }
    }
    snprintf(err, errlen, "no such file");
    return -1;
}

static rules_set *load_ok(const char *yaml)
{
    rules_set *rs = NULL;
    int rc = rules_load_mem("t.yaml", yaml, strlen(yaml), mem_lookup, NULL, &rs, &diag);
    cr_assert_eq(rc, 0, "load failed: %s:%u: %s", diag.file, diag.items[0].line, diag.items[0].msg);
    cr_assert_not_null(rs);
    return rs;
}

/* The load fails and its first error is at line with a message containing needle. */
static void expect_error(const char *yaml, unsigned line, const char *needle)
{
    rules_set *rs = (rules_set *)1;
    int rc = rules_load_mem("t.yaml", yaml, strlen(yaml), mem_lookup, NULL, &rs, &diag);
    cr_assert_eq(rc, -1, "expected an error containing \"%s\"", needle);
    cr_assert_null(rs);
    cr_assert_geq(diag.count, 1);
    cr_assert_str_eq(diag.file, "t.yaml");
    cr_assert_eq(diag.items[0].line, line, "line %u, wanted %u: %s", diag.items[0].line, line,
                 diag.items[0].msg);
    cr_assert_not_null(strstr(diag.items[0].msg, needle), "message \"%s\" lacks \"%s\"", diag.items[0].msg,
                       needle);
}

#define RULE_HEAD "rules:\n  - id: r1\n    category: X\n"

Test(rules, bad_yaml)
{
    expect_error("rules:\n  - id: a\n    category: [x\n  - id: b\n", 4, "invalid YAML");
    expect_error("rules:\n  - id: a\n   category: X\n", 3, "invalid YAML");
}

Test(rules, empty_and_top_level)
{
    expect_error("", 1, "empty");
    expect_error("# only a comment\n", 1, "empty");
    expect_error("- id: x\n", 1, "mapping with a 'rules' list");
    expect_error("rules: []\nrulez: []\n", 2, "unknown key 'rulez'");
    expect_error("other: 1\n", 1, "unknown key 'other'");
    expect_error("{}\n", 1, "no 'rules' list");
    expect_error("rules: 3\n", 1, "'rules' must be a list");
}

Test(rules, empty_rule_list_is_valid)
{
    rules_set *rs = load_ok("rules: []\n");
    cr_assert_eq(rules_count(rs), 0);
    rules_free(rs);
}

Test(rules, unknown_key_is_named)
{
    expect_error(RULE_HEAD "    patern: 'x'\n", 4, "unknown key 'patern'");
    expect_error(RULE_HEAD "    pattern: 'x'\n    allowlist:\n      value: [a]\n", 6,
                 "unknown key 'value' in allowlist");
    expect_error(RULE_HEAD "    pattern: 'x'\n    scope:\n      include_table: [a]\n", 6,
                 "unknown key 'include_table'");
}

Test(rules, duplicate_key)
{
    expect_error(RULE_HEAD "    pattern: 'x'\n    pattern: 'y'\n", 5, "duplicate key 'pattern'");
}

Test(rules, missing_id_and_category)
{
    expect_error("rules:\n  - category: X\n    pattern: 'x'\n", 2, "has no id");
    expect_error("rules:\n  - id: a\n    pattern: 'x'\n", 2, "rule 'a': missing category");
    expect_error("rules:\n  - id: 'a b'\n    category: X\n    pattern: x\n", 2, "invalid");
}

Test(rules, duplicate_id)
{
    expect_error("rules:\n  - id: a\n    category: X\n    pattern: x\n"
                 "  - id: a\n    category: X\n    pattern: y\n",
                 5, "duplicate rule id 'a' (first at line 2)");
}

Test(rules, bad_severity_and_type)
{
    expect_error(RULE_HEAD "    pattern: x\n    severity: urgent\n", 5, "bad severity 'urgent'");
    expect_error(RULE_HEAD "    pattern: x\n    severity: CRITICAL\n", 5, "bad severity");
    expect_error(RULE_HEAD "    type: magic\n", 4, "bad type 'magic'");
}

Test(rules, builtin_errors)
{
    expect_error(RULE_HEAD "    type: builtin\n    builtin: passport\n", 5, "unknown builtin 'passport'");
    expect_error(RULE_HEAD "    type: builtin\n", 2, "type builtin needs 'builtin'");
    expect_error(RULE_HEAD "    type: builtin\n    builtin: ssn\n    pattern: x\n", 6,
                 "key 'pattern' does not apply to type builtin");
    expect_error(RULE_HEAD "    pattern: x\n    validate: crc\n", 5, "unknown validator 'crc'");
}

Test(rules, regex_errors)
{
    expect_error(RULE_HEAD "    severity: low\n", 2, "type regex needs 'pattern'");
    expect_error(RULE_HEAD "    pattern: 'ab(c'\n", 4,
                 "invalid regex at offset 4: missing closing parenthesis");
    expect_error(RULE_HEAD "    pattern: '[z-a]'\n", 4, "invalid regex at offset 3: range out of order");
    expect_error(RULE_HEAD "    pattern: 'foo(?=bar)'\n", 4, "lookaround is not supported (offset 3)");
    expect_error(RULE_HEAD "    pattern: '(?<!x)foo'\n", 4, "lookaround is not supported (offset 0)");
    expect_error(RULE_HEAD "    pattern: '(a)\\1'\n", 4, "backreferences are not supported");
    expect_error(RULE_HEAD "    pattern: '(?<n>a)\\k<n>'\n", 4, "backreferences are not supported");
    expect_error(RULE_HEAD
                 "    pattern: x\n    allowlist:\n      patterns:\n        - ok\n        - '(?!x)'\n",
                 8, "allowlist pattern: lookaround");
}

Test(rules, lookaround_text_in_class_or_escape_is_fine)
{
    rules_set *rs = load_ok(RULE_HEAD "    pattern: '[(?=]x\\(\\?=y\\Q(?!\\E'\n");
    rules_free(rs);
}

Test(rules, scope_conflicts)
{
    expect_error(RULE_HEAD "    pattern: x\n    scope:\n      include_tables: [users, orders]\n"
                           "      exclude_tables: [accounts, users]\n",
                 7, "'users' is both in include_tables and excluded by 'users'");
    expect_error(RULE_HEAD "    pattern: x\n    scope:\n      include_columns: [card_hash]\n"
                           "      exclude_columns:\n        - '*_hash'\n",
                 8, "'card_hash' is both in include_columns");
    expect_error(RULE_HEAD
                 "    pattern: x\n    scope:\n      include_schemas: public\n      exclude_schemas: public\n",
                 7, "both in include_schemas");
}

Test(rules, script_errors)
{
    expect_error(RULE_HEAD "    type: script\n    script: nope.lua\n", 5,
                 "script 'nope.lua' cannot be read: no such file");
    expect_error(RULE_HEAD "    type: script\n    script: loop.lua\n", 5,
                 "dry run detect(\"\") failed: instruction budget exceeded");
    expect_error(RULE_HEAD "    type: script\n    script: bomb.lua\n", 5,
                 "dry run detect(\"\") failed: memory limit exceeded");
    expect_error(RULE_HEAD "    type: script\n    script: nodetect.lua\n", 5, "defines no function detect");
    expect_error(RULE_HEAD "    type: script\n", 2, "type script needs 'script'");
}

Test(rules, script_file_errors_relative_to_rules_file)
{
    rules_set *rs = NULL;
    cr_assert_eq(rules_load(TEST_DATA_DIR "/rules/bad_script.yaml", &rs, &diag), -1);
    cr_assert_null(rs);
    cr_assert_eq(diag.count, 3);
    cr_assert_eq(diag.items[0].line, 5);
    cr_assert_not_null(strstr(diag.items[0].msg, "script 'scripts/missing.lua' cannot be read: No such file"),
                       "%s", diag.items[0].msg);
    cr_assert_eq(diag.items[1].line, 9);
    cr_assert_not_null(strstr(diag.items[1].msg, "scripts/syntax.lua:3:"), "%s", diag.items[1].msg);
    cr_assert_eq(diag.items[2].line, 13);
    cr_assert_not_null(strstr(diag.items[2].msg, "dry run detect(\"\") failed: scripts/dryrun_fails.lua:2:"),
                       "%s", diag.items[2].msg);
}

Test(rules, all_errors_are_collected)
{
    rules_set *rs = NULL;
    const char *y = "rules:\n  - id: a\n    category: X\n    pattern: '('\n"
                    "  - id: b\n    pattern: x\n    severity: nope\n";
    cr_assert_eq(rules_load_mem("t.yaml", y, strlen(y), mem_lookup, NULL, &rs, &diag), -1);
    cr_assert_eq(diag.count, 3);
    cr_assert_eq(diag.items[0].line, 4);
    cr_assert_eq(diag.items[1].line, 5); /* missing category: the rule's line */
    cr_assert_eq(diag.items[2].line, 7);
}

Test(rules, unreadable_file)
{
    rules_set *rs = NULL;
    cr_assert_eq(rules_load("/nonexistent/rules.yaml", &rs, &diag), -1);
    cr_assert_eq(diag.items[0].line, 0);
    cr_assert_not_null(strstr(diag.items[0].msg, "cannot read"));
}

Test(rules, good_file_and_accessors)
{
    rules_set *rs = NULL;
    cr_assert_eq(rules_load(TEST_DATA_DIR "/rules/good.yaml", &rs, &diag), 0, "%s", diag.items[0].msg);
    cr_assert_eq(rules_count(rs), 4);
    cr_assert_str_eq(rules_id(rs, 0), "card");
    cr_assert_eq(rules_line(rs, 0), 3);
    cr_assert_eq(rules_type_of(rs, 0), RULES_TYPE_BUILTIN);
    cr_assert_eq(rules_builtin(rs, 0), DETECT_CREDIT_CARD);
    cr_assert_str_eq(rules_severity_str(rs, 0), "CRITICAL");
    cr_assert_str_eq(rules_category(rs, 0), "PCI_DSS");
    cr_assert_str_eq(rules_description(rs, 0), "Cards");
    cr_assert_eq(rules_channel_count(rs, 0), 2);
    cr_assert_str_eq(rules_channel(rs, 0, 1), "siem");
    size_t len = 0;
    cr_assert_str_eq(rules_allow_value(rs, 0, 0, &len), "4111111111111111");
    cr_assert_eq(len, 16);
    cr_assert_str_eq(rules_allow_pattern(rs, 0, 0), "^4111");
    cr_assert_eq(rules_scope_count(rs, 0, RULES_SCOPE_TABLES, true), 2);
    cr_assert_str_eq(rules_scope_glob(rs, 0, RULES_SCOPE_TABLES, true, 1), "orders*");
    cr_assert(rules_has_scope(rs, 0));
    cr_assert_not(rules_has_scope(rs, 1));

    cr_assert_eq(rules_type_of(rs, 1), RULES_TYPE_REGEX);
    cr_assert_str_eq(rules_pattern(rs, 1), "\\b(AKIA|ASIA)[0-9A-Z]{16}\\b");
    cr_assert_str_eq(rules_description(rs, 1), "");
    detect_validator v;
    cr_assert_not(rules_validator(rs, 1, &v));
    cr_assert(rules_validator(rs, 2, &v));
    cr_assert_eq(v, VALIDATE_LUHN);

    cr_assert_eq(rules_type_of(rs, 3), RULES_TYPE_SCRIPT);
    cr_assert_str_eq(rules_script_path(rs, 3), "scripts/words.lua");
    cr_assert_eq(rules_severity_of(rs, 3), RULES_SEV_MEDIUM); /* the default */
    const char *src = rules_script_source(rs, 3, &len);
    cr_assert(len > 0 && strstr(src, "function detect") != NULL);
    cr_assert_eq(rules_find(rs, "custom"), 3);
    cr_assert_eq(rules_find(rs, "nope"), (size_t)-1);
    rules_free(rs);
}

Test(rules, anchors_flow_and_lone_strings)
{
    rules_set *rs = load_ok("rules:\n"
                            "  - {id: a, category: X, pattern: foo, channels: jsonl, severity: info}\n"
                            "  - id: b\n    category: &cat Y\n    pattern: bar\n"
                            "  - id: c\n    category: *cat\n    pattern: baz\n");
    cr_assert_eq(rules_count(rs), 3);
    cr_assert_eq(rules_channel_count(rs, 0), 1);
    cr_assert_str_eq(rules_severity_str(rs, 0), "INFO");
    cr_assert_str_eq(rules_category(rs, 2), "Y");
    rules_free(rs);
}

Test(rules, default_conf_loads)
{
    rules_set *rs = NULL;
    cr_assert_eq(rules_load(TOP_SRCDIR "/conf/rules.yaml", &rs, &diag), 0, "%u: %s", diag.items[0].line,
                 diag.items[0].msg);
    static const char *const builtins[][3] = {{"credit-card", "PCI_DSS", "CRITICAL"},
                                              {"ssn", "PII", "CRITICAL"},
                                              {"phone", "PII", "MEDIUM"},
                                              {"email-address", "PII", "HIGH"},
                                              {"iban", "FINANCIAL", "HIGH"}};
    for (size_t i = 0; i < 5; i++) {
        size_t k = rules_find(rs, builtins[i][0]);
        cr_assert_neq(k, (size_t)-1, "%s", builtins[i][0]);
        cr_assert_eq(rules_type_of(rs, k), RULES_TYPE_BUILTIN);
        cr_assert_str_eq(rules_category(rs, k), builtins[i][1]);
        cr_assert_str_eq(rules_severity_str(rs, k), builtins[i][2]);
    }
    for (size_t i = 0; i < rules_count(rs); i++)
        if (rules_type_of(rs, i) == RULES_TYPE_REGEX)
            cr_assert_str_eq(rules_category(rs, i), "SECRET", "%s", rules_id(rs, i));
    rules_free(rs);
}

Test(rules, validate_report)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    cr_assert_not_null(f);
    cr_assert_eq(rules_validate_report(TEST_DATA_DIR "/rules/good.yaml", f), 0);
    cr_assert_eq(rules_validate_report(TEST_DATA_DIR "/rules/bad_script.yaml", f), 3);
    fclose(f);
    cr_assert_not_null(strstr(buf, "[OK] rules " TEST_DATA_DIR "/rules/good.yaml: 4 rules\n"), "%s", buf);
    cr_assert_not_null(strstr(buf, "[ERROR] " TEST_DATA_DIR "/rules/bad_script.yaml:5: rule 's1': script"),
                       "%s", buf);
    free(buf);
}
