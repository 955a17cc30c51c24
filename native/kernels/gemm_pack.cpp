// GEMM packing (layouts in gemm_pack.hpp): A and B panels, gathered rows, PackedB, and the
// scratch memory the drivers pack into.
#include "kernels/gemm_pack.hpp"

#include <algorithm>
#include <string>

#include "core/byte_stream.hpp"
#include "core/types.hpp"
#include "kernels/gemm_bf16.hpp"
#include "kernels/gemm_f16.hpp"

namespace aiov {
namespace gemm_detail {
namespace {

size_t float_block_bytes(size_t n) { return std::max<size_t>(n, 16) * sizeof(float); }
float* alloc_floats(size_t n) { return static_cast<float*>(alloc_aligned(float_block_bytes(n))); }
void free_floats(float* p, size_t n) { free_aligned(p, float_block_bytes(n)); }

struct ScratchBuffer {
  float* data = nullptr;
  size_t capacity = 0;
  ~ScratchBuffer() { free_floats(data, capacity); }
  float* get(size_t n) {
    if (n > capacity) {
      const size_t grown = std::max(n, capacity + capacity / 2);
      free_floats(data, capacity);
      data = nullptr;
      capacity = 0;  // consistent if the allocation below throws
      data = alloc_floats(grown);
      capacity = grown;
    }
    return data;
  }
};

// Fixed width: compiles to straight vector moves instead of a memcpy call per row.
template <int NR>
void copy_panel_rows(const float* s, int64_t ldb, int64_t kn, float* d) {
  for (int64_t k = 0; k < kn; ++k, s += ldb, d += NR)
    for (int j = 0; j < NR; ++j) d[j] = s[j];
}

// Few columns are kept as dot-product rows, unless many rows of A will meet them; with a long
// K (KernelSet::long_k_dots), up to kDotMaxLongKRows of them.
bool row_layout_for(const KernelSet& ks, int64_t N, int64_t K, int64_t rows_hint) {
  if (N > kDotMaxN) return false;
  return rows_hint < 0 || rows_hint <= 4 * kDotMaxM ||
         (ks.long_k_dots && K >= kDotMinLongK && rows_hint <= kDotMaxLongKRows);
}
}  // namespace

float* scratch(ScratchSlot slot, size_t n) {
  thread_local ScratchBuffer buffers[kSlotCount];
  return buffers[slot].get(n);
}

void transpose_pack(const KernelSet& ks, int rows, int64_t kc, const float* src, int64_t ld, float alpha, float* dst,
                    int64_t ds) {
  if (ks.transpose) {
    for (int r0 = 0; r0 < rows; r0 += ks.transpose_rows)
      ks.transpose(std::min(ks.transpose_rows, rows - r0), kc, src + r0 * ld, ld, alpha, dst + r0, ds);
    return;
  }
  // Short k blocks keep the destination block in L1 while `rows` source rows stream.
  constexpr int64_t kStep = 16;
  for (int64_t k0 = 0; k0 < kc; k0 += kStep) {
    const int64_t kn = std::min(kStep, kc - k0);
    for (int r = 0; r < rows; ++r) {
      const float* s = src + r * ld + k0;
      float* d = dst + k0 * ds + r;
      for (int64_t k = 0; k < kn; ++k) d[k * ds] = alpha * s[k];
    }
  }
}

void pack_a(const KernelSet& ks, bool ta, const float* A, int64_t lda, int64_t m0, int64_t rows, int64_t k0, int64_t kc,
            float alpha, float* dst, int64_t panel_stride, int rs, int mr) {
  for (int64_t p = 0; p * rs < rows; ++p) {
    const int n = (int)std::min<int64_t>(rs, rows - p * rs);
    const int64_t m = m0 + p * rs;
    float* d = dst + p * panel_stride;
    if (ta) {  // op(A)[m][k] = A[k][m]: each k is already a contiguous run of rows
      for (int64_t k = 0; k < kc; ++k) {
        const float* s = A + (k0 + k) * lda + m;
        for (int r = 0; r < n; ++r) d[k * mr + r] = alpha * s[r];
      }
    } else {
      transpose_pack(ks, n, kc, A + m * lda + k0, lda, alpha, d, mr);
    }
  }
}

void pack_b(const KernelSet& ks, bool tb, const float* B, int64_t ldb, int64_t k0, int64_t kc, int64_t n0, int64_t nc,
            int nr, float* dst, int64_t panel_stride) {
  if (tb) {  // op(B)[k][n] = B[n][k]: each panel column is a contiguous run of B
    for (int64_t p = 0; p * nr < nc; ++p) {
      const int cols = (int)std::min<int64_t>(nr, nc - p * nr);
      float* d = dst + p * panel_stride;
      transpose_pack(ks, cols, kc, B + (n0 + p * nr) * ldb + k0, ldb, 1.0f, d, nr);
      if (cols < nr)
        for (int64_t k = 0; k < kc; ++k)
          for (int j = cols; j < nr; ++j) d[k * nr + j] = 0.0f;
    }
    return;
  }
  // Short k blocks, all panels per block: the block's B rows are read front to
  // back (sequential streams) and each panel receives one contiguous run.
  constexpr int64_t kStep = 16;
  for (int64_t kb = 0; kb < kc; kb += kStep) {
    const int64_t kn = std::min(kStep, kc - kb);
    for (int64_t p = 0; p * nr < nc; ++p) {
      const int cols = (int)std::min<int64_t>(nr, nc - p * nr);
      const int64_t n = n0 + p * nr;
      float* d = dst + p * panel_stride + kb * nr;
      const float* s = B + (k0 + kb) * ldb + n;
      if (cols == nr && nr == 32) {
        copy_panel_rows<32>(s, ldb, kn, d);
      } else if (cols == nr && nr == 16) {
        copy_panel_rows<16>(s, ldb, kn, d);
      } else if (cols == nr && nr == 8) {
        copy_panel_rows<8>(s, ldb, kn, d);
      } else {
        for (int64_t k = 0; k < kn; ++k) {
          for (int j = 0; j < cols; ++j) d[k * nr + j] = s[k * ldb + j];
          for (int j = cols; j < nr; ++j) d[k * nr + j] = 0.0f;
        }
      }
    }
  }
}

void gather_rows(bool trans, const float* X, int64_t ldx, int64_t r0, int64_t rows, int64_t k, float alpha,
                 float* dst) {
  if (!trans) {
    for (int64_t r = 0; r < rows; ++r) {
      const float* s = X + (r0 + r) * ldx;
      float* d = dst + r * k;
      for (int64_t i = 0; i < k; ++i) d[i] = alpha * s[i];
    }
    return;
  }
  // op(X)[r][i] = X[i][r]: walk X row by row (each holds one value of every output row).
  for (int64_t i = 0; i < k; ++i) {
    const float* s = X + i * ldx + r0;
    for (int64_t r = 0; r < rows; ++r) dst[r * k + i] = alpha * s[r];
  }
}

}  // namespace gemm_detail

using namespace gemm_detail;

void PackedB::AlignedFree::operator()(float* p) const { free_floats(p, count); }

std::string PackedB::layout(bool trans_b, int64_t K, int64_t N, int64_t ldb, int64_t rows_hint,
                            GemmPrecision precision) {
  K = std::max<int64_t>(K, 0);
  N = std::max<int64_t>(N, 0);
  if (precision != GemmPrecision::f32)
    return std::string(precision == GemmPrecision::bf16 ? "bf16" : "f16") + " panels" + (trans_b ? " B^T" : " B") +
           " K=" + std::to_string(K) + " N=" + std::to_string(N) + " ldb=" + std::to_string(ldb);
  const KernelSet& ks = kernels_for_weights(N, rows_hint);
  return std::string(ks.name) + (row_layout_for(ks, N, K, rows_hint) ? " rows" : " panels") +
         " nr=" + std::to_string(ks.nr) + (trans_b ? " B^T" : " B") + " K=" + std::to_string(K) +
         " N=" + std::to_string(N) + " ldb=" + std::to_string(ldb);
}

int64_t PackedB::rows_read_in_place(int64_t rows, int64_t N) {
  if (N <= 0 || N > kDotMaxN || rows <= 4 * kDotMaxM) return rows;
  return std::max(rows, kDotMaxLongKRows + 1);
}

PackedB::PackedB(int64_t K, int64_t N, int64_t rows_hint, GemmPrecision precision)
    : K_(std::max<int64_t>(K, 0)), N_(std::max<int64_t>(N, 0)), rows_hint_(rows_hint), precision_(precision) {
  if (half()) {
    panel_width_ = kBf16PanelCols;
    row_layout_ = false;
    const size_t values = (size_t)(ceil_div(N_, kBf16PanelCols) * bf16_padded_k(K_) * kBf16PanelCols);
    size_ = (values + 1) / 2;  // floats holding the 16-bit values
  } else {
    const KernelSet& ks = kernels_for_weights(N_, rows_hint);
    panel_width_ = ks.nr;
    row_layout_ = row_layout_for(ks, N_, K_, rows_hint);
    size_ = row_layout_ ? (size_t)(N_ * K_) : (size_t)(ceil_div(N_, ks.nr) * K_ * ks.nr);
  }
}

void PackedB::allocate() { data_ = std::unique_ptr<float[], AlignedFree>(alloc_floats(size_), AlignedFree{size_}); }

PackedB::PackedB(bool trans_b, int64_t K, int64_t N, const float* B, int64_t ldb, int64_t rows_hint,
                 GemmPrecision precision)
    : PackedB(K, N, rows_hint, precision) {
  allocate();
  if (half()) {
    uint16_t* panels = reinterpret_cast<uint16_t*>(data_.get());
    if (N_ > 0 && precision_ == GemmPrecision::f16) pack_b_f16(trans_b, B, ldb, K_, N_, bf16_padded_k(K_), panels);
    if (N_ > 0 && precision_ == GemmPrecision::bf16) pack_b_bf16(trans_b, B, ldb, K_, N_, bf16_padded_k(K_), panels);
    return;
  }
  if (N_ == 0 || K_ == 0) return;
  if (row_layout_)
    gather_rows(!trans_b, B, ldb, 0, N_, K_, 1.0f, data_.get());
  else
    pack_b(kernels_for_weights(N_, rows_hint), trans_b, B, ldb, 0, K_, 0, N_, panel_width_, data_.get(),
           K_ * panel_width_);
}

void PackedB::save(ByteWriter& w) const {
  w.pod(K_);
  w.pod(N_);
  w.pod(rows_hint_);
  w.pod((uint8_t)precision_);
  w.bytes(data_.get(), size_bytes());
}

std::unique_ptr<PackedB> PackedB::load(ByteReader& r) {
  // Bounds that keep every size computed below far from overflow; the values must then also
  // be in the stream, which bounds them far tighter.
  constexpr int64_t kMaxDim = int64_t{1} << 40;
  const int64_t K = r.dim("a packed matrix's K", kMaxDim), N = r.dim("a packed matrix's N", kMaxDim);
  const int64_t rows_hint = r.pod<int64_t>("a packed matrix's row hint");
  const uint8_t precision = r.pod<uint8_t>("a packed matrix's precision");
  if (precision > (uint8_t)GemmPrecision::f16) r.fail("precision " + std::to_string(precision) + " is unknown");
  if ((K && N > (int64_t)(r.left() / (size_t)K)) || rows_hint < -1)
    r.fail("a packed matrix of " + std::to_string(K) + "x" + std::to_string(N) + " does not fit what is left");
  std::unique_ptr<PackedB> packed(new PackedB(K, N, rows_hint, (GemmPrecision)precision));
  r.expect_bytes(packed->size_bytes(), "a packed matrix");  // before allocating what it claims
  packed->allocate();
  r.take(packed->data_.get(), packed->size_bytes(), "a packed matrix");
  return packed;
}

void transpose_f32(int64_t rows, int64_t cols, const float* src, int64_t ld, float* dst, int64_t ldd) {
  const KernelSet& ks = kernels();
  // Source rows in groups of 16: each group is read as 16 streams and written 16 values
  // (one 64-byte line) per destination row.
  for (int64_t r0 = 0; r0 < rows; r0 += 16)
    transpose_pack(ks, (int)std::min<int64_t>(16, rows - r0), cols, src + r0 * ld, ld, 1.0f, dst + r0, ldd);
}

}  // namespace aiov
