/* libFuzzer target: pgoutput messages, one per input, fed to one decoder so
 * the relation cache carries state from input to input. */
#include <stddef.h>
#include <stdint.h>

#include "pgoutput.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static pgo_decoder *d;
    if (!d)
        d = pgo_decoder_new();
    if (!d)
        return 0;
    /* An input may hold several messages, each prefixed by a one-byte length. */
    char err[256];
    pgo_msg out;
    while (size > 0) {
        size_t n = data[0];
        data++;
        size--;
        if (n > size)
            n = size;
        if (pgo_decode(d, data, n, &out, err, sizeof(err)) == 0 && out.kind == PGO_INSERT) {
            volatile size_t sum = 0;
            for (uint16_t i = 0; i < out.u.insert.newtup.ncols; i++)
                sum += out.u.insert.newtup.cols[i].len;
            (void)sum;
        }
        data += n;
        size -= n;
    }
    return 0;
}
