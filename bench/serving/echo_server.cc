// The floor of the serving benchmark: a C++ gRPC server that speaks recurrent.v1.InferenceService
// with the same message sizes as recurrentd but does no work. StepPredict answers `open` with
// `opened` and each step message with `steps` rows of --output_size zeros; Predict answers each
// sequence with steps x --output_size zeros. Callback API, like recurrentd's StepPredict.
//
//   echo_server --port 50099 --input_size 8 --output_size 1
#include <chrono>
#include <csignal>
#include <cstdio>
#include <memory>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "grpcpp/grpcpp.h"
#include "recurrent/v1/service.grpc.pb.h"

ABSL_FLAG(int, port, 50099, "gRPC port (0: any free one, printed).");
ABSL_FLAG(int, input_size, 8, "Inputs per step of the pretend model.");
ABSL_FLAG(int, output_size, 1, "Outputs per step of the pretend model.");
ABSL_FLAG(int, spin_us, 0,
          "Busy-wait this long per step message before answering: the floor plus a pretend "
          "engine step, to see what a reaction's compute time costs beyond itself.");

namespace recurrent::bench {
namespace {

class EchoStream final : public grpc::ServerBidiReactor<v1::StepRequest, v1::StepResponse> {
 public:
  EchoStream(int input_size, int output_size, int spin_us)
      : input_size_(input_size), output_size_(output_size), spin_us_(spin_us) {
    StartRead(&request_);
  }
  void OnReadDone(bool ok) override {
    if (!ok) {
      Finish(grpc::Status::OK);
      return;
    }
    response_.Clear();
    if (request_.has_open()) {
      response_.mutable_opened()->set_model_name(request_.open().model().name());
      response_.mutable_opened()->set_model_version(1);
      response_.mutable_opened()->set_input_size(input_size_);
      response_.mutable_opened()->set_output_size(output_size_);
    } else if (request_.has_step()) {
      if (spin_us_ > 0) {
        const auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(spin_us_);
        while (std::chrono::steady_clock::now() < until) {
        }
      }
      v1::StepOutput* out = response_.mutable_output();
      out->set_steps(request_.step().steps());
      out->mutable_values()->Resize(static_cast<int>(request_.step().steps() * output_size_), 0.0f);
    } else {
      response_.set_reset_done(true);
    }
    StartWrite(&response_);
  }
  void OnWriteDone(bool ok) override {
    if (!ok) {
      Finish(grpc::Status::CANCELLED);
      return;
    }
    StartRead(&request_);
  }
  void OnDone() override { delete this; }

 private:
  const int input_size_, output_size_, spin_us_;
  v1::StepRequest request_;
  v1::StepResponse response_;
};

class EchoService final : public v1::InferenceService::CallbackService {
 public:
  EchoService(int input_size, int output_size)
      : input_size_(input_size), output_size_(output_size) {}

  grpc::ServerBidiReactor<v1::StepRequest, v1::StepResponse>* StepPredict(
      grpc::CallbackServerContext*) override {
    return new EchoStream(input_size_, output_size_, absl::GetFlag(FLAGS_spin_us));
  }

  grpc::ServerUnaryReactor* Predict(grpc::CallbackServerContext* context,
                                    const v1::PredictRequest* request,
                                    v1::PredictResponse* response) override {
    response->set_model_name(request->model().name());
    response->set_model_version(1);
    for (const v1::InputSequence& sequence : request->sequences()) {
      v1::OutputSequence* out = response->add_outputs();
      out->set_steps(sequence.steps());
      out->mutable_values()->Resize(static_cast<int>(sequence.steps() * output_size_), 0.0f);
    }
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }

 private:
  const int input_size_, output_size_;
};

int Main() {
  EchoService service(absl::GetFlag(FLAGS_input_size), absl::GetFlag(FLAGS_output_size));
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(absl::StrCat("127.0.0.1:", absl::GetFlag(FLAGS_port)),
                           grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    std::fprintf(stderr, "echo_server: cannot listen\n");
    return 1;
  }
  std::printf("listening on %d\n", port);
  std::fflush(stdout);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  int signal_number = 0;
  sigwait(&set, &signal_number);
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
  return 0;
}

}  // namespace
}  // namespace recurrent::bench

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  return recurrent::bench::Main();
}
