"""protos/ is what caikit renders from the code today, and docs/protos.md's commands work: grpcurl
reading the files instead of server reflection, and a Python client generated from them, both
against the test runtime (a tiny model serves as `sentiment`)."""

import os
import re
import subprocess
import sys

import pytest

from conftest import REPO_ROOT
from docs_pages import shell_commands
from test_docs_commands import check_output, localize, run

PROTOS = os.path.join(REPO_ROOT, "protos")
DOC = os.path.join(REPO_ROOT, "docs", "protos.md")
RENDER = ["-m", "caikit_genai.protos"]


def render_protos_into(directory: str) -> None:
    """Render as `make protos` does, in a process of its own: the dump covers every data object
    the process has defined, and a test process defines more."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("RUNTIME_")}
    env["CONFIG_FILES"] = "runtime_config.yaml"
    result = subprocess.run(
        [sys.executable, *RENDER, directory], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]


def doc_blocks(path: str):
    with open(path, encoding="utf-8") as doc:
        return re.findall(r"```(\w*)\n(.*?)```", doc.read(), re.S)


@pytest.mark.slow
def test_published_protos_are_what_the_code_renders(tmp_path):
    # Each render runs with a fresh hash seed: a file whose order came from a set would differ here.
    render_protos_into(str(tmp_path))
    published, rendered = sorted(os.listdir(PROTOS)), sorted(os.listdir(tmp_path))
    assert published == rendered, f"protos/ holds {published}; the code renders {rendered}: run `make protos`"
    for name in rendered:
        with open(os.path.join(PROTOS, name), encoding="utf-8") as old, open(tmp_path / name, encoding="utf-8") as new:
            assert old.read() == new.read(), f"protos/{name} differs from what the code renders: run `make protos`"


def test_make_protos_runs_the_same_renderer_and_the_doc_names_every_file():
    with open(os.path.join(REPO_ROOT, "Makefile"), encoding="utf-8") as makefile:
        assert "\tCONFIG_FILES=runtime_config.yaml $(PY) -m caikit_genai.protos protos\n" in makefile.read()
    with open(DOC, encoding="utf-8") as doc:
        text = doc.read()
    missing = [name for name in os.listdir(PROTOS) if f"`{name}`" not in text]
    assert not missing, f"docs/protos.md does not say what {missing} hold"


@pytest.mark.slow
def test_doc_commands_run_against_the_runtime(runtime, tmp_path):
    state = {"workdir": str(tmp_path), "training_id": None}
    os.symlink(PROTOS, tmp_path / "protos")
    ran = []
    for language, code in doc_blocks(DOC):
        if language == "python":
            result = run([sys.executable, "-c", localize(code, runtime, state)], state)
            assert result.returncode == 0, f"docs/protos.md python block failed:\n{result.stderr[-3000:]}"
            assert result.stdout.split()[0] in ("positive", "negative"), result.stdout
            ran.append("python client")
            continue
        for command, expected_lines in shell_commands(code):
            result = run(["bash", "-c", localize(command, runtime, state)], state)
            assert result.returncode == 0, f"{command}\nexit {result.returncode}: {result.stderr[-2000:]}"
            check_output(command, result.stdout, expected_lines)
            ran.append(command.split()[0] if command.split()[0] != "python" else " ".join(command.split()[:3]))
    assert ran == ["grpcurl", "grpcurl", "mkdir", "python -m grpc_tools.protoc", "python client"], ran
    assert (tmp_path / "genai_client" / "caikit_runtime_Nlp_pb2_grpc.py").exists()
