// TEMPORARY placeholder while the oneDNN implementation is being written (this session).
#include "core/network.h"

namespace recurrent::core {
struct Network::Impl {
  ModelSpec spec;
};
Network::Network(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Network::~Network() = default;
absl::StatusOr<std::unique_ptr<Network>> Network::Create(const ModelSpec&, const ParameterSet&,
                                                         const NetworkOptions&) {
  return absl::UnimplementedError("in progress");
}
const ModelSpec& Network::spec() const { return impl_->spec; }
ParameterSet Network::GetParameters() const { return {}; }
absl::Status Network::SetParameters(const ParameterSet&) { return absl::UnimplementedError(""); }
absl::Status Network::Forward(const Tensor&, const RecurrentState*, ForwardResult*,
                              const ForwardOptions&) {
  return absl::UnimplementedError("");
}
absl::Status Network::ForwardBackward(const Tensor&, const Targets&, const RecurrentState*,
                                      TrainingResult*) {
  return absl::UnimplementedError("");
}
int64_t Network::step_state_size() const { return 0; }
absl::Status Network::Step(const float*, int64_t, float* const*, float*) {
  return absl::UnimplementedError("");
}
}  // namespace recurrent::core
