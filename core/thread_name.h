// Names the calling thread, so that `top -H`, `ps -L`, `perf` and debuggers tell the server's
// threads apart (the batch worker from the stream I/O thread, a training job from the janitor).
// Threads started by a named thread (OpenMP's, say) inherit its name.
#ifndef RECURRENT_CORE_THREAD_NAME_H_
#define RECURRENT_CORE_THREAD_NAME_H_

#include <string>
#include <string_view>

namespace recurrent::core {

// Linux keeps at most this many characters of a thread's name; longer names are cut.
inline constexpr size_t kMaxThreadNameLength = 15;

// Best effort: naming never fails the caller (a thread without a name works the same).
void NameCurrentThread(std::string_view name);

// The calling thread's name as the kernel reports it ("" if it cannot be read).
std::string CurrentThreadName();

}  // namespace recurrent::core

#endif  // RECURRENT_CORE_THREAD_NAME_H_
