"""2. HTTP bodies: a POST with no Content-Type answers 500 ("argument of type 'NoneType' is not
iterable"), `application/json; charset=utf-8` answers 415, and a body whose validation error
quotes bytes that are not UTF-8 (a JSON body that is not UTF-8, a bad multipart file field,
a NaN where a string belongs) answers 500: caikit's 422 handler cannot encode what it quotes.
Every route that reads a request body parses it here: an empty body is a 400 that says which
fields to send, a body over `genai.limits.max_request_body_bytes` a 413 (refused before it is
read whole), a JSON body that is not UTF-8 a 400 that says so, and a 422 names the field
(`parameters.top_k: ...`) and quotes what it echoes escaped and short.
"""

import math

from ..toolkit.serving import limits
from ..toolkit.serving.errors import shown
from ._common import http_server_module, replace_once


def read_http_bodies() -> None:
    """Every route of caikit's HTTP server that reads a body calls its `pydantic_from_request`."""
    replace_once(http_server_module(), "pydantic_from_request", _json_body_reader)


def _json_body_reader(read_other_media_types):
    """caikit's request reader, with JSON read whatever its charset parameter, a missing
    Content-Type read as JSON, and an empty body (or one that is not UTF-8) refused with a 400."""
    # pylint: disable=import-outside-toplevel
    import pydantic
    from fastapi import HTTPException, status
    from fastapi.exceptions import RequestValidationError

    async def pydantic_from_request(pydantic_model, request):
        try:
            return await read_body(pydantic_model, request)
        except RequestValidationError as err:
            raise RequestValidationError(errors=_quotable(err.errors())) from err

    async def read_body(pydantic_model, request):
        body = await _read_capped_body(request, limits.current().max_request_body_bytes)
        media_type = (request.headers.get("content-type") or "").split(";", 1)[0].strip().lower()
        if media_type not in ("", "application/json"):
            return await read_other_media_types(pydantic_model, request)
        if not body.strip():
            fields = ", ".join(f"`{name}`" for name in pydantic_model.model_fields)
            raise HTTPException(
                status.HTTP_400_BAD_REQUEST,
                f"the request body is empty: send a JSON object with {fields} (Content-Type: application/json)",
            )
        try:
            body.decode("utf-8")
        except UnicodeDecodeError as err:
            raise HTTPException(
                status.HTTP_400_BAD_REQUEST,
                f"the request body is not UTF-8 (byte {body[err.start]:#04x} at offset {err.start}): "
                "JSON must be UTF-8; send binary data base64-encoded",
            ) from err
        try:
            return pydantic_model.model_validate_json(body)
        except pydantic.ValidationError as err:
            raise RequestValidationError(errors=[_named_error(error) for error in err.errors()]) from err

    return pydantic_from_request


async def _read_capped_body(request, max_bytes: int) -> bytes:
    """The request body, refused with a 413 once it passes `max_bytes` (by its Content-Length,
    before reading, or while it streams in); kept on the request, where starlette's own readers
    (`body()`, `form()`) find it."""
    from fastapi import HTTPException, status  # pylint: disable=import-outside-toplevel

    def too_large(size: str):
        return HTTPException(
            status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
            f"the request body is {size} bytes, over the limit of {max_bytes:,} "
            "(genai.limits.max_request_body_bytes): send less per request",
        )

    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > max_bytes:
        raise too_large(f"{int(length):,}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise too_large(f"more than {max_bytes:,}")
        chunks.append(chunk)
    request._body = b"".join(chunks)  # pylint: disable=protected-access
    return request._body  # pylint: disable=protected-access


def _named_error(error: dict) -> dict:
    """A pydantic error whose message starts with the field (caikit's 422 shows only the first
    message) and whose echoed input is short and JSON-safe (NaN, bytes and 1 MB strings are not)."""
    location = ".".join(str(part) for part in error.get("loc", ()))
    named = {key: value for key, value in error.items() if key not in ("input", "ctx", "url")}
    named["msg"] = f"{location}: {error.get('msg', '')}" if location else error.get("msg", "")
    named["input"] = _short_json(error.get("input"))
    return named


def _short_json(value):
    if value is None or isinstance(value, bool) or (isinstance(value, int) and abs(value) < 2**64):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    return shown(value, 100)


def _quotable(value):
    """`value` (validation errors) with every bytes object in it as text, escaped where it is not
    UTF-8, so that the error response can quote it."""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "backslashreplace")
    if isinstance(value, dict):
        return {key: _quotable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_quotable(item) for item in value]
    return value
