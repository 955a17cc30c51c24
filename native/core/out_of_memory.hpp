#pragma once

#include <new>
#include <string>

#include "core/types.hpp"

namespace aiov {

// An allocation failure that says what the memory was for: an output, a node, a run's
// intermediate values (Python: MemoryError with this message).
struct OutOfMemoryFor : std::bad_alloc {
  explicit OutOfMemoryFor(std::string message) : message_(std::move(message)) {}
  const char* what() const noexcept override { return message_.c_str(); }

 private:
  std::string message_;
};

// Inside a catch of std::bad_alloc: rethrows it saying it was for `what_for`, unless it says
// so already (the innermost name is the most precise).
[[noreturn]] inline void rethrow_out_of_memory_for(const std::string& what_for) {
  try {
    throw;
  } catch (const OutOfMemoryFor&) {
    throw;
  } catch (const OutOfMemory& e) {  // knows the size: "could not allocate N bytes"
    throw OutOfMemoryFor(e.what() + (" for " + what_for));
  } catch (const std::bad_alloc&) {
    throw OutOfMemoryFor("out of memory in " + what_for);
  }
}

}  // namespace aiov
