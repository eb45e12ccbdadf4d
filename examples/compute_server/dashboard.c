/* SPDX-License-Identifier: MIT */
/* GET /dashboard: the page compiled in from dashboard.html. */
#include "dashboard.h"

#include "server.h"

void respond_dashboard(conn_t *c) {
  /* The page changes with the binary, not while it runs; no-cache makes a
   * browser ask again after an upgrade instead of showing the old one. */
  conn_respond(c, 200, "Cache-Control: no-cache\r\n",
               "text/html; charset=utf-8", dashboard_html, dashboard_html_len);
}
