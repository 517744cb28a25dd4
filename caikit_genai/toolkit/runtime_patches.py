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
   iterable"), `application/json; charset=utf-8` answers 415, and a body whose validation error
   quotes bytes that are not UTF-8 (a JSON body that is not UTF-8, a bad multipart file field,
   a NaN where a string belongs) answers 500: caikit's 422 handler cannot encode what it quotes.
   Every route that reads a request body parses it here: an empty body is a 400 that says which
   fields to send, a body over `genai.limits.max_request_body_bytes` a 413 (refused before it is
   read whole), a JSON body that is not UTF-8 a 400 that says so, and a 422 names the field
   (`parameters.top_k: ...`) and quotes what it echoes escaped and short.
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
8. Predict requests are checked before a model sees them. A model of another task is not
   refused by caikit (it falls back to the model's first task: HTTP 200 with the other task's
   output, gRPC INTERNAL "Exception deserializing response!"): it is INVALID_ARGUMENT / 400
   naming the model, its tasks and the task asked for. Texts and lists of texts over
   `genai.limits` (limits.py) are refused before any tokenizing. The HTTP required input
   (`inputs`) is passed on as sent: caikit dropped a falsy one (0, "", []), so `"inputs": 0`
   read as a missing argument ("run() missing 1 required positional argument").
9. gRPC requests that do not parse (a string field holding bytes that are not UTF-8) answer
   INTERNAL "Exception deserializing request!" from grpc itself; they are INVALID_ARGUMENT
   saying what could not be read.
10. `/openapi.json`: caikit completes the spec once at start (adding the request schemas its
    routes point to with `$ref`) and stores it in `app.openapi_schema`, but FastAPI >= 0.120
    rebuilds the spec on the next request when its routes' version mark is unset, dropping
    caikit's additions: every request body schema then points at a missing `#/$defs/...`, and
    no OpenAPI client (Swagger UI, a generated client, schemathesis) can read the spec. The app
    serves caikit's completed spec, with caikit's enums (FinishReason, JobStatus) described as
    the JSON carries them: their names, not the integers of the proto.
11. HTTP errors that are the request's, raised outside the servicers, answer 500 in caikit's
    unary, train and job handlers: starlette's own HTTPException (a malformed multipart body,
    "Invalid multipart data.") and the ValueError/TypeError that caikit's gRPC servicers and
    its own streaming handler answer INVALID_ARGUMENT / 400 (a train request's integer past
    int64 fails its conversion to proto). They keep their status, or answer 400.
12. Start-up: caikit's `get_data_model` (called while the servers are built) iterates
    `sys.modules` while the lazy loader's threads are already loading models, whose imports
    (transformers imports lazily) add modules: "dictionary changed size during iteration" ends
    the runtime at start (seen here once in about twenty starts serving five models, the
    traceback ending in `import_util.get_data_model`). The lookup is retried.
13. Models that fail to load (a corrupt config.yml, a missing or truncated artifact): caikit
    lists them in `/info/models` as `loaded: false`, like a model still loading, with no reason;
    it loads them again on every request (three attempts each, with `lazy_load_retries: 2`), and
    its lazy loader tries them again after each of those. Here a failed load is remembered with
    a fingerprint of its dir (file names, sizes, mtimes): `/info/models` lists it with the reason
    (`metadata.load_error`) and the attempts made, a request for it is NOT_FOUND with the reason
    at once, and nothing loads it again until its files change (a fixed or replaced model dir
    loads at the next poll) or, in case the cause was passing, until a back-off has run out: a
    minute after the first failed attempt, doubling with each one, an hour at most.
"""

import argparse
import asyncio
import concurrent.futures
import datetime
import functools
import hashlib
import inspect
import math
import os
import sys
import threading
import time
import weakref
from dataclasses import dataclass
from typing import Dict, Optional

import alog
import grpc

from . import limits
from .errors import shown
from .safe_paths import MODEL_NAME_RULE, is_inside, is_safe_model_name

log = alog.use_channel("PATCHES")

# How often a stream's worker looks up from a full queue to see if its consumer has gone.
STREAM_PUT_CHECK_SECONDS = 0.25
_PATCHED = "_caikit_genai_patched"
_CHECKED = "_caikit_genai_checked"  # on caikit's predict calls, which serving_metrics marks _PATCHED


def apply() -> None:
    """Apply every mend once; the HTTP ones only where caikit's HTTP extra is installed."""
    _guard_model_manager()
    _data_model_lookup_survives_imports()
    _failed_loads_stay_failed()
    _batch_training_exit_codes()
    _serving_metrics()
    _check_predict_requests()
    _undecodable_grpc_requests()
    try:
        from caikit.runtime.http_server import http_server  # pylint: disable=import-outside-toplevel
    except ImportError:
        return
    _mend_http_server(http_server)
    _unavailable_is_http_503()
    _http_inputs_as_sent(http_server.RuntimeHTTPServer)
    _serve_completed_openapi_spec(http_server.RuntimeHTTPServer)
    _request_errors_are_http_4xx(http_server.RuntimeHTTPServer)


# -- 1. model ids and paths ------------------------------------------------------------------


def _invalid_model_id(model_id) -> Exception:
    from caikit.runtime.types.caikit_runtime_exception import (  # pylint: disable=import-outside-toplevel
        CaikitRuntimeException,
    )

    return CaikitRuntimeException(
        grpc.StatusCode.INVALID_ARGUMENT, f"model_id {model_id!r} is not a valid model name: use {MODEL_NAME_RULE}"
    )


# Set while caikit's lazy loader syncs local_models_dir (mend 1 marks it; mends 1 and 13 read it).
_LAZY_SYNC = threading.local()


def in_lazy_sync() -> bool:
    return getattr(_LAZY_SYNC, "active", False)


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
        _LAZY_SYNC.active = True
        try:
            return local_models_dir_sync(self, *args, **kwargs)
        finally:
            _LAZY_SYNC.active = False

    @functools.wraps(load_model)
    def checked_load_model(self, model_id, local_model_path, *args, **kwargs):
        if in_lazy_sync() and not is_safe_model_name(model_id):
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


# -- 8. predict requests checked before the model ---------------------------------------------


def _check_predict_requests() -> None:
    """Wrap the two calls every predict request goes through (gRPC and HTTP, unary, streaming
    and prediction jobs): the model must serve the task asked for, and the sizes be in limits."""
    from caikit.runtime.servicers.global_predict_servicer import (  # pylint: disable=import-outside-toplevel
        GlobalPredictServicer,
    )

    for name in ("predict_model", "run_prediction_job"):
        method = getattr(GlobalPredictServicer, name)
        if not getattr(method, _CHECKED, False):
            setattr(GlobalPredictServicer, name, _checked_prediction(method))
    if not getattr(GlobalPredictServicer.Predict, _CHECKED, False):
        GlobalPredictServicer.Predict = _task_checked_rpc(GlobalPredictServicer.Predict)


def _task_checked_rpc(predict):
    """gRPC's Predict looks up the model's method for the RPC (falling back to its first task)
    before it calls predict_model: check the task first."""
    from caikit.runtime.utils.servicer_util import get_metadata  # pylint: disable=import-outside-toplevel
    from caikit.runtime.names import MODEL_MESH_MODEL_ID_KEY  # pylint: disable=import-outside-toplevel

    @functools.wraps(predict)
    def task_checked_predict(self, request, context, caikit_rpc, *args, **kwargs):
        model_id = get_metadata(context, MODEL_MESH_MODEL_ID_KEY)
        if model_id:
            model = self._model_manager.retrieve_model(model_id)  # pylint: disable=protected-access
            check_model_task(model, model_id, getattr(caikit_rpc, "task", None))
        return predict(self, request, context, caikit_rpc, *args, **kwargs)

    setattr(task_checked_predict, _CHECKED, True)
    return task_checked_predict


def _checked_prediction(method):
    own_arguments = set(inspect.signature(method).parameters) - {"kwargs"}

    @functools.wraps(method)
    def checked(self, request_name, model_id, *args, **kwargs):
        model = kwargs.get("model") or self._model_manager.retrieve_model(model_id)  # pylint: disable=protected-access
        check_model_task(model, model_id, kwargs.get("task"))
        limits.check_sizes({name: value for name, value in kwargs.items() if name not in own_arguments})
        return method(self, request_name, model_id, *args, **{**kwargs, "model": model})

    setattr(checked, _CHECKED, True)
    return checked


def check_model_task(model, model_id: str, task) -> None:
    """INVALID_ARGUMENT unless `model` serves `task` (caikit would run the model's first task)."""
    tasks = list(getattr(type(model), "tasks", None) or [])
    if task is None or task in tasks:
        return
    from caikit.runtime.types.caikit_runtime_exception import (  # pylint: disable=import-outside-toplevel
        CaikitRuntimeException,
    )

    served = ", ".join(served_task.__name__ for served_task in tasks) or "no task"
    raise CaikitRuntimeException(
        grpc.StatusCode.INVALID_ARGUMENT,
        f"model {model_id!r} ({type(model).__name__}) serves {served}, not {task.__name__}: "
        f"call it through the RPC or route of its task, or choose a model that serves {task.__name__}",
        {"model_id": model_id},
    )


def _http_inputs_as_sent(server_class) -> None:
    """caikit's `_get_request_params` drops a falsy `inputs` (`if value:`): put it back."""
    get_request_params = server_class._get_request_params  # pylint: disable=protected-access
    if getattr(get_request_params, _PATCHED, False):
        return

    @functools.wraps(get_request_params)
    def request_params_with_inputs(self, rpc, request):
        params = get_request_params(self, rpc, request)
        inputs = getattr(request, "inputs", None)
        required = getattr(getattr(rpc, "task", None), "get_required_parameters", None)
        names = list(required(rpc.input_streaming)) if required else []
        if inputs is not None and not inputs and len(names) == 1:
            params.setdefault(names[0], inputs)
        return params

    setattr(request_params_with_inputs, _PATCHED, True)
    server_class._get_request_params = request_params_with_inputs  # pylint: disable=protected-access


# -- 9. gRPC requests that do not parse ---------------------------------------------------------


class _UndecodableRequest:
    """What a request deserializer gives for bytes that are no valid message."""

    def __init__(self, message_name: str, error: Exception):
        self.message_name, self.error = message_name, error


def _undecodable_grpc_requests() -> None:
    """Every handler caikit's gRPC server registers is made by `_make_new_handler`: give its
    unary-request handlers a deserializer that does not fail, and a behaviour that refuses what
    did not parse with INVALID_ARGUMENT (grpc itself answers INTERNAL)."""
    from caikit.runtime.interceptors.caikit_runtime_server_wrapper import (  # pylint: disable=import-outside-toplevel
        CaikitRuntimeServerWrapper,
    )

    make_new_handler = CaikitRuntimeServerWrapper._make_new_handler  # pylint: disable=protected-access
    if getattr(make_new_handler, _PATCHED, False):
        return

    @functools.wraps(make_new_handler)
    def make_checked_handler(self, original_rpc_handler, caikit_rpc=None):
        handler = make_new_handler(self, original_rpc_handler, caikit_rpc)
        if handler.request_streaming or handler.request_deserializer is None:
            return handler
        behaviour = "unary_stream" if handler.response_streaming else "unary_unary"
        return handler._replace(
            request_deserializer=_tolerant_deserializer(handler.request_deserializer),
            **{behaviour: _refusing_undecodable(getattr(handler, behaviour))},
        )

    setattr(make_checked_handler, _PATCHED, True)
    CaikitRuntimeServerWrapper._make_new_handler = make_checked_handler  # pylint: disable=protected-access


def _tolerant_deserializer(deserialize):
    from google.protobuf.message import DecodeError  # pylint: disable=import-outside-toplevel

    message_class = getattr(deserialize, "__self__", None)
    message_name = getattr(getattr(message_class, "DESCRIPTOR", None), "full_name", "request")

    def deserialize_or_mark(data: bytes):
        try:
            return deserialize(data)
        except DecodeError as error:
            return _UndecodableRequest(message_name, error)

    return deserialize_or_mark


def _refusing_undecodable(behaviour):
    @functools.wraps(behaviour)
    def refuse_undecodable(request, context):
        if isinstance(request, _UndecodableRequest):
            log.warning("refused a request that is no valid %s: %s", request.message_name, request.error)
            context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"the request is not a valid {request.message_name} message ({request.error}): "
                "string fields must hold valid UTF-8; send binary data in a bytes field",
            )
        return behaviour(request, context)

    return refuse_undecodable


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
    Content-Type read as JSON, and an empty body (or one that is not UTF-8) refused with a 400."""
    # pylint: disable=import-outside-toplevel
    import pydantic
    from fastapi import HTTPException, status
    from fastapi.exceptions import RequestValidationError

    @functools.wraps(read_other_media_types)
    async def pydantic_from_request(pydantic_model, request):
        try:
            return await read_body(pydantic_model, request)
        except RequestValidationError as err:
            raise RequestValidationError(errors=_quotable(err.errors())) from err

    async def read_body(pydantic_model, request):
        body = await _read_capped_body(request, limits.current().max_request_body_bytes)
        media_type = (request.headers.get("content-type") or "").split(";", 1)[0].strip().lower()
        if media_type not in ("", "application/json"):
            return await read_other_media_types(pydantic_model, request)
        if not body.strip():
            fields = ", ".join(f"`{name}`" for name in pydantic_model.model_fields)
            raise HTTPException(
                status.HTTP_400_BAD_REQUEST,
                f"the request body is empty: send a JSON object with {fields} (Content-Type: application/json)",
            )
        try:
            body.decode("utf-8")
        except UnicodeDecodeError as err:
            raise HTTPException(
                status.HTTP_400_BAD_REQUEST,
                f"the request body is not UTF-8 (byte {body[err.start]:#04x} at offset {err.start}): "
                "JSON must be UTF-8; send binary data base64-encoded",
            ) from err
        try:
            return pydantic_model.model_validate_json(body)
        except pydantic.ValidationError as err:
            raise RequestValidationError(errors=[_named_error(error) for error in err.errors()]) from err

    return pydantic_from_request


async def _read_capped_body(request, max_bytes: int) -> bytes:
    """The request body, refused with a 413 once it passes `max_bytes` (by its Content-Length,
    before reading, or while it streams in); kept on the request, where starlette's own readers
    (`body()`, `form()`) find it."""
    from fastapi import HTTPException, status  # pylint: disable=import-outside-toplevel

    def too_large(size: str):
        return HTTPException(
            status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
            f"the request body is {size} bytes, over the limit of {max_bytes:,} "
            "(genai.limits.max_request_body_bytes): send less per request",
        )

    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > max_bytes:
        raise too_large(f"{int(length):,}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise too_large(f"more than {max_bytes:,}")
        chunks.append(chunk)
    request._body = b"".join(chunks)  # pylint: disable=protected-access
    return request._body  # pylint: disable=protected-access


def _named_error(error: dict) -> dict:
    """A pydantic error whose message starts with the field (caikit's 422 shows only the first
    message) and whose echoed input is short and JSON-safe (NaN, bytes and 1 MB strings are not)."""
    location = ".".join(str(part) for part in error.get("loc", ()))
    named = {key: value for key, value in error.items() if key not in ("input", "ctx", "url")}
    named["msg"] = f"{location}: {error.get('msg', '')}" if location else error.get("msg", "")
    named["input"] = _short_json(error.get("input"))
    return named


def _short_json(value):
    if value is None or isinstance(value, bool) or (isinstance(value, int) and abs(value) < 2**64):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    return shown(value, 100)


def _quotable(value):
    """`value` (validation errors) with every bytes object in it as text, escaped where it is not
    UTF-8, so that the error response can quote it."""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "backslashreplace")
    if isinstance(value, dict):
        return {key: _quotable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_quotable(item) for item in value]
    return value


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


# -- 10. the OpenAPI spec --------------------------------------------------------------------


def _serve_completed_openapi_spec(server_class) -> None:
    """After caikit's `_patch_openapi_spec`, the app's `openapi()` (what `/openapi.json` and
    `/docs` call) returns the spec caikit completed, as FastAPI documents for a custom spec."""
    patch_spec = server_class._patch_openapi_spec  # pylint: disable=protected-access
    if getattr(patch_spec, _PATCHED, False):
        return

    @functools.wraps(patch_spec)
    def patch_and_keep_spec(self):
        patch_spec(self)
        completed = self.app.openapi_schema
        for schema in completed.get("components", {}).get("schemas", {}).values():
            _enum_schema_by_name(schema)
        self.app.openapi = lambda: completed

    setattr(patch_and_keep_spec, _PATCHED, True)
    server_class._patch_openapi_spec = patch_and_keep_spec  # pylint: disable=protected-access


def _enum_schema_by_name(schema: dict) -> None:
    """An integer enum schema of a caikit enum (its Python class found by title and values)
    becomes the string enum of its names, which is what caikit's JSON writes."""
    import enum  # pylint: disable=import-outside-toplevel

    if schema.get("type") != "integer" or not schema.get("enum"):
        return
    pending, classes = list(enum.Enum.__subclasses__()), []
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if cls.__name__ == schema.get("title") and sorted(m.value for m in cls) == sorted(schema["enum"]):
            classes.append(cls)
    if len(classes) == 1:
        schema.update(type="string", enum=[member.name for member in classes[0]])


# -- 11. HTTP status of request errors -------------------------------------------------------


def _request_errors_are_http_4xx(server_class) -> None:
    """caikit's handlers call `_handle_exception` for any error: None re-raises it (FastAPI
    answers its HTTPExceptions itself), a dict is the error body."""
    # pylint: disable=import-outside-toplevel
    import uuid

    from starlette.exceptions import HTTPException

    handle_exception = server_class._handle_exception  # pylint: disable=protected-access
    if getattr(handle_exception, _PATCHED, False):
        return

    @functools.wraps(handle_exception)
    def handle_request_errors(err):
        if isinstance(err, HTTPException):
            return None
        if isinstance(err, (ValueError, TypeError)) and not hasattr(err, "status_code"):
            log.warning("request refused: %r", err)
            return {"details": f"invalid request: {err}", "code": 400, "id": uuid.uuid4().hex}
        return handle_exception(err)

    setattr(handle_request_errors, _PATCHED, True)
    server_class._handle_exception = staticmethod(handle_request_errors)  # pylint: disable=protected-access


# -- 12. the data model lookup at start-up --------------------------------------------------

DATA_MODEL_LOOKUP_TRIES = 20


def _data_model_lookup_survives_imports() -> None:
    """Every module that imported caikit's `get_data_model` by name gets the retrying one."""
    # pylint: disable=import-outside-toplevel
    from caikit.runtime.servicers import global_train_servicer
    from caikit.runtime.utils import import_util, servicer_util

    get_data_model = import_util.get_data_model
    if getattr(get_data_model, _PATCHED, False):
        return

    @functools.wraps(get_data_model)
    def retried_get_data_model(*args, **kwargs):
        for attempt in range(DATA_MODEL_LOOKUP_TRIES):
            try:
                return get_data_model(*args, **kwargs)
            except RuntimeError as err:
                if "changed size during iteration" not in str(err) or attempt == DATA_MODEL_LOOKUP_TRIES - 1:
                    raise
                log.debug("data model lookup raced an import (%s): again", err)
        raise AssertionError("unreachable")

    setattr(retried_get_data_model, _PATCHED, True)
    for module in (import_util, global_train_servicer, servicer_util):
        module.get_data_model = retried_get_data_model


# -- 13. models that fail to load ------------------------------------------------------------


def dir_fingerprint(path: str) -> Optional[str]:
    """A digest of every file's name, size and mtime under `path`: it changes when a file is
    written, replaced, added or removed. None when nothing is there."""
    if not os.path.exists(path):
        return None
    digest = hashlib.sha256()
    for directory, subdirs, files in os.walk(path):
        subdirs.sort()
        for name in sorted(files):
            file_path = os.path.join(directory, name)
            try:
                stat = os.stat(file_path)
            except OSError:
                continue
            digest.update(f"{os.path.relpath(file_path, path)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


# A model that failed to load is tried again (its files unchanged) after this back-off:
# FIRST_RETRY_SECONDS after the first failed attempt, doubling with each, at most LAST_RETRY_SECONDS.
FIRST_RETRY_SECONDS = 60.0
LAST_RETRY_SECONDS = 3600.0


def retry_delay(attempts: int) -> float:
    return min(FIRST_RETRY_SECONDS * 2 ** (attempts - 1), LAST_RETRY_SECONDS)


@dataclass
class LoadFailure:
    model_id: str
    path: str
    fingerprint: Optional[str]  # of the dir as it was when the load that failed began
    reason: str
    attempts: int
    failed_at: str
    retry_at: float  # time.monotonic()
    retry_after: str  # the same, as a wall-clock time

    def unchanged(self) -> bool:
        return dir_fingerprint(self.path) == self.fingerprint

    def holds(self, now: Optional[float] = None) -> bool:
        """Whether the model stays failed: its files are as they were and its back-off runs."""
        return (time.monotonic() if now is None else now) < self.retry_at and self.unchanged()

    def error(self):
        from caikit.runtime.types.caikit_runtime_exception import (  # pylint: disable=import-outside-toplevel
            CaikitRuntimeException,
        )

        return CaikitRuntimeException(
            grpc.StatusCode.NOT_FOUND,
            f"model '{self.model_id}' failed to load and is not served: {self.reason}",
            {"model_id": self.model_id},
        )

    def info(self):
        from caikit.interfaces.runtime.data_model import ModelInfo  # pylint: disable=import-outside-toplevel

        metadata = {
            "load_error": self.reason,
            "load_attempts": self.attempts,
            "load_failed_at": self.failed_at,
            "load_retry_after": self.retry_after,
        }
        return ModelInfo(model_path=self.path, name=self.model_id, size=0, metadata=metadata, loaded=False)


class LoadFailures:
    """The models whose last load failed, by id (shared by the runtime's threads)."""

    def __init__(self):
        self._failures: Dict[str, LoadFailure] = {}
        self._lock = threading.Lock()

    def record(self, model_id: str, path: str, fingerprint: Optional[str], reason: str) -> LoadFailure:
        with self._lock:
            earlier = self._failures.get(model_id)
            attempts = earlier.attempts + 1 if earlier is not None and earlier.fingerprint == fingerprint else 1
            delay, now = retry_delay(attempts), datetime.datetime.now(datetime.timezone.utc)
            failure = LoadFailure(
                model_id, path, fingerprint, reason, attempts, now.isoformat(), time.monotonic() + delay,
                (now + datetime.timedelta(seconds=delay)).isoformat(),
            )
            self._failures[model_id] = failure
            return failure

    def forget(self, model_id: str) -> None:
        with self._lock:
            self._failures.pop(model_id, None)

    def get(self, model_id) -> Optional[LoadFailure]:
        with self._lock:
            return self._failures.get(model_id)

    def all(self) -> Dict[str, LoadFailure]:
        with self._lock:
            return dict(self._failures)


LOAD_FAILURES = LoadFailures()


def _first_error(error: BaseException) -> str:
    """The error a failed load began with: caikit loads a model again by its path when loading
    by its config fails, and reports the second error, which can hide the first (a missing
    weights file reads as a missing config.yml)."""
    seen = set()
    while id(error) not in seen and (error.__cause__ or error.__context__) is not None:
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return f"{type(error).__name__}: {error}"


_FAILED_LOADS_MENDED = "_caikit_genai_failed_loads_mended"


def _failed_loads_stay_failed() -> None:
    # pylint: disable=import-outside-toplevel,protected-access
    from caikit.runtime.model_management import model_manager as manager_module
    from caikit.runtime.model_management.model_loader_base import ModelLoaderBase
    from caikit.runtime.servicers.info_servicer import InfoServicer

    ModelManager = manager_module.ModelManager  # pylint: disable=invalid-name
    if getattr(ModelManager, _FAILED_LOADS_MENDED, False):
        return
    wrapped_load_model, load_model = ModelLoaderBase._wrapped_load_model, ModelManager.load_model
    retrieve_model, local_models_dir_sync = ModelManager.retrieve_model, ModelManager._local_models_dir_sync
    get_models_info = InfoServicer._get_models_info

    @functools.wraps(wrapped_load_model)
    def remembering_wrapped_load_model(self, model_path, model_id, *args, **kwargs):
        """Runs in caikit's load pool, once per attempt (retries included)."""
        fingerprint = dir_fingerprint(model_path) if isinstance(model_path, str) else None
        try:
            model = wrapped_load_model(self, model_path, model_id, *args, **kwargs)
        except Exception as err:  # pylint: disable=broad-exception-caught
            reason = _first_error(err)
            failure = LOAD_FAILURES.record(model_id, str(model_path), fingerprint, reason)
            log.error(
                "model %s failed to load from %s (attempt %d): %s. It is not served, and not loaded "
                "again until its files change or %s.", model_id, model_path, failure.attempts, reason,
                failure.retry_after,
            )
            raise failure.error() from err
        LOAD_FAILURES.forget(model_id)
        return model

    def evict_failed(self, model_id: str) -> None:
        """Drop the LoadedModel of a failed load from loaded_models (caikit would wait on it,
        retrying, or list it as if it were loading)."""
        with self._loaded_models_lock:
            loaded = self.loaded_models.get(model_id)
            if loaded is None or loaded.loading() or loaded.loaded() or LOAD_FAILURES.get(model_id) is None:
                return
            self.loaded_models.pop(model_id)
        manager_module.MODEL_COUNT_GAUGE.labels(model_type=loaded.type(), model_id=model_id).dec()

    def still_failed(self, model_id) -> Optional[LoadFailure]:
        """The failure of `model_id` while it holds; None once its files changed (the failure is
        forgotten) or its back-off ran out (kept, to count the attempts)."""
        failure = LOAD_FAILURES.get(model_id) if isinstance(model_id, str) else None
        if failure is None:
            return None
        evict_failed(self, model_id)
        if failure.holds():
            return failure
        if not failure.unchanged():
            LOAD_FAILURES.forget(model_id)
        if os.path.exists(failure.path):
            log.info("model %s failed to load before: loading it again (its files changed or its back-off ran out)", model_id)
        return None

    @functools.wraps(load_model)
    def load_model_unless_failed(self, model_id, local_model_path, *args, **kwargs):
        failure = still_failed(self, model_id)
        if failure is not None:
            if in_lazy_sync():
                log.debug2("lazy load passes over %s: it failed to load and has not changed", model_id)
                return None
            raise failure.error()
        return load_model(self, model_id, local_model_path, *args, **kwargs)

    @functools.wraps(retrieve_model)
    def retrieve_model_unless_failed(self, model_id):
        failure = still_failed(self, model_id)
        if failure is not None:
            raise failure.error()
        return retrieve_model(self, model_id)

    @functools.wraps(local_models_dir_sync)
    def local_models_dir_sync_past_failures(self, *args, **kwargs):
        for model_id in LOAD_FAILURES.all():
            still_failed(self, model_id)  # evicts failed entries, so a changed dir is loaded again
        return local_models_dir_sync(self, *args, **kwargs)  # mend 1's: marks the sync

    @functools.wraps(get_models_info)
    def models_info_with_failures(self, model_ids=None):
        from caikit.interfaces.runtime.data_model import ModelInfoResponse  # pylint: disable=import-outside-toplevel

        failures = LOAD_FAILURES.all()
        asked = list(model_ids or [])
        others = [model_id for model_id in asked if model_id not in failures]
        listed = get_models_info(self, model_ids=others).models if others or not asked else []
        served = {info.name for info in listed if info.loaded}
        failed = [
            failure.info() for model_id, failure in failures.items()
            if model_id not in served and (not asked or model_id in asked)
        ]
        return ModelInfoResponse(models=[info for info in listed if info.name not in failures or info.loaded] + failed)

    ModelLoaderBase._wrapped_load_model = remembering_wrapped_load_model
    ModelManager.load_model = load_model_unless_failed
    ModelManager.retrieve_model = retrieve_model_unless_failed
    ModelManager._local_models_dir_sync = local_models_dir_sync_past_failures
    InfoServicer._get_models_info = models_info_with_failures
    setattr(ModelManager, _FAILED_LOADS_MENDED, True)
