/*
 * detect: the algorithmic builtin detectors (credit_card, ssn, phone, email,
 * iban) and the validators regex rules may name (luhn, ssn, phone, email,
 * iban). Pure functions over one value's bytes; knows nothing of rules.
 */
#ifndef PGSENSE_DETECT_H_INCLUDED
#define PGSENSE_DETECT_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    DETECT_CREDIT_CARD, /* Visa, Mastercard, Amex, Discover; Luhn */
    DETECT_SSN,         /* US social security numbers */
    DETECT_PHONE,       /* E.164, 00-international, NANP; libphonenumber */
    DETECT_EMAIL,       /* dot-atom local part, real-looking domain */
    DETECT_IBAN,        /* per-country length, mod-97-10 */
    DETECT__COUNT
} detect_builtin;

typedef enum {
    VALIDATE_LUHN,
    VALIDATE_SSN,
    VALIDATE_PHONE,
    VALIDATE_EMAIL,
    VALIDATE_IBAN,
    VALIDATE__COUNT
} detect_validator;

/* Names as written in rules.yaml ("credit_card", "luhn", ...). */
bool detect_builtin_parse(const char *name, detect_builtin *out);
const char *detect_builtin_name(detect_builtin b);
bool detect_validator_parse(const char *name, detect_validator *out);
const char *detect_validator_name(detect_validator v);

/*
 * Called once per match, in increasing start order; start/end are byte
 * offsets into the value, end exclusive. Return non-zero to stop the scan.
 */
typedef int (*detect_match_cb)(void *ctx, size_t start, size_t end);

/*
 * Find every occurrence of kind inside free text s[0..len) (not NUL
 * terminated, may hold invalid UTF-8). Returns the number of matches
 * reported.
 *
 * A match covers the value as written, separators included, and is never
 * glued to [A-Za-z0-9_] on either side, nor to a digit through one of
 * ". , - / :" (no card inside "1.4111...", no SSN inside "2024-123-45-6789").
 *  - credit_card: 13-19 digits plain, or 4-4-4-4, 4-6-5, 4-4-4-4-3 with one
 *    separator (all spaces or all dashes); brand prefix and length, Luhn.
 *  - ssn: ddd-dd-dddd, ddd dd dddd, ddd.dd.dddd only. Nine plain digits are
 *    NOT reported (order numbers, ids); the ssn validator accepts them.
 *  - phone: "+" or "00" international (digits grouped by space, '-', '.',
 *    one "(...)"; 7-15 digits), NANP "(415) 555-2671", "415-555-2671",
 *    "415.555.2671", "415 555 2671", with optional leading "1-". Bare
 *    10-digit runs are NOT reported (order numbers); the phone validator
 *    accepts them. Candidates are confirmed by libphonenumber
 *    (IsValidNumber); a few trailing space-joined groups may be left out
 *    ("+1 415 555 2671 2 items" reports "+1 415 555 2671").
 *  - email: local part over [A-Za-z0-9_.%+-] (the email validator takes all
 *    of RFC 5322 atext), 1-64, dot-atom; domain of 2+ labels, 1-63 chars,
 *    no punycode "xn--" label, TLD of 2+ letters; a sentence's final '.'
 *    is not part of it; non-ASCII next to it rejects it.
 *  - iban: upper-case country code with its registry length, compact or
 *    in groups of four with single spaces; check digits by mod-97-10.
 */
size_t detect_scan(detect_builtin kind, const char *s, size_t len, detect_match_cb cb, void *ctx);

/*
 * A value prepared once for several detectors: the card, SSN, phone and
 * IBAN scanners all start from digit runs, so the runs are found once.
 * Reuse one detect_value across values (it keeps its buffer); free it at
 * the end. The value's bytes must outlive the scans.
 */
typedef struct {
    uint32_t start, end; /* a maximal run of ASCII digits, end exclusive */
} detect_run;

typedef struct {
    const char *s;
    size_t len;
    const detect_run *runs; /* in increasing order */
    size_t n;
    const uint32_t *bound; /* indices of runs at a word boundary (start, or after a byte not in [A-Za-z0-9_]) */
    size_t n_bound;
    const uint32_t *upper; /* indices of runs right after an upper-case letter (IBAN candidates) */
    size_t n_upper;
    /* private */
    detect_run *buf;
    uint32_t *ibuf; /* bound and upper indices: 2 * cap */
    size_t cap;
} detect_value;

/* Find the digit runs of s[0..len); -1 when out of memory (v is then empty). */
__attribute__((warn_unused_result)) int detect_value_prepare(detect_value *v, const char *s, size_t len);
void detect_value_free(detect_value *v);

/* detect_scan over a prepared value: the same matches, in the same order. */
size_t detect_scan_value(detect_builtin kind, const detect_value *v, detect_match_cb cb, void *ctx);

/*
 * Whether the whole of s[0..len) (a regex match) passes validator v: luhn
 * (digits, single ' '/'-' between them), ssn (the three shapes or nine
 * digits), phone (any detector shape or bare NANP digits), email, iban
 * (compact or grouped, upper case). No surrounding text allowed.
 */
bool detect_validate(detect_validator v, const char *s, size_t len);

/* Process-wide set-up (phone metadata); safe to call more than once. */
void detect_init(void);

#endif /* PGSENSE_DETECT_H_INCLUDED */
