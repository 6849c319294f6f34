/*
 * detect: the algorithmic builtin detectors (credit_card, ssn, phone, email,
 * iban) and the validators regex rules may name (luhn, ssn, phone, email,
 * iban). Pure functions over one value's bytes; knows nothing of rules.
 */
#ifndef PGSENSE_DETECT_H_INCLUDED
#define PGSENSE_DETECT_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>

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
 */
size_t detect_scan(detect_builtin kind, const char *s, size_t len, detect_match_cb cb, void *ctx);

/* Whether the whole of s[0..len) (a regex match) passes validator v. */
bool detect_validate(detect_validator v, const char *s, size_t len);

/* Process-wide set-up (phone metadata); safe to call more than once. */
void detect_init(void);

#endif /* PGSENSE_DETECT_H_INCLUDED */
