"""Triton's own v2 HTTP client (tritonclient.http) against aiov's server: health, metadata,
and inference with JSON and binary tensors, as a Triton user would call it. Skipped when
tritonclient is not installed."""

import numpy as np
import pytest

import aiov as ov
from aiov.serve import create_app

from conftest import serving
from model_builders import two_output_model

triton = pytest.importorskip("tritonclient.http")


@pytest.fixture(scope="module")
def client(model_files):
    app = create_app({"mlp": model_files["mlp"], "two": two_output_model()})
    with serving(app) as url:
        yield triton.InferenceServerClient(url.replace("http://", ""), network_timeout=120)


def test_health_and_metadata(client):
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("mlp") and not client.is_model_ready("nope")
    assert "binary_tensor_data" in client.get_server_metadata()["extensions"]
    meta = client.get_model_metadata("two")
    assert [o["name"] for o in meta["outputs"]] == ["double", "plus_one"]


@pytest.mark.parametrize("binary_in", [False, True])
@pytest.mark.parametrize("binary_out", [False, True])
def test_infer(client, model_files, binary_in, binary_out):
    x = np.random.default_rng(0).standard_normal((3, 16)).astype(np.float32)
    given = triton.InferInput("x", list(x.shape), "FP32")
    given.set_data_from_numpy(x, binary_data=binary_in)
    wanted = [triton.InferRequestedOutput("out", binary_data=binary_out)]
    result = client.infer("mlp", [given], outputs=wanted, request_id="r1")
    np.testing.assert_allclose(result.as_numpy("out"), ov.compile_model(model_files["mlp"])(x)[0], rtol=1e-6, atol=1e-6)
    assert result.get_response()["id"] == "r1"


def test_errors_reach_the_client_as_exceptions(client):
    given = triton.InferInput("x", [2, 2], "FP32")
    given.set_data_from_numpy(np.zeros((2, 2), np.float32))
    with pytest.raises(triton.InferenceServerException, match=r"shape \[2, 3\] expected"):
        client.infer("two", [given])
    with pytest.raises(triton.InferenceServerException, match="no model 'nope'"):
        client.infer("nope", [given])
