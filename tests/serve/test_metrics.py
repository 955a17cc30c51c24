"""What /metrics makes of the properties a compiled model reports: aiov's batcher stats
(AIOV_BATCH_STATS) as counters and a batch-size histogram, scalar properties as gauges, and
nothing (never an error) for what a model does not report or reports malformed."""

import pytest
from prometheus_client import generate_latest

from aiov.serve._metrics import Metrics

STATS = {
    "enabled": True,
    "max_batch": 8,
    "reason": None,
    "batches": 10,
    "inferences": 40,
    "sizes": {1: 2, 4: 5, 8: 3},
    "retried": 1,
    "cancelled": 2,
}


class _Compiled:
    def __init__(self, properties):
        self.properties = properties

    def get_property(self, key):
        if key not in self.properties:
            raise RuntimeError(f"unsupported property {key}")
        return self.properties[key]


class _Served:
    def __init__(self, name, properties):
        self.name = name
        self.compiled = _Compiled(properties)


def _scrape(*served):
    metrics = Metrics()
    for s in served:
        metrics.add_model(s)
    return generate_latest(metrics.registry).decode()


def test_batch_stats_become_counters_and_a_histogram():
    text = _scrape(_Served("m", {"AIOV_BATCH_STATS": STATS, "OPTIMAL_BATCH_SIZE": 8}))
    for line in [
        'aiov_batch_enabled{model="m"} 1.0',
        'aiov_batch_inferences_total{model="m"} 10.0',
        'aiov_batch_jobs_total{model="m"} 40.0',
        'aiov_batch_retried_jobs_total{model="m"} 1.0',
        'aiov_batch_cancelled_jobs_total{model="m"} 2.0',
        'aiov_batch_size_bucket{le="1.0",model="m"} 2.0',
        'aiov_batch_size_bucket{le="2.0",model="m"} 2.0',
        'aiov_batch_size_bucket{le="4.0",model="m"} 7.0',
        'aiov_batch_size_bucket{le="8.0",model="m"} 10.0',
        'aiov_batch_size_bucket{le="+Inf",model="m"} 10.0',
        'aiov_batch_size_count{model="m"} 10.0',
        'aiov_batch_size_sum{model="m"} 46.0',
        'aiov_model_optimal_batch_size{model="m"} 8.0',
    ]:
        assert line in text, line


@pytest.mark.parametrize(
    "properties",
    [
        {},  # an aiov without automatic batching: the property does not exist
        {"AIOV_BATCH_STATS": "not a dict"},
        {"AIOV_BATCH_STATS": {"enabled": False, "sizes": {"x": "y"}, "batches": "many"}},
        {"OPTIMAL_BATCH_SIZE": "eight"},
    ],
)
def test_unreported_or_malformed_properties_are_left_out(properties):
    text = _scrape(_Served("m", properties), _Served("ok", {"AIOV_BATCH_STATS": STATS}))
    assert 'aiov_batch_size_bucket{le="+Inf",model="m"}' not in text
    assert 'aiov_batch_inferences_total{model="m"}' not in text
    assert 'aiov_model_optimal_batch_size{model="m"}' not in text
    assert 'aiov_batch_size_count{model="ok"} 10.0' in text  # the other model is still exported
