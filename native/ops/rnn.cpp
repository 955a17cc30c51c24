// LSTM, GRU and RNN with ONNX's semantics (opset 7 and 14): inputs in ONNX's order (X, W, R,
// B, sequence_lens, initial_h[, initial_c, P]), gates in ONNX's order (LSTM i o f c, GRU z r h),
// every direction, both layouts, the activation lists, clip, input_forget and
// linear_before_reset. An optional input that is absent is given as an empty 1-D tensor, so
// the inputs keep their places.
//
// The input projection X W^T of every timestep is one GEMM per direction before the
// recurrence; each step then runs one GEMM H R^T (two for GRU without linear_before_reset)
// and an elementwise pass over the gates. Constant W and R are packed once per compiled model.
#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "executor/executor.hpp"
#include "kernels/epilogue.hpp"
#include "kernels/gemm.hpp"
#include "plan/registry.hpp"

namespace aiov {
namespace {

enum class Cell { lstm, gru, rnn };

struct CellInfo {
  int gates;         // gate blocks of hidden_size rows in W and R
  int acts_per_dir;  // activation functions per direction
  int max_inputs;
  const char* defaults[3];
};

CellInfo info_of(Cell c) {
  switch (c) {
    case Cell::lstm:
      return {4, 3, 8, {"Sigmoid", "Tanh", "Tanh"}};
    case Cell::gru:
      return {3, 2, 6, {"Sigmoid", "Tanh", nullptr}};
    default:
      return {1, 1, 6, {"Tanh", nullptr, nullptr}};
  }
}

Cell cell_of(const Node& n) { return n.op == "LSTM" ? Cell::lstm : n.op == "GRU" ? Cell::gru : Cell::rnn; }

// ---- activation functions (ONNX's list for recurrent ops) --------------------------------

enum class Fn {
  sigmoid,
  tanh,
  relu,
  affine,
  leaky_relu,
  thresholded_relu,
  scaled_tanh,
  hard_sigmoid,
  elu,
  softsign,
  softplus
};

struct FnSpec {
  const char* name;
  Fn fn;
  int params;         // 0: none, 1: alpha, 2: alpha and beta
  float alpha, beta;  // defaults when the lists run out
};

const FnSpec kFns[] = {
    {"sigmoid", Fn::sigmoid, 0, 0, 0},
    {"tanh", Fn::tanh, 0, 0, 0},
    {"relu", Fn::relu, 0, 0, 0},
    {"affine", Fn::affine, 2, 1.0f, 0.0f},
    {"leakyrelu", Fn::leaky_relu, 1, 0.01f, 0},
    {"thresholdedrelu", Fn::thresholded_relu, 1, 1.0f, 0},
    {"scaledtanh", Fn::scaled_tanh, 2, 1.0f, 1.0f},
    {"hardsigmoid", Fn::hard_sigmoid, 2, 0.2f, 0.5f},
    {"elu", Fn::elu, 1, 1.0f, 0},
    {"softsign", Fn::softsign, 0, 0, 0},
    {"softplus", Fn::softplus, 0, 0, 0},
};

struct Act {
  Fn fn = Fn::sigmoid;
  float alpha = 0, beta = 0;
};

// x[0:n] = f(clip(x)) in place (clip 0: no clipping).
void apply(const Act& a, float* x, int64_t n, float clip) {
  if (clip > 0)
    for (int64_t i = 0; i < n; ++i) x[i] = std::min(std::max(x[i], -clip), clip);
  // The common ones run through the epilogue's vectorized loop.
  if (a.fn == Fn::sigmoid || a.fn == Fn::tanh || a.fn == Fn::relu) {
    Activation act;
    act.kind = a.fn == Fn::sigmoid ? ActKind::sigmoid : a.fn == Fn::tanh ? ActKind::tanh : ActKind::relu;
    apply_epilogue_row(x, n, nullptr, nullptr, act);
    return;
  }
  const float al = a.alpha, be = a.beta;
  switch (a.fn) {
    case Fn::sigmoid:
      for (int64_t i = 0; i < n; ++i) x[i] = 1.0f / (1.0f + std::exp(-x[i]));
      break;
    case Fn::tanh:
      for (int64_t i = 0; i < n; ++i) x[i] = std::tanh(x[i]);
      break;
    case Fn::relu:
      for (int64_t i = 0; i < n; ++i) x[i] = std::max(x[i], 0.0f);
      break;
    case Fn::affine:
      for (int64_t i = 0; i < n; ++i) x[i] = al * x[i] + be;
      break;
    case Fn::leaky_relu:
      for (int64_t i = 0; i < n; ++i) x[i] = x[i] >= 0 ? x[i] : al * x[i];
      break;
    case Fn::thresholded_relu:
      for (int64_t i = 0; i < n; ++i) x[i] = x[i] > al ? x[i] : 0.0f;
      break;
    case Fn::scaled_tanh:
      for (int64_t i = 0; i < n; ++i) x[i] = al * std::tanh(be * x[i]);
      break;
    case Fn::hard_sigmoid:
      for (int64_t i = 0; i < n; ++i) x[i] = std::min(1.0f, std::max(0.0f, al * x[i] + be));
      break;
    case Fn::elu:
      for (int64_t i = 0; i < n; ++i) x[i] = x[i] >= 0 ? x[i] : al * (std::exp(x[i]) - 1.0f);
      break;
    case Fn::softsign:
      for (int64_t i = 0; i < n; ++i) x[i] = x[i] / (1.0f + std::fabs(x[i]));
      break;
    case Fn::softplus:
      for (int64_t i = 0; i < n; ++i) x[i] = x[i] > 20.0f ? x[i] : std::log1p(std::exp(x[i]));
      break;
  }
}

std::vector<std::string> split_names(const std::string& s) {
  std::vector<std::string> out;
  std::string cur;
  for (char ch : s) {
    if (ch == ',') {
      out.push_back(cur);
      cur.clear();
    } else if (!std::isspace((unsigned char)ch))
      cur += ch;
  }
  if (!s.empty()) out.push_back(cur);
  return out;
}

int num_directions(const Node& n) { return n.attr_str("direction") == "bidirectional" ? 2 : 1; }

// The activation functions of each direction, alpha and beta taken in order from the lists
// by the functions that have them (the defaults once a list runs out), as onnxruntime does.
std::vector<Act> activations(const Node& n) {
  const CellInfo ci = info_of(cell_of(n));
  const int nd = num_directions(n);
  std::vector<std::string> names = split_names(n.attr_str("activations"));
  if (names.empty())
    for (int d = 0; d < nd; ++d)
      for (int k = 0; k < ci.acts_per_dir; ++k) names.push_back(ci.defaults[k]);
  if ((int)names.size() != nd * ci.acts_per_dir)
    throw InputError(n.describe() + ": activations needs " + std::to_string(nd * ci.acts_per_dir) + " functions (" +
                     std::to_string(ci.acts_per_dir) + " per direction), got '" + n.attr_str("activations") + "'");
  std::vector<double> alphas = n.attr_floats("activation_alpha"), betas = n.attr_floats("activation_beta");
  size_t ai = 0, bi = 0;
  std::vector<Act> out;
  for (const std::string& name : names) {
    std::string low;
    for (char ch : name) low += (char)std::tolower((unsigned char)ch);
    const FnSpec* spec = nullptr;
    for (const FnSpec& f : kFns)
      if (low == f.name) spec = &f;
    if (!spec)
      throw NotSupported(n.describe() + ": activation '" + name +
                         "' is not supported (Sigmoid, Tanh, Relu, Affine, LeakyRelu, ThresholdedRelu, "
                         "ScaledTanh, HardSigmoid, Elu, Softsign, Softplus)");
    Act a{spec->fn, spec->alpha, spec->beta};
    if (spec->params >= 1 && ai < alphas.size()) a.alpha = (float)alphas[ai++];
    if (spec->params >= 2 && bi < betas.size()) a.beta = (float)betas[bi++];
    out.push_back(a);
  }
  return out;
}

bool given(const PortInfo& p) { return !(p.shape.rank_known && p.shape.rank() == 1 && p.shape.dims[0] == 0); }

// ---- inference ----------------------------------------------------------------------------

std::vector<PortInfo> infer_rnn(const InferContext& c) {
  const Node& n = c.node;
  const Cell cell = cell_of(n);
  const CellInfo ci = info_of(cell);
  const int nd = num_directions(n);
  const bool batch_first = n.attr_int("layout") == 1;
  for (int i = 0; i < 3; ++i) {
    if (c.in[i].type != ElementType::f32)
      throw NotSupported(n.describe() + ": X, W and R must be f32, input " + std::to_string(i) + " is " +
                         type_name(c.in[i].type));
    if (c.in[i].shape.rank_known && c.in[i].shape.rank() != 3)
      throw InputError(n.describe() + ": X, W and R must have rank 3, input " + std::to_string(i) + " is " +
                       c.in[i].shape.str());
  }
  activations(n);  // names and counts are checked here, before any plan
  int64_t H = n.attr_int("hidden_size");
  const PartialShape& w = c.in[1].shape;
  if (w.rank_known && w.dims[1] >= 0) {
    if (w.dims[1] % ci.gates || (H && w.dims[1] != ci.gates * H))
      throw InputError(n.describe() + ": W " + w.str() + " needs " + std::to_string(ci.gates) + " x hidden_size rows" +
                       (H ? " (hidden_size " + std::to_string(H) + ")" : std::string()));
    H = w.dims[1] / ci.gates;
  }
  if (w.rank_known && w.dims[0] >= 0 && w.dims[0] != nd)
    throw InputError(n.describe() + ": W " + w.str() + " has " + std::to_string(w.dims[0]) + " directions, " +
                     n.attr_str("direction") + " needs " + std::to_string(nd));
  const int64_t h = H ? H : -1;
  int64_t seq = -1, batch = -1;
  const PartialShape& x = c.in[0].shape;
  if (x.rank_known) {
    seq = x.dims[batch_first ? 1 : 0];
    batch = x.dims[batch_first ? 0 : 1];
  }
  for (size_t i = 3; i < c.in.size(); ++i)
    if (given(c.in[i]) && (i == 4 ? c.in[i].type != ElementType::i32 && c.in[i].type != ElementType::i64
                                  : c.in[i].type != ElementType::f32))
      throw InputError(n.describe() + ": input " + std::to_string(i) + " must be " + (i == 4 ? "i32 or i64" : "f32") +
                       ", got " + type_name(c.in[i].type));
  PartialShape y = batch_first ? PartialShape(Dims{batch, seq, nd, h}) : PartialShape(Dims{seq, nd, batch, h});
  PartialShape last = batch_first ? PartialShape(Dims{batch, nd, h}) : PartialShape(Dims{nd, batch, h});
  std::vector<PortInfo> out{PortInfo{ElementType::f32, y}, PortInfo{ElementType::f32, last}};
  if (cell == Cell::lstm) out.push_back(PortInfo{ElementType::f32, last});
  return out;
}

// ---- kernel -------------------------------------------------------------------------------

// out[M, N] = A[M, K] * op(B)^T for B stored [N, K]: packed once when B is a constant.
struct Product {
  std::shared_ptr<const PackedB> packed;
  int64_t N = 0, K = 0;
  int input = -1;
  int64_t offset = 0;  // of B within the input, in floats

  void run(const KernelArgs& a, int64_t M, const float* A, int64_t lda, float* C, int64_t ldc) const {
    if (M == 0 || N == 0) return;
    if (K == 0) {
      for (int64_t m = 0; m < M; ++m) std::fill(C + m * ldc, C + m * ldc + N, 0.0f);
    } else if (packed) {
      sgemm_packed(false, M, A, lda, *packed, Epilogue{}, C, ldc, a.ctx->pool, a.ctx->max_threads);
    } else {
      const float* B = a.in[input]->as<float>() + offset;
      sgemm(false, true, M, N, K, 1.0f, A, lda, B, K, 0.0f, C, ldc, a.ctx->pool, a.ctx->max_threads);
    }
  }
};

Product product(const PrepareContext& ctx, int input, int64_t offset, int64_t N, int64_t K, int64_t rows,
                const std::string& tag) {
  Product p;
  p.N = N;
  p.K = K;
  p.input = input;
  p.offset = offset;
  if (ctx.in[input].data && N > 0 && K > 0) {
    const float* B = static_cast<const float*>(ctx.in[input].data) + offset;
    p.packed = ctx.derived<PackedB>(
        input, "PackedB " + tag + " " + std::to_string(offset) + " " + PackedB::layout(true, K, N, K, rows),
        [&] { return std::make_shared<PackedB>(true, K, N, B, K, rows); },
        [&](const PackedB& b) { return b.fits(K, N, rows, GemmPrecision::f32); });
  }
  return p;
}

struct Plan {
  Cell cell;
  int nd;
  bool batch_first, reverse_only, input_forget, lbr;
  int64_t S, Bt, I, H, G;
  float clip;
  std::vector<Act> acts;
  bool has_b, has_lens, has_h0, has_c0, has_p;
  std::vector<Product> xw;    // per direction: X W^T
  std::vector<Product> hr;    // per direction: H R^T (GRU without lbr: the z and r rows)
  std::vector<Product> hr_h;  // GRU without lbr: (r . H) Rh^T
};

void check_dims(const PrepareContext& ctx, size_t i, const Dims& want, const char* what) {
  if (ctx.in[i].shape != want)
    throw InputError(ctx.node.describe() + ": " + what + " must be " + dims_str(want) + ", got " +
                     dims_str(ctx.in[i].shape));
}

void run_rnn(const Plan& p, const KernelArgs& a) {
  const int64_t S = p.S, Bt = p.Bt, H = p.H, G = p.G, GH = G * H, nd = p.nd;
  const float* X = a.in[0]->as<float>();
  float* Y = a.out[0]->as<float>();
  float* Yh = a.out[1]->as<float>();
  float* Yc = p.cell == Cell::lstm ? a.out[2]->as<float>() : nullptr;
  std::vector<int64_t> lens(Bt, S);
  if (p.has_lens) {
    const TensorView& t = *a.in[4];
    for (int64_t b = 0; b < Bt; ++b) {
      int64_t v = t.type == ElementType::i32 ? t.as<int32_t>()[b] : t.as<int64_t>()[b];
      if (v < 0 || v > S)
        throw InputError("sequence_lens[" + std::to_string(b) + "] = " + std::to_string(v) + " is outside [0, " +
                         std::to_string(S) + "]");
      lens[b] = v;
    }
  }
  const int64_t steps = Bt ? *std::max_element(lens.begin(), lens.end()) : 0;
  // Output rows per (time, direction, batch) in either layout.
  auto y_at = [&](int64_t t, int64_t d, int64_t b) {
    return Y + (p.batch_first ? ((b * S + t) * nd + d) * H : ((t * nd + d) * Bt + b) * H);
  };
  auto last_at = [&](float* base, int64_t d, int64_t b) {
    return base + (p.batch_first ? (b * nd + d) * H : (d * Bt + b) * H);
  };
  auto x_row = [&](int64_t t, int64_t b) { return p.batch_first ? b * S + t : t * Bt + b; };
  std::memset(Y, 0, sizeof(float) * S * nd * Bt * H);

  std::vector<float> xw((size_t)(S * Bt * GH)), hr((size_t)(Bt * GH)), h((size_t)(Bt * H)), gates((size_t)(Bt * GH)), c,
      rh;
  if (p.cell == Cell::lstm) c.resize((size_t)(Bt * H));
  if (p.cell == Cell::gru && !p.lbr) rh.assign((size_t)(Bt * H), 0.0f);
  const int per_dir = (int)p.acts.size() / (int)nd;
  // GRU sums only its z and r blocks before the activations; its h block is finished apart.
  const int64_t summed = p.cell == Cell::gru ? 2 * H : GH;
  for (int64_t d = 0; d < nd; ++d) {
    const bool reverse = p.reverse_only || d == 1;
    const Act* act = p.acts.data() + d * per_dir;
    p.xw[d].run(a, S * Bt, X, p.I, xw.data(), GH);
    const float* bias = p.has_b ? a.in[3]->as<float>() + d * 2 * GH : nullptr;  // Wb then Rb
    const float* peep = p.has_p ? a.in[7]->as<float>() + d * 3 * H : nullptr;   // i, o, f
    for (int64_t b = 0; b < Bt; ++b) {
      float* hb = h.data() + b * H;
      if (p.has_h0)
        std::memcpy(hb, last_at(a.in[5]->as<float>(), d, b), sizeof(float) * H);
      else
        std::fill(hb, hb + H, 0.0f);
      if (p.cell == Cell::lstm) {
        float* cb = c.data() + b * H;
        if (p.has_c0)
          std::memcpy(cb, last_at(a.in[6]->as<float>(), d, b), sizeof(float) * H);
        else
          std::fill(cb, cb + H, 0.0f);
      }
    }
    // Rows past their sequence's end keep their state and write nothing.
    auto time_of = [&](int64_t s, int64_t b) { return reverse ? lens[b] - 1 - s : s; };
    for (int64_t s = 0; s < steps; ++s) {
      p.hr[d].run(a, Bt, h.data(), H, hr.data(), GH);  // GRU without lbr: its z and r columns
      for (int64_t b = 0; b < Bt; ++b) {
        if (s >= lens[b]) continue;
        const float* xr = xw.data() + x_row(time_of(s, b), b) * GH;
        const float* hrr = hr.data() + b * GH;
        float* g = gates.data() + b * GH;
        float* hb = h.data() + b * H;
        for (int64_t j = 0; j < summed; ++j) g[j] = xr[j] + hrr[j] + (bias ? bias[j] + bias[GH + j] : 0.0f);
        if (p.cell == Cell::rnn) {
          apply(act[0], g, H, p.clip);
          std::memcpy(hb, g, sizeof(float) * H);
        } else if (p.cell == Cell::lstm) {
          float* cb = c.data() + b * H;
          float *gi = g, *go = gi + H, *gf = go + H, *gc = gf + H;
          if (peep)
            for (int64_t j = 0; j < H; ++j) {
              gi[j] += peep[j] * cb[j];
              gf[j] += peep[2 * H + j] * cb[j];
            }
          apply(act[0], gi, H, p.clip);
          if (p.input_forget)
            for (int64_t j = 0; j < H; ++j) gf[j] = 1.0f - gi[j];
          else
            apply(act[0], gf, H, p.clip);
          apply(act[1], gc, H, p.clip);
          for (int64_t j = 0; j < H; ++j) cb[j] = gf[j] * cb[j] + gi[j] * gc[j];
          if (peep)
            for (int64_t j = 0; j < H; ++j) go[j] += peep[H + j] * cb[j];
          apply(act[0], go, H, p.clip);
          std::memcpy(gc, cb, sizeof(float) * H);  // h = o * act2(c), act2 on a copy of c
          apply(act[2], gc, H, 0.0f);
          for (int64_t j = 0; j < H; ++j) hb[j] = go[j] * gc[j];
        } else {
          apply(act[0], g, 2 * H, p.clip);  // z, r
          if (!p.lbr)
            for (int64_t j = 0; j < H; ++j) rh[b * H + j] = g[H + j] * hb[j];
        }
      }
      if (p.cell == Cell::gru) {
        // h~ = act1(x Wh^T + Wbh + (r . h) Rh^T + Rbh), or with linear_before_reset
        // act1(x Wh^T + Wbh + r . (h Rh^T + Rbh)); the former needs r before its product.
        if (!p.lbr) p.hr_h[d].run(a, Bt, rh.data(), H, hr.data() + 2 * H, GH);
        for (int64_t b = 0; b < Bt; ++b) {
          if (s >= lens[b]) continue;
          const float* xh = xw.data() + x_row(time_of(s, b), b) * GH + 2 * H;
          const float* hrh = hr.data() + b * GH + 2 * H;
          float* g = gates.data() + b * GH;
          const float *z = g, *r = g + H;
          float* gh = g + 2 * H;
          float* hb = h.data() + b * H;
          const float* wbh = bias ? bias + 2 * H : nullptr;
          const float* rbh = bias ? bias + GH + 2 * H : nullptr;
          for (int64_t j = 0; j < H; ++j) {
            const float rec = hrh[j] + (rbh ? rbh[j] : 0.0f);
            gh[j] = xh[j] + (wbh ? wbh[j] : 0.0f) + (p.lbr ? r[j] * rec : rec);
          }
          apply(act[1], gh, H, p.clip);
          for (int64_t j = 0; j < H; ++j) hb[j] = (1.0f - z[j]) * gh[j] + z[j] * hb[j];
        }
      }
      for (int64_t b = 0; b < Bt; ++b)
        if (s < lens[b]) std::memcpy(y_at(time_of(s, b), d, b), h.data() + b * H, sizeof(float) * H);
    }
    // An empty sequence has no last step: its Y_h (Y_c) is zero, as onnxruntime gives.
    for (int64_t b = 0; b < Bt; ++b) {
      if (lens[b] == 0) {
        std::fill(last_at(Yh, d, b), last_at(Yh, d, b) + H, 0.0f);
        if (Yc) std::fill(last_at(Yc, d, b), last_at(Yc, d, b) + H, 0.0f);
        continue;
      }
      std::memcpy(last_at(Yh, d, b), h.data() + b * H, sizeof(float) * H);
      if (Yc) std::memcpy(last_at(Yc, d, b), c.data() + b * H, sizeof(float) * H);
    }
  }
}

KernelFn prepare_rnn(const PrepareContext& ctx) {
  const Node& n = ctx.node;
  auto p = std::make_shared<Plan>();
  p->cell = cell_of(n);
  const CellInfo ci = info_of(p->cell);
  p->nd = num_directions(n);
  p->reverse_only = n.attr_str("direction") == "reverse";
  p->batch_first = n.attr_int("layout") == 1;
  p->input_forget = p->cell == Cell::lstm && n.attr_int("input_forget") != 0;
  p->lbr = p->cell == Cell::gru && n.attr_int("linear_before_reset") != 0;
  p->clip = (float)n.attr_float("clip");
  p->acts = activations(n);
  const Dims& x = ctx.in[0].shape;
  p->S = x[p->batch_first ? 1 : 0];
  p->Bt = x[p->batch_first ? 0 : 1];
  p->I = x[2];
  p->G = ci.gates;
  const Dims& w = ctx.in[1].shape;
  p->H = w[1] / ci.gates;
  const int64_t S = p->S, Bt = p->Bt, H = p->H, G = p->G, nd = p->nd;
  check_dims(ctx, 1, Dims{nd, G * H, p->I}, "W");
  check_dims(ctx, 2, Dims{nd, G * H, H}, "R");
  auto has = [&](size_t i) { return i < ctx.in.size() && !(ctx.in[i].shape == Dims{0}); };
  const Dims last = p->batch_first ? Dims{Bt, nd, H} : Dims{nd, Bt, H};
  if ((p->has_b = has(3))) check_dims(ctx, 3, Dims{nd, 2 * G * H}, "B");
  if ((p->has_lens = has(4))) check_dims(ctx, 4, Dims{Bt}, "sequence_lens");
  if ((p->has_h0 = has(5))) check_dims(ctx, 5, last, "initial_h");
  if ((p->has_c0 = has(6))) check_dims(ctx, 6, last, "initial_c");
  if ((p->has_p = has(7))) check_dims(ctx, 7, Dims{nd, 3 * H}, "P");
  const bool split_h = p->cell == Cell::gru && !p->lbr;
  for (int64_t d = 0; d < nd; ++d) {
    p->xw.push_back(product(ctx, 1, d * G * H * p->I, G * H, p->I, S * Bt, "W"));
    p->hr.push_back(product(ctx, 2, d * G * H * H, split_h ? 2 * H : G * H, H, Bt, "R"));
    if (split_h) p->hr_h.push_back(product(ctx, 2, d * G * H * H + 2 * H * H, H, H, 1, "Rh"));
  }
  return [p](const KernelArgs& a) { run_rnn(*p, a); };
}

OpDef recurrent(const char* type, Cell cell, std::vector<AttrSpec> extra) {
  std::vector<AttrSpec> attrs{
      int_attr("hidden_size", 0).at_least(0),
      str_attr("direction", "forward", {"forward", "reverse", "bidirectional"}),
      int_attr("layout", 0).between(0, 1),
      // Gate pre-activations are clamped to [-clip, clip]; 0: not clipped.
      float_attr("clip", 0.0).at_least(0),
      // Comma-separated function names, per direction (empty: the op's defaults).
      str_attr("activations", ""),
      floats_attr("activation_alpha"),
      floats_attr("activation_beta"),
  };
  for (auto& e : extra) attrs.push_back(std::move(e));
  std::string ir = std::string("aiov.") + type, builder = type;
  for (auto& ch : builder) ch = (char)std::tolower((unsigned char)ch);
  return OpDef{type, 3, info_of(cell).max_inputs, infer_rnn, prepare_rnn}
      .with_attrs(std::move(attrs))
      .ir({ir}, "aiov1")
      .opset_builder(builder);
}

}  // namespace

void register_rnn_ops(OpRegistry& r) {
  r.add(recurrent("LSTM", Cell::lstm, {bool_attr("input_forget", false)}));
  r.add(recurrent("GRU", Cell::gru, {bool_attr("linear_before_reset", false)}));
  r.add(recurrent("RNN", Cell::rnn, {}));
}

}  // namespace aiov
