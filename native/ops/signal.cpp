// Signal processing for audio front ends: the window generators (Hann, Hamming, Blackman),
// MelWeightMatrix, DFT and STFT, with ONNX's semantics. Complex tensors are real ones with a
// trailing dimension of 2 (real, imaginary), as ONNX lays them out. Every size comes from an
// input value, so these ops plan per distinct value of those inputs (OpDef::value_inputs).
#include <cmath>
#include <complex>
#include <vector>

#include "executor/executor.hpp"
#include "kernels/dispatch.hpp"
#include "ops/typed_kernel.hpp"
#include "plan/registry.hpp"

namespace aiov {
namespace {

using cplx = std::complex<double>;
constexpr double kPi = 3.14159265358979323846;

// A scalar operand (a window size, a frame step): one value, else an InputError naming it.
int64_t scalar_int(const Node& n, const TensorView& t, const char* what) {
  auto v = read_int_tensor(n, t, what);
  if (v.size() != 1)
    throw InputError(n.describe() + ": " + what + " must hold one value, got " + std::to_string(v.size()));
  return v[0];
}

double scalar_real(const Node& n, const TensorView& t, const char* what) {
  if (t.count() != 1)
    throw InputError(n.describe() + ": " + what + " must hold one value, got " + std::to_string(t.count()));
  return dispatch_type(t.type, n.describe(), [&](auto tag) -> double {
    using T = decltype(tag);
    return (double)load(t.as<T>()[0]);
  });
}

void expect_float(const Node& n, ElementType t, const char* what) {
  if (!is_float(t))
    throw InputError(n.describe() + ": " + what + " must be a floating-point tensor, got " + type_name(t));
}

template <class T>
void store_all(const std::vector<double>& v, void* out) {
  using C = typename ComputeOf<T>::type;
  T* y = static_cast<T*>(out);
  for (size_t i = 0; i < v.size(); ++i) y[i] = store<T>((C)v[i]);
}

// A kernel that writes `values` (computed at plan time) into output 0 of type `t`.
KernelFn write_values(const Node& n, ElementType t, std::vector<double> values) {
  return dispatch_type(t, n.describe(), [&](auto tag) -> KernelFn {
    using T = decltype(tag);
    return [values](const KernelArgs& a) { store_all<T>(values, a.out[0]->data); };
  });
}

// ---- HannWindow, HammingWindow, BlackmanWindow(size) -------------------------------------------

enum class WindowKind { hann, hamming, blackman };

std::vector<PortInfo> infer_window(const InferContext& c) {
  ElementType t = type_from_name(c.node.attr_str("output_type"));
  if (!c.in_value[0]) return {PortInfo{t, PartialShape(Dims{kDynamic})}};
  int64_t size = scalar_int(c.node, *c.in_value[0], "size");
  if (size < 0) throw InputError(c.node.describe() + ": size must be >= 0, got " + std::to_string(size));
  return {PortInfo{t, PartialShape(Dims{size})}};
}

template <WindowKind K>
KernelFn prepare_window(const PrepareContext& ctx) {
  const int64_t size = ctx.out[0].shape[0];
  // A periodic window is the first N of a symmetric window of N + 1.
  const double denom = ctx.node.attr_int("periodic") ? (double)size : (double)(size - 1);
  std::vector<double> w((size_t)size);
  for (int64_t i = 0; i < size; ++i) {
    double x = denom > 0 ? 2 * kPi * (double)i / denom : 0.0;
    if (K == WindowKind::hann)
      w[i] = 0.5 - 0.5 * std::cos(x);
    else if (K == WindowKind::hamming)
      w[i] = 25.0 / 46.0 - (1.0 - 25.0 / 46.0) * std::cos(x);
    else
      w[i] = 0.42 - 0.5 * std::cos(x) + 0.08 * std::cos(2 * x);
  }
  return write_values(ctx.node, ctx.out[0].type, std::move(w));
}

// ---- MelWeightMatrix(num_mel_bins, dft_length, sample_rate, lower_edge_hertz, upper_edge_hertz)

std::vector<PortInfo> infer_mel(const InferContext& c) {
  ElementType t = type_from_name(c.node.attr_str("output_type"));
  if (!c.in_value[0] || !c.in_value[1]) return {PortInfo{t, PartialShape(Dims{kDynamic, kDynamic})}};
  int64_t bins = scalar_int(c.node, *c.in_value[0], "num_mel_bins");
  int64_t dft = scalar_int(c.node, *c.in_value[1], "dft_length");
  if (bins < 1 || dft < 1)
    throw InputError(c.node.describe() + ": num_mel_bins and dft_length must be >= 1, got " + std::to_string(bins) +
                     " and " + std::to_string(dft));
  return {PortInfo{t, PartialShape(Dims{dft / 2 + 1, bins})}};
}

// Triangular filters between mel-spaced edges, as ONNX's reference computes them (the mel
// range is split into num_mel_bins + 2 steps; edges are floored onto DFT bins).
KernelFn prepare_mel(const PrepareContext& ctx) {
  const Node& n = ctx.node;
  const int64_t spectrum = ctx.out[0].shape[0], bins = ctx.out[0].shape[1];
  const int64_t dft = scalar_int(n, ctx.in[1], "dft_length");
  const double rate = scalar_real(n, ctx.in[2], "sample_rate");
  const double lo = scalar_real(n, ctx.in[3], "lower_edge_hertz"), hi = scalar_real(n, ctx.in[4], "upper_edge_hertz");
  if (!(rate > 0) || !(lo >= 0) || !(hi >= lo))
    throw InputError(n.describe() + ": expected sample_rate > 0 and 0 <= lower_edge_hertz <= upper_edge_hertz");
  auto to_mel = [](double hz) { return 2595.0 * std::log1p(hz / 700.0) / std::log(10.0); };
  const double mel_lo = to_mel(lo), step = (to_mel(hi) - mel_lo) / (double)(bins + 2);
  std::vector<int64_t> edge((size_t)bins + 2);
  for (int64_t i = 0; i < bins + 2; ++i) {
    double hz = 700.0 * std::expm1(((double)i * step + mel_lo) / 2595.0 * std::log(10.0));
    edge[i] = (int64_t)std::floor((double)(dft + 1) * hz / rate);
  }
  std::vector<double> w((size_t)(spectrum * bins), 0.0);
  auto set = [&](int64_t row, int64_t col, double v) {
    if (row >= 0 && row < spectrum) w[row * bins + col] = v;  // edges past Nyquist fall outside
  };
  for (int64_t i = 0; i < bins; ++i) {
    const int64_t left = edge[i], center = edge[i + 1], right = edge[i + 2];
    if (center == left)
      set(center, i, 1.0);
    else
      for (int64_t j = left; j <= center; ++j) set(j, i, (double)(j - left) / (double)(center - left));
    for (int64_t j = center; j < right; ++j) set(j, i, (double)(right - j) / (double)(right - center));
  }
  return write_values(n, ctx.out[0].type, std::move(w));
}

// ---- the transform of one line -------------------------------------------------------------

bool power_of_two(int64_t n) { return n > 0 && (n & (n - 1)) == 0; }

// The DFT (or the unscaled inverse) of `x` in place. Powers of two take an iterative radix-2
// FFT; other lengths a recursive mixed-radix FFT over their prime factors (400 = 2^4 * 5^2
// for Whisper's frames), which is the direct O(n^2) sum only for a prime length.
class LineTransform {
 public:
  LineTransform(int64_t n, bool inverse) : n_(n), roots_((size_t)n) {
    const double sign = inverse ? 1.0 : -1.0;
    for (int64_t k = 0; k < n; ++k) roots_[k] = std::polar(1.0, sign * 2 * kPi * (double)k / (double)n);
  }
  // One line's single-core cost: each prime factor p of n is a pass of n p-term sums (the
  // radix-2 FFT too: 2 per level), ~2 ns per complex multiply-add, plus the line's loads and
  // stores.
  double line_ns() const {
    int64_t passes = 0;
    for (int64_t rest = n_; rest > 1;) {
      const int64_t p = smallest_factor(rest);
      passes += p;
      rest /= p;
    }
    return 2.0 * (double)n_ * (double)(passes + 2);
  }
  void run(std::vector<cplx>& x, std::vector<cplx>& scratch) const {
    if (n_ <= 1) return;
    if (power_of_two(n_)) return fft(x);
    scratch.assign((size_t)n_, cplx(0, 0));
    mixed(x.data(), 1, n_, scratch.data(), 1);
    x.swap(scratch);
  }

 private:
  static int64_t smallest_factor(int64_t n) {
    for (int64_t p = 2; p * p <= n; ++p)
      if (n % p == 0) return p;
    return n;
  }
  // out[0..n) = the transform of in[0], in[stride], ..., in[(n-1)*stride]; the n-th roots of
  // unity are roots_[j * step] (step = n_ / n).
  void mixed(const cplx* in, int64_t stride, int64_t n, cplx* out, int64_t step) const {
    if (n == 1) {
      out[0] = in[0];
      return;
    }
    const int64_t p = smallest_factor(n), m = n / p;
    if (p == n) {  // a prime: the direct sum
      for (int64_t k = 0; k < n; ++k) {
        cplx acc(0, 0);
        for (int64_t j = 0, at = 0; j < n; ++j, at = (at + k) % n) acc += in[j * stride] * roots_[at * step];
        out[k] = acc;
      }
      return;
    }
    // p interleaved transforms of length m (out[r*m ..]), then p-point butterflies.
    for (int64_t r = 0; r < p; ++r) mixed(in + r * stride, stride * p, m, out + r * m, step * p);
    std::vector<cplx> sub(out, out + n);
    for (int64_t k = 0; k < m; ++k)
      for (int64_t q = 0; q < p; ++q) {
        const int64_t bin = k + q * m;
        cplx acc(0, 0);
        for (int64_t r = 0; r < p; ++r) acc += sub[r * m + k] * roots_[((r * bin) % n) * step];
        out[bin] = acc;
      }
  }
  void fft(std::vector<cplx>& x) const {
    for (int64_t i = 1, j = 0; i < n_; ++i) {  // bit-reversal permutation
      int64_t bit = n_ >> 1;
      for (; j & bit; bit >>= 1) j ^= bit;
      j ^= bit;
      if (i < j) std::swap(x[i], x[j]);
    }
    for (int64_t len = 2; len <= n_; len <<= 1) {
      const int64_t stride = n_ / len;
      for (int64_t s = 0; s < n_; s += len)
        for (int64_t k = 0; k < len / 2; ++k) {
          cplx u = x[s + k], v = x[s + k + len / 2] * roots_[k * stride];
          x[s + k] = u + v;
          x[s + k + len / 2] = u - v;
        }
    }
  }
  int64_t n_;
  std::vector<cplx> roots_;
};

// ---- DFT(input, dft_length, axis) ------------------------------------------------------------

struct DftPlan {
  int64_t axis = 0;       // of the signal dims (the trailing complex dim excluded)
  int64_t in_len = 0;     // along the axis, in the input
  int64_t n = 0;          // the transform's length
  int64_t out_len = 0;    // along the axis, in the output
  bool real_out = false;  // inverse + onesided: a real signal from a one-sided spectrum
};

DftPlan dft_plan(const Node& node, const PartialShape& x, const TensorView* length, const TensorView* axis_value) {
  const int64_t rank = x.rank();
  if (rank < 2) throw InputError(node.describe() + ": expected [batch, ..., 1 or 2] input, got " + x.str());
  const int64_t last = x.dims[rank - 1];
  if (last >= 0 && last != 1 && last != 2)
    throw InputError(node.describe() + ": the last dimension must be 1 (real) or 2 (complex), got " + x.str());
  DftPlan p;
  int64_t axis = node.attr_int("axis");
  if (axis_value && axis_value->count() > 0) axis = scalar_int(node, *axis_value, "axis");
  // ONNX counts the axis over all dims, the trailing complex one included; it must not be that one.
  if (axis < -rank || axis >= rank - 1 || axis == -1)
    throw InputError(node.describe() + ": axis " + std::to_string(axis) + " is not a signal axis of " + x.str());
  p.axis = axis < 0 ? axis + rank : axis;
  p.in_len = x.dims[p.axis];
  const bool inverse = node.attr_int("inverse") != 0, onesided = node.attr_int("onesided") != 0;
  p.real_out = inverse && onesided;
  if (length && length->count() > 0) {
    p.n = scalar_int(node, *length, "dft_length");
    if (p.n < 1) throw InputError(node.describe() + ": dft_length must be >= 1, got " + std::to_string(p.n));
  } else if (p.in_len < 0) {
    p.n = kDynamic;
  } else {
    p.n = p.real_out ? 2 * (p.in_len - 1) : p.in_len;  // a one-sided spectrum of m bins: 2(m-1) samples
    if (p.real_out && p.n < 1)
      throw InputError(node.describe() + ": a one-sided spectrum needs 2 bins or more, got " + x.str());
  }
  p.out_len = p.n < 0 ? kDynamic : (onesided && !inverse ? p.n / 2 + 1 : p.n);
  return p;
}

std::vector<PortInfo> infer_dft(const InferContext& c) {
  const PortInfo& x = c.in[0];
  expect_float(c.node, x.type, "the input");
  if (!x.shape.rank_known) return {PortInfo{x.type, PartialShape::dynamic_rank()}};
  const bool length_given = c.in.size() > 1 && !(c.in[1].shape.rank_known && numel(c.in[1].shape.dims) == 0);
  const bool axis_given = c.in.size() > 2 && !(c.in[2].shape.rank_known && numel(c.in[2].shape.dims) == 0);
  if ((length_given && !c.in_value[1]) || (axis_given && !c.in_value[2])) {
    Dims d(x.shape.dims.size(), kDynamic);
    return {PortInfo{x.type, PartialShape(d)}};
  }
  DftPlan p = dft_plan(c.node, x.shape, length_given ? c.in_value[1] : nullptr, axis_given ? c.in_value[2] : nullptr);
  Dims out = x.shape.dims;
  out[p.axis] = p.out_len;
  out.back() = p.real_out ? 1 : 2;
  return {PortInfo{x.type, PartialShape(out)}};
}

KernelFn prepare_dft(const PrepareContext& ctx) {
  const Dims& xs = ctx.in[0].shape;
  DftPlan p = dft_plan(ctx.node, PartialShape(xs), ctx.in.size() > 1 ? &ctx.in[1] : nullptr,
                       ctx.in.size() > 2 ? &ctx.in[2] : nullptr);
  const bool inverse = ctx.node.attr_int("inverse") != 0;
  const int64_t rank = (int64_t)xs.size(), in_c = xs.back(), out_c = p.real_out ? 1 : 2;
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < p.axis; ++d) outer *= xs[d];
  for (int64_t d = p.axis + 1; d < rank - 1; ++d) inner *= xs[d];
  auto transform = std::make_shared<LineTransform>(p.n, inverse);
  return same_type_kernel(ctx, [=](const auto* x, auto* y, const KernelArgs& a) {
    using T = std::remove_pointer_t<decltype(y)>;
    using C = typename ComputeOf<T>::type;
    auto lines = [&](int64_t first, int64_t end) {
      std::vector<cplx> v, scratch;
      for (int64_t line = first; line < end; ++line) {
        const int64_t o = line / inner, i = line % inner;
        v.assign((size_t)p.n, cplx(0, 0));
        const int64_t have = std::min(p.in_len, p.n);
        for (int64_t k = 0; k < have; ++k) {
          const T* e = x + ((o * p.in_len + k) * inner + i) * in_c;
          v[k] = cplx((double)load(e[0]), in_c == 2 ? (double)load(e[1]) : 0.0);
        }
        if (p.real_out)  // the missing half of a one-sided spectrum: X[n-k] = conj(X[k])
          for (int64_t k = 1; k < have && p.n - k >= have; ++k) v[p.n - k] = std::conj(v[k]);
        transform->run(v, scratch);
        const double scale = inverse ? 1.0 / (double)p.n : 1.0;
        for (int64_t k = 0; k < p.out_len; ++k) {
          T* e = y + ((o * p.out_len + k) * inner + i) * out_c;
          e[0] = store<T>((C)(v[k].real() * scale));
          if (out_c == 2) e[1] = store<T>((C)(v[k].imag() * scale));
        }
      }
    };
    const int64_t count = outer * inner;
    if (a.ctx->pool)
      a.ctx->pool->parallel_for_units(count, transform->line_ns(), lines, a.ctx->max_threads);
    else
      lines(0, count);
  });
}

// ---- STFT(signal, frame_step, window, frame_length) ------------------------------------------

struct StftPlan {
  int64_t step = 0, length = 0, frames = 0, bins = 0;
};

StftPlan stft_plan(const Node& n, const Dims& signal, const TensorView& step, const TensorView* window,
                   const TensorView* length) {
  StftPlan p;
  p.step = scalar_int(n, step, "frame_step");
  if (window && window->count() > 0) {
    if (window->shape.size() != 1) throw InputError(n.describe() + ": the window must be 1-D");
    p.length = window->shape[0];
  }
  if (length && length->count() > 0) {
    int64_t given = scalar_int(n, *length, "frame_length");
    if (p.length && given != p.length)
      throw InputError(n.describe() + ": frame_length " + std::to_string(given) + " differs from the window's " +
                       std::to_string(p.length));
    p.length = given;
  }
  if (p.step < 1 || p.length < 1)
    throw InputError(n.describe() + ": expected frame_step >= 1 and a window or frame_length >= 1");
  if (signal[1] < p.length)
    throw InputError(n.describe() + ": the signal (" + std::to_string(signal[1]) +
                     " samples) is shorter than a frame (" + std::to_string(p.length) + ")");
  p.frames = (signal[1] - p.length) / p.step + 1;
  p.bins = n.attr_int("onesided") ? p.length / 2 + 1 : p.length;
  return p;
}

std::vector<PortInfo> infer_stft(const InferContext& c) {
  const PortInfo& x = c.in[0];
  expect_float(c.node, x.type, "the signal");
  if (x.shape.rank_known &&
      (x.shape.rank() != 3 || (x.shape.dims[2] >= 0 && x.shape.dims[2] != 1 && x.shape.dims[2] != 2)))
    throw InputError(c.node.describe() + ": expected a [batch, length, 1 or 2] signal, got " + x.shape.str());
  const bool window_given = c.in.size() > 2 && !(c.in[2].shape.rank_known && numel(c.in[2].shape.dims) == 0);
  const bool length_given = c.in.size() > 3 && !(c.in[3].shape.rank_known && numel(c.in[3].shape.dims) == 0);
  if (!x.shape.is_static() || !c.in_value[1] || (length_given && !c.in_value[3]) ||
      (window_given && !c.in[2].shape.is_static()))
    return {
        PortInfo{x.type, PartialShape(Dims{x.shape.rank_known ? x.shape.dims[0] : kDynamic, kDynamic, kDynamic, 2})}};
  TensorView window_shape;  // only its shape matters here
  window_shape.shape = window_given ? c.in[2].shape.dims : Dims{0};
  StftPlan p = stft_plan(c.node, x.shape.dims, *c.in_value[1], &window_shape, length_given ? c.in_value[3] : nullptr);
  return {PortInfo{x.type, PartialShape(Dims{x.shape.dims[0], p.frames, p.bins, 2})}};
}

KernelFn prepare_stft(const PrepareContext& ctx) {
  const Dims& xs = ctx.in[0].shape;
  const TensorView* window = ctx.in.size() > 2 && ctx.in[2].count() > 0 ? &ctx.in[2] : nullptr;
  StftPlan p = stft_plan(ctx.node, xs, ctx.in[1], window, ctx.in.size() > 3 ? &ctx.in[3] : nullptr);
  if (window) expect_float(ctx.node, window->type, "the window");
  const int64_t batch = xs[0], len = xs[1], in_c = xs[2];
  const bool has_window = window != nullptr;
  const ElementType window_type = window ? window->type : ElementType::f32;
  auto transform = std::make_shared<LineTransform>(p.length, false);
  return same_type_kernel(ctx, [=](const auto* x, auto* y, const KernelArgs& a) {
    using T = std::remove_pointer_t<decltype(y)>;
    using C = typename ComputeOf<T>::type;
    std::vector<double> w((size_t)p.length, 1.0);
    if (has_window)
      dispatch_type(window_type, "STFT window", [&](auto wtag) {
        using W = decltype(wtag);
        for (int64_t k = 0; k < p.length; ++k) w[k] = (double)load(a.in[2]->as<W>()[k]);
      });
    auto frames = [&](int64_t first, int64_t end) {
      std::vector<cplx> v, scratch;
      for (int64_t f = first; f < end; ++f) {
        const int64_t b = f / p.frames, start = (f % p.frames) * p.step;
        v.resize((size_t)p.length);
        for (int64_t k = 0; k < p.length; ++k) {
          const T* e = x + (b * len + start + k) * in_c;
          v[k] = cplx((double)load(e[0]), in_c == 2 ? (double)load(e[1]) : 0.0) * w[k];
        }
        transform->run(v, scratch);
        T* out = y + f * p.bins * 2;
        for (int64_t k = 0; k < p.bins; ++k) {
          out[2 * k] = store<T>((C)v[k].real());
          out[2 * k + 1] = store<T>((C)v[k].imag());
        }
      }
    };
    const int64_t count = batch * p.frames;
    if (a.ctx->pool)
      a.ctx->pool->parallel_for_units(count, transform->line_ns(), frames, a.ctx->max_threads);
    else
      frames(0, count);
  });
}

}  // namespace

void register_signal_ops(OpRegistry& r) {
  // ONNX's output_datatype is an ONNX type code: the converter gives it as output_type.
  auto window = [&](const char* type, PrepareFn prepare) {
    r.add(with_value_inputs(OpDef{type, 1, 1, infer_window, prepare}
                                .with_attrs({bool_attr("periodic", true), type_attr("output_type", "f32")})
                                .ir({type}, "aiov1"),
                            {0}));
  };
  window("aiov.HannWindow", prepare_window<WindowKind::hann>);
  window("aiov.HammingWindow", prepare_window<WindowKind::hamming>);
  window("aiov.BlackmanWindow", prepare_window<WindowKind::blackman>);
  r.add(with_value_inputs(OpDef{"aiov.MelWeightMatrix", 5, 5, infer_mel, prepare_mel}
                              .with_attrs({type_attr("output_type", "f32")})
                              .ir({"aiov.MelWeightMatrix"}, "aiov1"),
                          {0, 1, 2, 3, 4}));
  // dft_length and axis: empty tensors when not given (axis then comes from the attribute).
  r.add(with_value_inputs(
      OpDef{"aiov.DFT", 1, 3, infer_dft, prepare_dft}
          .with_attrs({int_attr("axis", 1), bool_attr("inverse", false), bool_attr("onesided", false)})
          .ir({"aiov.DFT"}, "aiov1"),
      {1, 2}));
  r.add(with_value_inputs(OpDef{"aiov.STFT", 2, 4, infer_stft, prepare_stft}
                              .with_attrs({bool_attr("onesided", true)})
                              .ir({"aiov.STFT"}, "aiov1"),
                          {1, 3}));
}

}  // namespace aiov
