"""caikit-nlp's generation parameters checked in one place: the same defaults and the same
INVALID_ARGUMENT messages for every generator."""

import random
from dataclasses import dataclass
from typing import List, Optional

import numpy as np

from ..serving import limits
from ..serving.errors import choice, invalid_argument, real_number, whole_number

DECODING_METHODS = ("SAMPLING", "GREEDY")
MAX_SEED = 2**64 - 1


@dataclass
class GenerationParameters:
    """Checked generation parameters: every field is valid and has its default filled in (with
    `server_defaults`, unset temperature, top_p, repetition_penalty and seed stay None)."""

    max_new_tokens: int
    min_new_tokens: int
    truncate_input_tokens: int
    greedy: bool
    temperature: Optional[float]
    top_k: int
    top_p: Optional[float]
    repetition_penalty: Optional[float]
    seed: Optional[int]  # None for greedy decoding
    stop_sequences: List[str]
    preserve_input_text: bool = False


def check_generation_parameters(
    max_new_tokens,
    min_new_tokens,
    truncate_input_tokens,
    decoding_method,
    top_k,
    top_p,
    temperature,
    repetition_penalty,
    stop_sequences,
    seed,
    *,
    max_new_tokens_limit: int,
    default_max_new_tokens: int,
    default_temperature: Optional[float],
    default_decoding_method: str = DECODING_METHODS[0],
    unit: str = "token",
    server_defaults: bool = False,
    preserve_input_text=False,
) -> GenerationParameters:
    """Turn raw request arguments into GenerationParameters, or raise INVALID_ARGUMENT naming the problem."""
    max_new = check_max_new_tokens(max_new_tokens, default_max_new_tokens, max_new_tokens_limit, unit)
    min_new = whole_number("min_new_tokens", min_new_tokens, 0)
    if min_new < 0:
        raise invalid_argument(f"min_new_tokens must be 0 or more, got {min_new}")
    if min_new > max_new:
        raise invalid_argument(f"min_new_tokens ({min_new}) must not exceed max_new_tokens ({max_new})")
    truncate = whole_number("truncate_input_tokens", truncate_input_tokens, 0)
    if truncate < 0:
        raise invalid_argument(f"truncate_input_tokens must be 0 (the whole input) or a positive count, got {truncate}")

    methods = (default_decoding_method,) + tuple(m for m in DECODING_METHODS if m != default_decoding_method)
    method = choice("decoding_method", decoding_method, methods)
    temperature = real_number("temperature", temperature, default_temperature)
    if temperature is not None and temperature < 0:
        raise invalid_argument(f"temperature must be 0 (greedy) or more, got {temperature}")
    top_k = whole_number("top_k", top_k, 0)
    if top_k < 0:
        raise invalid_argument(f"top_k must be 0 (all {unit}s) or a positive count, got {top_k}")
    top_p = real_number("top_p", top_p, None if server_defaults else 1.0)
    if top_p is not None and not 0 < top_p <= 1:
        raise invalid_argument(f"top_p must be in (0, 1], got {top_p}")
    penalty = real_number("repetition_penalty", repetition_penalty, None if server_defaults else 1.0)
    if penalty is not None and penalty <= 0:
        raise invalid_argument(f"repetition_penalty must be above 0 (1 means none), got {penalty}")
    greedy = method == "GREEDY" or temperature == 0
    if server_defaults:
        seed = None if seed is None else check_seed(seed, greedy=False)
    else:
        seed = check_seed(seed, greedy)
    return GenerationParameters(
        max_new_tokens=max_new,
        min_new_tokens=min_new,
        truncate_input_tokens=truncate,
        greedy=greedy,
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        repetition_penalty=penalty,
        seed=seed,
        stop_sequences=check_stop_sequences(stop_sequences),
        preserve_input_text=bool(preserve_input_text),
    )


def check_max_new_tokens(max_new_tokens, default: int, model_limit: int, unit: str = "token") -> int:
    """max_new_tokens (`default` when unset), at least 1 and at most the model's
    max_new_tokens_limit, lowered by the runtime's genai.limits.max_new_tokens."""
    limit = limits.cap("max_new_tokens", model_limit)
    max_new = whole_number("max_new_tokens", max_new_tokens, min(default, limit))
    if max_new < 1:
        raise invalid_argument(f"max_new_tokens must be at least 1 {unit}, got {max_new}")
    if max_new > limit:
        raise invalid_argument(
            f"max_new_tokens is {max_new}, above the limit of {limit} {unit}s "
            f"({limits.cap_source('max_new_tokens', model_limit, 'max_new_tokens_limit')})"
        )
    return max_new


def check_seed(seed, greedy: bool) -> Optional[int]:
    """The seed to sample with (a fresh one when unset); None for greedy decoding."""
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))):
        raise invalid_argument(f"seed must be a whole number, got {seed!r}")
    if seed is not None and not 0 <= int(seed) <= MAX_SEED:
        raise invalid_argument(f"seed must be in [0, 2**64 - 1], got {seed}")
    if greedy:
        return None
    # Drawn seeds skip 0, which proto3 cannot tell from "no seed".
    return random.SystemRandom().randrange(1, 2**63) if seed is None else int(seed)


def check_stop_sequences(stop_sequences) -> List[str]:
    if stop_sequences is None:
        return []
    if isinstance(stop_sequences, str):
        stop_sequences = [stop_sequences]
    stop_sequences = list(stop_sequences)
    for stop in stop_sequences:
        if not isinstance(stop, str) or not stop:
            raise invalid_argument(f"stop_sequences must be non-empty strings, got {stop!r}")
    return stop_sequences
