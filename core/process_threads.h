// Process-level OpenMP policy for binaries that run the engine.
//
// oneDNN runs on OpenMP, whose default wait policy spins idle threads for a while between
// parallel regions. On a machine where anything else competes for the cores, those spinning
// threads steal time from the threads doing work: 2-thread RNN primitives ran 10-300x slower here
// next to a busy process. OMP_WAIT_POLICY=PASSIVE avoids that, but libgomp reads it only once,
// when the library loads, before main() runs; setting it later has no effect.
#ifndef RECURRENT_CORE_PROCESS_THREADS_H_
#define RECURRENT_CORE_PROCESS_THREADS_H_

namespace recurrent::core {

// Call first thing in main(). If OMP_WAIT_POLICY is unset, sets it to PASSIVE and re-executes
// the program (same argv) so the OpenMP runtime starts with it; returns normally when the
// variable is already set (by the user, or by the re-execution). On exec failure it returns and
// the process goes on with the default policy.
void EnsurePassiveOpenMpWait(char** argv);

}  // namespace recurrent::core

#endif  // RECURRENT_CORE_PROCESS_THREADS_H_
