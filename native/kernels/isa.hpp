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

// How bf16 products run (INFERENCE_PRECISION_HINT bf16): AMX tiles (TDPBF16PS), AVX512_BF16
// dot products (VDPBF16PS), or bf16 values widened to f32 and multiplied (scalar: anywhere).
enum class Bf16Isa { scalar = 0, avx512_bf16 = 1, amx = 2 };

// What CPUID and XCR0 offer: amx needs AMX-TILE and AMX-BF16 with the tile state enabled by
// the OS, and AVX512_BF16 (the packing converts with it); avx512_bf16 needs avx512 too.
Bf16Isa detect_bf16_isa();

// detect_bf16_isa(), lowered by AIOV_BF16_ISA=avx512_bf16|scalar, by AIOV_GEMM_ISA below
// avx512, and to avx512_bf16 when Linux refuses the tile data permission
// (arch_prctl ARCH_REQ_XCOMP_PERM, asked here once: tiles fault without it). Decided once.
Bf16Isa selected_bf16_isa();

// "scalar", "avx512_bf16" or "amx".
const char* bf16_isa_name(Bf16Isa isa);

// How u8 x s8 products accumulate in s32 (quantized MatMul/Conv): AMX tiles (TDPBUSD),
// AVX512-VNNI dot products (VPDPBUSD), or plain integer loops (scalar: anywhere).
enum class Int8Isa { scalar = 0, avx512_vnni = 1, amx = 2 };

// What CPUID and XCR0 offer: amx needs AMX-TILE and AMX-INT8 with the tile state enabled,
// and AVX512-VNNI (its merge uses AVX-512); avx512_vnni needs avx512 too.
Int8Isa detect_int8_isa();

// detect_int8_isa(), lowered by AIOV_INT8_ISA=avx512_vnni|scalar, by AIOV_GEMM_ISA below
// avx512, and to avx512_vnni when Linux refuses the tile data permission. Decided once.
Int8Isa selected_int8_isa();

// "scalar", "avx512_vnni" or "amx".
const char* int8_isa_name(Int8Isa isa);

// AVX512-FP16 (f16 arithmetic) with the zmm state enabled.
bool cpu_has_avx512_fp16();

// How f16 products run (INFERENCE_PRECISION_HINT f16): AVX512-FP16 conversions feeding f32
// FMAs, or f16 values widened to f32 one at a time (scalar: anywhere, the reference).
enum class F16Isa { scalar = 0, avx512_fp16 = 1 };

// avx512_fp16 where cpu_has_avx512_fp16().
F16Isa detect_f16_isa();

// detect_f16_isa(), lowered by AIOV_F16_ISA=scalar and by AIOV_GEMM_ISA below avx512.
// Decided once.
F16Isa selected_f16_isa();

// "scalar" or "avx512_fp16".
const char* f16_isa_name(F16Isa isa);

}  // namespace aiov
