// Weights derived from constants (SharedWeights entries: packed GEMM panels, Winograd filters,
// depthwise taps, integer panels) as bytes and back, so a compiled-model blob (serialize.hpp)
// gives an imported model or a CACHE_DIR hit the packed forms instead of packing them again.
// Only the kinds below are stored; SharedWeights::get knows an entry's kind from its type.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace aiov {

class ByteWriter;
class ByteReader;
class PackedB;
class PackedInt8B;
struct WinogradFilters;

using GroupPanels = std::vector<std::unique_ptr<PackedB>>;            // one PackedB per convolution group
using FloatWeights = std::vector<float>;                              // rearranged f32 values (depthwise taps)
using GroupedInt8Panels = std::vector<std::unique_ptr<PackedInt8B>>;  // one per integer convolution group

enum class WeightsKind : uint8_t {
  packed_b = 1,
  group_panels = 2,
  winograd = 3,
  packed_int8 = 4,
  floats = 5,
  grouped_int8 = 6
};

constexpr WeightsKind weights_kind(const PackedB*) { return WeightsKind::packed_b; }
constexpr WeightsKind weights_kind(const GroupPanels*) { return WeightsKind::group_panels; }
constexpr WeightsKind weights_kind(const WinogradFilters*) { return WeightsKind::winograd; }
constexpr WeightsKind weights_kind(const PackedInt8B*) { return WeightsKind::packed_int8; }
constexpr WeightsKind weights_kind(const FloatWeights*) { return WeightsKind::floats; }
constexpr WeightsKind weights_kind(const GroupedInt8Panels*) { return WeightsKind::grouped_int8; }

void save_weights(const PackedB& w, ByteWriter& out);
void save_weights(const GroupPanels& w, ByteWriter& out);
void save_weights(const WinogradFilters& w, ByteWriter& out);
void save_weights(const PackedInt8B& w, ByteWriter& out);
void save_weights(const FloatWeights& w, ByteWriter& out);
void save_weights(const GroupedInt8Panels& w, ByteWriter& out);

// What save_weights wrote for an entry of that kind; InputError for anything else.
std::shared_ptr<const void> load_weights(WeightsKind kind, ByteReader& in);

// Everything besides an entry's recipe that decides what packing makes: the kernels chosen at
// run time (CPUID, lowered by AIOV_*_ISA), whether Winograd runs, and the version of the
// layouts. Packed weights stored under another key are not read: the model packs again.
std::string packing_key();

}  // namespace aiov
