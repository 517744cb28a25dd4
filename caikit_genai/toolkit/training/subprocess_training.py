"""caikit's local trainer, made safe to hand requests from the network and to run in a subprocess.

Plugged in through caikit's own `import_class` extension point (`model_management.trainers`),
so every train call goes through it: the runtime's train RPCs and HTTP routes, and the batch
entry point `python -m caikit.runtime.train` run with this config. Before a job starts it checks:
- fewer trainings run than `genai.training.max_concurrent_trainings` (past it: RESOURCE_EXHAUSTED,
  HTTP 503, at once; trainings are not queued);
- the model name is one safe path segment (caikit joins it onto `training.output_dir`
  unchecked, and a save replaces what is there);
- no model dir of that name exists, and no running job writes one, unless
  `genai.training.replace_existing_models` is true;
- every file or directory a data stream names lies inside the training data dir
  (`data_streams.file_source_base`, which caikit itself only uses as a prefix);
- a model a request names as an argument (`teacher_model`) is the name of a model in the
  runtime's models dir, and becomes that dir's path;
- a model to start from (`base_model`, `encoder_model`) is the name of a model in the models dir,
  a hub id, or a directory inside `genai.training.base_models_dir` (no path at all when that is
  unset).

caikit runs training in a subprocess when `use_subprocess` is on (so a cancel really stops
torch), pickling the train call's arguments; ours is forked from a forkserver that has imported
the library already (runtime_config.yaml), so it starts at once. Its `DataStreamSource` classes
are generated at runtime start-up and do not exist in the child, so unpickling them fails there. Each
source travels instead as its element type plus its serialized request, with file paths already
resolved, and is rebuilt (and its paths checked again) in the child. The data itself is read
lazily in the child, so a bad file fails the job with an ERRORED reason.

A training process outlives a runtime killed under it (`kill -9`, a crash): it would train on
unseen, then write its model into the models dir, where the restarted runtime would serve a
model from a job it knows nothing of. The child watches the runtime and ends when it is gone. (A child killed on its own, as the OOM killer does, ends its job ERRORED:
caikit reads its exit status.)

Each job's training loop writes its progress (step, ETA, losses) to a file named for its training
id in the runtime's progress dir, which the HTTP server serves (progress_file.py).
"""

import functools
import glob
import multiprocessing
import os
import re
import signal
import threading
import time
from typing import Optional

import alog

from caikit.config import get_config
from caikit.core.data_model import DataStream
from caikit.core.model_management.local_model_trainer import LocalModelTrainer
from caikit.runtime.service_generation.data_stream_source import DataStreamSourceBase, make_data_stream_source
from caikit.runtime.types.caikit_runtime_exception import CaikitRuntimeException
from grpc import StatusCode

from ..serving.errors import invalid_argument
from ..serving.safe_paths import check_model_name, is_inside, is_safe_model_name, resolve_inside
from ..settings import genai_flag
from .progress_file import announce, progress_dir, progress_path, publish_to

log = alog.use_channel("TRAINING")

DATA_DIR_SETTING = "data_streams.file_source_base"
REPLACE_SETTING = "genai.training.replace_existing_models"
# Train arguments that name another model: from a request, a model in local_models_dir.
MODEL_ARGUMENTS = ("teacher_model",)
# Train arguments that name a model to start from: a model in local_models_dir, a hub id, or a
# directory inside BASE_MODELS_SETTING.
BASE_MODEL_ARGUMENTS = ("base_model", "encoder_model")
BASE_MODELS_SETTING = "genai.training.base_models_dir"
MAX_TRAININGS_SETTING = "genai.training.max_concurrent_trainings"
HUB_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?")
# The file formats caikit's directory source reads.
DIRECTORY_EXTENSIONS = ("json", "jsonl", "csv")


def training_data_dir() -> str:
    """The one directory training data files may come from: `data_streams.file_source_base`,
    or else `training_data/` beside the runtime's models dir."""
    config = get_config()
    configured = config.data_streams.file_source_base
    if configured:
        return os.path.abspath(configured)
    models_dir = os.path.abspath(config.runtime.local_models_dir or "models")
    return os.path.join(os.path.dirname(models_dir), "training_data")


def _models_dir() -> str:
    return os.path.abspath(get_config().runtime.local_models_dir or "models")


def served_model_dir(name, what: str) -> str:
    """The dir of the model called `name` in the runtime's models dir, or INVALID_ARGUMENT."""
    check_model_name(name, what)
    path = os.path.join(_models_dir(), name)
    if not os.path.isfile(os.path.join(path, "config.yml")):
        raise invalid_argument(f"{what} {name!r} is not a model in the runtime's models dir (runtime.local_models_dir)")
    return path


def request_base_model(value, what: str, models_dir: str, base_models_dir: Optional[str]) -> str:
    """Where a request's base model is: a model in `models_dir` by name, a hub id as given, or a
    directory inside `base_models_dir` (relative to it, or absolute); anything else is
    INVALID_ARGUMENT naming the rule."""
    if not isinstance(value, str):
        raise invalid_argument(f"{what} must be a string, got {type(value).__name__}")
    if is_safe_model_name(value) and os.path.isfile(os.path.join(models_dir, value, "config.yml")):
        return os.path.join(models_dir, value)
    if "\x00" in value:
        raise invalid_argument(f"{what} {value!r} contains a NUL character")
    candidate = os.path.join(os.path.abspath(base_models_dir), value) if base_models_dir else None
    if candidate is None or not os.path.isdir(candidate):
        if HUB_ID_PATTERN.fullmatch(value) and not os.path.exists(value):
            return value  # a hub id (org/name), for runtimes that can reach a hub
        if candidate is None:
            raise invalid_argument(
                f"{what} {value!r} is neither a model in the models dir nor a hub id; a train request may "
                f"name a directory only inside {BASE_MODELS_SETTING}, which is not set"
            )
    if not is_inside(candidate, base_models_dir):
        raise invalid_argument(f"{what} {value!r} is outside the base models dir ({BASE_MODELS_SETTING})")
    if not os.path.isdir(candidate):
        raise invalid_argument(f"{what} {value!r} is not a directory in the base models dir ({BASE_MODELS_SETTING})")
    return os.path.realpath(candidate)


def confined_source_bytes(source: DataStreamSourceBase, base_dir: str, what: str) -> bytes:
    """The source, serialized, with every path it names resolved inside `base_dir`; or
    INVALID_ARGUMENT. Inline data passes unchanged; S3 sources are refused (local files only).
    """
    proto = source.to_proto()
    kind = source.which_oneof("data_stream")
    if kind in (None, "jsondata"):
        return proto.SerializeToString()
    reference = getattr(proto, kind)
    if kind == "file":
        reference.filename = _existing_file(base_dir, reference.filename, f"{what} file")
    elif kind == "list_of_files":
        if not reference.files:
            raise invalid_argument(f"{what}: list_of_files names no files")
        resolved = [_existing_file(base_dir, name, f"{what} file") for name in reference.files]
        del reference.files[:]
        reference.files.extend(resolved)
    elif kind == "directory":
        reference.dirname = _directory_of_data_files(base_dir, reference.dirname, reference.extension, what)
    else:
        raise invalid_argument(f"{what}: {kind} sources are not supported here; use inline data or files")
    return proto.SerializeToString()


def _existing_file(base_dir: str, name: str, what: str) -> str:
    path = resolve_inside(base_dir, name, what, DATA_DIR_SETTING)
    if not os.path.isfile(path):
        raise invalid_argument(f"{what} {name!r} does not exist in the training data dir ({DATA_DIR_SETTING})")
    return path


def _directory_of_data_files(base_dir: str, name: str, extension: str, what: str) -> str:
    path = resolve_inside(base_dir, name, f"{what} directory", DATA_DIR_SETTING)
    if not os.path.isdir(path):
        raise invalid_argument(f"{what} directory {name!r} does not exist in the training data dir ({DATA_DIR_SETTING})")
    extension = extension or "json"
    if extension not in DIRECTORY_EXTENSIONS:
        raise invalid_argument(f"{what} directory extension must be one of {', '.join(DIRECTORY_EXTENSIONS)}, got {extension!r}")
    # A file inside may still be a symlink to somewhere else.
    for data_file in glob.glob(os.path.join(path, f"*.{extension}")):
        if not is_inside(data_file, base_dir):
            raise invalid_argument(
                f"{what} directory {name!r} holds {os.path.basename(data_file)!r}, a link to outside the "
                f"training data dir ({DATA_DIR_SETTING})"
            )
    return path


class PortableDataStream(DataStream):
    """A DataStreamSource reduced to (element type, serialized source, data dir): picklable
    anywhere, and checked again where it is read."""

    def __init__(self, element_type: type, source_bytes: bytes, base_dir: str, what: str):
        self.element_type = element_type
        self.source_bytes = source_bytes
        self.base_dir = base_dir
        self.what = what
        super().__init__(self._read_source)

    def _read_source(self):
        source = make_data_stream_source(self.element_type).from_binary_buffer(self.source_bytes)
        # Checked again where it is read: a link may have changed since the request came.
        confined_source_bytes(source, self.base_dir, self.what)
        return iter(source)

    def __reduce__(self):
        return (PortableDataStream, (self.element_type, self.source_bytes, self.base_dir, self.what))


# What the training processes' forkserver imports before it forks them: the modules' library.
FORKSERVER_PRELOAD = "caikit_genai"
# How often a training process looks whether the runtime that started it is still there.
PARENT_CHECK_SECONDS = 1.0


def end_with_runtime(runtime_pid: int, check_seconds: float = PARENT_CHECK_SECONDS) -> None:
    """In a training process: kill it once the runtime that started it is gone; at once if it
    went while the training process was still starting. Its parent is the runtime (spawn) or the
    runtime's forkserver, which exits with the runtime; either way the kernel then hands the
    orphan to init or a subreaper, so its parent pid changes."""
    parent = os.getppid()

    def watch():
        while os.getppid() == parent and _alive(runtime_pid):
            time.sleep(check_seconds)
        log.error("the runtime that started this training (pid %d) is gone: the training ends with it", runtime_pid)
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # there, under another uid
        return True
    return True


class PortableLocalTrainer(LocalModelTrainer):
    """caikit's LOCAL trainer, with names and data paths checked before a job starts, data
    stream sources made safe for spawned subprocesses, and training processes that end with
    their runtime, and whose jobs write their progress where the runtime serves it."""

    name = "GENAI_LOCAL"
    # Held from the count of running trainings until the new one is among them.
    _start_lock = threading.Lock()

    class LocalModelFuture(LocalModelTrainer.LocalModelTrainFuture):
        def __init__(self, *args, **kwargs):
            self.runtime_pid = os.getpid()  # set first: caikit's __init__ starts (and pickles) the job
            self.progress_dir = progress_dir()
            super().__init__(*args, **kwargs)
            announce(progress_path(self.progress_dir, self.id))

        def run(self, *args, **kwargs):
            if self._use_subprocess:
                end_with_runtime(self.runtime_pid)
            publish_to(progress_path(self.progress_dir, self.id))
            return super().run(*args, **kwargs)

    def __init__(self, config, instance_name: str):
        super().__init__(config, instance_name)
        if self._use_subprocess and self._subprocess_start_method == "forkserver":
            # The forkserver (started with the first training) imports the library once; each
            # training process is a fork of it, so it starts in a fraction of a second, not the
            # seconds a spawned one spends importing torch and caikit. Importing it touches no
            # CUDA, so each fork may still start CUDA of its own.
            multiprocessing.get_context("forkserver").set_forkserver_preload([FORKSERVER_PRELOAD])

    def train(self, module_class, *args, save_path=None, save_with_id=False, model_name=None, **kwargs):
        free_check = None
        if model_name is not None:
            check_model_name(model_name)
            if save_path and not save_with_id:
                free_check = functools.partial(self._check_free, os.path.join(str(save_path), model_name), model_name)
                free_check()  # before the data checks: the name is the first thing a caller fixes
        for key in MODEL_ARGUMENTS:
            if kwargs.get(key):
                kwargs[key] = served_model_dir(kwargs[key], key)
        for key in BASE_MODEL_ARGUMENTS:
            if kwargs.get(key):
                kwargs[key] = request_base_model(kwargs[key], key, _models_dir(), _training_settings().get("base_models_dir"))
        base_dir = training_data_dir()
        args = [self._portable(arg, base_dir, f"argument {index}") for index, arg in enumerate(args)]
        kwargs = {key: self._portable(value, base_dir, key) for key, value in kwargs.items()}
        with self._start_lock:
            if free_check is not None:
                free_check()  # again: another request may have taken the name since
            self._check_capacity()
            return super().train(
                module_class, *args, save_path=save_path, save_with_id=save_with_id, model_name=model_name, **kwargs
            )

    def _check_capacity(self) -> None:
        """RESOURCE_EXHAUSTED (HTTP 503) when the cap's worth of trainings already run: each
        one is a process with its own model, data and optimizer in the pod's memory."""
        cap = max_concurrent_trainings()
        with self._futures_lock:
            running = [future.id for future in self._futures.values() if not future.get_info().status.is_terminal]
        if len(running) >= cap:
            raise CaikitRuntimeException(
                StatusCode.RESOURCE_EXHAUSTED,
                f"{len(running)} training(s) already running, the most this runtime runs at once "
                f"({MAX_TRAININGS_SETTING}: {cap}): try again when one ends, or cancel one",
            )

    @staticmethod
    def _portable(value, base_dir: str, what: str):
        if isinstance(value, DataStreamSourceBase):
            return PortableDataStream(value.ELEMENT_TYPE, confined_source_bytes(value, base_dir, what), base_dir, what)
        return value

    def _check_free(self, model_path: str, model_name: str) -> None:
        """ALREADY_EXISTS when a model dir of this name exists or a running job will write one."""
        if _replacing_allowed():
            return
        served_path = os.path.join(get_config().runtime.local_models_dir or "", model_name)
        if os.path.exists(model_path) or os.path.exists(served_path):
            raise CaikitRuntimeException(
                StatusCode.ALREADY_EXISTS,
                f"a model named {model_name!r} already exists: choose another model_name "
                f"(or set {REPLACE_SETTING}: true to let training replace models)",
            )
        target = os.path.abspath(model_path)
        with self._futures_lock:
            for future in self._futures.values():
                running = not future.get_info().status.is_terminal
                if running and future.save_path and os.path.abspath(future.save_path) == target:
                    raise CaikitRuntimeException(
                        StatusCode.ALREADY_EXISTS,
                        f"training {future.id} is already writing a model named {model_name!r}",
                    )


def _training_settings(config: Optional[dict] = None) -> dict:
    config = config or get_config()
    return (config.get("genai") or {}).get("training") or {}


def max_concurrent_trainings(config: Optional[dict] = None) -> int:
    value = _training_settings(config).get("max_concurrent_trainings", 1)
    try:
        return int(value)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{MAX_TRAININGS_SETTING} must be a whole number, got {value!r}") from err


def _replacing_allowed(config: Optional[dict] = None) -> bool:
    return genai_flag("training", "replace_existing_models", default=False, config=config)
