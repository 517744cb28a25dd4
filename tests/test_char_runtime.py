"""CharTextGenerator served by the real runtime: gRPC and HTTP, unary and streaming, with our own
calls and with caikit-nlp's own client library (PyPI caikit-nlp-client, unchanged)."""

import json
import math
import time

import grpc
import pytest
import requests
from caikit.runtime.model_management.model_manager import ModelManager
from caikit_nlp_client import GrpcClient, HttpClient

from caikit_genai_client.http_wire import sse_events as read_sse_events
from conftest import TINY_CHAR_ID, TINY_CHAR_MAX_NEW_TOKENS_LIMIT

UNARY_ROUTE = "/api/v1/task/text-generation"
STREAM_ROUTE = "/api/v1/task/server-streaming-text-generation"
PROMPT = "the cat "


def metadata(model_id=TINY_CHAR_ID):
    return [("mm-model-id", model_id)]


def generate_grpc(runtime, **fields):
    request = runtime.message("TextGenerationTaskRequest", **fields)
    return runtime.inference.TextGenerationTaskPredict(request, metadata=metadata(), timeout=30)


def stream_grpc(runtime, **fields):
    request = runtime.message("ServerStreamingTextGenerationTaskRequest", **fields)
    return runtime.inference.ServerStreamingTextGenerationTaskPredict(request, metadata=metadata(), timeout=60)


def post_json(url, body, **options):
    """POST a JSON body as Python writes it (NaN included, which requests' json= refuses)."""
    return requests.post(url, data=json.dumps(body), headers={"Content-Type": "application/json"}, **options)


def generate_http(runtime, text, **parameters):
    body = {"model_id": TINY_CHAR_ID, "inputs": text, "parameters": parameters}
    return post_json(runtime.http_url + UNARY_ROUTE, body, timeout=30)


def sse_events(response):
    """(event type, data) pairs of a text/event-stream response as they arrive (lazily: a caller
    may stop reading, as tests/test_abandoned_streams.py does), read by the client's SSE reader."""
    response.encoding = "utf-8"
    return read_sse_events(response.iter_content(chunk_size=None, decode_unicode=True))


def stream_http(runtime, text, **parameters):
    body = {"model_id": TINY_CHAR_ID, "inputs": text, "parameters": parameters}
    response = post_json(runtime.http_url + STREAM_ROUTE, body, stream=True, timeout=60)
    assert response.status_code == 200, response.text
    return response


def served_model(model_id=TINY_CHAR_ID):
    """The model object the in-process runtime serves (to watch its work counters)."""
    return ModelManager.get_instance().retrieve_model(model_id)


# -- unary and streaming, our own calls -----------------------------------------------------------


def test_grpc_unary_fills_the_result_honestly(runtime):
    result = generate_grpc(runtime, text=PROMPT, max_new_tokens=40, seed=11)
    assert len(result.generated_text) == 40
    assert result.generated_tokens == 40
    assert result.input_token_count == len(PROMPT)
    assert result.seed == 11
    assert result.DESCRIPTOR.fields_by_name["finish_reason"].enum_type.values_by_number[result.finish_reason].name == "MAX_TOKENS"
    assert result.producer_id.name == "CharTextGenerator"


def test_same_seed_same_text_over_grpc_http_and_streams(runtime):
    parameters = {"max_new_tokens": 60, "seed": 1234, "temperature": 1.0}
    unary = generate_grpc(runtime, text=PROMPT, **parameters).generated_text
    assert generate_grpc(runtime, text=PROMPT, **parameters).generated_text == unary
    over_http = generate_http(runtime, PROMPT, **parameters)
    assert over_http.status_code == 200, over_http.text
    assert over_http.json()["generated_text"] == unary
    assert over_http.json()["seed"] == 1234

    grpc_chunks = list(stream_grpc(runtime, text=PROMPT, **parameters))
    assert "".join(chunk.generated_text for chunk in grpc_chunks) == unary
    assert len(grpc_chunks) == 60
    assert [chunk.details.generated_tokens for chunk in grpc_chunks] == list(range(1, 61))

    events = list(sse_events(stream_http(runtime, PROMPT, **parameters)))
    assert {event for event, _ in events} == {"message"}
    messages = [json.loads(data) for _, data in events]
    assert "".join(message["generated_text"] for message in messages) == unary
    assert messages[-1]["details"]["finish_reason"] == "MAX_TOKENS"
    assert messages[-1]["details"]["seed"] == 1234
    assert all(message["details"]["finish_reason"] == "NOT_FINISHED" for message in messages[:-1])


def test_different_seeds_give_different_texts(runtime):
    texts = {generate_grpc(runtime, text=PROMPT, max_new_tokens=60, seed=seed, temperature=1.5).generated_text for seed in range(4)}
    assert len(texts) > 1


def test_an_unset_seed_is_drawn_and_reported_so_the_text_can_be_replayed(runtime):
    first = generate_grpc(runtime, text=PROMPT, max_new_tokens=50, temperature=1.5)
    assert first.seed != 0  # proto3: 0 is "no seed"
    replay = generate_grpc(runtime, text=PROMPT, max_new_tokens=50, temperature=1.5, seed=first.seed)
    assert replay.generated_text == first.generated_text


def test_greedy_is_deterministic_and_reports_no_seed(runtime):
    greedy = generate_grpc(runtime, text=PROMPT, max_new_tokens=30, decoding_method="GREEDY")
    assert greedy.seed == 0  # proto3: 0 is "no seed"
    zero_temperature = generate_http(runtime, PROMPT, max_new_tokens=30, temperature=0, seed=5).json()
    assert zero_temperature["generated_text"] == greedy.generated_text
    assert zero_temperature["seed"] is None


def test_stop_sequence_ends_the_text_in_unary_and_stream(runtime):
    parameters = {"max_new_tokens": 400, "seed": 3, "stop_sequences": ["."], "min_new_tokens": 2}
    result = generate_grpc(runtime, text=PROMPT, **parameters)
    assert result.generated_text.endswith(".")
    assert "." not in result.generated_text[1:-1]  # min_new_tokens=2: the first char may be a "."
    assert result.generated_tokens == len(result.generated_text) < 400
    assert result.DESCRIPTOR.fields_by_name["finish_reason"].enum_type.values_by_number[result.finish_reason].name == "STOP_SEQUENCE"
    messages = [json.loads(data) for _, data in sse_events(stream_http(runtime, PROMPT, **parameters))]
    assert "".join(m["generated_text"] for m in messages) == result.generated_text
    assert messages[-1]["details"]["finish_reason"] == "STOP_SEQUENCE"


def test_preserve_input_text_puts_the_prompt_first(runtime):
    parameters = {"max_new_tokens": 20, "seed": 8, "preserve_input_text": True}
    result = generate_grpc(runtime, text=PROMPT, **parameters)
    assert result.generated_text.startswith(PROMPT)
    assert len(result.generated_text) == len(PROMPT) + 20
    chunks = [chunk.generated_text for chunk in stream_grpc(runtime, text=PROMPT, **parameters)]
    assert chunks[0] == PROMPT
    assert "".join(chunks) == result.generated_text


def test_unknown_characters_can_be_dropped_by_choice(runtime):
    result = generate_http(runtime, "the cat € ", max_new_tokens=10, seed=2, unknown_characters="drop")
    assert result.status_code == 200, result.text
    assert result.json()["input_token_count"] == len("the cat  ")


# -- caikit-nlp's own client ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def nlp_grpc_client(runtime):
    client = GrpcClient("127.0.0.1", runtime.grpc_port, insecure=True)
    yield client
    client._close()  # pylint: disable=protected-access


def test_caikit_nlp_grpc_client_unary_and_stream_match_ours(runtime, nlp_grpc_client):
    parameters = {"max_new_tokens": 50, "seed": 77, "temperature": 0.9, "top_k": 10, "top_p": 0.95}
    ours = generate_grpc(runtime, text=PROMPT, **parameters).generated_text
    assert nlp_grpc_client.generate_text(TINY_CHAR_ID, PROMPT, **parameters) == ours
    chunks = list(nlp_grpc_client.generate_text_stream(TINY_CHAR_ID, PROMPT, **parameters))
    assert len(chunks) == 50
    assert "".join(chunks) == ours


def test_caikit_nlp_grpc_client_sees_bad_input_as_an_error(nlp_grpc_client):
    with pytest.raises(RuntimeError, match="top_p"):
        nlp_grpc_client.generate_text(TINY_CHAR_ID, PROMPT, top_p=1.5)


def test_caikit_nlp_http_client_unary_matches_grpc(runtime):
    client = HttpClient(runtime.http_url)
    parameters = {"max_new_tokens": 50, "seed": 78, "preserve_input_text": True}
    ours = generate_grpc(runtime, text=PROMPT, **parameters).generated_text
    assert client.generate_text(TINY_CHAR_ID, PROMPT, **parameters) == ours
    with pytest.raises(RuntimeError, match="temperature"):
        client.generate_text(TINY_CHAR_ID, PROMPT, temperature=-1)


def test_caikit_nlp_http_client_streaming_cannot_read_caikit_sse(runtime):
    """Known limitation, kept visible: caikit-nlp-client 0.0.8 strips 6 bytes from every SSE line,
    and caikit 0.28.3 sends `event: message` before each `data:` line. If this starts passing,
    update the README's list of working client calls."""
    client = HttpClient(runtime.http_url)
    with pytest.raises(json.JSONDecodeError):
        list(client.generate_text_stream(TINY_CHAR_ID, PROMPT, max_new_tokens=5, seed=1))


# -- bad input: a clear INVALID_ARGUMENT / 4xx naming the problem -----------------------------------

BAD_PARAMETERS = [
    ({"temperature": -0.5}, "temperature"),
    ({"temperature": math.nan}, "temperature"),
    ({"top_k": -1}, "top_k"),
    ({"top_p": 0.0}, "top_p"),
    ({"top_p": 1.5}, "top_p"),
    ({"max_new_tokens": 0}, "max_new_tokens"),
    ({"max_new_tokens": -3}, "max_new_tokens"),
    ({"max_new_tokens": TINY_CHAR_MAX_NEW_TOKENS_LIMIT + 1}, "limit"),
    ({"max_new_tokens": 5, "min_new_tokens": 6}, "min_new_tokens"),
    ({"decoding_method": "BEAM"}, "decoding_method"),
    ({"repetition_penalty": 0.0}, "repetition_penalty"),
    ({"stop_sequences": [""]}, "stop_sequences"),
]
BAD_PROMPTS = [
    ("", "non-empty"),
    ("   ", "non-empty"),
    ("the cat ∑ sat ☃", "never saw: '∑' (U+2211), '☃' (U+2603)"),
]
BAD_REQUESTS = [({"text": PROMPT, **fields}, message) for fields, message in BAD_PARAMETERS] + [
    ({"text": text}, message) for text, message in BAD_PROMPTS
]


@pytest.mark.parametrize("fields, message", BAD_REQUESTS)
def test_grpc_bad_input_is_invalid_argument(runtime, fields, message):
    with pytest.raises(grpc.RpcError) as raised:
        generate_grpc(runtime, **fields)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in raised.value.details()


@pytest.mark.parametrize("fields, message", BAD_REQUESTS)
def test_grpc_stream_bad_input_is_invalid_argument_before_any_message(runtime, fields, message):
    received = []
    with pytest.raises(grpc.RpcError) as raised:
        for chunk in stream_grpc(runtime, **fields):
            received.append(chunk)
    assert received == []
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in raised.value.details()


@pytest.mark.parametrize("fields, message", BAD_REQUESTS)
def test_http_bad_input_is_a_400_naming_the_problem(runtime, fields, message):
    fields = dict(fields)
    response = generate_http(runtime, fields.pop("text"), **fields)
    assert response.status_code == 400, response.text
    assert message in response.json()["details"]


@pytest.mark.parametrize("fields, message", BAD_REQUESTS)
def test_http_stream_bad_input_is_one_error_event_with_code_400(runtime, fields, message):
    fields = dict(fields)
    events = list(sse_events(stream_http(runtime, fields.pop("text"), **fields)))
    assert [event for event, _ in events] == ["error"]
    error = json.loads(events[0][1])
    assert error["code"] == 400
    assert message in error["details"]


def test_non_string_prompt_is_rejected(runtime):
    response = requests.post(runtime.http_url + UNARY_ROUTE, json={"model_id": TINY_CHAR_ID, "inputs": 42}, timeout=30)
    assert response.status_code == 422
    assert "string" in response.text
    with pytest.raises(TypeError):
        runtime.message("TextGenerationTaskRequest", text=42)


def test_unknown_model_is_not_found(runtime):
    body = {"model_id": "no-such-char-model", "inputs": PROMPT}
    response = requests.post(runtime.http_url + UNARY_ROUTE, json=body, timeout=30)
    assert response.status_code == 404
    assert "no-such-char-model" in response.text


# -- a client that goes away stops the generation ---------------------------------------------------


def wait_until_still(read, settle: float = 1.0, timeout: float = 30.0):
    """Poll `read()` until it stops changing for `settle` seconds; return its value."""
    deadline = time.monotonic() + timeout
    value, since = read(), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.1)
        current = read()
        if current != value:
            value, since = current, time.monotonic()
        elif time.monotonic() - since >= settle:
            return value
    raise TimeoutError("the value kept changing")


def test_grpc_cancel_mid_stream_stops_and_closes_the_generation(runtime):
    model = served_model()
    open_before, started = model.open_generations, model.chars_generated
    call = stream_grpc(runtime, text=PROMPT, max_new_tokens=TINY_CHAR_MAX_NEW_TOKENS_LIMIT, seed=4)
    first = [next(call).generated_text for _ in range(5)]
    assert len(first) == 5
    assert model.open_generations == open_before + 1
    call.cancel()
    deadline = time.monotonic() + 20
    while model.open_generations != open_before:
        assert time.monotonic() < deadline, "the generator was never closed after the client cancelled"
        time.sleep(0.05)
    generated = wait_until_still(lambda: model.chars_generated) - started
    assert 5 <= generated < TINY_CHAR_MAX_NEW_TOKENS_LIMIT // 100
