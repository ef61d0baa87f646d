#include "server/model_registry.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "core/parameters.h"
#include "gtest/gtest.h"

namespace recurrent::server {
namespace {

// gmock is not linked; a readable substring assertion is all these tests need.
::testing::AssertionResult HasStatus(const absl::Status& status, absl::StatusCode code,
                                     absl::string_view substring = "") {
  if (status.code() == code && absl::StrContains(status.message(), substring)) {
    return ::testing::AssertionSuccess();
  }
  return ::testing::AssertionFailure() << status << " is not " << absl::StatusCodeToString(code)
                                       << " containing \"" << substring << "\"";
}

// A tiny LSTM (hidden_size 3); `seed` makes the parameters of each one distinct.
core::Model SmallModel(uint64_t seed, std::map<std::string, std::string> labels = {}) {
  core::Model model;
  model.spec.cell = core::CellType::kLstm;
  model.spec.input_size = 2;
  model.spec.hidden_size = 3;
  model.spec.output_size = 1;
  model.parameters = core::InitParameters(model.spec, seed);
  model.labels = std::move(labels);
  return model;
}

// What one SmallModel costs in the cache.
int64_t ModelBytes() { return ParameterBytes(SmallModel(1)); }

// Collects what the registry logs (instead of stderr), from any thread.
class LogSink {
 public:
  std::function<void(absl::string_view)> Callback() {
    return [this](absl::string_view message) {
      absl::MutexLock lock(&mu_);
      lines_.emplace_back(message);
    };
  }
  std::vector<std::string> lines() const {
    absl::MutexLock lock(&mu_);
    return lines_;
  }

 private:
  mutable absl::Mutex mu_;
  std::vector<std::string> lines_ ABSL_GUARDED_BY(mu_);
};

// Every file under `directory`, relative to it, sorted.
std::vector<std::string> FilesUnder(const std::string& directory) {
  std::vector<std::string> files;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(directory)) {
    if (entry.is_regular_file()) {
      files.push_back(std::filesystem::relative(entry.path(), directory).string());
    }
  }
  std::sort(files.begin(), files.end());
  return files;
}

void FlipMiddleByte(const std::string& path) {
  std::fstream file(path, std::ios::in | std::ios::out | std::ios::binary);
  ASSERT_TRUE(file.is_open()) << path;
  file.seekg(0, std::ios::end);
  const std::streamoff middle = file.tellg() / 2;
  file.seekg(middle);
  char byte = 0;
  file.read(&byte, 1);
  byte = static_cast<char>(byte ^ 0x5a);
  file.seekp(middle);
  file.write(&byte, 1);
}

void Truncate(const std::string& path) {
  std::filesystem::resize_file(path, std::filesystem::file_size(path) / 2);
}

class ModelRegistryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = ::testing::TempDir() + "model_registry_test.XXXXXX";
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    root_ = pattern;
  }
  void TearDown() override {
    std::error_code ignored;
    std::filesystem::remove_all(root_, ignored);
  }

  // Options that log into log_ and never rescan on their own, so that a test decides.
  RegistryOptions QuietOptions() {
    RegistryOptions options;
    options.rescan_interval = absl::InfiniteDuration();
    options.miss_rescan_interval = absl::ZeroDuration();
    options.log = log_.Callback();
    return options;
  }
  std::unique_ptr<ModelRegistry> OpenRegistry(RegistryOptions options) {
    absl::StatusOr<std::unique_ptr<ModelRegistry>> registry =
        ModelRegistry::Open(root_, std::move(options));
    EXPECT_TRUE(registry.ok()) << registry.status();
    return registry.ok() ? std::move(*registry) : nullptr;
  }
  std::unique_ptr<ModelRegistry> OpenRegistry() { return OpenRegistry(QuietOptions()); }
  std::string ModelDir(absl::string_view name) const {
    return absl::StrCat(root_, "/models/", name);
  }
  std::string VersionFile(absl::string_view name, int64_t version) const {
    return absl::StrCat(ModelDir(name), "/v", version, ".rcnt");
  }

  std::string root_;
  LogSink log_;
};

TEST_F(ModelRegistryTest, RegisterAssignsIncreasingVersionsFromOne) {
  auto registry = OpenRegistry();
  ASSERT_NE(registry, nullptr);
  for (int64_t expected = 1; expected <= 3; ++expected) {
    absl::StatusOr<int64_t> version = registry->Register("sines", SmallModel(expected));
    ASSERT_TRUE(version.ok()) << version.status();
    EXPECT_EQ(*version, expected);
  }
  EXPECT_EQ(FilesUnder(ModelDir("sines")),
            (std::vector<std::string>{"v1.rcnt", "v2.rcnt", "v3.rcnt"}));
  EXPECT_TRUE(registry->problems().empty());
  EXPECT_TRUE(log_.lines().empty());
}

TEST_F(ModelRegistryTest, LoadReturnsTheRegisteredModel) {
  auto registry = OpenRegistry();
  ASSERT_NE(registry, nullptr);
  const core::Model original = SmallModel(7, {{"team", "forecasting"}});
  ASSERT_TRUE(registry->Register("sines", original).ok());

  absl::StatusOr<std::shared_ptr<const LoadedModel>> loaded = registry->Load("sines", 1);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ((*loaded)->name, "sines");
  EXPECT_EQ((*loaded)->version, 1);
  EXPECT_EQ((*loaded)->parameter_bytes, ModelBytes());
  EXPECT_EQ((*loaded)->model.spec, original.spec);
  EXPECT_EQ((*loaded)->model.labels, original.labels);
  ASSERT_EQ((*loaded)->model.parameters.size(), original.parameters.size());
  for (const auto& [name, tensor] : original.parameters) {
    EXPECT_EQ((*loaded)->model.parameters.at(name).values, tensor.values) << name;
  }
}

TEST_F(ModelRegistryTest, ResolveFindsVersionsAliasesAndTheLatest) {
  auto registry = OpenRegistry();
  ASSERT_NE(registry, nullptr);
  ASSERT_TRUE(registry->Register("sines", SmallModel(1)).ok());
  ASSERT_TRUE(registry->Register("sines", SmallModel(2)).ok());
  ASSERT_TRUE(registry->SetAlias("sines", "production", 1).ok());

  EXPECT_EQ(*registry->Resolve({.name = "sines", .version = 0, .alias = ""}), 2);
  EXPECT_EQ(*registry->Resolve({.name = "sines", .version = 1, .alias = ""}), 1);
  EXPECT_EQ(*registry->Resolve({.name = "sines", .version = 0, .alias = "production"}), 1);
  absl::StatusOr<std::shared_ptr<const LoadedModel>> by_alias =
      registry->Load({.name = "sines", .version = 0, .alias = "production"});
  ASSERT_TRUE(by_alias.ok()) << by_alias.status();
  EXPECT_EQ((*by_alias)->version, 1);
}

TEST_F(ModelRegistryTest, ResolveSaysWhichModelVersionOrAliasIsMissing) {
  auto registry = OpenRegistry();
  ASSERT_NE(registry, nullptr);
  ASSERT_TRUE(registry->Register("sines", SmallModel(1)).ok());

  EXPECT_TRUE(HasStatus(registry->Resolve({.name = "cosines", .version = 0, .alias = ""}).status(),
                        absl::StatusCode::kNotFound, "model \"cosines\" not found"));
  EXPECT_TRUE(HasStatus(registry->Resolve({.name = "sines", .version = 9, .alias = ""}).status(),
                        absl::StatusCode::kNotFound, "model \"sines\" has no version 9"));
  EXPECT_TRUE(
      HasStatus(registry->Resolve({.name = "sines", .version = 0, .alias = "prod"}).status(),
                absl::StatusCode::kNotFound, "model \"sines\" has no alias \"prod\""));
  EXPECT_TRUE(HasStatus(registry->Load("sines", 9).status(), absl::StatusCode::kNotFound,
                        "has no version 9"));
  EXPECT_TRUE(
      HasStatus(registry->Resolve({.name = "sines", .version = 1, .alias = "prod"}).status(),
                absl::StatusCode::kInvalidArgument, "not both"));
  EXPECT_TRUE(HasStatus(registry->Resolve({.name = "sines", .version = -1, .alias = ""}).status(),
                        absl::StatusCode::kInvalidArgument, "versions start at 1"));
  EXPECT_TRUE(HasStatus(registry->Load("sines", 0).status(), absl::StatusCode::kInvalidArgument));
  EXPECT_TRUE(HasStatus(registry->GetModel("cosines").status(), absl::StatusCode::kNotFound,
                        "model \"cosines\" not found"));
}

TEST_F(ModelRegistryTest, WritesLeaveNoTemporaryFiles) {
  auto registry = OpenRegistry();
  ASSERT_NE(registry, nullptr);
  ASSERT_TRUE(registry->Register("sines", SmallModel(1)).ok());
  ASSERT_TRUE(registry->Register("sines", SmallModel(2)).ok());
  ASSERT_TRUE(registry->SetAlias("sines", "production", 1).ok());
  ASSERT_TRUE(registry->SetAlias("sines", "production", 2).ok());
  ASSERT_TRUE(registry->SetAlias("sines", "canary", 2).ok());
  ASSERT_TRUE(registry->RemoveAlias("sines", "canary").ok());

  EXPECT_EQ(FilesUnder(ModelDir("sines")),
            (std::vector<std::string>{"aliases/production.alias", "v1.rcnt", "v2.rcnt"}));
  std::ifstream alias_file(ModelDir("sines") + "/aliases/production.alias");
  const std::string alias_text((std::istreambuf_iterator<char>(alias_file)),
                               std::istreambuf_iterator<char>());
  EXPECT_EQ(alias_text, "2\n");
}

TEST_F(ModelRegistryTest, CorruptVersionsAreReportedAndSkipped) {
  {
    auto writer = OpenRegistry();
    ASSERT_NE(writer, nullptr);
    for (int seed = 1; seed <= 3; ++seed)
      ASSERT_TRUE(writer->Register("sines", SmallModel(seed)).ok());
    ASSERT_TRUE(writer->Register("other", SmallModel(4)).ok());
  }
  FlipMiddleByte(VersionFile("sines", 2));
  Truncate(VersionFile("sines", 3));

  auto registry = OpenRegistry();
  ASSERT_NE(registry, nullptr);
  const std::vector<RegistryProblem> problems = registry->problems();
  ASSERT_EQ(problems.size(), 2u);
  EXPECT_EQ(problems[0].path, VersionFile("sines", 2));
  EXPECT_TRUE(HasStatus(problems[0].status, absl::StatusCode::kDataLoss));
  EXPECT_EQ(problems[1].path, VersionFile("sines", 3));
  EXPECT_TRUE(HasStatus(problems[1].status, absl::StatusCode::kDataLoss));
  ASSERT_EQ(log_.lines().size(), 2u);
  EXPECT_TRUE(absl::StrContains(log_.lines()[0], "v2.rcnt"));
  EXPECT_TRUE(absl::StrContains(log_.lines()[1], "v3.rcnt"));

  // The newest intact version is the latest; the corrupt ones answer DataLoss, the rest works.
  EXPECT_EQ(*registry->Resolve({.name = "sines", .version = 0, .alias = ""}), 1);
  EXPECT_TRUE(registry->Load("sines", 1).ok());
  EXPECT_TRUE(registry->Load("other", 1).ok());
  EXPECT_TRUE(HasStatus(registry->Load("sines", 2).status(), absl::StatusCode::kDataLoss,
                        "version 2 cannot be served"));
  EXPECT_TRUE(HasStatus(registry->SetAlias("sines", "production", 3), absl::StatusCode::kDataLoss));
  absl::StatusOr<ModelInfo> info = registry->GetModel("sines");
  ASSERT_TRUE(info.ok()) << info.status();
  ASSERT_EQ(info->versions.size(), 1u);
  EXPECT_EQ(info->versions[0].version, 1);

  // Reported once, not at every scan; a new version does not reuse the corrupt one's number.
  ASSERT_TRUE(registry->Rescan().ok());
  EXPECT_EQ(log_.lines().size(), 2u);
  EXPECT_EQ(*registry->Register("sines", SmallModel(5)), 4);
  // Deleting a corrupt file clears its problem.
  ASSERT_TRUE(registry->DeleteVersion("sines", 2).ok());
  ASSERT_EQ(registry->problems().size(), 1u);
}

TEST_F(ModelRegistryTest, CorruptionFoundWhenLoadingIsReportedAndSkippedFromThenOn) {
  auto registry = OpenRegistry();
  ASSERT_NE(registry, nullptr);
  ASSERT_TRUE(registry->Register("sines", SmallModel(1)).ok());
  ASSERT_TRUE(registry->Register("sines", SmallModel(2)).ok());
  FlipMiddleByte(VersionFile("sines", 2));  // after the registry verified it

  EXPECT_TRUE(HasStatus(registry->Load("sines", 2).status(), absl::StatusCode::kDataLoss));
  EXPECT_EQ(registry->stats().load_failures, 1);
  ASSERT_EQ(registry->problems().size(), 1u);
  EXPECT_EQ(registry->problems()[0].path, VersionFile("sines", 2));
  EXPECT_EQ(log_.lines().size(), 1u);
  EXPECT_EQ(*registry->Resolve({.name = "sines", .version = 0, .alias = ""}), 1);
  // Known broken now: no second read of the file.
  EXPECT_TRUE(HasStatus(registry->Load("sines", 2).status(), absl::StatusCode::kDataLoss));
  EXPECT_EQ(registry->stats().load_failures, 1);
}

TEST_F(ModelRegistryTest, SetAliasWarmsTheVersionUpAndMovesTheAlias) {
  auto registry = OpenRegistry();
  ASSERT_NE(registry, nullptr);
  ASSERT_TRUE(registry->Register("sines", SmallModel(1)).ok());
  ASSERT_TRUE(registry->Register("sines", SmallModel(2)).ok());

  ASSERT_TRUE(registry->SetAlias("sines", "production", 1).ok());
  EXPECT_EQ(registry->stats().loads, 1);
  EXPECT_EQ(registry->stats().cached_models, 1);
  const ModelRef production{.name = "sines", .version = 0, .alias = "production"};
  absl::StatusOr<std::shared_ptr<const LoadedModel>> pinned = registry->Load(production);
  ASSERT_TRUE(pinned.ok());
  EXPECT_EQ(registry->stats().hits, 1);  // warm: no second read

  ASSERT_TRUE(registry->SetAlias("sines", "production", 2).ok());
  EXPECT_EQ(*registry->Resolve(production), 2);
  EXPECT_EQ((*pinned)->version, 1);  // a caller holding the old version keeps it
  absl::StatusOr<ModelInfo> info = registry->GetModel("sines");
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->aliases, (std::map<std::string, int64_t>{{"production", 2}}));
  ASSERT_EQ(info->versions.size(), 2u);
  EXPECT_TRUE(info->versions[0].aliases.empty());
  EXPECT_EQ(info->versions[1].aliases, std::vector<std::string>{"production"});
}

TEST_F(ModelRegistryTest, SetAliasRefusesMissingVersionsAndBadAliases) {
  auto registry = OpenRegistry();
  ASSERT_NE(registry, nullptr);
  ASSERT_TRUE(registry->Register("sines", SmallModel(1)).ok());

  EXPECT_TRUE(HasStatus(registry->SetAlias("sines", "production", 7), absl::StatusCode::kNotFound,
                        "no version 7"));
  EXPECT_TRUE(HasStatus(registry->SetAlias("cosines", "production", 1), absl::StatusCode::kNotFound,
                        "model \"cosines\" not found"));
  EXPECT_TRUE(HasStatus(registry->SetAlias("sines", "42", 1), absl::StatusCode::kInvalidArgument,
                        "cannot be a number"));
  EXPECT_TRUE(
      HasStatus(registry->SetAlias("sines", "latest", 1), absl::StatusCode::kInvalidArgument));
  EXPECT_TRUE(
      HasStatus(registry->SetAlias("sines", "../v1", 1), absl::StatusCode::kInvalidArgument));
  EXPECT_TRUE(HasStatus(registry->SetAlias("sines", "", 1), absl::StatusCode::kInvalidArgument));
  EXPECT_TRUE(HasStatus(registry->RemoveAlias("sines", "production"), absl::StatusCode::kNotFound,
                        "no alias \"production\""));
  EXPECT_TRUE(registry->GetModel("sines")->aliases.empty());
  // "v2" and "1a" are fine: only pure numbers would read as versions.
  EXPECT_TRUE(registry->SetAlias("sines", "v2", 1).ok());
  EXPECT_TRUE(registry->SetAlias("sines", "1a", 1).ok());
}

TEST_F(ModelRegistryTest, DeleteVersionIsRefusedWhileAnAliasPointsAtIt) {
  auto registry = OpenRegistry();
  ASSERT_NE(registry, nullptr);
  ASSERT_TRUE(registry->Register("sines", SmallModel(1)).ok());
  ASSERT_TRUE(registry->Register("sines", SmallModel(2)).ok());
  ASSERT_TRUE(registry->SetAlias("sines", "production", 1).ok());
  ASSERT_TRUE(registry->SetAlias("sines", "canary", 1).ok());

  const absl::Status refused = registry->DeleteVersion("sines", 1);
  EXPECT_TRUE(HasStatus(refused, absl::StatusCode::kFailedPrecondition, "\"canary\""));
  EXPECT_TRUE(HasStatus(refused, absl::StatusCode::kFailedPrecondition, "\"production\""));
  ASSERT_TRUE(registry->RemoveAlias("sines", "canary").ok());
  EXPECT_TRUE(
      HasStatus(registry->DeleteVersion("sines", 1), absl::StatusCode::kFailedPrecondition));
  ASSERT_TRUE(registry->SetAlias("sines", "production", 2).ok());

  ASSERT_TRUE(registry->DeleteVersion("sines", 1).ok());
  EXPECT_TRUE(HasStatus(registry->Load("sines", 1).status(), absl::StatusCode::kNotFound));
  EXPECT_TRUE(HasStatus(registry->DeleteVersion("sines", 1), absl::StatusCode::kNotFound));
  EXPECT_TRUE(HasStatus(registry->DeleteVersion("cosines", 1), absl::StatusCode::kNotFound,
                        "model \"cosines\" not found"));
  EXPECT_FALSE(std::filesystem::exists(VersionFile("sines", 1)));

  // Deleting the latest version does not free its number: version numbers are never reused.
  ASSERT_TRUE(registry->RemoveAlias("sines", "production").ok());
  ASSERT_TRUE(registry->DeleteVersion("sines", 2).ok());
  EXPECT_TRUE(HasStatus(registry->Resolve({.name = "sines", .version = 0, .alias = ""}).status(),
                        absl::StatusCode::kNotFound, "has no versions"));
  EXPECT_EQ(*registry->Register("sines", SmallModel(3)), 3);
  auto reopened = OpenRegistry();
  ASSERT_NE(reopened, nullptr);
  EXPECT_EQ(*reopened->Register("sines", SmallModel(4)), 4);
}

TEST_F(ModelRegistryTest, DeleteDropsTheCacheEntryWhileHoldersKeepTheirModel) {
  auto registry = OpenRegistry();
  ASSERT_NE(registry, nullptr);
  ASSERT_TRUE(registry->Register("sines", SmallModel(1)).ok());
  absl::StatusOr<std::shared_ptr<const LoadedModel>> held = registry->Load("sines", 1);
  ASSERT_TRUE(held.ok());
  ASSERT_TRUE(registry->DeleteVersion("sines", 1).ok());
  EXPECT_EQ(registry->stats().cached_models, 0);
  EXPECT_EQ(registry->stats().cached_bytes, 0);
  EXPECT_EQ((*held)->model.parameters.size(), SmallModel(1).parameters.size());
}

TEST_F(ModelRegistryTest, TwoRegistriesOnOneDirectorySeeEachOthersChangesAfterTheInterval) {
  auto writer = OpenRegistry();
  RegistryOptions options = QuietOptions();
  options.rescan_interval = absl::Milliseconds(20);
  options.miss_rescan_interval = absl::InfiniteDuration();  // only the interval brings news
  auto reader = OpenRegistry(options);
  ASSERT_NE(writer, nullptr);
  ASSERT_NE(reader, nullptr);
  const ModelRef latest{.name = "sines", .version = 0, .alias = ""};
  const ModelRef production{.name = "sines", .version = 0, .alias = "production"};
  const auto after_interval = [] { absl::SleepFor(absl::Milliseconds(40)); };

  ASSERT_TRUE(writer->Register("sines", SmallModel(1)).ok());
  ASSERT_TRUE(writer->Register("sines", SmallModel(2)).ok());
  after_interval();
  EXPECT_EQ(*reader->Resolve(latest), 2);
  ASSERT_TRUE(writer->SetAlias("sines", "production", 1).ok());
  after_interval();
  EXPECT_EQ(*reader->Resolve(production), 1);
  ASSERT_TRUE(reader->Load("sines", 2).ok());

  // A delete elsewhere reaches the reader's cache too.
  ASSERT_TRUE(writer->DeleteVersion("sines", 2).ok());
  after_interval();
  EXPECT_TRUE(HasStatus(reader->Load("sines", 2).status(), absl::StatusCode::kNotFound));
  EXPECT_EQ(*reader->Resolve(latest), 1);

  // And the other way round: the reader's writes reach the first registry.
  ASSERT_TRUE(reader->RemoveAlias("sines", "production").ok());
  EXPECT_EQ(*reader->Register("sines", SmallModel(3)), 3);
  ASSERT_TRUE(writer->Rescan().ok());
  EXPECT_EQ(*writer->Resolve(latest), 3);
  EXPECT_TRUE(HasStatus(writer->Resolve(production).status(), absl::StatusCode::kNotFound));
}

TEST_F(ModelRegistryTest, AMissRescansAtOnce) {
  auto writer = OpenRegistry();
  auto reader = OpenRegistry();  // never rescans on a timer; misses rescan at once
  ASSERT_NE(writer, nullptr);
  ASSERT_NE(reader, nullptr);
  ASSERT_TRUE(writer->Register("sines", SmallModel(1)).ok());
  ASSERT_TRUE(writer->SetAlias("sines", "production", 1).ok());
  EXPECT_EQ(*reader->Resolve({.name = "sines", .version = 0, .alias = "production"}), 1);
  ASSERT_TRUE(writer->Register("sines", SmallModel(2)).ok());
  EXPECT_TRUE(reader->Load("sines", 2).ok());
  ASSERT_TRUE(writer->Register("cosines", SmallModel(3)).ok());
  EXPECT_TRUE(reader->GetModel("cosines").ok());
  // Not a miss: "latest" answers from the index until the next scan.
  ASSERT_TRUE(writer->Register("sines", SmallModel(4)).ok());
  EXPECT_EQ(*reader->Resolve({.name = "sines", .version = 0, .alias = ""}), 2);
}

TEST_F(ModelRegistryTest, ConcurrentRegistrationFromTwoRegistriesNeverLosesAVersion) {
  auto first = OpenRegistry();
  auto second = OpenRegistry();
  ASSERT_NE(first, nullptr);
  ASSERT_NE(second, nullptr);
  constexpr int kPerWriter = 20;
  std::vector<std::vector<int64_t>> versions(2);
  std::vector<std::thread> writers;
  for (int writer = 0; writer < 2; ++writer) {
    writers.emplace_back([&, writer] {
      ModelRegistry& registry = writer == 0 ? *first : *second;
      for (int i = 0; i < kPerWriter; ++i) {
        const std::string id = absl::StrCat(writer, "/", i);
        absl::StatusOr<int64_t> version =
            registry.Register("sines", SmallModel(100 * writer + i, {{"id", id}}));
        EXPECT_TRUE(version.ok()) << version.status();
        versions[writer].push_back(version.value_or(-1));
      }
    });
  }
  for (std::thread& writer : writers) writer.join();

  std::set<int64_t> distinct;
  for (const auto& list : versions) distinct.insert(list.begin(), list.end());
  ASSERT_EQ(distinct.size(), 2u * kPerWriter);
  EXPECT_EQ(*distinct.begin(), 1);
  EXPECT_EQ(*distinct.rbegin(), 2 * kPerWriter);
  auto fresh = OpenRegistry();
  ASSERT_NE(fresh, nullptr);
  EXPECT_TRUE(fresh->problems().empty());
  for (int writer = 0; writer < 2; ++writer) {
    for (int i = 0; i < kPerWriter; ++i) {
      absl::StatusOr<std::shared_ptr<const LoadedModel>> loaded =
          fresh->Load("sines", versions[writer][i]);
      ASSERT_TRUE(loaded.ok()) << loaded.status();
      EXPECT_EQ((*loaded)->model.labels.at("id"), absl::StrCat(writer, "/", i));
    }
  }
  // Only artifacts remain: every temporary file was removed.
  EXPECT_EQ(FilesUnder(ModelDir("sines")).size(), 2u * kPerWriter);
}

TEST_F(ModelRegistryTest, TheCacheEvictsTheLeastRecentlyUsedOverItsBudget) {
  RegistryOptions options = QuietOptions();
  options.cache_budget_bytes = 2 * ModelBytes();
  auto registry = OpenRegistry(options);
  ASSERT_NE(registry, nullptr);
  for (int seed = 1; seed <= 3; ++seed)
    ASSERT_TRUE(registry->Register("sines", SmallModel(seed)).ok());

  ASSERT_TRUE(registry->Load("sines", 1).ok());
  absl::StatusOr<std::shared_ptr<const LoadedModel>> second = registry->Load("sines", 2);
  ASSERT_TRUE(second.ok());
  ASSERT_TRUE(registry->Load("sines", 1).ok());  // now 2 is the least recently used
  ASSERT_TRUE(registry->Load("sines", 3).ok());  // evicts 2
  CacheStats stats = registry->stats();
  EXPECT_EQ(stats.hits, 1);
  EXPECT_EQ(stats.misses, 3);
  EXPECT_EQ(stats.loads, 3);
  EXPECT_EQ(stats.evictions, 1);
  EXPECT_EQ(stats.cached_models, 2);
  EXPECT_EQ(stats.cached_bytes, 2 * ModelBytes());

  ASSERT_TRUE(registry->Load("sines", 1).ok());  // still cached
  ASSERT_TRUE(registry->Load("sines", 2).ok());  // read again, evicts 3
  stats = registry->stats();
  EXPECT_EQ(stats.hits, 2);
  EXPECT_EQ(stats.misses, 4);
  EXPECT_EQ(stats.evictions, 2);
  EXPECT_EQ(stats.cached_bytes, 2 * ModelBytes());
  EXPECT_EQ((*second)->version, 2);  // the evicted copy a caller holds stays valid
  EXPECT_EQ((*second)->model.parameters.size(), SmallModel(2).parameters.size());
}

TEST_F(ModelRegistryTest, AModelLargerThanTheBudgetIsServedButNotCached) {
  RegistryOptions options = QuietOptions();
  options.cache_budget_bytes = ModelBytes() - 1;
  auto registry = OpenRegistry(options);
  ASSERT_NE(registry, nullptr);
  ASSERT_TRUE(registry->Register("sines", SmallModel(1)).ok());
  EXPECT_TRUE(registry->Load("sines", 1).ok());
  EXPECT_TRUE(registry->Load("sines", 1).ok());
  const CacheStats stats = registry->stats();
  EXPECT_EQ(stats.loads, 2);
  EXPECT_EQ(stats.cached_models, 0);
  EXPECT_EQ(stats.evictions, 0);
}

TEST_F(ModelRegistryTest, ConcurrentLoadsReadEachVersionOnce) {
  auto registry = OpenRegistry();
  ASSERT_NE(registry, nullptr);
  constexpr int kVersions = 3;
  for (int seed = 1; seed <= kVersions; ++seed) {
    ASSERT_TRUE(registry->Register("sines", SmallModel(seed)).ok());
  }
  constexpr int kThreads = 8;
  constexpr int kLoadsPerThread = 100;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kLoadsPerThread; ++i) {
        const int64_t version = 1 + (t + i) % kVersions;
        absl::StatusOr<std::shared_ptr<const LoadedModel>> loaded =
            registry->Load("sines", version);
        ASSERT_TRUE(loaded.ok()) << loaded.status();
        EXPECT_EQ((*loaded)->version, version);
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  const CacheStats stats = registry->stats();
  EXPECT_EQ(stats.loads, kVersions);
  EXPECT_EQ(stats.misses, kVersions);
  EXPECT_EQ(stats.hits + stats.misses, kThreads * kLoadsPerThread);
}

TEST_F(ModelRegistryTest, LoadsStayCorrectWhileWritersEvictAliasAndRescan) {
  RegistryOptions options = QuietOptions();
  options.cache_budget_bytes = 2 * ModelBytes();
  options.rescan_interval = absl::Milliseconds(1);
  auto registry = OpenRegistry(options);
  auto other = OpenRegistry();
  ASSERT_NE(registry, nullptr);
  ASSERT_NE(other, nullptr);
  for (int seed = 1; seed <= 4; ++seed)
    ASSERT_TRUE(registry->Register("sines", SmallModel(seed)).ok());
  ASSERT_TRUE(registry->SetAlias("sines", "production", 1).ok());

  std::atomic<bool> done{false};
  std::atomic<int64_t> reader_loads{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i) {
        const int64_t version = 1 + (t * 7 + i) % 4;
        absl::StatusOr<std::shared_ptr<const LoadedModel>> loaded =
            registry->Load("sines", version);
        ASSERT_TRUE(loaded.ok()) << loaded.status();
        EXPECT_EQ((*loaded)->version, version);
        absl::StatusOr<std::shared_ptr<const LoadedModel>> aliased =
            registry->Load({.name = "sines", .version = 0, .alias = "production"});
        ASSERT_TRUE(aliased.ok()) << aliased.status();
        reader_loads += 2;
      }
    });
  }
  int64_t alias_moves = 0;
  threads.emplace_back([&] {
    // Another replica writes while this one serves; this one moves its alias.
    for (int i = 0; i < 5; ++i) {
      EXPECT_TRUE(other->Register("sines", SmallModel(10 + i)).ok());
      EXPECT_TRUE(registry->SetAlias("sines", "production", 1 + i % 4).ok());
      ++alias_moves;
      EXPECT_TRUE(registry->Rescan().ok());
      (void)registry->ListModels();
      (void)registry->GetModel("sines");
      (void)registry->stats();
      (void)registry->problems();
    }
    done = true;
  });
  for (std::thread& thread : threads) thread.join();
  const CacheStats stats = registry->stats();
  EXPECT_EQ(stats.hits + stats.misses, reader_loads.load() + alias_moves + 1);
  EXPECT_LE(stats.cached_bytes, 2 * ModelBytes());
  EXPECT_EQ(registry->ListModels().at(0).latest_version, 9);
}

TEST_F(ModelRegistryTest, BadNamesAreRejected) {
  auto registry = OpenRegistry();
  ASSERT_NE(registry, nullptr);
  const std::vector<std::string> bad_names = {"",
                                              ".",
                                              "..",
                                              "../etc",
                                              "a/b",
                                              "/abs",
                                              "-dash",
                                              ".hidden",
                                              "_under",
                                              "a b",
                                              "na\xc3\xafve",
                                              std::string("a\0b", 3),
                                              std::string(129, 'a')};
  for (const std::string& name : bad_names) {
    SCOPED_TRACE(absl::CHexEscape(name));
    constexpr absl::StatusCode kInvalid = absl::StatusCode::kInvalidArgument;
    EXPECT_TRUE(HasStatus(registry->Register(name, SmallModel(1)).status(), kInvalid));
    EXPECT_TRUE(
        HasStatus(registry->Resolve({.name = name, .version = 0, .alias = ""}).status(), kInvalid));
    EXPECT_TRUE(HasStatus(registry->Load(name, 1).status(), kInvalid));
    EXPECT_TRUE(HasStatus(registry->GetModel(name).status(), kInvalid));
    EXPECT_TRUE(HasStatus(registry->DeleteVersion(name, 1), kInvalid));
    EXPECT_TRUE(HasStatus(registry->SetAlias(name, "production", 1), kInvalid));
    EXPECT_TRUE(HasStatus(registry->SetAlias("sines", name, 1), kInvalid));
    EXPECT_TRUE(
        HasStatus(registry->Resolve({.name = "sines", .version = 0, .alias = name}).status(),
                  name.empty() ? absl::StatusCode::kNotFound : kInvalid));  // "" means "the latest"
  }
  EXPECT_TRUE(registry->ListModels().empty());
  EXPECT_EQ(FilesUnder(root_), std::vector<std::string>{});
  // The longest allowed name and every allowed character work.
  EXPECT_TRUE(registry->Register(std::string(128, 'a'), SmallModel(1)).ok());
  EXPECT_TRUE(registry->Register("Model-1.2_x", SmallModel(1)).ok());
}

TEST_F(ModelRegistryTest, AnUnwritableDirectoryGivesPermissionDeniedAndServingGoesOn) {
  auto registry = OpenRegistry();
  ASSERT_NE(registry, nullptr);
  ASSERT_TRUE(registry->Register("sines", SmallModel(1)).ok());

  absl::Status denied;
  if (::geteuid() == 0) {
    // Root ignores permission bits: act as "nobody" (the temporary directory is mode 0700).
    ASSERT_EQ(::seteuid(65534), 0);
    denied = registry->Register("sines", SmallModel(2)).status();
    ASSERT_EQ(::seteuid(0), 0);
  } else {
    std::filesystem::permissions(ModelDir("sines"), std::filesystem::perms::owner_write,
                                 std::filesystem::perm_options::remove);
    denied = registry->Register("sines", SmallModel(2)).status();
    std::filesystem::permissions(ModelDir("sines"), std::filesystem::perms::owner_write,
                                 std::filesystem::perm_options::add);
  }
  EXPECT_TRUE(HasStatus(denied, absl::StatusCode::kPermissionDenied, root_)) << denied;
  EXPECT_TRUE(registry->Load("sines", 1).ok());
  EXPECT_EQ(*registry->Resolve({.name = "sines", .version = 0, .alias = ""}), 1);
  EXPECT_EQ(FilesUnder(ModelDir("sines")), std::vector<std::string>{"v1.rcnt"});
}

TEST_F(ModelRegistryTest, AVanishedDirectoryIsReportedOnceAndTheCacheKeepsServing) {
  auto registry = OpenRegistry();
  ASSERT_NE(registry, nullptr);
  ASSERT_TRUE(registry->Register("sines", SmallModel(1)).ok());
  ASSERT_TRUE(registry->Load("sines", 1).ok());
  std::filesystem::rename(root_ + "/models", root_ + "/models.away");  // e.g. a volume unmounted

  EXPECT_TRUE(HasStatus(registry->Rescan(), absl::StatusCode::kNotFound, root_ + "/models"));
  EXPECT_TRUE(HasStatus(registry->Rescan(), absl::StatusCode::kNotFound));
  EXPECT_EQ(log_.lines().size(), 1u);  // once, not at every scan
  ASSERT_EQ(registry->problems().size(), 1u);
  EXPECT_EQ(registry->problems()[0].path, root_ + "/models");
  EXPECT_TRUE(registry->Load("sines", 1).ok());  // from the cache
  EXPECT_EQ(*registry->Resolve({.name = "sines", .version = 0, .alias = ""}), 1);
  EXPECT_TRUE(HasStatus(registry->Register("sines", SmallModel(2)).status(),
                        absl::StatusCode::kNotFound, root_ + "/models/sines"));

  std::filesystem::rename(root_ + "/models.away", root_ + "/models");
  EXPECT_TRUE(registry->Rescan().ok());
  EXPECT_TRUE(registry->problems().empty());
  EXPECT_EQ(log_.lines().size(), 2u);  // "works again"
  EXPECT_EQ(*registry->Register("sines", SmallModel(2)), 2);
}

TEST_F(ModelRegistryTest, ForeignAndTemporaryFilesAreIgnored) {
  {
    auto writer = OpenRegistry();
    ASSERT_NE(writer, nullptr);
    ASSERT_TRUE(writer->Register("sines", SmallModel(1)).ok());
  }
  for (const char* name : {"v1.rcnt.tmp.1.2", ".tmp.register.1.2.3", "notes.txt", "v01.rcnt",
                           "v0.rcnt", "vx.rcnt", "aliases/x.alias.tmp.1.2", "aliases/README"}) {
    std::filesystem::create_directories(ModelDir("sines") + "/aliases");
    std::ofstream(ModelDir("sines") + "/" + name) << "junk";
  }
  std::filesystem::create_directories(ModelDir("bad name"));
  std::filesystem::create_directories(ModelDir(".hidden"));
  std::ofstream(ModelDir("a-file")) << "junk";

  auto registry = OpenRegistry();
  ASSERT_NE(registry, nullptr);
  EXPECT_TRUE(registry->problems().empty());
  const std::vector<ModelSummary> models = registry->ListModels();
  ASSERT_EQ(models.size(), 1u);
  EXPECT_EQ(models[0].name, "sines");
  EXPECT_EQ(models[0].version_count, 1);
  EXPECT_TRUE(models[0].aliases.empty());
  EXPECT_EQ(*registry->Register("sines", SmallModel(2)), 2);
}

TEST_F(ModelRegistryTest, AMalformedAliasFileIsReported) {
  auto registry = OpenRegistry();
  ASSERT_NE(registry, nullptr);
  ASSERT_TRUE(registry->Register("sines", SmallModel(1)).ok());
  ASSERT_TRUE(registry->SetAlias("sines", "production", 1).ok());
  std::ofstream(ModelDir("sines") + "/aliases/production.alias", std::ios::trunc) << "one\n";
  ASSERT_TRUE(registry->Rescan().ok());
  ASSERT_EQ(registry->problems().size(), 1u);
  EXPECT_TRUE(HasStatus(registry->problems()[0].status, absl::StatusCode::kDataLoss,
                        "does not hold a version number"));
  EXPECT_TRUE(
      HasStatus(registry->Resolve({.name = "sines", .version = 0, .alias = "production"}).status(),
                absl::StatusCode::kNotFound));
  // Setting the alias again repairs it.
  ASSERT_TRUE(registry->SetAlias("sines", "production", 1).ok());
  ASSERT_TRUE(registry->Rescan().ok());
  EXPECT_TRUE(registry->problems().empty());
}

TEST_F(ModelRegistryTest, GetModelAndListModelsDescribeEveryVersion) {
  auto registry = OpenRegistry();
  ASSERT_NE(registry, nullptr);
  const absl::Time before = absl::Now() - absl::Seconds(2);
  core::Model model = SmallModel(1, {{"team", "forecasting"}});
  model.training.set_job_id("job-17");
  (*model.training.mutable_hyperparameters())["learning_rate"] = "0.01";
  ASSERT_TRUE(registry->Register("sines", model).ok());
  ASSERT_TRUE(registry->Register("sines", SmallModel(2)).ok());
  ASSERT_TRUE(registry->Register("cosines", SmallModel(3)).ok());
  ASSERT_TRUE(registry->SetAlias("sines", "production", 1).ok());
  const absl::Time after = absl::Now() + absl::Seconds(2);

  absl::StatusOr<ModelInfo> info = registry->GetModel("sines");
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->name, "sines");
  ASSERT_EQ(info->versions.size(), 2u);
  const VersionInfo& first = info->versions[0];
  EXPECT_EQ(first.version, 1);
  EXPECT_EQ(first.spec, model.spec);
  EXPECT_EQ(first.labels, model.labels);
  EXPECT_EQ(first.training.job_id(), "job-17");
  EXPECT_EQ(first.training.hyperparameters().at("learning_rate"), "0.01");
  EXPECT_EQ(first.size_bytes,
            static_cast<int64_t>(std::filesystem::file_size(VersionFile("sines", 1))));
  EXPECT_EQ(first.parameter_bytes, ModelBytes());
  EXPECT_GT(first.created, before);
  EXPECT_LT(first.created, after);
  EXPECT_EQ(first.aliases, std::vector<std::string>{"production"});
  EXPECT_EQ(info->versions[1].version, 2);

  // The same from a registry that learned it from the directory alone.
  auto fresh = OpenRegistry();
  ASSERT_NE(fresh, nullptr);
  absl::StatusOr<ModelInfo> scanned = fresh->GetModel("sines");
  ASSERT_TRUE(scanned.ok());
  EXPECT_EQ(scanned->versions[0].created, first.created);
  EXPECT_EQ(scanned->versions[0].size_bytes, first.size_bytes);
  EXPECT_EQ(scanned->versions[0].training.job_id(), "job-17");
  EXPECT_EQ(scanned->versions[0].labels, model.labels);
  EXPECT_EQ(scanned->aliases, info->aliases);

  const std::vector<ModelSummary> models = fresh->ListModels();
  ASSERT_EQ(models.size(), 2u);
  EXPECT_EQ(models[0].name, "cosines");
  EXPECT_EQ(models[0].version_count, 1);
  EXPECT_EQ(models[0].latest_version, 1);
  EXPECT_EQ(models[1].name, "sines");
  EXPECT_EQ(models[1].version_count, 2);
  EXPECT_EQ(models[1].latest_version, 2);
  EXPECT_EQ(models[1].aliases, (std::map<std::string, int64_t>{{"production", 1}}));
}

TEST_F(ModelRegistryTest, LimitsAreEnforced) {
  RegistryOptions options = QuietOptions();
  options.max_models = 1;
  options.max_versions_per_model = 2;
  options.max_aliases_per_model = 1;
  auto registry = OpenRegistry(options);
  ASSERT_NE(registry, nullptr);
  ASSERT_TRUE(registry->Register("sines", SmallModel(1)).ok());
  ASSERT_TRUE(registry->Register("sines", SmallModel(2)).ok());
  EXPECT_TRUE(HasStatus(registry->Register("sines", SmallModel(3)).status(),
                        absl::StatusCode::kResourceExhausted, "max_versions_per_model=2"));
  EXPECT_TRUE(HasStatus(registry->Register("cosines", SmallModel(3)).status(),
                        absl::StatusCode::kResourceExhausted, "max_models=1"));
  ASSERT_TRUE(registry->SetAlias("sines", "production", 1).ok());
  EXPECT_TRUE(HasStatus(registry->SetAlias("sines", "canary", 1),
                        absl::StatusCode::kResourceExhausted, "max_aliases_per_model=1"));
  EXPECT_TRUE(registry->SetAlias("sines", "production", 2).ok());  // moving one is fine

  RegistryOptions bad = QuietOptions();
  bad.max_name_length = 300;
  EXPECT_TRUE(
      HasStatus(ModelRegistry::Open(root_, bad).status(), absl::StatusCode::kInvalidArgument));
}

TEST_F(ModelRegistryTest, OpenCreatesTheDirectoryAndRefusesAFile) {
  const std::string nested = root_ + "/data/registry/";
  absl::StatusOr<std::unique_ptr<ModelRegistry>> registry =
      ModelRegistry::Open(nested, QuietOptions());
  ASSERT_TRUE(registry.ok()) << registry.status();
  EXPECT_EQ((*registry)->root(), root_ + "/data/registry");
  EXPECT_TRUE(std::filesystem::is_directory(nested + "models"));

  const std::string file = root_ + "/plain-file";
  std::ofstream(file) << "junk";
  EXPECT_FALSE(ModelRegistry::Open(file, QuietOptions()).ok());
  EXPECT_TRUE(HasStatus(ModelRegistry::Open("", QuietOptions()).status(),
                        absl::StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace recurrent::server
