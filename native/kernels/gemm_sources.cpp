// f32 GEMM drivers for A found where it lies (RunSource: runs of a convolution's input;
// GridSource: evenly spaced reads of a planar image): whole-K tiles against pre-packed
// panels, without copying A.
#include <algorithm>
#include <stdexcept>
#include <vector>

#include "kernels/gemm.hpp"
#include "kernels/gemm_bf16.hpp"
#include "kernels/gemm_driver.hpp"

namespace aiov {
namespace gemm_detail {
namespace {

// Tiles whose A rows are looked up (or packed) together by the source drivers below: the
// per-thread tables stay small however tall a chunk, and the group's input is still in L2
// when the next panel reads it again.
constexpr int64_t kSourceGroupTiles = 32;

// What the drivers for A found in place (runs, grids) settle before they split the work:
// every tile runs the whole K against pre-packed panels, in units of one tile against one
// panel. Many tiles: whole rows of tiles against every panel, so each task reads its share
// of the input while it is in cache and the panels stay in L2. Few tiles (deep layers):
// panel ranges too, so B is streamed from memory once in all.
struct SourceTiles {
  SourceTiles(int64_t M_, const PackedB& B, const Epilogue& epilogue, const float* C, int64_t ldc, ThreadPool* pool_,
              int max_threads)
      : M(M_),
        N(B.N()),
        K(B.K()),
        ks(kernels_for_panels(B.panel_width())),
        e(epilogue),
        beta(residual_is_c(e, C, ldc) ? 1.0f : 0.0f),
        nr(ks.nr),
        rs(row_step(ks, M)),
        np(ceil_div(N, nr)),
        mp(ceil_div(M, rs)),
        post(needs_post(e)),
        pool(pool_),
        threads(product_threads(pool, max_threads, 2.0 * M * N * K)),
        row_tasks(row_tasks_pay(mp, threads, K, np * nr)) {}

  // fn(t0, t1, p0, p1) over every group of tiles [t0, t1) x panels [p0, p1), on the threads.
  template <class Fn>
  void run(const Fn& fn) const {
    run_split(pool, threads, mp * np, 1, [&](int64_t u0, int64_t u1) {
      auto piece = [&](int64_t t0, int64_t t1, int64_t p0, int64_t p1) {
        for (int64_t g0 = t0; g0 < t1; g0 += kSourceGroupTiles) fn(g0, std::min(t1, g0 + kSourceGroupTiles), p0, p1);
      };
      if (row_tasks)
        tile_major_pieces(u0, u1, np, piece);
      else
        panel_major_pieces(u0, u1, mp, piece);
    });
  }

  const int64_t M, N, K;
  const KernelSet& ks;
  Epilogue e;  // without a residual that is C itself (then beta is 1)
  const float beta;
  const int nr, rs;
  const int64_t np, mp;
  const bool post;
  ThreadPool* const pool;
  const int threads;
  const bool row_tasks;
};

}  // namespace
}  // namespace gemm_detail

using namespace gemm_detail;

void sgemm_packed(int64_t M, const RunSource& A, const PackedB& B, const Epilogue& epilogue, float* C, int64_t ldc,
                  ThreadPool* pool, int max_threads) {
  if (B.half()) return gemm_bf16(M, A, B, epilogue, C, ldc, pool, max_threads);
  const int64_t segments = A.segments();
  if (M <= 0 || B.N() <= 0) return;
  if (B.row_layout() || segments <= 0 || B.K() % segments != 0)
    throw std::logic_error("sgemm_packed: runs need B in panels and K a multiple of the segment count");
  // Each tile runs the whole K: slicing it into groups of segments measured 1-3% slower.
  const SourceTiles st(M, B, epilogue, C, ldc, pool, max_threads);
  const int64_t N = st.N, K = st.K;
  const int nr = st.nr, rs = st.rs;
  st.run([&](int64_t t0, int64_t t1, int64_t p0, int64_t p1) {
    thread_local std::vector<const float*> table;
    thread_local std::vector<int> cuts;  // runs per row of each tile
    const int64_t per_tile = segments * rs, g0 = t0 * rs, g1 = std::min(M, t1 * rs), tiles = t1 - t0;
    table.resize((size_t)(tiles * per_tile));
    cuts.resize((size_t)tiles);
    for (int64_t i = 0; i < tiles; ++i) {
      cuts[i] = A.runs(g0 + i * rs, (int)std::min<int64_t>(rs, g1 - g0 - i * rs), table.data() + i * per_tile, rs);
      if (cuts[i] <= 0 || segments % cuts[i] != 0) throw std::logic_error("RunSource: bad run count");
    }
    for (int64_t p = p0; p < p1; ++p) {
      const int64_t col = p * nr;
      const int cols = (int)std::min<int64_t>(nr, N - col);
      for (int64_t i = 0; i < tiles; ++i) {
        const int64_t row = g0 + i * rs;
        Tile t = tile_at(st.e, st.beta, true, true, row, col);
        t.rows = (int)std::min<int64_t>(rs, g1 - row);
        t.cols = cols;
        t.kc = K / cuts[i];
        t.a_rows = true;
        t.a_ptrs = table.data() + i * per_tile;
        t.segments = cuts[i];
        t.a_ptr_stride = rs;
        t.b = B.data() + p * K * nr;
        t.b_stride = nr;
        t.c = C + row * ldc + col;
        t.ldc = ldc;
        st.ks.tile(t);
      }
      if (st.post) apply_epilogue(C + g0 * ldc + col, ldc, g1 - g0, cols, g0, col, post_part(st.e));
    }
  });
}

void sgemm_packed(int64_t M, const GridSource& A, const PackedB& B, const Epilogue& epilogue, float* C, int64_t ldc,
                  ThreadPool* pool, int max_threads) {
  if (B.half()) return gemm_bf16(M, A, B, epilogue, C, ldc, pool, max_threads);
  if (M <= 0 || B.N() <= 0) return;
  if (B.row_layout()) throw std::logic_error("sgemm_packed: a grid needs B in panels");
  const SourceTiles st(M, B, epilogue, C, ldc, pool, max_threads);
  const int64_t N = st.N, K = st.K;
  const int nr = st.nr, rs = st.rs;
  const bool in_place = A.step() >= 1 && A.step() <= kMaxGridStep;
  // A piece of a tile: one span of the source, read in place (grid) or from a packed panel.
  struct Piece {
    int64_t row;
    int rows;
    const float* a;
    bool grid;
    int64_t k0, k1;
  };
  st.run([&](int64_t t0, int64_t t1, int64_t p0, int64_t p1) {
    thread_local std::vector<Piece> pieces;
    // Rows that cannot be read in place (over the padding at an image's sides) are packed
    // once for all panels, rs rows per tile.
    float* packed = scratch(kSourceRows, (size_t)((t1 - t0) * rs * K));
    pieces.clear();
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t row0 = t * rs, row1 = std::min(M, row0 + rs);
      float* panel = packed + (t - t0) * rs * K;
      for (int64_t m = row0; m < row1;) {
        GridSource::Span s = A.span(m, row1 - m);
        if (s.rows <= 0 || s.rows > row1 - m || (s.base && (s.k0 < 0 || s.k0 > s.k1 || s.k1 > K)))
          throw std::logic_error("GridSource: bad span");
        if (!in_place) s.base = nullptr;
        if (s.base) {
          pieces.push_back(Piece{m, (int)s.rows, s.base, true, s.k0, s.k1});
        } else {
          A.pack(m, s.rows, panel + (m - row0), rs);
          pieces.push_back(Piece{m, (int)s.rows, panel + (m - row0), false, 0, K});
        }
        m += s.rows;
      }
    }
    for (int64_t p = p0; p < p1; ++p) {
      const int64_t col = p * nr;
      const int cols = (int)std::min<int64_t>(nr, N - col);
      for (const Piece& piece : pieces) {
        Tile t = tile_at(st.e, st.beta, true, true, piece.row, col);
        t.rows = piece.rows;
        t.cols = cols;
        t.kc = piece.k1 - piece.k0;
        t.a = piece.a;
        t.a_stride = rs;
        if (piece.grid) {
          t.a_offsets = A.offsets() + piece.k0;
          t.a_step = A.step();
        }
        t.b = B.data() + (p * K + piece.k0) * nr;
        t.b_stride = nr;
        t.c = C + piece.row * ldc + col;
        t.ldc = ldc;
        st.ks.tile(t);
      }
      if (st.post)
        apply_epilogue(C + t0 * rs * ldc + col, ldc, std::min(M, t1 * rs) - t0 * rs, cols, t0 * rs, col,
                       post_part(st.e));
    }
  });
}

}  // namespace aiov
