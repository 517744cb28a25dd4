"""9. gRPC requests that do not parse (a string field holding bytes that are not UTF-8) answer
INTERNAL "Exception deserializing request!" from grpc itself; they are INVALID_ARGUMENT
saying what could not be read.
"""

import functools

import grpc

from ._common import log, replace_once


class _UndecodableRequest:
    """What a request deserializer gives for bytes that are no valid message."""

    def __init__(self, message_name: str, error: Exception):
        self.message_name, self.error = message_name, error


def refuse_undecodable_grpc_requests() -> None:
    """Every handler caikit's gRPC server registers is made by `_make_new_handler`: give its
    unary-request handlers a deserializer that does not fail, and a behaviour that refuses what
    did not parse with INVALID_ARGUMENT (grpc itself answers INTERNAL)."""
    from caikit.runtime.interceptors.caikit_runtime_server_wrapper import (  # pylint: disable=import-outside-toplevel
        CaikitRuntimeServerWrapper,
    )

    replace_once(CaikitRuntimeServerWrapper, "_make_new_handler", _checking_handlers)


def _checking_handlers(make_new_handler):
    def make_checked_handler(self, original_rpc_handler, caikit_rpc=None):
        handler = make_new_handler(self, original_rpc_handler, caikit_rpc)
        if handler.request_streaming or handler.request_deserializer is None:
            return handler
        behaviour = "unary_stream" if handler.response_streaming else "unary_unary"
        return handler._replace(
            request_deserializer=_tolerant_deserializer(handler.request_deserializer),
            **{behaviour: _refusing_undecodable(getattr(handler, behaviour))},
        )

    return make_checked_handler


def _tolerant_deserializer(deserialize):
    from google.protobuf.message import DecodeError  # pylint: disable=import-outside-toplevel

    message_class = getattr(deserialize, "__self__", None)
    message_name = getattr(getattr(message_class, "DESCRIPTOR", None), "full_name", "request")

    def deserialize_or_mark(data: bytes):
        try:
            return deserialize(data)
        except DecodeError as error:
            return _UndecodableRequest(message_name, error)

    return deserialize_or_mark


def _refusing_undecodable(behaviour):
    @functools.wraps(behaviour)
    def refuse_undecodable(request, context):
        if isinstance(request, _UndecodableRequest):
            log.warning("refused a request that is no valid %s: %s", request.message_name, request.error)
            context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"the request is not a valid {request.message_name} message ({request.error}): "
                "string fields must hold valid UTF-8; send binary data in a bytes field",
            )
        return behaviour(request, context)

    return refuse_undecodable
