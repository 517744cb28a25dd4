"""Translator served by the real runtime: our translation tasks over gRPC and HTTP, caikit-nlp's text
generation with its own client library, bad input, and training through the train API."""

import json
import math
from pathlib import Path

import grpc
import pytest
import requests
from caikit.runtime.model_management.model_manager import ModelManager
from caikit_nlp_client import GrpcClient, HttpClient

from conftest import TINY_TRANSLATOR_ID
from tiny_models import TINY_TRANSLATOR_RECIPE, toy_translation_pairs

TRAIN_RPC = "TranslationTaskTranslatorTrain"
TEXT = "the cat sees the fish"
TEXTS = ["the dog likes the water", "the hen", "the bird eats the rice . the cat sees the bread", TEXT]


def metadata(model_id=TINY_TRANSLATOR_ID):
    return [("mm-model-id", model_id)]


def served():
    return ModelManager.get_instance().retrieve_model(TINY_TRANSLATOR_ID)


def post_json(runtime, route, body, **options):
    return requests.post(
        runtime.http_url + route, data=json.dumps(body), headers={"Content-Type": "application/json"}, timeout=60, **options
    )


@pytest.fixture
def nlp_client(runtime):
    client = GrpcClient("127.0.0.1", runtime.grpc_port, insecure=True)
    yield client
    client._close()  # pylint: disable=protected-access


# -- the translation tasks ---------------------------------------------------------------------------


def test_translation_over_grpc_and_http(runtime):
    expected = served().run(TEXT)
    request = runtime.message("TranslationTaskRequest", text=TEXT)
    reply = runtime.inference.TranslationTaskPredict(request, metadata=metadata(), timeout=30)
    assert reply.translation_text == expected.translation_text
    assert reply.input_token_count == expected.input_token_count and reply.generated_tokens == expected.generated_tokens
    response = post_json(runtime, "/api/v1/task/translation", {"model_id": TINY_TRANSLATOR_ID, "inputs": TEXT})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["translation_text"] == expected.translation_text
    assert body["finish_reason"] == "EOS_TOKEN" and body["sentences"] == 1


def test_the_list_form_over_grpc_and_http(runtime):
    expected = [served().run(text).translation_text for text in TEXTS]
    request = runtime.message("TranslationListTaskRequest", texts=TEXTS, num_beams=1)
    reply = runtime.inference.TranslationListTaskPredict(request, metadata=metadata(), timeout=30)
    assert [result.translation_text for result in reply.results] == expected
    response = post_json(runtime, "/api/v1/task/translation-list", {"model_id": TINY_TRANSLATOR_ID, "inputs": TEXTS})
    assert response.status_code == 200, response.text
    assert [result["translation_text"] for result in response.json()["results"]] == expected


def test_beams_over_grpc_and_http(runtime):
    expected = served().run(TEXT, num_beams=4).translation_text
    request = runtime.message("TranslationTaskRequest", text=TEXT, num_beams=4)
    assert runtime.inference.TranslationTaskPredict(request, metadata=metadata(), timeout=30).translation_text == expected
    request = runtime.message("TextGenerationTaskRequest", text=TEXT, num_beams=4)
    assert runtime.inference.TextGenerationTaskPredict(request, metadata=metadata(), timeout=30).generated_text == expected
    body = {"model_id": TINY_TRANSLATOR_ID, "inputs": TEXT, "parameters": {"num_beams": 4}}
    assert post_json(runtime, "/api/v1/task/text-generation", body).json()["generated_text"] == expected


# -- caikit-nlp's text generation, with caikit-nlp's own client ------------------------------------------


def test_caikit_nlp_client_generate_text_translates(runtime, nlp_client):
    translation = nlp_client.generate_text(TINY_TRANSLATOR_ID, TEXT)
    assert translation == served().run(TEXT).translation_text
    assert HttpClient(runtime.http_url).generate_text(TINY_TRANSLATOR_ID, TEXT) == translation


def test_caikit_nlp_client_stream_joins_to_the_unary_text(runtime, nlp_client):
    parameters = {"decoding_method": "SAMPLING", "temperature": 1.5, "seed": 7}
    unary = nlp_client.generate_text(TINY_TRANSLATOR_ID, TEXT, **parameters)
    chunks = list(nlp_client.generate_text_stream(TINY_TRANSLATOR_ID, TEXT, **parameters))
    assert len(chunks) > 1 and "".join(chunks) == unary
    assert "".join(nlp_client.generate_text_stream(TINY_TRANSLATOR_ID, TEXT)) == nlp_client.generate_text(TINY_TRANSLATOR_ID, TEXT)


def test_grpc_unary_counts_tokens_honestly(runtime):
    request = runtime.message("TextGenerationTaskRequest", text=TEXT, max_new_tokens=2)
    reply = runtime.inference.TextGenerationTaskPredict(request, metadata=metadata(), timeout=30)
    assert reply.generated_tokens == 2
    assert reply.input_token_count == len(served().tokenizer(TEXT)["input_ids"])


# -- bad input: a clear INVALID_ARGUMENT / 4xx naming the problem -----------------------------------------

BAD_GENERATION = [
    ({"text": ""}, "non-empty"),
    ({"text": "   "}, "non-empty"),
    ({"text": TEXT, "num_beams": -1}, "num_beams"),
    ({"text": TEXT, "num_beams": 99}, "num_beams"),
    ({"text": TEXT, "max_new_tokens": -2}, "max_new_tokens"),
    ({"text": TEXT, "max_new_tokens": TINY_TRANSLATOR_RECIPE["max_new_tokens_limit"] + 1}, "limit"),
    ({"text": TEXT, "top_p": 1.5}, "top_p"),
    ({"text": TEXT, "top_p": -0.1}, "top_p"),
    ({"text": TEXT, "temperature": math.nan}, "temperature"),
]


@pytest.mark.parametrize("fields, message", BAD_GENERATION)
def test_bad_generation_input_over_grpc_and_http(runtime, fields, message):
    request = runtime.message("TextGenerationTaskRequest", **fields)
    with pytest.raises(grpc.RpcError) as raised:
        runtime.inference.TextGenerationTaskPredict(request, metadata=metadata(), timeout=30)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in raised.value.details()
    fields = dict(fields)
    body = {"model_id": TINY_TRANSLATOR_ID, "inputs": fields.pop("text"), "parameters": fields}
    response = post_json(runtime, "/api/v1/task/text-generation", body)
    assert response.status_code == 400, response.text
    assert message in response.json()["details"]


def test_beams_with_streaming_are_refused_before_any_message(runtime):
    request = runtime.message("ServerStreamingTextGenerationTaskRequest", text=TEXT, num_beams=3)
    received = []
    with pytest.raises(grpc.RpcError) as raised:
        for chunk in runtime.inference.ServerStreamingTextGenerationTaskPredict(request, metadata=metadata(), timeout=30):
            received.append(chunk)
    assert received == [] and raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "unary calls only" in raised.value.details()


BAD_TRANSLATION = [
    ("/api/v1/task/translation", "", {}, 400, "non-empty"),
    ("/api/v1/task/translation", 42, {}, 422, ""),
    ("/api/v1/task/translation", TEXT, {"num_beams": 0.5}, 422, ""),
    ("/api/v1/task/translation", TEXT, {"num_beams": 100}, 400, "num_beams"),
    ("/api/v1/task/translation", TEXT, {"max_new_tokens": -1}, 400, "max_new_tokens"),
    ("/api/v1/task/translation-list", [], {}, 400, "non-empty list"),
    ("/api/v1/task/translation-list", [TEXT, ""], {}, 400, "texts[1]"),
    ("/api/v1/task/translation-list", [TEXT, 3], {}, 422, ""),
]


@pytest.mark.parametrize("route, inputs, parameters, status, message", BAD_TRANSLATION)
def test_bad_translation_input_over_http(runtime, route, inputs, parameters, status, message):
    body = {"model_id": TINY_TRANSLATOR_ID, "inputs": inputs, "parameters": parameters}
    response = post_json(runtime, route, body)
    assert response.status_code == status, response.text
    assert message in response.text


def test_an_empty_list_over_grpc_is_invalid_argument(runtime):
    with pytest.raises(grpc.RpcError) as raised:
        runtime.inference.TranslationListTaskPredict(
            runtime.message("TranslationListTaskRequest", texts=[]), metadata=metadata(), timeout=30
        )
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "texts" in raised.value.details()


# -- training through the runtime ----------------------------------------------------------------------


def start_training(runtime, model_name, training_data, **parameters):
    body = {"model_name": model_name, "parameters": {"training_data": training_data, **parameters}}
    response = requests.post(f"{runtime.http_url}/api/v1/{TRAIN_RPC}", json=body, timeout=60)
    assert response.status_code == 200, response.text
    return response.json()["training_id"]


@pytest.mark.slow
def test_train_inline_then_translate_by_name(runtime, toy_encoder_dir, nlp_client):
    recipe = {**TINY_TRANSLATOR_RECIPE, "max_steps": 20, "val_fraction": 0.1}
    training_id = start_training(
        runtime, "translator-inline", {"data_stream": {"data": toy_translation_pairs()}}, encoder_model=toy_encoder_dir, **recipe
    )
    status = runtime.wait_for_training(training_id, timeout=300)
    assert status["state"] == "COMPLETED", status
    runtime.wait_for_model("translator-inline")
    metrics = json.loads((Path(runtime.models_dir) / "translator-inline" / "metrics.json").read_text())
    assert metrics["steps"] == 20 and {"val_bleu", "val_chrf", "val_loss"} <= set(metrics["validation"])
    # Text generation decodes greedily by default (caikit-nlp's contract); translation asked the same.
    body = {"model_id": "translator-inline", "inputs": TEXT, "parameters": {"num_beams": 1}}
    response = post_json(runtime, "/api/v1/task/translation", body)
    assert response.status_code == 200, response.text
    assert nlp_client.generate_text("translator-inline", TEXT) == response.json()["translation_text"]


@pytest.mark.slow
def test_train_from_a_jsonl_file_and_a_bad_pair_errors_naming_it(runtime, toy_encoder_dir):
    data = Path(runtime.training_data_dir)
    (data / "pairs.jsonl").write_text("\n".join(json.dumps(pair) for pair in toy_translation_pairs()) + "\n")
    recipe = {**TINY_TRANSLATOR_RECIPE, "max_steps": 5}
    good = start_training(runtime, "translator-file", {"data_stream": {"filename": "pairs.jsonl"}}, encoder_model=toy_encoder_dir, **recipe)
    (data / "bad-pairs.jsonl").write_text('{"source": "the cat", "target": "kucing"}\n{"source": "the dog", "target": ""}\n')
    bad = start_training(runtime, "translator-bad", {"data_stream": {"filename": "bad-pairs.jsonl"}}, encoder_model=toy_encoder_dir, **recipe)
    assert runtime.wait_for_training(good, timeout=300)["state"] == "COMPLETED"
    status = runtime.wait_for_training(bad, timeout=300)
    assert status["state"] == "ERRORED" and "pair 1 has no target" in json.dumps(status)
    assert not (Path(runtime.models_dir) / "translator-bad").exists()
