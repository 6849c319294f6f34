/*
 * rules: loads and checks rules.yaml (SPEC section 4) into an immutable
 * rules_set; every error carries file:line. Owns parsing and validation only:
 * compiling and scanning belong to engine.
 */
#ifndef PGSENSE_RULES_H_INCLUDED
#define PGSENSE_RULES_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "detect.h"

typedef enum {
    RULES_TYPE_REGEX,   /* pattern (+ optional validator) */
    RULES_TYPE_BUILTIN, /* one of detect.h's detectors */
    RULES_TYPE_SCRIPT,  /* Lua 5.4 detect(value) */
} rules_type;

typedef enum {
    RULES_SEV_CRITICAL,
    RULES_SEV_HIGH,
    RULES_SEV_MEDIUM, /* the default when a rule names none */
    RULES_SEV_LOW,
    RULES_SEV_INFO,
} rules_severity;

typedef enum {
    RULES_SCOPE_SCHEMAS,
    RULES_SCOPE_TABLES, /* a glob containing '.' matches "schema.table" */
    RULES_SCOPE_COLUMNS,
    RULES_SCOPE__COUNT,
} rules_scope_kind;

/* Limits; a file beyond them is rejected with a message. */
#define RULES_MAX_FILE_BYTES   (16u * 1024 * 1024)
#define RULES_MAX_SCRIPT_BYTES (1024u * 1024)
#define RULES_MAX_RULES        10000
#define RULES_DIAG_MAX         32 /* errors kept; more are counted in total */

/* The errors of one load: "file:line: message" each. */
typedef struct {
    char file[1024];
    size_t count; /* entries in items[] */
    size_t total; /* errors found, may exceed RULES_DIAG_MAX */
    struct {
        unsigned line; /* 1-based; 0 when no line applies (unreadable file) */
        char msg[400];
    } items[RULES_DIAG_MAX];
} rules_diag;

/* Print every kept error as "FILE:LINE: message\n" (prefix may be NULL). */
void rules_diag_print(const rules_diag *diag, FILE *out, const char *prefix);

typedef struct rules_set rules_set;

/*
 * Gives the contents of a script named in rules.yaml (path exactly as
 * written there). Sets *data (owned by the callee, valid until the load
 * returns) and *len; returns 0, or -1 when it does not exist (errbuf may say
 * why).
 */
typedef int (*rules_file_lookup)(void *ctx, const char *path, const char **data, size_t *len, char *errbuf,
                                 size_t errlen);

/*
 * Load path: on success *out is a new set and 0 is returned; on any error
 * the whole file is rejected, *out is NULL, diag says why and -1 is
 * returned. Script paths are relative to the rules file's directory.
 */
__attribute__((warn_unused_result)) int rules_load(const char *path, rules_set **out, rules_diag *diag);

/*
 * The same from memory (the worker receives the texts over its socket):
 * name is used in messages only; lookup supplies scripts.
 */
__attribute__((warn_unused_result)) int rules_load_mem(const char *name, const char *yaml, size_t len,
                                                       rules_file_lookup lookup, void *ctx, rules_set **out,
                                                       rules_diag *diag);

void rules_free(rules_set *rs);

/*
 * For `pgsense validate`: prints "[OK] rules FILE: N rules" or one
 * "[ERROR] FILE:LINE: message" per error; returns the number of errors.
 */
int rules_validate_report(const char *path, FILE *out);

const char *rules_type_name(rules_type t);                     /* "regex", "builtin", "script" */
const char *rules_severity_name(rules_severity s);             /* upper case: "CRITICAL" */
bool rules_severity_parse(const char *s, rules_severity *out); /* lower case */

/* Accessors; i < rules_count(rs). Strings are NUL-terminated and owned by rs. */
size_t rules_count(const rules_set *rs);
const char *rules_file(const rules_set *rs);
const char *rules_id(const rules_set *rs, size_t i);
unsigned rules_line(const rules_set *rs, size_t i); /* line of the rule in the file */
rules_type rules_type_of(const rules_set *rs, size_t i);
rules_severity rules_severity_of(const rules_set *rs, size_t i);
const char *rules_severity_str(const rules_set *rs, size_t i); /* upper case */
const char *rules_category(const rules_set *rs, size_t i);
const char *rules_description(const rules_set *rs, size_t i); /* "" when none */
size_t rules_channel_count(const rules_set *rs, size_t i);
const char *rules_channel(const rules_set *rs, size_t i, size_t k);
/* Index of the rule with this id, or (size_t)-1. */
size_t rules_find(const rules_set *rs, const char *id);

/* Regex rules: the pattern; validator when has_validator. */
const char *rules_pattern(const rules_set *rs, size_t i);
bool rules_validator(const rules_set *rs, size_t i, detect_validator *out);
/* Builtin rules. */
detect_builtin rules_builtin(const rules_set *rs, size_t i);
/* Script rules: path as written, and the script text (not NUL-terminated). */
const char *rules_script_path(const rules_set *rs, size_t i);
const char *rules_script_source(const rules_set *rs, size_t i, size_t *len);

/* Allowlist: exact values (may hold NUL bytes) and PCRE2 patterns. */
size_t rules_allow_value_count(const rules_set *rs, size_t i);
const char *rules_allow_value(const rules_set *rs, size_t i, size_t k, size_t *len);
size_t rules_allow_pattern_count(const rules_set *rs, size_t i);
const char *rules_allow_pattern(const rules_set *rs, size_t i, size_t k);

/* Scope globs (fnmatch, case-sensitive). */
size_t rules_scope_count(const rules_set *rs, size_t i, rules_scope_kind kind, bool include);
const char *rules_scope_glob(const rules_set *rs, size_t i, rules_scope_kind kind, bool include, size_t k);
bool rules_has_scope(const rules_set *rs, size_t i);

#endif /* PGSENSE_RULES_H_INCLUDED */
