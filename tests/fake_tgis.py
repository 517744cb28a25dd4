"""A stand-in for a TGIS server, for tests: no TGIS can run here (it needs its Rust router and a
GPU-sized model), so this in-process gRPC server implements TGIS's own `generation.proto`
GenerationService, as shipped inside caikit-tgis-backend (Generate, GenerateStream, Tokenize,
ModelInfo), over a tiny local seq2seq model (tests/tiny_models.py's BART) generating with
transformers' `generate`.

It follows TGIS's wire behaviour where our module depends on it: a stream's first message
carries the input token count (and the prompt when `response.input_text` is set), then one
message per token, the last with the stop reason and the seed; unary responses prepend the prompt
when asked; a 0 in Parameters means "TGIS's default"; requests over the server's limits are
INVALID_ARGUMENT. Every request it receives is recorded, so tests can check what arrived.
`failures` and `delays` (keyed by the request's model_id) make it fail or stall on purpose.
"""

import os
import random
import threading
import time
from concurrent import futures
from dataclasses import dataclass, field
from typing import Dict, List, Tuple

import grpc
import torch
from caikit_tgis_backend.protobufs import generation_pb2, generation_pb2_grpc
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

# TGIS's defaults and limits (text-generation-inference's launcher defaults, scaled down).
DEFAULT_MAX_NEW_TOKENS = 20
MAX_NEW_TOKENS = 1024


@dataclass
class Generation:
    input_token_count: int
    pieces: List[str]  # the text of each generated token, in order; they join to the output
    stop_reason: int
    seed: int
    stop_sequence: str = ""


@dataclass
class FakeTGIS(generation_pb2_grpc.GenerationServiceServicer):
    model_dir: str
    port: int = 0
    requests: List[Tuple[str, object]] = field(default_factory=list)
    failures: Dict[str, Tuple[grpc.StatusCode, str]] = field(default_factory=dict)
    delays: Dict[str, float] = field(default_factory=dict)
    # Seconds between streamed tokens, per model_id; and how each stream ended ("completed" or
    # "cancelled": the client went away first), in order.
    token_delays: Dict[str, float] = field(default_factory=dict)
    stream_endings: List[str] = field(default_factory=list)

    def __post_init__(self):
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_dir)
        self.model = AutoModelForSeq2SeqLM.from_pretrained(self.model_dir).eval()
        self.max_sequence_length = self.tokenizer.model_max_length
        # Random weights: generate only tokens that read as plain text (no stray bytes, no EOS),
        # so outputs are legible and run to max_new_tokens or a stop sequence.
        readable = {
            token_id
            for token_id in range(len(self.tokenizer))
            if (piece := self.tokenizer.decode([token_id])).isascii() and piece.isprintable() and piece
            and token_id not in self.tokenizer.all_special_ids
        }
        self.suppressed = sorted(set(range(self.model.config.vocab_size)) - readable)
        # generate() samples from torch's global RNG: one generation at a time.
        self._lock = threading.Lock()
        self._server = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> "FakeTGIS":
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        generation_pb2_grpc.add_GenerationServiceServicer_to_server(self, self._server)
        self.port = self._server.add_insecure_port(f"127.0.0.1:{self.port}")
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop(grace=None)

    @property
    def hostname(self) -> str:
        return f"127.0.0.1:{self.port}"

    def received(self, rpc: str) -> list:
        return [request for name, request in self.requests if name == rpc]

    # -- GenerationService -----------------------------------------------------------------

    def Generate(self, request, context):  # noqa: N802 (the proto's names)
        self._record("Generate", request, context)
        responses = []
        for single in request.requests:
            generation = self._generate(single.text, request.params, context)
            text = "".join(generation.pieces)
            if request.params.response.input_text:
                text = single.text + text
            responses.append(
                generation_pb2.GenerationResponse(
                    input_token_count=generation.input_token_count,
                    generated_token_count=len(generation.pieces),
                    text=text,
                    stop_reason=generation.stop_reason,
                    stop_sequence=generation.stop_sequence,
                    seed=generation.seed,
                )
            )
        return generation_pb2.BatchedGenerationResponse(responses=responses)

    def GenerateStream(self, request, context):  # noqa: N802
        self._record("GenerateStream", request, context)
        generation = self._generate(request.request.text, request.params, context)
        yield generation_pb2.GenerationResponse(
            input_token_count=generation.input_token_count,
            text=request.request.text if request.params.response.input_text else "",
        )
        ending = {"state": "cancelled"}
        context.add_callback(lambda: self.stream_endings.append(ending["state"]))
        for count, piece in enumerate(generation.pieces, start=1):
            time.sleep(self.token_delays.get(request.model_id, 0.0))
            last = count == len(generation.pieces)
            if last:
                ending["state"] = "completed"
            yield generation_pb2.GenerationResponse(
                generated_token_count=count,
                text=piece,
                stop_reason=generation.stop_reason if last else generation_pb2.StopReason.NOT_FINISHED,
                stop_sequence=generation.stop_sequence if last else "",
                seed=generation.seed if last else 0,
            )

    def Tokenize(self, request, context):  # noqa: N802
        self._record("Tokenize", request, context)
        responses = []
        for single in request.requests:
            encoding = self.tokenizer(single.text, return_offsets_mapping=True, add_special_tokens=False)
            ids, offsets = encoding["input_ids"], encoding["offset_mapping"]
            if request.truncate_input_tokens:
                ids, offsets = ids[-request.truncate_input_tokens :], offsets[-request.truncate_input_tokens :]
            responses.append(
                generation_pb2.TokenizeResponse(
                    token_count=len(ids),
                    tokens=self.tokenizer.convert_ids_to_tokens(ids) if request.return_tokens else [],
                    offsets=[generation_pb2.TokenizeResponse.Offset(start=s, end=e) for s, e in offsets]
                    if request.return_offsets
                    else [],
                )
            )
        return generation_pb2.BatchedTokenizeResponse(responses=responses)

    def ModelInfo(self, request, context):  # noqa: N802
        self._record("ModelInfo", request, context)
        return generation_pb2.ModelInfoResponse(
            model_kind=generation_pb2.ModelInfoResponse.ModelKind.ENCODER_DECODER,
            max_sequence_length=self.max_sequence_length,
            max_new_tokens=MAX_NEW_TOKENS,
        )

    # -- generation ------------------------------------------------------------------------

    def _record(self, rpc: str, request, context) -> None:
        self.requests.append((rpc, request))
        model_id = getattr(request, "model_id", "")
        if model_id in self.delays:
            time.sleep(self.delays[model_id])
        if model_id in self.failures:
            context.abort(*self.failures[model_id])

    def _generate(self, text: str, params, context) -> Generation:
        stopping, sampling = params.stopping, params.sampling
        max_new = stopping.max_new_tokens or DEFAULT_MAX_NEW_TOKENS
        if max_new > MAX_NEW_TOKENS:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"max_new_tokens must be <= {MAX_NEW_TOKENS}")
        if stopping.min_new_tokens > max_new:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "min_new_tokens must be <= max_new_tokens")
        ids = self.tokenizer(text, return_tensors="pt")["input_ids"]
        if params.truncate_input_tokens and ids.shape[1] > params.truncate_input_tokens:
            ids = ids[:, -params.truncate_input_tokens :]
        if ids.shape[1] >= self.max_sequence_length:
            context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"input tokens ({ids.shape[1]}) plus prefix length (0) must be < {self.max_sequence_length}",
            )
        # The tiny model's decoder has few positions: like TGIS's total token limit, stop there.
        room = self.model.config.max_position_embeddings - 2
        sample = params.method == generation_pb2.DecodingMethod.SAMPLE
        seed = (sampling.seed if sampling.HasField("seed") else random.randrange(1, 2**63)) if sample else 0
        options = {
            "max_new_tokens": min(max_new, room),
            "min_new_tokens": min(stopping.min_new_tokens, room),
            "repetition_penalty": params.decoding.repetition_penalty or 1.0,
            "do_sample": sample,
            "suppress_tokens": self.suppressed,
            # BART's config forces EOS as the last token: that would clash with suppressing it.
            "forced_bos_token_id": None,
            "forced_eos_token_id": None,
        }
        if sample:
            options.update(
                temperature=sampling.temperature or 1.0,
                top_k=sampling.top_k,
                top_p=sampling.top_p or 1.0,
                typical_p=sampling.typical_p or 1.0,
            )
        with self._lock, torch.random.fork_rng(devices=[]), torch.inference_mode():
            torch.manual_seed(seed % 2**63)
            output = self.model.generate(ids, attention_mask=torch.ones_like(ids), **options)[0].tolist()
        # The decoder's start token comes first; EOS (if any) ends the output, and is not text.
        new_ids = output[1:]
        stop_reason = generation_pb2.StopReason.MAX_TOKENS if max_new <= room else generation_pb2.StopReason.TOKEN_LIMIT
        if self.tokenizer.eos_token_id in new_ids:
            new_ids = new_ids[: new_ids.index(self.tokenizer.eos_token_id)]
            stop_reason = generation_pb2.StopReason.EOS_TOKEN
        include_stop = not stopping.HasField("include_stop_sequence") or stopping.include_stop_sequence
        pieces, decoded, stop_sequence = [], "", ""
        for index in range(len(new_ids)):
            full = self.tokenizer.decode(new_ids[: index + 1], skip_special_tokens=True)
            ends = []
            if index + 1 >= stopping.min_new_tokens:
                for stop in stopping.stop_sequences:
                    found = full.find(stop, max(0, len(decoded) - len(stop) + 1))
                    if found >= 0:
                        ends.append((found + len(stop), found, stop))
            if ends:
                end, start, stop_sequence = min(ends)
                pieces.append(full[len(decoded) : end if include_stop else max(start, len(decoded))])
                stop_reason = generation_pb2.StopReason.STOP_SEQUENCE
                break
            pieces.append(full[len(decoded) :])
            decoded = full
        return Generation(ids.shape[1], pieces, stop_reason, seed, stop_sequence)


# -- the stand-in the test runtime talks to (conftest.py) ------------------------------------

README_MODEL_ID = "flan-t5-xl"  # README's model, served here by the tiny BART
TINY_TGIS_ID = "tiny-tgis"
TINY_TGIS_BASE_MODEL = "tiny-bart"
TINY_TGIS_MAX_NEW_TOKENS_LIMIT = 4096
# Model ids whose TGIS side misbehaves: nothing listens on its port / it stalls / it fails.
TGIS_DOWN_ID, TGIS_DOWN_BASE_MODEL = "tgis-down", "down-model"
TGIS_SLOW_ID, TGIS_SLOW_BASE_MODEL, TGIS_SLOW_TIMEOUT = "tgis-slow", "slow-model", 1.0
TGIS_FAILING_ID, TGIS_FAILING_BASE_MODEL = "tgis-failing", "failing-model"
TGIS_FAILURE = (grpc.StatusCode.INTERNAL, "CUDA out of memory. Tried to allocate 2.00 GiB")


def readme_tgis_yaml() -> Dict[str, dict]:
    """docs/tgis.md's two TGIS config blocks, parsed: {"runtime_config": ..., "model_config": ...}."""
    import re

    import yaml

    page = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs", "tgis.md")
    with open(page, encoding="utf-8") as page_file:
        blocks = [yaml.safe_load(block) for block in re.findall(r"```yaml\n(.*?)```", page_file.read(), re.S)]
    return {"runtime_config": blocks[0], "model_config": blocks[1]}


@dataclass
class StandIn:
    """The fake TGIS server and the runtime config (README's, pointed at it)."""

    server: FakeTGIS
    runtime_config: dict
    down_hostname: str


def start_stand_in(bart_dir: str, models_dir: str, free_port) -> StandIn:
    """Start the fake TGIS server over `bart_dir`, write the TGIS model dirs into `models_dir`,
    and return README's runtime config with the server's address filled in."""
    from caikit_genai.modules import TGISTextGenerator

    server = FakeTGIS(bart_dir).start()
    server.delays[TGIS_SLOW_BASE_MODEL] = 3 * TGIS_SLOW_TIMEOUT
    server.failures[TGIS_FAILING_BASE_MODEL] = TGIS_FAILURE
    down_hostname = f"127.0.0.1:{free_port()}"  # nothing listens there

    readme = readme_tgis_yaml()
    readme_model = os.path.join(models_dir, README_MODEL_ID)
    os.makedirs(readme_model)
    with open(os.path.join(readme_model, "config.yml"), "w", encoding="utf-8") as config_file:
        yaml_dump(readme["model_config"], config_file)
    TGISTextGenerator(TINY_TGIS_BASE_MODEL, max_new_tokens_limit=TINY_TGIS_MAX_NEW_TOKENS_LIMIT).save(
        os.path.join(models_dir, TINY_TGIS_ID)
    )
    TGISTextGenerator(TGIS_DOWN_BASE_MODEL, request_timeout_seconds=10).save(os.path.join(models_dir, TGIS_DOWN_ID))
    TGISTextGenerator(TGIS_SLOW_BASE_MODEL, request_timeout_seconds=TGIS_SLOW_TIMEOUT).save(
        os.path.join(models_dir, TGIS_SLOW_ID)
    )
    TGISTextGenerator(TGIS_FAILING_BASE_MODEL).save(os.path.join(models_dir, TGIS_FAILING_ID))

    config = readme["runtime_config"]
    tgis = config["model_management"]["initializers"]["default"]["config"]["backend_priority"][0]
    assert tgis["type"] == "TGIS", tgis
    tgis["config"]["connection"]["hostname"] = server.hostname
    tgis["config"]["remote_models"] = {TGIS_DOWN_BASE_MODEL: {"hostname": down_hostname}}
    return StandIn(server, config, down_hostname)


def yaml_dump(data, stream) -> None:
    import yaml

    yaml.safe_dump(data, stream, sort_keys=False)
