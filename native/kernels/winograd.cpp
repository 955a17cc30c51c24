#include "kernels/winograd.hpp"

#include <algorithm>
#include <cstring>

#include "executor/executor.hpp"
#include "kernels/dispatch.hpp"

namespace aiov {
namespace {

// The transforms run over `tiles` tiles of one row, each `step` floats after the last in x,
// C (input) or O (output) floats after the last in the block's buffers. Position k of a tile
// is read at x + at[k] (pixel (i, j) of the tile is position 4 i + j, channels contiguous)
// and its transformed value is stored at v + to[k].

// d[i][j] = p[i * 4 + j][c], unrolled so that the tile stays in registers.
inline __attribute__((always_inline)) void gather_tile(float (&d)[4][4], const float* const* p, int64_t c) {
#pragma GCC unroll 4
  for (int i = 0; i < 4; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) d[i][j] = p[i * 4 + j][c];
}

// (B^T d B) per 4x4 tile d, B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1].
AIOV_MULTIVERSION void input_transform(const float* x, const int64_t* at, int64_t step, int64_t tiles, int64_t C,
                                       float* v, const int64_t* to) {
  for (int64_t n = 0; n < tiles; ++n) {
    const float* px[16];
    float* t[16];
    for (int k = 0; k < 16; ++k) {
      px[k] = x + n * step + at[k];
      t[k] = v + n * C + to[k];
    }
#pragma GCC ivdep
    for (int64_t c = 0; c < C; ++c) {
      float d[4][4], u[4][4];
      gather_tile(d, px, c);
      for (int j = 0; j < 4; ++j) {  // columns: B^T d
        u[0][j] = d[0][j] - d[2][j];
        u[1][j] = d[1][j] + d[2][j];
        u[2][j] = d[2][j] - d[1][j];
        u[3][j] = d[1][j] - d[3][j];
      }
      for (int i = 0; i < 4; ++i) {  // rows: (B^T d) B
        t[i * 4 + 0][c] = u[i][0] - u[i][2];
        t[i * 4 + 1][c] = u[i][1] + u[i][2];
        t[i * 4 + 2][c] = u[i][2] - u[i][1];
        t[i * 4 + 3][c] = u[i][1] - u[i][3];
      }
    }
  }
}

// (A^T m A) + bias per tile, A^T = [1 1 1 0; 0 1 -1 -1], m[k] = mx[from[k] + o], output
// pixel (a, b) of tile n at y + n 2 O + a y_row + b O.
AIOV_MULTIVERSION void output_transform(const float* mx, const int64_t* from, int64_t tiles, int64_t O,
                                        const float* bias, float* y, int64_t y_row) {
  for (int64_t n = 0; n < tiles; ++n) {
    const float* mp[16];
    for (int k = 0; k < 16; ++k) mp[k] = mx + n * O + from[k];
    float* const out[2] = {y + n * 2 * O, y + n * 2 * O + y_row};
#pragma GCC ivdep
    for (int64_t o = 0; o < O; ++o) {
      float m[4][4], s[4][2];
      gather_tile(m, mp, o);
      for (int i = 0; i < 4; ++i) {  // rows: m A
        s[i][0] = m[i][0] + m[i][1] + m[i][2];
        s[i][1] = m[i][1] - m[i][2] - m[i][3];
      }
      const float b = bias ? bias[o] : 0.0f;
      for (int j = 0; j < 2; ++j) {  // columns: A^T (m A)
        out[0][j * O + o] = s[0][j] + s[1][j] + s[2][j] + b;
        out[1][j * O + o] = s[1][j] - s[2][j] - s[3][j] + b;
      }
    }
  }
}

// Per-thread work memory, grown to the largest block seen and then reused.
float* work_buffer(size_t floats) {
  thread_local std::vector<float> buffer;
  if (buffer.size() < floats) buffer.resize(floats);
  return buffer.data();
}

// G, the 1-D filter transform.
constexpr float kFilterRows[4][3] = {{1, 0, 0}, {0.5f, 0.5f, 0.5f}, {0.5f, -0.5f, 0.5f}, {0, 0, 1}};

}  // namespace

bool Winograd2x3::worthwhile(const Window2d& g, int64_t O) {
  // Stride 1 only. At stride 2 (25 products of 36 for a 5x5 tile to transform) the direct
  // paths now win: f32, fastest of 20-30 per node, at 32->64 and 64->64 channels on
  // [1,112,112,C] (1.02 vs 0.82-0.85 ms and 1.95 vs 1.60 ms on one thread), 128->128 on
  // [1,56,56,C] (1.69-1.95 vs 1.52-1.61 ms) and 256->256 on [1,28,28,C] (1.84-2.58 vs
  // 1.73-1.91 ms); on two threads the Winograd blocks barely scaled (0.91 vs 1.8-2.0 ms,
  // 0.96-1.03 vs 1.42-3.29 ms).
  if (g.kh != 3 || g.kw != 3 || g.dh != 1 || g.dw != 1 || g.sh != 1 || g.sw != 1) return false;
  const int64_t tiles = g.N * ((g.OH + 1) / 2) * ((g.OW + 1) / 2);
  const double weight_bytes = 16.0 * (double)g.C * (double)O * sizeof(float);
  // Single-threaded, [8, 8, 8, C] and [8, 16, 16, C] inputs: it lost to the direct paths at
  // 16 -> 24, 32, 64 channels (1.3-2.6x), 32 -> 32 and 64 (10%) and 64 -> 32 (20%), and won
  // from 48 -> 48 (15%) and at 64 -> 64 on large images.
  // Every tile must also share the reading of the transformed weights (16/9 of the filters)
  // with enough others: in ResNet-50 (f32, one thread, fastest of 15 per node, each layer's
  // weights cold as in any deep model) it won at [1,56,56,64] and [1,28,28,128] (784 and
  // 196 tiles, 0.3 and 5 KiB of weights per tile: 0.84 vs 1.12 ms, 1.12 vs 1.42 ms) and lost at
  // [1,14,14,256] (49 tiles, 86 KiB each: 1.80 vs 1.64 ms), although it won there with the
  // weights in cache.
  const bool weights_shared = weight_bytes <= (double)tiles * (32 << 10);
  return g.C >= 48 && O >= 48 && tiles >= 32 && weights_shared && weight_bytes <= 8e6;
}

WinogradFilters::WinogradFilters(int64_t C, int64_t O, const float* filters, const std::vector<float>& scale) {
  // U = G f G^T per (o, c), stored as 16 matrices [C, O] for the GEMM's packed B.
  const auto& G = kFilterRows;
  std::vector<float> all((size_t)(16 * C * O));
  for (int64_t o = 0; o < O; ++o)
    for (int64_t c = 0; c < C; ++c) {
      const float* raw = filters + (o * C + c) * 9;
      float f[3][3];
      for (int j = 0; j < 9; ++j) f[j / 3][j % 3] = scale.empty() ? raw[j] : raw[j] * scale[o];
      float gf[4][3];  // G f
      for (int a = 0; a < 4; ++a)
        for (int q = 0; q < 3; ++q) gf[a][q] = G[a][0] * f[0][q] + G[a][1] * f[1][q] + G[a][2] * f[2][q];
      for (int a = 0; a < 4; ++a)
        for (int b = 0; b < 4; ++b)
          all[((size_t)(a * 4 + b) * C + c) * O + o] = gf[a][0] * G[b][0] + gf[a][1] * G[b][1] + gf[a][2] * G[b][2];
    }
  for (int k = 0; k < 16; ++k) u.push_back(std::make_unique<PackedB>(false, C, O, all.data() + (size_t)k * C * O, O));
}

bool WinogradFilters::fits(int64_t C, int64_t O) const {
  if (u.size() != 16) return false;
  for (const auto& m : u)
    if (!m || !m->fits(C, O, -1, GemmPrecision::f32)) return false;
  return true;
}

Winograd2x3::Winograd2x3(const Window2d& g, int64_t O, std::shared_ptr<const WinogradFilters> filters)
    : g_(g),
      O_(O),
      tiles_y_((g.OH + 1) / 2),
      tiles_x_((g.OW + 1) / 2),
      tiles_(g.N * tiles_y_ * tiles_x_),
      filters_(std::move(filters)) {}

void Winograd2x3::block(const float* x, int64_t t0, int64_t count, const Epilogue& e, float* y) const {
  const Window2d& g = g_;
  // A tile is 4x4 input pixels, 2 apart from the next; its 16 transformed positions each
  // get a [count, C] block of v (the GEMM's A) and a [count, O] block of mx (its C).
  const int64_t C = g.C, O = O_, P = 16, side = 4, step = 2;
  float* v = work_buffer((size_t)(P * count * (C + O) + 4 * O + P * C));
  float* mx = v + P * count * C;
  float* out = mx + P * count * O;
  float* edge = out + 4 * O;  // a border tile, its outside pixels zero

  int64_t at[16], at_edge[16], v_at[16], m_at[16];
  for (int i = 0; i < side; ++i)
    for (int j = 0; j < side; ++j) {
      const int k = i * (int)side + j;
      at[k] = (i * g.W + j) * C;
      at_edge[k] = k * C;
      v_at[k] = k * count * C;
      m_at[k] = k * count * O;
    }
  // Block tile t's image and tile row and column.
  auto locate = [&](int64_t t, int64_t& n, int64_t& ty, int64_t& tx) {
    const int64_t tile = t0 + t;
    n = tile / (tiles_y_ * tiles_x_);
    ty = tile % (tiles_y_ * tiles_x_) / tiles_x_;
    tx = tile % tiles_x_;
  };

  for (int64_t t = 0; t < count;) {
    int64_t n, ty, tx;
    locate(t, n, ty, tx);
    const int64_t iy0 = ty * step - g.ph, ix0 = tx * step - g.pw;
    if (iy0 >= 0 && iy0 + side <= g.H && ix0 >= 0 && ix0 + side <= g.W) {
      int64_t run = 1;  // inside tiles read the image in place
      while (t + run < count && tx + run < tiles_x_ && ix0 + run * step + side <= g.W) ++run;
      input_transform(x + ((n * g.H + iy0) * g.W + ix0) * C, at, step * C, run, C, v + t * C, v_at);
      t += run;
      continue;
    }
    for (int i = 0; i < side; ++i)
      for (int j = 0; j < side; ++j) {
        const int64_t iy = iy0 + i, ix = ix0 + j;
        float* to = edge + (i * side + j) * C;
        if (iy < 0 || iy >= g.H || ix < 0 || ix >= g.W)
          std::fill(to, to + C, 0.0f);
        else
          std::memcpy(to, x + ((n * g.H + iy) * g.W + ix) * C, (size_t)C * sizeof(float));
      }
    input_transform(edge, at_edge, 0, 1, C, v + t * C, v_at);
    ++t;
  }

  const Epilogue none;
  for (int m = 0; m < 16; ++m)
    sgemm_packed(false, count, v + m * count * C, C, *filters_->u[m], none, mx + m * count * O, O, nullptr);

  for (int64_t t = 0; t < count;) {
    int64_t n, ty, tx;
    locate(t, n, ty, tx);
    const int64_t oy0 = ty * 2, ox0 = tx * 2;
    if (!e.residual && oy0 + 2 <= g.OH && ox0 + 2 <= g.OW) {
      // Whole tiles are written in place, the activation over their two output rows after.
      int64_t run = 1;
      while (t + run < count && tx + run < tiles_x_ && ox0 + 2 * run + 2 <= g.OW) ++run;
      float* row0 = y + ((n * g.OH + oy0) * g.OW + ox0) * O;
      output_transform(mx + t * O, m_at, run, O, e.bias, row0, g.OW * O);
      if (e.act.kind != ActKind::none)
        for (float* row : {row0, row0 + g.OW * O}) apply_epilogue_row(row, 2 * run * O, nullptr, nullptr, e.act);
      t += run;
      continue;
    }
    // Cut tiles, and any tile with a residual (which may be y itself), are finished in a
    // scratch tile first.
    output_transform(mx + t * O, m_at, 1, O, e.bias, out, 2 * O);
    for (int a = 0; a < 2; ++a)
      for (int b = 0; b < 2; ++b) {
        if (oy0 + a >= g.OH || ox0 + b >= g.OW) continue;
        const int64_t pixel = (n * g.OH + oy0 + a) * g.OW + ox0 + b;
        float* o = out + (2 * a + b) * O;
        if (e.residual || e.act.kind != ActKind::none)
          apply_epilogue_row(o, O, nullptr, e.residual ? e.residual + pixel * e.ld_residual : nullptr, e.act);
        std::memcpy(y + pixel * O, o, (size_t)O * sizeof(float));
      }
    ++t;
  }
}

void Winograd2x3::run(const float* x, const Epilogue& e, float* y, ThreadPool* pool, int max_threads) const {
  // Tiles per block: the block's transformed inputs and products (positions x tiles x (C + O))
  // stay within ~512 KiB of L2; the block count is a multiple of the threads.
  const int64_t tile_bytes = 16 * (g_.C + O_) * (int64_t)sizeof(float);
  const int64_t fit = std::max<int64_t>(8, (int64_t(512) << 10) / tile_bytes);
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
