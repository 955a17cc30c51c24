"""``aiov.info()``: what this process's engine runs with (workers, instruction sets, kernels,
completion port, the AIOV_* settings in force), for bug reports and for checking a deployment."""

from __future__ import annotations

import os
import platform
import sys

from . import _core
from ._environment import known_variables


def _cpu_flags() -> list[str]:
    interesting = (
        "avx2",
        "fma",
        "f16c",
        "avx512f",
        "avx512_bf16",
        "avx512_vnni",
        "avx512_fp16",
        "amx_tile",
        "amx_bf16",
        "amx_int8",
    )
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return [flag for flag in interesting if flag in flags]
    except OSError:
        pass
    return []


def info() -> dict:
    """A dict describing the engine in this process. Creating it starts the worker pool."""
    from . import __version__

    port = _core.CompletionPort()
    return {
        "version": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "usable_cpus": _core.hardware_threads(),
        "workers": _core.pool_size(),
        "gemm_isa": _core.gemm_isa(),
        "cpu_flags": _cpu_flags(),
        "completion_port": port.kind,
        "environment": {name: os.environ[name] for name in known_variables() if os.environ.get(name)},
        "executable": sys.executable,
    }
