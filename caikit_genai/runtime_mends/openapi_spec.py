"""10. `/openapi.json`: caikit completes the spec once at start (adding the request schemas its
routes point to with `$ref`) and stores it in `app.openapi_schema`, but FastAPI >= 0.120
rebuilds the spec on the next request when its routes' version mark is unset, dropping
caikit's additions: every request body schema then points at a missing `#/$defs/...`, and
no OpenAPI client (Swagger UI, a generated client, schemathesis) can read the spec. The app
serves caikit's completed spec, with caikit's enums (FinishReason, JobStatus) described as
the JSON carries them: their names, not the integers of the proto.
"""


from ._common import http_server_module, replace_once


def serve_completed_openapi_spec() -> None:
    """After caikit's `_patch_openapi_spec`, the app's `openapi()` (what `/openapi.json` and
    `/docs` call) returns the spec caikit completed, as FastAPI documents for a custom spec."""
    replace_once(http_server_module().RuntimeHTTPServer, "_patch_openapi_spec", _keeping_the_spec)


def _keeping_the_spec(patch_spec):
    def patch_and_keep_spec(self):
        patch_spec(self)
        completed = self.app.openapi_schema
        for schema in completed.get("components", {}).get("schemas", {}).values():
            _enum_schema_by_name(schema)
        self.app.openapi = lambda: completed

    return patch_and_keep_spec


def _enum_schema_by_name(schema: dict) -> None:
    """An integer enum schema of a caikit enum (its Python class found by title and values)
    becomes the string enum of its names, which is what caikit's JSON writes."""
    import enum  # pylint: disable=import-outside-toplevel

    if schema.get("type") != "integer" or not schema.get("enum"):
        return
    pending, classes = list(enum.Enum.__subclasses__()), []
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if cls.__name__ == schema.get("title") and sorted(m.value for m in cls) == sorted(schema["enum"]):
            classes.append(cls)
    if len(classes) == 1:
        schema.update(type="string", enum=[member.name for member in classes[0]])
