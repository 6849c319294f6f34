/*
 * libFuzzer target for src/config.c: the input is a pgsense.ini, written to
 * a memfd and loaded through /proc/self/fd/N with no environment overrides.
 * A load that succeeds must yield a config that frees cleanly; a failing
 * one must say why (at least one error).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int fd = -1;
    static char path[64];
    if (fd < 0) {
        fd = memfd_create("fuzz_ini", MFD_CLOEXEC);
        if (fd < 0)
            abort();
        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    }
    if (ftruncate(fd, 0) != 0 || pwrite(fd, data, size, 0) != (ssize_t)size)
        abort();

    config_diag diag;
    config_diag_init(&diag);
    config *cfg = NULL;
    int rc = config_load(path, NULL, &cfg, &diag);
    if (rc == 0) {
        if (cfg == NULL || diag.errors != 0)
            abort();
        /* Touch what the supervisor reads after a load. */
        volatile size_t n = config_sink_count(cfg);
        (void)n;
        for (size_t i = 0; i < cfg->n_dbs; i++)
            if (config_find_db(cfg, cfg->dbs[i].name) == NULL)
                abort();
        config_free(cfg);
    } else if (cfg != NULL || diag.errors == 0) {
        abort();
    }
    FILE *devnull = fopen("/dev/null", "w");
    if (devnull) {
        config_diag_print(&diag, devnull);
        fclose(devnull);
    }
    config_diag_free(&diag);
    return 0;
}
