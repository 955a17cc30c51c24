#include "plan/registry.hpp"

#include <algorithm>
#include <cctype>
#include <cstring>
#include <iterator>
#include <mutex>
#include <set>
#include <sstream>
#include <map>
#include <stdexcept>

#include "executor/executor.hpp"

namespace aiov {

const OpRegistry& OpRegistry::instance() {
  static OpRegistry* registry = [] {
    auto* r = new OpRegistry();
    register_elementwise_ops(*r);
    register_matmul_ops(*r);
    register_quantized_matmul_ops(*r);
    register_movement_ops(*r);
    register_softmax_ops(*r);
    register_shape_ops(*r);
    register_indexing_ops(*r);
    register_reduce_ops(*r);
    register_nn_ops(*r);
    register_resize_ops(*r);
    register_fused_conv_ops(*r);
    register_attention_ops(*r);
    register_onnx_attention_ops(*r);
    register_decoder_block_ops(*r);
    register_linear_attention_ops(*r);
    register_rnn_ops(*r);
    register_gather_scatter_ops(*r);
    register_layout_ops(*r);
    register_normalization_ops(*r);
    register_matrix_ops(*r);
    register_data_dependent_ops(*r);
    register_detection_ops(*r);
    register_grid_sample_ops(*r);
    register_signal_ops(*r);
    register_random_ops(*r);
    register_control_flow_ops(*r);
    register_state_ops(*r);
    register_sequence_ops(*r);
    register_center_crop_pad_ops(*r);
    register_det_ops(*r);
    register_col2im_ops(*r);
    register_deform_conv_ops(*r);
    register_max_unpool_ops(*r);
    register_rms_norm_ops(*r);
    return r;
  }();
  return *registry;
}

void OpRegistry::add(OpDef def) {
  if (find(def.type)) throw std::logic_error("op registered twice: " + def.type);
  ops_.push_back(std::move(def));
}

const OpDef* OpRegistry::find(const std::string& type) const {
  for (const auto& d : ops_)
    if (d.type == type) return &d;
  return nullptr;
}

const OpDef& OpRegistry::get(const std::string& type) const {
  if (auto d = find(type)) return *d;
  throw NotSupported("op '" + type + "' is not supported by the aiov engine");
}

std::vector<std::string> OpRegistry::names() const {
  std::vector<std::string> out;
  for (const auto& d : ops_) out.push_back(d.type);
  std::sort(out.begin(), out.end());
  return out;
}

// ---- attribute schema -------------------------------------------------------------------

namespace {
// Per AttrKind, in its order: the kind as the op schema names it, and as error messages
// describe a value of it.
struct AttrKindWords {
  const char* name;
  const char* described;
};
constexpr AttrKindWords kAttrKindWords[] = {{"bool", "a boolean"},           {"int", "an integer"},
                                            {"float", "a number"},           {"str", "a string"},
                                            {"ints", "a list of integers"},  {"floats", "a list of numbers"},
                                            {"type", "an element type name"}};
static_assert(std::size(kAttrKindWords) == (size_t)AttrKind::element_type + 1, "a kind without words");

const AttrKindWords& attr_kind_words(AttrKind kind) { return kAttrKindWords[(size_t)kind]; }
}  // namespace

const char* attr_kind_name(AttrKind kind) { return attr_kind_words(kind).name; }

namespace {
AttrSpec spec(std::string name, AttrKind kind, Attr dflt) {
  AttrSpec s;
  s.name = std::move(name);
  s.kind = kind;
  s.dflt = std::move(dflt);
  return s;
}

std::string format_number(double v) {
  std::ostringstream os;
  os << v;
  return os.str();
}

std::string format_attr(const Attr& a) {
  return std::visit(
      [](const auto& v) -> std::string {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same<T, int64_t>::value)
          return std::to_string(v);
        else if constexpr (std::is_same<T, double>::value)
          return format_number(v);
        else if constexpr (std::is_same<T, std::string>::value)
          return "'" + v + "'";
        else {
          std::string out = "[";
          for (size_t i = 0; i < v.size(); ++i) {
            if (i) out += ", ";
            if constexpr (std::is_same<T, std::vector<double>>::value)
              out += format_number(v[i]);
            else
              out += std::to_string(v[i]);
          }
          return out + "]";
        }
      },
      a);
}

[[noreturn]] void attr_error(const Node& n, const std::string& name, const std::string& expected,
                             const std::string& given) {
  throw InputError(n.describe() + ": attribute '" + name + "' must be " + expected + ", got " + given);
}

std::string range_text(const AttrSpec& s) {
  if (s.lo > -HUGE_VAL && s.hi < HUGE_VAL) return "between " + format_number(s.lo) + " and " + format_number(s.hi);
  if (s.lo > -HUGE_VAL)
    return s.lo == 1 && s.kind != AttrKind::real && s.kind != AttrKind::reals ? std::string("positive")
                                                                              : ">= " + format_number(s.lo);
  return "<= " + format_number(s.hi);
}

// The numbers in `v` when it has the kind `s` declares (bools and ints are interchangeable,
// whole floats pass as ints: frontends hand over what their format carries).
bool numbers_of(const AttrSpec& s, const Attr& v, std::vector<double>& nums) {
  auto whole = [](double d) { return std::isfinite(d) && d == std::floor(d); };
  switch (s.kind) {
    case AttrKind::boolean:
    case AttrKind::integer:
      if (auto i = std::get_if<int64_t>(&v)) return nums = {(double)*i}, true;
      if (auto d = std::get_if<double>(&v)) return whole(*d) && (nums = {*d}, true);
      return false;
    case AttrKind::real:
      if (auto i = std::get_if<int64_t>(&v)) return nums = {(double)*i}, true;
      if (auto d = std::get_if<double>(&v)) return nums = {*d}, true;
      return false;
    case AttrKind::ints:
      if (auto i = std::get_if<int64_t>(&v)) return nums = {(double)*i}, true;
      if (auto l = std::get_if<std::vector<int64_t>>(&v)) return nums.assign(l->begin(), l->end()), true;
      if (auto d = std::get_if<std::vector<double>>(&v)) return d->empty();
      return false;
    case AttrKind::reals:
      if (auto l = std::get_if<std::vector<int64_t>>(&v)) return nums.assign(l->begin(), l->end()), true;
      if (auto d = std::get_if<std::vector<double>>(&v)) return nums = *d, true;
      return false;
    case AttrKind::string:
    case AttrKind::element_type:
      return std::holds_alternative<std::string>(v);
  }
  return false;
}

}  // namespace

AttrSpec bool_attr(std::string name, bool dflt) { return spec(std::move(name), AttrKind::boolean, (int64_t)dflt); }
AttrSpec int_attr(std::string name, int64_t dflt) { return spec(std::move(name), AttrKind::integer, dflt); }
AttrSpec float_attr(std::string name, double dflt) { return spec(std::move(name), AttrKind::real, dflt); }
AttrSpec str_attr(std::string name, std::string dflt, std::vector<std::string> choices) {
  AttrSpec s = spec(std::move(name), AttrKind::string, std::move(dflt));
  s.choices = std::move(choices);
  return s;
}
AttrSpec ints_attr(std::string name, std::vector<int64_t> dflt) {
  return spec(std::move(name), AttrKind::ints, std::move(dflt));
}
AttrSpec floats_attr(std::string name, std::vector<double> dflt) {
  return spec(std::move(name), AttrKind::reals, std::move(dflt));
}
AttrSpec type_attr(std::string name, std::string dflt) {
  return spec(std::move(name), AttrKind::element_type, std::move(dflt));
}
AttrSpec spatial_attr(std::string name, int64_t fill) {
  AttrSpec s = spec(std::move(name), AttrKind::ints, fill);
  s.spatial = true;
  return s;
}

const AttrSpec* OpDef::attr(const std::string& name) const {
  for (const auto& a : attrs)
    if (a.name == name) return &a;
  return nullptr;
}

void validate_attrs(const OpDef& def, const Node& n, const std::vector<PortInfo>& in) {
  for (const AttrSpec& s : def.attrs) {
    auto it = n.attrs.find(s.name);
    if (it == n.attrs.end()) {
      if (s.required) throw InputError(n.describe() + ": attribute '" + s.name + "' is required but not given");
      continue;
    }
    const Attr& v = it->second;
    std::vector<double> nums;
    if (!numbers_of(s, v, nums)) attr_error(n, s.name, attr_kind_words(s.kind).described, format_attr(v));
    if (s.kind == AttrKind::boolean && (nums[0] != 0 && nums[0] != 1))
      attr_error(n, s.name, "a boolean (0 or 1)", format_attr(v));
    for (double x : nums)
      if (x < s.lo || x > s.hi || std::isnan(x)) attr_error(n, s.name, range_text(s), format_attr(v));
    if (s.kind == AttrKind::string && !s.choices.empty()) {
      const std::string& text = std::get<std::string>(v);
      if (std::find(s.choices.begin(), s.choices.end(), text) == s.choices.end()) {
        std::string allowed;
        for (const auto& c : s.choices) allowed += (allowed.empty() ? "'" : ", '") + c + "'";
        attr_error(n, s.name, "one of " + allowed, format_attr(v));
      }
    }
    if (s.kind == AttrKind::element_type) {
      const std::string& text = std::get<std::string>(v);
      ElementType t;
      try {
        t = type_from_name(text);
      } catch (const InputError&) {
        attr_error(n, s.name, "an element type name (f32, i64, ...)", format_attr(v));
      }
      if (t == ElementType::undefined || t == ElementType::dynamic)
        attr_error(n, s.name, "a concrete element type", format_attr(v));
    }
    if (s.spatial && !in.empty() && in[0].shape.rank_known && in[0].shape.rank() >= 2 &&
        (int64_t)nums.size() != in[0].shape.rank() - 2)
      attr_error(n, s.name,
                 std::to_string(in[0].shape.rank() - 2) + " values (one per spatial dimension of the input " +
                     in[0].shape.str() + ")",
                 format_attr(v) + " (" + std::to_string(nums.size()) + " values)");
    if (s.rule) {
      std::string expected = s.rule(n, in, v);
      if (!expected.empty()) attr_error(n, s.name, expected, format_attr(v));
    }
  }
}

std::vector<int64_t> spatial_ints(const Node& n, const std::string& name, size_t rank) {
  if (n.has_attr(name)) return n.attr_ints(name, {});
  const AttrSpec* s = op_def(n).attr(name);
  if (!s || !s->spatial) throw std::logic_error(n.describe() + " reads undeclared spatial attribute " + name);
  return std::vector<int64_t>(rank, std::get<int64_t>(s->dflt));
}

namespace {
const AttrSpec& declared(const Node& n, const std::string& k) {
  const OpDef* def = n.def ? n.def : OpRegistry::instance().find(n.op);
  const AttrSpec* s = def ? def->attr(k) : nullptr;
  // A programming error: every attribute an op reads is declared in its schema.
  if (!s) throw std::logic_error(n.describe() + " reads attribute '" + k + "', which its op does not declare");
  return *s;
}
}  // namespace

int64_t Node::attr_int(const std::string& k) const {
  if (has_attr(k)) return attr_int(k, 0);
  const Attr& d = declared(*this, k).dflt;
  if (auto v = std::get_if<double>(&d)) return (int64_t)*v;
  return std::get<int64_t>(d);
}
double Node::attr_float(const std::string& k) const {
  if (has_attr(k)) return attr_float(k, 0.0);
  const Attr& d = declared(*this, k).dflt;
  if (auto v = std::get_if<int64_t>(&d)) return (double)*v;
  return std::get<double>(d);
}
std::string Node::attr_str(const std::string& k) const {
  if (has_attr(k)) return attr_str(k, "");
  return std::get<std::string>(declared(*this, k).dflt);
}
std::vector<int64_t> Node::attr_ints(const std::string& k) const {
  if (has_attr(k)) return attr_ints(k, {});
  return std::get<std::vector<int64_t>>(declared(*this, k).dflt);
}
std::vector<double> Node::attr_floats(const std::string& k) const {
  if (has_attr(k)) return attr_floats(k, {});
  return std::get<std::vector<double>>(declared(*this, k).dflt);
}

namespace {
bool same_text_nocase(const std::string& a, const std::string& b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower((unsigned char)x) == std::tolower((unsigned char)y);
         });
}
}  // namespace

const OpDef& op_def(const Node& n) { return n.def ? *n.def : OpRegistry::instance().get(n.op); }

bool activation_of_node(const OpDef& def, const Node& n, Activation& out) {
  const ActivationTrait& t = def.activation;
  if (t.kinds.empty()) return false;
  size_t pick = 0;
  if (!t.variant.empty()) {
    const std::string value = n.attr_str(t.variant);
    pick = t.variant_values.size();
    for (size_t i = 0; i < t.variant_values.size(); ++i)
      if (same_text_nocase(value, t.variant_values[i])) pick = i;
    if (pick >= t.kinds.size()) return false;
  }
  out.kind = t.kinds[pick];
  // A variant op's chain step learns its variant through alpha (see ActivationTrait).
  out.alpha = t.alpha.empty() ? (float)pick : (float)n.attr_float(t.alpha);
  out.beta = t.beta.empty() ? 0.0f : (float)n.attr_float(t.beta);
  return true;
}

bool chainable_elementwise_op(const std::string& op) {
  const OpDef* d = OpRegistry::instance().find(op);
  return d && d->chain;
}

std::vector<std::string> registry_problems(const OpRegistry& r) {
  std::vector<std::string> problems;
  auto fail = [&](const std::string& what) { problems.push_back(what); };
  std::set<int> produced{(int)ActKind::none};
  std::map<std::string, std::string> ir_owner, onnx_owner;
  for (const OpDef& d : r.all()) {
    if (!d.infer || !d.prepare) fail(d.type + ": no infer or prepare function");
    std::set<std::string> seen;
    for (const AttrSpec& a : d.attrs) {
      if (!seen.insert(a.name).second) fail(d.type + ": attribute '" + a.name + "' declared twice");
      std::vector<double> nums;
      if (a.spatial ? !std::holds_alternative<int64_t>(a.dflt) : !numbers_of(a, a.dflt, nums))
        fail(d.type + ": the default of '" + a.name + "' is not of its kind " + attr_kind_name(a.kind));
      for (double x : nums)
        if (!a.required && (x < a.lo || x > a.hi)) fail(d.type + ": the default of '" + a.name + "' breaks its range");
      if (!a.required && !a.choices.empty() && std::holds_alternative<std::string>(a.dflt) &&
          std::find(a.choices.begin(), a.choices.end(), std::get<std::string>(a.dflt)) == a.choices.end())
        fail(d.type + ": the default of '" + a.name + "' is not one of its choices");
    }
    const ActivationTrait& t = d.activation;
    for (ActKind k : t.kinds) produced.insert((int)k);
    if (!t.kinds.empty()) {
      if (t.variant.empty() ? t.kinds.size() != 1 : t.kinds.size() != t.variant_values.size())
        fail(d.type + ": activation kinds and variants do not pair up");
      for (const std::string* p : {&t.alpha, &t.beta, &t.variant})
        if (!p->empty() && !d.attr(*p)) fail(d.type + ": activation parameter '" + *p + "' is not an attribute");
      if (!d.chain) fail(d.type + ": an epilogue activation must also be a chain step");
      if (d.layout_blind != LayoutBlind::unary) fail(d.type + ": an epilogue activation must be layout-blind");
    }
    if (d.layout_blind == LayoutBlind::binary && d.min_inputs != 2)
      fail(d.type + ": a layout-blind binary op takes two inputs");
    if (d.layout_blind == LayoutBlind::unary && d.min_inputs != 1)
      fail(d.type + ": a layout-blind unary op takes one input");
    if (d.layout_blind == LayoutBlind::per_tensor && d.min_inputs < 2)
      fail(d.type + ": a layout-blind per-tensor op takes its data and per-tensor values");
    if (!d.ir_types.empty() && d.ir_version.empty()) fail(d.type + ": an IR type without a version");
    for (const std::string& ir : d.ir_types) {
      auto [it, fresh] = ir_owner.emplace(ir, d.type);
      if (!fresh) fail("IR type '" + ir + "' is claimed by " + it->second + " and " + d.type);
    }
    for (const OnnxName& o : d.onnx) {
      auto [it, fresh] = onnx_owner.emplace(o.name, d.type);
      if (!fresh) fail("ONNX op '" + o.name + "' is claimed by " + it->second + " and " + d.type);
      if (o.until && o.until < o.since) fail(d.type + ": ONNX opset range of " + o.name + " is empty");
    }
    if (d.reuses_input >= 0 && d.max_inputs >= 0 && d.reuses_input >= d.max_inputs)
      fail(d.type + ": reuses input " + std::to_string(d.reuses_input) + ", which it does not have");
    for (int v : d.value_inputs)
      if (d.max_inputs >= 0 && v >= d.max_inputs) fail(d.type + ": value input " + std::to_string(v) + " out of range");
  }
  for (int k = 0; k < kActKindCount; ++k)
    if (!produced.count(k)) fail(std::string("epilogue activation '") + kActNames[k] + "' is produced by no op");
  return problems;
}

std::vector<PortInfo> infer_outputs(const OpDef& def, const InferContext& ctx) {
  if (!def.composites)
    for (size_t i = 0; i < ctx.in.size(); ++i)
      if (ctx.in[i].kind != ValueKind::tensor)
        throw InputError(ctx.node.describe() + ": input " + std::to_string(i) + " must be a tensor, got " +
                         kind_name(ctx.in[i].kind));
  std::vector<PortInfo> outs = def.infer(ctx);
  for (size_t o = 0; o < outs.size(); ++o) {
    if (!outs[o].shape.rank_known) continue;
    // A rank an op takes from a value (Expand's target shape) is bounded like one read from a
    // model: numpy, for one, cannot show more than 64 dimensions.
    if (outs[o].shape.rank() > kMaxRank)
      throw InputError(ctx.node.describe() + " output " + std::to_string(o) + ": rank " +
                       std::to_string(outs[o].shape.rank()) + " is above the " + std::to_string(kMaxRank) +
                       " aiov allows");
    try {
      numel(outs[o].shape.dims);  // checks the size; the node's name is built only on failure
    } catch (const InputError&) {
      check_tensor_size(outs[o].shape.dims, ctx.node.describe() + " output " + std::to_string(o));
    }
  }
  return outs;
}

void expect_type_match(const Node& n, const PortInfo& a, const PortInfo& b) {
  if (a.type != b.type && a.type != ElementType::dynamic && b.type != ElementType::dynamic)
    throw InputError(n.describe() + ": input element types must match, got " + type_name(a.type) + " and " +
                     type_name(b.type));
}

PartialShape broadcast_shapes(const Node& n, const PartialShape& a, const PartialShape& b, const std::string& mode) {
  if (!a.rank_known || !b.rank_known) return PartialShape::dynamic_rank();
  if (mode == "none") {
    if (a.rank() != b.rank())
      throw InputError(n.describe() + ": shapes " + a.str() + " and " + b.str() +
                       " must be equal (auto_broadcast='none')");
    Dims out(a.dims.size());
    for (size_t i = 0; i < out.size(); ++i) {
      int64_t x = a.dims[i], y = b.dims[i];
      if (x >= 0 && y >= 0 && x != y)
        throw InputError(n.describe() + ": shapes " + a.str() + " and " + b.str() +
                         " must be equal (auto_broadcast='none')");
      out[i] = x >= 0 ? x : y;
    }
    return PartialShape(out);
  }
  if (mode != "numpy")
    throw NotSupported(n.describe() + ": auto_broadcast '" + mode + "' is not supported (use 'numpy' or 'none')");
  size_t r = std::max(a.dims.size(), b.dims.size());
  Dims out(r);
  for (size_t i = 0; i < r; ++i) {
    int64_t x = i < r - a.dims.size() ? 1 : a.dims[i - (r - a.dims.size())];
    int64_t y = i < r - b.dims.size() ? 1 : b.dims[i - (r - b.dims.size())];
    if (x == 1)
      out[i] = y;
    else if (y == 1)
      out[i] = x;
    else if (x < 0 && y < 0)
      out[i] = kDynamic;
    else if (x < 0)
      out[i] = y;
    else if (y < 0)
      out[i] = x;
    else if (x == y)
      out[i] = x;
    else
      throw InputError(n.describe() + ": Argument shapes are inconsistent: " + a.str() + " and " + b.str() +
                       " cannot be broadcast together (dimension " + std::to_string(i) + ": " + std::to_string(x) +
                       " vs " + std::to_string(y) + ")");
  }
  return PartialShape(out);
}

int64_t normalize_axis(const Node& n, int64_t axis, int64_t rank) {
  if (axis < -rank || axis >= rank)
    throw InputError(n.describe() + ": axis " + std::to_string(axis) + " is out of range for rank " +
                     std::to_string(rank) + " (expected " + std::to_string(-rank) + ".." + std::to_string(rank - 1) +
                     ")");
  return axis < 0 ? axis + rank : axis;
}

AroundAxis around_axis(const Dims& shape, int64_t axis) {
  AroundAxis a;
  for (int64_t d = 0; d < (int64_t)shape.size(); ++d) (d < axis ? a.outer : d == axis ? a.len : a.inner) *= shape[d];
  return a;
}

size_t element_bytes(const Node& n, ElementType t) {
  const size_t bits = bit_width(t);
  if (bits % 8 || bits == 0) throw NotSupported(n.describe() + ": element type " + type_name(t));
  return bits / 8;
}

std::vector<int64_t> row_strides(const Dims& d) {
  std::vector<int64_t> s(d.size(), 1);
  for (int i = (int)d.size() - 2; i >= 0; --i) s[i] = s[i + 1] * d[i + 1];
  return s;
}

void for_rows(const ExecContext& ctx, int64_t rows, int64_t len, const std::function<void(int64_t, int64_t)>& fn) {
  if (rows * len >= (1 << 15) && ctx.pool && rows > 1)
    ctx.pool->parallel_for(rows, std::max<int64_t>(1, (1 << 13) / std::max<int64_t>(1, len)), fn, ctx.max_threads);
  else
    fn(0, rows);
}

void* output_memory(const KernelArgs& a, size_t o, const Dims& shape) {
  if (a.ctx && a.ctx->emit) return a.ctx->emit(o, shape);
  if (a.out[o]->shape != shape)
    throw std::logic_error("data-dependent output " + std::to_string(o) + " has shape " + dims_str(shape) +
                           ", planned " + dims_str(a.out[o]->shape));
  return a.out[o]->data;
}

void run_kernel_now(const OpDef& def, const PrepareContext& ctx) {
  std::vector<const TensorView*> ins, outs;
  for (const auto& t : ctx.in) ins.push_back(&t);
  for (const auto& t : ctx.out) outs.push_back(&t);
  ExecContext exec;
  def.prepare(ctx)(KernelArgs{ins.data(), outs.data(), &exec});
}

FusedOutput::FusedOutput(const PrepareContext& ctx) : has_residual(ctx.in.size() > 3) {
  const Node& n = ctx.node;
  try {
    act.kind = act_kind_from_name(n.attr_str("act"));
  } catch (const std::invalid_argument& e) {
    throw InputError(n.describe() + ": " + e.what());
  }
  act.alpha = (float)n.attr_float("act_alpha");
  act.beta = (float)n.attr_float("act_beta");
}

Epilogue FusedOutput::at(const KernelArgs& a, int64_t ld, int64_t first) const {
  Epilogue e;
  e.bias = a.in[2]->as<float>() + first;
  if (has_residual) {
    e.residual = a.in[3]->as<float>() + first;
    e.ld_residual = ld;
  }
  e.act = act;
  return e;
}

KernelFn rows_apart(const PrepareContext& ctx, KernelFn dense) {
  if (!ctx.out_row_stride) return dense;
  const TensorView& out = ctx.out.at(0);
  const size_t esize = bit_width(out.type) / 8;
  const int64_t row = out.shape.empty() ? 1 : out.shape.back(), rows = row ? numel(out.shape) / row : 0;
  const size_t row_bytes = (size_t)row * esize, stride_bytes = (size_t)ctx.out_row_stride * esize;
  const size_t outputs = ctx.out.size(), inputs = ctx.in.size();
  return [dense, rows, row_bytes, stride_bytes, outputs, inputs](const KernelArgs& a) {
    thread_local std::vector<char> scratch;
    scratch.resize((size_t)rows * row_bytes);
    TensorView staged = *a.out[0];
    staged.data = scratch.data();
    std::vector<const TensorView*> views(a.in, a.in + inputs);
    views.push_back(&staged);
    views.insert(views.end(), a.out + 1, a.out + outputs);
    const char* from = scratch.data();
    dense(KernelArgs{views.data(), views.data() + inputs, a.ctx});
    char* to = static_cast<char*>(a.out[0]->data);
    for (int64_t r = 0; r < rows; ++r) std::memcpy(to + r * stride_bytes, from + r * row_bytes, row_bytes);
  };
}

}  // namespace aiov
