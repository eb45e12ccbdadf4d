/* SPDX-License-Identifier: MIT */
/*
 * cli: what every C benchmark shares on its command line and in its
 * report, so that each one parses the same options the same way and
 * writes the same header.
 *
 * The options every benchmark takes:
 *
 *   --workers N   threads of every pool (default 0: the online CPUs)
 *   --reps R      repetitions (default 0: the benchmark's own)
 *   --quick       a shorter run; --tiny: a smoke test, figures meaningless
 *   --json FILE   where the report goes (default: standard output)
 *   -h, --help    the usage text, on stdout, then exit 0
 *
 * A benchmark's own options go through a callback.  The report is JSON
 * only: one object that starts with the header bench_report_open() writes
 * ("benchmark", "machine", "libuv_version", "tandem_version") and that
 * bench/tandem-bench turns into tables.  Progress goes to stderr.
 */
#ifndef BENCH_CLI_H
#define BENCH_CLI_H

#include <stdint.h>
#include <stdio.h>

#define BENCH_MAX_WORKERS 1024
#define BENCH_MAX_REPS 99

typedef struct bench_cli_s {
  const char *name;  /* the program, for messages */
  const char *usage; /* printed for --help and after a bad argument */
  unsigned workers;  /* 0: not given */
  unsigned reps;     /* 0: not given */
  int quick;
  int tiny;
  const char *json_path; /* NULL: standard output */
} bench_cli_t;

/* A benchmark's own option `arg`, with `val` the next argument (NULL if
 * there is none).  Returns how many arguments it used (1, or 2 with val),
 * 0 when the option is not its own, -1 when its value is wrong. */
typedef int (*bench_cli_option_fn)(void *ctx, const char *arg, const char *val);

/* Parses argv into *cli (name and usage set by the caller; `own` may be
 * NULL).  --help prints cli->usage and exits 0.  Returns 0, or 2 after
 * printing what was wrong and the usage on stderr: main returns it. */
int bench_cli_parse(bench_cli_t *cli, int argc, char **argv,
                    bench_cli_option_fn own, void *ctx);

/* The worker count to use: --workers, or the online CPUs. */
unsigned bench_cli_workers(const bench_cli_t *cli);

/* The repetitions: --reps, or tiny / quick / full by the mode. */
unsigned bench_cli_reps(const bench_cli_t *cli, unsigned tiny, unsigned quick,
                        unsigned full);

/* A decimal in [min, max] into *out; 0, or -1 when s is not one. */
int bench_cli_count(const char *s, uint64_t min, uint64_t max, uint64_t *out);

/* Parses a comma-separated list of names[0..n) ("tandem,tbb") into a bit
 * per name in *out; 0, or -1 for an unknown or empty list. */
int bench_cli_pick(const char *list, const char *const *names, int n,
                   unsigned *out);

/* Prints "NAME: WHAT: message (NAME)" for a libuv error on stderr and
 * returns err. */
int bench_cli_error(const bench_cli_t *cli, const char *what, int err);

/* Opens the report (cli->json_path, or stdout) and writes its header:
 *   {"benchmark": NAME, "machine": {"cores", "usable_cores", "cpu_model"},
 *    "libuv_version": ..., "tandem_version": ... (omitted when NULL),
 *    "parameters": {"workers": W, "reps": R, "quick": .., "tiny": ..
 * leaving "parameters" open: the benchmark adds its own with
 * ", \"key\": value" and closes it with "}".  Returns NULL after an error
 * message. */
FILE *bench_report_open(const bench_cli_t *cli, const char *tandem_version,
                        unsigned workers, unsigned reps);

/* Closes the report's object ("}\n") and the file.  Returns 0, or UV_EIO
 * after an error message. */
int bench_report_close(const bench_cli_t *cli, FILE *f);

#endif /* BENCH_CLI_H */
