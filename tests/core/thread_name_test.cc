#include "core/thread_name.h"

#include <sys/syscall.h>
#include <unistd.h>

#include <fstream>
#include <string>
#include <thread>

#include "gtest/gtest.h"

namespace recurrent::core {
namespace {

// What the kernel shows for this thread (ps, top and perf read the same file).
std::string KernelNameOfThisThread() {
  std::ifstream comm("/proc/self/task/" + std::to_string(syscall(SYS_gettid)) + "/comm");
  std::string name;
  std::getline(comm, name);
  return name;
}

TEST(ThreadNameTest, NamesTheCallingThreadOnly) {
  const std::string main_before = KernelNameOfThisThread();
  std::string seen_inside, reported_inside;
  std::thread([&] {
    NameCurrentThread("rcnt-test");
    seen_inside = KernelNameOfThisThread();
    reported_inside = CurrentThreadName();
  }).join();
  EXPECT_EQ(seen_inside, "rcnt-test");
  EXPECT_EQ(reported_inside, "rcnt-test");
  EXPECT_EQ(KernelNameOfThisThread(), main_before);
}

TEST(ThreadNameTest, LongNamesAreCutToTheKernelLimit) {
  std::string seen;
  std::thread([&] {
    NameCurrentThread("rcnt-a-name-longer-than-fifteen");
    seen = KernelNameOfThisThread();
  }).join();
  EXPECT_EQ(seen, std::string("rcnt-a-name-longer-than-fifteen").substr(0, kMaxThreadNameLength));
}

TEST(ThreadNameTest, ThreadsStartedByANamedThreadInheritItsName) {
  std::string child;
  std::thread([&] {
    NameCurrentThread("rcnt-parent");
    std::thread([&] { child = KernelNameOfThisThread(); }).join();
  }).join();
  EXPECT_EQ(child, "rcnt-parent");
}

}  // namespace
}  // namespace recurrent::core
