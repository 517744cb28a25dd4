"""Overload: many mixed requests across every module, then more clients than the runtime admits.

    .venv/bin/python benchmarks/overload.py [--models-dir DIR] [--requests 10000] [--concurrency 32]
                                            [--overload-clients 200] [--overload-requests 1000]

Starts `python -m caikit.runtime` (this repo's runtime_config.yaml, loopback ports) serving one
model per module found in --models-dir (the smallest dir of each module; TGIS models, which need
a TGIS server, are left out), or, without --models-dir, the tests' tiny models built into a temp
dir (tests/tiny_models.py, about a minute). Then:
1. --requests requests from --concurrency clients, cycling through REQUESTS: every module, unary,
   streaming and list forms, each over gRPC and HTTP (SSE for streams). Every one must be
   answered: errors are counted and expected to be 0. The runtime's resident memory (VmRSS) is
   read after a warm-up round, sampled during the run, and read after it.
2. --overload-clients clients at once (past the runtime's 128 concurrent RPCs / HTTP requests),
   --overload-requests in all: each must be answered or refused at once (gRPC
   RESOURCE_EXHAUSTED, HTTP 503); a client timeout (REQUEST_TIMEOUT s) counts as a hang.
3. One request of every kind right after: all must be answered.
Exits 1 if any request of step 1 was not answered, any of step 2 failed or hung, or the runtime
did not answer after; --max-seconds bounds each phase (requests not yet sent when it passes are
counted as not sent, and fail the run).
"""

import argparse
import collections
import os
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List

import grpc
import requests
import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from served_runtime import REPO_ROOT, ServedRuntime  # noqa: E402  pylint: disable=wrong-import-position
from serving import drive  # noqa: E402  pylint: disable=wrong-import-position

REQUEST_TIMEOUT = 60.0
PROMPT = "the cat sat on the mat."
REFUSALS = ("RESOURCE_EXHAUSTED", "503")
HANGS = ("DEADLINE_EXCEEDED", "TIMEOUT")
NOT_SENT = "NOT_SENT"
# RSS growth within this share of the RSS before counts as flat.
FLAT_SHARE = 0.05


@dataclass
class Request:
    """One request kind of a module: the gRPC RPC and message, the HTTP route, the same inputs."""

    rpc: str
    message: str
    input_field: str
    inputs: Any
    route: str
    parameters: Dict[str, Any] = field(default_factory=dict)
    streaming: bool = False


GENERATE = {"max_new_tokens": 20}
# One row per module: what the overload sends it (a new module is covered by adding its row).
REQUESTS = {
    "SentimentClassifier": [
        Request("TextClassificationTaskPredict", "TextClassificationTaskRequest", "text", PROMPT, "text-classification"),
    ],
    "CharTextGenerator": [
        Request("TextGenerationTaskPredict", "TextGenerationTaskRequest", "text", "the cat", "text-generation", GENERATE),
        Request(
            "ServerStreamingTextGenerationTaskPredict", "ServerStreamingTextGenerationTaskRequest", "text", "the cat",
            "server-streaming-text-generation", GENERATE, streaming=True,
        ),
    ],
    "Translator": [
        Request("TranslationTaskPredict", "TranslationTaskRequest", "text", "the cat sees the fish", "translation"),
        Request(
            "TranslationListTaskPredict", "TranslationListTaskRequest", "texts",
            ["the cat sees the fish", "the dog eats rice", "the hen likes water"], "translation-list",
        ),
        Request("TextGenerationTaskPredict", "TextGenerationTaskRequest", "text", "the dog eats rice", "text-generation", GENERATE),
        Request(
            "ServerStreamingTextGenerationTaskPredict", "ServerStreamingTextGenerationTaskRequest", "text",
            "the bird sees the bread", "server-streaming-text-generation", GENERATE, streaming=True,
        ),
    ],
    "DCGANImageGenerator": [
        Request("ImageGenerationTaskPredict", "ImageGenerationTaskRequest", "num_images", 2, "image-generation", {"seed": 7}),
    ],
    "AttentionInspector": [
        Request("AttentionInspectionTaskPredict", "AttentionInspectionTaskRequest", "text", PROMPT, "attention-inspection"),
    ],
}


def module_names() -> Dict[str, str]:
    """Module id (config.yml's module_id) -> module class name, for the modules in REQUESTS."""
    import caikit_genai  # pylint: disable=import-outside-toplevel

    return {getattr(caikit_genai, name).MODULE_ID: name for name in REQUESTS}


def dir_bytes(path: str) -> int:
    return sum(os.path.getsize(os.path.join(root, name)) for root, _, names in os.walk(path) for name in names)


def module_of(model_dir: str, names: Dict[str, str]):
    """The module name of the model in `model_dir` (by its config.yml's module_id), or None."""
    config = os.path.join(model_dir, "config.yml")
    if os.path.basename(model_dir).startswith(".") or not os.path.isfile(config):
        return None
    with open(config, encoding="utf-8") as config_file:
        return names.get((yaml.safe_load(config_file) or {}).get("module_id"))


def pick_models(models_dir: str, model_ids=None) -> Dict[str, str]:
    """{model id: module name}: `model_ids`, or else the smallest model dir of each module in
    REQUESTS."""
    names = module_names()
    found = {entry: module_of(os.path.join(models_dir, entry), names) for entry in model_ids or sorted(os.listdir(models_dir))}
    if model_ids:
        unknown = [entry for entry, module in found.items() if module is None]
        if unknown:
            raise SystemExit(f"no model of {', '.join(REQUESTS)} in {models_dir}: {', '.join(unknown)}")
        return found
    smallest = {}
    for entry, module in found.items():
        if module and (module not in smallest or dir_bytes(os.path.join(models_dir, entry)) < dir_bytes(os.path.join(models_dir, smallest[module]))):
            smallest[module] = entry
    return {entry: module for module, entry in smallest.items()}


class Clients:
    """The calls of every request kind of every chosen model, over gRPC and HTTP, each returning
    "OK", the gRPC status name or HTTP status, "TIMEOUT", or the exception's name."""

    def __init__(self, runtime: ServedRuntime, models: Dict[str, str]):
        import caikit  # pylint: disable=import-outside-toplevel
        from caikit.runtime.service_factory import ServicePackageFactory  # pylint: disable=import-outside-toplevel

        caikit.configure(config_yml_path=os.path.join(REPO_ROOT, "runtime_config.yaml"))
        self.service = ServicePackageFactory.get_service_package(ServicePackageFactory.ServiceType.INFERENCE)
        self.channel = grpc.insecure_channel(
            f"127.0.0.1:{runtime.grpc_port}", options=[("grpc.max_concurrent_streams", 1000)]
        )
        self.stub = self.service.stub_class(self.channel)
        self.http = runtime.http
        self.local = threading.local()
        self.calls: Dict[str, Callable[[], str]] = {}
        for model_id, module in sorted(models.items()):
            for request in REQUESTS[module]:
                self.calls[f"grpc {model_id} {request.rpc}"] = self._grpc_call(model_id, request)
                self.calls[f"http {model_id} {request.route}"] = self._http_call(model_id, request)

    def _grpc_call(self, model_id: str, request: Request) -> Callable[[], str]:
        method = getattr(self.stub, request.rpc)
        message = getattr(self.service.messages, request.message)(**{request.input_field: request.inputs}, **request.parameters)

        def call() -> str:
            try:
                answer = method(message, metadata=[("mm-model-id", model_id)], timeout=REQUEST_TIMEOUT)
                if request.streaming and not list(answer):
                    return "EMPTY_STREAM"
                return "OK"
            except grpc.RpcError as error:
                return error.code().name

        return call

    def _http_call(self, model_id: str, request: Request) -> Callable[[], str]:
        url = f"{self.http}/api/v1/task/{request.route}"
        body = {"model_id": model_id, "inputs": request.inputs, "parameters": request.parameters}

        def call() -> str:
            session = getattr(self.local, "session", None) or requests.Session()
            self.local.session = session
            try:
                with session.post(url, json=body, timeout=REQUEST_TIMEOUT, stream=request.streaming) as response:
                    if response.status_code != 200:
                        return str(response.status_code)
                    if not request.streaming:
                        return "OK"
                    lines = [line for line in response.iter_lines(decode_unicode=True) if line]
                    if any(line.startswith("event: error") for line in lines):
                        return "STREAM_ERROR"
                    return "OK" if any(line.startswith("data:") for line in lines) else "EMPTY_STREAM"
            except requests.Timeout:
                return "TIMEOUT"

        return call


class Phase:
    """Runs `count` calls from `clients` threads through serving.drive, tallying each kind's
    outcomes; past `deadline` (monotonic seconds) calls are not sent."""

    def __init__(self, calls: Dict[str, Callable[[], str]], deadline: float):
        self.calls, self.deadline = calls, deadline
        self.outcomes = collections.defaultdict(collections.Counter)
        self.lock = threading.Lock()

    def _tallied(self, kind: str) -> Callable[[], str]:
        call = self.calls[kind]

        def tallied() -> str:
            outcome = NOT_SENT if time.monotonic() > self.deadline else call()
            with self.lock:
                self.outcomes[kind][outcome] += 1
            return outcome

        return tallied

    def run(self, clients: int, count: int) -> Dict:
        kinds = [self._tallied(kind) for kind in self.calls]
        return drive(lambda call: call(), kinds, clients, count)

    def total(self, outcomes) -> int:
        return sum(counter[outcome] for counter in self.outcomes.values() for outcome in outcomes)

    def errors(self) -> int:
        everything = sum(sum(counter.values()) for counter in self.outcomes.values())
        return everything - self.total(("OK",) + REFUSALS + HANGS + (NOT_SENT,))

    def print_kinds(self) -> None:
        for kind, counter in sorted(self.outcomes.items()):
            print(f"  {kind:70} {dict(sorted(counter.items()))}")


class RssSampler:
    """The runtime's VmRSS every `every` seconds, in a thread, until stopped."""

    def __init__(self, runtime: ServedRuntime, every: float = 1.0):
        self.runtime, self.every, self.samples = runtime, every, []
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()

    def _sample(self) -> None:
        while not self.stopped.wait(self.every):
            self.samples.append(self.runtime.rss_bytes())

    def stop(self) -> List[int]:
        self.stopped.set()
        self.thread.join()
        return self.samples


def mib(count: int) -> str:
    return f"{count / 2**20:,.0f} MiB"


def models_answer(model_ids):
    def answer(http_url: str) -> bool:
        listed = requests.get(http_url + "/info/models", timeout=5).json().get("models", [])
        return set(model_ids) <= {model.get("name") for model in listed}

    return answer


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models-dir", help="serve one model per module from here (default: build the tiny ones)")
    parser.add_argument("--model-ids", nargs="+", help="the models of --models-dir to serve (default: the smallest of each module)")
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--overload-clients", type=int, default=200)
    parser.add_argument("--overload-requests", type=int, default=1000)
    parser.add_argument("--max-seconds", type=float, default=3600.0, help="time budget of each phase")
    parser.add_argument(
        "--runtime-env", nargs="+", default=[], metavar="NAME=VALUE",
        help="runtime settings (caikit reads any config key from its env name, e.g. RUNTIME_GRPC_MAXIMUM_CONCURRENT_RPCS=8)",
    )
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="overload-models-") as scratch:
        models_dir = args.models_dir
        if models_dir is None:
            sys.path.insert(0, os.path.join(REPO_ROOT, "tests"))
            from tiny_models import build_tiny_models_dir  # pylint: disable=import-outside-toplevel

            began = time.perf_counter()
            models_dir = build_tiny_models_dir(os.path.join(scratch, "models"))
            print(f"built the tests' tiny models in {time.perf_counter() - began:.0f} s")
        models = pick_models(models_dir, args.model_ids)
        if not models:
            parser.error(f"no model of {', '.join(REQUESTS)} in {models_dir}")
        print(f"serving {', '.join(f'{model_id} ({module})' for model_id, module in sorted(models.items()))}")
        settings = dict(setting.split("=", 1) for setting in args.runtime_env)
        runtime = ServedRuntime({model_id: os.path.join(models_dir, model_id) for model_id in models}, env=settings)
        try:
            return run(runtime, models, args)
        finally:
            runtime.stop()


def run(runtime: ServedRuntime, models: Dict[str, str], args) -> int:
    ready = runtime.wait_ready(models_answer(models), timeout=300)
    clients = Clients(runtime, models)
    settings = ", ".join(args.runtime_env) or "runtime_config.yaml as it is"
    print(f"runtime ready in {ready:.1f} s ({settings}); {len(clients.calls)} request kinds; {os.cpu_count()} CPU cores")
    warm_up = {kind: call() for kind, call in clients.calls.items()}
    if set(warm_up.values()) != {"OK"}:
        print(f"warm-up failed: {warm_up}")
        return 1

    rss_before = runtime.rss_bytes()
    sampler = RssSampler(runtime)
    mixed = Phase(clients.calls, time.monotonic() + args.max_seconds)
    row = mixed.run(args.concurrency, args.requests)
    samples = sampler.stop()
    rss_after = runtime.rss_bytes()
    growth = rss_after - rss_before
    flat = growth <= FLAT_SHARE * rss_before
    print(
        f"mixed: {args.requests} requests, {args.concurrency} concurrent: {mixed.total(('OK',))} answered, "
        f"{mixed.total(REFUSALS)} refused, {mixed.errors()} errors, {mixed.total(HANGS)} hung, "
        f"{mixed.total((NOT_SENT,))} not sent; p50 {row['p50_ms']:.0f} ms, p99 {row['p99_ms']:.0f} ms, "
        f"{row['per_s']:.0f} req/s"
    )
    mixed.print_kinds()
    print(
        f"rss: before {mib(rss_before)}, after {mib(rss_after)} (growth {growth / 2**20:+,.0f} MiB, "
        f"{100 * growth / rss_before:+.1f}%), peak {mib(max(samples + [rss_after]))}; "
        f"flat (within {FLAT_SHARE:.0%}): {'yes' if flat else 'no'}"
    )
    quarters = [samples[min(len(samples) - 1, len(samples) * share // 4)] for share in (1, 2, 3)] if samples else []
    print(f"rss after each quarter of the run: {', '.join(mib(value) for value in quarters + [rss_after])}")

    overload = Phase(clients.calls, time.monotonic() + args.max_seconds)
    row = overload.run(args.overload_clients, args.overload_requests)
    print(
        f"overload: {args.overload_clients} clients, {args.overload_requests} requests: "
        f"{overload.total(('OK',))} answered, {overload.total(REFUSALS)} refused "
        f"(slowest refusal {row['refused_max_ms']:.0f} ms), {overload.errors()} errors, "
        f"{overload.total(HANGS)} hung, {overload.total((NOT_SENT,))} not sent; "
        f"answered p99 {row['p99_ms']:.0f} ms"
    )
    overload.print_kinds()
    after = {kind: call() for kind, call in clients.calls.items()}
    answered_after = sum(outcome == "OK" for outcome in after.values())
    print(f"after: {answered_after} of {len(after)} request kinds answered")
    if answered_after != len(after):
        print(f"  {after}")
    failed = args.requests - mixed.total(("OK",)) + overload.errors() + overload.total(HANGS + (NOT_SENT,))
    return 0 if failed == 0 and answered_after == len(after) else 1


if __name__ == "__main__":
    sys.exit(main())
