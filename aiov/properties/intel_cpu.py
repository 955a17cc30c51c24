"""``openvino.properties.intel_cpu``: options of OpenVINO's CPU plugin."""

from __future__ import annotations

from ._base import Property, as_bool, as_float32

denormals_optimization = Property("CPU_DENORMALS_OPTIMIZATION", as_bool)
sparse_weights_decompression_rate = Property("CPU_SPARSE_WEIGHTS_DECOMPRESSION_RATE", as_float32)
