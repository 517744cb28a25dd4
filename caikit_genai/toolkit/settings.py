"""caikit_genai's own keys (`genai.*`) in caikit's config, read one way.

A key set from the environment (`GENAI_MODEL_SWAP_ENABLED=off`) can arrive as a string, so an
on/off key is read by its meaning: "1", "true", "yes" or "on" turn it on, any other string
turns it off (never "a non-empty string, so on").
"""

from typing import Any

ON = ("1", "true", "yes", "on")


def genai_setting(*path: str, default: Any = None, config=None) -> Any:
    """The value at `genai.<path>`, or `default` where it is not set."""
    from caikit.config import get_config  # pylint: disable=import-outside-toplevel

    node = (config or get_config()).get("genai") or {}
    for key in path[:-1]:
        node = node.get(key) or {}
    return node.get(path[-1], default)


def genai_flag(*path: str, default: bool = False, config=None) -> bool:
    """An on/off key at `genai.<path>`."""
    value = genai_setting(*path, default=default, config=config)
    if isinstance(value, str):
        return value.strip().lower() in ON
    return bool(value)
