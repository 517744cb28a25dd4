"""3. Abandoned SSE streams: caikit's `async_wrap_iter` feeds a stream through a one-slot queue from
a worker of the request pool; when the client goes, that worker blocks on the full queue
forever, and a hundred such streams starve the pool that gRPC and HTTP share. Here the
worker gives its thread back (closing the model's generator) as soon as the consumer is
gone. caikit also calls a stream's `predict_model` on the event loop itself: a model that
works before its first message (TGIS: a network call) stalled every HTTP request, client
disconnects included, so abandoned TGIS streams ran on to their end. A stream now starts in
the pool worker that reads it.
"""

import asyncio
import concurrent.futures
import functools
import threading
import weakref

from ._common import http_server_module, log


# How often a stream's worker looks up from a full queue to see if its consumer has gone.
STREAM_PUT_CHECK_SECONDS = 0.25


def abandonable_async_wrap_iter(iterable, pool=None):
    """caikit's `async_wrap_iter` (a blocking iterator read by a pool worker, handed to the event
    loop through a one-slot queue), whose worker stops, closes the iterator and returns to the
    pool once the async consumer is closed or garbage-collected."""
    loop = asyncio.get_event_loop()
    queue = asyncio.Queue(1)
    consumer_gone = threading.Event()
    waiting_put = []  # the put the worker waits on: cancelled when the consumer goes
    end = object()
    failure = []

    async def consume():
        try:
            while True:
                item = await queue.get()
                if item is end:
                    break
                yield item
            if failure:
                raise failure[0]
        finally:
            consumer_gone.set()
            for put in waiting_put:
                put.cancel()

    consumer = consume()
    consumer_ref = weakref.ref(consumer)

    def hand_over(item) -> bool:
        """Put `item` in the queue; False (and nothing put) once the consumer has gone."""
        if consumer_gone.is_set():
            return False
        put = asyncio.run_coroutine_threadsafe(queue.put(item), loop)
        waiting_put[:] = [put]
        while True:
            try:
                put.result(timeout=STREAM_PUT_CHECK_SECONDS)
                return True
            except concurrent.futures.CancelledError:
                return False
            except concurrent.futures.TimeoutError:
                if consumer_gone.is_set() or consumer_ref() is None or loop.is_closed():
                    put.cancel()
                    return False

    def produce():
        handed_over = True
        try:
            for item in iterable:
                handed_over = hand_over(item)
                if not handed_over:
                    log.debug("stream consumer gone: closing the stream's iterator")
                    break
        except Exception as err:  # pylint: disable=broad-exception-caught
            failure.append(err)
        finally:
            close = getattr(iterable, "close", None)
            if not handed_over and close is not None:
                close()
            if handed_over:
                hand_over(end)

    loop.run_in_executor(pool, produce)
    return consumer


def abandonable_http_streams() -> None:
    """caikit's HTTP server reads every stream through its module's `async_wrap_iter`."""
    http_server_module().async_wrap_iter = abandonable_async_wrap_iter
    _streams_start_off_the_event_loop()


def _streams_start_off_the_event_loop() -> None:
    """caikit's HTTP stream handler calls `predict_model` on the event loop; called there, it
    returns a stream that makes the real call on its first read, in the pool worker that reads
    it (an error it raises still comes out of the stream, as caikit's handler expects)."""
    from caikit.runtime.servicers.global_predict_servicer import (  # pylint: disable=import-outside-toplevel
        GlobalPredictServicer,
    )

    predict_model = GlobalPredictServicer.predict_model
    if getattr(predict_model, _STARTS_OFF_LOOP, False):
        return

    @functools.wraps(predict_model)
    def predict_model_off_the_loop(self, *args, **kwargs):
        if kwargs.get("output_streaming") and _on_event_loop():
            return _started_when_read(lambda: predict_model(self, *args, **kwargs))
        return predict_model(self, *args, **kwargs)

    setattr(predict_model_off_the_loop, _STARTS_OFF_LOOP, True)
    GlobalPredictServicer.predict_model = predict_model_off_the_loop


_STARTS_OFF_LOOP = "_caikit_genai_streams_start_off_loop"


def _on_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
        return True
    except RuntimeError:
        return False


def _started_when_read(start):
    yield from start()
