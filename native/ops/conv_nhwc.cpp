// aiov.FusedConv: a 2-D convolution on NHWC data with its bias, an optional residual and an
// activation applied as the output is written. The graph optimizer makes it from
// Convolution (+ BatchNorm, bias, scale) and runs whole convolution regions in NHWC, where
// channels are contiguous: a 1x1 convolution is one GEMM on the input as it lies, larger
// windows with 16+ channels have the GEMM read the input in place (a run of channels per
// tap, ConvRuns), fewer channels feed it rows made on demand (implicit im2col, ConvRows),
// 3x3 stride 1 or 2 may go through Winograd, and depthwise and windows into at most 16
// output channels have their own loops. A convolution on a
// model's NCHW image with few channels reads it as it lies (ConvPlanes), without a transpose.
#include <algorithm>
#include <cstring>
#include <memory>
#include <vector>

#include "executor/executor.hpp"
#include "core/environment.hpp"
#include "kernels/conv_bf16.hpp"
#include "kernels/dispatch.hpp"
#include "kernels/epilogue.hpp"
#include "kernels/gemm.hpp"
#include "kernels/nhwc_window.hpp"
#include "kernels/scalar.hpp"
#include "kernels/winograd.hpp"
#include "ops/fused_conv.hpp"
#include "ops/window.hpp"
#include "plan/registry.hpp"

namespace aiov {
namespace {

std::vector<PortInfo> infer_fused_conv(const InferContext& c) {
  // bf16 data with f32 filters: a region carrying bf16 between convolutions (carry_bf16).
  if (c.in[0].type != ElementType::bf16 || c.in[1].type != ElementType::f32)
    expect_type_match(c.node, c.in[0], c.in[1]);
  if (layout_of(c.node) != Layout::nhwc) throw InputError(c.node.describe() + ": only the nhwc layout");
  input_layout_of(c.node);  // nhwc, or nchw read as it lies (names anything else)
  PartialShape y = conv_output_shape(c.node, c.in[0].shape, c.in[1].shape);
  if (y.rank_known && y.rank() != 4) throw InputError(c.node.describe() + ": only 2-D convolutions");
  const PartialShape& b = c.in[2].shape;
  if (b.rank_known && c.in[1].shape.rank_known && (b.rank() != 1 || b.dims[0] != c.in[1].shape.dims[0]))
    throw InputError(c.node.describe() + ": bias must have one value per output channel, got " + b.str());
  if (c.in.size() > 3 && c.in[3].shape.is_static() && y.is_static() && c.in[3].shape.dims != y.dims)
    throw InputError(c.node.describe() + ": residual must be " + y.str() + ", got " + c.in[3].shape.str());
  const size_t scales = c.node.attr_floats("filter_scale").size();
  if (scales && c.in[1].shape.rank_known && c.in[1].shape.dims[0] >= 0 && (int64_t)scales != c.in[1].shape.dims[0])
    throw InputError(c.node.describe() + ": filter_scale must have one value per output channel (" +
                     std::to_string(c.in[1].shape.dims[0]) + "), got " + std::to_string(scales));
  const std::string output_type = c.node.attr_str("output_type");
  if (output_type != "same" && c.in[0].type != ElementType::f32 && c.in[0].type != ElementType::bf16)
    throw InputError(c.node.describe() + ": output_type " + output_type + " needs f32 or bf16 data, got " +
                     type_name(c.in[0].type));
  return {PortInfo{output_type == "same" ? c.in[0].type : type_from_name(output_type), y}};
}

// rows x len floats from src (rows src_step apart) to dst (rows ld apart): the interior of a
// span of im2col rows. Cloned per ISA so each row is a few full-width vector moves.
AIOV_MULTIVERSION void copy_rows(const float* __restrict src, int64_t src_step, float* __restrict dst, int64_t ld,
                                 int64_t rows, int64_t len) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < len; ++j) dst[r * ld + j] = src[r * src_step + j];
}

void fill_rows(float* dst, int64_t ld, int64_t rows, int64_t len, float v) {
  for (int64_t r = 0; r < rows; ++r) std::fill_n(dst + r * ld, len, v);
}

// Output columns [lo, hi) whose windows lie wholly inside the image across.
void interior_columns(const Window2d& g, int64_t& lo, int64_t& hi) {
  lo = std::min(g.OW, (g.pw + g.sw - 1) / g.sw);
  const int64_t x_span = (g.kw - 1) * g.dw;
  hi = g.W + g.pw > x_span ? std::clamp((g.W + g.pw - 1 - x_span) / g.sw + 1, lo, g.OW) : lo;
}

// Rows of the im2col matrix of one group, made on demand: row m is output pixel m
// (n, oy, ox); column k is (ky, kx, c) with c fastest, matching the packed weights.
class ConvRows final : public RowSource {
 public:
  ConvRows(const Window2d& g, int64_t cg, int64_t c0, const float* x) : g_(g), cg_(cg), c0_(c0), x_(x) {}

  void rows(int64_t m0, int64_t count, int64_t k0, int64_t kc, float* dst, int64_t ld) const override {
    const int64_t ohw = g_.OH * g_.OW;
    // With one group and no dilation, one kernel row (kw pixels x C channels) is a single
    // contiguous run of the input whenever it lies inside the image.
    if (cg_ == g_.C && g_.dw == 1) return run_rows(m0, count, k0, kc, dst, ld);
    for (int64_t r = 0; r < count; ++r) {
      const int64_t m = m0 + r, n = m / ohw, p = m % ohw;
      const int64_t iy0 = (p / g_.OW) * g_.sh - g_.ph, ix0 = (p % g_.OW) * g_.sw - g_.pw;
      const float* img = x_ + n * g_.H * g_.W * g_.C + c0_;
      float* d = dst + r * ld;
      for (int64_t k = k0, end = k0 + kc; k < end;) {
        const int64_t tap = k / cg_, c = k % cg_, len = std::min(cg_ - c, end - k);
        const int64_t iy = iy0 + (tap / g_.kw) * g_.dh, ix = ix0 + (tap % g_.kw) * g_.dw;
        if (iy < 0 || iy >= g_.H || ix < 0 || ix >= g_.W)
          std::memset(d, 0, len * sizeof(float));
        else
          std::memcpy(d, img + (iy * g_.W + ix) * g_.C + c, len * sizeof(float));
        d += len;
        k += len;
      }
    }
  }

 private:
  // Rows of one group spanning all channels with undilated kernel rows: each kernel row is
  // one run of kw * C floats of the input, and neighbouring output columns read runs sw * C
  // apart. Rows are made a span of output columns at a time and one piece of a kernel row
  // (the part inside [k0, k0 + kc)) after another, so interior pixels are strided block
  // copies with no per-pixel index arithmetic (per-row memcpy calls cost 10% of a 3x3 conv).
  void run_rows(int64_t m0, int64_t count, int64_t k0, int64_t kc, float* dst, int64_t ld) const {
    const int64_t run = g_.kw * g_.C, ohw = g_.OH * g_.OW, step = g_.sw * g_.C;
    int64_t lo, hi;
    interior_columns(g_, lo, hi);
    for (int64_t m = m0, end = m0 + count; m < end;) {
      const int64_t n = m / ohw, oy = (m % ohw) / g_.OW, ox0 = (m % ohw) % g_.OW;
      const int64_t ox1 = std::min(g_.OW, ox0 + (end - m));  // this span: columns [ox0, ox1) of row oy
      const int64_t span = ox1 - ox0;
      const float* img = x_ + n * g_.H * g_.W * g_.C;
      const int64_t in_lo = std::clamp(lo, ox0, ox1), in_hi = std::clamp(hi, in_lo, ox1);
      for (int64_t k = k0, kend = k0 + kc; k < kend;) {
        const int64_t ky = k / run, q = k % run, len = std::min(run - q, kend - k);
        float* d = dst + (k - k0);
        const int64_t iy = oy * g_.sh - g_.ph + ky * g_.dh;
        if (iy < 0 || iy >= g_.H) {
          fill_rows(d, ld, span, len, 0.0f);
        } else {
          const float* line = img + iy * g_.W * g_.C;
          for (int64_t ox = ox0; ox < in_lo; ++ox) border_piece(line, ox, q, len, d + (ox - ox0) * ld);
          const float* s = line + (in_lo * g_.sw - g_.pw) * g_.C + q;
          copy_rows(s, step, d + (in_lo - ox0) * ld, ld, in_hi - in_lo, len);
          for (int64_t ox = in_hi; ox < ox1; ++ox) border_piece(line, ox, q, len, d + (ox - ox0) * ld);
        }
        k += len;
      }
      dst += span * ld;
      m += span;
    }
  }

  // Floats [q, q + len) of the kernel row of output column ox, where the row crosses an edge.
  void border_piece(const float* line, int64_t ox, int64_t q, int64_t len, float* d) const {
    for (int64_t done = 0; done < len;) {
      const int64_t kx = (q + done) / g_.C, c = (q + done) % g_.C, l = std::min(g_.C - c, len - done);
      const int64_t ix = ox * g_.sw - g_.pw + kx;
      if (ix < 0 || ix >= g_.W)
        std::fill_n(d + done, l, 0.0f);
      else
        std::copy_n(line + ix * g_.C + c, l, d + done);
      done += l;
    }
  }

  Window2d g_;
  int64_t cg_, c0_;
  const float* x_;
};

// The GEMM's A read in place (indirect convolution): row m (output pixel) is one run of the
// group's channels per kernel tap, at the input pixel the tap reads or, past the edge, at
// zeros. Nothing is copied, so wide channel counts skip the im2col rows altogether.
// Where each kernel row and each tap starts from the window's first input point: made once
// per plan (ConvRunsOf::offsets), for f32 and bf16 data alike.
struct ConvRunOffsets {
  std::vector<int64_t> rows, taps;
};

// T is float (a RunSource) or bf16 bits (a Bf16RunSource: a region carrying bf16).
template <class T, class Source>
class ConvRunsOf : public Source {
 public:
  // Runs up to this long can point at the shared zeros.
  static constexpr int64_t kMaxRun = 4096;

  using Offsets = ConvRunOffsets;
  static Offsets offsets(const Window2d& g) {
    Offsets o;
    for (int64_t ky = 0; ky < g.kh; ++ky) {
      o.rows.push_back(ky * g.dh * g.W * g.C);
      for (int64_t kx = 0; kx < g.kw; ++kx) o.taps.push_back((ky * g.dh * g.W + kx * g.dw) * g.C);
    }
    return o;
  }

  // offsets: offsets(g), kept alive by the caller.
  ConvRunsOf(const Window2d& g, int64_t cg, int64_t c0, const Offsets& offsets, const T* x)
      : g_(g), cg_(cg), c0_(c0), x_(x), row_offsets_(offsets.rows.data()), tap_offsets_(offsets.taps.data()) {}

  int segments() const override { return (int)(g_.kh * g_.kw); }

  int runs(int64_t m0, int rows, const T** ptrs, int64_t ld) const override {
    // Rows are consecutive output pixels: the first one's position is divided out once and
    // the rest stepped to. Windows wholly inside the image take their runs from the offset
    // tables; only those over the padding test each tap. (The lookup cost 3% of a
    // 32-channel convolution's time with a division and bounds tests per run.)
    const int64_t ohw = g_.OH * g_.OW, row_floats = g_.W * g_.C;
    const int64_t y_span = (g_.kh - 1) * g_.dh, x_span = (g_.kw - 1) * g_.dw;
    const int64_t first_n = m0 / ohw, first_oy = m0 % ohw / g_.OW, first_ox = m0 % g_.OW;
    // One group, no dilation, and every row's kernel rows inside the image across: each
    // kernel row is one run of kw * C floats (a third of the runs for 3x3), else one per tap.
    bool whole_rows = cg_ == g_.C && g_.dw == 1 && g_.kw * g_.C <= kMaxRun;
    for (int64_t r = 0, ox = first_ox; r < rows && whole_rows; ++r, ox = ox + 1 == g_.OW ? 0 : ox + 1) {
      const int64_t ix0 = ox * g_.sw - g_.pw;
      whole_rows = ix0 >= 0 && ix0 + x_span < g_.W;
    }
    const int n_runs = (int)(whole_rows ? g_.kh : g_.kh * g_.kw);
    const int64_t* offsets = whole_rows ? row_offsets_ : tap_offsets_;
    int64_t n = first_n, oy = first_oy, ox = first_ox;
    for (int r = 0; r < rows; ++r) {
      const int64_t iy0 = oy * g_.sh - g_.ph, ix0 = ox * g_.sw - g_.pw;
      // An offset (it may lie outside the image: only in-bounds taps are formed from it).
      const int64_t window = n * g_.H * row_floats + c0_ + iy0 * row_floats + ix0 * g_.C;
      const bool inside = iy0 >= 0 && iy0 + y_span < g_.H && ix0 >= 0 && ix0 + x_span < g_.W;
      if (inside) {
        for (int s = 0; s < n_runs; ++s) ptrs[s * ld + r] = x_ + (window + offsets[s]);
      } else {
        for (int64_t ky = 0, s = 0; ky < g_.kh; ++ky) {
          const int64_t iy = iy0 + ky * g_.dh;
          const bool row_inside = iy >= 0 && iy < g_.H;
          if (whole_rows) {
            ptrs[ky * ld + r] = row_inside ? x_ + (window + row_offsets_[ky]) : zeros();
            continue;
          }
          for (int64_t kx = 0; kx < g_.kw; ++kx, ++s) {
            const int64_t ix = ix0 + kx * g_.dw;
            ptrs[s * ld + r] = row_inside && ix >= 0 && ix < g_.W ? x_ + (window + tap_offsets_[s]) : zeros();
          }
        }
      }
      if (++ox == g_.OW) {
        ox = 0;
        if (++oy == g_.OH) oy = 0, ++n;
      }
    }
    return n_runs;
  }

 protected:
  static const T* zeros() {
    alignas(64) static const T kZeros[kMaxRun] = {};
    return kZeros;
  }

  Window2d g_;
  int64_t cg_, c0_;
  const T* x_;
  const int64_t *row_offsets_, *tap_offsets_;
};

class ConvRuns final : public ConvRunsOf<float, RunSource> {
 public:
  using ConvRunsOf::ConvRunsOf;
  // The whole input, when this group's channels are all of it (other groups would round the
  // rest in vain).
  Extent extent() const override {
    if (cg_ != g_.C) return {};
    return {x_, g_.N * g_.H * g_.W * g_.C};
  }
};
using Bf16ConvRuns = ConvRunsOf<uint16_t, Bf16RunSource>;

// Rows of the im2col matrix of one group read from NCHW input (a model's image, which then
// needs no transpose to NHWC): row m is output pixel m (n, oy, ox), column k is (ky, c, kx).
// Across one output row, neighbouring pixels read every column sw floats apart, so a run of
// them is one base and a table of K offsets. Kernel rows outer: a window over the top or
// bottom padding reads a contiguous part of K in place; only pixels whose windows cross
// the left or right edge are packed.
class ConvPlanes final : public GridSource {
 public:
  // Where column k lies from a row's base (its window's first input point): once per plan.
  static std::vector<int64_t> column_offsets(const Window2d& g, int64_t cg) {
    std::vector<int64_t> offsets;
    for (int64_t ky = 0; ky < g.kh; ++ky)
      for (int64_t c = 0; c < cg; ++c)
        for (int64_t kx = 0; kx < g.kw; ++kx) offsets.push_back((c * g.H + ky * g.dh) * g.W + kx * g.dw);
    return offsets;
  }
  // The element of the model's [cg, kh, kw] filter that column k (ky, c, kx) multiplies.
  static int64_t filter_index(const Window2d& g, int64_t cg, int64_t k) {
    const int64_t ky = k / (cg * g.kw), c = k / g.kw % cg, kx = k % g.kw;
    return (c * g.kh + ky) * g.kw + kx;
  }

  // offsets: column_offsets(g, cg), kept alive by the caller.
  ConvPlanes(const Window2d& g, int64_t cg, int64_t c0, const int64_t* offsets, const float* x)
      : g_(g), cg_(cg), c0_(c0), x_(x), offsets_(offsets) {
    interior_columns(g_, lo_, hi_);
  }

  const int64_t* offsets() const override { return offsets_; }
  int step() const override { return (int)g_.sw; }

  Span span(int64_t m, int64_t limit) const override {
    const int64_t n = m / (g_.OH * g_.OW), oy = m / g_.OW % g_.OH, ox = m % g_.OW;
    const int64_t in_row = std::min(limit, g_.OW - ox);
    if (ox < lo_) return Span{std::min(in_row, lo_ - ox), nullptr, 0, 0};
    if (ox >= hi_) return Span{in_row, nullptr, 0, 0};
    // Kernel rows [ky0, ky1) lie inside the image.
    const int64_t iy0 = oy * g_.sh - g_.ph;
    const int64_t ky0 = iy0 >= 0 ? 0 : std::min(g_.kh, (-iy0 + g_.dh - 1) / g_.dh);
    const int64_t ky1 = g_.H > iy0 ? std::clamp((g_.H - 1 - iy0) / g_.dh + 1, ky0, g_.kh) : ky0;
    // The base may lie before the image when the window starts in the top padding; only
    // columns from ky0 on are read from it.
    const float* base = x_ + (((n * g_.C + c0_) * g_.H + iy0) * g_.W + ox * g_.sw - g_.pw);
    const int64_t per_row = cg_ * g_.kw;
    return Span{std::min(in_row, hi_ - ox), base, ky0 * per_row, ky1 * per_row};
  }

  void pack(int64_t m, int64_t count, float* dst, int64_t ld) const override {
    // A span lies in one output row: the pixels differ only in ox.
    const int64_t n = m / (g_.OH * g_.OW), oy = m / g_.OW % g_.OH, ox0 = m % g_.OW;
    const float* image = x_ + (n * g_.C + c0_) * g_.H * g_.W;
    for (int64_t ky = 0, k = 0; ky < g_.kh; ++ky) {
      const int64_t iy = oy * g_.sh - g_.ph + ky * g_.dh;
      for (int64_t c = 0; c < cg_; ++c)
        for (int64_t kx = 0; kx < g_.kw; ++kx, ++k) {
          float* d = dst + k * ld;
          if (iy < 0 || iy >= g_.H) {
            std::fill_n(d, count, 0.0f);
            continue;
          }
          const float* line = image + (c * g_.H + iy) * g_.W;
          for (int64_t r = 0; r < count; ++r) {
            const int64_t ix = (ox0 + r) * g_.sw - g_.pw + kx * g_.dw;
            d[r] = ix >= 0 && ix < g_.W ? line[ix] : 0.0f;
          }
        }
    }
  }

 private:
  Window2d g_;
  int64_t cg_, c0_, lo_ = 0, hi_ = 0;
  const float* x_;
  const int64_t* offsets_;
};

// ConvPlanes' rows made on demand instead, for strides the grid kernels cannot read in place
// (more than kMaxGridStep: patch embeddings, whose stride is their window, and 11x11/4 stems),
// where the grid packed every element alone: same K order (ky, c, kx), so the same panels.
// Undilated, each (ky, c) piece of a row is kw floats of one image line, and neighbouring
// pixels of an output row read them sw floats apart: a span of pixels is strided block
// copies, as ConvRows::run_rows makes them from NHWC. One thread, f32, whole model: ViT-B/16's
// 16x16/16 patches (224px into 768) 6.3 -> 2.2 ms, the zoo ViT's 8x8/8 53 -> 27 us, an 11x11/4
// stem 2.8 -> 1.6 ms.
class PlanarRows final : public RowSource {
 public:
  PlanarRows(const Window2d& g, int64_t cg, int64_t c0, const float* x) : g_(g), cg_(cg), c0_(c0), x_(x) {
    interior_columns(g_, lo_, hi_);
  }

  void rows(int64_t m0, int64_t count, int64_t k0, int64_t kc, float* dst, int64_t ld) const override {
    const int64_t ohw = g_.OH * g_.OW, per_ky = cg_ * g_.kw;
    for (int64_t m = m0, end = m0 + count; m < end;) {
      const int64_t n = m / ohw, oy = m % ohw / g_.OW, ox0 = m % g_.OW;
      const int64_t ox1 = std::min(g_.OW, ox0 + (end - m));  // this span: columns [ox0, ox1) of row oy
      const int64_t span = ox1 - ox0;
      const int64_t in_lo = std::clamp(lo_, ox0, ox1), in_hi = std::clamp(hi_, in_lo, ox1);
      const float* image = x_ + (n * g_.C + c0_) * g_.H * g_.W;
      for (int64_t k = k0, kend = k0 + kc; k < kend;) {
        const int64_t ky = k / per_ky, c = k % per_ky / g_.kw, kx = k % g_.kw;
        const int64_t len = std::min(g_.kw - kx, kend - k);
        float* d = dst + (k - k0);
        const int64_t iy = oy * g_.sh - g_.ph + ky * g_.dh;
        if (iy < 0 || iy >= g_.H) {
          fill_rows(d, ld, span, len, 0.0f);
        } else {
          const float* line = image + (c * g_.H + iy) * g_.W;
          for (int64_t ox = ox0; ox < in_lo; ++ox) border_piece(line, ox, kx, len, d + (ox - ox0) * ld);
          if (in_hi > in_lo)
            copy_rows(line + in_lo * g_.sw - g_.pw + kx, g_.sw, d + (in_lo - ox0) * ld, ld, in_hi - in_lo, len);
          for (int64_t ox = in_hi; ox < ox1; ++ox) border_piece(line, ox, kx, len, d + (ox - ox0) * ld);
        }
        k += len;
      }
      dst += span * ld;
      m += span;
    }
  }

 private:
  // Taps [kx, kx + len) of output column ox's window on one image line, which crosses an edge.
  void border_piece(const float* line, int64_t ox, int64_t kx, int64_t len, float* d) const {
    for (int64_t j = 0; j < len; ++j) {
      const int64_t ix = ox * g_.sw - g_.pw + kx + j;
      d[j] = ix >= 0 && ix < g_.W ? line[ix] : 0.0f;
    }
  }

  Window2d g_;
  int64_t cg_, c0_, lo_ = 0, hi_ = 0;
  const float* x_;
};

// Channels per group from which convolutions read their input in place (ConvRuns) rather
// than through im2col rows: shorter runs spend too much of each tile reloading pointers.
constexpr int64_t kMinRunChannels = 16;

// In place pays when several taps read each input pixel (the copies it saves). A strided
// 1x1 convolution reads each once, and its tiles of 14 long runs, one stream per row,
// measured 20-55% slower than packing the rows at 49-196 output pixels (ResNet-50's
// downsampling convolutions).
bool read_in_place(const Window2d& g, int64_t cg, bool direct, bool row_layout) {
  return !direct && !row_layout && g.kh * g.kw > 1 && cg >= kMinRunChannels && cg <= ConvRuns::kMaxRun;
}

// Pixels [p0, p1) of C planes (`plane` floats each) interleaved into NHWC order.
AIOV_MULTIVERSION void interleave_planes(const float* __restrict src, int64_t plane, int64_t C, int64_t p0, int64_t p1,
                                         float* __restrict dst) {
  for (int64_t p = p0; p < p1; ++p)
    for (int64_t c = 0; c < C; ++c) dst[p * C + c] = src[c * plane + p];
}

// The NCHW image x as NHWC, in a buffer of the calling thread's that lives until its next call.
const float* channels_last_copy(const Window2d& g, const float* x, ThreadPool* pool, int max_threads) {
  thread_local std::vector<float> buffer;
  const int64_t plane = g.H * g.W, image = g.C * plane;
  buffer.resize((size_t)(g.N * image));
  float* dst = buffer.data();
  // Image rows as the unit of work: a few thousand floats each.
  auto rows = [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t n = r / g.H, p0 = r % g.H * g.W;
      interleave_planes(x + n * image, plane, g.C, p0, p0 + g.W, dst + n * image);
    }
  };
  if (pool && g.N * image >= (int64_t{1} << 16))
    pool->parallel_for(g.N * g.H, 8, rows, max_threads);
  else
    rows(0, g.N * g.H);
  return dst;
}

// The exact bits of a filter scale, as text for a shared-weights recipe.
std::string values_digest(const std::vector<float>& values) {
  static const char kHex[] = "0123456789abcdef";
  std::string text;
  text.reserve(values.size() * 8);
  for (float v : values) {
    uint32_t bits;
    std::memcpy(&bits, &v, sizeof bits);
    for (int shift = 28; shift >= 0; shift -= 4) text += kHex[(bits >> shift) & 15];
  }
  return text;
}

// NHWC windows into few output channels per group (at most kPlanarMaxOutputs), f32: as a
// GEMM, N is half a tile or less. The direct kernel won at every input width measured (3x3,
// 4 to 256 channels, 1.0-2.3x), and 2-4x against Winograd at 16-32 channels into 16. Grouped
// (not depthwise), it runs each group over its channels where the GEMM ran one product per
// group with N of a few columns (dot products for N <= 24). One thread, [8,*,*,C] in:
// wav2vec2's positional convolution (4 groups of 8 into 8, 1x16) 158 -> 60 us, ResNeXt's
// 3x3 (32 groups of 4, 14x14) 7.7 -> 0.73 ms, RegNet's (groups of 8, 16x16) 940 -> 186 us.
bool few_output_nhwc(const Window2d& g, int64_t Og, bool planar, GemmPrecision precision) {
  return !planar && Og <= kPlanarMaxOutputs && g.kh * g.kw > 1 && precision == GemmPrecision::f32;
}

// AIOV_WINOGRAD=0 keeps 3x3 stride-1 and stride-2 convolutions on the direct GEMM (to compare).
bool winograd_enabled() {
  static const bool on = env_int("AIOV_WINOGRAD", 1) != 0;
  return on;
}

// The input as f32, in a buffer of the calling thread's that lives until its next call: a
// bf16 input for a window no bf16 source reads (few channels per tap, gathered rows).
const float* widened_copy(const uint16_t* x, int64_t count) {
  thread_local std::vector<float> buffer;
  buffer.resize((size_t)count);
  for (int64_t i = 0; i < count; ++i) {
    const uint32_t bits = (uint32_t)x[i] << 16;
    std::memcpy(&buffer[(size_t)i], &bits, sizeof bits);
  }
  return buffer.data();
}

// The direct bf16 kernel's input: bf16 data as it is, or f32 (a planar image copied to NHWC first).
void direct_bf16_input(const Window2d& g, const KernelArgs& a, bool bf16_in, bool planar_copied, const float*& x,
                       const uint16_t*& x16) {
  if (bf16_in)
    x16 = a.in[0]->as<uint16_t>();
  else
    x = planar_copied ? channels_last_copy(g, a.in[0]->as<float>(), a.ctx->pool, a.ctx->max_threads)
                      : a.in[0]->as<float>();
}

// Channels per tap up to which a window's kernel rows are read as taps on the direct bf16
// kernel (fused_conv_kernel): with few channel pairs per tap, the per-tap pointers and the
// padding's tests cost more than the products.
constexpr int64_t kKernelRowMaxChannels = 16;

// Whether the kernels take bf16 data for n on any machine: one group, or depthwise with an
// activation the bf16 store merges, any window (fused_conv_carries_bf16 says where a region
// carries it; a blob compiled where the channel-pair runs made a stride-1 depthwise carry it
// may be loaded where they do not).
bool fused_conv_takes_bf16(const Node& n) {
  if (fused_conv_carries_bf16(n)) return true;
  if (n.op != "aiov.FusedConv" || n.inputs.size() < 2 || input_layout_of(n) != Layout::nhwc) return false;
  const PartialShape& f = n.inputs[1].node->outputs[n.inputs[1].index].shape;
  return f.rank_known && f.rank() == 4 && f.dims[1] == 1 && f.dims[0] == n.attr_int("group") &&
         bf16_depthwise_merges(Activation{act_kind_from_name(n.attr_str("act")), 0.0f, 0.0f});
}

// The convolution's kernel. A bf16 residual (bf16_residual) is merged by the direct bf16
// kernel itself, which then sets reads_bf16_residual; every other path reads an f32 one, which
// prepare_fused_conv widens for it. `rows_apart_native` set when it writes output 0's rows
// ctx.out_row_stride apart itself (a Concat's slice), else prepare_fused_conv stages it.
KernelFn fused_conv_kernel(const PrepareContext& ctx, bool bf16_residual, bool& reads_bf16_residual,
                           bool& rows_apart_native) {
  const Node& node = ctx.node;
  const bool bf16_in = ctx.in[0].type == ElementType::bf16, bf16_out = ctx.out[0].type == ElementType::bf16;
  if ((ctx.in[0].type != ElementType::f32 && !bf16_in) || !ctx.in[1].data)
    throw NotSupported(node.describe() + ": needs f32 or bf16 data and constant filters");
  if ((bf16_in || bf16_residual) && !fused_conv_takes_bf16(node))
    throw NotSupported(node.describe() + ": bf16 data only for NHWC convolutions of one group or depthwise");
  if (bf16_out && !fused_conv_takes_bf16(node) && input_layout_of(node) != Layout::nchw)
    throw NotSupported(node.describe() +
                       ": a bf16 output only for NHWC convolutions of one group, depthwise or "
                       "planar images");
  if (ctx.in.size() > 3 && ctx.in[3].type != ElementType::f32 && !bf16_residual)
    throw NotSupported(node.describe() + ": the residual must be f32 or bf16, got " + type_name(ctx.in[3].type));
  const bool planar = input_layout_of(node) == Layout::nchw;
  const Dims xs = to_channels_first(ctx.in[0].shape, input_layout_of(node));  // N C H W
  const Dims& fs = ctx.in[1].shape;                                           // O Cg kh kw
  const Dims& ys = ctx.out[0].shape;                                          // N OH OW O
  const int64_t group = node.attr_int("group");
  Window w = make_window(node, {xs[2], xs[3]}, {fs[2], fs[3]});
  Window2d g{xs[0], xs[2],       xs[3],       xs[1],         ys[1],         ys[2],          fs[2],
             fs[3], w.stride[0], w.stride[1], w.dilation[0], w.dilation[1], w.pad_begin[0], w.pad_begin[1]};
  const int64_t O = fs[0], Cg = fs[1], Og = O / group, taps = g.kh * g.kw, K = taps * Cg;
  const int64_t M = g.N * g.OH * g.OW;
  const int64_t ldy = ctx.out_row_stride ? ctx.out_row_stride : O;  // output row stride, where written native
  const FusedOutput output(ctx);
  const float* filters = static_cast<const float*>(ctx.in[1].data);
  // Output channel o's filter times scale[o] (a BatchNorm the optimizer folded): applied here,
  // as the filters are rearranged, so the model's filter constant is used without a copy.
  const std::vector<double> scale_attr = node.attr_floats("filter_scale");
  const std::vector<float> scale(scale_attr.begin(), scale_attr.end());  // its length: infer_fused_conv
  auto filter = [&](int64_t o, int64_t i) {                              // element i of output channel o's filter
    const float f = filters[o * Cg * taps + i];
    return scale.empty() ? f : f * scale[o];
  };

  // Weights are rearranged once per compiled model; the recipe names each rearrangement
  // (and, for scaled filters, the scale they carry, by its bits: a node's identity would not
  // survive a blob, where the recipe must name the same weights).
  const std::string filter_shape = " filters " + dims_str(fs) + " group " + std::to_string(group) +
                                   (scale.empty() ? "" : " scaled by " + values_digest(scale));
  // Each group's filters as B [K, Og], packed once: row k of B holds, per output channel,
  // element element(k) of its [Cg, kh, kw] filter.
  // Under a bf16 hint they are packed in bf16, and every GEMM path below runs bf16 products.
  // bf16 tensors are multiplied in bf16 whatever the hint (a blob compiled under bf16).
  const GemmPrecision precision = bf16_in || bf16_out ? GemmPrecision::bf16 : gemm_precision(ctx.inference_precision);
  auto group_panels = [&](const std::string& what, int64_t rows_hint, auto element, GemmPrecision prec) {
    const std::string recipe = what + filter_shape + " " + PackedB::layout(true, K, Og, K, rows_hint, prec);
    return ctx.derived<GroupPanels>(
        1, recipe,
        [&] {
          auto panels = std::make_shared<GroupPanels>();
          std::vector<float> wt((size_t)(Og * K));
          for (int64_t gi = 0; gi < group; ++gi) {
            for (int64_t o = 0; o < Og; ++o)
              for (int64_t k = 0; k < K; ++k) wt[o * K + k] = filter(gi * Og + o, element(k));
            panels->push_back(std::make_unique<PackedB>(true, K, Og, wt.data(), K, rows_hint, prec));
          }
          return panels;
        },
        [&](const GroupPanels& panels) {
          bool fit = (int64_t)panels.size() == group;
          for (const auto& p : panels) fit = fit && p->fits(K, Og, rows_hint, prec);
          return fit;
        });
  };

  // The filters for the few-output kernels, group after group: one row of kPlanarStride
  // floats per column k of K (the group's Og weights, then zeros), holding element(k) of each
  // of its output channels' filters.
  auto few_output_taps = [&](const std::string& layout, auto element) {
    return ctx.derived<std::vector<float>>(
        1, layout + " taps x 16" + filter_shape,
        [&] {
          auto t = std::make_shared<std::vector<float>>((size_t)(group * K * kPlanarStride), 0.0f);
          for (int64_t gi = 0; gi < group; ++gi)
            for (int64_t k = 0; k < K; ++k)
              for (int64_t o = 0; o < Og; ++o) (*t)[(gi * K + k) * kPlanarStride + o] = filter(gi * Og + o, element(k));
          return t;
        },
        [&](const std::vector<float>& t) { return (int64_t)t.size() == group * K * kPlanarStride; });
  };

  // Whether a planar image takes the direct bf16 kernel (below), the one planar path writing bf16.
  const bool planar_direct = planar && precision == GemmPrecision::bf16 && group == 1 && g.dw == 1 &&
                             g.kw * Cg <= kBf16DirectMaxRun && bf16_direct_conv_available();
  // Under bf16 a planar image with a deep enough K (the window's taps x channels) is copied
  // to NHWC on each call and multiplied like any NHWC input: its rows rounded to bf16 once and
  // multiplied on the tiles. Measured single-threaded, copied against f32 planes: 7x7/2 stems
  // (K 147) won at every width (224px to 64 channels 0.92 against 1.6 ms, to 32 0.68 against
  // 0.84; 64px to 8 channels 0.48 against 0.64), 11x11/4 0.83 against 2.0; 3x3 stems (K 27)
  // lost (0.35 against 0.2 ms at 224px to 32, 187 against 124 us at 64px) and 5x5 (K 75) was
  // even: the copy and the rounding cost more than the f32 tiles reading short windows in place.
  constexpr int64_t kMinPlanarBf16Depth = 96;
  // A short window into few channels (a 3x3 RGB stem) whose activation the direct kernel's
  // tiles do not merge (Tanh, Gelu: an f32 tile and a pass per block) runs the f32 few-output
  // kernel even where it writes bf16, rounded after: one thread, 8x3x32x32 to 8 channels with
  // HardSwish, before the tiles merged it, 40-41 us against 23 with the rounding.
  const ActKind act_kind = act_kind_from_name(node.attr_str("act"));
  const bool few_outputs_planar = planar && group == 1 && O <= kPlanarMaxOutputs;
  const bool few_planar = few_outputs_planar && K < kMinPlanarBf16Depth;
  const bool tiles_merge_act = bf16_direct_conv_merges(Activation{act_kind, 0.0f, 0.0f});
  if (planar && bf16_out && (!planar_direct || (few_planar && !tiles_merge_act))) {
    // A plan made where the direct kernel runs (fused_conv_writes_bf16): the f32 output of the
    // other paths rounded after them, into the output.
    PrepareContext wide = ctx;
    wide.out[0].type = ElementType::f32;
    wide.out_row_stride = 0;  // dense into wide_out; prepare_fused_conv stages a Concat's slice
    bool unused = false, unused_rows_apart = false;
    KernelFn f32_kernel = fused_conv_kernel(wide, false, unused, unused_rows_apart);
    return [f32_kernel](const KernelArgs& a) {
      thread_local std::vector<float> wide_out;
      TensorView out = *a.out[0];
      wide_out.resize((size_t)out.count());
      uint16_t* y16 = out.as<uint16_t>();
      out.data = wide_out.data();
      out.type = ElementType::f32;
      const TensorView* outs[1] = {&out};
      f32_kernel(KernelArgs{a.in, outs, a.ctx});
      round_to_bf16(wide_out.data(), out.count(), y16);
    };
  }

  // Few output channels of a short window (a 3x3 RGB stem) writing f32 take the f32 kernel
  // under bf16 too: its output gains nothing from bf16, and one thread over 8x3x32x32 to 8
  // channels the f32 kernel measured even with the direct one on an activation the tiles merge
  // (20 against 21 us) and far faster on one they do not (EfficientNet's SiLU: 27 against 40).
  if (few_outputs_planar && (precision == GemmPrecision::f32 || (few_planar && !bf16_out))) {
    // Few output channels: one vector per pixel, not GEMM tiles mostly of padding.
    auto wp = few_output_taps("planar", [&](int64_t k) { return ConvPlanes::filter_index(g, Cg, k); });
    ctx.note_kernel("planar-input conv, few outputs");
    return [g, wp, output, O](const KernelArgs& a) {
      planar_conv_few_outputs(g, O, a.in[0]->as<float>(), wp->data(), output.at(a, O), a.out[0]->as<float>(),
                              a.ctx->pool, a.ctx->max_threads);
    };
  }

  if (planar_direct) {
    // AVX512_BF16 without AMX: the image copied once to NHWC bf16 with zero borders wide enough
    // for every window, and each kernel row of a window (kw pixels x C channels, contiguous
    // there) read as one tap of the direct kernel: no im2col rows, and K padded per kernel row
    // to an even count (7 x 22 for a 7x7 RGB stem, where the GEMM padded 147 to 160).
    const int64_t run = g.kw * Cg, row_k = run + run % 2, Kr = g.kh * row_k;
    const std::string recipe = "bf16 kernel-row taps" + filter_shape + " " +
                               PackedB::layout(true, Kr, O, Kr, PackedB::kTallA, GemmPrecision::bf16);
    auto packed = ctx.derived<GroupPanels>(
        1, recipe,
        [&] {
          std::vector<float> wt((size_t)(O * Kr), 0.0f);
          for (int64_t o = 0; o < O; ++o)
            for (int64_t ky = 0; ky < g.kh; ++ky)
              for (int64_t j = 0; j < run; ++j)  // j = kx * C + c, the padded image's order
                wt[o * Kr + ky * row_k + j] = filter(o, ((j % Cg) * g.kh + ky) * g.kw + j / Cg);
          auto panels = std::make_shared<GroupPanels>();
          panels->push_back(
              std::make_unique<PackedB>(true, Kr, O, wt.data(), Kr, PackedB::kTallA, GemmPrecision::bf16));
          return panels;
        },
        [&](const GroupPanels& p) {
          return p.size() == 1 && p.front()->fits(Kr, O, PackedB::kTallA, GemmPrecision::bf16);
        });
    // Padding that keeps every window inside the copy (a stride may leave the last rows and
    // columns unread).
    const int64_t bottom = std::max<int64_t>(0, (g.OH - 1) * g.sh + (g.kh - 1) * g.dh + 1 - g.ph - g.H);
    const int64_t right = std::max<int64_t>(0, (g.OW - 1) * g.sw + g.kw - g.pw - g.W);
    // The padded image's geometry, one tap per kernel row.
    const Window2d rows{g.N, g.ph + g.H + bottom, g.pw + g.W + right, g.C, g.OH, g.OW, g.kh, 1, g.sh, g.sw, g.dh, 1, 0,
                        0};
    // A bf16 output: a stem whose readers carry bf16 (fused_conv_writes_bf16).
    ctx.note_kernel(
        std::string("planar input copied to NHWC (bf16, zero borders), direct bf16 conv over kernel rows, ") +
        (bf16_out ? "bf16" : "f32") + " out, " + gemm_kernels(precision));
    return [g, rows, run, bottom, right, packed, output, bf16_out, O](const KernelArgs& a) {
      const uint16_t* x16 =
          padded_channels_last_bf16(g, bottom, right, a.in[0]->as<float>(), a.ctx->pool, a.ctx->max_threads);
      conv_bf16_direct(rows, run, 0, nullptr, x16, *packed->front(), output.at(a, O), nullptr,
                       bf16_out ? nullptr : a.out[0]->as<float>(), bf16_out ? a.out[0]->as<uint16_t>() : nullptr, O,
                       a.ctx->pool, a.ctx->max_threads);
    };
  }
  const bool planar_copied = planar && precision == GemmPrecision::bf16 && K >= kMinPlanarBf16Depth;
  if (planar && !planar_copied) {
    // K ordered (ky, c, kx), in panels (what a grid needs) however small the image. f32 (also
    // under f16, whose tiles multiply no faster): the f32 tiles read the image in place.
    auto packed = group_panels(
        "planar conv panels", PackedB::kTallA, [&](int64_t k) { return ConvPlanes::filter_index(g, Cg, k); },
        GemmPrecision::f32);
    if (g.sw > kMaxGridStep && g.dw == 1) {
      ctx.note_kernel("planar-input conv, rows made on demand, packed GEMM " + gemm_kernels(GemmPrecision::f32));
      return [g, packed, output, O, Cg, Og, M](const KernelArgs& a) {
        for (size_t gi = 0; gi < packed->size(); ++gi) {
          PlanarRows rows(g, Cg, (int64_t)gi * Cg, a.in[0]->as<float>());
          sgemm_packed(M, rows, *(*packed)[gi], output.at(a, O, (int64_t)gi * Og), a.out[0]->as<float>() + gi * Og, O,
                       a.ctx->pool, a.ctx->max_threads);
        }
      };
    }
    auto offsets = std::make_shared<const std::vector<int64_t>>(ConvPlanes::column_offsets(g, Cg));
    ctx.note_kernel("planar-input conv, packed GEMM " + gemm_kernels(GemmPrecision::f32));
    return [g, packed, offsets, output, O, Cg, Og, M](const KernelArgs& a) {
      for (size_t gi = 0; gi < packed->size(); ++gi) {
        ConvPlanes planes(g, Cg, (int64_t)gi * Cg, offsets->data(), a.in[0]->as<float>());
        sgemm_packed(M, planes, *(*packed)[gi], output.at(a, O, (int64_t)gi * Og), a.out[0]->as<float>() + gi * Og, O,
                     a.ctx->pool, a.ctx->max_threads);
      }
    };
  }

  if (Cg == 1 && Og == 1 && group == g.C && !planar) {
    // Depthwise: filters as [taps, C] so the channel loop is contiguous.
    auto wd = ctx.derived<std::vector<float>>(
        1, "depthwise taps x C" + filter_shape,
        [&] {
          auto t = std::make_shared<std::vector<float>>(taps * g.C);
          for (int64_t c = 0; c < g.C; ++c)
            for (int64_t k = 0; k < taps; ++k) (*t)[k * g.C + c] = filter(c, k);
          return t;
        },
        [&](const std::vector<float>& t) { return (int64_t)t.size() == taps * g.C; });
    if (bf16_in || bf16_out) {
      // A region carrying bf16 through an inverted bottleneck (1x1, depthwise, 1x1): read and
      // written as it lies, products in f32.
      ctx.note_kernel(std::string("depthwise NHWC, ") + (bf16_in ? "bf16" : "f32") + " in, " +
                      (bf16_out ? "bf16" : "f32") + " out");
      return [g, wd, output, bf16_in, bf16_out](const KernelArgs& a) {
        depthwise_conv_bf16(g, bf16_in ? nullptr : a.in[0]->as<float>(), bf16_in ? a.in[0]->as<uint16_t>() : nullptr,
                            wd->data(), output.at(a, g.C), bf16_out ? nullptr : a.out[0]->as<float>(),
                            bf16_out ? a.out[0]->as<uint16_t>() : nullptr, a.ctx->pool, a.ctx->max_threads);
      };
    }
    ctx.note_kernel("depthwise NHWC");
    return [g, wd, output](const KernelArgs& a) {
      depthwise_conv_nhwc(g, a.in[0]->as<float>(), wd->data(), output.at(a, g.C), a.out[0]->as<float>(), a.ctx->pool,
                          a.ctx->max_threads);
    };
  }

  if (few_output_nhwc(g, Og, planar, precision)) {
    // Few output channels over a window: one vector per pixel, not GEMM tiles mostly of padding.
    auto wf = few_output_taps("nhwc", [&](int64_t k) { return k % Cg * taps + k / Cg; });
    ctx.note_kernel(group == 1 ? "NHWC conv, few outputs" : "NHWC grouped conv, few outputs per group");
    rows_apart_native = true;
    return [g, wf, output, O, Og, group, ldy](const KernelArgs& a) {
      nhwc_conv_few_outputs(g, Og, a.in[0]->as<float>(), wf->data(), output.at(a, O), a.out[0]->as<float>(),
                            a.ctx->pool, a.ctx->max_threads, group, ldy);
    };
  }

  // Winograd's transformed products are f32; bf16 tiles beat its saved multiplications. f16
  // tiles multiply at f32's rate (f32 accumulation on AVX512-FP16), so under f16 it stays,
  // as under f32: fewer multiplications, and f32 products are at least as precise as f16's.
  if (group == 1 && precision != GemmPrecision::bf16 && winograd_enabled() && Winograd2x3::worthwhile(g, O)) {
    const std::string recipe = "winograd F(2x2,3x3) stride " + std::to_string(g.sh) + filter_shape;
    auto transformed = ctx.derived<WinogradFilters>(
        1, recipe, [&] { return std::make_shared<WinogradFilters>(g.C, O, filters, scale); },
        [&](const WinogradFilters& f) { return f.fits(g.C, O); });
    auto wino = std::make_shared<Winograd2x3>(g, O, std::move(transformed));
    ctx.note_kernel("Winograd F(2x2,3x3) NHWC, f32 " + std::string(gemm_isa()));
    return [wino, output, O](const KernelArgs& a) {
      wino->run(a.in[0]->as<float>(), output.at(a, O), a.out[0]->as<float>(), a.ctx->pool, a.ctx->max_threads);
    };
  }

  // Dense (per group): K ordered (ky, kx, c), the NHWC input's order.
  const bool direct = taps == 1 && group == 1 && g.sh == 1 && g.sw == 1 && w.pad_begin[0] == 0 && w.pad_begin[1] == 0 &&
                      w.pad_end[0] == 0 && w.pad_end[1] == 0;
  // Only the direct 1x1 product (the input as one matrix) may take dot-product rows for a long K.
  const int64_t rows_hint = direct ? M : PackedB::rows_read_in_place(M, Og);
  auto packed = group_panels("conv panels", rows_hint, [&](int64_t k) { return k % Cg * taps + k / Cg; }, precision);
  const bool in_place = read_in_place(g, Cg, direct, packed->front()->row_layout());
  if (precision == GemmPrecision::bf16 && bf16_direct_conv_available() && bf16_direct_conv_fits(g, group)) {
    // AVX512_BF16 without AMX: every tap summed from the pixels where they lie (1x1 included),
    // f32 input rounded once, no K padding between taps. Groups (ResNeXt, RegNet) one after
    // another, each reading its channels of the input rounded once for all of them.
    reads_bf16_residual = bf16_residual;
    // Few channels per tap: the image copied with zero borders and each kernel row of a window
    // (kw pixels x C channels, contiguous there) read as one tap, as for a planar stem. K keeps
    // its order (ky, kx, c), so the packed weights serve as they are.
    if (group == 1 && g.kw > 1 && g.dw == 1 && g.C <= kKernelRowMaxChannels && g.kw * g.C <= kBf16DirectMaxRun) {
      const int64_t bottom = std::max<int64_t>(0, (g.OH - 1) * g.sh + (g.kh - 1) * g.dh + 1 - g.ph - g.H);
      const int64_t right = std::max<int64_t>(0, (g.OW - 1) * g.sw + g.kw - g.pw - g.W);
      const Window2d rows{
          g.N, g.ph + g.H + bottom, g.pw + g.W + right, g.C, g.OH, g.OW, g.kh, 1, g.sh, g.sw, g.dh, 1, 0, 0};
      ctx.note_kernel(std::string(planar_copied ? "planar input copied to NHWC, " : "") +
                      "direct bf16 conv over kernel rows (a zero-bordered copy) NHWC, " + (bf16_in ? "bf16" : "f32") +
                      " in, " + (bf16_out ? "bf16" : "f32") + " out" + (bf16_residual ? ", bf16 residual" : "") +
                      ", packed weights " + gemm_kernels(precision));
      return [g, rows, bottom, right, packed, output, planar_copied, bf16_in, bf16_out, bf16_residual,
              O](const KernelArgs& a) {
        ThreadPool* pool = a.ctx->pool;
        const int threads = a.ctx->max_threads;
        const float* x = nullptr;
        const uint16_t* x16 = nullptr;
        direct_bf16_input(g, a, bf16_in, planar_copied, x, x16);
        const uint16_t* padded = padded_nhwc_bf16(g, bottom, right, x, x16, pool, threads);
        Epilogue e = output.at(a, O);
        const uint16_t* residual16 = bf16_residual ? a.in[3]->as<uint16_t>() : nullptr;
        if (residual16) e.residual = nullptr;
        conv_bf16_direct(rows, g.kw * g.C, 0, nullptr, padded, *packed->front(), e, residual16,
                         bf16_out ? nullptr : a.out[0]->as<float>(), bf16_out ? a.out[0]->as<uint16_t>() : nullptr, O,
                         pool, threads);
      };
    }
    ctx.note_kernel(std::string(planar_copied ? "planar input copied to NHWC, " : "") +
                    "direct bf16 conv (taps read in place) NHWC" + (group > 1 ? ", by group" : "") + ", " +
                    (bf16_in ? "bf16" : "f32") + " in, " + (bf16_out ? "bf16" : "f32") + " out" +
                    (bf16_residual ? ", bf16 residual" : "") + ", packed weights " + gemm_kernels(precision));
    // f32 out may be a Concat's slice, rows ldy apart like a group's; bf16 out (a Concat that
    // carries bf16) is staged.
    rows_apart_native = !bf16_out;
    const int64_t ld = bf16_out ? O : ldy;
    return [g, packed, output, planar_copied, bf16_in, bf16_out, bf16_residual, O, Cg, Og, ld](const KernelArgs& a) {
      ThreadPool* pool = a.ctx->pool;
      const int threads = a.ctx->max_threads;
      const float* x = nullptr;
      const uint16_t* x16 = nullptr;
      direct_bf16_input(g, a, bf16_in, planar_copied, x, x16);
      const int64_t group = (int64_t)packed->size();
      if (group > 1 && x) {
        x16 = bf16_rounded_copy(x, g.N * g.H * g.W * g.C, pool, threads);
        x = nullptr;
      }
      float* y = bf16_out ? nullptr : a.out[0]->as<float>();
      uint16_t* y16 = bf16_out ? a.out[0]->as<uint16_t>() : nullptr;
      for (int64_t gi = 0; gi < group; ++gi) {
        Epilogue e = output.at(a, O, gi * Og);
        const uint16_t* residual16 = bf16_residual ? a.in[3]->as<uint16_t>() + gi * Og : nullptr;
        if (residual16) e.residual = nullptr;
        conv_bf16_direct(g, Cg, gi * Cg, x, x16, *(*packed)[gi], e, residual16, y ? y + gi * Og : nullptr,
                         y16 ? y16 + gi * Og : nullptr, ld, pool, threads);
      }
    };
  }
  auto run_offsets = std::make_shared<const ConvRuns::Offsets>(ConvRuns::offsets(g));
  if (bf16_in || bf16_out) {
    // One group (fused_conv_carries_bf16): bf16 input read as it lies by the 1x1 GEMM and
    // as runs of pixels by every other window (the bf16 driver copies runs into its blocks
    // either way, so strided 1x1s and few channels need no f32 rows), widened only past
    // kMaxRun channels; the output rounded to bf16 tile by tile.
    const bool runs = bf16_in ? !direct && g.C <= ConvRuns::kMaxRun : in_place;
    ctx.note_kernel(std::string(direct ? "1x1 conv as one GEMM"
                                : runs ? "conv, image read in place"
                                       : "conv, gathered") +
                    " NHWC, " + (bf16_in ? "bf16" : "f32") + " in, " + (bf16_out ? "bf16" : "f32") +
                    " out, packed GEMM " + gemm_kernels(precision));
    return [g, packed, run_offsets, output, direct, runs, bf16_in, bf16_out, O, M](const KernelArgs& a) {
      const PackedB& B = *packed->front();
      const Epilogue e = output.at(a, O);
      float* y = bf16_out ? nullptr : a.out[0]->as<float>();
      uint16_t* y16 = bf16_out ? a.out[0]->as<uint16_t>() : nullptr;
      ThreadPool* pool = a.ctx->pool;
      const int threads = a.ctx->max_threads;
      const float* x = nullptr;
      if (bf16_in) {
        const uint16_t* x16 = a.in[0]->as<uint16_t>();
        if (direct) return gemm_packed_bf16(M, x16, g.C, B, e, y, y16, O, pool, threads);
        if (runs)
          return gemm_packed_bf16(M, Bf16ConvRuns(g, g.C, 0, *run_offsets, x16), B, e, y, y16, O, pool, threads);
        x = widened_copy(x16, g.N * g.H * g.W * g.C);
      } else {
        x = a.in[0]->as<float>();
      }
      if (direct) {
        if (y16) return gemm_packed_bf16(M, x, g.C, B, e, y16, O, pool, threads);
        return sgemm_packed(false, M, x, g.C, B, e, y, O, pool, threads);
      }
      if (runs) {
        const ConvRuns pixels(g, g.C, 0, *run_offsets, x);
        if (y16) return gemm_packed_bf16(M, pixels, B, e, y16, O, pool, threads);
        return sgemm_packed(M, pixels, B, e, y, O, pool, threads);
      }
      const ConvRows rows(g, g.C, 0, x);
      if (y16) return gemm_packed_bf16(M, rows, B, e, y16, O, pool, threads);
      sgemm_packed(M, rows, B, e, y, O, pool, threads);
    };
  }
  ctx.note_kernel(std::string(planar_copied ? "planar input copied to NHWC, " : "") +
                  (direct     ? "1x1 conv as one GEMM"
                   : in_place ? "conv, image read in place"
                              : "conv, gathered") +
                  " NHWC, packed GEMM " + gemm_kernels(precision));
  rows_apart_native = true;
  return [g, packed, run_offsets, output, direct, in_place, planar_copied, O, Cg, Og, M, ldy](const KernelArgs& a) {
    const float* x = planar_copied ? channels_last_copy(g, a.in[0]->as<float>(), a.ctx->pool, a.ctx->max_threads)
                                   : a.in[0]->as<float>();
    float* y = a.out[0]->as<float>();
    for (size_t gi = 0; gi < packed->size(); ++gi) {
      const Epilogue e = output.at(a, O, (int64_t)gi * Og);
      if (direct) {
        sgemm_packed(false, M, x, g.C, *(*packed)[gi], e, y + gi * Og, ldy, a.ctx->pool, a.ctx->max_threads);
      } else if (in_place) {
        ConvRuns runs(g, Cg, (int64_t)gi * Cg, *run_offsets, x);
        sgemm_packed(M, runs, *(*packed)[gi], e, y + gi * Og, ldy, a.ctx->pool, a.ctx->max_threads);
      } else {
        ConvRows rows(g, Cg, (int64_t)gi * Cg, x);
        sgemm_packed(M, rows, *(*packed)[gi], e, y + gi * Og, ldy, a.ctx->pool, a.ctx->max_threads);
      }
    }
  };
}

// For a path that merges an f32 residual (the GEMM's tiles, depthwise; a plan made where the
// direct kernel runs): the bf16 one widened first, into a buffer of the calling thread's.
KernelFn widening_bf16_residual(KernelFn kernel) {
  return [kernel](const KernelArgs& a) {
    thread_local std::vector<float> wide;
    TensorView residual = *a.in[3];
    const int64_t count = residual.count();
    wide.resize((size_t)count);
    const uint16_t* bits = residual.as<uint16_t>();
    for (int64_t i = 0; i < count; ++i) {
      const uint32_t word = (uint32_t)bits[i] << 16;
      std::memcpy(&wide[(size_t)i], &word, sizeof word);
    }
    residual.data = wide.data();
    residual.type = ElementType::f32;
    const TensorView* in[4] = {a.in[0], a.in[1], a.in[2], &residual};
    kernel(KernelArgs{in, a.out, a.ctx});
  };
}

KernelFn prepare_fused_conv(const PrepareContext& ctx) {
  const bool bf16_residual = ctx.in.size() > 3 && ctx.in[3].type == ElementType::bf16;
  bool reads_bf16_residual = false, rows_apart_native = false;
  KernelFn kernel = fused_conv_kernel(ctx, bf16_residual, reads_bf16_residual, rows_apart_native);
  if (bf16_residual && !reads_bf16_residual) kernel = widening_bf16_residual(std::move(kernel));
  return rows_apart_native ? kernel : rows_apart(ctx, std::move(kernel));
}

// Any of its outputs can be a Concat's slice (paths that cannot write one are staged).
bool fused_conv_writes_concat_slice(const Node&) { return true; }

}  // namespace

bool fused_conv_reads_bf16_residual(const Node& n) {
  if (!fused_conv_carries_bf16(n) || n.attr_int("group") != 1 || !bf16_direct_conv_available()) return false;
  const PartialShape& f = n.inputs[1].node->outputs[n.inputs[1].index].shape;  // O C kh kw (rank 4: carries)
  Window2d g{};
  g.C = f.dims[1];
  return bf16_direct_conv_fits(g);
}

bool fused_conv_writes_bf16(const Node& n) {
  if (fused_conv_carries_bf16(n)) return true;
  // A planar image's convolution on the direct kernel (prepare's planar_direct).
  if (n.op != "aiov.FusedConv" || n.inputs.size() < 2 || input_layout_of(n) != Layout::nchw ||
      n.attr_int("group") != 1 || !bf16_direct_conv_available())
    return false;
  const PartialShape& f = n.inputs[1].node->outputs[n.inputs[1].index].shape;  // O C kh kw
  const std::vector<int64_t> dilations = n.attr_ints("dilations");
  return f.rank_known && f.rank() == 4 && f.dims[1] > 0 && f.dims[3] > 0 &&
         f.dims[1] * f.dims[3] <= kBf16DirectMaxRun && (dilations.empty() || dilations.back() == 1);
}

bool fused_conv_carries_bf16(const Node& n) {
  if (n.op != "aiov.FusedConv" || n.inputs.size() < 2 || input_layout_of(n) != Layout::nhwc) return false;
  const PartialShape& f = n.inputs[1].node->outputs[n.inputs[1].index].shape;
  if (!f.rank_known || f.rank() != 4) return false;
  const int64_t group = n.attr_int("group");
  // One group, but not one input and one output channel (that takes the depthwise path).
  if (group == 1) return !(f.dims[0] == 1 && f.dims[1] == 1);
  // Depthwise (a channel per group, one output each), with an activation its bf16 store merges,
  // strided or taking the channel-pair runs (bf16_depthwise_pairs) over at least 32 channels.
  // Other stride-1 windows stay f32: the f32 kernel, which shares each loaded column between
  // neighbouring pixels, ran MobileNet's 56x56x144 layer in 103 us on one thread where the
  // bf16 per-pixel one took 160, more than the halved traffic of its neighbours saved; and
  // under 32 channels the pairs' 32-channel vectors are mostly empty (16x16x8, batch 8: 6 us
  // in f32 against 14).
  const std::vector<int64_t> strides = n.attr_ints("strides"), dilations = n.attr_ints("dilations");
  const bool strided = std::any_of(strides.begin(), strides.end(), [](int64_t s) { return s > 1; });
  const int64_t sw = strides.size() == 2 ? strides[1] : 1;
  const int64_t dh = dilations.size() == 2 ? dilations[0] : 1, dw = dilations.size() == 2 ? dilations[1] : 1;
  const bool pairs = f.dims[0] >= 32 && bf16_depthwise_pairs(f.dims[2], f.dims[3], sw, dh, dw);
  return (strided || pairs) && f.dims[1] == 1 && f.dims[0] == group &&
         bf16_depthwise_merges(Activation{act_kind_from_name(n.attr_str("act")), 0.0f, 0.0f});
}

void register_fused_conv_ops(OpRegistry& r) {
  // Input 3, the residual, is read by each tile before it writes the same place.
  std::vector<AttrSpec> attrs = window_attrs();
  attrs.push_back(group_attr());
  attrs.push_back(floats_attr("filter_scale"));
  for (AttrSpec a : {str_attr("act", "none", std::vector<std::string>(kActNames, kActNames + kActKindCount))
                         .ir_name("-")
                         .onnx_name("-"),
                     float_attr("act_alpha", 0.0), float_attr("act_beta", 0.0),
                     // "same": the input's type; bf16 where the next convolutions read it (carry_bf16).
                     str_attr("output_type", "same", {"same", "f32", "bf16"}).ir_name("-").onnx_name("-")})
    attrs.push_back(a);
  r.add(with_reused_input(
      OpDef{"aiov.FusedConv", 3, 4, infer_fused_conv, prepare_fused_conv}.with_attrs(attrs).concat_slice(
          fused_conv_writes_concat_slice),
      3));
}

}  // namespace aiov
