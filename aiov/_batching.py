"""Automatic batching, as OpenVINO's: the ``"BATCH:CPU(N)"`` device and the THROUGHPUT hint.

A batching compiled model gives its requests a native batcher (``native/plan/batcher.hpp``):
every job of those requests (``await compiled(x)``, ``aio.AsyncInferQueue``, the sync queue,
``compiled(x)`` and ``infer`` from threads) is joined along axis 0 with the jobs waiting at the
same time, and each gets its own rows back. The engine never waits for a batch to fill while
it is idle. This module decides whether a model can be batched and builds the batcher; the
joining itself never touches Python.
"""

from __future__ import annotations

import re

import numpy as np

from . import _core
from ._errors import InputError

AUTO_BATCH_TIMEOUT = "AUTO_BATCH_TIMEOUT"
ALLOW_AUTO_BATCHING = "ALLOW_AUTO_BATCHING"
OPTIMAL_BATCH_SIZE = "OPTIMAL_BATCH_SIZE"
# aiov's own: {input (name or index): {axis: value}}: members whose inputs differ in length on
# those axes share a batch, padded with that value; outputs are cut back to each one's length.
BATCH_PAD = "AIOV_BATCH_PAD"
# aiov's own, read-only: what the batcher did (see stats()).
BATCH_STATS = "AIOV_BATCH_STATS"

DEFAULT_TIMEOUT_MS = 1000  # OpenVINO's default; aiov waits only while another batch runs
DEFAULT_BATCH = 32  # "BATCH:CPU" or the THROUGHPUT hint without a size

_DEVICE = re.compile(r"^BATCH:([A-Za-z]+)(?:\((\d+)\))?$")


def batch_target(name: str, config):
    """OpenVINO's other spelling, device "BATCH" with ``{device.priorities: "CPU(4)"}``, as
    ``("BATCH:CPU(4)", the rest of the config)``; any other device as given."""
    if name != "BATCH":
        return name, config
    from ._properties import _key, _pairs

    rest, target = [], None
    for key, value in _pairs(config):
        if _key(key) == "MULTI_DEVICE_PRIORITIES":
            target = str(value).rstrip(",")
        else:
            rest.append((key, value))
    if target is None:
        raise InputError(
            "device 'BATCH' needs the device to batch on: 'BATCH:CPU(N)', or "
            "{props.device.priorities: 'CPU(N)'} in the config"
        )
    return "BATCH:" + target, dict(rest)


def parse_device(name: str):
    """``(device, batch)``: ``"BATCH:CPU(8)"`` -> ``("CPU", 8)``, ``"BATCH:CPU"`` -> ``("CPU", 0)``
    (0: aiov picks the size), anything else -> ``(name, None)``."""
    if not name.startswith("BATCH"):
        return name, None
    match = _DEVICE.match(name)
    if match is None:
        raise InputError(f"device {name!r}: the batching device is written 'BATCH:CPU' or 'BATCH:CPU(N)'")
    device, size = match.group(1), match.group(2)
    if device != "CPU":
        raise InputError(f"device {name!r}: aiov batches on 'CPU' only")
    size = 0 if size is None else int(size)
    if match.group(2) is not None and size < 1:
        raise InputError(f"device {name!r}: the batch size must be >= 1")
    return device, size


def requested(config: dict, batch):
    """The batch size asked for by the device string or the config (0: aiov picks), or None."""
    if batch is None and config.get("PERFORMANCE_HINT") == "THROUGHPUT" and config.get(ALLOW_AUTO_BATCHING, True):
        batch = 0
    if batch is None:
        return None
    return batch or DEFAULT_BATCH


def _pad_table(model, pads):
    """[(input index, axis, value bytes)] from the AIOV_BATCH_PAD option, checked against the
    batch model's inputs (a padded axis must be dynamic there)."""
    from ._ports import PortTable

    if not pads:
        return []
    table = PortTable(model.inputs, "input")
    out = []
    for key, axes in pads.items():
        index = table.index(key)
        port = model.inputs[index]
        shape = port.get_partial_shape()
        label = table.labels[index]
        if not isinstance(axes, dict) or not axes:
            raise InputError(f"{BATCH_PAD}[{key!r}]: expected {{axis: padding value}}, got {axes!r}")
        dtype = port.get_element_type().to_dtype()
        values = set()
        for axis, value in axes.items():
            if isinstance(axis, bool) or not isinstance(axis, int) or not 1 <= axis < len(shape):
                raise InputError(
                    f"{BATCH_PAD}: input '{label}' (shape {shape}) has no paddable axis {axis!r}: "
                    f"expected an axis between 1 and {len(shape) - 1}"
                )
            if shape[axis].is_static:
                raise InputError(
                    f"{BATCH_PAD}: input '{label}' axis {axis} is static ({shape}); only a dynamic axis can differ"
                )
            try:
                raw = np.array(value, dtype=dtype)
            except (TypeError, ValueError, OverflowError) as exc:
                raise InputError(
                    f"{BATCH_PAD}: input '{label}': padding value {value!r} is not {dtype}: {exc}"
                ) from None
            if raw.ndim != 0:
                raise InputError(f"{BATCH_PAD}: input '{label}': the padding value must be a scalar, got {value!r}")
            values.add(raw.tobytes())
            out.append((index, axis, raw.tobytes()))
        if len(values) > 1:
            raise InputError(f"{BATCH_PAD}: input '{label}': its padded axes must share one padding value")
    return out


def batch_model(model):
    """``(model, None)``: ``model`` itself, or a copy with axis 0 of every input made dynamic,
    that the batcher runs; ``(None, reason)`` when the model has no batch axis to join on (the
    compiled model then runs every job alone, as OpenVINO's BATCH device falls back)."""
    from ._layout import _batch_index, node_layout
    from ._types import Dimension, PartialShape

    for op in model.get_ordered_ops():
        if op.get_type_name() in ("ReadValue", "Assign"):
            return None, "it has state (ReadValue/Assign): each request's state is its own"
        if any(out.get_value_kind() != "tensor" for out in op.outputs()):
            return None, "it has sequence or optional values, which have no batch axis"
    params = model.get_parameters()
    if not params:
        return None, "it has no inputs"
    reshape = {}
    for index, param in enumerate(params):
        name = param.get_friendly_name()
        shape = param.get_output_partial_shape(0)
        etype = param.get_element_type()
        if etype.bitwidth < 8 or etype.get_type_name() == "string":
            return None, f"input '{name}' is of type {etype.get_type_name()}"
        if shape.rank.is_dynamic or len(shape) == 0:
            return None, f"input '{name}' (shape {shape}) has no batch axis"
        layout = node_layout(param)
        if not layout.empty and (not layout.has_name("N") or _batch_index(layout, len(shape)) != 0):
            return None, f"the layout {layout} of input '{name}' has no batch ('N') first"
        first = shape[0]
        if first.is_static:
            if first.get_length() != 1:
                return None, f"input '{name}' has batch axis {first} (batching needs 1 or a dynamic one)"
            reshape[index] = PartialShape([Dimension(-1)] + list(shape)[1:])
    if reshape:
        model = model.clone()
        try:
            model.reshape(reshape)
        except Exception as exc:  # noqa: BLE001 - the reason it cannot be batched
            return None, f"it cannot take a dynamic batch axis ({exc})"
    for out in model.outputs:
        shape = out.get_partial_shape()
        etype = out.get_element_type()
        if shape.rank.is_dynamic or len(shape) == 0 or shape[0].is_static or etype.bitwidth < 8:
            return None, f"output '{out.get_any_name() if out.get_names() else out}' (shape {shape}) has no batch axis"
    return model, None


def _compile(model, config, log_plans=False):
    """The batch model for the engine, with the compiled model's own options."""
    params, outs, sinks = model._engine_graph()  # (no sinks: a stateful model is never batched)
    return _core.new_compiled_model(
        params,
        outs,
        config["INFERENCE_NUM_THREADS"],
        bool(config["PERF_COUNT"]),
        config["AIOV_PLAN_CACHE_BYTES"],
        config.get("INFERENCE_PRECISION_HINT", "f32"),  # as the model runs alone
        sinks,
        log_plans,
    )


def rows_mix(native) -> str:
    """Why the batch model's rows influence each other, or "" (none seen, or the probe could
    not run). A probe, not a proof: a batch of two different rows (zeros, then ones; other
    dynamic axes 4 long) must give each row what it gives alone. Catches what the output
    shapes cannot show, e.g. a softmax or a mean over the batch axis broadcast back."""
    from ._types import type_from_id

    def run(feeds, rows):
        request = _core.Request(native)
        for i, (type_id, both) in enumerate(feeds):
            request.set_input(i, np.ascontiguousarray(both[rows]), type_id, False)
        request.infer()
        return request.outputs(True)

    try:
        feeds = []
        for i in range(native.num_inputs):
            _, type_id, shape = native.input_info(i)
            dims = [4 if d is None or d < 0 else d for d in shape[1:]]
            dtype = type_from_id(type_id).to_dtype()
            feeds.append((type_id, np.stack([np.zeros(dims, dtype), np.ones(dims, dtype)])))
        joined, first, second = run(feeds, slice(0, 2)), run(feeds, slice(0, 1)), run(feeds, slice(1, 2))
    except Exception:  # noqa: BLE001 - inputs the model cannot take: no verdict
        return ""
    for j, out in enumerate(joined):
        alone = np.concatenate([first[j], second[j]])
        if out.shape != alone.shape:
            return f"output {j} of a batch of 2 has shape {out.shape}, not the rows' {alone.shape}"
        if out.dtype.kind in "fc":
            same = np.allclose(out, alone, rtol=1e-3, atol=1e-4, equal_nan=True)
        else:
            same = np.array_equal(out, alone)
        if not same:
            return f"the rows of a batch influence each other (output {j} differs from the rows run alone)"
    return ""


class Batching:
    """The batching state of one compiled model: the native batcher, or why there is none."""

    def __init__(self, compiled, size, config):
        self.size = size
        self.batcher = None
        self.native = None  # the batch model the batcher runs (for the plan log)
        self.reason = None
        model, self.reason = batch_model(compiled._model)
        if model is None:
            return
        pads = _pad_table(model, config.get(BATCH_PAD))
        try:
            native = compiled._native if model is compiled._model else _compile(model, config, compiled._log_plans)
            timeout = int(config.get(AUTO_BATCH_TIMEOUT, DEFAULT_TIMEOUT_MS))
            self.batcher = _core.Batcher(native, size, timeout, 0, pads)  # holds the batch model
        except (InputError, RuntimeError) as exc:  # the engine cannot run it batched: jobs run alone
            self.reason = str(exc)
            return
        self.reason = rows_mix(native) or None
        if self.reason is not None:
            self.batcher = None
        else:
            self.native = native

    def stats(self) -> dict:
        """``{"enabled", "max_batch", "reason", "batches", "inferences", "sizes", "retried",
        "cancelled"}``: ``sizes`` maps a batch's job count to how many such batches ran (a job
        that ran alone counts as a batch of 1); ``retried`` counts jobs re-run alone after
        their batch failed; ``cancelled`` those cancelled while waiting to join one."""
        out = {"enabled": self.batcher is not None, "max_batch": self.size, "reason": self.reason}
        if self.batcher is not None:
            out.update(self.batcher.stats())
        else:
            out.update(batches=0, inferences=0, retried=0, cancelled=0, sizes={})
        return out

    def set_timeout(self, ms: int):
        if self.batcher is not None:
            self.batcher.set_timeout_ms(int(ms))


def attach(compiled, batch):
    """The Batching of a new compiled model, or None when batching was not asked for."""
    size = requested(compiled._config, batch)
    if size is None:
        return None
    batching = Batching(compiled, size, compiled._config)
    if batching.batcher is not None:
        compiled._config[OPTIMAL_BATCH_SIZE] = size
    return batching


def stats_of(compiled) -> dict:
    batching = compiled._batching
    if batching is None:
        return {
            "enabled": False,
            "max_batch": 1,
            "reason": "batching was not asked for (device 'BATCH:CPU(N)' or the THROUGHPUT hint)",
            "batches": 0,
            "inferences": 0,
            "retried": 0,
            "cancelled": 0,
            "sizes": {},
        }
    return batching.stats()
