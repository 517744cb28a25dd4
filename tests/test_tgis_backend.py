"""TGISTextGenerator (the `tgis` extra) through the real runtime, over real gRPC and HTTP.

No TGIS server can run here, so the TGIS side is a stand-in: tests/fake_tgis.py, an in-process
gRPC server implementing TGIS's own generation.proto (as shipped inside caikit-tgis-backend)
over a tiny local BART generating with transformers. The session runtime (conftest.py) is
configured with docs/tgis.md's config block, pointed at it, and serves that page's model dir; the
stand-in records every request it receives, so these tests check what actually reached "TGIS".
"""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import grpc
import pytest
import requests

pytest.importorskip("caikit_tgis_backend")

from caikit_nlp_client import GrpcClient  # noqa: E402
from caikit_tgis_backend.protobufs import generation_pb2, generation_pb2_grpc  # noqa: E402

from conftest import REPO_ROOT, TINY_CHAR_ID, free_port  # noqa: E402
from fake_tgis import (  # noqa: E402
    MAX_NEW_TOKENS,
    README_MODEL_ID,
    TGIS_DOWN_ID,
    TGIS_FAILING_ID,
    TGIS_SLOW_ID,
    TGIS_SLOW_TIMEOUT,
    TINY_TGIS_BASE_MODEL,
    TINY_TGIS_ID,
    TINY_TGIS_MAX_NEW_TOKENS_LIMIT,
)
from test_char_runtime import STREAM_ROUTE, sse_events  # noqa: E402

UNARY_ROUTE = "/api/v1/task/text-generation"
PROMPT = "the cat sat on the mat"
SAMPLING = {
    "max_new_tokens": 12,
    "min_new_tokens": 3,
    "decoding_method": "SAMPLING",
    "temperature": 0.7,
    "top_k": 40,
    "top_p": 0.9,
    "repetition_penalty": 1.2,
    "seed": 4242,
    "truncate_input_tokens": 50,
}


@pytest.fixture(name="fake")
def fake_tgis(tgis_stand_in):
    return tgis_stand_in.server


def finish_name(message) -> str:
    return message.DESCRIPTOR.fields_by_name["finish_reason"].enum_type.values_by_number[message.finish_reason].name


def predict(runtime, model_id, timeout=30, **fields):
    request = runtime.message("TextGenerationTaskRequest", **fields)
    return runtime.inference.TextGenerationTaskPredict(request, metadata=[("mm-model-id", model_id)], timeout=timeout)


def stream(runtime, model_id, timeout=30, **fields):
    request = runtime.message("TextGenerationTaskRequest", **fields)
    return list(
        runtime.inference.ServerStreamingTextGenerationTaskPredict(
            request, metadata=[("mm-model-id", model_id)], timeout=timeout
        )
    )


def direct_generate(fake, request):
    """Ask the stand-in itself, bypassing the runtime (recorded like any other request)."""
    with grpc.insecure_channel(fake.hostname) as channel:
        return generation_pb2_grpc.GenerationServiceStub(channel).Generate(request, timeout=30).responses[0]


def http_stream_text(runtime, body):
    response = requests.post(runtime.http_url + STREAM_ROUTE, json=body, stream=True, timeout=60)
    assert response.status_code == 200, response.text
    return [json.loads(data) for event, data in sse_events(response) if event == "message"]


# -- generation returns what TGIS generated ----------------------------------------------------


def test_unary_grpc_returns_what_the_server_generated_with_the_parameters_as_sent(runtime, fake):
    before = len(fake.requests)
    result = predict(runtime, TINY_TGIS_ID, text=PROMPT, stop_sequences=["zz"], preserve_input_text=False, **SAMPLING)
    received = fake.requests[before:]
    assert [rpc for rpc, _ in received] == ["Generate"]
    sent = received[0][1]
    assert sent.model_id == TINY_TGIS_BASE_MODEL
    assert [r.text for r in sent.requests] == [PROMPT]
    params = sent.params
    assert params.method == generation_pb2.DecodingMethod.SAMPLE
    assert params.sampling.temperature == pytest.approx(0.7)
    assert params.sampling.top_k == 40
    assert params.sampling.top_p == pytest.approx(0.9)
    assert params.sampling.HasField("seed") and params.sampling.seed == 4242
    assert params.decoding.repetition_penalty == pytest.approx(1.2)
    assert params.stopping.max_new_tokens == 12
    assert params.stopping.min_new_tokens == 3
    assert list(params.stopping.stop_sequences) == ["zz"]
    assert params.stopping.include_stop_sequence is True
    assert params.truncate_input_tokens == 50
    assert params.response.input_text is False

    # The same request sent straight to the server gives the same answer (the seed fixes it).
    expected = direct_generate(fake, sent)
    assert result.generated_text == expected.text and expected.text
    assert result.generated_tokens == expected.generated_token_count
    assert result.input_token_count == expected.input_token_count > 0
    assert result.seed == 4242
    assert generation_pb2.StopReason.Name(expected.stop_reason) == finish_name(result) == "MAX_TOKENS"
    assert result.producer_id.name == "TGISTextGenerator"


def test_stream_joins_to_the_unary_text_over_grpc_and_http(runtime, fake):
    unary = predict(runtime, TINY_TGIS_ID, text=PROMPT, **SAMPLING)
    before = len(fake.requests)
    chunks = stream(runtime, TINY_TGIS_ID, text=PROMPT, **SAMPLING)
    (rpc, sent), = fake.requests[before:]
    assert rpc == "GenerateStream" and sent.request.text == PROMPT and sent.params.sampling.seed == 4242
    assert "".join(chunk.generated_text for chunk in chunks) == unary.generated_text
    # TGIS's first message carries the input token count, then one per token, the last finished.
    assert chunks[0].generated_text == "" and chunks[0].details.input_token_count == unary.input_token_count
    assert [chunk.details.generated_tokens for chunk in chunks[1:]] == list(range(1, unary.generated_tokens + 1))
    assert finish_name(chunks[-1].details) == finish_name(unary)
    assert chunks[-1].details.seed == 4242

    body = {"model_id": TINY_TGIS_ID, "inputs": PROMPT, "parameters": SAMPLING}
    http_unary = requests.post(runtime.http_url + UNARY_ROUTE, json=body, timeout=60)
    assert http_unary.status_code == 200, http_unary.text
    assert http_unary.json()["generated_text"] == unary.generated_text
    assert "".join(message["generated_text"] for message in http_stream_text(runtime, body)) == unary.generated_text


def test_greedy_sends_no_sampling_parameters_and_reports_no_seed(runtime, fake):
    before = len(fake.requests)
    result = predict(runtime, TINY_TGIS_ID, text=PROMPT, max_new_tokens=8, decoding_method="GREEDY", seed=5)
    (_, sent), = fake.requests[before:]
    assert sent.params.method == generation_pb2.DecodingMethod.GREEDY
    assert sent.params.sampling == generation_pb2.SamplingParameters()
    assert result.seed == 0  # unset
    assert predict(runtime, TINY_TGIS_ID, text=PROMPT, max_new_tokens=8, temperature=0).generated_text == result.generated_text


def test_an_unset_seed_is_drawn_by_tgis_and_reported(runtime, fake):
    before = len(fake.requests)
    result = predict(runtime, TINY_TGIS_ID, text=PROMPT, max_new_tokens=5)
    (_, sent), = fake.requests[before:]
    assert sent.params.method == generation_pb2.DecodingMethod.SAMPLE and not sent.params.sampling.HasField("seed")
    # Unset values are left to TGIS's defaults (0 in its proto), the module's default length is sent.
    assert sent.params.sampling.temperature == 0 and sent.params.decoding.repetition_penalty == 0
    assert sent.params.stopping.max_new_tokens == 5
    assert result.seed > 0
    again = predict(runtime, TINY_TGIS_ID, text=PROMPT, max_new_tokens=5, seed=result.seed)
    assert again.generated_text == result.generated_text


def test_preserve_input_text_puts_the_prompt_first(runtime):
    unary = predict(runtime, TINY_TGIS_ID, text=PROMPT, preserve_input_text=True, **SAMPLING)
    assert unary.generated_text.startswith(PROMPT) and len(unary.generated_text) > len(PROMPT)
    chunks = stream(runtime, TINY_TGIS_ID, text=PROMPT, preserve_input_text=True, **SAMPLING)
    assert chunks[0].generated_text == PROMPT
    assert "".join(chunk.generated_text for chunk in chunks) == unary.generated_text


def test_stop_sequences_end_the_text(runtime):
    free = predict(runtime, TINY_TGIS_ID, text=PROMPT, **SAMPLING)
    stop = free.generated_text[len(free.generated_text) // 2 :][:2]
    assert stop.strip(), free.generated_text
    stopped = predict(runtime, TINY_TGIS_ID, text=PROMPT, stop_sequences=[stop], **{**SAMPLING, "min_new_tokens": 0})
    assert stopped.generated_text.endswith(stop) and len(stopped.generated_text) <= len(free.generated_text)
    assert finish_name(stopped) == "STOP_SEQUENCE"


def test_caikit_nlp_client_works_against_it(runtime):
    unary = predict(runtime, TINY_TGIS_ID, text=PROMPT, max_new_tokens=10, seed=7)
    client = GrpcClient("127.0.0.1", runtime.grpc_port, insecure=True)
    try:
        assert client.generate_text(TINY_TGIS_ID, PROMPT, max_new_tokens=10, seed=7) == unary.generated_text
        chunks = list(client.generate_text_stream(TINY_TGIS_ID, PROMPT, max_new_tokens=10, seed=7))
    finally:
        client._close()  # pylint: disable=protected-access
    assert "".join(chunks) == unary.generated_text


def test_the_documented_model_dir_is_served_through_tgis(runtime, fake):
    before = len(fake.requests)
    result = predict(runtime, README_MODEL_ID, text=PROMPT, max_new_tokens=4, decoding_method="GREEDY")
    (_, sent), = fake.requests[before:]
    assert sent.model_id == "google/flan-t5-xl"
    assert result.generated_tokens <= 4


def wait_for_stream_ending(fake, count, timeout=10.0):
    deadline = time.monotonic() + timeout
    while len(fake.stream_endings) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    return fake.stream_endings[count - 1] if len(fake.stream_endings) >= count else None


def test_a_client_leaving_mid_stream_cancels_the_tgis_call(runtime, fake):
    fake.token_delays[TINY_TGIS_BASE_MODEL] = 0.1  # 60 tokens: 6 s, unless cancelled
    try:
        endings = len(fake.stream_endings)
        request = runtime.message("TextGenerationTaskRequest", text=PROMPT, max_new_tokens=60, seed=1)
        call = runtime.inference.ServerStreamingTextGenerationTaskPredict(
            request, metadata=[("mm-model-id", TINY_TGIS_ID)], timeout=30
        )
        assert [next(call).details.generated_tokens for _ in range(3)] == [0, 1, 2]
        call.cancel()
        assert wait_for_stream_ending(fake, endings + 1) == "cancelled"

        body = {"model_id": TINY_TGIS_ID, "inputs": PROMPT, "parameters": {"max_new_tokens": 60, "seed": 1}}
        response = requests.post(runtime.http_url + STREAM_ROUTE, json=body, stream=True, timeout=30)
        events = sse_events(response)
        assert [next(events)[0] for _ in range(3)] == ["message"] * 3
        response.close()
        assert wait_for_stream_ending(fake, endings + 2) == "cancelled"
    finally:
        fake.token_delays.pop(TINY_TGIS_BASE_MODEL, None)
    assert predict(runtime, TINY_TGIS_ID, text=PROMPT, max_new_tokens=3, seed=1).generated_tokens == 3


def test_concurrent_requests_each_get_their_own_answer(runtime):
    from concurrent.futures import ThreadPoolExecutor

    def generate(seed):
        return predict(runtime, TINY_TGIS_ID, text=PROMPT, max_new_tokens=6, seed=seed).generated_text

    expected = {seed: generate(seed) for seed in range(1, 5)}
    with ThreadPoolExecutor(max_workers=8) as pool:
        seeds = [1, 2, 3, 4] * 4
        assert list(pool.map(generate, seeds)) == [expected[seed] for seed in seeds]


# -- bad input -------------------------------------------------------------------------------

BAD_PARAMETERS = [
    ({"max_new_tokens": 0}, "max_new_tokens must be at least 1"),
    ({"max_new_tokens": TINY_TGIS_MAX_NEW_TOKENS_LIMIT + 1}, f"limit of {TINY_TGIS_MAX_NEW_TOKENS_LIMIT}"),
    ({"max_new_tokens": 5, "min_new_tokens": 6}, "must not exceed max_new_tokens"),
    ({"min_new_tokens": -1}, "min_new_tokens must be 0 or more"),
    ({"truncate_input_tokens": -2}, "truncate_input_tokens"),
    ({"decoding_method": "BEAM"}, "decoding_method must be one of SAMPLING, GREEDY"),
    ({"temperature": -0.5}, "temperature must be 0"),
    ({"top_k": -1}, "top_k must be 0"),
    ({"top_p": 1.5}, "top_p must be in (0, 1]"),
    ({"top_p": 0.0}, "top_p must be in (0, 1]"),
    ({"repetition_penalty": 0.0}, "repetition_penalty must be above 0"),
    ({"stop_sequences": ["ok", ""]}, "stop_sequences must be non-empty strings"),
]


@pytest.mark.parametrize("fields, message", BAD_PARAMETERS, ids=[json.dumps(f) for f, _ in BAD_PARAMETERS])
def test_bad_parameters_are_invalid_argument_before_reaching_tgis(runtime, fake, fields, message):
    before = len(fake.requests)
    with pytest.raises(grpc.RpcError) as raised:
        predict(runtime, TINY_TGIS_ID, text=PROMPT, **fields)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in raised.value.details()
    with pytest.raises(grpc.RpcError) as raised:
        stream(runtime, TINY_TGIS_ID, text=PROMPT, **fields)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    http = requests.post(
        runtime.http_url + UNARY_ROUTE, json={"model_id": TINY_TGIS_ID, "inputs": PROMPT, "parameters": fields}, timeout=30
    )
    assert http.status_code == 400 and message in http.text, http.text
    assert len(fake.requests) == before, "a bad request reached the TGIS server"


def test_an_empty_prompt_is_invalid_argument(runtime, fake):
    before = len(fake.requests)
    with pytest.raises(grpc.RpcError) as raised:
        predict(runtime, TINY_TGIS_ID, text="")
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "`text`" in raised.value.details()
    assert len(fake.requests) == before


def test_what_tgis_refuses_comes_back_as_invalid_argument_with_its_message(runtime):
    with pytest.raises(grpc.RpcError) as raised:
        predict(runtime, TINY_TGIS_ID, text=PROMPT, max_new_tokens=MAX_NEW_TOKENS + 1)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert f"TGIS refused the request for model '{TINY_TGIS_BASE_MODEL}'" in raised.value.details()
    assert f"max_new_tokens must be <= {MAX_NEW_TOKENS}" in raised.value.details()

    long_prompt = " ".join(["the cat sat on the mat"] * 20)
    for call in (predict, stream):
        with pytest.raises(grpc.RpcError) as raised:
            call(runtime, TINY_TGIS_ID, text=long_prompt, max_new_tokens=3)
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "input tokens" in raised.value.details()
    # truncate_input_tokens makes TGIS keep the prompt's tail.
    assert predict(runtime, TINY_TGIS_ID, text=long_prompt, max_new_tokens=3, truncate_input_tokens=20).input_token_count == 20


# -- a TGIS server that is down, slow or failing ----------------------------------------------


def test_a_tgis_server_that_is_down_is_unavailable_at_once_naming_it(runtime, tgis_stand_in):
    for call in (predict, stream):
        started = time.monotonic()
        with pytest.raises(grpc.RpcError) as raised:
            call(runtime, TGIS_DOWN_ID, text=PROMPT)
        assert time.monotonic() - started < 5
        assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
        details = raised.value.details()
        assert f"the TGIS server {tgis_stand_in.down_hostname} for model 'down-model' is unavailable" in details
    http = requests.post(runtime.http_url + UNARY_ROUTE, json={"model_id": TGIS_DOWN_ID, "inputs": PROMPT}, timeout=30)
    # caikit would answer 501 "Not Implemented"; runtime_mends (unavailable_503.py) makes it 503.
    assert http.status_code == 503 and "is unavailable" in http.json()["details"], http.text
    http = requests.post(runtime.http_url + STREAM_ROUTE, json={"model_id": TGIS_DOWN_ID, "inputs": PROMPT}, timeout=30)
    assert "is unavailable" in http.text, http.text


def test_a_stalled_tgis_server_is_cut_off_after_the_model_timeout(runtime):
    for call in (predict, stream):
        started = time.monotonic()
        with pytest.raises(grpc.RpcError) as raised:
            call(runtime, TGIS_SLOW_ID, text=PROMPT)
        took = time.monotonic() - started
        assert TGIS_SLOW_TIMEOUT * 0.9 < took < TGIS_SLOW_TIMEOUT + 3
        assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
        assert f"did not answer within {TGIS_SLOW_TIMEOUT:g} s" in raised.value.details()


def test_a_failing_tgis_server_is_unavailable_with_its_reason(runtime):
    for call in (predict, stream):
        with pytest.raises(grpc.RpcError) as raised:
            call(runtime, TGIS_FAILING_ID, text=PROMPT)
        assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "failed the request (INTERNAL): CUDA out of memory" in raised.value.details()


def test_the_runtime_still_serves_after_tgis_errors(runtime):
    assert predict(runtime, TINY_TGIS_ID, text=PROMPT, max_new_tokens=3, seed=1).generated_text
    assert predict(runtime, TINY_CHAR_ID, text="the ", max_new_tokens=3, seed=1).generated_text


def test_a_model_loaded_without_a_tgis_backend_says_so(tmp_path):
    from caikit.core.exceptions.caikit_core_exception import CaikitCoreException, CaikitCoreStatusCode

    from caikit_genai.modules import TGISTextGenerator

    TGISTextGenerator("some-model", max_new_tokens_limit=64, request_timeout_seconds=7).save(str(tmp_path / "m"))
    model = TGISTextGenerator.load(str(tmp_path / "m"))
    assert (model.base_model_name, model.max_new_tokens_limit, model.request_timeout_seconds) == ("some-model", 64, 7.0)
    for call in (model.run, model.run_stream_out):
        with pytest.raises(CaikitCoreException) as raised:
            call(PROMPT, max_new_tokens=10)
        assert raised.value.status_code == CaikitCoreStatusCode.CONNECTION_ERROR
        assert "without a TGIS backend" in raised.value.message
    with pytest.raises(ValueError, match="base_model_name"):
        TGISTextGenerator("")


# -- the stand-in speaks TGIS's whole service ------------------------------------------------


def test_the_stand_in_answers_model_info_and_tokenize_as_tgis_does(fake):
    from caikit_tgis_backend.tgis_connection import TGISConnection

    connection = TGISConnection.from_config("any-model", {"hostname": fake.hostname})
    connection.test_connection(timeout=5)  # caikit-tgis-backend's own check: a ModelInfo call
    stub = connection.get_client()
    info = stub.ModelInfo(generation_pb2.ModelInfoRequest(model_id="any-model"), timeout=5)
    assert info.model_kind == generation_pb2.ModelInfoResponse.ModelKind.ENCODER_DECODER
    assert info.max_new_tokens == MAX_NEW_TOKENS
    tokens = stub.Tokenize(
        generation_pb2.BatchedTokenizeRequest(
            model_id="any-model", requests=[generation_pb2.TokenizeRequest(text=PROMPT)], return_tokens=True
        ),
        timeout=5,
    ).responses[0]
    assert tokens.token_count == len(tokens.tokens) > 0


# -- the extra is optional -------------------------------------------------------------------

WITHOUT_TGIS = textwrap.dedent(
    """
    import runpy, sys
    sys.modules["caikit_tgis_backend"] = None  # as if the tgis extra were not installed
    import caikit_genai.modules
    assert not hasattr(caikit_genai.modules, "TGISTextGenerator")
    sys.argv = ["caikit.runtime"]
    runpy.run_module("caikit.runtime", run_name="__main__")
    """
)


@pytest.mark.slow
def test_the_runtime_serves_without_the_tgis_extra(models_dir, tmp_path):
    import shutil

    shutil.copytree(os.path.join(models_dir, TINY_CHAR_ID), tmp_path / "models" / TINY_CHAR_ID)
    http_port = free_port()
    env = {
        **os.environ,
        "CONFIG_FILES": os.path.join(REPO_ROOT, "runtime_config.yaml"),
        "RUNTIME_LOCAL_MODELS_DIR": str(tmp_path / "models"),
        "RUNTIME_TRAINING_OUTPUT_DIR": str(tmp_path / "models"),
        "RUNTIME_GRPC_PORT": str(free_port()),
        "RUNTIME_HTTP_PORT": str(http_port),
        "RUNTIME_METRICS_PORT": str(free_port()),
    }
    with open(tmp_path / "runtime.log", "wb") as log_file:
        process = subprocess.Popen(  # pylint: disable=consider-using-with
            [sys.executable, "-c", WITHOUT_TGIS], cwd=REPO_ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 120
        body = {"model_id": TINY_CHAR_ID, "inputs": "the ", "parameters": {"max_new_tokens": 3, "seed": 1}}
        while True:
            assert process.poll() is None, (tmp_path / "runtime.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the runtime did not serve without the tgis extra"
            try:
                response = requests.post(f"http://127.0.0.1:{http_port}{UNARY_ROUTE}", json=body, timeout=30)
                if response.status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            time.sleep(0.5)
        assert len(response.json()["generated_text"]) == 3
        log = (tmp_path / "runtime.log").read_text()
        assert "TGISTextGenerator" not in log
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
