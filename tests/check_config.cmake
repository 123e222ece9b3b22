# Runs `ternd --check-config CONFIG [EXTRA_ARG]` and requires exit code EXPECT_RC and, in its
# output, EXPECT or the first line of EXPECT_FILE (read here, not at configure time: ';' is no
# list separator). EXTRA_ARG is one more argument, such as --strict.
if(DEFINED EXPECT_FILE)
  file(READ ${EXPECT_FILE} EXPECT)
  string(REGEX REPLACE "\n.*" "" EXPECT "${EXPECT}")
endif()
execute_process(COMMAND ${TERND} --check-config ${CONFIG} ${EXTRA_ARG}
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err TIMEOUT 20)
set(all "${out}${err}")
message("${all}")
if(NOT rc EQUAL EXPECT_RC)
  message(FATAL_ERROR "exit code ${rc}, expected ${EXPECT_RC}")
endif()
string(FIND "${all}" "${EXPECT}" pos)
if(pos EQUAL -1)
  message(FATAL_ERROR "output lacks the expected text: ${EXPECT}")
endif()
