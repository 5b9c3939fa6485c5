/* SPDX-License-Identifier: MIT */
/* CPU time of a process (drill/proc_cpu.h). */
#include "drill/proc_cpu.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int rm_proc_cpu_ns(pid_t pid, uint64_t *ns)
{
    char path[64], buf[1024], *p;
    unsigned long long ut, st;
    long hz = sysconf(_SC_CLK_TCK);
    size_t n;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    f = fopen(path, "r");
    if (!f)
        return -errno;
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* after the command's closing parenthesis: state is field 3; utime
     * and stime are fields 14 and 15 */
    p = strrchr(buf, ')');
    if (!p || hz <= 0 ||
        sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
               &ut, &st) != 2)
        return -EBADMSG;
    *ns = (ut + st) * (1000000000ull / (unsigned long long)hz);
    return 0;
}
