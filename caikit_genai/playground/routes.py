"""The playground's routes on caikit's FastAPI app: the page at `/`, its packaged assets under
`/playground/static/`, a few small read-only JSON routes the page needs and caikit lacks, a
training's progress (caikit's training status has no field for it), and an offline `/docs` page
in place of FastAPI's Swagger UI (which loads its script from a CDN).

Every route here is left out of /openapi.json: the API caikit generates stays as it is.
"""

import json
import os
from typing import Any, Dict

from ..toolkit.serving.safe_paths import MODEL_NAME_RULE, is_inside, is_safe_model_name
from ..toolkit.training import progress_file
from .catalog import build_catalog

STATIC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
STATIC_ROUTE = "/playground/static"
CATALOG_ROUTE = "/playground/api/catalog"
METRICS_ROUTE = "/playground/api/models/{model_id}/metrics"
MODULE_ROUTE = "/playground/api/models/{model_id}/module"
PROGRESS_ROUTE = "/api/v1/trainings/{training_id}/progress"
METRICS_FILE = "metrics.json"
# A model card is a few kB; a bigger file is no card the page can show.
MAX_METRICS_BYTES = 1 << 20
_MOUNTED = "caikit_genai_playground"


def _error(status: int, details: str):
    """An error in caikit's own JSON shape ({details, code}), which the page reads for every route."""
    from fastapi.responses import JSONResponse  # pylint: disable=import-outside-toplevel

    return JSONResponse({"details": details, "code": status}, status_code=status)


def _page(name: str):
    from fastapi.responses import FileResponse  # pylint: disable=import-outside-toplevel

    # no-cache: a browser revalidates (cheap, by ETag), so an upgraded runtime serves its new page.
    return FileResponse(os.path.join(STATIC_DIR, name), media_type="text/html", headers={"Cache-Control": "no-cache"})


def _model_file(models_dir: str, model_id: str, name: str):
    """(the path of a model dir's file, None), or (None, an error response): a file of
    `models_dir`/<model_id>/ only."""
    if not is_safe_model_name(model_id):
        return None, _error(400, f"model_id {model_id!r} is not a valid model name: use {MODEL_NAME_RULE}")
    path = os.path.join(models_dir, model_id, name)
    # By name, not by resolved link: an operator may link a model dir in on purpose (as mend 1 allows).
    if not is_inside(path, models_dir, follow_symlinks=False) or not os.path.isfile(path):
        return None, _error(404, f"model {model_id!r} has no {name} in the models dir")
    return path, None


def model_module(models_dir: str, model_id: str):
    """The module a model dir names in its config.yml. caikit's /info/models says it only once a
    request has loaded the model: the lazy loader lists a new model dir (a training's output)
    with no module until then, and the page could not offer it for any task."""
    from caikit.core.modules import ModuleConfig  # pylint: disable=import-outside-toplevel

    path, error = _model_file(models_dir, model_id, "config.yml")
    if error is not None:
        return error
    try:
        return {"module_id": ModuleConfig.load(os.path.dirname(path)).module_id}
    except Exception as err:  # pylint: disable=broad-except
        return _error(500, f"config.yml of {model_id!r} names no module: {type(err).__name__}")


def model_metrics(models_dir: str, model_id: str):
    """A served model's metrics.json (its card), read from `models_dir`/<model_id>/ only."""
    path, error = _model_file(models_dir, model_id, METRICS_FILE)
    if error is not None:
        return error
    if os.path.getsize(path) > MAX_METRICS_BYTES:
        return _error(413, f"{METRICS_FILE} of {model_id!r} is over {MAX_METRICS_BYTES:,} bytes: not shown")
    try:
        with open(path, encoding="utf-8") as metrics_file:
            return json.load(metrics_file)
    except (OSError, UnicodeDecodeError, ValueError) as err:
        return _error(500, f"{METRICS_FILE} of {model_id!r} is not readable JSON: {type(err).__name__}")


def training_progress(progress_dir: str, training_id: str):
    """The last progress a training's loop wrote (toolkit/training/progress_file.py), kept after
    the job ends (`started: false` from submission to the first step); 404 for a training this
    runtime did not start."""
    if not progress_file.is_valid_training_id(training_id):
        return _error(400, f"training_id {training_id!r} is not a valid training id: use {progress_file.TRAINING_ID_RULE}")
    progress = progress_file.read_progress(progress_dir, training_id)
    if progress is None:
        return _error(404, f"no progress for training {training_id!r}: this runtime started no such training")
    return progress


def _drop_swagger_ui(app) -> None:
    """Take out FastAPI's /docs, its OAuth2 redirect and /redoc: each loads its script from a CDN
    and is a blank page offline. /openapi.json stays."""
    cdn_pages = {app.docs_url, app.redoc_url, app.swagger_ui_oauth2_redirect_url} - {None}
    app.router.routes[:] = [route for route in app.router.routes if getattr(route, "path", None) not in cdn_pages]
    app.docs_url = app.redoc_url = app.swagger_ui_oauth2_redirect_url = None


def mount_playground(server) -> None:
    """Add the playground's routes to a RuntimeHTTPServer's app (once)."""
    # pylint: disable=import-outside-toplevel
    from caikit.config import get_config
    from starlette.staticfiles import StaticFiles

    app = server.app
    if getattr(app.state, _MOUNTED, False):
        return
    _drop_swagger_ui(app)
    catalog: Dict[str, Any] = {}

    def playground():
        return _page("index.html")

    def api_docs():
        return _page("docs.html")

    def playground_catalog():
        # Built on first use: the services are complete by then, and they never change.
        if not catalog:
            catalog.update(build_catalog(server), training_progress=PROGRESS_ROUTE.lstrip("/") if server.enable_training else None)
        return catalog

    def models_dir() -> str:
        return os.path.abspath(get_config().runtime.local_models_dir or "models")

    def playground_model_metrics(model_id: str):
        return model_metrics(models_dir(), model_id)

    def playground_model_module(model_id: str):
        return model_module(models_dir(), model_id)

    def training_progress_route(training_id: str):
        return training_progress(progress_file.progress_dir(), training_id)

    app.get("/", include_in_schema=False)(playground)
    app.get("/docs", include_in_schema=False)(api_docs)
    app.get(CATALOG_ROUTE, include_in_schema=False)(playground_catalog)
    app.get(METRICS_ROUTE, include_in_schema=False)(playground_model_metrics)
    app.get(MODULE_ROUTE, include_in_schema=False)(playground_model_module)
    app.get(PROGRESS_ROUTE, include_in_schema=False)(training_progress_route)
    app.mount(STATIC_ROUTE, StaticFiles(directory=STATIC_DIR), name="playground-static")
    setattr(app.state, _MOUNTED, True)
