#include "plan/packed_weights.hpp"

#include "core/byte_stream.hpp"
#include "kernels/gemm.hpp"
#include "kernels/gemm_int8.hpp"
#include "kernels/winograd.hpp"

namespace aiov {

namespace {
// Bumped whenever a stored layout changes (PackedB, PackedInt8B, Winograd's transform).
// 2: f32 weights of at most 24 columns against K >= 512 are rows up to 1024 rows of A.
// 3: integer weights record their padded K (whole quads for VNNI, 64 bytes for AMX).
constexpr int kPackedLayoutVersion = 3;
// More matrices than any entry holds (a convolution's groups, Winograd's 16).
constexpr uint64_t kMaxMatrices = uint64_t{1} << 24;

// A count, then that many matrices of one packed type (PackedB or PackedInt8B).
template <class Packed>
std::shared_ptr<std::vector<std::unique_ptr<Packed>>> load_matrices(ByteReader& in, const char* what) {
  const uint64_t n = in.pod<uint64_t>(what);
  if (n > kMaxMatrices || n > in.left()) in.fail(std::string(what) + ": " + std::to_string(n) + " is too many");
  auto all = std::make_shared<std::vector<std::unique_ptr<Packed>>>();
  for (uint64_t i = 0; i < n; ++i) all->push_back(Packed::load(in));
  return all;
}

template <class Packed>
void save_matrices(const std::vector<std::unique_ptr<Packed>>& all, ByteWriter& out) {
  out.pod((uint64_t)all.size());
  for (const auto& m : all) m->save(out);
}
}  // namespace

void save_weights(const PackedB& w, ByteWriter& out) { w.save(out); }
void save_weights(const GroupPanels& w, ByteWriter& out) { save_matrices(w, out); }
void save_weights(const WinogradFilters& w, ByteWriter& out) { save_matrices(w.u, out); }
void save_weights(const PackedInt8B& w, ByteWriter& out) { w.save(out); }
void save_weights(const FloatWeights& w, ByteWriter& out) { out.bytes(w.data(), w.size() * sizeof(float)); }
void save_weights(const GroupedInt8Panels& w, ByteWriter& out) { save_matrices(w, out); }

std::shared_ptr<const void> load_weights(WeightsKind kind, ByteReader& in) {
  switch (kind) {
    case WeightsKind::packed_b:
      return std::shared_ptr<const PackedB>(PackedB::load(in));
    case WeightsKind::group_panels:
      return load_matrices<PackedB>(in, "a convolution's group count");
    case WeightsKind::winograd: {
      auto filters = std::make_shared<WinogradFilters>();
      filters->u = std::move(*load_matrices<PackedB>(in, "Winograd's matrix count"));
      return filters;
    }
    case WeightsKind::packed_int8:
      return std::shared_ptr<const PackedInt8B>(PackedInt8B::load(in));
    case WeightsKind::grouped_int8:
      return load_matrices<PackedInt8B>(in, "an integer convolution's group count");
    case WeightsKind::floats: {
      const uint64_t bytes = in.pod<uint64_t>("a weight array's size");
      if (bytes % sizeof(float) || bytes > in.left()) in.fail("a weight array of " + std::to_string(bytes) + " bytes");
      auto values = std::make_shared<FloatWeights>(bytes / sizeof(float));
      in.take(values->data(), bytes, "a weight array");
      return values;
    }
  }
  in.fail("weights kind " + std::to_string((int)kind) + " is unknown");
}

std::string packing_key() {
  return "layouts " + std::to_string(kPackedLayoutVersion) + " f32 " + gemm_isa() + " bf16 " + gemm_bf16_isa() +
         " f16 " + gemm_f16_isa() + " int8 " + gemm_int8_isa();
}

}  // namespace aiov
