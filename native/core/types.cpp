#include "core/types.hpp"

#include <cstdlib>
#include <cstring>
#include <new>

namespace aiov {

namespace {
struct TypeInfo { const char* name; size_t bits; bool fp; };
constexpr TypeInfo kTypes[] = {
    {"undefined", 0, false}, {"dynamic", 0, false}, {"boolean", 8, false},
    {"bf16", 16, true},      {"f16", 16, true},     {"f32", 32, true},
    {"f64", 64, true},       {"i4", 4, false},      {"i8", 8, false},
    {"i16", 16, false},      {"i32", 32, false},    {"i64", 64, false},
    {"u1", 1, false},        {"u4", 4, false},      {"u8", 8, false},
    {"u16", 16, false},      {"u32", 32, false},    {"u64", 64, false},
};
static_assert(sizeof(kTypes) / sizeof(kTypes[0]) == (size_t)ElementType::count_,
              "type table out of sync with ElementType");
const TypeInfo& info(ElementType t) {
  int i = (int)t;
  if (i < 0 || i >= (int)ElementType::count_) throw InputError("unknown element type id " + std::to_string(i));
  return kTypes[i];
}
}  // namespace

size_t bit_width(ElementType t) { return info(t).bits; }
const char* type_name(ElementType t) { return info(t).name; }
bool is_float(ElementType t) { return info(t).fp; }
bool is_packed(ElementType t) {
  return t == ElementType::u1 || t == ElementType::u4 || t == ElementType::i4;
}
size_t byte_size(ElementType t, int64_t count) {
  return (size_t)((count * (int64_t)bit_width(t) + 7) / 8);
}

bool PartialShape::is_static() const {
  if (!rank_known) return false;
  for (auto d : dims) if (d < 0) return false;
  return true;
}

std::string dims_str(const Dims& d) {
  std::string s = "[";
  for (size_t i = 0; i < d.size(); ++i) {
    if (i) s += ",";
    s += d[i] < 0 ? std::string("?") : std::to_string(d[i]);
  }
  return s + "]";
}

std::string PartialShape::str() const { return rank_known ? dims_str(dims) : std::string("[...]"); }

bool PartialShape::compatible(const Dims& concrete) const {
  if (!rank_known) return true;
  if (concrete.size() != dims.size()) return false;
  for (size_t i = 0; i < dims.size(); ++i)
    if (dims[i] >= 0 && dims[i] != concrete[i]) return false;
  return true;
}

int64_t numel(const Dims& d) {
  int64_t n = 1;
  for (auto x : d) n *= x;
  return n;
}

Buffer::Buffer(size_t bytes) : size_(bytes) {
  // Round up so vector kernels may read a full register past the end safely.
  size_t alloc = ((bytes + 63) / 64) * 64 + 64;
  data_ = std::aligned_alloc(64, alloc);
  if (!data_) throw std::bad_alloc();
}
Buffer::~Buffer() { std::free(data_); }

}  // namespace aiov
