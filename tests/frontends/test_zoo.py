"""Real architectures exported by torch (tools/export_zoo.py): torchvision's and transformers'
code with small random configurations, dynamic batch (and sequence) axes. Each committed
model runs at the two input shapes the export script saved, through the sync API and
aiov.aio, and matches torch's outputs. Models that do not load yet are strict xfails that
name what is missing, so supporting it flips the entry."""

from __future__ import annotations

import os

import numpy as np
import pytest

import aiov as ov
from aiov import aio

ZOO = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "zoo")

# Model -> None when it loads and matches, else what it still needs (the ops aiov lacks).
MODELS = {
    "bert": None,
    "distilbert": None,
    "gpt2": None,
    "llama": None,
    "t5_encoder": None,
    "roberta": None,
    "vit": None,
    "resnet": None,
    "resnet_bottleneck": None,
    "mobilenet_v2": None,
    "mobilenet_v3": None,
    "efficientnet": None,
    "densenet": None,
    "googlenet": None,
    "shufflenet": None,
    "squeezenet": None,
    "convnext": None,
    "regnet": None,
    "swin": None,
    "deeplabv3": None,
    "fcn": None,
    "lraspp": None,
    # torchvision's detector: the score threshold (NonZero, GatherND), per-class TopK and
    # NonMaxSuppression give a data-dependent number of boxes (6 and 15 in the two cases).
    "ssdlite": None,
    "whisper_encoder": None,
    "wav2vec2": None,
    "lstm_gru": None,
    "if_loop": None,
    "list_loop": None,  # a Loop carrying a sequence (a Python list appended to), stacked after it
    # torch.onnx's newer exporter (dynamo=True) writes the attention mask with GatherND.
    "bert_dynamo": None,
    "gpt2_dynamo": None,
}

# Models whose every op is supported but that still fail to load: what the error says.
LOAD_ERRORS = {}

# Largest error allowed, relative to the output's largest magnitude (at least 1): the
# engine's kernels sum in other orders than torch's.
TOLERANCE = 1e-3


def _params():
    for name, missing in MODELS.items():
        marks = [pytest.mark.xfail(strict=True, raises=ov.InputError, reason=f"needs {missing}")] if missing else []
        yield pytest.param(name, marks=marks, id=name)


def _cases(name):
    data = np.load(os.path.join(ZOO, f"{name}.npz"))
    cases = []
    for i in (0, 1):
        feeds = {k.split(".", 1)[1]: data[k] for k in data.files if k.startswith(f"in{i}.")}
        expected = {k.split(".", 1)[1]: data[k] for k in data.files if k.startswith(f"out{i}.")}
        cases.append((feeds, expected))
    return cases


def _check(name, results, expected):
    for out, want in expected.items():
        got = results[out]
        assert got.shape == want.shape, f"{name}.{out}: shape {got.shape}, torch {want.shape}"
        if not want.size:
            continue
        error = float(np.abs(got.astype(np.float64) - want).max()) / max(1.0, float(np.abs(want).max()))
        assert error <= TOLERANCE, f"{name}.{out}: relative error {error:.3g}"


def test_every_committed_model_is_in_the_table():
    on_disk = {f[:-5] for f in os.listdir(ZOO) if f.endswith(".onnx")}
    assert on_disk == set(MODELS)
    assert all(os.path.exists(os.path.join(ZOO, f"{name}.npz")) for name in on_disk)


@pytest.mark.parametrize("name", list(LOAD_ERRORS))
def test_model_that_does_not_load_yet_says_why(name):
    with pytest.raises(ov.InputError, match=LOAD_ERRORS[name]):
        ov.Core().read_model(os.path.join(ZOO, f"{name}.onnx"))


@pytest.mark.parametrize("name", [name for name, missing in MODELS.items() if missing and name not in LOAD_ERRORS])
def test_model_that_does_not_load_yet_names_the_ops_it_needs(name):
    with pytest.raises(ov.InputError, match="ops aiov does not support") as error:
        ov.Core().read_model(os.path.join(ZOO, f"{name}.onnx"))
    for op in MODELS[name].split(" (")[0].split(", "):
        assert f"{op} (node" in str(error.value)


@pytest.mark.parametrize("name", list(_params()))
def test_model_matches_torch_at_two_shapes(name):
    cases = _cases(name)
    assert cases[0][0] and {k: v.shape for k, v in cases[0][0].items()} != {k: v.shape for k, v in cases[1][0].items()}
    compiled = ov.Core().compile_model(os.path.join(ZOO, f"{name}.onnx"), "CPU")
    for feeds, expected in cases:
        _check(name, compiled(feeds), expected)


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.parametrize("name", list(_params()))
@pytest.mark.anyio
async def test_model_matches_torch_through_aio(name, anyio_backend):
    compiled = await aio.compile_model(os.path.join(ZOO, f"{name}.onnx"), "CPU")
    for feeds, expected in _cases(name):
        _check(name, await compiled(feeds), expected)


TEXT_MODELS = [name for name in ("bert", "distilbert", "gpt2", "t5_encoder", "roberta") if not MODELS[name]]


@pytest.mark.parametrize("name", TEXT_MODELS)
def test_text_model_loads_once_and_runs_at_any_batch_and_length(name):
    # Beyond the two saved shapes: onnxruntime is the reference (torch is not needed here).
    ort = pytest.importorskip("onnxruntime")
    path = os.path.join(ZOO, f"{name}.onnx")
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    compiled = ov.Core().compile_model(path, "CPU")
    template = _cases(name)[0][0]
    rng = np.random.default_rng(7)
    for batch, length in ((1, 1), (4, 3), (3, 17), (1, 40)):
        feeds = {}
        for key, value in template.items():
            if key == "input_ids":
                feeds[key] = rng.integers(0, 100, (batch, length)).astype(value.dtype)
            elif key == "attention_mask":
                feeds[key] = (rng.random((batch, length)) > 0.2).astype(value.dtype)
                feeds[key][:, 0] = 1
            else:
                feeds[key] = np.zeros((batch, length), value.dtype)
        expected = dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds)))
        _check(name, compiled(feeds), expected)


def test_detector_gives_as_many_boxes_as_onnxruntime_at_any_image_size():
    # SSDLite's box count comes from the image: none for a flat image (the If around its
    # NonMaxSuppression takes the empty branch), some for textured ones of any size.
    ort = pytest.importorskip("onnxruntime")
    path = os.path.join(ZOO, "ssdlite.onnx")
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    compiled = ov.Core().compile_model(path, "CPU")
    rng = np.random.default_rng(3)
    images = [np.full((3, 90, 300), 0.5, np.float32), rng.random((3, 161, 97), dtype=np.float32)]
    images.append(rng.random((3, 320, 320), dtype=np.float32))
    counts = []
    for image in images:
        expected = dict(zip(["boxes", "scores", "labels"], session.run(None, {"image": image})))
        _check("ssdlite", compiled({"image": image}), expected)
        counts.append(len(expected["scores"]))
    assert counts[0] == 0 and min(counts[1:]) > 0
