"""The network chooses no paths: model names, model ids and training data files from requests
stay inside their configured dirs, over gRPC and HTTP, before any job starts."""

import json
import os
import shutil
import time
import uuid
from pathlib import Path

import grpc
import pytest
import requests
from caikit.runtime.protobufs import model_runtime_pb2, model_runtime_pb2_grpc

from conftest import TINY_SENTIMENT_ID
from tiny_models import sentiment_examples

TRAIN_RPC = "TextClassificationTaskSentimentClassifierTrain"
CLASSIFY_ROUTE = "/api/v1/task/text-classification"
INLINE_DATA = {"data_stream": {"data": sentiment_examples(40)}}


def post_training(runtime, model_name, training_data=None, **parameters):
    body = {"model_name": model_name, "parameters": {"training_data": training_data or INLINE_DATA, **parameters}}
    return requests.post(f"{runtime.http_url}/api/v1/{TRAIN_RPC}", json=body, timeout=60)


def grpc_training(runtime, model_name, **parameters):
    examples = [runtime.message("LabeledText", **example) for example in sentiment_examples(40)]
    request = runtime.message(
        "TextClassificationTaskSentimentClassifierTrainRequest",
        model_name=model_name,
        parameters=runtime.message(
            "TextClassificationTaskSentimentClassifierTrainParameters",
            training_data=runtime.message(
                "DataStreamSourceLabeledText",
                jsondata=runtime.message("DataStreamSourceLabeledTextJsonData", data=examples),
            ),
            **parameters,
        ),
    )
    return getattr(runtime.training, TRAIN_RPC)(request, timeout=60)


def escape_targets(runtime):
    """Names that would write outside models/, and where each would land."""
    outside = f"/var/tmp/escaped-model-{uuid.uuid4().hex[:8]}"
    parent = os.path.dirname(runtime.models_dir)
    return {
        "../escaped-model": os.path.join(parent, "escaped-model"),
        outside: outside,
        "a/b": os.path.join(runtime.models_dir, "a"),
        "": runtime.models_dir + ".retired",  # an empty name would replace models/ itself
        ".hidden": os.path.join(runtime.models_dir, ".hidden"),
        "-rf": os.path.join(runtime.models_dir, "-rf"),
        "x" * 129: os.path.join(runtime.models_dir, "x" * 129),
    }


@pytest.mark.parametrize("index", range(7))
def test_unsafe_model_names_are_refused_over_http_before_a_job(runtime, index):
    name, landing = list(escape_targets(runtime).items())[index]
    before = sorted(os.listdir(runtime.models_dir))
    response = post_training(runtime, name, base_model="unused")
    assert response.status_code == 400, response.text
    assert "not a valid model name" in response.json()["details"]
    assert "letters, digits" in response.json()["details"]
    assert not os.path.exists(landing)
    assert sorted(os.listdir(runtime.models_dir)) == before


@pytest.mark.parametrize("name", ["../escaped-model", "/tmp/escaped-model", "a/b", ".."])
def test_unsafe_model_names_are_refused_over_grpc(runtime, name):
    with pytest.raises(grpc.RpcError) as raised:
        grpc_training(runtime, name)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "not a valid model name" in raised.value.details()


def test_a_name_that_exists_is_refused_unless_replacing_is_allowed(runtime):
    response = post_training(runtime, TINY_SENTIMENT_ID)
    assert response.status_code == 409, response.text
    assert "already exists" in response.json()["details"]
    with pytest.raises(grpc.RpcError) as raised:
        grpc_training(runtime, TINY_SENTIMENT_ID)
    assert raised.value.code() == grpc.StatusCode.ALREADY_EXISTS


def test_replacing_is_a_config_switch():
    from caikit_genai.toolkit.training.subprocess_training import _replacing_allowed  # pylint: disable=import-outside-toplevel

    assert not _replacing_allowed({"genai": {"training": {"replace_existing_models": False}}})
    assert not _replacing_allowed({"runtime": {}})
    assert _replacing_allowed({"genai": {"training": {"replace_existing_models": True}}})
    # From the environment the value is a string: "no" and "off" keep it off.
    for off in ("no", "off", "false", "0"):
        assert not _replacing_allowed({"genai": {"training": {"replace_existing_models": off}}}), off
    assert _replacing_allowed({"genai": {"training": {"replace_existing_models": "on"}}})


def test_a_name_a_running_job_writes_is_refused(runtime, tiny_bert_dir):
    first = post_training(
        runtime, "being-trained", {"data_stream": {"data": sentiment_examples(400)}},
        base_model=tiny_bert_dir, epochs=5000, batch_size=8,
    )
    assert first.status_code == 200, first.text
    training_id = first.json()["training_id"]
    try:
        second = post_training(runtime, "being-trained", base_model=tiny_bert_dir)
        assert second.status_code == 409, second.text
        assert training_id in second.json()["details"]
    finally:
        requests.delete(f"{runtime.http_url}/management/trainings", params={"training_id": training_id}, timeout=30)
    assert runtime.wait_for_training(training_id, timeout=60)["state"] == "CANCELED"


# -- base models ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "base_model, message",
    [
        ("/etc", "outside the base models dir"),
        ("../../..", "outside the base models dir"),
        ("no/such/dir/here", "not a directory in the base models dir"),
    ],
)
def test_a_base_model_path_outside_its_dir_is_refused_before_a_job(runtime, base_model, message):
    before = sorted(os.listdir(runtime.models_dir))
    response = post_training(runtime, "never-based", base_model=base_model)
    assert response.status_code == 400, response.text
    assert message in response.json()["details"]
    assert "genai.training.base_models_dir" in response.json()["details"]
    assert sorted(os.listdir(runtime.models_dir)) == before


@pytest.mark.slow
def test_a_served_model_is_a_base_model_by_its_name(runtime):
    """Fine-tune a model the runtime serves, named as a request names models."""
    response = post_training(runtime, "based-on-served", base_model=TINY_SENTIMENT_ID, epochs=1)
    assert response.status_code == 200, response.text
    metrics = runtime.served_metrics(response.json()["training_id"], "based-on-served")
    assert metrics["base_model"] == os.path.join(runtime.models_dir, TINY_SENTIMENT_ID)


def test_base_model_rules_without_a_base_models_dir(tmp_path):
    from caikit_genai.toolkit.training.subprocess_training import request_base_model

    models_dir = tmp_path / "models"
    (models_dir / "served").mkdir(parents=True)
    (models_dir / "served" / "config.yml").write_text("module_id: x\n")
    (tmp_path / "bases" / "mine").mkdir(parents=True)
    assert request_base_model("served", "base_model", str(models_dir), None) == str(models_dir / "served")
    assert request_base_model("org/some-model", "base_model", str(models_dir), None) == "org/some-model"
    for refused in (str(tmp_path / "bases" / "mine"), "./x", "a/b/c"):
        with pytest.raises(Exception, match="which is not set"):
            request_base_model(refused, "base_model", str(models_dir), None)
    inside = request_base_model("mine", "base_model", str(models_dir), str(tmp_path / "bases"))
    assert inside == os.path.realpath(tmp_path / "bases" / "mine")
    os.symlink("/etc", tmp_path / "bases" / "link-out")
    with pytest.raises(Exception, match="outside the base models dir"):
        request_base_model("link-out", "base_model", str(models_dir), str(tmp_path / "bases"))


# -- training data files ------------------------------------------------------------------


@pytest.fixture(scope="module")
def outside_file(runtime):
    """A readable file outside the training data dir, with contents a client must never see."""
    path = Path(runtime.training_data_dir).parent / "secret.jsonl"
    path.write_text(json.dumps({"text": "SECRET-CONTENT", "label": "positive"}) + "\n")
    return path


def refused(runtime, source, model_name):
    response = post_training(runtime, model_name, {"data_stream": source})
    assert response.status_code == 400, response.text
    assert not os.path.exists(os.path.join(runtime.models_dir, model_name))
    details = response.json()["details"]
    assert "SECRET" not in details and "root:" not in details
    return details


def test_absolute_paths_outside_the_data_dir_are_refused(runtime, outside_file):
    assert "outside the training data dir" in refused(runtime, {"filename": "/etc/passwd"}, "etc-passwd")
    assert "outside the training data dir" in refused(runtime, {"filename": str(outside_file)}, "abs-outside")


def test_dot_dot_and_symlinks_out_are_refused(runtime, outside_file):
    base = Path(runtime.training_data_dir)
    assert "outside" in refused(runtime, {"filename": "../secret.jsonl"}, "dotdot")
    (base / "link.jsonl").symlink_to(outside_file)
    assert "outside" in refused(runtime, {"filename": "link.jsonl"}, "symlink-out")
    linked_dir = base / "linked-dir"
    linked_dir.mkdir()
    (linked_dir / "part.jsonl").symlink_to(outside_file)
    assert "link to outside" in refused(runtime, {"dirname": "linked-dir", "extension": "jsonl"}, "dir-link")
    assert "outside" in refused(runtime, {"dirname": "..", "extension": "jsonl"}, "dir-dotdot")
    assert "outside" in refused(runtime, {"files": ["../secret.jsonl"]}, "list-dotdot")


def test_grpc_file_sources_are_confined_too(runtime):
    request = runtime.message(
        "TextClassificationTaskSentimentClassifierTrainRequest",
        model_name="grpc-etc-passwd",
        parameters=runtime.message(
            "TextClassificationTaskSentimentClassifierTrainParameters",
            training_data=runtime.message(
                "DataStreamSourceLabeledText", file=runtime.message("FileReference", filename="/etc/passwd")
            ),
        ),
    )
    with pytest.raises(grpc.RpcError) as raised:
        getattr(runtime.training, TRAIN_RPC)(request, timeout=60)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "outside the training data dir" in raised.value.details()


@pytest.mark.slow
def test_an_absolute_path_inside_the_data_dir_trains(runtime, tiny_bert_dir):
    path = Path(runtime.training_data_dir) / "inside.jsonl"
    path.write_text("\n".join(json.dumps(example) for example in sentiment_examples(80, seed=9)))
    response = post_training(
        runtime, "abs-inside", {"data_stream": {"filename": str(path)}}, base_model=tiny_bert_dir, epochs=1
    )
    assert response.status_code == 200, response.text
    status = runtime.wait_for_training(response.json()["training_id"])
    assert status["state"] == "COMPLETED", status


# -- model ids on the predict and management routes ---------------------------------------


@pytest.fixture(scope="module")
def model_outside_models_dir(runtime):
    """A real, loadable model dir beside models/ (not in it)."""
    path = os.path.join(os.path.dirname(runtime.models_dir), "outside-model")
    shutil.copytree(os.path.join(runtime.models_dir, TINY_SENTIMENT_ID), path)
    return path


def test_predict_model_ids_cannot_walk_out_of_models_dir(runtime, model_outside_models_dir):
    for model_id in ("../outside-model", model_outside_models_dir, f"../{os.path.basename(runtime.models_dir)}/{TINY_SENTIMENT_ID}"):
        response = requests.post(
            runtime.http_url + CLASSIFY_ROUTE, json={"model_id": model_id, "inputs": "a good film"}, timeout=30
        )
        assert response.status_code == 400, (model_id, response.text)
        assert "not a valid model name" in response.json()["details"]
        request = runtime.message("TextClassificationTaskRequest", text="a good film")
        with pytest.raises(grpc.RpcError) as raised:
            runtime.inference.TextClassificationTaskPredict(request, metadata=[("mm-model-id", model_id)], timeout=30)
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_a_name_that_is_no_model_dir_is_not_found_not_a_path(runtime):
    # "tests" exists relative to the working dir; caikit would try it as a model path.
    response = requests.post(runtime.http_url + CLASSIFY_ROUTE, json={"model_id": "tests", "inputs": "x"}, timeout=30)
    assert response.status_code == 404, response.text


def test_undeploy_cannot_delete_outside_models_dir(management_on):
    runtime = management_on
    victim = Path(runtime.models_dir).parent / "victim"
    victim.mkdir(exist_ok=True)
    (victim / "keep.txt").write_text("precious")
    for model_id in ("../victim", str(victim)):
        response = requests.delete(f"{runtime.http_url}/management/models", params={"model_id": model_id}, timeout=30)
        assert response.status_code == 400, response.text
    assert (victim / "keep.txt").read_text() == "precious"


def test_deploy_cannot_write_outside_models_dir(management_on):
    runtime = management_on
    body = {"model_id": "../deployed-outside", "model_files": [{"filename": "config.yml", "data": "bW9kdWxlX2lkOiB4"}]}
    response = requests.post(f"{runtime.http_url}/management/models", json=body, timeout=30)
    assert response.status_code == 400, response.text
    assert not (Path(runtime.models_dir).parent / "deployed-outside").exists()
    body = {"model_id": "deployed-inside", "model_files": [{"filename": "../../escaped.yml", "data": "eA=="}]}
    response = requests.post(f"{runtime.http_url}/management/models", json=body, timeout=30)
    assert response.status_code == 400, response.text
    assert not (Path(runtime.models_dir).parent.parent / "escaped.yml").exists()


def test_model_mesh_load_cannot_load_from_outside_models_dir(management_on, model_outside_models_dir):
    runtime = management_on
    stub = model_runtime_pb2_grpc.ModelRuntimeStub(runtime.channel)
    request = model_runtime_pb2.LoadModelRequest(
        modelId="mesh-outside", modelPath=model_outside_models_dir, modelType="standalone"
    )
    with pytest.raises(grpc.RpcError) as raised:
        stub.loadModel(request, timeout=30)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    listed = requests.get(f"{runtime.http_url}/info/models", timeout=10).json()["models"]
    assert "mesh-outside" not in [model["name"] for model in listed]


def test_entries_of_the_models_dir_that_are_no_model_names_are_passed_over(runtime, monkeypatch):
    """A save in progress (`.<name>.partial-*`) and caikit's batch `.complete` marker are not
    loaded as models by the lazy loader (caikit would try, and log the failure, every poll)."""
    from caikit.runtime.model_management.model_manager import ModelManager  # pylint: disable=import-outside-toplevel

    loader = ModelManager.get_instance().model_loader
    tried, load = [], loader.load_model

    def recording_load(*args, **kwargs):
        tried.append(kwargs.get("model_id", args[0] if args else None))
        return load(*args, **kwargs)

    monkeypatch.setattr(loader, "load_model", recording_load)
    partial = os.path.join(runtime.models_dir, ".half-saved.partial-abc")
    os.makedirs(partial)
    with open(os.path.join(partial, "config.yml"), "w", encoding="utf-8") as config:
        config.write("module_id: 8f72161a-1234-4cde-9a7f-000000000000\n")
    open(os.path.join(runtime.models_dir, ".complete"), "w", encoding="utf-8").close()
    os.makedirs(os.path.join(runtime.models_dir, "not-a-model-yet"))
    try:
        # A visible entry is tried (and fails: it is no model dir); the hidden ones never are.
        deadline = time.monotonic() + 30
        while "not-a-model-yet" not in tried:
            assert time.monotonic() < deadline, f"the lazy loader never polled: {tried}"
            time.sleep(0.2)
        time.sleep(2)  # that poll's pass over the dir, and a few more polls (every 0.5 s)
        assert ".complete" not in tried and ".half-saved.partial-abc" not in tried
    finally:
        shutil.rmtree(partial)
        shutil.rmtree(os.path.join(runtime.models_dir, "not-a-model-yet"))
        os.remove(os.path.join(runtime.models_dir, ".complete"))
