"""The bad-input matrix: every task route the runtime serves, over gRPC and HTTP, gets bad input of
every kind, and each request must be refused clearly: gRPC INVALID_ARGUMENT (NOT_FOUND for an
unknown model) and HTTP 4xx (404), with a message naming the problem. Never INTERNAL / 5xx, never
a hang (every call has a timeout), never a dead runtime (the last test sends a good request to
every route after the matrix).

The machinery is two tables: ROUTES, one row per (task route, model) with a good request and the
fields to perturb (each field's bad values come from its kind: text, whole number, real number,
choice, list of texts ...), and the cases every route gets (model ids, a model of each other
task, bodies that are no JSON object, a message that is no protobuf). A new module or task is
covered by adding its row. The number of cases run per route and wire is printed at the end.

    .venv/bin/python -m pytest tests/test_bad_input_matrix.py -q
"""

import importlib.util
import json
import math
import re
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

import grpc
import pytest
import requests

from caikit_genai.toolkit.serving import limits
from conftest import (
    TINY_ATTENTION_ID,
    TINY_CHAR_ID,
    TINY_CHAR_MAX_NEW_TOKENS_LIMIT,
    TINY_DCGAN_ID,
    TINY_SENTIMENT_ID,
    TINY_TRANSLATOR_ID,
)
from test_char_runtime import sse_events

GRPC, HTTP = "grpc", "http"
BOTH = (GRPC, HTTP)
TIMEOUT = 30
MEGABYTE_TEXT = "x" * 1_000_000
# Latin-1 bytes where UTF-8 belongs: what a client that never encoded its text sends.
NOT_UTF8 = b"caf\xe9 \xff\xfe"
NOT_UTF8_MARK = "@@NOT_UTF8@@"
INVALID, NOT_FOUND = "INVALID_ARGUMENT", "NOT_FOUND"


@dataclass(frozen=True)
class Bad:
    """One bad value of a field. `says`: what the error message must contain, each entry a
    string or a tuple of alternatives (empty: the field's name); `wires`: those that can carry
    the value (gRPC's typed messages cannot carry a string where a number belongs)."""

    label: str
    value: Any
    says: Tuple = ()
    wires: Tuple[str, ...] = BOTH


def http_only(label, value, says=()):
    return Bad(label, value, says, (HTTP,))


# -- the kinds of field, and their bad values ------------------------------------------------


def text(empty_is_unset: bool = False) -> List[Bad]:
    bad = [
        Bad("whitespace only", " \t\n "),
        Bad("1 MB", MEGABYTE_TEXT, ("max_text_chars",)),
        Bad("not UTF-8", NOT_UTF8, ("UTF-8",)),
        http_only("a number", 42),
        http_only("NaN", math.nan),
        http_only("a list", ["a"]),
        http_only("an object", {"a": 1}),
    ]
    return bad if empty_is_unset else [Bad("empty", "")] + bad


def texts(empty_list_ok: bool = False, blank_ok: bool = False) -> List[Bad]:
    too_many = limits.current().max_list_items + 1
    bad = [
        Bad("an empty item", ["ok", ""]),
        Bad("a 1 MB item", ["ok", MEGABYTE_TEXT], ("max_text_chars",)),
        Bad(f"{too_many} items", ["a"] * too_many, ("max_list_items",)),
        Bad("a non-UTF-8 item", ["ok", NOT_UTF8], ("UTF-8",)),
        http_only("a string", "abc"),
        http_only("a number item", ["ok", 1]),
        http_only("an object", {"a": 1}),
    ]
    if not empty_list_ok:
        bad.append(Bad("an empty list", []))
    if not blank_ok:
        bad.append(Bad("a whitespace item", ["ok", "  "]))
    return bad


def whole(low: int, over: Optional[int] = None) -> List[Bad]:
    """A whole number valid from `low`; `over`, when given, is above its cap."""
    bad = [Bad(f"{low - 1}", low - 1)]
    if low > 0:
        bad.append(Bad("negative", -1))
    if over is not None:
        bad += [Bad("over the cap", over), Bad("2**63 - 1", 2**63 - 1), http_only("10**30", 10**30)]
    return bad + [http_only("fractional", 1.5), http_only("a string", "ten"), http_only("a list", [1])]


def real(low: Optional[float] = None, high: Optional[float] = None, low_open: bool = False) -> List[Bad]:
    bad = [Bad("NaN", math.nan), Bad("infinity", math.inf), Bad("-infinity", -math.inf)]
    if low is not None:
        bad.append(Bad(f"below {low}", low - 0.5))
    if low_open:
        bad.append(Bad(f"{low} itself", low))
    if high is not None:
        bad.append(Bad(f"above {high}", high + 0.5))
    return bad + [http_only("a string", "hot"), http_only("a list", [1.0])]


def choice() -> List[Bad]:
    return [
        Bad("not a choice", "NO_SUCH_CHOICE"),
        # Under the text cap: refused with a message that must not echo it whole (gRPC clients
        # drop an answer whose message passes 16 KiB).
        Bad("50,000 characters", "Z" * 50_000),
        Bad("1 MB", MEGABYTE_TEXT, ("max_text_chars",)),
        http_only("a number", 5),
    ]


def indices() -> List[Bad]:
    return [
        Bad("out of range", [99]),
        Bad("negative", [-1]),
        Bad("huge", [2**62]),
        Bad("twice", [0, 0]),
        Bad("10,000 out of range", list(range(100, 10_100))),
        http_only("a string", "x"),
        http_only("a fractional item", [1.5]),
    ]


SEED_64 = [http_only("negative", -1), http_only("2**64", 2**64), http_only("a string", "x")]
BOOLEAN = [http_only("not a boolean", "maybe"), http_only("a list", [True])]


def generation(max_new_tokens_over: int) -> Dict[str, List[Bad]]:
    """caikit-nlp's text generation parameters, as every generator checks them."""
    return {
        "text": text(),
        "max_new_tokens": whole(1, over=max_new_tokens_over),
        "min_new_tokens": whole(0),
        "decoding_method": choice(),
        "top_k": whole(0),
        "top_p": real(0.0, 1.0, low_open=True),
        "temperature": real(0.0),
        "repetition_penalty": real(0.0, low_open=True),
        "stop_sequences": texts(empty_list_ok=True, blank_ok=True),
        "seed": SEED_64,
        "preserve_input_text": BOOLEAN,
    }


TRANSLATION = {
    "num_beams": whole(0, over=10**6),
    "length_penalty": real(),
    "max_new_tokens": whole(1, over=10**6),
    "truncate_input_tokens": whole(0),
}
MIN_OVER_MAX = ("min_new_tokens over max_new_tokens", {"max_new_tokens": 5, "min_new_tokens": 6}, ("min_new_tokens",))


# -- the routes: one row per task route and model -------------------------------------------


@dataclass(frozen=True)
class Route:
    task: str
    model_id: str
    good: Dict[str, Any]  # a request that succeeds; its first field is the task's required input
    bad: Dict[str, List[Bad]]
    streaming: bool = False
    # (label, fields changed together, what the message says): bad combinations of good values.
    combinations: Tuple[Tuple[str, Dict[str, Any], Tuple], ...] = ()

    @property
    def name(self) -> str:
        return f"{self.http_route.rsplit('/', 1)[1]}:{self.model_id}"

    @property
    def rpc(self) -> str:
        return f"{'ServerStreaming' if self.streaming else ''}{self.task}Predict"

    @property
    def request_name(self) -> str:
        return f"{'ServerStreaming' if self.streaming else ''}{self.task}Request"

    @property
    def http_route(self) -> str:
        kebab = re.sub(r"(?<!^)(?=[A-Z])", "-", self.task.removesuffix("Task")).lower()
        return f"/api/v1/task/{'server-streaming-' if self.streaming else ''}{kebab}"

    @property
    def required(self) -> str:
        return next(iter(self.good))


CHAR_GENERATION = {
    **generation(TINY_CHAR_MAX_NEW_TOKENS_LIMIT + 1),
    "truncate_input_tokens": whole(0),
    "unknown_characters": choice(),
}
TRANSLATOR_GENERATION = {**generation(10**6), "num_beams": whole(0, over=10**6), "length_penalty": real()}
CHAR_COMBINATIONS = (MIN_OVER_MAX, ("text: characters the model never saw", {"text": "the cat \u2211"}, ("never saw",)))

ROUTES = [
    Route(
        "TextClassificationTask",
        TINY_SENTIMENT_ID,
        {"text": "a good film"},
        {"text": text(), "top_k": whole(0), "truncate_input_tokens": whole(-1)},
        combinations=(("text: over the model's tokens", {"text": "good " * 100}, ("tokens",)),),
    ),
    Route("TextGenerationTask", TINY_CHAR_ID, {"text": "the cat ", "max_new_tokens": 4}, CHAR_GENERATION, combinations=CHAR_COMBINATIONS),
    Route(
        "TextGenerationTask", TINY_CHAR_ID, {"text": "the cat ", "max_new_tokens": 4}, CHAR_GENERATION,
        streaming=True, combinations=CHAR_COMBINATIONS,
    ),
    Route("TextGenerationTask", TINY_TRANSLATOR_ID, {"text": "the cat sees the fish"}, TRANSLATOR_GENERATION, combinations=(MIN_OVER_MAX,)),
    Route(
        "TextGenerationTask", TINY_TRANSLATOR_ID, {"text": "the cat sees the fish"}, TRANSLATOR_GENERATION, streaming=True,
        combinations=(MIN_OVER_MAX, ("num_beams > 1 on a stream", {"num_beams": 2}, ("num_beams",))),
    ),
    Route("TranslationTask", TINY_TRANSLATOR_ID, {"text": "the cat sees the fish"}, {"text": text(), **TRANSLATION}),
    Route(
        "TranslationListTask",
        TINY_TRANSLATOR_ID,
        {"texts": ["the cat sees the fish", "the dog eats the rice"]},
        {"texts": texts(), **TRANSLATION},
    ),
    Route(
        "AttentionInspectionTask",
        TINY_ATTENTION_ID,
        {"text": "a good film"},
        {
            "text": text(),
            "text_pair": text(),
            "target_text": [Bad("on an encoder-only model", "the film")],
            "layers": indices(),
            "heads": indices(),
            "kinds": [Bad("unknown", ["nope"]), Bad("twice", ["encoder", "encoder"]), http_only("a string", "encoder")],
            "aggregate": choice(),
            "max_tokens": whole(0) + [Bad("too few for the special tokens", 1)],
            "precision": choice(),
            "exclude_special_tokens": BOOLEAN,
            "heatmap": BOOLEAN,
        },
        combinations=(("text: over the model's tokens", {"text": "good " * 100}, ("tokens",)),),
    ),
    Route(
        "ImageGenerationTask",
        TINY_DCGAN_ID,
        {"num_images": 1, "seed": 3},
        {
            "num_images": whole(1, over=10**6),
            "seed": whole(0, over=2**63 - 1),
            "image_format": choice(),
            "as_grid": BOOLEAN,
            "latents": [Bad("the wrong count", [0.5]), Bad("NaN", [math.nan]), http_only("a string", "x"), http_only("a string item", ["a"])],
            "interpolate_steps": [Bad("1", 1), Bad("65", 65), Bad("negative", -1), Bad("huge", 2**63 - 1), http_only("a string", "x")],
            "label": text(empty_is_unset=True) + [Bad("not a class", "no-such-class"), Bad("50,000 characters", "Z" * 50_000)],
        },
        combinations=(("num_images x interpolate_steps over the cap", {"num_images": 64, "interpolate_steps": 64}, ("max_images",)),),
    ),
]

if importlib.util.find_spec("caikit_tgis_backend") is not None:
    from fake_tgis import TINY_TGIS_ID, TINY_TGIS_MAX_NEW_TOKENS_LIMIT

    TGIS_GENERATION = {**generation(TINY_TGIS_MAX_NEW_TOKENS_LIMIT + 1), "truncate_input_tokens": whole(0)}
    ROUTES += [
        Route("TextGenerationTask", TINY_TGIS_ID, {"text": "the cat", "max_new_tokens": 3}, TGIS_GENERATION, combinations=(MIN_OVER_MAX,)),
        Route(
            "TextGenerationTask", TINY_TGIS_ID, {"text": "the cat", "max_new_tokens": 3}, TGIS_GENERATION,
            streaming=True, combinations=(MIN_OVER_MAX,),
        ),
    ]

# What each model serves, from the rows: a model of another task is a bad model for a route.
MODEL_TASKS: Dict[str, set] = {}
for _route in ROUTES:
    MODEL_TASKS.setdefault(_route.model_id, set()).add(_route.task)


# -- the cases of a route --------------------------------------------------------------------


@dataclass
class Case:
    label: str
    fields: Dict[str, Any]
    says: Tuple
    wires: Tuple[str, ...] = BOTH
    model_id: Any = None
    expect: str = INVALID
    body: Optional[bytes] = None  # HTTP: sent as is
    message: Optional[bytes] = None  # gRPC: sent as is
    parameters: Optional[Any] = None  # HTTP: replaces "parameters" whole


def cases(route: Route) -> List[Case]:
    found = []

    def add(label, changes=None, says=(), **options):
        options.setdefault("model_id", route.model_id)
        found.append(Case(f"{label}", {**route.good, **(changes or {})}, says, **options))

    for name, bad_values in route.bad.items():
        for bad in bad_values:
            names = (name, "inputs") if name == route.required else (name,)
            add(f"{name}: {bad.label}", {name: bad.value}, bad.says or (names,), wires=bad.wires)
    for label, changes, says in route.combinations:
        add(label, changes, says)
    without_input = {name: value for name, value in route.good.items() if name != route.required}
    found.append(Case(f"{route.required}: missing", without_input, ((route.required, "inputs"),), model_id=route.model_id))
    add("model_id: unknown", says=("no-such-model",), model_id="no-such-model", expect=NOT_FOUND)
    add("model_id: missing", says=("model",), model_id=None)
    add("model_id: empty", says=("model",), model_id="")
    add("model_id: a path", says=("not a valid model name",), model_id="../models")
    add("model_id: 1,000 characters", says=("not a valid model name",), model_id="m" * 1000)
    add("model_id: a number", says=("model_id",), model_id=42, wires=(HTTP,))
    for other, tasks in MODEL_TASKS.items():
        if route.task not in tasks:
            add(f"a model of another task ({other})", says=(other, route.task), model_id=other)
    good_body = json.dumps(http_body(route, route.good, route.model_id)).encode()
    for label, body, says in [
        ("not JSON", b"{not json", ("JSON",)),
        ("cut off JSON", good_body[: len(good_body) // 2], ("JSON",)),
        ("a JSON array", b"[]", ("object",)),
        ("JSON null", b"null", ("object",)),
        ("a JSON string", b'"a good film"', ("object",)),
        ("empty", b"", ("body is empty",)),
    ]:
        add(f"body: {label}", says=says, wires=(HTTP,), body=body)
    add("parameters: not an object", says=("parameters",), wires=(HTTP,), parameters=5)
    add("parameters: an unknown name", says=("no_such_parameter",), wires=(HTTP,), parameters={"no_such_parameter": 1})
    add("an unknown top-level field", says=("no_such_field",), wires=(HTTP,), body=json.dumps(
        {**http_body(route, route.good, route.model_id), "no_such_field": 1}).encode())
    add("message: no protobuf", says=("not a valid",), wires=(GRPC,), message=b"\xff\xff\xff\xff")
    return found


# -- sending a case over each wire, and judging what came back ---------------------------------


def http_body(route: Route, fields: Dict[str, Any], model_id) -> dict:
    body = {} if model_id is None else {"model_id": model_id}
    if route.required in fields:
        body["inputs"] = fields[route.required]
    parameters = {name: value for name, value in fields.items() if name != route.required}
    if parameters:
        body["parameters"] = parameters
    return body


def encoded_json(value) -> bytes:
    """JSON as Python writes it (NaN and Infinity included), with NOT_UTF8 spliced in raw."""
    marked = json.dumps(_marked(value)).encode()
    return marked.replace(f'"{NOT_UTF8_MARK}"'.encode(), b'"' + NOT_UTF8 + b'"')


def _marked(value):
    if isinstance(value, bytes):
        return NOT_UTF8_MARK
    if isinstance(value, dict):
        return {key: _marked(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_marked(item) for item in value]
    return value


def send_http(runtime, route: Route, case: Case) -> Tuple[str, str]:
    if case.body is not None:
        data = case.body
    else:
        body = http_body(route, case.fields, case.model_id)
        if case.parameters is not None:
            body["parameters"] = case.parameters
        data = encoded_json(body)
    try:
        response = requests.post(
            runtime.http_url + route.http_route, data=data, headers={"Content-Type": "application/json"},
            timeout=TIMEOUT, stream=route.streaming,
        )
        if response.status_code == 200 and route.streaming:
            events = list(sse_events(response))
            if [event for event, _ in events] != ["error"]:
                return "OK", f"a stream of {[event for event, _ in events][:5]}"
            error = json.loads(events[0][1])
            return _http_outcome(error.get("code"), error.get("details", ""))
        try:
            answer = response.json()
        except ValueError:
            answer = {"details": response.text}
        message = answer.get("details") or answer.get("detail") if isinstance(answer, dict) else answer
        return _http_outcome(response.status_code, str(message))
    except requests.Timeout:
        return "HANG", f"no answer within {TIMEOUT} s"


def _http_outcome(status: int, message: str) -> Tuple[str, str]:
    if status == 404:
        return NOT_FOUND, message
    if isinstance(status, int) and 400 <= status < 500:
        return INVALID, message
    return ("OK" if status == 200 else f"HTTP {status}"), message


def grpc_message(runtime, route: Route, fields: Dict[str, Any]) -> bytes:
    """The request's bytes; a NOT_UTF8 value goes in raw, as a length-delimited field with the
    string field's number (what a client that puts unencoded bytes there sends)."""
    clean, raw = {}, []
    for name, value in fields.items():
        if isinstance(value, bytes):
            raw.append((name, value))
        elif isinstance(value, list) and any(isinstance(item, bytes) for item in value):
            clean[name] = [item for item in value if not isinstance(item, bytes)]
            raw += [(name, item) for item in value if isinstance(item, bytes)]
        else:
            clean[name] = value
    message = runtime.message(route.request_name, **clean)
    data = message.SerializeToString()
    for name, value in raw:
        number = message.DESCRIPTOR.fields_by_name[name].number
        data += _varint(number << 3 | 2) + _varint(len(value)) + value
    return data


def _varint(number: int) -> bytes:
    out = bytearray()
    while True:
        out.append((number & 0x7F) | (0x80 if number > 0x7F else 0))
        number >>= 7
        if not number:
            return bytes(out)


def send_grpc(runtime, route: Route, case: Case) -> Tuple[str, str]:
    data = case.message if case.message is not None else grpc_message(runtime, route, case.fields)
    path = f"/{runtime.inference_service.descriptor.full_name}/{route.rpc}"
    metadata = [] if case.model_id is None else [("mm-model-id", case.model_id)]
    try:
        if route.streaming:
            received = sum(1 for _ in runtime.channel.unary_stream(path)(data, metadata=metadata, timeout=TIMEOUT))
            return "OK", f"{received} messages"
        runtime.channel.unary_unary(path)(data, metadata=metadata, timeout=TIMEOUT)
        return "OK", ""
    except grpc.RpcError as error:
        if error.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
            return "HANG", f"no answer within {TIMEOUT} s"
        return error.code().name, error.details() or ""


SEND = {GRPC: send_grpc, HTTP: send_http}


def judge(case: Case, outcome: Tuple[str, str]) -> Optional[str]:
    """None when the case was refused as it should be, else what went wrong."""
    code, message = outcome
    if code != case.expect:
        return f"{code} (expected {case.expect}): {message[:300]}"
    lowered = message.lower()
    for wanted in case.says:
        alternatives = wanted if isinstance(wanted, tuple) else (wanted,)
        if not any(alternative.lower() in lowered for alternative in alternatives):
            return f"the message does not say {' or '.join(alternatives)!r}: {message[:300]}"
    return None


# -- the tests -------------------------------------------------------------------------------

CASES_RUN: Dict[Tuple[str, str], int] = {}


@pytest.fixture(scope="module", autouse=True)
def report_cases(request):
    """Print how many cases ran per route and wire (shown without -s too)."""
    yield
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is None or capture is None or not CASES_RUN:
        return
    with capture.global_and_fixture_disabled():
        reporter.write_line("")
        reporter.write_line("bad-input matrix: cases refused per route (gRPC / HTTP)")
        for route in ROUTES:
            counts = f"{CASES_RUN.get((route.name, GRPC), 0):4d} / {CASES_RUN.get((route.name, HTTP), 0):4d}"
            reporter.write_line(f"  {route.name:50s} {counts}")
        reporter.write_line(f"  {'total':50s} {sum(CASES_RUN.values()):4d}")


def assert_good_request_answers(runtime, route: Route, wire: str) -> None:
    case = Case("the good request", dict(route.good), (), model_id=route.model_id)
    outcome = SEND[wire](runtime, route, case)
    assert outcome[0] == "OK", (route.name, wire, outcome)


@pytest.mark.parametrize("wire", BOTH)
@pytest.mark.parametrize("route", ROUTES, ids=[route.name for route in ROUTES])
def test_every_bad_request_is_refused_naming_the_problem(runtime, tgis_stand_in, route, wire):
    assert_good_request_answers(runtime, route, wire)
    # A remote backend (the TGIS stand-in) must see none of the bad requests: they are refused here.
    backend_calls = len(tgis_stand_in.server.requests) if tgis_stand_in is not None else 0
    failures, count = [], 0
    for case in cases(route):
        if wire not in case.wires:
            continue
        count += 1
        problem = judge(case, SEND[wire](runtime, route, case))
        if problem:
            failures.append(f"{case.label}: {problem}")
    CASES_RUN[(route.name, wire)] = count
    if tgis_stand_in is not None:
        reached = tgis_stand_in.server.requests[backend_calls:]
        assert not reached, f"{len(reached)} bad requests reached TGIS, e.g. {reached[:2]}"
    assert not failures, f"{len(failures)} of {count} cases for {route.name} over {wire}:\n" + "\n".join(failures)
    assert count >= 15, f"only {count} cases for {route.name} over {wire}"


def test_the_matrix_covers_every_task_route_the_runtime_serves(runtime):
    """Every predict RPC in the runtime's own service has a row: a new task without one fails here."""
    served = {method.name for method in runtime.inference_service.descriptor.methods if method.name.endswith("Predict")}
    assert served == {route.rpc for route in ROUTES}


def test_the_runtime_still_answers_every_route_after_the_matrix(runtime):
    for route in ROUTES:
        for wire in BOTH:
            assert_good_request_answers(runtime, route, wire)
    assert requests.get(f"{runtime.http_url}/health", timeout=TIMEOUT).status_code == 200
