"""Training a CharTextGenerator through the runtime's train API, then generating from it by name."""

import json
import os
from pathlib import Path

import pytest
import requests
from caikit_nlp_client import GrpcClient

from caikit_genai.bootstrap.char_austen import CHAR_AUSTEN_RECIPE

from tiny_models import TINY_CHAR_LINES, TINY_CHAR_RECIPE, char_training_text

TRAIN_RPC = "TextGenerationTaskCharTextGeneratorTrain"


def start_training(runtime, model_name, training_data, **parameters):
    body = {"model_name": model_name, "parameters": {"training_data": training_data, **parameters}}
    response = requests.post(f"{runtime.http_url}/api/v1/{TRAIN_RPC}", json=body, timeout=60)
    assert response.status_code == 200, response.text
    return response.json()["training_id"]


def test_the_train_rpc_has_the_generated_name(runtime):
    assert TRAIN_RPC in runtime.training_service.caikit_rpcs


@pytest.mark.slow
def test_train_from_a_jsonl_file_of_lines_then_generate_by_name(runtime):
    lines = Path(runtime.training_data_dir) / "lines.jsonl"
    lines.write_text("\n".join(json.dumps(line) for line in TINY_CHAR_LINES * 12))
    training_id = start_training(
        runtime,
        "char-from-file",
        # Over HTTP the data_stream is one of its sources, told apart by their fields.
        {"data_stream": {"filename": "lines.jsonl"}},
        **{**TINY_CHAR_RECIPE, "max_steps": 40},
        max_new_tokens_limit=500,
    )
    metrics = runtime.served_metrics(training_id, "char-from-file")
    assert metrics["steps"] == 40
    assert metrics["val_loss_nats_per_char"] > 0

    body = {"model_id": "char-from-file", "inputs": "the hen ", "parameters": {"max_new_tokens": 25, "seed": 2}}
    response = requests.post(f"{runtime.http_url}/api/v1/task/text-generation", json=body, timeout=30)
    assert response.status_code == 200, response.text
    assert response.json()["generated_tokens"] == 25
    client = GrpcClient("127.0.0.1", runtime.grpc_port, insecure=True)
    try:
        assert client.generate_text("char-from-file", "the hen ", max_new_tokens=25, seed=2) == response.json()["generated_text"]
    finally:
        client._close()  # pylint: disable=protected-access
    # The limit chosen at training time is the served model's.
    body["parameters"]["max_new_tokens"] = 501
    response = requests.post(f"{runtime.http_url}/api/v1/task/text-generation", json=body, timeout=30)
    assert response.status_code == 400 and "500" in response.json()["details"]


@pytest.mark.slow
def test_too_little_text_errors_with_a_reason_and_no_model(runtime):
    training_id = start_training(
        runtime, "char-too-short", {"data_stream": {"data": ["the cat sat on the mat. " * 3]}}, **TINY_CHAR_RECIPE
    )
    status = runtime.wait_for_training(training_id)
    assert status["state"] == "ERRORED", status
    assert any("fewer than one step needs" in reason for reason in status["reasons"]), status
    assert not os.path.exists(os.path.join(runtime.models_dir, "char-too-short"))


def test_a_preset_trains_as_the_default_was_built_and_knobs_sent_override_it(runtime):
    """`preset` is a train parameter of every module: the recipe starts from the default model's
    (char-austen: its time budget, seed 42), and what the request sends wins (a tiny net)."""
    tiny = {**TINY_CHAR_RECIPE, "max_steps": 10, "val_fraction": 0.1}
    del tiny["seed"]
    training_id = start_training(
        runtime, "char-from-preset", {"data_stream": {"data": [char_training_text()]}}, preset="char-austen", **tiny
    )
    recipe = runtime.served_metrics(training_id, "char-from-preset")["recipe"]
    assert recipe["max_seconds"] == CHAR_AUSTEN_RECIPE["max_seconds"] and recipe["seed"] == 42  # the preset's
    assert recipe["hidden_size"] == TINY_CHAR_RECIPE["hidden_size"] and recipe["num_layers"] == 1  # sent
    unknown = start_training(runtime, "char-bad-preset", {"data_stream": {"data": [char_training_text()]}}, preset="nope")
    status = runtime.wait_for_training(unknown)
    assert status["state"] == "ERRORED" and any("unknown preset 'nope'" in reason for reason in status["reasons"]), status
    assert not os.path.exists(os.path.join(runtime.models_dir, "char-bad-preset"))
