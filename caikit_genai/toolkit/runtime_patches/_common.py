"""What several mends share: the marks that make each mend apply once, the log channel, and
whether this thread is in caikit's lazy loader's sync of `local_models_dir`."""

import threading

import alog

log = alog.use_channel("PATCHES")

_PATCHED = "_caikit_genai_patched"
_CHECKED = "_caikit_genai_checked"  # on caikit's predict calls, which serving_metrics marks _PATCHED


# Set while caikit's lazy loader syncs local_models_dir (mend 1 marks it; mends 1 and 13 read it).
_LAZY_SYNC = threading.local()


def in_lazy_sync() -> bool:
    return getattr(_LAZY_SYNC, "active", False)
