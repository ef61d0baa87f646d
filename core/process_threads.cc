#include "core/process_threads.h"

#include <unistd.h>

#include <cstdlib>

namespace recurrent::core {

void EnsurePassiveOpenMpWait(char** argv) {
  if (std::getenv("OMP_WAIT_POLICY") != nullptr) return;
  setenv("OMP_WAIT_POLICY", "PASSIVE", /*overwrite=*/0);
  execv("/proc/self/exe", argv);
  // Only reached if exec failed: carry on with the default policy.
}

}  // namespace recurrent::core
