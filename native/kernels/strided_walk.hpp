// The odometer walk over an N-d index space that the copy kernels of strided views share
// (slices, transposes, permutations, broadcasts).
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/types.hpp"

namespace aiov {

// Walks every index of `shape` in row-major order, calling fn(flat_out_index, input_offset)
// with the input offset advanced by `in_strides` per dimension (elements; 0 repeats).
template <class F>
void walk_strided(const Dims& shape, const std::vector<int64_t>& in_strides, int64_t base, F&& fn) {
  int64_t total = numel(shape);
  if (total == 0) return;
  std::vector<int64_t> idx(shape.size(), 0);
  int64_t off = base;
  for (int64_t i = 0; i < total; ++i) {
    fn(i, off);
    for (int d = (int)shape.size() - 1; d >= 0; --d) {
      off += in_strides[d];
      if (++idx[d] < shape[d]) break;
      off -= in_strides[d] * shape[d];
      idx[d] = 0;
    }
  }
}

// Elements of 1, 2, 4 or 8 bytes, which the copy kernels move as unsigned integers of their size.
inline bool moves_as_bits(size_t bytes) { return bytes == 1 || bytes == 2 || bytes == 4 || bytes == 8; }

// Runs of at most this many bytes are copied value by value: a memcpy call each cost more than
// its bytes (a box's coordinates sliced or concatenated).
constexpr int64_t kShortRunBytes = 32;

// fn(T{}) with T the unsigned integer of `bytes` bytes (1, 2, 4, else 8): copy kernels move
// elements as bits of their size, whatever their type.
template <class F>
void with_bits_of_size(size_t bytes, F&& fn) {
  switch (bytes) {
    case 1:
      return fn(uint8_t{});
    case 2:
      return fn(uint16_t{});
    case 4:
      return fn(uint32_t{});
    default:
      return fn(uint64_t{});
  }
}

}  // namespace aiov
