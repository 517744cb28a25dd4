"""The one list of caikit_genai's mends: what each replaces in caikit (or torch), why, where it is
reported upstream, the versions it was checked on, and the order `apply()` applies them in.

A mend is a last resort: where caikit offers an extension point, that is used instead (HOOKS).
docs/caikit-mends.md is rendered from this file (`python -m caikit_genai.runtime_mends --render`).
"""

import os
from dataclasses import dataclass
from importlib import import_module, metadata
from typing import Callable, Dict, List, Mapping, Optional, Tuple

from packaging.specifiers import SpecifierSet

from . import abandoned_streams, batch_exit_codes, data_model_lookup, failed_loads, hf_loading_threads, http_bodies, http_request_errors, model_management, model_paths, model_swap, openapi_spec, playground_routes, predict_checks, serving_metrics, unavailable_503, undecodable_grpc
from ._common import http_server_module, log

# Set to 1 to apply the mends on versions they were not checked on (a warning instead of an error).
UNTESTED_VERSIONS_SETTING = "CAIKIT_GENAI_UNTESTED_VERSIONS"
UPSTREAM_REPORTS = "docs/caikit-upstream.md"
HTTP_SERVER = "caikit.runtime.http_server.http_server"


@dataclass(frozen=True)
class Pin:
    """The versions of a package the mends were checked on."""

    package: str
    specifier: str  # PEP 440, as pip takes it
    shown: str  # the same, for people

    def holds(self, version: str) -> bool:
        return SpecifierSet(self.specifier).contains(version, prereleases=True)


PINS = {
    "caikit": Pin("caikit", "==0.28.3", "0.28.3"),
    "torch": Pin("torch", ">=2.13,<2.14", "2.13.x"),
    "transformers": Pin("transformers", ">=4.57,<5", "4.57.x"),
}


@dataclass(frozen=True)
class Symbol:
    """An attribute of a module that a mend replaces or rewrites (`ModelManager.load_model`)."""

    module: str
    attribute: str

    @property
    def private(self) -> bool:
        """Underscore-private: caikit may rename or drop it in any release."""
        return any(part.startswith("_") for part in self.attribute.split("."))

    def exists(self) -> bool:
        try:
            found = import_module(self.module)
        except ImportError:
            return False
        for part in self.attribute.split("."):
            if not hasattr(found, part):
                return False
            found = getattr(found, part)
        return True

    def needed(self) -> bool:
        """False for caikit's HTTP server where caikit's HTTP extra is not installed."""
        return self.module != HTTP_SERVER or http_server_module() is not None

    def __str__(self) -> str:
        return f"{self.module}.{self.attribute}"


@dataclass(frozen=True)
class Mend:
    number: int  # its number in docs, README and tests (stable; not its place in the order)
    name: str  # its file in this package
    replaces: Tuple[Symbol, ...]
    why: str
    upstream: str  # an issue's address, or the anchor of a ready-to-file report in UPSTREAM_REPORTS
    apply: Callable[[], None]
    packages: Tuple[str, ...] = ("caikit",)  # whose PINS it was checked on
    order: str = ""  # why it stands where it does in MENDS, when that matters
    http_only: bool = False  # applied only where caikit's HTTP extra is installed


def _symbols(module: str, *attributes: str) -> Tuple[Symbol, ...]:
    return tuple(Symbol(module, attribute) for attribute in attributes)


MODEL_MANAGER = "caikit.runtime.model_management.model_manager"
PREDICT_SERVICER = "caikit.runtime.servicers.global_predict_servicer"
NAMES = "caikit.runtime.names"

# How the wrappers of one method nest: the mend applied last runs first, on every call.
NESTING = {
    "ModelManager.load_model": (13, 17, 4, 1, 14),
    "ModelManager.retrieve_model": (13, 1, 14),
    "ModelManager.deploy_model": (1, 14),
    "ModelManager.undeploy_model": (1, 14),
    "ModelManager._local_models_dir_sync": (13, 17, 4),
    "InfoServicer._get_models_info": (13, 17),
    "GlobalPredictServicer.predict_model": (3, 8, 6),
}

# In the order apply() applies them.
MENDS: Tuple[Mend, ...] = (
    Mend(
        15, "hf_loading_threads",
        (
            Symbol("torch.nn", "Module.register_parameter"), Symbol("transformers.integrations.accelerate", "init_on_device"),
            Symbol("transformers.modeling_utils", "no_init_weights"), Symbol("transformers.modeling_utils", "_init_weights"),
        ),
        "transformers swaps torch's process-wide register_parameter and nn.init functions while it loads a model; "
        "loads on two threads interleave and leave every later network on the meta device, and a network built "
        "on another thread during a load is left uninitialised.",
        "https://github.com/huggingface/transformers/issues/41782",
        hf_loading_threads.make_hf_loading_thread_safe,
        packages=("torch", "transformers"),
    ),
    Mend(
        14, "model_management",
        _symbols(
            "caikit.runtime.servicers.model_management_servicer",
            "ModelManagementServicerImpl.deploy_model", "ModelManagementServicerImpl.undeploy_model",
            "ModelManagementServicerImpl.DeployModel", "ModelManagementServicerImpl.UndeployModel",
        )
        + _symbols("caikit.runtime.servicers.model_runtime_servicer", "ModelRuntimeServicerImpl.loadModel", "ModelRuntimeServicerImpl.unloadModel")
        + _symbols(MODEL_MANAGER, "ModelManager.deploy_model", "ModelManager.undeploy_model", "ModelManager.load_model", "ModelManager.retrieve_model"),
        "Deploy and undeploy are served to anyone who reaches the port, with no key to turn them off; "
        "undeploy deletes any model's dir.",
        f"{UPSTREAM_REPORTS}#model-management-is-always-on-and-undeploy-deletes-any-model-dir",
        model_management.model_management_is_opt_in,
        order="First of the ModelManager mends: its deploy replaces caikit's, so mend 1's id and file-name "
        "checks, applied after, wrap it.",
    ),
    Mend(
        1, "model_paths",
        _symbols(MODEL_MANAGER, "ModelManager.retrieve_model", "ModelManager.deploy_model", "ModelManager.undeploy_model", "ModelManager.load_model"),
        "A request's model_id is joined onto local_models_dir unchecked: `../x` or `/any/dir` is loaded, "
        "deployed into or deleted; ModelMesh's loadModel loads any path.",
        f"{UPSTREAM_REPORTS}#model-ids-from-requests-are-used-as-paths",
        model_paths.guard_model_manager,
        order="After 14, so its checks wrap 14's deploy, undeploy and lookups.",
    ),
    Mend(
        4, "model_paths",
        _symbols(MODEL_MANAGER, "ModelManager._local_models_dir_sync", "ModelManager.load_model"),
        "The lazy loader tries every entry of local_models_dir as a model, caikit's own `.complete` "
        "marker and half-written saves included, and logs each failure every poll.",
        f"{UPSTREAM_REPORTS}#the-lazy-loader-loads-hidden-entries-of-the-models-dir",
        model_paths.pass_over_hidden_entries,
        order="After 1, so a hidden entry is passed over before 1 checks its path; its mark on the sync is "
        "what 13 and 14 read to pass over a model quietly instead of raising.",
    ),
    Mend(
        12, "data_model_lookup",
        _symbols("caikit.runtime.utils.import_util", "get_data_model")
        + _symbols("caikit.runtime.servicers.global_train_servicer", "get_data_model")
        + _symbols("caikit.runtime.utils.servicer_util", "get_data_model"),
        "get_data_model iterates sys.modules while model loads import modules: \"dictionary changed size "
        "during iteration\" ends the runtime at start.",
        f"{UPSTREAM_REPORTS}#get_data_model-races-imports-at-start-up",
        data_model_lookup.data_model_lookup_survives_imports,
    ),
    Mend(
        17, "model_swap",
        _symbols(MODEL_MANAGER, "ModelManager.load_model", "ModelManager._local_models_dir_sync")
        + _symbols("caikit.runtime.servicers.info_servicer", "InfoServicer._get_models_info"),
        "A served model's dir replaced on disk (a model retrained or rebuilt and saved over it, a PVC "
        "updated) is never loaded: the lazy loader only loads new dirs and unloads removed ones.",
        f"{UPSTREAM_REPORTS}#a-served-models-replaced-dir-is-never-loaded",
        model_swap.replaced_dirs_swap_live,
        order="Between 4 and 13: it notes the dir of each load that 1, 4 and 14 let through, swaps after 4's "
        "marked sync, and 13's checks still run first.",
    ),
    Mend(
        13, "failed_loads",
        _symbols(MODEL_MANAGER, "ModelManager.load_model", "ModelManager.retrieve_model", "ModelManager._local_models_dir_sync")
        + _symbols("caikit.runtime.servicers.info_servicer", "InfoServicer._get_models_info"),
        "A model that fails to load is listed as loading, with no reason, and loaded again on every "
        "request and poll. Recording failures is caikit's loader hook (HOOKS); the rest is mended.",
        f"{UPSTREAM_REPORTS}#a-model-that-fails-to-load-is-loaded-again-forever",
        failed_loads.failed_loads_stay_failed,
        order="Last of the ModelManager mends, so its checks run first: a failed model is answered with its "
        "load error at once, and the sync evicts failed entries before 4's marked sync lists the dir.",
    ),
    Mend(
        5, "batch_exit_codes",
        _symbols("caikit.runtime.train", "train"),
        "`python -m caikit.runtime.train` exits 203 (internal error, no reason) on the user's own errors: "
        "a bad model name, data outside the data dir, bad data.",
        f"{UPSTREAM_REPORTS}#batch-training-exits-203-on-the-users-errors",
        batch_exit_codes.batch_training_exit_codes,
    ),
    Mend(
        6, "serving_metrics",
        _symbols(PREDICT_SERVICER, "GlobalPredictServicer.predict_model") + _symbols(NAMES, "STATUS_CODE_TO_HTTP"),
        "Our latency histogram times every predict request; a full batcher queue is 503 (as uvicorn's "
        "limit answers), not caikit's 429. Our policy, not a caikit bug.",
        "none: our metrics and our choice of status",
        serving_metrics.serving_metrics_and_backpressure,
        order="Before 8 and 3: it times only what 8 lets through, and 3 moves both off the event loop.",
    ),
    Mend(
        8, "predict_checks",
        _symbols(PREDICT_SERVICER, "GlobalPredictServicer.predict_model", "GlobalPredictServicer.run_prediction_job", "GlobalPredictServicer.Predict")
        + _symbols(HTTP_SERVER, "RuntimeHTTPServer._get_request_params"),
        "A model of another task answers with that task's output (HTTP 200, gRPC INTERNAL); HTTP drops a "
        "falsy `inputs`; sizes are checked before tokenizing.",
        f"{UPSTREAM_REPORTS}#a-model-of-another-task-answers-and-falsy-http-inputs-are-dropped",
        predict_checks.check_predict_requests,
    ),
    Mend(
        9, "undecodable_grpc",
        _symbols("caikit.runtime.interceptors.caikit_runtime_server_wrapper", "CaikitRuntimeServerWrapper._make_new_handler"),
        "A gRPC request that does not parse (non-UTF-8 in a string field) is INTERNAL \"Exception "
        "deserializing request!\", not INVALID_ARGUMENT.",
        f"{UPSTREAM_REPORTS}#undecodable-grpc-requests-are-internal",
        undecodable_grpc.refuse_undecodable_grpc_requests,
    ),
    Mend(
        2, "http_bodies",
        _symbols(HTTP_SERVER, "pydantic_from_request"),
        "An empty or untyped body is 500, a JSON charset parameter 415, and a 422 that quotes non-UTF-8 "
        "bytes 500; bodies have no size cap.",
        f"{UPSTREAM_REPORTS}#http-bodies-without-content-type-or-not-utf-8-answer-500",
        http_bodies.read_http_bodies,
        http_only=True,
    ),
    Mend(
        3, "abandoned_streams",
        _symbols(HTTP_SERVER, "async_wrap_iter") + _symbols(PREDICT_SERVICER, "GlobalPredictServicer.predict_model"),
        "An SSE stream whose client left parks its pool worker forever; a stream's predict_model runs on "
        "the event loop and stalls every HTTP request.",
        f"{UPSTREAM_REPORTS}#abandoned-sse-streams-park-a-pool-worker-forever",
        abandoned_streams.abandonable_http_streams,
        order="After 6 and 8 on predict_model: it is the outermost, so their work also runs in the pool worker.",
        http_only=True,
    ),
    Mend(
        7, "unavailable_503",
        _symbols(NAMES, "STATUS_CODE_TO_HTTP", "HTTP_TO_STATUS_CODE"),
        "gRPC UNAVAILABLE (a backend down) becomes HTTP 501 Not Implemented, which clients do not retry.",
        f"{UPSTREAM_REPORTS}#unavailable-is-http-501",
        unavailable_503.unavailable_is_http_503,
        http_only=True,
    ),
    Mend(
        10, "openapi_spec",
        _symbols(HTTP_SERVER, "RuntimeHTTPServer._patch_openapi_spec"),
        "With FastAPI >= 0.120 the app rebuilds /openapi.json without caikit's additions: every request "
        "schema points at a missing $defs entry.",
        f"{UPSTREAM_REPORTS}#openapijson-loses-its-request-schemas-with-fastapi--0120",
        openapi_spec.serve_completed_openapi_spec,
        http_only=True,
    ),
    Mend(
        11, "http_request_errors",
        _symbols(HTTP_SERVER, "RuntimeHTTPServer._handle_exception"),
        "Request errors raised outside the servicers (bad multipart, an int past int64) answer 500 in "
        "the unary, train and job handlers.",
        f"{UPSTREAM_REPORTS}#request-errors-outside-the-servicers-answer-500",
        http_request_errors.request_errors_are_http_4xx,
        http_only=True,
    ),
    Mend(
        16, "playground_routes",
        _symbols(HTTP_SERVER, "RuntimeHTTPServer.start"),
        "caikit's HTTP server has no hook for routes of our own (the playground at `/`), and keeps "
        "FastAPI's /docs and /redoc, which load their script from a CDN: blank pages offline.",
        "none: our page; /docs as a packaged page that points to /openapi.json and docs/",
        playground_routes.serve_the_playground,
        http_only=True,
    ),
)


@dataclass(frozen=True)
class Hook:
    """A caikit extension point used instead of a mend."""

    setting: str  # the runtime config key that plugs it in
    import_class: str
    does: str


HOOKS = (
    Hook(
        "model_management.trainers.default",
        "caikit_genai.toolkit.training.subprocess_training.PortableLocalTrainer",
        "Checks names and data paths before a job, and passes data streams into the spawned training process.",
    ),
    Hook(
        "model_management.loaders.default",
        "caikit_genai.runtime_mends.failed_loads.FailureRememberingLoader",
        "Records each failed load with its first error and its dir's fingerprint (mend 13 reads the record); "
        "a live swap's failed load is mend 17's to report.",
    ),
)


class UntestedVersionError(RuntimeError):
    """caikit (or torch) is at a version the mends were not checked on, or lacks a symbol one replaces."""


def installed_versions() -> Dict[str, Optional[str]]:
    versions = {}
    for package in PINS:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return versions


def untested_versions(installed: Mapping[str, Optional[str]]) -> List[str]:
    """One message per pinned package whose installed version is outside its pin."""
    problems = []
    for package, pin in PINS.items():
        found = installed.get(package)
        if found is not None and not pin.holds(found):
            problems.append(
                f"caikit_genai's runtime mends were tested on {package} {pin.shown}; found {found}: pin "
                f"{package}{pin.specifier} or re-check the mends (docs/caikit-mends.md)"
            )
    return problems


def missing_symbols() -> List[Tuple[Mend, Symbol]]:
    return [
        (mend, symbol) for mend in MENDS for symbol in mend.replaces if symbol.needed() and not symbol.exists()
    ]


def allow_untested() -> bool:
    return os.environ.get(UNTESTED_VERSIONS_SETTING, "").strip().lower() in ("1", "true", "yes", "on")


def check_versions(installed: Optional[Mapping[str, Optional[str]]] = None, allowed: Optional[bool] = None) -> None:
    """Refuse versions outside PINS (UntestedVersionError), unless allowed: then a warning."""
    problems = untested_versions(installed_versions() if installed is None else installed)
    if not problems:
        return
    if allow_untested() if allowed is None else allowed:
        for problem in problems:
            log.warning("%s. %s is set: applying them anyway", problem, UNTESTED_VERSIONS_SETTING)
        return
    raise UntestedVersionError(
        "; ".join(problems) + f". To try them anyway (testing an upgrade), set {UNTESTED_VERSIONS_SETTING}=1."
    )


def apply() -> None:
    """Check versions and symbols before patching anything, then apply every mend in MENDS' order.

    Idempotent: each mend marks what it wrapped and leaves it alone the next time."""
    check_versions()
    missing = missing_symbols()
    if missing and not allow_untested():
        raise UntestedVersionError(
            "caikit_genai's runtime mends replace symbols this installation lacks: "
            + ", ".join(f"{symbol} (mend {mend.number})" for mend, symbol in missing)
            + f". Pin caikit{PINS['caikit'].specifier} or re-check the mends (docs/caikit-mends.md)."
        )
    skipped = {mend.number for mend, _ in missing}
    for mend, symbol in missing:
        log.warning("mend %d (%s) is not applied: %s is gone", mend.number, mend.name, symbol)
    serves_http = http_server_module() is not None
    for mend in MENDS:
        if mend.number not in skipped and (serves_http or not mend.http_only):
            mend.apply()
