/* The workload of tests/bench/symbolize.sh: a few frame-pointer functions calling into libc
 * and the kernel, busy for argv[1] seconds; then, with a second argument, it waits (alive,
 * its mappings readable) until killed. */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
static char buf[4096];
__attribute__((noinline)) void leaf(int i) { memset(buf, i, sizeof buf); if (i % 16 == 0) getppid(); }
__attribute__((noinline)) void f4(int i) { leaf(i); asm volatile(""); }
__attribute__((noinline)) void f3(int i) { if (i & 2) f4(i); else leaf(i); asm volatile(""); }
__attribute__((noinline)) void f2(int i) { if (i & 1) f3(i); else leaf(i); asm volatile(""); }
__attribute__((noinline)) void f1(int i) { f2(i); f2(i + 1); f3(i + 2); asm volatile(""); }
int main(int argc, char **argv) {
    double secs = argc > 1 ? atof(argv[1]) : 3;
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0;; i++) {
        f1(i);
        if ((i & 1023) == 0) {
            clock_gettime(CLOCK_MONOTONIC, &t);
            if (t.tv_sec - t0.tv_sec + (t.tv_nsec - t0.tv_nsec) / 1e9 > secs) break;
        }
    }
    if (argc > 2) pause();
    return 0;
}
