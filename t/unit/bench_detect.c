/*
 * bench_detect: MB/s per builtin detector over generated row-like text
 * (not a test). Usage: bench_detect [MB] [seed]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "detect.h"

/* Realistic column values: mostly prose, some numbers and dates, a little PII. */
static const char *const pieces[] = {
    "Customer asked about the delivery window for the spring order. ",
    "Please leave the parcel with the neighbour if nobody answers the door. ",
    "Invoice 2024-000123 paid on 2024-01-15 at 10:00:00, total 149.90 EUR. ",
    "The quick brown fox jumps over the lazy dog near the riverbank. ",
    "Shipped via ground, tracking id 1Z999AA10123456784, weight 2.5 kg. ",
    "Order ORD-2024-000123 updated by admin from 192.168.100.200 (v1.2.3.4567). ",
    "Session 550e8400-e29b-41d4-a716-446655440000 hash d41d8cd98f00b204e9800998ecf8427e. ",
    "Notes: customer prefers email contact, no calls after 6 pm on weekdays. ",
    "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor. ",
    "Address: 1600 Amphitheatre Parkway, Mountain View, CA 94043, United States. ",
};
static const char *const pii[] = {
    "Customer card on file: 4111-1111-1111-1111 (visa). ", "SSN 123-45-6789 verified. ",
    "Call me at (415) 555-2671 or +44 20 7946 0958. ",     "Contact jane.doe@example.com for details. ",
    "Refund to DE89 3704 0044 0532 0130 00 please. ",
};

static int count(void *ctx, size_t start, size_t end)
{
    (void)start;
    (void)end;
    (*(size_t *)ctx)++;
    return 0;
}

static char *gen(size_t len, unsigned seed, int pii_every)
{
    char *buf = malloc(len);
    if (buf == NULL)
        return NULL;
    srand(seed);
    size_t n = 0;
    int k = 0;
    while (n < len) {
        char fresh[64];
        const char *p = (pii_every > 0 && ++k % pii_every == 0) ? pii[rand() % 5] : pieces[rand() % 10];
        if (pii_every < 0 && ++k % -pii_every == 0) {
            /* a phone number not seen before (defeats the verdict cache) */
            int w = snprintf(fresh, sizeof(fresh), "Call (%03d) 555-%04d today. ", 201 + rand() % 700,
                             rand() % 10000);
            if (w < 0 || (size_t)w >= sizeof(fresh))
                return buf;
            p = fresh;
        }
        size_t l = strlen(p);
        if (l > len - n)
            l = len - n;
        memcpy(buf + n, p, l);
        n += l;
    }
    return buf;
}

static double now(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
        return 0;
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Scan in 180-byte values (a typical row column), like the worker does. */
static void run(const char *label, const char *buf, size_t len)
{
    const size_t chunk = 180;
    printf("%s (%zu MB):\n", label, len >> 20);
    for (int k = 0; k < DETECT__COUNT; k++) {
        size_t hits = 0;
        double t0 = now();
        for (size_t off = 0; off < len; off += chunk) {
            size_t l = len - off < chunk ? len - off : chunk;
            (void)detect_scan((detect_builtin)k, buf + off, l, count, &hits);
        }
        double dt = now() - t0;
        printf("  %-12s %8.0f MB/s  %zu matches\n", detect_builtin_name((detect_builtin)k),
               (double)len / (1 << 20) / dt, hits);
    }
}

int main(int argc, char **argv)
{
    size_t mb = argc > 1 ? (size_t)strtoul(argv[1], NULL, 10) : 64;
    unsigned seed = argc > 2 ? (unsigned)strtoul(argv[2], NULL, 10) : 1;
    size_t len = mb << 20;
    if (len == 0)
        return 2;
    detect_init();

    static const struct {
        const char *label;
        int pii_every;
    } sets[] = {
        {"prose, numbers, dates, ids; no PII", 0},
        {"same, one PII sentence per ~20 sentences", 20},
        {"same, a never-seen NANP phone number per ~20 sentences", -20},
    };
    for (size_t i = 0; i < sizeof(sets) / sizeof(sets[0]); i++) {
        char *buf = gen(len, seed, sets[i].pii_every);
        if (buf == NULL) {
            fprintf(stderr, "bench_detect: out of memory for %zu MB\n", mb);
            return 1;
        }
        run(sets[i].label, buf, len);
        free(buf);
    }
    return 0;
}
