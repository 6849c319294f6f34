/*
 * detect_phone: phone numbers in free text. Hand-written shape scanners
 * find candidates (+E.164, 00-international, NANP); libphonenumber, through
 * phone_shim, judges only those. Also the phone validator.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "detect_int.h"
#include "phone_shim.h"

#define PHONE_MIN_DIGITS 7  /* shortest E.164 numbers (e.g. +683 4002) */
#define PHONE_MAX_DIGITS 15 /* E.164 maximum, country code included */
#define PHONE_MAX_GROUPS 8
#define PHONE_CACHE_SIZE 1024 /* power of two */

/*
 * libphonenumber costs ~15-35 us per number (ICU regexes), so remember the
 * verdicts for recently seen numbers: rows repeat the same contacts.
 * Per thread, so no locking.
 */
static _Thread_local struct {
    uint64_t key; /* 0: empty */
    bool valid;
} phone_cache[PHONE_CACHE_SIZE];

/* d: nd (<= 15) international digits, country code first; nanp: d is 1 + NANP national digits. */
static bool phone_e164_valid(const char *d, size_t nd, bool nanp)
{
    uint64_t v = 0;
    for (size_t k = 0; k < nd; k++)
        v = v * 10 + (uint64_t)(d[k] - '0');
    uint64_t key = (v << 4 | nd) + 1;
    size_t slot = (size_t)((key * UINT64_C(0x9E3779B97F4A7C15)) >> 54) & (PHONE_CACHE_SIZE - 1);
    if (phone_cache[slot].key == key)
        return phone_cache[slot].valid;

    char buf[PHONE_MAX_DIGITS + 2];
    bool ok;
    if (nanp && d[0] == '1') {
        /* NANP national digits: no text to parse, country code 1 */
        ok = phone_shim_valid_split(1, d + 1, nd - 1);
    } else {
        buf[0] = '+';
        memcpy(buf + 1, d, nd);
        ok = phone_shim_valid(buf, nd + 1, "ZZ");
    }
    phone_cache[slot].key = key;
    phone_cache[slot].valid = ok;
    return ok;
}

/* An international number read as groups of digits. */
typedef struct {
    char d[PHONE_MAX_DIGITS];
    size_t nd;
    size_t ng;
    size_t end[PHONE_MAX_GROUPS];    /* span end after group g */
    size_t digits[PHONE_MAX_GROUPS]; /* digits up to and including group g */
    bool weak[PHONE_MAX_GROUPS];     /* group g followed group g-1 after a lone space */
    bool open[PHONE_MAX_GROUPS];     /* a '(' is still unclosed after group g */
} phone_intl;

/*
 * Read digit groups from p (first digit of the country code). Between
 * groups: an optional ')' closing the one allowed '(', one of space, '-' or
 * '.', an optional '('. Fails if the number runs past 15 digits through a
 * strong separator (it is then part of something longer).
 */
static bool phone_read_intl(const char *s, size_t len, size_t p, phone_intl *t)
{
    bool paren_used = false, paren_open = false, weak = false;
    t->nd = 0;
    t->ng = 0;
    for (;;) {
        size_t r = detect_digit_run(s, len, p);
        size_t glen = r - p;
        if (t->nd + glen > PHONE_MAX_DIGITS) {
            if (t->ng > 0 && weak)
                break;
            return false;
        }
        memcpy(t->d + t->nd, s + p, glen);
        t->nd += glen;
        t->end[t->ng] = r;
        t->digits[t->ng] = t->nd;
        t->weak[t->ng] = weak;
        t->open[t->ng] = paren_open;
        t->ng++;
        if (t->ng == PHONE_MAX_GROUPS)
            break;

        /* separator sequence */
        size_t q = r;
        bool closed = false, opened = false;
        if (q < len && s[q] == ')' && paren_open) {
            closed = true;
            q++;
        }
        bool sep = q < len && (s[q] == ' ' || s[q] == '-' || s[q] == '.');
        if (sep)
            q++;
        if (q < len && s[q] == '(' && !paren_used) {
            opened = true;
            q++;
        }
        if (q >= len || !DC(s[q], DC_DIGIT) || q == r)
            break;
        weak = sep && !closed && !opened && s[r] == ' ';
        if (closed)
            paren_open = false;
        if (opened)
            paren_used = paren_open = true;
        p = q;
    }
    return true;
}

/*
 * Longest acceptable reading of the international number: the whole token,
 * else drop trailing groups joined by a lone space ("+1 415 555 2671 12 x").
 * With exact set, only the whole token counts and it must end at exact.
 */
static bool phone_intl_at(const char *s, size_t len, size_t p, size_t exact, size_t *end)
{
    phone_intl t;
    if (!phone_read_intl(s, len, p, &t))
        return false;
    for (size_t g = t.ng; g-- > 0;) {
        size_t e = t.end[g];
        if (exact != 0 ? e == exact : detect_num_right_ok(s, len, e)) {
            if (!t.open[g] && t.digits[g] >= PHONE_MIN_DIGITS && t.d[0] != '0' &&
                phone_e164_valid(t.d, t.digits[g], false)) {
                *end = e;
                return true;
            }
        }
        if (exact != 0 || !t.weak[g] || g + 3 <= t.ng)
            break; /* at most two groups dropped */
    }
    return false;
}

static bool phone_is_sep(char c)
{
    return c == '-' || c == '.' || c == ' ';
}

/* ddd: three digits, the first 2-9 (NANP area codes and exchanges). */
static bool nanp_triple(const char *s, size_t len, size_t i)
{
    return i + 3 <= len && s[i] >= '2' && s[i] <= '9' && DC(s[i + 1], DC_DIGIT) && DC(s[i + 2], DC_DIGIT);
}

static bool digits_at(const char *s, size_t len, size_t i, size_t n)
{
    if (i + n > len)
        return false;
    for (size_t k = 0; k < n; k++)
        if (!DC(s[i + k], DC_DIGIT))
            return false;
    return true;
}

/*
 * NANP national formats at i: "(415) 555-2671", "(415)555-2671",
 * "415-555-2671", "415.555.2671", "415 555 2671", and the same with a
 * leading "1-" / "1." / "1 ". Bare ten digits are not read (see detect.h).
 */
static bool phone_nanp_at(const char *s, size_t len, size_t i, size_t *end)
{
    char d[11];
    size_t p = i, x;
    d[0] = '1';
    if (s[p] == '(') {
        if (!nanp_triple(s, len, p + 1) || p + 5 > len || s[p + 4] != ')')
            return false;
        memcpy(d + 1, s + p + 1, 3);
        x = p + 5;
        if (x < len && s[x] == ' ')
            x++;
        if (!nanp_triple(s, len, x) || x + 3 >= len || !phone_is_sep(s[x + 3]))
            return false;
        memcpy(d + 4, s + x, 3);
        x += 4;
    } else {
        if (s[p] == '1' && p + 1 < len && phone_is_sep(s[p + 1]) && nanp_triple(s, len, p + 2) &&
            p + 5 < len && s[p + 5] == s[p + 1])
            p += 2; /* trunk "1" with the same separator */
        if (!nanp_triple(s, len, p) || p + 3 >= len || !phone_is_sep(s[p + 3]))
            return false;
        char sep = s[p + 3];
        if (p > i && s[i + 1] != sep)
            return false;
        memcpy(d + 1, s + p, 3);
        x = p + 4;
        if (!nanp_triple(s, len, x) || x + 3 >= len || s[x + 3] != sep)
            return false;
        memcpy(d + 4, s + x, 3);
        x += 4;
    }
    if (!digits_at(s, len, x, 4))
        return false;
    memcpy(d + 7, s + x, 4);
    x += 4;
    if (!detect_num_right_ok(s, len, x) || !phone_e164_valid(d, 11, true))
        return false;
    *end = x;
    return true;
}

/* Try every form that can start at or just before digit i. */
static bool phone_at(const char *s, size_t len, size_t i, size_t *start, size_t *end)
{
    if (i > 0 && s[i - 1] == '+') {
        *start = i - 1;
        return detect_num_left_ok(s, i - 1) && phone_intl_at(s, len, i, 0, end);
    }
    if (i > 0 && s[i - 1] == '(') {
        *start = i - 1;
        return detect_num_left_ok(s, i - 1) && phone_nanp_at(s, len, i - 1, end);
    }
    if (!detect_num_left_ok(s, i))
        return false;
    *start = i;
    if (s[i] == '0') {
        if (i + 2 < len && s[i + 1] == '0' && s[i + 2] >= '1' && s[i + 2] <= '9')
            return phone_intl_at(s, len, i + 2, 0, end);
        return false;
    }
    return phone_nanp_at(s, len, i, end);
}

size_t detect_phone_scan(const detect_value *v, detect_match_cb cb, void *ctx)
{
    const char *s = v->s;
    size_t len = v->len, found = 0, skip_to = 0;
    for (size_t x = 0; x < v->n_bound; x++) {
        size_t k = v->bound[x];
        size_t i = v->runs[k].start, start, end;
        if (i < skip_to)
            continue;
        if (phone_at(s, len, i, &start, &end)) {
            found++;
            if (cb(ctx, start, end) != 0)
                break;
            skip_to = end;
        }
    }
    return found;
}

/*
 * phone validator: the whole span is "+..." or "00..." international, a
 * NANP national format, or bare NANP digits (ten, or eleven with a leading
 * 1): a regex rule has already decided the shape.
 */
bool detect_phone_valid(const char *s, size_t len)
{
    size_t end;
    if (s[0] == '+')
        return len > 1 && DC(s[1], DC_DIGIT) && phone_intl_at(s, len, 1, len, &end);
    if (len > 2 && s[0] == '0' && s[1] == '0' && s[2] >= '1' && s[2] <= '9')
        return phone_intl_at(s, len, 2, len, &end);
    if (digits_at(s, len, 0, len) && (len == 10 || (len == 11 && s[0] == '1'))) {
        char d[11];
        d[0] = '1';
        memcpy(d + 11 - len, s, len);
        return nanp_triple(d, 11, 1) && nanp_triple(d, 11, 4) && phone_e164_valid(d, 11, true);
    }
    return phone_nanp_at(s, len, 0, &end) && end == len;
}
