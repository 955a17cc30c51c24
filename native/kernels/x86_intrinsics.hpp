// <immintrin.h> for the kernel files compiled with extra instruction-set flags
// (gemm_avx2.cpp, gemm_avx512.cpp, gemm_bf16_x86.cpp). Include it last: it silences, for the
// rest of the file, warnings that are wrong about intrinsic code.
#pragma once
#if defined(AIOV_X86)
#include <immintrin.h>

// GCC 12's intrinsic headers self-initialise "undefined" vectors, which -Wall
// reports at every inlined use (GCC PR 105593); the code is fine.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#endif
