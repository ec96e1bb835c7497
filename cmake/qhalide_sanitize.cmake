# ASan + UBSan build of the host code (QHALIDE_SANITIZE) and the libFuzzer targets of fuzz/
# (QHALIDE_FUZZ, clang only). Included at the end of the top-level CMakeLists.txt, once every
# target exists: the flags go on every host C++ library and executable of this project, but not
# on the Halide generators (they run at build time; libHalide is not instrumented anyway) and not
# on the AOT kernels (Halide-compiled objects). scripts/fuzz.sh configures build-asan with both,
# QH_TARGET_TAGS=generic, QHALIDE_BUILD_CUDA=OFF and QHALIDE_BUILD_BENCH=OFF (fuzz/README.md).
if (QHALIDE_FUZZ)
  if (NOT CMAKE_CXX_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR "QHALIDE_FUZZ needs clang (libFuzzer): configure with CMAKE_CXX_COMPILER=clang++")
  endif ()
  add_subdirectory(fuzz)
endif ()

set(QH_SANITIZE_FLAGS -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer)
set(QH_SANITIZE_COMPILE_FLAGS ${QH_SANITIZE_FLAGS} -g)
if (QHALIDE_FUZZ)
  list(APPEND QH_SANITIZE_COMPILE_FLAGS -fsanitize=fuzzer-no-link)  # coverage for libFuzzer
endif ()

set(QH_SANITIZED_TARGETS "")
foreach (dir IN ITEMS ${PROJECT_SOURCE_DIR} ${PROJECT_SOURCE_DIR}/tests ${PROJECT_SOURCE_DIR}/fuzz)
  if (NOT EXISTS ${dir}/CMakeLists.txt)
    continue ()
  endif ()
  get_property(targets DIRECTORY ${dir} PROPERTY BUILDSYSTEM_TARGETS)
  foreach (t IN LISTS targets)
    get_target_property(type ${t} TYPE)
    if (NOT type MATCHES "^(STATIC_LIBRARY|OBJECT_LIBRARY|EXECUTABLE)$")
      continue ()
    endif ()
    # Build-time Halide generators, the objects shared with them and the kernels stay plain.
    if (t MATCHES "^(qh_generators|qh_generator_objs|qh_explore_testing)$" OR t MATCHES "^qh_halide_runtime"
        OR t MATCHES "^qh_.*__")  # AOT kernels (add_halide_library)
      continue ()
    endif ()
    # test_no_alloc replaces malloc (it counts allocations), which ASan cannot share.
    if (t STREQUAL "test_no_alloc")
      set_target_properties(${t} PROPERTIES EXCLUDE_FROM_ALL ON)
      continue ()
    endif ()
    target_compile_options(${t} PRIVATE $<$<COMPILE_LANGUAGE:C,CXX>:${QH_SANITIZE_COMPILE_FLAGS}>)
    if (type STREQUAL "EXECUTABLE")
      get_target_property(is_fuzzer ${t} QH_FUZZ_TARGET)
      if (is_fuzzer)
        target_link_options(${t} PRIVATE ${QH_SANITIZE_FLAGS} -fsanitize=fuzzer)
        target_compile_options(${t} PRIVATE -fsanitize=fuzzer)
      else ()
        target_link_options(${t} PRIVATE ${QH_SANITIZE_FLAGS})
      endif ()
    endif ()
    list(APPEND QH_SANITIZED_TARGETS ${t})
  endforeach ()
endforeach ()
list(JOIN QH_SANITIZED_TARGETS " " _qh_list)
message(STATUS "qhalide: ASan+UBSan on: ${_qh_list}")
