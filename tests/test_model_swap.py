"""Live model swap (runtime_mends/model_swap.py, mend 17) through `python -m caikit.runtime` in its
own process, under concurrent gRPC and HTTP requests that never stop:

- a served model's dir replaced by another model's (written into a hidden dir and renamed into
  place, as our saves do) is swapped in: the new model answers after a poll period and its load,
  a stream that started on the old model finishes on it, and no request fails;
- a replaced dir that fails to load leaves the old model answering, `/info/models` gives the
  reason on that model, and it is not tried again while its files stay as they are;
- a good dir after it swaps in, and the reason goes.
Run with `-s` for the figures docs/reliability.md reports.
"""

import json
import os
import shutil
import threading
import time

import pytest
import requests
import yaml
from caikit_nlp_client import GrpcClient

from caikit_genai.toolkit.models.model_dir import atomic_model_dir
from hammer import failures, hammer
from served_runtime import ServedRuntime
from test_char_runtime import STREAM_ROUTE
from test_faults import missing_artifact, models_info, wait_for
from tiny_models import TINY_CHAR_RECIPE, char_training_text

pytestmark = pytest.mark.slow

POLL_SECONDS = 0.5
# The swapped model, and the two models it swaps between served as they are (their answers are the references).
LIVE, FIRST, SECOND = "live", "first", "second"
PROMPTS = ("the cat ", "a dog ", "then the hen ")
PARAMETERS = {"max_new_tokens": 16, "seed": 7}
STREAM_PARAMETERS = {"max_new_tokens": 20_000, "seed": 7}  # longer than a swap takes
GENERATE_ROUTE = "/api/v1/task/text-generation"
# More requests than the test sends: the load stops when the test says so, never by running out.
MAX_REQUESTS = 100_000
SWAP_TIMEOUT = 60.0


@pytest.fixture(scope="module")
def char_dirs(tmp_path_factory):
    """Two tiny char generators trained from different seeds (they answer the same request
    differently), and a copy of the first whose weights file is gone."""
    from caikit_genai import CharTextGenerator  # pylint: disable=import-outside-toplevel

    base = tmp_path_factory.mktemp("swap-models")
    dirs = {}
    for name, seed in ((FIRST, 3), (SECOND, 11)):
        dirs[name] = str(base / name)
        recipe = {**TINY_CHAR_RECIPE, "max_steps": 16, "seed": seed}  # any two seeds answer differently
        CharTextGenerator.train([char_training_text()], max_new_tokens_limit=100_000, **recipe).save(dirs[name])
    dirs["broken"] = str(base / "broken")
    shutil.copytree(dirs[FIRST], dirs["broken"])
    missing_artifact(dirs["broken"])
    return dirs


def generate(http_url: str, model_id: str, prompt: str, parameters=None) -> str:
    body = {"model_id": model_id, "inputs": prompt, "parameters": parameters or PARAMETERS}
    response = requests.post(http_url + GENERATE_ROUTE, json=body, timeout=60)
    if response.status_code != 200:
        raise RuntimeError(f"HTTP {response.status_code}: {response.text[:300]}")
    return response.json()["generated_text"]


def answers(served, model_id: str) -> dict:
    return {prompt: generate(served.http_url, model_id, prompt) for prompt in PROMPTS}


@pytest.fixture(scope="module")
def served(char_dirs, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("model-swap")
    (workdir / "poll.yaml").write_text(yaml.safe_dump({"runtime": {"lazy_load_poll_period_seconds": POLL_SECONDS}}))
    models = {LIVE: char_dirs[FIRST], FIRST: char_dirs[FIRST], SECOND: char_dirs[SECOND]}
    with ServedRuntime(models, workdir=workdir, copy_models=True, config_files=[workdir / "poll.yaml"]) as runtime:
        runtime.wait_ready(lambda url: all(generate(url, model_id, PROMPTS[0]) for model_id in models), timeout=180)
        yield runtime


def replace_dir(served, model_id: str, source: str) -> float:
    """As a save replaces a model: the files written into a hidden dir, renamed into place
    (toolkit/models/model_dir.py). Returns when it was renamed."""
    with atomic_model_dir(os.path.join(served.models_dir, model_id)) as partial:
        shutil.copytree(source, partial, dirs_exist_ok=True)
    return time.monotonic()


class Load:
    """Clients asking the live model all along, half over gRPC and half over HTTP (tests/hammer.py
    in a thread of its own, until the test stops it)."""

    def __init__(self, served, threads: int = 6):
        self.http_url, self.stopped = served.http_url, threading.Event()
        self.grpc = GrpcClient("127.0.0.1", served.grpc_port, insecure=True)
        self.results = []
        self.thread = threading.Thread(target=self._run, args=(threads,), daemon=True)

    def call(self, index: int):
        if self.stopped.is_set():
            return None
        prompt = PROMPTS[index % len(PROMPTS)]
        if index % 2:
            return prompt, self.grpc.generate_text(LIVE, prompt, **PARAMETERS)
        return prompt, generate(self.http_url, LIVE, prompt)

    def _run(self, threads: int) -> None:
        self.results = hammer(self.call, requests=MAX_REQUESTS, threads=threads)

    def __enter__(self) -> "Load":
        self.thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stopped.set()
        self.thread.join(120)
        self.grpc._close()  # pylint: disable=protected-access


def swap_error(served, model_id: str) -> str:
    info = models_info(served.http_url)[model_id]
    assert info["loaded"] is True, info
    return (info.get("metadata") or {}).get("swap_error", "")


def stream_text(first_line: str, lines) -> str:
    """The text of an SSE stream of text-generation results (one `data:` line each)."""
    datas = [line[len("data:"):] for line in [first_line, *lines] if line.startswith("data:")]
    return "".join(json.loads(data)["generated_text"] for data in datas)


def test_replaced_dirs_swap_in_live_under_load(served, char_dirs):
    first, second = answers(served, FIRST), answers(served, SECOND)
    assert all(first[prompt] != second[prompt] for prompt in PROMPTS), "the two tiny models answer alike"
    assert answers(served, LIVE) == first
    first_stream = generate(served.http_url, FIRST, PROMPTS[0], STREAM_PARAMETERS)

    with Load(served) as load:
        # A stream that runs on the first model all along: the client reads its first message now
        # and the rest after the swaps, so the server holds it meanwhile.
        body = {"model_id": LIVE, "inputs": PROMPTS[0], "parameters": STREAM_PARAMETERS}
        stream = requests.post(served.http_url + STREAM_ROUTE, json=body, stream=True, timeout=120)
        lines = stream.iter_lines(chunk_size=1 << 16, decode_unicode=True)
        started = next(line for line in lines if line.startswith("data:"))

        renamed = replace_dir(served, LIVE, char_dirs[SECOND])
        wait_for(lambda: answers(served, LIVE) == second, SWAP_TIMEOUT, "the second model answers")
        swapped_after = time.monotonic() - renamed

        # A new dir that fails to load: the second model keeps answering, and says why.
        replace_dir(served, LIVE, char_dirs["broken"])
        error = wait_for(lambda: swap_error(served, LIVE), SWAP_TIMEOUT, "/info/models gives the swap error")
        assert "FileNotFoundError" in error and "char_rnn.pt" in error, error
        assert answers(served, LIVE) == second
        time.sleep(4 * POLL_SECONDS)  # polls that find the same broken files do not load them again
        assert served.log_text().count(f"model {LIVE}: its new dir failed to load") == 1, served.log_tail()
        assert swap_error(served, LIVE) == error and answers(served, LIVE) == second

        # A good dir again swaps in, and the error goes.
        replace_dir(served, LIVE, char_dirs[FIRST])
        wait_for(lambda: answers(served, LIVE) == first, SWAP_TIMEOUT, "the first model answers again")
        assert swap_error(served, LIVE) == ""

    assert stream_text(started, lines) == first_stream, "the stream that ran across the swaps changed models"
    assert failures(load.results) == []
    assert load.results[-1] is None, "the load ran out of requests before the test ended"
    answered = [result for result in load.results if result is not None]
    assert all(text in (first[prompt], second[prompt]) for prompt, text in answered)
    assert {text for _, text in answered} >= set(first.values()) | set(second.values())
    print(f"\nswapped {swapped_after:.2f} s after the rename (poll {POLL_SECONDS} s); {len(answered)} requests from "
          "6 clients and one stream across three swaps, none failed")
