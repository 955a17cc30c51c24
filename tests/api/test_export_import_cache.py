"""CompiledModel.export_model / Core.import_model and the CACHE_DIR cache: a blob carries the
model and its config, is checked before use (format, lengths, checksum) and a bad one is
refused with a clear error (import) or ignored and rewritten (cache)."""

import io
import json
import os
import struct
import zlib

import numpy as np
import pytest

import aiov as ov

from model_builders import accumulator_model, add_model, single_conv

X = np.arange(8, dtype=np.float32)


@pytest.fixture(scope="module")
def compiled():
    return ov.compile_model(add_model(), config={"PERF_COUNT": True})


def _same_results(a, b):
    np.testing.assert_array_equal(a([X, 2 * X])[0], b([X, 2 * X])[0])


def test_export_returns_bytes_that_import(compiled):
    blob = compiled.export_model()
    assert isinstance(blob, bytes) and blob.startswith(b"AIOVBLOB")
    imported = ov.Core().import_model(blob, "CPU")
    _same_results(imported, compiled)
    assert imported.get_property("PERF_COUNT") is True  # the compile config travels along
    assert [o.any_name for o in imported.outputs] == [o.any_name for o in compiled.outputs]


def test_export_to_a_stream_and_import_from_streams_and_files(compiled, tmp_path):
    stream = io.BytesIO()
    assert compiled.export_model(stream) is None
    _same_results(ov.Core().import_model(stream, "CPU"), compiled)  # position left at the end
    path = tmp_path / "model.blob"
    path.write_bytes(stream.getvalue())
    with open(path, "rb") as f:
        _same_results(ov.Core().import_model(f, "CPU"), compiled)


def test_a_convolution_model_survives_export(tmp_path):
    model = ov.Core().read_model(single_conv(3, 8, 3, group=1).SerializeToString())
    first = ov.compile_model(model)
    second = ov.Core().import_model(first.export_model())
    x = np.random.default_rng(0).standard_normal((1, 3, 9, 9)).astype(np.float32)
    np.testing.assert_array_equal(first([x])[0], second([x])[0])


def test_a_stateful_model_survives_export():
    imported = ov.Core().import_model(ov.compile_model(accumulator_model()).export_model())
    request = imported.create_infer_request()
    request.infer([np.ones(4, np.float32)])
    np.testing.assert_array_equal(request.infer([np.ones(4, np.float32)])[0], np.full(4, 2))


def test_encryption_callbacks_apply_to_the_model(compiled):
    flip = lambda data: bytes(b ^ 0x5A for b in data)  # noqa: E731
    config = {"CACHE_ENCRYPTION_CALLBACKS": [flip, flip]}
    model = ov.compile_model(add_model(), config=config)
    blob = model.export_model()
    assert b"<net" not in blob
    _same_results(ov.Core().import_model(blob, "CPU", config), compiled)
    with pytest.raises(ov.InputError, match="is encrypted"):
        ov.Core().import_model(blob, "CPU")


def _reframe(blob, header=None, version=None, body_extra=b"", graphs=None):
    """The blob with its header, version or graphs replaced and a valid checksum: what a
    hand-made (not merely corrupted) blob can look like."""
    magic, fmt, header_len = struct.unpack_from("<8sII", blob)
    start = 16 + header_len
    fields = json.loads(blob[16:start])
    if graphs is not None:
        fields["graphs"] = len(graphs)
    text = (json.dumps(fields).encode() if graphs is not None else blob[16:start]) if header is None else header
    body = struct.pack("<8sII", magic, fmt if version is None else version, len(text)) + text
    body += (blob[start:-4] if graphs is None else graphs) + body_extra
    return body + struct.pack("<I", zlib.crc32(body))


@pytest.mark.parametrize(
    "mangle, message",
    [
        (lambda b: b[:100], "checksum does not match"),
        (lambda b: b[:-40] + bytes([b[-40] ^ 1]) + b[-39:], "checksum does not match"),
        (lambda b: b"", "too short"),
        (lambda b: b"PK\x03\x04" + b"\0" * 60, "is not an aiov compiled-model blob"),
        (lambda b: _reframe(b, version=99), "blob format 99"),
        (lambda b: _reframe(b, body_extra=b"junk"), "do not add up"),
        (lambda b: _reframe(b, header=b"{not json"), "header cannot be read"),
        (
            lambda b: _reframe(b, header=b'{"graphs": -5, "config": {}, "encrypted": false, "model": {}}'),
            "do not add up",
        ),
    ],
)
def test_a_bad_blob_is_refused_clearly(compiled, mangle, message):
    with pytest.raises(ov.InputError, match=message):
        ov.Core().import_model(mangle(compiled.export_model()), "CPU")


def _graphs(blob):
    header_len = struct.unpack_from("<8sII", blob)[2]
    return blob[16 + header_len : -4]


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda g: g[: len(g) // 2], "serialized graph is malformed"),
        (lambda g: g + b"\0", "bytes follow its end"),
        (lambda g: g[:8] + struct.pack("<I", 99) + g[12:], "graph format 99"),
        (lambda g: b"NOTGRAPH" + g[8:], "magic"),
        (lambda g: g.replace(b"Add", b"Nop", 1), "'Nop'"),
        (lambda g: g[:16] + b"\x09" + g[17:], "record tag 9"),
    ],
)
def test_a_sound_frame_around_damaged_graphs_is_refused_by_the_graph_reader(compiled, damage, message):
    blob = compiled.export_model()
    with pytest.raises(ov.InputError, match=message):
        ov.Core().import_model(_reframe(blob, graphs=damage(_graphs(blob))), "CPU")


def test_import_refuses_what_is_not_a_blob_source():
    with pytest.raises(ov.InputError, match="import_model takes"):
        ov.Core().import_model(12, "CPU")


# ---- CACHE_DIR -------------------------------------------------------------------------------


@pytest.fixture
def model_file(tmp_path):
    path = str(tmp_path / "model" / "add.xml")
    ov.save_model(add_model(), path)
    return path


def _blobs(cache):
    return sorted(p for p in os.listdir(cache) if p.endswith(".blob")) if os.path.isdir(cache) else []


def test_the_second_compile_loads_from_the_cache(model_file, tmp_path):
    cache = str(tmp_path / "cache")
    core = ov.Core()
    core.set_property({"CACHE_DIR": cache})
    first = core.compile_model(model_file, "CPU")
    assert first.get_property("LOADED_FROM_CACHE") is False
    assert len(_blobs(cache)) == 1
    second = core.compile_model(model_file, "CPU")
    assert second.get_property("LOADED_FROM_CACHE") is True
    _same_results(first, second)
    # Another config is another blob.
    third = core.compile_model(model_file, "CPU", {"PERF_COUNT": True})
    assert third.get_property("LOADED_FROM_CACHE") is False
    assert len(_blobs(cache)) == 2


@pytest.mark.parametrize(
    "damage",
    [
        lambda data: data[: len(data) // 2],
        lambda data: data[:50] + bytes([data[50] ^ 0xFF]) + data[51:],
        lambda data: b"not a blob at all",
        lambda data: b"",
    ],
)
def test_a_damaged_cache_file_is_ignored_and_rewritten(model_file, tmp_path, damage):
    cache = str(tmp_path / "cache")
    config = {"CACHE_DIR": cache}
    reference = ov.compile_model(model_file, config=config)
    (name,) = _blobs(cache)
    path = os.path.join(cache, name)
    sound = open(path, "rb").read()
    open(path, "wb").write(damage(sound))
    again = ov.compile_model(model_file, config=config)
    assert again.get_property("LOADED_FROM_CACHE") is False
    _same_results(again, reference)
    assert open(path, "rb").read() == sound  # rewritten
    assert ov.compile_model(model_file, config=config).get_property("LOADED_FROM_CACHE") is True


def test_a_changed_model_file_is_not_served_from_the_cache(model_file, tmp_path):
    config = {"CACHE_DIR": str(tmp_path / "cache")}
    ov.compile_model(model_file, config=config)
    ov.save_model(add_model(names=("p", "q")), model_file)
    changed = ov.compile_model(model_file, config=config)
    assert changed.get_property("LOADED_FROM_CACHE") is False
    assert [i.any_name for i in changed.inputs] == ["p", "q"]


def test_an_unwritable_cache_does_not_fail_the_compile(model_file, tmp_path):
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    compiled = ov.compile_model(model_file, config={"CACHE_DIR": str(not_a_dir)})
    np.testing.assert_array_equal(compiled([X, X])[0], 2 * X)


def test_read_model_with_cache_dir_creates_it_and_leaves_the_core_setting(model_file, tmp_path):
    core = ov.Core()
    cache = tmp_path / "made"
    core.read_model(model_file, config={"CACHE_DIR": str(cache)})
    assert cache.is_dir()
    assert core.get_property("CACHE_DIR") == ""


def test_cache_dir_must_be_a_path():
    with pytest.raises(ov.InputError, match="CACHE_DIR is a directory path"):
        ov.Core().set_property({"CACHE_DIR": 6})
