/* slowsync: an LD_PRELOAD shim for t/chaos/test_disk_full.py that makes
 * fdatasync(2) slow: it sleeps SLOWSYNC_MS milliseconds (default 200), then
 * calls the real one. Built by the test at run time:
 *     cc -shared -fPIC -o slowsync.so slowsync.c -ldl
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <time.h>

int fdatasync(int fd)
{
    static int (*real)(int);
    if (!real)
        real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    const char *e = getenv("SLOWSYNC_MS");
    long ms = e ? atol(e) : 200;
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0)
        ;
    return real(fd);
}
