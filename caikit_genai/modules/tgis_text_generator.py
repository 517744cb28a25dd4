"""TGISTextGenerator: text generation delegated to a remote TGIS server (the `tgis` extra).

For large seq2seq or causal models served on GPU nodes by TGIS (IBM's Text Generation Inference
Server), as caikit-nlp's TextGenerationTGIS does it: the model dir holds no weights, only the
name TGIS knows the model by (`base_model_name`); caikit-tgis-backend's `TGISBackend`, configured
under `model_management.initializers.default.config.backend_priority` in the runtime config,
gives the gRPC client (hostname, TLS, load balancing). Requests are checked here, so a bad one is
INVALID_ARGUMENT before anything reaches TGIS, then mapped onto TGIS's `Parameters`
(`generation.proto`). A TGIS server that is down, slow or failing answers UNAVAILABLE with a
message naming the server and the model, within the model's `request_timeout_seconds`.

Implements caikit's `TextGenerationTask` (unary and server-streaming), so it shares the RPCs,
routes and parameter names (and defaults: caikit merges one request message per task) of
CharTextGenerator. Imported only where caikit-tgis-backend is installed (see modules/__init__.py).
"""

from typing import Iterable, Iterator, Optional

import grpc

from caikit.core import ModuleBase, ModuleConfig, ModuleSaver, module
from caikit.core.exceptions.caikit_core_exception import CaikitCoreException, CaikitCoreStatusCode
from caikit.core.module_backends import backend_types
from caikit.interfaces.nlp.data_model import FinishReason, GeneratedTextResult, GeneratedTextStreamResult
from caikit.interfaces.nlp.tasks import TextGenerationTask
from caikit_tgis_backend import TGISBackend
from caikit_tgis_backend.protobufs import generation_pb2
import alog

from ..toolkit.serving.errors import invalid_argument, require_text
from ..toolkit.generation import GenerationSignature, stream_message
from ..toolkit.models.model_dir import atomic_model_dir

log = alog.use_channel("TGISGEN")

DEFAULT_MAX_NEW_TOKENS_LIMIT = 4096
# A whole call (a stream included) may take this long before it is cut off as UNAVAILABLE.
DEFAULT_REQUEST_TIMEOUT_SECONDS = 300.0

# TGIS status codes that mean the request itself was wrong: passed on as INVALID_ARGUMENT.
CALLER_ERRORS = (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.OUT_OF_RANGE, grpc.StatusCode.FAILED_PRECONDITION)

# The request defaults are CharTextGenerator's: caikit builds one request message per task and
# merges the defaults of every module implementing it, so the modules of a task must agree.
# Unset sampling values stay unset: TGIS applies its own defaults (and draws and reports a seed).
TGIS_GENERATION = GenerationSignature(
    unit="token",
    max_new_tokens=200,
    server_defaults=True,
    docs={
        "max_new_tokens": "Tokens to generate at most (default 200; the model's max_new_tokens_limit and the TGIS "
        "server's own limit cap it).",
        "truncate_input_tokens": "0 sends the whole prompt; N > 0 makes TGIS keep only its last N tokens.",
    },
)


@module(
    id="5b1f6f4e-6c2e-4d0b-9a57-3f0c2a8d7e41",
    name="TGISTextGenerator",
    version="0.1.0",
    task=TextGenerationTask,
    backend_type=TGISBackend.backend_type,
)
class TGISTextGenerator(ModuleBase):
    """Generates text on a remote TGIS server, through caikit-tgis-backend's TGISBackend."""

    # Our model dirs are written without a backend (LOCAL, caikit's default); they load only
    # through a configured TGIS backend.
    SUPPORTED_LOAD_BACKENDS = [TGISBackend.backend_type, backend_types.LOCAL]

    def __init__(
        self,
        base_model_name: str,
        tgis_backend: Optional[TGISBackend] = None,
        max_new_tokens_limit: int = DEFAULT_MAX_NEW_TOKENS_LIMIT,
        request_timeout_seconds: float = DEFAULT_REQUEST_TIMEOUT_SECONDS,
    ):
        super().__init__()
        if not isinstance(base_model_name, str) or not base_model_name.strip():
            raise ValueError(f"base_model_name must name the model TGIS serves, got {base_model_name!r}")
        if not int(max_new_tokens_limit) >= 1:
            raise ValueError(f"max_new_tokens_limit must be at least 1, got {max_new_tokens_limit}")
        if not float(request_timeout_seconds) > 0:
            raise ValueError(f"request_timeout_seconds must be positive, got {request_timeout_seconds}")
        self.base_model_name = base_model_name
        self.max_new_tokens_limit = int(max_new_tokens_limit)
        self.request_timeout_seconds = float(request_timeout_seconds)
        self.tgis_backend = tgis_backend
        # The stub only: no connection is made until the first request, so a model loads (and
        # the runtime starts) while TGIS is still coming up.
        self._client = tgis_backend.get_client(base_model_name) if tgis_backend is not None else None

    # -- inference -------------------------------------------------------------------------

    @TextGenerationTask.taskmethod()
    @TGIS_GENERATION.method("Continue a prompt on the TGIS server.")
    def run(self, text: str = None, **generation) -> GeneratedTextResult:
        text, params = self.tgis_parameters(text, generation)
        request = generation_pb2.BatchedGenerationRequest(
            model_id=self.base_model_name, requests=[generation_pb2.GenerationRequest(text=text)], params=params
        )
        try:
            batch = self._stub().Generate(request, timeout=self.request_timeout_seconds)
        except grpc.RpcError as err:
            raise self._tgis_failure(err) from err
        if len(batch.responses) != 1:
            raise self._unavailable(f"answered {len(batch.responses)} results for one prompt")
        response = batch.responses[0]
        return GeneratedTextResult(
            generated_text=response.text,
            generated_tokens=response.generated_token_count,
            finish_reason=_finish_reason(response.stop_reason),
            producer_id=self.PRODUCER_ID,
            input_token_count=response.input_token_count,
            seed=response.seed or None,
        )

    @TextGenerationTask.taskmethod(output_streaming=True)
    @TGIS_GENERATION.method(
        "Continue a prompt on the TGIS server, streaming TGIS's messages as they come: the first "
        "carries the input token count (and the prompt, with preserve_input_text), then one per "
        "token; the chunks join to the unary text."
    )
    def run_stream_out(self, text: str = None, **generation) -> Iterable[GeneratedTextStreamResult]:
        text, params = self.tgis_parameters(text, generation)
        request = generation_pb2.SingleGenerationRequest(
            model_id=self.base_model_name, request=generation_pb2.GenerationRequest(text=text), params=params
        )
        responses = self._stub().GenerateStream(request, timeout=self.request_timeout_seconds)
        # TGIS's first message (the input token count) is read here, so a server that is down or
        # refuses the request fails the call itself rather than the stream half-way.
        try:
            first = next(responses, None)
        except grpc.RpcError as err:
            raise self._tgis_failure(err) from err
        return self._stream(first, responses)

    def _stream(self, first, responses) -> Iterator[GeneratedTextStreamResult]:
        try:
            if first is None:
                return
            yield self._stream_message(first)
            for response in responses:
                yield self._stream_message(response)
        except grpc.RpcError as err:
            raise self._tgis_failure(err) from err
        finally:
            # A client that went away closes this generator: cancel the TGIS call with it.
            responses.cancel()

    def _stream_message(self, response) -> GeneratedTextStreamResult:
        return stream_message(
            response.text,
            response.generated_token_count,
            _finish_reason(response.stop_reason),
            response.seed or None,
            response.input_token_count,
            self.PRODUCER_ID,
        )

    # -- request checking ------------------------------------------------------------------

    def tgis_parameters(self, text, generation):
        """Check a request and map it onto TGIS's Parameters: (text, Parameters), or raise
        INVALID_ARGUMENT naming the problem."""
        text = require_text(text)
        checked = TGIS_GENERATION.check(generation, self.max_new_tokens_limit)
        sampling = generation_pb2.SamplingParameters()
        if not checked.greedy:
            sampling.temperature = checked.temperature or 0.0
            sampling.top_k = checked.top_k
            sampling.top_p = checked.top_p or 0.0
            if checked.seed is not None:
                sampling.seed = checked.seed
        stopping = generation_pb2.StoppingCriteria(
            max_new_tokens=checked.max_new_tokens,
            min_new_tokens=checked.min_new_tokens,
            stop_sequences=checked.stop_sequences,
        )
        if checked.stop_sequences:
            stopping.include_stop_sequence = True
        params = generation_pb2.Parameters(
            method=generation_pb2.DecodingMethod.GREEDY if checked.greedy else generation_pb2.DecodingMethod.SAMPLE,
            sampling=sampling,
            stopping=stopping,
            response=generation_pb2.ResponseOptions(input_text=checked.preserve_input_text),
            decoding=generation_pb2.DecodingParameters(repetition_penalty=checked.repetition_penalty or 0.0),
            truncate_input_tokens=checked.truncate_input_tokens,
        )
        return text, params

    # -- TGIS calls ------------------------------------------------------------------------

    def _stub(self):
        if self._client is None:
            raise self._unavailable(
                "is not configured: this model was loaded without a TGIS backend (add one under "
                "model_management.initializers.default.config.backend_priority)"
            )
        return self._client

    def _server(self) -> str:
        connection = self.tgis_backend.get_connection(self.base_model_name, create=False) if self.tgis_backend else None
        return connection.hostname if connection is not None else "(not configured)"

    def _unavailable(self, what: str) -> CaikitCoreException:
        """gRPC UNAVAILABLE (HTTP 500) naming the TGIS server and model: not the caller's fault."""
        message = f"the TGIS server {self._server()} for model {self.base_model_name!r} {what}"
        log.warning("%s", message)
        return CaikitCoreException(CaikitCoreStatusCode.CONNECTION_ERROR, message)

    def _tgis_failure(self, err: grpc.RpcError) -> CaikitCoreException:
        code, details = err.code(), err.details()
        if code in CALLER_ERRORS:
            return invalid_argument(f"TGIS refused the request for model {self.base_model_name!r}: {details}")
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            return self._unavailable(f"did not answer within {self.request_timeout_seconds:g} s")
        if code == grpc.StatusCode.UNAVAILABLE:
            return self._unavailable(f"is unavailable: {details}")
        return self._unavailable(f"failed the request ({code.name}): {details}")

    # -- persistence -----------------------------------------------------------------------

    def save(self, model_path: str) -> None:
        """Write config.yml (no artifacts: the weights live with TGIS), atomically."""
        with atomic_model_dir(model_path) as partial_dir:
            with ModuleSaver(self, model_path=partial_dir) as saver:
                saver.update_config(
                    {
                        "base_model_name": self.base_model_name,
                        "max_new_tokens_limit": self.max_new_tokens_limit,
                        "request_timeout_seconds": self.request_timeout_seconds,
                    }
                )

    @classmethod
    def load(cls, model_path, load_backend: Optional[TGISBackend] = None) -> "TGISTextGenerator":
        """Load from a model dir; the runtime passes the configured TGISBackend as load_backend."""
        config = ModuleConfig.load(model_path)
        if load_backend is not None and not isinstance(load_backend, TGISBackend):
            raise ValueError(f"TGISTextGenerator loads with a TGIS backend, got {type(load_backend).__name__}")
        return cls(
            config.get("base_model_name"),
            load_backend,
            config.get("max_new_tokens_limit", DEFAULT_MAX_NEW_TOKENS_LIMIT),
            config.get("request_timeout_seconds", DEFAULT_REQUEST_TIMEOUT_SECONDS),
        )


def _finish_reason(stop_reason: int) -> FinishReason:
    """TGIS's StopReason and caikit's FinishReason have the same names."""
    return FinishReason[generation_pb2.StopReason.Name(stop_reason)]
