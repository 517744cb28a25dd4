"""Translator: any Hugging Face encoder-decoder, served for translation and as caikit-nlp text generation.

Three tasks, one model:
- `TranslationTask` / `TranslationListTask` (ours): one text, or a list run as length-sorted
  batches; greedy or beam search, deterministic.
- caikit's `TextGenerationTask`, unary and server-streaming, as caikit-nlp serves seq2seq models
  (flan-t5), so caikit-nlp's clients work unchanged. Sampling and greedy decoding run one decoder
  step per token with its key/value cache (the stream yields each token as it is decoded, and the
  unary text is the same chunks joined); beam search is unary only.

The translation tasks decode the way the model dir says by default (`default_num_beams` beams for
inputs of up to `beams_up_to_tokens` source tokens, greedy beyond); text generation keeps
caikit-nlp's greedy default, so its stream and unary text agree.

Input longer than the model takes (`max_input_tokens`, its training length) is split into
sentences, translated as a batch and joined with spaces; a single sentence over the limit is an
INVALID_ARGUMENT unless `truncate_input_tokens` asks for cutting. `max_new_tokens` counts target
tokens per sentence.

A model dir holds `hf_model/` (the HF model and the source tokenizer) and, when the decoder has a
vocabulary of its own, `target_tokenizer/`; the AttentionInspector loads the same layout.
Decoding lives in decoding.py, the train parameters in recipe.py, the trainer in training.py.
"""

import dataclasses
import os
import threading
from typing import Dict, Iterable, List, Optional

import numpy as np
import torch

from caikit.core import ModuleBase, ModuleConfig, module
from caikit.core.data_model import DataStream
from caikit.interfaces.nlp.data_model import GeneratedTextResult, GeneratedTextStreamResult
from caikit.interfaces.nlp.tasks import TextGenerationTask

from ...data_model.translation import TranslationListResult, TranslationPair, TranslationResult
from ...tasks import TranslationListTask, TranslationTask
from ...toolkit.serving.batching import DynamicBatcher, model_id_of
from ...toolkit.models.device import serving_device
from ...toolkit.serving.errors import invalid_argument, real_number, require_text, whole_number
from ...toolkit.generation import GenerationArgument, GenerationSignature, generated_text_result, generated_text_stream
from ...toolkit.models.hf_models import HF_SUBDIR, hf_source, load_eager, model_input_limit, save_hf_model_dir
from ...toolkit.models.model_dir import BuildInfo, read_metrics
from ...toolkit.training.recipes import recipe_train
from ...toolkit.serving.thread_safe import ThreadSafeTokenizer
from .decoding import DEFAULT_MAX_NEW_TOKENS, DecodeRequest, Seq2SeqDecoding, special_ids
from .recipe import DEFAULT_MAX_NEW_TOKENS_LIMIT, TranslatorRecipe
from .training import train_translator

DEFAULT_MAX_NUM_BEAMS = 8
# The translation tasks' decoding when a request names none, chosen on translator-en-id's validation
# split with benchmarks/translator_decoding.py (its held-out scores: docs/models.md).
DEFAULT_NUM_BEAMS = 4
DEFAULT_BATCH_SIZE = 16

TRANSLATION_ARGS_DOC = """
        num_beams: Beam search width (1: greedy; at most the model's max_num_beams). Unset: the
            model's default decoding (its default_num_beams for inputs of up to its
            beams_up_to_tokens source tokens, greedy for longer ones).
        length_penalty: Beam search only: > 1 favours longer translations, < 1 shorter (default 1).
        max_new_tokens: Target tokens to generate at most per sentence (default 128, or the model's max_new_tokens_limit if lower).
        truncate_input_tokens: 0 (the default) splits input longer than the model takes into
            sentences and refuses a single sentence over it; N > 0 cuts each sentence to N tokens.
"""


def _translation_method(summary: str):
    """Give a TranslationTask method `summary` plus the shared Args section (caikit turns it into the API docs)."""

    def decorate(method):
        method.__doc__ = summary + TRANSLATION_ARGS_DOC
        return method

    return decorate


# caikit-nlp's text generation contract, as a translator reads it: greedy by default, lengths per sentence.
TRANSLATOR_GENERATION = GenerationSignature(
    unit="target token",
    text_doc="The text to translate.",
    max_new_tokens=None,
    default_max_new_tokens=DEFAULT_MAX_NEW_TOKENS,
    decoding_method="GREEDY",
    docs={
        "max_new_tokens": "Target tokens to generate at most per sentence (default {max_new_tokens_default}).",
        "min_new_tokens": "Target tokens before the end-of-sentence token or a stop sequence may end a sentence.",
        "truncate_input_tokens": "0 splits input longer than the model takes into sentences and refuses a single "
        "sentence over it; N > 0 cuts each sentence to N source tokens.",
        "preserve_input_text": "Put the source text in front of the translation (streaming: as the first message).",
    },
    extra=(
        GenerationArgument("num_beams", Optional[int], 1, "Beam search width for unary calls (1: no beam search); streaming refuses > 1."),
        GenerationArgument("length_penalty", Optional[float], 1.0, "Beam search only: > 1 favours longer output, < 1 shorter."),
    ),
)


@module(
    id="5c0b0f8e-3f0e-4f5a-9d2c-7a1e2b6c4d93",
    name="Translator",
    version="0.1.0",
    tasks=[TranslationTask, TranslationListTask, TextGenerationTask],
)
class Translator(Seq2SeqDecoding, BuildInfo, ModuleBase):
    """Translates with a Hugging Face encoder-decoder (MarianMT, T5, BART, an EncoderDecoderModel...)."""

    def __init__(
        self,
        model,
        tokenizer,
        target_tokenizer=None,
        max_input_tokens: Optional[int] = None,
        max_new_tokens_limit: int = DEFAULT_MAX_NEW_TOKENS_LIMIT,
        max_num_beams: int = DEFAULT_MAX_NUM_BEAMS,
        batch_size: int = DEFAULT_BATCH_SIZE,
        metrics: Optional[dict] = None,
        default_num_beams: int = DEFAULT_NUM_BEAMS,
        beams_up_to_tokens: int = 0,
        device: str = "auto",
        model_id: str = "translator",
    ):
        super().__init__()
        self.device = serving_device(device)
        self.model = model.to(self.device).eval()
        self.tokenizer = ThreadSafeTokenizer(tokenizer)
        self.has_target_tokenizer = target_tokenizer is not None
        self.target_tokenizer = ThreadSafeTokenizer(target_tokenizer) if target_tokenizer is not None else self.tokenizer
        self.max_input_tokens = int(max_input_tokens or model_input_limit(self.tokenizer, self.model.get_encoder()))
        self.max_new_tokens_limit = int(max_new_tokens_limit)
        self.max_num_beams = int(max_num_beams)
        self.batch_size = int(batch_size)
        # The translation tasks' decoding when a request names none (0: beams at any length).
        self.default_num_beams = min(max(1, int(default_num_beams)), self.max_num_beams)
        self.beams_up_to_tokens = int(beams_up_to_tokens)
        self.metrics = metrics or {}
        self.start_id, self.eos_id, self.pad_id = special_ids(self.model, self.target_tokenizer)
        generation_config = self.model.generation_config
        generation_config.decoder_start_token_id = self.start_id
        generation_config.eos_token_id = self.eos_id
        generation_config.pad_token_id = self.pad_id
        self.tokens_generated = 0
        self._counter_lock = threading.Lock()
        # Translations (single texts and lists) from many request threads share generate() calls (toolkit/serving/batching.py).
        self.batcher = DynamicBatcher(self._decode_requests, model_id, cost=lambda request: request.source_tokens)

    # -- translation task ------------------------------------------------------------------

    @TranslationTask.taskmethod()
    @_translation_method("Translate one text.\n\n    Args:\n        text: The text to translate.")
    def run(
        self,
        text: str = None,
        num_beams: Optional[int] = None,
        length_penalty: Optional[float] = 1.0,
        max_new_tokens: Optional[int] = None,
        truncate_input_tokens: Optional[int] = 0,
    ) -> TranslationResult:
        request = self._decode_request([require_text(text)], num_beams, length_penalty, max_new_tokens, truncate_input_tokens)
        return self._result(0, request.pieces, self.batcher.submit(request))

    @TranslationListTask.taskmethod()
    @_translation_method(
        "Translate a list of texts in one call, as length-sorted batches.\n\n    Args:\n"
        "        texts: The texts to translate (results come back in this order)."
    )
    def run_list(
        self,
        texts: List[str] = None,
        num_beams: Optional[int] = None,
        length_penalty: Optional[float] = 1.0,
        max_new_tokens: Optional[int] = None,
        truncate_input_tokens: Optional[int] = 0,
    ) -> TranslationListResult:
        if texts is None or (isinstance(texts, (list, tuple)) and not texts):
            raise invalid_argument("`texts` must be a non-empty list of non-empty strings")
        if isinstance(texts, str) or not isinstance(texts, (list, tuple)):
            raise invalid_argument(f"`texts` must be a list of strings, got {type(texts).__name__}")
        for index, text in enumerate(texts):
            require_text(text, f"texts[{index}]")
        # Through the batcher too: lists and single texts from many threads share generate() calls
        # on one worker, instead of one OpenMP team per request thread fighting over the cores.
        request = self._decode_request(texts, num_beams, length_penalty, max_new_tokens, truncate_input_tokens)
        decoded = self.batcher.submit(request)
        return TranslationListResult(results=[self._result(index, request.pieces, decoded) for index in range(len(texts))])

    def _decode_request(self, texts, num_beams, length_penalty, max_new_tokens, truncate_input_tokens) -> DecodeRequest:
        """Checked decoding settings and the encoder inputs of checked texts."""
        beams = self._check_beams(num_beams)
        penalty = real_number("length_penalty", length_penalty, 1.0)
        limits = TRANSLATOR_GENERATION.check(
            {"max_new_tokens": max_new_tokens, "truncate_input_tokens": truncate_input_tokens}, self.max_new_tokens_limit
        )
        pieces = [piece for index, text in enumerate(texts) for piece in self._pieces(text, index, limits.truncate_input_tokens)]
        return DecodeRequest(tuple(pieces), limits.max_new_tokens, beams or self.default_beams(pieces), penalty)

    # -- text generation task (caikit-nlp's contract) ----------------------------------------

    @TextGenerationTask.taskmethod()
    @TRANSLATOR_GENERATION.method("Translate a text (caikit-nlp's text generation contract).")
    def run_generate(self, text: str = None, **generation) -> GeneratedTextResult:
        text = require_text(text)
        parameters = TRANSLATOR_GENERATION.check(generation, self.max_new_tokens_limit)
        beams = self._check_beams(generation["num_beams"]) or 1  # caikit-nlp's default: greedy
        penalty = real_number("length_penalty", generation["length_penalty"], 1.0)
        pieces = self._pieces(text, 0, parameters.truncate_input_tokens)
        if beams > 1:
            decoded = self._generate_batched(
                pieces, parameters.max_new_tokens, beams, penalty, parameters.min_new_tokens, parameters.repetition_penalty
            )
            result = self._result(0, pieces, decoded)
            chunks = [(result.translation_text, result.generated_tokens, result.finish_reason)]
            parameters = dataclasses.replace(parameters, seed=None)  # beam search samples nothing
        else:
            chunks = self._stream_chunks(pieces, parameters)
        return generated_text_result(chunks, text, parameters, _source_tokens(pieces), self.PRODUCER_ID)

    @TextGenerationTask.taskmethod(output_streaming=True)
    @TRANSLATOR_GENERATION.method(
        "Translate a text, streaming the translation as it is decoded (one message per token that "
        "adds text): the chunks join to exactly the unary text for the same seed."
    )
    def run_stream_out(self, text: str = None, **generation) -> Iterable[GeneratedTextStreamResult]:
        # Checked before the generator starts, so bad input fails the call, not the stream half-way.
        text = require_text(text)
        parameters = TRANSLATOR_GENERATION.check(generation, self.max_new_tokens_limit)
        if (self._check_beams(generation["num_beams"]) or 1) > 1:
            raise invalid_argument("num_beams > 1 (beam search) is for unary calls only: a beam is not final until it ends")
        real_number("length_penalty", generation["length_penalty"], 1.0)
        pieces = self._pieces(text, 0, parameters.truncate_input_tokens)
        chunks = self._stream_chunks(pieces, parameters)
        return generated_text_stream(chunks, text, parameters, _source_tokens(pieces), self.PRODUCER_ID)

    def _check_beams(self, num_beams) -> int:
        """The beam width a request asked for, or 0 where it left it unset (None, or proto3's 0)."""
        beams = whole_number("num_beams", num_beams, 0)
        if beams == 0:
            return 0
        if not 1 <= beams <= self.max_num_beams:
            raise invalid_argument(f"num_beams must be in [1, {self.max_num_beams}] for this model, got {beams}")
        return beams

    # -- attentions ------------------------------------------------------------------------

    def attentions(self, source: str, target: str) -> Dict[str, object]:
        """Encoder, decoder and cross attentions for `source` and a given `target`, in one
        teacher-forced forward pass (never generate()): each a float32 array
        [layers, heads, queries, keys]; the decoder reads its start token, then the target's tokens."""
        source_ids = self.tokenizer(require_text(source, "source"), truncation=True, max_length=self.max_input_tokens)["input_ids"]
        target_ids = self.target_ids([require_text(target, "target")], self.max_new_tokens_limit)[0]
        decoder_ids = [self.start_id] + [token for token in target_ids if token != self.eos_id]
        with torch.inference_mode():
            output = self.model(
                input_ids=torch.tensor([source_ids], device=self.device),
                attention_mask=torch.ones((1, len(source_ids)), dtype=torch.long, device=self.device),
                decoder_input_ids=torch.tensor([decoder_ids], device=self.device),
                output_attentions=True,
            )
        return {
            "encoder": _stacked(output.encoder_attentions),
            "decoder": _stacked(output.decoder_attentions),
            "cross": _stacked(output.cross_attentions),
            "source_tokens": self.tokenizer.convert_ids_to_tokens(source_ids),
            "target_tokens": self.target_tokenizer.convert_ids_to_tokens(decoder_ids),
        }

    # -- persistence -----------------------------------------------------------------------

    def save(self, model_path: str) -> None:
        """Write config.yml, hf_model/ (model + source tokenizer), target_tokenizer/ and metrics atomically."""
        config = {
            "max_input_tokens": self.max_input_tokens,
            "max_new_tokens_limit": self.max_new_tokens_limit,
            "max_num_beams": self.max_num_beams,
            "batch_size": self.batch_size,
            "default_num_beams": self.default_num_beams,
            "beams_up_to_tokens": self.beams_up_to_tokens,
        }
        target_tokenizer = self.target_tokenizer.unwrapped if self.has_target_tokenizer else None
        save_hf_model_dir(self, model_path, self.model, self.tokenizer.unwrapped, config, self.metrics, target_tokenizer)

    @classmethod
    def load(cls, model_path) -> "Translator":
        """Load from a model dir (the runtime passes a ModuleConfig, tests and users a path)."""
        config = ModuleConfig.load(model_path)
        model_dir = config.model_path
        target_tokenizer_subdir = config.get("target_tokenizer")
        model, tokenizer, target_tokenizer = _load_hf(
            os.path.join(model_dir, config.get("hf_model", HF_SUBDIR)),
            os.path.join(model_dir, target_tokenizer_subdir) if target_tokenizer_subdir else None,
            True,
        )
        return cls(
            model,
            tokenizer,
            target_tokenizer,
            max_input_tokens=config.get("max_input_tokens"),
            max_new_tokens_limit=int(config.get("max_new_tokens_limit", DEFAULT_MAX_NEW_TOKENS_LIMIT)),
            max_num_beams=int(config.get("max_num_beams", DEFAULT_MAX_NUM_BEAMS)),
            batch_size=int(config.get("batch_size", DEFAULT_BATCH_SIZE)),
            metrics=read_metrics(model_dir, config),
            default_num_beams=int(config.get("default_num_beams", DEFAULT_NUM_BEAMS)),
            beams_up_to_tokens=int(config.get("beams_up_to_tokens", 0)),
            model_id=model_id_of(model_dir),
        )

    @classmethod
    def bootstrap(
        cls,
        base_model: str,
        max_new_tokens_limit: int = DEFAULT_MAX_NEW_TOKENS_LIMIT,
        max_num_beams: int = DEFAULT_MAX_NUM_BEAMS,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> "Translator":
        """Wrap a local Hugging Face seq2seq dir (Marian, T5, BART, mBART, NLLB, an EncoderDecoderModel;
        or one of our Translator dirs), or a hub id where a hub is reachable."""
        source = hf_source(base_model)
        model, tokenizer, target_tokenizer = _load_hf(source.path, source.target_tokenizer, source.local)
        return cls(model, tokenizer, target_tokenizer, None, max_new_tokens_limit, max_num_beams, batch_size)

    @classmethod
    @recipe_train(
        TranslatorRecipe,
        """
        training_data: TranslationPair examples: {"source": ..., "target": ...}.
        validation_data: Pairs for validation loss, BLEU and chrF (default: a val_fraction of
            training_data, chosen by a hash of the source text).
        """,
    )
    def train(
        cls,
        training_data: DataStream[TranslationPair],
        validation_data: Optional[DataStream[TranslationPair]] = None,
        preset: str = "",
        **knobs,
    ) -> "Translator":
        """Fine-tune a seq2seq model on translation pairs, or build one: a pretrained encoder, a new decoder and vocabulary."""
        return train_translator(cls, training_data, validation_data, TranslatorRecipe.build(preset, **knobs))


def _source_tokens(pieces) -> int:
    return sum(len(piece.input_ids) for piece in pieces)


def _stacked(layers) -> np.ndarray:
    """One forward pass's per-layer attentions of its single input as [layers, heads, queries, keys]."""
    if not layers or any(not isinstance(layer, torch.Tensor) for layer in layers):
        raise RuntimeError("the model returned no attention weights: load it with attn_implementation='eager'")
    return torch.stack([layer[0] for layer in layers]).float().cpu().numpy()


def _load_hf(hf_dir: str, target_tokenizer_dir: Optional[str], local: bool):
    """An HF seq2seq model (eager attention, so attentions can be asked for), its tokenizer and
    an optional target-side tokenizer."""
    tokenizer, model, target_tokenizer = load_eager(hf_dir, target_tokenizer_dir, {"local_files_only": True} if local else {})
    if not getattr(model.config, "is_encoder_decoder", False):
        raise ValueError(f"{hf_dir} is not an encoder-decoder (seq2seq) model: the Translator needs one")
    return model, tokenizer, target_tokenizer

