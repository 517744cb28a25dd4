"""What several mends share: the marks that make each mend apply once, the log channel,
whether this thread is in caikit's lazy loader's sync of `local_models_dir`, which models a live
swap is loading, and caikit's HTTP server module (absent without caikit's HTTP extra)."""

import functools
import threading
from typing import Any, Callable, Set

import alog

log = alog.use_channel("PATCHES")

_PATCHED = "_caikit_genai_patched"
_CHECKED = "_caikit_genai_checked"  # on caikit's predict calls, which serving_metrics marks _PATCHED


# Set while caikit's lazy loader syncs local_models_dir (mend 4 marks it; mends 4, 13 and 14 read it).
_LAZY_SYNC = threading.local()


def in_lazy_sync() -> bool:
    return getattr(_LAZY_SYNC, "active", False)


class _SwapLoads:
    """Model ids whose replaced dir a live swap is loading beside the served model (mend 17 adds
    them; mend 13's loader reads them: such a load's failure is the swap's to report, and the
    served model stays)."""

    def __init__(self):
        self._model_ids: Set[str] = set()
        self._lock = threading.Lock()

    def begin(self, model_id: str) -> bool:
        """False when a swap of `model_id` already runs."""
        with self._lock:
            if model_id in self._model_ids:
                return False
            self._model_ids.add(model_id)
            return True

    def end(self, model_id: str) -> None:
        with self._lock:
            self._model_ids.discard(model_id)

    def __contains__(self, model_id) -> bool:
        with self._lock:
            return model_id in self._model_ids


SWAP_LOADS = _SwapLoads()


def replace_once(owner: Any, attribute: str, wrap: Callable[[Callable], Callable], static: bool = False) -> bool:
    """`owner.attribute = wrap(original)`, unless a mend already replaced it (apply() runs again
    in tests and subprocesses). The replacement keeps the original's name and docstring and is
    marked; `static` keeps a staticmethod one. True when this call replaced it."""
    original = getattr(owner, attribute)
    if getattr(original, _PATCHED, False):
        return False
    replacement = functools.wraps(original)(wrap(original))
    setattr(replacement, _PATCHED, True)
    setattr(owner, attribute, staticmethod(replacement) if static else replacement)
    return True


def http_server_module():
    """caikit's `http_server` module, or None where caikit's HTTP extra is not installed."""
    try:
        from caikit.runtime.http_server import http_server  # pylint: disable=import-outside-toplevel
    except ImportError:
        return None
    return http_server
