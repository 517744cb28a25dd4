"""8. Predict requests are checked before a model sees them. A model of another task is not
refused by caikit (it falls back to the model's first task: HTTP 200 with the other task's
output, gRPC INTERNAL "Exception deserializing response!"): it is INVALID_ARGUMENT / 400
naming the model, its tasks and the task asked for. Texts and lists of texts over
`genai.limits` (limits.py) are refused before any tokenizing. The HTTP required input
(`inputs`) is passed on as sent: caikit dropped a falsy one (0, "", []), so `"inputs": 0`
read as a missing argument ("run() missing 1 required positional argument").
"""

import functools
import inspect

import grpc

from ..toolkit.serving import limits
from ._common import _CHECKED, _PATCHED, http_server_module, replace_once


def check_predict_requests() -> None:
    """The checks on caikit's predict servicer; HTTP's required input where caikit serves HTTP."""
    _check_predictions()
    http_server = http_server_module()
    if http_server is not None:
        _http_inputs_as_sent(http_server.RuntimeHTTPServer)


def _check_predictions() -> None:
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
    replace_once(server_class, "_get_request_params", _with_falsy_inputs)


def _with_falsy_inputs(get_request_params):
    def request_params_with_inputs(self, rpc, request):
        params = get_request_params(self, rpc, request)
        inputs = getattr(request, "inputs", None)
        required = getattr(getattr(rpc, "task", None), "get_required_parameters", None)
        names = list(required(rpc.input_streaming)) if required else []
        if inputs is not None and not inputs and len(names) == 1:
            params.setdefault(names[0], inputs)
        return params

    return request_params_with_inputs
