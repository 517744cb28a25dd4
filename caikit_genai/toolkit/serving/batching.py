"""Dynamic batching: requests that arrive together run as one forward pass.

caikit 0.28.3's own batcher fails every request through its servers (see NOTES), so modules
batch here. Each served model owns one `DynamicBatcher`. A request thread checks its input,
turns it into an item (e.g. token ids) and calls `submit(item)`, which waits for the answer;
one worker thread per model takes what has queued up within `max_delay_ms` of the first
arrival (at most `max_batch_size` items and `token_budget` summed costs; a request that finds
the model idle, with nothing else waiting and the last batch a single request, runs at once,
so a lone client never pays the delay), sorts it by cost so
that a module pads only to the longest in each batch, and hands the list to the module's
batch function. Since only the worker runs the model, torch's intra-op threads serve one
forward pass at a time instead of one OpenMP team per request thread fighting over the cores.

- The queue is bounded (`max_queue`): past it, a request is refused at once with
  RESOURCE_EXHAUSTED (HTTP 503), never left to wait without end.
- A batch that fails is retried one item at a time, so one bad item fails only its own request.
- A request that is cancelled (caikit raises an exception in the waiting thread when a gRPC
  client cancels) leaves the queue; if its batch already runs, its answer is dropped.
- `enabled: false` runs each request alone in its own thread, as before.

Settings come from `genai.batching` in runtime_config.yaml: `default`, overridden per model id
under `models`.
"""

import os
import threading
import time
from collections import deque
from dataclasses import dataclass, fields, replace
from typing import Any, Callable, Deque, Generic, List, Optional, Sequence, TypeVar

import alog
import grpc

from . import serving_metrics

log = alog.use_channel("BATCHER")

Item = TypeVar("Item")
Answer = TypeVar("Answer")
# How often a waiting request thread wakes up, so that caikit's abort can reach it.
WAIT_SLICE_SECONDS = 0.05
# A worker with nothing to do for this long ends (the next request starts another), so an
# unloaded model's batcher holds no thread.
IDLE_SECONDS = 30.0


@dataclass(frozen=True)
class BatchingConfig:
    enabled: bool = True
    max_batch_size: int = 32
    max_delay_ms: float = 5.0
    max_queue: int = 256
    token_budget: int = 16384

    @classmethod
    def for_model(cls, model_id: str) -> "BatchingConfig":
        """The runtime config's `genai.batching.default`, then `genai.batching.models.<id>`."""
        settings = _configured_batching()
        config = cls()
        for overrides in (settings.get("default") or {}, (settings.get("models") or {}).get(model_id) or {}):
            known = {field.name for field in fields(cls)}
            unknown = set(overrides) - known
            if unknown:
                raise ValueError(f"genai.batching for {model_id!r}: unknown keys {sorted(unknown)}; known: {sorted(known)}")
            config = replace(config, **dict(overrides))
        if config.max_batch_size < 1 or config.max_queue < 1 or config.max_delay_ms < 0 or config.token_budget < 1:
            raise ValueError(f"genai.batching for {model_id!r}: sizes must be >= 1 and the delay >= 0, got {config}")
        return config


def _configured_batching() -> dict:
    try:
        import caikit  # pylint: disable=import-outside-toplevel

        genai = caikit.get_config().get("genai") or {}
        return dict(genai.get("batching") or {})
    except Exception:  # pylint: disable=broad-except
        return {}


def model_id_of(model_dir: str) -> str:
    """The id the runtime serves a model dir under (its folder name): the batcher's config key
    and metrics label."""
    return os.path.basename(os.path.normpath(model_dir))


class QueueFull(Exception):
    """The model's queue is at its bound: the caller should back off and retry."""


def queue_full_error(model_id: str, bound: int) -> Exception:
    """RESOURCE_EXHAUSTED over gRPC, 503 over HTTP (see runtime_mends/serving_metrics.py)."""
    from caikit.runtime.types.caikit_runtime_exception import (  # pylint: disable=import-outside-toplevel
        CaikitRuntimeException,
    )

    return CaikitRuntimeException(
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        f"model {model_id!r} has {bound} requests waiting, its queue bound "
        "(genai.batching max_queue): retry shortly",
    )


class _Request(Generic[Item]):
    __slots__ = ("item", "cost", "arrived", "done", "answer", "error", "cancelled")

    def __init__(self, item, cost: int):
        self.item, self.cost, self.arrived = item, cost, time.monotonic()
        self.done = threading.Event()
        self.answer, self.error, self.cancelled = None, None, False


class DynamicBatcher(Generic[Item, Answer]):
    """Runs `run_batch(items) -> answers` (same order) over requests that arrive together."""

    def __init__(
        self,
        run_batch: Callable[[List[Item]], Sequence[Answer]],
        model_id: str,
        config: Optional[BatchingConfig] = None,
        cost: Callable[[Item], int] = lambda item: 1,
    ):
        self.run_batch, self.model_id, self.cost = run_batch, model_id, cost
        self.config = config or BatchingConfig.for_model(model_id)
        self._pending: Deque[_Request] = deque()
        self._changed = threading.Condition()
        self._worker: Optional[threading.Thread] = None
        # Whether the last forward pass served more than one request: then it is worth waiting
        # up to max_delay_ms for company; otherwise a lone request runs at once.
        self._last_batch_shared = False

    def submit(self, item: Item) -> Answer:
        """The answer for one item, computed in a batch with whatever else is waiting."""
        if not self.config.enabled:
            return self._observed([item])[0]
        request = _Request(item, self.cost(item))
        with self._changed:
            if len(self._pending) >= self.config.max_queue:
                serving_metrics.REFUSED.labels(model=self.model_id).inc()
                raise queue_full_error(self.model_id, self.config.max_queue)
            self._pending.append(request)
            serving_metrics.QUEUE_DEPTH.labels(model=self.model_id).set(len(self._pending))
            self._start_worker()
            self._changed.notify()
        try:
            while not request.done.wait(WAIT_SLICE_SECONDS):
                pass
        except BaseException:
            request.cancelled = True  # aborted while waiting: the worker passes it over
            raise
        if request.error is not None:
            raise request.error
        return request.answer

    def _start_worker(self) -> None:
        if self._worker is None or not self._worker.is_alive():
            self._worker = threading.Thread(target=self._serve, name=f"batcher-{self.model_id}", daemon=True)
            self._worker.start()

    def _serve(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            if not batch:
                continue
            try:
                answers = self._observed([request.item for request in batch])
                errors = [None] * len(batch)
            except Exception as error:  # pylint: disable=broad-except
                answers, errors = self._one_by_one(batch, error)
            for request, answer, error in zip(batch, answers, errors):
                request.answer, request.error = answer, error
                request.done.set()

    def _next_batch(self) -> Optional[List[_Request]]:
        """Wait for a first request, then (under load) up to max_delay_ms for more; take what
        fits. None when idle for IDLE_SECONDS: the worker ends."""
        config = self.config
        with self._changed:
            while not self._pending:
                if not self._changed.wait(IDLE_SECONDS) and not self._pending:
                    self._worker = None
                    return None
            delay = config.max_delay_ms if (self._last_batch_shared or len(self._pending) > 1) else 0.0
            deadline = self._pending[0].arrived + delay / 1000.0
            while len(self._pending) < config.max_batch_size:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._changed.wait(remaining)
            batch, budget = [], config.token_budget
            while self._pending and len(batch) < config.max_batch_size:
                request = self._pending[0]
                if request.cancelled:
                    self._pending.popleft()
                    continue
                if batch and request.cost > budget:
                    break
                batch.append(self._pending.popleft())
                budget -= request.cost
            serving_metrics.QUEUE_DEPTH.labels(model=self.model_id).set(len(self._pending))
            self._last_batch_shared = len(batch) > 1
        batch.sort(key=lambda request: request.cost)
        return batch

    def _observed(self, items: List[Item]) -> Sequence[Answer]:
        serving_metrics.BATCH_SIZE.labels(model=self.model_id).observe(len(items))
        answers = self.run_batch(items)
        if len(answers) != len(items):
            raise RuntimeError(f"batch function gave {len(answers)} answers for {len(items)} items")
        return answers

    def _one_by_one(self, batch: List[_Request], batch_error: Exception):
        """A failed batch, retried item by item: each request gets its own answer or error."""
        if len(batch) == 1:
            return [None], [batch_error]
        answers, errors = [], []
        for request in batch:
            try:
                answers.append(self._observed([request.item])[0])
                errors.append(None)
            except Exception as error:  # pylint: disable=broad-except
                answers.append(None)
                errors.append(error)
        log.warning("a batch of %d for %s failed; retried one by one", len(batch), self.model_id)
        return answers, errors
