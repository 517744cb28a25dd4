"""Fuzzing the HTTP API from the runtime's own /openapi.json with schemathesis: requests that
fit the spec (positive) and requests that break it (negative), for every task route (unary,
streaming, list, async `/job`), every train route, the training management routes and /info.
No answer may be a server error (5xx), a 200 that breaks the spec's response schema, or no
answer at all within REQUEST_TIMEOUT seconds.

Fuzzed inputs reach our modules: a task request mostly names a model of that task that the
session runtime serves (TASK_MODELS), so its parameters meet the module's own checks rather than
the 404 path. Train requests name a model that exists, so our trainer refuses every one with
ALREADY_EXISTS after caikit has parsed and converted the fuzzed parameters, and no job starts.

Bounded: FUZZ_MAX_EXAMPLES cases per route and mode (15 here; `make fuzz` raises it), a fifth of
that for the async job, management and info routes. Hypothesis runs derandomized (the same cases
every run) unless FUZZ_SEED is set; FUZZ_REPORT names a file each fuzzer appends its table of
cases and answers to. The tests below the fuzzers pin the server errors it found.
"""

import collections
import json
import os
import re

import pytest
import requests
import schemathesis
from caikit.config import get_config
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import response_schema_conformance

from conftest import (
    TINY_ATTENTION_ID,
    TINY_ATTENTION_SEQ2SEQ_ID,
    TINY_DCGAN_ID,
    TINY_SENTIMENT_ID,
    TINY_TRANSLATOR_ID,
)

MAX_EXAMPLES = int(os.environ.get("FUZZ_MAX_EXAMPLES", "15"))
FUZZ_SEED = os.environ.get("FUZZ_SEED")
FUZZ_REPORT = os.environ.get("FUZZ_REPORT")
REQUEST_TIMEOUT = 60
# char-austen, not tiny-char: tiny-char lets one request ask for a million characters.
GENERATORS = ["char-austen", TINY_TRANSLATOR_ID]
# One row per task route (`/api/v1/task/<route>`): the served models its requests name.
TASK_MODELS = {
    "text-classification": [TINY_SENTIMENT_ID],
    "text-generation": GENERATORS,
    "server-streaming-text-generation": GENERATORS,
    "translation": [TINY_TRANSLATOR_ID],
    "translation-list": [TINY_TRANSLATOR_ID],
    "image-generation": [TINY_DCGAN_ID],
    "attention-inspection": [TINY_ATTENTION_ID, TINY_ATTENTION_SEQ2SEQ_ID],
}
TGIS_GENERATOR = "tiny-tgis"  # tests/fake_tgis.py's model, where the tgis extra is installed
# What train requests are named: a served model, so that training is refused before it starts.
EXISTING_MODEL_NAME = TINY_SENTIMENT_ID
CHECKS = [not_a_server_error, response_schema_conformance]


@pytest.fixture(scope="module")
def schema(runtime, tgis_stand_in):
    for model_id in {model for models in TASK_MODELS.values() for model in models}:
        runtime.wait_for_model(model_id)
    if tgis_stand_in is not None:
        runtime.wait_for_model(TGIS_GENERATOR)
    return schemathesis.openapi.from_url(f"{runtime.http_url}/openapi.json")


@pytest.fixture(scope="module")
def task_models(tgis_stand_in):
    models = {route: list(ids) for route, ids in TASK_MODELS.items()}
    if tgis_stand_in is not None:
        for route in ("text-generation", "server-streaming-text-generation"):
            models[route].append(TGIS_GENERATOR)
    return models


def operations(schema, path_pattern: str):
    found = [result.ok() for result in schema.get_all_operations()]
    return [operation for operation in found if re.fullmatch(path_pattern, operation.path)]


class Tally:
    """Cases sent, answers by status, and failures, per operation."""

    def __init__(self):
        self.statuses = collections.defaultdict(collections.Counter)
        self.failures = []

    def report(self) -> str:
        lines = [f"{'cases':>5}  operation  (answers by HTTP status)"]
        for label, statuses in sorted(self.statuses.items()):
            lines.append(f"{sum(statuses.values()):5d}  {label}  {dict(sorted(statuses.items()))}")
        lines.append(f"{self.cases():5d}  in all; server errors or bad answers: {len(self.failures)}")
        return "\n".join(lines)

    def cases(self) -> int:
        return sum(sum(statuses.values()) for statuses in self.statuses.values())

    def publish(self) -> None:
        print(self.report())
        if FUZZ_REPORT:
            with open(FUZZ_REPORT, "a", encoding="utf-8") as report:
                report.write(self.report() + "\n\n")


def fuzz(operation, base_url: str, max_examples: int, tally: Tally, prepare=None, choices=(None,)) -> None:
    """Send `max_examples` positive and as many negative cases of `operation`; `prepare(case,
    choice)` may set fields first, `choice` drawn from `choices`."""
    label = operation.label

    def send(case, choice):
        if prepare is not None:
            prepare(case, choice)
        try:
            response = case.call(base_url=base_url, timeout=REQUEST_TIMEOUT)
        except requests.RequestException as err:
            tally.failures.append(f"{label}: no answer ({type(err).__name__}: {err})\n{case.as_curl_command(base_url=base_url)}")
            return
        tally.statuses[label][response.status_code] += 1
        try:
            case.validate_response(response, checks=CHECKS)
        except FailureGroup as err:
            tally.failures.append(f"{label}: {err}")

    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
        test = given(case=operation.as_strategy(generation_mode=mode), choice=st.sampled_from(list(choices)))(send)
        test = settings(
            max_examples=max_examples,
            deadline=None,
            database=None,
            derandomize=FUZZ_SEED is None,
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
        )(test)
        if FUZZ_SEED is not None:
            test = seed(int(FUZZ_SEED))(test)
        try:
            test()
        except Unsatisfiable:
            # Nothing to break in a request without parameters or body (GET /health).
            assert mode is GenerationMode.NEGATIVE, label


def name_model(field: str):
    def prepare(case, model_id):
        if isinstance(case.body, dict) and model_id is not None:
            case.body[field] = model_id

    return prepare


def test_every_task_route_has_models(schema, task_models):
    routes = {operation.path.split("/api/v1/task/")[1] for operation in operations(schema, r"/api/v1/task/[^/]+")}
    assert routes == set(task_models), "add a TASK_MODELS row for each new task route"


@pytest.mark.slow
def test_task_routes_answer_fuzzed_requests_without_server_errors(runtime, schema, task_models):
    tally = Tally()
    for operation in operations(schema, r"/api/v1/task/.+"):
        route = operation.path.split("/api/v1/task/")[1].split("/")[0]
        unary = operation.path.count("/") == 4
        # Mostly a served model of the route's task; sometimes the fuzzed model_id as it came.
        fuzz(
            operation,
            runtime.http_url,
            MAX_EXAMPLES if unary else max(2, MAX_EXAMPLES // 5),
            tally,
            prepare=name_model("model_id"),
            choices=task_models[route] * 3 + [None],
        )
    tally.publish()
    assert not tally.failures, "\n\n".join(tally.failures[:10])
    unary_labels = [f"POST /api/v1/task/{route}" for route in task_models]
    for label in unary_labels:
        statuses = tally.statuses[label]
        assert sum(statuses.values()) >= MAX_EXAMPLES, (label, statuses)
        # The fuzzed inputs reached the modules: some were served, some refused by their checks.
        assert statuses[200] + statuses[400] > 0, (label, statuses)
    assert sum(tally.statuses[label][200] for label in unary_labels) > 0, tally.report()


def test_train_routes_answer_fuzzed_requests_and_start_no_job(runtime, schema):
    # The refusal this relies on: training may not replace a model that exists.
    assert not get_config().genai.training.replace_existing_models
    models_before = sorted(os.listdir(runtime.models_dir))
    tally = Tally()
    train_operations = operations(schema, r"/api/v1/[A-Za-z]+Train")
    assert len(train_operations) >= 4, [operation.label for operation in train_operations]
    for operation in train_operations:
        fuzz(operation, runtime.http_url, MAX_EXAMPLES, tally, prepare=name_model("model_name"), choices=[EXISTING_MODEL_NAME])
    tally.publish()
    assert not tally.failures, "\n\n".join(tally.failures[:10])
    for label, statuses in tally.statuses.items():
        # 200 would be a started job; 409 is our trainer's ALREADY_EXISTS for the named model.
        assert statuses[200] == 0 and statuses[409] > 0, (label, statuses)
    assert sorted(os.listdir(runtime.models_dir)) == models_before


def test_management_and_info_routes_answer_fuzzed_requests(runtime, schema):
    tally = Tally()
    # Not /management/models: deploying and undeploying would change the shared runtime's models.
    for operation in operations(schema, r"/management/trainings|/info/.+|/health"):
        fuzz(operation, runtime.http_url, max(2, MAX_EXAMPLES // 5), tally)
    tally.publish()
    assert not tally.failures, "\n\n".join(tally.failures[:10])
    assert len(tally.statuses) >= 5, tally.report()


# -- what the fuzzing found, pinned ----------------------------------------------------------


@pytest.fixture(scope="module")
def spec(runtime):
    return requests.get(f"{runtime.http_url}/openapi.json", timeout=30).json()


def post_routes(spec):
    return sorted(path for path, methods in spec["paths"].items() if "post" in methods and path != "/management/models")


def test_every_schema_reference_in_the_spec_resolves(spec):
    """FastAPI rebuilt the spec on request, dropping the schemas caikit added: every request
    body pointed at a missing `#/$defs/...`."""
    references = set(re.findall(r'"\$ref": "([^"]+)"', json.dumps(spec)))
    assert len(references) > 20, references
    schemas = spec["components"]["schemas"]
    missing = [ref for ref in references if not ref.startswith("#/components/schemas/") or ref.rsplit("/", 1)[1] not in schemas]
    assert not missing, missing
    assert "TextClassificationTaskRequestParameters" in schemas


def test_enums_are_described_as_the_json_writes_them(runtime, spec):
    """FinishReason was an integer enum in the spec while every response carries its name."""
    finish_reason = spec["components"]["schemas"]["FinishReason"]
    assert finish_reason["type"] == "string" and "EOS_TOKEN" in finish_reason["enum"], finish_reason
    assert "COMPLETED" in spec["components"]["schemas"]["JobStatus"]["enum"]
    body = {"model_id": TINY_TRANSLATOR_ID, "inputs": "the cat sees the fish"}
    result = requests.post(f"{runtime.http_url}/api/v1/task/translation", json=body, timeout=60).json()
    assert result["finish_reason"] in finish_reason["enum"], result


def test_a_json_body_that_is_not_utf8_is_a_400(runtime, spec):
    """The 422 handler failed to quote the raw bytes (500, `UnicodeDecodeError`)."""
    for route in post_routes(spec):
        response = requests.post(
            runtime.http_url + route, data=b'{"model_id": "\xff"}', headers={"Content-Type": "application/json"}, timeout=30
        )
        assert response.status_code == 400, (route, response.status_code, response.text)
        assert "not UTF-8" in response.json()["detail"], (route, response.text)


def test_a_malformed_multipart_body_is_a_400(runtime, spec):
    """starlette's HTTPException("Invalid multipart data.") was caikit's 500."""
    headers = {"Content-Type": "multipart/form-data; boundary=b0undary"}
    for route in post_routes(spec):
        response = requests.post(runtime.http_url + route, data=b"--b0undary\r\n[]--b0undary--\r\n", headers=headers, timeout=30)
        assert response.status_code == 400, (route, response.status_code, response.text)
        assert response.json()["detail"] == "Invalid multipart data.", (route, response.text)


def test_a_multipart_file_field_that_is_not_utf8_gets_a_422_quoting_it(runtime):
    """A validation error quoting a file field's raw bytes was a 500 as well."""
    response = requests.post(
        f"{runtime.http_url}/api/v1/ImageGenerationTaskDCGANImageGeneratorTrain",
        files={
            "model_name": (None, EXISTING_MODEL_NAME),
            "parameters.training_data.data_stream.data.image.image_data": ("x.png", b"\x89\xff\x16"),
        },
        timeout=30,
    )
    assert response.status_code == 422, response.text
    quoted = response.json()["additional_info"][0]["input"]["image"]["image_data"]
    assert quoted.startswith("\\x89\\xff"), quoted


@pytest.mark.parametrize("field", ["epochs", "seed"])
def test_a_train_integer_past_int64_is_a_400(runtime, field):
    """Converting the request to its proto raised ValueError("Value out of range"): a 500."""
    body = {"model_name": "fuzz-int64", "parameters": {field: 2**70, "training_data": {"data_stream": {"data": ["a b c"]}}}}
    response = requests.post(f"{runtime.http_url}/api/v1/TextGenerationTaskCharTextGeneratorTrain", json=body, timeout=30)
    assert response.status_code == 400, response.text
    assert "out of range" in response.json()["details"], response.text
    assert not os.path.exists(os.path.join(runtime.models_dir, "fuzz-int64"))
