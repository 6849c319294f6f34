/*
 * detect_iban: IBANs in free text (country code + check digits, length per
 * country, mod-97-10; compact or grouped in fours) and the iban validator.
 */
#include <stdbool.h>
#include <stddef.h>

#include "detect_int.h"

#define IBAN_MAX 34

/* IBAN length per country (SWIFT IBAN registry), sorted by code. */
static const struct {
    char cc[3];
    unsigned char len;
} iban_countries[] = {
    {"AD", 24}, {"AE", 23}, {"AL", 28}, {"AT", 20}, {"AZ", 28}, {"BA", 20}, {"BE", 16}, {"BG", 22},
    {"BH", 22}, {"BI", 27}, {"BR", 29}, {"BY", 28}, {"CH", 21}, {"CR", 22}, {"CY", 28}, {"CZ", 24},
    {"DE", 22}, {"DJ", 27}, {"DK", 18}, {"DO", 28}, {"EE", 20}, {"EG", 29}, {"ES", 24}, {"FI", 18},
    {"FK", 18}, {"FO", 18}, {"FR", 27}, {"GB", 22}, {"GE", 22}, {"GI", 23}, {"GL", 18}, {"GR", 27},
    {"GT", 28}, {"HR", 21}, {"HU", 28}, {"IE", 22}, {"IL", 23}, {"IQ", 23}, {"IS", 26}, {"IT", 27},
    {"JO", 30}, {"KW", 30}, {"KZ", 20}, {"LB", 28}, {"LC", 32}, {"LI", 21}, {"LT", 20}, {"LU", 20},
    {"LV", 21}, {"LY", 25}, {"MC", 27}, {"MD", 24}, {"ME", 22}, {"MK", 19}, {"MN", 20}, {"MR", 27},
    {"MT", 31}, {"MU", 30}, {"NI", 28}, {"NL", 18}, {"NO", 15}, {"OM", 23}, {"PK", 24}, {"PL", 28},
    {"PS", 29}, {"PT", 25}, {"QA", 29}, {"RO", 24}, {"RS", 22}, {"RU", 33}, {"SA", 24}, {"SC", 31},
    {"SD", 18}, {"SE", 24}, {"SI", 19}, {"SK", 24}, {"SM", 27}, {"SO", 23}, {"ST", 25}, {"SV", 28},
    {"TL", 23}, {"TN", 24}, {"TR", 26}, {"UA", 29}, {"VA", 22}, {"VG", 24}, {"XK", 20},
};

/* Length for the country code at s (two upper-case letters), 0 if unknown. */
static size_t iban_country_len(const char *s)
{
    size_t lo = 0, hi = sizeof(iban_countries) / sizeof(iban_countries[0]);
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int cmp = memcmp(s, iban_countries[mid].cc, 2);
        if (cmp == 0)
            return iban_countries[mid].len;
        if (cmp < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return 0;
}

/* mod-97-10 over the n compact chars in c (check digits 02..98). */
static bool iban_checksum_ok(const char *c, size_t n)
{
    unsigned check = (unsigned)(c[2] - '0') * 10 + (unsigned)(c[3] - '0');
    if (check < 2 || check > 98)
        return false;
    unsigned rem = 0;
    for (size_t k = 0; k < n; k++) {
        char ch = c[(k + 4) % n];
        if (DC(ch, DC_DIGIT))
            rem = (rem * 10 + (unsigned)(ch - '0')) % 97;
        else
            rem = (rem * 100 + (unsigned)(ch - 'A' + 10)) % 97;
    }
    return rem == 1;
}

/*
 * Read an IBAN starting at s[i] (country code checked by the caller),
 * compact or in groups of four with single spaces (last group 1-4). Copies
 * the compact form to c and returns the span end, or 0.
 */
static size_t iban_read(const char *s, size_t len, size_t i, size_t want, char *c)
{
    size_t n = 0, p = i, group = 0;
    bool grouped = i + 4 < len && s[i + 4] == ' ';
    while (n < want) {
        if (p >= len)
            return 0;
        char ch = s[p];
        if (grouped && group == 4) {
            if (ch != ' ')
                return 0;
            group = 0;
            p++;
            continue;
        }
        if (!DC(ch, DC_DIGIT | DC_UPPER))
            return 0;
        c[n++] = ch;
        group++;
        p++;
    }
    if (p < len && DC(s[p], DC_GLUE))
        return 0;
    return p;
}

static bool iban_shape_ok(const char *s, size_t len, size_t i)
{
    return i + 4 <= len && DC(s[i], DC_UPPER) && DC(s[i + 1], DC_UPPER) && DC(s[i + 2], DC_DIGIT) &&
           DC(s[i + 3], DC_DIGIT);
}

size_t detect_iban_scan(const detect_value *v, detect_match_cb cb, void *ctx)
{
    const char *s = v->s;
    size_t len = v->len, found = 0, skip_to = 0;
    char c[IBAN_MAX];
    /* A candidate is two capitals right before a digit run. */
    for (size_t x = 0; x < v->n_upper; x++) {
        size_t i = v->runs[v->upper[x]].start, want, end;
        if (i < skip_to || i < 2)
            continue;
        size_t st = i - 2;
        if (st < skip_to)
            continue;
        if (iban_shape_ok(s, len, st) && (st == 0 || !DC(s[st - 1], DC_GLUE)) &&
            (want = iban_country_len(s + st)) != 0 && (end = iban_read(s, len, st, want, c)) != 0 &&
            iban_checksum_ok(c, want)) {
            found++;
            if (cb(ctx, st, end) != 0)
                break;
            skip_to = end;
        }
    }
    return found;
}

/* iban validator: the whole span is one IBAN, compact or grouped, upper case. */
bool detect_iban_valid(const char *s, size_t len)
{
    char c[IBAN_MAX];
    size_t want;
    if (!iban_shape_ok(s, len, 0) || (want = iban_country_len(s)) == 0)
        return false;
    return iban_read(s, len, 0, want, c) == len && iban_checksum_ok(c, want);
}
