"""README's examples are run, in README's order, against the test runtime, so none can silently
break: every curl and grpcurl command (with a real grpcurl binary), shell-run Python, and every
Python block.

The runtime serves tiny stand-ins under the default models' names (`sentiment`, `char-austen`;
see conftest.py); `localhost:8080` / `:8085` become the test runtime's ports, `<id>` the last
training id a command printed. A comment under a command that shows output (`# {...}`,
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
from tiny_models import char_training_text

README = os.path.join(REPO_ROOT, "README.md")
VENV_BIN = os.path.dirname(sys.executable)
# Commands README shows that this test does not run, and why.
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
}
RUN = ("curl", "grpcurl", "python3", "python", "kubectl", "torchrun")
# Tiny models under the default models' names: their fields are checked, not what they answer.
STAND_INS = ("sentiment", "sentiment-minilm", "char-austen", "translator-en-id")


def readme_blocks(section=None):
    """(language, code) of every fenced block of README, in order; with `section` (a heading's
    text), only the blocks under that heading, up to the next heading of its level or above."""
    with open(README, encoding="utf-8") as readme:
        text = readme.read()
    if section is not None:
        heading = re.search(rf"^(#+) {re.escape(section)}\n", text, re.M)
        assert heading, f"README has no heading {section!r}"
        ends = re.compile(rf"^#{{1,{len(heading.group(1))}}} ", re.M).finditer(text, heading.end())
        # A `# comment` inside a fenced block is no heading: an odd count of fences before it.
        end = next((match.start() for match in ends if text.count("```", 0, match.start()) % 2 == 0), len(text))
        text = text[heading.end() : end]
    return [(match.group(1), match.group(2)) for match in re.finditer(r"```(\w*)\n(.*?)```", text, re.S)]


def shell_commands(code):
    """(command, output comment lines) for each command of a shell block: a command runs on
    over lines that end with a backslash or sit inside an open single quote."""
    commands, pending = [], []
    for line in code.splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            if commands and line.lstrip().startswith("#"):
                commands[-1][1].append(line.lstrip()[1:].strip())
            continue
        pending.append(line)
        joined = "\n".join(pending)
        if joined.count("'") % 2 == 0 and not line.rstrip().endswith("\\"):
            commands.append((joined, []))
            pending = []
    assert not pending, f"unfinished command in README: {pending}"
    return commands


BLOCKS = [(index, language, code) for index, (language, code) in enumerate(readme_blocks()) if language in ("sh", "python")]


@pytest.fixture(scope="module")
def readme_state(runtime):
    """README's commands run where `make serve` runs: beside models/ and training_data/."""
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
    return {"workdir": workdir, "training_id": None}


def localize(code, runtime, state):
    code = code.replace("localhost:8080", f"127.0.0.1:{runtime.http_port}")
    code = code.replace("localhost:8085", f"127.0.0.1:{runtime.grpc_port}")
    code = code.replace("localhost:8086", f"127.0.0.1:{runtime.metrics_port}")
    code = code.replace('"localhost", 8085', f'"127.0.0.1", {runtime.grpc_port}')
    code = code.replace("http://localhost:8080", runtime.http_url)
    if "<id>" in code:
        assert state["training_id"], "README uses <id> before any training started"
        code = code.replace("<id>", state["training_id"])
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


def follow_training(runtime, state, output):
    started = re.search(r'"training_id": ?"([^"]+)".*"model_name": ?"([^"]+)"', output)
    if started:
        state["training_id"] = started.group(1)
        status = runtime.wait_for_training(started.group(1), timeout=300)
        assert status["state"] == "COMPLETED", status
        runtime.wait_for_model(started.group(2))


@pytest.mark.parametrize("index, language, code", BLOCKS, ids=[f"block{index}-{language}" for index, language, _ in BLOCKS])
@pytest.mark.slow
def test_readme_block_runs(runtime, readme_state, index, language, code):  # pylint: disable=unused-argument
    if language == "python":
        result = run([sys.executable, "-c", localize(code, runtime, readme_state)], readme_state)
        assert result.returncode == 0, f"README python block {index} failed:\n{code}\n{result.stderr[-3000:]}"
        return
    for command, expected_lines in shell_commands(code):
        if any(command.startswith(prefix) for prefix in SKIPPED):
            continue
        program = re.sub(r"^(\w+=\S*\s+)+", "", command).split()[0]  # after any VAR=value
        assert program in RUN, f"README command of an unknown kind (run it here or list it in SKIPPED):\n{command}"
        result = run(["bash", "-c", localize(command, runtime, readme_state)], readme_state)
        assert result.returncode == 0, f"{command}\nexit {result.returncode}: {result.stderr[-2000:]}"
        check_output(command, result.stdout, expected_lines)
        follow_training(runtime, readme_state, result.stdout)


def test_readme_has_examples_of_every_kind():
    kinds = {command.split()[0] for _, language, code in BLOCKS if language == "sh" for command, _ in shell_commands(code)}
    assert {"curl", "grpcurl", "make"} <= kinds
    assert any(language == "python" for _, language, _ in BLOCKS)


def test_grpcurl_is_the_real_binary():
    result = subprocess.run([os.path.join(VENV_BIN, "grpcurl"), "-version"], capture_output=True, text=True, check=False)
    assert "grpcurl v1.8" in (result.stdout + result.stderr)
