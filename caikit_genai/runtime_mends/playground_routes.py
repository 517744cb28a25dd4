"""16. The playground and /docs. caikit's HTTP server builds its FastAPI app with no hook for
routes of our own, and leaves FastAPI's /docs and /redoc in place: both load their script and
style from a CDN (jsdelivr), so they are blank pages wherever the runtime has no internet.
When the server starts, before it serves, the playground's routes (caikit_genai/playground/) are
added to its app, and /docs becomes a packaged page that points to /openapi.json and the
project's API docs (/redoc and the OAuth2 redirect page are dropped).
"""

from ._common import http_server_module, replace_once


def serve_the_playground() -> None:
    """`RuntimeHTTPServer.start` mounts the playground on its app first."""
    replace_once(http_server_module().RuntimeHTTPServer, "start", _mounting_the_playground)


def _mounting_the_playground(start):
    def start_with_playground(self, *args, **kwargs):
        from ..playground import mount_playground  # pylint: disable=import-outside-toplevel

        mount_playground(self)
        return start(self, *args, **kwargs)

    return start_with_playground
