// The versioned model registry: model artifacts (core/artifact.h) stored in a data directory that
// several replicas may share (a Kubernetes volume), with aliases, and an LRU cache of loaded
// models for inference. gRPC-free: server/model_service.cc maps it onto the ModelService API.
//
// On disk, under `root`:
//
//   models/<name>/v<N>.rcnt              version N of model <name> (N = 1, 2, ...), an artifact
//   models/<name>/v<N>.deleted           tombstone of a deleted version: its number is never reused
//   models/<name>/aliases/<alias>.alias  the version an alias points at, as decimal text + "\n"
//
// Anything else (temporary files of writes in progress or of a crash, foreign files) is ignored.
// Each alias is its own file so that two replicas moving different aliases never lose each
// other's update (one shared aliases file would be read-modify-write).
//
// Guarantees:
//   - Versions are immutable and a version number is never reused, even after a delete: a replica
//     that cached version N never serves stale bytes for it. Register writes a temporary file,
//     fsyncs it, and claims v<N>.rcnt with link(), which fails if the name is taken (by another
//     replica racing on the same volume); it then tries N+1. Needs a filesystem with hard links
//     (local filesystems, NFS).
//   - Alias files are replaced atomically (core::WriteFileAtomically). An alias moves only after
//     its new version has loaded cleanly into the cache (the warm-up).
//   - Every artifact is verified (CRC and content, core::ParseModel) when the registry first sees
//     it and again on every load. A file that fails is reported in problems() and the log and
//     skipped: it is not a version that Resolve returns, and the rest of the registry works.
//   - Versions, aliases and deletes made by other replicas appear without a restart: the
//     registry rescans the directory when a lookup finds nothing (a miss) and when its last scan
//     is older than RegistryOptions::rescan_interval. A scan reads each new artifact once, in
//     full, to verify it and to index its spec and metadata; known files are only stat'ed.
//   - Not guaranteed across replicas: DeleteVersion checks the aliases on disk and then deletes,
//     so a SetAlias on another replica in between can leave an alias pointing at a deleted
//     version (Resolve then answers NotFound for that alias until it is moved).
//
// Error codes (messages name the model, version, alias or path):
//   InvalidArgument     a bad model or alias name, a version < 1, both a version and an alias.
//   NotFound            no such model, version or alias.
//   FailedPrecondition  DeleteVersion while an alias points at the version; a stored artifact
//                       that is intact but unusable here (over the limits, newer format).
//   DataLoss            a stored artifact that is corrupt (checksum, truncation).
//   ResourceExhausted   Register over max_models or max_versions_per_model, SetAlias over
//                       max_aliases_per_model.
//   Aborted             Register lost the race for a version number 1000 times in a row.
//   others              OS errors of file operations (PermissionDenied, ...), with the path.
//
// Thread safety: every method is thread-safe, and several instances (in one process or many) may
// share one root. A cache hit holds the registry's mutex for a few map operations. I/O happens on
// the calling thread: a cache miss reads the file (concurrent Loads of the same version wait for
// that one read); the lookup that finds the index older than rescan_interval runs the scan while
// the others go on with the current index; a lookup that misses waits for a scan, and for a
// write or scan of this instance in progress.
#ifndef RECURRENT_SERVER_MODEL_REGISTRY_H_
#define RECURRENT_SERVER_MODEL_REGISTRY_H_

#include <sys/stat.h>
#include <sys/types.h>

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <shared_mutex>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "core/artifact.h"
#include "core/model_spec.h"
#include "recurrent/v1/model.pb.h"

namespace recurrent::server {

// Every limit of the registry. The defaults suit one server process with a few GiB of memory.
struct RegistryOptions {
  // Upper bound on the parameter bytes (ParameterBytes) the cache keeps loaded. A model larger
  // than the whole budget is still returned by Load but not kept. Models that callers still hold
  // (shared_ptr) after eviction use memory outside this budget.
  int64_t cache_budget_bytes = int64_t{2} << 30;
  // Applied to every artifact written and read.
  core::ArtifactLimits artifact_limits;
  // A lookup rescans the directory when the last scan started longer ago than this (the lookup
  // that notices does the scan; concurrent lookups keep using the current index). A server that
  // wants no lookup ever to scan calls Rescan() from its own timer more often than this.
  absl::Duration rescan_interval = absl::Seconds(1);
  // A lookup that finds nothing rescans (and waits for it) unless a scan started less than this
  // long ago, so that requests for missing models cannot keep the disk busy.
  absl::Duration miss_rescan_interval = absl::Milliseconds(100);
  // Model and alias names: 1 to max_name_length characters of [A-Za-z0-9._-], the first one a
  // letter or digit (so never "", ".", ".." or a path).
  int64_t max_name_length = 128;
  // Register refuses (ResourceExhausted) a new model past max_models, a new version when the
  // model already has max_versions_per_model; a scan indexes no more than these (the extra ones
  // are reported in problems()). SetAlias refuses a new alias past max_aliases_per_model.
  int64_t max_models = 10000;
  int64_t max_versions_per_model = 10000;
  int64_t max_aliases_per_model = 1000;
  // Where problems (corrupt files, unreadable directories) are logged, one line each, when first
  // seen. Empty: stderr. Called without any registry lock held; must be thread-safe.
  std::function<void(absl::string_view message)> log;
};

// Which version a request means, as in proto ModelRef: a version number (> 0), or an alias, or
// neither for the newest version. Setting both is InvalidArgument.
struct ModelRef {
  std::string name;
  int64_t version = 0;
  std::string alias;
};

// A model in memory, immutable, shared by the cache and every caller that uses it. Holding the
// shared_ptr pins this version (e.g. for the life of a StepPredict stream) whatever happens to
// aliases, the cache or the files afterwards.
struct LoadedModel {
  std::string name;
  int64_t version = 0;
  core::Model model;
  int64_t parameter_bytes = 0;  // the cache's size of this entry: ParameterBytes(model)
};

// What GetModel reports about one version (proto ModelVersionInfo).
struct VersionInfo {
  int64_t version = 0;
  core::ModelSpec spec;
  absl::Time created;           // the artifact file's modification time
  int64_t size_bytes = 0;       // the artifact file's size
  int64_t parameter_bytes = 0;  // the cache footprint when loaded
  recurrent::v1::TrainingMetadata training;
  std::map<std::string, std::string> labels;
  std::vector<std::string> aliases;  // the aliases pointing at this version, sorted
};

// GetModel's answer (proto ModelInfo). Versions ascending; only intact versions appear.
struct ModelInfo {
  std::string name;
  std::vector<VersionInfo> versions;
  std::map<std::string, int64_t> aliases;
};

// ListModels' entry (proto ModelSummary). A model exists while its directory does, so a model
// whose versions were all deleted is listed with version_count 0 and latest_version 0.
struct ModelSummary {
  std::string name;
  int64_t version_count = 0;   // intact versions
  int64_t latest_version = 0;  // 0 when there is none
  std::map<std::string, int64_t> aliases;
};

// A file or directory the registry skips, and why (a corrupt artifact, an unreadable directory,
// a malformed alias file, a limit). Kept while the cause is on disk.
struct RegistryProblem {
  std::string path;
  absl::Status status;
};

// Counters since the registry was opened, plus the cache's current size.
struct CacheStats {
  // Load answered from the cache, including after waiting for another thread's load of it.
  int64_t hits = 0;
  int64_t misses = 0;         // Load had to read the file
  int64_t loads = 0;          // files read and verified successfully by Load (and SetAlias)
  int64_t load_failures = 0;  // reads by Load that failed
  int64_t evictions = 0;      // entries dropped to stay within the budget
  int64_t cached_models = 0;  // entries in the cache now
  int64_t cached_bytes = 0;   // their parameter bytes
};

// Bytes of float32 parameters of `model`: the cache's size of it.
int64_t ParameterBytes(const core::Model& model);

// OK iff `name` is a valid model or alias name under `max_length` (see RegistryOptions).
absl::Status ValidateModelName(absl::string_view name, int64_t max_length);
// A valid name that is not all digits (it would read as a version) and not "latest".
absl::Status ValidateAliasName(absl::string_view alias, int64_t max_length);

class ModelRegistry {
  // Lets Open use std::make_unique while the constructor stays out of reach of other callers.
  struct ConstructorKey {
    explicit ConstructorKey() = default;
  };

 public:
  // Opens the registry at `root`, creating `root/models` if it is missing, and scans it.
  // Fails if the directory cannot be created or listed; corrupt entries do not fail it.
  // A read-only directory opens fine (lookups work, writes fail with PermissionDenied).
  static absl::StatusOr<std::unique_ptr<ModelRegistry>> Open(std::string root,
                                                             RegistryOptions options = {});

  // For Open only (the key is private).
  ModelRegistry(ConstructorKey, std::string root, RegistryOptions options);
  ModelRegistry(const ModelRegistry&) = delete;
  ModelRegistry& operator=(const ModelRegistry&) = delete;
  ~ModelRegistry() = default;

  // Stores `model` as the next version of `name` (creating the model) and returns its number:
  // one more than the highest number ever used for the model, on disk, by any replica. The file is
  // durable when this returns OK. Not loaded into the cache (SetAlias or Load does that).
  // InvalidArgument for a bad name or a model that fails core::ValidateModel or the limits.
  absl::StatusOr<int64_t> Register(absl::string_view name, const core::Model& model);

  // The version `ref` means now: ref.version if it exists, the alias's target, or the newest
  // intact version. NotFound names what is missing; DataLoss/FailedPrecondition for a version
  // that exists but is corrupt or unusable.
  absl::StatusOr<int64_t> Resolve(const ModelRef& ref);

  // Version `version` of `name`, from the cache or read from disk, verified, and then cached
  // (evicting least recently used entries over the budget). Concurrent loads of one version read
  // the file once. A file found corrupt now is reported and skipped from then on.
  absl::StatusOr<std::shared_ptr<const LoadedModel>> Load(absl::string_view name, int64_t version);
  // Resolve(ref), then Load; the result names the version it resolved to.
  absl::StatusOr<std::shared_ptr<const LoadedModel>> Load(const ModelRef& ref);

  // Points `alias` of `name` at `version` (creating or moving it), after loading that version
  // into the cache: it must exist and load cleanly. Requests resolved afterwards get the new
  // version; callers holding a LoadedModel keep theirs.
  absl::Status SetAlias(absl::string_view name, absl::string_view alias, int64_t version);
  // Removes `alias` of `name`; NotFound if it does not exist.
  absl::Status RemoveAlias(absl::string_view name, absl::string_view alias);

  // Deletes version `version` of `name` (its file, even a corrupt one, and its cache entry) and
  // leaves a tombstone so that the number is never reused. FailedPrecondition naming the aliases
  // while any alias points at it (checked on disk); NotFound if there is no such file.
  absl::Status DeleteVersion(absl::string_view name, int64_t version);

  // Summaries of every model, sorted by name.
  std::vector<ModelSummary> ListModels();
  // Every intact version of `name` with its metadata, and its aliases; NotFound if no such model.
  absl::StatusOr<ModelInfo> GetModel(absl::string_view name);

  // Rescans the directory now (waiting for a scan in progress). Returns the error if `root/models`
  // cannot be listed; the index then stays as it was (and problems() lists the error). Problems
  // with single files are not errors.
  absl::Status Rescan();

  // What the last scan and the loads since found wrong, sorted by path.
  std::vector<RegistryProblem> problems() const;
  CacheStats stats() const;

  const std::string& root() const { return root_; }
  const RegistryOptions& options() const { return options_; }

 private:
  // Identifies the content of a file that is immutable by contract: a changed signature means
  // the file was replaced (by hand), and it is verified again.
  struct FileSignature {
    int64_t size = 0;
    int64_t mtime_ns = 0;  // since the Unix epoch; also the version's creation time
    ino_t inode = 0;
    friend bool operator==(const FileSignature&, const FileSignature&) = default;
  };
  // An intact version: what GetModel reports, without the parameters.
  struct VersionEntry {
    FileSignature file;
    core::ModelSpec spec;
    recurrent::v1::TrainingMetadata training;
    std::map<std::string, std::string> labels;
    int64_t parameter_bytes = 0;
  };
  // A version whose file is on disk but cannot be served.
  struct BrokenVersion {
    FileSignature file;
    absl::Status status;  // DataLoss, FailedPrecondition or the OS error
  };
  struct ModelEntry {
    std::map<int64_t, VersionEntry> versions;  // intact
    std::map<int64_t, BrokenVersion> broken;
    std::map<std::string, int64_t> aliases;  // as on disk; a target may be missing or broken
  };
  using CacheKey = std::pair<std::string, int64_t>;  // (model name, version)
  struct CacheEntry {
    std::shared_ptr<const LoadedModel> model;
    std::list<CacheKey>::iterator lru_position;
  };
  struct ModelOnDisk;  // one listing of a model directory (model_registry.cc)

  static FileSignature SignatureOf(const struct stat& info);
  static VersionEntry DescribeVersion(const core::Model& model, const FileSignature& file);
  // Lists `model_dir` (stat'ing version files and reading alias files, no artifact reads).
  // Problems with single entries go to `problems`; the Status is for the directory itself.
  static absl::StatusOr<ModelOnDisk> ListModelDirectory(const std::string& model_dir,
                                                        const RegistryOptions& options,
                                                        std::vector<RegistryProblem>& problems);

  std::string ModelDirectory(absl::string_view name) const;
  std::string VersionPath(absl::string_view name, int64_t version) const;
  std::string AliasDirectory(absl::string_view name) const;
  std::string AliasPath(absl::string_view name, absl::string_view alias) const;

  // Rescans if the index is older than rescan_interval and no other thread holds disk_mutex_.
  void RefreshIfStale() ABSL_LOCKS_EXCLUDED(disk_mutex_, mu_);
  // After a miss observed at `miss_time`: makes sure a scan that started after the miss has
  // completed (waiting for the one in progress, or running one), unless the last scan started
  // less than miss_rescan_interval before the miss.
  void RefreshAfterMiss(absl::Time miss_time) ABSL_LOCKS_EXCLUDED(disk_mutex_, mu_);
  // Lists the directory, verifies new files, and replaces the index with what is on disk.
  absl::Status ScanLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(disk_mutex_) ABSL_LOCKS_EXCLUDED(mu_);

  absl::StatusOr<int64_t> ResolveLocked(const ModelRef& ref) const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  // Puts a loaded model into the cache (if its version is still indexed) and evicts over budget.
  void InsertLocked(const std::shared_ptr<const LoadedModel>& loaded)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void EraseFromCacheLocked(const CacheKey& key) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Records a version found unusable by a load, so that lookups skip it until its file changes.
  void MarkBrokenLocked(const std::string& name, int64_t version, const absl::Status& status)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Log(absl::string_view message) const ABSL_LOCKS_EXCLUDED(mu_);

  const std::string root_;  // without a trailing slash
  const RegistryOptions options_;

  // Lock order: disk_mutex_, then mu_. Never the reverse, and no file I/O under mu_.
  //
  // disk_mutex_ serializes this instance's changes to the directory and its scans, so that a scan
  // never replaces the index with a listing taken before this instance's own write. Held during
  // file I/O. Lookups TryLock it for the periodic rescan and wait for it only after a miss.
  std::mutex disk_mutex_;
  // mu_ guards the index, the cache and the counters. Held briefly, without I/O.
  mutable std::shared_mutex mu_;
  std::map<std::string, ModelEntry> models_ ABSL_GUARDED_BY(mu_);
  std::vector<RegistryProblem> scan_problems_ ABSL_GUARDED_BY(mu_);  // from the last scan
  absl::Status scan_error_ ABSL_GUARDED_BY(mu_);  // why the last scan could not list models/
  absl::Time last_scan_start_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  std::map<CacheKey, CacheEntry> cache_ ABSL_GUARDED_BY(mu_);
  std::list<CacheKey> lru_ ABSL_GUARDED_BY(mu_);     // front: most recently used
  std::set<CacheKey> loading_ ABSL_GUARDED_BY(mu_);  // versions being read by some Load
  // Notified when a version leaves loading_; waiters re-check loading_ under mu_. (std:: mutexes,
  // not Abseil's: Debian's Abseil is not built for ThreadSanitizer, which then reports every
  // access under an absl::Mutex as a race.)
  std::condition_variable_any load_finished_;
  CacheStats stats_ ABSL_GUARDED_BY(mu_);
};

}  // namespace recurrent::server

#endif  // RECURRENT_SERVER_MODEL_REGISTRY_H_
