"""Clients that abandon streams, on every streaming route of every module, over both wires.

A client reads the first messages of a long stream and goes: a gRPC client cancels its call, an
HTTP client closes its connection mid-SSE. Each must stop the model's work (its generator is
closed, the TGIS call it made is cancelled) and give back the request thread it held. caikit
0.28.3 left HTTP stream workers blocked forever, and started each HTTP stream on the event loop,
so a stream that waits for its first message (TGIS) stalled every HTTP client: runtime_mends/abandoned_streams.py,
mend 3.

One row of ROUTES per streaming route: a new streaming model is covered by adding its row. Each
row is abandoned STREAMS_PER_WIRE times over gRPC and as many times over HTTP (504 streams over
the three routes), then:
- the model's work stopped far short of what the streams asked for;
- the threads of this process (which hosts the runtime) are back where they were: every thread
  but the idle workers of a thread pool is back to its count before, and no pool worker is left
  busy (thread pools start workers on demand and keep them, up to their size: those may be more);
- the route answers a whole request, its stream joining to its unary text.
Run with `-s` for the figures README reports.
"""

import contextlib
import json
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Dict, NamedTuple, Optional

import grpc
import pytest
import requests

from conftest import TINY_CHAR_ID, TINY_TRANSLATOR_ID
from test_char_runtime import STREAM_ROUTE, post_json, served_model, sse_events, wait_until_still

STREAMS_PER_WIRE = 84  # x 2 wires x 3 routes: 504 abandoned streams
CLIENTS = 8  # streams open at once
MESSAGES_READ = 2  # what a client reads before it goes
SETTLE_TIMEOUT = 30.0


@dataclass
class Serving:
    """What the routes run on: the session runtime, and the TGIS stand-in (None without the extra)."""

    runtime: object
    tgis: Optional[object] = None


@dataclass(frozen=True)
class StreamingRoute:
    """A model serving a text generation stream, and how to see its work."""

    name: str
    model_id: str
    text: str
    # A stream far longer than what a client reads before it goes.
    parameters: Dict[str, object]
    # Units of work the model has done so far (characters, tokens, TGIS streams cancelled).
    work_done: Callable[[Serving], int]
    # Units one stream asks for; and at most what one abandoned stream may cost (0: the work
    # counts streams cancelled, and every stream must be).
    work_asked: int
    work_per_stream: int
    # Set up for the route (e.g. slow the TGIS stand-in so a stream outlasts its client).
    prepared: Callable[[Serving], contextlib.AbstractContextManager] = lambda _: contextlib.nullcontext()
    needs_tgis: bool = False


@contextlib.contextmanager
def slow_tgis_tokens(serving: Serving, seconds: float = 0.1):
    from fake_tgis import TINY_TGIS_BASE_MODEL

    serving.tgis.token_delays[TINY_TGIS_BASE_MODEL] = seconds
    try:
        yield
    finally:
        serving.tgis.token_delays.pop(TINY_TGIS_BASE_MODEL, None)


# The tiny translator takes 32 source tokens: a longer text is split into sentences, each decoded
# on its own (here 64 tokens each, its limit, with EOS held off).
TRANSLATOR_SENTENCES = 16
TRANSLATOR_TEXT = " ".join(["the cat sees the fish ."] * TRANSLATOR_SENTENCES)

ROUTES = [
    StreamingRoute(
        "char", TINY_CHAR_ID, "the ", {"max_new_tokens": 100_000, "seed": 1},
        lambda _: served_model(TINY_CHAR_ID).chars_generated, work_asked=100_000, work_per_stream=5_000,
    ),
    StreamingRoute(
        "translator", TINY_TRANSLATOR_ID, TRANSLATOR_TEXT, {"max_new_tokens": 64, "min_new_tokens": 64},
        lambda _: served_model(TINY_TRANSLATOR_ID).tokens_generated,
        work_asked=64 * TRANSLATOR_SENTENCES, work_per_stream=64 * 4,
    ),
    StreamingRoute(
        "tgis", "tiny-tgis", "the cat sat on the mat", {"max_new_tokens": 30, "seed": 1},
        lambda serving: serving.tgis.stream_endings.count("cancelled"), work_asked=30, work_per_stream=0,
        prepared=slow_tgis_tokens, needs_tgis=True,
    ),
]
WIRE_NAMES = ("grpc-cancel", "http-disconnect")


# -- one client that goes away ----------------------------------------------------------------


def abandon_over_grpc(runtime, route: StreamingRoute) -> str:
    """Read the first messages of a long stream, then cancel; '' when all went as expected."""
    request = runtime.message("ServerStreamingTextGenerationTaskRequest", text=route.text, **route.parameters)
    call = runtime.inference.ServerStreamingTextGenerationTaskPredict(
        request, metadata=[("mm-model-id", route.model_id)], timeout=30
    )
    try:
        for _ in range(MESSAGES_READ):
            next(call)
        return ""
    except (grpc.RpcError, StopIteration) as err:
        return f"gRPC: {err!r}"
    finally:
        call.cancel()


def abandon_over_http(runtime, route: StreamingRoute) -> str:
    """Read the first SSE events of a long stream, then hang up; '' when all went as expected."""
    body = {"model_id": route.model_id, "inputs": route.text, "parameters": route.parameters}
    try:
        # A read timeout under sse-starlette's 15 s ping: a starved stream fails instead of idling.
        with post_json(runtime.http_url + STREAM_ROUTE, body, stream=True, timeout=(5, 10)) as response:
            if response.status_code != 200:
                return f"HTTP {response.status_code}: {response.text[:200]}"
            events = sse_events(response)
            kinds = [next(events)[0] for _ in range(MESSAGES_READ)]
            return "" if kinds == ["message"] * MESSAGES_READ else f"HTTP events {kinds}"
    except (requests.RequestException, StopIteration) as err:
        return f"HTTP: {err!r}"


WIRES = dict(zip(WIRE_NAMES, (abandon_over_grpc, abandon_over_http)))


def abandon(runtime, route: StreamingRoute, count: int) -> Dict[str, list]:
    """`count` streams per wire, CLIENTS at a time, the wires interleaved: the problems per wire."""
    jobs = [wire for _ in range(count) for wire in WIRES]
    with ThreadPoolExecutor(max_workers=CLIENTS) as clients:
        outcomes = list(clients.map(lambda wire: (wire, WIRES[wire](runtime, route)), jobs))
    return {wire: [problem for name, problem in outcomes if name == wire and problem] for wire in WIRES}


# -- the threads of this process --------------------------------------------------------------


class Threads(NamedTuple):
    total: int
    idle_pool_workers: int

    @property
    def others(self) -> int:
        """Every thread but an idle pool worker: busy workers, servers' own threads, any leak."""
        return self.total - self.idle_pool_workers


def _idle_pool_worker(frame) -> bool:
    """A ThreadPoolExecutor worker waiting for work: its innermost Python frame is the pool's
    `_worker` loop (the queue it waits on is C code)."""
    return (
        frame is not None
        and frame.f_code.co_name == "_worker"
        and frame.f_code.co_filename.endswith(os.path.join("concurrent", "futures", "thread.py"))
    )


def thread_census() -> Threads:
    frames = sys._current_frames()  # pylint: disable=protected-access
    threads = threading.enumerate()
    return Threads(len(threads), sum(_idle_pool_worker(frames.get(thread.ident)) for thread in threads))


def settled_census(others_at_most: int, timeout: float = SETTLE_TIMEOUT) -> Threads:
    """The census once its non-idle threads are down to `others_at_most` (or after `timeout`)."""
    deadline = time.monotonic() + timeout
    census = thread_census()
    while census.others > others_at_most and time.monotonic() < deadline:
        time.sleep(0.2)
        census = thread_census()
    return census


def whole_answers(runtime, route: StreamingRoute):
    """A short unary gRPC call and a whole HTTP stream with the same parameters: (unary text, joined stream)."""
    parameters = {**route.parameters, "max_new_tokens": 8, "min_new_tokens": 0}
    request = runtime.message("TextGenerationTaskRequest", text=route.text, **parameters)
    unary = runtime.inference.TextGenerationTaskPredict(request, metadata=[("mm-model-id", route.model_id)], timeout=30)
    body = {"model_id": route.model_id, "inputs": route.text, "parameters": parameters}
    response = post_json(runtime.http_url + STREAM_ROUTE, body, stream=True, timeout=30)
    assert response.status_code == 200, response.text
    chunks = [json.loads(data)["generated_text"] for event, data in sse_events(response) if event == "message"]
    return unary.generated_text, "".join(chunks)


@pytest.fixture(name="serving")
def serving_fixture(runtime, tgis_stand_in):
    return Serving(runtime, tgis_stand_in.server if tgis_stand_in is not None else None)


@pytest.mark.parametrize("route", ROUTES, ids=[route.name for route in ROUTES])
@pytest.mark.slow
def test_abandoned_streams_stop_their_work_and_give_back_their_threads(serving, route):
    if route.needs_tgis and serving.tgis is None:
        pytest.skip("caikit-tgis-backend (the tgis extra) is not installed")
    runtime = serving.runtime
    with route.prepared(serving):
        # One round at the same concurrency first: the thread pools start the workers this
        # load needs (and keep them), and every lazy first-use thread is started.
        warm_up = abandon(runtime, route, CLIENTS)
        assert warm_up == {wire: [] for wire in WIRES}, warm_up
        work_from = wait_until_still(lambda: route.work_done(serving))
        wait_until_still(lambda: thread_census().others)
        before = thread_census()

        problems = abandon(runtime, route, STREAMS_PER_WIRE)
        assert problems == {wire: [] for wire in WIRES}, {wire: found[:3] for wire, found in problems.items()}

        work = wait_until_still(lambda: route.work_done(serving)) - work_from
        after = settled_census(others_at_most=before.others)
    streams = STREAMS_PER_WIRE * len(WIRES)
    print(
        f"\nabandoned streams [{route.name}]: {STREAMS_PER_WIRE} gRPC cancels + {STREAMS_PER_WIRE} HTTP "
        f"disconnects, 0 failed; work {work} of {streams} x {route.work_asked} asked; threads {before.total} "
        f"before ({before.idle_pool_workers} idle pool workers), {after.total} after ({after.idle_pool_workers})"
    )
    if route.work_per_stream:
        # The work stopped with the clients: each stream cost a sliver of what it asked for.
        assert work <= streams * route.work_per_stream, work
    else:
        # Each stream's TGIS call was cancelled (not run to its end) when its client went.
        assert work == streams, work
    # No thread is left behind, and no worker is still held by a stream nobody reads.
    assert after.others <= before.others, (before, after)
    # Pools start workers on demand (and keep them): under the same load, at most one per client.
    assert after.idle_pool_workers - before.idle_pool_workers <= CLIENTS, (before, after)
    if route.model_id == TINY_CHAR_ID:
        assert served_model(TINY_CHAR_ID).open_generations == 0
    unary_text, streamed_text = whole_answers(runtime, route)
    assert unary_text and streamed_text == unary_text
