"""`Client`: one object for a runtime, a typed method per task, over gRPC or HTTP."""

import time
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Union

from .contract import (
    ATTENTION,
    CLASSIFICATION,
    GENERATION,
    IMAGE_GENERATION,
    TLS,
    TRANSLATION,
    TRANSLATION_LIST,
    ClientError,
    TaskRoute,
    train_rpc,
)
from .results import (
    Attention,
    GeneratedText,
    Images,
    Label,
    ModelInfo,
    TextChunk,
    TrainingJob,
    TrainingProgress,
    TrainingStatus,
    Translation,
    labels_from,
)


class Client:
    """A caikit-genai runtime, over gRPC (`grpc="host:8085"`), HTTP (`http="http://host:8080"`)
    or both. Each call goes over `wire` ("grpc" or "http"; default: gRPC when given, else HTTP).

    `tls`: a `TLS` (CA, client certificate and key) for both wires, or True for TLS trusting the
    system's CAs (an `https://` URL alone does that for HTTP). `timeout`: seconds per call (a
    stream's whole length over gRPC, each read over HTTP). `metadata`: extra gRPC metadata and
    HTTP headers sent with every call (e.g. `{"Authorization": "Bearer ..."}`). `domain`: the
    runtime's `runtime.service_generation.domain` (`Nlp` here, as caikit-nlp's runtime).

    Keyword parameters of the task methods are the task's parameters, as README lists them, and
    go to the runtime as they are (None values are left out).
    """

    def __init__(
        self,
        grpc: Optional[str] = None,
        http: Optional[str] = None,
        *,
        tls: Union[TLS, bool, None] = None,
        timeout: float = 60.0,
        metadata: Optional[Dict[str, str]] = None,
        wire: Optional[str] = None,
        domain: str = "Nlp",
    ):
        if grpc is None and http is None:
            raise ValueError("give the runtime's gRPC target (grpc='host:8085') and/or HTTP URL (http='http://host:8080')")
        tls = TLS() if tls is True else tls or None
        self._wires: Dict[str, Any] = {}
        if grpc is not None:
            from .grpc_wire import GrpcWire  # pylint: disable=import-outside-toplevel

            self._wires["grpc"] = GrpcWire(grpc, tls, timeout, dict(metadata or {}), domain)
        if http is not None:
            from .http_wire import HttpWire  # pylint: disable=import-outside-toplevel

            self._wires["http"] = HttpWire(http, tls, timeout, dict(metadata or {}))
        self.default_wire = wire or ("grpc" if grpc is not None else "http")
        self._wire(self.default_wire)

    def close(self) -> None:
        for wire in self._wires.values():
            wire.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # -- tasks ----------------------------------------------------------------------------------

    def classify(self, model: str, text: str, *, top_k: Optional[int] = None, wire: Optional[str] = None, **parameters) -> List[Label]:
        """Labels with their scores, best first (`top_k`: how many; 0 or None = all)."""
        return labels_from(self._predict(CLASSIFICATION, model, text, wire, top_k=top_k, **parameters))

    def generate(self, model: str, text: str, *, wire: Optional[str] = None, **parameters) -> GeneratedText:
        """Text generation (caikit-nlp's parameters: max_new_tokens, temperature, seed, ...)."""
        return GeneratedText.from_raw(self._predict(GENERATION, model, text, wire, **parameters))

    def generate_stream(self, model: str, text: str, *, wire: Optional[str] = None, **parameters) -> Iterator[TextChunk]:
        """The same generation, chunk by chunk as the server produces it (gRPC server streaming or
        HTTP server-sent events); joined, the chunks' texts are the unary text for the same seed.
        Closing the iterator early ends the generation on the server."""
        for raw in self._wire(wire).stream(GENERATION, model, text, _given(parameters)):
            yield TextChunk.from_raw(raw)

    def translate(self, model: str, text: str, *, wire: Optional[str] = None, **parameters) -> Translation:
        return Translation.from_raw(self._predict(TRANSLATION, model, text, wire, **parameters))

    def translate_list(self, model: str, texts: Iterable[str], *, wire: Optional[str] = None, **parameters) -> List[Translation]:
        """Many texts in one call, run as batches; results in the order given."""
        raw = self._predict(TRANSLATION_LIST, model, list(texts), wire, **parameters)
        return [Translation.from_raw(item) for item in raw.get("results") or []]

    def images(
        self, model: str, count: int = 1, *, seed: Optional[int] = None, label: Optional[str] = None,
        wire: Optional[str] = None, **parameters,
    ) -> Images:
        """`count` images (PNG bytes; `.as_pil()` for PIL images); image i is seed + i's image."""
        return Images.from_raw(self._predict(IMAGE_GENERATION, model, count, wire, seed=seed, label=label, **parameters))

    def attention(self, model: str, text: str, *, wire: Optional[str] = None, **parameters) -> Attention:
        """Attention weights as numpy arrays per kind (`.arrays["encoder"]`: [layers, heads, queries, keys])."""
        return Attention.from_raw(self._predict(ATTENTION, model, text, wire, **parameters))

    def models(self, *, wire: Optional[str] = None) -> List[ModelInfo]:
        """What the runtime serves: each model loaded, loading, or failed with the reason."""
        return [ModelInfo.from_raw(raw) for raw in self._wire(wire).models()]

    # -- training -------------------------------------------------------------------------------

    def train(self, module: str, model_name: str, training_data: Any, *, wire: Optional[str] = None, **parameters) -> TrainingJob:
        """Start a training job of `module` (`SentimentClassifier`, `CharTextGenerator`,
        `Translator`, `DCGANImageGenerator`, or a train RPC's name): `training_data` is a list of
        examples sent inline, or the name of a file in the runtime's training data dir. The
        runtime serves the model as `model_name` once the job is COMPLETED."""
        raw = self._wire(wire).train(train_rpc(module), model_name, {"training_data": training_data, **_given(parameters)})
        return TrainingJob(raw.get("training_id") or "", raw.get("model_name") or model_name)

    def status(self, training_id: str, *, wire: Optional[str] = None) -> TrainingStatus:
        """The job's state, and its `progress` (step, percent, ETA, losses) where this client has
        an HTTP URL: caikit's status has no progress field, the runtime serves it over HTTP only."""
        status = TrainingStatus.from_raw(self._wire(wire).training_status(training_id))
        if "http" in self._wires:
            progress = self._wires["http"].training_progress(training_id)
            status.progress = None if progress is None else TrainingProgress.from_raw(progress)
        return status

    def cancel(self, training_id: str, *, wire: Optional[str] = None) -> TrainingStatus:
        """Ask the runtime to stop a job (its process is killed); a no-op once it has finished."""
        return TrainingStatus.from_raw(self._wire(wire).cancel_training(training_id))

    def wait(
        self, training_id: str, *, timeout: Optional[float] = None, poll_seconds: float = 1.0,
        on_status: Optional[Callable[[TrainingStatus], None]] = None, wire: Optional[str] = None,
    ) -> TrainingStatus:
        """Poll until the job is COMPLETED, ERRORED or CANCELED (returned, not raised);
        `on_status` sees each status polled. Past `timeout` seconds: ClientError DEADLINE_EXCEEDED."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            status = self.status(training_id, wire=wire)
            if on_status is not None:
                on_status(status)
            if status.done:
                return status
            if deadline is not None and time.monotonic() >= deadline:
                raise ClientError("DEADLINE_EXCEEDED", f"training {training_id} is still {status.state} after {timeout} s", "client")
            time.sleep(poll_seconds)

    # -- plumbing -------------------------------------------------------------------------------

    def _predict(self, task: TaskRoute, model: str, inputs: Any, wire: Optional[str], **parameters) -> Dict[str, Any]:
        return self._wire(wire).predict(task, model, inputs, _given(parameters))

    def _wire(self, wire: Optional[str]):
        name = wire or self.default_wire
        if name not in self._wires:
            raise ValueError(f"no {name!r} wire: this client has {sorted(self._wires)}")
        return self._wires[name]


def _given(parameters: Dict[str, Any]) -> Dict[str, Any]:
    return {name: value for name, value in parameters.items() if value is not None}
