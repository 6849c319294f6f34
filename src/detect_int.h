/*
 * detect_int: what the detect_*.c files share (byte classes, the digit
 * first pass, number boundaries). Private to the detect module.
 */
#ifndef PGSENSE_DETECT_INT_H_INCLUDED
#define PGSENSE_DETECT_INT_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "detect.h"

/* Byte classes, one table lookup per byte (detect.c). */
#define DC_DIGIT 0x01 /* 0-9 */
#define DC_UPPER 0x02 /* A-Z */
#define DC_LOWER 0x04 /* a-z */
#define DC_GLUE  0x08 /* [A-Za-z0-9_]: a match may not touch one */
#define DC_LOCAL 0x10 /* email local part while scanning free text: [A-Za-z0-9_.%+-] */
#define DC_DOM   0x20 /* domain label: [A-Za-z0-9-] */
#define DC_ATEXT 0x40 /* RFC 5322 atext (validator) */
#define DC_NSEP  0x80 /* . , - / : joins digits into a longer number */

extern const unsigned char detect_cls[256];

#define DC(c, bit) ((detect_cls[(unsigned char)(c)] & (bit)) != 0)

/*
 * First position >= from holding an ASCII digit, or len. Eight bytes at a
 * time (exact per-byte range test), so letter-heavy text costs little.
 */
static inline size_t detect_next_digit(const char *s, size_t len, size_t from)
{
    size_t i = from;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    const uint64_t ones = UINT64_C(0x0101010101010101);
    const uint64_t low7 = ones * 127;
    while (i + 8 <= len) {
        uint64_t x;
        memcpy(&x, s + i, 8);
        uint64_t lo = x & low7;
        /* bytes with 0x2f < b < 0x3a get their high bit set */
        uint64_t m = ((ones * (127 + 0x3a)) - lo) & ~x & (lo + ones * (127 - 0x2f)) & (ones * 128);
        if (m != 0)
            return i + ((size_t)__builtin_ctzll(m) >> 3);
        i += 8;
    }
#endif
    while (i < len && !DC(s[i], DC_DIGIT))
        i++;
    return i;
}

/* End of the digit run starting at i. */
static inline size_t detect_digit_run(const char *s, size_t len, size_t i)
{
    while (i < len && DC(s[i], DC_DIGIT))
        i++;
    return i;
}

/*
 * A number may start at `start` when the byte before is no letter/digit/_
 * and is not a joiner (. , - / :) that follows a digit (no "1.4111...",
 * "2024-123-45-6789", "10:00:00").
 */
static inline bool detect_num_left_ok(const char *s, size_t start)
{
    if (start == 0)
        return true;
    unsigned char c = (unsigned char)s[start - 1];
    if (DC(c, DC_GLUE))
        return false;
    if (DC(c, DC_NSEP) && start >= 2 && DC(s[start - 2], DC_DIGIT))
        return false;
    return true;
}

/* The mirror of detect_num_left_ok for the byte at end. */
static inline bool detect_num_right_ok(const char *s, size_t len, size_t end)
{
    if (end >= len)
        return true;
    unsigned char c = (unsigned char)s[end];
    if (DC(c, DC_GLUE))
        return false;
    if (DC(c, DC_NSEP) && end + 1 < len && DC(s[end + 1], DC_DIGIT))
        return false;
    return true;
}

/* Per-detector entry points (detect_<kind>.c). */
size_t detect_card_scan(const detect_value *v, detect_match_cb cb, void *ctx);
size_t detect_ssn_scan(const detect_value *v, detect_match_cb cb, void *ctx);
size_t detect_phone_scan(const detect_value *v, detect_match_cb cb, void *ctx);
size_t detect_email_scan(const char *s, size_t len, detect_match_cb cb, void *ctx);
size_t detect_iban_scan(const detect_value *v, detect_match_cb cb, void *ctx);

bool detect_luhn_valid(const char *s, size_t len);
bool detect_ssn_valid(const char *s, size_t len);
bool detect_phone_valid(const char *s, size_t len);
bool detect_email_valid(const char *s, size_t len);
bool detect_iban_valid(const char *s, size_t len);

/* Luhn over n ASCII digits. */
bool detect_luhn_digits(const char *d, size_t n);

#endif /* PGSENSE_DETECT_INT_H_INCLUDED */
