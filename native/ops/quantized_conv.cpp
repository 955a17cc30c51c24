// aiov.QuantizedConv: a convolution of 8-bit integer data by constant 8-bit filters with
// their zero points. Data under filters without a zero point (QDQ's) runs on the direct
// kernels (kernels/conv_int8.hpp), which read the channels-last image in place, except where
// AMX tiles multiply; otherwise as the integer GEMM (kernels/gemm_int8.hpp) computes it: per
// image, one row of patch values per output position in channels-last order (padding is the
// data's zero point, so it contributes nothing), times the filters packed once. A 1x1 window
// moving by 1 over unpadded NHWC data is the patch matrix as it lies.
// Inputs: data, filters, their zero points; four give the s32 sums (ONNX ConvInteger); a
// fifth, the factor (one value or one per output channel), gives f32 (+ a sixth, the bias);
// a seventh and eighth (one f32 scale, one u8 zero point) requantize that f32 to u8 as
// aiov.Quantize would (the next convolution's input in QDQ models). Five more (a u8 residual
// of the output's shape, its f32 scale and u8 zero point, the sum's scale and zero point: see
// passes/fuse_quantized_add) add that residual to those bytes as aiov.QuantizedAdd would, in
// the merge that writes them (a ResNet block's last convolution and its skip connection).
// Layout: "nchw" (the model's; transposed on the way in and out) or "nhwc" (inside a
// convolution region, see passes/quantized_convolutions_to_nhwc). Groups of more than one run
// in ops/quantized_grouped_conv.cpp.
#include <algorithm>
#include <cstring>
#include <memory>
#include <vector>

#include "executor/executor.hpp"
#include "kernels/conv_int8.hpp"
#include "kernels/gemm_int8.hpp"
#include "ops/window.hpp"
#include "plan/registry.hpp"

namespace aiov {

// ops/quantized_grouped_conv.cpp: group > 1 (depthwise, and per-group GEMMs).
KernelFn prepare_quantized_grouped_conv(const PrepareContext& ctx);

namespace {

// dst[j * rows + i] = src[i * cols + j]: a [rows, cols] matrix transposed, in 32 x 32 blocks
// so both sides move whole cache lines, bands of destination rows shared over the pool.
template <class T>
void transpose(const T* src, int64_t rows, int64_t cols, T* dst, const ExecContext& ctx) {
  constexpr int64_t kBlock = 32;
  const auto band = [&](int64_t b0, int64_t b1) {
    for (int64_t i0 = 0; i0 < rows; i0 += kBlock)
      for (int64_t j0 = b0 * kBlock; j0 < std::min(cols, b1 * kBlock); j0 += kBlock) {
        const int64_t i1 = std::min(rows, i0 + kBlock), j1 = std::min(cols, j0 + kBlock);
        for (int64_t j = j0; j < j1; ++j)
          for (int64_t i = i0; i < i1; ++i) dst[j * rows + i] = src[i * cols + j];
      }
  };
  const int64_t bands = (cols + kBlock - 1) / kBlock;
  if (ctx.pool && rows * cols * (int64_t)sizeof(T) >= (int64_t{1} << 18))
    ctx.pool->parallel_for(bands, 1, band, ctx.max_threads);
  else
    band(0, bands);
}

// Copies / sets n bytes with no library call for the short runs of few-channel windows (a 7x7
// stem over 3 channels copies 21 bytes per window row, 3 per tap at its borders, then zeros
// 45 to the padded K): 8- or 4-byte moves, the last one overlapping.
inline void copy_run(uint8_t* dst, const uint8_t* src, int64_t n) {
  if (n >= 64) {
    std::memcpy(dst, src, (size_t)n);
  } else if (n >= 8) {
    for (int64_t i = 0; i + 8 < n; i += 8) std::memcpy(dst + i, src + i, 8);
    std::memcpy(dst + n - 8, src + n - 8, 8);
  } else if (n >= 4) {
    std::memcpy(dst, src, 4);
    std::memcpy(dst + n - 4, src + n - 4, 4);
  } else {
    for (int64_t i = 0; i < n; ++i) dst[i] = src[i];
  }
}

inline void set_run(uint8_t* dst, uint8_t byte, int64_t n) {
  const uint64_t bytes = 0x0101010101010101ull * byte;
  if (n >= 64 || n < 4) {
    std::memset(dst, byte, (size_t)n);
  } else if (n >= 8) {
    for (int64_t i = 0; i + 8 < n; i += 8) std::memcpy(dst + i, &bytes, 8);
    std::memcpy(dst + n - 8, &bytes, 8);
  } else {
    std::memcpy(dst, &bytes, 4);
    std::memcpy(dst + n - 4, &bytes, 4);
  }
}

bool is_8bit(ElementType t) { return t == ElementType::u8 || t == ElementType::i8; }

// Whether the filters' zero points (constant) are all the type's zero: 0 for s8, 128 for u8.
bool no_filter_zero(const TensorView& zero, bool b_unsigned) {
  const int64_t n = numel(zero.shape);
  const uint8_t* z = static_cast<const uint8_t*>(zero.data);
  for (int64_t i = 0; i < n; ++i)
    if (z[i] != (b_unsigned ? 128 : 0)) return false;
  return true;
}

bool one_or(const PortInfo& p, int64_t n) {
  if (!p.shape.rank_known) return true;
  const Dims& d = p.shape.dims;
  return d.empty() || (d.size() == 1 && (d[0] == 1 || d[0] == n || d[0] < 0 || n < 0));
}

std::vector<PortInfo> infer_quantized_conv(const InferContext& c) {
  const Node& n = c.node;
  const PortInfo &x = c.in[0], &w = c.in[1];
  if (!is_8bit(x.type) || !is_8bit(w.type))
    throw InputError(n.describe() + ": data and filters must be u8 or i8, got " + type_name(x.type) + " and " +
                     type_name(w.type));
  if (c.in[2].type != x.type || c.in[3].type != w.type)
    throw InputError(n.describe() + ": zero points must have their operand's type");
  const int64_t O = w.shape.rank_known && w.shape.rank() > 0 ? w.shape.dims[0] : -1;
  const bool one_a = !c.in[2].shape.rank_known || numel(c.in[2].shape.dims) == 1;
  if (!one_a || !one_or(c.in[3], O))
    throw InputError(n.describe() +
                     ": zero points must be one value (data) and one or one per output channel "
                     "(filters), got " +
                     c.in[2].shape.str() + " and " + c.in[3].shape.str());
  ElementType out = ElementType::i32;
  if (c.in.size() > 4) {
    if (c.in[4].type != ElementType::f32 || !one_or(c.in[4], O))
      throw InputError(n.describe() + ": the factor must be f32, one value or one per output channel");
    if (c.in.size() > 5 && (c.in[5].type != ElementType::f32 || !c.in[5].shape.rank_known ||
                            c.in[5].shape.rank() != 1 || (O >= 0 && c.in[5].shape.dims[0] != O)))
      throw InputError(n.describe() + ": the bias must be f32 [" + std::to_string(O) + "], got " + c.in[5].shape.str());
    out = ElementType::f32;
  }
  if (c.in.size() > 8) {
    if (c.in.size() != 13 || n.attr_int("group") != 1)
      throw InputError(n.describe() + ": a residual sum needs 13 inputs and one group, got " +
                       std::to_string(c.in.size()) + " inputs and " + std::to_string(n.attr_int("group")) + " groups");
    for (int i : {9, 11})
      if (c.in[i].type != ElementType::f32 || c.in[i + 1].type != ElementType::u8 || !one_or(c.in[i], 1) ||
          !one_or(c.in[i + 1], 1))
        throw InputError(n.describe() + ": input " + std::to_string(i) +
                         " needs one f32 scale and one u8 zero point, got " + type_name(c.in[i].type) + " " +
                         c.in[i].shape.str() + " and " + type_name(c.in[i + 1].type) + " " + c.in[i + 1].shape.str());
    if (c.in[8].type != ElementType::u8)
      throw InputError(n.describe() + ": the residual must be u8, got " + type_name(c.in[8].type));
  }
  if (c.in.size() > 6) {
    if (c.in.size() < 8 || c.in[6].type != ElementType::f32 || c.in[7].type != ElementType::u8 || !one_or(c.in[6], 1) ||
        !one_or(c.in[7], 1))
      throw InputError(
          n.describe() + ": requantizing needs one f32 scale and one u8 zero point, got " + type_name(c.in[6].type) +
          " " + c.in[6].shape.str() +
          (c.in.size() > 7 ? std::string(", ") + type_name(c.in[7].type) + " " + c.in[7].shape.str() : ""));
    out = ElementType::u8;
  }
  const PartialShape y = conv_output_shape(n, x.shape, w.shape);
  if (c.in.size() > 8 && y.rank_known && c.in[8].shape.rank_known && y.is_static() && c.in[8].shape.is_static()) {
    if (y.dims != c.in[8].shape.dims)  // (both in the node's layout)
      throw InputError(n.describe() + ": the residual must have the output's shape " + y.str() + ", got " +
                       c.in[8].shape.str());
  }
  return {PortInfo{out, y}};
}

// The convolution's kernel; `rows_apart_native` set when it writes output 0's rows
// ctx.out_row_stride apart itself (NHWC, straight into a Concat's slice).
KernelFn quantized_conv_kernel(const PrepareContext& ctx, bool& rows_apart_native) {
  if (!ctx.in[1].data) throw NotSupported(ctx.node.describe() + ": needs constant filters");
  if (ctx.node.attr_int("group") > 1) return prepare_quantized_grouped_conv(ctx);  // (no residual: infer's check)
  const bool nhwc = layout_of(ctx.node) == Layout::nhwc, relu = ctx.node.attr_int("relu", 0) != 0;
  const Dims xs = to_channels_first(ctx.in[0].shape, nhwc ? Layout::nhwc : Layout::nchw), &fs = ctx.in[1].shape;
  const int64_t batch = xs[0], C = xs[1], O = fs[0];
  rows_apart_native = nhwc;
  const int64_t ldy = nhwc && ctx.out_row_stride ? ctx.out_row_stride : O;  // elements between output rows
  std::vector<int64_t> in(xs.begin() + 2, xs.end()), kernel(fs.begin() + 2, fs.end());
  const Window w = to_3d(make_window(ctx.node, in, kernel));
  const int64_t taps = w.kernel[0] * w.kernel[1] * w.kernel[2], K = taps * C;
  const int64_t positions = w.out[0] * w.out[1] * w.out[2], plane = w.in[0] * w.in[1] * w.in[2];
  const bool a_signed = ctx.in[0].type == ElementType::i8, b_unsigned = ctx.in[1].type == ElementType::u8;
  const bool dequantize = ctx.in.size() > 4, has_bias = ctx.in.size() > 5, requantize = ctx.in.size() > 7;
  const bool residual_sum = ctx.in.size() > 8;
  if (residual_sum && numel(ctx.in[8].shape) != batch * positions * O)
    throw InputError(ctx.node.describe() + ": the residual " + dims_str(ctx.in[8].shape) + " is not the output's " +
                     std::to_string(batch * positions * O) + " values");
  // A 1x1 window moving by 1 over unpadded data reads each position's channels as they are.
  bool pointwise = taps == 1 && positions == plane;
  for (int d = 0; d < 3; ++d) pointwise = pointwise && w.pad_begin[d] == 0 && w.stride[d] == 1;
  // Data under filters with no zero point (QDQ's symmetric s8 weights) is read in place by the
  // direct kernels (kernels/conv_int8.hpp), 1-D and 2-D windows, except where AMX tiles run
  // (s8 data shifted into u8 first, one pass).
  const ConvInt8Segments segments = conv_int8_segments(C, w.kernel[1], w.kernel[2], w.dilation[2]);
  // A 1x1 over u8 channels in whole quads is the integer GEMM's row form as it lies: it runs
  // there (gemm_u8_rows, rows-first strips merged from the accumulators when it requantizes;
  // MobileNetV2's 112x112 16 -> 96: 352 -> 268 us on one Zen 4 core), not on the direct kernels.
  const bool pointwise_rows = pointwise && !a_signed && C % gemm_detail::kInt8Quad == 0;
  const bool direct = conv_int8_isa() && ctx.in[3].data && w.kernel[0] == 1 && w.in[0] == 1 && w.pad_begin[0] == 0 &&
                      no_filter_zero(ctx.in[3], b_unsigned) && !pointwise_rows;
  const int64_t Kd = segments.depth();
  // u8 patches are written once, a block of rows at a time straight in the row form, each
  // block just before its products (gemm_u8_filled); s8 ones are written whole and go
  // through gemm_u8s8, which shifts them into u8 as it copies.
  // Filters [O, C, taps] reordered to [O, taps, C], the order of the patch rows; for the
  // direct kernels, to their segments (padded to quads with the filters' zero).
  const auto pack_segments = [&] {
    return ctx.derived<PackedInt8B>(
        1,
        "PackedInt8B direct conv " + PackedInt8B::layout(b_unsigned, true, Kd, O, Kd) + " segments " +
            std::to_string(segments.count) + "x" + std::to_string(segments.length),
        [&] {
          const std::vector<uint8_t> reordered =
              conv_int8_reorder(static_cast<const uint8_t*>(ctx.in[1].data), O, C, w.kernel[1], w.kernel[2], segments,
                                b_unsigned ? 128 : 0);
          return std::make_shared<PackedInt8B>(reordered.data(), b_unsigned, true, Kd, O, Kd);
        },
        [&](const PackedInt8B& b) { return b.fits(Kd, O, b_unsigned); });
  };
  const auto pack_patch_order = [&] {
    return ctx.derived<PackedInt8B>(
        1, "PackedInt8B conv " + PackedInt8B::layout(b_unsigned, true, K, O, K),
        [&] {
          const uint8_t* f = static_cast<const uint8_t*>(ctx.in[1].data);
          std::vector<uint8_t> reordered((size_t)(O * K));
          for (int64_t o = 0; o < O; ++o)
            for (int64_t c = 0; c < C; ++c)
              for (int64_t t = 0; t < taps; ++t) reordered[(size_t)(o * K + t * C + c)] = f[(o * C + c) * taps + t];
          return std::make_shared<PackedInt8B>(reordered.data(), b_unsigned, true, K, O, K);
        },
        [&](const PackedInt8B& b) { return b.fits(K, O, b_unsigned); });
  };
  const std::shared_ptr<const PackedInt8B> packed = direct ? pack_segments() : pack_patch_order();
  // u8 data whose channels need no padding for the kernels (whole quads on VNNI, 64-byte
  // groups on AMX) is then the GEMM's row form itself.
  const bool in_place = !direct && pointwise && !a_signed && packed->kp() == K;
  ctx.note_kernel(
      (direct ? std::string("direct integer convolution ") + conv_int8_isa()
              : std::string("integer GEMM ") + gemm_int8_isa() + (in_place ? " on the data" : " over patches")) +
      (nhwc ? " in NHWC" : " in NCHW (transposed)") + (requantize ? " to u8" : ""));
  const size_t out_size = requantize ? 1 : 4;
  return [=](const KernelArgs& k) {
    const TensorView& bz = *k.in[3];
    const int64_t zeros = numel(bz.shape);
    std::vector<int32_t> b_zero((size_t)zeros);
    for (int64_t i = 0; i < zeros; ++i)
      b_zero[(size_t)i] = b_unsigned ? (int32_t)bz.as<uint8_t>()[i] : (int32_t)bz.as<int8_t>()[i];
    const uint8_t pad = *k.in[2]->as<uint8_t>();  // the zero point's byte, in the data's type
    const int32_t a_zero = a_signed ? (int32_t)*k.in[2]->as<int8_t>() : (int32_t)pad;
    std::vector<float> factor;
    if (dequantize) {
      const float* f = k.in[4]->as<float>();
      factor.assign((size_t)O, f[0]);
      if (numel(k.in[4]->shape) == O) factor.assign(f, f + O);
    }
    // Kept per thread between calls: fresh megabytes each call would fault their pages in.
    thread_local std::vector<uint8_t> channels_last, patches, result, shifted;
    if (!nhwc) channels_last.resize((size_t)(plane * C));
    if (a_signed && !direct) patches.resize((size_t)(positions * K));
    // The direct kernels' zero-point term: -data_zero * the column's weights (which wraps, as
    // the sums do).
    std::vector<int32_t> col_add;
    if (direct) {
      col_add.resize((size_t)O);
      for (int64_t n = 0; n < O; ++n)
        col_add[(size_t)n] =
            (int32_t)(0u - (uint32_t)(a_zero + (a_signed ? 128 : 0)) * (uint32_t)packed->column_sums()[n]);
    }
    if (!nhwc) result.resize((size_t)(positions * O) * out_size);
    // Pointers, not the thread_locals: the fill below runs on other threads, where those
    // names mean other buffers.
    uint8_t* const patch_rows = patches.data();
    const uint8_t* x = static_cast<const uint8_t*>(k.in[0]->data);
    uint8_t* y = static_cast<uint8_t*>(k.out[0]->data);
    for (int64_t b = 0; b < batch; ++b) {
      const uint8_t* image = x + b * C * plane;  // channels last
      if (!nhwc) {
        transpose(image, C, plane, channels_last.data(), *k.ctx);
        image = channels_last.data();
      }
      if (direct && a_signed) {  // s8 as u8: x + 128, the zero point with it
        shifted.resize((size_t)(plane * C));
        for (int64_t i = 0; i < plane * C; ++i) shifted[(size_t)i] = image[i] ^ 0x80;
        image = shifted.data();
      }
      // Rows [p0, p1), one per output position, ld bytes apart from `rows`: for each tap, the
      // C values under it (or the pad byte), then zeros to the padded K; the taps of one
      // window row that all lie inside the data are one copy (C is contiguous).
      const auto fill = [&](int64_t p0, int64_t p1, uint8_t* rows, int64_t ld) {
        const int64_t kw = w.kernel[2], run = kw * C, zeros = std::min(ld, packed->kp()) - K;
        const bool dense_rows = w.dilation[2] == 1;
        for (int64_t p = p0; p < p1; ++p) {
          const int64_t oz = p / (w.out[1] * w.out[2]), oy = p / w.out[2] % w.out[1], ox = p % w.out[2];
          const int64_t x0 = ox * w.stride[2] - w.pad_begin[2];
          uint8_t* row = rows + (p - p0) * ld;
          if (zeros > 0) set_run(row + K, 0, zeros);
          for (int64_t kz = 0; kz < w.kernel[0]; ++kz)
            for (int64_t ky = 0; ky < w.kernel[1]; ++ky, row += run) {
              const int64_t z = oz * w.stride[0] - w.pad_begin[0] + kz * w.dilation[0];
              const int64_t yy = oy * w.stride[1] - w.pad_begin[1] + ky * w.dilation[1];
              if (z < 0 || z >= w.in[0] || yy < 0 || yy >= w.in[1]) {
                set_run(row, pad, run);
                continue;
              }
              const uint8_t* line = image + (z * w.in[1] + yy) * w.in[2] * C;
              if (dense_rows && x0 >= 0 && x0 + kw <= w.in[2]) {
                copy_run(row, line + x0 * C, run);
                continue;
              }
              for (int64_t kx = 0; kx < kw; ++kx) {
                const int64_t xx = x0 + kx * w.dilation[2];
                if (xx < 0 || xx >= w.in[2])
                  set_run(row + kx * C, pad, C);
                else
                  copy_run(row + kx * C, line + xx * C, C);
              }
            }
        }
      };
      if (a_signed && !direct) {
        const auto fill_all = [&](int64_t p0, int64_t p1) { fill(p0, p1, patch_rows + p0 * K, K); };
        if (k.ctx->pool)
          k.ctx->pool->parallel_for(positions, 64, fill_all, k.ctx->max_threads);
        else
          fill_all(0, positions);
      }
      // NHWC: straight into the output; NCHW: [positions, O] then transposed.
      uint8_t* dst = nhwc ? y + b * positions * ldy * out_size : result.data();
      Int8Output out;
      out.ldc = ldy;
      if (dequantize) {
        out.relu = relu;
        out.scale = factor.data();
        out.bias = has_bias ? k.in[5]->as<float>() : nullptr;
        if (requantize) {
          out.c_u8 = dst;
          out.out_scale = *k.in[6]->as<float>();
          out.out_zero = *k.in[7]->as<uint8_t>();
          if (residual_sum) {
            out.residual_scale = *k.in[9]->as<float>();
            out.residual_zero = *k.in[10]->as<uint8_t>();
            out.sum_scale = *k.in[11]->as<float>();
            out.sum_zero = *k.in[12]->as<uint8_t>();
            // NHWC: the residual's rows beside the output's, summed in the merge; NCHW: summed
            // over the image once it is transposed (below).
            if (nhwc) {
              out.residual = k.in[8]->as<uint8_t>() + b * positions * O;
              out.ld_residual = O;
            }
          }
        } else {
          out.c_f32 = reinterpret_cast<float*>(dst);
        }
      } else {
        out.c_i32 = reinterpret_cast<int32_t*>(dst);
      }
      if (direct) {
        ConvInt8 p;
        p.image = image;
        p.image_bytes = plane * C;
        p.channels = C;
        p.in_h = w.in[1];
        p.in_w = w.in[2];
        p.out_h = w.out[1];
        p.out_w = w.out[2];
        p.kernel_h = w.kernel[1];
        p.kernel_w = w.kernel[2];
        p.stride_h = w.stride[1];
        p.stride_w = w.stride[2];
        p.dilation_h = w.dilation[1];
        p.dilation_w = w.dilation[2];
        p.pad_top = w.pad_begin[1];
        p.pad_left = w.pad_begin[2];
        p.pad = a_signed ? (uint8_t)(pad ^ 0x80) : pad;
        p.segments = segments;
        p.weights = packed.get();
        p.col_add = col_add.data();
        p.out = out;
        conv_int8_run(p, k.ctx->pool, k.ctx->max_threads);
      } else if (a_signed)
        gemm_u8s8(positions, patch_rows, true, K, a_zero, *packed, b_zero.data(), zeros, out, k.ctx->pool,
                  k.ctx->max_threads);
      else if (in_place)  // (the channels-last image is the row form)
        gemm_u8_rows(positions, image, K, a_zero, *packed, b_zero.data(), zeros, out, k.ctx->pool, k.ctx->max_threads);
      else
        gemm_u8_filled(positions, fill, a_zero, *packed, b_zero.data(), zeros, out, k.ctx->pool, k.ctx->max_threads);
      if (nhwc) continue;
      if (requantize) {
        uint8_t* image_out = y + b * O * positions;
        transpose(result.data(), positions, O, image_out, *k.ctx);
        if (residual_sum)  // (the same values as the NHWC merge's, so one "row" of them all)
          add_residual_u8(out, image_out, 0, k.in[8]->as<uint8_t>() + b * O * positions, 1, O * positions);
      } else  // (4-byte values either way)
        transpose(reinterpret_cast<const uint32_t*>(result.data()), positions, O,
                  reinterpret_cast<uint32_t*>(y) + b * O * positions, *k.ctx);
    }
  };
}

KernelFn prepare_quantized_conv(const PrepareContext& ctx) {
  bool rows_apart_native = false;
  KernelFn kernel = quantized_conv_kernel(ctx, rows_apart_native);
  return rows_apart_native ? kernel : rows_apart(ctx, std::move(kernel));
}

// Any of its outputs can be a Concat's slice (NCHW and grouped ones are staged), except one
// summed with a residual (whose rows lie as the output's own).
bool quantized_conv_writes_concat_slice(const Node& n) { return n.inputs.size() <= 8; }

}  // namespace

void register_quantized_conv_ops(OpRegistry& r) {
  std::vector<AttrSpec> attrs = window_attrs();
  attrs.push_back(group_attr().ir_name("-"));
  // Set by fuse_requantization: a Relu applied before the requantization.
  attrs.push_back(bool_attr("relu", false).ir_name("-").onnx_name("-"));
  r.add(OpDef{"aiov.QuantizedConv", 4, 13, infer_quantized_conv, prepare_quantized_conv}
            .with_attrs(attrs)
            .concat_slice(quantized_conv_writes_concat_slice)
            .ir({"aiov.QuantizedConv"}, "aiov1"));
}

}  // namespace aiov
