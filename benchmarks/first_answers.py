"""Seconds from `make serve` on a fresh clone to each task's first answer, and to its full model.

Clones this checkout's HEAD into a temp dir and runs `make serve` there as a newcomer would (the
install, the data, the runtime, the background builds), then asks every task of the default
models every few seconds, printing when each first answers, and when /info/models first lists
each model as a full build (not `quick`). Ends when every task answers with its full model, or at
--timeout (the table then says which did not). The baseline, the same clone served with quick
builds off (`--no-quick`: `make serve` as it was before them, full builds only), takes hours on
2 cores; run it on its own.

    python benchmarks/first_answers.py [--timeout 900] [--first-only] [--no-quick]
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from typing import Dict, Optional

import requests

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# One call per task of the default models (README's calls).
CALLS = {
    "attention-minilm": ("attention-inspection", "Quick answers first."),
    "char-austen": ("text-generation", "The next morning"),
    "sentiment": ("text-classification", "a moving, beautifully acted film"),
    "dcgan-fashion": ("image-generation", 1),
    "translator-en-id": ("translation", "Open the file"),
}


def answers(http: str, model_id: str) -> bool:
    task, inputs = CALLS[model_id]
    try:
        response = requests.post(f"{http}/api/v1/task/{task}", json={"model_id": model_id, "inputs": inputs}, timeout=120)
    except requests.RequestException:
        return False
    return response.status_code == 200


def served_builds(http: str) -> Dict[str, Optional[bool]]:
    """{model id: quick?} of the loaded models."""
    try:
        listed = requests.get(f"{http}/info/models", timeout=10).json().get("models", [])
    except (requests.RequestException, ValueError):
        return {}
    return {model["name"]: bool((model.get("metadata") or {}).get("quick")) for model in listed if model.get("loaded")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds to watch (default 900)")
    parser.add_argument("--no-quick", action="store_true", help="the baseline: full builds only")
    parser.add_argument("--first-only", action="store_true", help="stop once every task has answered")
    parser.add_argument("--http-port", type=int, default=8080)
    args = parser.parse_args()
    workdir = tempfile.mkdtemp(prefix="first-answers-")
    clone = os.path.join(workdir, "clone")
    subprocess.run(["git", "clone", "--quiet", REPO_ROOT, clone], check=True)
    if args.no_quick:  # `make serve` before quick builds: the full builds of what is missing
        with open(os.path.join(clone, "Makefile"), encoding="utf-8") as makefile:
            text = makefile.read().replace("$(PY) -m caikit_genai.bootstrap --missing --quick;", "true;")
        with open(os.path.join(clone, "Makefile"), "w", encoding="utf-8") as makefile:
            makefile.write(text)
    http = f"http://127.0.0.1:{args.http_port}"
    env = {**os.environ, "RUNTIME_HTTP_PORT": str(args.http_port)}
    log_path = os.path.join(workdir, "make-serve.log")
    started = time.monotonic()
    with open(log_path, "wb") as log:
        serving = subprocess.Popen(["make", "serve"], cwd=clone, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    first_answer: Dict[str, float] = {}
    full_model: Dict[str, float] = {}
    try:
        while time.monotonic() - started < args.timeout and len(full_model) < len(CALLS):
            if args.first_only and len(first_answer) == len(CALLS):
                break
            if serving.poll() is not None:
                print(f"make serve exited with {serving.returncode}; its log: {log_path}", file=sys.stderr)
                break
            for model_id in CALLS:
                if model_id not in first_answer and answers(http, model_id):
                    first_answer[model_id] = time.monotonic() - started
                    print(f"{first_answer[model_id]:7.0f} s  {model_id} answers", flush=True)
            for model_id, quick in served_builds(http).items():
                if model_id in CALLS and model_id in first_answer and not quick and model_id not in full_model:
                    full_model[model_id] = time.monotonic() - started
                    print(f"{full_model[model_id]:7.0f} s  {model_id} serves its full build", flush=True)
            time.sleep(5)
    except KeyboardInterrupt:  # Ctrl-C: stop watching, print what was seen
        pass
    finally:
        os.killpg(serving.pid, signal.SIGKILL)
    rows = {
        model_id: {"first_answer_s": round(first_answer[model_id]) if model_id in first_answer else None,
                   "full_model_s": round(full_model[model_id]) if model_id in full_model else None}
        for model_id in CALLS
    }
    print(json.dumps({"mode": "full builds only" if args.no_quick else "quick builds first", "watched_s": round(time.monotonic() - started), "models": rows, "log": log_path}, indent=2))
    return 0 if len(first_answer) == len(CALLS) else 1


if __name__ == "__main__":
    sys.exit(main())
