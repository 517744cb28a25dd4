"""AttentionInspector: the per-layer, per-head attention weights of any HF encoder or encoder-decoder.

Implements our own `AttentionInspectionTask` (caikit and caikit-nlp have none): the RPC
`AttentionInspectionTaskPredict` and the HTTP route `POST /api/v1/task/attention-inspection`.
One forward pass with `output_attentions=True`; every model loads with the eager attention kernel,
because the sdpa and flash kernels return no weights. For an encoder-decoder model the decoder is
teacher-forced on `target_text` in that same pass, never `generate()`d, so its rows line up with
the target's tokens (what breaks BertViz's seq2seq view on generate() output, bertviz #133).

Requests from many threads share padded forward passes (toolkit/batching.py), and each request's
matrices are cut back to its own tokens, so responses are compact: nothing is padded; each attention kind's matrices
are packed in one bytes field, little-endian float16 by default (uint8 rows or float32 on
request); a request whose response would pass the model's `max_response_bytes` (3.5 MiB by
default, under gRPC's 4 MiB default receive limit) is refused before any work with a message
naming what to narrow. These are attention weights, not an explanation of the model's output.

There is nothing to train: the module has no train method. `bootstrap(base_model)` wraps any
local HF model dir, one of our caikit model dirs that holds one (`hf_model/`), or a hub id.
"""

import os
import re
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from caikit.core import ModuleBase, ModuleConfig, ModuleSaver, module
from caikit.interfaces.nlp.data_model import Token
from caikit.interfaces.vision.data_model import Image
import alog

from ..data_model.attention import ATTENTION_NOTE, AttentionResult, AttentionWeights
from ..tasks import AttentionInspectionTask
from ..toolkit import limits
from ..toolkit.batching import DynamicBatcher, model_id_of
from ..toolkit.device import resolve_device
from ..toolkit.errors import choice, invalid_argument, require_text
from ..toolkit.hf_models import hf_source, load_eager, model_input_limit
from ..toolkit.model_dir import atomic_model_dir, read_metrics, write_metrics
from ..toolkit.packing import PRECISIONS, pack_matrices
from ..toolkit.thread_safe import ThreadSafeTokenizer
from ..views.attention_heatmap import draw_attention_heatmap

log = alog.use_channel("ATTENTION")

HF_SUBDIR = "hf_model"
TARGET_TOKENIZER_SUBDIR = "target_tokenizer"

# The first of each is the default.
AGGREGATES = ("none", "mean", "max", "rollout")
ATTENTION_KINDS = ("encoder", "decoder", "cross")
# gRPC clients refuse messages over 4 MiB by default; half a MiB is left for tokens and framing.
DEFAULT_MAX_RESPONSE_BYTES = 3_670_016
# What one token costs in a response besides its text (offsets, segment, message framing).
TOKEN_OVERHEAD_BYTES = 16
PROBE_TEXT = "attention"
# Attention weights one batched forward pass may hold (float32): 256 MB. A batch that would
# pass it is split; an input alone always runs.
ATTENTION_BATCH_FLOATS = 64 * 1024 * 1024


@dataclass
class InspectionRequest:
    """A checked request: every field valid, defaults filled in (layers/heads None = all)."""

    text: str
    text_pair: Optional[str]
    target_text: Optional[str]
    layers: Optional[List[int]]
    heads: Optional[List[int]]
    kinds: List[str]
    aggregate: str
    max_tokens: int
    exclude_special_tokens: bool
    precision: str
    heatmap: bool


@dataclass
class EncodedSide:
    """One side of the model's input (encoder or decoder): what it reads and what to report."""

    model_inputs: Dict[str, List[int]]  # input_ids (+ attention_mask, token_type_ids...) or decoder ids
    tokens: List[Token]
    segments: List[int]
    special: np.ndarray  # bool per token
    truncated: bool

    def kept(self, exclude_special_tokens: bool) -> np.ndarray:
        """Indices of the tokens a response shows."""
        if exclude_special_tokens:
            return np.flatnonzero(~self.special)
        return np.arange(len(self.tokens))


@module(
    id="18c5e7e8-a2b5-4724-a2f6-60f0745e4580",
    name="AttentionInspector",
    version="0.1.0",
    task=AttentionInspectionTask,
)
class AttentionInspector(ModuleBase):
    """Serves the attention weights of a Hugging Face encoder or encoder-decoder, per layer and head."""

    def __init__(
        self,
        tokenizer,
        model,
        target_tokenizer=None,
        max_input_tokens: Optional[int] = None,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        device: str = "auto",
        metrics: Optional[dict] = None,
        model_id: str = "attention",
    ):
        super().__init__()
        self.device = resolve_device(os.environ.get("CAIKIT_GENAI_DEVICE") or device)
        # Request threads share these: HF fast tokenizers fail ("Already borrowed") when two
        # threads call one with different settings, so every call takes one lock.
        self.tokenizer = ThreadSafeTokenizer(tokenizer)
        self.target_tokenizer = ThreadSafeTokenizer(target_tokenizer) if target_tokenizer is not None else None
        self.model = model.to(self.device).eval()
        self.encoder_decoder = bool(getattr(model.config, "is_encoder_decoder", False))
        self.max_input_tokens = int(max_input_tokens or model_input_limit(tokenizer, model))
        self.max_response_bytes = int(max_response_bytes)
        self.metrics = metrics or {}
        self.decoder_start_token_id = None
        if self.encoder_decoder:
            self.decoder_start_token_id = self._decoder_start_token_id()
            self._check_target_vocabulary()
        # {kind: (layers, heads)}, read from one real forward pass: it also proves the model
        # returns attention weights at all (an sdpa-only model returns None).
        self.stacks = self._probe_stacks()
        self.batcher = DynamicBatcher(self._attention_maps_batch, model_id, cost=lambda item: len(item[0].tokens))

    @property
    def kinds(self) -> Tuple[str, ...]:
        """The attention kinds this model has."""
        return ATTENTION_KINDS if self.encoder_decoder else ATTENTION_KINDS[:1]

    # -- inference -------------------------------------------------------------------------

    @AttentionInspectionTask.taskmethod()
    def run(
        self,
        text: str = None,
        text_pair: Optional[str] = None,
        target_text: Optional[str] = None,
        layers: Optional[List[int]] = None,
        heads: Optional[List[int]] = None,
        kinds: Optional[List[str]] = None,
        aggregate: Optional[str] = "none",
        max_tokens: Optional[int] = 0,
        exclude_special_tokens: bool = False,
        precision: Optional[str] = "float16",
        heatmap: bool = False,
    ) -> AttentionResult:
        """The attention weights of each layer and head for one input (weights, not an explanation).

        Args:
            text: The input text (the encoder's input for an encoder-decoder model).
            text_pair: An optional second segment, read as the tokenizer pairs sentences
                ([CLS] text [SEP] text_pair [SEP] for BERT).
            target_text: Encoder-decoder models only: the decoder's text, teacher-forced in the
                same pass (never generated); adds the decoder and cross attention.
            layers: 0-based layers to return (unset: all).
            heads: 0-based heads to return, or to aggregate over (unset: all).
            kinds: encoder, decoder and/or cross (unset: every kind the input gives).
            aggregate: none (one matrix per layer and head, the default), mean or max over
                the heads, or rollout (Abnar & Zuidema 2020: head mean plus identity,
                multiplied up from layer 0 to each returned layer).
            max_tokens: 0 (the default) refuses input longer than the model takes; N > 0 cuts
                each side to N tokens, special tokens included.
            exclude_special_tokens: Leave out [CLS]/[SEP]-like tokens (rows and columns); each
                row is then divided by what remains of its sum (not for max).
            precision: float16 (the default), uint8 (each row scaled by its maximum / 255, with
                float32 scales in row_scales) or float32.
            heatmap: Also return a PNG heatmap of every returned matrix, with token labels.
        """
        request = self.check_request(
            text, text_pair, target_text, layers, heads, kinds, aggregate, max_tokens,
            exclude_special_tokens, precision, heatmap,
        )
        source = self.encode_source(request)
        target = self.encode_target(request) if request.target_text is not None else None
        sides = {"encoder": (source, source), "decoder": (target, target), "cross": (target, source)}
        shapes = {kind: self._matrix_shape(kind, request, *sides[kind]) for kind in request.kinds}
        self._check_response_size(request, shapes, source, target)
        attention_maps = self.batcher.submit((source, target, tuple(request.kinds)))
        groups = [self._packed_group(kind, attention_maps, request, *sides[kind]) for kind in request.kinds]
        result = AttentionResult(
            tokens=_kept(source.tokens, source.kept(request.exclude_special_tokens)),
            token_segments=_kept(source.segments, source.kept(request.exclude_special_tokens)),
            target_tokens=_kept(target.tokens, target.kept(request.exclude_special_tokens)) if target else [],
            num_layers=self.stacks["encoder"][0],
            num_heads=self.stacks["encoder"][1],
            num_decoder_layers=self.stacks.get("decoder", (0, 0))[0],
            num_decoder_heads=self.stacks.get("decoder", (0, 0))[1],
            attentions=groups,
            note=ATTENTION_NOTE,
            truncated=source.truncated or bool(target and target.truncated),
        )
        if request.heatmap:
            # Drawn from the packed weights: the picture shows exactly what the numbers say.
            result.heatmap = Image(draw_attention_heatmap(result.matrix_groups()))
            size = result.to_proto().ByteSize()
            if size > self.max_response_bytes:
                raise invalid_argument(
                    f"this response would be {_size(size)} with its heatmap, over this model's cap of "
                    f"{_size(self.max_response_bytes)}: ask for the heatmap of fewer `layers` or "
                    "`heads` (or an `aggregate`), or leave `heatmap` off"
                )
        return result

    # -- request checking ------------------------------------------------------------------

    def check_request(
        self, text, text_pair, target_text, layers, heads, kinds, aggregate, max_tokens,
        exclude_special_tokens, precision, heatmap,
    ) -> InspectionRequest:
        """Turn raw arguments into an InspectionRequest, or raise INVALID_ARGUMENT naming the problem."""
        text = require_text(text)
        text_pair = require_text(text_pair, "text_pair") if text_pair is not None else None
        target_text = require_text(target_text, "target_text") if target_text is not None else None
        if target_text is not None and not self.encoder_decoder:
            raise invalid_argument(
                "target_text is for encoder-decoder models; this model is an encoder only: leave target_text out"
            )
        aggregate = choice("aggregate", aggregate, AGGREGATES)
        precision = choice("precision", precision, tuple(PRECISIONS))
        kinds = self._check_kinds(kinds, target_text is not None, aggregate)
        layers = _index_list("layers", layers)
        heads = _index_list("heads", heads)
        for kind in kinds:
            layer_count, head_count = self.stacks[kind]
            _check_in_range("layers", layers, layer_count, f"this model's {kind} attention has {layer_count} layers")
            _check_in_range("heads", heads, head_count, f"this model's {kind} attention has {head_count} heads")
        if max_tokens is None:
            max_tokens = 0
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, (int, np.integer)) or max_tokens < 0:
            raise invalid_argument(f"max_tokens must be 0 (refuse long input) or a positive token count, got {max_tokens!r}")
        return InspectionRequest(
            text=text,
            text_pair=text_pair,
            target_text=target_text,
            layers=layers,
            heads=heads,
            kinds=kinds,
            aggregate=aggregate,
            max_tokens=int(max_tokens),
            exclude_special_tokens=bool(exclude_special_tokens),
            precision=precision,
            heatmap=bool(heatmap),
        )

    def _check_kinds(self, kinds, has_target: bool, aggregate: str) -> List[str]:
        available = [kind for kind in self.kinds if has_target or kind == "encoder"]
        if aggregate == "rollout":
            available = [kind for kind in available if kind != "cross"]
        if not kinds:
            return available
        if isinstance(kinds, str):
            kinds = [kinds]
        wanted = [str(kind).strip().lower() for kind in kinds]
        for kind in wanted:
            if kind not in ATTENTION_KINDS:
                raise invalid_argument(f"kinds: unknown attention kind {kind!r}: choose from {', '.join(self.kinds)}")
            if kind not in self.kinds:
                raise invalid_argument(f"kinds: this model is an encoder only; it has no {kind} attention")
            if kind == "cross" and aggregate == "rollout":
                raise invalid_argument(
                    "rollout is defined for self-attention (encoder, decoder), not cross attention: "
                    "leave cross out of kinds, or use aggregate mean or max"
                )
            if kind not in available:
                raise invalid_argument(f"kinds: {kind} attention needs a target_text for the decoder to read")
        if len(set(wanted)) != len(wanted):
            raise invalid_argument(f"kinds lists a kind twice: {wanted}")
        return wanted

    # -- tokens ------------------------------------------------------------------------------

    def encode_source(self, request: InspectionRequest) -> EncodedSide:
        """Tokenize text (and text_pair) as the model reads them, with offsets and segments."""
        texts = [request.text] if request.text_pair is None else [request.text, request.text_pair]
        what = "text" if request.text_pair is None else "text and text_pair"
        return self._encode(self.tokenizer, texts, request.max_tokens, what)

    def encode_target(self, request: InspectionRequest) -> EncodedSide:
        """The decoder's teacher-forced input: its start token, then target_text's tokens.

        Position i reads the target up to token i-1, exactly as generate() would have had it;
        a final end-of-sequence token is a label only, never read, so it is not shown.
        """
        tokenizer = self.target_tokenizer or self.tokenizer
        # A shared tokenizer reads the target with its target-side settings (text_target).
        as_target = self.target_tokenizer is None
        labels = self._encode(tokenizer, [request.target_text], request.max_tokens, "target_text", as_target)
        eos = getattr(tokenizer, "eos_token_id", None)
        count = len(labels.tokens)
        if count and eos is not None and labels.model_inputs["input_ids"][-1] == eos:
            count -= 1
        start = self.decoder_start_token_id
        start_token = Token(start=0, end=0, text=tokenizer.convert_ids_to_tokens([start])[0])
        return EncodedSide(
            model_inputs={"decoder_input_ids": [start] + labels.model_inputs["input_ids"][:count]},
            tokens=[start_token] + labels.tokens[:count],
            segments=[0] * (count + 1),
            special=np.concatenate([[True], labels.special[:count]]),
            truncated=labels.truncated,
        )

    def _encode(
        self, tokenizer, texts: List[str], max_tokens: int, what: str, as_target: bool = False, request: bool = True
    ) -> EncodedSide:
        """Tokens, offsets, segments and special-token flags of one side; too long is refused
        unless max_tokens cuts it; genai.limits.max_attention_tokens lowers the limit for requests."""

        def call(**options):
            if as_target:
                return tokenizer(text_target=texts[0], **options)
            return tokenizer(*texts, **options)

        full_length = len(call(truncation=False, verbose=False)["input_ids"])
        limit = limits.cap("max_attention_tokens", self.max_input_tokens) if request else self.max_input_tokens
        truncated = False
        if max_tokens:
            limit = min(max_tokens, limit)
            needed = tokenizer.num_special_tokens_to_add(pair=len(texts) == 2) + len(texts)
            if limit < needed:
                raise invalid_argument(f"max_tokens is {max_tokens}: too few for {what} and its special tokens (at least {needed})")
            truncated = full_length > limit
        elif full_length > limit:
            raise invalid_argument(
                f"{what} is {full_length} tokens long; at most {limit} are taken "
                f"({limits.cap_source('max_attention_tokens', self.max_input_tokens, 'input limit')}). "
                "Shorten it, or set max_tokens to cut it."
            )
        fast = getattr(tokenizer, "is_fast", False)
        encoded = call(
            truncation="longest_first" if truncated else False,
            max_length=limit if truncated else None,
            return_special_tokens_mask=True,
            return_offsets_mapping=fast,
        )
        special = np.array(encoded.pop("special_tokens_mask"), dtype=bool)
        offsets = encoded.pop("offset_mapping", None)
        ids = encoded["input_ids"]
        segments = _segments(special)
        if offsets is None:
            offsets = _offsets_by_search(tokenizer, ids, special, segments, texts)
        names = tokenizer.convert_ids_to_tokens(ids)
        tokens = [
            Token(start=0, end=0, text=name) if is_special else Token(start=int(start), end=int(end), text=name)
            for name, (start, end), is_special in zip(names, offsets, special)
        ]
        return EncodedSide(dict(encoded), tokens, segments, special, truncated)

    # -- the forward pass --------------------------------------------------------------------

    def _attention_maps(self, source: EncodedSide, target: Optional[EncodedSide], kinds) -> Dict[str, np.ndarray]:
        """{kind: float32 array [layers, heads, queries, keys]} from one forward pass of one input."""
        return self._attention_maps_batch([(source, target, tuple(kinds))])[0]

    def _attention_maps_batch(self, items: List[Tuple[EncodedSide, Optional[EncodedSide], Tuple[str, ...]]]) -> List[Dict[str, np.ndarray]]:
        """The batcher's function: inputs of the same shape of request (with or without a target)
        run as padded forward passes of at most ATTENTION_BATCH_FLOATS weights; each input's
        maps are cut back to its own tokens (padded keys get weight 0, padded queries are dropped)."""
        answers: List[Optional[Dict[str, np.ndarray]]] = [None] * len(items)
        order = sorted(range(len(items)), key=lambda index: (items[index][1] is not None, len(items[index][0].tokens)))
        batch: List[int] = []
        for index in order + [None]:
            if batch and (index is None or not self._fits(items, batch + [index])):
                for done, maps in zip(batch, self._padded_forward([items[i] for i in batch])):
                    answers[done] = maps
                batch = []
            if index is not None:
                batch.append(index)
        return answers

    def _fits(self, items, indices: List[int]) -> bool:
        """Whether these inputs can share one forward pass: the same sides, and their padded
        attention weights within ATTENTION_BATCH_FLOATS."""
        if len({items[index][1] is None for index in indices}) > 1:
            return False
        source_width = max(len(items[index][0].tokens) for index in indices)
        target_width = max((len(items[index][1].tokens) for index in indices if items[index][1] is not None), default=0)
        widths = {"encoder": (source_width, source_width), "decoder": (target_width, target_width), "cross": (target_width, source_width)}
        per_input = sum(layers * heads * widths[kind][0] * widths[kind][1] for kind, (layers, heads) in self.stacks.items())
        return len(indices) == 1 or len(indices) * per_input <= ATTENTION_BATCH_FLOATS

    @torch.inference_mode()
    def _padded_forward(self, items) -> List[Dict[str, np.ndarray]]:
        sources = [source for source, _, _ in items]
        inputs = _padded([source.model_inputs for source in sources], self.tokenizer.pad_token_id, self.device)
        if items[0][1] is None:
            encoder = self.model.get_encoder() if self.encoder_decoder else self.model
            outputs = {"encoder": encoder(**inputs, output_attentions=True).attentions}
        else:
            # Right padding: the causal mask keeps every real target position from seeing it.
            targets = [target.model_inputs for _, target, _ in items]
            pad = (self.target_tokenizer or self.tokenizer).pad_token_id
            decoder_ids = _padded(targets, pad, self.device)["decoder_input_ids"]
            forward = self.model(**inputs, decoder_input_ids=decoder_ids, output_attentions=True)
            outputs = {
                "encoder": forward.encoder_attentions,
                "decoder": forward.decoder_attentions,
                "cross": forward.cross_attentions,
            }
        # One copy to numpy per kind for the whole batch, [inputs, layers, heads, queries, keys].
        stacked = {kind: _stack(outputs[kind], kind) for kind in {kind for _, _, kinds in items for kind in kinds}}
        answers = []
        for row, (source, target, kinds) in enumerate(items):
            sides = {"encoder": (source, source), "decoder": (target, target), "cross": (target, source)}
            answers.append(
                {
                    kind: np.ascontiguousarray(stacked[kind][row, :, :, : len(sides[kind][0].tokens), : len(sides[kind][1].tokens)])
                    for kind in kinds
                }
            )
        return answers

    def _packed_group(self, kind, attention_maps, request: InspectionRequest, queries, keys) -> AttentionWeights:
        """One kind's matrices: selected or aggregated, special tokens left out if asked, packed."""
        matrices, layer_ids, head_ids = self._select(kind, attention_maps, request)
        matrices = matrices[..., queries.kept(request.exclude_special_tokens), :]
        matrices = matrices[..., keys.kept(request.exclude_special_tokens)]
        renormalize = request.exclude_special_tokens and request.aggregate != "max"
        if renormalize:
            matrices = renormalize_rows(matrices)
        dtype, weights, row_scales = pack_matrices(matrices, request.precision)
        return AttentionWeights(
            kind=kind,
            layers=layer_ids,
            heads=head_ids,
            aggregate=request.aggregate,
            shape=list(matrices.shape),
            dtype=dtype,
            weights=weights,
            row_scales=row_scales,
            renormalized=renormalize,
        )

    def _select(self, kind: str, attention_maps, request: InspectionRequest):
        """The matrices asked for: [layers, heads or 1, queries, keys], with their layer and head ids."""
        layer_count, head_count = self.stacks[kind]
        layers = request.layers if request.layers is not None else list(range(layer_count))
        heads = request.heads if request.heads is not None else list(range(head_count))
        weights = attention_maps[kind]
        if request.aggregate == "rollout":
            return attention_rollout(weights[:, heads])[layers][:, None], layers, heads
        chosen = weights[np.ix_(layers, heads)]
        if request.aggregate == "mean":
            return chosen.mean(axis=1, keepdims=True), layers, heads
        if request.aggregate == "max":
            return chosen.max(axis=1, keepdims=True), layers, heads
        return chosen, layers, heads

    def _matrix_shape(self, kind, request: InspectionRequest, queries: EncodedSide, keys: EncodedSide) -> List[int]:
        layer_count, head_count = self.stacks[kind]
        layers = len(request.layers) if request.layers is not None else layer_count
        heads = len(request.heads) if request.heads is not None else head_count
        return [
            layers,
            heads if request.aggregate == "none" else 1,
            len(queries.kept(request.exclude_special_tokens)),
            len(keys.kept(request.exclude_special_tokens)),
        ]

    def _check_response_size(self, request: InspectionRequest, shapes, source, target) -> None:
        """Refuse, before any work, a request whose matrices alone would pass the cap."""
        itemsize = np.dtype(PRECISIONS[request.precision]).itemsize
        matrix_bytes = sum(int(np.prod(shape)) * itemsize for shape in shapes.values())
        if request.precision == "uint8":
            matrix_bytes += sum(int(np.prod(shape[:-1])) * 4 for shape in shapes.values())
        sides = [source] + ([target] if target else [])
        token_bytes = sum(len(token.text.encode()) + TOKEN_OVERHEAD_BYTES for side in sides for token in side.tokens)
        size = matrix_bytes + token_bytes + len(ATTENTION_NOTE)
        if size <= self.max_response_bytes:
            return
        detail = "; ".join(
            f"{kind}: {shape[0]} layers x {shape[1]} {'heads' if request.aggregate == 'none' else request.aggregate} "
            f"x {shape[2]} x {shape[3]} tokens"
            for kind, shape in shapes.items()
        )
        raise invalid_argument(
            f"this response would be {_size(size)} ({detail}, as {request.precision}), over this "
            f"model's cap of {_size(self.max_response_bytes)} (gRPC clients refuse messages over "
            "4 MiB by default). Narrow it: fewer `layers` or `heads`, an `aggregate` (mean, max or rollout: "
            "one matrix per layer), `precision` uint8 (half of float16), fewer `kinds`, or fewer tokens "
            "(`max_tokens`)"
        )

    # -- model set-up ----------------------------------------------------------------------------

    def _decoder_start_token_id(self) -> int:
        for config in (getattr(self.model, "generation_config", None), self.model.config):
            start = getattr(config, "decoder_start_token_id", None)
            if start is not None:
                return int(start)
        raise ValueError("this encoder-decoder model sets no decoder_start_token_id: set it in its config.json")

    def _check_target_vocabulary(self) -> None:
        """A decoder whose vocabulary is smaller than the tokenizer's needs its own target tokenizer."""
        tokenizer = self.target_tokenizer or self.tokenizer
        decoder_vocabulary = self.model.get_decoder().get_input_embeddings().num_embeddings
        if len(tokenizer) > decoder_vocabulary:
            raise ValueError(
                f"the decoder reads {decoder_vocabulary} token ids but the tokenizer has {len(tokenizer)}: this model "
                "needs its target-side tokenizer (name its dir under target_tokenizer in the model's config.yml)"
            )

    def _probe_stacks(self) -> Dict[str, Tuple[int, int]]:
        source = self._encode(self.tokenizer, [PROBE_TEXT], 0, "probe", request=False)
        target = None
        if self.encoder_decoder:
            target = EncodedSide({"decoder_input_ids": [self.decoder_start_token_id]}, [], [], np.zeros(1, bool), False)
        maps = self._attention_maps(source, target, self.kinds)
        return {kind: (int(weights.shape[0]), int(weights.shape[1])) for kind, weights in maps.items()}

    # -- persistence ---------------------------------------------------------------------

    @classmethod
    def bootstrap(
        cls, base_model: str, max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES, device: str = "auto"
    ) -> "AttentionInspector":
        """Wrap an HF encoder or encoder-decoder (a local dir, a caikit model dir of ours that holds
        one, e.g. a Translator's, or a hub id) for attention inspection; the weights are not changed."""
        source = hf_source(base_model)
        try:
            tokenizer, model, target_tokenizer = load_eager(source.path, source.target_tokenizer, source.options)
        except OSError as err:
            raise invalid_argument(
                f"cannot load base_model {base_model!r}: not a local Hugging Face model dir, "
                f"and not reachable as a hub id ({err.__class__.__name__})"
            ) from err
        metrics = {"base_model": str(base_model), "model_type": model.config.model_type}
        return cls(tokenizer, model, target_tokenizer, None, max_response_bytes, device, metrics)

    def save(self, model_path: str) -> None:
        """Write config.yml and the HF model (with its tokenizers) atomically."""
        with atomic_model_dir(model_path) as partial_dir:
            with ModuleSaver(self, model_path=partial_dir) as saver:
                hf_dir = os.path.join(partial_dir, HF_SUBDIR)
                self.model.save_pretrained(hf_dir)
                self.tokenizer.save_pretrained(hf_dir)
                config = {
                    "hf_model": HF_SUBDIR,
                    "max_input_tokens": self.max_input_tokens,
                    "max_response_bytes": self.max_response_bytes,
                    "layers_x_heads": {kind: list(stack) for kind, stack in self.stacks.items()},
                    "metrics": write_metrics(partial_dir, self.metrics),
                }
                if self.target_tokenizer is not None:
                    self.target_tokenizer.save_pretrained(os.path.join(partial_dir, TARGET_TOKENIZER_SUBDIR))
                    config["target_tokenizer"] = TARGET_TOKENIZER_SUBDIR
                saver.update_config(config)

    @classmethod
    def load(cls, model_path) -> "AttentionInspector":
        """Load from a model dir (the runtime passes a ModuleConfig, tests and users a path)."""
        config = ModuleConfig.load(model_path)
        model_dir = config.model_path
        target = config.get("target_tokenizer")
        tokenizer, model, target_tokenizer = load_eager(
            os.path.join(model_dir, config.get("hf_model", HF_SUBDIR)),
            os.path.join(model_dir, target) if target else None,
            {"local_files_only": True},
        )
        return cls(
            tokenizer,
            model,
            target_tokenizer,
            config.get("max_input_tokens"),
            config.get("max_response_bytes", DEFAULT_MAX_RESPONSE_BYTES),
            "auto",
            read_metrics(model_dir, config),
            model_id_of(model_dir),
        )


# -- plain numpy: rollout and row sums ------------------------------------------------


def attention_rollout(weights: np.ndarray) -> np.ndarray:
    """Attention rollout (Abnar & Zuidema 2020) of [layers, heads, n, n] self-attention.

    Each layer's attention is averaged over the heads and mixed half and half with the identity
    (the residual connection), rows renormalised, then multiplied up through the layers:
    rollout[l] = A[l] @ A[l-1] @ ... @ A[0]. Returns [layers, n, n]; rows sum to 1.
    """
    mean = weights.astype(np.float64).mean(axis=1)
    identity = np.eye(mean.shape[-1])
    rolled = np.empty_like(mean)
    current = identity
    for layer, attention in enumerate(mean):
        mixed = 0.5 * attention + 0.5 * identity
        mixed /= mixed.sum(axis=-1, keepdims=True)
        current = mixed @ current
        rolled[layer] = current
    return rolled.astype(np.float32)


def renormalize_rows(matrices: np.ndarray) -> np.ndarray:
    """Divide each row by its sum (rows that kept no weight stay zero)."""
    sums = matrices.sum(axis=-1, keepdims=True)
    return np.divide(matrices, sums, out=np.zeros_like(matrices), where=sums > 0)


# -- helpers -----------------------------------------------------------------------------------------


def _stack(attentions, kind: str) -> np.ndarray:
    """A forward pass's per-layer attentions as one float32 array [inputs, layers, heads, queries, keys]."""
    if not attentions or any(not isinstance(layer, torch.Tensor) for layer in attentions):
        raise RuntimeError(
            f"the model returned no {kind} attention weights: load it with attn_implementation='eager' "
            "(the sdpa and flash kernels compute attention without returning the weights)"
        )
    return torch.stack(attentions, dim=1).float().cpu().numpy()


def _padded(model_inputs: List[Dict[str, List[int]]], pad_id: Optional[int], device) -> Dict[str, torch.Tensor]:
    """Right-padded tensors of several inputs' token lists (ids padded with pad_id, masks and
    segment ids with 0), with an attention mask that marks the real tokens."""
    width = max(len(inputs[name]) for inputs in model_inputs for name in inputs)
    padded = {}
    for name in model_inputs[0]:
        fill = (pad_id or 0) if name.endswith("input_ids") else 0
        padded[name] = torch.tensor([inputs[name] + [fill] * (width - len(inputs[name])) for inputs in model_inputs], device=device)
    if "input_ids" in padded:
        lengths = [len(inputs["input_ids"]) for inputs in model_inputs]
        padded["attention_mask"] = torch.tensor([[1] * length + [0] * (width - length) for length in lengths], device=device)
    return padded


def _segments(special: np.ndarray) -> List[int]:
    """Segment of each token: runs of ordinary tokens between special ones are segments 0, 1;
    a special token belongs to the segment before it ([CLS] to the first)."""
    segments, segment, seen_run, in_run = [], 0, False, False
    for is_special in special:
        if not is_special:
            if not in_run and seen_run:
                segment = min(segment + 1, 1)
            in_run = seen_run = True
        else:
            in_run = False
        segments.append(segment)
    return segments


def _offsets_by_search(tokenizer, ids, special, segments, texts) -> List[Tuple[int, int]]:
    """Character offsets for slow (Python) tokenizers, which report none: each token's text is
    looked for in its segment after the previous token's end (case-insensitively, as uncased
    vocabularies lower-case); a token not found gets a zero-width span where the search stands."""
    cursors = [0] * len(texts)
    offsets = []
    for token_id, is_special, segment in zip(ids, special, segments):
        if is_special:
            offsets.append((0, 0))
            continue
        piece = tokenizer.decode([token_id]).strip()
        piece = re.sub(r"^##", "", piece)
        source = texts[min(segment, len(texts) - 1)]
        cursor = cursors[segment]
        found = source.lower().find(piece.lower(), cursor) if piece else -1
        if found < 0:
            offsets.append((cursor, cursor))
            continue
        offsets.append((found, found + len(piece)))
        cursors[segment] = found + len(piece)
    return offsets


def _size(byte_count: int) -> str:
    return f"{byte_count / 2**20:.2f} MiB" if byte_count >= 2**20 else f"{byte_count / 2**10:.1f} KiB"


def _kept(values: Sequence, indices: np.ndarray) -> list:
    return [values[index] for index in indices]


def _index_list(name: str, values) -> Optional[List[int]]:
    """A list of distinct non-negative indices, or None (all) when unset or empty."""
    if values is None or (isinstance(values, (list, tuple)) and not values):
        return None
    if isinstance(values, (int, np.integer)) and not isinstance(values, bool):
        values = [values]
    if not isinstance(values, (list, tuple)) or any(
        isinstance(value, bool) or not isinstance(value, (int, np.integer)) for value in values
    ):
        raise invalid_argument(f"{name} must be a list of 0-based indices, got {values!r}")
    values = [int(value) for value in values]
    if len(set(values)) != len(values):
        raise invalid_argument(f"{name} lists an index twice: {values}")
    return values


def _check_in_range(name: str, values: Optional[List[int]], count: int, what: str) -> None:
    if values is None:
        return
    outside = [value for value in values if not 0 <= value < count]
    if outside:
        raise invalid_argument(f"{name} {outside} out of range: {what} (0 to {count - 1})")
