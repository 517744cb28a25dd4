"""What the playground's forms are built from: for every module the runtime serves, the HTTP
routes of its tasks (unary and streaming) and of its train call, and each call's parameters
with their type, default and the one-line description from the module's docstring.

caikit's /openapi.json has the routes and types but neither the defaults of a module's own
`run` nor any description, and it merges the parameters of every module of a task (a char
model has no `num_beams`): the page would offer knobs the chosen model refuses.
"""

import inspect
import re
import typing
from typing import Any, Dict, List, Optional

import numpy as np

from caikit.core.data_model import DataBase, DataStream

# Google-style docstring: "Args:" then "name: text" lines, continued by deeper-indented lines.
_ARGS_HEADING = re.compile(r"^\s*Args:\s*$")
_ARG_LINE = re.compile(r"^\s*(\w+)(?:\s*\([^)]*\))?:\s*(.*)$")


def argument_descriptions(docstring: Optional[str]) -> Dict[str, str]:
    """{argument: its description, continuation lines joined} from a docstring's Args section."""
    descriptions: Dict[str, str] = {}
    current, indent = None, None
    lines = iter(inspect.cleandoc(docstring or "").splitlines())
    for line in lines:
        if _ARGS_HEADING.match(line):
            break
    for line in lines:
        if not line.strip():
            continue
        depth = len(line) - len(line.lstrip())
        indent = depth if indent is None else indent
        if depth < indent:
            break  # the next section (Returns:, Raises:)
        match = _ARG_LINE.match(line)
        if depth == indent and match:
            current = match.group(1)
            descriptions[current] = match.group(2).strip()
        elif current is not None:
            descriptions[current] += " " + line.strip()
    return descriptions


def _unwrapped(annotation):
    """`annotation` without Optional[...] and Annotated[...]."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin is typing.Union:
            options = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
            if len(options) != 1:
                return annotation
            annotation = options[0]
        else:
            return annotation


def type_name(annotation) -> str:
    """The JSON type a parameter takes: integer, number, string, boolean, array:<item>,
    data (a training data stream), object (a data object) or any."""
    annotation = _unwrapped(annotation)
    origin = typing.get_origin(annotation)
    if origin in (list, List, typing.Sequence, tuple):
        items = typing.get_args(annotation)
        return "array:" + (type_name(items[0]) if items else "any")
    if any(isinstance(kind, type) and issubclass(kind, DataStream) for kind in (annotation, origin)):
        return "data"
    if isinstance(annotation, type):
        if issubclass(annotation, bool):
            return "boolean"
        if issubclass(annotation, (int, np.integer)):
            return "integer"
        if issubclass(annotation, (float, np.floating)):
            return "number"
        if issubclass(annotation, (str, bytes)):
            return "string"
        if issubclass(annotation, DataBase):
            return "object"
    return "any"


def _json_default(value) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_json_default(item) for item in value]
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


def parameter_list(signature, docstring: Optional[str], leave_out=()) -> List[Dict[str, Any]]:
    """A call's parameters, in signature order: name, type, default, description."""
    descriptions = argument_descriptions(docstring)
    defaults = signature.default_parameters or {}
    return [
        {
            "name": name,
            "type": type_name(annotation),
            "default": _json_default(defaults.get(name)),
            "description": descriptions.get(name, ""),
        }
        for name, annotation in (signature.parameters or {}).items()
        if name not in leave_out
    ]


def training_data_fields(signature) -> Dict[str, Any]:
    """The element a train call's `training_data` stream holds: a string, or a data object's fields."""
    annotation = _unwrapped((signature.parameters or {}).get("training_data"))
    element = (typing.get_args(annotation) or [None])[0]
    if isinstance(element, type) and issubclass(element, DataBase):
        hints = typing.get_type_hints(element)
        fields = []
        for name in element.fields:
            kind = type_name(hints.get(name, str))
            if kind == "object" and getattr(_unwrapped(hints[name]), "__name__", "") == "Image":
                kind = "image"  # caikit's vision Image: {"image_data": <base64>} in JSON
            fields.append({"name": name, "type": kind})
        return {"type": "object", "fields": fields}
    return {"type": type_name(element) if element is not None else "any", "fields": []}


def _route(rpc_name: str) -> str:
    """The route of an RPC, relative (no leading slash), as the page fetches it."""
    from caikit.runtime.names import get_http_route_name  # pylint: disable=import-outside-toplevel

    return get_http_route_name(rpc_name).lstrip("/")


def _task_entries(inference_service) -> Dict[type, Dict[str, Any]]:
    """{module class: {task class: its route entry}} from the inference service's predict RPCs."""
    # pylint: disable=import-outside-toplevel
    from caikit.runtime.service_generation.rpcs import TaskPredictionJobRPC, TaskPredictRPC

    entries: Dict[type, Dict[type, Dict[str, Any]]] = {}
    for rpc in inference_service.caikit_rpcs.values():
        if not isinstance(rpc, TaskPredictRPC) or isinstance(rpc, TaskPredictionJobRPC) or rpc.input_streaming:
            continue
        for module_class in rpc.module_list:
            entry = entries.setdefault(module_class, {}).setdefault(rpc.task, {"task": rpc.task.__name__})
            entry["streaming_route" if rpc.output_streaming else "route"] = _route(rpc.name)
            if not rpc.output_streaming:
                entry["route_name"] = entry["route"].rsplit("/", 1)[-1]
                signature = module_class.get_inference_signature(False, False, rpc.task)
                inputs = rpc.task.get_required_parameters(False)
                docstring = getattr(module_class, signature.method_name).__doc__
                entry["input"] = [{"name": name, "type": type_name(kind)} for name, kind in inputs.items()]
                entry["parameters"] = parameter_list(signature, docstring, leave_out=inputs)
    return entries


def build_catalog(server) -> Dict[str, Any]:
    """The catalog of one RuntimeHTTPServer: what its routes serve and train."""
    # pylint: disable=import-outside-toplevel
    from caikit.runtime.names import TRAINING_MANAGEMENT_ENDPOINT
    from caikit.runtime.service_generation.rpcs import ModuleClassTrainRPC

    tasks = _task_entries(server.inference_service) if server.enable_inference else {}
    trains = {}
    if server.enable_training:
        for rpc in server.training_service.caikit_rpcs.values():
            if isinstance(rpc, ModuleClassTrainRPC):
                signature = rpc.clz.TRAIN_SIGNATURE
                trains[rpc.clz] = {
                    "route": _route(rpc.name),
                    "parameters": parameter_list(signature, rpc.clz.train.__doc__, leave_out=("training_data",)),
                    "training_data": training_data_fields(signature),
                }
    modules = [
        {
            "module_id": module_class.MODULE_ID,
            "name": module_class.MODULE_NAME,
            "tasks": sorted((tasks.get(module_class) or {}).values(), key=lambda entry: entry["task"]),
            "train": trains.get(module_class),
        }
        for module_class in sorted(set(tasks) | set(trains), key=lambda module_class: module_class.MODULE_NAME)
    ]
    return {
        "modules": modules,
        "training": bool(server.enable_training),
        "training_management": TRAINING_MANAGEMENT_ENDPOINT.lstrip("/") if server.enable_training else None,
    }
