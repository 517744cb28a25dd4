"""11. HTTP errors that are the request's, raised outside the servicers, answer 500 in caikit's
unary, train and job handlers: starlette's own HTTPException (a malformed multipart body,
"Invalid multipart data.") and the ValueError/TypeError that caikit's gRPC servicers and
its own streaming handler answer INVALID_ARGUMENT / 400 (a train request's integer past
int64 fails its conversion to proto). They keep their status, or answer 400.
"""


from ._common import http_server_module, log, replace_once


def request_errors_are_http_4xx() -> None:
    """caikit's handlers call `_handle_exception` for any error: None re-raises it (FastAPI
    answers its HTTPExceptions itself), a dict is the error body."""
    replace_once(http_server_module().RuntimeHTTPServer, "_handle_exception", _answering_request_errors, static=True)


def _answering_request_errors(handle_exception):
    # pylint: disable=import-outside-toplevel
    import uuid

    from starlette.exceptions import HTTPException

    def handle_request_errors(err):
        if isinstance(err, HTTPException):
            return None
        if isinstance(err, (ValueError, TypeError)) and not hasattr(err, "status_code"):
            log.warning("request refused: %r", err)
            return {"details": f"invalid request: {err}", "code": 400, "id": uuid.uuid4().hex}
        return handle_exception(err)

    return handle_request_errors
