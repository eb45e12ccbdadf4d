/* SPDX-License-Identifier: MIT */
/*
 * json_write: the few pieces of JSON the benchmarks write by hand.
 */
#ifndef BENCH_JSON_WRITE_H
#define BENCH_JSON_WRITE_H

#include <stddef.h>
#include <stdio.h>

/* Writes s as a quoted JSON string, escaping what JSON requires. */
void json_write_string(FILE *f, const char *s);

/* Writes v, or null when it is NaN or infinite (JSON has neither). */
void json_write_number(FILE *f, double v);

/* Writes  "key": {"median": m, "min": .., "p25": .., "p75": .., "max": ..,
 *                 "samples": [v0, v1, ..]}  for v[0..n). */
void json_write_sample(FILE *f, const char *key, const double *v, size_t n);

#endif /* BENCH_JSON_WRITE_H */
