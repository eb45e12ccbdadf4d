# SPDX-License-Identifier: MIT
# readme_sync.cmake: fails unless the README shows FILE whole and unchanged:
# the ```c block right after the line "<!-- FILE, verbatim -->".  Run by
# ctest (readme_quickstart), so the README's example is the one CI builds.
#   cmake -DREADME=README.md -DFILE=examples/quickstart.c -DNAME=... -P ...
cmake_minimum_required(VERSION 3.18)
file(READ ${README} readme)
file(READ ${FILE} code)
set(marker "<!-- ${NAME}, verbatim -->")
string(FIND "${readme}" "${marker}" at)
if(at LESS 0)
  message(FATAL_ERROR "${README} has no line ${marker}")
endif()
string(SUBSTRING "${readme}" ${at} -1 rest)
string(FIND "${rest}" "\n```c\n" open)
if(open LESS 0)
  message(FATAL_ERROR "${README}: no ```c block after ${marker}")
endif()
math(EXPR open "${open} + 6")
string(SUBSTRING "${rest}" ${open} -1 rest)
string(FIND "${rest}" "\n```" close)
if(close LESS 0)
  message(FATAL_ERROR "${README}: the block after ${marker} never ends")
endif()
math(EXPR close "${close} + 1")
string(SUBSTRING "${rest}" 0 ${close} shown)
if(NOT shown STREQUAL code)
  file(WRITE ${CMAKE_CURRENT_BINARY_DIR}/readme_shown.c "${shown}")
  message(FATAL_ERROR "${README} does not show ${FILE} as it is: copy the "
          "file into the block after ${marker} (what it shows now is in "
          "${CMAKE_CURRENT_BINARY_DIR}/readme_shown.c; diff the two)")
endif()
message(STATUS "${README} shows ${FILE} verbatim")
