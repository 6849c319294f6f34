/*
 * mask: masked samples per SPEC section 4. Counts UTF-8 characters strictly
 * (overlong, surrogate, out-of-range and truncated sequences are invalid,
 * one character per invalid byte, written as U+FFFD when kept).
 */
#include "mask.h"

#include <stdbool.h>
#include <string.h>

#define MASK_KEEP     2 /* characters kept at each end */
#define MASK_MIN_KEEP 8 /* spans this long or longer keep their ends */

/*
 * Length of the valid UTF-8 character at s[0..len) (RFC 3629 table), or 0
 * if the byte at s[0] does not start one.
 */
static size_t utf8_char_len(const unsigned char *s, size_t len)
{
    unsigned char c = s[0];
    if (c < 0x80)
        return 1;
    size_t n;
    unsigned char lo = 0x80, hi = 0xBF; /* range of the second byte */
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        if (c == 0xE0)
            lo = 0xA0; /* overlong */
        else if (c == 0xED)
            hi = 0x9F; /* surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        if (c == 0xF0)
            lo = 0x90; /* overlong */
        else if (c == 0xF4)
            hi = 0x8F; /* above U+10FFFF */
    } else {
        return 0;
    }
    if (len < n || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t k = 2; k < n; k++)
        if (s[k] < 0x80 || s[k] > 0xBF)
            return 0;
    return n;
}

/* Count characters: a valid sequence or a single invalid byte each. */
static size_t utf8_count(const unsigned char *s, size_t len)
{
    size_t chars = 0;
    for (size_t i = 0; i < len; chars++) {
        size_t n = utf8_char_len(s + i, len - i);
        i += n ? n : 1;
    }
    return chars;
}

/*
 * Append piece[0..n) to out if it fits whole in cap-1 bytes (room for the
 * NUL); once one piece does not fit, nothing more is written so the output
 * ends on a character boundary. need always grows.
 */
static void put(char *out, size_t cap, size_t *need, size_t *used, bool *full, const char *piece, size_t n)
{
    if (!*full && *used + n < cap) {
        memcpy(out + *used, piece, n);
        *used += n;
    } else {
        *full = true;
    }
    *need += n;
}

size_t mask_span(const char *s, size_t len, char *out, size_t cap)
{
    static const char replacement[] = "\xEF\xBF\xBD";
    const unsigned char *u = (const unsigned char *)s;
    size_t need = 0, used = 0;
    bool full = (out == NULL || cap == 0);

    if (s == NULL)
        len = 0;
    size_t chars = utf8_count(u, len);
    bool keep_ends = chars >= MASK_MIN_KEEP;

    size_t idx = 0;
    for (size_t i = 0; i < len; idx++) {
        size_t n = utf8_char_len(u + i, len - i);
        bool keep = keep_ends && (idx < MASK_KEEP || idx >= chars - MASK_KEEP);
        if (!keep)
            put(out, cap, &need, &used, &full, "*", 1);
        else if (n == 0)
            put(out, cap, &need, &used, &full, replacement, 3);
        else
            put(out, cap, &need, &used, &full, s + i, n);
        i += n ? n : 1;
    }
    if (out != NULL && cap > 0)
        out[used] = '\0';
    return need;
}
