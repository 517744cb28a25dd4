"""What a request costs through the runtime, against the floor: the same model called in-process.

    .venv/bin/python benchmarks/serving.py [--model sentiment=models/sentiment]
        [--model translation-list=models/translator-en-id] [--model attention=models/attention-minilm]
        [--requests 400]

Each workload is one served model and one kind of request (default: every default model dir that
is built): `sentiment` (one held-out Rotten Tomatoes sentence per request), `translation-list`
(the Translator's list form, LIST_SIZE held-out help sentences per request) and `attention` (the
AttentionInspector's defaults: every layer and head, float16, for one Rotten Tomatoes sentence).
Measured in one run, on the same inputs:
- the floor, in-process: sentiment, a plain transformers pipeline on the model's checkpoint (its
  bare forward pass when the head is mean-pooled, which no pipeline loads);
  translation, the module's own run_list(); attention, the module's run(); one call at a time
  (latency) and batched 32 (throughput: the pipeline's batch_size 32; run_list over 32 requests'
  sentences at once; the plain HF forward pass with output_attentions on padded batches of 32);
- the runtime (`python -m caikit.runtime` with this repo's runtime_config.yaml, started here on
  loopback ports, serving the model dirs), by real gRPC and HTTP clients in threads: 1, 8 and 32
  concurrent clients, each row a bounded number of requests;
- overload: 200 concurrent clients (past the queue and concurrency bounds): how many were
  answered, how many refused (RESOURCE_EXHAUSTED / 503) and how fast, and whether one request
  right after is answered;
- time from start to ready (`/health` and every model answering).
Prints p50/p99 latency, throughput (requests/s), errors, and the ratios the serving issue sets as targets.
"""

import argparse
import os
import statistics
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List

import grpc
import requests

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from served_runtime import REPO_ROOT, ServedRuntime  # noqa: E402  pylint: disable=wrong-import-position

# Sentences per request of the translation-list workload.
LIST_SIZE = 8
FLOOR_BATCH = 32


def percentile(values: List[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else float("nan")


def held_out_reviews(count: int) -> List[str]:
    from caikit_genai.bootstrap.sentiment import sentiment_splits  # pylint: disable=import-outside-toplevel

    _, _, test = sentiment_splits()
    return [text for text, _ in test[:count]]


def held_out_help_sentences(count: int) -> List[str]:
    from caikit_genai.toolkit.offline_data.en_id import en_id_splits  # pylint: disable=import-outside-toplevel

    return [source for source, _ in en_id_splits().help_test[:count]]


def timed(call: Callable[[Any], Any], inputs: List[Any]) -> float:
    """p50 seconds of `call` over `inputs`, one at a time (after two warm-up calls)."""
    for one in inputs[:2]:
        call(one)
    latencies = []
    for one in inputs:
        started = time.perf_counter()
        call(one)
        latencies.append(time.perf_counter() - started)
    return statistics.median(latencies)


def throughput(call: Callable[[List[Any]], Any], inputs: List[Any], batch: int) -> float:
    """Inputs per second of `call` on consecutive batches of `batch` inputs."""
    call(inputs[:batch])
    started = time.perf_counter()
    for start in range(0, len(inputs), batch):
        call(inputs[start : start + batch])
    return len(inputs) / (time.perf_counter() - started)


# -- workloads: a served model, its requests, and its in-process floor ---------------------------


@dataclass
class Workload:
    name: str
    model_dir: str
    route: str  # HTTP task route
    rpc: str  # gRPC method of the inference service
    request_message: str
    fields: Callable[[Any], Dict]  # one request's input -> the task's fields
    inputs: List[Any]  # one per request
    floor: Callable[["Workload"], Dict[str, float]]  # {"p50_ms", "batched_per_s"}: requests/s

    def http_body(self, one) -> Dict:
        fields = self.fields(one)
        first = next(iter(fields))
        return {"model_id": self.name, "inputs": fields.pop(first), "parameters": fields}


def sentiment_floor(workload: Workload) -> Dict[str, float]:
    classify = plain_classifier(os.path.join(workload.model_dir, "hf_model"))
    return {
        "p50_ms": 1000 * timed(classify, workload.inputs[:100]),
        "batched_per_s": throughput(lambda texts: classify(texts, batch_size=FLOOR_BATCH), workload.inputs, len(workload.inputs)),
    }


def plain_classifier(hf_dir: str) -> Callable:
    """The checkpoint with nothing of ours around it: a transformers pipeline; for a mean-pooled
    head (which no pipeline loads), its tokenizer and bare forward pass on padded batches."""
    # pylint: disable=import-outside-toplevel
    import torch
    from transformers import AutoConfig, AutoTokenizer, pipeline

    from caikit_genai.modules.sentiment_classifier.training import load_saved_classifier
    from caikit_genai.nets.pooled_classifier import saved_pooling

    if saved_pooling(AutoConfig.from_pretrained(hf_dir)) != "mean":
        return pipeline("text-classification", model=hf_dir, device="cpu", truncation=True)
    tokenizer, model = AutoTokenizer.from_pretrained(hf_dir), load_saved_classifier(hf_dir).eval()

    @torch.inference_mode()
    def classify(texts, batch_size: int = 1):
        texts = [texts] if isinstance(texts, str) else texts
        scores = []
        for start in range(0, len(texts), batch_size):
            batch = tokenizer(texts[start : start + batch_size], padding=True, truncation=True, return_tensors="pt")
            scores.extend(torch.softmax(model(**batch).logits, dim=-1).tolist())
        return scores

    return classify


def translation_floor(workload: Workload) -> Dict[str, float]:
    from caikit_genai import Translator  # pylint: disable=import-outside-toplevel

    translator = Translator.load(workload.model_dir)
    translator.batcher.config = type(translator.batcher.config)(enabled=False)  # the bare call, in this thread
    translate = lambda texts: translator.run_list(**workload.fields(texts))  # noqa: E731
    return {
        "p50_ms": 1000 * timed(translate, workload.inputs[:30]),
        "batched_per_s": throughput(
            lambda lists: translate([text for texts in lists for text in texts]), workload.inputs[:96], FLOOR_BATCH
        ),
    }


def attention_floor(workload: Workload) -> Dict[str, float]:
    import torch  # pylint: disable=import-outside-toplevel

    from caikit_genai import AttentionInspector  # pylint: disable=import-outside-toplevel

    inspector = AttentionInspector.load(workload.model_dir)
    inspector.batcher.config = type(inspector.batcher.config)(enabled=False)
    tokenizer, model = inspector.tokenizer, inspector.model

    @torch.inference_mode()
    def plain_forward(texts: List[str]):
        inputs = tokenizer(texts, padding=True, truncation=True, max_length=inspector.max_input_tokens, return_tensors="pt")
        return [layer.numpy() for layer in model(**inputs, output_attentions=True).attentions]

    return {
        "p50_ms": 1000 * timed(lambda text: inspector.run(**workload.fields(text)), workload.inputs[:100]),
        "batched_per_s": throughput(plain_forward, workload.inputs, FLOOR_BATCH),
    }


def workloads(models: Dict[str, str], count: int) -> List[Workload]:
    """The workloads named in `models` ({workload name: model dir})."""
    made = []
    for name, model_dir in models.items():
        if name == "sentiment":
            made.append(Workload(
                name, model_dir, "text-classification", "TextClassificationTaskPredict", "TextClassificationTaskRequest",
                lambda text: {"text": text, "truncate_input_tokens": -1}, held_out_reviews(count), sentiment_floor,
            ))
        elif name == "translation-list":
            sentences = held_out_help_sentences(count * LIST_SIZE)
            lists = [sentences[start : start + LIST_SIZE] for start in range(0, len(sentences) - LIST_SIZE + 1, LIST_SIZE)]
            made.append(Workload(
                name, model_dir, "translation-list", "TranslationListTaskPredict", "TranslationListTaskRequest",
                lambda texts: {"texts": list(texts), "truncate_input_tokens": 96}, lists, translation_floor,
            ))
        elif name == "attention":
            made.append(Workload(
                name, model_dir, "attention-inspection", "AttentionInspectionTaskPredict", "AttentionInspectionTaskRequest",
                lambda text: {"text": text, "max_tokens": 128}, held_out_reviews(count), attention_floor,
            ))
        else:
            raise ValueError(f"unknown workload {name!r}: sentiment, translation-list or attention")
    return made


# -- the runtime and its clients -------------------------------------------------------------------


class Runtime(ServedRuntime):
    """The runtime serving each workload's model dir under the workload's name."""

    def __init__(self, served: List[Workload], extra_configs: List[str] = ()):
        self.served = served
        configs = [os.path.join(REPO_ROOT, "runtime_config.yaml"), *map(os.path.abspath, extra_configs)]
        super().__init__({workload.name: workload.model_dir for workload in served}, {"CONFIG_FILES": ",".join(configs)})

    def wait_ready(self, timeout: float = 120.0) -> float:  # pylint: disable=arguments-renamed
        """Seconds from start until /health answers and every model answers a request."""

        def every_model_answers(http: str) -> bool:
            return all(
                requests.post(f"{http}/api/v1/task/{w.route}", json=w.http_body(w.inputs[0]), timeout=60).status_code == 200
                for w in self.served
            )

        return super().wait_ready(every_model_answers, timeout)


def grpc_caller(port: int, workload: Workload) -> Callable[[Any], str]:
    """A function that sends one request over gRPC; returns "OK" or the status code's name."""
    import caikit  # pylint: disable=import-outside-toplevel
    from caikit.runtime.service_factory import ServicePackageFactory  # pylint: disable=import-outside-toplevel

    caikit.configure(config_yml_path=os.path.join(REPO_ROOT, "runtime_config.yaml"))
    service = ServicePackageFactory.get_service_package(ServicePackageFactory.ServiceType.INFERENCE)
    channel = grpc.insecure_channel(
        f"127.0.0.1:{port}", options=[("grpc.max_concurrent_streams", 1000), ("grpc.max_receive_message_length", 64 << 20)]
    )
    rpc = getattr(service.stub_class(channel), workload.rpc)
    request_class = getattr(service.messages, workload.request_message)

    def call(one) -> str:
        try:
            rpc(request_class(**workload.fields(one)), metadata=[("mm-model-id", workload.name)], timeout=120)
            return "OK"
        except grpc.RpcError as error:
            return error.code().name

    return call


def http_caller(url: str, workload: Workload) -> Callable[[Any], str]:
    local = threading.local()

    def call(one) -> str:
        session = getattr(local, "session", None) or requests.Session()
        local.session = session
        response = session.post(f"{url}/api/v1/task/{workload.route}", json=workload.http_body(one), timeout=120)
        return "OK" if response.status_code == 200 else str(response.status_code)

    return call


def drive(call: Callable[[Any], str], inputs: List[Any], clients: int, count: int) -> Dict:
    """`count` requests from `clients` threads (each takes the next input); latencies of each."""
    outcomes, latencies, lock = [], [], threading.Lock()
    next_index = iter(range(count))
    start = threading.Barrier(clients)

    def client():
        start.wait()
        while True:
            with lock:
                index = next(next_index, None)
            if index is None:
                return
            began = time.perf_counter()
            try:
                outcome = call(inputs[index % len(inputs)])
            except Exception as error:  # pylint: disable=broad-except
                outcome = type(error).__name__
            took = time.perf_counter() - began
            with lock:
                outcomes.append(outcome)
                latencies.append((outcome, took))

    threads = [threading.Thread(target=client) for _ in range(clients)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - began
    answered = [took for outcome, took in latencies if outcome == "OK"]
    refused = [took for outcome, took in latencies if outcome in ("RESOURCE_EXHAUSTED", "503")]
    return {
        "clients": clients,
        "requests": count,
        "answered": len(answered),
        "refused": len(refused),
        "errors": count - len(answered) - len(refused),
        "p50_ms": 1000 * percentile(answered, 0.5),
        "p99_ms": 1000 * percentile(answered, 0.99),
        "refused_max_ms": 1000 * max(refused) if refused else float("nan"),
        "per_s": len(answered) / wall,
    }


def benchmark(runtime: Runtime, workload: Workload, floor: Dict[str, float], args) -> None:
    callers = {"grpc": grpc_caller(runtime.grpc_port, workload), "http": http_caller(runtime.http, workload)}
    count = min(args.requests, len(workload.inputs) * 4)
    rows = {}
    print(f"\n{workload.name} ({workload.model_dir}, {len(workload.inputs)} distinct requests)")
    print(f"in-process: one call p50 {floor['p50_ms']:.1f} ms; batched {FLOOR_BATCH}: {floor['batched_per_s']:.1f} requests/s")
    print(f"{'wire':5} {'clients':>7} {'answered':>8} {'refused':>7} {'errors':>6} {'p50 ms':>8} {'p99 ms':>8} {'req/s':>7}")
    for clients in args.clients:
        for wire, call in callers.items():
            drive(call, workload.inputs, clients, min(count, 2 * clients))  # warm up
            row = rows[(wire, clients)] = drive(call, workload.inputs, clients, count)
            print(
                f"{wire:5} {clients:7d} {row['answered']:8d} {row['refused']:7d} {row['errors']:6d} "
                f"{row['p50_ms']:8.1f} {row['p99_ms']:8.1f} {row['per_s']:7.1f}"
            )
    for wire, call in callers.items():
        row = drive(call, workload.inputs, args.overload_clients, max(count, args.overload_clients))
        after = call(workload.inputs[0])
        print(
            f"overload {wire}: {args.overload_clients} clients, {row['answered']} answered, {row['refused']} "
            f"refused (slowest refusal {row['refused_max_ms']:.0f} ms), {row['errors']} errors; "
            f"one request right after: {after}"
        )
    top = max(args.clients)
    one, many = rows[("grpc", min(args.clients))], rows[("grpc", top)]
    print("ratios (targets in parentheses):")
    print(f"  gRPC 1 client p50 / in-process call p50: {one['p50_ms'] / floor['p50_ms']:.2f}x (<= 1.3x)")
    print(f"  gRPC {top} clients throughput / in-process batched: {many['per_s'] / floor['batched_per_s']:.2f}x (>= 1.0x)")
    print(f"  gRPC {top} clients p99 / p50: {many['p99_ms'] / many['p50_ms']:.2f}x (<= 5x)")
    print(f"  HTTP / gRPC throughput at {top} clients: {rows[('http', top)]['per_s'] / many['per_s']:.2f}x (>= 0.8x)")


DEFAULT_MODELS = {"sentiment": "sentiment", "translation-list": "translator-en-id", "attention": "attention-minilm"}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model", action="append", metavar="WORKLOAD=DIR",
        help="a workload (sentiment, translation-list, attention) and its model dir; default: each built default model",
    )
    parser.add_argument("--requests", type=int, default=400, help="requests per row")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--overload-clients", type=int, default=200)
    parser.add_argument("--config", action="append", default=[], help="a yaml file laid over runtime_config.yaml (e.g. batching settings)")
    args = parser.parse_args(argv)
    if args.model:
        models = dict(pair.split("=", 1) for pair in args.model)
    else:
        models = {name: os.path.join(REPO_ROOT, "models", dirname) for name, dirname in DEFAULT_MODELS.items()}
        models = {name: path for name, path in models.items() if os.path.isdir(path)}
    missing = [path for path in models.values() if not os.path.isdir(path)]
    if missing or not models:
        parser.error(f"no model dir at {missing or list(DEFAULT_MODELS.values())}: build the defaults with `make models`")

    served = workloads(models, max(args.requests // 4, 64))
    print(f"{os.cpu_count()} CPU cores; workloads: {', '.join(f'{w.name} ({w.model_dir})' for w in served)}; config over the repo's: {args.config or 'none'}")
    floors = {workload.name: workload.floor(workload) for workload in served}
    runtime = Runtime(served, args.config)
    try:
        ready = runtime.wait_ready()
        print(f"runtime ready (health + every model answering) {ready:.1f} s after start (<= 15 s)")
        for workload in served:
            benchmark(runtime, workload, floors[workload.name], args)
    finally:
        runtime.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
