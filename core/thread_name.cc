#include "core/thread_name.h"

#include <pthread.h>

#include <array>

namespace recurrent::core {

void NameCurrentThread(std::string_view name) {
  const std::string cut(name.substr(0, kMaxThreadNameLength));
  pthread_setname_np(pthread_self(), cut.c_str());
}

std::string CurrentThreadName() {
  std::array<char, kMaxThreadNameLength + 1> name{};
  if (pthread_getname_np(pthread_self(), name.data(), name.size()) != 0) return "";
  return std::string(name.data());
}

}  // namespace recurrent::core
