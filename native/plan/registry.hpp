// The one op registry: for every op, its arity, type/shape inference and kernel.
// The opset builders and the frontends ask it for output shapes; nothing else
// re-implements shape rules.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "core/types.hpp"
#include "kernels/epilogue.hpp"
#include "plan/graph.hpp"
#include "plan/shared_weights.hpp"

namespace aiov {

class ThreadPool;

struct InferContext {
  const Node& node;
  std::vector<PortInfo> in;
  // Values of inputs that are known at this point (constants, or folded), else nullptr.
  std::vector<const TensorView*> in_value;
};

struct ExecContext {
  ThreadPool* pool = nullptr;
  int max_threads = 0;  // cap for intra-op threads (0 = whole pool)
};

struct KernelArgs {
  const TensorView* const* in;
  const TensorView* const* out;
  ExecContext* ctx;
};

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

  // What `make` derives from input `input`'s constant data, built once per compiled model
  // when the input is a model constant (see SharedWeights::get for `recipe`), else now.
  template <class T, class Make>
  std::shared_ptr<const T> derived(size_t input, const std::string& recipe, Make&& make) const {
    if (shared && input < in_model_constant.size() && in_model_constant[input])
      return shared->get<T>(in[input].data, recipe, make);
    return make();
  }
};

using InferFn = std::vector<PortInfo> (*)(const InferContext&);
using PrepareFn = KernelFn (*)(const PrepareContext&);

struct OpDef {
  std::string type;
  int min_inputs = 0;
  int max_inputs = 0;   // -1: variadic
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
  // Operands whose values shape the output (Reshape's target, axes, pads...). A model input
  // feeding one of them becomes part of the plan key: plans are built per distinct value.
  std::vector<int> value_inputs;
};

class OpRegistry {
 public:
  static const OpRegistry& instance();
  const OpDef* find(const std::string& type) const;
  const OpDef& get(const std::string& type) const;  // throws NotSupported
  std::vector<std::string> names() const;
  void add(OpDef def);
 private:
  std::vector<OpDef> ops_;
};

inline OpDef with_value_inputs(OpDef def, std::vector<int> inputs) {
  def.value_inputs = std::move(inputs);
  return def;
}
inline OpDef with_reused_input(OpDef def, int input) {
  def.reuses_input = input;
  return def;
}

// Each op family registers itself here (called once from OpRegistry::instance).
void register_elementwise_ops(OpRegistry&);
// Whether aiov.ElementwiseChain can run `op` as one of its steps (see elementwise.cpp).
bool chainable_elementwise_op(const std::string& op);
void register_matmul_ops(OpRegistry&);
void register_movement_ops(OpRegistry&);
void register_softmax_ops(OpRegistry&);
void register_shape_ops(OpRegistry&);
void register_indexing_ops(OpRegistry&);
void register_reduce_ops(OpRegistry&);
void register_nn_ops(OpRegistry&);
void register_resize_ops(OpRegistry&);
void register_fused_conv_ops(OpRegistry&);
void register_attention_ops(OpRegistry&);

// Runs the op's type/shape inference and checks every output shape against the tensor size
// limit (InputError naming the node): the one way the engine calls OpDef::infer.
std::vector<PortInfo> infer_outputs(const OpDef& def, const InferContext& ctx);

// Shared helpers for inference functions.
void expect_type_match(const Node& n, const PortInfo& a, const PortInfo& b);
PartialShape broadcast_shapes(const Node& n, const PartialShape& a, const PartialShape& b,
                              const std::string& mode);
int64_t normalize_axis(const Node& n, int64_t axis, int64_t rank);
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
// Element strides of a row-major shape.
std::vector<int64_t> row_strides(const Dims& d);

}  // namespace aiov
