#include "plan/passes/op_names.hpp"

#include <stdexcept>

#include "plan/registry.hpp"

namespace aiov {

std::vector<std::string> pass_op_names() {
#define AIOV_LIST_OP_NAME(id, text) text,
  return {AIOV_PASS_OP_NAMES(AIOV_LIST_OP_NAME)};
#undef AIOV_LIST_OP_NAME
}

void check_pass_op_names() {
  const OpRegistry& reg = OpRegistry::instance();
  std::string missing;
  for (const std::string& name : pass_op_names())
    if (!reg.find(name)) missing += (missing.empty() ? "" : ", ") + name;
  if (!missing.empty())
    throw std::logic_error("graph passes match ops the registry does not know: " + missing +
                           " (see plan/passes/op_names.hpp)");
}

}  // namespace aiov
