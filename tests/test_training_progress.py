"""A training's progress (step, percent, ETA, losses) while it runs and after it ends, served by
the runtime at GET /api/v1/trainings/{id}/progress and read by the client and the CLI."""

import math
import os
import tempfile
import time
import uuid

import pytest
import requests

from caikit_genai_client.cli.training_commands import progress_text
from caikit_genai_client import Client
from tiny_models import TINY_CHAR_RECIPE, char_training_text

TRAIN_RPC = "TextGenerationTaskCharTextGeneratorTrain"
BUDGET_SECONDS = 4


def progress_url(runtime, training_id: str) -> str:
    return f"{runtime.http_url}/api/v1/trainings/{training_id}/progress"


def training_state(runtime, training_id: str) -> str:
    params = {"training_id": training_id}
    return requests.get(f"{runtime.http_url}/management/trainings", params=params, timeout=5).json()["state"]


@pytest.mark.slow
def test_progress_rises_while_a_budgeted_training_runs_and_its_last_stays(runtime):
    parameters = {
        **TINY_CHAR_RECIPE, "max_steps": 10_000_000, "max_seconds": BUDGET_SECONDS, "eval_every": 50, "val_fraction": 0.1,
        "training_data": {"data_stream": {"data": [char_training_text()]}},
    }
    response = requests.post(
        f"{runtime.http_url}/api/v1/{TRAIN_RPC}", json={"model_name": "char-progress", "parameters": parameters}, timeout=60
    )
    assert response.status_code == 200, response.text
    training_id = response.json()["training_id"]

    running, starting = [], []
    deadline = time.monotonic() + 120
    while training_state(runtime, training_id) not in ("COMPLETED", "ERRORED", "CANCELED"):
        assert time.monotonic() < deadline, "the training did not end"
        answer = requests.get(progress_url(runtime, training_id), timeout=5)
        assert answer.status_code == 200, answer.text  # from the moment the runtime took the job
        if not answer.json()["started"]:
            starting.append(answer.json())
        elif not answer.json()["finished"]:
            running.append(answer.json())
        time.sleep(0.3)
    assert runtime.wait_for_training(training_id)["state"] == "COMPLETED"
    assert all(entry["step"] == 0 and entry["total_steps"] is None and entry["percent"] == 0 for entry in starting), starting

    assert len(running) >= 2, running
    first, last = running[0], running[-1]
    assert last["step"] > first["step"] and last["percent"] > first["percent"], (first, last)
    assert last["total_steps"] == 10_000_000 and last["max_seconds"] == BUDGET_SECONDS
    # The budget ends this run: the percent is its elapsed share, the ETA what is left of it (0 once
    # it is spent, while the last evaluation and the save run).
    assert all(entry["eta_seconds"] is not None and 0 <= entry["eta_seconds"] <= BUDGET_SECONDS for entry in running)
    assert any(entry["eta_seconds"] > 0 for entry in running), running
    assert [entry["eta_seconds"] for entry in running] == sorted((entry["eta_seconds"] for entry in running), reverse=True)
    assert math.isfinite(last["losses"]["loss"]) and last["updated_at"]
    assert any(entry["last_evaluation"] for entry in running), "no evaluation showed while it ran"

    final = requests.get(progress_url(runtime, training_id), timeout=5).json()
    assert final["finished"] and final["percent"] == 100.0 and final["eta_seconds"] == 0.0
    assert final["step"] >= last["step"] and final["last_evaluation"]["step"] == final["step"]

    # The client reads it over HTTP, also for a status asked over gRPC; a gRPC-only client has none.
    with Client(grpc=f"127.0.0.1:{runtime.grpc_port}", http=runtime.http_url) as both:
        status = both.status(training_id)
        assert status.state == "COMPLETED" and status.progress.step == final["step"] and status.progress.finished
        assert progress_text(status.progress).startswith(f"step {final['step']}/10000000, 100%")
    with Client(grpc=f"127.0.0.1:{runtime.grpc_port}") as grpc_only:
        assert grpc_only.status(training_id).progress is None
    # The progress files live in the runtime's temp dir, never among the models.
    assert not any(name.endswith(f"{training_id}.json") for _, _, names in os.walk(runtime.models_dir) for name in names)


def test_an_unknown_or_bad_training_id_has_no_progress_and_reads_no_other_file(runtime):
    assert requests.get(progress_url(runtime, f"no-such-training-{uuid.uuid4()}"), timeout=5).status_code == 404
    with Client(http=runtime.http_url) as client:
        assert client._wires["http"].training_progress("no-such-training") is None  # pylint: disable=protected-access
    # A JSON file beside the progress dir, which a path walking out of it would read.
    planted_name = f"planted-{uuid.uuid4().hex}"
    planted = os.path.join(tempfile.gettempdir(), f"{planted_name}.json")
    with open(planted, "w", encoding="utf-8") as planted_file:
        planted_file.write('{"step": 12345}')
    try:
        for bad in ("..", ".hidden", "a" * 300, f"..%2F{planted_name}", f"%2E%2E%2F{planted_name}", "%00"):
            answer = requests.get(progress_url(runtime, bad), timeout=5)
            assert answer.status_code in (400, 404), (bad, answer.status_code, answer.text)
            assert "12345" not in answer.text
        answer = requests.get(progress_url(runtime, ".hidden"), timeout=5)
        assert answer.status_code == 400 and "training_id" in answer.json()["details"]
    finally:
        os.remove(planted)


def test_a_submitted_job_says_starting_until_its_loop_writes_and_never_over_it(tmp_path):
    from caikit_genai.toolkit.training import progress_file

    first = progress_file.progress_path(str(tmp_path), "trainer:job-1")
    progress_file.announce(first)
    assert progress_file.read_progress(str(tmp_path), "trainer:job-1")["started"] is False
    progress_file.publish_to(first)
    writer = progress_file.ProgressFile(total_steps=10, max_seconds=None)
    writer.update(1, 10.0, 0.5, {"loss": 2.0})
    assert progress_file.read_progress(str(tmp_path), "trainer:job-1")["started"] is True

    # A job that wrote before the runtime announced it keeps what it wrote.
    second = progress_file.progress_path(str(tmp_path), "trainer:job-2")
    progress_file.publish_to(second)
    progress_file.ProgressFile(total_steps=10, max_seconds=None).update(1, 10.0, 0.5, {"loss": 2.0})
    progress_file.announce(second)
    assert progress_file.read_progress(str(tmp_path), "trainer:job-2")["step"] == 1
    progress_file.publish_to(None)
    assert sorted(os.listdir(tmp_path)) == ["trainer:job-1.json", "trainer:job-2.json"]  # no temp file left
