"""The one way modules reject bad input: the runtime turns it into gRPC INVALID_ARGUMENT
and HTTP 400, carrying the message to the caller."""

import math
from typing import Sequence

import numpy as np

from caikit.core.exceptions.caikit_core_exception import CaikitCoreException, CaikitCoreStatusCode


# The longest message sent back: gRPC carries it in a trailer, and clients drop the whole answer
# (RESOURCE_EXHAUSTED "received metadata size exceeds hard limit") past 16 KiB, percent-encoded.
MAX_MESSAGE_CHARS = 2000


def invalid_argument(message: str) -> CaikitCoreException:
    """An exception for the caller's mistake; raise it, and say what was wrong and how to fix it.
    A message that echoes a long value is cut in its middle, so its advice (at the end) stays."""
    if len(message) > MAX_MESSAGE_CHARS:
        keep = MAX_MESSAGE_CHARS // 2
        message = f"{message[:keep]} ...[{len(message) - 2 * keep:,} characters cut]... {message[-keep:]}"
    return CaikitCoreException(CaikitCoreStatusCode.INVALID_ARGUMENT, message)


def shown(value, limit: int = 80) -> str:
    """`value`'s repr for a message, cut to `limit` characters (a request may send megabytes)."""
    text = repr(value) if not isinstance(value, int) or abs(value) < 10**100 else f"<a {value.bit_length()}-bit integer>"
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text):,} characters)"


def require_text(text, name: str = "text") -> str:
    """Check a required text argument (an empty string arrives from gRPC/HTTP as None)."""
    if text is None:
        raise invalid_argument(f"`{name}` is required and must be a non-empty string")
    if not isinstance(text, str):
        raise invalid_argument(f"`{name}` must be a string, got {type(text).__name__}")
    if not text.strip():
        raise invalid_argument(f"`{name}` must be a non-empty string, got an empty or whitespace-only one")
    return text


def choice(name: str, value, allowed: Sequence[str]) -> str:
    """One of `allowed` (matched case-insensitively, returned as `allowed` spells it); unset or
    empty means the first, the default."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return allowed[0]
    if isinstance(value, str):
        for option in allowed:
            if value.strip().lower() == option.lower():
                return option
    raise invalid_argument(f"{name} must be one of {', '.join(allowed)}, got {shown(value)}")


def whole_number(name: str, value, default=None):
    """An integer argument (numpy integers too; not a bool), or `default` when unset."""
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise invalid_argument(f"{name} must be a whole number, got {shown(value)}")
    return int(value)


def number_in_range(name: str, value, low: int, high: int, default=None, high_from: str = ""):
    """A whole number in [low, high] (or `default` when unset), else INVALID_ARGUMENT saying the
    range (and `high_from`, the setting the upper bound comes from)."""
    number = whole_number(name, value, default)
    if number is not None and not low <= number <= high:
        raise invalid_argument(f"{name} must be between {low} and {high}{f' ({high_from})' if high_from else ''}, got {shown(number)}")
    return number


def real_number(name: str, value, default=None):
    """A finite real argument (integers too; not a bool), or `default` when unset."""
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise invalid_argument(f"{name} must be a number, got {shown(value)}")
    if not math.isfinite(value):
        raise invalid_argument(f"{name} must be a finite number, got {value}")
    return float(value)
