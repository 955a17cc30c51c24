#include "plan/batcher.hpp"

#include <chrono>
#include <cstring>

#include "plan/request.hpp"

namespace aiov {

namespace {

Dims strides_of(const Dims& shape, size_t element) {
  Dims s(shape.size());
  int64_t step = (int64_t)element;
  for (size_t k = shape.size(); k-- > 0;) {
    s[k] = step;
    step *= shape[k];
  }
  return s;
}

// Copies the box `box` of a tensor of shape `from` at `src` into a tensor of shape `to` at
// `dst`; both pointers already point at the box's first element. Innermost runs are memcpy'd.
void copy_box(const char* src, const Dims& from, char* dst, const Dims& to, const Dims& box, size_t element) {
  const size_t rank = box.size();
  for (int64_t d : box)
    if (d == 0) return;
  if (rank == 0) {
    std::memcpy(dst, src, element);
    return;
  }
  const Dims ss = strides_of(from, element), ds = strides_of(to, element);
  // Trailing axes the box covers whole in both tensors are one contiguous run.
  size_t inner = rank;
  int64_t run = (int64_t)element;
  while (inner > 0 && box[inner - 1] == from[inner - 1] && box[inner - 1] == to[inner - 1]) run *= box[--inner];
  if (inner == 0) {
    std::memcpy(dst, src, run);
    return;
  }
  run *= box[inner - 1];  // the innermost partial axis is contiguous too
  const size_t outer = inner - 1;
  Dims index(outer, 0);
  while (true) {
    int64_t so = 0, dof = 0;
    for (size_t k = 0; k < outer; ++k) {
      so += index[k] * ss[k];
      dof += index[k] * ds[k];
    }
    std::memcpy(dst + dof, src + so, run);
    size_t k = outer;
    while (k > 0) {
      if (++index[k - 1] < box[k - 1]) break;
      index[k - 1] = 0;
      --k;
    }
    if (k == 0) return;
  }
}

}  // namespace

Batcher::Batcher(std::shared_ptr<const CompiledModel> model, BatchOptions options)
    : model_(std::move(model)), options_(std::move(options)) {
  const auto& ins = model_->inputs();
  if (model_->has_value_keyed())
    throw InputError("the model cannot be batched: some input's values (not only its shape) shape its plan");
  if (!model_->variables().empty())
    throw InputError("the model cannot be batched: it has state (ReadValue/Assign), each request's own");
  if (ins.empty()) throw InputError("the model cannot be batched: it has no inputs");
  for (const IoInfo& in : ins)
    if (!in.shape.rank_known || in.shape.rank() < 1 || is_packed(in.type))
      throw InputError("the model cannot be batched: input '" + in.name + "' has no batch axis (shape " +
                       in.shape.str() + ", " + type_name(in.type) + ")");
  for (const IoInfo& out : model_->outputs())
    if (!out.shape.rank_known || out.shape.rank() < 1 || is_packed(out.type))
      throw InputError("the model cannot be batched: output '" + out.name + "' has no batch axis");
  if (options_.max_batch < 1)
    throw InputError("the batch size must be >= 1, got " + std::to_string(options_.max_batch));
  if (options_.timeout_ms < 0) throw InputError("the batch timeout must be >= 0 ms");
  timeout_ms_.store(options_.timeout_ms);
  if (options_.max_in_flight <= 0) options_.max_in_flight = std::max(1, default_pool().size());
  pads_of_.resize(ins.size());
  for (const auto& pad : options_.pads) {
    if (pad.input < 0 || pad.input >= (int)ins.size())
      throw InputError("padding names input " + std::to_string(pad.input) + "; the model has " +
                       std::to_string(ins.size()));
    const IoInfo& in = ins[pad.input];
    if (pad.axis < 1 || pad.axis >= in.shape.rank())
      throw InputError("input '" + in.name + "': padding axis " + std::to_string(pad.axis) + " must be between 1 and " +
                       std::to_string(in.shape.rank() - 1));
    if (pad.value.size() != byte_size(in.type, 1))
      throw InputError("input '" + in.name + "': the padding value must be one " + type_name(in.type) + " element");
    pads_of_[pad.input].push_back(&pad);
  }
  stats_.sizes.assign(options_.max_batch + 1, 0);
}

int64_t Batcher::rows(const Request& r) const {
  int64_t n = -1;
  for (const auto& in : r.inputs_) {
    if (!in.set || in.shape.empty()) return -1;
    if (n >= 0 && in.shape[0] != n) return -1;
    n = in.shape[0];
  }
  return n;
}

bool Batcher::compatible(const Request& a, const Request& b) const {
  for (size_t i = 0; i < a.inputs_.size(); ++i) {
    const Dims &x = a.inputs_[i].shape, &y = b.inputs_[i].shape;
    if (x.size() != y.size()) return false;
    for (size_t k = 1; k < x.size(); ++k) {
      if (x[k] == y[k]) continue;
      bool padded = false;
      for (const auto* pad : pads_of_[i]) padded = padded || pad->axis == (int)k;
      if (!padded) return false;
    }
  }
  return true;
}

void Batcher::submit(std::shared_ptr<Request> member, std::shared_ptr<CompletionPort> port, uint64_t token) {
  bool start = false;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    queue_.push_back(Entry{std::move(member), std::move(port), token});
    if (in_flight_ < options_.max_in_flight) {
      ++in_flight_;
      start = true;
    }
  }
  if (timeout_ms_.load(std::memory_order_relaxed) > 0) cv_.notify_all();  // a partial batch waiting to fill
  if (start) {
    auto self = shared_from_this();
    default_pool().submit([self] { self->drive(); });
  }
}

void Batcher::run_inline(std::shared_ptr<Request> member) {
  Request& req = *member;
  bool drive_here = false;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    queue_.push_back(Entry{member, nullptr, 0});
    if (in_flight_ < options_.max_in_flight) {
      ++in_flight_;
      drive_here = true;
    }
  }
  if (timeout_ms_.load(std::memory_order_relaxed) > 0) cv_.notify_all();
  if (drive_here) {
    // This thread is a driver until its own job has ended; what still waits then goes on
    // to the pool.
    bool holding = true;
    while (req.busy())
      if (!step()) {
        holding = false;
        break;
      }
    if (holding) hand_on();
  }
  req.wait(-1);
}

void Batcher::drive() {
  if (step()) hand_on();
}

void Batcher::hand_on() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (queue_.empty()) {
      --in_flight_;
      return;
    }
  }
  // More waits: go on as a fresh pool job, so other work queued on the pool interleaves.
  auto self = shared_from_this();
  default_pool().submit([self] { self->drive(); });
}

void Batcher::take(std::unique_lock<std::mutex>& lock, std::vector<Entry>& batch, std::vector<Entry>& dropped) {
  const int64_t most = solo_ ? 1 : options_.max_batch;
  const int64_t timeout_ms = timeout_ms_.load(std::memory_order_relaxed);
  if (timeout_ms > 0 && most > 1 && running_ > 0 && (int64_t)queue_.size() < most) {
    // Another batch runs: the engine is busy anyway, so this one may wait (at most the
    // timeout) for more members, until the other batch ends.
    const uint64_t seen = ended_;
    cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms),
                 [&] { return (int64_t)queue_.size() >= most || ended_ != seen || running_ == 0; });
  }
  std::deque<Entry> rest;
  int64_t total = 0;
  for (auto& e : queue_) {
    if (e.member->abort_.load(std::memory_order_relaxed)) {
      dropped.push_back(std::move(e));
      continue;
    }
    if (batch.empty()) {
      total = rows(*e.member);
      batch.push_back(std::move(e));
      continue;
    }
    const int64_t n = rows(*e.member);
    if (total >= 1 && n >= 1 && total + n <= most && compatible(*batch[0].member, *e.member)) {
      total += n;
      batch.push_back(std::move(e));
    } else {
      rest.push_back(std::move(e));
    }
  }
  queue_.swap(rest);
}

bool Batcher::step() {
  std::vector<Entry> batch, dropped;
  {
    std::unique_lock<std::mutex> lock(mutex_);
    take(lock, batch, dropped);
    stats_.cancelled += dropped.size();
    if (batch.empty())
      --in_flight_;
    else
      ++running_;
  }
  for (auto& e : dropped) {
    e.member->settle(RequestStatus::kCancelled, "inference was cancelled", 0);
    end(e);
  }
  if (batch.empty()) return false;
  run(batch);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    --running_;
    ++ended_;
  }
  if (timeout_ms_.load(std::memory_order_relaxed) > 0) cv_.notify_all();
  return true;
}

void Batcher::end(Entry& e) {
  if (e.port) e.port->push(e.token);
}

void Batcher::count(size_t jobs, bool joined) {
  std::lock_guard<std::mutex> lock(mutex_);
  stats_.members += jobs;
  if (joined) {
    stats_.batches += 1;
    stats_.sizes[std::min(jobs, stats_.sizes.size() - 1)] += 1;
  } else {
    stats_.batches += jobs;
    stats_.sizes[1] += jobs;
    if (jobs > 1) stats_.retried += jobs;
  }
}

void Batcher::run(std::vector<Entry>& batch) {
  double ms = 0;
  if (batch.size() > 1 && run_joined(batch, &ms)) return;
  // One member, or a batch that failed: each runs alone, so only a faulty one fails. Counted
  // before any job ends: whoever sees its job end sees it in the stats.
  count(batch.size(), false);
  for (auto& e : batch) {
    e.member->execute();
    e.member->finish();
    end(e);
  }
}

std::shared_ptr<Request> Batcher::spare() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!spares_.empty()) {
      auto r = std::move(spares_.back());
      spares_.pop_back();
      return r;
    }
  }
  return std::make_shared<Request>(model_);
}

bool Batcher::run_joined(std::vector<Entry>& batch, double* ms) {
  auto joined = spare();
  const auto& ins = model_->inputs();
  std::vector<int64_t> offsets;
  int64_t total = 0;
  for (auto& e : batch) {
    offsets.push_back(total);
    total += rows(*e.member);
  }
  try {
    for (size_t i = 0; i < ins.size(); ++i) {
      const size_t element = byte_size(ins[i].type, 1);
      Dims shape = batch[0].member->inputs_[i].shape;
      shape[0] = total;
      bool padded = false;
      for (const auto* pad : pads_of_[i])
        for (auto& e : batch) {
          int64_t len = e.member->inputs_[i].shape[pad->axis];
          padded = padded || len != shape[pad->axis];
          shape[pad->axis] = std::max(shape[pad->axis], len);
        }
      check_tensor_size(shape, "batched input '" + ins[i].name + "'");
      Request::Input& in = joined->inputs_[i];
      const size_t bytes = byte_size(ins[i].type, numel(shape));
      if (!in.own || in.own_capacity < bytes) {
        in.own = std::make_shared<Buffer>(bytes);
        in.own_capacity = bytes;
      }
      in.external = nullptr;
      in.shape = shape;
      in.set = true;
      char* dst = static_cast<char*>(in.own->data());
      if (padded) {
        // One fill per input: its padded axes share one value (checked by the caller).
        const auto& value = pads_of_[i].front()->value;
        for (size_t at = 0; at < bytes; at += element) std::memcpy(dst + at, value.data(), element);
      }
      const Dims ds = strides_of(shape, element);
      for (size_t m = 0; m < batch.size(); ++m) {
        const Request::Input& src = batch[m].member->inputs_[i];
        const char* from = static_cast<const char*>(src.external ? src.external : src.own->data());
        copy_box(from, src.shape, dst + offsets[m] * ds[0], shape, src.shape, element);
      }
    }
    joined->begin();
    joined->execute();
  } catch (const std::exception&) {
    std::lock_guard<std::mutex> lock(mutex_);
    spares_.push_back(std::move(joined));
    return false;
  }
  bool ok = joined->status() == RequestStatus::kOk;
  const auto& outs = model_->outputs();
  for (size_t j = 0; ok && j < outs.size(); ++j) {
    const Dims& shape = joined->output_shapes_[j];
    if (shape.empty() || shape[0] != total) {
      // The output has no batch axis after all: joining can never work for this model.
      std::lock_guard<std::mutex> lock(mutex_);
      solo_ = true;
      ok = false;
    }
  }
  if (ok) {
    *ms = joined->latency_ms();
    for (size_t m = 0; m < batch.size(); ++m) {
      Request& member = *batch[m].member;
      const int64_t n = rows(member);
      for (size_t j = 0; j < outs.size(); ++j) {
        const Dims& shape = joined->output_shapes_[j];
        const size_t element = byte_size(outs[j].type, 1);
        Dims own = shape;
        own[0] = n;
        // An output axis the model leaves dynamic, as long as a padded input axis, is cut
        // back to this member's length of that input axis.
        for (size_t a = 1; a < own.size(); ++a)
          if (outs[j].shape.dims[a] < 0) own[a] = padded_length(member, *joined, shape[a]);
        const size_t bytes = byte_size(outs[j].type, numel(own));
        if (!member.outputs_[j] || member.outputs_[j]->size() < bytes)
          member.outputs_[j] = std::make_shared<Buffer>(std::max<size_t>(bytes, 1));
        const char* from = static_cast<const char*>(joined->outputs_[j]->data());
        const Dims ss = strides_of(shape, element);
        copy_box(from + offsets[m] * ss[0], shape, static_cast<char*>(member.outputs_[j]->data()), own, own, element);
        member.output_shapes_[j] = own;
      }
      member.stages_.clear();  // its output shapes were set here: a run alone rebinds them
    }
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if ((int)spares_.size() < options_.max_in_flight) spares_.push_back(std::move(joined));
  }
  if (!ok) return false;
  count(batch.size(), true);
  for (auto& e : batch) {
    Request& member = *e.member;
    if (member.abort_.load(std::memory_order_relaxed))
      member.settle(RequestStatus::kCancelled, "inference was cancelled", *ms);
    else
      member.settle(RequestStatus::kOk, std::string(), *ms);
    end(e);
  }
  return true;
}

int64_t Batcher::padded_length(const Request& member, const Request& joined, int64_t extent) const {
  for (size_t i = 0; i < pads_of_.size(); ++i)
    for (const auto* pad : pads_of_[i])
      if (joined.inputs_[i].shape[pad->axis] == extent) return member.inputs_[i].shape[pad->axis];
  return extent;
}

BatchStats Batcher::stats() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return stats_;
}

void Batcher::set_timeout_ms(int64_t ms) {
  if (ms < 0) throw InputError("AUTO_BATCH_TIMEOUT must be >= 0 ms, got " + std::to_string(ms));
  timeout_ms_.store(ms, std::memory_order_relaxed);
}

}  // namespace aiov
