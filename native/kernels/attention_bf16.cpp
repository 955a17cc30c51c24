#include "kernels/attention_bf16.hpp"

#include <algorithm>
#include <cstring>
#include <vector>

#include "kernels/gemm_bf16.hpp"
#include "kernels/softmax_row.hpp"

namespace aiov {

using namespace gemm_detail;

namespace {

// Query rows whose scores are made together: bounds the scratch to kRowBlock x Sk. A head
// takes whole tiles of the set's mr rows per block (row_block_): with 12-row tiles, blocks of
// 64 left two 4-row tiles in a 128-row head, 60 one of 8.
constexpr int64_t kRowBlock = 64;
// Rows past a block's last one that a kernel may read (an AMX tile load is 16 rows; the
// results of the extra rows are dropped).
constexpr int64_t kRowSlack = 32;

// Elements between rounded rows: not a multiple of 256 (512 bytes), so the rows of one tile
// load do not share few L1 sets.
int64_t row_stride(int64_t kp) { return kp % 256 == 0 ? kp + kBf16KStep : kp; }

int64_t panel_count(int64_t n) { return (n + kBf16PanelCols - 1) / kBf16PanelCols; }

// One pair row of a panel: the 16 columns of rows k (even) and k + 1 (odd) interleaved.
void interleave_pairs(const uint16_t* even, const uint16_t* odd, uint16_t* dst) {
  for (int j = 0; j < kBf16PanelCols; ++j) {
    dst[2 * j] = even[j];
    dst[2 * j + 1] = odd[j];
  }
}

// C [rows, N] = A [rows, kp] (bf16 rows lda apart) x the B panels (kp deep), C rows ldc apart.
void product(const Bf16KernelSet& ks, const uint16_t* a, int64_t lda, int64_t rows, int64_t kp, const uint16_t* panels,
             int64_t N, float* c, int64_t ldc) {
  Bf16Tile t;
  t.kp = kp;
  t.lda = lda;
  t.b_panel_stride = kp * kBf16PanelCols;
  t.out.ldc = ldc;
  for (int64_t col = 0; col < N; col += kBf16TileCols) {
    t.out.cols = (int)std::min<int64_t>(kBf16TileCols, N - col);
    t.b = panels + (col / kBf16PanelCols) * t.b_panel_stride;
    for (int64_t r0 = 0; r0 < rows; r0 += ks.mr) {
      t.out.rows = (int)std::min<int64_t>(ks.mr, rows - r0);
      t.a = a + r0 * lda;
      t.out.c = c + r0 * ldc + col;
      ks.tile(t);
    }
  }
}

}  // namespace

Bf16Attention::Bf16Attention(int64_t Sq, int64_t Sk, int64_t D, int64_t Dv, float scale)
    : ks_(bf16_kernels()),
      fused_(&bf16_kernels() == &portable_bf16_kernels() ? nullptr : avx512_bf16_attention_kernels()),
      sq_(Sq),
      sk_(Sk),
      d_(D),
      dv_(Dv),
      scale_(scale) {
  row_block_ = ks_.mr <= kRowBlock ? kRowBlock / ks_.mr * ks_.mr : kRowBlock;
  kp_d_ = bf16_padded_k(D);
  kp_s_ = bf16_padded_k(Sk);
  ld_q_ = row_stride(kp_d_);
  ld_p_ = row_stride(kp_s_);
  const int64_t k_size = panel_count(Sk) * kBf16PanelCols * kp_d_;
  const int64_t v_size = panel_count(Dv) * kBf16PanelCols * kp_s_;
  const int64_t q_size = (kRowBlock + kRowSlack) * ld_q_;
  const int64_t p_size = (kRowBlock + kRowSlack) * ld_p_;
  dv_padded_ = panel_count(Dv) * kBf16PanelCols;
  // The fused K packing rounds 16 rows of K at a time.
  const int64_t row_size = std::max(kp_d_ + 2 * dv_padded_, kBf16PanelCols * kp_d_);
  // Zeroed: the padding of K past D and past Sk, of the rows and of the panels' last columns
  // is never written and must multiply as zeros.
  thread_local std::vector<uint16_t> halves;
  thread_local std::vector<float> floats;
  halves.assign((size_t)(k_size + v_size + q_size + p_size + row_size), 0);
  floats.resize((size_t)(kRowBlock * std::max<int64_t>(Sk, 1)));
  k_panels_ = halves.data();
  v_panels_ = k_panels_ + k_size;
  q_rows_ = v_panels_ + v_size;
  p_rows_ = q_rows_ + q_size;
  row_scratch_ = p_rows_ + p_size;
  scores_ = floats.data();
  if (ks_.begin) ks_.begin();
}

Bf16Attention::~Bf16Attention() {
  if (ks_.end) ks_.end();
}

// Asks for rows of `width` floats, ld apart, to be brought into L2: a head's rows are a few
// cache lines every ld floats, a stride the hardware prefetchers do not follow.
void prefetch_rows(const float* p, int64_t rows, int64_t ld, int64_t width) {
  constexpr int64_t kLineFloats = 16;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < width; c += kLineFloats) __builtin_prefetch(p + r * ld + c, 0, 2);
}

void Bf16Attention::pack(const AttentionHead& h, const AttentionHead* next) {
  constexpr int64_t kPair = 2 * kBf16PanelCols;  // values per pair of K in a panel
  // The next head's operands, asked for first: they arrive while this one packs and multiplies.
  if (next) {
    prefetch_rows(next->q, sq_, next->ldq, d_);
    prefetch_rows(next->k, sk_, next->ldk, d_);
    prefetch_rows(next->v, sk_, next->ldv, dv_);
  }
  if (fused_) {
    fused_->pack_keys(h.k, h.ldk, sk_, d_, kp_d_, k_panels_, row_scratch_);
    fused_->pack_values(h.v, h.ldv, sk_, dv_, kp_s_, v_panels_);
    return;
  }
  // K^T: column n of the first product is row n of K, its pairs of D kept together (the
  // row's padding past D stays zero: convert writes D values).
  for (int64_t n = 0; n < sk_; ++n) {
    ks_.convert(h.k + n * h.ldk, d_, 1.0f, row_scratch_);
    uint16_t* dst = k_panels_ + (n / kBf16PanelCols) * kp_d_ * kBf16PanelCols + (n % kBf16PanelCols) * 2;
    for (int64_t kk = 0; kk < kp_d_ / 2; ++kk) std::memcpy(dst + kk * kPair, row_scratch_ + 2 * kk, 4);
  }
  // V: rows k and k + 1 interleaved along each panel's columns, a pair row at a time (past Sk
  // the odd row is zeros; past Dv the rows' zero padding fills the last panel).
  uint16_t* even = row_scratch_ + kp_d_;
  uint16_t* odd = even + dv_padded_;
  for (int64_t k = 0; k < sk_; k += 2) {
    ks_.convert(h.v + k * h.ldv, dv_, 1.0f, even);
    if (k + 1 < sk_)
      ks_.convert(h.v + (k + 1) * h.ldv, dv_, 1.0f, odd);
    else
      std::fill(odd, odd + dv_, uint16_t{0});
    for (int64_t c = 0; c < dv_padded_; c += kBf16PanelCols)
      interleave_pairs(even + c, odd + c, v_panels_ + c * kp_s_ + (k / 2) * kPair);
  }
}

void Bf16Attention::scores(const AttentionHead& h, int64_t row0, int64_t rows) {
  for (int64_t r = 0; r < rows; ++r) ks_.convert(h.q + (row0 + r) * h.ldq, d_, scale_, q_rows_ + r * ld_q_);
  product(ks_, q_rows_, ld_q_, rows, kp_d_, k_panels_, sk_, scores_, sk_);
}

void Bf16Attention::head(const AttentionHead& h, const AttentionRowsFn& to_probabilities, const AttentionHead* next) {
  pack(h, next);
  for (int64_t row0 = 0; row0 < sq_; row0 += row_block_) {
    const int64_t rows = std::min(row_block_, sq_ - row0);
    scores(h, row0, rows);
    to_probabilities(row0, rows, scores_, sk_);
    for (int64_t r = 0; r < rows; ++r) ks_.convert(scores_ + r * sk_, sk_, 1.0f, p_rows_ + r * ld_p_);
    product(ks_, p_rows_, ld_p_, rows, kp_s_, v_panels_, dv_, h.out + row0 * h.ldo, h.ldo);
  }
}

void Bf16Attention::head(const AttentionHead& h, const AttentionBias& bias, const AttentionHead* next) {
  pack(h, next);
  const float low = softmax_detail::lowest_kept(sk_);
  for (int64_t row0 = 0; row0 < sq_; row0 += row_block_) {
    const int64_t rows = std::min(row_block_, sq_ - row0);
    scores(h, row0, rows);
    const float* b = bias.rows ? bias.rows + row0 * bias.row_step : nullptr;
    float* out = h.out + row0 * h.ldo;
    if (fused_) {
      // The exponentials, not yet divided by their sum: each output row is, after the product.
      float inverse_sums[kRowBlock];
      fused_->probabilities(scores_, sk_, rows, sk_, b, bias.row_step, bias.per_key, low, p_rows_, ld_p_, inverse_sums);
      product(ks_, p_rows_, ld_p_, rows, kp_s_, v_panels_, dv_, out, h.ldo);
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t j = 0; j < dv_; ++j) out[r * h.ldo + j] *= inverse_sums[r];
    } else {
      for (int64_t r = 0; r < rows; ++r) {
        float* row = scores_ + r * sk_;
        const float* br = b ? b + r * bias.row_step : nullptr;
        for (int64_t j = 0; br && j < sk_; ++j) row[j] += bias.per_key ? br[j] : br[0];
        softmax_row(row, row, sk_);
        ks_.convert(row, sk_, 1.0f, p_rows_ + r * ld_p_);
      }
      product(ks_, p_rows_, ld_p_, rows, kp_s_, v_panels_, dv_, out, h.ldo);
    }
  }
}

}  // namespace aiov
