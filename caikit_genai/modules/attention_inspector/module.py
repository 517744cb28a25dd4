"""AttentionInspector: the per-layer, per-head attention weights of any HF encoder or encoder-decoder.

Implements our own `AttentionInspectionTask` (caikit and caikit-nlp have none): the RPC
`AttentionInspectionTaskPredict` and the HTTP route `POST /api/v1/task/attention-inspection`.
One forward pass with `output_attentions=True`; every model loads with the eager attention kernel,
because the sdpa and flash kernels return no weights. For an encoder-decoder model the decoder is
teacher-forced on `target_text` in that same pass, never `generate()`d, so its rows line up with
the target's tokens (what breaks BertViz's seq2seq view on generate() output, bertviz #133).

Requests from many threads share padded forward passes (forward.py), and each request's
matrices are cut back to its own tokens, so responses are compact: nothing is padded; each attention kind's matrices
are packed in one bytes field, little-endian float16 by default (uint8 rows or float32 on
request); a request whose response would pass the model's `max_response_bytes` (3.5 MiB by
default, under gRPC's 4 MiB default receive limit) is refused before any work with a message
naming what to narrow. These are attention weights, not an explanation of the model's output.

There is nothing to train: the module has no train method. `bootstrap(base_model)` wraps any
local HF model dir, one of our caikit model dirs that holds one (`hf_model/`), or a hub id.
"""

from typing import Dict, List, Optional, Tuple

from caikit.core import ModuleBase, ModuleConfig, module
from caikit.interfaces.vision.data_model import Image
import alog

from ...data_model.attention import ATTENTION_NOTE, AttentionResult
from ...tasks import AttentionInspectionTask
from ...toolkit.serving.batching import DynamicBatcher, model_id_of
from ...toolkit.models.device import serving_device
from ...toolkit.serving.errors import choice, invalid_argument, require_text
from ...toolkit.models.hf_models import base_model_errors, hf_model_dir_paths, hf_source, load_eager, model_input_limit, save_hf_model_dir
from ...toolkit.models.model_dir import BuildInfo, read_metrics
from ...toolkit.serving.packing import PRECISIONS
from ...toolkit.serving.thread_safe import ThreadSafeTokenizer
from ...views.attention_heatmap import draw_attention_heatmap
from .encoding import EncodedSide, encode_side, encode_target, start_only
from .forward import AttentionPasses
from .request import AGGREGATES, ATTENTION_KINDS, InspectionRequest, check_in_range, check_kinds, check_max_tokens, index_list
from .selection import check_response_size, matrix_shape, packed_group, size_text

log = alog.use_channel("ATTENTION")

# gRPC clients refuse messages over 4 MiB by default; half a MiB is left for tokens and framing.
DEFAULT_MAX_RESPONSE_BYTES = 3_670_016
PROBE_TEXT = "attention"


@module(id="18c5e7e8-a2b5-4724-a2f6-60f0745e4580", name="AttentionInspector", version="0.1.0", task=AttentionInspectionTask)
class AttentionInspector(BuildInfo, ModuleBase):
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
        self.device = serving_device(device)
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
        self.passes = AttentionPasses(
            self.model, self.device, self.encoder_decoder, self.tokenizer.pad_token_id, self._target_side_tokenizer.pad_token_id
        )
        self.stacks = self._probe_stacks()
        self.batcher = DynamicBatcher(self.passes.maps_batch, model_id, cost=lambda item: len(item[0].tokens))

    @property
    def kinds(self) -> Tuple[str, ...]:
        """The attention kinds this model has."""
        return ATTENTION_KINDS if self.encoder_decoder else ATTENTION_KINDS[:1]

    @property
    def _target_side_tokenizer(self):
        """The tokenizer of the decoder's text: its own, or the shared one."""
        return self.target_tokenizer or self.tokenizer

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
        shapes = {kind: matrix_shape(kind, self.stacks, request, *sides[kind]) for kind in request.kinds}
        check_response_size(request, shapes, source, target, self.max_response_bytes)
        attention_maps = self.batcher.submit((source, target, tuple(request.kinds)))
        exclude = request.exclude_special_tokens
        result = AttentionResult(
            tokens=source.shown(source.tokens, exclude),
            token_segments=source.shown(source.segments, exclude),
            target_tokens=target.shown(target.tokens, exclude) if target else [],
            num_layers=self.stacks["encoder"][0],
            num_heads=self.stacks["encoder"][1],
            num_decoder_layers=self.stacks.get("decoder", (0, 0))[0],
            num_decoder_heads=self.stacks.get("decoder", (0, 0))[1],
            attentions=[packed_group(kind, self.stacks, attention_maps, request, *sides[kind]) for kind in request.kinds],
            note=ATTENTION_NOTE,
            truncated=source.truncated or bool(target and target.truncated),
        )
        if request.heatmap:
            # Drawn from the packed weights: the picture shows exactly what the numbers say.
            result.heatmap = Image(draw_attention_heatmap(result.matrix_groups()))
            size = result.to_proto().ByteSize()
            if size > self.max_response_bytes:
                raise invalid_argument(
                    f"this response would be {size_text(size)} with its heatmap, over this model's cap of "
                    f"{size_text(self.max_response_bytes)}: ask for the heatmap of fewer `layers` or "
                    "`heads` (or an `aggregate`), or leave `heatmap` off"
                )
        return result

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
        kinds = check_kinds(kinds, self.kinds, target_text is not None, aggregate)
        layers = index_list("layers", layers)
        heads = index_list("heads", heads)
        for kind in kinds:
            layer_count, head_count = self.stacks[kind]
            check_in_range("layers", layers, layer_count, f"this model's {kind} attention has {layer_count} layers")
            check_in_range("heads", heads, head_count, f"this model's {kind} attention has {head_count} heads")
        return InspectionRequest(
            text=text,
            text_pair=text_pair,
            target_text=target_text,
            layers=layers,
            heads=heads,
            kinds=kinds,
            aggregate=aggregate,
            max_tokens=check_max_tokens(max_tokens),
            exclude_special_tokens=bool(exclude_special_tokens),
            precision=precision,
            heatmap=bool(heatmap),
        )

    def encode_source(self, request: InspectionRequest) -> EncodedSide:
        """Tokenize text (and text_pair) as the model reads them, with offsets and segments."""
        texts = [request.text] if request.text_pair is None else [request.text, request.text_pair]
        what = "text" if request.text_pair is None else "text and text_pair"
        return encode_side(self.tokenizer, texts, request.max_tokens, what, self.max_input_tokens)

    def encode_target(self, request: InspectionRequest) -> EncodedSide:
        """The decoder's teacher-forced input: its start token, then target_text's tokens."""
        return encode_target(
            self._target_side_tokenizer,
            self.target_tokenizer is None,
            request.target_text,
            request.max_tokens,
            self.max_input_tokens,
            self.decoder_start_token_id,
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
        tokenizer = self._target_side_tokenizer
        decoder_vocabulary = self.model.get_decoder().get_input_embeddings().num_embeddings
        if len(tokenizer) > decoder_vocabulary:
            raise ValueError(
                f"the decoder reads {decoder_vocabulary} token ids but the tokenizer has {len(tokenizer)}: this model "
                "needs its target-side tokenizer (name its dir under target_tokenizer in the model's config.yml)"
            )

    def _probe_stacks(self) -> Dict[str, Tuple[int, int]]:
        """{kind: (layers, heads)}, read from one real forward pass."""
        source = encode_side(self.tokenizer, [PROBE_TEXT], 0, "probe", self.max_input_tokens, request=False)
        target = start_only(self.decoder_start_token_id) if self.encoder_decoder else None
        return self.passes.probe(source, target, self.kinds)

    # -- persistence ---------------------------------------------------------------------

    @classmethod
    def bootstrap(
        cls, base_model: str, max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES, device: str = "auto"
    ) -> "AttentionInspector":
        """Wrap an HF encoder or encoder-decoder (a local dir, a caikit model dir of ours that holds
        one, e.g. a Translator's, or a hub id) for attention inspection; the weights are not changed."""
        source = hf_source(base_model)
        with base_model_errors(base_model):
            tokenizer, model, target_tokenizer = load_eager(source.path, source.target_tokenizer, source.options)
        metrics = {"base_model": str(base_model), "model_type": model.config.model_type}
        return cls(tokenizer, model, target_tokenizer, None, max_response_bytes, device, metrics)

    def save(self, model_path: str) -> None:
        """Write config.yml and the HF model (with its tokenizers) atomically."""
        save_hf_model_dir(
            self,
            model_path,
            self.model,
            self.tokenizer.unwrapped,
            {
                "max_input_tokens": self.max_input_tokens,
                "max_response_bytes": self.max_response_bytes,
                "layers_x_heads": {kind: list(stack) for kind, stack in self.stacks.items()},
            },
            self.metrics,
            self.target_tokenizer.unwrapped if self.target_tokenizer is not None else None,
        )

    @classmethod
    def load(cls, model_path) -> "AttentionInspector":
        """Load from a model dir (the runtime passes a ModuleConfig, tests and users a path)."""
        config = ModuleConfig.load(model_path)
        hf_dir, target_tokenizer_dir = hf_model_dir_paths(config)
        tokenizer, model, target_tokenizer = load_eager(hf_dir, target_tokenizer_dir, {"local_files_only": True})
        return cls(
            tokenizer,
            model,
            target_tokenizer,
            config.get("max_input_tokens"),
            config.get("max_response_bytes", DEFAULT_MAX_RESPONSE_BYTES),
            "auto",
            read_metrics(config.model_path, config),
            model_id_of(config.model_path),
        )
