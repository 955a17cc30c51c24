// The instruction set every run-time-dispatched kernel uses (GEMM micro-kernels, epilogue
// rows, softmax rows, depthwise windows), so one choice and one cap cover them all.
#pragma once

namespace aiov {

// Ordered: a higher value includes everything below it.
enum class Isa { scalar = 0, avx2 = 1, avx512 = 2 };

// What the CPU has and the OS saves the registers of (CPUID and XCR0): avx2 means
// AVX2 + FMA + F16C, avx512 adds AVX-512 F/DQ/BW/VL. Always scalar off x86-64.
Isa detect_isa();

// detect_isa(), lowered by AIOV_GEMM_ISA=avx2|scalar (for testing the fallbacks; other
// values change nothing). Decided once per process.
Isa selected_isa();

// "scalar", "avx2" or "avx512".
const char* isa_name(Isa isa);

}  // namespace aiov
