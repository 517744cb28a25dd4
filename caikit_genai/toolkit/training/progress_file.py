"""A running training's progress, as a small JSON file the runtime's HTTP server reads.

caikit 0.28.3's training status has fixed fields (state, timestamps, reasons) and no room for a
step count or an ETA, and the job runs in a spawned process the server cannot ask. So the
trainer (subprocess_training.py) names a file per training id, in a temp dir of the runtime's
process (never the models dir), and hands the name to the job's process; the one training loop
(loop.py) writes its progress there, at most once a second, each write whole (a temp file
renamed over the last), and once more when it ends. The file outlives its job, so a finished
training still answers with its last progress, as long as the runtime runs (the dir is removed
when the runtime's process exits).

GET /api/v1/trainings/{training_id}/progress (playground/routes.py) serves the file.
"""

import atexit
import json
import math
import os
import re
import shutil
import tempfile
import threading
import time
from datetime import datetime, timezone
from typing import Any, Dict, Optional

from ..json_files import write_json_whole
from ..serving.safe_paths import is_inside

# caikit's training ids: "<hashed trainer name>:<uuid>", or an external id. One file name:
# no '/', no NUL, no leading '.' (so no '.', '..' or hidden names), at most 200 characters.
TRAINING_ID_PATTERN = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._:-]{0,199}")
TRAINING_ID_RULE = "1 to 200 characters of letters, digits, '.', '_', ':' and '-', not starting with '.'"
# The loop writes at most this often (and always its first and last step).
WRITE_EVERY_SECONDS = 1.0
# A progress file is a few hundred bytes; anything bigger is not one.
MAX_PROGRESS_BYTES = 1 << 16

_dir_lock = threading.Lock()
_progress_dir: Optional[str] = None
# The file this thread's training writes to: set in the job's process (or thread) by the trainer.
_current = threading.local()


def progress_dir() -> str:
    """This process's dir of progress files, made on first use and removed when it exits."""
    global _progress_dir  # pylint: disable=global-statement
    with _dir_lock:
        if _progress_dir is None:
            _progress_dir = tempfile.mkdtemp(prefix="caikit-genai-training-progress-")
            atexit.register(shutil.rmtree, _progress_dir, True)
        return _progress_dir


def is_valid_training_id(training_id) -> bool:
    return isinstance(training_id, str) and TRAINING_ID_PATTERN.fullmatch(training_id) is not None


def progress_path(directory: str, training_id: str) -> Optional[str]:
    """The progress file of `training_id` in `directory`, or None when the id is no safe file name."""
    if not is_valid_training_id(training_id):
        return None
    path = os.path.join(directory, f"{training_id}.json")
    return path if is_inside(path, directory, follow_symlinks=False) else None


def publish_to(path: Optional[str]) -> None:
    """In a training job: the trainings this thread runs next write their progress to `path`."""
    _current.path = path


def read_progress(directory: str, training_id: str) -> Optional[Dict[str, Any]]:
    """The last progress written for `training_id`, or None where there is none (or the id is no
    safe name: the caller checks the id first to say which)."""
    path = progress_path(directory, training_id)
    if path is None or not os.path.isfile(path) or os.path.getsize(path) > MAX_PROGRESS_BYTES:
        return None
    try:
        with open(path, encoding="utf-8") as progress_file:
            return json.load(progress_file)
    except (OSError, ValueError):
        return None


class ProgressFile:
    """The loop's writer: a no-op unless the trainer named a file for this thread's job."""

    def __init__(self, total_steps: int, max_seconds: Optional[float], disabled: bool = False):
        self.path = None if disabled else getattr(_current, "path", None)
        self.total_steps, self.max_seconds = total_steps, max_seconds
        self.last_written = 0.0
        self.last_evaluation: Optional[Dict[str, float]] = None

    def update(self, steps: int, percent: float, elapsed: float, losses: Dict[str, float], final: bool = False) -> None:
        if self.path is None:
            return
        now = time.monotonic()
        if not final and steps > 1 and now - self.last_written < WRITE_EVERY_SECONDS:
            return
        self.last_written = now
        done = percent / 100
        eta = 0.0 if final else elapsed * (1 - done) / done if done > 0 else None
        self._write(
            {
                "step": steps,
                "total_steps": self.total_steps,
                "max_seconds": self.max_seconds,
                "elapsed_seconds": round(elapsed, 3),
                "eta_seconds": None if eta is None else round(eta, 3),
                "percent": round(100.0 if final else percent, 2),
                "losses": _finite_values(losses),
                "last_evaluation": None if self.last_evaluation is None else _finite_values(self.last_evaluation),
                "finished": final,
                "started": True,
                "updated_at": datetime.now(timezone.utc).isoformat(),
            }
        )

    def _write(self, progress: Dict[str, Any]) -> None:
        if not write_whole(self.path, progress):
            self.path = None  # the dir is gone (the runtime exited): stop trying


def write_whole(path: str, progress: Dict[str, Any], replace: bool = True) -> bool:
    """`write_json_whole`, or False when it could not be written: progress is a courtesy, and a
    failed write costs the training nothing."""
    try:
        write_json_whole(path, progress, replace=replace)
        return True
    except OSError:
        return False


def announce(path: Optional[str]) -> None:
    """In the runtime, as it submits a job: its progress file says `started: false` until the
    job's loop writes its first step, so a training this runtime started has progress from its
    first moment, and an unknown id has none. Never over a file the job already wrote."""
    if path is None:
        return
    starting = {
        "step": 0, "total_steps": None, "max_seconds": None, "elapsed_seconds": 0.0, "eta_seconds": None, "percent": 0.0,
        "losses": {}, "last_evaluation": None, "finished": False, "started": False,
        "updated_at": datetime.now(timezone.utc).isoformat(),
    }
    write_whole(path, starting, replace=False)


def _finite_values(values: Dict[str, Any]) -> Dict[str, Any]:
    """JSON has no NaN: a value that is not a finite number becomes null."""
    return {name: None if isinstance(value, float) and not math.isfinite(value) else value for name, value in values.items()}
