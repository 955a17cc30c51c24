#include "ops/window.hpp"

#include <algorithm>
#include <string>

#include "plan/registry.hpp"

namespace aiov {
namespace {

int64_t window_out(const Node& n, int64_t in, int64_t k, int64_t s, int64_t d, int64_t pb, int64_t pe,
                   Rounding rounding) {
  // Attributes are untrusted: sizes from them are computed with overflow checks.
  const std::string what = n.describe() + ": window size";
  const int64_t padded = checked_add(in, checked_add(pb, pe, what), what);
  const int64_t extent = checked_add(checked_mul(d, k - 1, what), 1, what);
  if (padded < extent)
    throw InputError(n.describe() + ": the window (" + std::to_string(extent) + ") is larger than the padded input (" +
                     std::to_string(padded) + ")");
  const int64_t span = padded - extent;
  const bool up = rounding != Rounding::floor;
  int64_t out = (up ? span / s + (span % s != 0) : span / s) + 1;
  if (rounding == Rounding::ceil_torch && (__int128)(out - 1) * s >= (__int128)in + pb)
    --out;  // the last window must start inside the input or its begin padding
  return out;
}

}  // namespace

Rounding pool_rounding(const Node& n) {
  const std::string r = n.attr_str("rounding_type");
  return r == "ceil" ? Rounding::ceil : r == "ceil_torch" ? Rounding::ceil_torch : Rounding::floor;
}

Window make_window(const Node& n, const std::vector<int64_t>& in, const std::vector<int64_t>& kernel,
                   Rounding rounding) {
  size_t r = in.size();
  Window w;
  w.in = in;
  w.kernel = kernel;
  w.stride = spatial_ints(n, "strides", r);
  w.dilation = spatial_ints(n, "dilations", r);
  w.pad_begin = spatial_ints(n, "pads_begin", r);
  w.pad_end = spatial_ints(n, "pads_end", r);
  for (auto* v : {&w.stride, &w.dilation, &w.pad_begin, &w.pad_end, &w.kernel})
    if (v->size() != r)
      throw InputError(n.describe() + ": strides, dilations, pads and kernel need " + std::to_string(r) + " entries");
  for (size_t i = 0; i < r; ++i)
    if (w.stride[i] < 1 || w.dilation[i] < 1 || w.kernel[i] < 1)
      throw InputError(n.describe() + ": strides, dilations and kernel sizes must be >= 1");
  std::string pad = n.attr_str("auto_pad");
  for (size_t i = 0; i < r; ++i) {
    if (pad == "same_upper" || pad == "same_lower") {
      const std::string what = n.describe() + ": padding";
      int64_t out = in[i] / w.stride[i] + (in[i] % w.stride[i] != 0);
      int64_t reach = checked_add(checked_mul(out - 1, w.stride[i], what),
                                  checked_add(checked_mul(w.dilation[i], kernel[i] - 1, what), 1, what), what);
      int64_t total = std::max<int64_t>(0, reach - in[i]);
      w.pad_begin[i] = pad == "same_upper" ? total / 2 : total - total / 2;
      w.pad_end[i] = total - w.pad_begin[i];
    } else if (pad == "valid") {
      w.pad_begin[i] = w.pad_end[i] = 0;
    } else if (pad != "explicit" && pad != "notset") {
      throw InputError(n.describe() + ": unknown auto_pad '" + pad + "'");
    }
    w.out.push_back(
        window_out(n, in[i], kernel[i], w.stride[i], w.dilation[i], w.pad_begin[i], w.pad_end[i], rounding));
  }
  return w;
}

std::vector<AttrSpec> window_attrs() {
  const std::vector<std::string> layouts{"nchw", "nhwc"};
  return {spatial_attr("strides", 1).at_least(1), spatial_attr("dilations", 1).at_least(1),
          spatial_attr("pads_begin", 0), spatial_attr("pads_end", 0),
          str_attr("auto_pad", "explicit", {"explicit", "notset", "valid", "same_upper", "same_lower"}).onnx_name("-"),
          // Chosen by the optimizer, not by models.
          str_attr("layout", "nchw", layouts).ir_name("-").onnx_name("-"),
          str_attr("input_layout", "nchw", layouts).ir_name("-").onnx_name("-")};
}

namespace {
std::string group_divides_channels(const Node& n, const std::vector<PortInfo>& in, const Attr& v) {
  const int64_t* g = std::get_if<int64_t>(&v);
  if (!g || in.empty() || !in[0].shape.rank_known || in[0].shape.rank() < 3) return "";
  const Layout layout = op_def(n).attr("layout") ? input_layout_of(n) : Layout::nchw;
  const Dims d = to_channels_first(in[0].shape.dims, layout);
  if (d[1] >= 0 && *g > 0 && d[1] % *g) return "a divisor of the data's " + std::to_string(d[1]) + " channels";
  return "";
}
}  // namespace

AttrSpec group_attr() { return int_attr("group", 1).at_least(1).checked_by(group_divides_channels); }

Window to_3d(Window w) {
  while (w.in.size() < 3) {
    w.in.insert(w.in.begin(), 1);
    w.out.insert(w.out.begin(), 1);
    w.kernel.insert(w.kernel.begin(), 1);
    w.stride.insert(w.stride.begin(), 1);
    w.dilation.insert(w.dilation.begin(), 1);
    w.pad_begin.insert(w.pad_begin.begin(), 0);
    w.pad_end.insert(w.pad_end.begin(), 0);
  }
  return w;
}

namespace {
Layout parse_layout(const Node& n, const std::string& l) {
  if (l == "nchw") return Layout::nchw;
  if (l == "nhwc") return Layout::nhwc;
  throw InputError(n.describe() + ": unknown layout '" + l + "'");
}
}  // namespace

Layout layout_of(const Node& n) { return parse_layout(n, n.attr_str("layout")); }

Layout input_layout_of(const Node& n) {
  return n.has_attr("input_layout") ? parse_layout(n, n.attr_str("input_layout")) : layout_of(n);
}

Dims to_channels_first(const Dims& d, Layout layout) {
  if (layout == Layout::nchw || d.size() < 3) return d;
  Dims r{d[0], d.back()};
  r.insert(r.end(), d.begin() + 1, d.end() - 1);
  return r;
}

Dims from_channels_first(const Dims& d, Layout layout) {
  if (layout == Layout::nchw || d.size() < 3) return d;
  Dims r{d[0]};
  r.insert(r.end(), d.begin() + 2, d.end());
  r.push_back(d[1]);
  return r;
}

PartialShape conv_output_shape(const Node& n, const PartialShape& xs, const PartialShape& f) {
  if (!xs.rank_known || !f.rank_known) return PartialShape::dynamic_rank();
  const Layout layout = layout_of(n);
  const PartialShape x(to_channels_first(xs.dims, input_layout_of(n)));
  if (x.rank() != f.rank() || x.rank() < 3 || x.rank() > 5)
    throw InputError(n.describe() + ": expected NCW/NCHW/NCDHW data and filters of the same rank, got " + xs.str() +
                     " and " + f.str());
  int64_t group = n.attr_int("group");
  if (group < 1) throw InputError(n.describe() + ": group must be >= 1");
  int64_t C = x.dims[1], O = f.dims[0], Cg = f.dims[1];
  if (C >= 0 && Cg >= 0 && C != Cg * group)
    throw InputError(n.describe() + ": data has " + std::to_string(C) + " channels but filters " + f.str() +
                     " with group " + std::to_string(group) + " expect " + std::to_string(Cg * group));
  if (O >= 0 && O % group)
    throw InputError(n.describe() + ": " + std::to_string(O) + " output channels do not split into " +
                     std::to_string(group) + " groups");
  Dims out{x.dims[0], O};
  std::vector<int64_t> in(x.dims.begin() + 2, x.dims.end()), k(f.dims.begin() + 2, f.dims.end());
  bool known = std::all_of(in.begin(), in.end(), [](int64_t d) { return d >= 0; }) &&
               std::all_of(k.begin(), k.end(), [](int64_t d) { return d >= 0; });
  if (!known) {
    out.resize(x.dims.size(), kDynamic);
  } else {
    Window w = make_window(n, in, k);
    out.insert(out.end(), w.out.begin(), w.out.end());
  }
  return PartialShape(from_channels_first(out, layout));
}

PartialShape pool_output_shape(const Node& n, const PartialShape& xs) {
  if (!xs.rank_known) return PartialShape::dynamic_rank();
  const Layout layout = layout_of(n);
  const PartialShape x(to_channels_first(xs.dims, layout));
  if (x.rank() < 3 || x.rank() > 5)
    throw InputError(n.describe() + ": expected NCW, NCHW or NCDHW data, got " + xs.str());
  std::vector<int64_t> in(x.dims.begin() + 2, x.dims.end());
  Dims out{x.dims[0], x.dims[1]};
  if (std::any_of(in.begin(), in.end(), [](int64_t d) { return d < 0; })) {
    out.resize(x.dims.size(), kDynamic);
  } else {
    Window w = make_window(n, in, n.attr_ints("kernel"), pool_rounding(n));
    out.insert(out.end(), w.out.begin(), w.out.end());
  }
  return PartialShape(from_channels_first(out, layout));
}

}  // namespace aiov
