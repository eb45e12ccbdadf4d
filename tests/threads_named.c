/* SPDX-License-Identifier: MIT */
#include "threads_named.h"

#include <check.h>
#include <dirent.h>
#include <stdio.h>
#include <string.h>

unsigned threads_named(const char *prefix) {
  char path[300];
  char name[32];
  struct dirent *e;
  unsigned n = 0;
  DIR *d;
  FILE *f;

  d = opendir("/proc/self/task");
  ck_assert_ptr_nonnull(d);
  while ((e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.')
      continue;
    snprintf(path, sizeof(path), "/proc/self/task/%s/comm", e->d_name);
    f = fopen(path, "r");
    if (f == NULL)
      continue; /* it ended meanwhile */
    if (fgets(name, sizeof(name), f) != NULL &&
        strncmp(name, prefix, strlen(prefix)) == 0)
      n++;
    fclose(f);
  }
  closedir(d);
  return n;
}
