/*
 * detect: names, dispatch and the byte-class table shared by the builtin
 * detectors (detect_card.c, detect_ssn.c, detect_phone.c, detect_email.c,
 * detect_iban.c). Knows nothing of rules or masking.
 */
#include "detect.h"

#include <stdlib.h>

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

int detect_value_prepare(detect_value *v, const char *s, size_t len)
{
    v->s = s;
    v->len = len;
    v->n = 0;
    v->runs = v->buf;
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    for (;;) {
        /* one subtraction and compare per byte: (c - '0') > 9 unless a digit */
        while (i < len && (unsigned)(p[i] - '0') > 9u)
            i++;
        if (i >= len)
            break;
        size_t start = i;
        while (i < len && (unsigned)(p[i] - '0') <= 9u)
            i++;
        if (v->n == v->cap) {
            size_t cap = v->cap ? v->cap * 2 : 64;
            detect_run *b = realloc(v->buf, cap * sizeof(*b));
            if (!b) {
                v->n = 0;
                return -1;
            }
            v->buf = b;
            v->cap = cap;
            v->runs = b;
        }
        v->buf[v->n].start = (uint32_t)start;
        v->buf[v->n].end = (uint32_t)i;
        v->n++;
    }
    return 0;
}

void detect_value_free(detect_value *v)
{
    free(v->buf);
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
