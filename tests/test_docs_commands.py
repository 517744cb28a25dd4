"""The examples of README.md and of every docs/ page are run, each page in its own order, against
the test runtime, so none can silently break: every curl and grpcurl command (with a real grpcurl
binary), shell-run Python, and every Python block.

The runtime serves tiny stand-ins under the default models' names (`sentiment`, `char-austen`;
see conftest.py); `localhost:8080` / `:8085` become the test runtime's ports, `<id>` the last
training id a command of the same page printed. A comment under a command that shows output (`# {...}`,
`# event: ...`) is checked: every field it names must be in the real output, and a label it shows
must be the top label (for models README trains, not for the tiny stand-ins). A command that starts a training is followed until it is COMPLETED.
Commands of other kinds must be listed in SKIPPED with the reason, or the test fails.
"""

import json
import os
import re
import subprocess
import sys

import pytest
import requests

from conftest import README_PROMPT_LINES, REPO_ROOT
from docs_pages import PAGES, SHELL, doc_blocks, shell_commands
from tiny_models import char_training_text

VENV_BIN = os.path.dirname(sys.executable)
# Commands the pages show that this test does not run, and why.
SKIPPED = {
    "make": "the two commands: CI runs `make test` itself; `make serve` and `make models` build the real defaults",
    ".venv/bin/python benchmarks/": "benchmarks print timings; tests/test_benchmarks*.py run them on tiny inputs",
    "podman ": "no container engine here: tests/test_deploy.py checks the Containerfile's parts and serves its wheel",
    "oc ": "needs an OpenShift cluster: tests/test_deploy.py builds and validates every kustomization these apply",
    'curl -sk "$(oc ': "calls a deployed InferenceService; the same request runs against the local runtime above",
    "CONFIG_FILES=runtime_config.yaml,tls.yaml ": "run by tests/test_tls.py against a TLS runtime",
    "RUNTIME_TLS_": "run by tests/test_tls.py against a TLS runtime",
    "curl --cacert ": "run by tests/test_tls.py against a TLS runtime",
    "grpcurl -cacert ": "run by tests/test_tls.py against a TLS runtime",
    "grpcurl -insecure ": "a Serverless InferenceService's TLS route: needs a cluster",
    "kubectl apply": "needs a cluster: tests/test_deploy.py builds and validates every kustomization",
}
# Pages whose commands another test runs (against the same kind of runtime), and which.
RUN_ELSEWHERE = {
    "docs/protos.md": "tests/test_protos.py (grpcurl -proto, protoc and the generated client)",
    "docs/deployment.md": "a cluster's and a container engine's commands (oc, podman, the cluster's URLs): "
    "tests/test_deploy.py builds and validates every kustomization they apply, checks the oc cp and "
    "Job commands against the manifests, and serves the image's wheel as the ServingRuntimes run it",
    "docs/caikit-upstream.md": "reproductions for caikit's tracker: they show what a plain caikit 0.28.3 "
    "runtime does wrong, which this runtime's mends prevent (the tests of each mend, e.g. "
    "tests/test_safe_defaults.py, tests/test_http_bodies.py, tests/test_request_paths.py, check the fixed behaviour)",
}
RUN = ("curl", "grpcurl", "python3", "python", "kubectl", "torchrun", "caikit-genai")
# Tiny models under the default models' names: their fields are checked, not what they answer.
STAND_INS = ("sentiment", "sentiment-minilm", "char-austen", "translator-en-id")


BLOCKS = [
    (page, index, language, code)
    for page in PAGES
    if page not in RUN_ELSEWHERE
    for index, (language, code) in enumerate(doc_blocks(page))
    if language in SHELL + ("python",)
]


@pytest.fixture(scope="module")
def docs_state(runtime):
    """The pages' commands run where `make serve` runs: beside models/ and training_data/.
    `training_id` is per page: the last training a command of that page started."""
    workdir = os.path.dirname(runtime.training_data_dir)
    if not os.path.exists(os.path.join(workdir, "models")):
        os.symlink(runtime.models_dir, os.path.join(workdir, "models"))
    for shared in ("deploy", "runtime_config.yaml"):
        if not os.path.exists(os.path.join(workdir, shared)):
            os.symlink(os.path.join(REPO_ROOT, shared), os.path.join(workdir, shared))
    os.makedirs(os.path.join(workdir, "my-texts"), exist_ok=True)
    for path in ("my-text.txt", "my-texts/part1.txt"):
        with open(os.path.join(workdir, path), "w", encoding="utf-8") as text_file:
            text_file.write(char_training_text() + "\n" + README_PROMPT_LINES)
    return {"workdir": workdir, "training_id": {}}


def localize(code, runtime, state, page="README.md"):
    code = code.replace("localhost:8080", f"127.0.0.1:{runtime.http_port}")
    code = code.replace("localhost:8085", f"127.0.0.1:{runtime.grpc_port}")
    code = code.replace("localhost:8086", f"127.0.0.1:{runtime.metrics_port}")
    code = code.replace('"localhost", 8085', f'"127.0.0.1", {runtime.grpc_port}')
    code = code.replace("http://localhost:8080", runtime.http_url)
    if "<id>" in code:
        assert state["training_id"].get(page), f"{page} uses <id> before any training started"
        code = code.replace("<id>", state["training_id"][page])
    return code


def run(args, state, timeout=300):
    env = {**os.environ, "PATH": VENV_BIN + os.pathsep + os.environ.get("PATH", ""), "HF_HUB_OFFLINE": "1"}
    return subprocess.run(args, cwd=state["workdir"], env=env, capture_output=True, text=True, timeout=timeout, check=False)


def check_output(command, output, expected_lines):
    """The output names every field the README comment shows, and the label it shows first."""
    for body in output.splitlines() or [""]:
        try:
            parsed = json.loads(body)
        except ValueError:
            continue
        if isinstance(parsed, dict) and isinstance(parsed.get("code"), int):
            assert parsed["code"] < 400, f"{command}\nanswered {body}"
    for expected in expected_lines:
        if not expected.startswith(("{", "event:", "data:")):
            continue
        for field in re.findall(r'"(\w+)":', expected):
            assert f'"{field}"' in output, f"{command}\nREADME shows {field!r}; the output was:\n{output[:2000]}"
        label = re.search(r'"label": "(\w+)"', expected)
        stand_in = any(re.search(rf'("model_id": "|mm-model-id: ){name}[\'"]', command) for name in STAND_INS)
        if label and not stand_in:
            first = re.search(r'"label": ?"(\w+)"', output)
            assert first and first.group(1) == label.group(1), f"{command}\nREADME shows {label.group(1)}:\n{output}"
        if expected.startswith("event:"):
            assert expected in output, f"{command}\nREADME shows {expected!r}:\n{output[:500]}"


def follow_training(runtime, state, output, page="README.md"):
    started = re.search(r'"training_id": ?"([^"]+)".*"model_name": ?"([^"]+)"', output)
    if started:
        state["training_id"][page] = started.group(1)
        status = runtime.wait_for_training(started.group(1), timeout=300)
        assert status["state"] == "COMPLETED", status
        runtime.wait_for_model(started.group(2))


@pytest.mark.parametrize(
    "page, index, language, code", BLOCKS, ids=[f"{page}-block{index}-{language}" for page, index, language, _ in BLOCKS]
)
@pytest.mark.slow
def test_docs_block_runs(runtime, docs_state, page, index, language, code):
    if language == "python":
        result = run([sys.executable, "-c", localize(code, runtime, docs_state, page)], docs_state)
        assert result.returncode == 0, f"{page} python block {index} failed:\n{code}\n{result.stderr[-3000:]}"
        return
    for command, expected_lines in shell_commands(code):
        if any(command.startswith(prefix) for prefix in SKIPPED):
            continue
        program = re.sub(r"^(\w+=\S*\s+)+", "", command).split()[0]  # after any VAR=value
        assert program in RUN, f"{page}: a command of an unknown kind (run it here or list it in SKIPPED):\n{command}"
        result = run(["bash", "-c", localize(command, runtime, docs_state, page)], docs_state)
        assert result.returncode == 0, f"{page}: {command}\nexit {result.returncode}: {result.stderr[-2000:]}"
        check_output(command, result.stdout, expected_lines)
        follow_training(runtime, docs_state, result.stdout, page)


def test_the_pages_have_examples_of_every_kind():
    kinds = {command.split()[0] for _, _, language, code in BLOCKS if language in SHELL for command, _ in shell_commands(code)}
    assert {"curl", "grpcurl", "make"} <= kinds
    assert any(language == "python" for _, _, language, _ in BLOCKS)
    assert {page for page, _, _, _ in BLOCKS} >= {"README.md", "docs/api.md", "docs/training.md"}


def test_every_page_with_commands_is_run_here_or_elsewhere():
    for page in PAGES:
        shown = [language for language, _ in doc_blocks(page) if language in SHELL + ("python",)]
        assert not shown or page in RUN_ELSEWHERE or any(block[0] == page for block in BLOCKS), page


def test_grpcurl_is_the_real_binary():
    result = subprocess.run([os.path.join(VENV_BIN, "grpcurl"), "-version"], capture_output=True, text=True, check=False)
    assert "grpcurl v1.8" in (result.stdout + result.stderr)
