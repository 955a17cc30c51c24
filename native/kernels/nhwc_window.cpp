// Depthwise convolution and pooling over NHWC f32.
//
// Work is split by output row (n, oy). Within a row, pixels go in runs of up to kRun and,
// for each run, channels in blocks of one vector; a run's accumulators stay in registers.
// For the common window shapes (3x3 / 5x5, stride 1 / 2, no dilation) the run kernel is
// unrolled over the taps so each input vector is loaded once per run and feeds every
// pixel that uses it, and each weight vector serves the whole run: the kernel is then
// bound by FMA throughput rather than by loads. Taps outside the input are never read:
// runs touching the border skip the out-of-bounds input columns, other border pixels go
// one at a time over their in-bounds taps.
//
// The kernels are written once with GCC vector extensions and instantiated per ISA
// (16, 8 or 4 floats per vector): plain auto-vectorization of the same loops proved
// fragile (accumulators spilled, or were shuffled across pixels for narrow blocks).
#include "kernels/nhwc_window.hpp"

#include <algorithm>
#include <functional>
#include <limits>
#include <stdexcept>
#include <type_traits>
#include <vector>

#include "executor/executor.hpp"
#include "kernels/isa.hpp"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define AIOV_WINDOW_X86 1
#endif

#define AIOV_ALWAYS_INLINE inline __attribute__((always_inline))

namespace aiov {
namespace {

enum class Kind { conv, max, sum };
// Activations applied in the store; the others run as a pass over each finished row.
enum class Fused { none, relu, clamp, deferred };

constexpr int kRun = 8;  // pixels per interior run

// What every window job applies as it stores (set from the op's Epilogue by take_epilogue).
struct JobEpilogue {
  const float* bias;
  const float* res;
  int64_t ld_res;
  Fused fused;
  float lo, hi;    // clamp bounds
  Activation act;  // for Fused::deferred
};

struct Job : JobEpilogue {
  Window2d g;
  const float* x;
  const float* w;  // conv weights; pools: any valid pointer (never read)
  float* y;
  bool count_pad;     // sum only
  bool overlap_tail;  // a last partial channel block may recompute channels of the previous one
};

// One output row.
struct Row {
  const float* x;  // input at (n, first in-bounds tap row, column 0, channel 0)
  const float* w;  // weights at the first in-bounds tap row
  int64_t nky;     // in-bounds tap rows
  float* y;        // output at (n, oy, 0, 0)
  int64_t pix;     // flat index of the row's first output pixel
};

// L floats as one GCC vector: T aligned, U for any float's address. One float is a scalar.
template <int L>
struct VecOf {
  typedef float T __attribute__((vector_size(4 * L)));
  typedef float U __attribute__((vector_size(4 * L), aligned(4), may_alias));
};
template <>
struct VecOf<1> {
  typedef float T;
  typedef float U;
};

// References, not values: vectors never cross a (non-inlined) call boundary.
template <int L>
AIOV_ALWAYS_INLINE const typename VecOf<L>::U& ld(const float* p) {
  return *reinterpret_cast<const typename VecOf<L>::U*>(p);
}
template <int L>
AIOV_ALWAYS_INLINE typename VecOf<L>::U& st(float* p) {
  return *reinterpret_cast<typename VecOf<L>::U*>(p);
}

// GCC otherwise folds the load into each FMA that uses the value, re-reading it up to KW
// times, which makes the unrolled kernel load-bound again.
template <class V>
AIOV_ALWAYS_INLINE void keep_in_register(V& v) {
#if defined(AIOV_WINDOW_X86)
  __asm__("" : "+v"(v));
#else
  (void)v;
#endif
}

template <Kind K, class V>
AIOV_ALWAYS_INLINE void combine(V& acc, const V& x, const V& w) {
  if (K == Kind::conv)
    acc += x * w;
  else if (K == Kind::max)
    acc = (acc > x || acc != acc) ? acc : x;  // a NaN in the window wins
  else
    acc += x;
}

// Taps k in [lo, hi) of a window starting at `start` (step d, k taps) that land in [0, in).
inline void tap_range(int64_t start, int64_t d, int64_t k, int64_t in, int64_t& lo, int64_t& hi) {
  lo = start >= 0 ? 0 : (-start + d - 1) / d;
  const int64_t last = in - 1 - start;
  hi = last < 0 ? 0 : std::min(k, last / d + 1);
  if (hi < lo) hi = lo;
}

inline float avg_scale(const Job& j, int64_t taps) {
  if (j.count_pad) return 1.0f / (float)(j.g.kh * j.g.kw);
  return taps ? 1.0f / (float)taps : 0.0f;
}

// PX pixels from ox, channels [c, c + L), taps kx0 .. kx0 + nkx - 1 of every in-bounds row.
// KW > 0: compile-time window width KW, stride SW, no dilation; all KW taps in bounds unless
// MASKED, which skips the input columns outside the row (border pixels share the run).
template <Kind K, int L, int PX, int KW, int SW, bool MASKED = false>
AIOV_ALWAYS_INLINE void run_pixels(const Job& j, const Row& r, int64_t c, int64_t ox, int64_t kx0, int64_t nkx,
                                   float scale) {
  typedef typename VecOf<L>::T V;
  const Window2d& g = j.g;
  const int64_t C = g.C;
  const float* x = r.x + (ox * g.sw - g.pw + kx0 * g.dw) * C + c;
  const float* w = r.w + kx0 * C + c;
  const int64_t xs_ky = g.dh * g.W * C, ws_ky = g.kw * C;

  V zero{};
  V init = zero;
  if (K == Kind::conv && j.bias) init = ld<L>(j.bias + c);
  if (K == Kind::max) init = zero - std::numeric_limits<float>::infinity();
  V acc[PX];
  for (int p = 0; p < PX; ++p) acc[p] = init;

  constexpr int kCols = KW > 0 ? (PX - 1) * SW + KW : 0;  // input columns a run reads
  int i_lo = 0, i_hi = kCols;                             // the in-bounds ones
  if (MASKED) {
    const int64_t ix0 = ox * g.sw - g.pw;
    i_lo = (int)std::min<int64_t>(kCols, std::max<int64_t>(0, -ix0));
    i_hi = (int)std::max<int64_t>(i_lo, std::min<int64_t>(kCols, g.W - ix0));
  }

  for (int64_t ky = 0; ky < r.nky; ++ky, x += xs_ky, w += ws_ky) {
    if constexpr (KW > 0) {
      V wv[KW];
#pragma GCC unroll 8
      for (int kx = 0; kx < KW; ++kx) wv[kx] = K == Kind::conv ? (V)ld<L>(w + kx * C) : zero;
      // Input column i serves pixel p through tap kx = i - p*SW; increasing i keeps each
      // pixel's taps in kx order, like the generic path.
      const float* xi = x;  // a running pointer: per-column offsets would each take a register
#pragma GCC unroll 64
      for (int i = 0; i < kCols; ++i, xi += C) {
        if (MASKED && (i < i_lo || i >= i_hi)) continue;
        V xv = ld<L>(xi);
        keep_in_register(xv);
#pragma GCC unroll 8
        for (int kx = 0; kx < KW; ++kx) {
          const int d = i - kx;
          if (d >= 0 && d % SW == 0 && d / SW < PX) combine<K>(acc[d / SW], xv, wv[kx]);
        }
      }
    } else {
      const int64_t xs_kx = g.dw * C, xs_px = g.sw * C;
      for (int64_t kx = 0; kx < nkx; ++kx) {
        const V wv = K == Kind::conv ? (V)ld<L>(w + kx * C) : zero;
        const float* xk = x + kx * xs_kx;
#pragma GCC unroll 16
        for (int p = 0; p < PX; ++p) combine<K>(acc[p], (V)ld<L>(xk + p * xs_px), wv);
      }
    }
  }

  // Read before the first store: y might alias `j` as far as the compiler knows.
  const float* const res = j.res ? j.res + (r.pix + ox) * j.ld_res + c : nullptr;
  const int64_t ld_res = j.ld_res;
  const Fused fused = j.fused;
  const V lo = zero + j.lo, hi = zero + j.hi;
  float* y = r.y + ox * C + c;
  for (int p = 0; p < PX; ++p) {
    V v = acc[p];
    if (K == Kind::conv) {
      if (res) v += ld<L>(res + p * ld_res);
      // Same results as apply_epilogue_row, NaN included; compiles to max/min.
      if (fused == Fused::relu) {
        v = v < zero ? zero : v;
      } else if (fused == Fused::clamp) {
        v = v < lo ? lo : v;
        v = v > hi ? hi : v;
      }
    } else if (K == Kind::sum) {
      if (MASKED && !j.count_pad) {
        const int lo_tap = std::max(0, i_lo - p * SW), hi_tap = std::min(KW, i_hi - p * SW);
        v *= avg_scale(j, r.nky * std::max(0, hi_tap - lo_tap));
      } else {
        v *= scale;
      }
    }
    st<L>(y + p * C) = v;
  }
}

// Channels [c0, c1) in blocks of L, the last block overlapping its predecessor if needed.
template <Kind K, int L, int PX, int KW, int SW, bool MASKED = false>
AIOV_ALWAYS_INLINE void run_channels(const Job& j, const Row& r, int64_t c0, int64_t c1, int64_t ox, int64_t kx0,
                                     int64_t nkx, float scale) {
  for (int64_t c = c0; c < c1; c += L) {
    if (c + L > c1) c = c1 - L;
    run_pixels<K, L, PX, KW, SW, MASKED>(j, r, c, ox, kx0, nkx, scale);
  }
}

template <Kind K, int L>
AIOV_ALWAYS_INLINE void border_pixel(const Job& j, const Row& r, int64_t c0, int64_t c1, int64_t ox) {
  const Window2d& g = j.g;
  int64_t kx0, kx1;
  tap_range(ox * g.sw - g.pw, g.dw, g.kw, g.W, kx0, kx1);
  const float scale = K == Kind::sum ? avg_scale(j, r.nky * (kx1 - kx0)) : 0.0f;
  run_channels<K, L, 1, 0, 0>(j, r, c0, c1, ox, kx0, kx1 - kx0, scale);
}

// PX pixels from ox with the unrolled kernel; runs reaching into the border are masked.
template <Kind K, int L, int PX, int KW, int SW>
AIOV_ALWAYS_INLINE void shaped_run(const Job& j, const Row& r, int64_t c0, int64_t c1, int64_t ox, int64_t ox_lo,
                                   int64_t ox_hi, float scale) {
  if (ox >= ox_lo && ox + PX <= ox_hi)
    run_channels<K, L, PX, KW, SW, false>(j, r, c0, c1, ox, 0, KW, scale);
  else
    run_channels<K, L, PX, KW, SW, true>(j, r, c0, c1, ox, 0, KW, scale);
}

// One output row, channels [c0, c1); [ox_lo, ox_hi) are the interior pixels. Channels go
// innermost so that input and output are walked in address order, which the prefetchers
// follow; the weights of a tap row are reloaded per block anyway.
template <Kind K, int L, int KW, int SW>
AIOV_ALWAYS_INLINE void row_all(const Job& j, const Row& r, int64_t c0, int64_t c1, int64_t ox_lo, int64_t ox_hi) {
  const Window2d& g = j.g;
  const float scale = K == Kind::sum ? avg_scale(j, r.nky * g.kw) : 0.0f;
  int64_t ox = 0;
  if constexpr (KW > 0) {
    // Border pixels ride along in (masked) runs: sharing each loaded weight between pixels
    // is what makes a run fast. Runs shrink only at the end of the row.
    static_assert(kRun == 8, "runs assume kRun == 8");
    for (; ox + 8 <= g.OW; ox += 8) shaped_run<K, L, 8, KW, SW>(j, r, c0, c1, ox, ox_lo, ox_hi, scale);
    if (ox + 4 <= g.OW) {
      shaped_run<K, L, 4, KW, SW>(j, r, c0, c1, ox, ox_lo, ox_hi, scale);
      ox += 4;
    }
    // Two or one pixels: shared weights gain little, so border ones take the generic path.
    for (; ox < g.OW && ox < ox_lo; ++ox) border_pixel<K, L>(j, r, c0, c1, ox);
    if (ox + 2 <= std::min(g.OW, ox_hi)) {
      run_channels<K, L, 2, KW, SW>(j, r, c0, c1, ox, 0, KW, scale);
      ox += 2;
    }
    if (ox < std::min(g.OW, ox_hi)) {
      run_channels<K, L, 1, KW, SW>(j, r, c0, c1, ox, 0, KW, scale);
      ++ox;
    }
    for (; ox < g.OW; ++ox) border_pixel<K, L>(j, r, c0, c1, ox);
  } else {
    for (; ox < ox_lo; ++ox) border_pixel<K, L>(j, r, c0, c1, ox);
    for (; ox + kRun <= ox_hi; ox += kRun) run_channels<K, L, kRun, 0, 0>(j, r, c0, c1, ox, 0, g.kw, scale);
    for (; ox < g.OW; ++ox) border_pixel<K, L>(j, r, c0, c1, ox);
  }
}

inline Row make_row(const Job& j, int64_t ri, bool conv) {
  const Window2d& g = j.g;
  const int64_t n = ri / g.OH, oy = ri % g.OH;
  const int64_t iy = oy * g.sh - g.ph;
  int64_t ky0, ky1;
  tap_range(iy, g.dh, g.kh, g.H, ky0, ky1);
  Row r;
  r.nky = ky1 - ky0;
  r.x = r.nky ? j.x + (n * g.H + iy + ky0 * g.dh) * g.W * g.C : j.x;
  r.w = j.w + (conv ? ky0 * g.kw * g.C : 0);
  r.y = j.y + ri * g.OW * g.C;
  r.pix = ri * g.OW;
  return r;
}

// Rows [r0, r1), channels [c0, c1) in blocks of L (c1 >= L: a last block short of c1 starts
// before it, recomputing channels, unless c1 - c0 is a multiple of L).
template <Kind K, int L, int KW, int SW>
AIOV_ALWAYS_INLINE void rows_shape(const Job& j, int64_t r0, int64_t r1, int64_t c0, int64_t c1) {
  const Window2d& g = j.g;
  // Output columns whose whole window is in bounds.
  const int64_t ox_lo = std::min(g.OW, (g.pw + g.sw - 1) / g.sw);
  const int64_t last = g.W - 1 - (g.kw - 1) * g.dw + g.pw;  // largest ox*sw allowed
  const int64_t ox_hi = std::max(ox_lo, last < 0 ? 0 : std::min(g.OW, last / g.sw + 1));
  for (int64_t ri = r0; ri < r1; ++ri) row_all<K, L, KW, SW>(j, make_row(j, ri, K == Kind::conv), c0, c1, ox_lo, ox_hi);
}

// ---- A few-channel NCHW image into few output channels ------------------------------------
//
// A model's first convolution (3 channels in, 8 or 16 out at these sizes) as a GEMM is a
// product against one narrow column panel: tiles of two 16-float vectors per row then
// compute 2-4x the useful products. Here each output pixel's channels are one vector (two
// of 8 floats for 9-16 channels without AVX-512) and runs of 8 pixels share every weight
// load. The NCHW image is copied once, padded with zeros (no transpose; a few percent of the
// work), so that no tap needs a bounds test.

struct PlanarJob : JobEpilogue {
  Window2d g;              // C: the image's channels
  int64_t O;               // output channels (at most kPlanarMaxOutputs)
  const float* x;          // N C H W, padded (g's pads are 0)
  const float* w;          // [taps (ky, c, kx)][kPlanarStride], zero past O
  const int64_t* offsets;  // per tap: (c * H + ky * dh) * W + kx * dw
  float* y;                // N OH OW O
  int64_t ld_y;            // floats between output pixels: O
};

// One pixel's NB vectors of output channels: residual, fused activation, then only its O
// channels stored. AnyJob: PlanarJob or NhwcFewJob.
template <int VL, int NB, class AnyJob>
AIOV_ALWAYS_INLINE void few_outputs_store(const AnyJob& j, typename VecOf<VL>::T (&acc)[NB], int64_t pixel) {
  typedef typename VecOf<VL>::T V;
  const V zero{};
  const V lo = zero + j.lo, hi = zero + j.hi;
  float out[VL * NB];
  for (int b = 0; b < NB; ++b) {
    V v = acc[b];
    if (j.res) {
      float r[VL] = {};
      const int64_t n = std::min<int64_t>(VL, j.O - VL * b);
      for (int64_t i = 0; i < n; ++i) r[i] = j.res[pixel * j.ld_res + VL * b + i];
      v += ld<VL>(r);
    }
    if (j.fused == Fused::relu) {
      v = v < zero ? zero : v;
    } else if (j.fused == Fused::clamp) {
      v = v < lo ? lo : v;
      v = v > hi ? hi : v;
    }
    st<VL>(out + VL * b) = v;
  }
  float* y = j.y + pixel * j.ld_y;
  if (j.O == VL * NB)
    for (int b = 0; b < NB; ++b) st<VL>(y + VL * b) = ld<VL>(out + VL * b);
  else
    for (int64_t o = 0; o < j.O; ++o) y[o] = out[o];
}

// The bias as NB vectors of VL output channels, zero past O (or without a bias).
template <int VL, int NB, class AnyJob>
AIOV_ALWAYS_INLINE void load_bias(const AnyJob& j, typename VecOf<VL>::T (&bias)[NB]) {
  for (int b = 0; b < NB; ++b) {
    float t[VL] = {};
    for (int64_t i = 0; i < VL && VL * b + i < j.O; ++i) t[i] = j.bias ? j.bias[VL * b + i] : 0.0f;
    bias[b] = ld<VL>(t);
  }
}

// Output rows [r0, r1) of n * OH, with NB vectors of VL output channels.
template <int VL, int NB>
AIOV_ALWAYS_INLINE void planar_rows(const PlanarJob& j, int64_t r0, int64_t r1) {
  typedef typename VecOf<VL>::T V;
  const Window2d& g = j.g;
  constexpr int64_t kPx = 8, S = kPlanarStride;
  V bias[NB];
  load_bias<VL, NB>(j, bias);
  const int64_t K = g.C * g.kh * g.kw;
  for (int64_t ri = r0; ri < r1; ++ri) {
    const int64_t n = ri / g.OH, oy = ri % g.OH;
    // Tap k of pixel ox reads row[offsets[k] + ox * sw]: the image is padded, so every tap
    // of every window lies inside it.
    const float* row = j.x + (n * g.C * g.H + oy * g.sh) * g.W;
    for (int64_t ox = 0; ox < g.OW; ox += kPx) {
      // A last run short of kPx pixels computes the rest from whatever lies past the row
      // (the buffer has room for it) and stores only its own.
      const int64_t px = std::min(kPx, g.OW - ox);
      V acc[kPx][NB];
      for (int p = 0; p < kPx; ++p)
        for (int b = 0; b < NB; ++b) acc[p][b] = bias[b];
      const float* base = row + ox * g.sw;
      for (int64_t k = 0; k < K; ++k) {
        V wv[NB];
        for (int b = 0; b < NB; ++b) wv[b] = ld<VL>(j.w + k * S + VL * b);
        const float* xk = base + j.offsets[k];
#pragma GCC unroll 8
        for (int p = 0; p < kPx; ++p) {
          const float xv = xk[p * g.sw];
          for (int b = 0; b < NB; ++b) acc[p][b] += xv * wv[b];
        }
      }
      for (int p = 0; p < px; ++p) few_outputs_store<VL, NB>(j, acc[p], ri * g.OW + ox + p);
    }
    if (j.fused == Fused::deferred) {
      float* y = j.y + ri * g.OW * j.ld_y;
      apply_epilogue_row(y, g.OW * j.ld_y, nullptr, nullptr, j.act);
    }
  }
}

// ---- A few-channel NHWC convolution into few output channels ------------------------------
//
// The same idea for NHWC input (the 3x3 convolutions of narrow layers, 4-16 channels): as a
// GEMM, K is short (taps x C) and N (the output channels) is half a tile or less. Here each
// output pixel's channels are one vector; input channel c of tap (ky, kx) is one broadcast,
// and neighbouring pixels of a run read it sw * C floats apart. No copy: windows crossing
// the top or bottom edge skip those kernel rows, pixels crossing the left or right edge go
// one at a time over their in-bounds columns. A grouped convolution (wav2vec2's positional
// convolution, 8 channels a group) runs each group the same way over its slice of every
// pixel's channels, instead of one GEMM per group with N of 8 (dot products per output).

struct NhwcFewJob : JobEpilogue {
  Window2d g;          // C: every group's channels, the floats between input pixels
  int64_t O;           // output channels per group (at most kPlanarMaxOutputs)
  int64_t cg, groups;  // input channels per group (C / groups), groups
  const float* x;      // N H W C (a group job: at its first channel)
  const float* w;      // per group [taps (ky, kx, c)][kPlanarStride], zero past O
  float* y;            // N OH OW (groups * O) (a group job: at its first channel)
  int64_t ld_y;        // floats between output pixels: groups * O
};

// One output row of a NhwcFewJob: where its windows start and which kernel rows are inside.
struct FewRow {
  const float* image;  // the row's image, at (n, 0, 0, 0)
  int64_t iy0;         // the windows' first input row (may be in the padding)
  int64_t ky0, ky1;    // kernel rows inside the image
  int64_t pixel;       // flat index of the row's first output pixel
  // Pixel ox's window start, which may lie outside the image: only in-bounds taps are read.
  const float* window(const Window2d& g, int64_t ox) const { return image + (iy0 * g.W + ox * g.sw - g.pw) * g.C; }
};

// One input column i of a tap for PX pixels: acc[p] += x[i + p * step] * w[i].
template <int VL, int NB, int PX>
AIOV_ALWAYS_INLINE void nhwc_few_column(typename VecOf<VL>::T (&acc)[PX][NB], const float* xk, const float* wk,
                                        int64_t i, int64_t step) {
  typedef typename VecOf<VL>::T V;
  V wv[NB];
  for (int b = 0; b < NB; ++b) wv[b] = ld<VL>(wk + i * kPlanarStride + VL * b);
#pragma GCC unroll 8
  for (int p = 0; p < PX; ++p) {
    const float xv = xk[i + p * step];
    for (int b = 0; b < NB; ++b) acc[p][b] += xv * wv[b];
  }
}

// PX pixels of one output row from ox, kernel columns [kx0, kx1) (the same for all of them).
// (Lambdas would not do for the helpers here: they do not take the ISA's target attribute.)
template <int VL, int NB, int PX>
AIOV_ALWAYS_INLINE void nhwc_few_pixels(const NhwcFewJob& j, const typename VecOf<VL>::T (&bias)[NB], const FewRow& r,
                                        int64_t ox, int64_t kx0, int64_t kx1) {
  typedef typename VecOf<VL>::T V;
  const Window2d& g = j.g;
  constexpr int64_t S = kPlanarStride;
  const int64_t C = g.C, Cg = j.cg, step = g.sw * C;
  const float* window = r.window(g, ox);
  // A lone pixel's sums would be one chain of dependent FMAs, waiting on the FMA's latency
  // (wav2vec2's 1x16 window at the border: 128 in a row, 2.5x OpenVINO's time); kChains
  // partial sums interleave them.
  constexpr int kChains = PX == 1 ? 4 : 1;
  V acc[kChains][PX][NB];
  for (int c = 0; c < kChains; ++c)
    for (int p = 0; p < PX; ++p)
      for (int b = 0; b < NB; ++b) acc[c][p][b] = c == 0 ? bias[b] : V{};
  // Undilated and ungrouped, a kernel row's in-bounds columns are one run of (kx1 - kx0) * C
  // floats, in the input as in the weights.
  const bool one_run = g.dw == 1 && Cg == C;
  const int64_t pieces = one_run ? 1 : kx1 - kx0, len = one_run ? (kx1 - kx0) * C : Cg;
  for (int64_t ky = r.ky0; ky < r.ky1; ++ky) {
    for (int64_t piece = 0; piece < pieces; ++piece) {
      const int64_t kx = kx0 + piece;
      const float* xk = window + (ky * g.dh * g.W + kx * g.dw) * C;
      const float* wk = j.w + ((ky * g.kw + kx) * Cg) * S;
      int64_t i = 0;
      for (; i + kChains <= len; i += kChains)
#pragma GCC unroll 4
        for (int c = 0; c < kChains; ++c) nhwc_few_column<VL, NB, PX>(acc[c], xk, wk, i + c, step);
      for (; i < len; ++i) nhwc_few_column<VL, NB, PX>(acc[0], xk, wk, i, step);
    }
  }
  for (int c = 1; c < kChains; ++c)
    for (int p = 0; p < PX; ++p)
      for (int b = 0; b < NB; ++b) acc[0][p][b] += acc[c][p][b];
  for (int p = 0; p < PX; ++p) few_outputs_store<VL, NB>(j, acc[0][p], r.pixel + ox + p);
}

// One pixel over its in-bounds kernel columns (one crossing an edge, or a leftover).
template <int VL, int NB>
AIOV_ALWAYS_INLINE void nhwc_few_single(const NhwcFewJob& j, const typename VecOf<VL>::T (&bias)[NB], const FewRow& r,
                                        int64_t ox) {
  const Window2d& g = j.g;
  int64_t kx0, kx1;
  tap_range(ox * g.sw - g.pw, g.dw, g.kw, g.W, kx0, kx1);
  nhwc_few_pixels<VL, NB, 1>(j, bias, r, ox, kx0, kx1);
}

// PX pixels from ox with a compile-time window width KW and stride SW (undilated): each
// input column of a kernel row is broadcast once per channel and feeds every pixel whose
// window holds it (up to KW of them), so a run does about one load per two FMAs instead of
// one per FMA. MASKED skips the input columns outside the image (a run over the border).
template <int VL, int NB, int PX, int KW, int SW, bool MASKED>
AIOV_ALWAYS_INLINE void nhwc_few_shaped(const NhwcFewJob& j, const typename VecOf<VL>::T (&bias)[NB], const FewRow& r,
                                        int64_t ox) {
  typedef typename VecOf<VL>::T V;
  const Window2d& g = j.g;
  constexpr int64_t S = kPlanarStride;
  constexpr int kCols = (PX - 1) * SW + KW;  // input columns a run reads
  const int64_t C = g.C, Cg = j.cg;
  int i_lo = 0, i_hi = kCols;
  if (MASKED) {
    const int64_t ix0 = ox * SW - g.pw;
    i_lo = (int)std::min<int64_t>(kCols, std::max<int64_t>(0, -ix0));
    i_hi = (int)std::max<int64_t>(i_lo, std::min<int64_t>(kCols, g.W - ix0));
  }
  V acc[PX][NB];
  for (int p = 0; p < PX; ++p)
    for (int b = 0; b < NB; ++b) acc[p][b] = bias[b];
  const float* window = r.window(g, ox);
  for (int64_t ky = r.ky0; ky < r.ky1; ++ky) {
    const float* xr = window + ky * g.dh * g.W * C;
    const float* wr = j.w + ky * KW * Cg * S;
    for (int64_t c = 0; c < Cg; ++c) {
      V wv[KW][NB];
#pragma GCC unroll 8
      for (int kx = 0; kx < KW; ++kx)
        for (int b = 0; b < NB; ++b) wv[kx][b] = ld<VL>(wr + (kx * Cg + c) * S + VL * b);
      const float* xi = xr + c;  // a running pointer: per-column offsets would each take a register
#pragma GCC unroll 64
      for (int i = 0; i < kCols; ++i, xi += C) {
        if (MASKED && (i < i_lo || i >= i_hi)) continue;
        const float xv = *xi;
#pragma GCC unroll 8
        for (int kx = 0; kx < KW; ++kx) {
          const int d = i - kx;
          if (d >= 0 && d % SW == 0 && d / SW < PX)
            for (int b = 0; b < NB; ++b) acc[d / SW][b] += xv * wv[kx][b];
        }
      }
    }
  }
  for (int p = 0; p < PX; ++p) few_outputs_store<VL, NB>(j, acc[p], r.pixel + ox + p);
}

// PX pixels from ox with the KW x SW kernel, masked if the run reaches over the border.
template <int VL, int NB, int PX, int KW, int SW>
AIOV_ALWAYS_INLINE void nhwc_few_run(const NhwcFewJob& j, const typename VecOf<VL>::T (&bias)[NB], const FewRow& r,
                                     int64_t ox, int64_t ox_lo, int64_t ox_hi) {
  if (ox >= ox_lo && ox + PX <= ox_hi)
    nhwc_few_shaped<VL, NB, PX, KW, SW, false>(j, bias, r, ox);
  else
    nhwc_few_shaped<VL, NB, PX, KW, SW, true>(j, bias, r, ox);
}

// One output row: runs of 8 and then 4 pixels with the KW x SW kernel, the rest one by one.
template <int VL, int NB, int KW, int SW>
AIOV_ALWAYS_INLINE void nhwc_few_shaped_row(const NhwcFewJob& j, const typename VecOf<VL>::T (&bias)[NB],
                                            const FewRow& r, int64_t ox_lo, int64_t ox_hi) {
  const int64_t OW = j.g.OW;
  int64_t ox = 0;
  for (; ox + 8 <= OW; ox += 8) nhwc_few_run<VL, NB, 8, KW, SW>(j, bias, r, ox, ox_lo, ox_hi);
  if (ox + 4 <= OW) {
    nhwc_few_run<VL, NB, 4, KW, SW>(j, bias, r, ox, ox_lo, ox_hi);
    ox += 4;
  }
  for (; ox < OW; ++ox) nhwc_few_single<VL, NB>(j, bias, r, ox);
}

// Output rows [r0, r1) of n * OH, of one group's job (x, w, y, bias and residual at its first
// channel).
template <int VL, int NB>
AIOV_ALWAYS_INLINE void nhwc_few_group_rows(const NhwcFewJob& j, int64_t r0, int64_t r1) {
  typedef typename VecOf<VL>::T V;
  const Window2d& g = j.g;
  V bias[NB];
  load_bias<VL, NB>(j, bias);
  // Output columns whose whole window is in bounds across.
  const int64_t ox_lo = std::min(g.OW, (g.pw + g.sw - 1) / g.sw);
  const int64_t last = g.W - 1 - (g.kw - 1) * g.dw + g.pw;  // largest ox*sw allowed
  const int64_t ox_hi = std::max(ox_lo, last < 0 ? 0 : std::min(g.OW, last / g.sw + 1));
  for (int64_t ri = r0; ri < r1; ++ri) {
    FewRow r;
    const int64_t n = ri / g.OH, oy = ri % g.OH;
    r.image = j.x + n * g.H * g.W * g.C;
    r.iy0 = oy * g.sh - g.ph;
    tap_range(r.iy0, g.dh, g.kh, g.H, r.ky0, r.ky1);
    r.pixel = ri * g.OW;
    if (g.kw == 3 && g.dw == 1 && g.sw == 1) {
      nhwc_few_shaped_row<VL, NB, 3, 1>(j, bias, r, ox_lo, ox_hi);
    } else if (g.kw == 3 && g.dw == 1 && g.sw == 2) {
      nhwc_few_shaped_row<VL, NB, 3, 2>(j, bias, r, ox_lo, ox_hi);
    } else {
      int64_t ox = 0;
      for (; ox < ox_lo; ++ox) nhwc_few_single<VL, NB>(j, bias, r, ox);
      for (; ox + 8 <= ox_hi; ox += 8) nhwc_few_pixels<VL, NB, 8>(j, bias, r, ox, 0, g.kw);
      for (; ox < g.OW; ++ox) nhwc_few_single<VL, NB>(j, bias, r, ox);
    }
  }
}

// Output rows [r0, r1) of n * OH: each group's, then an activation the store did not apply.
template <int VL, int NB>
AIOV_ALWAYS_INLINE void nhwc_few_rows(const NhwcFewJob& j, int64_t r0, int64_t r1) {
  const Window2d& g = j.g;
  for (int64_t gi = 0; gi < j.groups; ++gi) {
    NhwcFewJob group = j;
    group.x += gi * j.cg;
    group.w += gi * g.kh * g.kw * j.cg * kPlanarStride;
    group.y += gi * j.O;
    if (group.bias) group.bias += gi * j.O;
    if (group.res) group.res += gi * j.O;
    nhwc_few_group_rows<VL, NB>(group, r0, r1);
  }
  if (j.fused == Fused::deferred) {
    const int64_t width = j.groups * j.O;
    for (int64_t ri = r0; ri < r1; ++ri) {
      if (j.ld_y == width) {
        apply_epilogue_row(j.y + ri * g.OW * j.ld_y, g.OW * j.ld_y, nullptr, nullptr, j.act);
        continue;
      }
      // Pixels apart (a Concat's slice): the channels between them are another part's.
      for (int64_t ox = 0; ox < g.OW; ++ox)
        apply_epilogue_row(j.y + (ri * g.OW + ox) * j.ld_y, width, nullptr, nullptr, j.act);
    }
  }
}

// One out-of-line function per (kind, vector width, window shape) and ISA: vector code only
// lives inside functions carrying the ISA's target attribute, and the split keeps each
// function small enough for GCC to compile in reasonable time.
#define AIOV_WINDOW_ISA(Name, ATTR, LANES)                                                                          \
  struct Name {                                                                                                     \
    static constexpr int L = LANES;                                                                                 \
    template <Kind K, int VL, int KW, int SW>                                                                       \
    ATTR __attribute__((noinline)) static void rows(const Job& j, int64_t r0, int64_t r1, int64_t c0, int64_t c1) { \
      rows_shape<K, VL, KW, SW>(j, r0, r1, c0, c1);                                                                 \
    }                                                                                                               \
    template <int VL, int NB>                                                                                       \
    ATTR __attribute__((noinline)) static void few_outputs(const PlanarJob& j, int64_t r0, int64_t r1) {            \
      planar_rows<VL, NB>(j, r0, r1);                                                                               \
    }                                                                                                               \
    template <int VL, int NB>                                                                                       \
    ATTR __attribute__((noinline)) static void few_outputs(const NhwcFewJob& j, int64_t r0, int64_t r1) {           \
      nhwc_few_rows<VL, NB>(j, r0, r1);                                                                             \
    }                                                                                                               \
  };

AIOV_WINDOW_ISA(Baseline, , 4)
#if defined(AIOV_WINDOW_X86)
AIOV_WINDOW_ISA(Avx2, __attribute__((target("avx2,fma"))), 8)
AIOV_WINDOW_ISA(Avx512, __attribute__((target("avx512f,fma"))), 16)
#endif

// Channels [c0, c1) in vectors of VL, with a compile-time window shape when one matches.
template <Kind K, class Isa, int VL>
void rows_main(const Job& j, int64_t r0, int64_t r1, int64_t c0, int64_t c1) {
  const Window2d& g = j.g;
  if (g.dw == 1) {
    if (g.kw == 3 && g.sw == 1) return Isa::template rows<K, VL, 3, 1>(j, r0, r1, c0, c1);
    if (g.kw == 3 && g.sw == 2) return Isa::template rows<K, VL, 3, 2>(j, r0, r1, c0, c1);
    if (K == Kind::conv && g.kw == 5 && g.sw == 1) return Isa::template rows<K, VL, 5, 1>(j, r0, r1, c0, c1);
    if (K == Kind::conv && g.kw == 5 && g.sw == 2) return Isa::template rows<K, VL, 5, 2>(j, r0, r1, c0, c1);
  }
  Isa::template rows<K, VL, 0, 0>(j, r0, r1, c0, c1);
}

// Full vectors first, then what is left. A last partial vector recomputes channels of the
// one before where that is allowed (overlap_tail); otherwise the rest goes in narrower
// vectors. On AVX-512 the rest (and a tensor of 8 to 15 channels: MobileNet- and
// EfficientNet-sized layers) runs on 8-float vectors with the unrolled window kernels: the
// 4-float generic path took 2-3x as long at 8 or 12 channels as at 16.
template <Kind K, class Isa>
void rows_any(const Job& j, int64_t r0, int64_t r1) {
  constexpr int L = Isa::L;
  const int64_t C = j.g.C;
  if ((C >= L && j.overlap_tail) || C % L == 0) return rows_main<K, Isa, L>(j, r0, r1, 0, C);
  int64_t done = C / L * L;
  if (done) rows_main<K, Isa, L>(j, r0, r1, 0, done);
  if constexpr (L > 8) {
    if ((C >= 8 && j.overlap_tail) || (C - done) % 8 == 0) return rows_main<K, Isa, 8>(j, r0, r1, done, C);
    const int64_t full8 = done + (C - done) / 8 * 8;
    if (full8 > done) rows_main<K, Isa, 8>(j, r0, r1, done, full8);
    done = full8;
  }
  // Channels past the last full vector, without recomputing any: narrower generic passes.
  const int64_t full4 = L > 4 ? done + (C - done) / 4 * 4 : done;
  if (full4 > done) Isa::template rows<K, 4, 0, 0>(j, r0, r1, done, full4);
  if (C > full4) Isa::template rows<K, 1, 0, 0>(j, r0, r1, full4, C);
}

template <Kind K, class Isa>
void rows_entry(const Job& j, int64_t r0, int64_t r1) {
  if (K != Kind::conv || j.fused != Fused::deferred) return rows_any<K, Isa>(j, r0, r1);
  // An activation not fused into the store: a pass per finished row, while it is in cache.
  const int64_t row = j.g.OW * j.g.C;
  for (int64_t ri = r0; ri < r1; ++ri) {
    rows_any<K, Isa>(j, ri, ri + 1);
    apply_epilogue_row(j.y + ri * row, row, nullptr, nullptr, j.act);
  }
}

typedef void (*RowsFn)(const Job&, int64_t, int64_t);
struct IsaFns {
  RowsFn conv, max, sum;
};

// MaxIsa runs max pooling: GCC 12 lowers the NaN-keeping select of 16-float vectors lane by
// lane through scalar compares and branches (about 50x slower than 8-float vectors), so
// AVX-512 pools at AVX2's width; the pool is bound by memory at either width.
template <class Isa, class MaxIsa = Isa>
const IsaFns* fns_for() {
  static const IsaFns f{rows_entry<Kind::conv, Isa>, rows_entry<Kind::max, MaxIsa>, rows_entry<Kind::sum, Isa>};
  return &f;
}

const IsaFns& isa_fns() {
  static const IsaFns* chosen = [] {
#if defined(AIOV_WINDOW_X86)
    const Isa isa = selected_isa();
    if (isa == Isa::avx512) return fns_for<Avx512, Avx2>();
    if (isa == Isa::avx2) return fns_for<Avx2>();
#endif
    return fns_for<Baseline>();
  }();
  return *chosen;
}

// Rows per task such that each carries roughly this many window taps x channels.
constexpr int64_t kGrainWork = 32 * 1024;

void run(const Job& j, RowsFn rows, ThreadPool* pool, int max_threads) {
  const Window2d& g = j.g;
  const int64_t nrows = g.N * g.OH;
  if (nrows <= 0 || g.OW <= 0 || g.C <= 0) return;
  const int64_t row_work = std::max<int64_t>(1, g.OW * g.C * g.kh * g.kw);
  const int64_t grain = std::max<int64_t>(1, kGrainWork / row_work);
  if (!pool || max_threads == 1 || nrows <= grain) {
    rows(j, 0, nrows);
    return;
  }
  pool->parallel_for(nrows, grain, [&](int64_t b, int64_t e) { rows(j, b, e); }, max_threads);
}

Job make_job(const Window2d& g, const float* x, float* y) {
  Job j{};
  j.g = g;
  j.x = x;
  j.w = x;
  j.y = y;
  j.fused = Fused::none;
  j.overlap_tail = true;
  return j;
}

// The few-output kernel for O channels: one vector of 8 or 16 (AVX-512) floats per pixel, or
// two of 8 for 9-16 channels below AVX-512. AnyJob: PlanarJob or NhwcFewJob.
template <class AnyJob>
using FewOutputsFn = void (*)(const AnyJob&, int64_t, int64_t);

template <class Isa, class AnyJob>
FewOutputsFn<AnyJob> few_outputs_for(int64_t O) {
  const FewOutputsFn<AnyJob> eight = Isa::template few_outputs<8, 1>;
  if (O <= 8) return eight;
  const FewOutputsFn<AnyJob> sixteen = Isa::template few_outputs<16, 1>, two_eights = Isa::template few_outputs<8, 2>;
  return Isa::L >= 16 ? sixteen : two_eights;
}

template <class AnyJob>
FewOutputsFn<AnyJob> few_outputs_fn(int64_t O) {
#if defined(AIOV_WINDOW_X86)
  const Isa isa = selected_isa();
  if (isa == Isa::avx512) return few_outputs_for<Avx512, AnyJob>(O);
  if (isa == Isa::avx2) return few_outputs_for<Avx2, AnyJob>(O);
#endif
  return few_outputs_for<Baseline, AnyJob>(O);
}

// Output rows of a few-output job, split over the pool when each task gets enough work.
template <class AnyJob>
void run_few_outputs(const AnyJob& j, ThreadPool* pool, int max_threads) {
  const Window2d& g = j.g;
  const FewOutputsFn<AnyJob> rows = few_outputs_fn<AnyJob>(j.O);
  const int64_t nrows = g.N * g.OH;
  const int64_t row_work = std::max<int64_t>(1, g.OW * g.C * g.kh * g.kw * j.O);
  const int64_t grain = std::max<int64_t>(1, kGrainWork / row_work);
  if (!pool || max_threads == 1 || nrows <= grain) return rows(j, 0, nrows);
  pool->parallel_for(nrows, grain, [&](int64_t b, int64_t e) { rows(j, b, e); }, max_threads);
}

// The activation the store applies (relu, clamp), or deferred to a pass over each row.
void set_fused(const Activation& act, Fused& fused, float& lo, float& hi) {
  switch (act.kind) {
    case ActKind::none:
      fused = Fused::none;
      break;
    case ActKind::relu:
      fused = Fused::relu;
      break;
    case ActKind::clamp:
      // The fused form applies the bounds one after the other, which differs only if lo > hi.
      fused = act.alpha <= act.beta ? Fused::clamp : Fused::deferred;
      lo = act.alpha;
      hi = act.beta;
      break;
    default:
      fused = Fused::deferred;
  }
}

// A job's epilogue fields from the op's Epilogue.
void take_epilogue(JobEpilogue& j, const Epilogue& e) {
  j.bias = e.bias;
  j.res = e.residual;
  j.ld_res = e.ld_residual;
  j.act = e.act;
  set_fused(e.act, j.fused, j.lo, j.hi);
}

}  // namespace

void depthwise_conv_nhwc(const Window2d& g, const float* x, const float* w, const Epilogue& e, float* y,
                         ThreadPool* pool, int max_threads) {
  Job j = make_job(g, x, y);
  j.w = w;
  take_epilogue(j, e);
  if (e.residual) {
    // Recomputing channels would re-read a residual that the first pass already overwrote.
    const float* y_end = y + g.N * g.OH * g.OW * g.C;
    const float* r_end = e.residual + (g.N * g.OH * g.OW - 1) * e.ld_residual + g.C;
    if (e.residual < y_end && y < r_end) j.overlap_tail = false;
  }
  run(j, isa_fns().conv, pool, max_threads);
}

void max_pool_nhwc(const Window2d& g, const float* x, float* y, ThreadPool* pool, int max_threads) {
  run(make_job(g, x, y), isa_fns().max, pool, max_threads);
}

void avg_pool_nhwc(const Window2d& g, bool count_pad, const float* x, float* y, ThreadPool* pool, int max_threads) {
  Job j = make_job(g, x, y);
  j.count_pad = count_pad;
  run(j, isa_fns().sum, pool, max_threads);
}

void planar_conv_few_outputs(const Window2d& g, int64_t O, const float* x, const float* w, const Epilogue& e, float* y,
                             ThreadPool* pool, int max_threads) {
  if (O < 1 || O > kPlanarMaxOutputs) throw std::logic_error("planar_conv_few_outputs: 1 to 16 output channels");
  if (g.N * g.OH <= 0 || g.OW <= 0) return;
  // The image with its padding made zeros: the kernel then reads every tap without a test.
  // Past its end, room for a last short run of pixels reading on.
  Window2d pg = g;
  pg.W = std::max(g.pw + g.W, (g.OW - 1) * g.sw + (g.kw - 1) * g.dw + 1);
  pg.H = std::max(g.ph + g.H, (g.OH - 1) * g.sh + (g.kh - 1) * g.dh + 1);
  pg.pw = pg.ph = 0;
  const int64_t slack = 8 * g.sw * g.kw * g.dw, image = g.C * pg.H * pg.W;
  // Unpadded, every image but the last is read as it lies: a last short run of a row reads
  // on into the next row or image, for pixels it does not store. Copying them all cost a
  // third of SqueezeNet's 3x3/2 stem (8 x 3 x 64 x 64).
  const int64_t read_in_place = pg.H == g.H && pg.W == g.W && image >= slack ? g.N - 1 : 0;
  thread_local std::vector<float> padded;
  padded.assign((size_t)((g.N - read_in_place) * image + slack), 0.0f);
  for (int64_t plane = read_in_place * g.C; plane < g.N * g.C; ++plane)
    for (int64_t iy = 0; iy < g.H; ++iy)
      std::copy_n(x + (plane * g.H + iy) * g.W, g.W,
                  padded.data() + ((plane - read_in_place * g.C) * pg.H + g.ph + iy) * pg.W + g.pw);
  thread_local std::vector<int64_t> offsets;
  offsets.clear();
  for (int64_t ky = 0; ky < g.kh; ++ky)
    for (int64_t c = 0; c < g.C; ++c)
      for (int64_t kx = 0; kx < g.kw; ++kx) offsets.push_back((c * pg.H + ky * g.dh) * pg.W + kx * g.dw);
  // Images [n0, n0 + count) from xs (at image n0).
  auto images = [&](int64_t n0, int64_t count, const float* xs) {
    PlanarJob j{};
    j.g = pg;
    j.g.N = count;
    j.O = O;
    j.x = xs;
    j.w = w;
    j.offsets = offsets.data();
    j.y = y + n0 * g.OH * g.OW * O;
    j.ld_y = O;
    take_epilogue(j, e);
    if (j.res) j.res += n0 * g.OH * g.OW * j.ld_res;
    run_few_outputs(j, pool, max_threads);
  };
  if (read_in_place) images(0, read_in_place, x);
  images(read_in_place, g.N - read_in_place, padded.data());
}

void nhwc_conv_few_outputs(const Window2d& g, int64_t O, const float* x, const float* w, const Epilogue& e, float* y,
                           ThreadPool* pool, int max_threads, int64_t groups, int64_t ld_y) {
  if (O < 1 || O > kPlanarMaxOutputs) throw std::logic_error("nhwc_conv_few_outputs: 1 to 16 output channels");
  if (groups < 1 || g.C % groups != 0) throw std::logic_error("nhwc_conv_few_outputs: groups must divide the channels");
  if (g.N * g.OH <= 0 || g.OW <= 0) return;
  NhwcFewJob j{};
  j.g = g;
  j.O = O;
  j.cg = g.C / groups;
  j.groups = groups;
  j.x = x;
  j.w = w;
  j.y = y;
  j.ld_y = ld_y ? ld_y : groups * O;
  if (j.ld_y < groups * O) throw std::logic_error("nhwc_conv_few_outputs: output rows overlap");
  take_epilogue(j, e);
  run_few_outputs(j, pool, max_threads);
}

}  // namespace aiov
