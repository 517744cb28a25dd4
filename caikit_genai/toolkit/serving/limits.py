"""Size caps on requests, read in one place: `genai.limits` in runtime_config.yaml.

Each cap is checked before any work starts (no tokenizing, no forward pass) and refused with
INVALID_ARGUMENT / HTTP 400 naming the key to raise, except the request body (HTTP 413). Where
a model has a cap of its own in its config.yml (`max_new_tokens_limit`, `max_images`, its input
token limit), the runtime's cap lowers it and never raises it: `null` leaves the model's own.
README's "Limits" table lists every cap, with the gRPC message cap caikit itself reads
(`runtime.grpc.options`).
"""

from dataclasses import dataclass, fields, replace
from typing import Any, Mapping, Optional

from .errors import invalid_argument


@dataclass(frozen=True)
class Limits:
    # Characters in one text argument (each text of a list too).
    max_text_chars: int = 100_000
    # Items in one list of texts (`texts`, `stop_sequences`, ...).
    max_list_items: int = 256
    # Bytes of one HTTP request body (413 past it); gRPC's message cap is runtime.grpc.options.
    max_request_body_bytes: int = 4 * 1024 * 1024
    # Runtime-wide ceilings on the models' own caps (None: each model's own).
    max_new_tokens: Optional[int] = None
    max_images: Optional[int] = None
    max_attention_tokens: Optional[int] = None

    @classmethod
    def from_config(cls, settings: Optional[Mapping[str, Any]]) -> "Limits":
        """Limits from a `genai.limits` mapping: unknown keys and caps below 1 are refused."""
        settings = dict(settings or {})
        known = {field.name for field in fields(cls)}
        unknown = set(settings) - known
        if unknown:
            raise ValueError(f"genai.limits: unknown keys {sorted(unknown)}; known: {sorted(known)}")
        limits = replace(cls(), **settings)
        for name in known:
            value = getattr(limits, name)
            optional = cls.__dataclass_fields__[name].default is None
            if (value is None and not optional) or (
                value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1)
            ):
                raise ValueError(f"genai.limits.{name} must be a whole number >= 1{' or null' if optional else ''}, got {value!r}")
        return limits


def current() -> Limits:
    """The running runtime's limits (the defaults where caikit is not configured)."""
    import caikit  # pylint: disable=import-outside-toplevel

    return Limits.from_config((caikit.get_config().get("genai") or {}).get("limits"))


def cap(name: str, model_cap: int) -> int:
    """A model's own cap, lowered to the runtime's `genai.limits.<name>` where that is set."""
    runtime_cap = getattr(current(), name)
    return model_cap if runtime_cap is None else min(model_cap, runtime_cap)


def cap_source(name: str, model_cap: int, model_key: str) -> str:
    """Which setting a capped value comes from, for messages."""
    runtime_cap = getattr(current(), name)
    if runtime_cap is not None and runtime_cap < model_cap:
        return f"the runtime's genai.limits.{name}"
    return f"this model's {model_key}"


def check_sizes(arguments: Mapping[str, Any], limits: Optional[Limits] = None) -> None:
    """Refuse a request whose texts or lists of texts are over the caps (run by the runtime on
    every predict request's arguments, before the model sees them)."""
    limits = limits or current()
    for name, value in arguments.items():
        if isinstance(value, str):
            _check_text(name, value, limits)
        elif isinstance(value, (list, tuple)) and any(isinstance(item, str) for item in value):
            if len(value) > limits.max_list_items:
                raise invalid_argument(
                    f"`{name}` has {len(value):,} items, over the limit of {limits.max_list_items:,} "
                    "(genai.limits.max_list_items): send fewer per request"
                )
            for index, item in enumerate(value):
                if isinstance(item, str):
                    _check_text(f"{name}[{index}]", item, limits)


def _check_text(name: str, text: str, limits: Limits) -> None:
    if len(text) > limits.max_text_chars:
        raise invalid_argument(
            f"`{name}` is {len(text):,} characters, over the limit of {limits.max_text_chars:,} "
            "(genai.limits.max_text_chars): send a shorter text"
        )
