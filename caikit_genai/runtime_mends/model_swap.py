"""17. A served model's dir replaced on disk (a model retrained or rebuilt and saved over it, an
operator updating a PVC) is never noticed by caikit 0.28.3: its lazy loader loads dirs it has
not loaded and unloads dirs that are gone, so the model loaded first serves until a restart.

Here each poll of local_models_dir also compares each served model's dir with the dir it was
loaded from. A replaced dir is loaded beside the served model, which keeps answering; once the
new model has loaded, the ModelManager's entry is switched to it. Requests already running hold
the old model object and finish on it. A new dir that fails to load leaves the old model
serving: `/info/models` lists that model with the reason (`metadata.swap_error`), and the dir is
tried again only when its files change (mend 13's `dir_fingerprint`). `genai.model_swap.enabled:
false` turns swaps off.

A dir's identity is the (device, inode, mtime) of the dir and of its config.yml, read before a
load starts: a new dir renamed into place (our saves, toolkit/models/model_dir.py) has a new
inode, a symlink pointed elsewhere a new target, a rewritten config.yml a new mtime; it costs
two stat calls per model per poll, where a fingerprint reads every file's. A file rewritten in
place does not count (it may be half written): replace the dir, or write config.yml last.
"""

import os
import threading
import time
import weakref
from typing import Optional, Tuple

from ..toolkit.settings import genai_flag
from ._common import SWAP_LOADS, log, replace_once
from .failed_loads import LOAD_FAILURES, LoadFailures, _first_error, dir_fingerprint

# A replaced dir that failed to load, while the model before it serves on. LoadFailures' back-off
# is not used: a swap is tried again only when the files change.
SWAP_FAILURES = LoadFailures()


def swap_enabled() -> bool:
    return genai_flag("model_swap", "enabled", default=True)


def dir_identity(path: str) -> Optional[Tuple]:
    """(device, inode, mtime) of the dir and of its config.yml (None for a dir without one);
    None when no dir is there."""
    try:
        directory = os.stat(path)
    except OSError:
        return None
    try:
        config = os.stat(os.path.join(path, "config.yml"))
        config_identity = (config.st_dev, config.st_ino, config.st_mtime_ns)
    except OSError:
        config_identity = None
    return (directory.st_dev, directory.st_ino, directory.st_mtime_ns, config_identity)


class ServedDirs:
    """The identity of the dir each of caikit's LoadedModels was loaded from (forgotten with it)."""

    def __init__(self):
        self._identities = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    def note(self, loaded, identity: Tuple) -> None:
        """The first note of a LoadedModel stands: it was taken before its load began."""
        with self._lock:
            self._identities.setdefault(loaded, identity)

    def get(self, loaded) -> Optional[Tuple]:
        with self._lock:
            return self._identities.get(loaded)


SERVED_DIRS = ServedDirs()


def _models_dir_path(manager, model_id) -> Optional[str]:
    """Where the lazy loader finds `model_id`; None without a models dir."""
    models_dir = manager._local_models_dir  # pylint: disable=protected-access
    return os.path.join(models_dir, model_id) if models_dir and isinstance(model_id, str) else None


def replaced_dirs_swap_live() -> None:
    # pylint: disable=import-outside-toplevel
    from caikit.runtime.model_management.model_manager import ModelManager
    from caikit.runtime.servicers.info_servicer import InfoServicer

    replace_once(ModelManager, "load_model", _noting_the_dir)
    replace_once(ModelManager, "_local_models_dir_sync", _swapping_replaced_dirs)
    replace_once(InfoServicer, "_get_models_info", _listing_swap_failures)


def _noting_the_dir(load_model):
    def load_model_noting_its_dir(self, model_id, local_model_path, *args, **kwargs):
        served_path = _models_dir_path(self, model_id)
        identity = dir_identity(local_model_path) if local_model_path == served_path else None
        before = self.loaded_models.get(model_id)
        loaded = load_model(self, model_id, local_model_path, *args, **kwargs)
        if identity is not None and loaded is not None and loaded is not before:
            SERVED_DIRS.note(loaded, identity)
        return loaded

    return load_model_noting_its_dir


def _swapping_replaced_dirs(local_models_dir_sync):
    def local_models_dir_sync_swapping(self, *args, **kwargs):
        synced = local_models_dir_sync(self, *args, **kwargs)
        for model_id in SWAP_FAILURES.all():
            if model_id not in self.loaded_models:
                SWAP_FAILURES.forget(model_id)
        if swap_enabled():
            for model_id, loaded in list(self.loaded_models.items()):
                _swap_if_replaced(self, model_id, loaded)
        return synced

    return local_models_dir_sync_swapping


def _swap_if_replaced(manager, model_id: str, served) -> None:
    """Start loading `model_id`'s dir beside `served` when the dir is no longer the one it was
    loaded from, and has not failed to load as it is."""
    path = _models_dir_path(manager, model_id)
    if served.path() != path or served.loading() or LOAD_FAILURES.get(model_id) is not None:
        return  # not from the models dir, still loading, or failed (mend 13's)
    identity, served_identity = dir_identity(path), SERVED_DIRS.get(served)
    if identity is None:
        return  # gone: caikit's sync unloads it
    if served_identity is None:
        SERVED_DIRS.note(served, identity)  # loaded some other way: from now on
        return
    if identity == served_identity:
        SWAP_FAILURES.forget(model_id)  # the dir it serves is back in place
        return
    failure = SWAP_FAILURES.get(model_id)
    if failure is not None and failure.unchanged():
        return
    if manager._model_write_in_progress(path):  # pylint: disable=protected-access
        return
    if SWAP_LOADS.begin(model_id):
        threading.Thread(
            target=_swap, args=(manager, model_id, served, path, identity), name=f"model-swap-{model_id}", daemon=True
        ).start()


def _swap(manager, model_id: str, served, path: str, identity: Tuple) -> None:
    """Load the new dir with the runtime's loader (no retries, no unload on failure), then
    switch the entry, unless the model was unloaded or replaced meanwhile."""
    # pylint: disable=import-outside-toplevel,protected-access
    from caikit.runtime.names import LOCAL_MODEL_TYPE
    from caikit.runtime.types.caikit_runtime_exception import CaikitRuntimeException

    try:
        fingerprint, started = dir_fingerprint(path), time.monotonic()
        log.info("model %s: its dir was replaced; loading the new one while the model before it serves", model_id)
        try:
            candidate = manager.model_loader.load_model(model_id, path, LOCAL_MODEL_TYPE, fail_callback=None, retries=0)
            candidate.wait()
        except Exception as err:  # pylint: disable=broad-exception-caught
            failure = SWAP_FAILURES.record(model_id, path, fingerprint, _first_error(err))
            log.error(
                "model %s: its new dir failed to load: %s. The model before it keeps serving; the dir is tried "
                "again when its files change.", model_id, failure.reason,
            )
            return
        try:
            candidate.set_size(manager.model_sizer.get_model_size(model_id, path, LOCAL_MODEL_TYPE))
        except CaikitRuntimeException:
            candidate.set_size(0)
        with manager._loaded_models_lock:
            if manager.loaded_models.get(model_id) is not served:
                log.info("model %s was unloaded or replaced while its new dir loaded: no swap", model_id)
                return
            SERVED_DIRS.note(candidate, identity)
            manager.loaded_models[model_id] = candidate
        SWAP_FAILURES.forget(model_id)
        log.info("model %s now serves its new dir (loaded in %.1f s)", model_id, time.monotonic() - started)
    finally:
        SWAP_LOADS.end(model_id)


def _listing_swap_failures(get_models_info):
    """caikit's `/info/models` listing, with the reason on each served model whose replaced dir
    failed to load."""

    def models_info_with_swap_failures(self, model_ids=None):
        from caikit.interfaces.runtime.data_model import (  # pylint: disable=import-outside-toplevel
            ModelInfo,
            ModelInfoResponse,
        )

        listed = get_models_info(self, model_ids=model_ids)
        failures = SWAP_FAILURES.all()
        if not failures:
            return listed
        models = []
        for info in listed.models:
            failure = failures.get(info.name)
            if failure is not None and info.loaded:
                metadata = {**(info.metadata or {}), "swap_error": failure.reason, "swap_failed_at": failure.failed_at}
                info = ModelInfo(
                    model_path=info.model_path, name=info.name, size=info.size, metadata=metadata, loaded=info.loaded,
                    module_id=info.module_id, module_metadata=info.module_metadata,
                )
            models.append(info)
        return ModelInfoResponse(models=models)

    return models_info_with_swap_failures
