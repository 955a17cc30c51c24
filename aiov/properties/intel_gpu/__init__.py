"""``openvino.properties.intel_gpu``: option names of OpenVINO's GPU plugin (aiov has no GPU)."""

from __future__ import annotations

from .._base import Property, as_bool, ro


class MemoryType:
    surface = "GPU_SURFACE"
    buffer = "GPU_BUFFER"


class CapabilityGPU:
    HW_MATMUL = "GPU_HW_MATMUL"


device_total_mem_size = ro("GPU_DEVICE_TOTAL_MEM_SIZE")
uarch_version = ro("GPU_UARCH_VERSION")
execution_units_count = ro("GPU_EXECUTION_UNITS_COUNT")
memory_statistics = ro("GPU_MEMORY_STATISTICS")
enable_loop_unrolling = Property("GPU_ENABLE_LOOP_UNROLLING", as_bool)
disable_winograd_convolution = Property("GPU_DISABLE_WINOGRAD_CONVOLUTION", as_bool)

from . import hint  # noqa: E402,F401
