"""Mends for caikit 0.28.3's runtime where no configuration key or extension point reaches.

`python -m caikit.runtime` (the command KServe's probes look for) imports this library before
it builds its servers, so `caikit_genai` applies these on import; each replaces one function or
method by a wrapper that keeps caikit's behaviour for good requests. Where caikit offers a
hook (trainers, data stream plugins) we use the hook instead (see subprocess_training.py).

1. Model ids from requests choose no paths. caikit joins a request's `model_id` onto
   `local_models_dir` unchecked: a predict call lazily loads `../elsewhere` or `/any/dir` as a
   model, `DELETE /management/models?model_id=../x` removes any directory the runtime can write,
   and ModelMesh's `loadModel` loads any path. Ids must be one safe path segment, and model
   paths must lie inside `local_models_dir`.
2. HTTP bodies: a POST with no Content-Type answers 500 ("argument of type 'NoneType' is not
   iterable"), and `application/json; charset=utf-8` answers 415. Every route that reads a
   request body parses it here: an empty body is a 400 that says which fields to send.
3. Abandoned SSE streams: caikit's `async_wrap_iter` feeds a stream through a one-slot queue from
   a worker of the request pool; when the client goes, that worker blocks on the full queue
   forever, and a hundred such streams starve the pool that gRPC and HTTP share. Here the
   worker gives its thread back (closing the model's generator) as soon as the consumer is
   gone. caikit also calls a stream's `predict_model` on the event loop itself: a model that
   works before its first message (TGIS: a network call) stalled every HTTP request, client
   disconnects included, so abandoned TGIS streams ran on to their end. A stream now starts in
   the pool worker that reads it.
4. The models dir holds more than models: our atomic saves write `.<name>.partial-*` dirs there,
   and caikit's batch trainer drops a `.complete` file into its save path. caikit's lazy loader
   tries each entry as a model (and logs the failure every poll); entries that are no model
   name (hidden ones) are passed over.
5. `python -m caikit.runtime.train`, the batch entry point training Jobs run, exits 203 ("internal
   error", no reason given) when a train call is refused before it starts (a bad model name, a
   data file outside the training data dir) or a job ends ERRORED on bad data. Those are the
   user's errors: exit 1, with the reason in the termination log, as caikit does for its own
   argument errors. Anything else stays 203.
6. Serving metrics and backpressure: every answered predict request is timed into our latency
   histogram (serving_metrics.py), and a request refused at a batcher's queue bound
   (RESOURCE_EXHAUSTED over gRPC) is HTTP 503, as uvicorn's own concurrency limit answers,
   instead of caikit's 429.
7. gRPC UNAVAILABLE (a backend such as a TGIS server is down or did not answer) becomes HTTP 501
   "Not Implemented" in caikit's status table; it is 503 "Service Unavailable", which clients
   and load balancers know to retry.
"""

import argparse
import asyncio
import concurrent.futures
import functools
import os
import sys
import threading
import weakref

import alog
import grpc

from .safe_paths import MODEL_NAME_RULE, is_inside, is_safe_model_name

log = alog.use_channel("PATCHES")

# How often a stream's worker looks up from a full queue to see if its consumer has gone.
STREAM_PUT_CHECK_SECONDS = 0.25
_PATCHED = "_caikit_genai_patched"


def apply() -> None:
    """Apply every mend once; the HTTP ones only where caikit's HTTP extra is installed."""
    _guard_model_manager()
    _batch_training_exit_codes()
    _serving_metrics()
    try:
        from caikit.runtime.http_server import http_server  # pylint: disable=import-outside-toplevel
    except ImportError:
        return
    _mend_http_server(http_server)
    _unavailable_is_http_503()


# -- 1. model ids and paths ------------------------------------------------------------------


def _invalid_model_id(model_id) -> Exception:
    from caikit.runtime.types.caikit_runtime_exception import (  # pylint: disable=import-outside-toplevel
        CaikitRuntimeException,
    )

    return CaikitRuntimeException(
        grpc.StatusCode.INVALID_ARGUMENT, f"model_id {model_id!r} is not a valid model name: use {MODEL_NAME_RULE}"
    )


def _guard_model_manager() -> None:
    from caikit.runtime.model_management.model_manager import (  # pylint: disable=import-outside-toplevel
        ModelManager,
    )
    from caikit.runtime.types.caikit_runtime_exception import (  # pylint: disable=import-outside-toplevel
        CaikitRuntimeException,
    )

    if getattr(ModelManager, _PATCHED, False):
        return
    retrieve_model, deploy_model = ModelManager.retrieve_model, ModelManager.deploy_model
    undeploy_model, load_model = ModelManager.undeploy_model, ModelManager.load_model
    local_models_dir_sync = ModelManager._local_models_dir_sync  # pylint: disable=protected-access
    syncing = threading.local()

    @functools.wraps(retrieve_model)
    def checked_retrieve_model(self, model_id):
        if isinstance(model_id, str) and model_id and model_id not in self.loaded_models:
            if not is_safe_model_name(model_id):
                raise _invalid_model_id(model_id)
            # caikit would next try the id itself as a path (relative to the working dir).
            if self._lazy_load_local_models and not os.path.exists(os.path.join(self._local_models_dir, model_id)):
                raise CaikitRuntimeException(
                    grpc.StatusCode.NOT_FOUND, f"Model '{model_id}' not loaded", {"model_id": model_id}
                )
        return retrieve_model(self, model_id)

    @functools.wraps(deploy_model)
    def checked_deploy_model(self, model_id, model_files, **kwargs):
        if model_id and not is_safe_model_name(model_id):
            raise _invalid_model_id(model_id)
        for file_name in model_files or {}:
            if os.path.isabs(file_name.strip()) or ".." in file_name.strip().split("/"):
                raise CaikitRuntimeException(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"model file name {file_name!r} must be a relative path inside the model dir",
                )
        return deploy_model(self, model_id, model_files, **kwargs)

    @functools.wraps(undeploy_model)
    def checked_undeploy_model(self, model_id):
        if not is_safe_model_name(model_id):
            raise _invalid_model_id(model_id)
        return undeploy_model(self, model_id)

    @functools.wraps(local_models_dir_sync)
    def marked_local_models_dir_sync(self, *args, **kwargs):
        syncing.active = True
        try:
            return local_models_dir_sync(self, *args, **kwargs)
        finally:
            syncing.active = False

    @functools.wraps(load_model)
    def checked_load_model(self, model_id, local_model_path, *args, **kwargs):
        if getattr(syncing, "active", False) and not is_safe_model_name(model_id):
            log.debug2("lazy load passes over %s: not a model name", model_id)
            return None
        models_dir = self._local_models_dir
        if models_dir and isinstance(local_model_path, str) and not is_inside(
            local_model_path, models_dir, follow_symlinks=False
        ):
            raise CaikitRuntimeException(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"model path {local_model_path!r} is outside the runtime's models dir (runtime.local_models_dir)",
                {"model_id": model_id},
            )
        return load_model(self, model_id, local_model_path, *args, **kwargs)

    ModelManager.retrieve_model = checked_retrieve_model
    ModelManager.deploy_model = checked_deploy_model
    ModelManager.undeploy_model = checked_undeploy_model
    ModelManager.load_model = checked_load_model
    ModelManager._local_models_dir_sync = marked_local_models_dir_sync  # pylint: disable=protected-access
    setattr(ModelManager, _PATCHED, True)


# -- 5. the batch training entry point -------------------------------------------------------

# What a train call raises, or a job ends with, when the request or its data is at fault.
USER_ERROR_TYPES = (ValueError, FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError)
USER_ERROR_STATUSES = ("INVALID_ARGUMENT", "ALREADY_EXISTS", "NOT_FOUND", "FAILED_PRECONDITION")


def is_user_error(error: BaseException) -> bool:
    status = getattr(error, "status_code", None)
    return isinstance(error, USER_ERROR_TYPES) or getattr(status, "name", None) in USER_ERROR_STATUSES


def _batch_training_exit_codes() -> None:
    """Wrap the `train` that `python -m caikit.runtime.train` calls (it runs as `__main__`, so
    its globals are that module's), when that is the program running."""
    main = sys.modules.get("__main__")
    if getattr(getattr(main, "__spec__", None), "name", None) != "caikit.runtime.train":
        return
    if getattr(main.train, _PATCHED, False):
        return
    train = main.train

    def user_error_exit(message: str):
        options, _ = _batch_options().parse_known_args()
        log.error("training refused: %s", message)
        main.exit_complete(main.USER_ERROR_EXIT_CODE, options.save_path, message, options.log_file, options.log_enabled)

    @functools.wraps(train)
    def train_with_user_errors(*args, **kwargs):
        try:
            future = train(*args, **kwargs)
        except Exception as error:  # pylint: disable=broad-except
            if not is_user_error(error):
                raise
            user_error_exit(f"{type(error).__name__}: {getattr(error, 'message', None) or error}")
        errors = list(future.get_info().errors or [])
        if errors and all(is_user_error(error) for error in errors):
            user_error_exit("; ".join(f"{type(error).__name__}: {error}" for error in errors))
        return future

    setattr(train_with_user_errors, _PATCHED, True)
    main.train = train_with_user_errors


def _batch_options() -> argparse.ArgumentParser:
    """The few options of caikit's batch entry point the exit needs (its own parser is local)."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--save-path", "-s", default=".")
    parser.add_argument(
        "--termination-log-file", "-f", dest="log_file", default=os.environ.get("TERMINATION_LOG_FILE", "/dev/termination-log")
    )
    parser.add_argument("--enable-termination-log", "-e", dest="log_enabled", default=os.environ.get("ENABLE_TERMINATION_LOG", True))
    return parser


# -- 6. serving metrics and backpressure -----------------------------------------------------


def _serving_metrics() -> None:
    from caikit.runtime import names  # pylint: disable=import-outside-toplevel
    from caikit.runtime.servicers.global_predict_servicer import (  # pylint: disable=import-outside-toplevel
        GlobalPredictServicer,
    )

    from . import serving_metrics  # pylint: disable=import-outside-toplevel

    names.STATUS_CODE_TO_HTTP[grpc.StatusCode.RESOURCE_EXHAUSTED] = 503
    if not getattr(GlobalPredictServicer.predict_model, _PATCHED, False):
        serving_metrics.time_predictions(GlobalPredictServicer)
        setattr(GlobalPredictServicer.predict_model, _PATCHED, True)


# -- 2 and 3. the HTTP server ----------------------------------------------------------------


def _mend_http_server(http_server) -> None:
    if getattr(http_server, _PATCHED, False):
        return
    http_server.pydantic_from_request = _json_body_reader(http_server.pydantic_from_request)
    http_server.async_wrap_iter = abandonable_async_wrap_iter
    _streams_start_off_the_event_loop()
    setattr(http_server, _PATCHED, True)


def _json_body_reader(read_other_media_types):
    """caikit's request reader, with JSON read whatever its charset parameter, a missing
    Content-Type read as JSON, and an empty body refused with a 400 naming the fields."""
    # pylint: disable=import-outside-toplevel
    import pydantic
    from fastapi import HTTPException, status
    from fastapi.exceptions import RequestValidationError

    @functools.wraps(read_other_media_types)
    async def pydantic_from_request(pydantic_model, request):
        media_type = (request.headers.get("content-type") or "").split(";", 1)[0].strip().lower()
        if media_type not in ("", "application/json"):
            return await read_other_media_types(pydantic_model, request)
        body = await request.body()
        if not body.strip():
            fields = ", ".join(f"`{name}`" for name in pydantic_model.model_fields)
            raise HTTPException(
                status.HTTP_400_BAD_REQUEST,
                f"the request body is empty: send a JSON object with {fields} (Content-Type: application/json)",
            )
        try:
            return pydantic_model.model_validate_json(body)
        except pydantic.ValidationError as err:
            raise RequestValidationError(errors=err.errors()) from err

    return pydantic_from_request


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


# -- 7. HTTP status of UNAVAILABLE -------------------------------------------------------------


def _unavailable_is_http_503() -> None:
    """caikit's HTTP server reads this table (the same dict object) on every error."""
    from caikit.runtime import names  # pylint: disable=import-outside-toplevel

    names.STATUS_CODE_TO_HTTP[grpc.StatusCode.UNAVAILABLE] = 503
    names.HTTP_TO_STATUS_CODE[503] = grpc.StatusCode.UNAVAILABLE
