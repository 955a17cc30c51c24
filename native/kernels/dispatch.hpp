// Instantiate a generic kernel for the element type known only at run time.
#pragma once
#include <string>
#include <type_traits>

#include "core/types.hpp"
#include "kernels/scalar.hpp"

namespace aiov {

// Calls f(T{}) with T the storage type of `t`, or returns otherwise() for a type without one
// (sub-byte types). The one list of element types and their storage types.
template <class F, class Otherwise>
auto dispatch_storage_type(ElementType t, F&& f, Otherwise&& otherwise) {
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
      return otherwise();
  }
}

// Calls f(T{}) with T the storage type of `t`. Sub-byte types are not computable.
template <class F>
auto dispatch_type(ElementType t, const std::string& what, F&& f) {
  return dispatch_storage_type(t, f, [&]() -> decltype(f(float{})) {
    throw NotSupported(what + ": element type " + type_name(t) + " is not supported");
  });
}

// Calls f(I{}) with I the storage type of integer type `t`; any other type returns otherwise()
// (kernels that read indices, shapes and axes).
template <class F, class Otherwise>
auto dispatch_integer_type(ElementType t, F&& f, Otherwise&& otherwise) {
  return dispatch_storage_type(
      t,
      [&](auto tag) -> decltype(otherwise()) {
        using T = decltype(tag);
        if constexpr (std::is_integral<T>::value && !std::is_same<T, bool>::value)
          return f(tag);
        else
          return otherwise();
      },
      otherwise);
}

// dispatch_type for kernels that compute in floating point: f(T{}) is instantiated only for
// the float types, and any other type is NotSupported.
template <class F>
auto dispatch_float_type(ElementType t, const std::string& what, F&& f) {
  return dispatch_type(t, what, [&](auto tag) -> decltype(f(float{})) {
    using T = decltype(tag);
    if constexpr (!std::is_floating_point<typename ComputeOf<T>::type>::value) {
      throw NotSupported(what + ": element type " + type_name(t) + " (expected a float type)");
    } else {
      return f(T{});
    }
  });
}

// Hot loops get AVX-512 and AVX2 clones picked at load time (GCC ifunc).
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define AIOV_MULTIVERSION __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define AIOV_MULTIVERSION
#endif

}  // namespace aiov
