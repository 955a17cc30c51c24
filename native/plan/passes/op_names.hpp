// Every op name a graph pass matches or builds, written once. Passes compare against these
// constants instead of string literals, and check_pass_op_names() (run before the first
// optimization) proves each one is a registered op: a misspelt name fails loudly instead of
// silently turning a fusion off.
#pragma once
#include <string>
#include <vector>

namespace aiov {

// X(identifier, op name). Keep it sorted by identifier.
#define AIOV_PASS_OP_NAMES(X)                  \
  X(Add, "Add")                                \
  X(Attention, "aiov.Attention")               \
  X(AvgPool, "AvgPool")                        \
  X(BatchNormInference, "BatchNormInference")  \
  X(Broadcast, "Broadcast")                    \
  X(Concat, "Concat")                          \
  X(Convert, "Convert")                        \
  X(Convolution, "Convolution")                \
  X(Cos, "Cos")                                \
  X(Divide, "Divide")                          \
  X(ElementwiseChain, "aiov.ElementwiseChain") \
  X(Erf, "Erf")                                \
  X(FusedConv, "aiov.FusedConv")               \
  X(FusedMatMul, "aiov.FusedMatMul")           \
  X(Gather, "Gather")                          \
  X(Gelu, "Gelu")                              \
  X(GroupNorm, "aiov.GroupNorm")               \
  X(GroupNormalization, "GroupNormalization")  \
  X(LayerNorm, "aiov.LayerNorm")               \
  X(LRN, "LRN")                                \
  X(MatMul, "MatMul")                          \
  X(MaxPool, "MaxPool")                        \
  X(Multiply, "Multiply")                      \
  X(MVN, "MVN")                                \
  X(Negative, "Negative")                      \
  X(Pad, "Pad")                                \
  X(Power, "Power")                            \
  X(Quantize, "aiov.Quantize")                 \
  X(QuantizedAdd, "aiov.QuantizedAdd")         \
  X(QuantizedConv, "aiov.QuantizedConv")       \
  X(QuantizedLookup, "aiov.QuantizedLookup")   \
  X(QuantizedMatMul, "aiov.QuantizedMatMul")   \
  X(ReduceMax, "ReduceMax")                    \
  X(ReduceMean, "ReduceMean")                  \
  X(ReduceMin, "ReduceMin")                    \
  X(ReduceSum, "ReduceSum")                    \
  X(Relu, "Relu")                              \
  X(Reshape, "Reshape")                        \
  X(RMSNorm, "aiov.RMSNorm")                   \
  X(RotaryEmbedding, "RotaryEmbedding")        \
  X(ShapeOf, "ShapeOf")                        \
  X(Sigmoid, "Sigmoid")                        \
  X(Sin, "Sin")                                \
  X(Slice, "Slice")                            \
  X(Softmax, "Softmax")                        \
  X(Sqrt, "Sqrt")                              \
  X(Squeeze, "Squeeze")                        \
  X(Subtract, "Subtract")                      \
  X(Swish, "Swish")                            \
  X(Tanh, "Tanh")                              \
  X(Transpose, "Transpose")                    \
  X(Unsqueeze, "Unsqueeze")

namespace op_name {
#define AIOV_DECLARE_OP_NAME(id, text) inline const std::string id{text};
AIOV_PASS_OP_NAMES(AIOV_DECLARE_OP_NAME)
#undef AIOV_DECLARE_OP_NAME
// Graph node kinds that are not ops of the registry (see make_parameter, make_constant).
inline const std::string Parameter{"Parameter"};
inline const std::string Constant{"Constant"};
}  // namespace op_name

// The registry names above, in list order.
std::vector<std::string> pass_op_names();
// Throws std::logic_error naming every name above that the op registry does not know.
void check_pass_op_names();

}  // namespace aiov
