// End to end: TLS, mutual TLS and bearer tokens on the real recurrentd, with certificates made at
// test time by openssl, through the real CLI and through stubs for every RPC.
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "grpcpp/security/credentials.h"
#include "gtest/gtest.h"
#include "tests/e2e/server_process.h"

namespace recurrent::e2e {
namespace {

class SecurityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = (std::filesystem::temp_directory_path() /
            absl::StrCat("recurrent-security-",
                         ::testing::UnitTest::GetInstance()->current_test_info()->name()))
               .string();
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    // A CA, a server certificate for localhost / 127.0.0.1 and a client certificate.
    const std::string script = absl::StrCat(
        "cd ", dir_, " && set -e && ",
        "openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 1 "
        "-subj /CN=test-ca 2>/dev/null && ",
        "for who in server client; do ",
        "openssl req -newkey rsa:2048 -nodes -keyout $who.key -out $who.csr -subj /CN=$who "
        "2>/dev/null; done && ",
        "printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n' > server.ext && ",
        "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out "
        "server.pem -days 1 -extfile server.ext 2>/dev/null && ",
        "openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out "
        "client.pem -days 1 2>/dev/null");
    ASSERT_EQ(std::system(script.c_str()), 0) << "openssl failed";
    std::ofstream(dir_ + "/tokens") << "# role token\n"
                                    << "admin admin-token-0123456789abcdef\n"
                                    << "predict predict-token-0123456789abcdef\n";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // Runs the CLI against `port`; returns its exit code, with stdout in *out.
  int Cli(int port, const std::string& args, std::string* out = nullptr) {
    const std::string command =
        absl::StrCat(RECURRENT_CLI_PATH, " --server localhost:", port, " --timeout 5 ", args, " >",
                     dir_, "/out 2>", dir_, "/err");
    const int status = std::system(command.c_str());
    if (out != nullptr) *out = Slurp(dir_ + "/out") + Slurp(dir_ + "/err");
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

  std::string dir_;
};

TEST_F(SecurityTest, TlsServesOnlyTlsClientsThatTrustItsCa) {
  const int port = FreePort();
  Server server(
      dir_ + "/data", port, FreePort(),
      {"--tls_cert_file=" + dir_ + "/server.pem", "--tls_key_file=" + dir_ + "/server.key"});
  std::string out;
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (Cli(port, "--tls_ca_file " + dir_ + "/ca.pem health", &out) != 0 &&
         absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(100));
  }
  EXPECT_NE(out.find("SERVING"), std::string::npos) << out;
  EXPECT_EQ(Cli(port, "--tls_ca_file " + dir_ + "/ca.pem models list", &out), 0) << out;
  EXPECT_EQ(Cli(port, "models list", &out), 3) << "a plaintext client must not get through";
  // A CA that did not sign the server's certificate is refused.
  EXPECT_EQ(Cli(port, "--tls_ca_file " + dir_ + "/client.pem models list", &out), 3) << out;
  EXPECT_EQ(server.Stop(), 0);
}

TEST_F(SecurityTest, MutualTlsNeedsAClientCertificateFromTheCa) {
  const int port = FreePort();
  Server server(
      dir_ + "/data", port, FreePort(),
      {"--tls_cert_file=" + dir_ + "/server.pem", "--tls_key_file=" + dir_ + "/server.key",
       "--tls_client_ca_file=" + dir_ + "/ca.pem"});
  const std::string tls = "--tls_ca_file " + dir_ + "/ca.pem ";
  const std::string client_cert =
      "--tls_cert_file " + dir_ + "/client.pem --tls_key_file " + dir_ + "/client.key ";
  std::string out;
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (Cli(port, tls + client_cert + "health", &out) != 0 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(100));
  }
  EXPECT_EQ(Cli(port, tls + client_cert + "models list", &out), 0) << out;
  EXPECT_NE(Cli(port, tls + "models list", &out), 0) << "no client certificate must be refused";
  EXPECT_EQ(server.Stop(), 0);
}

TEST_F(SecurityTest, TokensGateEveryRpcByRole) {
  const int port = FreePort();
  Server server(dir_ + "/data", port, FreePort(), {"--auth_tokens_file=" + dir_ + "/tokens"});
  auto channel =
      grpc::CreateChannel("127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials());
  ASSERT_TRUE(
      channel->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(20)));
  auto training = v1::TrainingService::NewStub(channel);
  auto inference = v1::InferenceService::NewStub(channel);
  auto models = v1::ModelService::NewStub(channel);
  using Call = std::function<grpc::Status(grpc::ClientContext*)>;
  struct Rpc {
    std::string name;
    bool admin;
    Call call;
  };
  const std::vector<Rpc> rpcs = {
      {"Train", true,
       [&](grpc::ClientContext* c) {
         v1::TrainResponse r;
         return training->Train(c, v1::TrainRequest(), &r);
       }},
      {"WatchJob", false,
       [&](grpc::ClientContext* c) {
         v1::WatchJobRequest q;
         q.set_job_id("job-nope");
         auto reader = training->WatchJob(c, q);
         v1::JobEvent e;
         while (reader->Read(&e)) {
         }
         return reader->Finish();
       }},
      {"GetJob", false,
       [&](grpc::ClientContext* c) {
         v1::Job r;
         return training->GetJob(c, v1::GetJobRequest(), &r);
       }},
      {"ListJobs", false,
       [&](grpc::ClientContext* c) {
         v1::ListJobsResponse r;
         return training->ListJobs(c, v1::ListJobsRequest(), &r);
       }},
      {"CancelJob", true,
       [&](grpc::ClientContext* c) {
         v1::Job r;
         return training->CancelJob(c, v1::CancelJobRequest(), &r);
       }},
      {"UploadDataset", true,
       [&](grpc::ClientContext* c) {
         v1::DatasetInfo r;
         auto writer = training->UploadDataset(c, &r);
         writer->WritesDone();
         return writer->Finish();
       }},
      {"Predict", false,
       [&](grpc::ClientContext* c) {
         v1::PredictResponse r;
         return inference->Predict(c, v1::PredictRequest(), &r);
       }},
      {"StepPredict", false,
       [&](grpc::ClientContext* c) {
         auto stream = inference->StepPredict(c);
         stream->WritesDone();
         v1::StepResponse r;
         while (stream->Read(&r)) {
         }
         return stream->Finish();
       }},
      {"ListModels", false,
       [&](grpc::ClientContext* c) {
         v1::ListModelsResponse r;
         return models->ListModels(c, v1::ListModelsRequest(), &r);
       }},
      {"GetModel", false,
       [&](grpc::ClientContext* c) {
         v1::ModelInfo r;
         return models->GetModel(c, v1::GetModelRequest(), &r);
       }},
      {"SetAlias", true,
       [&](grpc::ClientContext* c) {
         v1::ModelInfo r;
         return models->SetAlias(c, v1::SetAliasRequest(), &r);
       }},
      {"DeleteModelVersion", true,
       [&](grpc::ClientContext* c) {
         v1::ModelInfo r;
         return models->DeleteModelVersion(c, v1::DeleteModelVersionRequest(), &r);
       }},
      {"ImportModel", true,
       [&](grpc::ClientContext* c) {
         v1::ModelVersionInfo r;
         return models->ImportModel(c, v1::ImportModelRequest(), &r);
       }},
      {"ExportModel", true,
       [&](grpc::ClientContext* c) {
         v1::ExportModelResponse r;
         return models->ExportModel(c, v1::ExportModelRequest(), &r);
       }},
  };
  auto run = [&](const Rpc& rpc, const std::string& token) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    if (!token.empty()) context.AddMetadata("authorization", "Bearer " + token);
    return rpc.call(&context).error_code();
  };
  for (const Rpc& rpc : rpcs) {
    SCOPED_TRACE(rpc.name);
    EXPECT_EQ(run(rpc, ""), grpc::StatusCode::UNAUTHENTICATED);
    EXPECT_EQ(run(rpc, "admin-token-0123456789abcdeX"), grpc::StatusCode::UNAUTHENTICATED);
    const grpc::StatusCode as_predict = run(rpc, "predict-token-0123456789abcdef");
    const grpc::StatusCode as_admin = run(rpc, "admin-token-0123456789abcdef");
    // Past authentication the empty requests fail on their content, never on the token.
    EXPECT_NE(as_admin, grpc::StatusCode::UNAUTHENTICATED);
    EXPECT_NE(as_admin, grpc::StatusCode::PERMISSION_DENIED);
    if (rpc.admin) {
      EXPECT_EQ(as_predict, grpc::StatusCode::PERMISSION_DENIED);
    } else {
      EXPECT_NE(as_predict, grpc::StatusCode::UNAUTHENTICATED);
      EXPECT_NE(as_predict, grpc::StatusCode::PERMISSION_DENIED);
    }
  }
  // Health stays open; the CLI sends --token / $RECURRENT_TOKEN.
  std::string out;
  EXPECT_EQ(Cli(port, "health", &out), 0) << out;
  EXPECT_EQ(Cli(port, "models list", &out), 1);
  EXPECT_NE(out.find("UNAUTHENTICATED"), std::string::npos) << out;
  EXPECT_EQ(Cli(port, "--token predict-token-0123456789abcdef models list", &out), 0) << out;
  EXPECT_EQ(Cli(port, "--token predict-token-0123456789abcdef models alias m production 1", &out),
            1);
  EXPECT_NE(out.find("PERMISSION_DENIED"), std::string::npos) << out;
  EXPECT_EQ(server.Stop(), 0);
}

TEST_F(SecurityTest, BadSecurityConfigurationStopsTheServerWithAClearError) {
  std::ofstream(dir_ + "/weak") << "admin short\n";
  const std::string command =
      absl::StrCat(RECURRENTD_PATH, " --port=0 --metrics_port=0 --data_dir=", dir_,
                   "/data --auth_tokens_file=", dir_, "/weak 2>", dir_, "/err");
  EXPECT_NE(std::system(command.c_str()), 0);
  EXPECT_NE(Slurp(dir_ + "/err").find("at least 16 characters"), std::string::npos);
  const std::string half_tls =
      absl::StrCat(RECURRENTD_PATH, " --port=0 --metrics_port=0 --data_dir=", dir_,
                   "/data --tls_cert_file=", dir_, "/server.pem 2>", dir_, "/err");
  EXPECT_NE(std::system(half_tls.c_str()), 0);
  EXPECT_NE(Slurp(dir_ + "/err").find("--tls_key_file"), std::string::npos);
}

}  // namespace
}  // namespace recurrent::e2e
