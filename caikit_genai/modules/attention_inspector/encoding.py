"""Tokenizing one side of the model's input (encoder or decoder) with what a response shows of
it: token texts, character offsets, segments and which tokens are special."""

import re
from dataclasses import dataclass
from typing import Dict, List, Sequence, Tuple

import numpy as np

from caikit.interfaces.nlp.data_model import Token

from ...toolkit.serving import limits
from ...toolkit.serving.errors import invalid_argument


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

    def shown(self, values: Sequence, exclude_special_tokens: bool) -> list:
        """The entries of a per-token list (tokens, segments) that a response shows."""
        return [values[index] for index in self.kept(exclude_special_tokens)]


def encode_side(
    tokenizer,
    texts: List[str],
    max_tokens: int,
    what: str,
    max_input_tokens: int,
    as_target: bool = False,
    request: bool = True,
) -> EncodedSide:
    """Tokens, offsets, segments and special-token flags of one side; too long is refused
    unless max_tokens cuts it; genai.limits.max_attention_tokens lowers the limit for requests."""

    def call(**options):
        if as_target:
            return tokenizer(text_target=texts[0], **options)
        return tokenizer(*texts, **options)

    full_length = len(call(truncation=False, verbose=False)["input_ids"])
    limit = limits.cap("max_attention_tokens", max_input_tokens) if request else max_input_tokens
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
            f"({limits.cap_source('max_attention_tokens', max_input_tokens, 'input limit')}). "
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


def encode_target(
    tokenizer, as_target: bool, target_text: str, max_tokens: int, max_input_tokens: int, decoder_start_token_id: int
) -> EncodedSide:
    """The decoder's teacher-forced input: its start token, then target_text's tokens.

    Position i reads the target up to token i-1, exactly as generate() would have had it;
    a final end-of-sequence token is a label only, never read, so it is not shown. `as_target`:
    a tokenizer shared by both sides reads the target with its target-side settings (text_target).
    """
    labels = encode_side(tokenizer, [target_text], max_tokens, "target_text", max_input_tokens, as_target)
    eos = getattr(tokenizer, "eos_token_id", None)
    count = len(labels.tokens)
    if count and eos is not None and labels.model_inputs["input_ids"][-1] == eos:
        count -= 1
    start_token = Token(start=0, end=0, text=tokenizer.convert_ids_to_tokens([decoder_start_token_id])[0])
    return EncodedSide(
        model_inputs={"decoder_input_ids": [decoder_start_token_id] + labels.model_inputs["input_ids"][:count]},
        tokens=[start_token] + labels.tokens[:count],
        segments=[0] * (count + 1),
        special=np.concatenate([[True], labels.special[:count]]),
        truncated=labels.truncated,
    )


def start_only(decoder_start_token_id: int) -> EncodedSide:
    """A decoder input of the start token alone (the probe pass reads the decoder's shape)."""
    return EncodedSide({"decoder_input_ids": [decoder_start_token_id]}, [], [], np.zeros(1, bool), False)


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
