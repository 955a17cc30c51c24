"""aiov.helpers.pack_data / unpack_data for u1, u4, i4 and nf4."""

import numpy as np
import pytest

import aiov as ov
from aiov.helpers import pack_data, unpack_data

RNG = np.random.default_rng(42)
CASES = {
    "u1": (ov.Type.u1, lambda n: RNG.integers(0, 2, n).astype(np.uint8)),
    "u4": (ov.Type.u4, lambda n: RNG.integers(0, 16, n).astype(np.uint8)),
    "i4": (ov.Type.i4, lambda n: RNG.integers(-8, 8, n).astype(np.int8)),
    "nf4": (ov.Type.nf4, lambda n: RNG.integers(0, 16, n).astype(np.uint8)),
}


@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("shape", [(100,), (7,), (3, 5), (1,), (2, 2, 4)])
def test_pack_unpack_round_trip(name, shape):
    etype, make = CASES[name]
    data = make(int(np.prod(shape))).reshape(shape)
    packed = pack_data(data, etype)
    assert packed.dtype == np.uint8
    assert packed.size == (data.size * etype.bitwidth + 7) // 8
    unpacked = unpack_data(packed, etype, list(shape))
    assert unpacked.shape == shape
    assert unpacked.dtype == (np.int8 if name == "i4" else np.uint8)
    np.testing.assert_array_equal(unpacked, data)


@pytest.mark.parametrize("name", CASES)
def test_round_trip_through_tensor(name):
    etype, make = CASES[name]
    data = make(33)
    t = ov.Tensor(pack_data(data, etype), [33], etype)
    np.testing.assert_array_equal(unpack_data(t.data, t.element_type, t.shape), data)


def test_known_bit_layouts():
    # u1: first element in the highest bit; u4/i4: first element in the low nibble
    # (the layout of OpenVINO's runtime memory).
    np.testing.assert_array_equal(
        pack_data(np.array([1, 0, 0, 0, 0, 0, 0, 1, 1], np.uint8), ov.Type.u1), [0b10000001, 0b10000000]
    )
    np.testing.assert_array_equal(pack_data(np.array([1, 2, 3], np.uint8), ov.Type.u4), [0x21, 0x03])
    np.testing.assert_array_equal(pack_data(np.array([-1, 2], np.int8), ov.Type.i4), [0x2F])
    np.testing.assert_array_equal(pack_data(np.array([15, 0, 7], np.uint8), ov.Type.nf4), [0x0F, 0x07])


@pytest.mark.parametrize(
    "etype,values",
    [(ov.Type.u4, [16]), (ov.Type.u4, [-1]), (ov.Type.i4, [8]), (ov.Type.u1, [2]), (ov.Type.nf4, [16])],
)
def test_pack_rejects_out_of_range_values(etype, values):
    with pytest.raises(ov.InputError, match="values must lie"):
        pack_data(np.array(values), etype)


def test_pack_rejects_other_types():
    with pytest.raises(ov.InputError, match="u1, u2, i2, u4, i4 and nf4"):
        pack_data(np.zeros(4, np.uint8), ov.Type.u8)


def test_u1_matches_openvino_helpers_byte_for_byte():
    openvino = pytest.importorskip("openvino")
    from openvino.helpers import pack_data as ov_pack
    from openvino.helpers import unpack_data as ov_unpack

    data = CASES["u1"][1](37)
    np.testing.assert_array_equal(pack_data(data, ov.Type.u1), ov_pack(data, openvino.Type.u1))
    np.testing.assert_array_equal(unpack_data(ov_pack(data, openvino.Type.u1), ov.Type.u1, [37]), data)
    np.testing.assert_array_equal(ov_unpack(pack_data(data, ov.Type.u1), openvino.Type.u1, [37]), data)


def _swap_nibbles(packed):
    return ((packed << 4) | (packed >> 4)).astype(np.uint8)


@pytest.mark.parametrize("name", ["u4", "i4"])
def test_u4_i4_match_openvino_helpers_up_to_nibble_order(name):
    # openvino.helpers.pack_data puts the first element in the HIGH nibble, while OpenVINO's
    # runtime reads the first element from the LOW nibble (see the runtime test below). aiov
    # follows the runtime layout, so the helpers agree up to the nibble order of each byte.
    openvino = pytest.importorskip("openvino")
    from openvino.helpers import pack_data as ov_pack
    from openvino.helpers import unpack_data as ov_unpack

    etype, make = CASES[name]
    ov_etype = getattr(openvino.Type, name)
    data = make(40)
    ours = pack_data(data, etype)
    theirs = ov_pack(data, ov_etype)
    np.testing.assert_array_equal(ours, _swap_nibbles(theirs))
    np.testing.assert_array_equal(ov_unpack(_swap_nibbles(ours), ov_etype, [40]), data)


def test_u4_packing_matches_openvino_runtime_layout():
    openvino = pytest.importorskip("openvino")
    import openvino.opset13 as ovops

    data = CASES["u4"][1](30)
    p = ovops.parameter([30], openvino.Type.u4)
    compiled = openvino.compile_model(openvino.Model(ovops.convert(p, "f32"), [p]), "CPU")
    tensor = openvino.Tensor(pack_data(data, ov.Type.u4), [30], openvino.Type.u4)
    np.testing.assert_array_equal(compiled({0: tensor})[0], data.astype(np.float32))
