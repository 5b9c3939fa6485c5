/* SPDX-License-Identifier: MIT */
/* CPU time a process used (user + system, /proc/PID/stat), for the
 * drill's "CPU under load" of the primary and the secondary. */
#ifndef REMUS_DRILL_PROC_CPU_H
#define REMUS_DRILL_PROC_CPU_H

#include <stdint.h>
#include <sys/types.h>

/* 0 with *@ns the CPU time @pid used so far, or -errno. */
int rm_proc_cpu_ns(pid_t pid, uint64_t *ns);

#endif
