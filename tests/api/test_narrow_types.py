"""Element types numpy lacks (bf16, the 8- and 4-bit floats, 2- and 4-bit integers): numpy I/O
through ml_dtypes' dtypes, Tensor storage, constants, and Convert in both directions checked
against ml_dtypes' own conversions for every code of each type."""

import numpy as np
import pytest

import aiov as ov
from aiov import opset as ops
from aiov.helpers import unpack_data

ml_dtypes = pytest.importorskip("ml_dtypes")

# aiov type -> ml_dtypes dtype
NARROW = {
    "bf16": ml_dtypes.bfloat16,
    "f8e4m3": ml_dtypes.float8_e4m3fn,
    "f8e5m2": ml_dtypes.float8_e5m2,
    "f8e4m3fnuz": ml_dtypes.float8_e4m3fnuz,
    "f8e5m2fnuz": ml_dtypes.float8_e5m2fnuz,
    "f8e8m0": ml_dtypes.float8_e8m0fnu,
    "f4e2m1": ml_dtypes.float4_e2m1fn,
    "i4": ml_dtypes.int4,
    "u4": ml_dtypes.uint4,
    "i2": ml_dtypes.int2,
    "u2": ml_dtypes.uint2,
}
BITS = {"bf16": 16, "f4e2m1": 4, "i4": 4, "u4": 4, "i2": 2, "u2": 2}
SUB_BYTE = [name for name in NARROW if BITS.get(name, 8) < 8]


def every_code(name):
    """Every value of the type, in code order (bf16: a spread of its codes)."""
    bits = BITS.get(name, 8)
    codes = np.arange(1 << bits, dtype=np.uint16 if bits == 16 else np.uint8)
    if bits == 16:
        codes = codes[::97]
    return codes.view(NARROW[name]) if bits >= 8 else codes.astype(np.uint8).view(NARROW[name])


def converter(src, dst, saturate=True):
    x = ops.parameter([-1], src, name="x")
    y = ops._make("Convert", [x], {"destination_type": ov.Type(dst).get_type_name(), "saturate": saturate})
    return ov.compile_model(ov.Model([y], [x]), "CPU")


def same_values(got, want):
    with np.errstate(invalid="ignore"):  # NaNs of ml_dtypes types widen with a warning
        got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    ok = ~np.isnan(want)
    np.testing.assert_array_equal(got[ok], want[ok])
    np.testing.assert_array_equal(np.signbit(got[ok]), np.signbit(want[ok]))


@pytest.mark.parametrize("name", NARROW)
def test_types_follow_ml_dtypes_and_openvino_names(name):
    t = ov.Type(NARROW[name])
    assert t == getattr(ov.Type, name) and t.get_type_name() == name
    assert t.bitwidth == BITS.get(name, 8)
    assert ov.Type(np.dtype(NARROW[name])) == t


@pytest.mark.parametrize("name", NARROW)
def test_every_code_decodes_as_ml_dtypes_does(name):
    codes = every_code(name)
    got = converter(name, ov.Type.f32)(codes)[0]
    assert got.dtype == np.float32
    same_values(got, codes.astype(np.float32))


@pytest.mark.parametrize("name", [n for n in NARROW if n != "f8e8m0"])
def test_floats_encode_as_ml_dtypes_does(name):
    # Every code's value, the midpoints between neighbours (ties round to even), and values
    # around them; overflow left to saturate=False, which is ml_dtypes' own astype.
    with np.errstate(invalid="ignore"):
        values = np.unique(every_code(name).astype(np.float64))
    values = values[~np.isnan(values)]
    mids = (values[1:] + values[:-1]) / 2
    x = np.concatenate([values, mids, mids * (1 + 1e-6), mids * (1 - 1e-6), [0.0, -0.0, np.inf, -np.inf, np.nan]])
    x = x.astype(np.float32)
    out = converter(ov.Type.f32, name, saturate=False)(x)[0]
    assert out.dtype == np.dtype(NARROW[name])
    same_values(out.astype(np.float64), x.astype(NARROW[name]).astype(np.float64))


@pytest.mark.parametrize("name", ["f8e4m3", "f8e5m2", "f8e4m3fnuz", "f8e5m2fnuz"])
def test_saturate_clips_to_the_largest_finite_value(name):
    big = float(ml_dtypes.finfo(NARROW[name]).max)
    x = np.array([big * 4, -big * 4, np.inf, -np.inf, 1.0], np.float32)
    out = converter(ov.Type.f32, name)(x)[0].astype(np.float32)
    np.testing.assert_array_equal(out, [big, -big, big, -big, 1.0])
    wide = converter(ov.Type.f32, name, saturate=False)(x)[0].astype(np.float32)
    assert not np.isfinite(wide[:4]).any()


@pytest.mark.parametrize("name", ["i4", "u4", "i2", "u2"])
def test_integers_wrap_as_onnx_cast_does(name):
    x = np.array([-9, -3, -1, 0, 1, 3, 9, 17, 2.7, -2.7], np.float32)
    out = converter(ov.Type.f32, name)(x)[0]
    np.testing.assert_array_equal(out, x.astype(NARROW[name]))
    ints = np.array([-9, -3, 0, 5, 1 << 40], np.int64)  # exact: no detour through a float
    np.testing.assert_array_equal(converter(ov.Type.i64, name)(ints)[0], ints.astype(NARROW[name]))


@pytest.mark.parametrize("name", NARROW)
def test_identity_model_round_trips_ml_dtypes_arrays(name):
    values = np.resize(every_code(name), 9).reshape(3, 3)
    x = ops.parameter([-1, 3], name, name="x")
    model = ov.Model([ops.reshape(x, [-1, 3], False)], [x])
    for shared in (False, True):
        got = ov.compile_model(model, "CPU")(values, share_inputs=shared)[0]
        assert got.dtype == values.dtype and got.shape == values.shape
        np.testing.assert_array_equal(
            got.view(np.uint8 if BITS.get(name, 8) < 16 else np.uint16),
            values.view(np.uint8 if BITS.get(name, 8) < 16 else np.uint16),
        )


@pytest.mark.parametrize("name", NARROW)
def test_constants_of_ml_dtypes_arrays(name):
    values = every_code(name)[:6]
    values = values[~np.isnan(values.astype(np.float32))]
    y = ops.convert(ops.constant(values), ov.Type.f32)
    got = ov.compile_model(ov.Model([y], []), "CPU")({})[0]
    np.testing.assert_array_equal(got, values.astype(np.float32))


@pytest.mark.parametrize("name", NARROW)
def test_tensor_of_ml_dtypes_array(name):
    values = np.resize(every_code(name), 7)
    t = ov.Tensor(values)
    assert t.element_type == getattr(ov.Type, name) and list(t.shape) == [7]
    assert t.values().dtype == values.dtype and t.values().tobytes() == values.tobytes()
    if name in SUB_BYTE:
        assert t.data.dtype == np.uint8 and t.data.size == (7 * BITS[name] + 7) // 8  # packed, as OpenVINO
        if not name.startswith("f"):
            np.testing.assert_array_equal(unpack_data(t.data, t.element_type, [7]), values.astype(np.int8))
        with pytest.raises(ov.InputError, match="packs"):
            ov.Tensor(values, shared_memory=True)
    else:
        assert t.data.dtype == (np.uint16 if name == "bf16" else np.uint8)  # raw bits, as OpenVINO
        mine = values.copy()
        ov.Tensor(mine, shared_memory=True).values()[0] = values[1]  # the Tensor's memory is the array's
        assert mine[:1].tobytes() == values[1:2].tobytes()
    # a Tensor feeds a model input of its type
    x = ops.parameter([7], name, name="x")
    compiled = ov.compile_model(ov.Model([ops.convert(x, ov.Type.f32)], [x]), "CPU")
    got = compiled.create_infer_request().infer({"x": t})[0]
    same_values(got, values.astype(np.float32))


def test_bf16_input_takes_floats_and_raw_bits():
    x = ops.parameter([3], ov.Type.bf16, name="x")
    compiled = ov.compile_model(ov.Model([ops.convert(x, ov.Type.f32)], [x]), "CPU")
    np.testing.assert_array_equal(compiled(np.array([1.5, -2.0, 3.0], np.float32))[0], [1.5, -2.0, 3.0])
    raw = np.array([1.5, -2.0, 3.0], ml_dtypes.bfloat16).view(np.uint16)
    np.testing.assert_array_equal(compiled(raw)[0], [1.5, -2.0, 3.0])


def test_unconvertible_input_is_named():
    x = ops.parameter([2], ov.Type.f8e4m3, name="x")
    compiled = ov.compile_model(ov.Model([ops.convert(x, ov.Type.f32)], [x]), "CPU")
    with pytest.raises(ov.InputError, match="input 'x': expected f8e4m3"):
        compiled(np.array(["a", "b"]))


def test_bitcast_reinterprets_bits_and_checks_widths():
    x = ops.parameter([3], ov.Type.f32, name="x")
    y = ops._make("BitCast", [x], {"destination_type": "i32"})
    values = np.array([1.0, -2.5, 0.0], np.float32)
    got = ov.compile_model(ov.Model([y], [x]), "CPU")(values)[0]
    np.testing.assert_array_equal(got, values.view(np.int32))
    with pytest.raises(ov.InputError, match="BitCast needs types of one width.*f32 \\(32 bits\\) to i16"):
        ops._make("BitCast", [x], {"destination_type": "i16"})


@pytest.mark.anyio
async def test_async_results_are_ml_dtypes_arrays(anyio_backend):
    from aiov import aio

    x = ops.parameter([4], ov.Type.f32, name="x")
    compiled = await aio.compile_model(ov.Model([ops.convert(x, ov.Type.bf16), ops.convert(x, ov.Type.i4)], [x]), "CPU")
    values = np.array([1.0, -3.0, 7.0, 2.5], np.float32)
    results = await compiled(values)
    assert results[0].dtype == ml_dtypes.bfloat16 and results[1].dtype == ml_dtypes.int4
    np.testing.assert_array_equal(results[0].astype(np.float32), values)
    np.testing.assert_array_equal(results[1].astype(np.int8), [1, -3, 7, 2])
