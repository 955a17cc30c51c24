"""The typed properties API (aiov.properties): keys, value types, enums, and their use in configs."""

import numpy as np
import pytest

import aiov as ov
import aiov.properties as props
import aiov.properties.hint as hints
import aiov.properties.streams as streams

from model_builders import add_model


def test_key_is_its_name_and_builds_a_typed_pair():
    assert props.enable_profiling == "PERF_COUNT"
    assert props.enable_profiling() == "PERF_COUNT"
    name, value = props.enable_profiling(1)
    assert name == "PERF_COUNT" and value.value is True and isinstance(value, ov.OVAny)
    assert props.auto_batch_timeout(np.uint32(37))[1].value == 37
    assert props.intel_cpu.sparse_weights_decompression_rate(0.1)[1].value == np.float32(0.1)


@pytest.mark.parametrize(
    ("key", "bad"),
    [
        (props.cache_dir, 6),
        (props.enable_profiling, "yes"),
        (hints.performance_mode, 3),
        (props.inference_num_threads, 1.5),
    ],
)
def test_a_value_of_the_wrong_type_is_refused(key, bad):
    with pytest.raises(TypeError, match="incompatible function arguments"):
        key(bad)


def test_read_only_keys_take_no_value():
    with pytest.raises(TypeError, match="read-only"):
        props.supported_properties("x")


def test_enums_print_and_convert_like_openvino():
    assert str(hints.PerformanceMode.LATENCY) == "PerformanceMode.LATENCY"
    assert int(hints.PerformanceMode.THROUGHPUT) == 2
    assert hints.Priority.DEFAULT is hints.Priority.MEDIUM
    assert list(getattr(hints.Priority, "__entries")) == ["LOW", "MEDIUM", "HIGH", "DEFAULT"]
    assert props.intel_gpu.hint.ThrottleLevel.LOW is hints.Priority.LOW
    assert hints.PerformanceMode.LATENCY == "LATENCY"  # how string configs spell it


def test_streams_num_and_device_helpers():
    assert streams.Num.AUTO.to_integer() == -1 and streams.Num().to_integer() == -1
    assert streams.num(streams.Num.NUMA)[1].value == -2
    assert props.device.priorities("CPU", "GPU") == ("MULTI_DEVICE_PRIORITIES", ov.OVAny("CPU,GPU,"))
    with pytest.raises(TypeError, match="expected string values"):
        props.device.priorities("CPU", 6)
    assert props.device.properties({"CPU": dict([streams.num(2)])}) == (
        "DEVICE_PROPERTIES",
        ov.OVAny({"CPU": {"NUM_STREAMS": 2}}),
    )


@pytest.mark.parametrize(
    "config",
    [
        {hints.performance_mode: hints.PerformanceMode.THROUGHPUT},
        dict([hints.performance_mode(hints.PerformanceMode.THROUGHPUT)]),
        {"PERFORMANCE_HINT": "THROUGHPUT"},
    ],
)
def test_typed_keys_work_wherever_a_config_does(config):
    compiled = ov.compile_model(add_model(), "CPU", config)
    assert compiled.get_property(hints.performance_mode) == hints.PerformanceMode.THROUGHPUT
    assert compiled.get_property("PERFORMANCE_HINT") == "THROUGHPUT"


def test_core_set_property_takes_one_pair_and_reads_typed_values():
    core = ov.Core()
    core.set_property("CPU", streams.num(streams.Num.AUTO))
    assert core.get_property("CPU", streams.num()) == -1
    core.set_property("CPU", hints.execution_mode(hints.ExecutionMode.ACCURACY))
    assert core.get_property("CPU", hints.execution_mode) is hints.ExecutionMode.ACCURACY
    assert core.get_property("CPU", props.inference_num_threads) == 0
    assert isinstance(core.get_property("CPU", props.range_for_streams), tuple)
    # BF16 is listed where the CPU runs it natively (AMX or AVX512_BF16), FP16 where it has
    # AVX512-FP16 (the f16 hint is accepted only there), as OpenVINO lists them.
    native_bf16 = ["BF16"] if ov._core.gemm_bf16_isa() != "scalar" else []
    native_f16 = ["FP16"] if ov._core.gemm_f16_isa() != "scalar" else []
    assert core.get_property("CPU", props.device.capabilities) == ["FP32", *native_bf16, *native_f16, "EXPORT_IMPORT"]


def test_a_property_aiov_does_not_implement_is_refused_not_ignored():
    with pytest.raises(ov.InputError, match="unknown property 'MODEL_PRIORITY'"):
        ov.compile_model(add_model(), "CPU", dict([hints.model_priority(hints.Priority.LOW)]))
    with pytest.raises(ov.InputError, match="NUM_STREAMS"):
        ov.Core().set_property("CPU", {"NUM_STREAMS": "MANY"})


def test_ovany_compares_by_value_through_containers():
    assert ov.OVAny({"a": ov.OVAny(1)}) == {"a": 1}
    assert ov.OVAny("x") != ov.OVAny("y")
    assert ov.OVAny([1, 2]).aslist() == [1, 2]


@pytest.mark.parametrize(
    ("config", "what"),
    [
        ({"AFFINITY": "NUMA"}, "pins its workers with ENABLE_CPU_PINNING only"),
        ({hints.enable_hyper_threading: False}, "hyper-threads included"),
        ({hints.scheduling_core_type: hints.SchedulingCoreType.ECORE_ONLY}, "schedules its workers on any core"),
    ],
)
def test_settings_aiov_does_not_carry_out_are_refused(config, what):
    with pytest.raises(ov.InputError, match=what):
        ov.Core().set_property("CPU", config)


def test_settings_that_describe_what_aiov_does_are_accepted():
    core = ov.Core()
    core.set_property(
        "CPU",
        {
            props.cache_dir: "",
            props.log.level: props.log.Level.NO,
            props.enable_mmap: True,
            hints.enable_cpu_pinning: False,
            hints.enable_hyper_threading: True,
            hints.scheduling_core_type: hints.SchedulingCoreType.ANY_CORE,
        },
    )
    assert core.get_property("CPU", props.cache_dir) == ""


def test_cpu_pinning_pins_each_worker_to_one_cpu_and_back():
    from aiov import _core

    core = ov.Core()
    cpus = sorted({c for worker in _core.worker_cpus() for c in worker})
    try:
        core.set_property("CPU", {hints.enable_cpu_pinning: True})
        pinned = _core.worker_cpus()
        assert all(len(worker) == 1 and worker[0] in cpus for worker in pinned)
        if len(cpus) > 1:
            assert core.get_property("CPU", hints.enable_cpu_pinning) is True
            assert len({w[0] for w in pinned}) == min(len(pinned), len(cpus))  # spread over the CPUs
        x = np.arange(8, dtype=np.float32)
        np.testing.assert_array_equal(ov.compile_model(add_model())([x, x])[0], 2 * x)
    finally:
        core.set_property("CPU", {hints.enable_cpu_pinning: False})
    assert all(sorted(worker) == cpus for worker in _core.worker_cpus())
    assert core.get_property("CPU", hints.enable_cpu_pinning) is False


def test_num_requests_caps_the_optimal_number_of_requests():
    compiled = ov.compile_model(add_model(), "CPU", {hints.performance_mode: hints.PerformanceMode.THROUGHPUT})
    free = compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")
    capped = ov.compile_model(
        add_model(), "CPU", {hints.performance_mode: hints.PerformanceMode.THROUGHPUT, hints.num_requests: 1}
    )
    assert free >= 2 and capped.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS") == 1
    with pytest.raises(ov.InputError, match="PERFORMANCE_HINT_NUM_REQUESTS"):
        ov.Core().set_property({hints.num_requests: "many"})


def test_supported_properties_name_each_as_read_write_or_read_only():
    supported = ov.Core().get_property("CPU", props.supported_properties)
    assert supported["CACHE_DIR"] == "RW" and supported["FULL_DEVICE_NAME"] == "RO"
    assert supported["ENABLE_CPU_PINNING"] == "RW"


def test_weights_read_into_memory_when_mmap_is_off(tmp_path):
    x = np.arange(8, dtype=np.float32)
    param = ov.opset13.parameter([8], np.float32, name="x")
    ov.save_model(ov.Model(ov.opset13.add(param, x + 1), [param]), tmp_path / "m.xml")
    model = ov.Core().read_model(tmp_path / "m.xml", config={props.enable_mmap: False})
    (tmp_path / "m.bin").write_bytes(bytes((tmp_path / "m.bin").stat().st_size))  # zeroed in place
    np.testing.assert_array_equal(ov.compile_model(model)(x)[0], 2 * x + 1)
