/*
 * engine_regex: how pgsense compiles a rules.yaml pattern with PCRE2 (byte
 * mode, or UTF with invalid input tolerated) and what it refuses (lookaround,
 * backreferences). Internal to rules and engine.
 */
#ifndef PGSENSE_ENGINE_REGEX_H_INCLUDED
#define PGSENSE_ENGINE_REGEX_H_INCLUDED

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdbool.h>
#include <stddef.h>

/* Whether pattern needs UTF mode (non-ASCII bytes, \x{...}, \p, \X, \C). */
bool engine_regex_is_utf(const char *pattern);

/*
 * Compile pattern (NUL-terminated) for matching, JIT where possible.
 * Returns NULL with err filled: "invalid regex at offset N: ..." or
 * "lookaround is not supported (offset N)" / "backreferences are not
 * supported".
 */
pcre2_code *engine_regex_compile(const char *pattern, char *err, size_t errlen);

#endif /* PGSENSE_ENGINE_REGEX_H_INCLUDED */
