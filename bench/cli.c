/* SPDX-License-Identifier: MIT */
/* cli: the options and the report header every benchmark shares. */
#include "cli.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "json_write.h"
#include "machine.h"

int bench_cli_count(const char *s, uint64_t min, uint64_t max, uint64_t *out) {
  unsigned long long v;
  char *end;

  if (s == NULL || *s < '0' || *s > '9')
    return -1;
  errno = 0;
  v = strtoull(s, &end, 10);
  if (errno != 0 || *end != '\0' || v < min || v > max)
    return -1;
  *out = v;
  return 0;
}

int bench_cli_pick(const char *list, const char *const *names, int n,
                   unsigned *out) {
  size_t len;
  int i;

  *out = 0;
  while (list != NULL && *list != '\0') {
    len = strcspn(list, ",");
    for (i = 0; i < n; i++)
      if (strlen(names[i]) == len && strncmp(list, names[i], len) == 0)
        break;
    if (i == n)
      return -1;
    *out |= 1u << i;
    list += len + (list[len] == ',');
  }
  return *out != 0 ? 0 : -1;
}

/* One of the shared options: as bench_cli_option_fn. */
static int shared_option(bench_cli_t *cli, const char *a, const char *val) {
  uint64_t v;

  if (strcmp(a, "--quick") == 0) {
    cli->quick = 1;
    return 1;
  }
  if (strcmp(a, "--tiny") == 0) {
    cli->tiny = 1;
    return 1;
  }
  if (strcmp(a, "--json") == 0)
    return val != NULL ? (cli->json_path = val, 2) : -1;
  if (strcmp(a, "--workers") == 0) {
    if (bench_cli_count(val, 1, BENCH_MAX_WORKERS, &v) != 0)
      return -1;
    cli->workers = (unsigned)v;
    return 2;
  }
  if (strcmp(a, "--reps") == 0) {
    if (bench_cli_count(val, 1, BENCH_MAX_REPS, &v) != 0)
      return -1;
    cli->reps = (unsigned)v;
    return 2;
  }
  return 0;
}

int bench_cli_parse(bench_cli_t *cli, int argc, char **argv,
                    bench_cli_option_fn own, void *ctx) {
  const char *val;
  int used;
  int i;

  for (i = 1; i < argc; i += used) {
    val = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
      fputs(cli->usage, stdout);
      exit(EXIT_SUCCESS);
    }
    used = shared_option(cli, argv[i], val);
    if (used == 0 && own != NULL)
      used = own(ctx, argv[i], val);
    if (used <= 0) {
      fprintf(stderr, "%s: bad argument '%s'%s\n%s", cli->name, argv[i],
              used < 0 ? " (or its value)" : "", cli->usage);
      return 2;
    }
  }
  return 0;
}

unsigned bench_cli_workers(const bench_cli_t *cli) {
  return cli->workers != 0 ? cli->workers : machine_cores();
}

unsigned bench_cli_reps(const bench_cli_t *cli, unsigned tiny, unsigned quick,
                        unsigned full) {
  if (cli->reps != 0)
    return cli->reps;
  return cli->tiny ? tiny : cli->quick ? quick : full;
}

int bench_cli_error(const bench_cli_t *cli, const char *what, int err) {
  fprintf(stderr, "%s: %s: %s (%s)\n", cli->name, what, uv_strerror(err),
          uv_err_name(err));
  return err;
}

FILE *bench_report_open(const bench_cli_t *cli, const char *tandem_version,
                        unsigned workers, unsigned reps) {
  char model[256];
  FILE *f;

  f = stdout;
  if (cli->json_path != NULL && (f = fopen(cli->json_path, "w")) == NULL) {
    bench_cli_error(cli, cli->json_path, uv_translate_sys_error(errno));
    return NULL;
  }
  machine_cpu_model(model, sizeof(model));
  fprintf(f, "{\"benchmark\": ");
  json_write_string(f, cli->name);
  fprintf(f,
          ",\n \"machine\": {\"cores\": %u, \"usable_cores\": %u, "
          "\"cpu_model\": ",
          machine_cores(), machine_usable_cores());
  json_write_string(f, model);
  fprintf(f, "},\n \"libuv_version\": ");
  json_write_string(f, uv_version_string());
  if (tandem_version != NULL) {
    fprintf(f, ", \"tandem_version\": ");
    json_write_string(f, tandem_version);
  }
  fprintf(f,
          ",\n \"parameters\": {\"workers\": %u, \"reps\": %u, "
          "\"quick\": %s, \"tiny\": %s",
          workers, reps, cli->quick ? "true" : "false",
          cli->tiny ? "true" : "false");
  return f;
}

int bench_report_close(const bench_cli_t *cli, FILE *f) {
  int bad;

  fprintf(f, "}\n");
  bad = ferror(f);
  bad |= f == stdout ? fflush(f) : fclose(f);
  if (bad)
    return bench_cli_error(cli, cli->json_path ? cli->json_path : "stdout",
                           UV_EIO);
  return 0;
}
