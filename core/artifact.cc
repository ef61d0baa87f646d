#include "core/artifact.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/crc32c.h"
#include "core/file_util.h"
#include "core/spec_proto.h"
#include "core/status_macros.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "google/protobuf/message.h"

namespace recurrent::core {
namespace {

using google::protobuf::FieldDescriptor;

// Hostile artifacts can carry megabyte-long or binary names; errors show a bounded, escaped prefix.
std::string Quote(absl::string_view text) {
  constexpr size_t kMaxShown = 64;
  const bool cut = text.size() > kMaxShown;
  return absl::StrCat("'", absl::CHexEscape(text.substr(0, kMaxShown)), cut ? "...'" : "'");
}

std::string DescribeShape(const google::protobuf::RepeatedField<int64_t>& shape) {
  constexpr int kMaxShownRank = 8;
  if (shape.size() > kMaxShownRank) return absl::StrCat("a rank-", shape.size(), " shape");
  return ShapeToString(std::vector<int64_t>(shape.begin(), shape.end()));
}

// Keeps the code, puts `context` in front of the message.
absl::Status Annotate(const absl::Status& status, absl::string_view context) {
  if (status.ok()) return status;
  return absl::Status(status.code(), absl::StrCat(context, ": ", status.message()));
}

int64_t EffectiveMaxBytes(const ArtifactLimits& limits) {
  return std::min(limits.max_bytes, kMaxSupportedArtifactBytes);
}

// Well-formed UTF-8 per RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF.
// At least as strict as protobuf's parser, so whatever passes here also parses there.
bool IsValidUtf8(absl::string_view text) {
  size_t i = 0;
  while (i < text.size()) {
    const auto lead = static_cast<unsigned char>(text[i]);
    if (lead < 0x80) {
      ++i;
      continue;
    }
    // The lead byte gives the sequence length and the smallest code point that needs it.
    size_t length = 0;
    uint32_t code_point = 0;
    uint32_t min_code_point = 0;
    if ((lead & 0xE0) == 0xC0) {
      length = 2;
      code_point = lead & 0x1Fu;
      min_code_point = 0x80;
    } else if ((lead & 0xF0) == 0xE0) {
      length = 3;
      code_point = lead & 0x0Fu;
      min_code_point = 0x800;
    } else if ((lead & 0xF8) == 0xF0) {
      length = 4;
      code_point = lead & 0x07u;
      min_code_point = 0x10000;
    } else {
      return false;  // a continuation byte or 0xF8..0xFF
    }
    if (text.size() - i < length) return false;
    for (size_t k = 1; k < length; ++k) {
      const auto continuation = static_cast<unsigned char>(text[i + k]);
      if ((continuation & 0xC0) != 0x80) return false;
      code_point = (code_point << 6) | (continuation & 0x3Fu);
    }
    if (code_point < min_code_point || code_point > 0x10FFFF ||
        (code_point >= 0xD800 && code_point <= 0xDFFF)) {
      return false;
    }
    i += length;
  }
  return true;
}

absl::Status CheckUtf8(absl::string_view text, absl::string_view where) {
  if (IsValidUtf8(text)) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(where, " is not valid UTF-8: ", Quote(text)));
}

// Walks every string in `message` by reflection, so that fields added to TrainingMetadata later
// are covered without touching this file.
absl::Status CheckStringsAreUtf8(const google::protobuf::Message& message,
                                 absl::string_view where) {
  const google::protobuf::Reflection* reflection = message.GetReflection();
  std::vector<const FieldDescriptor*> fields;
  reflection->ListFields(message, &fields);
  for (const FieldDescriptor* field : fields) {
    const std::string field_where = absl::StrCat(where, ".", field->name());
    if (field->type() == FieldDescriptor::TYPE_STRING) {
      std::string scratch;
      if (field->is_repeated()) {
        for (int i = 0; i < reflection->FieldSize(message, field); ++i) {
          RETURN_IF_ERROR(
              CheckUtf8(reflection->GetRepeatedStringReference(message, field, i, &scratch),
                        absl::StrCat(field_where, "[", i, "]")));
        }
      } else {
        RETURN_IF_ERROR(
            CheckUtf8(reflection->GetStringReference(message, field, &scratch), field_where));
      }
    } else if (field->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
      if (field->is_repeated()) {
        for (int i = 0; i < reflection->FieldSize(message, field); ++i) {
          RETURN_IF_ERROR(CheckStringsAreUtf8(reflection->GetRepeatedMessage(message, field, i),
                                              absl::StrCat(field_where, "[", i, "]")));
        }
      } else {
        RETURN_IF_ERROR(CheckStringsAreUtf8(reflection->GetMessage(message, field), field_where));
      }
    }
  }
  return absl::OkStatus();
}

// One mean/std pair of Normalization: both empty, or both `expected` long with sane values.
absl::Status ValidateNormalizationPair(absl::string_view which, const std::vector<float>& mean,
                                       const std::vector<float>& std_dev,
                                       absl::string_view size_name, int64_t expected) {
  if (mean.empty() && std_dev.empty()) return absl::OkStatus();
  if (static_cast<int64_t>(mean.size()) != expected ||
      static_cast<int64_t>(std_dev.size()) != expected) {
    return absl::InvalidArgumentError(absl::StrCat(
        "normalization: ", which, "_mean and ", which, "_std must both be empty or both hold ",
        size_name, " = ", expected, " values, got ", mean.size(), " and ", std_dev.size()));
  }
  for (size_t i = 0; i < mean.size(); ++i) {
    if (!std::isfinite(mean[i])) {
      return absl::InvalidArgumentError(
          absl::StrCat("normalization: ", which, "_mean[", i, "] is not finite: ", mean[i]));
    }
    // Written as !(x > 0) so that NaN fails too.
    if (!(std_dev[i] > 0.0f) || !std::isfinite(std_dev[i])) {
      return absl::InvalidArgumentError(absl::StrCat("normalization: ", which, "_std[", i,
                                                     "] must be finite and > 0, got ", std_dev[i]));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateNormalization(const ModelSpec& spec, const Normalization& normalization) {
  RETURN_IF_ERROR(ValidateNormalizationPair(
      "input", normalization.input_mean, normalization.input_std, "input_size", spec.input_size));
  if (spec.loss != LossType::kMse &&
      (!normalization.target_mean.empty() || !normalization.target_std.empty())) {
    return absl::InvalidArgumentError(
        absl::StrCat("normalization: target normalization needs mse loss; this model uses ",
                     LossTypeName(spec.loss), " (class labels are not normalized)"));
  }
  return ValidateNormalizationPair("target", normalization.target_mean, normalization.target_std,
                                   "output_size", spec.output_size);
}

// Appends `message` to `out`, maps in key order so that equal models give equal bytes.
// `byte_size` is message.ByteSizeLong(), just computed by the caller and at most INT32_MAX.
absl::Status AppendDeterministic(const google::protobuf::MessageLite& message, size_t byte_size,
                                 std::string* out) {
  const size_t start = out->size();
  out->resize(start + byte_size);
  google::protobuf::io::ArrayOutputStream stream(out->data() + start, static_cast<int>(byte_size));
  google::protobuf::io::CodedOutputStream coded(&stream);
  coded.SetSerializationDeterministic(true);
  message.SerializeWithCachedSizes(&coded);
  if (coded.HadError() || static_cast<size_t>(coded.ByteCount()) != byte_size) {
    return absl::InternalError(absl::StrCat("serializing ", message.GetTypeName(), " failed"));
  }
  return absl::OkStatus();
}

absl::Status CheckSize(size_t size, int64_t max_bytes, absl::string_view what) {
  if (size > static_cast<uint64_t>(std::max<int64_t>(max_bytes, 0))) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " is ", size, " bytes, over the limit of ", max_bytes, " bytes"));
  }
  return absl::OkStatus();
}

absl::Status CheckFormatVersion(uint32_t version) {
  if (version == 0) {
    return absl::DataLossError(
        "model artifact: the envelope has no format version (corrupt or truncated)");
  }
  if (version > kArtifactFormatVersion) {
    return absl::InvalidArgumentError(absl::StrCat(
        "model artifact: format version ", version, " is newer than this build reads (",
        kArtifactFormatVersion, "); load it with a newer release"));
  }
  return absl::OkStatus();
}

recurrent::v1::ModelArtifact ModelToProto(const Model& model) {
  recurrent::v1::ModelArtifact artifact;
  artifact.set_format_version(kArtifactFormatVersion);
  *artifact.mutable_spec() = ModelSpecToProto(model.spec);
  for (const ParameterInfo& info : ParameterLayout(model.spec)) {
    const Tensor& tensor = model.parameters.at(info.name);  // ValidateModel checked presence
    recurrent::v1::NamedTensor* proto = artifact.add_tensors();
    proto->set_name(info.name);
    proto->mutable_shape()->Add(tensor.shape.begin(), tensor.shape.end());
    proto->mutable_values()->Add(tensor.values.begin(), tensor.values.end());
  }
  const Normalization& normalization = model.normalization;
  recurrent::v1::Normalization* proto_normalization = artifact.mutable_normalization();
  proto_normalization->mutable_input_mean()->Add(normalization.input_mean.begin(),
                                                 normalization.input_mean.end());
  proto_normalization->mutable_input_std()->Add(normalization.input_std.begin(),
                                                normalization.input_std.end());
  proto_normalization->mutable_target_mean()->Add(normalization.target_mean.begin(),
                                                  normalization.target_mean.end());
  proto_normalization->mutable_target_std()->Add(normalization.target_std.begin(),
                                                 normalization.target_std.end());
  *artifact.mutable_training() = model.training;
  for (const auto& [key, value] : model.labels) (*artifact.mutable_labels())[key] = value;
  return artifact;
}

// Converts an intact (checksummed) artifact and validates its content. Consumes `*artifact`:
// tensor values are released as they are copied, which keeps peak memory near one extra copy.
absl::StatusOr<Model> ModelFromProto(recurrent::v1::ModelArtifact* artifact,
                                     const SpecLimits& limits) {
  Model model;
  if (!artifact->has_spec()) return absl::InvalidArgumentError("no spec");
  ASSIGN_OR_RETURN(model.spec, ModelSpecFromProto(artifact->spec(), limits));

  // The spec is validated, so every expected shape is small and its element count cannot
  // overflow. Shapes from the artifact are only ever compared with these, never multiplied.
  const std::vector<ParameterInfo> layout = ParameterLayout(model.spec);
  std::map<std::string, const std::vector<int64_t>*> expected_shapes;
  for (const ParameterInfo& info : layout) expected_shapes.emplace(info.name, &info.shape);

  for (recurrent::v1::NamedTensor& proto : *artifact->mutable_tensors()) {
    const auto expected = expected_shapes.find(proto.name());
    if (expected == expected_shapes.end()) {
      return absl::InvalidArgumentError(absl::StrCat("unexpected tensor ", Quote(proto.name()),
                                                     " for a ", DescribeSpec(model.spec)));
    }
    if (model.parameters.contains(proto.name())) {
      return absl::InvalidArgumentError(absl::StrCat("duplicate tensor ", Quote(proto.name())));
    }
    const std::vector<int64_t>& shape = *expected->second;
    if (!std::equal(proto.shape().begin(), proto.shape().end(), shape.begin(), shape.end())) {
      return absl::InvalidArgumentError(absl::StrCat("tensor ", Quote(proto.name()), " has shape ",
                                                     DescribeShape(proto.shape()), ", expected ",
                                                     ShapeToString(shape)));
    }
    const int64_t count = Tensor::ElementCount(shape);
    if (proto.values_size() != count) {
      return absl::InvalidArgumentError(absl::StrCat("tensor ", Quote(proto.name()), " holds ",
                                                     proto.values_size(), " values, its shape ",
                                                     ShapeToString(shape), " needs ", count));
    }
    Tensor tensor(shape, std::vector<float>(proto.values().begin(), proto.values().end()));
    google::protobuf::RepeatedField<float>().Swap(proto.mutable_values());  // frees the copy
    model.parameters.emplace(proto.name(), std::move(tensor));
  }
  // Reports missing tensors and non-finite values.
  RETURN_IF_ERROR(ValidateParameters(model.spec, model.parameters));

  const recurrent::v1::Normalization& normalization = artifact->normalization();
  model.normalization.input_mean.assign(normalization.input_mean().begin(),
                                        normalization.input_mean().end());
  model.normalization.input_std.assign(normalization.input_std().begin(),
                                       normalization.input_std().end());
  model.normalization.target_mean.assign(normalization.target_mean().begin(),
                                         normalization.target_mean().end());
  model.normalization.target_std.assign(normalization.target_std().begin(),
                                        normalization.target_std().end());
  RETURN_IF_ERROR(ValidateNormalization(model.spec, model.normalization));

  model.training.Swap(artifact->mutable_training());
  for (const auto& [key, value] : artifact->labels()) model.labels.emplace(key, value);
  return model;
}

}  // namespace

absl::Status ValidateModel(const Model& model, const SpecLimits& limits) {
  RETURN_IF_ERROR(ValidateSpec(model.spec, limits));
  RETURN_IF_ERROR(ValidateParameters(model.spec, model.parameters));
  RETURN_IF_ERROR(ValidateNormalization(model.spec, model.normalization));
  for (const auto& [key, value] : model.labels) {
    RETURN_IF_ERROR(CheckUtf8(key, "label key"));
    RETURN_IF_ERROR(CheckUtf8(value, absl::StrCat("label ", Quote(key))));
  }
  return CheckStringsAreUtf8(model.training, "training");
}

absl::StatusOr<std::string> SerializeModel(const Model& model, const ArtifactLimits& limits) {
  RETURN_IF_ERROR(Annotate(ValidateModel(model, limits.spec_limits), "cannot serialize model"));
  const int64_t max_bytes = EffectiveMaxBytes(limits);

  std::string artifact_bytes;
  {
    const recurrent::v1::ModelArtifact artifact = ModelToProto(model);
    const size_t artifact_size = artifact.ByteSizeLong();
    // Checked before allocating; the envelope adds a few bytes, checked below.
    RETURN_IF_ERROR(CheckSize(artifact_size, max_bytes, "serialized model"));
    RETURN_IF_ERROR(AppendDeterministic(artifact, artifact_size, &artifact_bytes));
  }  // the proto copy of the parameters is released here

  recurrent::v1::ArtifactEnvelope envelope;
  envelope.set_format_version(kArtifactFormatVersion);
  envelope.set_crc32c(Crc32c(artifact_bytes));
  envelope.set_artifact(std::move(artifact_bytes));
  const size_t envelope_size = envelope.ByteSizeLong();
  RETURN_IF_ERROR(CheckSize(kArtifactMagic.size() + envelope_size, max_bytes, "serialized model"));
  std::string bytes(kArtifactMagic);
  RETURN_IF_ERROR(AppendDeterministic(envelope, envelope_size, &bytes));
  return bytes;
}

absl::StatusOr<Model> ParseModel(absl::string_view bytes, const ArtifactLimits& limits) {
  if (bytes.empty()) return absl::DataLossError("model artifact is empty");
  RETURN_IF_ERROR(CheckSize(bytes.size(), EffectiveMaxBytes(limits), "model artifact"));
  if (!absl::StartsWith(bytes, kArtifactMagic)) {
    if (bytes.size() < kArtifactMagic.size() && absl::StartsWith(kArtifactMagic, bytes)) {
      return absl::DataLossError(absl::StrCat("model artifact is truncated: ", bytes.size(),
                                              " bytes, shorter than its ", kArtifactMagic.size(),
                                              "-byte magic"));
    }
    return absl::DataLossError(
        absl::StrCat("not a model artifact: expected the magic \"", kArtifactMagic, "\", found \"",
                     absl::CHexEscape(bytes.substr(0, kArtifactMagic.size())), "\""));
  }
  const absl::string_view body = bytes.substr(kArtifactMagic.size());
  if (body.empty()) {
    return absl::DataLossError("model artifact is truncated: nothing follows the magic");
  }

  recurrent::v1::ModelArtifact artifact;
  uint32_t format_version = 0;
  {
    recurrent::v1::ArtifactEnvelope envelope;
    // body.size() <= INT32_MAX: EffectiveMaxBytes caps it.
    if (!envelope.ParseFromArray(body.data(), static_cast<int>(body.size()))) {
      return absl::DataLossError(
          absl::StrCat("model artifact is corrupt or truncated: its envelope (", body.size(),
                       " bytes after the magic) is not a valid ArtifactEnvelope"));
    }
    format_version = envelope.format_version();
    // Before the checksum: a newer format may checksum differently.
    RETURN_IF_ERROR(CheckFormatVersion(format_version));
    if (envelope.artifact().empty()) {
      return absl::DataLossError(
          "model artifact is corrupt or truncated: its envelope holds no artifact");
    }
    const uint32_t computed = Crc32c(envelope.artifact());
    if (computed != envelope.crc32c()) {
      return absl::DataLossError(
          absl::StrCat("model artifact is corrupt or truncated: CRC-32C mismatch (stored 0x",
                       absl::Hex(envelope.crc32c(), absl::kZeroPad8), ", computed 0x",
                       absl::Hex(computed, absl::kZeroPad8), ")"));
    }
    if (!artifact.ParseFromString(envelope.artifact())) {
      return absl::DataLossError(
          "model artifact passed its checksum but is not a valid ModelArtifact protobuf "
          "(written by a faulty writer?)");
    }
  }  // the envelope's copy of the artifact bytes is released here
  if (artifact.format_version() != format_version) {
    return absl::DataLossError(absl::StrCat(
        "model artifact: format version ", artifact.format_version(),
        " inside the artifact disagrees with version ", format_version, " on its envelope"));
  }
  absl::StatusOr<Model> model = ModelFromProto(&artifact, limits.spec_limits);
  if (!model.ok()) return Annotate(model.status(), "model artifact");
  return model;
}

absl::Status WriteModelFile(const std::string& path, const Model& model,
                            const ArtifactLimits& limits) {
  ASSIGN_OR_RETURN(const std::string bytes, SerializeModel(model, limits));
  return WriteFileAtomically(path, bytes);
}

absl::StatusOr<Model> ReadModelFile(const std::string& path, const ArtifactLimits& limits) {
  ASSIGN_OR_RETURN(const std::string bytes,
                   ReadFileBounded(path, EffectiveMaxBytes(limits), "model file"));
  absl::StatusOr<Model> model = ParseModel(bytes, limits);
  if (!model.ok()) return Annotate(model.status(), path);
  return model;
}

}  // namespace recurrent::core
