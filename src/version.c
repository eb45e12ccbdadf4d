/* SPDX-License-Identifier: MIT */
/*
 * version.c: the version of the library a program runs against, which may
 * differ from the tandem/version.h it was compiled with (tandem_version()).
 */
#include "tandem.h"

unsigned tandem_version(void) {
  return TANDEM_VERSION_HEX;
}

const char *tandem_version_string(void) {
  return TANDEM_VERSION_STRING;
}
