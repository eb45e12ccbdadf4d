/* SPDX-License-Identifier: MIT */
/*
 * GET /dashboard: a live page that polls /stats once a second and draws
 * the pool's workers, queue, job wait and run times, loop lag and request
 * rates (dashboard.html).  The build compiles the page into the program
 * (embed_file.cmake writes dashboard_html.c), so the binary serves it from
 * any directory.
 */
#ifndef COMPUTE_SERVER_DASHBOARD_H
#define COMPUTE_SERVER_DASHBOARD_H

#include <stddef.h>

/* dashboard.html's bytes (a NUL follows them, not counted). */
extern const char dashboard_html[];
extern const size_t dashboard_html_len;

struct conn_s;

/* Answers the request with the page: 200, text/html.  Loop thread. */
void respond_dashboard(struct conn_s *c);

#endif /* COMPUTE_SERVER_DASHBOARD_H */
