/* SPDX-License-Identifier: MIT */
/* json_write: JSON strings, numbers and sample summaries. */
#include "json_write.h"

#include <math.h>

#include "stats.h"

void json_write_string(FILE *f, const char *s) {
  fputc('"', f);
  for (; *s != '\0'; s++) {
    if (*s == '"' || *s == '\\')
      fprintf(f, "\\%c", *s);
    else if ((unsigned char)*s < 0x20)
      fprintf(f, "\\u%04x", (unsigned)(unsigned char)*s);
    else
      fputc(*s, f);
  }
  fputc('"', f);
}

void json_write_number(FILE *f, double v) {
  if (isnan(v) || isinf(v))
    fprintf(f, "null");
  else
    fprintf(f, "%.10g", v);
}

static void write_field(FILE *f, const char *key, double v) {
  fprintf(f, "\"%s\": ", key);
  json_write_number(f, v);
  fprintf(f, ", ");
}

void json_write_sample(FILE *f, const char *key, const double *v, size_t n) {
  stats_summary_t s;
  size_t i;

  stats_summarize(v, n, &s);
  fprintf(f, "\"%s\": {", key);
  write_field(f, "median", s.median);
  write_field(f, "min", s.min);
  write_field(f, "p25", s.p25);
  write_field(f, "p75", s.p75);
  write_field(f, "max", s.max);
  fprintf(f, "\"samples\": [");
  for (i = 0; i < n; i++) {
    if (i > 0)
      fprintf(f, ", ");
    json_write_number(f, v[i]);
  }
  fprintf(f, "]}");
}
