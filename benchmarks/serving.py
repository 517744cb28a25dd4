"""What a request costs through the runtime, against the floor: the same model called in-process.

    .venv/bin/python benchmarks/serving.py [--model-dir models/sentiment] [--requests 400]

Measured in one run on the same held-out Rotten Tomatoes sentences (mixed lengths):
- the floor: a plain transformers pipeline on the model's checkpoint, one call at a time
  (latency) and batched 32 (throughput);
- the runtime (`python -m caikit.runtime` with this repo's runtime_config.yaml, started here on
  loopback ports, the model dir served as `sentiment`), by real gRPC and HTTP clients in threads:
  1, 8 and 32 concurrent clients, each row a bounded number of requests;
- overload: 200 concurrent clients (past the queue and concurrency bounds): how many were
  answered, how many refused (RESOURCE_EXHAUSTED / 503) and how fast, and whether one request
  right after is answered;
- time from start to ready (`/health` and the model loaded).
Prints p50/p99 latency, throughput, errors, and the ratios the serving issue sets as targets.
"""

import argparse
import os
import statistics
import sys
import threading
import time
from typing import Callable, Dict, List

import grpc
import requests

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from served_runtime import REPO_ROOT, ServedRuntime  # noqa: E402  pylint: disable=wrong-import-position

MODEL_ID = "sentiment"


def held_out_sentences(count: int) -> List[str]:
    from caikit_genai.bootstrap.sentiment import sentiment_splits  # pylint: disable=import-outside-toplevel

    _, _, test = sentiment_splits()
    return [text for text, _ in test[:count]]


def percentile(values: List[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else float("nan")


def in_process_floor(model_dir: str, texts: List[str]) -> Dict[str, float]:
    from transformers import pipeline  # pylint: disable=import-outside-toplevel

    classify = pipeline("text-classification", model=os.path.join(model_dir, "hf_model"), device="cpu", truncation=True)
    classify(texts[:8])  # warm up
    latencies = []
    for text in texts[: min(len(texts), 100)]:
        started = time.perf_counter()
        classify(text)
        latencies.append(time.perf_counter() - started)
    started = time.perf_counter()
    classify(texts, batch_size=32)
    batched = len(texts) / (time.perf_counter() - started)
    return {"p50_ms": 1000 * statistics.median(latencies), "batched_per_s": batched}


def classifies(http_url: str) -> bool:
    body = {"model_id": MODEL_ID, "inputs": "ready?"}
    return requests.post(http_url + "/api/v1/task/text-classification", json=body, timeout=30).status_code == 200


def grpc_caller(port: int) -> Callable[[str], str]:
    """A function that classifies one text over gRPC; returns "OK" or the status code's name."""
    import caikit  # pylint: disable=import-outside-toplevel
    from caikit.runtime.service_factory import ServicePackageFactory  # pylint: disable=import-outside-toplevel

    caikit.configure(config_yml_path=os.path.join(REPO_ROOT, "runtime_config.yaml"))
    service = ServicePackageFactory.get_service_package(ServicePackageFactory.ServiceType.INFERENCE)
    channel = grpc.insecure_channel(f"127.0.0.1:{port}", options=[("grpc.max_concurrent_streams", 1000)])
    stub = service.stub_class(channel)
    request_class = service.messages.TextClassificationTaskRequest

    def call(text: str) -> str:
        try:
            stub.TextClassificationTaskPredict(
                request_class(text=text, truncate_input_tokens=-1), metadata=[("mm-model-id", MODEL_ID)], timeout=120
            )
            return "OK"
        except grpc.RpcError as error:
            return error.code().name

    return call


def http_caller(url: str) -> Callable[[str], str]:
    local = threading.local()

    def call(text: str) -> str:
        session = getattr(local, "session", None) or requests.Session()
        local.session = session
        body = {"model_id": MODEL_ID, "inputs": text, "parameters": {"truncate_input_tokens": -1}}
        response = session.post(url + "/api/v1/task/text-classification", json=body, timeout=120)
        return "OK" if response.status_code == 200 else str(response.status_code)

    return call


def drive(call: Callable[[str], str], texts: List[str], clients: int, count: int) -> Dict:
    """`count` requests from `clients` threads (each takes the next text); latencies of each."""
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
                outcome = call(texts[index % len(texts)])
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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", default=os.path.join(REPO_ROOT, "models", MODEL_ID))
    parser.add_argument("--requests", type=int, default=400, help="requests per row")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--overload-clients", type=int, default=200)
    args = parser.parse_args(argv)
    if not os.path.isdir(args.model_dir):
        parser.error(f"{args.model_dir} is not a model dir: build it with `make models`")

    texts = held_out_sentences(max(args.requests, 64))
    print(f"{len(texts)} held-out Rotten Tomatoes sentences, model {args.model_dir}, {os.cpu_count()} CPU cores")
    floor = in_process_floor(args.model_dir, texts)
    print(f"in-process pipeline: one call p50 {floor['p50_ms']:.1f} ms; batched 32: {floor['batched_per_s']:.0f} texts/s")

    runtime = ServedRuntime({MODEL_ID: args.model_dir})
    try:
        ready = runtime.wait_ready(classifies)
        print(f"runtime ready (health + model answering) {ready:.1f} s after start")
        callers = {"grpc": grpc_caller(runtime.grpc_port), "http": http_caller(runtime.http)}
        rows = {}
        print(f"{'wire':5} {'clients':>7} {'answered':>8} {'refused':>7} {'errors':>6} {'p50 ms':>8} {'p99 ms':>8} {'req/s':>7}")
        for clients in args.clients:
            for wire, call in callers.items():
                drive(call, texts, clients, min(args.requests, 2 * clients))  # warm up
                row = rows[(wire, clients)] = drive(call, texts, clients, args.requests)
                print(
                    f"{wire:5} {clients:7d} {row['answered']:8d} {row['refused']:7d} {row['errors']:6d} "
                    f"{row['p50_ms']:8.1f} {row['p99_ms']:8.1f} {row['per_s']:7.1f}"
                )
        for wire, call in callers.items():
            row = drive(call, texts, args.overload_clients, max(args.requests, args.overload_clients))
            after = call(texts[0])
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
        print(f"  ready after {ready:.1f} s (<= 15 s)")
    finally:
        runtime.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
