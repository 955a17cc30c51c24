"""aiov.serve over real HTTP on 127.0.0.1: every route of the Open Inference Protocol v2, JSON
and binary tensors compared with the model run directly, the errors a client can cause (400,
404, 413), a client that disconnects, many concurrent clients, and /metrics."""

import asyncio
import json
import threading

import httpx
import ml_dtypes
import numpy as np
import pytest

import aiov as ov
from aiov.serve import create_app

from conftest import SLOW_SIZE, metric, raw_post, serving, wait_for
from model_builders import add_model, failing_model, two_output_model

MAX_BODY = 4 << 20


def typed_model():
    """INT64, BOOL and FP16 in and out: a[4] * 2, not b[4], h[2] + h."""
    import aiov.opset13 as ops

    a = ops.parameter([4], np.int64, name="a")
    b = ops.parameter([4], np.bool_, name="b")
    h = ops.parameter([2], np.float16, name="h")
    model = ov.Model([ops.multiply(a, ops.constant(np.int64(2))), ops.logical_not(b), ops.add(h, h)], [a, b, h])
    for output, name in zip(model.outputs, ("twice", "negated", "hh")):
        output.tensor.set_names({name})
    return model


def bf16_model():
    """BF16 in and out: x[n, 2] -> twice = bf16(2 * x), and widened = f32(x)."""
    import aiov.opset13 as ops

    x = ops.parameter([-1, 2], ov.Type.bf16, name="x")
    twice = ops.convert(ops.multiply(ops.convert(x, ov.Type.f32), ops.constant(np.float32(2))), ov.Type.bf16)
    model = ov.Model([twice, ops.convert(x, ov.Type.f32)], [x])
    for output, name in zip(model.outputs, ("twice", "widened")):
        output.tensor.set_names({name})
    return model


def strings_model():
    import aiov.opset13 as ops

    s = ops.parameter([-1], ov.Type.string, name="s")
    return ov.Model([s], [s])


@pytest.fixture(scope="module")
def server(model_files):
    direct = {name: ov.compile_model(path) for name, path in model_files.items()}
    app = create_app(
        {
            "mlp": model_files["mlp"],  # a file, compiled at startup
            "slow": model_files["slow"],
            "two": two_output_model(),  # an aiov.Model
            "add": ov.compile_model(add_model()),  # a compiled model, served as is
            "fail": failing_model(),
            "types": typed_model(),
            "bf16": bf16_model(),
            "strings": strings_model(),
        },
        max_body_bytes=MAX_BODY,
        offload_bytes=64 << 10,  # larger bodies are decoded and encoded in a worker thread
    )
    with serving(app) as url:
        with httpx.Client(base_url=url, timeout=120) as client:
            client.direct = direct
            client.app = app
            client.url = url
            yield client


# The numpy types of the protocol's datatypes (BF16 through ml_dtypes, as a client would).
NUMPY = {"FP32": np.float32, "INT64": np.int64, "BOOL": np.bool_, "FP16": np.float16, "BF16": ml_dtypes.bfloat16}
DATATYPES = {np.dtype(t): name for name, t in NUMPY.items()}


def json_input(name, array, datatype="FP32"):
    return {"name": name, "shape": list(array.shape), "datatype": datatype, "data": array.ravel().tolist()}


def binary_request(inputs, outputs=None, parameters=None):
    """(body, headers) of a request whose inputs are all binary: ``inputs`` is [(name, array)]."""
    request = {
        "inputs": [
            {
                "name": name,
                "shape": list(a.shape),
                "datatype": DATATYPES[a.dtype],
                "parameters": {"binary_data_size": a.nbytes},
            }
            for name, a in inputs
        ]
    }
    if outputs is not None:
        request["outputs"] = outputs
    if parameters is not None:
        request["parameters"] = parameters
    head = json.dumps(request).encode()
    body = head + b"".join(a.tobytes() for _, a in inputs)
    return body, {"Inference-Header-Content-Length": str(len(head))}


def parse_response(response):
    """{output name: array} of a response, JSON or binary."""
    length = response.headers.get("inference-header-content-length")
    content = response.content
    head = json.loads(content[: int(length)] if length is not None else content)
    binary = memoryview(content)[int(length) :] if length is not None else b""
    arrays, offset = {}, 0
    for out in head["outputs"]:
        dtype = NUMPY[out["datatype"]]
        size = (out.get("parameters") or {}).get("binary_data_size")
        if size is None:
            arrays[out["name"]] = np.asarray(out["data"], dtype).reshape(out["shape"])
        else:
            arrays[out["name"]] = np.frombuffer(binary[offset : offset + size], dtype).reshape(out["shape"])
            offset += size
    assert offset == len(binary)
    return head, arrays


# ---- health and metadata ---------------------------------------------------------------------


def test_health_and_server_metadata(server):
    assert server.get("/v2/health/live").status_code == 200
    assert server.get("/v2/health/ready").json() == {"ready": True}
    meta = server.get("/v2").json()
    assert meta["name"] == "aiov" and meta["version"] == ov.__version__
    assert "binary_tensor_data" in meta["extensions"]


@pytest.mark.parametrize("prefix", ["/v2/models/two", "/v2/models/two/versions/1"])
def test_model_metadata_and_ready(server, prefix):
    meta = server.get(prefix).json()
    assert meta["name"] == "two" and meta["versions"] == ["1"]
    assert meta["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [2, 3]}]
    assert meta["outputs"] == [
        {"name": "double", "datatype": "FP32", "shape": [2, 3]},
        {"name": "plus_one", "datatype": "FP32", "shape": [2, 3]},
    ]
    ready = server.get(prefix + "/ready")
    assert ready.status_code == 200 and ready.json()["ready"] is True


def test_model_metadata_shows_dynamic_dims(server):
    meta = server.get("/v2/models/mlp").json()
    assert meta["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, 16]}]


@pytest.mark.parametrize("method, endpoint", [("GET", ""), ("GET", "/ready"), ("POST", "/infer")])
@pytest.mark.parametrize(
    "prefix, wanted", [("/v2/models/nope", "no model 'nope'"), ("/v2/models/two/versions/7", "no version '7'")]
)
def test_unknown_model_or_version_is_404(server, method, endpoint, prefix, wanted):
    response = server.request(method, prefix + endpoint, json={"inputs": []})
    assert response.status_code == 404
    assert wanted in response.json()["error"]
    assert "'two'" in response.json()["error"] or "versions are ['1']" in response.json()["error"]


# ---- inference -------------------------------------------------------------------------------


def test_json_infer_matches_the_model_run_directly(server):
    x = np.random.default_rng(0).standard_normal((5, 16)).astype(np.float32)
    response = server.post("/v2/models/mlp/infer", json={"id": "req-7", "inputs": [json_input("x", x)]})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    head, arrays = parse_response(response)
    assert head["model_name"] == "mlp" and head["model_version"] == "1" and head["id"] == "req-7"
    np.testing.assert_allclose(arrays["out"], server.direct["mlp"](x)[0], rtol=1e-6, atol=1e-6)


def test_json_accepts_nested_data_and_a_versioned_route(server):
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    body = {"inputs": [{"name": "x", "shape": [2, 3], "datatype": "FP32", "data": x.tolist()}]}
    _, arrays = parse_response(server.post("/v2/models/two/versions/1/infer", json=body))
    np.testing.assert_array_equal(arrays["double"], x * 2)
    np.testing.assert_array_equal(arrays["plus_one"], x + 1)


def test_requested_outputs_only_and_in_their_order(server):
    x = np.ones((2, 3), np.float32)
    body = {"inputs": [json_input("x", x)], "outputs": [{"name": "plus_one"}]}
    head, arrays = parse_response(server.post("/v2/models/two/infer", json=body))
    assert [o["name"] for o in head["outputs"]] == ["plus_one"]
    np.testing.assert_array_equal(arrays["plus_one"], x + 1)


def test_binary_inputs_and_outputs(server):
    x = np.random.default_rng(1).standard_normal((64, 16)).astype(np.float32)
    body, headers = binary_request([("x", x)], parameters={"binary_data_output": True})
    response = server.post("/v2/models/mlp/infer", content=body, headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/octet-stream"
    head, arrays = parse_response(response)
    assert head["outputs"][0]["parameters"] == {"binary_data_size": 64 * 4 * 4}
    np.testing.assert_allclose(arrays["out"], server.direct["mlp"](x)[0], rtol=1e-6, atol=1e-6)


def test_binary_per_output_and_json_mixed(server):
    """A binary input, one output binary (its binary_data parameter) and one JSON."""
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    body, headers = binary_request(
        [("x", x)], outputs=[{"name": "plus_one", "parameters": {"binary_data": True}}, {"name": "double"}]
    )
    head, arrays = parse_response(server.post("/v2/models/two/infer", content=body, headers=headers))
    assert "data" in head["outputs"][1] and "data" not in head["outputs"][0]
    np.testing.assert_array_equal(arrays["plus_one"], x + 1)
    np.testing.assert_array_equal(arrays["double"], x * 2)


TYPED = {
    "a": np.array([-3, 0, 5, 2**40], np.int64),
    "b": np.array([True, False, False, True]),
    "h": np.array([0.5, -1.25], np.float16),
}


@pytest.mark.parametrize("binary", [False, True])
def test_int64_bool_and_fp16_tensors(server, binary):
    if binary:
        body, headers = binary_request(list(TYPED.items()), parameters={"binary_data_output": True})
        response = server.post("/v2/models/types/infer", content=body, headers=headers)
    else:
        datatypes = {"a": "INT64", "b": "BOOL", "h": "FP16"}
        response = server.post(
            "/v2/models/types/infer", json={"inputs": [json_input(k, v, datatypes[k]) for k, v in TYPED.items()]}
        )
    assert response.status_code == 200, response.text
    head, arrays = parse_response(response)
    assert [o["datatype"] for o in head["outputs"]] == ["INT64", "BOOL", "FP16"]
    np.testing.assert_array_equal(arrays["twice"], TYPED["a"] * 2)
    np.testing.assert_array_equal(arrays["negated"], ~TYPED["b"])
    np.testing.assert_array_equal(arrays["hh"], TYPED["h"] * 2)


BF16_X = np.array([[1.5, -3.25], [0.1, 1000.0]], np.float32)


@pytest.mark.parametrize("binary", [False, True])
def test_bf16_tensors_json_and_binary(server, binary):
    """BF16 travels as 2-byte bits in binary and as numbers in JSON (rounded to bf16 by the
    server); 0.1 is not a bf16 number, so both ways see its rounding."""
    x = BF16_X.astype(ml_dtypes.bfloat16)
    if binary:
        body, headers = binary_request([("x", x)], parameters={"binary_data_output": True})
        response = server.post("/v2/models/bf16/infer", content=body, headers=headers)
    else:
        response = server.post("/v2/models/bf16/infer", json={"inputs": [json_input("x", BF16_X, "BF16")]})
    assert response.status_code == 200, response.text
    head, arrays = parse_response(response)
    assert [o["datatype"] for o in head["outputs"]] == ["BF16", "FP32"]
    np.testing.assert_array_equal(arrays["widened"], x.astype(np.float32))
    np.testing.assert_array_equal(arrays["twice"].astype(np.float32), x.astype(np.float32) * 2)
    meta = server.get("/v2/models/bf16").json()
    assert meta["inputs"] == [{"name": "x", "datatype": "BF16", "shape": [-1, 2]}]


@pytest.mark.parametrize(
    "model, name, datatype, wanted",
    [
        ("mlp", "x", "BYTES", "input 'x': datatype FP32 expected, got BYTES (strings)"),
        ("strings", "s", "BYTES", "input 's': the model takes strings (BYTES) there"),
        ("bf16", "x", "FP32", "input 'x': datatype BF16 expected, got 'FP32'"),
    ],
)
def test_bytes_and_mismatched_datatypes_are_400_naming_the_tensor(server, model, name, datatype, wanted):
    spec = {"name": name, "shape": [1, 2] if name == "x" else [2], "datatype": datatype, "data": ["ab", "c"]}
    if datatype != "BYTES":
        spec["data"] = [1.0, 2.0]
    response = server.post(f"/v2/models/{model}/infer", json={"inputs": [spec]})
    assert response.status_code == 400, response.text
    assert wanted in response.json()["error"]


@pytest.mark.parametrize(
    "name, data, wanted",
    [
        ("a", [1, 2, 3, 2**63], "must hold integers in [-9223372036854775808, 9223372036854775807] for INT64"),
        ("a", [1.0, 2.0, 3.0, 4.5], "must hold integers in"),
        ("a", [1, 2, 3, -(2**64)], "must hold integers in"),
        ("b", [1, 0, 1, 0], "must hold true/false"),
    ],
)
def test_values_that_do_not_fit_the_datatype_are_400(server, name, data, wanted):
    datatypes = {"a": "INT64", "b": "BOOL", "h": "FP16"}
    inputs = [json_input(k, v, datatypes[k]) for k, v in TYPED.items()]
    inputs[list(TYPED).index(name)]["data"] = data
    response = server.post("/v2/models/types/infer", json={"inputs": inputs})
    assert response.status_code == 400, response.text
    assert f"input '{name}'" in response.json()["error"] and wanted in response.json()["error"]


def test_binary_and_json_inputs_mixed_in_one_request(server):
    a = np.arange(8, dtype=np.float32)
    b = np.full(8, 0.5, np.float32)
    head = json.dumps(
        {
            "inputs": [
                json_input("input_0", a),
                {"name": "input_1", "shape": [8], "datatype": "FP32", "parameters": {"binary_data_size": 32}},
            ]
        }
    ).encode()
    response = server.post(
        "/v2/models/add/infer", content=head + b.tobytes(), headers={"Inference-Header-Content-Length": str(len(head))}
    )
    np.testing.assert_array_equal(parse_response(response)[1]["result_0"], a + b)


def test_large_bodies_go_through_the_worker_thread_path(server):
    """Bodies above offload_bytes are decoded and encoded off the loop: same answers."""
    x = np.random.default_rng(2).standard_normal((2048, 16)).astype(np.float32)  # 128 KiB binary
    body, headers = binary_request([("x", x)])
    _, arrays = parse_response(server.post("/v2/models/mlp/infer", content=body, headers=headers))
    np.testing.assert_allclose(arrays["out"], server.direct["mlp"](x)[0], rtol=1e-6, atol=1e-6)


def test_many_concurrent_clients_each_get_their_own_answer(server):
    rng = np.random.default_rng(3)
    inputs = [rng.standard_normal((1 + i % 4, 16)).astype(np.float32) for i in range(96)]

    async def main():
        async with httpx.AsyncClient(base_url=server.url, timeout=120) as client:

            async def one(x):
                response = await client.post("/v2/models/mlp/infer", json={"inputs": [json_input("x", x)]})
                return parse_response(response)[1]["out"]

            return await asyncio.gather(*(one(x) for x in inputs))

    for x, out in zip(inputs, asyncio.run(main())):
        np.testing.assert_allclose(out, server.direct["mlp"](x)[0], rtol=1e-6, atol=1e-6)


# ---- bad requests ----------------------------------------------------------------------------


def _x(**changes):
    spec = {"name": "x", "shape": [2, 3], "datatype": "FP32", "data": [0.0] * 6}
    spec.update(changes)
    return {"inputs": [spec]}


@pytest.mark.parametrize(
    "body, wanted",
    [
        (_x(name="y"), ["no input 'y'", "['x']"]),
        (_x(datatype="INT64"), ["input 'x'", "FP32 expected", "'INT64'"]),
        (_x(shape=[3, 2]), ["input 'x'", "shape [2, 3] expected", "[3, 2]"]),
        (_x(shape=[2, 3, 1]), ["input 'x'", "shape [2, 3] expected", "[2, 3, 1]"]),
        (_x(shape=[2, -3]), ["input 'x'", "'shape' must be a list of ints >= 0"]),
        (_x(data=[1.0] * 5), ["input 'x'", "holds 6 elements, 'data' has 5"]),
        (_x(data=[[1.0, 2.0], [3.0]]), ["input 'x'", "'data' must be"]),
        (_x(data=["a"] * 6), ["input 'x'", "'data' must hold numbers"]),
        (_x(data=None), ["input 'x'", "holds 6 elements"]),
        ({"inputs": [{"name": "x", "shape": [2, 3], "datatype": "FP32"}]}, ["input 'x'", "neither 'data' nor"]),
        ({"inputs": []}, ["non-empty list 'inputs'"]),
        ({"inputs": [_x()["inputs"][0]] * 2}, ["input 'x' is given twice"]),
        ({**_x(), "outputs": [{"name": "triple"}]}, ["no output 'triple'", "['double', 'plus_one']"]),
        ({**_x(), "parameters": {"binary_data_output": "yes"}}, ["binary_data_output must be true or false"]),
        ([1, 2], ["must be a JSON object"]),
        (b"{'inputs': []}", ["not a JSON object"]),
        (b"[" * 100000 + b"]" * 100000, ["not a JSON object"]),
        (b"\xff\xfe", ["not a JSON object"]),
    ],
)
def test_bad_tensors_are_400_naming_what_is_wrong(server, body, wanted):
    if isinstance(body, bytes):
        response = server.post("/v2/models/two/infer", content=body)
    else:
        response = server.post("/v2/models/two/infer", json=body)
    assert response.status_code == 400, response.text
    message = response.json()["error"]
    for part in wanted:
        assert part in message, message


def test_missing_input_is_400_naming_it(server):
    body = {"inputs": [json_input("input_0", np.ones(8, np.float32))]}
    response = server.post("/v2/models/add/infer", json=body)
    assert response.status_code == 400
    assert "missing ['input_1']" in response.json()["error"]


@pytest.mark.parametrize(
    "data, datatype, wanted",
    [([1.5] * 8, "FP32", None), ([1.5] * 8, "INT64", "FP32 expected"), ([True] * 8, "FP32", "must hold numbers")],
)
def test_json_values_must_fit_the_datatype(server, data, datatype, wanted):
    body = {
        "inputs": [
            {"name": "input_0", "shape": [8], "datatype": datatype, "data": data},
            json_input("input_1", np.zeros(8, np.float32)),
        ]
    }
    response = server.post("/v2/models/add/infer", json=body)
    if wanted is None:
        assert response.status_code == 200
    else:
        assert response.status_code == 400 and wanted in response.json()["error"]


def test_integer_data_for_a_float_input_is_converted(server):
    body = {"inputs": [_x(data=[1, 2, 3, 4, 5, 6])["inputs"][0]]}
    _, arrays = parse_response(server.post("/v2/models/two/infer", json=body))
    np.testing.assert_array_equal(arrays["double"], np.arange(1, 7, dtype=np.float32).reshape(2, 3) * 2)


@pytest.mark.parametrize(
    "size, extra, header, wanted",
    [
        (20, b"", None, "binary_data_size must be 24"),
        (24, b"", "9999", "Inference-Header-Content-Length must be a byte count"),
        (24, b"", "abc", "Inference-Header-Content-Length must be a byte count"),
        (24, b"\0" * 4, None, "the inputs use 24"),
        (24, None, None, "ends at byte 24"),
    ],
)
def test_bad_binary_data_is_400(server, size, extra, header, wanted):
    head = json.dumps(
        {"inputs": [{"name": "x", "shape": [2, 3], "datatype": "FP32", "parameters": {"binary_data_size": size}}]}
    ).encode()
    data = np.ones(6, np.float32).tobytes()
    body = head + (data[:8] if extra is None else data + extra)
    response = server.post(
        "/v2/models/two/infer", content=body, headers={"Inference-Header-Content-Length": header or str(len(head))}
    )
    assert response.status_code == 400, response.text
    assert wanted in response.json()["error"]


def test_engine_rejections_are_400_naming_the_model(server):
    """Inputs the protocol checks accept but the engine cannot run (a dynamic dim a Reshape
    cannot take): the engine's message, as a 400; the model goes on serving."""
    response = server.post("/v2/models/fail/infer", json={"inputs": [json_input("x", np.ones(5, np.float32))]})
    assert response.status_code == 400, response.text
    assert "model 'fail'" in response.json()["error"] and "reshape" in response.json()["error"]
    _, arrays = parse_response(
        server.post("/v2/models/fail/infer", json={"inputs": [json_input("x", np.ones(6, np.float32))]})
    )
    np.testing.assert_array_equal(arrays["y"], np.ones((2, 3), np.float32))


@pytest.mark.parametrize("declared", [True, False])
def test_body_over_the_limit_is_413(server, declared):
    body = b"x" * (MAX_BODY + 1)

    def chunks():
        for i in range(0, len(body), 1 << 20):
            yield body[i : i + (1 << 20)]

    content = body if declared else chunks()  # without Content-Length: counted while read
    response = server.post("/v2/models/two/infer", content=content)
    assert response.status_code == 413
    assert f"{MAX_BODY}" in response.json()["error"]
    assert server.get("/v2/health/live").status_code == 200


# ---- disconnects and metrics -----------------------------------------------------------------


def _slow_request(batch=512):
    x = np.ones((batch, SLOW_SIZE), np.float32)
    body, headers = binary_request([("x", x)])
    return body, headers


@pytest.mark.parametrize("when", ["while_inferring", "while_sending"])
def test_a_client_that_disconnects_cancels_its_job(server, when):
    url = server.url
    before = metric(url, "aiov_infer_failures_total", model="slow", reason="cancelled")
    body, headers = _slow_request()
    for _ in range(3):
        received = metric(url, "aiov_infer_requests_total", model="slow")
        sock = raw_post(url, "/v2/models/slow/infer", body, headers, send_all=when == "while_inferring")
        if when == "while_inferring":
            wait_for(lambda: metric(url, "aiov_infer_in_flight", model="slow") == 1, "the job to start")
        else:  # the handler is reading a body that will never be complete
            wait_for(lambda: metric(url, "aiov_infer_requests_total", model="slow") == received + 1, "the request")
        sock.close()
    wait_for(
        lambda: metric(url, "aiov_infer_failures_total", model="slow", reason="cancelled") == before + 3,
        "three cancellations",
    )
    wait_for(lambda: metric(url, "aiov_infer_in_flight", model="slow") == 0, "nothing in flight")
    # The model still serves: every pooled request came back.
    x = np.ones((1, SLOW_SIZE), np.float32)
    body, headers = binary_request([("x", x)])
    for _ in range(4):
        assert server.post("/v2/models/slow/infer", content=body, headers=headers).status_code == 200


def test_metrics_report_requests_errors_latency_and_queues(server):
    url = server.url
    x = np.ones((2, 3), np.float32)
    requests = metric(url, "aiov_infer_requests_total", model="two")
    bad = metric(url, "aiov_infer_failures_total", model="two", reason="bad_request")
    count = metric(url, "aiov_infer_request_duration_seconds_count", model="two")
    for _ in range(3):
        assert server.post("/v2/models/two/infer", json={"inputs": [json_input("x", x)]}).status_code == 200
    assert server.post("/v2/models/two/infer", json=_x(datatype="BOOL")).status_code == 400
    assert metric(url, "aiov_infer_requests_total", model="two") == requests + 4
    assert metric(url, "aiov_infer_failures_total", model="two", reason="bad_request") == bad + 1
    assert metric(url, "aiov_infer_request_duration_seconds_count", model="two") == count + 3
    assert metric(url, "aiov_infer_compute_duration_seconds_count", model="two") >= 3
    text = server.get("/metrics").text
    assert 'aiov_infer_request_duration_seconds_bucket{le="0.005",model="two"}' in text
    assert 'aiov_infer_queue_depth{model="two"} 0.0' in text
    assert 'aiov_infer_in_flight{model="two"} 0.0' in text
    assert 'aiov_infer_request_batch_size_bucket{le="2.0",model="two"}' in text
    assert metric(url, "aiov_model_optimal_requests", model="two") >= 1
    assert metric(url, "aiov_http_requests_total", route="/v2/models/{name}/infer", code="400") >= 1
    assert server.get("/metrics").headers["content-type"].startswith("text/plain")


class _Gated:
    """A served model's compiled model behind a gate: calls wait (on the server's loop) until
    ``gate`` is set, then run the model. Makes "callers waiting" a state, not a race."""

    def __init__(self, compiled, gate):
        self.compiled, self.gate, self.max_requests = compiled, gate, compiled.max_requests

    async def __call__(self, inputs):
        while not self.gate.is_set():
            await asyncio.sleep(0.005)
        return await self.compiled(inputs)


def test_queue_depth_counts_callers_waiting_for_a_request(server):
    """More requests than the model has infer requests: the excess waits, and the gauge shows
    exactly it while they wait (held by a gate in front of the model, so no timing decides
    whether the excess is seen), and 0 once they have been answered."""
    url = server.url
    served = server.app.state.aiov.models["mlp"]
    cap = served.compiled.max_requests
    gate = threading.Event()
    real, served.compiled = served.compiled, _Gated(served.compiled, gate)
    x = np.ones((1, 16), np.float32)
    try:

        async def main():
            async with httpx.AsyncClient(base_url=url, timeout=300) as client:
                jobs = [
                    asyncio.ensure_future(client.post("/v2/models/mlp/infer", json={"inputs": [json_input("x", x)]}))
                    for _ in range(2 * cap)
                ]
                waiting = lambda: metric(url, "aiov_infer_queue_depth", model="mlp") == cap  # noqa: E731
                await asyncio.to_thread(wait_for, waiting, f"{cap} callers waiting")
                gate.set()
                return [r.status_code for r in await asyncio.gather(*jobs)]

        codes = asyncio.run(main())
    finally:
        gate.set()
        served.compiled = real
    assert codes == [200] * (2 * cap)
    assert metric(url, "aiov_infer_queue_depth", model="mlp") == 0


def test_many_clients_vanishing_at_random_points_wedge_nothing(server):
    """Clients that leave while sending, while their job runs, or while the answer is being
    read, mixed with clients that stay: the ones that stay get right answers, nothing stays in
    flight, and the model's pool is whole afterwards."""
    url = server.url
    rng = np.random.default_rng(7)
    x = rng.standard_normal((256, SLOW_SIZE)).astype(np.float32)
    body, headers = binary_request([("x", x)], parameters={"binary_data_output": True})
    before = metric(url, "aiov_infer_failures_total", model="slow", reason="cancelled")
    socks = []
    for i in range(40):
        mode = i % 4
        sock = raw_post(url, "/v2/models/slow/infer", body, headers, send_all=mode != 0)
        if mode in (0, 1):
            sock.close()  # gone while sending, or right after sending
        elif mode == 2:
            socks.append(("read_some", sock))
        else:
            socks.append(("stay", sock))
    expected = server.direct["slow"](x)[0]
    for mode, sock in socks:
        sock.settimeout(300)
        reply = b""
        while b"\r\n\r\n" not in reply:
            chunk = sock.recv(65536)
            assert chunk, "the server closed a connection whose client stayed"
            reply += chunk
        if mode == "read_some":
            sock.close()  # gone while the answer is being read
            continue
        head, _, rest = reply.partition(b"\r\n\r\n")
        length = int([h for h in head.split(b"\r\n") if h.lower().startswith(b"content-length:")][0].split(b":")[1])
        while len(rest) < length:
            rest += sock.recv(1 << 20)
        sock.close()
        assert head.startswith(b"HTTP/1.1 200"), head
        n = int(
            [h for h in head.split(b"\r\n") if h.lower().startswith(b"inference-header-content-length:")][0].split(
                b":"
            )[1]
        )
        got = np.frombuffer(rest[n:], np.float32) if rest[n:] else None
        out = json.loads(rest[:n])["outputs"][0]
        data = (
            got.reshape(out["shape"]) if got is not None else np.asarray(out["data"], np.float32).reshape(out["shape"])
        )
        np.testing.assert_allclose(data, expected, rtol=1e-4, atol=1e-4)
    wait_for(lambda: metric(url, "aiov_infer_in_flight", model="slow") == 0, "nothing in flight")
    assert metric(url, "aiov_infer_failures_total", model="slow", reason="cancelled") > before
    cap = server.app.state.aiov.models["slow"].compiled.max_requests
    small, small_headers = binary_request([("x", np.ones((1, SLOW_SIZE), np.float32))])

    async def after():
        async with httpx.AsyncClient(base_url=url, timeout=300) as client:
            responses = await asyncio.gather(
                *(client.post("/v2/models/slow/infer", content=small, headers=small_headers) for _ in range(2 * cap))
            )
        return [r.status_code for r in responses]

    assert asyncio.run(after()) == [200] * (2 * cap)


def test_an_app_can_be_started_again_after_shutdown():
    """Its lifespan compiles the models anew on each start and closes them at each stop."""
    app = create_app({"add": add_model()})
    a = np.arange(8, dtype=np.float32)
    body = {"inputs": [json_input("input_0", a), json_input("input_1", a)]}
    for _ in range(2):
        with serving(app) as url:
            response = httpx.post(url + "/v2/models/add/infer", json=body, timeout=60)
            np.testing.assert_array_equal(parse_response(response)[1]["result_0"], a * 2)
    assert app.state.aiov.models == {}
