# SPDX-License-Identifier: MIT
# Compiles a file into a program, as a C array.  Included, this defines
#
#   embed_file(TARGET FILE NAME HEADER)
#
# which adds to TARGET a generated source defining `const char NAME[]`,
# FILE's bytes followed by a NUL that is not counted, and
# `const size_t NAME_len`, the number of bytes; HEADER, the file that
# declares them, is included there so that the compiler checks the two
# agree.  The source is written again whenever FILE changes.  The build
# runs this same file as a script to write it:
#
#   cmake -DIN=FILE -DOUT=NAME.c -DNAME=NAME [-DHEADER=/abs/file.h]
#         -P embed_file.cmake

if(NOT CMAKE_SCRIPT_MODE_FILE)
  set(EMBED_FILE_SCRIPT ${CMAKE_CURRENT_LIST_FILE})
  function(embed_file target file name header)
    set(out ${CMAKE_CURRENT_BINARY_DIR}/${name}.c)
    add_custom_command(
      OUTPUT ${out}
      COMMAND ${CMAKE_COMMAND} -DIN=${file} -DOUT=${out} -DNAME=${name}
              -DHEADER=${header} -P ${EMBED_FILE_SCRIPT}
      DEPENDS ${file} ${EMBED_FILE_SCRIPT}
      COMMENT "Embedding ${file} as ${name}"
      VERBATIM)
    target_sources(${target} PRIVATE ${out})
  endfunction()
  return()
endif()

foreach(var IN ITEMS IN OUT NAME)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "embed_file.cmake: -D${var}=... is missing")
  endif()
endforeach()

file(READ "${IN}" hex HEX)
string(LENGTH "${hex}" digits)
math(EXPR len "${digits} / 2")
# '\xNN' character constants: 0xe2 would not fit a signed char without a
# warning.  Twelve bytes a line: 12 * 7 characters.
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "'\\\\x\\1'," bytes "${hex}")
string(REPEAT "." 84 line)
string(REGEX REPLACE "(${line})" "\\1\n  " bytes "${bytes}")
get_filename_component(in_name "${IN}" NAME)

set(include "#include <stddef.h>\n")
if(DEFINED HEADER)
  string(APPEND include "\n#include \"${HEADER}\"\n")
endif()
file(WRITE "${OUT}"
  "/* Generated from ${in_name} by embed_file.cmake: do not edit. */\n"
  "${include}\n"
  "const char ${NAME}[] = {\n  ${bytes}'\\0'};\n"
  "const size_t ${NAME}_len = ${len};\n")
