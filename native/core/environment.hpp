#pragma once
// The AIOV_* environment variables the engine reads: one table, one parser. A value that does
// not parse or is out of range is an error naming the variable, what it takes and what it got
// (raised when aiov is imported), never silently replaced by the default.
#include <cstdint>
#include <string>
#include <vector>

namespace aiov {

struct EnvVar {
  const char* name;
  const char* what;                  // one line for docs and errors
  int64_t min = 0, max = 0;          // integer range (inclusive) when choices is empty
  std::vector<std::string> choices;  // accepted words, if the variable takes words
};

const std::vector<EnvVar>& env_vars();

// The variable's integer value, or fallback when it is unset or empty. Throws
// std::invalid_argument when it is set to anything but an integer in range.
int64_t env_int(const char* name, int64_t fallback);
// The variable's word (one of its choices), or fallback when unset or empty.
std::string env_choice(const char* name, const std::string& fallback);

// One message per variable that is set to a value its entry refuses (empty: all fine).
std::vector<std::string> env_problems();

}  // namespace aiov
