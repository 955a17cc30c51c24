"""Configuration keys understood by Core and CompiledModel (OpenVINO's names)."""

from __future__ import annotations

import logging
import os
import platform

from . import _core
from ._errors import InputError

PERFORMANCE_HINT = "PERFORMANCE_HINT"
INFERENCE_NUM_THREADS = "INFERENCE_NUM_THREADS"
OPTIMAL_NUMBER_OF_INFER_REQUESTS = "OPTIMAL_NUMBER_OF_INFER_REQUESTS"
PERF_COUNT = "PERF_COUNT"
INFERENCE_PRECISION_HINT = "INFERENCE_PRECISION_HINT"
NUM_STREAMS = "NUM_STREAMS"
# aiov's own: bytes of folded constants the plan cache of a compiled model may keep (plans
# are built per input shape and per value of shape-like inputs); 0 keeps only the newest.
PLAN_CACHE_BYTES = "AIOV_PLAN_CACHE_BYTES"
# Automatic batching (see aiov/_batching.py): OpenVINO's names, and aiov's padding option.
AUTO_BATCH_TIMEOUT = "AUTO_BATCH_TIMEOUT"
ALLOW_AUTO_BATCHING = "ALLOW_AUTO_BATCHING"
BATCH_PAD = "AIOV_BATCH_PAD"

EXECUTION_MODE_HINT = "EXECUTION_MODE_HINT"
LOG_LEVEL = "LOG_LEVEL"
# Process-wide, as aiov's workers are: set by Core.set_property or any compile_model config.
ENABLE_CPU_PINNING = "ENABLE_CPU_PINNING"
SCHEDULING_CORE_TYPE = "SCHEDULING_CORE_TYPE"
# Caps OPTIMAL_NUMBER_OF_INFER_REQUESTS: the requests the application will keep in flight.
NUM_REQUESTS = "PERFORMANCE_HINT_NUM_REQUESTS"
# False reads IR weights into memory instead of mapping the .bin file.
ENABLE_MMAP = "ENABLE_MMAP"
# OpenVINO's log levels (properties.log.Level names, and their LOG_* spellings) -> Python's logging
# levels of the "aiov" logger; NO silences it, TRACE is logging's DEBUG - 5.
_LOG_LEVELS = {
    "NO": logging.CRITICAL + 10,
    "ERR": logging.ERROR,
    "WARNING": logging.WARNING,
    "INFO": logging.INFO,
    "DEBUG": logging.DEBUG,
    "TRACE": logging.DEBUG - 5,
}
_LOG_SPELLINGS = {"LOG_NONE": "NO", "NONE": "NO", "LOG_ERROR": "ERR", "ERROR": "ERR", "LOG_WARNING": "WARNING"}
_LOG_SPELLINGS.update({f"LOG_{name}": name for name in ("INFO", "DEBUG", "TRACE")})
_HINTS = ("LATENCY", "THROUGHPUT", "CUMULATIVE_THROUGHPUT")
# As OpenVINO: PERFORMANCE lets matrix products default to bf16 where the CPU has bf16
# instructions (see inference_precision), ACCURACY keeps everything in the model's precision.
_EXECUTION_MODES = ("PERFORMANCE", "ACCURACY")
# Overrides the default precision (not an explicit hint): the test suites pin f32 with it.
PRECISION_ENV = "AIOV_INFERENCE_PRECISION"
_PRECISIONS = {"f32": "f32", "float32": "f32", "bf16": "bf16", "bfloat16": "bf16", "f16": "f16", "float16": "f16"}
_WRITABLE = (
    PERFORMANCE_HINT,
    INFERENCE_NUM_THREADS,
    PERF_COUNT,
    INFERENCE_PRECISION_HINT,
    NUM_STREAMS,
    EXECUTION_MODE_HINT,
    PLAN_CACHE_BYTES,
    AUTO_BATCH_TIMEOUT,
    ALLOW_AUTO_BATCHING,
    BATCH_PAD,
    LOG_LEVEL,
    "CACHE_DIR",
    "CACHE_ENCRYPTION_CALLBACKS",
    ENABLE_CPU_PINNING,
    SCHEDULING_CORE_TYPE,
    "ENABLE_HYPER_THREADING",
    NUM_REQUESTS,
    ENABLE_MMAP,
)
_TRUE = (True, "YES", "yes", "true", "True", 1)
_FALSE = (False, "NO", "no", "false", "False", 0)


def _key(key) -> str:
    # Accept OpenVINO's property objects/enums too: their str() carries the name.
    name = getattr(key, "name", None)
    if callable(key):
        try:
            key = key()
        except TypeError:
            pass
    return str(name if isinstance(name, str) and not isinstance(key, str) else key)


_ONLY_WHAT_AIOV_DOES = {
    # key: (the accepted values, spelled as users spell them; what aiov does)
    "AFFINITY": (("NONE",), "aiov pins its workers with ENABLE_CPU_PINNING only"),
    "ENABLE_HYPER_THREADING": (
        (True, "YES", "TRUE"),
        "aiov runs a worker on each CPU the process may use, hyper-threads included",
    ),
}


def _only_what_aiov_does(key, value):
    allowed, what = _ONLY_WHAT_AIOV_DOES[key]
    spelled = value
    if not isinstance(value, (bool, str)):
        spelled = getattr(value, "name", value)
    if isinstance(spelled, str) and spelled.upper() in [a for a in allowed if isinstance(a, str)]:
        return allowed[0]
    if isinstance(spelled, bool) and spelled in [a for a in allowed if isinstance(a, bool)]:
        return spelled
    raise InputError(f"{key}={value!r} is not supported: {what} (accepted: {allowed[0]!r})")


def _pairs(config) -> list:
    """(key, value) pairs of a config: a dict, one ``props.x(value)`` pair, or a list of pairs."""
    if config is None:
        return []
    if isinstance(config, dict):
        return list(config.items())
    if isinstance(config, tuple) and len(config) == 2 and isinstance(config[0], str):
        return [config]
    if isinstance(config, (list, tuple)) and all(isinstance(p, tuple) and len(p) == 2 for p in config):
        return list(config)
    raise InputError(f"a config is a dict of property -> value or (property, value) pairs, got {config!r}")


def normalize(config) -> dict:
    """Validated copy of a user config."""
    from ._any import unwrap

    out = {}
    for key, value in _pairs(config):
        key = _key(key)
        value = unwrap(value)
        if key == PERFORMANCE_HINT:
            value = str(getattr(value, "name", value)).split(".")[-1].upper()
            if value not in _HINTS:
                raise InputError(f"{PERFORMANCE_HINT}: expected one of {', '.join(_HINTS)}, got {value!r}")
        elif key == EXECUTION_MODE_HINT:
            value = str(getattr(value, "name", value)).split(".")[-1].upper()
            if value not in _EXECUTION_MODES:
                raise InputError(f"{EXECUTION_MODE_HINT}: expected one of {', '.join(_EXECUTION_MODES)}, got {value!r}")
        elif key == INFERENCE_NUM_THREADS:
            value = _non_negative(key, value, "a thread count (0: every core)", 2**31 - 1)
        elif key == PERF_COUNT:
            value = value in (True, "YES", "yes", "true", "True", 1)
        elif key == INFERENCE_PRECISION_HINT:
            value = _precision(value, INFERENCE_PRECISION_HINT)
        elif key == NUM_STREAMS:
            named = {"AUTO": -1, "NUMA": -2}
            if isinstance(value, str) and value.upper() in named:
                value = named[value.upper()]
            try:
                value = int(value)
            except (TypeError, ValueError, OverflowError):
                raise InputError(f"{NUM_STREAMS}: expected a count, AUTO or NUMA, got {value!r}") from None
            if value < -2:
                raise InputError(f"{NUM_STREAMS}: expected a count >= 0, AUTO (-1) or NUMA (-2), got {value}")
        elif key == LOG_LEVEL:
            name = str(getattr(value, "name", value)).split(".")[-1].upper()
            name = _LOG_SPELLINGS.get(name, name)
            if name not in _LOG_LEVELS:
                raise InputError(f"{LOG_LEVEL}: expected one of {', '.join(_LOG_LEVELS)}, got {value!r}")
            value = name
        elif key in (ENABLE_CPU_PINNING, ENABLE_MMAP):
            value = _bool(key, value)
        elif key == SCHEDULING_CORE_TYPE:
            value = _core_type(value)
        elif key == NUM_REQUESTS:
            value = _non_negative(key, value, "a count (0: no limit)")
        elif key in _ONLY_WHAT_AIOV_DOES:
            # Accepted only with the value that describes what aiov does anyway; any other value
            # asks for something aiov does not do, so it is refused rather than ignored.
            value = _only_what_aiov_does(key, value)
        elif key == "CACHE_DIR":
            # Models compiled from a file are cached there (aiov/_blob.py); "" turns it off.
            if not isinstance(value, (str, bytes, os.PathLike)):
                raise InputError(f"CACHE_DIR is a directory path, got {value!r}")
            value = os.fsdecode(value) if value else ""
        elif key == "CACHE_ENCRYPTION_CALLBACKS":
            if not isinstance(value, (list, tuple)) or len(value) != 2 or not all(callable(f) for f in value):
                raise InputError(f"CACHE_ENCRYPTION_CALLBACKS is a pair of callables (encrypt, decrypt), got {value!r}")
            value = tuple(value)
        elif key == PLAN_CACHE_BYTES:
            value = _non_negative(key, value, "a byte budget")
        elif key == AUTO_BATCH_TIMEOUT:
            value = _non_negative(key, value, "milliseconds")
        elif key == ALLOW_AUTO_BATCHING:
            value = value in (True, "YES", "yes", "true", "True", 1)
        elif key == BATCH_PAD:
            if not isinstance(value, dict):
                raise InputError(f"{BATCH_PAD}: expected {{input: {{axis: padding value}}}}, got {value!r}")
        else:
            raise InputError(f"unknown property {key!r}; aiov supports {', '.join(_WRITABLE)}")
        out[key] = value
    return out


def apply_log_level(config: dict) -> None:
    """A LOG_LEVEL in `config` sets the level of Python's "aiov" logger (left alone otherwise, so an
    application's own logging setup decides); an ENABLE_CPU_PINNING pins or unpins the workers."""
    if LOG_LEVEL in config:
        logging.getLogger("aiov").setLevel(_LOG_LEVELS[config[LOG_LEVEL]])
    if ENABLE_CPU_PINNING in config:
        try:
            _core.pin_workers(config[ENABLE_CPU_PINNING])
        except RuntimeError as exc:
            raise InputError(f"{ENABLE_CPU_PINNING}={config[ENABLE_CPU_PINNING]}: {exc}") from None


def workers_pinned() -> bool:
    """Each worker runs on one CPU only (ENABLE_CPU_PINNING took effect)."""
    return all(len(cpus) == 1 for cpus in _core.worker_cpus()) and _core.hardware_threads() > 1


def _non_negative(key: str, value, what: str, limit: int = 2**63 - 1) -> int:
    """``value`` as an int in [0, limit] (the engine's integer type bounds what it can take)."""
    try:
        value = int(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: int(inf)
        raise InputError(f"{key}: expected {what}, got {value!r}") from None
    if value < 0:
        raise InputError(f"{key}: expected {what} >= 0, got {value}")
    if value > limit:
        raise InputError(f"{key}: expected {what} of at most {limit}, got {value}")
    return value


def _bool(key: str, value) -> bool:
    if value in _TRUE or (isinstance(value, str) and value.upper() in ("YES", "TRUE")):
        return True
    if value in _FALSE or (isinstance(value, str) and value.upper() in ("NO", "FALSE")):
        return False
    raise InputError(f"{key}: expected True or False, got {value!r}")


def _hybrid_cpu() -> bool:
    """The CPU has efficient cores beside its performance cores (Linux names them cpu_atom)."""
    return os.path.isdir("/sys/devices/cpu_atom")


def _core_type(value) -> str:
    name = str(getattr(value, "name", value)).split(".")[-1].upper()
    if name == "ANY_CORE" or (name == "PCORE_ONLY" and not _hybrid_cpu()):
        return name  # a CPU without efficient cores has performance cores only, as OpenVINO counts
    if name in ("PCORE_ONLY", "ECORE_ONLY"):
        raise InputError(
            f"{SCHEDULING_CORE_TYPE}={name} is not supported: aiov schedules its workers on any core "
            "(accepted: ANY_CORE, and PCORE_ONLY on a CPU without efficient cores)"
        )
    raise InputError(f"{SCHEDULING_CORE_TYPE}: expected ANY_CORE, PCORE_ONLY or ECORE_ONLY, got {value!r}")


def f16_available() -> bool:
    """Whether f16 products run on f16 instructions here (AVX512-FP16, unless AIOV_F16_ISA or
    AIOV_GEMM_ISA caps them lower). As OpenVINO, f16 is offered only where the CPU has them."""
    return _core.gemm_f16_isa() != "scalar"


def _precision(value, what: str) -> str:
    """'f32', 'bf16' or 'f16' for a precision spelled as a Type, a numpy-style name or OpenVINO's."""
    name = str(getattr(value, "get_type_name", lambda: value)()).lower()
    precision = _PRECISIONS.get(name)
    if precision == "f16" and not f16_available():
        has = (
            "this CPU has AVX512-FP16, but AIOV_F16_ISA or AIOV_GEMM_ISA keeps aiov from using it"
            if _core.cpu_has_avx512_fp16()
            else "this CPU has neither AVX512-FP16 nor AMX-FP16"
        )
        raise InputError(f"{what}: f16 needs AVX512-FP16 or AMX-FP16 kernels ({has}); use bf16 or f32")
    if precision is None:
        raise InputError(f"{what}: expected f32, bf16 or f16, got {value!r}")
    return precision


def inference_precision(config: dict) -> str:
    """What matrix products compute in: the hint when given; else AIOV_INFERENCE_PRECISION when
    set; else, as OpenVINO, bf16 where the CPU has bf16 instructions (AMX or AVX512_BF16) and
    EXECUTION_MODE_HINT is PERFORMANCE, f32 otherwise."""
    if INFERENCE_PRECISION_HINT in config:
        return config[INFERENCE_PRECISION_HINT]
    env = os.environ.get(PRECISION_ENV)
    if env:
        return _precision(env, PRECISION_ENV)
    if config.get(EXECUTION_MODE_HINT, "PERFORMANCE") == "ACCURACY":
        return "f32"
    return "bf16" if _core.gemm_bf16_isa() != "scalar" else "f32"


def defaults() -> dict:
    # INFERENCE_PRECISION_HINT is absent until set: its default depends on the CPU and on
    # EXECUTION_MODE_HINT (inference_precision).
    return {
        PERFORMANCE_HINT: "LATENCY",
        INFERENCE_NUM_THREADS: 0,
        PERF_COUNT: False,
        NUM_STREAMS: -1,
        EXECUTION_MODE_HINT: "PERFORMANCE",
        "CACHE_DIR": "",
        PLAN_CACHE_BYTES: _core.default_plan_cache_bytes(),
        AUTO_BATCH_TIMEOUT: 1000,  # OpenVINO's default; aiov waits only while another batch runs
        ALLOW_AUTO_BATCHING: True,
        SCHEDULING_CORE_TYPE: "ANY_CORE",
        "ENABLE_HYPER_THREADING": True,
        NUM_REQUESTS: 0,
        ENABLE_MMAP: True,
    }


def optimal_requests(config: dict) -> int:
    """Requests that keep every worker busy: one per worker for latency, two for throughput
    (a second job queued behind each running one hides the Python-side overhead)."""
    workers = _core.pool_size()
    batch = config.get("OPTIMAL_BATCH_SIZE")
    if batch:  # batching: a full batch per worker running and another one filling behind it
        optimal = 2 * batch * workers
    else:
        optimal = workers * 2 if config.get(PERFORMANCE_HINT) != "LATENCY" else workers
    return min(optimal, config[NUM_REQUESTS]) if config.get(NUM_REQUESTS) else optimal


def default_queue_jobs(compiled) -> int:
    """AsyncInferQueue(jobs=0): enough jobs in flight that the Python work of submitting and
    completing one hides behind the others (measured on the tiny Add model, 2 workers: 4 jobs
    ~56k inferences/s, 8 ~75k, 16 ~94k). Requests allocate memory on first use and idle jobs
    are reused most-recent-first, so unused capacity costs little."""
    return max(compiled.get_property(OPTIMAL_NUMBER_OF_INFER_REQUESTS), 8 * _core.pool_size())


def _cpu_brand() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "CPU"


_READ_ONLY = (
    OPTIMAL_NUMBER_OF_INFER_REQUESTS,
    "AVAILABLE_DEVICES",
    "FULL_DEVICE_NAME",
    "EXECUTION_DEVICES",
    "OPTIMIZATION_CAPABILITIES",
    "RANGE_FOR_STREAMS",
    "RANGE_FOR_ASYNC_INFER_REQUESTS",
)


def read(config: dict, key):
    key = _key(key)
    if key == OPTIMAL_NUMBER_OF_INFER_REQUESTS:
        return optimal_requests(config)
    if key == "SUPPORTED_PROPERTIES":
        # As OpenVINO: each property's name -> "RW" or "RO"
        supported = {name: "RW" for name in _WRITABLE}
        for name in _READ_ONLY:
            supported[name] = "RO"
        return supported
    if key == "OPTIMIZATION_CAPABILITIES":
        # As OpenVINO: BF16 where the CPU runs it natively (the hint works everywhere), FP16
        # where it has f16 instructions (the only place the hint is accepted).
        bf16 = ["BF16"] if _core.gemm_bf16_isa() != "scalar" else []
        f16 = ["FP16"] if f16_available() else []
        return ["FP32", *bf16, *f16, "EXPORT_IMPORT"]
    if key == "RANGE_FOR_STREAMS":
        return (1, _core.pool_size())
    if key == "RANGE_FOR_ASYNC_INFER_REQUESTS":
        return (1, optimal_requests(config), 1)
    if key == EXECUTION_MODE_HINT and key in config:
        from .properties.hint import ExecutionMode

        return ExecutionMode[config[key]]
    if key == "AVAILABLE_DEVICES":
        return ["CPU"]
    if key == "EXECUTION_DEVICES":
        return ["CPU"]
    if key == "FULL_DEVICE_NAME":  # the processor's name first, as OpenVINO's CPU plugin gives it
        return f"{_cpu_brand()} (aiov: {_core.pool_size()} workers, gemm {_core.gemm_isa()})"
    if key == ENABLE_CPU_PINNING:
        return workers_pinned()
    if key == LOG_LEVEL:
        from .properties.log import Level

        if key in config:
            return Level[config[key]]
        level = logging.getLogger("aiov").getEffectiveLevel()
        return next((Level[n] for n, v in _LOG_LEVELS.items() if v <= level), Level.TRACE)
    if key == SCHEDULING_CORE_TYPE and key in config:
        from .properties.hint import SchedulingCoreType

        return SchedulingCoreType[config[key]]
    if key == PERFORMANCE_HINT and key in config:
        from .properties.hint import PerformanceMode

        return PerformanceMode[config[key]]  # equal to its name too: "LATENCY"
    if key == INFERENCE_PRECISION_HINT:
        from ._types import Type

        return Type(inference_precision(config))
    if key in config:
        return config[key]
    raise InputError(f"unknown property {key!r}")
