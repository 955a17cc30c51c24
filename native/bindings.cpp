// The only file that includes Python headers: a thin nanobind layer over the engine.
// The GIL is released around everything that computes or waits.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/map.h>
#include <nanobind/stl/pair.h>
#include <nanobind/stl/shared_ptr.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/vector.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <chrono>
#include <cstring>
#include <optional>
#include <thread>
#include <unordered_map>

#include "core/out_of_memory.hpp"
#include "core/environment.hpp"
#include "executor/executor.hpp"
#include "kernels/lowbit.hpp"
#include "kernels/gemm.hpp"
#include "kernels/conv_int8.hpp"
#include "kernels/depthwise_int8.hpp"
#include "kernels/quantized_bytes.hpp"
#include "kernels/gemm_int8.hpp"
#include "kernels/isa.hpp"
#include "plan/batcher.hpp"
#include "plan/compiled.hpp"
#include "plan/composite.hpp"
#include "plan/graph.hpp"
#include "plan/passes/op_names.hpp"
#include "plan/passes/pass.hpp"
#include "plan/registry.hpp"
#include "plan/request.hpp"
#include "plan/serialize.hpp"

namespace nb = nanobind;
using namespace aiov;

namespace {

using Array = nb::ndarray<nb::numpy>;

// ---- Leaving the GIL, and coming back while the interpreter exits ----------------------
// A daemon thread that takes the GIL back during finalization is ended by the interpreter
// with pthread_exit, whose unwinding through nanobind's frames aborts the process
// ("terminate called without an active exception"). So the GIL is never re-taken from a
// destructor, and once the interpreter is exiting (begin_exit, the last atexit handler) a
// thread coming back from the engine parks instead: it has nothing left to return to.
std::mutex& g_exit_mutex = *new std::mutex;  // never destroyed: parked threads outlive statics
std::condition_variable& g_exit_cv = *new std::condition_variable;
bool g_exiting = false;
std::thread::id g_exiting_thread;  // the thread running the exit: it still returns
int g_returning = 0;               // threads past the check, re-taking the GIL
int g_inside = 0;                  // threads in the engine with the GIL released

[[noreturn]] void park_forever() {
  for (;;) std::this_thread::sleep_for(std::chrono::hours(1));
}

// Runs fn with the GIL released; exceptions come back to the caller with the GIL held.
template <class F>
void without_gil(F&& fn) {
  {
    std::lock_guard<std::mutex> lock(g_exit_mutex);
    ++g_inside;
  }
  PyThreadState* state = PyEval_SaveThread();
  std::exception_ptr error;
  try {
    fn();
  } catch (...) {
    error = std::current_exception();
  }
  {
    std::unique_lock<std::mutex> lock(g_exit_mutex);
    --g_inside;
    if (g_exiting && std::this_thread::get_id() != g_exiting_thread) {
      lock.unlock();
      park_forever();
    }
    ++g_returning;
  }
  PyEval_RestoreThread(state);
  {
    std::lock_guard<std::mutex> lock(g_exit_mutex);
    --g_returning;
  }
  g_exit_cv.notify_all();
  if (error) std::rethrow_exception(error);
}

// Called (GIL held) by the last atexit handler, before finalization starts.
void begin_exit() {
  bool threads_inside;
  {
    std::lock_guard<std::mutex> lock(g_exit_mutex);
    g_exiting = true;
    g_exiting_thread = std::this_thread::get_id();
    threads_inside = g_inside > 0;
  }
  // Threads still computing may use the pool after the statics are destroyed: keep it. The
  // objects their frames hold are never released: that is expected, not a leak to report.
  if (threads_inside) {
    keep_default_pool_at_exit();
    nb::set_leak_warnings(false);
  }
  // Threads already past the check take the GIL back now, while that is still safe.
  PyThreadState* state = PyEval_SaveThread();
  {
    std::unique_lock<std::mutex> lock(g_exit_mutex);
    g_exit_cv.wait(lock, [] { return g_returning == 0; });
  }
  PyEval_RestoreThread(state);
}

nb::dlpack::dtype dlpack_of(ElementType t) {
  using nb::dlpack::dtype_code;
  auto make = [](dtype_code c, int bits) { return nb::dlpack::dtype{(uint8_t)c, (uint8_t)bits, 1}; };
  switch (t) {
    case ElementType::f32:
      return make(dtype_code::Float, 32);
    case ElementType::f64:
      return make(dtype_code::Float, 64);
    case ElementType::f16:
      return make(dtype_code::Float, 16);
    case ElementType::bf16:
      return make(dtype_code::UInt, 16);  // numpy has no bf16: raw bits
    case ElementType::i8:
      return make(dtype_code::Int, 8);
    case ElementType::i16:
      return make(dtype_code::Int, 16);
    case ElementType::i32:
      return make(dtype_code::Int, 32);
    case ElementType::i64:
      return make(dtype_code::Int, 64);
    case ElementType::u8:
      return make(dtype_code::UInt, 8);
    case ElementType::u16:
      return make(dtype_code::UInt, 16);
    case ElementType::u32:
      return make(dtype_code::UInt, 32);
    case ElementType::u64:
      return make(dtype_code::UInt, 64);
    case ElementType::boolean:
      return make(dtype_code::Bool, 8);
    default:
      return make(dtype_code::UInt, 8);  // packed types: raw bytes
  }
}

// A numpy array over engine memory; the array keeps the buffer alive.
nb::object wrap(const TensorView& tv, const BufferPtr& owner, bool writable = true) {
  std::vector<size_t> shape;
  if (is_packed(tv.type))
    shape.push_back(tv.bytes());
  else
    for (auto d : tv.shape) shape.push_back((size_t)d);
  auto* holder = new BufferPtr(owner);
  nb::capsule cap(holder, [](void* p) noexcept { delete static_cast<BufferPtr*>(p); });
  nb::object arr = Array(tv.data, shape.size(), shape.data(), cap, nullptr, dlpack_of(tv.type)).cast();
  if (!writable) arr.attr("flags").attr("writeable") = false;
  return arr;
}

// numpy's dtype for an engine element type as dlpack_of describes it (packed types: bytes).
// Borrowed; made once per kind. The GIL guards the table.
PyObject* numpy_dtype(ElementType t) {
  static std::unordered_map<int, PyObject*>& made = *new std::unordered_map<int, PyObject*>;
  const nb::dlpack::dtype dt = dlpack_of(t);
  const int key = dt.code * 256 + dt.bits;
  auto it = made.find(key);
  if (it != made.end()) return it->second;
  const char kind = dt.code == (uint8_t)nb::dlpack::dtype_code::Float  ? 'f'
                    : dt.code == (uint8_t)nb::dlpack::dtype_code::Int  ? 'i'
                    : dt.code == (uint8_t)nb::dlpack::dtype_code::Bool ? 'b'
                                                                       : 'u';
  const std::string name = std::string(1, kind) + std::to_string(dt.bits / 8);
  nb::object dtype = nb::module_::import_("numpy").attr("dtype")(name);
  // Another thread may have made it while numpy ran (the GIL can change hands there).
  auto inserted = made.emplace(key, dtype.ptr());
  if (inserted.second) dtype.release();  // kept for the life of the process
  return inserted.first->second;
}

// An array that owns its data (flags.owndata, as OpenVINO's copies do): numpy.empty filled
// here with the GIL held. Made directly rather than through a view and numpy's copy, which
// cost a few microseconds per output (most of a small model's call).
nb::object copy_out(const TensorView& tv) {
  static PyObject* const empty = nb::object(nb::module_::import_("numpy").attr("empty")).release().ptr();
  const bool packed = is_packed(tv.type);
  const size_t rank = packed ? 1 : tv.shape.size();
  nb::object shape = nb::steal(PyTuple_New((Py_ssize_t)rank));
  if (!shape.is_valid()) throw nb::python_error();
  for (size_t k = 0; k < rank; ++k) {
    PyObject* dim = PyLong_FromLongLong(packed ? (long long)tv.bytes() : (long long)tv.shape[k]);
    if (!dim) throw nb::python_error();
    PyTuple_SET_ITEM(shape.ptr(), (Py_ssize_t)k, dim);
  }
  PyObject* args[] = {shape.ptr(), numpy_dtype(tv.type)};
  nb::object result = nb::steal(PyObject_Vectorcall(empty, args, 2, nullptr));
  if (!result.is_valid()) throw nb::python_error();
  Py_buffer view;
  if (PyObject_GetBuffer(result.ptr(), &view, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS) != 0) throw nb::python_error();
  std::memcpy(view.buf, tv.data, std::min((size_t)view.len, tv.bytes()));
  PyBuffer_Release(&view);
  return result;
}

bool read_only(const nb::ndarray<nb::ro>& a) {
  nb::handle owner = nb::find(a);
  if (!owner.is_valid() || !nb::hasattr(owner, "flags")) return false;
  return !nb::cast<bool>(owner.attr("flags").attr("writeable"));
}

Dims shape_of(const nb::ndarray<nb::ro>& a) {
  Dims d(a.ndim());
  for (size_t i = 0; i < a.ndim(); ++i) d[i] = (int64_t)a.shape(i);
  return d;
}

bool is_c_contiguous(const nb::ndarray<nb::ro>& a) {
  if (a.size() == 0) return true;  // empty arrays have arbitrary strides and no data to read
  int64_t expect = 1;
  for (int i = (int)a.ndim() - 1; i >= 0; --i) {
    if (a.shape(i) != 1 && a.stride(i) != expect) return false;
    expect *= (int64_t)a.shape(i);
  }
  return true;
}

void require_contiguous(const nb::ndarray<nb::ro>& a, int index) {
  if (!is_c_contiguous(a)) throw InputError("input " + std::to_string(index) + ": array must be C-contiguous");
}

nb::object shape_or_none(const PartialShape& s) {
  if (!s.rank_known) return nb::none();
  return nb::cast(s.dims);
}

PartialShape shape_from(const nb::object& o) {
  if (o.is_none()) return PartialShape::dynamic_rank();
  return PartialShape(nb::cast<Dims>(o));
}

Attrs attrs_from(const nb::dict& d) {
  Attrs out;
  for (auto [k, v] : d) {
    std::string key = nb::cast<std::string>(k);
    if (nb::isinstance<nb::bool_>(v))
      out[key] = (int64_t)nb::cast<bool>(v);
    else if (nb::isinstance<nb::int_>(v))
      out[key] = nb::cast<int64_t>(v);
    else if (nb::isinstance<nb::float_>(v))
      out[key] = nb::cast<double>(v);
    else if (nb::isinstance<nb::str>(v))
      out[key] = nb::cast<std::string>(v);
    else {
      nb::list l = nb::list(v);
      bool all_int = true;
      for (auto x : l) all_int = all_int && (nb::isinstance<nb::int_>(x) || nb::isinstance<nb::bool_>(x));
      if (all_int)
        out[key] = nb::cast<std::vector<int64_t>>(l);
      else
        out[key] = nb::cast<std::vector<double>>(l);
    }
  }
  return out;
}

nb::dict attrs_to(const Attrs& a) {
  nb::dict d;
  for (auto& [k, v] : a) std::visit([&](auto& x) { d[k.c_str()] = nb::cast(x); }, v);
  return d;
}

// The registry as plain data (aiov.frontends, aiov.opset and the self-check read it).
nb::list op_schema() {
  nb::list ops;
  for (const OpDef& d : OpRegistry::instance().all()) {
    nb::dict op;
    op["type"] = d.type;
    op["min_inputs"] = d.min_inputs;
    op["max_inputs"] = d.max_inputs;
    nb::list attrs;
    for (const AttrSpec& s : d.attrs) {
      nb::dict a;
      a["name"] = s.name;
      a["kind"] = attr_kind_name(s.kind);
      nb::object dflt;
      std::visit([&](auto& x) { dflt = nb::cast(x); }, s.dflt);
      if (s.kind == AttrKind::boolean) dflt = nb::bool_(nb::cast<int64_t>(dflt) != 0);
      a["default"] = dflt;
      a["required"] = s.required;
      a["spatial"] = s.spatial;
      a["lo"] = s.lo;
      a["hi"] = s.hi;
      a["choices"] = s.choices;
      a["ir"] = s.ir_spelling();
      a["onnx"] = s.onnx_spelling();
      attrs.append(a);
    }
    op["attrs"] = attrs;
    op["layout_blind"] = d.layout_blind == LayoutBlind::unary        ? "unary"
                         : d.layout_blind == LayoutBlind::binary     ? "binary"
                         : d.layout_blind == LayoutBlind::per_tensor ? "per_tensor"
                                                                     : "";
    op["chainable"] = d.chain != nullptr;
    std::vector<std::string> kinds;
    for (ActKind k : d.activation.kinds) kinds.push_back(act_kind_name(k));
    op["activation"] = kinds;
    op["activation_params"] = std::vector<std::string>{d.activation.alpha, d.activation.beta};
    op["activation_variant"] = std::make_pair(d.activation.variant, d.activation.variant_values);
    op["ir_types"] = d.ir_types;
    op["ir_version"] = d.ir_version;
    nb::list onnx;
    for (const OnnxName& o : d.onnx) onnx.append(nb::make_tuple(o.name, o.since, o.until));
    op["onnx"] = onnx;
    op["builder"] = d.builder;
    op["value_inputs"] = d.value_inputs;
    op["aliases_input0"] = d.aliases_input0;
    op["reuses_input"] = d.reuses_input;
    op["shape_only"] = d.shape_only;
    op["data_dependent"] = d.data_dependent;
    ops.append(op);
  }
  return ops;
}

// Python owns these handles; the engine objects inside are owned by C++ shared_ptrs, so a
// worker dropping its copy never runs a Python deleter (which would need the GIL).
struct PortHandle {
  std::shared_ptr<CompletionPort> port = std::make_shared<CompletionPort>();
};
// Weights read from a blob for the compiled model made from it.
struct PackedWeights {
  std::vector<SharedWeights::Stored> entries;
};

struct CompiledHandle {
  std::shared_ptr<const CompiledModel> model;
};

// A graph as Python passes it: parameters, (node, output) pairs, sinks.
using GraphParts = std::tuple<std::vector<NodePtr>, std::vector<std::pair<NodePtr, int>>, std::vector<NodePtr>>;

Graph graph_of(std::vector<NodePtr> params, std::vector<std::pair<NodePtr, int>> outputs, std::vector<NodePtr> sinks) {
  Graph g;
  g.parameters = std::move(params);
  for (auto& [n, i] : outputs) g.outputs.push_back(Value{n, i});
  g.sinks = std::move(sinks);
  return g;
}

GraphParts parts_of(const Graph& g) {
  std::vector<std::pair<NodePtr, int>> outputs;
  for (const Value& o : g.outputs) outputs.emplace_back(o.node, o.index);
  return {g.parameters, outputs, g.sinks};
}
struct BatcherHandle {
  std::shared_ptr<Batcher> batcher;
};

// Python face of a Request: also holds the caller arrays a running job reads.
struct PyRequest {
  std::shared_ptr<Request> req;
  std::vector<nb::object> keep;  // per input; touched only with the GIL held
  // What the one-call path takes without conversion (set_fast_inputs): per input, the numpy
  // dtype an array must have (None: no array does) and its element type id; names -> index.
  std::vector<nb::object> fast_dtypes;
  std::vector<int> fast_etypes;
  nb::dict fast_names;

  explicit PyRequest(const CompiledHandle& m, const BatcherHandle* b = nullptr)
      : req(std::make_shared<Request>(m.model, b ? b->batcher : nullptr)), keep(req->model().inputs().size()) {}
  ~PyRequest() {
    // Shared input arrays must outlive the job that reads them.
    if (req->busy()) without_gil([&] { req->wait(-1); });
  }

  // `logical_shape` overrides the array's shape for packed (u1/u4/i4) data.
  void set_input(int i, nb::ndarray<nb::ro> a, int etype, bool share, nb::object logical_shape = nb::none()) {
    if (i < 0 || i >= (int)keep.size())
      throw InputError("input index " + std::to_string(i) + " is out of range: the model has " +
                       std::to_string(keep.size()) + " input(s)");
    Dims shape = logical_shape.is_none() ? shape_of(a) : nb::cast<Dims>(logical_shape);
    if (!logical_shape.is_none() && byte_size((ElementType)etype, numel(shape)) != a.nbytes())
      throw InputError("input " + std::to_string(i) + ": shape " + dims_str(shape) + " of " +
                       type_name((ElementType)etype) + " needs " +
                       std::to_string(byte_size((ElementType)etype, numel(shape))) + " bytes, got " +
                       std::to_string(a.nbytes()));
    require_contiguous(a, i);
    // A read-only array is copied even when sharing: the input tensor the request exposes is
    // writable, and must not become a way to write into it.
    const bool bind = share && !read_only(a);
    take_input(i, const_cast<void*>(a.data()), shape, etype, bind, bind ? nb::find(a) : nb::handle());
  }

  // Reads the caller's memory from now on (`owner` keeps it alive until the job ends), or
  // copies it.
  void take_input(int i, void* data, const Dims& shape, int etype, bool bind, nb::handle owner) {
    if (bind) {
      req->bind_input(i, data, (ElementType)etype, shape);
      keep[i] = nb::borrow(owner);
    } else {
      req->copy_input(i, data, (ElementType)etype, shape);
      keep[i] = nb::object();
    }
  }
};

// A sequence or optional input from arrays the Python layer converted to the input's element
// type: a sequence holds them all; an optional holds nothing (`present` false), the one array,
// or (an optional sequence) the sequence of them. The bytes are copied.
void set_composite_input(PyRequest& r, int i, const std::vector<nb::ndarray<nb::ro>>& arrays, bool present, int etype) {
  const auto& ins = r.req->model().inputs();
  if (i < 0 || i >= (int)ins.size())
    throw InputError("input index " + std::to_string(i) + " is out of range: the model has " +
                     std::to_string(ins.size()) + " input(s)");
  const ValueKind kind = ins[i].kind;
  auto seq = std::make_shared<Composite>();
  seq->kind = ValueKind::sequence;
  seq->type = (ElementType)etype;
  for (const auto& a : arrays) {
    require_contiguous(a, i);
    HeldTensor h;
    h.view.type = (ElementType)etype;
    h.view.shape = shape_of(a);
    check_tensor_size(h.view.shape, "input '" + ins[i].name + "'");
    if (byte_size(h.view.type, numel(h.view.shape)) != a.nbytes())
      throw InputError("input '" + ins[i].name + "': an array of " + std::to_string(a.nbytes()) + " bytes is not " +
                       type_name(h.view.type) + dims_str(h.view.shape));
    h.keep = std::make_shared<Buffer>(a.nbytes());
    if (a.nbytes()) std::memcpy(h.keep->data(), a.data(), a.nbytes());
    h.view.data = h.keep->data();
    seq->items.push_back(std::move(h));
  }
  std::shared_ptr<Composite> value = seq;
  if (kind == ValueKind::optional_tensor || kind == ValueKind::optional_sequence) {
    value = std::make_shared<Composite>();
    value->kind = kind;
    value->type = (ElementType)etype;
    if (present) {
      if (kind == ValueKind::optional_sequence)
        value->items.push_back(hold_composite(seq));
      else if (seq->items.size() == 1)
        value->items.push_back(seq->items[0]);
      else
        throw InputError("input '" + ins[i].name + "' is an optional tensor: give one array or None");
    }
  }
  r.req->set_composite_input(i, value);
  r.keep[i] = nb::object();
}

// A sequence as a list of arrays (copies), an optional as None or what it holds.
nb::object composite_out(const Composite* c) {
  if (!c) return nb::none();
  if (c->kind == ValueKind::sequence) {
    nb::list items;
    for (const HeldTensor& t : c->items) items.append(copy_out(t.view));
    return items;
  }
  if (c->items.empty()) return nb::none();
  const HeldTensor& held = c->items[0];
  return held.view.composite ? composite_out(held.view.composite) : copy_out(held.view);
}

// One input of the one-call path: a numpy array's memory as its buffer describes it.
struct FastInput {
  nb::handle array;  // borrowed from the caller's container, alive for the call
  void* data = nullptr;
  Dims shape;
  bool writable = false;
};

// The memory of an exact numpy array of dtype `dtype` when it is C-contiguous; false (no
// Python error set) otherwise. Read through the buffer protocol: nanobind's ndarray cast goes
// through __dlpack__, a capsule and the array's flags, about a microsecond per input.
bool fast_input(nb::handle a, nb::handle dtype, FastInput& out) {
  static PyTypeObject* const ndarray_type =
      (PyTypeObject*)nb::object(nb::module_::import_("numpy").attr("ndarray")).release().ptr();
  if (Py_TYPE(a.ptr()) != ndarray_type || dtype.is_none()) return false;
  // numpy's built-in dtypes are singletons: anything else (another byte order, metadata)
  // is left to the Python path's comparison.
  if (!a.attr("dtype").is(dtype)) return false;
  Py_buffer view;
  if (PyObject_GetBuffer(a.ptr(), &view, PyBUF_STRIDES) != 0) {
    PyErr_Clear();
    return false;
  }
  // The data outlives the buffer: the caller's container holds the array for the call, and a
  // bound input keeps it until the job ends.
  const bool contiguous = PyBuffer_IsContiguous(&view, 'C') != 0;
  out.array = a;
  out.data = view.buf;
  out.shape.assign(view.shape, view.shape + view.ndim);
  out.writable = !view.readonly;
  PyBuffer_Release(&view);
  return contiguous;
}

// The arrays of `inputs` in input order when the one-call path can take them as they are:
// exactly numpy arrays of the expected dtypes, C-contiguous, given as one array (one input),
// a list or tuple of all inputs in order, or a dict of all inputs keyed by name or index.
// False sends the call down the Python path, which converts what it can and names what it
// cannot. Done here, not in Python: after a large model those checks ran with cold caches
// and cost 30-40 us per call.
bool fast_arrays(PyRequest& r, nb::handle inputs, std::vector<FastInput>& out) {
  static PyTypeObject* const ndarray_type =
      (PyTypeObject*)nb::object(nb::module_::import_("numpy").attr("ndarray")).release().ptr();
  const size_t count = r.keep.size();
  if (r.fast_dtypes.size() != count) return false;
  out.resize(count);
  if (Py_TYPE(inputs.ptr()) == ndarray_type) {
    return count == 1 && fast_input(inputs, r.fast_dtypes[0], out[0]);
  }
  if (PyList_CheckExact(inputs.ptr()) || PyTuple_CheckExact(inputs.ptr())) {
    if ((size_t)PySequence_Fast_GET_SIZE(inputs.ptr()) != count) return false;
    PyObject** items = PySequence_Fast_ITEMS(inputs.ptr());
    for (size_t i = 0; i < count; ++i)
      if (!fast_input(items[i], r.fast_dtypes[i], out[i])) return false;
    return true;
  }
  if (!PyDict_CheckExact(inputs.ptr()) || (size_t)PyDict_GET_SIZE(inputs.ptr()) != count) return false;
  for (auto& f : out) f.array = nb::handle();
  PyObject *key, *value;
  Py_ssize_t pos = 0;
  while (PyDict_Next(inputs.ptr(), &pos, &key, &value)) {
    Py_ssize_t index = -1;
    if (PyUnicode_CheckExact(key)) {
      PyObject* found = PyDict_GetItem(r.fast_names.ptr(), key);
      if (!found || !PyLong_CheckExact(found)) return false;
      index = PyLong_AsSsize_t(found);
    } else if (PyLong_CheckExact(key)) {
      index = PyLong_AsSsize_t(key);
      if (index == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        return false;
      }
    }
    if (index < 0 || (size_t)index >= count || out[index].array.is_valid()) return false;  // unknown, twice
    if (!fast_input(value, r.fast_dtypes[index], out[index])) return false;
  }
  return true;
}

// Binds every input from `inputs` when the one-call path takes them (see fast_arrays).
bool bind_fast(PyRequest& r, nb::handle inputs, bool share) {
  thread_local std::vector<FastInput> arrays;  // reused: no allocation per call
  if (!fast_arrays(r, inputs, arrays)) return false;
  for (size_t i = 0; i < arrays.size(); ++i) {
    const FastInput& a = arrays[i];
    r.take_input((int)i, a.data, a.shape, r.fast_etypes[i], share && a.writable, a.array);
  }
  return true;
}

// Sub-byte data as one code per element (uint8, in the tensor's shape): numpy cannot view packed
// elements, so results of these types are always copies (Python views them as ml_dtypes).
nb::object unpacked_codes(const TensorView& tv) {
  const int64_t n = tv.count();
  auto buf = std::make_shared<Buffer>((size_t)n);
  auto* dst = static_cast<uint8_t*>(buf->data());
  for (int64_t i = 0; i < n; ++i) dst[i] = lowbit_get(tv.as<uint8_t>(), tv.type, i);
  TensorView codes{buf->data(), ElementType::u8, tv.shape};
  return wrap(codes, buf);
}

std::vector<nb::object> outputs_of(PyRequest& r, bool copy) {
  std::vector<nb::object> out;
  size_t n = r.req->model().outputs().size();
  out.reserve(n);
  for (size_t j = 0; j < n; ++j) {
    if (r.req->model().outputs()[j].kind != ValueKind::tensor) {
      out.push_back(composite_out(r.req->output_composite((int)j).get()));
      continue;
    }
    BufferPtr buf;
    TensorView tv = r.req->output_view((int)j, &buf);
    out.push_back(is_packed(tv.type) ? unpacked_codes(tv) : copy ? copy_out(tv) : wrap(tv, buf));
  }
  return out;
}

void raise_if_failed(const Request& r) {
  auto st = r.status();
  if (st == RequestStatus::kFailed) {
    if (r.error_is_input()) throw InputError(r.error());
    if (r.error_is_memory()) throw OutOfMemoryFor(r.error());  // nanobind: MemoryError
    throw std::runtime_error(r.error());
  }
  if (st == RequestStatus::kCancelled) throw Cancelled(r.error());
}

// ---- Test-only entry points (aiov._core._testing) ----------------------------------------
// Kernel unit tests run one op or one GEMM directly, without building a model around it.

// The element type numpy's `dt` stands for (the inverse of dlpack_of).
ElementType element_type_of(const nb::dlpack::dtype& dt, size_t index) {
  for (ElementType t :
       {ElementType::f32, ElementType::f64, ElementType::f16, ElementType::i8, ElementType::i16, ElementType::i32,
        ElementType::i64, ElementType::u8, ElementType::u16, ElementType::u32, ElementType::u64, ElementType::boolean})
    if (dlpack_of(t) == dt) return t;
  throw InputError("input " + std::to_string(index) + ": numpy dtype with code " + std::to_string(dt.code) + " and " +
                   std::to_string(dt.bits) + " bits has no aiov element type");
}

// Null (the calling thread alone) for threads == 1, else the default pool.
ThreadPool* pool_for(int threads) {
  if (threads < 0) throw InputError("threads must be >= 0 (0: the whole pool), got " + std::to_string(threads));
  return threads == 1 ? nullptr : &default_pool();
}

// A fresh engine buffer of `bytes`, every byte 0xFF: an element a kernel forgets to write
// reads as NaN (or -1), never as a plausible zero.
BufferPtr poisoned_buffer(size_t bytes) {
  auto buf = std::make_shared<Buffer>(bytes);
  if (bytes) std::memset(buf->data(), 0xFF, bytes);
  return buf;
}

// Builds op_type over `inputs` (as constants, so inference sees their values) through the
// registry, prepares its kernel with the inputs not listed in `runtime_inputs` known (as a
// plan knows model constants), then runs it once with every input.
std::vector<nb::object> testing_run_op(const std::string& op_type,
                                       std::vector<nb::ndarray<nb::ro, nb::c_contig>> inputs, nb::dict attrs,
                                       std::vector<int> runtime_inputs, int threads, const std::string& precision,
                                       std::vector<int> bf16_inputs) {
  const OpDef& def = OpRegistry::instance().get(op_type);
  if (precision != "f32" && precision != "bf16" && precision != "f16")
    throw InputError("precision must be f32, bf16 or f16, got " + precision);
  std::vector<Value> values;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const auto& a = inputs[i];
    ElementType t = element_type_of(a.dtype(), i);
    if (std::find(bf16_inputs.begin(), bf16_inputs.end(), (int)i) != bf16_inputs.end()) {
      if (t != ElementType::u16) throw InputError("bf16_inputs: input " + std::to_string(i) + " must be uint16 bits");
      t = ElementType::bf16;
    }
    Dims shape(a.ndim());
    for (size_t d = 0; d < a.ndim(); ++d) shape[d] = (int64_t)a.shape(d);
    values.push_back(Value{make_constant(t, shape, a.data(), a.nbytes(), "input_" + std::to_string(i)), 0});
  }
  NodePtr node = make_node(op_type, values, attrs_from(attrs), op_type);
  std::vector<bool> at_run_only(inputs.size(), false);
  for (int r : runtime_inputs) {
    if (r < 0 || r >= (int)inputs.size())
      throw InputError("runtime_inputs: " + std::to_string(r) + " is not an input index (0.." +
                       std::to_string((int)inputs.size() - 1) + ")");
    // A plan always knows these (plans are built per value), and kernels read them in prepare.
    if (std::find(def.value_inputs.begin(), def.value_inputs.end(), r) != def.value_inputs.end())
      throw InputError("runtime_inputs: input " + std::to_string(r) + " of " + op_type +
                       " shapes its output, so it is known whenever the kernel is prepared");
    at_run_only[r] = true;
  }
  PrepareContext pctx{*node, {}, {}};
  pctx.inference_precision = type_from_name(precision);
  for (size_t i = 0; i < values.size(); ++i) {
    const Node& c = *values[i].node;
    pctx.in.push_back(TensorView{c.constant->data(), c.outputs[0].type, c.outputs[0].shape.dims});
  }
  std::vector<BufferPtr> buffers;
  for (size_t o = 0; o < node->outputs.size(); ++o) {
    const PortInfo& info = node->outputs[o];
    if (!info.shape.is_static())
      throw InputError(node->describe() + ": output " + std::to_string(o) + " shape " + info.shape.str() +
                       " is not static");
    buffers.push_back(poisoned_buffer(byte_size(info.type, numel(info.shape.dims))));
    pctx.out.push_back(TensorView{buffers.back()->data(), info.type, info.shape.dims});
  }
  ThreadPool* pool = pool_for(threads);
  without_gil([&] {
    if (def.aliases_input0) {
      // A view of input 0 under another shape: the plan never runs a kernel for it.
      std::memcpy(pctx.out[0].data, pctx.in[0].data, pctx.out[0].bytes());
    } else {
      std::vector<TensorView> at_run = pctx.in;
      for (size_t i = 0; i < pctx.in.size(); ++i)
        if (at_run_only[i]) pctx.in[i].data = nullptr;
      KernelFn fn = def.prepare(pctx);
      std::vector<const TensorView*> ins, outs;
      for (const auto& t : at_run) ins.push_back(&t);
      for (const auto& t : pctx.out) outs.push_back(&t);
      ExecContext exec{pool, threads > 1 ? threads : 0};
      fn(KernelArgs{ins.data(), outs.data(), &exec});
    }
  });
  std::vector<nb::object> out;
  for (size_t o = 0; o < buffers.size(); ++o) out.push_back(wrap(pctx.out[o], buffers[o]));
  return out;
}

using Matrix = nb::ndarray<nb::ro, float, nb::ndim<2>>;

// Rows of `m` lie `stride(0)` floats apart, each contiguous: a sliced matrix tests the
// leading dimensions.
int64_t leading_dim(const Matrix& m, const char* name) {
  if (m.shape(1) > 1 && m.stride(1) != 1)
    throw InputError(std::string(name) +
                     ": rows must be contiguous (a C-contiguous array or a slice of rows "
                     "and leading columns of one)");
  return m.shape(0) > 1 ? (int64_t)m.stride(0) : (int64_t)std::max<size_t>(1, m.shape(1));
}

// op(A) is [M, K] and op(B) is [K, N]; throws when the inner dimensions differ.
void gemm_dims(const Matrix& a, const Matrix& b, bool trans_a, bool trans_b, int64_t& M, int64_t& N, int64_t& K) {
  M = (int64_t)(trans_a ? a.shape(1) : a.shape(0));
  K = (int64_t)(trans_a ? a.shape(0) : a.shape(1));
  int64_t kb = (int64_t)(trans_b ? b.shape(1) : b.shape(0));
  N = (int64_t)(trans_b ? b.shape(0) : b.shape(1));
  if (kb != K)
    throw InputError("gemm: op(a) is [" + std::to_string(M) + ", " + std::to_string(K) + "] and op(b) is [" +
                     std::to_string(kb) + ", " + std::to_string(N) + "]: inner dimensions must match");
}

nb::object new_matrix(int64_t M, int64_t N, BufferPtr& buf, float*& data) {
  buf = poisoned_buffer(sizeof(float) * (size_t)(M * N));
  data = static_cast<float*>(buf->data());
  return wrap(TensorView{data, ElementType::f32, {M, N}}, buf);
}

// C = alpha * op(A) op(B) + beta * C0 through sgemm (B unpacked).
GemmPrecision parse_gemm_precision(const std::string& name) {
  if (name == "f32") return GemmPrecision::f32;
  if (name == "bf16") return GemmPrecision::bf16;
  if (name == "f16") return GemmPrecision::f16;
  throw InputError("gemm: precision must be 'f32', 'bf16' or 'f16', got '" + name + "'");
}

nb::object testing_gemm(Matrix a, Matrix b, bool trans_a, bool trans_b, float alpha, float beta,
                        std::optional<Matrix> c, int threads, const std::string& precision) {
  const GemmPrecision prec = parse_gemm_precision(precision);
  int64_t M, N, K;
  gemm_dims(a, b, trans_a, trans_b, M, N, K);
  int64_t lda = leading_dim(a, "a"), ldb = leading_dim(b, "b");
  BufferPtr buf;
  float* out = nullptr;
  nb::object result = new_matrix(M, N, buf, out);
  if (beta != 0.0f) {
    if (!c || (int64_t)c->shape(0) != M || (int64_t)c->shape(1) != N)
      throw InputError("gemm: beta != 0 needs c of shape [" + std::to_string(M) + ", " + std::to_string(N) + "]");
    int64_t ldc = leading_dim(*c, "c");
    for (int64_t i = 0; i < M; ++i) std::memcpy(out + i * N, c->data() + i * ldc, sizeof(float) * (size_t)N);
  }
  ThreadPool* pool = pool_for(threads);
  without_gil([&] {
    gemm(prec, trans_a, trans_b, M, N, K, alpha, a.data(), lda, b.data(), ldb, beta, out, N, pool,
         threads > 1 ? threads : 0);
  });
  return result;
}

// C = epilogue(op(A) B) with B packed first (PackedB, as for weights), through sgemm_packed.
nb::object testing_gemm_packed(Matrix a, Matrix b, bool trans_a, bool trans_b,
                               std::optional<nb::ndarray<nb::ro, float, nb::ndim<1>, nb::c_contig>> bias,
                               std::optional<nb::ndarray<nb::ro, float, nb::ndim<2>, nb::c_contig>> residual,
                               const std::string& activation, float act_alpha, float act_beta, int64_t rows_hint,
                               int threads, const std::string& precision) {
  const GemmPrecision prec = parse_gemm_precision(precision);
  int64_t M, N, K;
  gemm_dims(a, b, trans_a, trans_b, M, N, K);
  int64_t lda = leading_dim(a, "a"), ldb = leading_dim(b, "b");
  Epilogue e;
  if (bias) {
    if ((int64_t)bias->shape(0) != N)
      throw InputError("gemm_packed: bias must have N = " + std::to_string(N) + " values, got " +
                       std::to_string(bias->shape(0)));
    e.bias = bias->data();
  }
  if (residual) {
    if ((int64_t)residual->shape(0) != M || (int64_t)residual->shape(1) != N)
      throw InputError("gemm_packed: residual must be [" + std::to_string(M) + ", " + std::to_string(N) + "]");
    e.residual = residual->data();
    e.ld_residual = N;
  }
  try {
    e.act.kind = act_kind_from_name(activation);
  } catch (const std::invalid_argument& err) {
    throw InputError(std::string("gemm_packed: ") + err.what());
  }
  e.act.alpha = act_alpha;
  e.act.beta = act_beta;
  BufferPtr buf;
  float* out = nullptr;
  nb::object result = new_matrix(M, N, buf, out);
  ThreadPool* pool = pool_for(threads);
  without_gil([&] {
    PackedB packed(trans_b, K, N, b.data(), ldb, rows_hint, prec);
    sgemm_packed(trans_a, M, a.data(), lda, packed, e, out, N, pool, threads > 1 ? threads : 0);
  });
  return result;
}

void bind_testing(nb::module_ m) {
  m.doc() = "Test-only entry points: kernels run directly, without a model. Not a public API.";
  // What packed weights in a blob are keyed by on this machine (plan/packed_weights.hpp).
  m.def("packing_key", &packing_key);
  m.def("run_op", &testing_run_op, nb::arg("op_type"), nb::arg("inputs"), nb::arg("attrs") = nb::dict(),
        nb::arg("runtime_inputs") = std::vector<int>(), nb::arg("threads") = 1, nb::arg("precision") = "f32",
        nb::arg("bf16_inputs") = std::vector<int>(),
        "Runs one registered op on `inputs` and returns its outputs. Inputs not in `runtime_inputs` "
        "are known when the kernel is prepared (as model constants are); threads=1 runs on the "
        "calling thread, 0 on the whole pool, n on at most n threads; precision is the "
        "inference precision its products run in (f32, bf16, f16); the uint16 arrays of "
        "`bf16_inputs` are bf16 tensors (their bits).");
  m.def("gemm", &testing_gemm, nb::arg("a"), nb::arg("b"), nb::arg("trans_a") = false, nb::arg("trans_b") = false,
        nb::arg("alpha") = 1.0f, nb::arg("beta") = 0.0f, nb::arg("c") = nb::none(), nb::arg("threads") = 1,
        nb::arg("precision") = "f32",
        "alpha * op(a) @ op(b) + beta * c through the unpacked GEMM (rows of a, b and c may be "
        "strided); precision 'bf16' ('f16') rounds the operands to bf16 (f16) and accumulates in f32.");
  m.def("gemm_packed", &testing_gemm_packed, nb::arg("a"), nb::arg("b"), nb::arg("trans_a") = false,
        nb::arg("trans_b") = false, nb::arg("bias") = nb::none(), nb::arg("residual") = nb::none(),
        nb::arg("activation") = "none", nb::arg("act_alpha") = 0.0f, nb::arg("act_beta") = 0.0f,
        nb::arg("rows_hint") = -1, nb::arg("threads") = 1, nb::arg("precision") = "f32",
        "activation(op(a) @ op(b) + bias + residual) with b packed first, as weights are (in bf16 "
        "with precision 'bf16', in f16 with 'f16').");
}

// ---- Who reads each node's outputs (Output.get_target_inputs, Output.replace) ------------
// Nodes keep only their inputs; the Python graph API also needs the reverse edges. Every node
// Python can see is made (or rewired) through these bindings, so they are recorded here, weakly:
// the table never keeps a node alive. Every caller holds the GIL, which guards the table.
class UserTable {
 public:
  void add(const NodePtr& user) {
    for (const Value& v : user->inputs) users_[v.node->id].push_back(user);
    if (++inserts_ % 4096 == 0) prune();
  }
  // (consumer, input index) pairs that read output `index` of `producer` now.
  std::vector<std::pair<NodePtr, int>> of(const Node& producer, int index) {
    std::vector<std::pair<NodePtr, int>> out;
    auto it = users_.find(producer.id);
    if (it == users_.end()) return out;
    std::vector<const Node*> seen;
    for (const auto& weak : it->second) {
      NodePtr user = weak.lock();
      if (!user || std::find(seen.begin(), seen.end(), user.get()) != seen.end()) continue;
      seen.push_back(user.get());
      for (size_t i = 0; i < user->inputs.size(); ++i)
        if (user->inputs[i].node.get() == &producer && user->inputs[i].index == index) out.emplace_back(user, (int)i);
    }
    return out;
  }

 private:
  void prune() {
    for (auto it = users_.begin(); it != users_.end();) {
      auto& list = it->second;
      list.erase(std::remove_if(list.begin(), list.end(), [](const auto& w) { return w.expired(); }), list.end());
      it = list.empty() ? users_.erase(it) : std::next(it);
    }
  }
  std::unordered_map<uint64_t, std::vector<std::weak_ptr<Node>>> users_;
  size_t inserts_ = 0;
};

UserTable& user_table() {
  static UserTable* table = new UserTable();  // never destroyed: nodes may outlive static teardown
  return *table;
}

}  // namespace

NB_MODULE(_core, m) {
  m.doc() = "aiov native engine";
  // Engine errors become aiov's Python exception types (defined in aiov/_errors.py).
  nb::register_exception_translator([](const std::exception_ptr& p, void*) {
    auto python_class = [](const char* name) { return nb::module_::import_("aiov._errors").attr(name); };
    try {
      std::rethrow_exception(p);
    } catch (const InputError& e) {
      PyErr_SetString(python_class("InputError").ptr(), e.what());
    } catch (const Cancelled& e) {
      PyErr_SetString(python_class("CancelledError").ptr(), e.what());
    } catch (const Busy& e) {
      PyErr_SetString(python_class("BusyError").ptr(), e.what());
    }
  });

  m.attr("max_tensor_elements") = kMaxTensorElements;
  m.def("begin_exit", &begin_exit, "The interpreter is exiting: threads returning from the engine park.");
  m.def("type_bits", [](int t) { return bit_width((ElementType)t); });
  m.def("type_name", [](int t) { return std::string(type_name((ElementType)t)); });
  m.def("op_types", [] { return OpRegistry::instance().names(); });
  m.def("op_schema", &op_schema, "Every registered op's description (attributes, traits, IR/ONNX names).");
  m.def("registry_problems", [] { return registry_problems(OpRegistry::instance()); });
  m.def("activation_kinds", [] { return std::vector<std::string>(kActNames, kActNames + kActKindCount); });
  // For the optimizer's tests: its passes in order, and the op names they match.
  m.def("graph_passes", [] {
    std::vector<std::string> names;
    for (const Pass& p : graph_passes()) names.push_back(p.name);
    return names;
  });
  m.def("pass_op_names", &pass_op_names);
  m.def("hardware_threads", &hardware_threads, "CPUs this process may use (affinity and cgroup quota).");
  m.def("env_problems", &env_problems, "One message per AIOV_* variable set to a value it does not take.");
  m.def("env_vars", [] {
    std::vector<std::tuple<std::string, std::string>> out;
    for (const EnvVar& v : env_vars()) out.emplace_back(v.name, v.what);
    return out;
  });
  m.def("default_plan_cache_bytes", &default_plan_cache_bytes);
  m.def("pool_size", [] { return default_pool().size(); });
  m.def(
      "pin_workers", [](bool pinned) { default_pool().pin_workers(pinned); },
      "Pins each worker to one CPU (True) or lets them run on all (False).");
  m.def("worker_cpus", [] { return default_pool().worker_cpus(); }, "The CPUs each worker may run on.");
  m.def("set_pool_size", &set_default_pool_size, "Before first use only; returns False if too late.");
  m.def("gemm_isa", [] { return std::string(gemm_isa()); });
  m.def("gemm_bf16_isa", [] { return std::string(gemm_bf16_isa()); }, "The kernels bf16 products run on.");
  m.def(
      "cpu_bf16_isa", [] { return std::string(bf16_isa_name(detect_bf16_isa())); },
      "The best bf16 kernels the CPU offers (AIOV_BF16_ISA and AIOV_GEMM_ISA aside).");
  m.def("gemm_int8_isa", [] { return std::string(gemm_int8_isa()); }, "The kernels integer products run on.");
  m.def(
      "depthwise_int8_isa", [] { return std::string(depthwise_int8_isa()); },
      "The kernels depthwise integer convolutions run on.");
  m.def(
      "conv_int8_isa",
      [] {
        const char* isa = conv_int8_isa();
        return std::string(isa ? isa : "");
      },
      "The kernels direct integer convolutions run on ('' where AMX tiles multiply patch rows instead).");
  m.def(
      "quantized_bytes_isa", [] { return std::string(quantized_bytes_isa()); },
      "The kernels QDQ models' u8 sums, lookups and max pooling run on.");
  m.def(
      "cpu_int8_isa", [] { return std::string(int8_isa_name(detect_int8_isa())); },
      "The best integer-product kernels the CPU offers (AIOV_INT8_ISA and AIOV_GEMM_ISA aside).");
  m.def("cpu_has_avx512_fp16", &cpu_has_avx512_fp16);
  m.def("gemm_f16_isa", [] { return std::string(gemm_f16_isa()); }, "The kernels f16 products run on.");
  m.def(
      "cpu_f16_isa", [] { return std::string(f16_isa_name(detect_f16_isa())); },
      "The best f16 kernels the CPU offers (AIOV_F16_ISA and AIOV_GEMM_ISA aside).");
  // For the executor's tests: runs parallel_for over n units on the default pool and
  // returns how often each unit ran. Units divisible by slow_every sleep 20 us (so threads
  // fall behind and take each other's work); unit fail_at throws, which must surface here.
  m.def("parallel_for_check", [](int64_t n, int64_t grain, int64_t slow_every, int64_t fail_at) {
    std::vector<std::atomic<int>> runs((size_t)n);
    without_gil([&] {
      default_pool().parallel_for(n, grain, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) {
          runs[(size_t)i].fetch_add(1, std::memory_order_relaxed);
          if (slow_every > 0 && i % slow_every == 0) std::this_thread::sleep_for(std::chrono::microseconds(20));
          if (i == fail_at) throw std::runtime_error("unit " + std::to_string(i) + " failed");
        }
      });
    });
    std::vector<int> out((size_t)n);
    for (size_t i = 0; i < out.size(); ++i) out[i] = runs[i].load();
    return out;
  });
  // parallel_for_units over n units of an estimated unit_ns each: how often each unit ran,
  // and whether any ran on a thread other than the caller's.
  m.def("parallel_for_units_check", [](int64_t n, double unit_ns) {
    std::vector<std::atomic<int>> runs((size_t)n);
    std::atomic<bool> elsewhere{false};
    without_gil([&] {
      const std::thread::id caller = std::this_thread::get_id();
      default_pool().parallel_for_units(n, unit_ns, [&](int64_t b, int64_t e) {
        if (std::this_thread::get_id() != caller) elsewhere = true;
        for (int64_t i = b; i < e; ++i) runs[(size_t)i].fetch_add(1, std::memory_order_relaxed);
      });
    });
    std::vector<int> out((size_t)n);
    for (size_t i = 0; i < out.size(); ++i) out[i] = runs[i].load();
    return std::make_pair(out, elsewhere.load());
  });
  bind_testing(m.def_submodule("_testing"));

  nb::class_<Node>(m, "Node")
      .def_prop_ro("op_type", [](const Node& n) { return n.op; })
      .def_prop_rw(
          "name", [](const Node& n) { return n.name; }, [](Node& n, const std::string& s) { n.name = s; })
      .def_prop_ro("id", [](const Node& n) { return n.id; })
      .def_prop_ro("output_count", [](const Node& n) { return n.outputs.size(); })
      .def_prop_ro("input_count", [](const Node& n) { return n.inputs.size(); })
      .def("output_type", [](const Node& n, size_t i) { return (int)n.outputs.at(i).type; })
      .def("output_shape", [](const Node& n, size_t i) { return shape_or_none(n.outputs.at(i).shape); })
      .def("output_kind", [](const Node& n, size_t i) { return std::string(kind_key(n.outputs.at(i).kind)); })
      .def("output_names", [](const Node& n, size_t i) { return n.output_names.at(i); })
      .def("set_output_names",
           [](Node& n, size_t i, std::vector<std::string> names) { n.output_names.at(i) = std::move(names); })
      .def("input_value",
           [](const Node& n, size_t i) {
             const Value& v = n.inputs.at(i);
             return std::make_pair(v.node, v.index);
           })
      .def("attributes", [](const Node& n) { return attrs_to(n.attrs); })
      .def("bodies",
           [](const Node& n) {
             std::map<std::string, std::shared_ptr<Body>> out;
             for (const auto& [k, b] : n.bodies) out[k] = std::const_pointer_cast<Body>(b);
             return out;
           })
      // Merged into the node's attributes; the caller re-infers (Model.reshape of a variable).
      .def("set_attributes",
           [](Node& n, nb::dict attrs) {
             for (auto& [k, v] : attrs_from(attrs)) n.attrs[k] = v;
           })
      .def("constant_bytes",
           [](const Node& n) -> nb::object {
             if (!n.constant) throw InputError(n.describe() + " is not a Constant");
             TensorView tv{n.constant->data(), ElementType::u8, {(int64_t)n.constant->size()}};
             return wrap(tv, n.constant, false);
           })
      .def(
          "set_parameter",
          [](Node& n, int type, nb::object shape) {
            if (n.op != "Parameter") throw InputError(n.describe() + " is not a Parameter");
            n.outputs[0] = PortInfo{(ElementType)type, shape_from(shape)};
          },
          nb::arg("type"), nb::arg("shape").none())
      .def("revalidate", [](Node& n) { revalidate(n); })
      .def("set_input",
           [](Node& n, size_t i, NodePtr source, int index) {
             if (n.op == "Parameter" || n.op == "Constant") throw InputError(n.describe() + " has no inputs");
             if (i >= n.inputs.size())
               throw InputError(n.describe() + " has " + std::to_string(n.inputs.size()) +
                                " input(s), asked for input " + std::to_string(i));
             if (index < 0 || (size_t)index >= source->outputs.size())
               throw InputError(source->describe() + " has no output " + std::to_string(index));
             n.inputs[i] = Value{source, index};
             user_table().add(n.shared_from_this());
           })
      .def("users", [](const Node& n, int index) { return user_table().of(n, index); });

  m.def(
      "make_parameter",
      [](int type, nb::object shape, const std::string& name, const std::string& kind) {
        return make_parameter((ElementType)type, shape_from(shape), name, kind_from_key(kind));
      },
      nb::arg("type"), nb::arg("shape").none(), nb::arg("name"), nb::arg("kind") = "tensor");
  m.def("make_constant", [](int type, Dims shape, nb::ndarray<nb::ro, nb::c_contig> bytes, const std::string& name) {
    return make_constant((ElementType)type, shape, bytes.data(), bytes.nbytes(), name);
  });
  // A Constant on the caller's memory (Constant(array, shared_memory=True)): `owner` (the array)
  // stays alive as long as the node's data does.
  m.def("make_shared_constant",
        [](int type, Dims shape, nb::ndarray<nb::ro, nb::c_contig> bytes, nb::object owner, const std::string& name) {
          auto* held = new nb::object(std::move(owner));
          std::shared_ptr<void> keep(held, [](void* p) noexcept {
            if (!Py_IsInitialized()) return;  // at interpreter exit: left to the process
            nb::gil_scoped_acquire gil;
            delete static_cast<nb::object*>(p);
          });
          auto buffer = std::make_shared<Buffer>(const_cast<void*>(bytes.data()), bytes.nbytes(), std::move(keep));
          return make_constant((ElementType)type, shape, std::move(buffer), name);
        });
  m.def("clone_constant", [](const Node& c) {
    // Shares the (immutable) data: cloning a model does not copy its weights. Data on the
    // caller's memory is copied: a compiled model (made from a clone) never sees later writes
    // to it, and its kernels get padded memory.
    if (!c.constant) throw InputError(c.describe() + " is not a Constant");
    auto n = std::make_shared<Node>(c);
    n->id = next_node_id();
    if (c.constant->is_external()) {
      n->constant = std::make_shared<Buffer>(c.constant->size());
      if (c.constant->size()) std::memcpy(n->constant->data(), c.constant->data(), c.constant->size());
    }
    return n;
  });
  // A subgraph for a node's GRAPH attribute (If's branches, Loop's and Scan's body).
  nb::class_<Body>(m, "Body")
      .def_prop_ro("parameters", [](const Body& b) { return b.graph.parameters; })
      .def_prop_ro("outputs", [](const Body& b) {
        std::vector<std::pair<NodePtr, int>> out;
        for (const Value& v : b.graph.outputs) out.emplace_back(v.node, v.index);
        return out;
      });
  m.def("make_body", [](std::vector<NodePtr> params, std::vector<std::pair<NodePtr, int>> outputs) {
    Graph g;
    g.parameters = std::move(params);
    for (auto& [n, i] : outputs) g.outputs.push_back(Value{n, i});
    return std::const_pointer_cast<Body>(make_body(std::move(g)));
  });
  m.def(
      "make_node",
      [](const std::string& op, std::vector<std::pair<NodePtr, int>> inputs, nb::dict attrs, const std::string& name,
         std::map<std::string, std::shared_ptr<Body>> bodies) {
        std::vector<Value> vals;
        for (auto& [n, i] : inputs) vals.push_back(Value{n, i});
        std::map<std::string, BodyPtr> owned(bodies.begin(), bodies.end());
        NodePtr node = make_node(op, std::move(vals), attrs_from(attrs), name, std::move(owned));
        user_table().add(node);
        return node;
      },
      nb::arg("op"), nb::arg("inputs"), nb::arg("attrs"), nb::arg("name"),
      nb::arg("bodies") = std::map<std::string, std::shared_ptr<Body>>{});
  m.def(
      "topological_order",
      [](std::vector<NodePtr> params, std::vector<std::pair<NodePtr, int>> outputs, std::vector<NodePtr> sinks) {
        return graph_of(std::move(params), std::move(outputs), std::move(sinks)).topological_order();
      },
      nb::arg("params"), nb::arg("outputs"), nb::arg("sinks") = std::vector<NodePtr>());
  // Compiled-model blobs (aiov/_blob.py): a model and the graph its compile optimized it into,
  // as bytes (plan/serialize.hpp), and back.
  m.def(
      "serialize_compiled",
      [](std::vector<NodePtr> params, std::vector<std::pair<NodePtr, int>> outputs, std::vector<NodePtr> sinks,
         const CompiledHandle& compiled) {
        const Graph model = graph_of(std::move(params), std::move(outputs), std::move(sinks));
        std::string bytes;
        without_gil(
            [&] { bytes = serialize_graphs({&model, &compiled.model->graph()}, &compiled.model->shared_weights()); });
        // A blob is tens of MB and may be written on a thread beside an event loop
        // (_blob.refresh_after_first_run): only the allocation holds the GIL, the copy into the
        // bytes object (no one else sees it yet) and the string's release do not.
        nb::bytes out = nb::steal<nb::bytes>(PyBytes_FromStringAndSize(nullptr, Py_ssize_t(bytes.size())));
        if (!out.is_valid()) throw nb::python_error();
        char* into = PyBytes_AS_STRING(out.ptr());
        without_gil([&] {
          std::memcpy(into, bytes.data(), bytes.size());
          std::string().swap(bytes);
        });
        return out;
      },
      nb::arg("params"), nb::arg("outputs"), nb::arg("sinks"), nb::arg("compiled"));
  m.def(
      "deserialize_graphs",
      [](nb::bytes data, size_t offset, size_t size) {
        if (offset > data.size() || size > data.size() - offset)
          throw InputError("deserialize_graphs: bytes " + std::to_string(offset) + ".." +
                           std::to_string(offset + size) + " are outside the " + std::to_string(data.size()) +
                           " given");
        std::vector<Graph> graphs;
        PackedWeights packed;
        without_gil([&] {
          graphs = deserialize_graphs(static_cast<const uint8_t*>(data.data()) + offset, size, &packed.entries);
        });
        std::vector<GraphParts> parts;
        for (Graph& g : graphs) parts.push_back(parts_of(g));
        return std::make_pair(parts, std::move(packed));
      },
      nb::arg("data"), nb::arg("offset"), nb::arg("size"));

  // The packed weights a blob held (opaque to Python), handed to new_compiled_model.
  nb::class_<PackedWeights>(m, "PackedWeights").def("__len__", [](const PackedWeights& p) { return p.entries.size(); });

  nb::class_<CompiledHandle>(m, "CompiledModel")
      .def_prop_ro("num_inputs", [](const CompiledHandle& c) { return c.model->inputs().size(); })
      .def_prop_ro("num_outputs", [](const CompiledHandle& c) { return c.model->outputs().size(); })
      .def("input_info",
           [](const CompiledHandle& c, size_t i) {
             auto& x = c.model->inputs().at(i);
             return nb::make_tuple(x.name, (int)x.type, shape_or_none(x.shape));
           })
      .def("output_info",
           [](const CompiledHandle& c, size_t i) {
             auto& x = c.model->outputs().at(i);
             return nb::make_tuple(x.name, (int)x.type, shape_or_none(x.shape));
           })
      .def_prop_ro("cached_plans", [](const CompiledHandle& c) { return c.model->cached_plans(); })
      .def_prop_ro("cached_plan_bytes", [](const CompiledHandle& c) { return c.model->cached_plan_bytes(); })
      .def_prop_ro("shared_weights", [](const CompiledHandle& c) { return c.model->shared_weight_count(); })
      // Weights derived from constants: how many were packed, and how many taken from a blob.
      .def_prop_ro("weights_packed", [](const CompiledHandle& c) { return c.model->shared_weights().made(); })
      .def_prop_ro("weights_restored", [](const CompiledHandle& c) { return c.model->shared_weights().restored(); })
      .def("take_built_plans",
           [](const CompiledHandle& c) {
             // (plans, dropped); a plan: (input shapes, continuation, node by node, arena bytes,
             // build ms, [(name, op, output shapes, kernel)]).
             size_t dropped = 0;
             std::vector<BuiltPlan> built = c.model->take_built_plans(&dropped);
             nb::list plans;
             for (const BuiltPlan& b : built) {
               nb::list steps;
               for (const auto& s : b.steps) steps.append(nb::make_tuple(s.name, s.op, s.outputs, s.kernel));
               plans.append(
                   nb::make_tuple(b.input_shapes, b.continuation, b.node_by_node, b.arena_bytes, b.build_ms, steps));
             }
             return nb::make_tuple(plans, dropped);
           })
      .def_prop_ro("variables", [](const CompiledHandle& c) {
        std::vector<nb::tuple> out;
        for (const VariableDesc& v : c.model->variables())
          out.push_back(nb::make_tuple(v.id, (int)v.type, shape_or_none(v.shape)));
        return out;
      });

  m.def(
      "new_compiled_model",
      [](std::vector<NodePtr> params, std::vector<std::pair<NodePtr, int>> outputs, int num_threads, bool profiling,
         size_t plan_cache_bytes, const std::string& inference_precision, std::vector<NodePtr> sinks, bool log_plans,
         std::optional<GraphParts> optimized, const PackedWeights* packed) {
        if (inference_precision != "f32" && inference_precision != "bf16" && inference_precision != "f16")
          throw InputError("inference precision must be 'f32', 'bf16' or 'f16', got '" + inference_precision + "'");
        Graph g = graph_of(std::move(params), std::move(outputs), std::move(sinks));
        std::optional<Graph> given;
        if (optimized)
          given = graph_of(std::move(std::get<0>(*optimized)), std::move(std::get<1>(*optimized)),
                           std::move(std::get<2>(*optimized)));
        CompileOptions opt;
        opt.num_threads = num_threads;
        opt.profiling = profiling;
        opt.plan_cache_bytes = plan_cache_bytes;
        opt.inference_precision = inference_precision == "bf16"  ? ElementType::bf16
                                  : inference_precision == "f16" ? ElementType::f16
                                                                 : ElementType::f32;
        opt.log_plans = log_plans;
        auto handle = std::make_unique<CompiledHandle>();
        std::vector<SharedWeights::Stored> restored;
        if (packed) restored = packed->entries;
        without_gil([&] {
          handle->model = std::make_shared<const CompiledModel>(g, opt, given ? &*given : nullptr, std::move(restored));
        });
        return handle.release();
      },
      nb::arg("params"), nb::arg("outputs"), nb::arg("num_threads"), nb::arg("profiling"), nb::arg("plan_cache_bytes"),
      nb::arg("inference_precision") = "f32", nb::arg("sinks") = std::vector<NodePtr>(), nb::arg("log_plans") = false,
      nb::arg("optimized") = nb::none(), nb::arg("packed").none() = nb::none(), nb::rv_policy::take_ownership);

  nb::class_<BatcherHandle>(m, "Batcher")
      .def(
          "__init__",
          [](BatcherHandle* self, const CompiledHandle& model, int64_t max_batch, int64_t timeout_ms, int max_in_flight,
             std::vector<std::tuple<int, int, nb::bytes>> pads) {
            BatchOptions options;
            options.max_batch = max_batch;
            options.timeout_ms = timeout_ms;
            options.max_in_flight = max_in_flight;
            for (auto& [input, axis, value] : pads) {
              const auto* bytes = static_cast<const uint8_t*>(value.data());
              options.pads.push_back(BatchOptions::Pad{input, axis, std::vector<uint8_t>(bytes, bytes + value.size())});
            }
            new (self) BatcherHandle{std::make_shared<Batcher>(model.model, std::move(options))};
          },
          nb::arg("model"), nb::arg("max_batch"), nb::arg("timeout_ms"), nb::arg("max_in_flight") = 0,
          nb::arg("pads") = std::vector<std::tuple<int, int, nb::bytes>>())
      .def_prop_ro("max_batch", [](const BatcherHandle& h) { return h.batcher->max_batch(); })
      .def("set_timeout_ms", [](BatcherHandle& h, int64_t ms) { h.batcher->set_timeout_ms(ms); })
      .def("stats", [](const BatcherHandle& h) {
        BatchStats s = h.batcher->stats();
        nb::dict sizes;
        for (size_t k = 1; k < s.sizes.size(); ++k)
          if (s.sizes[k]) sizes[nb::int_(k)] = s.sizes[k];
        nb::dict out;
        out["batches"] = s.batches;
        out["inferences"] = s.members;
        out["retried"] = s.retried;
        out["cancelled"] = s.cancelled;
        out["sizes"] = sizes;
        return out;
      });

  nb::class_<PortHandle>(m, "CompletionPort")
      .def(nb::init<>())
      .def_prop_ro("fd", [](const PortHandle& h) { return h.port->fd(); })
      .def_prop_ro("kind", [](const PortHandle& h) { return std::string(h.port->kind()); })
      .def("drain", [](PortHandle& h) { return h.port->drain(); })
      .def(
          "wait_drain",
          [](PortHandle& h, int64_t timeout_ms) {
            std::vector<uint64_t> tokens;
            without_gil([&] { tokens = h.port->wait_drain(timeout_ms); });
            return tokens;
          },
          nb::arg("timeout_ms") = -1)
      .def("push", [](PortHandle& h, uint64_t token) { h.port->push(token); })
      .def("close", [](PortHandle& h) { h.port->close(); })
      .def_prop_ro("closed", [](const PortHandle& h) { return h.port->closed(); });

  // The native request status, named: Python compares against these instead of numbers.
  nb::enum_<RequestStatus>(m, "RequestStatus")
      .value("idle", RequestStatus::kIdle, "never started")
      .value("running", RequestStatus::kRunning, "a job is queued or running")
      .value("ok", RequestStatus::kOk, "the last job finished")
      .value("failed", RequestStatus::kFailed, "the last job raised an error")
      .value("cancelled", RequestStatus::kCancelled, "the last job was cancelled");

  nb::class_<PyRequest>(m, "Request")
      .def(nb::init<const CompiledHandle&, const BatcherHandle*>(), nb::arg("model"),
           nb::arg("batcher").none() = nb::none())
      .def("set_input", &PyRequest::set_input, nb::arg("index"), nb::arg("array"), nb::arg("etype"), nb::arg("share"),
           nb::arg("shape") = nb::none())
      .def("input_view",
           [](PyRequest& r, int i) -> nb::object {
             if (r.req->busy())
               throw Busy("the request is running: its input tensors can be read once wait() has returned");
             if (r.keep.at(i).is_valid() && r.req->input_is_bound(i)) return r.keep[i];
             BufferPtr buf;
             TensorView tv = r.req->input_view(i, &buf);
             return wrap(tv, buf);
           })
      .def("output",
           [](PyRequest& r, int j, bool copy) {
             BufferPtr buf;
             TensorView tv = r.req->output_view(j, &buf);
             return copy ? copy_out(tv) : wrap(tv, buf);
           })
      .def("outputs", &outputs_of)
      .def("set_composite_input", &set_composite_input, nb::arg("index"), nb::arg("arrays"), nb::arg("present"),
           nb::arg("etype"))
      .def("infer",
           [](PyRequest& r) {
             without_gil([&] { r.req->run_inline(); });
             raise_if_failed(*r.req);
           })
      .def("set_fast_inputs",
           [](PyRequest& r, nb::dict names, std::vector<nb::object> dtypes, std::vector<int> etypes) {
             if (dtypes.size() != r.keep.size() || etypes.size() != r.keep.size())
               throw InputError("expected " + std::to_string(r.keep.size()) + " dtypes and element types");
             r.fast_names = std::move(names);
             r.fast_dtypes = std::move(dtypes);
             r.fast_etypes = std::move(etypes);
           })
      .def("bind", &bind_fast)
      // One call for the common path: inputs in, inference, outputs out; None when the
      // inputs need the Python path.
      .def("call",
           [](PyRequest& r, nb::handle inputs, bool share, bool copy_outputs) -> nb::object {
             if (!bind_fast(r, inputs, share)) return nb::none();
             without_gil([&] { r.req->run_inline(); });
             raise_if_failed(*r.req);
             return nb::cast(outputs_of(r, copy_outputs));
           })
      .def(
          "start",
          [](PyRequest& r, const PortHandle* port, uint64_t token) {
            r.req->start(default_pool(), port ? port->port : nullptr, token);
          },
          nb::arg("port").none(), nb::arg("token"))
      .def(
          "wait",
          [](PyRequest& r, int64_t timeout_ms) {
            bool done = false;
            without_gil([&] { done = r.req->wait(timeout_ms); });
            return done;
          },
          nb::arg("timeout_ms") = -1)
      .def_prop_ro("variable_count", [](PyRequest& r) { return r.req->variable_count(); })
      // A copy of variable i's value: the worker rewrites the request's own at every run.
      .def("state",
           [](PyRequest& r, int i) {
             BufferPtr buf;
             TensorView tv = r.req->copy_state(i, &buf);
             return wrap(tv, buf);
           })
      .def("set_state",
           [](PyRequest& r, int i, nb::ndarray<nb::ro> a, int etype) {
             if (!is_c_contiguous(a)) throw InputError("variable state: array must be C-contiguous");
             r.req->set_state(i, a.data(), (ElementType)etype, shape_of(a));
           })
      .def(
          "reset_state", [](PyRequest& r, int i) { r.req->reset_state(i); }, nb::arg("index") = -1)
      .def("cancel", [](PyRequest& r) { r.req->cancel(); })
      .def("raise_if_failed", [](PyRequest& r) { raise_if_failed(*r.req); })
      .def("release_inputs",
           [](PyRequest& r) {
             // Called once the job has ended: shared arrays need no pinning any more.
             if (r.req->busy()) return;
             for (size_t i = 0; i < r.keep.size(); ++i)
               if (!r.req->input_is_bound((int)i)) r.keep[i] = nb::object();
           })
      .def_prop_ro("busy", [](PyRequest& r) { return r.req->busy(); })
      .def_prop_ro("status", [](PyRequest& r) { return r.req->status(); })
      .def_prop_ro("error", [](PyRequest& r) { return r.req->error(); })
      .def_prop_ro("error_is_input", [](PyRequest& r) { return r.req->error_is_input(); })
      .def_prop_ro("error_is_memory", [](PyRequest& r) { return r.req->error_is_memory(); })
      .def_prop_ro("latency_ms", [](PyRequest& r) { return r.req->latency_ms(); })
      .def("profiling", [](PyRequest& r) {
        std::vector<std::tuple<std::string, std::string, double, std::string>> out;
        for (auto& t : r.req->profiling()) out.emplace_back(t.name, t.type, t.ms, t.exec);
        return out;
      });
}
