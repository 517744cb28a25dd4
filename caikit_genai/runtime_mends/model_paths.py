"""1. Model ids from requests choose no paths. caikit joins a request's `model_id` onto
`local_models_dir` unchecked: a predict call lazily loads `../elsewhere` or `/any/dir` as a
model, `DELETE /management/models?model_id=../x` removes any directory the runtime can write,
and ModelMesh's `loadModel` loads any path. Ids must be one safe path segment, and model
paths must lie inside `local_models_dir`.

4. The models dir holds more than models: our atomic saves write `.<name>.partial-*` dirs there,
and caikit's batch trainer drops a `.complete` file into its save path. caikit's lazy loader
tries each entry as a model (and logs the failure every poll); entries that are no model
name (hidden ones) are passed over.

Mend 4 marks caikit's lazy-loader sync (mends 13 and 14 read the mark too) and passes over
hidden entries while it runs; mend 1 checks ids and paths on every call.
"""

import functools
import os

import grpc

from ..toolkit.serving.safe_paths import MODEL_NAME_RULE, is_inside, is_safe_model_name
from ._common import _LAZY_SYNC, _PATCHED, in_lazy_sync, log

_HIDDEN_ENTRIES_MENDED = "_caikit_genai_hidden_entries_mended"


def _invalid_model_id(model_id) -> Exception:
    from caikit.runtime.types.caikit_runtime_exception import (  # pylint: disable=import-outside-toplevel
        CaikitRuntimeException,
    )

    return CaikitRuntimeException(
        grpc.StatusCode.INVALID_ARGUMENT, f"model_id {model_id!r} is not a valid model name: use {MODEL_NAME_RULE}"
    )


def guard_model_manager() -> None:
    from caikit.runtime.model_management.model_manager import (  # pylint: disable=import-outside-toplevel
        ModelManager,
    )
    from caikit.runtime.types.caikit_runtime_exception import (  # pylint: disable=import-outside-toplevel
        CaikitRuntimeException,
    )

    if getattr(ModelManager, _PATCHED, False):
        return
    retrieve_model, deploy_model = ModelManager.retrieve_model, ModelManager.deploy_model
    undeploy_model, load_model = ModelManager.undeploy_model, ModelManager.load_model

    @functools.wraps(retrieve_model)
    def checked_retrieve_model(self, model_id):
        if isinstance(model_id, str) and model_id and model_id not in self.loaded_models:
            if not is_safe_model_name(model_id):
                raise _invalid_model_id(model_id)
            # caikit would next try the id itself as a path (relative to the working dir).
            if self._lazy_load_local_models and not os.path.exists(os.path.join(self._local_models_dir, model_id)):
                raise CaikitRuntimeException(
                    grpc.StatusCode.NOT_FOUND, f"Model '{model_id}' not loaded", {"model_id": model_id}
                )
        return retrieve_model(self, model_id)

    @functools.wraps(deploy_model)
    def checked_deploy_model(self, model_id, model_files, **kwargs):
        if model_id and not is_safe_model_name(model_id):
            raise _invalid_model_id(model_id)
        for file_name in model_files or {}:
            if os.path.isabs(file_name.strip()) or ".." in file_name.strip().split("/"):
                raise CaikitRuntimeException(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"model file name {file_name!r} must be a relative path inside the model dir",
                )
        return deploy_model(self, model_id, model_files, **kwargs)

    @functools.wraps(undeploy_model)
    def checked_undeploy_model(self, model_id):
        if not is_safe_model_name(model_id):
            raise _invalid_model_id(model_id)
        return undeploy_model(self, model_id)

    @functools.wraps(load_model)
    def checked_load_model(self, model_id, local_model_path, *args, **kwargs):
        models_dir = self._local_models_dir
        if models_dir and isinstance(local_model_path, str) and not is_inside(
            local_model_path, models_dir, follow_symlinks=False
        ):
            raise CaikitRuntimeException(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"model path {local_model_path!r} is outside the runtime's models dir (runtime.local_models_dir)",
                {"model_id": model_id},
            )
        return load_model(self, model_id, local_model_path, *args, **kwargs)

    ModelManager.retrieve_model = checked_retrieve_model
    ModelManager.deploy_model = checked_deploy_model
    ModelManager.undeploy_model = checked_undeploy_model
    ModelManager.load_model = checked_load_model
    setattr(ModelManager, _PATCHED, True)


def pass_over_hidden_entries() -> None:
    """Mark caikit's sync of local_models_dir, and pass over its entries that are no model name."""
    from caikit.runtime.model_management.model_manager import (  # pylint: disable=import-outside-toplevel
        ModelManager,
    )

    if getattr(ModelManager, _HIDDEN_ENTRIES_MENDED, False):
        return
    load_model = ModelManager.load_model
    local_models_dir_sync = ModelManager._local_models_dir_sync  # pylint: disable=protected-access

    @functools.wraps(local_models_dir_sync)
    def marked_local_models_dir_sync(self, *args, **kwargs):
        _LAZY_SYNC.active = True
        try:
            return local_models_dir_sync(self, *args, **kwargs)
        finally:
            _LAZY_SYNC.active = False

    @functools.wraps(load_model)
    def load_model_unless_hidden(self, model_id, local_model_path, *args, **kwargs):
        if in_lazy_sync() and not is_safe_model_name(model_id):
            log.debug2("lazy load passes over %s: not a model name", model_id)
            return None
        return load_model(self, model_id, local_model_path, *args, **kwargs)

    ModelManager.load_model = load_model_unless_hidden
    ModelManager._local_models_dir_sync = marked_local_models_dir_sync  # pylint: disable=protected-access
    setattr(ModelManager, _HIDDEN_ENTRIES_MENDED, True)
