"""``openvino.properties.intel_gpu.hint``."""

from __future__ import annotations

from .._base import Property, as_uint, enum_of
from ..hint import Priority

ThrottleLevel = Priority  # OpenVINO's GPU throttle levels are its priorities
queue_throttle = Property("GPU_QUEUE_THROTTLE", enum_of(Priority))
queue_priority = Property("GPU_QUEUE_PRIORITY", enum_of(Priority))
host_task_priority = Property("GPU_HOST_TASK_PRIORITY", enum_of(Priority))
available_device_mem = Property("AVAILABLE_DEVICE_MEM_SIZE", as_uint)
