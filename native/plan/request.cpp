#include "plan/request.hpp"

#include <cstring>

#include "core/out_of_memory.hpp"
#include "plan/batcher.hpp"
#include "plan/composite.hpp"
#include "plan/subgraph.hpp"

namespace aiov {

namespace {
// What an arena that could not be had was for: its largest value names the node to look at.
std::string arena_use(const ShapePlan& plan) {
  const Step* largest = nullptr;
  size_t output = 0, most = 0;
  for (const Step& st : plan.steps)
    for (size_t o = 0; o < st.outs.size(); ++o) {
      const ValueSlot& s = plan.values[st.outs[o]];
      if (s.kind != ValueSlot::kArena) continue;
      const size_t bytes = byte_size(s.type, numel(s.shape));
      if (bytes > most) largest = &st, output = o, most = bytes;
    }
  std::string use = "the intermediate values of this run";
  if (largest)
    use += " (the largest: output " + std::to_string(output) + " of " + largest->node->describe() + ", shape " +
           dims_str(plan.values[largest->outs[output]].shape) + ", " + std::to_string(most) + " bytes)";
  return use;
}

BufferPtr output_buffer(const IoInfo& info, const Dims& shape, size_t bytes) {
  try {
    return std::make_shared<Buffer>(bytes);
  } catch (const std::bad_alloc&) {
    rethrow_out_of_memory_for("output '" + info.name + "' of shape " + dims_str(shape));
  }
}
}  // namespace

Request::Request(std::shared_ptr<const CompiledModel> model, std::shared_ptr<Batcher> batcher)
    : model_(std::move(model)),
      batcher_(std::move(batcher)),
      inputs_(model_->inputs().size()),
      outputs_(model_->outputs().size()),
      output_shapes_(model_->outputs().size()),
      output_composites_(model_->outputs().size()) {
  variables_.descs = &model_->variables();
  variables_.slots.resize(model_->variables().size());
}

std::unique_lock<std::mutex> Request::claim_state(int i, const char* verb) {
  if (i < -1 || i >= (int)variables_.slots.size())
    throw InputError("variable index " + std::to_string(i) + " is out of range: the model has " +
                     std::to_string(variables_.slots.size()) + " variable(s)");
  // A job holds the lock while it runs; one that is queued but not yet running is busy().
  std::unique_lock<std::mutex> lock(state_mutex_, std::try_to_lock);
  if (!lock.owns_lock() || busy())
    throw Busy(std::string("the request is running: its state can be ") + verb + " once wait() has returned");
  return lock;
}

TensorView Request::copy_state(int i, BufferPtr* owner) {
  auto lock = claim_state(i, "read");
  const VariableSlot& slot = variables_.slots.at(i);
  const VariableDesc& desc = model_->variables()[i];
  Dims shape = slot.set ? slot.shape : desc.shape.rank_known ? desc.shape.dims : Dims{};
  for (auto& d : shape)
    if (d < 0) d = 0;
  const size_t bytes = byte_size(desc.type, numel(shape));
  auto copy = std::make_shared<Buffer>(bytes);
  if (bytes) {
    if (slot.set)
      std::memcpy(copy->data(), slot.data->data(), bytes);
    else
      std::memset(copy->data(), 0, bytes);  // no value yet: zeros of the declared shape
  }
  TensorView tv;
  tv.type = desc.type;
  tv.shape = shape;
  tv.data = copy->data();
  *owner = copy;
  return tv;
}

void Request::set_state(int i, const void* data, ElementType type, const Dims& shape) {
  auto lock = claim_state(i, "set");
  const VariableDesc& desc = model_->variables().at(i);
  if (type != desc.type)
    throw InputError("variable '" + desc.id + "': expected element type " + type_name(desc.type) + ", got " +
                     type_name(type));
  if (!desc.shape.compatible(shape))
    throw InputError("variable '" + desc.id + "': expected shape " + desc.shape.str() + ", got " + dims_str(shape));
  check_tensor_size(shape, "variable '" + desc.id + "'");
  const size_t bytes = byte_size(type, numel(shape));
  auto value = std::make_shared<Buffer>(bytes);
  if (bytes) std::memcpy(value->data(), data, bytes);
  VariableSlot& slot = variables_.slots[i];
  slot.data = std::move(value);
  slot.shape = shape;
  slot.set = true;
}

void Request::reset_state(int i) {
  auto lock = claim_state(i, "reset");
  for (int v = 0; v < (int)variables_.slots.size(); ++v)
    if (i < 0 || v == i) variables_.slots[v].set = false;
}

void Request::check_input(int i, ElementType type, const Dims& shape) const {
  const auto& ins = model_->inputs();
  if (i < 0 || i >= (int)ins.size())
    throw InputError("input index " + std::to_string(i) + " is out of range: the model has " +
                     std::to_string(ins.size()) + " input(s)");
  const IoInfo& info = ins[i];
  if (info.kind != ValueKind::tensor)
    throw InputError("input '" + info.name + "' is " + kind_name(info.kind) + ", got a tensor");
  if (type != info.type)
    throw InputError("input '" + info.name + "': expected element type " + type_name(info.type) + ", got " +
                     type_name(type));
  if (!info.shape.compatible(shape)) {
    std::string what = info.shape.rank_known && (int64_t)shape.size() != info.shape.rank()
                           ? "rank " + std::to_string(info.shape.rank()) + " shape "
                           : "shape ";
    throw InputError("input '" + info.name + "': expected " + what + info.shape.str() + ", got " + dims_str(shape));
  }
  for (auto d : shape)
    if (d < 0) throw InputError("input '" + info.name + "': shape " + dims_str(shape) + " is not concrete");
  try {
    (void)numel(shape);
  } catch (const InputError&) {
    check_tensor_size(shape, "input '" + info.name + "'");  // the message names the input: built only here
    throw;
  }
  if (busy()) throw Busy("the request is busy: wait for the running inference first");
}

void Request::set_composite_input(int i, std::shared_ptr<const Composite> value) {
  const auto& ins = model_->inputs();
  if (i < 0 || i >= (int)ins.size())
    throw InputError("input index " + std::to_string(i) + " is out of range: the model has " +
                     std::to_string(ins.size()) + " input(s)");
  const IoInfo& info = ins[i];
  if (value->kind != info.kind)
    throw InputError("input '" + info.name + "' is " + kind_name(info.kind) + ", got " + kind_name(value->kind));
  std::vector<const HeldTensor*> tensors;
  for (const HeldTensor& item : value->items)
    if (item.view.composite)
      for (const HeldTensor& inner : item.view.composite->items) tensors.push_back(&inner);
    else
      tensors.push_back(&item);
  for (const HeldTensor* t : tensors) {
    if (t->view.type != info.type)
      throw InputError("input '" + info.name + "': expected tensors of element type " + type_name(info.type) +
                       ", got " + type_name(t->view.type));
    if (!info.shape.compatible(t->view.shape))
      throw InputError("input '" + info.name + "': expected tensors of shape " + info.shape.str() + ", got " +
                       dims_str(t->view.shape));
  }
  if (busy()) throw Busy("the request is busy: wait for the running inference first");
  Input& in = inputs_[i];
  in.composite = std::move(value);
  in.external = nullptr;
  in.shape = Dims{0};
  in.set = true;
}

std::shared_ptr<const Composite> Request::output_composite(int j) const {
  if (busy()) throw Busy("the request is running: its outputs can be read once wait() has returned");
  return output_composites_.at(j);
}

void Request::copy_input(int i, const void* data, ElementType type, const Dims& shape) {
  check_input(i, type, shape);
  Input& in = inputs_[i];
  size_t bytes = byte_size(type, numel(shape));
  if (!in.own || in.own_capacity < bytes) {
    in.own = std::make_shared<Buffer>(bytes);
    in.own_capacity = bytes;
  }
  if (bytes) std::memcpy(in.own->data(), data, bytes);
  in.external = nullptr;
  in.shape = shape;
  in.set = true;
}

void Request::bind_input(int i, void* data, ElementType type, const Dims& shape) {
  check_input(i, type, shape);
  Input& in = inputs_[i];
  in.external = data;
  in.shape = shape;
  in.set = true;
}

TensorView Request::input_view(int i, BufferPtr* buffer) {
  if (busy()) throw Busy("the request is running: its input tensors can be read once wait() has returned");
  return input_memory(i, buffer);
}

TensorView Request::input_memory(int i, BufferPtr* buffer) {
  const auto& info = model_->inputs().at(i);
  if (info.kind != ValueKind::tensor)
    throw InputError("input '" + info.name + "' is " + kind_name(info.kind) + ", not a tensor");
  Input& in = inputs_.at(i);
  TensorView tv;
  tv.type = info.type;
  if (!in.set) {
    // Like OpenVINO: a static input has zeroed memory from the start; a dynamic one is empty.
    Dims shape = info.shape.dims;
    for (auto& d : shape)
      if (d < 0) d = 0;
    size_t bytes = byte_size(info.type, numel(shape));
    in.own = std::make_shared<Buffer>(bytes);
    in.own_capacity = bytes;
    if (bytes) std::memset(in.own->data(), 0, bytes);
    in.shape = shape;
    in.set = info.shape.is_static();
  }
  tv.shape = in.shape;
  tv.data = in.external ? in.external : in.own->data();
  if (buffer) *buffer = in.own;
  return tv;
}

TensorView Request::output_view(int j, BufferPtr* buffer) {
  if (busy()) throw Busy("the request is running: its outputs can be read once wait() has returned");
  const auto& info = model_->outputs().at(j);
  if (info.kind != ValueKind::tensor)
    throw InputError("output '" + info.name + "' is " + kind_name(info.kind) + ", not a tensor");
  TensorView tv;
  tv.type = info.type;
  if (!outputs_.at(j)) {
    Dims shape = info.shape.dims;
    for (auto& d : shape)
      if (d < 0) d = 0;
    size_t bytes = byte_size(info.type, numel(shape));
    outputs_[j] = std::make_shared<Buffer>(bytes);
    if (bytes) std::memset(outputs_[j]->data(), 0, bytes);
    output_shapes_[j] = shape;
  }
  tv.shape = output_shapes_[j];
  tv.data = outputs_[j]->data();
  if (buffer) *buffer = outputs_[j];
  return tv;
}

void Request::begin() {
  RequestStatus expected = status_.load();
  do {
    if (expected == RequestStatus::kRunning) throw Busy("the request is busy: wait for the running inference first");
  } while (!status_.compare_exchange_weak(expected, RequestStatus::kRunning));
  abort_.store(false, std::memory_order_relaxed);
  std::lock_guard<std::mutex> lock(mutex_);
  error_.clear();
  error_is_input_ = error_is_memory_ = false;
}

void Request::run_inline() {
  begin();
  if (batcher_) return batcher_->run_inline(shared_from_this());
  execute();
  finish();
}

void Request::start(ThreadPool& pool, std::shared_ptr<CompletionPort> port, uint64_t token) {
  begin();
  auto self = shared_from_this();
  if (batcher_) return batcher_->submit(std::move(self), std::move(port), token);
  pool.submit([self, port = std::move(port), token] {
    self->execute();
    self->finish();
    if (port) port->push(token);
  });
}

void Request::execute() {
  RequestStatus result = RequestStatus::kOk;
  std::string message;
  bool input_error = false, memory_error = false;
  auto t0 = std::chrono::steady_clock::now();
  try {
    if (abort_.load(std::memory_order_relaxed)) throw Cancelled("inference was cancelled");
    run_plan();
  } catch (const Cancelled& e) {
    result = RequestStatus::kCancelled;
    message = e.what();
  } catch (const InputError& e) {
    result = RequestStatus::kFailed;
    message = e.what();
    input_error = true;
  } catch (const std::bad_alloc& e) {
    result = RequestStatus::kFailed;
    message = e.what();
    memory_error = true;
  } catch (const std::exception& e) {
    result = RequestStatus::kFailed;
    message = e.what();
  } catch (...) {
    result = RequestStatus::kFailed;
    message = "unknown error in inference";
  }
  latency_ms_ = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  std::lock_guard<std::mutex> lock(mutex_);
  error_ = std::move(message);
  error_is_input_ = input_error;
  error_is_memory_ = memory_error;
  status_.store(result, std::memory_order_release);
}

void Request::finish() {
  // Taking the lock orders the notify after a waiter's predicate check.
  {
    std::lock_guard<std::mutex> lock(mutex_);
  }
  cv_.notify_all();
}

void Request::settle(RequestStatus result, std::string message, double ms) {
  latency_ms_ = ms;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    error_ = std::move(message);
    error_is_input_ = error_is_memory_ = false;
    status_.store(result, std::memory_order_release);
  }
  finish();
}

bool Request::wait(int64_t timeout_ms) {
  if (!busy()) return true;
  std::unique_lock<std::mutex> lock(mutex_);
  auto done = [this] { return status_.load(std::memory_order_acquire) != RequestStatus::kRunning; };
  if (timeout_ms < 0) {
    cv_.wait(lock, done);
    return true;
  }
  return cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms), done);
}

std::string Request::error() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return error_;
}

std::vector<NodeTiming> Request::profiling() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return timings_;
}

void Request::rebind(Stage& stage, std::shared_ptr<const ShapePlan> plan) {
  stage.plan = std::move(plan);
  const ShapePlan& p = *stage.plan;
  stage.views.assign(p.values.size(), TensorView{});
  stage.step_ptrs.clear();
  stage.step_ptr_begin.clear();
  for (size_t v = 0; v < stage.views.size(); ++v) {
    stage.views[v].type = p.values[v].type;
    stage.views[v].shape = p.values[v].shape;
  }
  for (const auto& st : p.steps) {
    stage.step_ptr_begin.push_back(stage.step_ptrs.size());
    for (int v : st.ins) stage.step_ptrs.push_back(&stage.views[v]);
    for (int v : st.outs) stage.step_ptrs.push_back(&stage.views[v]);
  }
  if (p.node_by_node || p.resume) return;  // output shapes are known after the run
  for (size_t j = 0; j < outputs_.size(); ++j) output_shapes_[j] = p.values[p.output_values[j]].shape;
}

ExecContext Request::exec_context() {
  ExecContext ctx;
  ctx.pool = &default_pool();
  ctx.max_threads = model_->options().num_threads;
  ctx.abort = &abort_;
  ctx.variables = &variables_;
  return ctx;
}

void Request::run_node_by_node_into_outputs(bool stateful) {
  std::vector<TensorView> in;
  for (size_t i = 0; i < inputs_.size(); ++i) {
    const Input& x = inputs_[i];
    if (x.composite) {
      in.push_back(hold_composite(x.composite).view);
      continue;
    }
    in.push_back(TensorView{x.external ? x.external : x.own->data(), model_->inputs()[i].type, x.shape});
  }
  ExecContext ctx = exec_context();
  std::vector<HeldTensor> results = run_node_by_node(*model_, in, ctx);
  for (size_t j = 0; j < outputs_.size(); ++j) {
    const TensorView& r = results.at(j).view;
    if (kind_of(r) != model_->outputs()[j].kind)
      throw InputError("output '" + model_->outputs()[j].name + "' came out as " + kind_name(kind_of(r)) +
                       ", expected " + kind_name(model_->outputs()[j].kind));
    if (r.composite) {
      output_composites_[j] = results[j].composite;
      output_shapes_[j] = Dims{0};
      continue;
    }
    if (r.type != model_->outputs()[j].type)
      throw InputError("output '" + model_->outputs()[j].name + "' came out as " + type_name(r.type) + ", expected " +
                       type_name(model_->outputs()[j].type));
    if (!outputs_[j] || outputs_[j]->size() < r.bytes())
      outputs_[j] = output_buffer(model_->outputs()[j], r.shape, r.bytes());
    if (r.bytes()) std::memcpy(outputs_[j]->data(), r.data, r.bytes());
    output_shapes_[j] = r.shape;
  }
  if (stateful) variables_.commit();
}

void Request::run_plan() {
  const auto& infos = model_->inputs();
  const bool stateful = !variables_.slots.empty();
  // The variables are this run's until it ends (all stages): state accessors meanwhile raise Busy.
  std::unique_lock<std::mutex> state_lock(state_mutex_, std::defer_lock);
  if (stateful) state_lock.lock();
  bool keyed = model_->has_value_keyed() || stateful;
  if (stages_.empty()) stages_.resize(1);
  bool same = stages_[0].plan != nullptr && !keyed;
  for (size_t i = 0; i < inputs_.size(); ++i) {
    if (!inputs_[i].set) {
      if (infos[i].shape.is_static() && infos[i].kind == ValueKind::tensor) {
        input_memory((int)i, nullptr);
      } else if (infos[i].kind != ValueKind::tensor) {
        throw InputError("input '" + infos[i].name + "' (" + kind_name(infos[i].kind) + ") was not set");
      } else {
        throw InputError("input '" + infos[i].name + "' with dynamic shape " + infos[i].shape.str() + " was not set");
      }
    }
    if (same && stages_[0].plan->input_shapes[i] != inputs_[i].shape) same = false;
  }
  if (!same) {
    std::vector<Dims> key;
    key.reserve(inputs_.size());
    for (auto& in : inputs_) key.push_back(in.shape);
    if (keyed)
      for (size_t i = 0; i < inputs_.size(); ++i)
        if (model_->value_keyed()[i]) {
          const Input& in = inputs_[i];
          key.push_back(
              pack_value(in.external ? in.external : in.own->data(), byte_size(infos[i].type, numel(in.shape))));
        }
    for (const VariableSlot& v : variables_.slots) key.push_back(v.set ? v.shape : Dims{-1});
    auto next = model_->plan_for(key);
    if (next != stages_[0].plan) rebind(stages_[0], std::move(next));
  }
  variables_.discard();  // what a failed or cancelled run wrote
  if (stages_[0].plan->node_by_node) return run_node_by_node_into_outputs(stateful);
  ExecContext ctx = exec_context();
  const bool profile = model_->options().profiling;
  std::vector<NodeTiming> timings;
  for (size_t k = 0;; ++k) {
    run_stage(k, ctx, profile ? &timings : nullptr);
    const ShapePlan& plan = *stages_[k].plan;
    if (!plan.resume) break;
    // The sizes the data-dependent step found choose the plan of the next stage.
    std::vector<Dims> shapes;
    for (int v : plan.resume->emitted) shapes.push_back(stages_[k].views[v].shape);
    auto next = model_->plan_for(continuation_key(plan, shapes));
    // A control-flow op whose shapes only running tells comes later: start over node by node.
    if (next->node_by_node) {
      variables_.discard();  // the stages run so far wrote for a run that starts over
      return run_node_by_node_into_outputs(stateful);
    }
    if (stages_.size() <= k + 1) stages_.resize(k + 2);
    if (next != stages_[k + 1].plan) rebind(stages_[k + 1], std::move(next));
  }
  if (stateful) variables_.commit();
  if (profile) {
    std::lock_guard<std::mutex> lock(mutex_);
    timings_ = std::move(timings);
  }
}

void Request::run_stage(size_t k, ExecContext& ctx, std::vector<NodeTiming>* timings) {
  Stage& stage = stages_[k];
  const ShapePlan& plan = *stage.plan;
  if (!stage.arena || stage.arena->size() < plan.arena_bytes) {
    stage.arena.reset();  // the old one's memory counts towards the new one's
    try {
      stage.arena = std::make_shared<Buffer>(plan.arena_bytes);
    } catch (const std::bad_alloc&) {
      rethrow_out_of_memory_for(arena_use(plan));
    }
  }
  if (!plan.resume)
    for (size_t j = 0; j < outputs_.size(); ++j) {
      // Set on every run: an earlier run of this request may have ended node by node.
      output_shapes_[j] = plan.values[plan.output_values[j]].shape;
      size_t bytes = byte_size(model_->outputs()[j].type, numel(output_shapes_[j]));
      if (!outputs_[j] || outputs_[j]->size() < bytes) {
        outputs_[j].reset();
        outputs_[j] = output_buffer(model_->outputs()[j], output_shapes_[j], bytes);
      }
    }
  char* arena = static_cast<char*>(stage.arena->data());
  std::vector<TensorView>& views = stage.views;
  for (size_t v = 0; v < views.size(); ++v) {
    const ValueSlot& s = plan.values[v];
    switch (s.kind) {
      case ValueSlot::kInput: {
        const Input& in = inputs_[s.index];
        views[v].data = in.external ? in.external : in.own->data();
        break;
      }
      case ValueSlot::kConstant:
        views[v].data = const_cast<void*>(s.constant);
        break;
      case ValueSlot::kArena:
        views[v].data = arena + s.offset;
        break;
      case ValueSlot::kOutput:
        views[v].data = outputs_[s.index]->data();
        break;
      case ValueSlot::kEmitted:
        views[v].data = nullptr;  // set by the step when it knows the size
        break;
      case ValueSlot::kCarried:
        views[v].data = stages_[k - 1].views[s.index].data;
        break;
    }
  }
  stage.emitted.clear();
  for (size_t si = 0; si < plan.steps.size(); ++si) {
    if (abort_.load(std::memory_order_relaxed)) throw Cancelled("inference was cancelled");
    const Step& st = plan.steps[si];
    if (!st.fn) continue;  // alias: nothing to compute
    const TensorView* const* p = stage.step_ptrs.data() + stage.step_ptr_begin[si];
    const bool emits = plan.resume && si + 1 == plan.steps.size();
    if (emits)
      ctx.emit = [&stage, &st](size_t o, const Dims& shape) -> void* {
        TensorView& out = stage.views.at(st.outs.at(o));
        if (shape.size() != out.shape.size())
          throw std::logic_error(st.node->describe() + ": emitted rank " + std::to_string(shape.size()) + ", planned " +
                                 std::to_string(out.shape.size()));
        check_tensor_size(shape, st.node->describe() + " output " + std::to_string(o));
        stage.emitted.push_back(std::make_shared<Buffer>(byte_size(out.type, numel(shape))));
        out.shape = shape;
        out.data = stage.emitted.back()->data();
        return out.data;
      };
    auto t0 = timings ? std::chrono::steady_clock::now() : std::chrono::steady_clock::time_point();
    try {
      st.fn(KernelArgs{p, p + st.ins.size(), &ctx});
    } catch (const std::bad_alloc&) {
      rethrow_out_of_memory_for(st.node->describe());  // its scratch or emitted outputs
    }
    ctx.emit = nullptr;
    if (emits)
      for (int v : st.outs)
        if (!stage.views[v].data) throw std::logic_error(st.node->describe() + ": an output was not emitted");
    if (timings) {
      const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      const std::string& op = st.node->op;
      std::string exec = "aiov_" + (op.rfind("aiov.", 0) == 0 ? op.substr(5) : op);
      if (!st.ins.empty()) exec += " " + dims_str(p[0]->shape);
      if (!st.outs.empty()) exec += "->" + dims_str(p[st.ins.size()]->shape);
      timings->push_back({st.node->name, st.node->op, ms, std::move(exec)});
    }
  }
  for (const auto& c : plan.output_copies) {
    const TensorView& src = views[c.first];
    std::memcpy(outputs_[c.second]->data(), src.data, src.bytes());
  }
}

}  // namespace aiov
