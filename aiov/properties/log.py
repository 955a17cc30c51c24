"""``openvino.properties.log``: the log level."""

from __future__ import annotations

from ._base import Property, enum_of, make_enum

Level = make_enum("Level", [("NO", -1), ("ERR", 0), ("WARNING", 1), ("INFO", 2), ("DEBUG", 3), ("TRACE", 4)])
level = Property("LOG_LEVEL", enum_of(Level))
