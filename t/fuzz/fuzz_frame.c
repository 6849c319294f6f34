/*
 * libFuzzer target for src/frame.c: feeds arbitrary bytes to a decoder in
 * chunks and decodes every frame; each decoded frame must re-encode and
 * decode to an equal frame. Input: one selector byte (chunk size, role), then bytes.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A decoded frame re-encodes (canonically, within FRAME_MAX) and decodes to an equal frame. */
static void check_reencode(const frame *f)
{
    size_t len = 0;
    if (frame_encode(f, NULL, 0, &len, NULL, 0) != FRAME_FULL || len > FRAME_MAX)
        abort();
    uint8_t *buf = malloc(len);
    if (buf == NULL)
        abort();
    size_t got = 0;
    if (frame_encode(f, buf, len, &got, NULL, 0) != FRAME_OK || got != len)
        abort();
    frame_decoder *dec = frame_decoder_new(FRAME_ROLE_ANY);
    if (dec == NULL)
        abort();
    if (frame_decoder_feed(dec, buf, len) != len)
        abort();
    frame g;
    if (frame_next(dec, &g) != FRAME_OK || !frame_equal(f, &g))
        abort();
    if (frame_next(dec, &g) != FRAME_AGAIN)
        abort();
    frame_decoder_free(dec);
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const size_t chunks[] = {1, 2, 3, 5, 8, 13, 64, 4096};
    static const frame_role roles[] = {FRAME_ROLE_ANY, FRAME_ROLE_SUPERVISOR, FRAME_ROLE_WORKER,
                                       FRAME_ROLE_ANY};
    if (size == 0)
        return 0;
    size_t chunk = chunks[data[0] & 7];
    frame_role role = roles[(data[0] >> 3) & 3];
    data++;
    size--;

    frame_decoder *dec = frame_decoder_new(role);
    if (dec == NULL)
        abort();
    size_t off = 0;
    frame_status st = FRAME_AGAIN;
    while (off < size && st == FRAME_AGAIN) {
        size_t n = size - off < chunk ? size - off : chunk;
        size_t k = frame_decoder_feed(dec, data + off, n);
        off += k;
        frame f;
        while ((st = frame_next(dec, &f)) == FRAME_OK)
            check_reencode(&f);
        if (st == FRAME_ERR || st == FRAME_VERSION) {
            if (frame_decoder_error(dec)[0] == '\0')
                abort(); /* every failure names its cause */
            if (st == FRAME_VERSION && (f.type != FRAME_HELLO || f.hello.version == FRAME_PROTOCOL_VERSION))
                abort();
        } else if (st != FRAME_AGAIN) {
            abort();
        } else if (k == 0) {
            abort(); /* buffer full and no frame: the decoder would stall */
        }
    }
    frame_decoder_free(dec);
    return 0;
}
