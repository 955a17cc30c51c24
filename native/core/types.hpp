// Element types, shapes and buffers shared by every layer of the engine.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

namespace aiov {

// Numbering is part of the binding contract: aiov/_types.py mirrors it.
enum class ElementType : int {
  undefined = 0,
  dynamic,
  boolean,
  bf16,
  f16,
  f32,
  f64,
  i4,
  i8,
  i16,
  i32,
  i64,
  u1,
  u4,
  u8,
  u16,
  u32,
  u64,
  f8e4m3,      // ONNX FLOAT8E4M3FN: no infinities, one NaN pattern per sign
  f8e5m2,      // ONNX FLOAT8E5M2 (IEEE-like)
  f8e4m3fnuz,  // ONNX FLOAT8E4M3FNUZ: no -0, NaN is 0x80 (not OpenVINO types)
  f8e5m2fnuz,  // ONNX FLOAT8E5M2FNUZ
  f4e2m1,      // ONNX FLOAT4E2M1: two per byte
  f8e8m0,      // ONNX FLOAT8E8M0: a power of two, 2^(bits - 127)
  i2,          // ONNX INT2 / UINT2: four per byte
  u2,
  count_
};

size_t bit_width(ElementType t);
const char* type_name(ElementType t);
bool is_float(ElementType t);
bool is_packed(ElementType t);  // sub-byte types: u1, u2, i2, u4, i4, f4e2m1

// Raised for problems the caller caused (maps to ValueError in Python).
struct InputError : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};
// Raised for an op or feature the engine does not implement.
struct NotSupported : std::runtime_error {
  using std::runtime_error::runtime_error;
};
// Raised when a job was aborted between nodes.
struct Cancelled : std::runtime_error {
  using std::runtime_error::runtime_error;
};

using Dims = std::vector<int64_t>;
constexpr int64_t kDynamic = -1;

// A possibly dynamic shape: dims of -1 are unknown; rank_known=false means unknown rank.
struct PartialShape {
  bool rank_known = true;
  Dims dims;
  PartialShape() = default;
  PartialShape(Dims d) : rank_known(true), dims(std::move(d)) {}
  static PartialShape dynamic_rank() {
    PartialShape p;
    p.rank_known = false;
    return p;
  }
  bool is_static() const;
  int64_t rank() const { return (int64_t)dims.size(); }
  std::string str() const;
  bool compatible(const Dims& concrete) const;
};

std::string dims_str(const Dims& d);

// The most dimensions a shape may have, and the most outputs one node may make. A rank or an
// output count read from a model (the static length of a shape input, num_splits) is checked
// against these before anything of that length is allocated.
constexpr int64_t kMaxRank = 64;
constexpr int64_t kMaxNodeOutputs = int64_t(1) << 16;
// `rank` unknown dimensions, or an InputError naming `who` when rank is negative or above kMaxRank.
Dims unknown_dims(int64_t rank, const std::string& who);

// The largest tensor the engine makes: the product of a shape's non-zero dimensions may not
// exceed this (an InputError naming the shape). Every partial product of a valid shape's
// dimensions (strides, outer/inner counts) then fits in int64, as does its size in bytes.
constexpr int64_t kMaxTensorElements = int64_t(1) << 40;
// Element count of a shape, checked against kMaxTensorElements; -1 when a dimension is
// unknown (negative). Shapes come from models and callers: never trust them unchecked.
int64_t numel(const Dims& d);
// Throws InputError naming `who` and the shape when `d` is too large for one tensor.
void check_tensor_size(const Dims& d, const std::string& who);
// Bytes needed for `count` elements (sub-byte types round up); InputError for a negative
// count or one above kMaxTensorElements.
size_t byte_size(ElementType t, int64_t count);
// Size and offset arithmetic from untrusted shapes and attributes: InputError naming
// `what` instead of a wrapped result.
int64_t checked_mul(int64_t a, int64_t b, const std::string& what);
int64_t checked_add(int64_t a, int64_t b, const std::string& what);

// std::bad_alloc with the size that could not be had (Python: MemoryError).
struct OutOfMemory : std::bad_alloc {
  explicit OutOfMemory(size_t bytes);
  const char* what() const noexcept override { return message_.c_str(); }

 private:
  std::string message_;
};

// 64-byte aligned memory for engine data. Blocks of 2 MiB or more get a mapping of their own,
// 2 MiB-aligned and advised for transparent huge pages: weights and activations streamed on
// every inference then need one TLB entry per 2 MiB instead of 512, and freeing returns the
// memory to the system at once. `bytes` must be the same in both calls.
void* alloc_aligned(size_t bytes);
void free_aligned(void* p, size_t bytes);

// 64-byte aligned heap storage. Shared so numpy views can outlive a reallocation.
class Buffer {
 public:
  explicit Buffer(size_t bytes);
  // Memory the buffer does not own (a Constant made with shared_memory=True): `owner` keeps it
  // alive. It has no padding past its end, so kernels never run on it: compiling copies it
  // (see is_external).
  Buffer(void* data, size_t bytes, std::shared_ptr<void> owner);
  ~Buffer();
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  void* data() const { return data_; }
  size_t size() const { return size_; }
  bool is_external() const { return owner_ != nullptr; }

 private:
  void* data_ = nullptr;
  size_t size_ = 0;
  std::shared_ptr<void> owner_;
};
using BufferPtr = std::shared_ptr<Buffer>;

struct Composite;  // a sequence or an optional (plan/composite.hpp)

// A typed, dense, row-major view on memory the view does not own.
struct TensorView {
  void* data = nullptr;
  ElementType type = ElementType::undefined;
  Dims shape;
  // Set: the value is a sequence or an optional, not a tensor; `type` is its elements' type,
  // `shape` is {0} and `data` is null (only node-by-node runs carry such values).
  const Composite* composite = nullptr;
  int64_t count() const { return numel(shape); }
  size_t bytes() const { return byte_size(type, count()); }
  template <class T>
  T* as() const {
    return static_cast<T*>(data);
  }
};

}  // namespace aiov
