"""Atomic model directories: a model dir either exists whole or not at all.

A save writes into a hidden sibling (`.<name>.partial-XXXX`) and renames it into place, so a
crash, a failed training or a cancelled job never leaves half a model where the runtime's
lazy loader would pick it up.

Saved files get their group the owner's permissions: OpenShift runs each pod as a random uid in
group 0, so a model one pod (a training Job) writes must be readable, and replaceable, by the
next (the server).
"""

import contextlib
import ctypes
import glob
import json
import os
import shutil
import tempfile
from typing import Iterator

import alog

from ..json_files import write_json_whole
from ..training import distributed

log = alog.use_channel("MODELDIR")

PARTIAL_MARK = ".partial-"


@contextlib.contextmanager
def atomic_model_dir(model_path: str) -> Iterator[str]:
    """Yield a temp dir to write into; on success it replaces `model_path` in one rename.

    In a data-parallel run every rank ends with the same model; only rank 0 writes it (the
    others write into a scratch dir that is thrown away)."""
    if not distributed.is_main_process():
        scratch = tempfile.mkdtemp(prefix="caikit-genai-rank-scratch-")
        try:
            yield scratch
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        log.info("rank %d leaves %s to rank 0", distributed.rank(), model_path)
        return
    model_path = os.path.abspath(model_path)
    parent, name = os.path.split(model_path)
    os.makedirs(parent, exist_ok=True)
    for stale in glob.glob(os.path.join(parent, f".{name}{PARTIAL_MARK}*")):
        shutil.rmtree(stale, ignore_errors=True)
    partial_dir = tempfile.mkdtemp(prefix=f".{name}{PARTIAL_MARK}", dir=parent)
    try:
        yield partial_dir
        os.chmod(partial_dir, 0o755)  # mkdtemp made it 0700
        share_with_group(partial_dir)
        if os.path.isdir(model_path):
            if exchange_paths(partial_dir, model_path):
                shutil.rmtree(partial_dir, ignore_errors=True)  # it now holds the old model
            else:
                retired = tempfile.mkdtemp(prefix=f".{name}.retired-", dir=parent)
                os.rename(model_path, os.path.join(retired, name))
                os.rename(partial_dir, model_path)
                shutil.rmtree(retired, ignore_errors=True)
        else:
            os.rename(partial_dir, model_path)
    except BaseException:
        shutil.rmtree(partial_dir, ignore_errors=True)
        raise
    log.debug("wrote model dir %s", model_path)


def exchange_paths(first: str, second: str) -> bool:
    """Swap two dirs in one step (Linux renameat2 RENAME_EXCHANGE), so a runtime polling the
    models dir never sees the model missing while it is replaced; False where the OS or the file
    system cannot, and the caller falls back to two renames."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    return renameat2(at_fdcwd, os.fsencode(first), at_fdcwd, os.fsencode(second), rename_exchange) == 0


def share_with_group(root: str) -> None:
    """chmod -R g=u: temp dirs are created 0700 and some savers write 0600 files."""
    for directory, _, files in os.walk(root):
        for path in [directory] + [os.path.join(directory, name) for name in files]:
            mode = os.stat(path).st_mode & 0o7777
            os.chmod(path, (mode & ~0o070) | ((mode & 0o700) >> 3))


METRICS_FILE = "metrics.json"


def write_metrics(model_dir: str, metrics: dict) -> str:
    """Write a model's metrics (what its build measured) as metrics.json; returns the file name
    for its config.yml."""
    with open(os.path.join(model_dir, METRICS_FILE), "w", encoding="utf-8") as metrics_file:
        json.dump(metrics, metrics_file, indent=2, ensure_ascii=False)
    return METRICS_FILE


def update_metrics(model_dir: str, **figures) -> None:
    """Add figures measured after a build to its metrics.json, replacing the file whole: a reader
    never sees it half-written, and the runtime, seeing the dir change, reloads the model and
    /info/models shows them."""
    write_json_whole(os.path.join(model_dir, METRICS_FILE), {**read_metrics(model_dir, {}), **figures}, indent=2)


def read_metrics(model_dir: str, config) -> dict:
    """The metrics file a model's config names ({} for a model dir without one)."""
    metrics_path = os.path.join(model_dir, config.get("metrics", METRICS_FILE))
    if not os.path.exists(metrics_path):
        return {}
    with open(metrics_path, encoding="utf-8") as metrics_file:
        return json.load(metrics_file)


class BuildInfo:
    """A module's `public_model_info`, which caikit lists in `/info/models` as each model's
    metadata: `quick` says the model is a quick build (what `make serve` serves first, until
    its full build replaces it live)."""

    metrics: dict

    @property
    def public_model_info(self) -> dict:
        return {"quick": bool((getattr(self, "metrics", None) or {}).get("quick", False))}
