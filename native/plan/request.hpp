// An inference request: input/output memory for one compiled model, run inline or
// as a job on the pool, finishing into an optional completion port.
#pragma once
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "executor/executor.hpp"
#include "plan/compiled.hpp"

namespace aiov {

// Raised for what a running request cannot do: take inputs, start again, or show its memory
// (the worker is writing it). Python: aiov.BusyError.
struct Busy : std::runtime_error {
  using std::runtime_error::runtime_error;
};

enum class RequestStatus : int { kIdle = 0, kRunning = 1, kOk = 2, kFailed = 3, kCancelled = 4 };

struct NodeTiming {
  std::string name, type;
  double ms;
  std::string exec;  // what ran: kernel family and the first input's and output's shapes
};

class Batcher;

class Request : public std::enable_shared_from_this<Request> {
 public:
  // With a batcher, jobs (start and run_inline) go through it: joined with other requests'
  // jobs that wait at the same time (see plan/batcher.hpp).
  explicit Request(std::shared_ptr<const CompiledModel> model, std::shared_ptr<Batcher> batcher = nullptr);
  Request(const Request&) = delete;
  Request& operator=(const Request&) = delete;

  const CompiledModel& model() const { return *model_; }

  // Copy caller data into the request's own input memory (type must already match).
  void copy_input(int i, const void* data, ElementType type, const Dims& shape);
  // Read the caller's memory directly; the caller keeps it alive until the job ends.
  void bind_input(int i, void* data, ElementType type, const Dims& shape);
  // A sequence or optional input (the model's input i is one): held, not copied; immutable.
  void set_composite_input(int i, std::shared_ptr<const Composite> value);
  // A sequence or optional output after a run (null until one ran). Busy while a job runs.
  std::shared_ptr<const Composite> output_composite(int j) const;
  // Current input memory (allocated on demand for static shapes). Busy while a job runs.
  TensorView input_view(int i, BufferPtr* buffer = nullptr);
  bool input_is_bound(int i) const { return inputs_.at(i).external != nullptr; }
  // Output memory after a run; `buffer` keeps it alive for views handed out. Busy while a
  // job runs: the worker may be reallocating the output tables.
  TensorView output_view(int j, BufferPtr* buffer);

  // Runs on the calling thread (the caller releases the GIL around it).
  void run_inline();
  // Queues the run on `pool`; when done, pushes `token` to `port` if given.
  void start(ThreadPool& pool, std::shared_ptr<CompletionPort> port, uint64_t token);
  // Returns false on timeout (timeout_ms < 0: forever).
  bool wait(int64_t timeout_ms);
  // Best effort: a queued or running job stops at the next node boundary.
  void cancel() { abort_.store(true, std::memory_order_relaxed); }

  // Variables of a stateful model (CompiledModel::variables order). Each accessor is Busy
  // while a job runs: the worker reads and writes them.
  size_t variable_count() const { return variables_.slots.size(); }
  // A copy of the variable's value (zeros of its declared shape, unknown dims 0, when it has
  // none) in a new buffer, `owner`.
  TensorView copy_state(int i, BufferPtr* owner);
  // Copies `data` in as the variable's value (its type, a shape its declaration accepts).
  void set_state(int i, const void* data, ElementType type, const Dims& shape);
  // The variable has no value again: the next ReadValue gives its initial value. i = -1: all.
  void reset_state(int i);

  RequestStatus status() const { return status_.load(std::memory_order_acquire); }
  bool busy() const { return status() == RequestStatus::kRunning; }
  std::string error() const;
  bool error_is_input() const { return error_is_input_; }
  bool error_is_memory() const { return error_is_memory_; }  // the job ran out of memory
  double latency_ms() const { return latency_ms_; }
  std::vector<NodeTiming> profiling() const;

 private:
  friend class Batcher;  // reads a member's inputs, writes its outputs and ends its job
  struct Input {
    BufferPtr own;
    size_t own_capacity = 0;
    void* external = nullptr;
    Dims shape;
    bool set = false;
    std::shared_ptr<const Composite> composite;  // a sequence or optional input's value
  };
  // One stage of a run (compiled.hpp, PlanResume): its plan and the views bound to it; only
  // data pointers change per run.
  struct Stage {
    std::shared_ptr<const ShapePlan> plan;
    std::vector<TensorView> views;
    std::vector<const TensorView*> step_ptrs;
    std::vector<size_t> step_ptr_begin;
    BufferPtr arena;
    std::vector<BufferPtr> emitted;  // outputs of the data-dependent step that ends the stage
  };
  void begin();
  void execute();
  void finish();
  // Ends a job the batcher ran for this request (outputs already written).
  void settle(RequestStatus result, std::string message, double ms);
  void run_plan();
  void rebind(Stage& stage, std::shared_ptr<const ShapePlan> plan);
  void run_stage(size_t k, ExecContext& ctx, std::vector<NodeTiming>* timings);
  // A plan whose shapes are known only by running (ShapePlan::node_by_node).
  // Commits what Assign wrote when `stateful` (the run succeeded).
  void run_node_by_node_into_outputs(bool stateful);
  ExecContext exec_context();
  void check_input(int i, ElementType type, const Dims& shape) const;
  // The state lock, for an accessor of variable i (-1: all); Busy while a job runs.
  std::unique_lock<std::mutex> claim_state(int i, const char* verb);
  TensorView input_memory(int i, BufferPtr* buffer);

  std::shared_ptr<const CompiledModel> model_;
  std::shared_ptr<Batcher> batcher_;
  std::vector<Input> inputs_;
  std::vector<BufferPtr> outputs_;
  std::vector<Dims> output_shapes_;
  std::vector<std::shared_ptr<const Composite>> output_composites_;  // sequence and optional outputs
  // The stages of the last run: one, unless the model has data-dependent shapes.
  std::vector<Stage> stages_;
  VariableStore variables_;
  std::mutex state_mutex_;  // held by a run of a stateful model (all its stages), and by state accessors

  std::atomic<RequestStatus> status_{RequestStatus::kIdle};
  std::atomic<bool> abort_{false};
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::string error_;
  bool error_is_input_ = false;
  bool error_is_memory_ = false;
  double latency_ms_ = 0;
  std::vector<NodeTiming> timings_;
};

}  // namespace aiov
