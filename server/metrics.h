// Prometheus metrics of recurrentd (served by prometheus-cpp's exposer at /metrics on
// --metrics_port). Names follow Prometheus conventions: the recurrent_ prefix, base units,
// _total for counters, histograms for latencies, bounded labels (an RPC name, a gRPC code, a job
// state, the id of a running job: at most --training_workers of them).
//
//   recurrent_requests_total{rpc,code}            counter, every RPC of every service
//   recurrent_request_duration_seconds{rpc}       histogram (a stream's whole life for streams)
//   recurrent_step_duration_seconds               histogram of engine Step calls (StepPredict)
//   recurrent_step_batch_size                     histogram of streams per engine Step call
//   recurrent_active_streams                      gauge, open StepPredict sessions
//   recurrent_stream_evictions_total{reason}      counter: idle (TTL) sessions cancelled
//   recurrent_job_queue_depth, recurrent_job_queue_capacity, recurrent_jobs{state}  (not with
//   --role=serving, which runs no job queue)
//   recurrent_running_job_loss{job_id}, recurrent_running_job_sequences_per_second{job_id}
//   recurrent_model_cache_bytes, recurrent_model_cache_models, recurrent_model_loads_total,
//   recurrent_model_cache_hits_total, recurrent_model_cache_misses_total,
//   recurrent_model_cache_evictions_total
//   recurrent_process_cpu_seconds_total, recurrent_process_resident_memory_bytes
//   recurrent_build_info{version}                 gauge, 1
// The job, cache and process metrics are read at scrape time (StateCollector).
//
// Thread-safe (prometheus-cpp's metrics are).
#ifndef RECURRENT_SERVER_METRICS_H_
#define RECURRENT_SERVER_METRICS_H_

#include <memory>
#include <string>

#include "grpcpp/support/server_interceptor.h"
#include "grpcpp/support/status.h"
#include "prometheus/collectable.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"
#include "server/job_manager.h"
#include "server/model_registry.h"

namespace recurrent::server {

class ServerMetrics {
 public:
  ServerMetrics();

  std::shared_ptr<prometheus::Registry> registry() const { return registry_; }

  // `method` is gRPC's full method path ("/recurrent.v1.InferenceService/Predict"); the label is
  // the method's name ("Predict").
  void RecordRequest(const std::string& method, grpc::StatusCode code, double seconds);
  void RecordStep(double seconds, int64_t batch);
  void StreamOpened() { active_streams_->Increment(); }
  void StreamClosed() { active_streams_->Decrement(); }
  void StreamEvicted() { idle_evictions_->Increment(); }

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>* requests_;
  prometheus::Family<prometheus::Histogram>* request_seconds_;
  prometheus::Histogram* step_seconds_;
  prometheus::Histogram* step_batch_;
  prometheus::Gauge* active_streams_;
  prometheus::Counter* idle_evictions_;
};

// Reads the job manager, the registry and the process at every scrape. `jobs` is null on a
// replica that does not train (--role=serving): the job metrics are then left out.
class StateCollector : public prometheus::Collectable {
 public:
  StateCollector(const JobManager* jobs, ModelRegistry* registry)
      : jobs_(jobs), registry_(registry) {}
  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  void CollectJobs(std::vector<prometheus::MetricFamily>* families) const;

  const JobManager* const jobs_;
  ModelRegistry* const registry_;
};

// Times and counts every RPC (installed with ServerBuilder::experimental().
// SetInterceptorCreators).
class MetricsInterceptorFactory : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit MetricsInterceptorFactory(ServerMetrics* metrics) : metrics_(metrics) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override;

 private:
  ServerMetrics* const metrics_;
};

}  // namespace recurrent::server

#endif  // RECURRENT_SERVER_METRICS_H_
