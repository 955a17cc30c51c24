// Plain values and arrays as bytes and back, for what a compiled-model blob stores beside its
// graphs (packed weights). The reader trusts nothing: every read is checked against the bytes
// left and fails with an InputError naming what it was reading.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>

#include "core/types.hpp"

namespace aiov {

class ByteWriter {
 public:
  std::string out;

  template <class T>
  void pod(T v) {
    static_assert(std::is_trivially_copyable_v<T>);
    out.append(reinterpret_cast<const char*>(&v), sizeof v);
  }
  void bytes(const void* data, size_t n) {
    pod((uint64_t)n);
    out.append(static_cast<const char*>(data), n);
  }
  void str(const std::string& s) { bytes(s.data(), s.size()); }
};

class ByteReader {
 public:
  ByteReader(const uint8_t* data, size_t size) : p_(data), end_(data + size) {}

  size_t left() const { return (size_t)(end_ - p_); }
  const uint8_t* position() const { return p_; }

  [[noreturn]] void fail(const std::string& what) const {
    throw InputError("the packed weights are malformed: " + what);
  }

  void take(void* dst, size_t n, const char* what) {
    if (n > left()) fail(std::string("they end inside ") + what);
    if (n) std::memcpy(dst, p_, n);
    p_ += n;
  }
  template <class T>
  T pod(const char* what) {
    static_assert(std::is_trivially_copyable_v<T>);
    T v;
    take(&v, sizeof v, what);
    return v;
  }
  // The length prefix of an array that must hold exactly `expected` bytes (the reader knows
  // the size from dimensions it checked) and that the stream must still hold: checked before
  // the caller allocates, then take() the bytes.
  void expect_bytes(size_t expected, const char* what) {
    const uint64_t n = pod<uint64_t>(what);
    if (n != expected)
      fail(std::string(what) + " holds " + std::to_string(n) + " bytes where " + std::to_string(expected) +
           " were expected");
    if (n > left()) fail(std::string("they end inside ") + what);
  }
  std::string str(const char* what) {
    const uint64_t n = pod<uint64_t>(what);
    if (n > left()) fail(std::string(what) + " of " + std::to_string(n) + " bytes exceeds what is left");
    std::string s((size_t)n, '\0');
    take(s.data(), s.size(), what);
    return s;
  }
  // A dimension read from the stream: in [0, limit], else the stream is refused.
  int64_t dim(const char* what, int64_t limit) {
    const int64_t v = pod<int64_t>(what);
    if (v < 0 || v > limit) fail(std::string(what) + " " + std::to_string(v) + " is out of range");
    return v;
  }

 private:
  const uint8_t* p_;
  const uint8_t* end_;
};

}  // namespace aiov
