"""Version information (OpenVINO's ``get_version()`` and ``Core.get_versions()``)."""

from __future__ import annotations


class Version:
    """A component's version: ``major``, ``minor``, ``build_number``, ``description``."""

    __slots__ = ("major", "minor", "patch", "build_number", "description")

    def __init__(self, version: str, description: str):
        parts = (version.split(".") + ["0", "0", "0"])[:3]
        self.major, self.minor, self.patch = (int(p) for p in parts)
        self.build_number = version
        self.description = description

    def __str__(self):
        return self.build_number

    def __repr__(self):
        return f"<Version: {self.description} {self.build_number}>"


def get_version() -> str:
    """aiov's version string."""
    from . import __version__

    return __version__
