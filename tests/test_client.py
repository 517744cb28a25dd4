"""caikit_genai_client against the real runtime: every task on both wires (gRPC through the
server's reflection, HTTP), the two wires agreeing with each other and with the route called by
hand; streams over gRPC and SSE; errors carrying the server's code and message; training start,
status, wait and cancel; and the SSE reader on text split at awkward places. TLS: test_tls.py."""

import base64
import io
import socket
import subprocess
import sys
import uuid

import numpy as np
import pytest
import requests
from PIL import Image

from caikit_genai_client import Client, ClientError
from caikit_genai_client.http_wire import sse_events
from conftest import ATTENTION_MINILM_ID, TINY_ATTENTION_ID, TINY_CHAR_ID, TINY_DCGAN_ID, TINY_SENTIMENT_ID, TINY_TRANSLATOR_ID, free_port
from tiny_models import TINY_CHAR_LINES

WIRES = ("grpc", "http")
REVIEW = "a wonderful and brilliant movie"
PROMPT = "the cat "
GENERATION = {"max_new_tokens": 30, "seed": 17, "temperature": 1.0}
SOURCE_TEXTS = ["the cat sees the fish", "the dog likes the water"]


def test_the_client_and_the_command_import_neither_torch_nor_caikit():
    # A fresh interpreter: what `caikit-genai <task>` and `import caikit_genai_client` load.
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, caikit_genai_client.cli; print(' '.join(sorted(sys.modules)))"],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout.split()
    assert "caikit_genai_client.grpc_wire" not in loaded  # each wire is imported when a Client uses it
    heavy = {name for name in loaded if name.split(".")[0] in {"torch", "caikit", "caikit_genai", "transformers"}}
    assert not heavy, sorted(heavy)[:10]


@pytest.fixture(scope="module")
def client(runtime):
    with Client(grpc=f"127.0.0.1:{runtime.grpc_port}", http=runtime.http_url) as both_wires:
        yield both_wires


def by_hand(runtime, route, model_id, inputs, **parameters):
    """The HTTP route called with requests, as README shows it."""
    body = {"model_id": model_id, "inputs": inputs, "parameters": parameters}
    response = requests.post(f"{runtime.http_url}/api/v1/task/{route}", json=body, timeout=60)
    assert response.status_code == 200, response.text
    return response.json()


# -- every task, both wires ---------------------------------------------------------------------


def test_classify(runtime, client):
    expected = by_hand(runtime, "text-classification", TINY_SENTIMENT_ID, REVIEW)["results"]
    for wire in WIRES:
        labels = client.classify(TINY_SENTIMENT_ID, REVIEW, wire=wire)
        assert [(item.label, item.score) for item in labels] == [(item["label"], pytest.approx(item["score"])) for item in expected]
        assert labels[0].label == "positive"
        (top,) = client.classify(TINY_SENTIMENT_ID, REVIEW, top_k=1, wire=wire)
        assert top.label == labels[0].label


def test_generate(runtime, client):
    expected = by_hand(runtime, "text-generation", TINY_CHAR_ID, PROMPT, **GENERATION)
    for wire in WIRES:
        result = client.generate(TINY_CHAR_ID, PROMPT, wire=wire, **GENERATION)
        assert result.text == expected["generated_text"] and len(result.text) == 30
        assert (result.generated_tokens, result.finish_reason, result.seed) == (30, "MAX_TOKENS", 17)
        assert result.input_token_count == len(PROMPT)


@pytest.mark.parametrize("wire", WIRES)
def test_streamed_chunks_join_to_the_unary_text(client, wire):
    unary = client.generate(TINY_CHAR_ID, PROMPT, wire=wire, **GENERATION).text
    chunks = list(client.generate_stream(TINY_CHAR_ID, PROMPT, wire=wire, **GENERATION))
    assert "".join(chunk.text for chunk in chunks) == unary
    assert [chunk.generated_tokens for chunk in chunks] == list(range(1, 31))
    assert chunks[-1].finish_reason == "MAX_TOKENS" and chunks[0].finish_reason == "NOT_FINISHED"
    # Leaving a stream early is clean: the next call on the same client is answered.
    stream = client.generate_stream(TINY_CHAR_ID, PROMPT, wire=wire, max_new_tokens=500, seed=1)
    assert len(next(stream).text) == 1
    stream.close()
    assert client.generate(TINY_CHAR_ID, PROMPT, wire=wire, **GENERATION).text == unary


def test_translate_one_and_many(runtime, client):
    expected = [by_hand(runtime, "translation", TINY_TRANSLATOR_ID, text)["translation_text"] for text in SOURCE_TEXTS]
    assert all(expected)
    for wire in WIRES:
        one = client.translate(TINY_TRANSLATOR_ID, SOURCE_TEXTS[0], wire=wire)
        assert one.text == expected[0] and one.finish_reason == "EOS_TOKEN" and one.sentences == 1
        many = client.translate_list(TINY_TRANSLATOR_ID, SOURCE_TEXTS, wire=wire, num_beams=1)
        assert [translation.text for translation in many] == expected


def test_images(runtime, client):
    expected = by_hand(runtime, "image-generation", TINY_DCGAN_ID, 3, seed=11)
    results = {wire: client.images(TINY_DCGAN_ID, 3, seed=11, wire=wire) for wire in WIRES}
    for result in results.values():
        assert result.images == [base64.b64decode(image["image_data"]) for image in expected["images"]]
        assert result.seeds == [11, 12, 13] and result.labels == expected["labels"]
        pictures = result.as_pil()
        assert [(picture.format, picture.size) for picture in pictures] == [("PNG", (16, 16))] * 3
    (grid,) = client.images(TINY_DCGAN_ID, 4, seed=0, as_grid=True, label="ring").as_pil()
    assert grid.size[0] > 16 * 2


def test_attention(runtime, client):
    raw = by_hand(runtime, "attention-inspection", TINY_ATTENTION_ID, "the cat sat", precision="float32")
    group = raw["attentions"][0]
    expected = np.frombuffer(base64.b64decode(group["weights"]), group["dtype"]).reshape(group["shape"])
    for wire in WIRES:
        result = client.attention(TINY_ATTENTION_ID, "the cat sat", wire=wire, precision="float32")
        assert result.tokens == [token["text"] for token in raw["tokens"]]
        weights = result.arrays["encoder"]
        assert weights.dtype == np.float32 and weights.shape == (2, 2, len(result.tokens), len(result.tokens))
        np.testing.assert_array_equal(weights, expected)
        np.testing.assert_allclose(weights.sum(axis=-1), 1.0, atol=1e-5)
        assert "not an explanation" in result.note and result.heatmap_png is None
    # uint8 rows come back scaled to the same weights, within a step of the scale
    compact = client.attention(TINY_ATTENTION_ID, "the cat sat", precision="uint8", layers=[1], aggregate="mean")
    assert compact.arrays["encoder"].shape == (1, 1, len(compact.tokens), len(compact.tokens))
    np.testing.assert_allclose(compact.arrays["encoder"][0, 0], expected[1].mean(axis=0), atol=1 / 255)
    # (the tiny model's response cap leaves no room for a heatmap: the packaged MiniLM's does)
    drawn = client.attention(ATTENTION_MINILM_ID, "the cat sat", layers=[0], heads=[0], heatmap=True)
    assert Image.open(io.BytesIO(drawn.heatmap_png)).format == "PNG"


def test_models(client):
    client.classify(TINY_SENTIMENT_ID, REVIEW)  # caikit says `loaded` once a request has waited for it
    listed = {wire: {model.name: model for model in client.models(wire=wire)} for wire in WIRES}
    assert listed["grpc"].keys() == listed["http"].keys() >= {TINY_SENTIMENT_ID, TINY_CHAR_ID, "broken-model"}
    for models in listed.values():
        assert models[TINY_SENTIMENT_ID].state == "loaded" and models[TINY_SENTIMENT_ID].module == "SentimentClassifier"
        assert models["broken-model"].state == "failed" and "HFValidationError" in models["broken-model"].error


# -- errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize("wire, not_found, invalid", [("grpc", "NOT_FOUND", "INVALID_ARGUMENT"), ("http", 404, 400)])
def test_errors_carry_the_servers_code_and_message(client, wire, not_found, invalid):
    with pytest.raises(ClientError) as unknown:
        client.classify("no-such-model", REVIEW, wire=wire)
    assert (unknown.value.code, unknown.value.message, unknown.value.wire) == (not_found, "Model 'no-such-model' not loaded", wire)
    with pytest.raises(ClientError) as bad:
        client.classify(TINY_SENTIMENT_ID, REVIEW, top_k=-1, wire=wire)
    assert bad.value.code == invalid and "top_k must be 0 (all labels) or a positive integer, got -1" == bad.value.message
    # In a stream the error comes as the stream's end (gRPC status; SSE `event: error` after a 200).
    with pytest.raises(ClientError) as in_stream:
        list(client.generate_stream(TINY_CHAR_ID, PROMPT, max_new_tokens=0, wire=wire))
    assert in_stream.value.code == invalid and "max_new_tokens" in in_stream.value.message
    with pytest.raises(ClientError) as no_job:
        client.status("no-such-training", wire=wire)
    assert no_job.value.code == not_found and "no-such-training" in no_job.value.message
    # A parameter the task does not have: gRPC's message has no such field, HTTP's route answers 422.
    with pytest.raises(ClientError) as typo:
        client.classify(TINY_SENTIMENT_ID, REVIEW, top_kk=1, wire=wire)
    assert typo.value.code == {"grpc": "INVALID_ARGUMENT", "http": 422}[wire] and "top_kk" in typo.value.message


def test_a_runtime_that_is_not_there_is_unavailable():
    port = free_port()
    with Client(grpc=f"127.0.0.1:{port}", http=f"http://127.0.0.1:{port}", timeout=10) as nobody:
        for wire in WIRES:
            with pytest.raises(ClientError) as refused:
                nobody.classify(TINY_SENTIMENT_ID, REVIEW, wire=wire)
            assert refused.value.code == "UNAVAILABLE" and refused.value.wire == wire


def test_a_server_that_never_answers_times_out():
    with socket.socket() as mute:  # accepts connections (the kernel's backlog), never says a word
        mute.bind(("127.0.0.1", 0))
        mute.listen(8)
        address = "127.0.0.1:%d" % mute.getsockname()[1]
        with Client(grpc=address, http=f"http://{address}", timeout=1) as nobody:
            for wire in WIRES:
                with pytest.raises(ClientError) as silent:
                    nobody.classify(TINY_SENTIMENT_ID, REVIEW, wire=wire)
                assert silent.value.code == "DEADLINE_EXCEEDED" and silent.value.wire == wire


# -- training -----------------------------------------------------------------------------------


TINY_CHAR_TRAINING = {"hidden_size": 16, "num_layers": 1, "seq_length": 16, "batch_size": 4, "val_fraction": 0}


@pytest.mark.slow
def test_train_status_wait_and_cancel(runtime, client):
    name = f"client-char-{uuid.uuid4().hex[:8]}"
    job = client.train("CharTextGenerator", name, TINY_CHAR_LINES, wire="grpc", max_steps=5, **TINY_CHAR_TRAINING)
    assert job.model_name == name and job.training_id
    # A second job, over HTTP, long enough to cancel while it runs.
    long_job = client.train(
        "TextGenerationTaskCharTextGeneratorTrain", f"{name}-canceled", TINY_CHAR_LINES, wire="http",
        max_steps=100_000, max_seconds=120, **TINY_CHAR_TRAINING,
    )
    client.cancel(long_job.training_id, wire="http")
    seen = []
    final = client.wait(job.training_id, poll_seconds=0.3, on_status=seen.append, wire="grpc")
    assert final.state == "COMPLETED" and final.done and final.reasons == []
    running = [status for status in seen if not status.done]
    assert all(status.elapsed_seconds is not None and status.elapsed_seconds >= 0 for status in running), running
    over_http = client.status(job.training_id, wire="http")
    assert (over_http.training_id, over_http.state) == (job.training_id, "COMPLETED")
    runtime.wait_for_model(name)
    assert len(client.generate(name, "the ", max_new_tokens=5, seed=1, wire="http").text) == 5
    assert client.wait(long_job.training_id, poll_seconds=0.3, timeout=60).state == "CANCELED"
    with pytest.raises(ClientError) as taken:  # the name is served now
        client.train("CharTextGenerator", name, TINY_CHAR_LINES, wire="http", max_steps=1)
    assert taken.value.code == 409


# -- the SSE reader -----------------------------------------------------------------------------


def test_sse_reader_reads_events_split_anywhere():
    body = (
        ": a comment\r\nevent: message\r\ndata: {\"a\": 1}\r\n\r\n"
        "data: two\ndata: lines\n\n"
        "event: error\rdata: {\"code\": 400}\r\r"
        "data: cut off before its blank line\n"
    )
    # The spec drops an event the body ends in before its blank line.
    expected = [("message", '{"a": 1}'), ("message", "two\nlines"), ("error", '{"code": 400}')]
    for size in (1, 2, 3, 7, len(body)):
        pieces = [body[start : start + size] for start in range(0, len(body), size)]
        assert list(sse_events(pieces)) == expected, size
    assert list(sse_events(["data: x\r", "\r"])) == [("message", "x")]  # a CR-only body's last event
