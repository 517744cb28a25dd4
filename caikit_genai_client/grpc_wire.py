"""The gRPC wire, through the server's reflection service (on in every caikit runtime).

The request and reply classes are built from the descriptors the server itself publishes, so the
client needs no generated code and no copy of the server's config: what a runtime serves (its
domain, its modules, an added TGIS module) is what the client calls. Replies are turned into the
JSON the HTTP routes answer (64-bit integers as numbers, enums by name, bytes as base64), so one
parser reads both wires.
"""

import base64
import threading
from typing import Any, Dict, Iterator, List, Optional

import grpc
from google.protobuf import json_format
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.descriptor_pool import DescriptorPool
from google.protobuf.message_factory import GetMessageClass
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase
from grpc_reflection.v1alpha.reflection_pb2 import ServerReflectionRequest
from grpc_reflection.v1alpha.reflection_pb2_grpc import ServerReflectionStub

from .contract import TLS, ClientError, TaskRoute, train_parameters

MANAGEMENT_SERVICE = "caikit.runtime.training.TrainingManagement"
INFO_SERVICE = "caikit.runtime.info.InfoService"
# Replies past gRPC's 4 MiB default are refused by the client; attention stacks come close.
MAX_RECEIVE_BYTES = 64 * 1024 * 1024


class GrpcWire:
    """Calls over gRPC; every answer is the reply as the HTTP route's JSON would carry it."""

    name = "grpc"

    def __init__(self, target: str, tls: Optional[TLS], timeout: float, metadata: Dict[str, str], domain: str):
        options = [("grpc.max_receive_message_length", MAX_RECEIVE_BYTES)]
        if tls is None:
            self.channel = grpc.insecure_channel(target, options=options)
        else:
            if tls.server_name:
                options.append(("grpc.ssl_target_name_override", tls.server_name))
            credentials = grpc.ssl_channel_credentials(
                root_certificates=_read(tls.ca), private_key=_read(tls.key), certificate_chain=_read(tls.cert)
            )
            self.channel = grpc.secure_channel(target, credentials, options=options)
        self.target = target
        self.timeout = timeout
        self.metadata = [(key.lower(), value) for key, value in metadata.items()]
        self.inference_service = f"caikit.runtime.{domain}.{domain}Service"
        self.training_service = f"caikit.runtime.{domain}.{domain}TrainingService"
        self._pool = DescriptorPool(ProtoReflectionDescriptorDatabase(self.channel))
        self._methods: Dict[str, Any] = {}
        self._lock = threading.Lock()

    def close(self) -> None:
        self.channel.close()

    def predict(self, task: TaskRoute, model_id: str, inputs: Any, parameters: Dict[str, Any]) -> Dict[str, Any]:
        return self._call(self.inference_service, task.rpc(), {task.input_field: inputs, **parameters}, model_id)

    def stream(self, task: TaskRoute, model_id: str, inputs: Any, parameters: Dict[str, Any]) -> Iterator[Dict[str, Any]]:
        call, request_class = self._method(self.inference_service, task.rpc(streaming=True))
        request = _request(request_class, {task.input_field: inputs, **parameters})
        replies = call(request, metadata=self._metadata(model_id), timeout=self.timeout)
        try:
            for reply in replies:
                yield message_to_dict(reply)
        except grpc.RpcError as error:
            raise _error(error) from None
        finally:
            replies.cancel()  # a consumer that stops early ends the generation on the server

    def train(self, rpc: str, model_name: str, parameters: Dict[str, Any]) -> Dict[str, Any]:
        fields = {"model_name": model_name, "parameters": train_parameters(parameters, self.name)}
        return self._call(self.training_service, rpc, fields)

    def training_status(self, training_id: str) -> Dict[str, Any]:
        return self._call(MANAGEMENT_SERVICE, "GetTrainingStatus", {"training_id": training_id})

    def cancel_training(self, training_id: str) -> Dict[str, Any]:
        return self._call(MANAGEMENT_SERVICE, "CancelTraining", {"training_id": training_id})

    def models(self) -> List[Dict[str, Any]]:
        return self._call(INFO_SERVICE, "GetModelsInfo", {}).get("models") or []

    def _call(self, service: str, rpc: str, fields: Dict[str, Any], model_id: Optional[str] = None) -> Dict[str, Any]:
        call, request_class = self._method(service, rpc)
        try:
            reply = call(_request(request_class, fields), metadata=self._metadata(model_id), timeout=self.timeout)
        except grpc.RpcError as error:
            raise _error(error) from None
        return message_to_dict(reply)

    def _metadata(self, model_id: Optional[str]) -> list:
        return self.metadata + ([("mm-model-id", model_id)] if model_id is not None else [])

    def _method(self, service: str, rpc: str):
        """The callable and request class of one RPC, from the server's reflection (once each)."""
        key = f"/{service}/{rpc}"
        with self._lock:
            if key not in self._methods:
                if not self._methods:
                    self._wait_for_an_answer()
                try:
                    method = self._pool.FindServiceByName(service).methods_by_name[rpc]
                except grpc.RpcError as error:
                    raise _error(error) from None
                except KeyError:
                    raise ClientError("UNIMPLEMENTED", f"the runtime at {self.target} has no RPC {service}/{rpc}", self.name) from None
                request_class = GetMessageClass(method.input_type)
                reply_class = GetMessageClass(method.output_type)
                kind = self.channel.unary_stream if method.server_streaming else self.channel.unary_unary
                call = kind(key, request_serializer=request_class.SerializeToString, response_deserializer=reply_class.FromString)
                self._methods[key] = (call, request_class)
            return self._methods[key]


    def _wait_for_an_answer(self) -> None:
        """One reflection call under the client's deadline: the descriptor pool's own calls take
        none, and would wait for ever on a server that accepts connections and never speaks."""
        replies = ServerReflectionStub(self.channel).ServerReflectionInfo(
            iter([ServerReflectionRequest(list_services="")]), timeout=self.timeout, metadata=self.metadata
        )
        try:
            next(replies)
        except grpc.RpcError as error:
            raise _error(error) from None
        finally:
            replies.cancel()


def message_to_dict(message) -> Dict[str, Any]:
    """A reply as the HTTP routes write it: proto field names, 64-bit integers as numbers, enums by
    name, bytes as base64, an unset optional field as None."""
    result = {}
    for field in message.DESCRIPTOR.fields:
        value = getattr(message, field.name)
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            value_field = field.message_type.fields_by_name["value"]
            result[field.name] = {key: _value(value_field, item) for key, item in value.items()}
        elif field.is_repeated:
            result[field.name] = [_value(field, item) for item in value]
        elif field.has_presence and not message.HasField(field.name):
            result[field.name] = None
        else:
            result[field.name] = _value(field, value)
    return result


def _value(field: FieldDescriptor, value: Any) -> Any:
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        if field.message_type.full_name.startswith("google.protobuf."):  # Struct, Timestamp: their JSON forms
            return json_format.MessageToDict(value)
        return message_to_dict(value)
    if field.type == FieldDescriptor.TYPE_ENUM:
        named = field.enum_type.values_by_number.get(value)
        return named.name if named is not None else value
    if field.type == FieldDescriptor.TYPE_BYTES:
        return base64.b64encode(value).decode("ascii")
    return value


def _request(request_class, fields: Dict[str, Any]):
    try:
        return json_format.ParseDict(fields, request_class())
    except json_format.ParseError as error:
        raise ClientError("INVALID_ARGUMENT", f"{request_class.DESCRIPTOR.name}: {error}", GrpcWire.name) from None


def _error(error: grpc.RpcError) -> ClientError:
    code = error.code() if hasattr(error, "code") else None
    details = error.details() if hasattr(error, "details") else str(error)
    return ClientError(code.name if code is not None else "UNKNOWN", details or "", GrpcWire.name)


def _read(path: Optional[str]) -> Optional[bytes]:
    if path is None:
        return None
    with open(path, "rb") as pem:
        return pem.read()
