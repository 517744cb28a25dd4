"""`python -m caikit.runtime` as `make serve` starts it, in its own process, for what the
in-process runtime cannot show: an HTTP client that leaves mid-stream.

caikit 0.28.3 feeds SSE from a worker thread through a one-slot queue; when the client goes, that
thread stays blocked on the queue for good (and keeps the process from exiting). The generator
behind it is no longer pulled, so generation stops; this test checks that from outside, by the
server's CPU time, and then kills the process.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import requests

from conftest import REPO_ROOT, TINY_CHAR_ID, TINY_CHAR_MAX_NEW_TOKENS_LIMIT, free_port
from test_char_runtime import STREAM_ROUTE, sse_events


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, from /proc."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.fixture(scope="module")
def served_process(models_dir, tmp_path_factory):
    directory = tmp_path_factory.mktemp("served-process")
    shutil.copytree(os.path.join(models_dir, TINY_CHAR_ID), directory / "models" / TINY_CHAR_ID)
    http_port = free_port()
    env = {
        **os.environ,
        "CONFIG_FILES": os.path.join(REPO_ROOT, "runtime_config.yaml"),
        "RUNTIME_LOCAL_MODELS_DIR": str(directory / "models"),
        "RUNTIME_TRAINING_OUTPUT_DIR": str(directory / "models"),
        "RUNTIME_GRPC_PORT": str(free_port()),
        "RUNTIME_HTTP_PORT": str(http_port),
        "RUNTIME_METRICS_PORT": str(free_port()),
    }
    with open(directory / "runtime.log", "wb") as log_file:
        process = subprocess.Popen(  # pylint: disable=consider-using-with
            [sys.executable, "-m", "caikit.runtime"], cwd=REPO_ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{http_port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            assert process.poll() is None, (directory / "runtime.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the runtime did not serve the model in time"
            try:
                # With wait_for_initial_model_loads: false, a first request is what loads a model.
                body = {"model_id": TINY_CHAR_ID, "inputs": "the ", "parameters": {"max_new_tokens": 1}}
                if requests.post(f"{url}/api/v1/task/text-generation", json=body, timeout=30).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            time.sleep(0.5)
        yield process, url
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)


def test_http_client_leaving_mid_stream_stops_the_generation(served_process):
    process, url = served_process
    body = {
        "model_id": TINY_CHAR_ID,
        "inputs": "the cat ",
        "parameters": {"max_new_tokens": TINY_CHAR_MAX_NEW_TOKENS_LIMIT, "seed": 5},
    }
    response = requests.post(url + STREAM_ROUTE, json=body, stream=True, timeout=60)
    assert response.status_code == 200, response.text
    events = sse_events(response)
    first = [next(events) for _ in range(50)]
    assert [event for event, _ in first] == ["message"] * 50
    assert all(len(json.loads(data)["generated_text"]) == 1 for _, data in first)

    # While the client reads, generating a million characters keeps a core busy ...
    busy_from = cpu_seconds(process.pid)
    for _ in range(2000):
        next(events)
    busy = cpu_seconds(process.pid) - busy_from
    assert busy > 0.2, f"the server used only {busy:.2f} s of CPU for 2,000 characters"
    response.close()
    # ... once it has gone, the server goes idle (it would need minutes to finish otherwise).
    time.sleep(1.0)
    idle_from = cpu_seconds(process.pid)
    time.sleep(3.0)
    idle = cpu_seconds(process.pid) - idle_from
    assert idle < 0.5, f"the server still used {idle:.2f} s of CPU in the 3 s after the client left"
    assert requests.get(url + "/health", timeout=5).status_code == 200
