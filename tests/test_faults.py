"""Faults a shared cluster brings: broken model dirs, training processes killed, runtimes killed.

- A corrupt or half-written model dir (a config.yml that is no YAML, a config naming a file that
  is not there, truncated weights) fails alone: the other models serve, the log and
  `/info/models` name it with the reason, requests for it are NOT_FOUND with the reason, and
  neither requests nor the lazy loader's polls load it again until its files change or its
  back-off runs out (runtime_mends/failed_loads.py, mend 13). Load attempts are counted from caikit's own
  log line.
- A training subprocess killed mid-way with SIGKILL (what the kernel's OOM killer sends) ends its
  job ERRORED with a reason, and leaves no model dir.
- A runtime killed while it trains takes its training process with it (subprocess_training.py:
  the child watches its parent), and the runtime started again on the same models dir serves
  no half model under that name: a dir left half-saved (`.<name>.partial-*`) is never loaded.
Run with `-s` for the figures README reports.
"""

import datetime
import logging
import os
import shutil
import signal
import sys
import threading
import time
import traceback
from contextlib import contextmanager

import grpc
import pytest
import requests
import yaml

from conftest import TINY_CHAR_ID, TINY_SENTIMENT_ID
from served_runtime import ServedRuntime
from tiny_models import TINY_CHAR_RECIPE, char_training_text

CHAR_TRAIN_RPC = "TextGenerationTaskCharTextGeneratorTrain"
GENERATE_ROUTE = "/api/v1/task/text-generation"
# Poll periods (the session runtime polls its models dir every 0.5 s) to watch for new attempts.
POLLS_WATCHED = 10


def failed_attempts(log, models_dir: str, name: str) -> int:
    """caikit's own error line for each load that fails (model_loader_base.py, `load failed ...
    <path> with error`)."""
    return log.count(f"{os.path.join(models_dir, name)} with error")


# -- broken model dirs --------------------------------------------------------------------------


def weights_file(model_dir: str) -> str:
    with open(os.path.join(model_dir, "config.yml"), encoding="utf-8") as config_file:
        return os.path.join(model_dir, yaml.safe_load(config_file)["weights"])


def garbage_config(model_dir: str) -> None:
    with open(os.path.join(model_dir, "config.yml"), "wb") as config_file:
        config_file.write(b"\x89PNG\r\n\x1a\n{{ module_id: [unclosed\n\x00\xff")


def missing_artifact(model_dir: str) -> None:
    os.remove(weights_file(model_dir))


def truncated_weights(model_dir: str) -> None:
    """As a copy cut off half-way leaves it."""
    path = weights_file(model_dir)
    with open(path, "r+b") as weights:
        weights.truncate(os.path.getsize(path) // 2)


# One row per kind of broken dir: each is a copy of tiny-char, then broken.
BROKEN_DIRS = {"broken-config": garbage_config, "broken-artifact": missing_artifact, "broken-weights": truncated_weights}


class LogRecords(logging.Handler):
    """(level, text) of every record, read when it is emitted (alog's formatter empties the dict
    it puts a log code's message and args in)."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records = []

    def emit(self, record):
        if isinstance(record.msg, dict) and "message" in record.msg:
            text = str(record.msg["message"]) % tuple(record.msg.get("args") or ())
        else:
            text = record.getMessage()
        self.records.append((record.levelno, text))

    def messages(self, level=logging.DEBUG):
        return [text for levelno, text in self.records if levelno >= level]

    def count(self, text: str) -> int:
        return sum(text in message for message in self.messages())


@contextmanager
def recorded(*channels):
    """Records of these log channels (alog channels are Python loggers), at INFO and above."""
    handler = LogRecords()
    loggers = [logging.getLogger(channel) for channel in channels]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(min(logger.getEffectiveLevel(), logging.INFO))
    try:
        yield handler
    finally:
        for logger, level in zip(loggers, levels):
            logger.removeHandler(handler)
            logger.setLevel(level)


def models_info(http_url: str) -> dict:
    response = requests.get(f"{http_url}/info/models", timeout=10)
    assert response.status_code == 200, response.text
    return {info["name"]: info for info in response.json()["models"]}


def wait_for(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise TimeoutError(f"{what} within {timeout} s")


def generate_http(http_url: str, model_id: str):
    body = {"model_id": model_id, "inputs": "the cat ", "parameters": {"max_new_tokens": 5, "seed": 1}}
    return requests.post(http_url + GENERATE_ROUTE, json=body, timeout=30)


def generate_grpc(runtime, model_id: str):
    request = runtime.message("TextGenerationTaskRequest", text="the cat ", max_new_tokens=5, seed=1)
    return runtime.inference.TextGenerationTaskPredict(request, metadata=[("mm-model-id", model_id)], timeout=30)


def test_broken_model_dirs_fail_alone_named_and_not_retried(runtime, tmp_path):
    with recorded("MODEL-LOADER", "PATCHES") as log:
        # Each made beside the models dir and renamed in (the lazy loader sees it whole), with
        # the log recording from the first attempt on.
        paths = {}
        for name, breaking in BROKEN_DIRS.items():
            shutil.copytree(os.path.join(runtime.models_dir, TINY_CHAR_ID), tmp_path / name)
            breaking(str(tmp_path / name))
            paths[name] = os.path.join(runtime.models_dir, name)
            os.rename(tmp_path / name, paths[name])
        try:
            check_broken_dirs(runtime, log, paths)
        finally:
            for path in paths.values():
                shutil.rmtree(path, ignore_errors=True)
    # A removed dir is forgotten: nothing lists it any more. (A deadline, not a speed check: the
    # poller runs every 0.5 s, but on a busy 2-core CI machine one pass took over 10 s.)
    try:
        wait_for(lambda: not set(paths) & set(models_info(runtime.http_url)), 60, "the removed dirs were not dropped")
    except TimeoutError as timeout:
        raise TimeoutError(f"{timeout}; the lazy loader's poll:\n{lazy_sync_state()}") from None


def lazy_sync_state() -> str:
    """Where the session runtime's lazy-load poll is (it runs in this process): whether its next
    timer is set, and the stack of any thread inside a sync, for a deadline that ran out."""
    from caikit.runtime.model_management.model_manager import ModelManager  # pylint: disable=import-outside-toplevel

    manager = ModelManager.get_instance()
    timer = manager._lazy_sync_timer  # pylint: disable=protected-access
    frames = sys._current_frames()  # pylint: disable=protected-access
    syncing = [
        f"{thread.name}:\n{''.join(traceback.format_stack(frames[thread.ident]))}"
        for thread in threading.enumerate()
        if thread.ident in frames and "_local_models_dir_sync" in "".join(traceback.format_stack(frames[thread.ident]))
    ]
    return f"poll enabled {manager._enable_lazy_load_poll}, timer alive {timer is not None and timer.is_alive()}\n" + (
        "\n".join(syncing) or "no thread is inside a sync"
    )


def check_broken_dirs(runtime, log, paths):
    names = list(paths) + ["broken-model"]  # the session's own broken dir: a config naming a missing base model
    # The lazy loader finds them; /info/models lists each as failed, with the reason.
    listed = wait_for(
        lambda: (info := models_info(runtime.http_url))
        and all((info.get(name, {}).get("metadata") or {}).get("load_error") for name in names)
        and info,
        20, "the broken dirs were not listed as failed",
    )
    for name in names:
        assert listed[name]["loaded"] is False, listed[name]
    first_attempts = {name: failed_attempts(log, runtime.models_dir, name) for name in paths}
    assert all(1 <= count <= 3 for count in first_attempts.values()), first_attempts  # 1 + lazy_load_retries at most

    # Requests get the reason at once, over both wires; the others serve all along.
    for name in names:
        for _ in range(3):
            response = generate_http(runtime.http_url, name)
            assert response.status_code == 404, response.text
            assert name in response.json()["details"] and "failed to load" in response.json()["details"]
            with pytest.raises(grpc.RpcError) as raised:
                generate_grpc(runtime, name)
            assert raised.value.code() == grpc.StatusCode.NOT_FOUND and name in raised.value.details()
        assert generate_http(runtime.http_url, TINY_CHAR_ID).status_code == 200
        assert requests.post(
            runtime.http_url + "/api/v1/task/text-classification", json={"model_id": TINY_SENTIMENT_ID, "inputs": "good"}, timeout=30
        ).status_code == 200
    time.sleep(POLLS_WATCHED * 0.5)
    attempts = {name: failed_attempts(log, runtime.models_dir, name) for name in paths}
    print(
        f"\nbroken model dirs: load attempts when first listed {first_attempts}; after {len(names) * 6} requests "
        f"and {POLLS_WATCHED} poll periods {attempts}"
    )
    # Neither the 6 requests each nor the polls loaded them again, nor the session's broken-model
    # (3 attempts when the runtime started, 1 + lazy_load_retries; one more after each back-off).
    assert attempts == first_attempts
    session_broken = listed["broken-model"]["metadata"]
    assert session_broken["load_attempts"] >= 3
    if datetime.datetime.now(datetime.timezone.utc) < datetime.datetime.fromisoformat(session_broken["load_retry_after"]):
        assert failed_attempts(log, runtime.models_dir, "broken-model") == 0
        assert models_info(runtime.http_url)["broken-model"]["metadata"]["load_attempts"] == session_broken["load_attempts"]
    # The log names each, with what went wrong.
    errors = log.messages(logging.ERROR)
    for name in paths:
        assert any(name in message and "failed to load" in message for message in errors), name
    # The reason is the first error: the missing file's name, not caikit's later "no config.yml".
    missing = os.path.basename(weights_file(os.path.join(runtime.models_dir, TINY_CHAR_ID)))
    assert missing in listed["broken-artifact"]["metadata"]["load_error"], listed["broken-artifact"]
    assert listed["broken-artifact"]["model_path"] == paths["broken-artifact"]
    assert "decode" in listed["broken-config"]["metadata"]["load_error"], listed["broken-config"]
    for name in names:
        print(f"  {name}: {listed[name]['metadata']['load_error']}")

    # A dir that changes is loaded again: the truncated weights, written whole, serve.
    shutil.copyfile(weights_file(os.path.join(runtime.models_dir, TINY_CHAR_ID)), weights_file(paths["broken-weights"]))
    wait_for(lambda: generate_http(runtime.http_url, "broken-weights").status_code == 200, 20, "the fixed dir did not serve")
    fixed = models_info(runtime.http_url)["broken-weights"]
    assert fixed["loaded"] is True and "load_error" not in (fixed.get("metadata") or {}), fixed


def test_a_failed_load_holds_until_its_files_change_or_its_back_off_runs_out(tmp_path):
    from caikit_genai.runtime_mends import LoadFailures, dir_fingerprint, retry_delay

    model_dir = tmp_path / "broken"
    model_dir.mkdir()
    (model_dir / "config.yml").write_text("not: [yaml\n")
    failures = LoadFailures()
    first = failures.record("broken", str(model_dir), dir_fingerprint(str(model_dir)), "YAMLError")
    assert first.attempts == 1 and first.holds()
    assert not first.holds(now=first.retry_at + 0.1)  # the back-off ran out: try again
    second = failures.record("broken", str(model_dir), dir_fingerprint(str(model_dir)), "YAMLError")
    assert second.attempts == 2 and second.retry_at - first.retry_at >= retry_delay(2) - retry_delay(1) - 1
    assert [retry_delay(attempts) for attempts in (1, 2, 3, 7, 30)] == [60, 120, 240, 3600, 3600]
    (model_dir / "config.yml").write_text("module_id: fixed\n")
    assert not second.holds()  # its files changed: try again at once
    assert failures.record("broken", str(model_dir), dir_fingerprint(str(model_dir)), "x").attempts == 1
    # A load that began after its dir was removed (rmtree racing a retry) never holds: the next
    # sync forgets it, and /info/models stops listing the model.
    removed = tmp_path / "removed"
    assert not failures.record("removed", str(removed), dir_fingerprint(str(removed)), "FileNotFoundError").holds()


# -- training processes killed ----------------------------------------------------------------


def children(pid: int) -> set:
    """Pids whose parent is `pid` (from /proc: every process's stat names its parent)."""
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as stat:
                if int(stat.read().rsplit(")", 1)[1].split()[1]) == pid:
                    found.add(int(entry))
        except (OSError, IndexError, ValueError):
            continue
    return found


def cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as command:
            return command.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def training_processes(runtime_pid: int) -> set:
    """The runtime's training processes: forks of its forkserver (runtime_config.yaml's start
    method; the forkserver is the runtime's child), or spawned children (spawn_main) under `spawn`."""
    kids = children(runtime_pid)
    forkservers = {pid for pid in kids if "multiprocessing.forkserver" in cmdline(pid)}
    spawned = {pid for pid in kids if "spawn_main" in cmdline(pid)}
    return spawned | {pid for server in forkservers for pid in children(server)}


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def has_loaded_torch(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/maps", encoding="ascii", errors="replace") as maps:
            return "libtorch_cpu" in maps.read()
    except OSError:
        return False


def start_char_training(http_url: str, model_name: str, **recipe) -> str:
    body = {
        "model_name": model_name,
        "parameters": {"training_data": {"data_stream": {"data": [char_training_text()]}}, **{**TINY_CHAR_RECIPE, **recipe}},
    }
    response = requests.post(f"{http_url}/api/v1/{CHAR_TRAIN_RPC}", json=body, timeout=60)
    assert response.status_code == 200, response.text
    return response.json()["training_id"]


def training_status(http_url: str, training_id: str) -> dict:
    return requests.get(f"{http_url}/management/trainings", params={"training_id": training_id}, timeout=10).json()


def training_started(runtime_pid: int, known: set, timeout: float = 120.0) -> int:
    """The new training process, once it is training: torch loaded and 2 CPU-seconds run since."""
    pid = wait_for(lambda: next(iter(training_processes(runtime_pid) - known), None), timeout, "no training process started")
    wait_for(lambda: has_loaded_torch(pid), timeout, "the training process never loaded torch")
    busy_from = cpu_seconds(pid)
    wait_for(lambda: cpu_seconds(pid) - busy_from >= 2.0, timeout, "the training process did not run")
    return pid


def leftovers(models_dir: str, model_name: str) -> list:
    """Anything a training of `model_name` could have left: its dir, or a half-saved one."""
    return sorted(entry for entry in os.listdir(models_dir) if entry == model_name or entry.startswith(f".{model_name}."))


@pytest.mark.slow
def test_a_training_process_killed_mid_way_errors_with_a_reason_and_no_model(runtime):
    name = "char-killed-mid-training"
    known = training_processes(os.getpid())
    training_id = start_char_training(runtime.http_url, name, max_steps=1_000_000)
    pid = training_started(os.getpid(), known)
    assert training_status(runtime.http_url, training_id)["state"] == "RUNNING"
    os.kill(pid, signal.SIGKILL)  # what the kernel's OOM killer sends

    status = runtime.wait_for_training(training_id, timeout=60)
    print(f"\nkilled training: state {status['state']}, reasons {status.get('reasons')}")
    assert status["state"] == "ERRORED", status
    assert any("died" in reason for reason in status["reasons"]), status
    # No model, whole or half, and nothing serves the name after a few polls.
    time.sleep(POLLS_WATCHED * 0.5)
    assert leftovers(runtime.models_dir, name) == []
    assert name not in models_info(runtime.http_url)
    assert generate_http(runtime.http_url, name).status_code == 404


# -- a runtime killed while it trains ----------------------------------------------------------


@contextmanager
def runtime_process(directory, models_dir: str, log_name: str):
    """`python -m caikit.runtime` as `make serve` starts it, on free loopback ports, polling its
    models dir every 0.5 s; killed (SIGKILL) on the way out if still running."""
    env = {
        "RUNTIME_LAZY_LOAD_POLL_PERIOD_SECONDS": "0.5",
        "RUNTIME_METERING_LOG_DIR": str(directory / "metering"),
        "DATA_STREAMS_FILE_SOURCE_BASE": str(directory),
    }
    with ServedRuntime(env=env, workdir=directory, models_dir=models_dir, log_level=None, log_name=log_name) as served:
        served.wait_ready(lambda http_url: generate_http(http_url, TINY_CHAR_ID).status_code == 200, timeout=180)
        yield served


@pytest.mark.slow
def test_a_runtime_killed_while_it_trains_leaves_no_half_model(runtime, tmp_path):
    name = "char-restarted"
    models_dir = str(tmp_path / "models")
    os.makedirs(models_dir)
    shutil.copytree(os.path.join(runtime.models_dir, TINY_CHAR_ID), os.path.join(models_dir, TINY_CHAR_ID))

    with runtime_process(tmp_path, models_dir, "first.log") as first:
        start_char_training(first.http_url, name, max_steps=1_000_000)
        trainer = training_started(first.pid, set())
        first.process.send_signal(signal.SIGKILL)  # the runtime alone, as `kill -9 <pid>` does
        first.process.wait(timeout=30)
    # Its training process goes with it, before it can write a model.
    wait_for(lambda: not alive(trainer), 20, "the training process outlived its runtime")
    assert leftovers(models_dir, name) == []
    # The worst a kill mid-save leaves: every file written, the rename not done.
    half_saved = f".{name}.partial-killed"
    shutil.copytree(os.path.join(models_dir, TINY_CHAR_ID), os.path.join(models_dir, half_saved))

    with runtime_process(tmp_path, models_dir, "second.log") as second:
        time.sleep(POLLS_WATCHED * 0.5)
        served = models_info(second.http_url)
        assert TINY_CHAR_ID in served and name not in served, served
        assert not [model for model in served if model.startswith(".")], served
        assert generate_http(second.http_url, name).status_code == 404
        assert generate_http(second.http_url, half_saved).status_code == 400  # not a model name
        assert f"Loading model '{half_saved}'" not in second.log_text()
        # (The next save of that name removes the half-saved dir: tests/test_toolkit.py.)
    print(f"\nruntime killed mid-training: its training process (pid {trainer}) ended with it; after the restart "
          f"{name} was not served and {half_saved} not loaded over {POLLS_WATCHED} poll periods")
