"""The dynamic batcher (toolkit/serving/batching.py): alone, then behind the real runtime.

Each request gets its own answer, identical to an unbatched call; requests that arrive together
share a forward pass; a bad item fails alone; a cancelled request leaves the queue; past the
queue bound a request is refused at once (RESOURCE_EXHAUSTED / 503), and the runtime serves
normally right after. No wall-clock time is asserted: only what ran in which batch.
"""

import base64
import ctypes
import json
import shutil
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Tuple

import grpc
import numpy as np
import pytest
import requests

from caikit_genai.toolkit.serving.batching import BatchingConfig, DynamicBatcher
from conftest import TINY_ATTENTION_ID, TINY_ATTENTION_SEQ2SEQ_ID, TINY_DCGAN_ID, TINY_SENTIMENT_ID, TINY_TRANSLATOR_ID
from hammer import failures, hammer
from test_concurrency import SENTIMENT_TEXTS, TRANSLATOR_TEXTS, close_scores, label_scores


class Recorder:
    """A batch function that doubles numbers, records each batch, and can be held or made to fail."""

    def __init__(self):
        self.batches, self.release = [], threading.Event()
        self.release.set()
        self.running = threading.Event()

    def __call__(self, items):
        self.running.set()
        self.release.wait(30)
        self.batches.append(list(items))
        if any(item == "bad" for item in items):
            raise ValueError("bad item")
        return [item * 2 for item in items]


def test_requests_that_arrive_together_share_a_batch_and_get_their_own_answers():
    record = Recorder()
    batcher = DynamicBatcher(record, "doubler", BatchingConfig(max_batch_size=8, max_delay_ms=200))
    answers = hammer(batcher.submit, requests=32, threads=32)
    assert answers == [index * 2 for index in range(32)]
    assert sorted(item for batch in record.batches for item in batch) == list(range(32))
    assert max(len(batch) for batch in record.batches) > 1
    assert max(len(batch) for batch in record.batches) <= 8


def test_a_lone_request_does_not_wait_for_company():
    """With nothing else waiting and no load before it, a request runs at once: a minute's
    max_delay_ms would otherwise hold it past the join below."""
    record = Recorder()
    batcher = DynamicBatcher(record, "lone", BatchingConfig(max_delay_ms=60_000))
    answers = []
    for item in (1, 2, 3):
        caller = threading.Thread(target=lambda item=item: answers.append(batcher.submit(item)))
        caller.start()
        caller.join(20)
        assert not caller.is_alive(), "a lone request waited for the batching delay"
    assert answers == [2, 4, 6] and record.batches == [[1], [2], [3]]


def test_batches_are_length_sorted_and_kept_within_the_token_budget():
    record = Recorder()
    record.release.clear()
    config = BatchingConfig(max_batch_size=16, max_delay_ms=0, token_budget=10)
    batcher = DynamicBatcher(lambda items: record([len(item) for item in items]) and items, "texts", config, cost=len)
    first = threading.Thread(target=batcher.submit, args=("x",))
    first.start()
    assert record.running.wait(10)  # the worker holds a batch of one: the rest queue up
    words = ["aaaa", "a", "aaa", "aa", "aaaaaa", "aaaaa"]
    threads = [threading.Thread(target=batcher.submit, args=(word,)) for word in words]
    for thread in threads:
        thread.start()
    while len(batcher._pending) < len(words):  # pylint: disable=protected-access
        time.sleep(0.01)
    record.release.set()
    for thread in threads + [first]:
        thread.join(10)
    later = record.batches[1:]
    assert all(batch == sorted(batch) for batch in later)
    assert all(sum(batch) <= 10 or len(batch) == 1 for batch in later)
    assert sorted(length for batch in later for length in batch) == [1, 2, 3, 4, 5, 6]


def test_a_bad_item_fails_alone():
    record = Recorder()
    batcher = DynamicBatcher(record, "doubler", BatchingConfig(max_batch_size=8, max_delay_ms=200))
    items = [1, 2, "bad", 3]
    results = hammer(lambda index: batcher.submit(items[index % 4]), requests=8, threads=8)
    for index, result in enumerate(results):
        if items[index % 4] == "bad":
            assert isinstance(result, ValueError)
        else:
            assert result == items[index % 4] * 2


def test_a_full_queue_refuses_at_once_and_a_cancelled_request_leaves_it():
    record = Recorder()
    record.release.clear()
    batcher = DynamicBatcher(record, "doubler", BatchingConfig(max_batch_size=1, max_delay_ms=0, max_queue=2))
    outcomes = {}

    def submit(name, item):
        try:
            outcomes[name] = batcher.submit(item)
        except BaseException as error:  # pylint: disable=broad-except
            outcomes[name] = error

    running = threading.Thread(target=submit, args=("running", 1))
    running.start()
    assert record.running.wait(10)
    waiting = [threading.Thread(target=submit, args=(f"queued{item}", item)) for item in (2, 3)]
    for thread in waiting:
        thread.start()
    while len(batcher._pending) < 2:  # pylint: disable=protected-access
        time.sleep(0.01)
    with pytest.raises(Exception, match="queue bound") as refused:
        batcher.submit(4)
    assert refused.value.status_code == grpc.StatusCode.RESOURCE_EXHAUSTED
    # Cancel the request for 2 as caikit does when its gRPC client goes: an exception raised
    # asynchronously in the waiting thread.
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(waiting[0].ident), ctypes.py_object(KeyboardInterrupt))
    waiting[0].join(10)
    assert isinstance(outcomes["queued2"], KeyboardInterrupt)
    record.release.set()
    for thread in [running, waiting[1]]:
        thread.join(10)
    assert outcomes["running"] == 2 and outcomes["queued3"] == 6
    assert [1] in record.batches and [3] in record.batches and [2] not in record.batches


def test_off_runs_each_request_alone():
    record = Recorder()
    batcher = DynamicBatcher(record, "doubler", BatchingConfig(enabled=False, max_delay_ms=200))
    assert hammer(batcher.submit, requests=16, threads=16) == [index * 2 for index in range(16)]
    assert all(len(batch) == 1 for batch in record.batches)


def test_unknown_batching_keys_are_refused():
    import caikit  # pylint: disable=import-outside-toplevel

    original = json.loads(json.dumps(caikit.get_config().get("genai") or {}))
    try:
        caikit.configure(config_dict={"genai": {"batching": {"models": {"m": {"max_batch": 4}}}}})
        with pytest.raises(ValueError, match="unknown keys"):
            BatchingConfig.for_model("m")
    finally:
        caikit.configure(config_dict={"genai": original})


# -- behind the runtime ----------------------------------------------------------------------

TIGHT_ID = "tiny-sentiment-tight-queue"


def classify(runtime, model_id, text):
    body = {"model_id": model_id, "inputs": text, "parameters": {"truncate_input_tokens": -1}}
    return requests.post(runtime.http_url + "/api/v1/task/text-classification", json=body, timeout=60)


def metric_value(runtime, line_start: str) -> float:
    text = requests.get(f"http://127.0.0.1:{runtime.metrics_port}/metrics", timeout=10).text
    values = [float(line.split()[-1]) for line in text.splitlines() if line.startswith(line_start)]
    assert values, f"no metric {line_start!r} on the metrics port"
    return sum(values)


@dataclass
class BatchedModel:
    """A served model whose requests the batcher joins: its HTTP route, the i-th request, and
    the part of the answer that must equal a lone call's."""

    model_id: str
    route: str
    request: Callable[[int], Tuple[Any, Dict]]
    answer: Callable[[Dict], Any]
    same: Callable[[Any, Any], bool] = lambda one, other: one == other


def attention_arrays(body: Dict) -> List[Tuple[str, np.ndarray]]:
    return [
        (group["kind"], np.frombuffer(base64.b64decode(group["weights"]), group["dtype"]).reshape(group["shape"]))
        for group in body["attentions"]
    ]


def close_arrays(one, other) -> bool:
    return [kind for kind, _ in one] == [kind for kind, _ in other] and all(
        a.shape == b.shape and np.allclose(a, b, atol=1e-5) for (_, a), (_, b) in zip(one, other)
    )


ATTENTION_TEXTS = ["the cat", "the dog sat on the mat", "a hen", "the bird and the cat and the dog ran"]
# One row per batching module (a new one adds a row): 96 requests from 32 threads, six distinct.
BATCHED_MODELS = {
    "sentiment": BatchedModel(
        TINY_SENTIMENT_ID, "text-classification",
        lambda index: (SENTIMENT_TEXTS[index % 6], {"truncate_input_tokens": -1}),
        lambda body: label_scores(body["results"]), close_scores,
    ),
    "translation": BatchedModel(
        TINY_TRANSLATOR_ID, "translation",
        lambda index: (TRANSLATOR_TEXTS[index % 4], [{}, {"num_beams": 2}, {}][index % 3 // 2]),
        lambda body: (body["translation_text"], body["generated_tokens"], body["input_token_count"]),
    ),
    "attention": BatchedModel(
        TINY_ATTENTION_ID, "attention-inspection",
        lambda index: (ATTENTION_TEXTS[index % 4], {"precision": "float32"}),
        lambda body: attention_arrays(body) + [("tokens", [token["text"] for token in body["tokens"]])],
        lambda one, other: close_arrays(one[:-1], other[:-1]) and one[-1] == other[-1],
    ),
    "attention-seq2seq": BatchedModel(
        TINY_ATTENTION_SEQ2SEQ_ID, "attention-inspection",
        lambda index: (ATTENTION_TEXTS[index % 4], {"precision": "float32", "target_text": ATTENTION_TEXTS[(index + 1) % 3]}),
        attention_arrays, close_arrays,
    ),
    "image-generation": BatchedModel(
        TINY_DCGAN_ID, "image-generation",
        lambda index: (1 + index % 3, {"seed": index % 4, "label": ["ring", "square", "stripe"][index % 3]}),
        lambda body: [image["image_data"] for image in body["images"]],
    ),
}


def ask(runtime, model: BatchedModel, index: int) -> Dict:
    inputs, parameters = model.request(index)
    body = {"model_id": model.model_id, "inputs": inputs, "parameters": parameters}
    response = requests.post(f"{runtime.http_url}/api/v1/task/{model.route}", json=body, timeout=60)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.mark.parametrize("name", sorted(BATCHED_MODELS))
def test_served_requests_are_batched_timed_and_answered_as_alone(runtime, name):
    model = BATCHED_MODELS[name]
    distinct = 12
    alone = [model.answer(ask(runtime, model, index)) for index in range(distinct)]
    batches_before = metric_value(runtime, f'caikit_genai_batch_size_count{{model="{model.model_id}"}}')
    results = hammer(lambda index: ask(runtime, model, index), 96, 32)
    assert failures(results) == []
    mismatched = [index for index, result in enumerate(results) if not model.same(model.answer(result), alone[index % distinct])]
    assert mismatched == [], f"{len(mismatched)} answers differ from a lone call's, e.g. request {mismatched[:3]}"
    batches = metric_value(runtime, f'caikit_genai_batch_size_count{{model="{model.model_id}"}}') - batches_before
    assert 0 < batches < 96  # some requests shared a forward pass
    assert metric_value(runtime, f'caikit_genai_request_seconds_count{{model="{model.model_id}"') >= 96 + distinct
    assert metric_value(runtime, f'caikit_genai_request_seconds_bucket{{le="+Inf",model="{model.model_id}"') >= 96 + distinct


def test_past_the_queue_bound_requests_are_refused_quickly_then_served(runtime):
    import caikit  # pylint: disable=import-outside-toplevel

    batching = json.loads(json.dumps(caikit.get_config().get("genai", {}).get("batching") or {}))
    models = {**(batching.get("models") or {}), TIGHT_ID: {"max_queue": 2, "max_delay_ms": 300, "max_batch_size": 2}}
    caikit.configure(config_dict={"genai": {"batching": {**batching, "models": models}}})
    shutil.copytree(f"{runtime.models_dir}/{TINY_SENTIMENT_ID}", f"{runtime.models_dir}/{TIGHT_ID}")
    runtime.wait_for_model(TIGHT_ID)
    assert classify(runtime, TIGHT_ID, "good").status_code == 200

    http = hammer(lambda index: classify(runtime, TIGHT_ID, SENTIMENT_TEXTS[index % 6]), 48, 48)
    assert failures(http) == []
    codes = sorted({result.status_code for result in http})
    assert codes == [200, 503], codes
    refused = next(result for result in http if result.status_code == 503)
    assert "queue bound" in refused.json()["details"]

    def grpc_call(index):
        request = runtime.message(
            "TextClassificationTaskRequest", text=SENTIMENT_TEXTS[index % 6], truncate_input_tokens=-1
        )
        try:
            runtime.inference.TextClassificationTaskPredict(request, metadata=[("mm-model-id", TIGHT_ID)], timeout=60)
            return "OK"
        except grpc.RpcError as error:
            return error.code().name

    assert sorted(set(hammer(grpc_call, 48, 48))) == ["OK", "RESOURCE_EXHAUSTED"]
    # Right after, one at a time, everything is answered.
    assert all(classify(runtime, TIGHT_ID, text).status_code == 200 for text in SENTIMENT_TEXTS)


def test_the_documented_batching_example_is_a_valid_config():
    import caikit  # pylint: disable=import-outside-toplevel
    import re  # pylint: disable=import-outside-toplevel
    import yaml  # pylint: disable=import-outside-toplevel

    from conftest import REPO_ROOT  # pylint: disable=import-outside-toplevel

    with open(f"{REPO_ROOT}/docs/performance.md", encoding="utf-8") as page:
        blocks = [yaml.safe_load(code) for code in re.findall(r"```yaml\n(.*?)```", page.read(), re.S)]
    (example,) = [block for block in blocks if "batching" in (block or {}).get("genai", {})]
    original = json.loads(json.dumps(caikit.get_config().get("genai") or {}))
    try:
        caikit.configure(config_dict=example)
        config = BatchingConfig.for_model("sentiment")
        assert (config.max_batch_size, config.max_delay_ms) == (64, 10)
    finally:
        caikit.configure(config_dict={"genai": original})
