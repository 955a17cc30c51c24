// Graphs as bytes and back: what a compiled-model blob (aiov/_blob.py) stores so a CACHE_DIR hit
// or import_model skips the frontend and the optimizer. The bytes are untrusted (a file on disk
// may be damaged or hand-made): the reader checks every count, index and size against what is
// left before using it, and rebuilds each node through make_node, so the registry's attribute
// and shape rules judge it as they judge any model.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "plan/graph.hpp"
#include "plan/shared_weights.hpp"

namespace aiov {

// Bumped whenever the layout below changes; a reader refuses any other version.
// (2: the weights record.)
constexpr uint32_t kGraphFormatVersion = 2;

// Several graphs in one stream, in order. Nodes, bodies and constant bytes that the graphs
// share (an optimized graph reuses its model's filters) are written once. With `weights`
// (the last graph's compiled model's), the weights derived from those constants follow,
// under this machine's packing key (plan/packed_weights.hpp).
std::string serialize_graphs(const std::vector<const Graph*>& graphs, const SharedWeights* weights = nullptr);

// The graphs serialize_graphs wrote. InputError naming the defect for anything else: another
// format version, truncation, an index or size that does not fit, a node its op refuses, or a
// node whose outputs infer differently than when it was written. The stored weights go to
// `weights` (when given) if they were packed under this machine's packing key, each entry's
// source pointing into the constants read; under another key they are skipped.
std::vector<Graph> deserialize_graphs(const uint8_t* data, size_t size,
                                      std::vector<SharedWeights::Stored>* weights = nullptr);

}  // namespace aiov
