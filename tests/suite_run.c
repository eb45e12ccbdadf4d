/* SPDX-License-Identifier: MIT */
#include "suite_run.h"

#include <stdlib.h>

int suite_run(Suite *s) {
  SRunner *sr;
  int failed;

  sr = srunner_create(s);
  srunner_run_all(sr, CK_ENV);
  failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
