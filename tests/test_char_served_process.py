"""`python -m caikit.runtime` as `make serve` starts it, in its own process, for what the
in-process runtime cannot show: HTTP clients that leave mid-stream.

caikit 0.28.3 feeds SSE from a worker of the request pool (shared by gRPC and HTTP) through a
one-slot queue; when the client goes, that worker used to stay blocked on the queue for good, and
a hundred such streams starved the whole runtime. caikit_genai's runtime_mends give the worker
back; these tests check it from outside: the server goes idle, and after 500 abandoned streams
gRPC and HTTP still answer.
"""

import json
import os
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from caikit_nlp_client import GrpcClient

from conftest import TINY_CHAR_ID, TINY_CHAR_MAX_NEW_TOKENS_LIMIT
from served_runtime import ServedRuntime
from test_char_runtime import STREAM_ROUTE, sse_events

pytestmark = pytest.mark.slow


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, from /proc."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def char_model_answers(http_url: str) -> bool:
    """With wait_for_initial_model_loads: false, a first request is what loads a model."""
    body = {"model_id": TINY_CHAR_ID, "inputs": "the ", "parameters": {"max_new_tokens": 1}}
    return requests.post(f"{http_url}/api/v1/task/text-generation", json=body, timeout=30).status_code == 200


@pytest.fixture(scope="module")
def served_process(models_dir, tmp_path_factory):
    models = {TINY_CHAR_ID: os.path.join(models_dir, TINY_CHAR_ID)}
    with ServedRuntime(models, workdir=tmp_path_factory.mktemp("served-process"), copy_models=True, log_level=None) as served:
        served.wait_ready(char_model_answers, timeout=180)
        yield served


def test_http_client_leaving_mid_stream_stops_the_generation(served_process):
    url = served_process.http_url
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
    busy_from = cpu_seconds(served_process.pid)
    for _ in range(2000):
        next(events)
    busy = cpu_seconds(served_process.pid) - busy_from
    assert busy > 0.2, f"the server used only {busy:.2f} s of CPU for 2,000 characters"
    response.close()
    # ... once it has gone, the server goes idle (it would need minutes to finish otherwise).
    time.sleep(1.0)
    idle_from = cpu_seconds(served_process.pid)
    time.sleep(3.0)
    idle = cpu_seconds(served_process.pid) - idle_from
    assert idle < 0.5, f"the server still used {idle:.2f} s of CPU in the 3 s after the client left"
    assert requests.get(url + "/health", timeout=5).status_code == 200


def thread_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def abandon_a_stream(url: str) -> str:
    """Open a long stream, read its first event, hang up; '' when all went as a client expects."""
    body = {"model_id": TINY_CHAR_ID, "inputs": "the ", "parameters": {"max_new_tokens": 100_000, "seed": 1}}
    try:
        # A read timeout under sse-starlette's 15 s ping: a starved stream fails instead of idling.
        with requests.post(url + STREAM_ROUTE, json=body, stream=True, timeout=(5, 10)) as response:
            if response.status_code != 200:
                return f"HTTP {response.status_code}"
            event, _ = next(sse_events(response))
            return "" if event == "message" else f"first event {event!r}"
    except (requests.RequestException, StopIteration) as err:
        return repr(err)


def test_500_abandoned_streams_leave_grpc_and_http_serving(served_process):
    url = served_process.http_url
    with ThreadPoolExecutor(max_workers=25) as clients:
        problems = [problem for problem in clients.map(lambda _: abandon_a_stream(url), range(500)) if problem]
    # Before the fix the pool (100 workers) ran dry after ~100 streams: later ones got no event.
    assert problems == [], f"{len(problems)} of 500 streams failed, e.g. {problems[:3]}"

    time.sleep(2.0)  # the last workers notice their consumer is gone within a fraction of that
    body = {"model_id": TINY_CHAR_ID, "inputs": "the cat ", "parameters": {"max_new_tokens": 20, "seed": 3}}
    response = requests.post(url + "/api/v1/task/text-generation", json=body, timeout=10)
    assert response.status_code == 200, response.text
    client = GrpcClient("127.0.0.1", served_process.grpc_port, insecure=True)
    try:
        generated = client.generate_text(TINY_CHAR_ID, "the cat ", max_new_tokens=20, seed=3)
    finally:
        client._close()  # pylint: disable=protected-access
    assert generated == response.json()["generated_text"]
    # No stream is still being generated: the process is idle.
    idle_from = cpu_seconds(served_process.pid)
    time.sleep(2.0)
    assert cpu_seconds(served_process.pid) - idle_from < 0.5
