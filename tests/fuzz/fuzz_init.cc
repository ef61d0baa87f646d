// libFuzzer's initialization hook, shared by every target in this folder.
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerInitialize(int* /*argc*/, char*** /*argv*/) {
  recurrent::fuzz::SilenceProtobufLogs();
  return 0;
}
