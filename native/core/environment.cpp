#include "core/environment.hpp"

#include <cerrno>
#include <cstdlib>
#include <stdexcept>

namespace aiov {

const std::vector<EnvVar>& env_vars() {
  static const std::vector<EnvVar> vars = {
      {"AIOV_NUM_THREADS", "worker threads of the engine's pool (default: the CPUs this process may use)", 1, 4096, {}},
      {"AIOV_WORKER_NICE", "how much lower than the caller's priority workers run (0: the same)", 0, 19, {}},
      {"AIOV_WORKER_SPIN_US", "microseconds an idle worker watches for work before it sleeps", 0, 1000000, {}},
      {"AIOV_PLAN_CACHE_BYTES", "byte budget of a compiled model's cache of shape plans", 0, INT64_MAX, {}},
      {"AIOV_GRAPH_OPT", "0 compiles the graph as written, without the optimizer's passes", 0, 1, {}},
      {"AIOV_WINOGRAD", "0 keeps 3x3 convolutions on the direct GEMM", 0, 1, {}},
      {"AIOV_BF16_TENSORS", "0 keeps every tensor f32 under a bf16 hint (each convolution rounds its input)", 0, 1, {}},
      {"AIOV_GEMM_ISA", "the widest instruction set the GEMM kernels may use", 0, 0, {"scalar", "avx2", "avx512"}},
      {"AIOV_BF16_ISA", "the widest instruction set bf16 products may use", 0, 0, {"scalar", "avx512_bf16", "amx"}},
      {"AIOV_F16_ISA", "the widest instruction set f16 products may use", 0, 0, {"scalar", "avx512_fp16"}},
      {"AIOV_INT8_ISA",
       "the widest instruction set integer (int8) products may use",
       0,
       0,
       {"scalar", "avx512_vnni", "amx"}},
      {"AIOV_INFERENCE_PRECISION",
       "the precision used when INFERENCE_PRECISION_HINT is not given",
       0,
       0,
       {"f32", "bf16", "f16"}},
      {"AIOV_COMPLETION_PORT", "how workers wake the event loop: an eventfd or a pipe", 0, 0, {"eventfd", "pipe"}},
  };
  return vars;
}

namespace {
const EnvVar& entry(const char* name) {
  for (const EnvVar& v : env_vars())
    if (std::string(v.name) == name) return v;
  throw std::logic_error(std::string("aiov reads an environment variable it does not list: ") + name);
}

std::string expected(const EnvVar& v) {
  if (!v.choices.empty()) {
    std::string s = "one of";
    for (size_t i = 0; i < v.choices.size(); ++i) s += (i ? ", " : " ") + v.choices[i];
    return s;
  }
  if (v.max == INT64_MAX) return "an integer >= " + std::to_string(v.min);
  return "an integer from " + std::to_string(v.min) + " to " + std::to_string(v.max);
}

// Empty when the value is acceptable; otherwise the complaint.
std::string check(const EnvVar& v, const char* value) {
  if (!v.choices.empty()) {
    for (const std::string& c : v.choices)
      if (c == value) return {};
  } else {
    errno = 0;
    char* end = nullptr;
    long long n = std::strtoll(value, &end, 10);
    if (end != value && *end == '\0' && errno == 0 && n >= v.min && n <= v.max) return {};
  }
  return std::string(v.name) + " must be " + expected(v) + " (" + v.what + "), got '" + value + "'";
}

const char* set_value(const char* name) {
  const char* value = std::getenv(name);
  return value && *value ? value : nullptr;
}
}  // namespace

int64_t env_int(const char* name, int64_t fallback) {
  const EnvVar& v = entry(name);
  const char* value = set_value(name);
  if (!value) return fallback;
  std::string problem = check(v, value);
  if (!problem.empty()) throw std::invalid_argument(problem);
  return std::strtoll(value, nullptr, 10);
}

std::string env_choice(const char* name, const std::string& fallback) {
  const EnvVar& v = entry(name);
  const char* value = set_value(name);
  if (!value) return fallback;
  std::string problem = check(v, value);
  if (!problem.empty()) throw std::invalid_argument(problem);
  return value;
}

std::vector<std::string> env_problems() {
  std::vector<std::string> out;
  for (const EnvVar& v : env_vars())
    if (const char* value = set_value(v.name)) {
      std::string problem = check(v, value);
      if (!problem.empty()) out.push_back(problem);
    }
  return out;
}

}  // namespace aiov
