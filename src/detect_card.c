/*
 * detect_card: payment card numbers in free text (Visa, Mastercard, Amex,
 * Discover; brand length, Luhn) and the luhn validator.
 */
#include <stdbool.h>
#include <stddef.h>

#include "detect_int.h"

#define CARD_MAX_DIGITS 19
#define CARD_MAX_GROUPS 6

bool detect_luhn_digits(const char *d, size_t n)
{
    unsigned sum = 0;
    bool dbl = false;
    for (size_t i = n; i-- > 0;) {
        unsigned v = (unsigned)(d[i] - '0');
        if (dbl) {
            v *= 2;
            if (v > 9)
                v -= 9;
        }
        sum += v;
        dbl = !dbl;
    }
    return n > 0 && sum % 10 == 0;
}

/* Brand by prefix and length (IIN ranges as of 2024). */
static bool card_brand_ok(const char *d, size_t n)
{
    unsigned p2 = (unsigned)(d[0] - '0') * 10 + (unsigned)(d[1] - '0');
    unsigned p3 = p2 * 10 + (unsigned)(d[2] - '0');
    unsigned p4 = p3 * 10 + (unsigned)(d[3] - '0');

    if (d[0] == '4')
        return n == 13 || n == 16 || n == 19;
    if ((p2 >= 51 && p2 <= 55) || (p4 >= 2221 && p4 <= 2720))
        return n == 16;
    if (p2 == 34 || p2 == 37)
        return n == 15;
    if (p4 == 6011 || (p3 >= 644 && p3 <= 649) || p2 == 65)
        return n >= 16 && n <= 19;
    return false;
}

static bool card_digits_ok(const char *d, size_t n)
{
    return n >= 13 && n <= CARD_MAX_DIGITS && card_brand_ok(d, n) && detect_luhn_digits(d, n);
}

/* Groupings accepted when separated: 4-4-4-4-3, 4-4-4-4, 4-6-5 (longest first). */
static const unsigned char card_patterns[][6] = {
    {5, 4, 4, 4, 4, 3},
    {4, 4, 4, 4, 4, 0},
    {3, 4, 6, 5, 0, 0},
};

/*
 * Try a card starting at digit i (left boundary already checked). On a
 * match sets *end and returns true.
 */
static bool card_at(const char *s, size_t len, size_t i, size_t *end)
{
    char d[CARD_MAX_DIGITS];
    size_t r = detect_digit_run(s, len, i);
    size_t n = r - i;

    if (n > CARD_MAX_DIGITS)
        return false;
    if (n != 4 || r + 1 >= len || (s[r] != ' ' && s[r] != '-') || !DC(s[r + 1], DC_DIGIT)) {
        /* plain run */
        if (n < 13 || !detect_num_right_ok(s, len, r))
            return false;
        memcpy(d, s + i, n);
        if (!card_digits_ok(d, n))
            return false;
        *end = r;
        return true;
    }

    /* grouped: same separator throughout */
    char sep = s[r];
    size_t glen[CARD_MAX_GROUPS], gend[CARD_MAX_GROUPS];
    size_t ng = 0, p = i;
    for (;;) {
        size_t q = detect_digit_run(s, len, p);
        glen[ng] = q - p;
        gend[ng] = q;
        ng++;
        if (ng == CARD_MAX_GROUPS || q + 1 >= len || s[q] != sep || !DC(s[q + 1], DC_DIGIT))
            break;
        p = q + 1;
    }

    for (size_t k = 0; k < sizeof(card_patterns) / sizeof(card_patterns[0]); k++) {
        const unsigned char *pat = card_patterns[k];
        size_t np = pat[0], total = 0;
        if (ng < np)
            continue;
        bool same = true;
        for (size_t g = 0; g < np; g++) {
            if (glen[g] != pat[g + 1])
                same = false;
            total += glen[g];
        }
        if (!same)
            continue;
        if (ng > np) {
            /* More groups follow: with dashes it is one longer number; with
             * spaces a following full group of four reads as one too. */
            if (sep != ' ' || glen[np] == 4)
                continue;
        }
        size_t e = gend[np - 1];
        if (!detect_num_right_ok(s, len, e))
            continue;
        size_t nd = 0;
        for (size_t q = i; q < e; q++)
            if (DC(s[q], DC_DIGIT))
                d[nd++] = s[q];
        if (nd != total || !card_digits_ok(d, nd))
            continue;
        *end = e;
        return true;
    }
    return false;
}

size_t detect_card_scan(const detect_value *v, detect_match_cb cb, void *ctx)
{
    const char *s = v->s;
    size_t len = v->len, found = 0, skip_to = 0;
    for (size_t x = 0; x < v->n_bound; x++) {
        size_t k = v->bound[x];
        size_t i = v->runs[k].start, end;
        if (i < skip_to)
            continue;
        if (detect_num_left_ok(s, i) && card_at(s, len, i, &end)) {
            found++;
            if (cb(ctx, i, end) != 0)
                break;
            skip_to = end;
        }
    }
    return found;
}

/*
 * luhn validator: digits with single spaces or dashes between them, at
 * least two digits, no brand check (IMEIs and the like use it too).
 */
bool detect_luhn_valid(const char *s, size_t len)
{
    char d[64];
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (DC(c, DC_DIGIT)) {
            if (n == sizeof(d))
                return false;
            d[n++] = c;
        } else if ((c == ' ' || c == '-') && i > 0 && i + 1 < len && DC(s[i - 1], DC_DIGIT) &&
                   DC(s[i + 1], DC_DIGIT)) {
            continue;
        } else {
            return false;
        }
    }
    return n >= 2 && detect_luhn_digits(d, n);
}
