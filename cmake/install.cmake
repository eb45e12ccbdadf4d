# SPDX-License-Identifier: MIT
# Installs the header, both libraries, a CMake package (find_package(tandem)
# gives tandem::tandem and tandem::tandem_static), tandem.pc and
# tandem-static.pc.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

install(TARGETS tandem tandem_static EXPORT tandemTargets
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(FILES include/tandem.h DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(FILES ${PROJECT_BINARY_DIR}/include/tandem/version.h
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/tandem)

set(TANDEM_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/tandem)
install(EXPORT tandemTargets NAMESPACE tandem:: DESTINATION ${TANDEM_CMAKE_DIR})
configure_package_config_file(cmake/tandemConfig.cmake.in
  ${PROJECT_BINARY_DIR}/tandemConfig.cmake INSTALL_DESTINATION ${TANDEM_CMAKE_DIR})
# The ABI policy: before 1.0 only the same 0.minor is compatible (a request
# for 0.1 takes 0.1.x, not 0.2); from 1.0 on, the same major.
if(PROJECT_VERSION_MAJOR EQUAL 0)
  set(TANDEM_COMPATIBILITY SameMinorVersion)
else()
  set(TANDEM_COMPATIBILITY SameMajorVersion)
endif()
write_basic_package_version_file(${PROJECT_BINARY_DIR}/tandemConfigVersion.cmake
  COMPATIBILITY ${TANDEM_COMPATIBILITY})
install(FILES ${PROJECT_BINARY_DIR}/tandemConfig.cmake
              ${PROJECT_BINARY_DIR}/tandemConfigVersion.cmake
        DESTINATION ${TANDEM_CMAKE_DIR})

# Relocatable: the .pc finds the prefix from its own place, so an install
# with `cmake --install --prefix DIR` works without reconfiguring.
file(RELATIVE_PATH TANDEM_PC_TO_PREFIX
     /prefix/${CMAKE_INSTALL_LIBDIR}/pkgconfig /prefix)

# ck is a link-time dependency only (tandem.h includes nothing of it), so
# the .pc files name its library, not `Requires.private: ck`: pkg-config
# would pass ck's Cflags (-D__x86_64__) to every user.
set(TANDEM_PC_CK_LIBS "")
foreach(dir IN LISTS CK_LIBRARY_DIRS)
  if(NOT dir IN_LIST CMAKE_C_IMPLICIT_LINK_DIRECTORIES)
    string(APPEND TANDEM_PC_CK_LIBS "-L${dir} ")
  endif()
endforeach()
set(TANDEM_PC_CK_STATIC "${TANDEM_PC_CK_LIBS}")
foreach(lib IN LISTS CK_LIBRARIES)
  string(APPEND TANDEM_PC_CK_LIBS "-l${lib}")
  # tandem-static.pc takes ck's archive by name when there is one.
  find_library(TANDEM_CK_ARCHIVE_${lib} NAMES lib${lib}.a
               HINTS ${CK_LIBRARY_DIRS})
  if(TANDEM_CK_ARCHIVE_${lib})
    string(APPEND TANDEM_PC_CK_STATIC "-l:lib${lib}.a")
  else()
    string(APPEND TANDEM_PC_CK_STATIC "-l${lib}")
  endif()
endforeach()
# tandem-static.pc: libtandem.a and libuv's static library, for
# `cc -static`.  libuv.pc says -luv, which Debian ships only shared (its
# archive is libuv_a.a, described by libuv-static.pc), so `pkg-config
# --static tandem` cannot link with -static there; tandem-static follows
# libuv's own convention instead.
pkg_check_modules(TANDEM_UV_STATIC QUIET libuv-static>=1.44)
if(TANDEM_UV_STATIC_FOUND)
  set(TANDEM_PC_UV_STATIC "libuv-static >= 1.44")
else()
  set(TANDEM_PC_UV_STATIC "libuv >= 1.44")
endif()
configure_file(cmake/tandem.pc.in ${PROJECT_BINARY_DIR}/tandem.pc @ONLY)
configure_file(cmake/tandem-static.pc.in ${PROJECT_BINARY_DIR}/tandem-static.pc
               @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/tandem.pc
              ${PROJECT_BINARY_DIR}/tandem-static.pc
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
