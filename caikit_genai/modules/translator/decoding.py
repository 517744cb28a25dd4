"""How the Translator decodes: long input split into sentences, length-sorted generate() batches
(greedy or beam search) shared by concurrent requests, and token-by-token decoding with the
decoder's key/value cache for sampling and streams."""

import re
from dataclasses import dataclass
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch

from caikit.interfaces.nlp.data_model import FinishReason

from ...data_model.translation import TranslationResult
from ...toolkit.serving.errors import invalid_argument
from ...toolkit.generation import GenerationParameters, choose_next_token, sampling_rng

DEFAULT_MAX_NEW_TOKENS = 128
# Where a long input is cut into sentences: after . ! ? (and a closing quote or bracket) and spaces.
SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+")


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


def special_ids(model, target_tokenizer) -> Tuple[int, int, int]:
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


class Seq2SeqDecoding:
    """The decoding half of the Translator, kept apart from its task methods. It reads the
    Translator's model, tokenizer, target_tokenizer, has_target_tokenizer, device,
    max_input_tokens, max_new_tokens_limit, batch_size, start_id, eos_id, pad_id,
    default_num_beams, beams_up_to_tokens, and counts tokens_generated under _counter_lock."""

    def default_beams(self, pieces: Sequence[Piece]) -> int:
        """The model's default decoding for these pieces: its default_num_beams when the longest
        is within beams_up_to_tokens (or that is 0), greedy otherwise."""
        longest = max((len(piece.input_ids) for piece in pieces), default=0)
        if self.beams_up_to_tokens and longest > self.beams_up_to_tokens:
            return 1
        return self.default_num_beams

    def translate_all(
        self, texts: Sequence[str], num_beams: Optional[int] = None, max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS, **decoding
    ) -> List[str]:
        """Translations of many texts (in-process: evaluation, benchmarks), each cut to the input
        limit; `num_beams` None decodes each the model's default way (Translator.default_beams).
        `decoding`: _generate_batched's length_penalty, repetition_penalty, no_repeat_ngram_size."""
        pieces = [
            Piece(index, self.tokenizer(text, truncation=True, max_length=self.max_input_tokens)["input_ids"])
            for index, text in enumerate(texts)
        ]
        by_beams: Dict[int, List[int]] = {}
        for index, piece in enumerate(pieces):
            by_beams.setdefault(num_beams or self.default_beams([piece]), []).append(index)
        translations: List[str] = [""] * len(pieces)
        for beams, indices in by_beams.items():
            decoded = self._generate_batched(
                [pieces[index] for index in indices], min(max_new_tokens, self.max_new_tokens_limit), beams, **decoding
            )
            for index, out in zip(indices, decoded):
                translations[index] = self.detokenize(out.token_ids)
        return translations

    def detokenize(self, token_ids: Sequence[int]) -> str:
        return self.target_tokenizer.decode(list(token_ids), skip_special_tokens=True).strip()

    def target_ids(self, targets: Sequence[str], max_length: int) -> List[List[int]]:
        """Target token ids ending with the end-of-sentence token, as the decoder learns them."""
        if self.has_target_tokenizer:
            ids = self.target_tokenizer(list(targets), truncation=True, max_length=max_length)["input_ids"]
        else:
            ids = self.tokenizer(text_target=list(targets), truncation=True, max_length=max_length)["input_ids"]
        return [row if row and row[-1] == self.eos_id else (row[: max_length - 1] + [self.eos_id]) for row in ids]

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
        """One text's translation: its pieces' output joined with spaces."""
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

    def _generate_batched(
        self,
        pieces: Sequence[Piece],
        max_new_tokens: int,
        num_beams: int = 1,
        length_penalty: float = 1.0,
        min_new_tokens: int = 0,
        repetition_penalty: float = 1.0,
        no_repeat_ngram_size: int = 0,
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
                    no_repeat_ngram_size=no_repeat_ngram_size or None,
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
