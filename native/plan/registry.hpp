// The one op registry: for every op, its arity, type/shape inference and kernel.
// The opset builders and the frontends ask it for output shapes; nothing else
// re-implements shape rules.
#pragma once
#include <atomic>
#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "core/types.hpp"
#include "kernels/epilogue.hpp"
#include "plan/graph.hpp"
#include "plan/shared_weights.hpp"

namespace aiov {

class ThreadPool;
struct VariableStore;

struct InferContext {
  const Node& node;
  std::vector<PortInfo> in;
  // Values of inputs that are known at this point (constants, or folded), else nullptr.
  std::vector<const TensorView*> in_value;
};

struct ExecContext {
  ThreadPool* pool = nullptr;
  int max_threads = 0;  // cap for intra-op threads (0 = whole pool)
  // Set while a data-dependent op's step runs (OpDef::data_dependent): memory for output `o`
  // with the shape the kernel found, which the rest of the run then sees.
  std::function<void*(size_t o, const Dims& shape)> emit;
  // The running request's cancel flag (null when not cancellable): kernels that run for
  // long (a Loop's iterations) check it.
  const std::atomic<bool>* abort = nullptr;
  VariableStore* variables = nullptr;  // the running request's variables (plan/state.hpp)
};

// A tensor computed at run time with memory of its own (or, with `keep` null, a view of
// memory that outlives it: an input, a constant).
struct HeldTensor {
  TensorView view;
  BufferPtr keep;
  // Owns view.composite when the value is a sequence or an optional (plan/composite.hpp).
  std::shared_ptr<const Composite> composite;
};

// Ops whose output shapes may be known only by running them (a Loop's scan outputs, an If
// whose branches differ) compute their outputs from the input values into new memory.
struct EvalContext {
  const Node& node;
  const std::vector<TensorView>& in;
  ExecContext& exec;
  // The inputs with their owners, when the caller has them (a node-by-node run): an op that
  // keeps an input in its output (a sequence holding a tensor) shares it instead of copying.
  const std::vector<HeldTensor>* held = nullptr;
};
using EvalFn = std::vector<HeldTensor> (*)(const EvalContext&);

struct KernelArgs {
  const TensorView* const* in;
  const TensorView* const* out;
  ExecContext* ctx;
};

// Where a data-dependent op's kernel writes output `o` once it knows its shape: memory the
// run allocates (ExecContext::emit), or, when the planner knew the shape (the inputs were
// known and the op folds), the output already given, which must have that shape.
void* output_memory(const KernelArgs& a, size_t o, const Dims& shape);

using KernelFn = std::function<void(const KernelArgs&)>;

struct PrepareContext {
  const Node& node;
  // Concrete types and shapes; `data` is set for inputs known at plan time.
  std::vector<TensorView> in;
  std::vector<TensorView> out;
  // Set while a compiled model plans: where weights derived from its constants are shared.
  SharedWeights* shared = nullptr;
  // Per input: the data is one of the model's constants (the same bytes in every plan).
  std::vector<bool> in_model_constant;
  // The precision matrix products may compute in (INFERENCE_PRECISION_HINT): f32, or bf16
  // for GEMM-based kernels that offer it. Always f32 while folding constants.
  ElementType inference_precision = ElementType::f32;
  // Set while a compiled model plans: a prepare that picks among several kernels names the
  // one it picked here (note_kernel), for the plan's DEBUG log.
  std::string* kernel_choice = nullptr;
  // Set by the planner for an op whose OpDef::writes_concat_slice accepts the node: output 0
  // is its slice of a Concat along the last axis, so consecutive rows (vectors along that
  // axis) lie this many elements apart instead of out[0]'s last dimension. 0: dense.
  int64_t out_row_stride = 0;

  void note_kernel(std::string what) const {
    if (kernel_choice) *kernel_choice = std::move(what);
  }

  // What `make` derives from input `input`'s constant data, built once per compiled model
  // when the input is a model constant (see SharedWeights::get for `recipe`), else now.
  // `fits` says whether weights read from a blob under this recipe have the dimensions the
  // kernel relies on (a blob is untrusted); ones that do not are made again.
  template <class T, class Make, class Fits>
  std::shared_ptr<const T> derived(size_t input, const std::string& recipe, Make&& make, Fits&& fits) const {
    if (shared && input < in_model_constant.size() && in_model_constant[input])
      return shared->get<T>(in[input].data, recipe, make, fits);
    return make();
  }
};

using InferFn = std::vector<PortInfo> (*)(const InferContext&);
using PrepareFn = KernelFn (*)(const PrepareContext&);

// ---- attribute schema -------------------------------------------------------------------
// Every attribute an op reads is declared once in its OpDef: kind, default and the rules a
// value must follow. make_node/revalidate check a node's attributes against it before the
// op's infer runs (so no infer or kernel sees a value its op did not accept), and the op
// reads them through Node::attr_*(name), which takes the default from here.

struct OpDef;

enum class AttrKind : uint8_t { boolean, integer, real, string, ints, reals, element_type };
const char* attr_kind_name(AttrKind kind);

struct AttrSpec {
  std::string name;
  AttrKind kind = AttrKind::integer;
  Attr dflt;              // the value when absent
  bool required = false;  // absent is an error
  // ints/reals with one entry per spatial dim of input 0 (its rank - 2 when known); when
  // absent, every entry is `dflt` (a scalar).
  bool spatial = false;
  double lo = -HUGE_VAL, hi = HUGE_VAL;  // every number given must lie in [lo, hi]
  std::vector<std::string> choices;      // string: the allowed values (empty: any)
  // Spellings in OpenVINO IR and ONNX where they differ from `name`; "-": no such attribute.
  std::string ir, onnx;
  // A rule that needs the inputs (group dividing the channels): what was expected, or ""
  // when the value is fine. Called only with the value present.
  std::string (*rule)(const Node& node, const std::vector<PortInfo>& in, const Attr& value) = nullptr;

  AttrSpec& at_least(double v) {
    lo = v;
    return *this;
  }
  AttrSpec& between(double a, double b) {
    lo = a;
    hi = b;
    return *this;
  }
  AttrSpec& must_be_given() {
    required = true;
    return *this;
  }
  AttrSpec& ir_name(std::string n) {
    ir = std::move(n);
    return *this;
  }
  AttrSpec& onnx_name(std::string n) {
    onnx = std::move(n);
    return *this;
  }
  AttrSpec& checked_by(decltype(rule) r) {
    rule = r;
    return *this;
  }
  const std::string& ir_spelling() const { return ir.empty() ? name : ir; }
  const std::string& onnx_spelling() const { return onnx.empty() ? name : onnx; }
};

AttrSpec bool_attr(std::string name, bool dflt);
AttrSpec int_attr(std::string name, int64_t dflt);
AttrSpec float_attr(std::string name, double dflt);
AttrSpec str_attr(std::string name, std::string dflt, std::vector<std::string> choices = {});
AttrSpec ints_attr(std::string name, std::vector<int64_t> dflt = {});
AttrSpec floats_attr(std::string name, std::vector<double> dflt = {});
AttrSpec type_attr(std::string name, std::string dflt);
// One integer per spatial dim, `fill` each when absent (strides, pads, dilations).
AttrSpec spatial_attr(std::string name, int64_t fill);

// Checks node's attributes against its op's schema (kinds, ranges, lengths, choices, rules);
// throws InputError naming node, attribute, what was expected and what was given.
void validate_attrs(const OpDef& def, const Node& node, const std::vector<PortInfo>& in);
// A spatial attribute for `rank` spatial dims: the node's value, else the fill default.
std::vector<int64_t> spatial_ints(const Node& node, const std::string& name, size_t rank);

// ---- traits -----------------------------------------------------------------------------

// The op computes each output element from the elements at the same place only, so it
// commutes with a layout change (the optimizer sinks transposes through it). per_tensor:
// elementwise in its first input, every other input one value (aiov.Quantize's scale and
// zero point).
enum class LayoutBlind : uint8_t { no, unary, binary, per_tensor };

// One step of aiov.ElementwiseChain over a block of n floats t (in place): a unary step
// applies f(t) with the node's activation parameters (a, b); a binary step combines t with
// operand v (v_step 0: broadcast scalar, 1: one per element), v on the left when `swapped`.
using ChainStepFn = void (*)(float* t, const float* v, int64_t v_step, int64_t n, bool swapped, float a, float b);

// The op is an activation a producing kernel can fold into its epilogue.
struct ActivationTrait {
  std::vector<ActKind> kinds;  // empty: not fusable. One, unless `variant` picks among them
  // Attributes giving Activation::alpha and ::beta (their schema defaults when absent).
  std::string alpha, beta;
  // A string attribute choosing the kind: kinds[i] where its value is variant_values[i].
  std::string variant;
  std::vector<std::string> variant_values;
};

// An ONNX op that maps 1:1 onto this op (inputs in order, attributes by their ONNX
// spelling), valid for ONNX opsets [since, until] (until 0: still current).
struct OnnxName {
  std::string name;
  int since = 1, until = 0;
};

struct OpDef {
  std::string type;
  int min_inputs = 0;
  int max_inputs = 0;  // -1: variadic
  InferFn infer = nullptr;
  PrepareFn prepare = nullptr;
  // The output is the input's memory seen with another shape (Reshape and the like).
  bool aliases_input0 = false;
  // The output may take over this input's memory when the step is the input's last use
  // and the two have the same size (-1: never). The kernel must read each element of that
  // input before it writes the output element at the same place (a fused residual).
  int reuses_input = -1;
  // The output depends only on input shapes (ShapeOf): known once shapes are concrete.
  bool shape_only = false;
  // The output shapes depend on input values that may be known only while the model runs
  // (NonZero, Unique): the kernel sizes its outputs through output_memory, and the planner
  // plans the nodes after it once a run has found those sizes (see compiled.hpp).
  bool data_dependent = false;
  // Operands whose values shape the output (Reshape's target, axes, pads...). A model input
  // feeding one of them becomes part of the plan key: plans are built per distinct value.
  std::vector<int> value_inputs;
  // Reads or writes the running request's variables (ReadValue, Assign): never folded, and
  // run even when it aliases its input.
  bool stateful = false;
  std::vector<AttrSpec> attrs;
  LayoutBlind layout_blind = LayoutBlind::no;
  ChainStepFn chain = nullptr;  // set: aiov.ElementwiseChain can run the op as a step
  ActivationTrait activation;
  // OpenVINO IR: layer type names (the first is written; the others are read too) and the
  // version written. Empty: the op has no IR form.
  std::vector<std::string> ir_types;
  std::string ir_version;
  std::vector<OnnxName> onnx;
  // Name of the aiov.opset builder generated from this description ("" = none generated).
  std::string builder;
  // Set: when `infer` cannot give static output shapes for concrete input shapes, the plan
  // runs the model node by node and this computes the node's outputs (plan/subgraph.hpp).
  EvalFn eval = nullptr;
  // Takes or gives sequences and optionals (PortInfo::kind): its `infer` checks the kinds of
  // its inputs. Any other op given one fails with the input named (infer_outputs).
  bool composites = false;
  // Set: the node can write output 0 straight into its slice of a Concat along the last axis
  // (its prepare honours PrepareContext::out_row_stride) when this says so; the planner then
  // runs no copy for that part of the Concat.
  bool (*writes_concat_slice)(const Node&) = nullptr;

  OpDef& with_attrs(std::vector<AttrSpec> a) {
    attrs = std::move(a);
    return *this;
  }
  OpDef& blind(LayoutBlind b) {
    layout_blind = b;
    return *this;
  }
  OpDef& chain_step(ChainStepFn f) {
    chain = f;
    return *this;
  }
  OpDef& ir(std::vector<std::string> types, std::string version) {
    ir_types = std::move(types);
    ir_version = std::move(version);
    return *this;
  }
  OpDef& onnx_op(std::string name, int since = 1, int until = 0) {
    onnx.push_back(OnnxName{std::move(name), since, until});
    return *this;
  }
  OpDef& opset_builder(std::string name) {
    builder = std::move(name);
    return *this;
  }
  OpDef& keeps_state() {
    stateful = true;
    return *this;
  }
  OpDef& concat_slice(bool (*accepts)(const Node&)) {
    writes_concat_slice = accepts;
    return *this;
  }
  OpDef& fusable(ActivationTrait a) {
    activation = std::move(a);
    return *this;
  }
  const AttrSpec* attr(const std::string& name) const;
};

// The registry entry of a node built through make_node.
const OpDef& op_def(const Node& node);

// The activation a fusable op's node applies (kind and parameters); false when the op is not
// fusable. Uses only the registry's ActivationTrait.
bool activation_of_node(const OpDef& def, const Node& node, Activation& out);

class OpRegistry {
 public:
  static const OpRegistry& instance();
  const OpDef* find(const std::string& type) const;
  const OpDef& get(const std::string& type) const;  // throws NotSupported
  std::vector<std::string> names() const;
  const std::vector<OpDef>& all() const { return ops_; }
  void add(OpDef def);

 private:
  std::vector<OpDef> ops_;
};

// Whether every trait, name table and enum agree (each activation kind produced by some op,
// each IR/ONNX name owned by one op, defaults of the declared kind...): the problems found,
// empty when consistent. Run by the unit tests through aiov._core.registry_problems().
std::vector<std::string> registry_problems(const OpRegistry& r);

inline OpDef with_value_inputs(OpDef def, std::vector<int> inputs) {
  def.value_inputs = std::move(inputs);
  return def;
}
inline OpDef with_data_dependent_shape(OpDef def) {
  def.data_dependent = true;
  return def;
}
inline OpDef with_composites(OpDef def) {
  def.composites = true;
  return def;
}
inline OpDef with_reused_input(OpDef def, int input) {
  def.reuses_input = input;
  return def;
}

// Each op family registers itself here (called once from OpRegistry::instance).
void register_elementwise_ops(OpRegistry&);
// Whether aiov.ElementwiseChain can run `op` as one of its steps (OpDef::chain).
bool chainable_elementwise_op(const std::string& op);
void register_matmul_ops(OpRegistry&);
void register_quantized_matmul_ops(OpRegistry&);
void register_movement_ops(OpRegistry&);
void register_softmax_ops(OpRegistry&);
void register_rms_norm_ops(OpRegistry&);
void register_shape_ops(OpRegistry&);
void register_indexing_ops(OpRegistry&);
void register_reduce_ops(OpRegistry&);
void register_nn_ops(OpRegistry&);
void register_resize_ops(OpRegistry&);
void register_fused_conv_ops(OpRegistry&);
void register_attention_ops(OpRegistry&);
void register_onnx_attention_ops(OpRegistry&);
void register_decoder_block_ops(OpRegistry&);
void register_linear_attention_ops(OpRegistry&);
void register_rnn_ops(OpRegistry&);
void register_gather_scatter_ops(OpRegistry&);
void register_layout_ops(OpRegistry&);
void register_normalization_ops(OpRegistry&);
void register_matrix_ops(OpRegistry&);
void register_data_dependent_ops(OpRegistry&);
void register_detection_ops(OpRegistry&);
void register_grid_sample_ops(OpRegistry&);
void register_signal_ops(OpRegistry&);
void register_random_ops(OpRegistry&);
void register_control_flow_ops(OpRegistry&);
void register_state_ops(OpRegistry&);
void register_sequence_ops(OpRegistry&);
void register_center_crop_pad_ops(OpRegistry&);
void register_det_ops(OpRegistry&);
void register_col2im_ops(OpRegistry&);
void register_deform_conv_ops(OpRegistry&);
void register_max_unpool_ops(OpRegistry&);

// Runs the op's type/shape inference and checks every output shape against the tensor size
// limit (InputError naming the node): the one way the engine calls OpDef::infer.
std::vector<PortInfo> infer_outputs(const OpDef& def, const InferContext& ctx);

// Shared helpers for inference functions.
void expect_type_match(const Node& n, const PortInfo& a, const PortInfo& b);
PartialShape broadcast_shapes(const Node& n, const PartialShape& a, const PartialShape& b, const std::string& mode);
int64_t normalize_axis(const Node& n, int64_t axis, int64_t rank);
// A shape seen as [outer, len, inner] around one (normalized) axis: the rows an axis op walks.
struct AroundAxis {
  int64_t outer = 1, len = 1, inner = 1;
};
AroundAxis around_axis(const Dims& shape, int64_t axis);
// Integer values of a tensor known at compile time (shape, axes, indices operands).
std::vector<int64_t> read_int_tensor(const Node& n, const TensorView& t, const char* what);
// fn(r0, r1) over `rows` rows of `len` elements each (softmax, normalization), split across
// the pool once the whole is large enough to pay for it.
void for_rows(const ExecContext& ctx, int64_t rows, int64_t len, const std::function<void(int64_t, int64_t)>& fn);
// Runs the op's kernel once on the calling thread, into outputs already allocated in
// ctx.out (constant folding at compile and plan time).
void run_kernel_now(const OpDef& def, const PrepareContext& ctx);
// What a fused op with inputs (data, weights, bias [, residual]) applies to its output: the
// activation from its attributes (act, act_alpha, act_beta) and whether a residual is given.
struct FusedOutput {
  Activation act;
  bool has_residual = false;
  explicit FusedOutput(const PrepareContext& ctx);
  // The epilogue for one call, from output column `first` on (a group of a grouped conv);
  // residual rows are `ld` floats apart.
  Epilogue at(const KernelArgs& a, int64_t ld, int64_t first = 0) const;
};
// Bytes per element of `t` for ops that move whole elements; sub-byte types are NotSupported.
size_t element_bytes(const Node& n, ElementType t);
// The kernel `f32_prepare` makes, run on f16/bf16 tensors by widening inputs to f32 and
// narrowing outputs back (native/ops/widen.cpp); f32 tensors go straight to it.
KernelFn prepare_in_f32(const PrepareContext& ctx, PrepareFn f32_prepare);
template <PrepareFn F>
KernelFn widened(const PrepareContext& ctx) {
  return prepare_in_f32(ctx, F);
}
// Element strides of a row-major shape.
std::vector<int64_t> row_strides(const Dims& d);
// For the paths of an op with OpDef::writes_concat_slice that write only dense outputs: `dense`
// run into a scratch buffer of the calling thread's, whose rows are then copied
// `ctx.out_row_stride` elements apart into output 0 (`dense` itself when that is 0).
KernelFn rows_apart(const PrepareContext& ctx, KernelFn dense);

}  // namespace aiov
