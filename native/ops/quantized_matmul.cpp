// aiov.QuantizedMatMul: 8-bit integer activations [..., K] times 8-bit integer weights [K, N]
// with their zero points, accumulated in s32 on the integer GEMM (kernels/gemm_int8.hpp).
// With four inputs the output is the s32 sum itself (ONNX MatMulInteger); with a fifth, the
// dequantization factor (one value, or one per column: activation scale x weight scale),
// the output is f32 float(sum) * factor (+ a sixth input, the bias [N]). The ONNX reader
// emits it for MatMulInteger and QLinearMatMul, and the graph optimizer folds the scale
// and bias that follow into it (plan/passes/fuse_quantized_matmul.cpp), and a Relu after them
// (attribute "relu", f32 output only).
// aiov.DynamicQuantize, ONNX DynamicQuantizeLinear, makes the u8 activations such a product
// reads: one pass for the range, one to quantize (what would otherwise be a dozen f32 ops).
#include <algorithm>
#include <cmath>
#include <memory>
#include <vector>

#include "executor/executor.hpp"
#include "kernels/gemm_int8.hpp"
#include "kernels/quantized_bytes.hpp"
#include "plan/registry.hpp"

namespace aiov {
namespace {

bool is_8bit(ElementType t) { return t == ElementType::u8 || t == ElementType::i8; }

// A zero point or factor: one value (rank 0 or [1]) or, when `per_column`, N values.
void expect_vector(const Node& n, const PortInfo& p, const char* what, int64_t N, bool per_column) {
  if (!p.shape.rank_known) return;
  const Dims& d = p.shape.dims;
  const bool one = d.empty() || (d.size() == 1 && d[0] == 1);
  const bool each = per_column && d.size() == 1 && (d[0] == N || d[0] < 0 || N < 0);
  if (!one && !each)
    throw InputError(n.describe() + ": " + what + " must be one value" +
                     (per_column ? " or [" + std::to_string(N) + "]" : std::string()) + ", got " + p.shape.str());
}

std::vector<PortInfo> infer_quantized_matmul(const InferContext& c) {
  const Node& n = c.node;
  const PortInfo &a = c.in[0], &b = c.in[1];
  if (!is_8bit(a.type) || !is_8bit(b.type))
    throw InputError(n.describe() + ": A and B must be u8 or i8, got " + type_name(a.type) + " and " +
                     type_name(b.type));
  if (c.in[2].type != a.type || c.in[3].type != b.type)
    throw InputError(n.describe() + ": zero points must have their operand's type (" + type_name(a.type) + ", " +
                     type_name(b.type) + "), got " + type_name(c.in[2].type) + " and " + type_name(c.in[3].type));
  if (b.shape.rank_known && b.shape.rank() != 2)
    throw InputError(n.describe() + ": B must be 2-D [K, N], got " + b.shape.str());
  if (a.shape.rank_known && a.shape.rank() < 1) throw InputError(n.describe() + ": A must have rank >= 1, got []");
  const int64_t K = b.shape.rank_known ? b.shape.dims[0] : -1, N = b.shape.rank_known ? b.shape.dims[1] : -1;
  if (a.shape.rank_known && K >= 0 && a.shape.dims.back() >= 0 && a.shape.dims.back() != K)
    throw InputError(n.describe() + ": inner dimensions do not match: " + a.shape.str() + " x " + b.shape.str());
  expect_vector(n, c.in[2], "the zero point of A", N, false);
  expect_vector(n, c.in[3], "the zero point of B", N, true);
  ElementType out = ElementType::i32;
  if (c.in.size() > 4) {
    if (c.in[4].type != ElementType::f32 || (c.in.size() > 5 && c.in[5].type != ElementType::f32))
      throw InputError(n.describe() + ": the factor and the bias must be f32");
    expect_vector(n, c.in[4], "the factor", N, true);
    if (c.in.size() > 5 && c.in[5].shape.rank_known &&
        (c.in[5].shape.rank() != 1 || (N >= 0 && c.in[5].shape.dims[0] >= 0 && c.in[5].shape.dims[0] != N)))
      throw InputError(n.describe() + ": the bias must be [" + std::to_string(N) + "], got " + c.in[5].shape.str());
    out = ElementType::f32;
  } else if (n.attr_int("relu", 0)) {
    throw InputError(n.describe() + ": relu needs the dequantized (f32) output: give the factor");
  }
  if (!a.shape.rank_known) return {PortInfo{out, PartialShape::dynamic_rank()}};
  Dims y(a.shape.dims.begin(), a.shape.dims.end() - 1);
  y.push_back(N);
  return {PortInfo{out, PartialShape(y)}};
}

int32_t int8_value(const TensorView& t) {
  return t.type == ElementType::u8 ? (int32_t)*t.as<uint8_t>() : (int32_t)*t.as<int8_t>();
}

KernelFn prepare_quantized_matmul(const PrepareContext& ctx) {
  const Dims& bs = ctx.in[1].shape;
  const int64_t K = bs[0], N = bs[1], rows = K ? numel(ctx.in[0].shape) / K : 0;
  const bool a_signed = ctx.in[0].type == ElementType::i8, b_unsigned = ctx.in[1].type == ElementType::u8;
  const bool dequantize = ctx.in.size() > 4, has_bias = ctx.in.size() > 5;
  const bool relu = ctx.node.attr_int("relu", 0) != 0;
  std::shared_ptr<const PackedInt8B> packed;
  if (ctx.in[1].data)
    packed = ctx.derived<PackedInt8B>(
        1, "PackedInt8B " + PackedInt8B::layout(b_unsigned, false, K, N, N),
        [&] { return std::make_shared<PackedInt8B>(ctx.in[1].data, b_unsigned, false, K, N, N); },
        [&](const PackedInt8B& b) { return b.fits(K, N, b_unsigned); });
  ctx.note_kernel(std::string("integer GEMM ") + gemm_int8_isa() + (packed ? " (packed weights)" : ""));
  return [=](const KernelArgs& k) {
    if (rows == 0 || N == 0) return;
    std::shared_ptr<const PackedInt8B> b = packed;
    if (!b) b = std::make_shared<PackedInt8B>(k.in[1]->data, b_unsigned, false, K, N, N);
    const TensorView& bz = *k.in[3];
    const int64_t zeros = numel(bz.shape);
    std::vector<int32_t> b_zero((size_t)zeros);
    for (int64_t i = 0; i < zeros; ++i)
      b_zero[(size_t)i] = b_unsigned ? (int32_t)bz.as<uint8_t>()[i] : (int32_t)bz.as<int8_t>()[i];
    Int8Output out;
    out.ldc = N;
    std::vector<float> factor;
    if (dequantize) {
      const float* f = k.in[4]->as<float>();
      factor.assign((size_t)N, f[0]);
      if (numel(k.in[4]->shape) == N) factor.assign(f, f + N);
      out.c_f32 = k.out[0]->as<float>();
      out.scale = factor.data();
      out.bias = has_bias ? k.in[5]->as<float>() : nullptr;
      out.relu = relu;
    } else {
      out.c_i32 = k.out[0]->as<int32_t>();
    }
    gemm_u8s8(rows, k.in[0]->data, a_signed, K, int8_value(*k.in[2]), *b, b_zero.data(), zeros, out, k.ctx->pool,
              k.ctx->max_threads);
  };
}

// ---- aiov.DynamicQuantize: x (f32) -> (u8 y, f32 scale, u8 zero point) over the range of x
// widened to include 0: scale = (max - min) / 255, zero = round(-min / scale), y = saturate(
// round(x / scale) + zero), rounding half to even as ONNX's reference does.

std::vector<PortInfo> infer_dynamic_quantize(const InferContext& c) {
  if (c.in[0].type != ElementType::f32)
    throw InputError(c.node.describe() + ": x must be f32, got " + type_name(c.in[0].type));
  return {PortInfo{ElementType::u8, c.in[0].shape}, PortInfo{ElementType::f32, PartialShape(Dims{})},
          PortInfo{ElementType::u8, PartialShape(Dims{})}};
}

// round(v) saturated to [0, 255]; NaN becomes 0 (no float-to-int conversion of a NaN).
uint8_t saturate_u8(float v) {
  v = std::nearbyint(v);
  if (!(v >= 0.0f)) return 0;
  return v >= 255.0f ? 255 : (uint8_t)v;
}

// Large tensors are cut into pieces shared over the pool (at M = 64 the division per element
// makes quantizing cost as much as a quarter of the product): about kQuantizePiece values each,
// as many as a multiple of the threads, so none waits on another's extra piece (BERT's 128 x 384
// made 3 pieces for 2 threads: one thread did two thirds of the work).
constexpr int64_t kQuantizePiece = int64_t{1} << 14;
constexpr int64_t kQuantizeAlign = 64;  // values: pieces start on whole cache lines and vectors

struct QuantizePieces {
  int64_t count = 0, length = 0;  // piece p is [p * length, min(n, (p + 1) * length))
};

QuantizePieces quantize_pieces(int64_t n, int threads) {
  if (n <= 0) return {};
  int64_t count = (n + kQuantizePiece - 1) / kQuantizePiece;
  if (count > 1 && threads > 1) count = (count + threads - 1) / threads * threads;
  int64_t length = (n + count - 1) / count;
  length = (length + kQuantizeAlign - 1) / kQuantizeAlign * kQuantizeAlign;
  return {(n + length - 1) / length, length};
}

template <class Fn>
void each_piece(const KernelArgs& k, int64_t n, const QuantizePieces& pieces, Fn&& fn) {
  const auto run = [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) fn(p, p * pieces.length, std::min(n, (p + 1) * pieces.length));
  };
  if (k.ctx->pool && pieces.count > 1)
    k.ctx->pool->parallel_for(pieces.count, 1, run, k.ctx->max_threads);
  else
    run(0, pieces.count);
}

int quantize_threads(const KernelArgs& k) { return k.ctx->pool ? k.ctx->pool->usable_threads(k.ctx->max_threads) : 1; }

KernelFn prepare_dynamic_quantize(const PrepareContext& ctx) {
  const int64_t n = numel(ctx.in[0].shape);
  return [n](const KernelArgs& k) {
    const float* x = k.in[0]->as<float>();
    uint8_t* y = k.out[0]->as<uint8_t>();
    const QuantizePieces pieces = quantize_pieces(n, quantize_threads(k));
    // Each piece's range includes 0, so the smallest and largest of theirs are x's.
    std::vector<float> mins((size_t)pieces.count, 0.0f), maxs((size_t)pieces.count, 0.0f);
    each_piece(k, n, pieces, [&](int64_t p, int64_t i0, int64_t i1) {
      range_with_zero(x + i0, i1 - i0, mins[(size_t)p], maxs[(size_t)p]);
    });
    const float min = pieces.count ? *std::min_element(mins.begin(), mins.end()) : 0.0f;
    const float max = pieces.count ? *std::max_element(maxs.begin(), maxs.end()) : 0.0f;
    // An all-zero x has no range: scale 1 (as onnxruntime; not 0 and a division by it).
    const float scale = max > min ? (max - min) / 255.0f : 1.0f;
    const uint8_t zero = saturate_u8(0.0f - min / scale);
    each_piece(k, n, pieces,
               [&](int64_t, int64_t i0, int64_t i1) { quantize_u8(x + i0, i1 - i0, scale, zero, y + i0); });
    *k.out[1]->as<float>() = scale;
    *k.out[2]->as<uint8_t>() = zero;
  };
}

// ---- aiov.Quantize: x (f32) -> u8 or i8 (the zero point's type) with one scale and zero
// point (ONNX QuantizeLinear per tensor): saturate(round_half_even(x / scale) + zero). With
// to_nhwc (set by quantize_to_nhwc: a model's NCHW image quantized for its first convolution)
// x is [N, C, H, W] and y its bytes transposed to [N, H, W, C], written in the same pass: per
// tensor, quantizing and transposing commute.

std::vector<PortInfo> infer_quantize(const InferContext& c) {
  const bool one_scale = !c.in[1].shape.rank_known || numel(c.in[1].shape.dims) == 1;
  const bool one_zero = !c.in[2].shape.rank_known || numel(c.in[2].shape.dims) == 1;
  if (c.in[0].type != ElementType::f32 || c.in[1].type != ElementType::f32 || !is_8bit(c.in[2].type) || !one_scale ||
      !one_zero)
    throw InputError(c.node.describe() + ": needs f32 x, one f32 scale and one u8 or i8 zero point, got " +
                     type_name(c.in[0].type) + ", " + type_name(c.in[1].type) + " " + c.in[1].shape.str() + ", " +
                     type_name(c.in[2].type) + " " + c.in[2].shape.str());
  if (!c.node.attr_int("to_nhwc", 0)) return {PortInfo{c.in[2].type, c.in[0].shape}};
  const PartialShape& x = c.in[0].shape;
  if (!x.rank_known || x.rank() != 4)
    throw InputError(c.node.describe() + ": to_nhwc needs x of rank 4 [N, C, H, W], got " + x.str());
  return {PortInfo{c.in[2].type, PartialShape(Dims{x.dims[0], x.dims[2], x.dims[3], x.dims[1]})}};
}

KernelFn prepare_quantize(const PrepareContext& ctx) {
  const int64_t n = numel(ctx.in[0].shape);
  const bool to_signed = ctx.in[2].type == ElementType::i8;
  if (ctx.node.attr_int("to_nhwc", 0)) {
    const Dims& d = ctx.in[0].shape;
    const int64_t images = d[0], C = d[1], plane = d[2] * d[3];
    // Pieces of whole 64-pixel blocks of one image, about kQuantizePiece values each.
    const int64_t per_piece =
        plane <= 0 || C <= 0 ? 1
                             : std::max<int64_t>(kQuantizeAlign, kQuantizePiece / C / kQuantizeAlign * kQuantizeAlign);
    const int64_t per_image = plane <= 0 ? 0 : (plane + per_piece - 1) / per_piece;
    return [=](const KernelArgs& k) {
      const float* x = k.in[0]->as<float>();
      uint8_t* y = k.out[0]->as<uint8_t>();
      const float scale = *k.in[1]->as<float>();
      const int32_t zero = to_signed ? (int32_t)*k.in[2]->as<int8_t>() + 128 : (int32_t)*k.in[2]->as<uint8_t>();
      const auto run = [&](int64_t u0, int64_t u1) {
        for (int64_t u = u0; u < u1; ++u) {
          const int64_t image = u / per_image, p0 = u % per_image * per_piece;
          const int64_t image_at = image * C * plane;
          quantize_planes_to_pixels(x + image_at + p0, plane, C, std::min(per_piece, plane - p0), scale, zero,
                                    to_signed ? 0x80 : 0, y + image_at + p0 * C);
        }
      };
      const int64_t units = images * per_image;
      if (k.ctx->pool && units > 1 && n > kQuantizePiece)
        k.ctx->pool->parallel_for(units, 1, run, k.ctx->max_threads);
      else
        run(0, units);
    };
  }
  return [n, to_signed](const KernelArgs& k) {
    const float* x = k.in[0]->as<float>();
    uint8_t* y = k.out[0]->as<uint8_t>();
    const float scale = *k.in[1]->as<float>();
    // s8 is u8 shifted by 128: quantized against zero + 128, then the top bit flipped.
    const int32_t zero = to_signed ? (int32_t)*k.in[2]->as<int8_t>() + 128 : (int32_t)*k.in[2]->as<uint8_t>();
    each_piece(k, n, quantize_pieces(n, quantize_threads(k)), [&](int64_t, int64_t i0, int64_t i1) {
      quantize_u8(x + i0, i1 - i0, scale, zero, y + i0);
      if (to_signed)
        for (int64_t i = i0; i < i1; ++i) y[i] ^= 0x80;
    });
  };
}

}  // namespace

// ops/quantized_conv.cpp: registered with these (one entry point for the quantized family).
void register_quantized_conv_ops(OpRegistry& r);
void register_quantized_add_ops(OpRegistry& r);     // ops/quantized_add.cpp
void register_quantized_lookup_ops(OpRegistry& r);  // ops/quantized_lookup.cpp

void register_quantized_matmul_ops(OpRegistry& r) {
  register_quantized_conv_ops(r);
  register_quantized_add_ops(r);
  register_quantized_lookup_ops(r);
  // Layout-blind as far as the passes that sink layout changes go: they run before
  // quantize_to_nhwc sets to_nhwc, the last pass.
  r.add(OpDef{"aiov.Quantize", 3, 3, infer_quantize, prepare_quantize}
            .with_attrs({bool_attr("to_nhwc", false).ir_name("-").onnx_name("-")})
            .blind(LayoutBlind::per_tensor)
            .ir({"aiov.Quantize"}, "aiov1"));
  r.add(OpDef{"aiov.DynamicQuantize", 1, 1, infer_dynamic_quantize, prepare_dynamic_quantize}.ir(
      {"aiov.DynamicQuantize"}, "aiov1"));
  // Set by fuse_quantized_matmul: max(0, .) of the f32 result (the merge's, with the bias).
  r.add(OpDef{"aiov.QuantizedMatMul", 4, 6, infer_quantized_matmul, prepare_quantized_matmul}
            .with_attrs({bool_attr("relu", false).ir_name("-").onnx_name("-")})
            .ir({"aiov.QuantizedMatMul"}, "aiov1"));
}

}  // namespace aiov
