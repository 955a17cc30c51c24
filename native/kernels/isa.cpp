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
#if defined(AIOV_X86) && defined(__x86_64__) && defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
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

#if defined(AIOV_X86) && defined(__x86_64__)
namespace {
uint32_t xcr0() {
  uint32_t lo, hi;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return lo;
}
// CPUID leaf 7, sub-leaf `sub`, or zeros where the CPU has no such leaf.
void leaf7(unsigned sub, unsigned& eax, unsigned& ebx, unsigned& ecx, unsigned& edx) {
  eax = ebx = ecx = edx = 0;
  if (__get_cpuid_max(0, nullptr) >= 7) __cpuid_count(7, sub, eax, ebx, ecx, edx);
}
}  // namespace
#endif

Bf16Isa detect_bf16_isa() {
#if defined(AIOV_X86) && defined(__x86_64__)
  if (detect_isa() != Isa::avx512) return Bf16Isa::scalar;
  unsigned eax, ebx, ecx, edx;
  leaf7(1, eax, ebx, ecx, edx);
  if (!(eax & (1u << 5))) return Bf16Isa::scalar;  // AVX512_BF16
  leaf7(0, eax, ebx, ecx, edx);
  const bool amx = (edx & (1u << 22)) && (edx & (1u << 24));    // AMX-BF16, AMX-TILE
  const bool tile_state = (xcr0() & (3u << 17)) == (3u << 17);  // XTILECFG + XTILEDATA
  return amx && tile_state ? Bf16Isa::amx : Bf16Isa::avx512_bf16;
#else
  return Bf16Isa::scalar;
#endif
}

namespace {
// Linux hands out the 8 KiB tile state only to processes that ask (5.16+); without the
// permission the first tile instruction raises SIGILL.
bool tile_permission() {
#if defined(AIOV_X86) && defined(__x86_64__) && defined(__linux__)
  constexpr long kArchReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
  return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
#else
  return false;
#endif
}

Bf16Isa choose_bf16_isa() {
  Bf16Isa limit = selected_isa() == Isa::avx512 ? Bf16Isa::amx : Bf16Isa::scalar;
  const std::string cap = env_choice("AIOV_BF16_ISA", "amx");
  if (cap == "scalar")
    limit = Bf16Isa::scalar;
  else if (cap == "avx512_bf16")
    limit = std::min(limit, Bf16Isa::avx512_bf16);
  Bf16Isa isa = std::min(detect_bf16_isa(), limit);
  if (isa == Bf16Isa::amx && !tile_permission()) isa = Bf16Isa::avx512_bf16;
  return isa;
}
}  // namespace

Bf16Isa selected_bf16_isa() {
  static const Bf16Isa chosen = choose_bf16_isa();
  return chosen;
}

const char* bf16_isa_name(Bf16Isa isa) {
  return isa == Bf16Isa::amx ? "amx" : isa == Bf16Isa::avx512_bf16 ? "avx512_bf16" : "scalar";
}

Int8Isa detect_int8_isa() {
#if defined(AIOV_X86) && defined(__x86_64__)
  if (detect_isa() != Isa::avx512) return Int8Isa::scalar;
  unsigned eax, ebx, ecx, edx;
  leaf7(0, eax, ebx, ecx, edx);
  if (!(ecx & (1u << 11))) return Int8Isa::scalar;              // AVX512_VNNI
  const bool amx = (edx & (1u << 25)) && (edx & (1u << 24));    // AMX-INT8, AMX-TILE
  const bool tile_state = (xcr0() & (3u << 17)) == (3u << 17);  // XTILECFG + XTILEDATA
  return amx && tile_state ? Int8Isa::amx : Int8Isa::avx512_vnni;
#else
  return Int8Isa::scalar;
#endif
}

namespace {
Int8Isa choose_int8_isa() {
  Int8Isa limit = selected_isa() == Isa::avx512 ? Int8Isa::amx : Int8Isa::scalar;
  const std::string cap = env_choice("AIOV_INT8_ISA", "amx");
  if (cap == "scalar")
    limit = Int8Isa::scalar;
  else if (cap == "avx512_vnni")
    limit = std::min(limit, Int8Isa::avx512_vnni);
  Int8Isa isa = std::min(detect_int8_isa(), limit);
  if (isa == Int8Isa::amx && !tile_permission()) isa = Int8Isa::avx512_vnni;
  return isa;
}
}  // namespace

Int8Isa selected_int8_isa() {
  static const Int8Isa chosen = choose_int8_isa();
  return chosen;
}

const char* int8_isa_name(Int8Isa isa) {
  return isa == Int8Isa::amx ? "amx" : isa == Int8Isa::avx512_vnni ? "avx512_vnni" : "scalar";
}

bool cpu_has_avx512_fp16() {
#if defined(AIOV_X86) && defined(__x86_64__)
  if (detect_isa() != Isa::avx512) return false;
  unsigned eax, ebx, ecx, edx;
  leaf7(0, eax, ebx, ecx, edx);
  return edx & (1u << 23);
#else
  return false;
#endif
}

F16Isa detect_f16_isa() { return cpu_has_avx512_fp16() ? F16Isa::avx512_fp16 : F16Isa::scalar; }

namespace {
F16Isa choose_f16_isa() {
  if (selected_isa() != Isa::avx512 || env_choice("AIOV_F16_ISA", "avx512_fp16") == "scalar") return F16Isa::scalar;
  return detect_f16_isa();
}
}  // namespace

F16Isa selected_f16_isa() {
  static const F16Isa chosen = choose_f16_isa();
  return chosen;
}

const char* f16_isa_name(F16Isa isa) { return isa == F16Isa::avx512_fp16 ? "avx512_fp16" : "scalar"; }

const char* isa_name(Isa isa) { return isa == Isa::avx512 ? "avx512" : isa == Isa::avx2 ? "avx2" : "scalar"; }

}  // namespace aiov
