# Tuned kernels: tuning/db.json (written by `qhalide-explore --tune`) lists, per exact problem
# shape, the schedule knobs that won for a (family, target tag). Each entry adds ONE extra kernel
#   qh_<family>__<tag>__<shape>   (same generator and params as the family, knobs from the entry)
# and a row QH_TUNED(family, tag, shape, "knobs") in build/generated/qh_tuned_table.inc. At run
# time conv2d()/dense() take the tuned kernel when the family, the chosen tag and the shape key
# (qh::conv2d_shape_key / dense_shape_key) match; otherwise the family's default kernel.
# Entries for families or tags this build does not have (e.g. GPU targets) are skipped.
set(QHALIDE_TUNING_DB "${PROJECT_SOURCE_DIR}/tuning/db.json" CACHE FILEPATH
    "Tuning database read by the AOT build (empty: no tuned kernels)")
set(QH_TUNED_TABLE "")
if (QHALIDE_TUNING_DB AND EXISTS "${QHALIDE_TUNING_DB}")
  set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS "${QHALIDE_TUNING_DB}")
  file(READ "${QHALIDE_TUNING_DB}" qh_db)
  string(JSON qh_n ERROR_VARIABLE qh_err LENGTH "${qh_db}" entries)
  if (qh_err)
    message(FATAL_ERROR "${QHALIDE_TUNING_DB}: no \"entries\" array (${qh_err})")
  endif ()
  set(qh_i 0)
  while (qh_i LESS qh_n)
    foreach (field family target shape knobs)
      string(JSON qh_${field} ERROR_VARIABLE qh_err GET "${qh_db}" entries ${qh_i} ${field})
      if (qh_err)
        message(FATAL_ERROR "${QHALIDE_TUNING_DB}: entry ${qh_i} has no \"${field}\"")
      endif ()
    endforeach ()
    math(EXPR qh_i "${qh_i} + 1")
    get_property(qh_gen GLOBAL PROPERTY QH_FAMILY_GENERATOR_${qh_family})
    if (NOT qh_gen OR NOT qh_target IN_LIST QH_TARGET_TAGS)
      message(STATUS "tuning db: skipping ${qh_family}/${qh_target}/${qh_shape} (not in this build)")
      continue ()
    endif ()
    if (NOT qh_shape MATCHES "^[a-z0-9]+$")
      message(FATAL_ERROR "${QHALIDE_TUNING_DB}: bad shape key '${qh_shape}'")
    endif ()
    get_property(qh_params GLOBAL PROPERTY QH_FAMILY_PARAMS_${qh_family})
    set(fn qh_${qh_family}__${qh_target}__${qh_shape})
    if (TARGET ${fn})
      message(FATAL_ERROR "${QHALIDE_TUNING_DB}: duplicate entry ${qh_family}/${qh_target}/${qh_shape}")
    endif ()
    add_halide_library(${fn} FROM qh_generators
      GENERATOR ${qh_gen}
      FUNCTION_NAME ${fn}
      TARGETS ${QH_HALIDE_TARGET_${qh_target}}
      USE_RUNTIME qh_halide_runtime
      PARAMS schedule=${qh_target} "knobs=${qh_knobs}" ${qh_params}
      ASSEMBLY asm)
    string(APPEND QH_TUNED_TABLE "QH_TUNED(${qh_family}, ${qh_target}, ${qh_shape}, \"${qh_knobs}\")\n")
    list(APPEND QH_KERNEL_LIBS ${fn})
    list(APPEND QH_KERNEL_HEADERS ${fn}.h)
    message(STATUS "tuning db: ${fn} (knobs: ${qh_knobs})")
  endwhile ()
endif ()
