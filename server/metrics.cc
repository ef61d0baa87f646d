#include "server/metrics.h"

#include <unistd.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace recurrent::server {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

// Latency buckets from 50 us (a single step) to 60 s (a big Predict or a long watch).
const prometheus::Histogram::BucketBoundaries& LatencyBuckets() {
  static const auto* const buckets = new prometheus::Histogram::BucketBoundaries{
      50e-6, 100e-6, 200e-6, 500e-6, 1e-3, 2e-3, 5e-3, 10e-3, 20e-3, 50e-3,
      0.1,   0.2,    0.5,    1.0,    2.0,  5.0,  10.0, 30.0,  60.0};
  return *buckets;
}

std::string MethodName(const std::string& method) {
  const size_t slash = method.find_last_of('/');
  return slash == std::string::npos ? method : method.substr(slash + 1);
}

std::string CodeName(grpc::StatusCode code) {
  static const char* const kNames[] = {"OK",
                                       "CANCELLED",
                                       "UNKNOWN",
                                       "INVALID_ARGUMENT",
                                       "DEADLINE_EXCEEDED",
                                       "NOT_FOUND",
                                       "ALREADY_EXISTS",
                                       "PERMISSION_DENIED",
                                       "RESOURCE_EXHAUSTED",
                                       "FAILED_PRECONDITION",
                                       "ABORTED",
                                       "OUT_OF_RANGE",
                                       "UNIMPLEMENTED",
                                       "INTERNAL",
                                       "UNAVAILABLE",
                                       "DATA_LOSS",
                                       "UNAUTHENTICATED"};
  const int index = static_cast<int>(code);
  return index >= 0 && index < 17 ? kNames[index] : "UNKNOWN";
}

MetricFamily Family(std::string name, std::string help, MetricType type) {
  MetricFamily family;
  family.name = std::move(name);
  family.help = std::move(help);
  family.type = type;
  return family;
}

ClientMetric Value(MetricType type, double value, std::vector<ClientMetric::Label> labels = {}) {
  ClientMetric metric;
  metric.label = std::move(labels);
  if (type == MetricType::Counter) {
    metric.counter.value = value;
  } else {
    metric.gauge.value = value;
  }
  return metric;
}

MetricFamily Single(std::string name, std::string help, MetricType type, double value) {
  MetricFamily family = Family(std::move(name), std::move(help), type);
  family.metric.push_back(Value(type, value));
  return family;
}

// utime + stime of this process, and its resident set, from /proc.
std::pair<double, double> ProcessCpuAndRss() {
  double cpu = 0.0, rss = 0.0;
  std::ifstream stat("/proc/self/stat");
  std::string content((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  // Fields after the command name (which may contain spaces) start after the last ')'.
  const size_t close = content.rfind(')');
  if (close != std::string::npos) {
    std::istringstream fields(content.substr(close + 2));
    std::string field;
    for (int i = 3; i <= 15 && fields >> field; ++i) {
      if (i == 14 || i == 15) cpu += std::stod(field);  // utime, stime in clock ticks
    }
    cpu /= static_cast<double>(::sysconf(_SC_CLK_TCK));
  }
  std::ifstream statm("/proc/self/statm");
  long pages_total = 0, pages_resident = 0;
  if (statm >> pages_total >> pages_resident) {
    rss = static_cast<double>(pages_resident) * static_cast<double>(::sysconf(_SC_PAGESIZE));
  }
  return {cpu, rss};
}

class MetricsInterceptor : public grpc::experimental::Interceptor {
 public:
  MetricsInterceptor(grpc::experimental::ServerRpcInfo* info, ServerMetrics* metrics)
      : method_(info->method()), metrics_(metrics), start_(std::chrono::steady_clock::now()) {}

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::PRE_SEND_STATUS)) {
      const std::chrono::duration<double> elapsed = std::chrono::steady_clock::now() - start_;
      metrics_->RecordRequest(method_, methods->GetSendStatus().error_code(), elapsed.count());
    }
    methods->Proceed();
  }

 private:
  const std::string method_;
  ServerMetrics* const metrics_;
  const std::chrono::steady_clock::time_point start_;
};

}  // namespace

ServerMetrics::ServerMetrics() : registry_(std::make_shared<prometheus::Registry>()) {
  requests_ = &prometheus::BuildCounter()
                   .Name("recurrent_requests_total")
                   .Help("RPCs handled, by method and gRPC status code.")
                   .Register(*registry_);
  request_seconds_ = &prometheus::BuildHistogram()
                          .Name("recurrent_request_duration_seconds")
                          .Help("RPC latency in seconds (a stream's whole life for streams).")
                          .Register(*registry_);
  step_seconds_ = &prometheus::BuildHistogram()
                       .Name("recurrent_step_duration_seconds")
                       .Help("Engine Step calls of StepPredict batching, in seconds.")
                       .Register(*registry_)
                       .Add({}, LatencyBuckets());
  step_batch_ =
      &prometheus::BuildHistogram()
           .Name("recurrent_step_batch_size")
           .Help("Streams whose step one engine Step call ran.")
           .Register(*registry_)
           .Add({}, prometheus::Histogram::BucketBoundaries{1, 2, 4, 8, 16, 32, 64, 128, 256});
  active_streams_ = &prometheus::BuildGauge()
                         .Name("recurrent_active_streams")
                         .Help("Open StepPredict sessions.")
                         .Register(*registry_)
                         .Add({});
  idle_evictions_ = &prometheus::BuildCounter()
                         .Name("recurrent_stream_evictions_total")
                         .Help("StepPredict sessions ended by the server, by reason.")
                         .Register(*registry_)
                         .Add({{"reason", "idle"}});
}

void ServerMetrics::RecordRequest(const std::string& method, grpc::StatusCode code,
                                  double seconds) {
  const std::string rpc = MethodName(method);
  requests_->Add({{"rpc", rpc}, {"code", CodeName(code)}}).Increment();
  request_seconds_->Add({{"rpc", rpc}}, LatencyBuckets()).Observe(seconds);
}

void ServerMetrics::RecordStep(double seconds, int64_t batch) {
  step_seconds_->Observe(seconds);
  step_batch_->Observe(static_cast<double>(batch));
}

void StateCollector::CollectJobs(std::vector<MetricFamily>* out) const {
  std::vector<MetricFamily>& families = *out;
  families.push_back(Single("recurrent_job_queue_depth", "Training jobs waiting in the queue.",
                            MetricType::Gauge, static_cast<double>(jobs_->queue_depth())));
  families.push_back(Single("recurrent_job_queue_capacity",
                            "Queued jobs the server accepts (--max_queued_jobs).",
                            MetricType::Gauge, static_cast<double>(jobs_->queue_capacity())));
  MetricFamily by_state =
      Family("recurrent_jobs", "Training jobs known to this server, by state.", MetricType::Gauge);
  const std::vector<int64_t> counts = jobs_->CountByState();
  for (int state = 1; state < static_cast<int>(counts.size()); ++state) {
    std::string name = v1::JobState_Name(static_cast<v1::JobState>(state));
    name = absl::AsciiStrToLower(name.substr(std::string("JOB_STATE_").size()));
    by_state.metric.push_back(
        Value(MetricType::Gauge, static_cast<double>(counts[state]), {{"state", name}}));
  }
  families.push_back(std::move(by_state));
  MetricFamily loss =
      Family("recurrent_running_job_loss", "Training loss of the last step of each running job.",
             MetricType::Gauge);
  MetricFamily speed = Family("recurrent_running_job_sequences_per_second",
                              "Training throughput of each running job.", MetricType::Gauge);
  for (const v1::Job& job : jobs_->List(v1::JOB_STATE_RUNNING, "", 0)) {
    loss.metric.push_back(
        Value(MetricType::Gauge, job.progress().train_loss(), {{"job_id", job.id()}}));
    speed.metric.push_back(
        Value(MetricType::Gauge, job.progress().sequences_per_second(), {{"job_id", job.id()}}));
  }
  families.push_back(std::move(loss));
  families.push_back(std::move(speed));
}

std::vector<MetricFamily> StateCollector::Collect() const {
  std::vector<MetricFamily> families;
  if (jobs_ != nullptr) CollectJobs(&families);
  const CacheStats cache = registry_->stats();
  families.push_back(Single("recurrent_model_cache_bytes", "Parameter bytes of cached models.",
                            MetricType::Gauge, static_cast<double>(cache.cached_bytes)));
  families.push_back(Single("recurrent_model_cache_models", "Model versions in the cache.",
                            MetricType::Gauge, static_cast<double>(cache.cached_models)));
  families.push_back(Single("recurrent_model_loads_total", "Model versions read from disk.",
                            MetricType::Counter, static_cast<double>(cache.loads)));
  families.push_back(Single("recurrent_model_cache_hits_total", "Loads served from the cache.",
                            MetricType::Counter, static_cast<double>(cache.hits)));
  families.push_back(Single("recurrent_model_cache_misses_total", "Loads that read the disk.",
                            MetricType::Counter, static_cast<double>(cache.misses)));
  families.push_back(Single("recurrent_model_cache_evictions_total",
                            "Models dropped to stay in the cache budget.", MetricType::Counter,
                            static_cast<double>(cache.evictions)));
  const auto [cpu, rss] = ProcessCpuAndRss();
  families.push_back(Single("recurrent_process_cpu_seconds_total",
                            "User and system CPU time of recurrentd.", MetricType::Counter, cpu));
  families.push_back(Single("recurrent_process_resident_memory_bytes",
                            "Resident memory of recurrentd.", MetricType::Gauge, rss));
  MetricFamily build =
      Family("recurrent_build_info", "Always 1; the labels say what runs.", MetricType::Gauge);
  build.metric.push_back(Value(MetricType::Gauge, 1.0, {{"version", "0.1.0"}}));
  families.push_back(std::move(build));
  return families;
}

grpc::experimental::Interceptor* MetricsInterceptorFactory::CreateServerInterceptor(
    grpc::experimental::ServerRpcInfo* info) {
  // gRPC owns and deletes the interceptor when the call ends.
  return new MetricsInterceptor(info, metrics_);
}

}  // namespace recurrent::server
