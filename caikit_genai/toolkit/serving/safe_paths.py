"""The one place that turns names and paths from the network into paths on disk.

A request may name a model (`model_id`, a train call's `model_name`) or a training data file;
neither may reach outside its configured base dir. caikit 0.28.3 joins both onto its base dirs
unchecked (`os.path.join(base, "/etc")` is `/etc`, and `..` walks out), so every caller that
takes one from a request goes through these checks first.
"""

import os
import re
from typing import Optional

from .errors import invalid_argument

# One path segment: letters, digits, '.', '_' and '-', starting with a letter or digit (so no
# '.', '..', hidden or option-like names), at most 128 characters.
MODEL_NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
MODEL_NAME_RULE = (
    "1 to 128 characters of letters, digits, '.', '_' and '-', starting with a letter or digit"
)


def is_safe_model_name(name) -> bool:
    """Whether `name` can be a model dir's name: one safe path segment."""
    return isinstance(name, str) and MODEL_NAME_PATTERN.fullmatch(name) is not None


def check_model_name(name, what: str = "model_name") -> str:
    """Return `name` if it is one safe path segment, else raise INVALID_ARGUMENT saying the rule."""
    if not is_safe_model_name(name):
        raise invalid_argument(f"{what} {name!r} is not a valid model name: use {MODEL_NAME_RULE}")
    return name


def is_inside(path: str, base_dir: str, follow_symlinks: bool = True) -> bool:
    """Whether `path` lies inside `base_dir` (or is it): with every symlink resolved, or, with
    `follow_symlinks=False`, by its name alone (an operator may link a model dir in on purpose)."""
    resolve = os.path.realpath if follow_symlinks else os.path.abspath
    resolved_path, resolved_base = resolve(path), resolve(base_dir)
    return os.path.commonpath([resolved_path, resolved_base]) == resolved_base


def resolve_inside(base_dir: str, requested: str, what: str, setting: Optional[str] = None) -> str:
    """The real path of `requested` (relative to `base_dir`, or absolute) if it stays inside
    `base_dir` once symlinks are resolved; else INVALID_ARGUMENT that names neither the file's
    contents nor anything outside the base dir beyond what the caller sent.

    `setting` names the config key that sets `base_dir`, for the error message.
    """
    if not isinstance(requested, str) or not requested.strip():
        raise invalid_argument(f"{what} must be a non-empty path relative to the training data dir")
    if "\x00" in requested:
        raise invalid_argument(f"{what} {requested!r} contains a NUL character")
    candidate = os.path.join(base_dir, requested)
    if not is_inside(candidate, base_dir):
        where = f" ({setting})" if setting else ""
        raise invalid_argument(
            f"{what} {requested!r} is outside the training data dir{where}: put the data under "
            f"that dir and name it relative to it"
        )
    return os.path.realpath(candidate)

