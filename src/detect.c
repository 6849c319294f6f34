/*
 * detect: names, dispatch and the byte-class table shared by the builtin
 * detectors (detect_card.c, detect_ssn.c, detect_phone.c, detect_email.c,
 * detect_iban.c). Knows nothing of rules or masking.
 */
#include "detect.h"

#include <stdlib.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include <string.h>

#include "detect_int.h"
#include "phone_shim.h"

/* DC_* bits per byte; bytes >= 0x80 belong to no class. Generated, see detect_int.h. */
const unsigned char detect_cls[256] = {
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* 0x00 */
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* 0x10 */
    0x00, 0x40, 0x00, 0x40, 0x40, 0x50, 0x40, 0x40, 0x00, 0x00, 0x40, 0x50, 0x80, 0xf0, 0x90, 0xc0, /* 0x20 */
    0x79, 0x79, 0x79, 0x79, 0x79, 0x79, 0x79, 0x79, 0x79, 0x79, 0x80, 0x00, 0x00, 0x40, 0x00, 0x40, /* 0x30 */
    0x00, 0x7a, 0x7a, 0x7a, 0x7a, 0x7a, 0x7a, 0x7a, 0x7a, 0x7a, 0x7a, 0x7a, 0x7a, 0x7a, 0x7a, 0x7a, /* 0x40 */
    0x7a, 0x7a, 0x7a, 0x7a, 0x7a, 0x7a, 0x7a, 0x7a, 0x7a, 0x7a, 0x7a, 0x00, 0x00, 0x00, 0x40, 0x58, /* 0x50 */
    0x40, 0x7c, 0x7c, 0x7c, 0x7c, 0x7c, 0x7c, 0x7c, 0x7c, 0x7c, 0x7c, 0x7c, 0x7c, 0x7c, 0x7c, 0x7c, /* 0x60 */
    0x7c, 0x7c, 0x7c, 0x7c, 0x7c, 0x7c, 0x7c, 0x7c, 0x7c, 0x7c, 0x7c, 0x40, 0x40, 0x40, 0x40, 0x00, /* 0x70 */
};

static const char *const builtin_names[DETECT__COUNT] = {"credit_card", "ssn", "phone", "email", "iban"};
static const char *const validator_names[VALIDATE__COUNT] = {"luhn", "ssn", "phone", "email", "iban"};

bool detect_builtin_parse(const char *name, detect_builtin *out)
{
    if (name == NULL)
        return false;
    for (int i = 0; i < DETECT__COUNT; i++) {
        if (strcmp(name, builtin_names[i]) == 0) {
            *out = (detect_builtin)i;
            return true;
        }
    }
    return false;
}

const char *detect_builtin_name(detect_builtin b)
{
    if ((unsigned)b >= DETECT__COUNT)
        return "?";
    return builtin_names[b];
}

bool detect_validator_parse(const char *name, detect_validator *out)
{
    if (name == NULL)
        return false;
    for (int i = 0; i < VALIDATE__COUNT; i++) {
        if (strcmp(name, validator_names[i]) == 0) {
            *out = (detect_validator)i;
            return true;
        }
    }
    return false;
}

const char *detect_validator_name(detect_validator v)
{
    if ((unsigned)v >= VALIDATE__COUNT)
        return "?";
    return validator_names[v];
}

static int run_push(detect_value *v, size_t start, size_t end)
{
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 64;
        detect_run *b = realloc(v->buf, cap * sizeof(*b));
        if (!b)
            return -1;
        v->buf = b;
        v->runs = b;
        uint32_t *ib = realloc(v->ibuf, 2 * cap * sizeof(*ib));
        if (!ib)
            return -1;
        v->ibuf = ib;
        v->cap = cap;
    }
    v->buf[v->n].start = (uint32_t)start;
    v->buf[v->n].end = (uint32_t)end;
    v->n++;
    return 0;
}

/* Bit i set when byte i of the 64 at p is an ASCII digit (fewer than 64 left: the rest read as not). */
static uint64_t digit_mask64(const unsigned char *p, size_t avail)
{
    uint64_t m = 0;
#if defined(__SSE2__)
    if (avail >= 64) {
        const __m128i lo = _mm_set1_epi8('0' - 1), hi = _mm_set1_epi8('9' + 1);
        for (int k = 0; k < 4; k++) {
            __m128i x = _mm_loadu_si128((const __m128i *)(const void *)(p + 16 * k));
            __m128i d = _mm_and_si128(_mm_cmpgt_epi8(x, lo), _mm_cmplt_epi8(x, hi));
            m |= (uint64_t)(uint32_t)_mm_movemask_epi8(d) << (16 * k);
        }
        return m;
    }
#endif
    size_t n = avail < 64 ? avail : 64;
    for (size_t i = 0; i < n; i++)
        m |= (uint64_t)((unsigned)(p[i] - '0') <= 9u) << i;
    return m;
}

/*
 * Digit runs from 64-byte masks: run starts and ends are the bit edges of
 * the mask, so the work is per run, not per byte, and free of the branch
 * mispredictions a byte loop suffers on hex-heavy text.
 */
int detect_value_prepare(detect_value *v, const char *s, size_t len)
{
    v->s = s;
    v->len = len;
    v->n = 0;
    v->runs = v->buf;
    v->n_bound = v->n_upper = 0;
    const unsigned char *p = (const unsigned char *)s;
    uint64_t carry = 0; /* the byte before this block was a digit */
    size_t open = 0;
    for (size_t base = 0; base < len; base += 64) {
        uint64_t m = digit_mask64(p + base, len - base);
        uint64_t prev = (m << 1) | carry;
        uint64_t starts = m & ~prev;
        uint64_t ends = ~m & prev;
        if (len - base < 64) {
            ends &= (UINT64_C(1) << (len - base)) - 1; /* ends past the value: closed below */
        }
        uint64_t ev = starts | ends;
        while (ev) {
            unsigned b = (unsigned)__builtin_ctzll(ev);
            ev &= ev - 1;
            if ((starts >> b) & 1) {
                open = base + b;
            } else if (run_push(v, open, base + b) < 0) {
                v->n = 0;
                return -1;
            }
        }
        carry = m >> 63;
        if (len - base < 64)
            carry = (m >> (len - base - 1)) & 1;
    }
    if (carry && run_push(v, open, len) < 0) {
        v->n = 0;
        return -1;
    }
    /* Which runs can start a number (card, SSN, phone) and which an IBAN: decided once, not per detector. */
    uint32_t *bound = v->ibuf, *upper = v->ibuf ? v->ibuf + v->cap : NULL; /* no run yet: no buffer */
    size_t nb = 0, nu = 0;
    for (size_t k = 0; k < v->n; k++) {
        size_t st = v->buf[k].start;
        if (st == 0 || !DC(s[st - 1], DC_GLUE))
            bound[nb++] = (uint32_t)k;
        else if (DC(s[st - 1], DC_UPPER))
            upper[nu++] = (uint32_t)k;
    }
    v->bound = bound;
    v->n_bound = nb;
    v->upper = upper;
    v->n_upper = nu;
    return 0;
}

void detect_value_free(detect_value *v)
{
    free(v->buf);
    free(v->ibuf);
    v->ibuf = NULL;
    v->buf = NULL;
    v->runs = NULL;
    v->cap = v->n = 0;
}

size_t detect_scan_value(detect_builtin kind, const detect_value *v, detect_match_cb cb, void *ctx)
{
    if (v->s == NULL || v->len == 0 || cb == NULL)
        return 0;
    switch (kind) {
    case DETECT_CREDIT_CARD:
        return detect_card_scan(v, cb, ctx);
    case DETECT_SSN:
        return detect_ssn_scan(v, cb, ctx);
    case DETECT_PHONE:
        return detect_phone_scan(v, cb, ctx);
    case DETECT_EMAIL:
        return detect_email_scan(v->s, v->len, cb, ctx);
    case DETECT_IBAN:
        return detect_iban_scan(v, cb, ctx);
    case DETECT__COUNT:
        break;
    }
    return 0;
}

size_t detect_scan(detect_builtin kind, const char *s, size_t len, detect_match_cb cb, void *ctx)
{
    if (s == NULL || len == 0 || cb == NULL)
        return 0;
    if (kind == DETECT_EMAIL)
        return detect_email_scan(s, len, cb, ctx);
    /* Values are far below 4 GiB here; runs are 32-bit offsets. */
    if (len > UINT32_MAX)
        return 0;
    detect_value v = {0};
    if (detect_value_prepare(&v, s, len) < 0)
        return 0;
    size_t n = detect_scan_value(kind, &v, cb, ctx);
    detect_value_free(&v);
    return n;
}

bool detect_validate(detect_validator v, const char *s, size_t len)
{
    if (s == NULL || len == 0)
        return false;
    switch (v) {
    case VALIDATE_LUHN:
        return detect_luhn_valid(s, len);
    case VALIDATE_SSN:
        return detect_ssn_valid(s, len);
    case VALIDATE_PHONE:
        return detect_phone_valid(s, len);
    case VALIDATE_EMAIL:
        return detect_email_valid(s, len);
    case VALIDATE_IBAN:
        return detect_iban_valid(s, len);
    case VALIDATE__COUNT:
        break;
    }
    return false;
}

void detect_init(void)
{
    /* Loads libphonenumber's metadata once; later calls are no-ops. */
    (void)phone_shim_init();
}
