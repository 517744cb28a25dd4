"""Training through the runtime's train API (gRPC and HTTP), in a subprocess, then serving."""

import csv
import json
import os
import time
from pathlib import Path

import grpc
import pytest
import requests

from caikit_genai.toolkit.models.device import cpu_has_native_bf16
from tiny_models import sentiment_examples

TRAIN_RPC = "TextClassificationTaskSentimentClassifierTrain"
TINY_RECIPE = {"epochs": 6, "batch_size": 16, "learning_rate": 3e-3, "seed": 7}


def train_over_http(runtime, model_name, training_data, **parameters):
    body = {"model_name": model_name, "parameters": {"training_data": training_data, **parameters}}
    response = requests.post(f"{runtime.http_url}/api/v1/{TRAIN_RPC}", json=body, timeout=60)
    assert response.status_code == 200, response.text
    return response.json()["training_id"]


def classify(runtime, model_id, text):
    response = requests.post(
        f"{runtime.http_url}/api/v1/task/text-classification",
        json={"model_id": model_id, "inputs": text},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return response.json()["results"][0]["label"]


def assert_model_learned(runtime, model_id):
    runtime.wait_for_model(model_id)
    assert classify(runtime, model_id, "a wonderful and brilliant movie") == "positive"
    assert classify(runtime, model_id, "a boring and terrible movie") == "negative"


def wait_for_training_over_grpc(runtime, training_id, timeout=180.0) -> str:
    """Poll GetTrainingStatus until a terminal state; return the state's name."""
    request = runtime.message("TrainingInfoRequest", training_id=training_id)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = runtime.training_management.GetTrainingStatus(request, timeout=10)
        state = status.DESCRIPTOR.fields_by_name["state"].enum_type.values_by_number[status.state].name
        if state in ("COMPLETED", "ERRORED", "CANCELED"):
            return state
        time.sleep(0.5)
    raise TimeoutError(f"training {training_id} did not finish")


@pytest.mark.slow
def test_train_over_grpc_then_serve_by_name(runtime, tiny_bert_dir):
    """A recipe knob (pooling) travels in the gRPC message; the runtime loads what was saved."""
    examples = [runtime.message("LabeledText", **example) for example in sentiment_examples(160)]
    parameters = runtime.message(
        "TextClassificationTaskSentimentClassifierTrainParameters",
        training_data=runtime.message(
            "DataStreamSourceLabeledText",
            jsondata=runtime.message("DataStreamSourceLabeledTextJsonData", data=examples),
        ),
        base_model=tiny_bert_dir,
        pooling="mean",
        **TINY_RECIPE,
    )
    request = runtime.message(
        "TextClassificationTaskSentimentClassifierTrainRequest", model_name="grpc-trained", parameters=parameters
    )
    job = getattr(runtime.training, TRAIN_RPC)(request, timeout=60)
    assert job.model_name == "grpc-trained"
    state = wait_for_training_over_grpc(runtime, job.training_id)
    assert state == "COMPLETED"
    assert_model_learned(runtime, "grpc-trained")


@pytest.mark.slow
def test_train_over_http_with_inline_json(runtime, tiny_bert_dir):
    training_id = train_over_http(
        runtime,
        "http-trained",
        {"data_stream": {"data": sentiment_examples(160)}},
        validation_data={"data_stream": {"data": sentiment_examples(40, seed=3)}},
        base_model=tiny_bert_dir,
        **TINY_RECIPE,
    )
    status = runtime.wait_for_training(training_id)
    assert status["state"] == "COMPLETED", status
    assert_model_learned(runtime, "http-trained")
    with open(os.path.join(runtime.models_dir, "http-trained", "metrics.json"), encoding="utf-8") as metrics_file:
        metrics = json.load(metrics_file)
    assert metrics["validation_examples"] == 40
    assert 0.0 <= metrics["val_accuracy"] <= 1.0


def write_training_files(directory):
    examples = sentiment_examples(160, seed=5)
    paths = {"jsonl": directory / "train.jsonl", "csv": directory / "train.csv", "json": directory / "train.json"}
    paths["jsonl"].write_text("\n".join(json.dumps(example) for example in examples))
    paths["json"].write_text(json.dumps(examples))
    with open(paths["csv"], "w", newline="", encoding="utf-8") as csv_file:
        writer = csv.DictWriter(csv_file, fieldnames=["text", "label"])
        writer.writeheader()
        writer.writerows(examples)
    shards = directory / "shards"
    shards.mkdir()
    for index in range(4):
        (shards / f"part{index}.jsonl").write_text(
            "\n".join(json.dumps(example) for example in examples[index::4])
        )
    return paths, shards


@pytest.fixture(scope="module")
def training_files(runtime):
    """The files live in the runtime's training data dir; requests name them relative to it."""
    directory = Path(runtime.training_data_dir) / "sentiment-files"
    directory.mkdir()
    return write_training_files(directory)


@pytest.mark.parametrize("kind", ["jsonl", "csv", "json", "directory"])
@pytest.mark.slow
def test_train_from_files(runtime, tiny_bert_dir, training_files, kind):
    paths, shards = training_files
    if kind == "directory":
        source = {"data_stream": {"dirname": "sentiment-files/shards", "extension": "jsonl"}}
    else:
        source = {"data_stream": {"filename": f"sentiment-files/{paths[kind].name}"}}
    model_name = f"file-trained-{kind}"
    training_id = train_over_http(runtime, model_name, source, base_model=tiny_bert_dir, **TINY_RECIPE)
    status = runtime.wait_for_training(training_id)
    assert status["state"] == "COMPLETED", status
    assert_model_learned(runtime, model_name)


def test_missing_training_file_is_refused_before_a_job_starts(runtime, tiny_bert_dir):
    body = {
        "model_name": "never-made",
        "parameters": {"training_data": {"data_stream": {"filename": "no-such-file.jsonl"}}, "base_model": tiny_bert_dir},
    }
    response = requests.post(f"{runtime.http_url}/api/v1/{TRAIN_RPC}", json=body, timeout=60)
    assert response.status_code == 400, response.text
    assert "no-such-file.jsonl" in response.json()["details"] and "does not exist" in response.json()["details"]
    assert not os.path.exists(os.path.join(runtime.models_dir, "never-made"))


@pytest.mark.parametrize(
    "rows, reason",
    [
        ([{"text": "good film", "label": "positive"}, {"text": "no label here"}], "no label"),
        ([{"text": "good film", "label": "positive"}] * 4, "at least 2 distinct labels"),
    ],
)
@pytest.mark.slow
def test_bad_training_data_errors_with_a_reason_and_no_model(runtime, tiny_bert_dir, rows, reason):
    model_name = f"bad-data-{abs(hash(reason)) % 1000}"
    path = Path(runtime.training_data_dir) / f"{model_name}.jsonl"
    path.write_text("\n".join(json.dumps(row) for row in rows))
    training_id = train_over_http(
        runtime, model_name, {"data_stream": {"filename": path.name}}, base_model=tiny_bert_dir
    )
    status = runtime.wait_for_training(training_id)
    assert status["state"] == "ERRORED", status
    assert any(reason in message for message in status["reasons"]), status
    assert not os.path.exists(os.path.join(runtime.models_dir, model_name))


def test_cancel_stops_training_and_leaves_no_model_dir(runtime, tiny_bert_dir):
    model_name = "cancelled-model"
    training_id = train_over_http(
        runtime,
        model_name,
        {"data_stream": {"data": sentiment_examples(400)}},
        base_model=tiny_bert_dir,
        epochs=5000,
        batch_size=8,
    )
    url = f"{runtime.http_url}/management/trainings"
    deadline = time.monotonic() + 60
    while requests.get(url, params={"training_id": training_id}, timeout=5).json()["state"] != "RUNNING":
        assert time.monotonic() < deadline, "training never started"
        time.sleep(0.2)
    response = requests.delete(url, params={"training_id": training_id}, timeout=30)
    assert response.status_code == 200, response.text
    status = runtime.wait_for_training(training_id, timeout=30)
    assert status["state"] == "CANCELED", status
    time.sleep(1.0)
    leftovers = [name for name in os.listdir(runtime.models_dir) if model_name in name]
    assert leftovers == []


def test_unknown_training_id_is_not_found(runtime):
    response = requests.get(
        f"{runtime.http_url}/management/trainings", params={"training_id": "no-such-job"}, timeout=10
    )
    assert response.status_code == 404
    with pytest.raises(grpc.RpcError) as raised:
        runtime.training_management.GetTrainingStatus(
            runtime.message("TrainingInfoRequest", training_id="no-such-job"), timeout=10
        )
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.slow
def test_distil_a_served_model_over_http_with_frozen_layers(runtime, tiny_bert_dir):
    """The teacher is named like any served model; its dir is found in the models dir."""
    training_id = train_over_http(
        runtime,
        "http-distilled",
        {"data_stream": {"data": sentiment_examples(160, seed=4)}},
        base_model=tiny_bert_dir,
        teacher_model="tiny-sentiment",
        temperature=2.0,
        distillation_weight=0.7,
        unlabelled_texts=[example["text"] for example in sentiment_examples(40, seed=8)],
        freeze_layers=1,
        precision="bf16",
        **TINY_RECIPE,
    )
    metrics = runtime.served_metrics(training_id, "http-distilled")
    assert metrics["teacher_model"] == os.path.join(runtime.models_dir, "tiny-sentiment")
    assert (metrics["unlabelled_examples"], metrics["freeze_layers"], metrics["distillation_weight"]) == (40, 1, 0.7)
    # bf16 where this CPU computes it natively, else fp32; the served weights are fp32 either way.
    assert metrics["precision"] == ("bfloat16" if cpu_has_native_bf16() else "float32")


@pytest.mark.parametrize(
    "teacher, message",
    [("../tiny-sentiment", "not a valid model name"), ("/etc", "not a valid model name"), ("no-such-model", "not a model in")],
)
def test_a_teacher_outside_the_models_dir_is_refused_before_a_job(runtime, tiny_bert_dir, teacher, message):
    body = {
        "model_name": "never-distilled",
        "parameters": {
            "training_data": {"data_stream": {"data": sentiment_examples(20)}},
            "base_model": tiny_bert_dir,
            "teacher_model": teacher,
        },
    }
    response = requests.post(f"{runtime.http_url}/api/v1/{TRAIN_RPC}", json=body, timeout=60)
    assert response.status_code == 400, response.text
    assert message in response.json()["details"]
    assert not os.path.exists(os.path.join(runtime.models_dir, "never-distilled"))
