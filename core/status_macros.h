// Early-return helpers for absl::Status / absl::StatusOr, in the style of TensorFlow and Triton.
#ifndef RECURRENT_CORE_STATUS_MACROS_H_
#define RECURRENT_CORE_STATUS_MACROS_H_

#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define RECURRENT_CONCAT_INNER_(a, b) a##b
#define RECURRENT_CONCAT_(a, b) RECURRENT_CONCAT_INNER_(a, b)

// Evaluates `expr` (an absl::Status) and returns it from the enclosing function if not OK.
#define RETURN_IF_ERROR(expr)                                                \
  do {                                                                       \
    ::absl::Status recurrent_status_ = (expr); /* not const: it moves out */ \
    if (!recurrent_status_.ok()) return recurrent_status_;                   \
  } while (false)

// `ASSIGN_OR_RETURN(auto x, MakeX());` declares x from an absl::StatusOr or returns its error.
// (`lhs` is a declaration and `statusor` a name: neither can take parentheses.)
// NOLINTBEGIN(bugprone-macro-parentheses)
#define ASSIGN_OR_RETURN(lhs, expr) \
  ASSIGN_OR_RETURN_IMPL_(RECURRENT_CONCAT_(recurrent_statusor_, __LINE__), lhs, expr)
#define ASSIGN_OR_RETURN_IMPL_(statusor, lhs, expr) \
  auto statusor = (expr);                           \
  if (!statusor.ok()) return statusor.status();     \
  lhs = std::move(statusor).value()
// NOLINTEND(bugprone-macro-parentheses)

#endif  // RECURRENT_CORE_STATUS_MACROS_H_
