"""OpenVINO's typed properties API (``import openvino.properties as props``).

Every key works wherever aiov takes a config: ``compile_model(model, "CPU",
{props.hint.performance_mode: props.hint.PerformanceMode.LATENCY})``, ``core.set_property("CPU",
props.enable_profiling(True))``. Which of them aiov acts on is decided by ``aiov._properties``: one
it does not implement is refused with an error naming the ones it does."""

from __future__ import annotations

from ._base import Property, as_bool, as_float32, as_int, as_str, as_type, as_uint, enum_of, make_enum, ro  # noqa: F401

CacheMode = make_enum("CacheMode", [("OPTIMIZE_SIZE", 0), ("OPTIMIZE_SPEED", 1)])
WorkloadType = make_enum("WorkloadType", [("DEFAULT", 0), ("EFFICIENT", 1)])

# read-only
supported_properties = ro("SUPPORTED_PROPERTIES")
available_devices = ro("AVAILABLE_DEVICES")
model_name = ro("NETWORK_NAME")
optimal_number_of_infer_requests = ro("OPTIMAL_NUMBER_OF_INFER_REQUESTS")
range_for_streams = ro("RANGE_FOR_STREAMS")
optimal_batch_size = ro("OPTIMAL_BATCH_SIZE")
max_batch_size = ro("MAX_BATCH_SIZE")
range_for_async_infer_requests = ro("RANGE_FOR_ASYNC_INFER_REQUESTS")
execution_devices = ro("EXECUTION_DEVICES")
loaded_from_cache = ro("LOADED_FROM_CACHE")

# read-write
enable_profiling = Property("PERF_COUNT", as_bool)
cache_dir = Property("CACHE_DIR", as_str)
cache_mode = Property("CACHE_MODE", enum_of(CacheMode))
cache_encryption_callbacks = Property("CACHE_ENCRYPTION_CALLBACKS")
auto_batch_timeout = Property("AUTO_BATCH_TIMEOUT", as_uint)
inference_num_threads = Property("INFERENCE_NUM_THREADS", as_int)
compilation_num_threads = Property("COMPILATION_NUM_THREADS", as_int)
force_tbb_terminate = Property("FORCE_TBB_TERMINATE", as_bool)
enable_mmap = Property("ENABLE_MMAP", as_bool)
weights_path = Property("WEIGHTS_PATH", as_str)
key_cache_group_size = Property("KEY_CACHE_GROUP_SIZE", as_uint)
value_cache_group_size = Property("VALUE_CACHE_GROUP_SIZE", as_uint)
key_cache_precision = Property("KEY_CACHE_PRECISION", as_type)
value_cache_precision = Property("VALUE_CACHE_PRECISION", as_type)
workload_type = Property("WORKLOAD_TYPE", enum_of(WorkloadType))
num_streams = Property("NUM_STREAMS")  # also streams.num

from . import device, hint, intel_auto, intel_cpu, intel_gpu, intel_npu, log, streams  # noqa: E402,F401
