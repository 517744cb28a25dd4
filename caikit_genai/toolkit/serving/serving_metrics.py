"""Prometheus metrics of our own, on the runtime's metrics port (8086, `/metrics`).

caikit exports each request's time as a summary (count and sum), from which no percentile can be
read. These are histograms, so p50/p99 per model and task come out of `histogram_quantile`, plus
what the batcher does: batch sizes, queue depth, requests refused at the queue bound.
"""

import functools
import time

from prometheus_client import Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

REQUEST_SECONDS = Histogram(
    "caikit_genai_request_seconds",
    "Time to answer a predict request (for a stream, until its last message), by model and task",
    ["model", "task"],
    buckets=LATENCY_BUCKETS,
)
BATCH_SIZE = Histogram(
    "caikit_genai_batch_size", "Items in each forward pass the batcher ran", ["model"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)
QUEUE_DEPTH = Gauge("caikit_genai_queue_depth", "Requests waiting in a model's batcher", ["model"])
REFUSED = Counter(
    "caikit_genai_refused_total", "Requests refused because the model's queue was at its bound", ["model"]
)


def time_predictions(servicer_class) -> None:
    """Wrap caikit's GlobalPredictServicer.predict_model (both servers call it) to record
    REQUEST_SECONDS for every answered request."""
    predict_model = servicer_class.predict_model

    @functools.wraps(predict_model)
    def timed_predict_model(self, request_name, model_id, *args, **kwargs):
        started = time.monotonic()
        answer = predict_model(self, request_name, model_id, *args, **kwargs)
        task = request_name.removesuffix("Request")
        if kwargs.get("output_streaming") and hasattr(answer, "__next__"):
            return _timed_stream(answer, model_id, task, started)
        REQUEST_SECONDS.labels(model=model_id, task=task).observe(time.monotonic() - started)
        return answer

    servicer_class.predict_model = timed_predict_model


def _timed_stream(stream, model_id: str, task: str, started: float):
    yield from stream
    REQUEST_SECONDS.labels(model=model_id, task=task).observe(time.monotonic() - started)
