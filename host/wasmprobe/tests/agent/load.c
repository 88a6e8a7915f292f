/* The agent tests' workload, with counts known in advance: `agentload N M` makes N getppid
 * calls and M open() calls (of /etc/hostname, through libc), after a short pause and before a
 * longer one, so that its command name can be looked up while its events are counted. With a
 * third argument P, it pauses 1 ms after every P getppid calls (a workload that lasts). */
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 0, m = argc > 2 ? atol(argv[2]) : 0;
    long pace = argc > 3 ? atol(argv[3]) : 0;
    usleep(300 * 1000);
    for (long i = 0; i < n; i++) {
        getppid();
        if (pace > 0 && i % pace == pace - 1)
            usleep(1000);
    }
    for (long i = 0; i < m; i++) {
        int fd = open("/etc/hostname", O_RDONLY);
        if (fd >= 0)
            close(fd);
    }
    usleep(1500 * 1000);
    return 0;
}
