/* Unit tests for src/detect*.c: builtin detectors in free text, hard negatives, validators. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "detect.h"

#define MAX_HITS 16

typedef struct {
    size_t n;
    size_t start[MAX_HITS], end[MAX_HITS];
    size_t stop_after; /* 0: never stop */
} hits_t;

static int collect(void *ctx, size_t start, size_t end)
{
    hits_t *h = ctx;
    if (h->n < MAX_HITS) {
        h->start[h->n] = start;
        h->end[h->n] = end;
    }
    h->n++;
    return h->stop_after != 0 && h->n >= h->stop_after;
}

static hits_t scan(detect_builtin kind, const char *s)
{
    hits_t h;
    memset(&h, 0, sizeof(h));
    /* exact-size heap copy: values are not NUL-terminated, ASan sees any over-read */
    size_t len = strlen(s);
    char *copy = malloc(len ? len : 1);
    cr_assert_not_null(copy);
    memcpy(copy, s, len);
    size_t r = detect_scan(kind, copy, len, collect, &h);
    free(copy);
    cr_assert_eq(r, h.n, "return value %zu != callbacks %zu", r, h.n);
    return h;
}

/* Exactly one match, and it is `needle` (its first occurrence in s). */
static void one(detect_builtin kind, const char *s, const char *needle)
{
    hits_t h = scan(kind, s);
    const char *p = strstr(s, needle);
    cr_assert_not_null(p);
    size_t st = (size_t)(p - s);
    cr_assert_eq(h.n, 1, "%s: %zu matches in \"%s\"", detect_builtin_name(kind), h.n, s);
    cr_assert(h.start[0] == st && h.end[0] == st + strlen(needle),
              "%s: got [%zu,%zu) want [%zu,%zu) in \"%s\"", detect_builtin_name(kind), h.start[0], h.end[0],
              st, st + strlen(needle), s);
}

static void none(detect_builtin kind, const char *s)
{
    hits_t h = scan(kind, s);
    cr_assert_eq(h.n, 0, "%s: unexpected match [%zu,%zu) in \"%s\"", detect_builtin_name(kind), h.start[0],
                 h.end[0], s);
}

static void init(void)
{
    detect_init();
}

TestSuite(detect, .init = init);

/* ---- names ---- */

Test(detect, names_round_trip)
{
    for (int i = 0; i < DETECT__COUNT; i++) {
        detect_builtin b;
        cr_assert(detect_builtin_parse(detect_builtin_name((detect_builtin)i), &b));
        cr_assert_eq(b, (detect_builtin)i);
    }
    for (int i = 0; i < VALIDATE__COUNT; i++) {
        detect_validator v;
        cr_assert(detect_validator_parse(detect_validator_name((detect_validator)i), &v));
        cr_assert_eq(v, (detect_validator)i);
    }
    detect_builtin b;
    detect_validator v;
    cr_assert(detect_builtin_parse("credit_card", &b) && b == DETECT_CREDIT_CARD);
    cr_assert(detect_validator_parse("luhn", &v) && v == VALIDATE_LUHN);
    cr_assert_not(detect_builtin_parse("luhn", &b));
    cr_assert_not(detect_builtin_parse("Credit_Card", &b));
    cr_assert_not(detect_validator_parse("credit_card", &v));
    cr_assert_not(detect_builtin_parse(NULL, &b));
    cr_assert_str_eq(detect_builtin_name((detect_builtin)99), "?");
}

/* ---- credit cards ---- */

Test(detect, card_issue_sentence_one_clean_finding)
{
    const char *s = "Customer card on file: 4111-1111-1111-1111 (visa)";
    hits_t h = scan(DETECT_CREDIT_CARD, s);
    cr_assert_eq(h.n, 1);
    cr_assert_eq(h.start[0], 23);
    cr_assert_eq(h.end[0], 42);
    /* and nothing else fires on it */
    cr_assert_eq(scan(DETECT_SSN, s).n, 0);
    cr_assert_eq(scan(DETECT_PHONE, s).n, 0);
    cr_assert_eq(scan(DETECT_IBAN, s).n, 0);
    cr_assert_eq(scan(DETECT_EMAIL, s).n, 0);
}

Test(detect, card_brands_and_groupings)
{
    one(DETECT_CREDIT_CARD, "paid with 4111111111111111 today", "4111111111111111");
    one(DETECT_CREDIT_CARD, "visa13=4222222222222.", "4222222222222");
    one(DETECT_CREDIT_CARD, "mc 5555 5555 5555 4444 exp 12/26", "5555 5555 5555 4444");
    one(DETECT_CREDIT_CARD, "mc2 2223-0031-2200-3222", "2223-0031-2200-3222");
    one(DETECT_CREDIT_CARD, "amex 3782 822463 10005,", "3782 822463 10005");
    one(DETECT_CREDIT_CARD, "amex: 371449635398431", "371449635398431");
    one(DETECT_CREDIT_CARD, "disc (6011111111111117)", "6011111111111117");
    one(DETECT_CREDIT_CARD, "disc \"6011-0009-9013-9424\"", "6011-0009-9013-9424");
    one(DETECT_CREDIT_CARD, "visa19 4111-1111-1111-1111-003 ok", "4111-1111-1111-1111-003");
    one(DETECT_CREDIT_CARD, "4111111111111111", "4111111111111111");
    one(DETECT_CREDIT_CARD, "card 4111 1111 1111 1111 12/26", "4111 1111 1111 1111");
}

Test(detect, card_several_in_order)
{
    const char *s = "a 4111111111111111 b 5555555555554444 c";
    hits_t h = scan(DETECT_CREDIT_CARD, s);
    cr_assert_eq(h.n, 2);
    cr_assert(h.start[0] == 2 && h.end[0] == 18);
    cr_assert(h.start[1] == 21 && h.end[1] == 37);
}

Test(detect, card_callback_stops_scan)
{
    const char *s = "4111111111111111 5555555555554444 4012888888881881";
    hits_t h;
    memset(&h, 0, sizeof(h));
    h.stop_after = 1;
    cr_assert_eq(detect_scan(DETECT_CREDIT_CARD, s, strlen(s), collect, &h), 1);
    cr_assert_eq(h.n, 1);
}

Test(detect, card_negatives)
{
    none(DETECT_CREDIT_CARD, "luhn fails 4111111111111112 here");
    none(DETECT_CREDIT_CARD, "glued 41111111111111110 digits");
    none(DETECT_CREDIT_CARD, "glued 94111111111111111 digits");
    none(DETECT_CREDIT_CARD, "letters x4111111111111111 and 4111111111111111y");
    none(DETECT_CREDIT_CARD, "mixed 4111-1111 1111-1111 seps");
    none(DETECT_CREDIT_CARD, "longer 4111-1111-1111-1111-1111 dash run");
    none(DETECT_CREDIT_CARD, "amount 1.4111111111111111 decimal");
    none(DETECT_CREDIT_CARD, "unknown brand 1234567812345670 (luhn ok)");
    none(DETECT_CREDIT_CARD, "visa length 15 411111111111116");
    none(DETECT_CREDIT_CARD, "amex wrong grouping 3782-8224-6310-005");
    none(DETECT_CREDIT_CARD, "uuid 550e8400-e29b-41d4-a716-446655440000");
    none(DETECT_CREDIT_CARD, "ts 2026-11-26 10:00:00 ip 192.168.100.200");
    none(DETECT_CREDIT_CARD, "");
}

/* ---- SSN ---- */

Test(detect, ssn_positives)
{
    one(DETECT_SSN, "SSN: 123-45-6789.", "123-45-6789");
    one(DETECT_SSN, "ssn 123 45 6789 on file", "123 45 6789");
    one(DETECT_SSN, "ssn=(078.05.1120)", "078.05.1120");
    one(DETECT_SSN, "665-01-0001", "665-01-0001");
}

Test(detect, ssn_negatives)
{
    none(DETECT_SSN, "area 000-12-3456");
    none(DETECT_SSN, "area 666-12-3456");
    none(DETECT_SSN, "area 900-12-3456 and 999-12-3456");
    none(DETECT_SSN, "group 123-00-4567");
    none(DETECT_SSN, "serial 123-45-0000");
    none(DETECT_SSN, "mixed 123-45.6789 123 45-6789");
    none(DETECT_SSN, "plain 123456789 digits");
    none(DETECT_SSN, "glued 1123-45-6789 and 123-45-67890");
    none(DETECT_SSN, "inside 2024-123-45-6789 and 123-45-6789-01");
    none(DETECT_SSN, "in a 12-digit number 123456789012");
    none(DETECT_SSN, "letters a123-45-6789 123-45-6789b");
    none(DETECT_SSN, "date 2024-01-15 phone 415-555-2671");
}

/* ---- phone ---- */

Test(detect, phone_positives)
{
    one(DETECT_PHONE, "call +14155552671 now", "+14155552671");
    one(DETECT_PHONE, "call +1 415 555 2671.", "+1 415 555 2671");
    one(DETECT_PHONE, "uk: +44 20 7946 0958", "+44 20 7946 0958");
    one(DETECT_PHONE, "uk +44 (0) 20 7946 0958 office", "+44 (0) 20 7946 0958");
    one(DETECT_PHONE, "de 0049 30 901820 (office)", "0049 30 901820");
    one(DETECT_PHONE, "fr +33 1 23 45 67 89 x", "+33 1 23 45 67 89");
    one(DETECT_PHONE, "office (415) 555-2671 ext", "(415) 555-2671");
    one(DETECT_PHONE, "office (415)555-2671", "(415)555-2671");
    one(DETECT_PHONE, "tel:415-555-2671;", "415-555-2671");
    one(DETECT_PHONE, "tel 415.555.2671", "415.555.2671");
    one(DETECT_PHONE, "tel 415 555 2671 x", "415 555 2671");
    one(DETECT_PHONE, "toll free 1-800-555-0199 now", "1-800-555-0199");
    one(DETECT_PHONE, "+1-415-555-2671 then 12 items", "+1-415-555-2671");
    one(DETECT_PHONE, "mobile +1 415 555 2671 2 items", "+1 415 555 2671");
}

Test(detect, phone_two_in_order)
{
    const char *s = "a +44 20 7946 0958, b (415) 555-2671";
    hits_t h = scan(DETECT_PHONE, s);
    cr_assert_eq(h.n, 2);
    cr_assert(h.start[0] == 2 && h.end[0] == 18, "got %zu %zu", h.start[0], h.end[0]);
    cr_assert(h.start[1] == 22 && h.end[1] == 36, "got %zu %zu", h.start[1], h.end[1]);
}

Test(detect, phone_negatives)
{
    none(DETECT_PHONE, "at 2026-11-26 10:00:00 UTC");
    none(DETECT_PHONE, "on 2024-01-15");
    none(DETECT_PHONE, "from 192.168.100.200");
    none(DETECT_PHONE, "version 1.2.3.4567");
    none(DETECT_PHONE, "id 550e8400-e29b-41d4-a716-446655440000");
    none(DETECT_PHONE, "sha d41d8cd98f00b204e9800998ecf8427e");
    none(DETECT_PHONE, "order ORD-2024-000123");
    none(DETECT_PHONE, "bare 4155552671 ten digits");
    none(DETECT_PHONE, "invalid area +1 555 555 5555");
    none(DETECT_PHONE, "invalid nanp 123-555-2671 and 415-155-2671");
    none(DETECT_PHONE, "unknown cc +999 1234 5678");
    none(DETECT_PHONE, "too long +1-415-555-2671-0000 and +44207946095812345");
    none(DETECT_PHONE, "glued x415-555-2671 415-555-26712");
    none(DETECT_PHONE, "card 4111-1111-1111-1111");
    none(DETECT_PHONE, "amount +5");
}

/* ---- email ---- */

Test(detect, email_positives)
{
    one(DETECT_EMAIL, "contact jane.doe@example.com today", "jane.doe@example.com");
    one(DETECT_EMAIL, "Mail: <j_smith+tag@mail.example.co.uk>.", "j_smith+tag@mail.example.co.uk");
    one(DETECT_EMAIL, "write to ops@my-host.io.", "ops@my-host.io");
    one(DETECT_EMAIL, "a@bc.de", "a@bc.de");
    one(DETECT_EMAIL, "(x.y-z%1@sub.domain.org)", "x.y-z%1@sub.domain.org");
}

Test(detect, email_two_in_order)
{
    const char *s = "a@example.com,b@example.org";
    hits_t h = scan(DETECT_EMAIL, s);
    cr_assert_eq(h.n, 2);
    cr_assert(h.start[0] == 0 && h.end[0] == 13);
    cr_assert(h.start[1] == 14 && h.end[1] == 27);
}

Test(detect, email_negatives)
{
    none(DETECT_EMAIL, "double john..doe@example.com");
    none(DETECT_EMAIL, "leading .john@example.com");
    none(DETECT_EMAIL, "trailing john.@example.com");
    none(DETECT_EMAIL, "puny john@xn--bcher-kva.example");
    none(DETECT_EMAIL, "puny tld john@example.xn--p1ai");
    none(DETECT_EMAIL, "tld john@example.c");
    none(DETECT_EMAIL, "digit tld john@example.c0m");
    none(DETECT_EMAIL, "one label john@localhost");
    none(DETECT_EMAIL, "double dot domain john@example..com");
    none(DETECT_EMAIL, "hyphen label john@-example.com john@example-.com");
    none(DETECT_EMAIL, "no local @example.com");
    none(DETECT_EMAIL, "two ats a@b@example.com");
    none(DETECT_EMAIL, "non-ascii jos\xc3\xa9@example.com");
    none(DETECT_EMAIL, "handle @jane and a@ b");
    char big[200];
    memset(big, 'a', 65);
    strcpy(big + 65, "@example.com");
    none(DETECT_EMAIL, big); /* local part of 65 */
}

/* ---- IBAN ---- */

Test(detect, iban_positives)
{
    one(DETECT_IBAN, "pay to DE89370400440532013000 asap", "DE89370400440532013000");
    one(DETECT_IBAN, "IBAN: DE89 3704 0044 0532 0130 00.", "DE89 3704 0044 0532 0130 00");
    one(DETECT_IBAN, "uk GB29NWBK60161331926819", "GB29NWBK60161331926819");
    one(DETECT_IBAN, "uk GB29 NWBK 6016 1331 9268 19 EUR", "GB29 NWBK 6016 1331 9268 19");
    one(DETECT_IBAN, "fr (FR1420041010050500013M02606)", "FR1420041010050500013M02606");
    one(DETECT_IBAN, "nl NL91ABNA0417164300", "NL91ABNA0417164300");
    one(DETECT_IBAN, "be BE68 5390 0754 7034", "BE68 5390 0754 7034");
    one(DETECT_IBAN, "ch CH9300762011623852957", "CH9300762011623852957");
    one(DETECT_IBAN, "no NO9386011117947", "NO9386011117947");
}

Test(detect, iban_negatives)
{
    none(DETECT_IBAN, "bad check DE88370400440532013000");
    none(DETECT_IBAN, "bad check grouped DE89 3704 0044 0532 0130 01");
    none(DETECT_IBAN, "short DE8937040044053201300 long DE893704004405320130000");
    none(DETECT_IBAN, "unknown country QQ89370400440532013000");
    none(DETECT_IBAN, "glued XDE89370400440532013000");
    none(DETECT_IBAN, "lower de89370400440532013000");
    none(DETECT_IBAN, "bad groups DE89 370 40044 0532 0130 00");
    none(DETECT_IBAN, "double space DE89  3704 0044 0532 0130 00");
    none(DETECT_IBAN, "order ORD-2024-000123 sha DE12abcdef");
}

/* ---- validators: the whole span must pass ---- */

static bool val(detect_validator v, const char *s)
{
    size_t len = strlen(s);
    char *copy = malloc(len ? len : 1);
    cr_assert_not_null(copy);
    memcpy(copy, s, len);
    bool ok = detect_validate(v, copy, len);
    free(copy);
    return ok;
}

Test(detect, validate_luhn)
{
    cr_assert(val(VALIDATE_LUHN, "4111111111111111"));
    cr_assert(val(VALIDATE_LUHN, "4111-1111-1111-1111"));
    cr_assert(val(VALIDATE_LUHN, "79927398713"));
    cr_assert_not(val(VALIDATE_LUHN, "4111111111111112"));
    cr_assert_not(val(VALIDATE_LUHN, " 4111111111111111"));
    cr_assert_not(val(VALIDATE_LUHN, "4111111111111111x"));
    cr_assert_not(val(VALIDATE_LUHN, "4111--1111111111111"));
    cr_assert_not(val(VALIDATE_LUHN, "0"));
    cr_assert_not(val(VALIDATE_LUHN, ""));
}

Test(detect, validate_ssn)
{
    cr_assert(val(VALIDATE_SSN, "123-45-6789"));
    cr_assert(val(VALIDATE_SSN, "123 45 6789"));
    cr_assert(val(VALIDATE_SSN, "123456789"));
    cr_assert_not(val(VALIDATE_SSN, "666-45-6789"));
    cr_assert_not(val(VALIDATE_SSN, "923456789"));
    cr_assert_not(val(VALIDATE_SSN, "123-00-6789"));
    cr_assert_not(val(VALIDATE_SSN, "123-45-0000"));
    cr_assert_not(val(VALIDATE_SSN, "123-45-6789 "));
    cr_assert_not(val(VALIDATE_SSN, "123-45.6789"));
}

Test(detect, validate_phone)
{
    cr_assert(val(VALIDATE_PHONE, "+14155552671"));
    cr_assert(val(VALIDATE_PHONE, "+44 20 7946 0958"));
    cr_assert(val(VALIDATE_PHONE, "0044 20 7946 0958"));
    cr_assert(val(VALIDATE_PHONE, "(415) 555-2671"));
    cr_assert(val(VALIDATE_PHONE, "4155552671"));
    cr_assert_not(val(VALIDATE_PHONE, "+15555555555"));
    cr_assert_not(val(VALIDATE_PHONE, "+1 415 555 2671 x"));
    cr_assert_not(val(VALIDATE_PHONE, "2024-01-15"));
    cr_assert_not(val(VALIDATE_PHONE, "+"));
    cr_assert_not(val(VALIDATE_PHONE, "1234567890"));
}

Test(detect, validate_email)
{
    cr_assert(val(VALIDATE_EMAIL, "jane.doe@example.com"));
    cr_assert(val(VALIDATE_EMAIL, "o'brien!#$@example.com"));
    cr_assert_not(val(VALIDATE_EMAIL, "jane..doe@example.com"));
    cr_assert_not(val(VALIDATE_EMAIL, "jane@example.com."));
    cr_assert_not(val(VALIDATE_EMAIL, "jane@xn--e1afmkfd.xn--p1ai"));
    cr_assert_not(val(VALIDATE_EMAIL, "jane@example"));
    cr_assert_not(val(VALIDATE_EMAIL, " jane@example.com"));
    cr_assert_not(val(VALIDATE_EMAIL, "jane"));
}

Test(detect, validate_iban)
{
    cr_assert(val(VALIDATE_IBAN, "DE89370400440532013000"));
    cr_assert(val(VALIDATE_IBAN, "DE89 3704 0044 0532 0130 00"));
    cr_assert_not(val(VALIDATE_IBAN, "DE89370400440532013001"));
    cr_assert_not(val(VALIDATE_IBAN, "DE89370400440532013000 "));
    cr_assert_not(val(VALIDATE_IBAN, "DE8937040044053201300"));
    cr_assert_not(val(VALIDATE_IBAN, "DE"));
}

Test(detect, validate_bad_args)
{
    cr_assert_not(detect_validate(VALIDATE_LUHN, NULL, 0));
    cr_assert_not(detect_validate((detect_validator)42, "4111111111111111", 16));
    hits_t h;
    memset(&h, 0, sizeof(h));
    cr_assert_eq(detect_scan((detect_builtin)42, "4111111111111111", 16, collect, &h), 0);
}

/* Values are not NUL-terminated: a scan must not read past len. */
Test(detect, respects_len)
{
    const char *s = "4111111111111111999";
    hits_t h;
    memset(&h, 0, sizeof(h));
    cr_assert_eq(detect_scan(DETECT_CREDIT_CARD, s, 16, collect, &h), 1);
    memset(&h, 0, sizeof(h));
    cr_assert_eq(detect_scan(DETECT_CREDIT_CARD, s, 17, collect, &h), 0);
    memset(&h, 0, sizeof(h));
    cr_assert_eq(detect_scan(DETECT_EMAIL, "a@example.comX", 13, collect, &h), 1);
}

static int check_span(void *ctx, size_t start, size_t end)
{
    size_t len = *(size_t *)ctx;
    cr_assert(start < end && end <= len, "bad span [%zu,%zu) of %zu", start, end, len);
    return 0;
}

/*
 * Random text over the bytes the scanners care about, in exact-size heap
 * buffers: spans stay in bounds, matches come in increasing order, every
 * match passes its validator, and (under ASan) nothing reads past len.
 */
Test(detect, random_text_stays_in_bounds)
{
    static const char alphabet[] = "0123456789000111444  --..()+@@aZDEGBxn_/:,\xc3\xa9\xff";
    unsigned seed = 12345;
    for (int iter = 0; iter < 3000; iter++) {
        seed = seed * 1103515245u + 12345u;
        size_t len = (seed >> 16) % 48;
        char *buf = malloc(len ? len : 1);
        cr_assert_not_null(buf);
        for (size_t k = 0; k < len; k++) {
            seed = seed * 1103515245u + 12345u;
            buf[k] = alphabet[(seed >> 16) % (sizeof(alphabet) - 1)];
        }
        for (int kind = 0; kind < DETECT__COUNT; kind++)
            (void)detect_scan((detect_builtin)kind, buf, len, check_span, &len);
        for (int v = 0; v < VALIDATE__COUNT; v++)
            (void)detect_validate((detect_validator)v, buf, len);
        free(buf);
    }
}

/* A reported span re-checked by the matching validator must pass. */
Test(detect, scan_matches_pass_validators)
{
    static const struct {
        detect_builtin b;
        detect_validator v;
        const char *text;
    } cases[] = {
        {DETECT_CREDIT_CARD, VALIDATE_LUHN, "x 4111-1111-1111-1111 y 3782 822463 10005"},
        {DETECT_SSN, VALIDATE_SSN, "x 123-45-6789 y 078.05.1120"},
        {DETECT_PHONE, VALIDATE_PHONE, "x +44 20 7946 0958 y (415) 555-2671 z 0049 30 901820"},
        {DETECT_EMAIL, VALIDATE_EMAIL, "x jane.doe@example.com y a+b@mail.example.org."},
        {DETECT_IBAN, VALIDATE_IBAN, "x DE89 3704 0044 0532 0130 00 y GB29NWBK60161331926819"},
    };
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        hits_t h = scan(cases[c].b, cases[c].text);
        cr_assert(h.n >= 2, "%s: %zu matches", detect_builtin_name(cases[c].b), h.n);
        for (size_t k = 0; k < h.n; k++) {
            if (k > 0)
                cr_assert(h.start[k] >= h.end[k - 1]);
            cr_assert(detect_validate(cases[c].v, cases[c].text + h.start[k], h.end[k] - h.start[k]),
                      "%s: span [%zu,%zu) fails its validator", detect_builtin_name(cases[c].b), h.start[k],
                      h.end[k]);
        }
    }
}

/* The digit runs of detect_value_prepare against a byte-by-byte reference, across block edges. */
Test(detect, digit_runs_match_reference)
{
    detect_value v = {0};
    char buf[300];
    unsigned seed = 12345;
    for (int round = 0; round < 2000; round++) {
        size_t len = (size_t)(round % 200) + 1;
        for (size_t i = 0; i < len; i++) {
            seed = seed * 1103515245u + 12345u;
            unsigned r = (seed >> 16) % 4;
            buf[i] = r == 0 ? 'a' : r == 1 ? '-' : (char)('0' + (seed >> 8) % 10);
        }
        cr_assert_eq(detect_value_prepare(&v, buf, len), 0);
        size_t k = 0, i = 0;
        while (i < len) {
            if (buf[i] < '0' || buf[i] > '9') {
                i++;
                continue;
            }
            size_t st = i;
            while (i < len && buf[i] >= '0' && buf[i] <= '9')
                i++;
            cr_assert_lt(k, v.n, "round %d: missing run at %zu", round, st);
            cr_assert_eq(v.runs[k].start, st, "round %d run %zu", round, k);
            cr_assert_eq(v.runs[k].end, i, "round %d run %zu", round, k);
            k++;
        }
        cr_assert_eq(k, v.n, "round %d: %zu runs expected, %zu found", round, k, v.n);
    }
    detect_value_free(&v);
}

/* Found by fuzz_rules: a fresh detect_value and a value without digits (no buffer yet) is fine. */
Test(detect, prepare_without_digits_on_a_fresh_value)
{
    detect_value v = {0};
    cr_assert_eq(detect_value_prepare(&v, "no digits here", 14), 0);
    cr_assert_eq(v.n, 0);
    cr_assert_eq(v.n_bound, 0);
    cr_assert_eq(v.n_upper, 0);
    cr_assert_eq(detect_scan_value(DETECT_CREDIT_CARD, &v, NULL, NULL), 0);
    detect_value_free(&v);
}
