"""The server's Prometheus metrics, in a registry of its own (two apps in one process, as in
tests, do not collide). Labels are bounded: a model label only for models the server has,
a route label only for the server's route templates."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

# Properties of a compiled model exported as gauges when it reports them (an unbatched model
# reports no batch size; one compiled on BATCH:CPU(N) may).
_REPORTED_PROPERTIES = {
    "OPTIMAL_NUMBER_OF_INFER_REQUESTS": "aiov_model_optimal_requests",
    "OPTIMAL_BATCH_SIZE": "aiov_model_optimal_batch_size",
    "MAX_BATCH_SIZE": "aiov_model_max_batch_size",
    "AUTO_BATCH_TIMEOUT": "aiov_model_auto_batch_timeout_ms",
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
            "Inference requests that did not succeed, by reason (bad_request, too_large, cancelled, error)",
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
            for reason in ("bad_request", "too_large", "cancelled", "error")
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
        for name, served in list(self._models.items()):
            for key, metric in _REPORTED_PROPERTIES.items():
                try:
                    value = float(served.compiled.get_property(key))
                except Exception:  # not reported by this model (or not a number)
                    continue
                family = families.get(metric)
                if family is None:
                    family = families[metric] = GaugeMetricFamily(
                        metric, f"The model's {key} property", labels=["model"]
                    )
                family.add_metric([name], value)
        return list(families.values())
