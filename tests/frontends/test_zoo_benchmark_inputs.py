"""benchmarks/engine.py --zoo builds each zoo model with static input shapes and feeds it a
batch made from the recorded sample: the feeds must be what the model declares, or every
framework refuses the row (ssdlite takes one [3, height, width] image, no batch axis)."""

from __future__ import annotations

import importlib.util
import os

import numpy as np
import pytest

import aiov as ov

pytest.importorskip("onnx")

BENCHMARK = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "benchmarks")


@pytest.fixture(scope="module")
def engine():
    spec = importlib.util.spec_from_file_location("benchmark_engine", os.path.join(BENCHMARK, "engine.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_zoo_benchmark_feeds_the_shapes_its_exported_model_declares(engine):
    import onnx

    for spec in engine._zoo_specs():
        exported = onnx.load(os.path.join(engine.ZOO_DIR, spec.key[len("zoo_") :] + ".onnx"))
        declared = {i.name: i.type.tensor_type.shape.dim for i in exported.graph.input}
        for name, value in spec.feeds().items():
            dims = declared[name]
            assert value.ndim == len(dims), (spec.key, name, value.shape)
            for size, dim in zip(value.shape, dims):
                # A fixed size must be fed as is; a named (dynamic) axis takes any size.
                assert not dim.HasField("dim_value") or size == dim.dim_value, (spec.key, name, value.shape)


def test_unbatched_detector_runs_at_its_recorded_image(engine):
    spec = next(s for s in engine._zoo_specs() if s.key == "zoo_ssdlite")
    feeds = spec.feeds()
    assert feeds["image"].shape == (3, 120, 160)
    assert "b1" in spec.label and "b8" not in spec.label
    outputs = ov.compile_model(spec.build().SerializeToString())(feeds)
    boxes = next(v for k, v in outputs.items() if k.get_any_name() == "boxes")
    assert boxes.ndim == 2 and boxes.shape[1] == 4 and np.isfinite(boxes).all()


def test_batched_models_get_eight_samples(engine):
    spec = next(s for s in engine._zoo_specs() if s.key == "zoo_resnet")
    assert all(v.shape[0] == 8 for v in spec.feeds().values())
    assert spec.label.endswith("b8")
