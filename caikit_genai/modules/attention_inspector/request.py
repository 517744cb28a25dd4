"""The checked form of an attention request, and the checks of its list arguments."""

from dataclasses import dataclass
from typing import List, Optional, Sequence

import numpy as np

from ...toolkit.serving.errors import invalid_argument

# The first of each is the default.
AGGREGATES = ("none", "mean", "max", "rollout")
ATTENTION_KINDS = ("encoder", "decoder", "cross")


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


def check_kinds(kinds, model_kinds: Sequence[str], has_target: bool, aggregate: str) -> List[str]:
    """The attention kinds asked for (unset: every kind the input gives), each one the model has
    and the input and aggregate allow."""
    available = [kind for kind in model_kinds if has_target or kind == "encoder"]
    if aggregate == "rollout":
        available = [kind for kind in available if kind != "cross"]
    if not kinds:
        return available
    if isinstance(kinds, str):
        kinds = [kinds]
    wanted = [str(kind).strip().lower() for kind in kinds]
    for kind in wanted:
        if kind not in ATTENTION_KINDS:
            raise invalid_argument(f"kinds: unknown attention kind {kind!r}: choose from {', '.join(model_kinds)}")
        if kind not in model_kinds:
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


def index_list(name: str, values) -> Optional[List[int]]:
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


def check_in_range(name: str, values: Optional[List[int]], count: int, what: str) -> None:
    """INVALID_ARGUMENT naming the indices of `values` at or past `count`."""
    if values is None:
        return
    outside = [value for value in values if not 0 <= value < count]
    if outside:
        raise invalid_argument(f"{name} {outside} out of range: {what} (0 to {count - 1})")


def check_max_tokens(max_tokens) -> int:
    """0 (refuse long input) or a positive token count; unset is 0."""
    if max_tokens is None:
        return 0
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, (int, np.integer)) or max_tokens < 0:
        raise invalid_argument(f"max_tokens must be 0 (refuse long input) or a positive token count, got {max_tokens!r}")
    return int(max_tokens)
