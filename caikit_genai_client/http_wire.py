"""The HTTP wire: caikit's JSON routes with `requests`, and a server-sent-events reader that
follows the SSE spec (caikit-nlp-client 0.0.8's reader chokes on the `event:` lines caikit
sends, see README)."""

import json
import re
from typing import Any, Dict, Iterable, Iterator, List, Optional, Tuple
from urllib.parse import quote

import requests

from .contract import TLS, ClientError, TaskRoute, train_parameters

_LINE_END = re.compile(r"\r\n|\r|\n")


def sse_events(chunks: Iterable[str]) -> Iterator[Tuple[str, str]]:
    """(event type, data) of each event of a text/event-stream body, given as the text pieces the
    network delivers, as the SSE spec reads it: lines end with CRLF, LF or CR (a piece may end
    inside a line, or between a CR and its LF); `event:` names the event, `data:` lines add to its
    data, a blank line dispatches it, a line starting with `:` is a comment. Yields as each
    event completes."""
    buffer, event, data = "", "message", []
    for chunk in chunks:
        buffer += chunk
        while True:
            end = _LINE_END.search(buffer)
            if end is None or (end.group() == "\r" and end.end() == len(buffer)):
                break  # no whole line yet (a CR at the very end may be half of a CRLF)
            line, buffer = buffer[: end.start()], buffer[end.end() :]
            if not line:
                if data:
                    yield event, "\n".join(data)
                event, data = "message", []
            elif not line.startswith(":"):
                field, _, value = line.partition(":")
                value = value[1:] if value.startswith(" ") else value
                if field == "event":
                    event = value
                elif field == "data":
                    data.append(value)
    if buffer == "\r" and data:  # the body ended with a CR: a blank line after all
        yield event, "\n".join(data)
    # An event the body ends in, before its blank line, is incomplete: the spec discards it.


class HttpWire:
    """Calls over HTTP(S); every answer is the JSON body the route returns."""

    name = "http"

    def __init__(self, url: str, tls: Optional[TLS], timeout: float, headers: Dict[str, str]):
        self.url = url.rstrip("/")
        if "://" not in self.url:
            self.url = ("https://" if tls else "http://") + self.url
        self.timeout = timeout
        self.session = requests.Session()
        self.session.headers.update(headers)
        # Given with each request: a Session's `verify` loses to REQUESTS_CA_BUNDLE (requests#3829).
        self.tls_options: Dict[str, Any] = {}
        if tls is not None:
            self.tls_options["verify"] = tls.ca if tls.ca else True
            if tls.cert:
                self.tls_options["cert"] = (tls.cert, tls.key)

    def close(self) -> None:
        self.session.close()

    def predict(self, task: TaskRoute, model_id: str, inputs: Any, parameters: Dict[str, Any]) -> Dict[str, Any]:
        return self._request("POST", task.http_path(), json=_body(model_id, inputs, parameters))

    def stream(self, task: TaskRoute, model_id: str, inputs: Any, parameters: Dict[str, Any]) -> Iterator[Dict[str, Any]]:
        response = self._send("POST", task.http_path(streaming=True), json=_body(model_id, inputs, parameters), stream=True)
        response.encoding = "utf-8"
        with response:
            for event, data in sse_events(response.iter_content(chunk_size=None, decode_unicode=True)):
                message = _json_or_text(data)
                if event == "error":  # caikit answers 200, then sends the error as an event
                    raise _error(message, fallback_code=500)
                yield message

    def train(self, rpc: str, model_name: str, parameters: Dict[str, Any]) -> Dict[str, Any]:
        body = {"model_name": model_name, "parameters": train_parameters(parameters, self.name)}
        return self._request("POST", f"/api/v1/{rpc}", json=body)

    def training_status(self, training_id: str) -> Dict[str, Any]:
        return self._request("GET", "/management/trainings", params={"training_id": training_id})

    def training_progress(self, training_id: str) -> Optional[Dict[str, Any]]:
        """The job's last progress, or None where the runtime has none for it (404)."""
        try:
            return self._request("GET", f"/api/v1/trainings/{quote(training_id, safe=':')}/progress")
        except ClientError as error:
            if error.code == 404:
                return None
            raise

    def cancel_training(self, training_id: str) -> Dict[str, Any]:
        return self._request("DELETE", "/management/trainings", params={"training_id": training_id})

    def models(self) -> List[Dict[str, Any]]:
        return self._request("GET", "/info/models").get("models") or []

    def _request(self, method: str, path: str, **options) -> Dict[str, Any]:
        response = self._send(method, path, **options)
        try:
            return response.json()
        except ValueError as error:
            raise ClientError(response.status_code, f"not JSON: {response.text[:200]!r}", self.name) from error

    def _send(self, method: str, path: str, **options) -> requests.Response:
        try:
            response = self.session.request(method, self.url + path, timeout=self.timeout, **self.tls_options, **options)
        except requests.Timeout as error:
            raise ClientError("DEADLINE_EXCEEDED", f"{self.url}: no answer within {self.timeout} s ({error})", self.name) from error
        except requests.RequestException as error:
            raise ClientError("UNAVAILABLE", f"{self.url}: {error}", self.name) from error
        if response.status_code >= 400:
            raise _error(_json_or_text(response.text), fallback_code=response.status_code)
        return response


def _body(model_id: str, inputs: Any, parameters: Dict[str, Any]) -> Dict[str, Any]:
    return {"model_id": model_id, "inputs": inputs, "parameters": parameters}


def _json_or_text(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def _error(body: Any, fallback_code: int) -> ClientError:
    """caikit's error bodies are `{"details": ..., "code": ...}`; anything else is kept as text."""
    if isinstance(body, dict) and "details" in body:
        return ClientError(int(body.get("code") or fallback_code), str(body["details"]), HttpWire.name)
    return ClientError(fallback_code, str(body)[:2000], HttpWire.name)
