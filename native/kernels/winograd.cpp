#include "kernels/winograd.hpp"

#include <algorithm>
#include <cstring>

#include "executor/executor.hpp"
#include "kernels/dispatch.hpp"

namespace aiov {
namespace {

constexpr int kTaps = 16;  // a 4x4 tile: transformed values per channel

// v[k * vs + c] = (B^T d B)[k] for the 4x4 tile d whose pixel (i, j) starts at px[4 i + j]
// (channel-contiguous), B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1].
AIOV_MULTIVERSION void input_transform(const float* const* px, int64_t C, float* v, int64_t vs) {
#pragma GCC ivdep
  for (int64_t c = 0; c < C; ++c) {
    float d[4][4], t[4][4];
    for (int i = 0; i < 4; ++i)
      for (int j = 0; j < 4; ++j) d[i][j] = px[i * 4 + j][c];
    for (int j = 0; j < 4; ++j) {  // columns: B^T d
      t[0][j] = d[0][j] - d[2][j];
      t[1][j] = d[1][j] + d[2][j];
      t[2][j] = d[2][j] - d[1][j];
      t[3][j] = d[1][j] - d[3][j];
    }
    for (int i = 0; i < 4; ++i) {  // rows: (B^T d) B
      v[(i * 4 + 0) * vs + c] = t[i][0] - t[i][2];
      v[(i * 4 + 1) * vs + c] = t[i][1] + t[i][2];
      v[(i * 4 + 2) * vs + c] = t[i][2] - t[i][1];
      v[(i * 4 + 3) * vs + c] = t[i][1] - t[i][3];
    }
  }
}

// out[(2 a + b) * O + o] = (A^T m A)[a][b] + bias[o] with m[k] = mx[k * ms + o] and
// A^T = [1 1 1 0; 0 1 -1 -1].
AIOV_MULTIVERSION void output_transform(const float* mx, int64_t ms, int64_t O, const float* bias, float* out) {
#pragma GCC ivdep
  for (int64_t o = 0; o < O; ++o) {
    float m[4][4], s[4][2];
    for (int k = 0; k < kTaps; ++k) m[k / 4][k % 4] = mx[k * ms + o];
    for (int i = 0; i < 4; ++i) {  // rows: m A
      s[i][0] = m[i][0] + m[i][1] + m[i][2];
      s[i][1] = m[i][1] - m[i][2] - m[i][3];
    }
    const float b = bias ? bias[o] : 0.0f;
    for (int j = 0; j < 2; ++j) {  // columns: A^T (m A)
      out[(0 + j) * O + o] = s[0][j] + s[1][j] + s[2][j] + b;
      out[(2 + j) * O + o] = s[1][j] - s[2][j] - s[3][j] + b;
    }
  }
}

// Per-thread work memory, grown to the largest block seen and then reused.
float* work_buffer(size_t floats) {
  thread_local std::vector<float> buffer;
  if (buffer.size() < floats) buffer.resize(floats);
  return buffer.data();
}

}  // namespace

bool Winograd2x3::worthwhile(const Window2d& g, int64_t O) {
  if (g.kh != 3 || g.kw != 3 || g.sh != 1 || g.sw != 1 || g.dh != 1 || g.dw != 1) return false;
  const int64_t tiles = g.N * ((g.OH + 1) / 2) * ((g.OW + 1) / 2);
  const double weight_bytes = 16.0 * (double)g.C * (double)O * sizeof(float);
  return g.C >= 16 && O >= 16 && tiles >= 32 && weight_bytes <= 8e6;
}

WinogradFilters::WinogradFilters(int64_t C, int64_t O, const float* filters, const std::vector<float>& scale) {
  // U = G f G^T per (o, c), G = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1]; stored as 16
  // matrices [C, O] for the GEMM's packed B.
  std::vector<float> all((size_t)(kTaps * C * O));
  for (int64_t o = 0; o < O; ++o)
    for (int64_t c = 0; c < C; ++c) {
      const float* raw = filters + (o * C + c) * 9;
      float f[9];
      for (int j = 0; j < 9; ++j) f[j] = scale.empty() ? raw[j] : raw[j] * scale[o];
      float gf[4][3];
      for (int j = 0; j < 3; ++j) {
        gf[0][j] = f[j];
        gf[1][j] = 0.5f * (f[j] + f[3 + j] + f[6 + j]);
        gf[2][j] = 0.5f * (f[j] - f[3 + j] + f[6 + j]);
        gf[3][j] = f[6 + j];
      }
      for (int i = 0; i < 4; ++i) {
        const float row[4] = {gf[i][0], 0.5f * (gf[i][0] + gf[i][1] + gf[i][2]),
                              0.5f * (gf[i][0] - gf[i][1] + gf[i][2]), gf[i][2]};
        for (int j = 0; j < 4; ++j) all[((size_t)(i * 4 + j) * C + c) * O + o] = row[j];
      }
    }
  for (int k = 0; k < kTaps; ++k)
    u.push_back(std::make_unique<PackedB>(false, C, O, all.data() + (size_t)k * C * O, O));
}

Winograd2x3::Winograd2x3(const Window2d& g, int64_t O, std::shared_ptr<const WinogradFilters> filters)
    : g_(g), O_(O), tiles_y_((g.OH + 1) / 2), tiles_x_((g.OW + 1) / 2), tiles_(g.N * tiles_y_ * tiles_x_),
      filters_(std::move(filters)) {}

void Winograd2x3::block(const float* x, int64_t t0, int64_t count, const Epilogue& e, float* y) const {
  const Window2d& g = g_;
  const int64_t C = g.C, O = O_;
  float* v = work_buffer((size_t)(kTaps * count * (C + O) + 4 * O + C));
  float* mx = v + kTaps * count * C;
  float* out = mx + kTaps * count * O;
  float* zeros = out + 4 * O;
  std::fill(zeros, zeros + C, 0.0f);

  const float* px[kTaps];
  for (int64_t t = 0; t < count; ++t) {
    const int64_t tile = t0 + t, n = tile / (tiles_y_ * tiles_x_), r = tile % (tiles_y_ * tiles_x_);
    const int64_t iy0 = (r / tiles_x_) * 2 - g.ph, ix0 = (r % tiles_x_) * 2 - g.pw;
    for (int i = 0; i < 4; ++i)
      for (int j = 0; j < 4; ++j) {
        const int64_t iy = iy0 + i, ix = ix0 + j;
        px[i * 4 + j] = iy < 0 || iy >= g.H || ix < 0 || ix >= g.W ? zeros : x + ((n * g.H + iy) * g.W + ix) * C;
      }
    input_transform(px, C, v + t * C, count * C);
  }
  const Epilogue none;
  for (int k = 0; k < kTaps; ++k)
    sgemm_packed(false, count, v + k * count * C, C, *filters_->u[k], none, mx + k * count * O, O, nullptr);
  const bool more = e.residual || e.act.kind != ActKind::none;
  for (int64_t t = 0; t < count; ++t) {
    const int64_t tile = t0 + t, n = tile / (tiles_y_ * tiles_x_), r = tile % (tiles_y_ * tiles_x_);
    const int64_t oy0 = (r / tiles_x_) * 2, ox0 = (r % tiles_x_) * 2;
    output_transform(mx + t * O, count * O, O, e.bias, out);
    for (int a = 0; a < 2; ++a)
      for (int b = 0; b < 2; ++b) {
        if (oy0 + a >= g.OH || ox0 + b >= g.OW) continue;
        const int64_t pixel = (n * g.OH + oy0 + a) * g.OW + ox0 + b;
        float* o = out + (2 * a + b) * O;
        // Finished in the scratch row first: the residual may be y itself.
        if (more) apply_epilogue_row(o, O, nullptr, e.residual ? e.residual + pixel * e.ld_residual : nullptr, e.act);
        std::memcpy(y + pixel * O, o, (size_t)O * sizeof(float));
      }
  }
}

void Winograd2x3::run(const float* x, const Epilogue& e, float* y, ThreadPool* pool, int max_threads) const {
  // Tiles per block: the block's transformed inputs and products (16 x tiles x (C + O))
  // stay within ~512 KiB of L2; the block count is a multiple of the threads.
  const int64_t fit = std::max<int64_t>(8, (int64_t(512) << 10) / (kTaps * (g_.C + O_) * (int64_t)sizeof(float)));
  const int threads = pool ? pool->usable_threads(max_threads) : 1;
  int64_t blocks = (tiles_ + fit - 1) / fit;
  blocks = (blocks + threads - 1) / threads * threads;
  const int64_t per = (tiles_ + blocks - 1) / blocks;
  blocks = (tiles_ + per - 1) / per;
  auto run_blocks = [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) block(x, b * per, std::min(per, tiles_ - b * per), e, y);
  };
  if (pool && threads > 1 && blocks > 1)
    pool->parallel_for(blocks, 1, run_blocks, max_threads);
  else
    run_blocks(0, blocks);
}

}  // namespace aiov
