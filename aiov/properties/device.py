"""``openvino.properties.device``: device identity and per-device settings."""

from __future__ import annotations

from .._any import OVAny, unwrap
from ._base import Property, as_str, make_enum, ro

Type = make_enum("Type", [("INTEGRATED", 0), ("DISCRETE", 1)])


class Capability:
    FP32 = "FP32"
    BF16 = "BF16"
    FP16 = "FP16"
    INT8 = "INT8"
    INT16 = "INT16"
    BIN = "BIN"
    WINOGRAD = "WINOGRAD"
    EXPORT_IMPORT = "EXPORT_IMPORT"


full_name = ro("FULL_DEVICE_NAME")
architecture = ro("DEVICE_ARCHITECTURE")
type = ro("DEVICE_TYPE")  # noqa: A001 (OpenVINO's name)
gops = ro("DEVICE_GOPS")
thermal = ro("DEVICE_THERMAL")
uuid = ro("DEVICE_UUID")
luid = ro("DEVICE_LUID")
capabilities = ro("OPTIMIZATION_CAPABILITIES")
id = Property("DEVICE_ID", as_str)  # noqa: A001


class _Priorities(Property):
    """``priorities("CPU", "GPU")`` or ``priorities("CPU,GPU")``: a comma-terminated device list."""

    def __call__(self, *args):
        if not args:
            return str(self)
        for value in args:
            if not isinstance(value, str):
                raise TypeError(f"Incorrect passed value: {value} , expected string values.")
        return (str(self), OVAny("".join(f"{v}," for v in args)))


class _DeviceProperties(Property):
    """``properties({"CPU": {streams.num: 2}})``: settings per device, keys as names."""

    def __call__(self, *args):
        if not args:
            return str(self)
        if len(args) != 1 or not isinstance(args[0], dict):
            raise TypeError(f"{self}(): incompatible function arguments; expected a dict of device -> config")
        per_device = {}
        for device, config in args[0].items():
            if not isinstance(config, dict):
                raise TypeError(f"{self}(): the config of {device!r} must be a dict, got {config!r}")
            per_device[str(device)] = {str(k): unwrap(v) for k, v in config.items()}
        return (str(self), OVAny(per_device))


priorities = _Priorities("MULTI_DEVICE_PRIORITIES")
properties = _DeviceProperties("DEVICE_PROPERTIES")
