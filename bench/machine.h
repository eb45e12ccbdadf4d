/* SPDX-License-Identifier: MIT */
/*
 * machine: facts about the machine a benchmark ran on, for its report.
 */
#ifndef BENCH_MACHINE_H
#define BENCH_MACHINE_H

#include <stddef.h>

/* Online CPUs (at least 1). */
unsigned machine_cores(void);

/* CPUs this process may run on (its affinity mask; at least 1). */
unsigned machine_usable_cores(void);

/* Copies the CPU model ("model name" in /proc/cpuinfo) into buf, or
 * "unknown" when there is none.  Always NUL-terminates when len > 0. */
void machine_cpu_model(char *buf, size_t len);

#endif /* BENCH_MACHINE_H */
