"""What an anonymous client cannot do to a runtime started with this repo's runtime_config.yaml
(what `make serve` and the image run): deploy or undeploy models (HTTP, gRPC, ModelMesh), or
start more trainings than `genai.training.max_concurrent_trainings`. Then, with model management
turned on by an operator, what deploy and undeploy may and may not do to files.

The refusals run in a `python -m caikit.runtime` of their own, with the repo's config as it is;
the opt-in behaviour runs in the shared test runtime with the setting switched on around each
test. tests/test_deploy.py checks the same refusals with the image's env and each
ServingRuntime's.
"""

import base64
import json
import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
import requests
from google.protobuf import json_format

from caikit_genai.toolkit.serving import cpu_limit
from caikit_genai.runtime_mends import DEPLOYED_MARKER, management_enabled
from conftest import REPO_ROOT, TINY_CHAR_ID, TINY_SENTIMENT_ID
from served_runtime import ServedRuntime
from tiny_models import TINY_CHAR_RECIPE, char_training_text

CHAR_TRAIN_RPC = "TextGenerationTaskCharTextGeneratorTrain"
CLASSIFY = "/api/v1/task/text-classification"
MANAGEMENT = "/management/models"
SETTING = "genai.model_management.enabled"


def classify(http_url: str, model_id: str) -> requests.Response:
    return requests.post(http_url + CLASSIFY, json={"model_id": model_id, "inputs": "a good film"}, timeout=60)


def model_files_json(model_dir: str) -> list:
    """A model dir as DeployModel's `model_files` (HTTP JSON: base64 data)."""
    files = []
    for directory, _, names in os.walk(model_dir):
        for name in names:
            path = os.path.join(directory, name)
            with open(path, "rb") as model_file:
                files.append({"filename": os.path.relpath(path, model_dir), "data": base64.b64encode(model_file.read()).decode()})
    return files


def snapshot(model_dir: str) -> dict:
    """Every file under `model_dir` with its bytes."""
    found = {}
    for directory, _, names in os.walk(model_dir):
        for name in names:
            with open(os.path.join(directory, name), "rb") as model_file:
                found[os.path.relpath(os.path.join(directory, name), model_dir)] = model_file.read()
    return found


def management_stub(channel):
    from caikit.runtime.service_factory import ServicePackageFactory  # pylint: disable=import-outside-toplevel

    package = ServicePackageFactory.get_service_package(ServicePackageFactory.ServiceType.MODEL_MANAGEMENT)
    return package.stub_class(channel)


def deploy_request(model_id: str, model_dir: str):
    from caikit.interfaces.runtime.data_model import DeployModelRequest  # pylint: disable=import-outside-toplevel

    proto = DeployModelRequest.get_proto_class()()
    proto.model_id = model_id
    for item in model_files_json(model_dir):
        proto.model_files.add(filename=item["filename"], data=base64.b64decode(item["data"]))
    return proto


def undeploy_request(model_id: str):
    from caikit.interfaces.runtime.data_model import UndeployModelRequest  # pylint: disable=import-outside-toplevel

    return UndeployModelRequest.get_proto_class()(model_id=model_id)


def start_char_training(http_url: str, model_name: str) -> requests.Response:
    """A tiny char RNN asked for far more steps than any test waits for."""
    parameters = {**TINY_CHAR_RECIPE, "max_steps": 1_000_000, "training_data": {"data_stream": {"data": [char_training_text()]}}}
    return requests.post(f"{http_url}/api/v1/{CHAR_TRAIN_RPC}", json={"model_name": model_name, "parameters": parameters}, timeout=120)


def training_state(http_url: str, training_id: str) -> dict:
    return requests.get(f"{http_url}/management/trainings", params={"training_id": training_id}, timeout=30).json()


@pytest.fixture(scope="module")
def repo_runtime(runtime, tmp_path_factory):
    """`python -m caikit.runtime` with runtime_config.yaml and nothing else changed but its dirs
    and ports, serving a copy of the tiny classifier as `sentiment`."""
    directory = tmp_path_factory.mktemp("repo-config")
    (directory / "training_data").mkdir()
    env = {
        "DATA_STREAMS_FILE_SOURCE_BASE": str(directory / "training_data"),
        "RUNTIME_METERING_LOG_DIR": str(directory / "metering"),
        # Whatever this shell set, the repo's config decides.
        **{name: None for name in os.environ if name.startswith("GENAI_")},
    }
    models = {"sentiment": os.path.join(runtime.models_dir, TINY_SENTIMENT_ID)}
    with ServedRuntime(models, env, workdir=directory, copy_models=True, log_level=None) as served:
        served.wait_ready(lambda http_url: classify(http_url, "sentiment").status_code == 200, timeout=180)
        yield served


@pytest.mark.slow
def test_the_repo_config_refuses_deploy_and_undeploy_and_changes_no_file(repo_runtime):
    model_dir = os.path.join(repo_runtime.models_dir, "sentiment")
    before = snapshot(model_dir)
    undeploy = requests.delete(repo_runtime.http_url + MANAGEMENT, params={"model_id": "sentiment"}, timeout=30)
    assert undeploy.status_code == 403, undeploy.text
    assert SETTING in undeploy.json()["details"]
    deploy = requests.post(
        repo_runtime.http_url + MANAGEMENT, json={"model_id": "planted", "model_files": model_files_json(model_dir)}, timeout=30
    )
    assert deploy.status_code == 403, deploy.text
    # The same over a multipart form, as caikit's route also takes it.
    multipart = requests.post(
        repo_runtime.http_url + MANAGEMENT, data={"model_id": "planted-form"},
        files=[("model_files", ("config.yml", b"module_id: x\n"))], timeout=30,
    )
    assert multipart.status_code == 403, multipart.text
    stub = management_stub(repo_runtime.channel)
    for call, request in ((stub.UndeployModel, undeploy_request("sentiment")), (stub.DeployModel, deploy_request("planted", model_dir))):
        with pytest.raises(grpc.RpcError) as refused:
            call(request, timeout=30)
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert SETTING in refused.value.details()
    from caikit.runtime.protobufs import model_runtime_pb2, model_runtime_pb2_grpc  # pylint: disable=import-outside-toplevel

    mesh = model_runtime_pb2_grpc.ModelRuntimeStub(repo_runtime.channel)
    with pytest.raises(grpc.RpcError) as refused:
        mesh.unloadModel(model_runtime_pb2.UnloadModelRequest(modelId="sentiment"), timeout=30)
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    # Nothing on disk changed, nothing was planted, and the model still answers.
    assert snapshot(model_dir) == before
    assert sorted(os.listdir(repo_runtime.models_dir)) == ["sentiment"]
    assert classify(repo_runtime.http_url, "sentiment").status_code == 200


@pytest.mark.slow
def test_the_repo_config_starts_one_training_of_eight_sent_at_once(runtime, repo_runtime):
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda index: start_char_training(repo_runtime.http_url, f"capped-{index}"), range(8)))
    codes = sorted(answer.status_code for answer in answers)
    print(f"\n8 train requests at once: {codes}")
    started = [answer.json()["training_id"] for answer in answers if answer.status_code == 200]
    refused = [answer for answer in answers if answer.status_code != 200]
    assert len(started) == 1, codes  # the cap, 1 in runtime_config.yaml
    for answer in refused:
        assert answer.status_code == 503, answer.text
        assert "genai.training.max_concurrent_trainings: 1" in answer.json()["details"], answer.text
    # gRPC says the same: RESOURCE_EXHAUSTED.
    request = json_format.Parse(
        json.dumps({"model_name": "capped-grpc", "parameters": {"training_data": {"jsondata": {"data": ["the cat"]}}}}),
        runtime.message(f"{CHAR_TRAIN_RPC}Request"),
    )
    with pytest.raises(grpc.RpcError) as refused_grpc:
        getattr(runtime.training_service.stub_class(repo_runtime.channel), CHAR_TRAIN_RPC)(request, timeout=60)
    assert refused_grpc.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, refused_grpc.value.details()
    # Status and cancel still work, and a cancelled training frees its place.
    (training_id,) = started
    assert training_state(repo_runtime.http_url, training_id)["state"] in ("QUEUED", "RUNNING")
    cancel = requests.delete(f"{repo_runtime.http_url}/management/trainings", params={"training_id": training_id}, timeout=60)
    assert cancel.status_code == 200, cancel.text
    deadline = time.monotonic() + 60
    while training_state(repo_runtime.http_url, training_id)["state"] != "CANCELED":
        assert time.monotonic() < deadline, training_state(repo_runtime.http_url, training_id)
        time.sleep(0.5)
    again = start_char_training(repo_runtime.http_url, "capped-after-cancel")
    assert again.status_code == 200, again.text
    requests.delete(f"{repo_runtime.http_url}/management/trainings", params={"training_id": again.json()["training_id"]}, timeout=60)
    assert not [name for name in os.listdir(repo_runtime.models_dir) if name.startswith("capped")]


# -- model management turned on by an operator -------------------------------------------------


def test_the_setting_reads_the_environment_spellings():
    assert management_enabled({"genai": {"model_management": {"enabled": "true"}}})
    assert not management_enabled({"genai": {"model_management": {"enabled": "false"}}})
    assert not management_enabled({"genai": {}})


def test_undeploy_keeps_the_files_it_did_not_write(management_on):
    runtime = management_on
    model_dir = os.path.join(runtime.models_dir, "kept-on-undeploy")
    shutil.copytree(os.path.join(runtime.models_dir, TINY_SENTIMENT_ID), model_dir)
    try:
        runtime.wait_for_model("kept-on-undeploy")
        assert classify(runtime.http_url, "kept-on-undeploy").status_code == 200
        before = snapshot(model_dir)
        undeploy = requests.delete(runtime.http_url + MANAGEMENT, params={"model_id": "kept-on-undeploy"}, timeout=30)
        assert undeploy.status_code == 200, undeploy.text
        assert snapshot(model_dir) == before
        # Unloaded, and neither a request nor the lazy loader (polling every 0.5 s) loads it back.
        time.sleep(2)
        answer = classify(runtime.http_url, "kept-on-undeploy")
        assert answer.status_code == 404 and "undeployed" in answer.json()["details"], answer.text
        listed = [model["name"] for model in requests.get(runtime.http_url + "/info/models", timeout=10).json()["models"]]
        assert "kept-on-undeploy" not in listed
        # An operator who replaces its files gets it served again.
        with open(os.path.join(model_dir, "config.yml"), "a", encoding="utf-8") as config:
            config.write("\n")
        deadline = time.monotonic() + 30
        while classify(runtime.http_url, "kept-on-undeploy").status_code != 200:
            assert time.monotonic() < deadline, "a changed undeployed model was not served again"
            time.sleep(0.5)
    finally:
        shutil.rmtree(model_dir, ignore_errors=True)


def test_deploy_never_replaces_a_model_and_undeploy_removes_only_what_deploy_wrote(management_on):
    runtime = management_on
    source = os.path.join(runtime.models_dir, TINY_SENTIMENT_ID)
    existing = snapshot(source)
    stub = management_stub(runtime.channel)
    with pytest.raises(grpc.RpcError) as exists:
        stub.DeployModel(deploy_request(TINY_SENTIMENT_ID, os.path.join(runtime.models_dir, TINY_CHAR_ID)), timeout=30)
    assert exists.value.code() == grpc.StatusCode.ALREADY_EXISTS
    over_http = requests.post(
        runtime.http_url + MANAGEMENT, json={"model_id": TINY_SENTIMENT_ID, "model_files": model_files_json(source)}, timeout=30
    )
    assert over_http.status_code == 409, over_http.text
    assert snapshot(source) == existing

    deployed_dir = os.path.join(runtime.models_dir, "deployed-tiny")
    try:
        deployed = requests.post(
            runtime.http_url + MANAGEMENT, json={"model_id": "deployed-tiny", "model_files": model_files_json(source)}, timeout=60
        )
        assert deployed.status_code == 200, deployed.text
        assert os.path.isfile(os.path.join(deployed_dir, DEPLOYED_MARKER))
        assert not [name for name in os.listdir(runtime.models_dir) if name.startswith(".deployed-tiny.")]
        assert classify(runtime.http_url, "deployed-tiny").json() == classify(runtime.http_url, TINY_SENTIMENT_ID).json()
        undeploy = stub.UndeployModel(undeploy_request("deployed-tiny"), timeout=30)
        assert undeploy.model_id == "deployed-tiny"
        assert not os.path.exists(deployed_dir)
        assert classify(runtime.http_url, "deployed-tiny").status_code == 404
    finally:
        shutil.rmtree(deployed_dir, ignore_errors=True)


# -- threads sized to the container --------------------------------------------------------------


def test_torch_threads_follow_the_cgroup_cpu_quota(tmp_path, monkeypatch):
    import torch  # pylint: disable=import-outside-toplevel

    assert cpu_limit.cgroup_cpu_limit(str(tmp_path)) is None  # no cgroup files: unknown
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert cpu_limit.cgroup_cpu_limit(str(tmp_path)) is None  # v2, unlimited
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert cpu_limit.cgroup_cpu_limit(str(tmp_path)) == 1.5
    v1 = tmp_path / "v1"
    (v1 / "cpu").mkdir(parents=True)
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("50000\n")
    (v1 / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert cpu_limit.cgroup_cpu_limit(str(v1)) == 0.5

    threads = torch.get_num_threads()
    (tmp_path / "cpu.max").write_text("50000 100000\n")
    try:
        monkeypatch.setenv("OMP_NUM_THREADS", "2")
        assert cpu_limit.size_torch_threads(str(tmp_path)) is None  # an explicit setting wins
        monkeypatch.delenv("OMP_NUM_THREADS")
        expected = 1 if threads > 1 else None
        assert cpu_limit.size_torch_threads(str(tmp_path)) == expected
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(threads)


def test_every_key_of_runtime_config_is_documented():
    """docs/configuration.md names every key runtime_config.yaml sets (genai.limits.* in
    docs/reliability.md's Limits table), by its full path."""
    import yaml  # pylint: disable=import-outside-toplevel

    def leaves(tree, prefix=""):
        for key, value in tree.items():
            path = f"{prefix}.{key}" if prefix else key
            if isinstance(value, dict) and value and not path.endswith(".options"):
                yield from leaves(value, path)
            else:
                yield path

    with open(os.path.join(REPO_ROOT, "runtime_config.yaml"), encoding="utf-8") as config_file:
        config = yaml.safe_load(config_file)
    pages = "".join(open(os.path.join(REPO_ROOT, "docs", page), encoding="utf-8").read() for page in ("configuration.md", "reliability.md"))
    missing = [path for path in leaves(config) if f"`{path}`" not in pages]
    assert not missing, f"docs/configuration.md does not name: {missing}"
