#include "core/types.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <new>

namespace aiov {

namespace {
struct TypeInfo {
  const char* name;
  size_t bits;
  bool fp;
};
constexpr TypeInfo kTypes[] = {
    {"undefined", 0, false}, {"dynamic", 0, false},   {"boolean", 8, false}, {"bf16", 16, true},  {"f16", 16, true},
    {"f32", 32, true},       {"f64", 64, true},       {"i4", 4, false},      {"i8", 8, false},    {"i16", 16, false},
    {"i32", 32, false},      {"i64", 64, false},      {"u1", 1, false},      {"u4", 4, false},    {"u8", 8, false},
    {"u16", 16, false},      {"u32", 32, false},      {"u64", 64, false},    {"f8e4m3", 8, true}, {"f8e5m2", 8, true},
    {"f8e4m3fnuz", 8, true}, {"f8e5m2fnuz", 8, true}, {"f4e2m1", 4, true},   {"f8e8m0", 8, true}, {"i2", 2, false},
    {"u2", 2, false},
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
  size_t bits = info(t).bits;
  return bits > 0 && bits < 8;
}
size_t byte_size(ElementType t, int64_t count) {
  if (count < 0 || count > kMaxTensorElements)
    throw InputError("cannot size a tensor of " + std::to_string(count) + " elements (the limit is " +
                     std::to_string(kMaxTensorElements) + ")");
  return (size_t)((count * (int64_t)bit_width(t) + 7) / 8);  // < 2^47: no overflow
}

int64_t checked_mul(int64_t a, int64_t b, const std::string& what) {
  int64_t r;
  if (__builtin_mul_overflow(a, b, &r))
    throw InputError(what + ": " + std::to_string(a) + " * " + std::to_string(b) + " overflows");
  return r;
}

int64_t checked_add(int64_t a, int64_t b, const std::string& what) {
  int64_t r;
  if (__builtin_add_overflow(a, b, &r))
    throw InputError(what + ": " + std::to_string(a) + " + " + std::to_string(b) + " overflows");
  return r;
}

OutOfMemory::OutOfMemory(size_t bytes)
    : message_("out of memory: could not allocate " + std::to_string(bytes) + " bytes") {}

bool PartialShape::is_static() const {
  if (!rank_known) return false;
  for (auto d : dims)
    if (d < 0) return false;
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

namespace {
// Product of the known non-zero dims (so that any partial product is bounded too), or -1
// when it exceeds the limit. Unknown (negative) and zero dims are reported, not multiplied.
int64_t bounded_product(const Dims& d, bool* has_zero, bool* has_unknown) {
  int64_t n = 1;
  *has_zero = *has_unknown = false;
  for (auto x : d) {
    if (x < 0) {
      *has_unknown = true;
      continue;
    }
    if (x == 0) {
      *has_zero = true;
      continue;
    }
    if (__builtin_mul_overflow(n, x, &n) || n > kMaxTensorElements) return -1;
  }
  return n;
}
std::string too_large(const Dims& d) {
  return "shape " + dims_str(d) + " is too large for one tensor (more than " + std::to_string(kMaxTensorElements) +
         " elements)";
}
}  // namespace

int64_t numel(const Dims& d) {
  bool has_zero, has_unknown;
  int64_t n = bounded_product(d, &has_zero, &has_unknown);
  if (n < 0) throw InputError(too_large(d));
  return has_unknown ? -1 : has_zero ? 0 : n;
}

void check_tensor_size(const Dims& d, const std::string& who) {
  bool has_zero, has_unknown;
  if (bounded_product(d, &has_zero, &has_unknown) < 0) throw InputError(who + ": " + too_large(d));
}

namespace {
constexpr size_t kHugePage = size_t(2) << 20;
constexpr size_t kPage = 4096;
size_t round_up(size_t n, size_t to) { return (n + to - 1) / to * to; }
}  // namespace

void* alloc_aligned(size_t bytes) {
  if (bytes < kHugePage) {
    void* p = std::aligned_alloc(64, round_up(bytes ? bytes : 64, 64));
    if (!p) throw OutOfMemory(bytes);
    return p;
  }
  // Over-map by one huge page, then unmap the slack on both sides of the aligned start.
  const size_t length = round_up(bytes, kPage), reserve = length + kHugePage;
  void* raw = ::mmap(nullptr, reserve, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) throw OutOfMemory(bytes);
  char* base = static_cast<char*>(raw);
  char* start = reinterpret_cast<char*>(round_up(reinterpret_cast<uintptr_t>(base), kHugePage));
  if (start > base) ::munmap(base, (size_t)(start - base));
  char* end = start + length;
  if (base + reserve > end) ::munmap(end, (size_t)(base + reserve - end));
#ifdef MADV_HUGEPAGE
  ::madvise(start, length, MADV_HUGEPAGE);  // advice only: without THP the pages stay small
#endif
  return start;
}

void free_aligned(void* p, size_t bytes) {
  if (!p) return;
  if (bytes < kHugePage)
    std::free(p);
  else
    ::munmap(p, round_up(bytes, kPage));
}

namespace {
// Room past the end so vector kernels may read a full register beyond the last element.
size_t padded(size_t bytes) { return round_up(bytes, 64) + 64; }
}  // namespace

Buffer::Buffer(size_t bytes) : size_(bytes) {
  if (bytes > (size_t(1) << 60)) throw OutOfMemory(bytes);  // padding it would wrap
  try {
    data_ = alloc_aligned(padded(bytes));
  } catch (const std::bad_alloc&) {
    throw OutOfMemory(bytes);  // the size asked for, not the padded one
  }
}
Buffer::Buffer(void* data, size_t bytes, std::shared_ptr<void> owner)
    : data_(data), size_(bytes), owner_(std::move(owner)) {}
Buffer::~Buffer() {
  if (!owner_) free_aligned(data_, padded(size_));
}

Dims unknown_dims(int64_t rank, const std::string& who) {
  if (rank < 0 || rank > kMaxRank)
    throw InputError(who + ": a shape of " + std::to_string(rank) + " dimensions (more than the " +
                     std::to_string(kMaxRank) + " aiov allows, or negative)");
  return Dims((size_t)rank, kDynamic);
}

}  // namespace aiov
