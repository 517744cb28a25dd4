"""The one sampler: a step's logits -> the next token, from one seeded random stream."""

from typing import Optional

import numpy as np

from .checks import GenerationParameters


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
