/* Unit tests for src/engine*.c: regex (Hyperscan + PCRE2), validators, allowlists, scopes, ordering, Lua. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "rules.h"

static const char *const scripts[][2] = {
    {"words.lua", "function detect(v)\n"
                  "  local out = {}\n"
                  "  for w in string.gmatch(v, 'secret%-%w+') do out[#out + 1] = w end\n"
                  "  out[#out + 1] = 'not-in-the-value'\n"
                  "  out[#out + 1] = 42\n"
                  "  return out\n"
                  "end\n"},
    {"loop.lua", "function detect(v)\n"
                 "  if v == 'loop' then while true do end end\n"
                 "  if v == 'sneaky' then\n"
                 "    while true do pcall(function() while true do end end) end\n"
                 "  end\n"
                 "  return {}\n"
                 "end\n"},
    {"bomb.lua", "keep = {}\n"
                 "function detect(v)\n"
                 "  if v == 'bomb' then\n"
                 "    for i = 1, 1000 do keep[#keep + 1] = string.rep('x', 1048576 + i) end\n"
                 "  end\n"
                 "  if v == 'rep' then return {string.rep('y', 1 << 40)} end\n"
                 "  return {v}\n"
                 "end\n"},
    {"sandbox.lua", "function detect(v)\n"
                    "  local absent = io == nil and os == nil and package == nil and debug == nil and\n"
                    "    require == nil and load == nil and loadfile == nil and dofile == nil and\n"
                    "    collectgarbage == nil and print == nil and string.dump == nil\n"
                    "  local present = string ~= nil and table ~= nil and math ~= nil and utf8 ~= nil\n"
                    "  if absent and present then return {'SANDBOXED'} end\n"
                    "  return {}\n"
                    "end\n"},
    {"error.lua", "function detect(v) if v ~= '' then error('boom: ' .. v) end return {} end"},
    {"badret.lua", "function detect(v) if v == '' then return nil end return 7 end"},
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

static rules_set *rs;
static engine *eng;
static engine_findings fs;
static rules_diag diag;

static void build(const char *yaml)
{
    int rc = rules_load_mem("t.yaml", yaml, strlen(yaml), mem_lookup, NULL, &rs, &diag);
    cr_assert_eq(rc, 0, "%u: %s", diag.items[0].line, diag.items[0].msg);
    char err[256];
    eng = engine_new(rs, err, sizeof(err));
    cr_assert_not_null(eng, "%s", err);
}

static void build_file(const char *path)
{
    cr_assert_eq(rules_load(path, &rs, &diag), 0, "%u: %s", diag.items[0].line, diag.items[0].msg);
    char err[256];
    eng = engine_new(rs, err, sizeof(err));
    cr_assert_not_null(eng, "%s", err);
}

static void setup(void)
{
    rs = NULL;
    eng = NULL;
    engine_findings_init(&fs);
}

static void teardown(void)
{
    engine_findings_free(&fs);
    engine_free(eng);
    rules_free(rs);
}

TestSuite(engine, .init = setup, .fini = teardown);

static void scan_where(const engine_scope *w, const char *v, size_t len)
{
    cr_assert_eq(engine_scan(eng, w, v, len, &fs), 0);
}

static void scan(const char *v)
{
    scan_where(NULL, v, strlen(v));
}

static void expect(size_t k, const char *id, size_t start, size_t end, const char *masked)
{
    cr_assert_lt(k, fs.count, "finding %zu missing (count %zu)", k, fs.count);
    const engine_finding *f = &fs.items[k];
    cr_assert_str_eq(rules_id(rs, f->rule), id, "finding %zu", k);
    cr_assert_eq(f->start, start, "finding %zu start %zu", k, f->start);
    cr_assert_eq(f->end, end, "finding %zu end %zu", k, f->end);
    if (masked != NULL)
        cr_assert_str_eq(f->masked, masked);
}

#define HEAD "rules:\n"

Test(engine, regex_spans_and_masking)
{
    build(HEAD "  - id: aws\n    pattern: '\\b(AKIA|ASIA)[0-9A-Z]{16}\\b'\n    category: SECRET\n");
    cr_assert(engine_rule_uses_hyperscan(eng, 0));
    scan("key=AKIAABCDEFGHIJKLMNOP, ASIAABCDEFGHIJKLMNOP. AKIAshort");
    cr_assert_eq(fs.count, 2);
    expect(0, "aws", 4, 24, "AK****************OP");
    expect(1, "aws", 26, 46, NULL);
    scan("nothing here");
    cr_assert_eq(fs.count, 0);
}

Test(engine, regex_with_validator)
{
    build(HEAD "  - id: card\n    pattern: '\\b[0-9]{4}(?:[- ]?[0-9]{4}){3}\\b'\n    validate: luhn\n"
               "    category: PCI\n");
    scan("ok 4532015112830366 bad 4532015112830367 dashed 4111-1111-1111-1111");
    cr_assert_eq(fs.count, 2);
    expect(0, "card", 3, 19, "45************66");
    expect(1, "card", 48, 67, "41***************11"); /* SPEC section 4's example */
}

Test(engine, allowlist_values_and_patterns)
{
    build(HEAD "  - id: tok\n    pattern: 'tok_[a-z0-9]+'\n    category: SECRET\n"
               "    allowlist:\n      values: [tok_test]\n      patterns: ['^tok_demo', '0000$']\n");
    scan("tok_test tok_testx tok_demo1 tok_real tok_a0000 tok_0000b");
    cr_assert_eq(fs.count, 3);
    expect(0, "tok", 9, 18, NULL); /* exact values only: tok_testx is reported */
    expect(1, "tok", 29, 37, NULL);
    expect(2, "tok", 48, 57, NULL);
}

Test(engine, builtin_allowlist)
{
    build(HEAD "  - id: cc\n    type: builtin\n    builtin: credit_card\n    category: PCI\n"
               "    allowlist:\n      values: ['4111111111111111']\n");
    scan("4111111111111111 and 4532015112830366");
    cr_assert_eq(fs.count, 1);
    expect(0, "cc", 21, 37, NULL);
}

Test(engine, scope_include_exclude)
{
    build(HEAD "  - id: a\n    pattern: 'x+'\n    category: C\n"
               "    scope:\n      include_tables: [users, 'orders*', 'audit.log']\n      exclude_columns: "
               "['*_hash']\n"
               "  - id: b\n    pattern: 'x+'\n    category: C\n"
               "    scope:\n      exclude_schemas: [pg_*]\n"
               "  - id: c\n    pattern: 'x+'\n    category: C\n");
    engine_scope users = {"public", "users", "note"};
    scan_where(&users, "xx", 2);
    cr_assert_eq(fs.count, 3);
    cr_assert_eq(fs.scope_skipped, 0);
    engine_scope hash = {"public", "orders_2026", "card_hash"};
    scan_where(&hash, "xx", 2);
    cr_assert_eq(fs.count, 2);
    cr_assert_eq(fs.scope_skipped, 1);
    expect(0, "b", 0, 2, NULL);
    expect(1, "c", 0, 2, NULL);
    engine_scope other = {"pg_catalog", "things", "note"};
    scan_where(&other, "xx", 2);
    cr_assert_eq(fs.count, 1);
    expect(0, "c", 0, 2, NULL);
    cr_assert_eq(fs.scope_skipped, 2);
    engine_scope qualified = {"audit", "log", "note"}; /* 'audit.log' matches schema.table */
    scan_where(&qualified, "xx", 2);
    cr_assert_eq(fs.count, 3);
    engine_scope wrong_schema = {"public", "log", "note"};
    scan_where(&wrong_schema, "xx", 2);
    cr_assert_eq(fs.count, 2);
    scan("xx"); /* no scope: every rule */
    cr_assert_eq(fs.count, 3);
    engine_stats st;
    engine_get_stats(eng, &st);
    cr_assert_eq(st.rule_scope_skips, 1 + 2 + 1);
}

Test(engine, scope_all_rules_out)
{
    build(HEAD "  - id: a\n    pattern: 'x'\n    category: C\n    scope:\n      include_columns: [notes]\n");
    engine_scope w = {"s", "t", "other"};
    scan_where(&w, "x", 1);
    cr_assert_eq(fs.count, 0);
    cr_assert_eq(fs.scope_skipped, 1);
    engine_stats st;
    engine_get_stats(eng, &st);
    cr_assert_eq(st.values_scoped_out, 1);
    engine_scope w2 = {"s", "t", "notes"}; /* the cache must notice the change */
    scan_where(&w2, "x", 1);
    cr_assert_eq(fs.count, 1);
}

Test(engine, ordering_start_end_rule)
{
    build(HEAD "  - id: long\n    pattern: 'abcd'\n    category: C\n"
               "  - id: short\n    pattern: 'ab'\n    category: C\n"
               "  - id: mid\n    pattern: 'bc'\n    category: C\n"
               "  - id: same\n    pattern: 'ab'\n    category: C\n");
    scan("zabcd ab");
    cr_assert_eq(fs.count, 6);
    expect(0, "short", 1, 3, NULL);
    expect(1, "same", 1, 3, NULL);
    expect(2, "long", 1, 5, NULL);
    expect(3, "mid", 2, 4, NULL);
    expect(4, "short", 6, 8, NULL);
    expect(5, "same", 6, 8, NULL);
}

Test(engine, pcre2_only_patterns)
{
    /* atomic group and an empty-matching pattern: Hyperscan refuses both; a UTF pattern skips it */
    build(HEAD "  - id: atomic\n    pattern: '(?>ab|a)c'\n    category: C\n"
               "  - id: stars\n    pattern: 'q*'\n    category: C\n"
               "  - id: utf\n    pattern: 'é+'\n    category: C\n"
               "  - id: hs\n    pattern: 'zz'\n    category: C\n");
    cr_assert_not(engine_rule_uses_hyperscan(eng, 0));
    cr_assert_not(engine_rule_uses_hyperscan(eng, 1));
    cr_assert_not(engine_rule_uses_hyperscan(eng, 2));
    cr_assert(engine_rule_uses_hyperscan(eng, 3));
    scan("abc qq ééé zz");
    cr_assert_eq(fs.count, 4);
    expect(0, "atomic", 0, 3, NULL);
    expect(1, "stars", 4, 6, NULL);
    expect(2, "utf", 7, 13, "***");
    expect(3, "hs", 14, 16, NULL);
}

Test(engine, invalid_utf8_and_nul_bytes)
{
    build(HEAD "  - id: utf\n    pattern: 'é[a-z]+'\n    category: C\n"
               "  - id: bytes\n    pattern: 'k[^ ]{8}'\n    category: C\n");
    const char v[] = "\xff\xfe \xc3\xa9"
                     "abc \xc3 k\x01\xff"
                     "1234567 end";
    scan_where(NULL, v, sizeof(v) - 1);
    cr_assert_eq(fs.count, 2);
    expect(0, "utf", 3, 8, NULL);
    expect(1, "bytes", 11, 20, "k\x01*****56");
}

Test(engine, lua_script_spans)
{
    build(HEAD "  - id: words\n    type: script\n    script: words.lua\n    category: C\n");
    scan("a secret-one b secret-two secret-one");
    cr_assert_eq(fs.count, 3);
    expect(0, "words", 2, 12, NULL);
    expect(1, "words", 15, 25, NULL);
    expect(2, "words", 26, 36, NULL); /* second occurrence: searched after the previous match */
    cr_assert_eq(engine_script_errors(eng, 0), 0);
}

Test(engine, lua_infinite_loop_is_stopped_and_counted)
{
    build(HEAD "  - id: loop\n    type: script\n    script: loop.lua\n    category: C\n"
               "  - id: x\n    pattern: 'loop|sneaky'\n    category: C\n");
    scan("loop");
    cr_assert_eq(fs.count, 1); /* the other rule still ran */
    expect(0, "x", 0, 4, NULL);
    cr_assert_eq(engine_script_errors(eng, 0), 1);
    scan("sneaky"); /* catching the budget error with pcall does not help */
    cr_assert_eq(engine_script_errors(eng, 0), 2);
    scan("fine");
    cr_assert_eq(engine_script_errors(eng, 0), 2);
    engine_stats st;
    engine_get_stats(eng, &st);
    cr_assert_eq(st.script_errors, 2);
}

Test(engine, lua_memory_bomb_is_stopped_and_counted)
{
    build(HEAD "  - id: bomb\n    type: script\n    script: bomb.lua\n    category: C\n");
    scan("bomb");
    cr_assert_eq(fs.count, 0);
    cr_assert_eq(engine_script_errors(eng, 0), 1);
    scan("rep");
    cr_assert_eq(engine_script_errors(eng, 0), 2);
    scan("after"); /* the state was rebuilt and works */
    cr_assert_eq(fs.count, 1);
    expect(0, "bomb", 0, 5, NULL);
    cr_assert_eq(engine_script_errors(eng, 0), 2);
}

Test(engine, lua_sandbox_has_no_io_os)
{
    build(HEAD "  - id: sb\n    type: script\n    script: sandbox.lua\n    category: C\n");
    scan("is it SANDBOXED?");
    cr_assert_eq(fs.count, 1);
    expect(0, "sb", 6, 15, NULL);
}

Test(engine, lua_runtime_errors_counted)
{
    build(HEAD "  - id: err\n    type: script\n    script: error.lua\n    category: C\n"
               "  - id: ret\n    type: script\n    script: badret.lua\n    category: C\n");
    scan("value");
    cr_assert_eq(fs.count, 0);
    cr_assert_eq(engine_script_errors(eng, 0), 1);
    cr_assert_eq(engine_script_errors(eng, 1), 1);
}

Test(engine, matches_any_rule_ignores_scope_and_allowlist)
{
    build(HEAD "  - id: a\n    pattern: 'tok_[0-9]+'\n    category: C\n"
               "    allowlist:\n      values: [tok_1]\n    scope:\n      include_tables: [nothing]\n"
               "  - id: card\n    pattern: '[0-9]{16}'\n    validate: luhn\n    category: C\n"
               "  - id: email\n    type: builtin\n    builtin: email\n    category: C\n"
               "  - id: words\n    type: script\n    script: words.lua\n    category: C\n");
    cr_assert(engine_matches_any_rule(eng, "tok_1", 5));
    cr_assert(engine_matches_any_rule(eng, "4532015112830366", 16));
    cr_assert_not(engine_matches_any_rule(eng, "4532015112830367", 16)); /* validators still apply */
    cr_assert(engine_matches_any_rule(eng, "jane.doe@acme-corp.com", 22));
    cr_assert(engine_matches_any_rule(eng, "x secret-abc", 12));
    cr_assert_not(engine_matches_any_rule(eng, "42", 2));
    cr_assert_not(engine_matches_any_rule(eng, "", 0));
}

Test(engine, findings_buffer_reused_and_grows)
{
    build(HEAD "  - id: d\n    pattern: '[0-9]'\n    category: C\n");
    static char big[20001];
    for (size_t i = 0; i < 20000; i++)
        big[i] = (char)('0' + i % 10);
    scan_where(NULL, big, 20000);
    cr_assert_eq(fs.count, 20000);
    expect(19999, "d", 19999, 20000, "*");
    scan("a1");
    cr_assert_eq(fs.count, 1);
    expect(0, "d", 1, 2, "*");
}

/* ---- the default rule set ---- */

static char sample[512];

/* prefix + n characters cycled from alphabet + suffix */
static const char *mk(const char *prefix, size_t n, const char *alphabet, const char *suffix)
{
    size_t pl = strlen(prefix), al = strlen(alphabet);
    cr_assert_lt(pl + n + strlen(suffix), sizeof(sample));
    memcpy(sample, prefix, pl);
    for (size_t i = 0; i < n; i++)
        sample[pl + i] = alphabet[(i * 7 + 3) % al];
    strcpy(sample + pl + n, suffix);
    return sample;
}

#define ALNUM "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
#define HEX   "0123456789abcdef"

static void expect_rule_in(const char *value, const char *id)
{
    scan(value);
    bool found = false;
    for (size_t k = 0; k < fs.count; k++)
        found |= strcmp(rules_id(rs, fs.items[k].rule), id) == 0;
    cr_assert(found, "rule %s did not fire on \"%s\"", id, value);
}

Test(engine, default_rules_find_each_kind)
{
    build_file(TOP_SRCDIR "/conf/rules.yaml");
    expect_rule_in("paid with 4532015112830366", "credit-card");
    expect_rule_in("ssn 536-22-8412", "ssn");
    expect_rule_in("call +44 20 7946 0958", "phone");
    expect_rule_in("mail jane.doe@acme-corp.com", "email-address");
    expect_rule_in("iban DE89 3704 0044 0532 0130 00", "iban");
    expect_rule_in("AKIAZ7VQ3K2LMNOPQRST", "aws-access-key-id");
    expect_rule_in(mk("aws_secret_access_key = ", 40, ALNUM "/+", ""), "aws-secret-access-key");
    expect_rule_in(mk("token ghp_", 36, ALNUM, " end"), "github-token");
    expect_rule_in(mk("gho_", 36, ALNUM, ""), "github-token");
    expect_rule_in(mk("github_pat_11ABCDEFGHIJKLMNOPQRST_", 59, ALNUM, ""), "github-fine-grained-pat");
    expect_rule_in(mk("glpat-", 20, ALNUM, ""), "gitlab-token");
    expect_rule_in("xoxb-1234567890-abcdefghijkl", "slack-token");
    expect_rule_in("https://hooks.slack.com/services/T01ABCDEF/B02GHIJKL/abcdefghijklmnopqrstuvwx",
                   "slack-webhook");
    expect_rule_in(mk("https://discord.com/api/webhooks/123456789012345678/", 68, ALNUM, ""),
                   "discord-webhook");
    expect_rule_in(mk("sk_live_", 24, ALNUM, ""), "stripe-live-key");
    expect_rule_in(mk("rk_live_", 30, ALNUM, ""), "stripe-live-key");
    expect_rule_in("-----BEGIN RSA PRIVATE KEY-----\nMIIE", "private-key");
    expect_rule_in("-----BEGIN PRIVATE KEY-----", "private-key");
    expect_rule_in(
        "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
        "jwt");
    expect_rule_in(mk("AIza", 35, ALNUM "_-", ""), "google-api-key");
    expect_rule_in(mk("npm_", 36, ALNUM, ""), "npm-token");
    expect_rule_in(mk("pypi-AgEIcHlwaS5vcmc", 60, ALNUM, ""), "pypi-token");
    expect_rule_in("SG.abcdefghijklmnopqrstuv.abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
                   "sendgrid-api-key");
    expect_rule_in(mk("SK", 32, HEX, ""), "twilio-api-key");
    expect_rule_in("sk-proj-abcdefghijklmnopqrstT3BlbkFJabcdefghijklmnopqrst", "openai-api-key");
    expect_rule_in(mk("sk-ant-api03-", 95, ALNUM "_-", ""), "anthropic-api-key");
    expect_rule_in(mk("dop_v1_", 64, HEX, ""), "digitalocean-token");
    expect_rule_in(mk("shpat_", 32, HEX, ""), "shopify-token");
    expect_rule_in(mk("sq0atp-", 22, ALNUM, ""), "square-token");
    expect_rule_in(mk("hvs.", 95, ALNUM, ""), "hashicorp-vault-token");
    expect_rule_in(mk("DefaultEndpointsProtocol=https;AccountName=x;AccountKey=", 86, ALNUM "+/", "=="),
                   "azure-storage-key");
    expect_rule_in(mk("123456789:AA", 33, ALNUM, ""), "telegram-bot-token");
    expect_rule_in("postgres://app:Tr0ub4dor@db.internal:5432/app", "url-credentials");
}

Test(engine, default_rules_hard_negatives)
{
    build_file(TOP_SRCDIR "/conf/rules.yaml");
    static const char *const negatives[] = {
        "550e8400-e29b-41d4-a716-446655440000",
        "d41d8cd98f00b204e9800998ecf8427e",
        "da39a3ee5e6b4b0d3255bfef95601890afd80709",
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "2026-11-26T10:00:00.123456Z",
        "2026-11-26 10:00:00.123456+00",
        "1732615200",
        "ORD-2026-000123",
        "192.168.10.254",
        "version 1.2.3-beta.4",
        "The package was delivered to the warehouse on Tuesday.",
        "AKIA1234",
        "ghp_tooShort",
        "sk_test_abcdefghijklmnopqrstuvwx",
        "4111111111111111",
        "4111-1111-1111-1111",
        "4111 1111 1111 1111",
        "jane@example.com",
        "ops@mail.example.org",
        "AKIAIOSFODNN7EXAMPLE",
        "postgres://app:changeme@localhost:5432/app",
        "https://www.example.com/path?q=1",
        "-----BEGIN PUBLIC KEY-----",
        "{\"sku\": \"AB-12345\", \"qty\": 3, \"status\": \"shipped\"}",
    };
    for (size_t i = 0; i < sizeof(negatives) / sizeof(negatives[0]); i++) {
        scan(negatives[i]);
        cr_expect_eq(fs.count, 0, "\"%s\" gave %zu findings, first %s", negatives[i], fs.count,
                     fs.count ? rules_id(rs, fs.items[0].rule) : "");
    }
}
