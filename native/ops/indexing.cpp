// Indexing and layout ops: Transpose, Gather, Slice, StridedSlice, Split, VariadicSplit, Tile, Pad.
#include <algorithm>
#include <cstring>
#include <limits>
#include <type_traits>

#include "executor/executor.hpp"
#include "kernels/dispatch.hpp"
#include "kernels/gemm.hpp"
#include "kernels/strided_walk.hpp"
#include "plan/registry.hpp"

namespace aiov {
namespace {

// out[i][j] = in[i + j * stride] for a rows x cols block, in tiles that keep both sides
// in L1 (a layout change such as NCHW <-> NHWC).
// Few columns (an image's channels going last): interleave `COLS` input streams.
template <class T, int COLS>
void interleave_rows(const T* __restrict in, int64_t stride, int64_t rows, T* __restrict out) {
  for (int64_t i = 0; i < rows; ++i)
    for (int j = 0; j < COLS; ++j) out[i * COLS + j] = in[i + j * stride];
}

template <class T>
AIOV_MULTIVERSION void transpose_block(const T* __restrict in, int64_t stride, int64_t rows, int64_t cols,
                                       T* __restrict out) {
  switch (cols) {
    case 1:
      return interleave_rows<T, 1>(in, stride, rows, out);
    case 2:
      return interleave_rows<T, 2>(in, stride, rows, out);
    case 3:
      return interleave_rows<T, 3>(in, stride, rows, out);
    case 4:
      return interleave_rows<T, 4>(in, stride, rows, out);
    default:
      break;
  }
  constexpr int64_t kTile = 16;
  for (int64_t i0 = 0; i0 < rows; i0 += kTile)
    for (int64_t j0 = 0; j0 < cols; j0 += kTile) {
      const int64_t i1 = std::min(rows, i0 + kTile), j1 = std::min(cols, j0 + kTile);
      for (int64_t i = i0; i < i1; ++i)
        for (int64_t j = j0; j < j1; ++j) out[i * cols + j] = in[i + j * stride];
    }
}

// Merges adjacent output dims that are also adjacent in the input.
void coalesce(Dims& shape, std::vector<int64_t>& st) {
  Dims s2;
  std::vector<int64_t> t2;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == 1) continue;
    if (!s2.empty() && t2.back() == st[i] * shape[i]) {
      s2.back() *= shape[i];
      t2.back() = st[i];
    } else {
      s2.push_back(shape[i]);
      t2.push_back(st[i]);
    }
  }
  shape.swap(s2);
  st.swap(t2);
}

constexpr int64_t kSmallTransposeBlock = 256;  // values: a block this small runs in L1 as it lies

template <class T>
void copy_short_runs(const Dims& outer, const std::vector<int64_t>& st, int64_t base, int64_t inner,
                     const KernelArgs& k) {
  const T* x = static_cast<const T*>(k.in[0]->data);
  T* o = static_cast<T*>(k.out[0]->data);
  walk_strided(outer, st, base, [&](int64_t i, int64_t off) {
    for (int64_t j = 0; j < inner; ++j) o[i * inner + j] = x[off + j];
  });
}

// Copies an N-d strided view into dense output, memcpy per contiguous innermost run.
KernelFn strided_copy(const Dims& out_shape, const std::vector<int64_t>& in_strides, int64_t base, size_t es) {
  Dims outer = out_shape;
  int64_t inner = 1;
  std::vector<int64_t> st = in_strides;
  coalesce(outer, st);
  const size_t r = outer.size();
  if (r >= 2 && st[r - 2] == 1 && st[r - 1] != 1 && moves_as_bits(es)) {
    // The input's contiguous axis lands second-to-last: batched 2-D transposes.
    const int64_t rows = outer[r - 2], cols = outer[r - 1], stride = st[r - 1];
    Dims batch(outer.begin(), outer.end() - 2);
    std::vector<int64_t> bst(st.begin(), st.end() - 2);
    if (batch.size() == 1 && rows * cols <= kSmallTransposeBlock) {
      // Many small blocks (a channel shuffle's [pixels, 2, C/2] -> [pixels, C/2, 2] in NHWC: 16
      // values a pixel) cost a block's set-up each (4 us for 2,048 floats): one loop over the
      // blocks, shared over the pool by blocks.
      const int64_t blocks = batch[0], block_stride = bst[0];
      return [blocks, block_stride, base, es, rows, cols, stride](const KernelArgs& k) {
        const char* x = static_cast<const char*>(k.in[0]->data);
        char* o = static_cast<char*>(k.out[0]->data);
        for_rows(*k.ctx, blocks, rows * cols, [&](int64_t b0, int64_t b1) {
          for (int64_t b = b0; b < b1; ++b) {
            const char* s = x + (base + b * block_stride) * es;
            char* d = o + b * rows * cols * es;
            with_bits_of_size(es, [&](auto bits) {
              using T = decltype(bits);
              transpose_block((const T*)s, stride, rows, cols, (T*)d);
            });
          }
        });
      };
    }
    return [batch, bst, base, es, rows, cols, stride](const KernelArgs& k) {
      const char* x = static_cast<const char*>(k.in[0]->data);
      char* o = static_cast<char*>(k.out[0]->data);
      auto one = [&](int64_t i, int64_t off) {
        const char* src = x + off * es;
        char* dst = o + i * rows * cols * es;
        if (es == 4 && cols > 4) {
          // Chunks of the longer side in parallel, each through the vector 16 x 16 transposes.
          const float* in = (const float*)src;
          float* out = (float*)dst;
          if (rows >= cols)
            for_rows(*k.ctx, rows, cols, [&](int64_t i0, int64_t i1) {
              transpose_f32(cols, i1 - i0, in + i0, stride, out + i0 * cols, cols);
            });
          else
            for_rows(*k.ctx, cols, rows, [&](int64_t j0, int64_t j1) {
              transpose_f32(j1 - j0, rows, in + j0 * stride, stride, out + j0, cols);
            });
          return;
        }
        // Rows in parallel chunks: an image's few channels interleaved at a model's input
        // are a few hundred thousand rows.
        for_rows(*k.ctx, rows, cols, [&](int64_t i0, int64_t i1) {
          const char* s = src + i0 * es;
          char* d = dst + i0 * cols * es;
          with_bits_of_size(es, [&](auto bits) {
            using T = decltype(bits);
            transpose_block((const T*)s, stride, i1 - i0, cols, (T*)d);
          });
        });
      };
      if (batch.empty())
        one(0, base);
      else
        walk_strided(batch, bst, base, one);
    };
  }
  if (!outer.empty() && st.back() == 1) {
    inner = outer.back();
    outer.pop_back();
    st.pop_back();
  }
  if (inner * (int64_t)es <= kShortRunBytes && moves_as_bits(es)) {
    return [outer, st, base, es, inner](const KernelArgs& k) {
      with_bits_of_size(es, [&](auto bits) { copy_short_runs<decltype(bits)>(outer, st, base, inner, k); });
    };
  }
  return [outer, st, base, es, inner](const KernelArgs& k) {
    const char* x = static_cast<const char*>(k.in[0]->data);
    char* o = static_cast<char*>(k.out[0]->data);
    size_t run = (size_t)inner * es;
    walk_strided(outer, st, base, [&](int64_t i, int64_t off) { std::memcpy(o + i * run, x + off * es, run); });
  };
}

// ---- Transpose -------------------------------------------------------------

std::vector<int64_t> transpose_order(const Node& n, const TensorView* v, int64_t rank) {
  std::vector<int64_t> order;
  if (v) order = read_int_tensor(n, *v, "the order input");
  if (order.empty())
    for (int64_t i = rank - 1; i >= 0; --i) order.push_back(i);
  if ((int64_t)order.size() != rank)
    throw InputError(n.describe() + ": order has " + std::to_string(order.size()) + " entries for rank " +
                     std::to_string(rank));
  std::vector<bool> seen(rank, false);
  for (auto& o : order) {
    o = normalize_axis(n, o, rank);
    if (seen[o]) throw InputError(n.describe() + ": order " + dims_str(order) + " is not a permutation");
    seen[o] = true;
  }
  return order;
}

std::vector<PortInfo> infer_transpose(const InferContext& c) {
  const PortInfo& x = c.in[0];
  if (!x.shape.rank_known) return {PortInfo{x.type, PartialShape::dynamic_rank()}};
  if (!c.in_value[1]) {
    if (c.in[1].shape.is_static() && numel(c.in[1].shape.dims) == 0) {
      Dims rev(x.shape.dims.rbegin(), x.shape.dims.rend());
      return {PortInfo{x.type, PartialShape(rev)}};
    }
    return {PortInfo{x.type, PartialShape(Dims(x.shape.dims.size(), kDynamic))}};
  }
  auto order = transpose_order(c.node, c.in_value[1], x.shape.rank());
  Dims out;
  for (auto o : order) out.push_back(x.shape.dims[o]);
  return {PortInfo{x.type, PartialShape(out)}};
}

KernelFn prepare_transpose(const PrepareContext& ctx) {
  const Dims& in = ctx.in[0].shape;
  auto order = transpose_order(ctx.node, ctx.in[1].data ? &ctx.in[1] : nullptr, (int64_t)in.size());
  auto src = row_strides(in);
  std::vector<int64_t> st;
  for (auto o : order) st.push_back(src[o]);
  return strided_copy(ctx.out[0].shape, st, 0, element_bytes(ctx.node, ctx.in[0].type));
}

// ---- Gather(data, indices, axis) ---------------------------------------------

bool is_index_type(ElementType t);

std::vector<PortInfo> infer_gather(const InferContext& c) {
  const PortInfo& x = c.in[0];
  const PortInfo& idx = c.in[1];
  if (!c.in_value[2]) throw InputError(c.node.describe() + ": the axis input must be a constant");
  int64_t batch_dims = c.node.attr_int("batch_dims");
  if (batch_dims != 0) throw NotSupported(c.node.describe() + ": batch_dims != 0");
  if (idx.type != ElementType::dynamic && !is_index_type(idx.type))
    throw InputError(c.node.describe() + ": indices must be an integer tensor, got " + type_name(idx.type));
  if (!x.shape.rank_known || !idx.shape.rank_known) return {PortInfo{x.type, PartialShape::dynamic_rank()}};
  int64_t axis = normalize_axis(c.node, read_int_tensor(c.node, *c.in_value[2], "axis").at(0), x.shape.rank());
  Dims out(x.shape.dims.begin(), x.shape.dims.begin() + axis);
  out.insert(out.end(), idx.shape.dims.begin(), idx.shape.dims.end());
  out.insert(out.end(), x.shape.dims.begin() + axis + 1, x.shape.dims.end());
  return {PortInfo{x.type, PartialShape(out)}};
}

bool is_index_type(ElementType t) {
  return dispatch_integer_type(t, [](auto) { return true; }, [] { return false; });
}

KernelFn prepare_gather(const PrepareContext& ctx) {
  const Dims& in = ctx.in[0].shape;
  int64_t axis = normalize_axis(ctx.node, read_int_tensor(ctx.node, ctx.in[2], "axis").at(0), (int64_t)in.size());
  const AroundAxis around = around_axis(in, axis);
  const int64_t outer = around.outer, dim = around.len, inner = around.inner;
  int64_t count = ctx.in[1].count();
  size_t es = element_bytes(ctx.node, ctx.in[0].type);
  ElementType it = ctx.in[1].type;
  std::string who = ctx.node.describe();
  // Indices are read in their own width: an i8 index list is not an i32 one.
  const auto gather_kernel = [&](auto tag) -> KernelFn {
    using I = decltype(tag);
    return [outer, inner, dim, count, es, who](const KernelArgs& k) {
      const char* x = static_cast<const char*>(k.in[0]->data);
      char* o = static_cast<char*>(k.out[0]->data);
      const I* indices = k.in[1]->as<I>();
      size_t run = (size_t)inner * es;
      for (int64_t j = 0; j < count; ++j) {
        const I raw = indices[j];
        // Unsigned indices are never negative (a u64 above INT64_MAX must not wrap to one).
        const bool too_big = std::is_unsigned<I>::value && (uint64_t)raw >= (uint64_t)dim;
        int64_t i = (int64_t)raw;
        if (i < 0) i += dim;
        if (too_big || i < 0 || i >= dim)
          throw InputError(who + ": index " + std::to_string(raw) + " is out of range for a dimension of " +
                           std::to_string(dim));
        for (int64_t r = 0; r < outer; ++r) std::memcpy(o + (r * count + j) * run, x + (r * dim + i) * run, run);
      }
    };
  };
  const auto not_integer = [&]() -> KernelFn {
    throw InputError(who + ": indices must be an integer tensor, got " + type_name(it));
  };
  return dispatch_integer_type(it, gather_kernel, not_integer);
}

// ---- Slice(data, start, stop, step[, axes]) with ONNX clamping -------------------

struct SliceSpec {
  std::vector<int64_t> begin, step;
  Dims out;
};

SliceSpec slice_spec(const Node& n, const Dims& in, const std::vector<const TensorView*>& v) {
  auto starts = read_int_tensor(n, *v[0], "start"), stops = read_int_tensor(n, *v[1], "stop"),
       steps = read_int_tensor(n, *v[2], "step");
  std::vector<int64_t> axes;
  if (v.size() > 3 && v[3])
    axes = read_int_tensor(n, *v[3], "axes");
  else
    for (size_t i = 0; i < starts.size(); ++i) axes.push_back((int64_t)i);
  if (stops.size() != starts.size() || steps.size() != starts.size() || axes.size() != starts.size())
    throw InputError(n.describe() + ": start, stop, step and axes must have the same length");
  SliceSpec s;
  s.begin.assign(in.size(), 0);
  s.step.assign(in.size(), 1);
  s.out = in;
  for (size_t i = 0; i < axes.size(); ++i) {
    int64_t a = normalize_axis(n, axes[i], (int64_t)in.size()), d = in[a], st = steps[i];
    if (st == 0) throw InputError(n.describe() + ": step must not be zero");
    int64_t b = starts[i], e = stops[i];
    if (b < 0) b += d;
    if (e < 0 && e > std::numeric_limits<int64_t>::min() / 2) e += d;
    if (st > 0) {
      b = std::clamp<int64_t>(b, 0, d);
      e = std::clamp<int64_t>(e, 0, d);
      s.out[a] = e > b ? (e - b - 1) / st + 1 : 0;  // not (e - b + st - 1): st may be near INT64_MAX
    } else {
      b = std::clamp<int64_t>(b, 0, d - 1);
      e = std::clamp<int64_t>(e, -1, d - 1);
      if (st == std::numeric_limits<int64_t>::min()) st = -d - 1;  // same slice; -st must not overflow
      s.out[a] = b > e ? (b - e - 1) / (-st) + 1 : 0;
    }
    s.begin[a] = b;
    // With at most one element taken the step does not matter; a huge one would overflow
    // the stride it is multiplied into.
    s.step[a] = s.out[a] > 1 ? st : 1;
  }
  return s;
}

std::vector<PortInfo> infer_slice(const InferContext& c) {
  const PortInfo& x = c.in[0];
  bool known = c.in_value[1] && c.in_value[2] && c.in_value[3] && (c.in.size() < 5 || c.in_value[4]);
  if (!x.shape.rank_known) return {PortInfo{x.type, PartialShape::dynamic_rank()}};
  if (!known) return {PortInfo{x.type, PartialShape(Dims(x.shape.dims.size(), kDynamic))}};
  // Known bounds: every dim whose input size is known gets its size now (a dynamic batch
  // does not hide the size of a sliced channel axis); the others wait for the plan.
  Dims sizes = x.shape.dims;
  for (auto& d : sizes) d = d < 0 ? 1 : d;  // a stand-in size, overwritten below
  std::vector<const TensorView*> v(c.in_value.begin() + 1, c.in_value.end());
  Dims out = slice_spec(c.node, sizes, v).out;
  for (size_t i = 0; i < out.size(); ++i)
    if (x.shape.dims[i] < 0) out[i] = kDynamic;
  return {PortInfo{x.type, PartialShape(out)}};
}

// The bounds operands (inputs 1 on) of a slice, which must be constants.
std::vector<const TensorView*> slice_bounds(const PrepareContext& ctx) {
  std::vector<const TensorView*> v;
  for (size_t i = 1; i < ctx.in.size(); ++i) {
    if (!ctx.in[i].data) throw NotSupported(ctx.node.describe() + ": slice bounds must be known at compile time");
    v.push_back(&ctx.in[i]);
  }
  return v;
}

// Copies the region of input 0 that s selects, in input 0's dimensions.
KernelFn copy_slice(const PrepareContext& ctx, const SliceSpec& s) {
  const Dims& in = ctx.in[0].shape;
  auto src = row_strides(in);
  int64_t base = 0;
  std::vector<int64_t> st(in.size());
  for (size_t d = 0; d < in.size(); ++d) {
    base += s.begin[d] * src[d];
    st[d] = s.step[d] * src[d];
  }
  return strided_copy(s.out, st, base, element_bytes(ctx.node, ctx.in[0].type));
}

KernelFn prepare_slice(const PrepareContext& ctx) {
  return copy_slice(ctx, slice_spec(ctx.node, ctx.in[0].shape, slice_bounds(ctx)));
}

// ---- StridedSlice(data, begin, end[, stride]) with OpenVINO's masks ----------------
// Each entry of begin/end/stride addresses one input dimension, except where new_axis_mask
// inserts a 1-sized output dimension and where ellipsis_mask stands for every dimension the
// other entries leave out. A mask bit of 1 ignores begin (begin_mask) or end (end_mask);
// shrink_axis_mask takes the single element at begin and drops the dimension. The copy walks
// one (begin, step, size) per input dimension; the masks only reshape the result.

struct StridedSpec {
  SliceSpec slice;            // per input dimension
  std::vector<int64_t> from;  // per output dimension: the input dimension it comes from, -1 if inserted
};

bool mask_bit(const std::vector<int64_t>& mask, size_t i) { return i < mask.size() && mask[i] != 0; }

StridedSpec strided_spec(const Node& n, const Dims& in, const std::vector<const TensorView*>& v) {
  auto begin = read_int_tensor(n, *v[0], "begin"), end = read_int_tensor(n, *v[1], "end");
  std::vector<int64_t> stride =
      v.size() > 2 && v[2] ? read_int_tensor(n, *v[2], "stride") : std::vector<int64_t>(begin.size(), 1);
  if (end.size() != begin.size() || stride.size() != begin.size())
    throw InputError(n.describe() + ": begin, end and stride must have the same length");
  auto bm = n.attr_ints("begin_mask"), em = n.attr_ints("end_mask"), nm = n.attr_ints("new_axis_mask"),
       sm = n.attr_ints("shrink_axis_mask"), elm = n.attr_ints("ellipsis_mask");
  const int64_t rank = (int64_t)in.size();
  int64_t consuming = 0;  // entries that address an input dimension
  bool ellipsis_seen = false;
  for (size_t i = 0; i < begin.size(); ++i) {
    if (mask_bit(elm, i)) {
      if (ellipsis_seen) throw InputError(n.describe() + ": more than one ellipsis");
      ellipsis_seen = true;
    } else if (!mask_bit(nm, i)) {
      ++consuming;
    }
  }
  if (consuming > rank)
    throw InputError(n.describe() + ": " + std::to_string(consuming) + " slice entries for rank " +
                     std::to_string(rank));
  StridedSpec s;
  s.slice.begin.assign(in.size(), 0);
  s.slice.step.assign(in.size(), 1);
  s.slice.out = in;
  int64_t d = 0;
  auto keep = [&](int64_t dim) { s.from.push_back(dim); };
  for (size_t i = 0; i < begin.size(); ++i) {
    if (mask_bit(elm, i)) {
      for (int64_t k = 0; k < rank - consuming; ++k) keep(d++);
      continue;
    }
    if (mask_bit(nm, i)) {
      s.from.push_back(-1);
      continue;
    }
    const int64_t size = in[d], st = stride[i];
    if (st == 0) throw InputError(n.describe() + ": stride must not be zero");
    if (mask_bit(sm, i)) {
      int64_t b = begin[i] < 0 ? begin[i] + size : begin[i];
      if (b < 0 || b >= size)
        throw InputError(n.describe() + ": shrink index " + std::to_string(begin[i]) + " is outside dimension " +
                         std::to_string(d) + " of size " + std::to_string(size));
      s.slice.begin[d] = b;
      s.slice.out[d] = 1;
      ++d;
      continue;
    }
    int64_t b = begin[i], e = end[i], out;
    if (b < 0) b += size;
    if (e < 0) e += size;
    if (st > 0) {
      b = mask_bit(bm, i) ? 0 : std::clamp<int64_t>(b, 0, size);
      e = mask_bit(em, i) ? size : std::clamp<int64_t>(e, 0, size);
      out = e > b ? (e - b - 1) / st + 1 : 0;
    } else {
      b = mask_bit(bm, i) ? size - 1 : std::clamp<int64_t>(b, -1, size - 1);
      e = mask_bit(em, i) ? -1 : std::clamp<int64_t>(e, -1, size - 1);
      out = b > e ? (b - e - 1) / (st == std::numeric_limits<int64_t>::min() ? size + 1 : -st) + 1 : 0;
    }
    s.slice.begin[d] = out > 0 ? b : 0;
    s.slice.step[d] = out > 1 ? st : 1;
    s.slice.out[d] = out;
    keep(d++);
  }
  while (d < rank) keep(d++);
  return s;
}

int64_t strided_rank(const Node& n, int64_t in_rank, size_t entries) {
  // new axes add dimensions, shrunk ones remove them; the ellipsis only stands for others
  auto nm = n.attr_ints("new_axis_mask"), sm = n.attr_ints("shrink_axis_mask"), elm = n.attr_ints("ellipsis_mask");
  int64_t rank = in_rank;
  for (size_t i = 0; i < entries; ++i)
    if (!mask_bit(elm, i)) rank += mask_bit(nm, i) ? 1 : mask_bit(sm, i) ? -1 : 0;
  return rank;
}

std::vector<PortInfo> infer_strided_slice(const InferContext& c) {
  const PortInfo& x = c.in[0];
  if (!x.shape.rank_known) return {PortInfo{x.type, PartialShape::dynamic_rank()}};
  bool known = c.in_value[1] && c.in_value[2] && (c.in.size() < 4 || c.in_value[3]);
  if (!known) {
    // the entries (begin's length) decide which mask bits count; unknown, the rank is too
    const PartialShape& b = c.in[1].shape;
    if (!b.is_static() || b.rank() != 1) return {PortInfo{x.type, PartialShape::dynamic_rank()}};
    int64_t rank = strided_rank(c.node, x.shape.rank(), (size_t)b.dims[0]);
    if (rank < 0) throw InputError(c.node.describe() + ": the masks remove more dimensions than there are");
    return {PortInfo{x.type, PartialShape(unknown_dims(rank, c.node.describe()))}};
  }
  Dims sizes = x.shape.dims;
  for (auto& d : sizes) d = d < 0 ? 1 : d;  // a stand-in size; the dimension stays dynamic below
  std::vector<const TensorView*> v(c.in_value.begin() + 1, c.in_value.end());
  StridedSpec s = strided_spec(c.node, sizes, v);
  Dims out;
  for (int64_t from : s.from) out.push_back(from < 0 ? 1 : x.shape.dims[from] < 0 ? kDynamic : s.slice.out[from]);
  return {PortInfo{x.type, PartialShape(out)}};
}

KernelFn prepare_strided_slice(const PrepareContext& ctx) {
  // The masks only reshape the result: the data copied is the per-dimension slice.
  return copy_slice(ctx, strided_spec(ctx.node, ctx.in[0].shape, slice_bounds(ctx)).slice);
}

// ---- Split / VariadicSplit -------------------------------------------------------

std::vector<int64_t> split_lengths(const InferContext& c, int64_t dim) {
  if (c.node.op == "Split") {
    int64_t n = c.node.attr_int("num_splits");
    if (n <= 0 || n > kMaxNodeOutputs)
      throw InputError(c.node.describe() + ": num_splits must be in [1, " + std::to_string(kMaxNodeOutputs) +
                       "], got " + std::to_string(n));
    if (dim >= 0 && dim % n)
      throw InputError(c.node.describe() + ": dimension " + std::to_string(dim) + " does not split into " +
                       std::to_string(n));
    return std::vector<int64_t>((size_t)n, dim < 0 ? kDynamic : dim / n);
  }
  if (!c.in_value[2]) {
    // Lengths come at run time (the plan is keyed by them): only their count is known here.
    const PartialShape& ls = c.in[2].shape;
    if (!ls.is_static() || ls.rank() != 1)
      throw InputError(c.node.describe() + ": split_lengths must be a constant or a 1-D input of static length");
    if (ls.dims[0] > kMaxNodeOutputs)
      throw InputError(c.node.describe() + ": split_lengths has " + std::to_string(ls.dims[0]) +
                       " entries, more than the " + std::to_string(kMaxNodeOutputs) + " outputs a node may have");
    return std::vector<int64_t>((size_t)ls.dims[0], kDynamic);
  }
  auto lens = read_int_tensor(c.node, *c.in_value[2], "split_lengths");
  int64_t fill = -1, sum = 0;
  for (size_t i = 0; i < lens.size(); ++i) {
    if (lens[i] == -1) {
      if (fill >= 0) throw InputError(c.node.describe() + ": more than one -1 length");
      fill = (int64_t)i;
    } else if (lens[i] < 0)
      throw InputError(c.node.describe() + ": split length " + std::to_string(lens[i]) + " is negative");
    else
      sum = checked_add(sum, lens[i], c.node.describe() + ": split lengths");
  }
  if (fill >= 0)
    lens[fill] = dim < 0 ? kDynamic : dim - sum;
  else if (dim >= 0 && sum != dim)
    throw InputError(c.node.describe() + ": lengths " + dims_str(lens) + " do not add up to " + std::to_string(dim));
  return lens;
}

std::vector<PortInfo> infer_split(const InferContext& c) {
  const PortInfo& x = c.in[0];
  if (!c.in_value[1]) throw InputError(c.node.describe() + ": the axis must be a constant");
  if (!x.shape.rank_known)  // the plan decides the rank: only the number of outputs is known here
    return std::vector<PortInfo>(split_lengths(c, kDynamic).size(), PortInfo{x.type, PartialShape::dynamic_rank()});
  int64_t axis = normalize_axis(c.node, read_int_tensor(c.node, *c.in_value[1], "axis").at(0), x.shape.rank());
  std::vector<PortInfo> outs;
  for (auto len : split_lengths(c, x.shape.dims[axis])) {
    Dims d = x.shape.dims;
    d[axis] = len;
    outs.push_back(PortInfo{x.type, PartialShape(d)});
  }
  return outs;
}

KernelFn prepare_split(const PrepareContext& ctx) {
  const Dims& in = ctx.in[0].shape;
  int64_t axis = normalize_axis(ctx.node, read_int_tensor(ctx.node, ctx.in[1], "axis").at(0), (int64_t)in.size());
  const AroundAxis around = around_axis(in, axis);
  const int64_t outer = around.outer, inner = around.inner;
  size_t es = element_bytes(ctx.node, ctx.in[0].type);
  std::vector<size_t> chunk;
  for (auto& o : ctx.out) chunk.push_back((size_t)(o.shape[axis] * inner) * es);
  size_t row = (size_t)(in[axis] * inner) * es;
  return [outer, chunk, row](const KernelArgs& k) {
    const char* x = static_cast<const char*>(k.in[0]->data);
    for (int64_t r = 0; r < outer; ++r) {
      size_t pos = 0;
      for (size_t i = 0; i < chunk.size(); ++i) {
        if (chunk[i]) std::memcpy(static_cast<char*>(k.out[i]->data) + r * chunk[i], x + r * row + pos, chunk[i]);
        pos += chunk[i];
      }
    }
  };
}

// ---- Tile(data, repeats) ----------------------------------------------------------

std::vector<PortInfo> infer_tile(const InferContext& c) {
  const PortInfo& x = c.in[0];
  if (!c.in_value[1] || !x.shape.rank_known) return {PortInfo{x.type, PartialShape::dynamic_rank()}};
  auto reps = read_int_tensor(c.node, *c.in_value[1], "repeats");
  Dims d = x.shape.dims;
  while (d.size() < reps.size()) d.insert(d.begin(), 1);
  while (reps.size() < d.size()) reps.insert(reps.begin(), 1);
  for (size_t i = 0; i < d.size(); ++i) {
    if (reps[i] < 0) throw InputError(c.node.describe() + ": repeats must be >= 0");
    d[i] = d[i] < 0 ? kDynamic : checked_mul(d[i], reps[i], c.node.describe() + ": repeated dimension");
  }
  return {PortInfo{x.type, PartialShape(d)}};
}

// Writes the tiled block of dims [d, rank) for the input block at x: the input's slices of
// dim d, each tiled itself, then that whole block repeated out[d] / in[d] times. Every copy is
// a memcpy of a contiguous block (one per element and a modulo per dim and element took 2 ms
// for 4 MB, 12x OpenVINO).
void tile_block(const Dims& in, const Dims& out, const std::vector<int64_t>& in_bytes,
                const std::vector<int64_t>& out_bytes, size_t d, const char* x, char* o) {
  const int64_t slice_in = in_bytes[d + 1], slice_out = out_bytes[d + 1];
  if (d + 1 == in.size())
    std::memcpy(o, x, (size_t)(in[d] * slice_out));
  else
    for (int64_t i = 0; i < in[d]; ++i)
      tile_block(in, out, in_bytes, out_bytes, d + 1, x + i * slice_in, o + i * slice_out);
  const int64_t block = in[d] * slice_out;
  for (int64_t r = 1; r < out[d] / in[d]; ++r) std::memcpy(o + r * block, o, (size_t)block);
}

KernelFn prepare_tile(const PrepareContext& ctx) {
  Dims in = ctx.in[0].shape, out = ctx.out[0].shape;
  while (in.size() < out.size()) in.insert(in.begin(), 1);
  const int64_t es = (int64_t)element_bytes(ctx.node, ctx.in[0].type);
  // Bytes of one slice of dims [d, rank), in the input and in the output.
  std::vector<int64_t> in_bytes(in.size() + 1, es), out_bytes(out.size() + 1, es);
  for (int d = (int)in.size() - 1; d >= 0; --d) {
    in_bytes[d] = in_bytes[d + 1] * in[d];
    out_bytes[d] = out_bytes[d + 1] * out[d];
  }
  const bool empty = numel(out) == 0 || numel(in) == 0;
  return [in, out, in_bytes, out_bytes, empty](const KernelArgs& k) {
    if (empty) return;
    const char* x = static_cast<const char*>(k.in[0]->data);
    char* o = static_cast<char*>(k.out[0]->data);
    if (in.empty()) {
      std::memcpy(o, x, (size_t)in_bytes[0]);
      return;
    }
    tile_block(in, out, in_bytes, out_bytes, 0, x, o);
  };
}

// ---- Pad(data, pads_begin, pads_end[, value]) ---------------------------------------

std::vector<PortInfo> infer_pad(const InferContext& c) {
  const PortInfo& x = c.in[0];
  if (!x.shape.rank_known) return {PortInfo{x.type, PartialShape::dynamic_rank()}};
  // Pads computed at run time keep the rank: only the padded sizes wait for the plan.
  if (!c.in_value[1] || !c.in_value[2]) return {PortInfo{x.type, PartialShape(Dims(x.shape.dims.size(), kDynamic))}};
  auto b = read_int_tensor(c.node, *c.in_value[1], "pads_begin"),
       e = read_int_tensor(c.node, *c.in_value[2], "pads_end");
  if ((int64_t)b.size() != x.shape.rank() || (int64_t)e.size() != x.shape.rank())
    throw InputError(c.node.describe() + ": pads need one entry per dimension of " + x.shape.str());
  std::string mode = c.node.attr_str("pad_mode");
  if (mode != "constant" && mode != "edge" && mode != "reflect" && mode != "wrap")
    throw NotSupported(c.node.describe() + ": pad_mode '" + mode + "'");
  Dims d = x.shape.dims;
  for (size_t i = 0; i < d.size(); ++i) {
    if (d[i] < 0) continue;
    const std::string what = c.node.describe() + ": padded dimension";
    d[i] = checked_add(d[i], checked_add(b[i], e[i], what), what);
    if (d[i] < 0) throw InputError(c.node.describe() + ": negative output dimension");
  }
  return {PortInfo{x.type, PartialShape(d)}};
}

enum class PadMode { constant, edge, reflect, wrap };

PadMode pad_mode_of(const Node& n) {
  const std::string m = n.attr_str("pad_mode");
  if (m == "edge") return PadMode::edge;
  if (m == "reflect") return PadMode::reflect;
  if (m == "wrap") return PadMode::wrap;
  return PadMode::constant;
}

// The input coordinate output coordinate `o` of an axis reads, or -1 for the fill value.
int64_t pad_source(PadMode mode, int64_t o, int64_t before, int64_t n) {
  int64_t j = o - before;
  if (j >= 0 && j < n) return j;
  if (mode == PadMode::constant || n == 0) return -1;
  if (mode == PadMode::edge) return j < 0 ? 0 : n - 1;
  if (mode == PadMode::wrap) return ((j % n) + n) % n;  // ONNX: the other end of the axis, periodically
  const int64_t period = 2 * (n - 1);                   // reflect
  if (period == 0) return 0;
  j = ((j % period) + period) % period;
  return j >= n ? period - j : j;
}

// `count` copies of the `es`-byte value `fill`, by doubling the filled prefix.
void fill_run(char* o, int64_t count, const char* fill, size_t es, bool zero) {
  const size_t total = (size_t)count * es;
  if (total == 0) return;
  if (zero) {
    std::memset(o, 0, total);
    return;
  }
  std::memcpy(o, fill, es);
  for (size_t done = es; done < total;) {
    const size_t n = std::min(done, total - done);
    std::memcpy(o + done, o, n);
    done += n;
  }
}

// Row by row along the last axis: the input's part of a row is one memcpy, the padding a
// fill (constant) or a few mapped elements (edge, reflect, wrap); a row outside the input
// in an outer constant-padded axis is all fill.
KernelFn prepare_pad(const PrepareContext& ctx) {
  Dims in = ctx.in[0].shape;
  Dims out = ctx.out[0].shape;
  auto b = read_int_tensor(ctx.node, ctx.in[1], "pads_begin");
  if (in.empty()) {  // a scalar pads to itself: a row of one element
    in = out = {1};
    b = {0};
  }
  const PadMode mode = pad_mode_of(ctx.node);
  const size_t es = element_bytes(ctx.node, ctx.in[0].type);
  const auto src = row_strides(in);
  const bool has_value = ctx.in.size() > 3;
  const int64_t row_len = out.back(), rows = row_len == 0 ? 0 : numel(out) / row_len;
  const int64_t in_len = in.back(), before = b.back();
  // The output columns that copy input columns as one run.
  const int64_t lo = std::clamp<int64_t>(before, 0, row_len), hi = std::clamp<int64_t>(before + in_len, lo, row_len);
  return [in, out, b, mode, es, src, has_value, row_len, rows, in_len, before, lo, hi](const KernelArgs& k) {
    const char* x = static_cast<const char*>(k.in[0]->data);
    char* o = static_cast<char*>(k.out[0]->data);
    std::vector<char> fill(es, 0);
    if (has_value) std::memcpy(fill.data(), k.in[3]->data, es);
    const bool zero = std::all_of(fill.begin(), fill.end(), [](char c) { return c == 0; });
    const size_t r = out.size();
    for_rows(*k.ctx, rows, row_len, [&](int64_t r0, int64_t r1) {
      for (int64_t row = r0; row < r1; ++row) {
        char* dst = o + row * row_len * es;
        int64_t off = 0, rest = row;
        bool inside = true;
        for (size_t d = r - 1; d-- > 0;) {
          const int64_t s = pad_source(mode, rest % out[d], b[d], in[d]);
          rest /= out[d];
          if (s < 0) {
            inside = false;
            break;
          }
          off += s * src[d];
        }
        if (!inside) {
          fill_run(dst, row_len, fill.data(), es, zero);
          continue;
        }
        const char* row_in = x + off * es;
        if (hi > lo) std::memcpy(dst + lo * es, row_in + (lo - before) * es, (size_t)(hi - lo) * es);
        if (mode == PadMode::constant) {
          fill_run(dst, lo, fill.data(), es, zero);
          fill_run(dst + hi * es, row_len - hi, fill.data(), es, zero);
          continue;
        }
        auto edge = [&](int64_t c) {
          const int64_t s = pad_source(mode, c, before, in_len);
          std::memcpy(dst + c * es, s < 0 ? fill.data() : row_in + s * es, es);
        };
        for (int64_t c = 0; c < lo; ++c) edge(c);
        for (int64_t c = hi; c < row_len; ++c) edge(c);
      }
    });
  };
}

}  // namespace

void register_indexing_ops(OpRegistry& r) {
  r.add(
      with_value_inputs(OpDef{"Transpose", 2, 2, infer_transpose, prepare_transpose}.ir({"Transpose"}, "opset1"), {1}));
  r.add(with_value_inputs(OpDef{"Gather", 3, 3, infer_gather, prepare_gather}
                              .with_attrs({int_attr("batch_dims", 0)})
                              .ir({"Gather"}, "opset8"),
                          {2}));
  r.add(with_value_inputs(OpDef{"Slice", 4, 5, infer_slice, prepare_slice}.ir({"Slice"}, "opset8"), {1, 2, 3, 4}));
  r.add(with_value_inputs(OpDef{"StridedSlice", 3, 4, infer_strided_slice, prepare_strided_slice}
                              .with_attrs({ints_attr("begin_mask"), ints_attr("end_mask"), ints_attr("new_axis_mask"),
                                           ints_attr("shrink_axis_mask"), ints_attr("ellipsis_mask")})
                              .ir({"StridedSlice"}, "opset1"),
                          {1, 2, 3}));
  r.add(with_value_inputs(OpDef{"Split", 2, 2, infer_split, prepare_split}
                              .with_attrs({int_attr("num_splits", 0).must_be_given().at_least(1)})
                              .ir({"Split"}, "opset1"),
                          {1}));
  r.add(with_value_inputs(OpDef{"VariadicSplit", 3, 3, infer_split, prepare_split}.ir({"VariadicSplit"}, "opset1"),
                          {1, 2}));
  r.add(with_value_inputs(OpDef{"Tile", 2, 2, infer_tile, prepare_tile}.ir({"Tile"}, "opset1"), {1}));
  r.add(with_value_inputs(
      OpDef{"Pad", 3, 4, infer_pad, prepare_pad}.with_attrs({str_attr("pad_mode", "constant")}).ir({"Pad"}, "opset1"),
      {1, 2}));
}

}  // namespace aiov
