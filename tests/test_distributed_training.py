"""Data-parallel training on CPU: two processes with the gloo backend, launched by `torchrun`
exactly as deploy/training/pytorchjob/pytorchjob.yaml's command runs it, with the environment the Kubeflow
Training Operator would set (PET_*). The loss falls, the saved model loads and serves, only
rank 0 writes, every rank ends with the same weights, and a run killed half-way leaves no model.
"""

import json
import math
import os
import signal
import subprocess
import sys
import time

import pytest
import yaml

from caikit_genai import CharTextGenerator
from conftest import REPO_ROOT, free_port
from tiny_models import TINY_CHAR_RECIPE, char_training_text

pytestmark = pytest.mark.slow

RANKS = 2


def pytorchjob_container() -> dict:
    built = subprocess.run(
        ["kubectl", "kustomize", os.path.join(REPO_ROOT, "deploy", "training")], capture_output=True, text=True, check=True
    ).stdout
    (job,) = [doc for doc in yaml.safe_load_all(built) if doc and doc["kind"] == "PyTorchJob"]
    return job["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]["containers"][0]


def start_job(tmp_path, train_parameters: dict) -> tuple:
    """The PyTorchJob's command and args, its volumes mapped into tmp_path, one node of RANKS
    processes; returns (process, save dir, model dir, log path)."""
    container = pytorchjob_container()
    mounts = {mount["mountPath"]: tmp_path / mount["name"] for mount in container["volumeMounts"]}
    for directory in mounts.values():
        directory.mkdir(exist_ok=True)

    def mapped(argument: str) -> str:
        for mount_path, local in mounts.items():
            if argument.startswith(mount_path + "/"):
                return str(local) + argument[len(mount_path) :]
        return argument

    args = [mapped(argument) for argument in container["args"]]
    options = dict(zip(args[::2], args[1::2]))
    kwargs_file = options["--training-kwargs"]
    data_dir = os.path.dirname(kwargs_file)
    with open(os.path.join(data_dir, "text.jsonl"), "w", encoding="utf-8") as data:
        data.writelines(json.dumps(line) + "\n" for line in char_training_text().split("\n"))
    with open(kwargs_file, "w", encoding="utf-8") as parameters:
        json.dump({"training_data": {"file": {"filename": "text.jsonl"}}, **train_parameters}, parameters)
    os.makedirs(options["--save-path"], exist_ok=True)
    env = {
        **os.environ,
        "CONFIG_FILES": os.path.join(REPO_ROOT, "runtime_config.yaml"),
        "DATA_STREAMS_FILE_SOURCE_BASE": data_dir,
        "HF_HUB_OFFLINE": "1",
        # What the Training Operator sets for a one-node job with nprocPerNode = RANKS.
        "PET_NNODES": "1",
        "PET_NPROC_PER_NODE": str(RANKS),
        "PET_NODE_RANK": "0",
        "PET_MASTER_ADDR": "127.0.0.1",
        "PET_MASTER_PORT": str(free_port()),
        "OMP_NUM_THREADS": "1",
    }
    command = [os.path.join(os.path.dirname(sys.executable), container["command"][0]), *container["command"][1:]]
    log_path = tmp_path / "torchrun.log"
    with open(log_path, "w", encoding="utf-8") as log:
        process = subprocess.Popen(  # pylint: disable=consider-using-with
            command + args + ["--termination-log-file", str(tmp_path / "termination-log")],
            cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    save_dir = options["--save-path"]
    return process, save_dir, os.path.join(save_dir, options["--model-name"]), log_path


def test_two_ranks_train_one_model_that_serves(tmp_path):
    recipe = {key: value for key, value in TINY_CHAR_RECIPE.items() if key != "max_steps"}
    process, save_dir, model_dir, log_path = start_job(tmp_path, {**recipe, "max_steps": 60})
    assert process.wait(timeout=600) == 0, log_path.read_text()[-4000:]
    log = log_path.read_text()
    assert f"rank 1 of {RANKS} joined (gloo)" in log and f"rank 0 of {RANKS} joined (gloo)" in log
    assert f"parameters agree across {RANKS} ranks" in log
    assert "rank 1 leaves" in log  # rank 1 wrote no model dir; rank 0 wrote the one there is
    assert sorted(entry for entry in os.listdir(save_dir) if not entry.startswith(".")) == [os.path.basename(model_dir)]
    model = CharTextGenerator.load(model_dir)
    uniform = math.log(len(model.char_ids))
    assert model.loss_on(char_training_text()) < 0.75 * uniform  # learned, from averaged gradients
    assert model.run("the cat", max_new_tokens=20, seed=1).generated_text


def test_a_run_killed_half_way_leaves_no_model_dir(tmp_path):
    recipe = {key: value for key, value in TINY_CHAR_RECIPE.items() if key != "max_steps"}
    process, save_dir, model_dir, log_path = start_job(tmp_path, {**recipe, "max_steps": 100000, "max_seconds": 600})
    deadline = time.monotonic() + 300
    while f"rank 1 of {RANKS} joined" not in log_path.read_text():
        assert process.poll() is None, log_path.read_text()[-4000:]
        assert time.monotonic() < deadline, "training never started"
        time.sleep(0.5)
    time.sleep(3)  # well inside training
    # As a lost node or an evicted pod would: every process of the job dies at once. torchrun
    # starts its workers in sessions of their own, so they are found by walking the tree.
    tree = descendants(process.pid) + [process.pid]
    for pid in tree:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    process.wait(timeout=60)
    time.sleep(2)
    assert [pid for pid in tree if alive(pid)] == []
    assert not os.path.exists(model_dir)
    assert [entry for entry in os.listdir(save_dir) if not entry.startswith(".")] == []


def descendants(pid: int) -> list:
    """Every process below `pid` (from /proc), children first."""
    children = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", encoding="utf-8") as stat:
                    parent = int(stat.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if parent == pid:
                children.append(int(entry))
    return [grandchild for child in children for grandchild in descendants(child)] + children


def alive(pid: int) -> bool:
    """Running, not a zombie waiting for its (killed) parent's reaper."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
