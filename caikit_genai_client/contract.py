"""What both wires share: the tasks' names on each wire, TLS settings, and the one error class.

The names follow caikit 0.28.3's generation rules (docs/api.md): a task's
predict RPC is `<Task>Predict` on `caikit.runtime.<domain>.<domain>Service` with the model id in
the `mm-model-id` metadata, its HTTP route `POST /api/v1/task/<task-kebab>` with `model_id`,
`inputs` and `parameters` in the body; streaming adds `ServerStreaming` / `server-streaming-`.
"""

from dataclasses import dataclass
from typing import Any, Dict, Optional, Union


@dataclass(frozen=True)
class TaskRoute:
    """One task's names: caikit's task class name, its HTTP route and its required input field."""

    task: str
    route: str
    # The request field that HTTP calls `inputs` (`text`, `texts`, `num_images`)
    input_field: str

    def rpc(self, streaming: bool = False) -> str:
        return f"ServerStreaming{self.task}Predict" if streaming else f"{self.task}Predict"

    def http_path(self, streaming: bool = False) -> str:
        return f"/api/v1/task/{'server-streaming-' if streaming else ''}{self.route}"


CLASSIFICATION = TaskRoute("TextClassificationTask", "text-classification", "text")
GENERATION = TaskRoute("TextGenerationTask", "text-generation", "text")
TRANSLATION = TaskRoute("TranslationTask", "translation", "text")
TRANSLATION_LIST = TaskRoute("TranslationListTask", "translation-list", "texts")
IMAGE_GENERATION = TaskRoute("ImageGenerationTask", "image-generation", "num_images")
ATTENTION = TaskRoute("AttentionInspectionTask", "attention-inspection", "text")

# Module name -> its train RPC (`<Task><Module>Train`); the HTTP route is `/api/v1/<rpc>`.
TRAIN_RPCS = {
    "SentimentClassifier": "TextClassificationTaskSentimentClassifierTrain",
    "CharTextGenerator": "TextGenerationTaskCharTextGeneratorTrain",
    "Translator": "TranslationTaskTranslatorTrain",
    "DCGANImageGenerator": "ImageGenerationTaskDCGANImageGeneratorTrain",
}
TERMINAL_STATES = ("COMPLETED", "ERRORED", "CANCELED")


def train_rpc(module: str) -> str:
    """A module's train RPC, from its class name (`SentimentClassifier`) or the RPC's own name."""
    if module in TRAIN_RPCS:
        return TRAIN_RPCS[module]
    if module in TRAIN_RPCS.values() or module.endswith("Train"):
        return module
    raise ClientError("INVALID_ARGUMENT", f"unknown module {module!r}: one of {sorted(TRAIN_RPCS)}, or a train RPC's name", "client")


def train_parameters(parameters: Dict[str, Any], wire: str) -> Dict[str, Any]:
    """A train request's parameters for `wire`, its data streams (`training_data`,
    `validation_data`) given as a list of examples (sent inline) or a str (a file in the
    runtime's training data dir) written as that wire takes them; a dict is passed as it is."""
    return {name: _data_stream(value, wire) if name.endswith("_data") else value for name, value in parameters.items()}


def _data_stream(value: Any, wire: str) -> Any:
    if isinstance(value, str):
        kind, fields = "file", {"filename": value}
    elif isinstance(value, (list, tuple)):
        kind, fields = "jsondata", {"data": list(value)}
    else:
        return value
    # HTTP names the stream's one field `data_stream`; gRPC has a oneof of its kinds.
    return {"data_stream": fields} if wire == "http" else {kind: fields}


@dataclass(frozen=True)
class TLS:
    """TLS for both wires: `ca` is the CA bundle that signed the server's certificate (None: the
    system's trust store); `cert` and `key` are the client's own, for mutual TLS.
    `server_name` checks the server's certificate against that name instead of the host dialled
    (e.g. dial 127.0.0.1, check `localhost`): gRPC only; HTTPS checks the URL's host."""

    ca: Optional[str] = None
    cert: Optional[str] = None
    key: Optional[str] = None
    server_name: Optional[str] = None

    def __post_init__(self):
        if (self.cert is None) != (self.key is None):
            raise ValueError("mutual TLS needs both the client certificate and its key")


class ClientError(Exception):
    """Any failed call: `code` is the server's gRPC status name (`INVALID_ARGUMENT`) over gRPC,
    its HTTP status (400) over HTTP; `message` is the server's own message; `wire` says which
    (`grpc`, `http`, or `client` for what was refused before anything was sent). Where no answer
    came, over either wire, `code` is `UNAVAILABLE` (no connection) or `DEADLINE_EXCEEDED`."""

    def __init__(self, code: Union[str, int], message: str, wire: str):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.wire = wire
