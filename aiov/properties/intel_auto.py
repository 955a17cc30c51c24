"""``openvino.properties.intel_auto``: options of OpenVINO's AUTO device."""

from __future__ import annotations

from ._base import Property, as_bool, enum_of, make_enum

SchedulePolicy = make_enum("SchedulePolicy", [("ROUND_ROBIN", 0), ("DEVICE_PRIORITY", 1), ("DEFAULT", 1)])
device_bind_buffer = Property("DEVICE_BIND_BUFFER", as_bool)
enable_startup_fallback = Property("ENABLE_STARTUP_FALLBACK", as_bool)
enable_runtime_fallback = Property("ENABLE_RUNTIME_FALLBACK", as_bool)
schedule_policy = Property("SCHEDULE_POLICY", enum_of(SchedulePolicy))
