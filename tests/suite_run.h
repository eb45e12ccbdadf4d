/* SPDX-License-Identifier: MIT */
/*
 * suite_run: the main() of every Check suite.
 */
#ifndef SUITE_RUN_H
#define SUITE_RUN_H

#include <check.h>

/* Runs every test of `s` (CK_RUN_SUITE / CK_RUN_CASE / CK_VERBOSITY from
 * the environment apply), frees it, and returns the process exit status:
 * EXIT_SUCCESS if none failed, EXIT_FAILURE otherwise. */
int suite_run(Suite *s);

#endif /* SUITE_RUN_H */
