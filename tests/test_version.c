/* SPDX-License-Identifier: MIT */
/*
 * test_version.c: the version at run time (tandem_version(),
 * tandem_version_string()) against tandem/version.h, and the promise of
 * the reserved fields: zeroed options are accepted and mean the defaults,
 * and tandem_pool_stats() writes 0 in every reserved counter.
 */
#include <check.h>
#include <stdio.h>
#include <string.h>

#include "suite_run.h"
#include "tandem.h"

START_TEST(test_version_matches_the_header) {
  unsigned v = tandem_version();

  ck_assert_uint_eq(v, TANDEM_VERSION_HEX);
  ck_assert_uint_eq(v >> 16, TANDEM_VERSION_MAJOR);
  ck_assert_uint_eq((v >> 8) & 0xff, TANDEM_VERSION_MINOR);
  ck_assert_uint_eq(v & 0xff, TANDEM_VERSION_PATCH);
}
END_TEST

START_TEST(test_version_string_is_major_minor_patch) {
  const char *s = tandem_version_string();
  unsigned major, minor, patch;
  char rest;

  ck_assert_ptr_nonnull(s);
  ck_assert_str_eq(s, TANDEM_VERSION_STRING);
  ck_assert_int_eq(sscanf(s, "%u.%u.%u%c", &major, &minor, &patch, &rest), 3);
  ck_assert_uint_eq((major << 16) | (minor << 8) | patch, tandem_version());
  ck_assert_ptr_eq(tandem_version_string(), s); /* a static string */
}
END_TEST

START_TEST(test_zeroed_options_with_reserved_fields_are_the_defaults) {
  tandem_options_t opts;
  tandem_pool_t *pool;

  memset(&opts, 0, sizeof(opts));
  opts.workers = 2;
  ck_assert_int_eq(tandem_pool_new(&pool, &opts), 0);
  ck_assert_uint_eq(tandem_pool_workers(pool), 2);
  ck_assert_int_eq(tandem_pool_free(pool), 0);
}
END_TEST

START_TEST(test_stats_write_zero_in_reserved_counters) {
  tandem_options_t opts = {.workers = 1};
  tandem_pool_t *pool;
  tandem_stats_t st;
  size_t i;

  ck_assert_int_eq(tandem_pool_new(&pool, &opts), 0);
  memset(&st, 0xa5, sizeof(st));
  ck_assert_int_eq(tandem_pool_stats(pool, &st), 0);
  ck_assert_uint_eq(st.workers, 1);
  for (i = 0; i < sizeof(st.reserved) / sizeof(st.reserved[0]); i++)
    ck_assert_msg(st.reserved[i] == 0, "reserved[%zu] = %llu", i,
                  (unsigned long long)st.reserved[i]);
  ck_assert_int_eq(tandem_pool_free(pool), 0);
}
END_TEST

int main(void) {
  Suite *s = suite_create("version");
  TCase *tc = tcase_create("version");

  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, test_version_matches_the_header);
  tcase_add_test(tc, test_version_string_is_major_minor_patch);
  tcase_add_test(tc, test_zeroed_options_with_reserved_fields_are_the_defaults);
  tcase_add_test(tc, test_stats_write_zero_in_reserved_counters);
  suite_add_tcase(s, tc);
  return suite_run(s);
}
