// Instantiate a generic kernel for the element type known only at run time.
#pragma once
#include <string>

#include "core/types.hpp"
#include "kernels/scalar.hpp"

namespace aiov {

// Calls f(T{}) with T the storage type of `t`. Sub-byte types are not computable.
template <class F>
auto dispatch_type(ElementType t, const std::string& what, F&& f) {
  switch (t) {
    case ElementType::f32:
      return f(float{});
    case ElementType::f64:
      return f(double{});
    case ElementType::f16:
      return f(f16_t{});
    case ElementType::bf16:
      return f(bf16_t{});
    case ElementType::i8:
      return f(int8_t{});
    case ElementType::u8:
      return f(uint8_t{});
    case ElementType::i16:
      return f(int16_t{});
    case ElementType::u16:
      return f(uint16_t{});
    case ElementType::i32:
      return f(int32_t{});
    case ElementType::u32:
      return f(uint32_t{});
    case ElementType::i64:
      return f(int64_t{});
    case ElementType::u64:
      return f(uint64_t{});
    case ElementType::boolean:
      return f(bool{});
    default:
      throw NotSupported(what + ": element type " + type_name(t) + " is not supported");
  }
}

// Hot loops get AVX-512 and AVX2 clones picked at load time (GCC ifunc).
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define AIOV_MULTIVERSION __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define AIOV_MULTIVERSION
#endif

}  // namespace aiov
