"""SentimentClassifier served by the real runtime, over real gRPC and HTTP on loopback."""

import grpc
import pytest
import requests
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from conftest import TINY_SENTIMENT_ID

ROUTE = "/api/v1/task/text-classification"


def predict_grpc(runtime, model_id=TINY_SENTIMENT_ID, **fields):
    request = runtime.message("TextClassificationTaskRequest", **fields)
    metadata = [("mm-model-id", model_id)] if model_id else []
    return runtime.inference.TextClassificationTaskPredict(request, metadata=metadata, timeout=30)


def predict_http(runtime, body):
    return requests.post(runtime.http_url + ROUTE, json=body, timeout=30)


def test_grpc_predict_gives_labels_best_first(runtime):
    response = predict_grpc(runtime, text="a good and wonderful film")
    labels = [result.label for result in response.results]
    scores = [result.score for result in response.results]
    assert sorted(labels) == ["negative", "positive"]
    assert labels[0] == "positive"
    assert scores == sorted(scores, reverse=True)
    assert sum(scores) == pytest.approx(1.0, abs=1e-5)


def test_http_predict_matches_grpc(runtime):
    text = "a dull lifeless mess"
    over_grpc = predict_grpc(runtime, text=text)
    over_http = predict_http(runtime, {"model_id": TINY_SENTIMENT_ID, "inputs": text})
    assert over_http.status_code == 200, over_http.text
    results = over_http.json()["results"]
    assert results[0]["label"] == "negative"
    assert [r["label"] for r in results] == [r.label for r in over_grpc.results]
    assert results[0]["score"] == pytest.approx(over_grpc.results[0].score, abs=1e-6)


def test_top_k_limits_results(runtime):
    response = predict_grpc(runtime, text="a superb charming story", top_k=1)
    assert len(response.results) == 1
    body = {"model_id": TINY_SENTIMENT_ID, "inputs": "a superb charming story", "parameters": {"top_k": 1}}
    assert len(predict_http(runtime, body).json()["results"]) == 1


def test_truncate_input_tokens_lets_long_text_through(runtime):
    long_text = "a good film " * 80
    body = {"model_id": TINY_SENTIMENT_ID, "inputs": long_text, "parameters": {"truncate_input_tokens": -1}}
    response = predict_http(runtime, body)
    assert response.status_code == 200, response.text
    assert response.json()["results"][0]["label"] == "positive"


@pytest.mark.parametrize(
    "body, expected_status, expected_message",
    [
        ({"model_id": TINY_SENTIMENT_ID, "inputs": ""}, 400, "non-empty"),
        ({"model_id": TINY_SENTIMENT_ID, "inputs": "   "}, 400, "non-empty"),
        ({"model_id": TINY_SENTIMENT_ID, "inputs": 5}, 422, "valid string"),
        ({"model_id": TINY_SENTIMENT_ID, "inputs": "good", "parameters": {"top_k": -1}}, 400, "top_k"),
        ({"model_id": TINY_SENTIMENT_ID, "inputs": "good", "parameters": {"top_k": "two"}}, 422, "integer"),
        ({"model_id": TINY_SENTIMENT_ID, "inputs": "good " * 200}, 400, "tokens long"),
        ({"model_id": "no-such-model", "inputs": "good"}, 404, "no-such-model"),
        ({"inputs": "good"}, 400, "model_id"),
    ],
)
def test_http_bad_input_is_a_clear_4xx(runtime, body, expected_status, expected_message):
    response = predict_http(runtime, body)
    assert response.status_code == expected_status, response.text
    assert expected_message in response.text


@pytest.mark.parametrize(
    "model_id, fields, expected_code, expected_message",
    [
        (TINY_SENTIMENT_ID, {"text": ""}, grpc.StatusCode.INVALID_ARGUMENT, "non-empty"),
        (TINY_SENTIMENT_ID, {"text": "good", "top_k": -3}, grpc.StatusCode.INVALID_ARGUMENT, "top_k"),
        (TINY_SENTIMENT_ID, {"text": "good " * 200}, grpc.StatusCode.INVALID_ARGUMENT, "truncate_input_tokens"),
        (TINY_SENTIMENT_ID, {"text": "good", "truncate_input_tokens": -7}, grpc.StatusCode.INVALID_ARGUMENT, "truncate"),
        ("no-such-model", {"text": "good"}, grpc.StatusCode.NOT_FOUND, "no-such-model"),
        (None, {"text": "good"}, grpc.StatusCode.INVALID_ARGUMENT, "model ID"),
    ],
)
def test_grpc_bad_input_is_invalid_argument(runtime, model_id, fields, expected_code, expected_message):
    with pytest.raises(grpc.RpcError) as raised:
        predict_grpc(runtime, model_id=model_id, **fields)
    assert raised.value.code() == expected_code
    assert expected_message in raised.value.details()


def test_grpc_wrong_field_type_is_rejected_by_the_client_library(runtime):
    with pytest.raises(TypeError):
        runtime.message("TextClassificationTaskRequest", text=42)


def test_broken_model_dir_fails_alone(runtime):
    response = predict_http(runtime, {"model_id": "broken-model", "inputs": "good"})
    assert response.status_code == 404
    assert "broken-model" in response.text
    # The runtime and its healthy models are still up.
    assert requests.get(runtime.http_url + "/health", timeout=5).status_code == 200
    assert predict_grpc(runtime, text="good").results


def test_reflection_serves_the_caikit_nlp_service_name(runtime):
    stub = reflection_pb2_grpc.ServerReflectionStub(runtime.channel)
    replies = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=10)
    services = {service.name for reply in replies for service in reply.list_services_response.service}
    assert "caikit.runtime.Nlp.NlpService" in services
    assert "caikit.runtime.Nlp.NlpTrainingService" in services


def test_openapi_documents_the_route(runtime):
    spec = requests.get(runtime.http_url + "/openapi.json", timeout=10).json()
    body = spec["paths"][ROUTE]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert set(body["properties"]) == {"inputs", "parameters", "model_id"}
