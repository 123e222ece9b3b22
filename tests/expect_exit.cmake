# Runs CMD with ARGS (a ;-list) and requires exit code EXPECT_RC and, if given, EXPECT in its
# combined output.
execute_process(COMMAND ${CMD} ${ARGS} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err
                TIMEOUT 20)
message("${out}${err}")
if(NOT rc EQUAL EXPECT_RC)
  message(FATAL_ERROR "exit code ${rc}, expected ${EXPECT_RC}")
endif()
if(DEFINED EXPECT)
  string(FIND "${out}${err}" "${EXPECT}" pos)
  if(pos EQUAL -1)
    message(FATAL_ERROR "output lacks the expected text: ${EXPECT}")
  endif()
endif()
