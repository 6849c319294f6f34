/*
 * engine_regex: compiles rules.yaml patterns with PCRE2 the one way both the
 * loader (to report errors) and the engine (to match) use, and refuses what
 * the contract leaves out: lookaround and backreferences.
 */
#include "engine_regex.h"

#include <stdio.h>
#include <string.h>

bool engine_regex_is_utf(const char *p)
{
    for (const unsigned char *s = (const unsigned char *)p; *s; s++) {
        if (*s >= 0x80)
            return true;
        if (s[0] == '\\' && s[1] != '\0') {
            unsigned char c = s[1];
            if ((c == 'x' && s[2] == '{') || c == 'p' || c == 'P' || c == 'X' || (c == 'N' && s[2] == '{'))
                return true;
            s++;
        }
    }
    return false;
}

/* Lookaround group openers, as "(?=" ... and the (*verb: forms. */
static const char *const lookaround_openers[] = {
    "(?=",
    "(?!",
    "(?<=",
    "(?<!",
    "(*pla:",
    "(*plb:",
    "(*nla:",
    "(*nlb:",
    "(*napla:",
    "(*naplb:",
    "(*positive_look",
    "(*negative_look",
    "(*non_atomic_positive_look",
};

/*
 * Offset of the first lookaround group in p, or -1. Skips escapes, \Q..\E,
 * character classes and (?# comments) so that "[(?=]" is not one.
 */
static long find_lookaround(const char *p)
{
    size_t n = strlen(p), i = 0;
    bool in_class = false;
    while (i < n) {
        char c = p[i];
        if (c == '\\') {
            if (p[i + 1] == 'Q') {
                const char *e = strstr(p + i + 2, "\\E");
                if (e == NULL)
                    return -1;
                i = (size_t)(e - p) + 2;
                continue;
            }
            i += 2;
            continue;
        }
        if (in_class) {
            if (c == '[' && p[i + 1] == ':') {
                const char *e = strstr(p + i + 2, ":]");
                if (e != NULL) {
                    i = (size_t)(e - p) + 2;
                    continue;
                }
            }
            if (c == ']')
                in_class = false;
            i++;
            continue;
        }
        if (c == '[') {
            in_class = true;
            i++;
            if (p[i] == '^')
                i++;
            if (p[i] == ']')
                i++;
            continue;
        }
        if (c == '(') {
            if (strncmp(p + i, "(?#", 3) == 0) {
                const char *e = strchr(p + i, ')');
                if (e == NULL)
                    return -1;
                i = (size_t)(e - p) + 1;
                continue;
            }
            for (size_t k = 0; k < sizeof(lookaround_openers) / sizeof(lookaround_openers[0]); k++) {
                size_t ol = strlen(lookaround_openers[k]);
                if (strncmp(p + i, lookaround_openers[k], ol) == 0)
                    return (long)i;
            }
        }
        i++;
    }
    return -1;
}

pcre2_code *engine_regex_compile(const char *pattern, char *err, size_t errlen)
{
    pcre2_code *code = NULL;
    uint32_t opts = PCRE2_NEVER_BACKSLASH_C;
    if (engine_regex_is_utf(pattern))
        opts |= PCRE2_UTF | PCRE2_MATCH_INVALID_UTF;
    else
        opts |= PCRE2_NEVER_UTF;

    int ec = 0;
    PCRE2_SIZE eoff = 0;
    code = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, opts, &ec, &eoff, NULL);
    if (code == NULL) {
        PCRE2_UCHAR msg[256];
        if (pcre2_get_error_message(ec, msg, sizeof(msg)) < 0)
            snprintf((char *)msg, sizeof(msg), "error %d", ec);
        snprintf(err, errlen, "invalid regex at offset %zu: %s", (size_t)eoff, (const char *)msg);
        goto fail;
    }
    long la = find_lookaround(pattern);
    if (la >= 0) {
        snprintf(err, errlen, "lookaround is not supported (offset %ld)", la);
        goto fail;
    }
    uint32_t backrefmax = 0;
    if (pcre2_pattern_info(code, PCRE2_INFO_BACKREFMAX, &backrefmax) != 0 || backrefmax > 0) {
        snprintf(err, errlen, "backreferences are not supported");
        goto fail;
    }
    if (pcre2_jit_compile(code, PCRE2_JIT_COMPLETE) != 0) {
        /* No JIT (unsupported CPU, no memory): pcre2_match interprets, still correct. */
    }
    return code;

fail:
    pcre2_code_free(code);
    return NULL;
}
