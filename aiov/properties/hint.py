"""``openvino.properties.hint``: performance and precision hints."""

from __future__ import annotations

from ._base import Property, as_bool, as_float32, as_type, as_uint, enum_of, make_enum, set_of

Priority = make_enum("Priority", [("LOW", 0), ("MEDIUM", 1), ("HIGH", 2), ("DEFAULT", 1)])
PerformanceMode = make_enum("PerformanceMode", [("LATENCY", 1), ("THROUGHPUT", 2), ("CUMULATIVE_THROUGHPUT", 3)])
SchedulingCoreType = make_enum("SchedulingCoreType", [("ANY_CORE", 0), ("PCORE_ONLY", 1), ("ECORE_ONLY", 2)])
ModelDistributionPolicy = make_enum("ModelDistributionPolicy", [("TENSOR_PARALLEL", 0), ("PIPELINE_PARALLEL", 1)])
ExecutionMode = make_enum("ExecutionMode", [("PERFORMANCE", 1), ("ACCURACY", 2)])

inference_precision = Property("INFERENCE_PRECISION_HINT", as_type)
model_priority = Property("MODEL_PRIORITY", enum_of(Priority))
performance_mode = Property("PERFORMANCE_HINT", enum_of(PerformanceMode))
enable_cpu_pinning = Property("ENABLE_CPU_PINNING", as_bool)
scheduling_core_type = Property("SCHEDULING_CORE_TYPE", enum_of(SchedulingCoreType))
model_distribution_policy = Property("MODEL_DISTRIBUTION_POLICY", set_of(ModelDistributionPolicy))
enable_hyper_threading = Property("ENABLE_HYPER_THREADING", as_bool)
execution_mode = Property("EXECUTION_MODE_HINT", enum_of(ExecutionMode))
num_requests = Property("PERFORMANCE_HINT_NUM_REQUESTS", as_uint)
model = Property("MODEL_PTR")
allow_auto_batching = Property("ALLOW_AUTO_BATCHING", as_bool)
dynamic_quantization_group_size = Property("DYNAMIC_QUANTIZATION_GROUP_SIZE", as_uint)
kv_cache_precision = Property("KV_CACHE_PRECISION", as_type)
activations_scale_factor = Property("ACTIVATIONS_SCALE_FACTOR", as_float32)
compiled_blob = Property("COMPILED_BLOB")
