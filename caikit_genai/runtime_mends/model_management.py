"""14. Model management is off unless an operator turns it on. caikit 0.28.3 serves gRPC
`ModelManagementService` (DeployModel, UndeployModel), HTTP `POST`/`DELETE /management/models`
and ModelMesh's `loadModel`/`unloadModel` whenever inference is on, with no key to turn them
off: any client that reaches the port can write a model dir under a name it picks, and
undeploy removes a served model's dir from disk.

Here those calls answer PERMISSION_DENIED (HTTP 403) naming `genai.model_management.enabled`
unless it is true. With it on:
- deploy writes the files into a hidden dir and renames it into place (never half a model, and
  never over an existing dir: ALREADY_EXISTS), with a marker saying the runtime wrote it;
- undeploy unloads the model and removes its dir only when that marker is there; a model the
  runtime did not deploy (a default model, a trained one, a PVC's) keeps its files and stays
  unloaded (not lazily loaded again) until its files change or the runtime restarts.
caikit's gRPC DeployModel/UndeployModel let a caikit error escape as UNKNOWN: here its code goes
back to the client.
"""

import functools
import os
import shutil
import tempfile
import threading
from typing import Dict, Optional

import grpc

from ._common import _PATCHED, in_lazy_sync, log
from ..toolkit.settings import genai_flag
from .failed_loads import dir_fingerprint

SETTING = "genai.model_management.enabled"
# Written into a model dir that DeployModel created: only such a dir does UndeployModel delete.
DEPLOYED_MARKER = ".deployed-by-runtime"


def management_enabled(config=None) -> bool:
    return genai_flag("model_management", "enabled", default=False, config=config)


def _refusal(action: str):
    from caikit.runtime.types.caikit_runtime_exception import (  # pylint: disable=import-outside-toplevel
        CaikitRuntimeException,
    )

    return CaikitRuntimeException(
        grpc.StatusCode.PERMISSION_DENIED,
        f"model management is off in this runtime: {action} is refused. An operator turns it on with "
        f"{SETTING}: true in the runtime config (env GENAI_MODEL_MANAGEMENT_ENABLED=true)",
    )


class Undeployed:
    """Models undeployed while their files stay on disk, by id, with their dir's fingerprint:
    they are not served again until the files change (or the runtime restarts)."""

    def __init__(self):
        self._paths: Dict[str, tuple] = {}
        self._lock = threading.Lock()

    def add(self, model_id: str, path: str) -> None:
        with self._lock:
            self._paths[model_id] = (path, dir_fingerprint(path))

    def holds(self, model_id) -> Optional[str]:
        """The path of `model_id` while it stays undeployed; None (and forgotten) once it changed."""
        with self._lock:
            entry = self._paths.get(model_id) if isinstance(model_id, str) else None
            if entry is None:
                return None
            path, fingerprint = entry
            if dir_fingerprint(path) == fingerprint:
                return path
            del self._paths[model_id]
        log.info("model %s was undeployed and its files changed since: it is served again", model_id)
        return None


UNDEPLOYED = Undeployed()


def _not_served(model_id: str):
    from caikit.runtime.types.caikit_runtime_exception import (  # pylint: disable=import-outside-toplevel
        CaikitRuntimeException,
    )

    return CaikitRuntimeException(
        grpc.StatusCode.NOT_FOUND,
        f"model '{model_id}' was undeployed: its files stay on disk, and it is served again when they "
        "change or the runtime restarts",
        {"model_id": model_id},
    )


_DEPLOY_LOCK = threading.Lock()


def _exists(model_id: str):
    from caikit.runtime.types.caikit_runtime_exception import (  # pylint: disable=import-outside-toplevel
        CaikitRuntimeException,
    )

    return CaikitRuntimeException(
        grpc.StatusCode.ALREADY_EXISTS,
        f"Model '{model_id}' already exists: deploy never replaces a model dir",
        {"model_id": model_id},
    )


def _write_model_dir(models_dir: str, model_id: str, model_files: Dict[str, bytes]) -> str:
    """The files, with the marker, in a hidden dir renamed to `models_dir/model_id`; never over
    an existing entry."""
    model_dir = os.path.join(models_dir, model_id)
    if os.path.lexists(model_dir):
        raise _exists(model_id)
    partial = tempfile.mkdtemp(prefix=f".{model_id}.partial-", dir=models_dir)
    try:
        for file_name, data in {**model_files, DEPLOYED_MARKER: b"written by DeployModel\n"}.items():
            path = os.path.join(partial, file_name.strip())
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as model_file:
                model_file.write(data)
        os.chmod(partial, 0o755)  # mkdtemp made it 0700
        with _DEPLOY_LOCK:
            if os.path.lexists(model_dir):
                raise _exists(model_id)
            os.rename(partial, model_dir)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return model_dir


def model_management_is_opt_in() -> None:
    from caikit.runtime.servicers.model_management_servicer import (  # pylint: disable=import-outside-toplevel
        ModelManagementServicerImpl,
    )

    if getattr(ModelManagementServicerImpl, _PATCHED, False):
        return
    _servicers_refuse_unless_enabled()
    _deploy_atomically_undeploy_keeping_files()
    setattr(ModelManagementServicerImpl, _PATCHED, True)


def _servicers_refuse_unless_enabled() -> None:
    """Deploy and undeploy (caikit's servicer and ModelMesh's) answer PERMISSION_DENIED unless
    the setting is on; gRPC Deploy/UndeployModel answer caikit's own status codes."""
    # pylint: disable=import-outside-toplevel
    from caikit.runtime.servicers.model_management_servicer import ModelManagementServicerImpl
    from caikit.runtime.servicers.model_runtime_servicer import ModelRuntimeServicerImpl
    from caikit.runtime.types.caikit_runtime_exception import CaikitRuntimeException

    def refused_unless_enabled(method, action: str):
        @functools.wraps(method)
        def checked(self, *args, **kwargs):
            if not management_enabled():
                raise _refusal(action)
            return method(self, *args, **kwargs)

        return checked

    def grpc_codes_kept(method):
        @functools.wraps(method)
        def answered(self, request, context):
            try:
                return method(self, request, context)
            except CaikitRuntimeException as err:
                context.abort(err.status_code, err.message)

        return answered

    def mesh_refused_unless_enabled(method, action: str):
        @functools.wraps(method)
        def checked(self, request, context):
            if not management_enabled():
                context.abort(grpc.StatusCode.PERMISSION_DENIED, _refusal(action).message)
            return method(self, request, context)

        return checked

    servicer = ModelManagementServicerImpl
    servicer.deploy_model = refused_unless_enabled(servicer.deploy_model, "deploying a model")
    servicer.undeploy_model = refused_unless_enabled(servicer.undeploy_model, "undeploying a model")
    servicer.DeployModel = grpc_codes_kept(servicer.DeployModel)
    servicer.UndeployModel = grpc_codes_kept(servicer.UndeployModel)
    ModelRuntimeServicerImpl.loadModel = mesh_refused_unless_enabled(ModelRuntimeServicerImpl.loadModel, "loadModel")
    ModelRuntimeServicerImpl.unloadModel = mesh_refused_unless_enabled(
        ModelRuntimeServicerImpl.unloadModel, "unloadModel"
    )


def _deploy_atomically_undeploy_keeping_files() -> None:
    """ModelManager's deploy writes a whole dir or nothing; undeploy deletes only what deploy wrote."""
    # pylint: disable=import-outside-toplevel,protected-access
    from caikit.runtime.model_management.model_manager import LOCAL_MODEL_TYPE, ModelManager
    from caikit.runtime.types.caikit_runtime_exception import CaikitRuntimeException

    undeploy_model = ModelManager.undeploy_model
    load_model, retrieve_model = ModelManager.load_model, ModelManager.retrieve_model

    @functools.wraps(ModelManager.deploy_model)
    def atomic_deploy_model(self, model_id, model_files, **kwargs):
        """Replaces caikit's (which writes in place); mend 1, applied after, checks the id and
        the file names first."""
        model_dir = _write_model_dir(self._local_models_dir, model_id, model_files)
        log.info("deployed model %s into %s", model_id, model_dir)
        return self.load_model(model_id=model_id, local_model_path=model_dir, model_type=LOCAL_MODEL_TYPE, **kwargs)

    @functools.wraps(undeploy_model)
    def undeploy_keeping_files(self, model_id):
        local_model_path = os.path.join(self._local_models_dir, model_id)
        if os.path.exists(os.path.join(local_model_path, DEPLOYED_MARKER)):
            return undeploy_model(self, model_id)  # caikit's: remove the dir it wrote, unload
        if not os.path.exists(local_model_path) and model_id not in self.loaded_models:
            raise CaikitRuntimeException(
                grpc.StatusCode.NOT_FOUND, f"Cannot undeploy unknown model {model_id}", {"model_id": model_id}
            )
        UNDEPLOYED.add(model_id, local_model_path)
        self.unload_model(model_id)
        log.info("undeployed model %s; its files were not deployed through the runtime and stay", model_id)
        return None

    @functools.wraps(load_model)
    def load_model_unless_undeployed(self, model_id, local_model_path, *args, **kwargs):
        if UNDEPLOYED.holds(model_id) is not None:
            if in_lazy_sync():
                return None
            raise _not_served(model_id)
        return load_model(self, model_id, local_model_path, *args, **kwargs)

    @functools.wraps(retrieve_model)
    def retrieve_model_unless_undeployed(self, model_id):
        if model_id not in self.loaded_models and UNDEPLOYED.holds(model_id) is not None:
            raise _not_served(model_id)
        return retrieve_model(self, model_id)

    ModelManager.deploy_model = atomic_deploy_model
    ModelManager.undeploy_model = undeploy_keeping_files
    ModelManager.load_model = load_model_unless_undeployed
    ModelManager.retrieve_model = retrieve_model_unless_undeployed
