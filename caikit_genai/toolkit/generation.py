"""Generation parameters, checked in one place for every generator (CharTextGenerator,
Translator): caikit-nlp's names, the same defaults, the same INVALID_ARGUMENT messages, and
one sampler that turns a step's logits into the next token.

`unit` names what a token is for the module ("character" for the char RNN, "token" for a
subword model), so messages speak the caller's language.
"""

import random
from dataclasses import dataclass
from typing import List, Optional

import numpy as np

from . import limits
from .errors import choice, invalid_argument, real_number, whole_number

# The first is the default.
DECODING_METHODS = ("SAMPLING", "GREEDY")
MAX_SEED = 2**64 - 1


@dataclass
class GenerationParameters:
    """Checked generation parameters: every field is valid and has its default filled in."""

    max_new_tokens: int
    min_new_tokens: int
    truncate_input_tokens: int
    greedy: bool
    temperature: float
    top_k: int
    top_p: float
    repetition_penalty: float
    seed: Optional[int]  # None for greedy decoding
    stop_sequences: List[str]


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
    default_temperature: float,
    default_decoding_method: str = DECODING_METHODS[0],
    unit: str = "token",
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
        raise invalid_argument(
            f"truncate_input_tokens must be 0 (read the whole input) or a positive count, got {truncate}"
        )

    methods = (default_decoding_method,) + tuple(m for m in DECODING_METHODS if m != default_decoding_method)
    method = choice("decoding_method", decoding_method, methods)
    temperature = real_number("temperature", temperature, default_temperature)
    if temperature < 0:
        raise invalid_argument(f"temperature must be 0 (greedy) or more, got {temperature}")
    top_k = whole_number("top_k", top_k, 0)
    if top_k < 0:
        raise invalid_argument(f"top_k must be 0 (all {unit}s) or a positive count, got {top_k}")
    top_p = real_number("top_p", top_p, 1.0)
    if not 0 < top_p <= 1:
        raise invalid_argument(f"top_p must be in (0, 1], got {top_p}")
    penalty = real_number("repetition_penalty", repetition_penalty, 1.0)
    if penalty <= 0:
        raise invalid_argument(f"repetition_penalty must be above 0 (1 means none), got {penalty}")
    greedy = method == "GREEDY" or temperature == 0
    return GenerationParameters(
        max_new_tokens=max_new,
        min_new_tokens=min_new,
        truncate_input_tokens=truncate,
        greedy=greedy,
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        repetition_penalty=penalty,
        seed=check_seed(seed, greedy),
        stop_sequences=check_stop_sequences(stop_sequences),
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


def sampling_rng(parameters: GenerationParameters) -> Optional[np.random.Generator]:
    """The random stream one generation samples from (None for greedy): a seed gives one stream."""
    return None if parameters.greedy else np.random.Generator(np.random.PCG64(parameters.seed))


def choose_next_token(logits: np.ndarray, parameters: GenerationParameters, rng, seen: np.ndarray) -> int:
    """Pick the next token: CTRL's repetition penalty on `seen` tokens, then greedy argmax or
    temperature / top-k / top-p sampling with `rng`."""
    logits = logits.astype(np.float64)
    if parameters.repetition_penalty != 1.0:
        penalised = logits[seen]
        logits[seen] = np.where(
            penalised > 0, penalised / parameters.repetition_penalty, penalised * parameters.repetition_penalty
        )
    if parameters.greedy:
        return int(np.argmax(logits))
    logits = logits / parameters.temperature
    if 0 < parameters.top_k < len(logits):
        threshold = np.partition(logits, -parameters.top_k)[-parameters.top_k]
        logits = np.where(logits < threshold, -np.inf, logits)
    probabilities = np.exp(logits - logits.max())
    probabilities /= probabilities.sum()
    if parameters.top_p < 1.0:
        order = np.argsort(-probabilities, kind="stable")
        cumulative = np.cumsum(probabilities[order])
        keep = order[: int(np.searchsorted(cumulative, parameters.top_p)) + 1]
        kept = np.zeros_like(probabilities)
        kept[keep] = probabilities[keep]
        probabilities = kept / kept.sum()
    cumulative = np.cumsum(probabilities)
    index = int(np.searchsorted(cumulative, rng.random() * cumulative[-1], side="right"))
    return min(index, len(probabilities) - 1)
