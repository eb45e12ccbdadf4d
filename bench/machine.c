/* SPDX-License-Identifier: MIT */
/* machine: CPU count and model for benchmark reports. */
#define _GNU_SOURCE /* sched_getaffinity, CPU_COUNT */
#include "machine.h"

#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

unsigned machine_cores(void) {
  long n;

  n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? (unsigned)n : 1;
}

unsigned machine_usable_cores(void) {
  cpu_set_t set;
  int n;

  if (sched_getaffinity(0, sizeof(set), &set) != 0)
    return machine_cores();
  n = CPU_COUNT(&set);
  return n > 0 ? (unsigned)n : 1;
}

/* Copies s into buf without leading blanks and the trailing newline. */
static void copy_trimmed(char *buf, size_t len, const char *s) {
  size_t n;

  while (*s == ' ' || *s == '\t')
    s++;
  n = strcspn(s, "\r\n");
  if (n >= len)
    n = len - 1;
  memcpy(buf, s, n);
  buf[n] = '\0';
}

void machine_cpu_model(char *buf, size_t len) {
  char line[512];
  char *colon;
  FILE *f;

  if (len == 0)
    return;
  copy_trimmed(buf, len, "unknown");
  f = fopen("/proc/cpuinfo", "r");
  if (f == NULL)
    return;
  while (fgets(line, sizeof(line), f) != NULL) {
    colon = strchr(line, ':');
    if (strncmp(line, "model name", 10) == 0 && colon != NULL) {
      copy_trimmed(buf, len, colon + 1);
      break;
    }
  }
  fclose(f);
}
