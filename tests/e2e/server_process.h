// Helpers of the end-to-end tests: a free port, a recurrentd child process, a /metrics scrape.
#ifndef RECURRENT_TESTS_E2E_SERVER_PROCESS_H_
#define RECURRENT_TESTS_E2E_SERVER_PROCESS_H_

#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "grpcpp/create_channel.h"
#include "recurrent/v1/service.grpc.pb.h"

namespace recurrent::e2e {

inline int FreePort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address));
  socklen_t length = sizeof(address);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  ::close(fd);
  return ntohs(address.sin_port);
}

// A recurrentd child process; SIGKILLed if a test fails before stopping it.
class Server {
 public:
  // `extra_env` ("NAME=value") is added to the child's environment.
  Server(const std::string& data_dir, int port, int metrics_port,
         std::vector<std::string> extra_flags = {}, std::vector<std::string> extra_env = {})
      : port_(port) {
    std::vector<std::string> args = {
        "recurrentd", "--data_dir=" + data_dir, "--port=" + std::to_string(port),
        "--metrics_port=" + std::to_string(metrics_port), "--shutdown_grace_seconds=2"};
    args.insert(args.end(), extra_flags.begin(), extra_flags.end());
    // Built before fork: the child of a threaded process may only exec.
    std::vector<char*> argv;
    for (std::string& arg : args) argv.push_back(arg.data());
    argv.push_back(nullptr);
    std::vector<char*> envp;
    for (char** variable = environ; *variable != nullptr; ++variable) envp.push_back(*variable);
    for (std::string& variable : extra_env) envp.push_back(variable.data());
    envp.push_back(nullptr);
    pid_ = ::fork();
    if (pid_ == 0) {
      ::execve(RECURRENTD_PATH, argv.data(), envp.data());
      ::_exit(127);
    }
    target_ = "127.0.0.1:" + std::to_string(port);
  }
  ~Server() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  // Waits until the server answers (at most 30 s). A channel whose first connection was refused
  // (the server was not listening yet) stays failed for its backoff period, so each attempt uses
  // a fresh channel; the one that answers is kept.
  bool Ready() {
    const absl::Time deadline = absl::Now() + absl::Seconds(30);
    while (absl::Now() < deadline) {
      grpc::ChannelArguments unique;
      unique.SetInt("recurrent.e2e.attempt", attempts_++);  // no subchannel sharing
      auto channel = grpc::CreateCustomChannel(target_, grpc::InsecureChannelCredentials(), unique);
      grpc::ClientContext context;
      context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(1));
      v1::ListModelsResponse response;
      if (v1::ModelService::NewStub(channel)
              ->ListModels(&context, v1::ListModelsRequest(), &response)
              .ok()) {
        channel_ = channel;
        return true;
      }
      absl::SleepFor(absl::Milliseconds(50));
    }
    return false;
  }
  void SendTerm() { ::kill(pid_, SIGTERM); }
  // SIGTERM and the exit status.
  // SIGKILL: the crash the server must survive on restart.
  void Kill() {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }
  int Stop() {
    ::kill(pid_, SIGTERM);
    return Wait();
  }
  int Wait() {
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
  std::shared_ptr<grpc::Channel> channel() { return channel_; }
  pid_t pid() const { return pid_; }

 private:
  int port_;
  std::string target_;
  int attempts_ = 0;
  pid_t pid_ = -1;
  std::shared_ptr<grpc::Channel> channel_;
};

// The whole file at `path` ("" if unreadable): a test's view of a command's output.
inline std::string Slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// GET http://127.0.0.1:port/metrics with a plain socket; the response body.
inline std::string Scrape(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
    ::close(fd);
    return "";
  }
  const std::string request = "GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n";
  (void)!::write(fd, request.data(), request.size());
  std::string response;
  char buffer[4096];
  for (ssize_t got; (got = ::read(fd, buffer, sizeof(buffer))) > 0;) response.append(buffer, got);
  ::close(fd);
  const size_t body = response.find("\r\n\r\n");
  return body == std::string::npos ? "" : response.substr(body + 4);
}

}  // namespace recurrent::e2e

#endif  // RECURRENT_TESTS_E2E_SERVER_PROCESS_H_
