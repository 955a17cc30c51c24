#include "plan/serialize.hpp"

#include <algorithm>
#include <cstring>
#include <new>
#include <tuple>
#include <unordered_map>

#include "core/byte_stream.hpp"

namespace aiov {

// The stream: a prefix, then records in dependency order, each opened by its tag. A node
// refers to earlier nodes, buffers and bodies by their number in order of appearance.
//   prefix:  "AIOVGRPH" | version u32 | byte-order mark u32
//   buffer:  size u64 | bytes
//   node:    op | name | Parameter: type, kind u8, shape | Constant: type, dims, buffer u32 |
//            other: inputs (node u32, port u32)*, attributes (name, alternative u8, value)*,
//            bodies (name, body u32)*, outputs (type, kind u8, shape)* as written (checked)
//            | per output: its tensor names
//   body:    a graph (below), made into a Body
//   graph:   parameters (node u32)* | outputs (node u32, port u32)* | sinks (node u32)*
//   weights: packing key | size u64 | entries u32 | per entry: buffer u32, offset u64 (where
//            its source constant lies), recipe, kind u8, what save_weights wrote
//            (plan/packed_weights.hpp); read only when the key is this machine's
// Counts are u32, strings a u32 length and bytes, shapes rank-known u8 and dims.
namespace {

constexpr char kMagic[8] = {'A', 'I', 'O', 'V', 'G', 'R', 'P', 'H'};
constexpr uint32_t kByteOrderMark = 0x01020304;
enum Tag : uint8_t { kEnd = 0, kBuffer = 1, kNode = 2, kBody = 3, kGraph = 4, kWeights = 5 };
// Writer::attr and Reader::attr know these five alternatives; a new one needs its encoding
// there (and kGraphFormatVersion bumped).
static_assert(std::variant_size_v<Attr> == 5, "serialize.cpp: encode the new attribute alternative");

class Writer {
 public:
  std::string out;

  Writer() {
    out.append(kMagic, sizeof kMagic);
    pod(kGraphFormatVersion);
    pod(kByteOrderMark);
  }

  // Room for the constants of `g` ahead of writing: a model's weights appended to a growing
  // string would be copied again at every doubling.
  void reserve_for(const Graph& g) {
    size_t bytes = out.size();
    std::unordered_map<const Buffer*, bool> seen;
    std::vector<const Graph*> todo{&g};
    while (!todo.empty()) {
      const Graph* at = todo.back();
      todo.pop_back();
      for (const NodePtr& n : at->topological_order()) {
        if (n->constant && !seen[n->constant.get()]) {
          seen[n->constant.get()] = true;
          bytes += n->constant->size();
        }
        for (const auto& [name, b] : n->bodies) todo.push_back(&b->graph);
      }
    }
    out.reserve(bytes + (bytes >> 4) + 4096);  // and some for the nodes' descriptions
  }

  void graph(const Graph& g) {
    nodes_of(g);
    pod(uint8_t{kGraph});
    refs(g);
  }

  // The entries derived from constants written before (a source outside them is left out),
  // in the order of their sources and recipes, so the same model writes the same bytes.
  void weights(const SharedWeights& shared) {
    std::vector<std::pair<const Buffer*, uint32_t>> written(buffers_.begin(), buffers_.end());
    struct Entry {
      uint32_t buffer;
      uint64_t offset;
      SharedWeights::Stored stored;
      SharedWeights::Save save;
    };
    std::vector<Entry> found;
    shared.each([&](const SharedWeights::Stored& e, SharedWeights::Save save) {
      const auto* at = static_cast<const uint8_t*>(e.source);
      for (const auto& [buffer, index] : written) {
        const auto* begin = static_cast<const uint8_t*>(buffer->data());
        if (at >= begin && at < begin + buffer->size()) {
          found.push_back({index, (uint64_t)(at - begin), e, save});
          return;
        }
      }
    });
    std::sort(found.begin(), found.end(), [](const Entry& a, const Entry& b) {
      return std::tie(a.buffer, a.offset, a.stored.recipe) < std::tie(b.buffer, b.offset, b.stored.recipe);
    });
    ByteWriter entries;
    for (const Entry& e : found) {
      entries.pod(e.buffer);
      entries.pod(e.offset);
      entries.str(e.stored.recipe);
      entries.pod((uint8_t)e.stored.kind);
      e.save(e.stored.weights.get(), entries);
    }
    const uint32_t written_entries = (uint32_t)found.size();
    pod(uint8_t{kWeights});
    str(packing_key());
    pod((uint64_t)(sizeof written_entries + entries.out.size()));
    pod(written_entries);
    out += entries.out;
  }

 private:
  std::unordered_map<const Node*, uint32_t> nodes_;
  std::unordered_map<const Buffer*, uint32_t> buffers_;
  std::unordered_map<const Body*, uint32_t> bodies_;

  template <class T>
  void pod(T v) {
    out.append(reinterpret_cast<const char*>(&v), sizeof v);
  }
  void count(size_t n) { pod((uint32_t)n); }
  void str(const std::string& s) {
    count(s.size());
    out += s;
  }
  void dims(const Dims& d) {
    count(d.size());
    for (int64_t x : d) pod(x);
  }
  void port(const PortInfo& p) {
    str(type_name(p.type));
    pod((uint8_t)p.kind);
    pod((uint8_t)p.shape.rank_known);
    dims(p.shape.dims);
  }
  void attr(const Attr& a) {
    pod((uint8_t)a.index());
    if (auto* i = std::get_if<int64_t>(&a)) pod(*i);
    if (auto* f = std::get_if<double>(&a)) pod(*f);
    if (auto* s = std::get_if<std::string>(&a)) str(*s);
    if (auto* is = std::get_if<std::vector<int64_t>>(&a)) dims(*is);
    if (auto* fs = std::get_if<std::vector<double>>(&a)) {
      count(fs->size());
      for (double f : *fs) pod(f);
    }
  }

  void refs(const Graph& g) {
    count(g.parameters.size());
    for (const NodePtr& p : g.parameters) pod(nodes_.at(p.get()));
    count(g.outputs.size());
    for (const Value& o : g.outputs) {
      pod(nodes_.at(o.node.get()));
      pod((uint32_t)o.index);
    }
    count(g.sinks.size());
    for (const NodePtr& s : g.sinks) pod(nodes_.at(s.get()));
  }

  void nodes_of(const Graph& g) {
    for (const NodePtr& p : g.parameters) node(*p);  // listed though nothing reads it
    for (const NodePtr& n : g.topological_order()) node(*n);
  }

  void body(const Body& b) {
    if (bodies_.count(&b)) return;
    nodes_of(b.graph);  // bodies nest at most kMaxBodyDepth deep
    pod(uint8_t{kBody});
    refs(b.graph);
    bodies_.emplace(&b, (uint32_t)bodies_.size());
  }

  void node(const Node& n) {
    if (nodes_.count(&n)) return;
    for (const auto& [name, b] : n.bodies) body(*b);
    if (n.op == "Constant" && !buffers_.count(n.constant.get())) {
      pod(uint8_t{kBuffer});
      pod((uint64_t)n.constant->size());
      out.append(static_cast<const char*>(n.constant->data()), n.constant->size());
      buffers_.emplace(n.constant.get(), (uint32_t)buffers_.size());
    }
    pod(uint8_t{kNode});
    str(n.op);
    str(n.name);
    if (n.op == "Parameter") {
      port(n.outputs.at(0));
    } else if (n.op == "Constant") {
      str(type_name(n.outputs.at(0).type));
      dims(n.outputs.at(0).shape.dims);
      pod(buffers_.at(n.constant.get()));
    } else {
      count(n.inputs.size());
      for (const Value& in : n.inputs) {
        pod(nodes_.at(in.node.get()));
        pod((uint32_t)in.index);
      }
      count(n.attrs.size());
      for (const auto& [name, value] : n.attrs) {
        str(name);
        attr(value);
      }
      count(n.bodies.size());
      for (const auto& [name, b] : n.bodies) {
        str(name);
        pod(bodies_.at(b.get()));
      }
      count(n.outputs.size());
      for (const PortInfo& p : n.outputs) port(p);
    }
    count(n.output_names.size());
    for (const auto& names : n.output_names) {
      count(names.size());
      for (const std::string& s : names) str(s);
    }
    nodes_.emplace(&n, (uint32_t)nodes_.size());
  }
};

// Strict UTF-8 (no overlong forms, surrogates or code points past U+10FFFF): names and
// attribute strings become Python strings, and an error message may quote them.
bool is_utf8(const std::string& s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const auto* end = p + s.size();
  while (p < end) {
    const unsigned c = *p;
    int extra;
    unsigned lo = 0x80, hi = 0xBF;  // the allowed range of the first continuation byte
    if (c < 0x80) {
      ++p;
      continue;
    } else if (c >= 0xC2 && c <= 0xDF) {
      extra = 1;
    } else if (c >= 0xE0 && c <= 0xEF) {
      extra = 2;
      if (c == 0xE0) lo = 0xA0;
      if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      extra = 3;
      if (c == 0xF0) lo = 0x90;
      if (c == 0xF4) hi = 0x8F;
    } else {
      return false;
    }
    if (end - p <= extra) return false;
    for (int i = 1; i <= extra; ++i) {
      const unsigned b = p[i];
      if (b < (i == 1 ? lo : 0x80u) || b > (i == 1 ? hi : 0xBFu)) return false;
    }
    p += extra + 1;
  }
  return true;
}

// Reads what Writer wrote, trusting none of it.
class Reader {
 public:
  Reader(const uint8_t* data, size_t size) : p_(data), end_(data + size) {}

  // Where a weights record's entries go (null: skipped).
  std::vector<SharedWeights::Stored>* weights = nullptr;

  std::vector<Graph> read() {
    char magic[sizeof kMagic];
    take(magic, sizeof magic, "its prefix");
    if (std::memcmp(magic, kMagic, sizeof kMagic) != 0) fail("it does not start with the graph format's magic");
    const uint32_t version = pod<uint32_t>("its version");
    if (version != kGraphFormatVersion)
      fail("it is graph format " + std::to_string(version) + "; this aiov reads format " +
           std::to_string(kGraphFormatVersion));
    if (pod<uint32_t>("its byte-order mark") != kByteOrderMark)
      fail("it was written on a machine of another byte order");
    std::vector<Graph> graphs;
    for (;;) {
      const uint8_t tag = pod<uint8_t>("a record tag");
      if (tag == kEnd) break;
      if (tag == kBuffer) {
        buffer();
      } else if (tag == kNode) {
        node();
      } else if (tag == kBody) {
        bodies_.push_back(make_body(graph()));
      } else if (tag == kGraph) {
        graphs.push_back(graph());
        graphs.back().topological_order();  // throws if an output reads an unlisted parameter
      } else if (tag == kWeights) {
        weights_record();
      } else {
        fail("record tag " + std::to_string(tag) + " is not one of the format's");
      }
    }
    if (p_ != end_) fail(std::to_string(end_ - p_) + " bytes follow its end");
    return graphs;
  }

 private:
  const uint8_t* p_;
  const uint8_t* end_;
  std::vector<NodePtr> nodes_;
  std::vector<BufferPtr> buffers_;
  std::vector<BodyPtr> bodies_;

  [[noreturn]] void fail(const std::string& what) const {
    throw InputError("the serialized graph is malformed: " + what);
  }

  size_t left() const { return (size_t)(end_ - p_); }

  void take(void* dst, size_t n, const char* what) {
    if (n > left()) fail(std::string("it ends inside ") + what);
    if (n) std::memcpy(dst, p_, n);
    p_ += n;
  }
  template <class T>
  T pod(const char* what) {
    T v;
    take(&v, sizeof v, what);
    return v;
  }
  // A count of items of at least `item_bytes` bytes each: never more than the bytes left hold,
  // so no count makes the reader reserve memory the stream does not back.
  size_t count(size_t item_bytes, const char* what) {
    const uint32_t n = pod<uint32_t>(what);
    if ((uint64_t)n * item_bytes > left()) fail(std::string(what) + " " + std::to_string(n) + " exceeds what is left");
    return n;
  }
  std::string str(const char* what) {
    std::string s(count(1, what), '\0');
    take(s.data(), s.size(), what);
    if (!is_utf8(s)) fail(std::string(what) + " is not UTF-8 text");
    return s;
  }
  Dims dims(const char* what) {
    Dims d(count(sizeof(int64_t), what));
    take(d.data(), d.size() * sizeof(int64_t), what);
    return d;
  }
  ElementType type() {
    const std::string name = str("an element type");
    try {
      return type_from_name(name);
    } catch (const InputError&) {
      fail("element type '" + name + "' is not one of aiov's");
    }
  }
  PortInfo port() {
    PortInfo p;
    p.type = type();
    const uint8_t kind = pod<uint8_t>("a value kind");
    if (kind > (uint8_t)ValueKind::optional_sequence) fail("value kind " + std::to_string(kind) + " is unknown");
    p.kind = (ValueKind)kind;
    p.shape.rank_known = pod<uint8_t>("a shape") != 0;
    p.shape.dims = dims("a shape");
    return p;
  }
  template <class Table>
  auto at(const Table& table, uint32_t index, const char* what) {
    if (index >= table.size())
      fail(std::string(what) + " " + std::to_string(index) + " is not among the " + std::to_string(table.size()) +
           " read before it");
    return table[index];
  }
  Value value(const char* what) {
    NodePtr n = at(nodes_, pod<uint32_t>(what), what);
    const uint32_t port = pod<uint32_t>(what);
    if (port >= n->outputs.size())
      fail(n->describe() + " has " + std::to_string(n->outputs.size()) + " outputs, not " + std::to_string(port + 1));
    return Value{n, (int)port};
  }
  Attr attr() {
    switch (pod<uint8_t>("an attribute")) {
      case 0:
        return pod<int64_t>("an attribute");
      case 1:
        return pod<double>("an attribute");
      case 2:
        return str("an attribute");
      case 3:
        return dims("an attribute");
      case 4: {
        std::vector<double> fs(count(sizeof(double), "an attribute"));
        take(fs.data(), fs.size() * sizeof(double), "an attribute");
        return fs;
      }
      default:
        fail("an attribute's kind is unknown");
    }
  }

  void buffer() {
    const uint64_t size = pod<uint64_t>("a constant's size");
    if (size > left()) fail("a constant of " + std::to_string(size) + " bytes exceeds what is left");
    auto b = std::make_shared<Buffer>((size_t)size);
    take(b->data(), (size_t)size, "a constant");
    buffers_.push_back(std::move(b));
  }

  void node() {
    const std::string op = str("an op name");
    const std::string name = str("a node name");
    NodePtr n;
    if (op == "Parameter") {
      const PortInfo p = port();
      n = make_parameter(p.type, p.shape, name, p.kind);
    } else if (op == "Constant") {
      const ElementType t = type();
      const Dims shape = dims("a constant's shape");
      n = make_constant(t, shape, at(buffers_, pod<uint32_t>("a buffer"), "buffer"), name);
    } else {
      std::vector<Value> inputs(count(8, "an input count"));
      for (Value& v : inputs) v = value("an input");
      Attrs attrs;
      for (size_t i = count(6, "an attribute count"); i > 0; --i) {
        std::string key = str("an attribute name");
        attrs[key] = attr();
      }
      std::map<std::string, BodyPtr> bodies;
      for (size_t i = count(8, "a body count"); i > 0; --i) {
        std::string key = str("a body name");
        bodies[key] = at(bodies_, pod<uint32_t>("a body"), "body");
      }
      std::vector<PortInfo> written(count(10, "an output count"));
      for (PortInfo& p : written) p = port();
      try {
        n = make_node(op, std::move(inputs), std::move(attrs), name, std::move(bodies));
      } catch (const std::bad_alloc&) {
        throw;
      } catch (const std::exception& e) {
        fail("node " + std::to_string(nodes_.size()) + " (" + op + " '" + name + "'): " + e.what());
      }
      if (!agrees_with(n->outputs, written))
        fail(n->describe() + " infers other outputs than it had when it was written");
    }
    const size_t outputs = count(4, "an output-name count");
    if (outputs != n->outputs.size())
      fail(n->describe() + " has " + std::to_string(n->outputs.size()) + " outputs, its names " +
           std::to_string(outputs));
    for (auto& names : n->output_names) {
      names.resize(count(4, "a name count"));
      for (std::string& s : names) s = str("a tensor name");
    }
    nodes_.push_back(std::move(n));
  }

  // Inferred again, a node may know more than it did when written (a pass that gave it a
  // constant input left its dimensions as they were): the same types and kinds, and shapes
  // that refine the written ones, are the same outputs.
  static bool agrees_with(const std::vector<PortInfo>& inferred, const std::vector<PortInfo>& written) {
    if (inferred.size() != written.size()) return false;
    for (size_t i = 0; i < inferred.size(); ++i) {
      const PortInfo& a = inferred[i];
      const PortInfo& b = written[i];
      if (a.type != b.type || a.kind != b.kind) return false;
      if (!b.shape.rank_known) continue;
      if (!a.shape.rank_known || a.shape.dims.size() != b.shape.dims.size()) return false;
      for (size_t d = 0; d < a.shape.dims.size(); ++d)
        if (b.shape.dims[d] != -1 && a.shape.dims[d] != b.shape.dims[d]) return false;
    }
    return true;
  }

  void weights_record() {
    const std::string key = str("a packing key");
    const uint64_t size = pod<uint64_t>("the packed weights' size");
    if (size > left()) fail("packed weights of " + std::to_string(size) + " bytes exceed what is left");
    const uint8_t* start = p_;
    p_ += size;
    // Packed on other kernels (another CPU, an AIOV_*_ISA override, another layout version):
    // the plans pack again rather than read panels laid out for other kernels.
    if (!weights || key != packing_key()) return;
    ByteReader in(start, (size_t)size);
    const uint32_t count = in.pod<uint32_t>("an entry count");
    if (count > in.left()) in.fail("an entry count of " + std::to_string(count) + " exceeds what is left");
    std::vector<SharedWeights::Stored> read;
    for (uint32_t i = 0; i < count; ++i) {
      SharedWeights::Stored e;
      const uint32_t buffer = in.pod<uint32_t>("an entry's constant");
      if (buffer >= buffers_.size()) in.fail("constant " + std::to_string(buffer) + " was not written before");
      const uint64_t offset = in.pod<uint64_t>("an entry's offset");
      if (offset >= buffers_[buffer]->size())
        in.fail("offset " + std::to_string(offset) + " lies outside its constant");
      e.source = static_cast<const uint8_t*>(buffers_[buffer]->data()) + offset;
      e.recipe = in.str("an entry's recipe");
      const uint8_t kind = in.pod<uint8_t>("an entry's kind");
      if (kind < (uint8_t)WeightsKind::packed_b || kind > (uint8_t)WeightsKind::grouped_int8)
        in.fail("weights kind " + std::to_string(kind) + " is unknown");
      e.kind = (WeightsKind)kind;
      e.weights = load_weights(e.kind, in);
      read.push_back(std::move(e));
    }
    if (in.left()) in.fail(std::to_string(in.left()) + " bytes follow the last entry");
    *weights = std::move(read);
  }

  Graph graph() {
    Graph g;
    for (size_t i = count(4, "a parameter count"); i > 0; --i) {
      NodePtr p = at(nodes_, pod<uint32_t>("a parameter"), "parameter");
      if (p->op != "Parameter") fail("a graph lists " + p->describe() + " among its parameters");
      g.parameters.push_back(std::move(p));
    }
    for (size_t i = count(8, "an output count"); i > 0; --i) g.outputs.push_back(value("an output"));
    for (size_t i = count(4, "a sink count"); i > 0; --i)
      g.sinks.push_back(at(nodes_, pod<uint32_t>("a sink"), "sink"));
    return g;
  }
};

}  // namespace

std::string serialize_graphs(const std::vector<const Graph*>& graphs, const SharedWeights* weights) {
  Writer w;
  if (!graphs.empty()) w.reserve_for(*graphs.front());  // the model: the others mostly share its constants
  for (const Graph* g : graphs) w.graph(*g);
  if (weights) w.weights(*weights);
  w.out.push_back((char)kEnd);
  return std::move(w.out);
}

std::vector<Graph> deserialize_graphs(const uint8_t* data, size_t size, std::vector<SharedWeights::Stored>* weights) {
  Reader reader(data, size);
  reader.weights = weights;
  return reader.read();
}

}  // namespace aiov
