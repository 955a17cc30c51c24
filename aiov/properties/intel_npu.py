"""``openvino.properties.intel_npu``: option names of OpenVINO's NPU plugin (aiov has no NPU)."""

from __future__ import annotations

from ._base import Property, as_bool, as_str, as_uint, ro

device_alloc_mem_size = ro("NPU_DEVICE_ALLOC_MEM_SIZE")
device_total_mem_size = ro("NPU_DEVICE_TOTAL_MEM_SIZE")
driver_version = ro("NPU_DRIVER_VERSION")
compiler_version = ro("NPU_COMPILER_VERSION")
compilation_mode_params = Property("NPU_COMPILATION_MODE_PARAMS", as_str)
turbo = Property("NPU_TURBO", as_bool)
tiles = Property("NPU_TILES", as_uint)
max_tiles = Property("NPU_MAX_TILES", as_uint)
bypass_umd_caching = Property("NPU_BYPASS_UMD_CACHING", as_bool)
defer_weights_load = Property("NPU_DEFER_WEIGHTS_LOAD", as_bool)
compiler_dynamic_quantization = Property("NPU_COMPILER_DYNAMIC_QUANTIZATION", as_bool)
