#include "server/model_registry.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <mutex>
#include <random>
#include <shared_mutex>
#include <system_error>
#include <tuple>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "core/file_util.h"
#include "core/status_macros.h"

namespace recurrent::server {
namespace {

using core::SyncDirectory;
using core::WriteAll;

constexpr absl::string_view kModelsDirectory = "models";
constexpr absl::string_view kAliasesDirectory = "aliases";
constexpr absl::string_view kVersionSuffix = ".rcnt";
constexpr absl::string_view kTombstoneSuffix = ".deleted";
constexpr absl::string_view kAliasSuffix = ".alias";
// "v" + up to 18 digits fits an int64_t without overflow checks.
constexpr size_t kMaxVersionDigits = 18;
// An alias file holds a decimal version number and a newline.
constexpr int64_t kMaxAliasFileBytes = 32;
// Register gives up after this many taken numbers in a row: only a pathological race gets there.
constexpr int kMaxClaimAttempts = 1000;
// A file name is at most 255 bytes on Linux filesystems; the longest suffix is ".alias".
constexpr int64_t kMaxNameLengthLimit = 255 - 6;

// Closes a file descriptor on scope exit; for paths where the close result does not matter.
class FdCloser {
 public:
  explicit FdCloser(int fd) : fd_(fd) {}
  FdCloser(const FdCloser&) = delete;
  FdCloser& operator=(const FdCloser&) = delete;
  ~FdCloser() {
    if (fd_ >= 0) ::close(fd_);
  }

 private:
  int fd_;
};

// Closes a directory stream on scope exit.
class DirCloser {
 public:
  explicit DirCloser(DIR* dir) : dir_(dir) {}
  DirCloser(const DirCloser&) = delete;
  DirCloser& operator=(const DirCloser&) = delete;
  ~DirCloser() { ::closedir(dir_); }

 private:
  DIR* dir_;
};

absl::Status OsError(int error, absl::string_view what, absl::string_view path) {
  return absl::ErrnoToStatus(error, absl::StrCat(what, " ", path));
}

// The entry names of `directory`, without "." and "..".
absl::StatusOr<std::vector<std::string>> ListDirectory(const std::string& directory) {
  DIR* const dir = ::opendir(directory.c_str());
  if (dir == nullptr) return OsError(errno, "cannot list directory", directory);
  const DirCloser closer(dir);
  std::vector<std::string> names;
  while (true) {
    errno = 0;
    const struct dirent* const entry = ::readdir(dir);
    if (entry == nullptr) {
      if (errno != 0) return OsError(errno, "cannot list directory", directory);
      break;
    }
    const absl::string_view name = entry->d_name;
    if (name != "." && name != "..") names.emplace_back(name);
  }
  std::sort(names.begin(), names.end());
  return names;
}

// Creates `directory` (one level) unless it exists; a new one is made durable in its parent.
absl::Status MakeDirectory(const std::string& directory) {
  if (::mkdir(directory.c_str(), 0755) == 0) {
    return SyncDirectory(std::filesystem::path(directory).parent_path().string());
  }
  const int error = errno;
  struct stat info;
  if (error == EEXIST && ::stat(directory.c_str(), &info) == 0 && S_ISDIR(info.st_mode)) {
    return absl::OkStatus();
  }
  return OsError(error, "cannot create directory", directory);
}

// Writes `data` to a new, fsync'ed temporary file in `directory` and returns its path. The name
// starts with "." and matches no registry pattern, so scans ignore it. Replicas in containers
// often share a pid (1), hence the random part; O_EXCL settles any remaining collision.
absl::StatusOr<std::string> WriteTemporaryFile(const std::string& directory,
                                               absl::string_view data) {
  static const uint64_t process_nonce = std::random_device{}();
  static std::atomic<uint64_t> counter{0};
  constexpr int kAttempts = 100;
  for (int attempt = 0; attempt < kAttempts; ++attempt) {
    const std::string path = absl::StrCat(directory, "/.tmp.register.", ::getpid(), ".",
                                          process_nonce, ".", counter.fetch_add(1));
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) {
      if (errno == EEXIST || errno == EINTR) continue;
      return OsError(errno, "cannot create temporary file", path);
    }
    absl::Status status = WriteAll(fd, data, path);
    if (status.ok() && ::fsync(fd) != 0) status = OsError(errno, "cannot fsync", path);
    if (::close(fd) != 0 && status.ok()) status = OsError(errno, "cannot close", path);
    if (!status.ok()) {
      ::unlink(path.c_str());
      return status;
    }
    return path;
  }
  return absl::AlreadyExistsError(
      absl::StrCat("cannot create a temporary file in ", directory, ": all names taken"));
}

// Whether `path` exists (as anything); errors other than ENOENT are errors.
absl::StatusOr<bool> Exists(const std::string& path) {
  struct stat info;
  if (::stat(path.c_str(), &info) == 0) return true;
  if (errno == ENOENT) return false;
  return OsError(errno, "cannot stat", path);
}

// The N of "v<N><suffix>", or 0 when `file_name` is not exactly that (N >= 1, no leading zero).
int64_t ParseVersionFileName(absl::string_view file_name, absl::string_view suffix) {
  if (!absl::ConsumePrefix(&file_name, "v") || !absl::ConsumeSuffix(&file_name, suffix)) return 0;
  if (file_name.empty() || file_name.size() > kMaxVersionDigits || file_name[0] == '0') return 0;
  int64_t version = 0;
  for (const char c : file_name) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) return 0;
    version = version * 10 + (c - '0');
  }
  return version;
}

// Reads an alias file: exactly "<version>\n" with version >= 1.
absl::StatusOr<int64_t> ReadAliasFile(const std::string& path) {
  ASSIGN_OR_RETURN(const std::string text,
                   core::ReadFileBounded(path, kMaxAliasFileBytes, "alias file"));
  int64_t version = 0;
  if (!absl::SimpleAtoi(text, &version) || version < 1 || absl::StrCat(version, "\n") != text) {
    return absl::DataLossError(
        absl::StrCat("alias file ", path, " does not hold a version number"));
  }
  return version;
}

// Reads and verifies a stored artifact. Parse failures are re-coded for the registry's callers:
// DataLoss stays (corrupt bytes); InvalidArgument (an intact artifact over the limits or of a
// newer format) becomes FailedPrecondition, since no request argument is at fault.
absl::StatusOr<core::Model> ReadArtifact(const std::string& path,
                                         const core::ArtifactLimits& limits) {
  absl::StatusOr<core::Model> model = core::ReadModelFile(path, limits);
  if (!model.ok() && absl::IsInvalidArgument(model.status())) {
    return absl::FailedPreconditionError(
        absl::StrCat("stored artifact cannot be served: ", model.status().message()));
  }
  return model;
}

std::string QuotedList(const std::vector<std::string>& names) {
  return absl::StrCat("\"", absl::StrJoin(names, "\", \""), "\"");
}

bool IsNameCharacter(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
}

}  // namespace

// One listing of models/<name>/.
struct ModelRegistry::ModelOnDisk {
  // Every v<N>.rcnt present, tombstoned or not (DeleteVersion may remove any of them).
  std::set<int64_t> files;
  // The servable candidates: v<N>.rcnt without a v<N>.deleted, at most max_versions_per_model.
  std::map<int64_t, FileSignature> versions;
  // The highest number any v<N>.rcnt or v<N>.deleted uses: numbers above it are free.
  int64_t highest_number = 0;
  std::map<std::string, int64_t> aliases;
};

int64_t ParameterBytes(const core::Model& model) {
  int64_t floats = 0;
  for (const auto& [name, tensor] : model.parameters) floats += tensor.size();
  return floats * static_cast<int64_t>(sizeof(float));
}

absl::Status ValidateModelName(absl::string_view name, int64_t max_length) {
  if (name.empty() || static_cast<int64_t>(name.size()) > max_length ||
      !absl::ascii_isalnum(static_cast<unsigned char>(name[0])) ||
      !std::all_of(name.begin(), name.end(), IsNameCharacter)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "invalid name \"", absl::CHexEscape(name.substr(0, max_length + 1)), "\": use 1 to ",
        max_length, " characters of A-Z a-z 0-9 . _ -, starting with a letter or digit"));
  }
  return absl::OkStatus();
}

absl::Status ValidateAliasName(absl::string_view alias, int64_t max_length) {
  RETURN_IF_ERROR(ValidateModelName(alias, max_length));
  if (std::all_of(alias.begin(), alias.end(),
                  [](char c) { return absl::ascii_isdigit(static_cast<unsigned char>(c)); })) {
    return absl::InvalidArgumentError(absl::StrCat("invalid alias \"", alias,
                                                   "\": an alias cannot be a number (it would read "
                                                   "as a version)"));
  }
  if (alias == "latest") {
    return absl::InvalidArgumentError("invalid alias \"latest\": reserved for the newest version");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<ModelRegistry>> ModelRegistry::Open(std::string root,
                                                                   RegistryOptions options) {
  while (root.size() > 1 && root.back() == '/') root.pop_back();
  if (root.empty()) return absl::InvalidArgumentError("the registry root directory is empty");
  if (options.cache_budget_bytes < 0 || options.rescan_interval < absl::ZeroDuration() ||
      options.miss_rescan_interval < absl::ZeroDuration() || options.max_models < 1 ||
      options.max_versions_per_model < 1 || options.max_aliases_per_model < 1 ||
      options.max_name_length < 1 || options.max_name_length > kMaxNameLengthLimit) {
    return absl::InvalidArgumentError(absl::StrCat(
        "invalid registry options: cache_budget_bytes, the intervals must be >= 0; the max_* "
        "counts >= 1; max_name_length 1 to ",
        kMaxNameLengthLimit));
  }
  std::error_code error;
  std::filesystem::create_directories(root, error);
  if (error) {
    return absl::ErrnoToStatus(error.value(), absl::StrCat("cannot create directory ", root));
  }
  auto registry =
      std::make_unique<ModelRegistry>(ConstructorKey(), std::move(root), std::move(options));
  RETURN_IF_ERROR(MakeDirectory(absl::StrCat(registry->root_, "/", kModelsDirectory)));
  std::lock_guard disk_lock(registry->disk_mutex_);
  RETURN_IF_ERROR(registry->ScanLocked());
  return registry;
}

ModelRegistry::ModelRegistry(ConstructorKey, std::string root, RegistryOptions options)
    : root_(std::move(root)), options_(std::move(options)) {}

std::string ModelRegistry::ModelDirectory(absl::string_view name) const {
  return absl::StrCat(root_, "/", kModelsDirectory, "/", name);
}

std::string ModelRegistry::VersionPath(absl::string_view name, int64_t version) const {
  return absl::StrCat(ModelDirectory(name), "/v", version, kVersionSuffix);
}

std::string ModelRegistry::AliasDirectory(absl::string_view name) const {
  return absl::StrCat(ModelDirectory(name), "/", kAliasesDirectory);
}

std::string ModelRegistry::AliasPath(absl::string_view name, absl::string_view alias) const {
  return absl::StrCat(AliasDirectory(name), "/", alias, kAliasSuffix);
}

ModelRegistry::FileSignature ModelRegistry::SignatureOf(const struct stat& info) {
  return FileSignature{.size = info.st_size,
                       .mtime_ns = info.st_mtim.tv_sec * int64_t{1000000000} + info.st_mtim.tv_nsec,
                       .inode = info.st_ino};
}

ModelRegistry::VersionEntry ModelRegistry::DescribeVersion(const core::Model& model,
                                                           const FileSignature& file) {
  VersionEntry entry;
  entry.file = file;
  entry.spec = model.spec;
  entry.training = model.training;
  entry.labels = model.labels;
  entry.parameter_bytes = ParameterBytes(model);
  return entry;
}

absl::StatusOr<ModelRegistry::ModelOnDisk> ModelRegistry::ListModelDirectory(
    const std::string& model_dir, const RegistryOptions& options,
    std::vector<RegistryProblem>& problems) {
  ASSIGN_OR_RETURN(const std::vector<std::string> names, ListDirectory(model_dir));
  ModelOnDisk listing;
  std::set<int64_t> tombstones;
  for (const std::string& file_name : names) {
    if (const int64_t version = ParseVersionFileName(file_name, kVersionSuffix); version > 0) {
      listing.files.insert(version);
    } else if (const int64_t deleted = ParseVersionFileName(file_name, kTombstoneSuffix);
               deleted > 0) {
      tombstones.insert(deleted);
    }
  }
  if (!listing.files.empty()) listing.highest_number = *listing.files.rbegin();
  if (!tombstones.empty()) {
    listing.highest_number = std::max(listing.highest_number, *tombstones.rbegin());
  }
  // Newest first, so that the limit keeps the versions most likely to be asked for.
  for (auto it = listing.files.rbegin(); it != listing.files.rend(); ++it) {
    const int64_t version = *it;
    if (tombstones.contains(version)) continue;  // a delete in progress (or interrupted)
    const std::string path = absl::StrCat(model_dir, "/v", version, kVersionSuffix);
    if (static_cast<int64_t>(listing.versions.size()) >= options.max_versions_per_model) {
      problems.push_back({path, absl::ResourceExhaustedError(absl::StrCat(
                                    "not indexed: the model has more than max_versions_per_model=",
                                    options.max_versions_per_model, " versions"))});
      continue;
    }
    struct stat info;
    if (::stat(path.c_str(), &info) != 0) {
      // ENOENT: deleted since the listing; the next scan will not see it either.
      if (errno != ENOENT) problems.push_back({path, OsError(errno, "cannot stat", path)});
      continue;
    }
    if (!S_ISREG(info.st_mode)) {
      problems.push_back(
          {path, absl::FailedPreconditionError(absl::StrCat(path, " is not a regular file"))});
      continue;
    }
    listing.versions[version] = SignatureOf(info);
  }

  const std::string alias_dir = absl::StrCat(model_dir, "/", kAliasesDirectory);
  absl::StatusOr<std::vector<std::string>> alias_files = ListDirectory(alias_dir);
  if (!alias_files.ok()) {
    // No aliases directory: the model never had an alias.
    if (!absl::IsNotFound(alias_files.status())) {
      problems.push_back({alias_dir, alias_files.status()});
    }
    return listing;
  }
  for (const std::string& file_name : *alias_files) {
    absl::string_view alias = file_name;
    if (!absl::ConsumeSuffix(&alias, kAliasSuffix) ||
        !ValidateAliasName(alias, options.max_name_length).ok()) {
      continue;  // a temporary file of an alias write, or a foreign file
    }
    const std::string path = absl::StrCat(alias_dir, "/", file_name);
    if (static_cast<int64_t>(listing.aliases.size()) >= options.max_aliases_per_model) {
      problems.push_back({path, absl::ResourceExhaustedError(absl::StrCat(
                                    "not indexed: the model has more than max_aliases_per_model=",
                                    options.max_aliases_per_model, " aliases"))});
      continue;
    }
    absl::StatusOr<int64_t> version = ReadAliasFile(path);
    if (version.ok()) {
      listing.aliases[std::string(alias)] = *version;
    } else if (!absl::IsNotFound(version.status())) {  // NotFound: removed since the listing
      problems.push_back({path, version.status()});
    }
  }
  return listing;
}

absl::Status ModelRegistry::ScanLocked() {
  const absl::Time start = absl::Now();
  {
    std::unique_lock lock(mu_);
    last_scan_start_ = start;
  }
  const std::string models_dir = absl::StrCat(root_, "/", kModelsDirectory);
  absl::StatusOr<std::vector<std::string>> names = ListDirectory(models_dir);
  bool error_changed = false;
  {
    // Logged when it starts or changes, not at every periodic scan of a volume that is gone.
    std::unique_lock lock(mu_);
    error_changed = names.status() != scan_error_;
    scan_error_ = names.status();
  }
  if (!names.ok()) {
    if (error_changed) {
      Log(absl::StrCat("scan failed, serving the models known so far: ",
                       names.status().ToString()));
    }
    return names.status();
  }
  if (error_changed) Log(absl::StrCat("scanning ", models_dir, " works again"));

  // 1. List every model directory (no artifact reads).
  std::vector<RegistryProblem> problems;
  std::map<std::string, absl::StatusOr<ModelOnDisk>> on_disk;
  for (const std::string& name : *names) {
    if (!ValidateModelName(name, options_.max_name_length).ok()) continue;  // a foreign entry
    const std::string model_dir = absl::StrCat(models_dir, "/", name);
    struct stat info;
    if (::stat(model_dir.c_str(), &info) != 0 || !S_ISDIR(info.st_mode)) continue;
    if (static_cast<int64_t>(on_disk.size()) >= options_.max_models) {
      problems.push_back(
          {model_dir, absl::ResourceExhaustedError(absl::StrCat(
                          "not indexed: more than max_models=", options_.max_models, " models"))});
      continue;
    }
    absl::StatusOr<ModelOnDisk> listing = ListModelDirectory(model_dir, options_, problems);
    if (!listing.ok()) problems.push_back({model_dir, listing.status()});
    on_disk.emplace(name, std::move(listing));
  }

  // 2. Find the files not verified yet (or replaced since), and verify them without mu_.
  std::vector<std::tuple<std::string, int64_t, FileSignature>> unverified;
  {
    std::shared_lock lock(mu_);
    for (const auto& [name, listing] : on_disk) {
      if (!listing.ok()) continue;
      const auto known = models_.find(name);
      for (const auto& [version, file] : listing->versions) {
        if (known != models_.end()) {
          const auto intact = known->second.versions.find(version);
          if (intact != known->second.versions.end() && intact->second.file == file) continue;
          const auto broken = known->second.broken.find(version);
          if (broken != known->second.broken.end() && broken->second.file == file) continue;
        }
        unverified.emplace_back(name, version, file);
      }
    }
  }
  std::map<CacheKey, absl::StatusOr<VersionEntry>> verified;
  for (const auto& [name, version, file] : unverified) {
    absl::StatusOr<core::Model> model =
        ReadArtifact(VersionPath(name, version), options_.artifact_limits);
    if (model.ok()) {
      verified.emplace(CacheKey(name, version), DescribeVersion(*model, file));
    } else {
      verified.emplace(CacheKey(name, version), model.status());
    }
  }

  // 3. Replace the index with what is on disk.
  std::vector<std::string> messages;
  {
    std::unique_lock lock(mu_);
    std::map<std::string, ModelEntry> models;
    std::set<CacheKey> unchanged;  // intact versions whose file is the one verified before
    for (auto& [name, listing] : on_disk) {
      const auto old = models_.find(name);
      if (!listing.ok()) {
        // Unreadable now (permissions, I/O): keep serving what was known.
        if (old != models_.end()) {
          for (const auto& [version, intact] : old->second.versions) {
            unchanged.emplace(name, version);
          }
          models.emplace(name, std::move(old->second));
        }
        continue;
      }
      ModelEntry& entry = models[name];
      entry.aliases = std::move(listing->aliases);
      for (const auto& [version, file] : listing->versions) {
        if (old != models_.end()) {
          const auto intact = old->second.versions.find(version);
          if (intact != old->second.versions.end() && intact->second.file == file) {
            entry.versions.emplace(version, std::move(intact->second));
            unchanged.emplace(name, version);
            continue;
          }
          const auto broken = old->second.broken.find(version);
          if (broken != old->second.broken.end() && broken->second.file == file) {
            entry.broken.emplace(version, std::move(broken->second));
            continue;
          }
        }
        const auto result = verified.find(CacheKey(name, version));
        if (result == verified.end()) continue;  // appeared between the two locks: next scan
        if (result->second.ok()) {
          entry.versions.emplace(version, std::move(*result->second));
        } else {
          entry.broken.emplace(version, BrokenVersion{file, result->second.status()});
          messages.push_back(absl::StrCat("skipping ", VersionPath(name, version), ": ",
                                          result->second.status().ToString()));
        }
      }
    }
    // Cached versions that are gone or were replaced on disk must not be served any more.
    std::vector<CacheKey> stale;
    for (const auto& [key, cached] : cache_) {
      if (!unchanged.contains(key)) stale.push_back(key);
    }
    for (const CacheKey& key : stale) EraseFromCacheLocked(key);
    models_ = std::move(models);

    std::set<std::pair<std::string, std::string>> previous;
    for (const RegistryProblem& problem : scan_problems_) {
      previous.emplace(problem.path, problem.status.ToString());
    }
    for (const RegistryProblem& problem : problems) {
      if (!previous.contains({problem.path, problem.status.ToString()})) {
        messages.push_back(
            absl::StrCat("problem with ", problem.path, ": ", problem.status.ToString()));
      }
    }
    scan_problems_ = std::move(problems);
  }
  for (const std::string& message : messages) Log(message);
  return absl::OkStatus();
}

void ModelRegistry::RefreshIfStale() {
  {
    std::shared_lock lock(mu_);
    if (absl::Now() - last_scan_start_ < options_.rescan_interval) return;
  }
  // Whoever holds disk_mutex_ is scanning or writing; the current index serves meanwhile.
  std::unique_lock disk_lock(disk_mutex_, std::try_to_lock);
  if (!disk_lock.owns_lock()) return;
  bool stale = false;
  {
    std::shared_lock lock(mu_);
    stale = absl::Now() - last_scan_start_ >= options_.rescan_interval;
  }
  if (stale) ScanLocked().IgnoreError();  // logged by ScanLocked; the old index keeps serving
}

void ModelRegistry::RefreshAfterMiss(absl::Time miss_time) {
  {
    std::shared_lock lock(mu_);
    if (last_scan_start_ < miss_time &&
        absl::Now() - last_scan_start_ < options_.miss_rescan_interval) {
      return;  // scanned moments before the miss: the rate limit
    }
  }
  // Waits for a scan in progress, which may be one that started after the miss.
  std::lock_guard disk_lock(disk_mutex_);
  {
    std::shared_lock lock(mu_);
    if (last_scan_start_ >= miss_time) return;  // that scan saw the directory after the miss
  }
  ScanLocked().IgnoreError();  // logged by ScanLocked; the old index keeps serving
}

absl::Status ModelRegistry::Rescan() {
  std::lock_guard disk_lock(disk_mutex_);
  return ScanLocked();
}

absl::StatusOr<int64_t> ModelRegistry::Register(absl::string_view name, const core::Model& model) {
  RETURN_IF_ERROR(ValidateModelName(name, options_.max_name_length));
  // Serialize (and validate) before taking any lock: this is the expensive part for big models.
  ASSIGN_OR_RETURN(const std::string bytes, core::SerializeModel(model, options_.artifact_limits));
  const std::string model_dir = ModelDirectory(name);

  std::lock_guard disk_lock(disk_mutex_);
  bool known = false;
  int64_t model_count = 0;
  {
    std::shared_lock lock(mu_);
    known = models_.contains(std::string(name));
    model_count = static_cast<int64_t>(models_.size());
  }
  if (!known && model_count >= options_.max_models && !Exists(model_dir).value_or(true)) {
    return absl::ResourceExhaustedError(
        absl::StrCat("cannot create model \"", name,
                     "\": the registry holds max_models=", options_.max_models, " models"));
  }
  RETURN_IF_ERROR(MakeDirectory(model_dir));
  std::vector<RegistryProblem> ignored_problems;  // the scans report them
  ASSIGN_OR_RETURN(const ModelOnDisk listing,
                   ListModelDirectory(model_dir, options_, ignored_problems));
  if (static_cast<int64_t>(listing.versions.size()) >= options_.max_versions_per_model) {
    return absl::ResourceExhaustedError(
        absl::StrCat("cannot add a version to model \"", name, "\": it has max_versions_per_model=",
                     options_.max_versions_per_model, " versions; delete some first"));
  }

  ASSIGN_OR_RETURN(const std::string temp_path, WriteTemporaryFile(model_dir, bytes));
  // Claim the lowest free number above everything seen. link() never replaces an existing name,
  // so a replica racing for the same number gets EEXIST and moves on; a tombstone created by a
  // delete means the number was used before (the listing may have missed it), so give it back.
  absl::Status status = absl::OkStatus();
  int64_t version = listing.highest_number;
  bool claimed = false;
  for (int attempt = 0; attempt < kMaxClaimAttempts && !claimed && status.ok(); ++attempt) {
    ++version;
    const std::string path = VersionPath(name, version);
    if (::link(temp_path.c_str(), path.c_str()) != 0) {
      if (errno != EEXIST) {
        status = OsError(errno, absl::StrCat("cannot link ", temp_path, " to"), path);
      }
      continue;
    }
    const absl::StatusOr<bool> used_before =
        Exists(absl::StrCat(model_dir, "/v", version, kTombstoneSuffix));
    if (!used_before.ok() || *used_before) {
      ::unlink(path.c_str());
      status = used_before.status();
      continue;
    }
    claimed = true;
  }
  ::unlink(temp_path.c_str());
  if (!status.ok()) return status;
  if (!claimed) {
    return absl::AbortedError(absl::StrCat("cannot claim a version number for model \"", name,
                                           "\": ", kMaxClaimAttempts,
                                           " numbers in a row were taken; retry"));
  }
  RETURN_IF_ERROR(SyncDirectory(model_dir));

  const std::string path = VersionPath(name, version);
  struct stat info;
  if (::stat(path.c_str(), &info) != 0) return OsError(errno, "cannot stat", path);
  const FileSignature file = SignatureOf(info);
  std::unique_lock lock(mu_);
  models_[std::string(name)].versions.insert_or_assign(version, DescribeVersion(model, file));
  return version;
}

absl::StatusOr<int64_t> ModelRegistry::ResolveLocked(const ModelRef& ref) const {
  const auto model = models_.find(ref.name);
  if (model == models_.end()) {
    return absl::NotFoundError(absl::StrCat("model \"", ref.name, "\" not found"));
  }
  const ModelEntry& entry = model->second;
  // A version that exists on disk but cannot be served: say why.
  const auto check = [&](int64_t version) -> absl::StatusOr<int64_t> {
    if (entry.versions.contains(version)) return version;
    const auto broken = entry.broken.find(version);
    if (broken != entry.broken.end()) {
      return absl::Status(broken->second.status.code(),
                          absl::StrCat("model \"", ref.name, "\" version ", version,
                                       " cannot be served: ", broken->second.status.message()));
    }
    return absl::NotFoundError(absl::StrCat("model \"", ref.name, "\" has no version ", version));
  };
  if (ref.version > 0) return check(ref.version);
  if (!ref.alias.empty()) {
    const auto alias = entry.aliases.find(ref.alias);
    if (alias == entry.aliases.end()) {
      return absl::NotFoundError(
          absl::StrCat("model \"", ref.name, "\" has no alias \"", ref.alias, "\""));
    }
    absl::StatusOr<int64_t> version = check(alias->second);
    if (!version.ok()) {
      return absl::Status(version.status().code(), absl::StrCat("alias \"", ref.alias,
                                                                "\" points at a version that is "
                                                                "not available: ",
                                                                version.status().message()));
    }
    return version;
  }
  if (entry.versions.empty()) {
    return absl::NotFoundError(absl::StrCat("model \"", ref.name, "\" has no versions"));
  }
  return entry.versions.rbegin()->first;
}

absl::StatusOr<int64_t> ModelRegistry::Resolve(const ModelRef& ref) {
  RETURN_IF_ERROR(ValidateModelName(ref.name, options_.max_name_length));
  if (ref.version < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid version ", ref.version, ": versions start at 1"));
  }
  if (ref.version > 0 && !ref.alias.empty()) {
    return absl::InvalidArgumentError("give a version or an alias, not both");
  }
  if (!ref.alias.empty()) RETURN_IF_ERROR(ValidateAliasName(ref.alias, options_.max_name_length));
  RefreshIfStale();
  const absl::Time miss_time = absl::Now();
  {
    std::shared_lock lock(mu_);
    absl::StatusOr<int64_t> version = ResolveLocked(ref);
    if (!absl::IsNotFound(version.status())) return version;
  }
  RefreshAfterMiss(miss_time);
  std::shared_lock lock(mu_);
  return ResolveLocked(ref);
}

absl::StatusOr<std::shared_ptr<const LoadedModel>> ModelRegistry::Load(const ModelRef& ref) {
  ASSIGN_OR_RETURN(const int64_t version, Resolve(ref));
  return Load(ref.name, version);
}

absl::StatusOr<std::shared_ptr<const LoadedModel>> ModelRegistry::Load(absl::string_view name,
                                                                       int64_t version) {
  RETURN_IF_ERROR(ValidateModelName(name, options_.max_name_length));
  if (version < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid version ", version, ": versions start at 1"));
  }
  RefreshIfStale();
  const CacheKey key(std::string(name), version);
  const ModelRef ref{.name = key.first, .version = version, .alias = ""};
  for (bool rescanned = false;; rescanned = true) {
    absl::Time miss_time;
    {
      std::unique_lock lock(mu_);
      // One read per version: wait for a load of the same version in progress, then take its
      // result from the cache.
      load_finished_.wait(lock, [&] { return !loading_.contains(key); });
      const auto cached = cache_.find(key);
      if (cached != cache_.end()) {
        ++stats_.hits;
        lru_.splice(lru_.begin(), lru_, cached->second.lru_position);
        return cached->second.model;
      }
      const absl::StatusOr<int64_t> indexed = ResolveLocked(ref);
      if (indexed.ok()) {
        ++stats_.misses;
        loading_.insert(key);
        break;
      }
      if (!absl::IsNotFound(indexed.status()) || rescanned) return indexed.status();
      miss_time = absl::Now();
    }
    RefreshAfterMiss(miss_time);
  }

  const std::string path = VersionPath(name, version);
  absl::StatusOr<core::Model> model = ReadArtifact(path, options_.artifact_limits);
  std::shared_ptr<const LoadedModel> loaded;
  {
    std::unique_lock lock(mu_);
    loading_.erase(key);
    load_finished_.notify_all();
    if (model.ok()) {
      ++stats_.loads;
      const int64_t parameter_bytes = ParameterBytes(*model);
      loaded = std::make_shared<const LoadedModel>(LoadedModel{.name = key.first,
                                                               .version = version,
                                                               .model = std::move(*model),
                                                               .parameter_bytes = parameter_bytes});
      InsertLocked(loaded);
      return loaded;
    }
    ++stats_.load_failures;
    if (absl::IsNotFound(model.status())) {
      // Deleted (by another replica) since the last scan.
      const auto entry = models_.find(key.first);
      if (entry != models_.end()) entry->second.versions.erase(version);
      return absl::NotFoundError(absl::StrCat("model \"", name, "\" has no version ", version,
                                              " (deleted): ", model.status().message()));
    }
    if (!absl::IsDataLoss(model.status()) && !absl::IsFailedPrecondition(model.status())) {
      return model.status();  // an OS error (permissions, I/O) that may pass: try again next time
    }
    MarkBrokenLocked(key.first, version, model.status());
  }
  Log(absl::StrCat("skipping ", path, ": ", model.status().ToString()));
  return model.status();
}

void ModelRegistry::InsertLocked(const std::shared_ptr<const LoadedModel>& loaded) {
  const CacheKey key(loaded->name, loaded->version);
  const auto model = models_.find(key.first);
  // Deleted or found broken while it was being read: serve this caller, keep nothing.
  if (model == models_.end() || !model->second.versions.contains(key.second)) return;
  if (loaded->parameter_bytes > options_.cache_budget_bytes || cache_.contains(key)) return;
  lru_.push_front(key);
  cache_.emplace(key, CacheEntry{.model = loaded, .lru_position = lru_.begin()});
  ++stats_.cached_models;
  stats_.cached_bytes += loaded->parameter_bytes;
  while (stats_.cached_bytes > options_.cache_budget_bytes) {
    EraseFromCacheLocked(lru_.back());
    ++stats_.evictions;
  }
}

void ModelRegistry::EraseFromCacheLocked(const CacheKey& key) {
  const auto cached = cache_.find(key);
  if (cached == cache_.end()) return;
  --stats_.cached_models;
  stats_.cached_bytes -= cached->second.model->parameter_bytes;
  lru_.erase(cached->second.lru_position);
  cache_.erase(cached);
}

void ModelRegistry::MarkBrokenLocked(const std::string& name, int64_t version,
                                     const absl::Status& status) {
  EraseFromCacheLocked(CacheKey(name, version));
  const auto model = models_.find(name);
  if (model == models_.end()) return;
  const auto intact = model->second.versions.find(version);
  if (intact == model->second.versions.end()) return;
  model->second.broken.insert_or_assign(version, BrokenVersion{intact->second.file, status});
  model->second.versions.erase(intact);
}

void ModelRegistry::Log(absl::string_view message) const {
  if (options_.log) {
    options_.log(message);
  } else {
    std::fprintf(stderr, "model registry: %.*s\n", static_cast<int>(message.size()),
                 message.data());
  }
}

absl::Status ModelRegistry::SetAlias(absl::string_view name, absl::string_view alias,
                                     int64_t version) {
  RETURN_IF_ERROR(ValidateModelName(name, options_.max_name_length));
  RETURN_IF_ERROR(ValidateAliasName(alias, options_.max_name_length));
  // The warm-up: the alias moves only to a version that is in memory and known to load. Holding
  // `loaded` keeps it alive until the alias file is written.
  ASSIGN_OR_RETURN(const std::shared_ptr<const LoadedModel> loaded, Load(name, version));

  std::lock_guard disk_lock(disk_mutex_);
  // Check on disk, not in the index: another replica may have deleted the version meanwhile.
  std::vector<RegistryProblem> ignored_problems;  // the scans report them
  ASSIGN_OR_RETURN(const ModelOnDisk listing,
                   ListModelDirectory(ModelDirectory(name), options_, ignored_problems));
  if (!listing.versions.contains(version)) {
    return absl::NotFoundError(
        absl::StrCat("model \"", name, "\" has no version ", version, " (deleted)"));
  }
  if (!listing.aliases.contains(std::string(alias)) &&
      static_cast<int64_t>(listing.aliases.size()) >= options_.max_aliases_per_model) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "cannot add alias \"", alias, "\" to model \"", name,
        "\": it has max_aliases_per_model=", options_.max_aliases_per_model, " aliases"));
  }
  RETURN_IF_ERROR(MakeDirectory(AliasDirectory(name)));
  RETURN_IF_ERROR(core::WriteFileAtomically(AliasPath(name, alias), absl::StrCat(version, "\n")));
  std::unique_lock lock(mu_);
  models_[std::string(name)].aliases.insert_or_assign(std::string(alias), version);
  return absl::OkStatus();
}

absl::Status ModelRegistry::RemoveAlias(absl::string_view name, absl::string_view alias) {
  RETURN_IF_ERROR(ValidateModelName(name, options_.max_name_length));
  RETURN_IF_ERROR(ValidateAliasName(alias, options_.max_name_length));
  std::lock_guard disk_lock(disk_mutex_);
  const std::string model_dir = ModelDirectory(name);
  ASSIGN_OR_RETURN(const bool model_exists, Exists(model_dir));
  if (!model_exists) return absl::NotFoundError(absl::StrCat("model \"", name, "\" not found"));
  const std::string path = AliasPath(name, alias);
  if (::unlink(path.c_str()) != 0) {
    if (errno == ENOENT) {
      return absl::NotFoundError(absl::StrCat("model \"", name, "\" has no alias \"", alias, "\""));
    }
    return OsError(errno, "cannot remove alias file", path);
  }
  absl::Status synced = SyncDirectory(AliasDirectory(name));
  std::unique_lock lock(mu_);
  const auto model = models_.find(std::string(name));
  if (model != models_.end()) model->second.aliases.erase(std::string(alias));
  return synced;
}

absl::Status ModelRegistry::DeleteVersion(absl::string_view name, int64_t version) {
  RETURN_IF_ERROR(ValidateModelName(name, options_.max_name_length));
  if (version < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid version ", version, ": versions start at 1"));
  }
  std::lock_guard disk_lock(disk_mutex_);
  const std::string model_dir = ModelDirectory(name);
  // The aliases on disk, not the index: one set by another replica a moment ago counts too.
  std::vector<RegistryProblem> ignored_problems;  // the scans report them
  absl::StatusOr<ModelOnDisk> listing = ListModelDirectory(model_dir, options_, ignored_problems);
  if (absl::IsNotFound(listing.status())) {
    return absl::NotFoundError(absl::StrCat("model \"", name, "\" not found"));
  }
  if (!listing.ok()) return listing.status();
  std::vector<std::string> aliases;
  for (const auto& [alias, target] : listing->aliases) {
    if (target == version) aliases.push_back(alias);
  }
  if (!aliases.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot delete version ", version, " of model \"", name, "\": alias",
                     aliases.size() > 1 ? "es " : " ", QuotedList(aliases), " point",
                     aliases.size() > 1 ? "" : "s", " at it; move or remove ",
                     aliases.size() > 1 ? "them" : "it", " first"));
  }
  if (!listing->files.contains(version)) {
    return absl::NotFoundError(absl::StrCat("model \"", name, "\" has no version ", version));
  }
  // The tombstone goes first and is made durable before the artifact goes: at every moment one of
  // the two names exists, so Register on any replica never hands this number out again.
  const std::string tombstone = absl::StrCat(model_dir, "/v", version, kTombstoneSuffix);
  const int fd = ::open(tombstone.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return OsError(errno, "cannot create tombstone", tombstone);
  if (::close(fd) != 0) return OsError(errno, "cannot close", tombstone);
  RETURN_IF_ERROR(SyncDirectory(model_dir));
  const std::string path = VersionPath(name, version);
  // ENOENT: another replica deleted it at the same time; the outcome is the same.
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    return OsError(errno, "cannot remove", path);
  }
  absl::Status synced = SyncDirectory(model_dir);
  std::unique_lock lock(mu_);
  EraseFromCacheLocked(CacheKey(std::string(name), version));
  const auto model = models_.find(std::string(name));
  if (model != models_.end()) {
    model->second.versions.erase(version);
    model->second.broken.erase(version);
  }
  return synced;
}

std::vector<ModelSummary> ModelRegistry::ListModels() {
  RefreshIfStale();
  std::shared_lock lock(mu_);
  std::vector<ModelSummary> summaries;
  summaries.reserve(models_.size());
  for (const auto& [name, entry] : models_) {
    summaries.push_back(
        ModelSummary{.name = name,
                     .version_count = static_cast<int64_t>(entry.versions.size()),
                     .latest_version = entry.versions.empty() ? 0 : entry.versions.rbegin()->first,
                     .aliases = entry.aliases});
  }
  return summaries;
}

absl::StatusOr<ModelInfo> ModelRegistry::GetModel(absl::string_view name) {
  RETURN_IF_ERROR(ValidateModelName(name, options_.max_name_length));
  RefreshIfStale();
  const auto describe = [&]() -> absl::StatusOr<ModelInfo> {
    std::shared_lock lock(mu_);
    const auto model = models_.find(std::string(name));
    if (model == models_.end()) {
      return absl::NotFoundError(absl::StrCat("model \"", name, "\" not found"));
    }
    const ModelEntry& entry = model->second;
    ModelInfo info{.name = model->first, .versions = {}, .aliases = entry.aliases};
    for (const auto& [version, described] : entry.versions) {
      VersionInfo& version_info = info.versions.emplace_back();
      version_info.version = version;
      version_info.spec = described.spec;
      version_info.created = absl::FromUnixNanos(described.file.mtime_ns);
      version_info.size_bytes = described.file.size;
      version_info.parameter_bytes = described.parameter_bytes;
      version_info.training = described.training;
      version_info.labels = described.labels;
      for (const auto& [alias, target] : entry.aliases) {
        if (target == version) version_info.aliases.push_back(alias);
      }
    }
    return info;
  };
  const absl::Time miss_time = absl::Now();
  absl::StatusOr<ModelInfo> info = describe();
  if (!absl::IsNotFound(info.status())) return info;
  RefreshAfterMiss(miss_time);
  return describe();
}

std::vector<RegistryProblem> ModelRegistry::problems() const {
  std::shared_lock lock(mu_);
  std::vector<RegistryProblem> problems = scan_problems_;
  if (!scan_error_.ok())
    problems.push_back({absl::StrCat(root_, "/", kModelsDirectory), scan_error_});
  for (const auto& [name, entry] : models_) {
    for (const auto& [version, broken] : entry.broken) {
      problems.push_back({VersionPath(name, version), broken.status});
    }
  }
  std::sort(problems.begin(), problems.end(),
            [](const RegistryProblem& a, const RegistryProblem& b) { return a.path < b.path; });
  return problems;
}

CacheStats ModelRegistry::stats() const {
  std::shared_lock lock(mu_);
  return stats_;
}

}  // namespace recurrent::server
