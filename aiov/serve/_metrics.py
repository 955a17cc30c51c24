"""The server's Prometheus metrics, in a registry of its own (two apps in one process, as in
tests, do not collide). Labels are bounded: a model label only for models the server has,
a route label only for the server's route templates."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

# Properties of a compiled model exported as gauges when it reports them (an unbatched model
# reports no batch size; one compiled on BATCH:CPU(N) may).
_REPORTED_PROPERTIES = {
    "OPTIMAL_NUMBER_OF_INFER_REQUESTS": "aiov_model_optimal_requests",
    "OPTIMAL_BATCH_SIZE": "aiov_model_optimal_batch_size",
    "MAX_BATCH_SIZE": "aiov_model_max_batch_size",
    "AUTO_BATCH_TIMEOUT": "aiov_model_auto_batch_timeout_ms",
}
# aiov's automatic batching reports what its batcher did as a dict under this property.
BATCH_STATS = "AIOV_BATCH_STATS"
_BATCH_COUNTERS = {
    "batches": ("aiov_batch_inferences", "Inferences the batcher ran (a job run alone counts as one)"),
    "inferences": ("aiov_batch_jobs", "Jobs the batcher ran"),
    "retried": ("aiov_batch_retried_jobs", "Jobs run again alone after their batch failed"),
    "cancelled": ("aiov_batch_cancelled_jobs", "Jobs cancelled while waiting to join a batch"),
}


class Metrics:
    def __init__(self):
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.http_requests = Counter(
            "aiov_http_requests",
            "HTTP requests answered, by route template and status code",
            ["route", "code"],
            registry=r,
        )
        self.infer_requests = Counter("aiov_infer_requests", "Inference requests received", ["model"], registry=r)
        self.infer_failures = Counter(
            "aiov_infer_failures",
            "Inference requests that did not succeed, by reason"
            " (bad_request, too_large, cancelled, unavailable, error)",
            ["model", "reason"],
            registry=r,
        )
        self.request_latency = Histogram(
            "aiov_infer_request_duration_seconds",
            "Inference request time, body read to response built",
            ["model"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.compute_latency = Histogram(
            "aiov_infer_compute_duration_seconds",
            "Time awaiting the model (waiting for a request, batching and inference)",
            ["model"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.requests_active = Gauge(
            "aiov_infer_requests_active",
            "Inference requests being handled, body read to answer (what a graceful shutdown waits for)",
            registry=r,
        )
        self.in_flight = Gauge("aiov_infer_in_flight", "Inferences awaited now", ["model"], registry=r)
        self.queue_depth = Gauge(
            "aiov_infer_queue_depth",
            "Inferences waiting for one of the model's infer requests (in flight beyond max_requests)",
            ["model"],
            registry=r,
        )
        self.request_batch = Histogram(
            "aiov_infer_request_batch_size",
            "The first dim of each inference request's first input (its batch, for batched inputs)",
            ["model"],
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
            registry=r,
        )
        self._models = {}
        r.register(_ReportedProperties(self._models))

    def add_model(self, served) -> "ModelMetrics":
        """The model's labelled metrics (looked up once: a ``labels()`` call per update costs)."""
        self._models[served.name] = served
        return ModelMetrics(self, served.name)


class ModelMetrics:
    """One model's children of the server's metrics."""

    def __init__(self, metrics, name):
        self.requests = metrics.infer_requests.labels(name)
        self.failures = {
            reason: metrics.infer_failures.labels(name, reason)  # present at 0 from the start
            for reason in ("bad_request", "too_large", "cancelled", "unavailable", "error")
        }
        self.request_latency = metrics.request_latency.labels(name)
        self.compute_latency = metrics.compute_latency.labels(name)
        self.in_flight = metrics.in_flight.labels(name)
        self.queue_depth = metrics.queue_depth.labels(name)
        self.request_batch = metrics.request_batch.labels(name)


class _ReportedProperties:
    """Read at scrape time; a property the model does not report is left out."""

    def __init__(self, models):
        self._models = models

    def describe(self):
        return []

    def collect(self):
        families = {}

        def family(metric, kind, doc, labels=("model",)):
            if metric not in families:
                families[metric] = kind(metric, doc, labels=list(labels))
            return families[metric]

        for name, served in list(self._models.items()):
            for key, metric in _REPORTED_PROPERTIES.items():
                try:
                    value = float(served.compiled.get_property(key))
                except Exception:  # not reported by this model (or not a number)
                    continue
                family(metric, GaugeMetricFamily, f"The model's {key} property").add_metric([name], value)
            try:
                stats = served.compiled.get_property(BATCH_STATS)
            except Exception:  # an aiov without automatic batching
                continue
            if isinstance(stats, dict):
                _add_batch_stats(family, name, stats)
        return list(families.values())


def _add_batch_stats(family, name, stats):
    """The batcher's counters, and its batch sizes ({jobs in a batch: batches}) as a histogram."""
    enabled = family("aiov_batch_enabled", GaugeMetricFamily, "1 if the model's jobs are batched")
    enabled.add_metric([name], 1.0 if stats.get("enabled") else 0.0)
    for key, (metric, doc) in _BATCH_COUNTERS.items():
        value = stats.get(key)
        if isinstance(value, (int, float)):
            family(metric, CounterMetricFamily, doc).add_metric([name], float(value))
    sizes = stats.get("sizes")
    if not isinstance(sizes, dict):
        return
    try:
        sizes = sorted((int(size), int(count)) for size, count in sizes.items())
    except (TypeError, ValueError):
        return
    bounds = sorted({1 << i for i in range(max(1, int(stats.get("max_batch") or 1)).bit_length() + 1)})
    buckets, total = [], 0
    for bound in bounds:
        buckets.append((str(float(bound)), sum(count for size, count in sizes if size <= bound)))
    total = sum(count for _, count in sizes)
    buckets.append(("+Inf", total))
    histogram = family("aiov_batch_size", HistogramMetricFamily, "Jobs per inference the batcher ran")
    histogram.add_metric([name], buckets, sum_value=float(sum(size * count for size, count in sizes)))
