"""Mends for caikit 0.28.3's runtime where no configuration key or extension point reaches.

`python -m caikit.runtime` (the command KServe's probes look for) imports this library before
it builds its servers, so `caikit_genai` applies these on import; each replaces one function or
method by a wrapper that keeps caikit's behaviour for good requests. Where caikit offers a
hook (trainers, data stream plugins) we use the hook instead (see subprocess_training.py).

Each mend's file says what caikit does wrong and what the mend does instead:

1. model_paths.py: model ids from requests choose no paths; model paths lie inside local_models_dir.
2. http_bodies.py: HTTP bodies read whatever their Content-Type charset; empty, oversized, non-UTF-8
   and invalid bodies are 400, 413 and a 422 naming the field.
3. abandoned_streams.py: an abandoned SSE stream gives its pool worker back; streams start off the
   event loop.
4. model_paths.py: hidden entries of the models dir (partial saves, `.complete`) are no models.
5. batch_exit_codes.py: `python -m caikit.runtime.train` exits 1 with the reason on the user's errors.
6. serving_metrics.py: predict requests are timed; a full batcher queue is HTTP 503, not 429.
7. unavailable_503.py: gRPC UNAVAILABLE is HTTP 503, not 501.
8. predict_checks.py: a predict request's task and sizes are checked before the model sees it; a
   falsy HTTP `inputs` is passed on as sent.
9. undecodable_grpc.py: a gRPC request that does not parse is INVALID_ARGUMENT, not INTERNAL.
10. openapi_spec.py: `/openapi.json` serves caikit's completed spec, enums by name.
11. http_request_errors.py: request errors raised outside the servicers are 4xx, not 500.
12. data_model_lookup.py: caikit's data model lookup at start-up is retried when imports race it.
13. failed_loads.py: a model that failed to load is remembered, listed with its reason, and not
    loaded again until its files change or a back-off runs out.
14. model_management.py: deploying and undeploying models over the network is off unless
    `genai.model_management.enabled`; when on, deploy never replaces a dir and undeploy deletes
    only what deploy wrote. Applied first, so that mend 1's id and file-name checks wrap its deploy.

Shared marks, the log channel and the lazy-sync flag are in _common.py.
"""

from ._common import in_lazy_sync
from .abandoned_streams import STREAM_PUT_CHECK_SECONDS, abandonable_async_wrap_iter
from .batch_exit_codes import USER_ERROR_STATUSES, USER_ERROR_TYPES, _batch_training_exit_codes, is_user_error
from .data_model_lookup import DATA_MODEL_LOOKUP_TRIES, _data_model_lookup_survives_imports
from .failed_loads import (
    FIRST_RETRY_SECONDS,
    LAST_RETRY_SECONDS,
    LOAD_FAILURES,
    LoadFailure,
    LoadFailures,
    _failed_loads_stay_failed,
    dir_fingerprint,
    retry_delay,
)
from .http_bodies import _mend_http_server
from .http_request_errors import _request_errors_are_http_4xx
from .model_management import DEPLOYED_MARKER, _model_management_is_opt_in, management_enabled
from .model_paths import _guard_model_manager
from .openapi_spec import _serve_completed_openapi_spec
from .predict_checks import _check_predict_requests, _http_inputs_as_sent, check_model_task
from .serving_metrics import _serving_metrics
from .unavailable_503 import _unavailable_is_http_503
from .undecodable_grpc import _undecodable_grpc_requests

__all__ = [
    "DATA_MODEL_LOOKUP_TRIES",
    "DEPLOYED_MARKER",
    "FIRST_RETRY_SECONDS",
    "LAST_RETRY_SECONDS",
    "LOAD_FAILURES",
    "STREAM_PUT_CHECK_SECONDS",
    "USER_ERROR_STATUSES",
    "USER_ERROR_TYPES",
    "LoadFailure",
    "LoadFailures",
    "abandonable_async_wrap_iter",
    "apply",
    "check_model_task",
    "dir_fingerprint",
    "in_lazy_sync",
    "is_user_error",
    "management_enabled",
    "retry_delay",
]


def apply() -> None:
    """Apply every mend once; the HTTP ones only where caikit's HTTP extra is installed."""
    _model_management_is_opt_in()
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
