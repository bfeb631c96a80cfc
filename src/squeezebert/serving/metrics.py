"""The server's Prometheus metrics, on a registry of its own, named as text-embeddings-inference names them.

prometheus-client writes a counter ``te_request_count`` as ``te_request_count_total`` (the Prometheus convention);
durations are histograms in seconds.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

# 0.5 ms ... 60 s: a tiny model on one core up to a full queue
DURATION_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
TOKEN_BUCKETS = (16, 64, 256, 1024, 2048, 4096, 8192, 16384, 32768, 65536)


class ServeMetrics:
    """The metrics of one app; :meth:`render` is the body of ``GET /metrics``."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.request_count = Counter("te_request_count", "requests received", ["route"], registry=r)
        self.request_success = Counter("te_request_success", "requests answered", ["route"], registry=r)
        self.request_failure = Counter("te_request_failure", "requests failed, by reason", ["route", "err"], registry=r)
        self.request_duration = Histogram(
            "te_request_duration", "time from request to answer (s)", buckets=DURATION_BUCKETS, registry=r
        )
        self.tokenization_duration = Histogram(
            "te_request_tokenization_duration",
            "tokenization time per request (s)",
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.queue_duration = Histogram(
            "te_request_queue_duration", "time in the queue per request (s)", buckets=DURATION_BUCKETS, registry=r
        )
        self.inference_duration = Histogram(
            "te_request_inference_duration", "forward-pass time per request (s)", buckets=DURATION_BUCKETS, registry=r
        )
        self.queue_size = Gauge("te_queue_size", "rows waiting for a forward pass", registry=r)
        self.in_flight = Gauge("te_requests_in_flight", "requests accepted and not yet answered", registry=r)
        self.batch_size = Histogram("te_batch_next_size", "rows per forward pass", buckets=SIZE_BUCKETS, registry=r)
        self.batch_tokens = Histogram(
            "te_batch_next_tokens", "padded tokens per forward pass", buckets=TOKEN_BUCKETS, registry=r
        )
        self.batch_duration = Histogram(
            "te_batch_inference_duration", "time of one forward pass (s)", buckets=DURATION_BUCKETS, registry=r
        )
        self.batch_failure = Counter("te_batch_inference_failure", "forward passes that failed", registry=r)
        self.dropped = Counter("te_request_dropped", "requests dropped: their client went away", registry=r)

    def render(self) -> bytes:
        return generate_latest(self.registry)
