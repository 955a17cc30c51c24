#include "kernels/isa.hpp"
#include "core/environment.hpp"

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

#if defined(AIOV_X86) && defined(__x86_64__)
#include <cpuid.h>
#endif

namespace aiov {

// CPUID says what the core has, XCR0 whether the OS saves the wider register state:
// both are needed before using ymm/zmm.
Isa detect_isa() {
#if defined(AIOV_X86) && defined(__x86_64__)
  unsigned eax, ebx, ecx, edx;
  if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return Isa::scalar;
  const bool osxsave = ecx & (1u << 27), avx = ecx & (1u << 28), fma = ecx & (1u << 12), f16c = ecx & (1u << 29);
  if (!(osxsave && avx && fma && f16c)) return Isa::scalar;
  uint32_t xcr0_lo, xcr0_hi;
  __asm__ volatile("xgetbv" : "=a"(xcr0_lo), "=d"(xcr0_hi) : "c"(0));
  if ((xcr0_lo & 0x6) != 0x6) return Isa::scalar;  // SSE + AVX state
  if (__get_cpuid_max(0, nullptr) < 7) return Isa::scalar;
  __cpuid_count(7, 0, eax, ebx, ecx, edx);
  if (!(ebx & (1u << 5))) return Isa::scalar;  // AVX2
  const bool avx512 = (ebx & (1u << 16)) && (ebx & (1u << 17)) && (ebx & (1u << 30)) && (ebx & (1u << 31));
  if (avx512 && (xcr0_lo & 0xE0) == 0xE0) return Isa::avx512;  // opmask + zmm0-15 upper + zmm16-31
  return Isa::avx2;
#else
  return Isa::scalar;
#endif
}

namespace {
Isa choose_isa() {
  const std::string limit = env_choice("AIOV_GEMM_ISA", "avx512");
  const Isa cap = limit == "scalar" ? Isa::scalar : limit == "avx2" ? Isa::avx2 : Isa::avx512;
  return std::min(detect_isa(), cap);
}
}  // namespace

Isa selected_isa() {
  static const Isa chosen = choose_isa();  // once; thread-safe static init
  return chosen;
}

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::avx512:
      return "avx512";
    case Isa::avx2:
      return "avx2";
    default:
      return "scalar";
  }
}

}  // namespace aiov
