// Data movement: Reshape (an alias), Concat, Convert.
#include <algorithm>
#include <cstring>
#include <limits>
#include <type_traits>

#include "executor/executor.hpp"
#include "kernels/lowbit.hpp"
#include "kernels/strided_walk.hpp"
#include "kernels/dispatch.hpp"
#include "plan/registry.hpp"

namespace aiov {
namespace {

// Reads an integer tensor known at compile time (shape or axes operands).
std::vector<int64_t> read_ints(const Node& n, const TensorView& t, const char* what) {
  std::vector<int64_t> out((size_t)t.count());
  dispatch_integer_type(
      t.type,
      [&](auto tag) {
        using I = decltype(tag);
        for (size_t i = 0; i < out.size(); ++i) out[i] = (int64_t)t.as<I>()[i];
      },
      [&] { throw InputError(n.describe() + ": " + what + " must be an integer tensor, got " + type_name(t.type)); });
  return out;
}

// ---- Reshape ---------------------------------------------------------------

std::vector<PortInfo> infer_reshape(const InferContext& c) {
  const PortInfo& data = c.in[0];
  const PortInfo& target = c.in[1];
  if (target.shape.rank_known && target.shape.rank() > 1)
    throw InputError(c.node.describe() + ": the shape input must be 1-D, got " + target.shape.str());
  bool special_zero = c.node.attr_int("special_zero") != 0;
  if (!c.in_value[1]) {
    // Shape computed at run time: only the rank is known.
    if (target.shape.rank_known && target.shape.rank() == 1 && target.shape.dims[0] >= 0)
      return {PortInfo{data.type,
                       PartialShape(unknown_dims(target.shape.dims[0], c.node.describe() + ": the shape input"))}};
    return {PortInfo{data.type, PartialShape::dynamic_rank()}};
  }
  std::vector<int64_t> want = read_ints(c.node, *c.in_value[1], "the shape input");
  Dims out(want.size());
  int infer_at = -1;
  for (size_t i = 0; i < want.size(); ++i) {
    int64_t w = want[i];
    if (w == -1) {
      if (infer_at >= 0) throw InputError(c.node.describe() + ": more than one -1 in target shape " + dims_str(want));
      infer_at = (int)i;
      out[i] = kDynamic;
    } else if (w == 0 && special_zero) {
      if (!data.shape.rank_known) {
        out[i] = kDynamic;
        continue;
      }
      if ((int64_t)i >= data.shape.rank())
        throw InputError(c.node.describe() + ": special_zero copies dimension " + std::to_string(i) +
                         " but the input " + data.shape.str() + " has rank " + std::to_string(data.shape.rank()));
      out[i] = data.shape.dims[i];
    } else if (w < 0) {
      throw InputError(c.node.describe() + ": invalid dimension " + std::to_string(w) + " in target shape " +
                       dims_str(want));
    } else {
      out[i] = w;
    }
  }
  if (data.shape.is_static()) {
    int64_t total = numel(data.shape.dims);
    int64_t known = 1;
    bool all_known = true;
    for (size_t i = 0; i < out.size(); ++i) {
      if ((int)i == infer_at) continue;
      if (out[i] < 0)
        all_known = false;
      else
        known = checked_mul(known, out[i], c.node.describe() + ": target shape " + dims_str(want));
    }
    if (all_known) {
      if (infer_at >= 0) {
        if (known == 0 || total % known != 0)
          throw InputError(c.node.describe() + ": cannot reshape " + data.shape.str() + " (" + std::to_string(total) +
                           " elements) to " + dims_str(want));
        out[infer_at] = total / known;
      } else if (known != total) {
        throw InputError(c.node.describe() + ": cannot reshape " + data.shape.str() + " (" + std::to_string(total) +
                         " elements) to " + dims_str(out) + " (" + std::to_string(known) + " elements)");
      }
    }
  }
  return {PortInfo{data.type, PartialShape(out)}};
}

// ---- Concat ----------------------------------------------------------------

std::vector<PortInfo> infer_concat(const InferContext& c) {
  ElementType t = ElementType::dynamic;
  int64_t rank = -1;
  for (auto& in : c.in) {
    if (t == ElementType::dynamic)
      t = in.type;
    else if (in.type != ElementType::dynamic && in.type != t)
      throw InputError(c.node.describe() + ": all inputs must have the same element type, got " + type_name(t) +
                       " and " + type_name(in.type));
    if (in.shape.rank_known) {
      if (rank >= 0 && in.shape.rank() != rank)
        throw InputError(c.node.describe() + ": all inputs must have the same rank, got " + std::to_string(rank) +
                         " and " + std::to_string(in.shape.rank()));
      rank = in.shape.rank();
    }
  }
  if (rank < 0) return {PortInfo{t, PartialShape::dynamic_rank()}};
  if (rank == 0) throw InputError(c.node.describe() + ": cannot concatenate scalars");
  int64_t axis = normalize_axis(c.node, c.node.attr_int("axis"), rank);
  Dims out(rank, kDynamic);
  int64_t along = 0;
  for (auto& in : c.in) {
    if (!in.shape.rank_known) {
      along = kDynamic;
      continue;
    }
    for (int64_t d = 0; d < rank; ++d) {
      int64_t v = in.shape.dims[d];
      if (d == axis) {
        if (v < 0 || along < 0)
          along = kDynamic;
        else
          along = checked_add(along, v, c.node.describe() + ": concatenated dimension");
        continue;
      }
      if (v < 0) continue;
      if (out[d] >= 0 && out[d] != v)
        throw InputError(c.node.describe() + ": input shapes differ outside axis " + std::to_string(axis) +
                         " at dimension " + std::to_string(d) + " (" + std::to_string(out[d]) + " vs " +
                         std::to_string(v) + ")");
      out[d] = v;
    }
  }
  out[axis] = along;
  return {PortInfo{t, PartialShape(out)}};
}

// chunk and row in bytes, whole elements of T.
template <class T>
void concat_short_chunks(const KernelArgs& k, int64_t outer, const std::vector<size_t>& chunk, size_t row) {
  T* o = static_cast<T*>(k.out[0]->data);
  const int64_t row_n = (int64_t)(row / sizeof(T));
  int64_t pos = 0;
  for (size_t i = 0; i < chunk.size(); ++i) {
    const int64_t n = (int64_t)(chunk[i] / sizeof(T));
    const T* s = static_cast<const T*>(k.in[i]->data);
    T* d = o + pos;
    for (int64_t r = 0; r < outer; ++r)
      for (int64_t j = 0; j < n; ++j) d[r * row_n + j] = s[r * n + j];
    pos += n;
  }
}

KernelFn prepare_concat(const PrepareContext& ctx) {
  const Dims& os = ctx.out[0].shape;
  int64_t axis = normalize_axis(ctx.node, ctx.node.attr_int("axis"), (int64_t)os.size());
  const AroundAxis around = around_axis(os, axis);
  const int64_t outer = around.outer, inner = around.inner;
  size_t elem_bits = bit_width(ctx.out[0].type);
  if (elem_bits % 8) throw NotSupported(ctx.node.describe() + ": sub-byte element types");
  size_t esize = elem_bits / 8;
  std::vector<size_t> chunk;  // bytes per outer step per input
  for (auto& in : ctx.in) chunk.push_back((size_t)(in.shape[axis] * inner) * esize);
  size_t row = (size_t)(os[axis] * inner) * esize;
  const bool short_chunks =
      std::all_of(chunk.begin(), chunk.end(), [&](size_t c) { return c <= (size_t)kShortRunBytes; });
  if (short_chunks && outer > 1 && moves_as_bits(esize)) {
    // Chunks of a few values (a box's four coordinates from four [n, 1] tensors): a memcpy call
    // each cost 3.5 ns a value; each input's rows are copied in one loop instead.
    return [outer, chunk, row, esize](const KernelArgs& k) {
      with_bits_of_size(esize, [&](auto bits) { concat_short_chunks<decltype(bits)>(k, outer, chunk, row); });
    };
  }
  return [outer, chunk, row](const KernelArgs& k) {
    char* o = static_cast<char*>(k.out[0]->data);
    for (int64_t r = 0; r < outer; ++r) {
      size_t pos = 0;
      for (size_t i = 0; i < chunk.size(); ++i) {
        if (chunk[i]) std::memcpy(o + r * row + pos, static_cast<const char*>(k.in[i]->data) + r * chunk[i], chunk[i]);
        pos += chunk[i];
      }
    }
  };
}

// ---- Convert ---------------------------------------------------------------

template <class S, class D>
AIOV_MULTIVERSION void convert_run(const S* __restrict s, D* __restrict d, int64_t n) {
  using SC = typename ComputeOf<S>::type;
  using DC = typename ComputeOf<D>::type;
  for (int64_t i = 0; i < n; ++i) {
    SC v = load(s[i]);
    if constexpr (std::is_same<D, bool>::value) {
      d[i] = v != 0;
    } else if constexpr (std::is_floating_point<SC>::value && std::is_integral<DC>::value) {
      // Saturate then truncate: out-of-range floats would be undefined behaviour.
      double x = (double)v;
      double lo = (double)std::numeric_limits<DC>::lowest(), hi = (double)std::numeric_limits<DC>::max();
      x = x != x ? 0.0 : (x < lo ? lo : (x > hi ? hi : x));
      d[i] = store<D>((DC)x);
    } else {
      d[i] = store<D>((DC)v);
    }
  }
}

std::vector<PortInfo> infer_convert(const InferContext& c) {
  ElementType to = type_from_name(c.node.attr_str("destination_type"));
  if (to == ElementType::undefined || to == ElementType::dynamic)
    throw InputError(c.node.describe() + ": destination_type must be a concrete element type");
  return {PortInfo{to, c.in[0].shape}};
}

// Conversions from or to the narrow types (kernels/lowbit.hpp) go element by element through
// a double (integer sources through int64, so that wrapping to i4/i2 keeps the low bits).
template <class S>
KernelFn convert_to_lowbit(ElementType to, int64_t n, bool saturate, LowbitRounding rounding) {
  return [=](const KernelArgs& k) {
    const S* s = k.in[0]->as<S>();
    uint8_t* o = k.out[0]->as<uint8_t>();
    for (int64_t i = 0; i < n; ++i) {
      auto v = load(s[i]);
      uint8_t code;
      if constexpr (std::is_integral<decltype(v)>::value)
        code = lowbit_encode_int(to, (int64_t)v);
      else
        code = lowbit_encode(to, (double)v, saturate, rounding);
      lowbit_put(o, to, i, code);
    }
  };
}

template <class D>
KernelFn convert_from_lowbit(ElementType from, int64_t n) {
  using DC = typename ComputeOf<D>::type;
  return [=](const KernelArgs& k) {
    const uint8_t* p = k.in[0]->as<uint8_t>();
    D* o = k.out[0]->as<D>();
    for (int64_t i = 0; i < n; ++i) {
      double x = lowbit_decode(from, lowbit_get(p, from, i));
      if constexpr (std::is_same<D, bool>::value) {
        o[i] = x != 0;
      } else if constexpr (std::is_integral<DC>::value) {
        double lo = (double)std::numeric_limits<DC>::lowest(), hi = (double)std::numeric_limits<DC>::max();
        x = x != x ? 0.0 : (x < lo ? lo : (x > hi ? hi : x));
        o[i] = store<D>((DC)x);
      } else {
        o[i] = store<D>((DC)x);
      }
    }
  };
}

LowbitRounding rounding_of(const std::string& mode) {
  return mode == "down" ? LowbitRounding::down : mode == "nearest" ? LowbitRounding::nearest : LowbitRounding::up;
}

KernelFn prepare_convert(const PrepareContext& ctx) {
  ElementType from = ctx.in[0].type, to = ctx.out[0].type;
  int64_t n = ctx.out[0].count();
  const bool saturate = ctx.node.attr_int("saturate") != 0;
  const LowbitRounding rounding = rounding_of(ctx.node.attr_str("round_mode"));
  if (from != to && is_lowbit(from) && is_lowbit(to)) {
    return [=](const KernelArgs& k) {
      const uint8_t* p = k.in[0]->as<uint8_t>();
      uint8_t* o = k.out[0]->as<uint8_t>();
      for (int64_t i = 0; i < n; ++i) {
        double v = lowbit_decode(from, lowbit_get(p, from, i));
        uint8_t code = is_float(from) ? lowbit_encode(to, v, saturate, rounding) : lowbit_encode_int(to, (int64_t)v);
        lowbit_put(o, to, i, code);
      }
    };
  }
  if (from != to && is_lowbit(to)) {
    return dispatch_type(from, ctx.node.describe(),
                         [&](auto s) { return convert_to_lowbit<decltype(s)>(to, n, saturate, rounding); });
  }
  if (from != to && is_lowbit(from)) {
    return dispatch_type(to, ctx.node.describe(), [&](auto d) { return convert_from_lowbit<decltype(d)>(from, n); });
  }
  if (from == to) {
    size_t bytes = ctx.out[0].bytes();
    return [bytes](const KernelArgs& k) {
      if (bytes) std::memcpy(k.out[0]->data, k.in[0]->data, bytes);
    };
  }
  return dispatch_type(from, ctx.node.describe(), [&](auto s) -> KernelFn {
    using S = decltype(s);
    return dispatch_type(to, ctx.node.describe(), [&](auto d) -> KernelFn {
      using D = decltype(d);
      return [n](const KernelArgs& k) { convert_run<S, D>(k.in[0]->as<S>(), k.out[0]->as<D>(), n); };
    });
  });
}

KernelFn no_kernel(const PrepareContext&) { return KernelFn(); }

// ---- BitCast: the same bits seen as another type of the same width (the output aliases the input)

std::vector<PortInfo> infer_bitcast(const InferContext& c) {
  ElementType from = c.in[0].type, to = type_from_name(c.node.attr_str("destination_type"));
  if (from != ElementType::dynamic && bit_width(from) != bit_width(to))
    throw InputError(c.node.describe() + ": BitCast needs types of one width, got " + type_name(from) + " (" +
                     std::to_string(bit_width(from)) + " bits) to " + type_name(to) + " (" +
                     std::to_string(bit_width(to)) + " bits)");
  return {PortInfo{to, c.in[0].shape}};
}

}  // namespace

std::vector<int64_t> read_int_tensor(const Node& n, const TensorView& t, const char* what) {
  return read_ints(n, t, what);
}

void register_movement_ops(OpRegistry& r) {
  OpDef reshape = OpDef{"Reshape", 2, 2, infer_reshape, no_kernel}
                      .with_attrs({bool_attr("special_zero", false).must_be_given()})
                      .ir({"Reshape"}, "opset1");
  reshape.aliases_input0 = true;
  reshape.value_inputs = {1};
  r.add(reshape);
  r.add(
      OpDef{"Concat", 1, -1, infer_concat, prepare_concat}.with_attrs({int_attr("axis", 0)}).ir({"Concat"}, "opset1"));
  OpDef bitcast = OpDef{"BitCast", 1, 1, infer_bitcast, no_kernel}
                      .with_attrs({type_attr("destination_type", "f32").must_be_given()})
                      .ir({"aiov.BitCast"}, "aiov1")
                      .opset_builder("bitcast");
  bitcast.aliases_input0 = true;
  r.add(bitcast);
  r.add(OpDef{"Convert", 1, 1, infer_convert, prepare_convert}
            .with_attrs({type_attr("destination_type", "f32").must_be_given(),
                         // ONNX Cast's: how 8-bit floats overflow and f8e8m0 rounds
                         bool_attr("saturate", true).ir_name("-"),
                         str_attr("round_mode", "up", {"up", "down", "nearest"}).ir_name("-")})
            .blind(LayoutBlind::unary)  // (the dequantization between quantized convolutions)
            .ir({"Convert"}, "opset1"));
}

}  // namespace aiov
