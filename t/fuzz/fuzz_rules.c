/*
 * libFuzzer target for src/rules.c and the engine: the input is a
 * rules.yaml loaded from memory; every script path resolves to one small
 * fixed Lua script. A set that loads is compiled and scans a few fixed
 * values, so patterns, allowlists, scopes and masking are exercised too.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "rules.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char script[] = "function detect(value)\n"
                             "  local out = {}\n"
                             "  for w in string.gmatch(value, \"secret%-%w+\") do out[#out + 1] = w end\n"
                             "  return out\n"
                             "end\n";

static int lookup(void *ctx, const char *path, const char **out, size_t *len, char *err, size_t errlen)
{
    (void)ctx;
    if (strcmp(path, "missing.lua") == 0) {
        snprintf(err, errlen, "no such file");
        return -1;
    }
    *out = script;
    *len = sizeof(script) - 1;
    return 0;
}

static const char *const values[] = {
    "",
    "4111 1111 1111 1111",
    "call +1 415 555 2671 or mail jane.doe@corp.io",
    "ssn 123-45-6789, iban GB82 WEST 1234 5698 7654 32",
    "AKIAIOSFODNN7EXAMPLE secret-abc \xff\xfe caf\xc3\xa9",
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static rules_diag diag;
    rules_set *rs = NULL;
    memset(&diag, 0, sizeof(diag));
    int rc = rules_load_mem("fuzz.yaml", (const char *)data, size, lookup, NULL, &rs, &diag);
    if (rc != 0) {
        if (rs != NULL || diag.total == 0)
            abort(); /* a rejected file says why */
        return 0;
    }
    if (rs == NULL)
        abort();
    char err[256];
    engine *e = engine_new(rs, err, sizeof(err));
    if (e != NULL) {
        engine_findings f;
        engine_findings_init(&f);
        engine_scope where = {"public", "users", "email"};
        for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
            if (engine_scan(e, i % 2 ? &where : NULL, values[i], strlen(values[i]), &f) != 0)
                continue;
            for (size_t k = 0; k < f.count; k++)
                if (f.items[k].rule >= rules_count(rs) || f.items[k].start > f.items[k].end ||
                    f.items[k].end > strlen(values[i]) || f.items[k].masked == NULL)
                    abort();
            (void)engine_matches_any_rule(e, values[i], strlen(values[i]));
        }
        engine_findings_free(&f);
        engine_free(e);
    }
    rules_free(rs);
    return 0;
}
