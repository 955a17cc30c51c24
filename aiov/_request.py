"""InferRequest: one set of input/output memory for a compiled model."""

from __future__ import annotations

import enum
import threading

import numpy as np

from . import _core
from ._dispatch import dispatcher
from ._errors import BusyError, CancelledError, InputError
from ._graph import _PortBase
from ._log import log_built_plans
from ._narrow import ML_DTYPE_NAMES
from ._ports import find_input_or_output
from ._results import OVDict
from ._tensor import Tensor
from ._types import Dimension, type_from_id

_FAILED, _CANCELLED = _core.RequestStatus.failed, _core.RequestStatus.cancelled


class _ProfilingStatus(enum.Enum):
    NOT_RUN = 0
    OPTIMIZED_OUT = 1
    EXECUTED = 2


class ProfilingInfo:
    """Per-node timing of the last inference (enable with config {"PERF_COUNT": True})."""

    __slots__ = ("node_name", "node_type", "exec_type", "real_time", "cpu_time", "status")
    Status = _ProfilingStatus

    def __init__(self, node_name, node_type, ms, exec_type=None):
        from datetime import timedelta

        self.node_name, self.node_type = node_name, node_type
        self.exec_type = exec_type or "aiov_" + node_type
        self.real_time = self.cpu_time = timedelta(milliseconds=ms)
        self.status = _ProfilingStatus.EXECUTED

    def __repr__(self):
        return f"<ProfilingInfo: {self.node_type} '{self.node_name}' {self.real_time.total_seconds() * 1e3:.3f} ms>"


def native_error(native) -> Exception:
    """The exception for a finished request's failure, or None."""
    status = native.status
    if status is _FAILED:
        if native.error_is_memory:
            return MemoryError(native.error)
        return (InputError if native.error_is_input else RuntimeError)(native.error)
    if status is _CANCELLED:
        return CancelledError(native.error)
    return None


class InferRequest:
    """Runs inferences of one compiled model, synchronously (``infer``) or as a job
    (``start_async`` then ``wait``). While a job runs, its memory belongs to the worker:
    reading outputs, results or input tensors raises BusyError until ``wait`` returns."""

    def __init__(self, compiled, _native=None):
        self._compiled = compiled
        self._spec = compiled._spec
        self._native = _native if _native is not None else _core.Request(compiled._native, compiled._batcher)
        self._native.set_fast_inputs(self._spec.in_names, self._spec.fast_dtypes, self._spec.in_type_ids)
        self._ever_set = [False] * self._spec.count
        # Per input: its value was left by an earlier queue job, and no one set it since.
        self._left_by_a_job = [False] * self._spec.count
        self._all_set = self._spec.count == 0
        # OpenVINO's batched set_tensors: input index -> its batch as tensors of one item each,
        # copied into the input as each inference starts (the caller may refill them between).
        self._batched = {}
        # set_output_tensor: output index -> the caller's Tensor, filled as each inference ends.
        self._preset_outputs = {}
        self.userdata = None
        self._callback = None
        self._token = None
        self._callback_done = None  # Event while a callback is owed for the current job
        self._pending_error = None
        self._started = False

    # -- inputs --
    def _set_inputs(self, inputs, share: bool, complete: bool = False, queued: bool = False):
        """`complete`: every input must be in `inputs` (calls on a pooled request); otherwise
        inputs not given keep what was set before (OpenVINO's set-then-infer). `queued`: a job
        of an AsyncInferQueue, whose request other callers' jobs ran on: an input it omits must
        have been set on the request since (``queue[i].set_tensor``), not left by a job."""
        if inputs is not None and not self._batched and self._native.bind(inputs, share):  # binds every input
            if not self._all_set:
                self._mark_all_set()
            return
        pairs = self._spec.pairs(inputs, complete)
        if queued:
            self._refuse_inputs_left_by_a_job(pairs)
        native, spec = self._native, self._spec
        for index, value in pairs:
            if spec.in_kinds[index] != "tensor":
                arrays, present = spec.convert_composite(index, value)
                native.set_composite_input(index, arrays, present, spec.in_type_ids[index])
                self._ever_set[index] = True
                continue
            if spec.in_types[index].get_type_name() in ML_DTYPE_NAMES:
                value = spec.narrow_input(index, value)
            if isinstance(value, Tensor):
                self._bind_tensor(index, value)
                continue
            arr, private = spec.convert(index, value)
            native.set_input(index, arr, spec.in_type_ids[index], share or private)
            self._ever_set[index] = True
            self._batched.pop(index, None)
        for index, tensors in self._batched.items():
            batch = np.concatenate([t._array for t in tensors], axis=self._batch_axis(index))
            native.set_input(index, batch, spec.in_type_ids[index], True)
        if not self._all_set:
            missing = [spec.in_labels[i] for i, ok in enumerate(self._ever_set) if not ok]
            if missing:
                raise InputError(
                    f"missing input(s): {', '.join(missing)} (the model takes "
                    f"{spec.count}: {', '.join(spec.in_labels)})"
                )
            self._all_set = True

    def _refuse_inputs_left_by_a_job(self, pairs):
        given = {index for index, _ in pairs}
        left = [label for i, label in enumerate(self._spec.in_labels) if self._left_by_a_job[i] and i not in given]
        if left:
            raise InputError(
                f"missing input(s): {', '.join(left)}; a job of an AsyncInferQueue takes every input "
                f"({self._spec.count}: {', '.join(self._spec.in_labels)}) or the values set on its request "
                f"since its last job (queue[i].set_tensor): an earlier job's value never stands in for one"
            )

    def _inputs_taken_by_a_job(self):
        """A queue job started with this request's inputs: they are now an earlier job's."""
        self._left_by_a_job = [True] * self._spec.count

    def _bind_tensor(self, index: int, tensor: Tensor):
        want = self._spec.in_types[index]
        if tensor.element_type != want:
            raise InputError(
                f"input '{self._spec.in_labels[index]}': expected element type "
                f"{want.get_type_name()}, got a Tensor of {tensor.element_type.get_type_name()}"
            )
        shape = list(tensor.shape) if want.bitwidth < 8 else None
        self._native.set_input(index, tensor._array, want._id, True, shape)
        self._ever_set[index] = True
        self._left_by_a_job[index] = False
        self._batched.pop(index, None)

    def _batch_axis(self, index: int) -> int:
        """The input's batch axis: 'N' of its Parameter's layout, else the first."""
        from ._layout import _batch_index, get_layout

        port = self._spec.inputs[index]
        layout = get_layout(port)
        if not layout.has_name("N"):
            return 0
        return _batch_index(layout, port.get_partial_shape().rank.get_length())

    def _set_batch(self, index: int, tensors):
        """OpenVINO's batched form: one Tensor per batch item for input ``index``."""
        tensors = list(tensors)
        label, port = self._spec.in_labels[index], self._spec.inputs[index]
        want, pshape = port.get_element_type(), port.get_partial_shape()
        if not tensors or not all(isinstance(t, Tensor) for t in tensors):
            raise InputError(f"input '{label}': a batch is a non-empty list of Tensors, got {tensors!r}")
        if pshape.rank.is_dynamic:
            raise InputError(f"input '{label}' has a dynamic rank: it has no batch axis to set tensors along")
        axis = self._batch_axis(index)
        for t in tensors:
            dims = list(pshape)
            if not 0 <= axis < len(dims):
                raise InputError(f"input '{label}' of shape {pshape} has no batch axis {axis}")
            dims[axis] = Dimension(1)
            fits = len(t.shape) == len(dims) and all(d.compatible(int(n)) for d, n in zip(dims, t.shape))
            if t.element_type != want or want.bitwidth < 8 or not fits:
                raise InputError(
                    f"input '{label}' ({want.get_type_name()} {pshape}, batch axis {axis}): each tensor of a "
                    f"batch must be {want.get_type_name()} with one item on the batch axis, got "
                    f"{t.element_type.get_type_name()} {list(t.shape)}"
                )
        batch = pshape[axis]
        if batch.is_static and batch.get_length() != len(tensors):
            raise InputError(f"input '{label}' has a batch of {batch.get_length()}, got {len(tensors)} tensors")
        self._batched[index] = tensors
        self._ever_set[index] = True
        self._left_by_a_job[index] = False

    def _mark_all_set(self):
        self._ever_set = [True] * self._spec.count
        self._all_set = True

    def _fill_preset_outputs(self):
        """Copies a finished inference's outputs into the tensors set with set_output_tensor."""
        for index, tensor in self._preset_outputs.items():
            produced = self._native.output(index, False)
            if tensor._type.bitwidth >= 8 and tensor._array.shape != produced.shape:
                tensor.set_shape(produced.shape)
            tensor._array.reshape(-1).view(np.uint8)[...] = produced.reshape(-1).view(np.uint8)

    # -- sync --
    def infer(
        self, inputs=None, share_inputs: bool = False, share_outputs: bool = False, decode_strings: bool = True
    ) -> OVDict:
        """Runs one inference on the calling thread with the GIL released; returns the outputs
        (copies, or views on the request's memory with share_outputs=True)."""
        return self._infer(inputs, share_inputs, share_outputs, False)

    def _infer(self, inputs, share_inputs: bool, share_outputs: bool, complete: bool) -> OVDict:
        if inputs is not None and not self._batched and not self._preset_outputs:
            # The common case in one native call (None: the inputs need the general path). Kept
            # inline: each Python frame here is a noticeable part of a small model's call. A
            # running request raises BusyError there before any input is touched.
            values = self._native.call(inputs, share_inputs, not share_outputs)
            if values is not None:
                if not self._all_set:
                    self._mark_all_set()
                if self._spec.plans_to_log is not None:
                    log_built_plans(self._spec.plans_to_log)
                if self._spec.after_run is not None:
                    self._spec.after_run()
                return self._spec.results(values)
        if self._native.busy:
            raise BusyError("the request is busy: wait() for its running inference first")
        self._set_inputs(inputs, share_inputs, complete)
        self._native.infer()
        self._fill_preset_outputs()
        if self._spec.plans_to_log is not None:
            log_built_plans(self._spec.plans_to_log)
        if self._spec.after_run is not None:
            self._spec.after_run()
        return self._spec.results(self._native.outputs(not share_outputs))

    # -- async --
    def start_async(self, inputs=None, userdata=None, share_inputs: bool = False):
        """Starts the inference as a job on the engine's workers and returns at once."""
        if self._native.busy:
            raise BusyError("the request is busy: wait() for its running inference first")
        self._set_inputs(inputs, share_inputs)
        if userdata is not None:
            self.userdata = userdata
        self._pending_error = None
        if self._callback is not None:
            self._callback_done = threading.Event()
            self._native.start(dispatcher.port, self._token)
        else:
            self._native.start(None, 0)
        self._started = True

    def wait(self):
        """Waits (GIL released) for the job and its callback; raises its error once. Inside a
        completion callback (its own or another request's) it raises RuntimeError while that
        request's callback is still owed, which would otherwise never run."""
        done = self._callback_done
        if done is not None and not done.is_set():
            dispatcher.refuse_wait("InferRequest.wait() on a request whose callback has not run")
        self._native.wait(-1)
        self._finish_wait(None)

    def wait_for(self, timeout: int) -> bool:
        """Waits up to ``timeout`` ms; True if the job (and its callback) finished."""
        if not self._native.wait(int(timeout)):
            return False
        return self._finish_wait(timeout)

    def _finish_wait(self, timeout_ms):
        done = self._callback_done
        if done is not None:
            if not done.wait(None if timeout_ms is None else max(timeout_ms, 0) / 1000.0):
                return False
        if self._spec.plans_to_log is not None:
            log_built_plans(self._spec.plans_to_log)
        if self._spec.after_run is not None:
            self._spec.after_run()
        if self._started:
            self._started = False
            error = self._pending_error if done is not None else native_error(self._native)
            self._pending_error = None
            if error is None and done is None:
                self._fill_preset_outputs()
            self._native.release_inputs()
            if error is not None:
                raise error
        return True

    def _on_complete(self):
        # Dispatcher thread: the job has ended; run the user's callback here.
        error = native_error(self._native)
        callback, done = self._callback, self._callback_done
        try:
            if error is None:
                self._fill_preset_outputs()
            if callback is not None:
                callback(self.userdata)
        except BaseException as exc:
            error = error or exc
        self._pending_error = error
        if done is not None:
            done.set()

    def set_callback(self, callback, userdata=None):
        """``callback(userdata)`` runs on aiov's dispatcher thread when a job ends."""
        self._callback = callback
        self.userdata = userdata
        if self._token is None:
            import weakref

            ref = weakref.ref(self)

            def handler(ref=ref):
                req = ref()
                if req is not None:
                    req._on_complete()

            self._token = dispatcher.register(handler)

    def cancel(self):
        """Asks a queued or running job to stop at the next node; wait() then raises
        CancelledError."""
        self._native.cancel()

    def __del__(self):
        token = getattr(self, "_token", None)
        if token is not None:
            dispatcher.unregister(token)

    # -- tensors --
    def _input_tensor(self, index: int) -> Tensor:
        if index in self._batched:
            # OpenVINO's wording kept: its tests match on it
            raise RuntimeError(
                f"get_tensor shall not be used together with batched set_tensors/set_input_tensors: input "
                f"'{self._spec.in_labels[index]}' is read from {len(self._batched[index])} tensors"
            )
        etype = self._spec.in_types[index]
        arr = self._native.input_view(index)
        self._left_by_a_job[index] = False  # its memory is the caller's to fill (OpenVINO's zero-copy way)
        if isinstance(arr, Tensor):
            return arr
        return Tensor._wrap(arr, etype)

    def _output_tensor(self, index: int) -> Tensor:
        preset = self._preset_outputs.get(index)
        if preset is not None:
            return preset
        etype = self._spec.outputs[index].get_element_type()
        return Tensor._wrap(self._native.output(index, False), etype)

    def get_tensor(self, key) -> Tensor:
        """The tensor of an input or output, by name or port (shares the request's memory)."""
        kind, index = find_input_or_output(self._spec.in_ports, self._spec.out_ports, key)
        return self._input_tensor(index) if kind == "input" else self._output_tensor(index)

    def get_input_tensor(self, index: int = None) -> Tensor:
        return self._input_tensor(self._spec.in_ports.index(index))

    def get_output_tensor(self, index: int = None) -> Tensor:
        return self._output_tensor(self._spec.out_ports.index(index))

    def set_tensor(self, key, tensor: Tensor):
        """An input read from ``tensor``'s memory (no copy), or an output written into it, by
        name or port (an integer selects an input)."""
        if isinstance(key, (str, _PortBase)):
            kind, index = find_input_or_output(self._spec.in_ports, self._spec.out_ports, key)
            if kind == "output":
                self._preset_output(index, tensor)
                return
        else:
            index = self._spec.index_of(key)
        if not isinstance(tensor, Tensor):
            raise InputError(f"set_tensor needs a Tensor, got {type(tensor).__name__}")
        self._bind_tensor(index, tensor)

    def set_tensors(self, *args):
        """``set_tensors({key: tensor})`` for inputs and outputs; ``set_tensors(key, [tensors])``
        (or a list as a dict's value): a batch of one-item tensors for an input."""
        if len(args) == 2:
            self._set_batch(self._spec.index_of(args[0]), args[1])
            return
        (tensors,) = args
        for key, value in tensors.items():
            if isinstance(value, (list, tuple)):
                self._set_batch(self._spec.index_of(key), value)
            else:
                self.set_tensor(key, value)

    def set_input_tensor(self, *args):
        if len(args) == 1:
            self._bind_tensor(self._spec.index_of(None), args[0])
        else:
            self._bind_tensor(self._spec.index_of(args[0]), args[1])

    def set_input_tensors(self, *args):
        """``set_input_tensors({input: tensor})``; ``set_input_tensors([tensors])`` (the only
        input) or ``set_input_tensors(input, [tensors])``: a batch of one-item tensors."""
        if len(args) == 2:
            self._set_batch(self._spec.index_of(args[0]), args[1])
            return
        (tensors,) = args
        if isinstance(tensors, dict):
            for key, tensor in tensors.items():
                self._bind_tensor(self._spec.index_of(key), tensor)
        else:
            self._set_batch(self._spec.index_of(None), tensors)

    def _preset_output(self, index: int, tensor):
        port = self._spec.outputs[index]
        label = self._spec.out_ports.labels[index]
        want, pshape = port.get_element_type(), port.get_partial_shape()
        if not isinstance(tensor, Tensor):
            raise InputError(f"output '{label}': set_output_tensor needs a Tensor, got {type(tensor).__name__}")
        if tensor.element_type != want or (pshape.is_static and list(tensor.shape) != list(pshape.to_shape())):
            raise InputError(
                f"output '{label}' is {want.get_type_name()} {pshape}, got a Tensor of "
                f"{tensor.element_type.get_type_name()} {list(tensor.shape)}"
            )
        self._preset_outputs[index] = tensor

    def set_output_tensor(self, *args):
        """The output (the only one, or ``index``) is written into ``tensor`` as each inference
        ends: ``set_output_tensor(tensor)`` or ``set_output_tensor(index, tensor)``."""
        key, tensor = (None, args[0]) if len(args) == 1 else args
        self._preset_output(self._spec.out_ports.index(key), tensor)

    def set_output_tensors(self, tensors: dict):
        for key, tensor in tensors.items():
            self._preset_output(self._spec.out_ports.index(key), tensor)

    @property
    def input_tensors(self) -> list:
        return [self._input_tensor(i) for i in range(self._spec.count)]

    @property
    def output_tensors(self) -> list:
        return [self._output_tensor(i) for i in range(len(self._spec.outputs))]

    @property
    def results(self) -> OVDict:
        """The last inference's outputs (copies)."""
        return self._spec.results(self._native.outputs(True))

    @property
    def model_inputs(self) -> list:
        return self._compiled.inputs

    @property
    def model_outputs(self) -> list:
        return self._compiled.outputs

    def get_compiled_model(self):
        return self._compiled

    @property
    def latency(self) -> float:
        """Duration of the last inference in milliseconds."""
        return self._native.latency_ms

    def get_profiling_info(self) -> list:
        return [ProfilingInfo(*row) for row in self._native.profiling()]

    @property
    def profiling_info(self) -> list:
        return self.get_profiling_info()

    def query_state(self) -> list:
        """One VariableState per variable of a stateful model; each request has its own."""
        from ._state import query_state

        return query_state(self)

    def reset_state(self) -> None:
        """Every variable back to its initial value (BusyError while a job runs)."""
        self._native.reset_state()

    def __repr__(self):
        return f"<InferRequest: {len(self._spec.inputs)} input(s), {len(self._spec.outputs)} output(s)>"


__all__ = ["InferRequest", "ProfilingInfo", "type_from_id"]
