"""13. Models that fail to load (a corrupt config.yml, a missing or truncated artifact): caikit
lists them in `/info/models` as `loaded: false`, like a model still loading, with no reason;
it loads them again on every request (three attempts each, with `lazy_load_retries: 2`), and
its lazy loader tries them again after each of those. Here a failed load is remembered with
a fingerprint of its dir (file names, sizes, mtimes): `/info/models` lists it with the reason
(`metadata.load_error`) and the attempts made, a request for it is NOT_FOUND with the reason
at once, and nothing loads it again until its files change (a fixed or replaced model dir
loads at the next poll) or, in case the cause was passing, until a back-off has run out: a
minute after the first failed attempt, doubling with each one, an hour at most.

Failures are recorded through caikit's own extension point: `FailureRememberingLoader`, the
runtime's model loader (`model_management.loaders.default` in runtime_config.yaml). What caikit
offers no hook for (its ModelManager retrying, waiting on and listing a failed model) is mended.
"""

import datetime
import functools
import hashlib
import os
import threading
import time
from dataclasses import dataclass
from typing import Dict, Optional

import grpc
from caikit.runtime.model_management.core_model_loader import CoreModelLoader

from ._common import SWAP_LOADS, in_lazy_sync, log


def dir_fingerprint(path: str) -> Optional[str]:
    """A digest of every file's name, size and mtime under `path`: it changes when a file is
    written, replaced, added or removed. None when nothing is there."""
    if not os.path.exists(path):
        return None
    digest = hashlib.sha256()
    for directory, subdirs, files in os.walk(path):
        subdirs.sort()
        for name in sorted(files):
            file_path = os.path.join(directory, name)
            try:
                stat = os.stat(file_path)
            except OSError:
                continue
            digest.update(f"{os.path.relpath(file_path, path)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


# A model that failed to load is tried again (its files unchanged) after this back-off:
# FIRST_RETRY_SECONDS after the first failed attempt, doubling with each, at most LAST_RETRY_SECONDS.
FIRST_RETRY_SECONDS = 60.0
LAST_RETRY_SECONDS = 3600.0


def retry_delay(attempts: int) -> float:
    return min(FIRST_RETRY_SECONDS * 2 ** (attempts - 1), LAST_RETRY_SECONDS)


@dataclass
class LoadFailure:
    model_id: str
    path: str
    fingerprint: Optional[str]  # of the dir as it was when the load that failed began
    reason: str
    attempts: int
    failed_at: str
    retry_at: float  # time.monotonic()
    retry_after: str  # the same, as a wall-clock time

    def unchanged(self) -> bool:
        """Its dir is there, as it was when the load began. A dir that was gone by then (removed
        while a load or a retry was on its way) never holds: its failure is forgotten at the next
        sync, and the model is no longer listed."""
        return self.fingerprint is not None and dir_fingerprint(self.path) == self.fingerprint

    def holds(self, now: Optional[float] = None) -> bool:
        """Whether the model stays failed: its files are as they were and its back-off runs."""
        return (time.monotonic() if now is None else now) < self.retry_at and self.unchanged()

    def error(self):
        from caikit.runtime.types.caikit_runtime_exception import (  # pylint: disable=import-outside-toplevel
            CaikitRuntimeException,
        )

        return CaikitRuntimeException(
            grpc.StatusCode.NOT_FOUND,
            f"model '{self.model_id}' failed to load and is not served: {self.reason}",
            {"model_id": self.model_id},
        )

    def info(self):
        from caikit.interfaces.runtime.data_model import ModelInfo  # pylint: disable=import-outside-toplevel

        metadata = {
            "load_error": self.reason,
            "load_attempts": self.attempts,
            "load_failed_at": self.failed_at,
            "load_retry_after": self.retry_after,
        }
        return ModelInfo(model_path=self.path, name=self.model_id, size=0, metadata=metadata, loaded=False)


class LoadFailures:
    """The models whose last load failed, by id (shared by the runtime's threads)."""

    def __init__(self):
        self._failures: Dict[str, LoadFailure] = {}
        self._lock = threading.Lock()

    def record(self, model_id: str, path: str, fingerprint: Optional[str], reason: str) -> LoadFailure:
        with self._lock:
            earlier = self._failures.get(model_id)
            attempts = earlier.attempts + 1 if earlier is not None and earlier.fingerprint == fingerprint else 1
            delay, now = retry_delay(attempts), datetime.datetime.now(datetime.timezone.utc)
            failure = LoadFailure(
                model_id, path, fingerprint, reason, attempts, now.isoformat(), time.monotonic() + delay,
                (now + datetime.timedelta(seconds=delay)).isoformat(),
            )
            self._failures[model_id] = failure
            return failure

    def forget(self, model_id: str) -> None:
        with self._lock:
            self._failures.pop(model_id, None)

    def get(self, model_id) -> Optional[LoadFailure]:
        with self._lock:
            return self._failures.get(model_id)

    def all(self) -> Dict[str, LoadFailure]:
        with self._lock:
            return dict(self._failures)


LOAD_FAILURES = LoadFailures()


def _first_error(error: BaseException) -> str:
    """The error a failed load began with: caikit's initializer loads a model again by its path
    when loading by its config fails, and raises the second error, which can hide the first (a
    missing weights file reads as a missing config.yml)."""
    seen = set()
    while id(error) not in seen and (error.__cause__ or error.__context__) is not None:
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return f"{type(error).__name__}: {error}"


class FailureRememberingLoader(CoreModelLoader):
    """caikit's model loader, remembering each load that fails (and forgetting it once one works)."""

    name = "GENAI_CORE"

    def load_module_instance(self, model_path, model_id, *args, **kwargs):
        """Runs in caikit's load pool, once per attempt (retries included)."""
        fingerprint = dir_fingerprint(model_path) if isinstance(model_path, str) else None
        try:
            model = super().load_module_instance(model_path, model_id, *args, **kwargs)
        except Exception as err:  # pylint: disable=broad-exception-caught
            if model_id in SWAP_LOADS:
                raise  # a replaced dir loading beside the served model: mend 17 reports it
            reason = _first_error(err)
            failure = LOAD_FAILURES.record(model_id, str(model_path), fingerprint, reason)
            log.error(
                "model %s failed to load from %s (attempt %d): %s. It is not served, and not loaded "
                "again until its files change or %s.", model_id, model_path, failure.attempts, reason,
                failure.retry_after,
            )
            raise failure.error() from err
        LOAD_FAILURES.forget(model_id)
        return model


_FAILED_LOADS_MENDED = "_caikit_genai_failed_loads_mended"
_LOADER_CHECKED = "_caikit_genai_loader_checked"


def _warn_unless_remembering(manager) -> None:
    """One warning per ModelManager whose loader is not ours (a config without the loader key)."""
    if getattr(manager, _LOADER_CHECKED, False):
        return
    setattr(manager, _LOADER_CHECKED, True)
    if not isinstance(manager.model_loader, FailureRememberingLoader):
        log.warning(
            "the runtime's model loader is %s, not %s.%s: failed loads are not remembered (set "
            "model_management.loaders.default as runtime_config.yaml does)", type(manager.model_loader).__name__,
            __name__, FailureRememberingLoader.__name__,
        )


def failed_loads_stay_failed() -> None:
    # pylint: disable=import-outside-toplevel,protected-access
    from caikit.runtime.model_management import model_manager as manager_module
    from caikit.runtime.servicers.info_servicer import InfoServicer

    ModelManager = manager_module.ModelManager  # pylint: disable=invalid-name
    if getattr(ModelManager, _FAILED_LOADS_MENDED, False):
        return
    load_model = ModelManager.load_model
    retrieve_model, local_models_dir_sync = ModelManager.retrieve_model, ModelManager._local_models_dir_sync

    def evict_failed(self, model_id: str) -> None:
        """Drop the LoadedModel of a failed load from loaded_models (caikit would wait on it,
        retrying, or list it as if it were loading)."""
        with self._loaded_models_lock:
            loaded = self.loaded_models.get(model_id)
            if loaded is None or loaded.loading() or loaded.loaded() or LOAD_FAILURES.get(model_id) is None:
                return
            self.loaded_models.pop(model_id)
        manager_module.MODEL_COUNT_GAUGE.labels(model_type=loaded.type(), model_id=model_id).dec()

    def still_failed(self, model_id) -> Optional[LoadFailure]:
        """The failure of `model_id` while it holds; None once its files changed (the failure is
        forgotten) or its back-off ran out (kept, to count the attempts)."""
        failure = LOAD_FAILURES.get(model_id) if isinstance(model_id, str) else None
        if failure is None:
            return None
        evict_failed(self, model_id)
        if failure.holds():
            return failure
        if not failure.unchanged():  # changed or gone
            LOAD_FAILURES.forget(model_id)
        if os.path.exists(failure.path):
            log.info("model %s failed to load before: loading it again (its files changed or its back-off ran out)", model_id)
        return None

    @functools.wraps(load_model)
    def load_model_unless_failed(self, model_id, local_model_path, *args, **kwargs):
        _warn_unless_remembering(self)
        failure = still_failed(self, model_id)
        if failure is not None:
            if in_lazy_sync():
                log.debug2("lazy load passes over %s: it failed to load and has not changed", model_id)
                return None
            raise failure.error()
        return load_model(self, model_id, local_model_path, *args, **kwargs)

    @functools.wraps(retrieve_model)
    def retrieve_model_unless_failed(self, model_id):
        failure = still_failed(self, model_id)
        if failure is not None:
            raise failure.error()
        return retrieve_model(self, model_id)

    @functools.wraps(local_models_dir_sync)
    def local_models_dir_sync_past_failures(self, *args, **kwargs):
        for model_id in LOAD_FAILURES.all():
            still_failed(self, model_id)  # evicts failed entries, so a changed dir is loaded again
        return local_models_dir_sync(self, *args, **kwargs)  # mend 4's: marks the sync

    ModelManager.load_model = load_model_unless_failed
    ModelManager.retrieve_model = retrieve_model_unless_failed
    ModelManager._local_models_dir_sync = local_models_dir_sync_past_failures
    InfoServicer._get_models_info = _listing_failures(InfoServicer._get_models_info)
    setattr(ModelManager, _FAILED_LOADS_MENDED, True)


def _listing_failures(get_models_info):
    """caikit's `/info/models` listing, with each failed model (and its reason) instead of a
    `loaded: false` entry that reads as still loading."""

    @functools.wraps(get_models_info)
    def models_info_with_failures(self, model_ids=None):
        from caikit.interfaces.runtime.data_model import ModelInfoResponse  # pylint: disable=import-outside-toplevel

        failures = LOAD_FAILURES.all()
        asked = list(model_ids or [])
        others = [model_id for model_id in asked if model_id not in failures]
        listed = get_models_info(self, model_ids=others).models if others or not asked else []
        served = {info.name for info in listed if info.loaded}
        failed = [
            failure.info() for model_id, failure in failures.items()
            if model_id not in served and (not asked or model_id in asked)
        ]
        return ModelInfoResponse(models=[info for info in listed if info.name not in failures or info.loaded] + failed)

    return models_info_with_failures
