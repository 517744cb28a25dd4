"""The playground: a page the runtime serves at `/` on its own HTTP port, to try every task in a
browser (streamed text, images, attention, training) with nothing else to start.

The page is plain HTML, CSS and JavaScript modules under static/ (no build step, nothing fetched
from outside the runtime); every URL it uses is relative, so it works behind a Route and a
path prefix. runtime_mends/playground_routes.py (mend 16) mounts it on caikit's HTTP server.
docs/playground.md says how to use it.
"""

from .catalog import build_catalog
from .routes import CATALOG_ROUTE, METRICS_ROUTE, STATIC_DIR, mount_playground

__all__ = ["CATALOG_ROUTE", "METRICS_ROUTE", "STATIC_DIR", "build_catalog", "mount_playground"]
