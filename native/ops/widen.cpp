// Ops whose kernels compute in f32 only run f16 and bf16 tensors through here: the inputs are
// widened to f32, the f32 kernel runs, and its outputs are narrowed back. This is the simple
// first step that lets f16 models load (convolutions, pooling, normalization); native half
// kernels can replace it op by op where speed matters.
#include <memory>
#include <vector>

#include "kernels/scalar.hpp"
#include "plan/registry.hpp"

namespace aiov {
namespace {

bool is_half(ElementType t) { return t == ElementType::f16 || t == ElementType::bf16; }

void widen(ElementType t, const void* src, float* dst, int64_t n) {
  const uint16_t* s = static_cast<const uint16_t*>(src);
  if (t == ElementType::f16)
    for (int64_t i = 0; i < n; ++i) dst[i] = half_to_float(s[i]);
  else
    for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_float(s[i]);
}

void narrow(ElementType t, const float* src, void* dst, int64_t n) {
  uint16_t* d = static_cast<uint16_t*>(dst);
  if (t == ElementType::f16)
    for (int64_t i = 0; i < n; ++i) d[i] = float_to_half(src[i]);
  else
    for (int64_t i = 0; i < n; ++i) d[i] = float_to_bf16(src[i]);
}

}  // namespace

KernelFn prepare_in_f32(const PrepareContext& ctx, PrepareFn f32_prepare) {
  std::vector<bool> in_half(ctx.in.size()), out_half(ctx.out.size());
  bool any = false;
  for (size_t i = 0; i < ctx.in.size(); ++i) any |= (in_half[i] = is_half(ctx.in[i].type));
  for (size_t i = 0; i < ctx.out.size(); ++i) any |= (out_half[i] = is_half(ctx.out[i].type));
  if (!any) return f32_prepare(ctx);
  // The f32 kernel's plan: widened copies of the inputs known now (filters, scales), which it
  // may keep pointers into. Their bytes are not the model's, so nothing is shared by address.
  PrepareContext wide{ctx.node, ctx.in, ctx.out, nullptr, {}};
  auto known = std::make_shared<std::vector<std::vector<float>>>(ctx.in.size());
  for (size_t i = 0; i < ctx.in.size(); ++i) {
    if (!in_half[i]) continue;
    wide.in[i].type = ElementType::f32;
    if (ctx.in[i].data) {
      (*known)[i].resize((size_t)ctx.in[i].count());
      widen(ctx.in[i].type, ctx.in[i].data, (*known)[i].data(), ctx.in[i].count());
      wide.in[i].data = (*known)[i].data();
    }
  }
  for (size_t i = 0; i < ctx.out.size(); ++i)
    if (out_half[i]) wide.out[i].type = ElementType::f32;
  KernelFn inner = f32_prepare(wide);
  std::vector<ElementType> in_types, out_types;
  for (const auto& t : ctx.in) in_types.push_back(t.type);
  for (const auto& t : ctx.out) out_types.push_back(t.type);
  return [inner, in_half, out_half, in_types, out_types, known](const KernelArgs& a) {
    const size_t ni = in_half.size(), no = out_half.size();
    std::vector<TensorView> in(ni), out(no);
    std::vector<std::vector<float>> in_buf(ni), out_buf(no);
    std::vector<const TensorView*> in_ptr(ni), out_ptr(no);
    for (size_t i = 0; i < ni; ++i) {
      in[i] = *a.in[i];
      if (in_half[i]) {
        in[i].type = ElementType::f32;
        if ((*known)[i].empty() || (int64_t)(*known)[i].size() != in[i].count()) {
          in_buf[i].resize((size_t)in[i].count());
          widen(in_types[i], a.in[i]->data, in_buf[i].data(), in[i].count());
          in[i].data = in_buf[i].data();
        } else {
          in[i].data = (*known)[i].data();  // a constant: widened once at plan time
        }
      }
      in_ptr[i] = &in[i];
    }
    for (size_t i = 0; i < no; ++i) {
      out[i] = *a.out[i];
      if (out_half[i]) {
        out[i].type = ElementType::f32;
        out_buf[i].resize((size_t)out[i].count());
        out[i].data = out_buf[i].data();
      }
      out_ptr[i] = &out[i];
    }
    inner(KernelArgs{in_ptr.data(), out_ptr.data(), a.ctx});
    for (size_t i = 0; i < no; ++i)
      if (out_half[i]) narrow(out_types[i], out_buf[i].data(), a.out[i]->data, out[i].count());
  };
}

}  // namespace aiov
