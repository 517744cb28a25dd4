"""The installed `caikit-genai` command (.venv/bin, a subprocess) against the shared runtime:
every task sub-command, people's output and --json, over HTTP and gRPC; `models`; a failed
call's exit status and the server's message; training followed to its end and cancelled with
Ctrl-C; `build` and `report` handed their own command lines; `serve` in a process of its own.
(docs/cli.md's and docs/client.md's examples run in tests/test_docs_commands.py.)

The task commands run side by side once per session; the command itself (caikit_genai_client)
imports neither torch nor caikit, which tests/test_client.py checks."""

import base64
import json
import os
import re
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import requests
from PIL import Image

from caikit_genai_client import Client
from caikit_genai.data_model import AttentionResult
from conftest import TINY_ATTENTION_ID, TINY_CHAR_ID, TINY_DCGAN_ID, TINY_SENTIMENT_ID, TINY_TRANSLATOR_ID
from served_runtime import REPO_CONFIG, runtime_env
from test_docs_commands import VENV_BIN
from tiny_models import TINY_CHAR_LINES

pytestmark = pytest.mark.slow

CLI = os.path.join(VENV_BIN, "caikit-genai")
REVIEW = "a wonderful and brilliant movie"
PROMPT = "the cat "
SOURCE_TEXTS = ["the cat sees the fish", "the dog likes the water"]
GENERATE = ["--max-new-tokens", "30", "--seed", "17"]


def cli(runtime, wire, *args, **options):
    target = ["--url", runtime.http_url] if wire == "http" else ["--grpc", f"127.0.0.1:{runtime.grpc_port}"]
    return subprocess.run([CLI, *target, *args], capture_output=True, text=True, timeout=300, check=False, **options)


def by_hand(runtime, route, model_id, inputs, **parameters):
    body = {"model_id": model_id, "inputs": inputs, "parameters": parameters}
    response = requests.post(f"{runtime.http_url}/api/v1/task/{route}", json=body, timeout=60)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture(scope="module")
def ran(runtime, tmp_path_factory):
    """Every task command, people's output over HTTP and --json over gRPC (streams both ways),
    run side by side: {name: CompletedProcess}, and the dir they wrote files into."""
    out = tmp_path_factory.mktemp("cli-out")
    commands = {
        "classify": ("http", "classify", TINY_SENTIMENT_ID, REVIEW),
        "classify-json": ("grpc", "--json", "classify", TINY_SENTIMENT_ID, REVIEW, "--top-k", "1"),
        "generate": ("http", "generate", TINY_CHAR_ID, PROMPT, *GENERATE),
        "generate-json": ("grpc", "generate", TINY_CHAR_ID, PROMPT, *GENERATE, "--json"),
        "stream": ("grpc", "generate", TINY_CHAR_ID, PROMPT, *GENERATE, "--stream"),
        "stream-json": ("http", "--json", "generate", TINY_CHAR_ID, PROMPT, *GENERATE, "--stream"),
        "translate": ("http", "translate", TINY_TRANSLATOR_ID, SOURCE_TEXTS[0]),
        "translate-json": ("grpc", "--json", "translate", TINY_TRANSLATOR_ID, *SOURCE_TEXTS, "--num-beams", "1"),
        "images": ("http", "images", TINY_DCGAN_ID, "--count", "3", "--seed", "11", "--out", str(out / "each")),
        "images-json": ("grpc", "--json", "images", TINY_DCGAN_ID, "--count", "4", "--seed", "0", "--grid", "--out", str(out / "grid")),
        "attention": ("http", "attention", TINY_ATTENTION_ID, "the cat sat", "--html", str(out / "view.html"), "--png", str(out / "view.png")),
        "attention-json": ("grpc", "--json", "attention", TINY_ATTENTION_ID, "the cat sat", "--precision", "float32"),
        "models": ("http", "models"),
        "models-json": ("grpc", "--json", "models"),
        "error": ("http", "classify", "no-such-model", REVIEW),
        "error-json": ("grpc", "classify", "no-such-model", REVIEW, "--json"),
        "build": ("http", "build", "--missing", "--only", "attention-minilm", "--models-dir", runtime.models_dir),
        "report-help": ("http", "report", "--help"),
    }
    requests.post(f"{runtime.http_url}/api/v1/task/text-classification", json={"model_id": TINY_SENTIMENT_ID, "inputs": "x"}, timeout=60)
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {name: pool.submit(cli, runtime, wire, *args) for name, (wire, *args) in commands.items()}
        results = {name: future.result() for name, future in futures.items()}
    for name, result in results.items():
        assert result.returncode == (1 if name.startswith("error") else 0), f"{name}: {result.stderr[-3000:]}"
    return {"results": results, "out": out}


def test_classify(runtime, ran):
    expected = by_hand(runtime, "text-classification", TINY_SENTIMENT_ID, REVIEW)["results"]
    lines = [line.split() for line in ran["results"]["classify"].stdout.splitlines()]
    assert [(label, float(score)) for label, score in lines] == [(item["label"], pytest.approx(item["score"], abs=1e-4)) for item in expected]
    answer = json.loads(ran["results"]["classify-json"].stdout)
    assert answer == {"results": [{"label": expected[0]["label"], "score": pytest.approx(expected[0]["score"])}]}


def test_generate_unary_and_streamed(runtime, ran):
    text = by_hand(runtime, "text-generation", TINY_CHAR_ID, PROMPT, max_new_tokens=30, seed=17)["generated_text"]
    results = ran["results"]
    assert results["generate"].stdout == text + "\n"
    assert "[30 tokens, MAX_TOKENS, seed 17]" in results["generate"].stderr
    assert json.loads(results["generate-json"].stdout)["generated_text"] == text
    assert results["stream"].stdout == text + "\n"
    chunks = [json.loads(line) for line in results["stream-json"].stdout.splitlines()]
    assert "".join(chunk["generated_text"] for chunk in chunks) == text and len(chunks) == 30
    assert chunks[-1]["details"]["finish_reason"] == "MAX_TOKENS"


def test_translate_one_and_many(runtime, ran):
    expected = [by_hand(runtime, "translation", TINY_TRANSLATOR_ID, text)["translation_text"] for text in SOURCE_TEXTS]
    assert ran["results"]["translate"].stdout == expected[0] + "\n"
    answer = json.loads(ran["results"]["translate-json"].stdout)
    assert [item["translation_text"] for item in answer["results"]] == expected


def test_images_are_written_as_files(runtime, ran):
    expected = by_hand(runtime, "image-generation", TINY_DCGAN_ID, 3, seed=11)
    for seed, image, label in zip((11, 12, 13), expected["images"], expected["labels"]):
        path = os.path.join(ran["out"], "each", f"{TINY_DCGAN_ID}-{seed}.png")
        with open(path, "rb") as image_file:
            assert image_file.read() == base64.b64decode(image["image_data"])
        assert f"{path}  (seed {seed}, {label})" in ran["results"]["images"].stdout
    answer = json.loads(ran["results"]["images-json"].stdout)
    assert answer["seeds"] == [0, 1, 2, 3] and "images" not in answer
    (grid,) = answer["files"]
    assert grid.endswith(f"{TINY_DCGAN_ID}-grid-0.png") and Image.open(grid).size[0] > 16 * 2


def test_attention_summary_views_and_json(runtime, ran):
    human = ran["results"]["attention"].stdout
    assert "tokens: [CLS] the c ##a ##t s ##a ##t [SEP]" in human
    assert "encoder: layers [0, 1], 2 heads, 9 x 9 tokens" in human and "not an explanation" in human
    with open(os.path.join(ran["out"], "view.html"), encoding="utf-8") as page:
        assert "<html" in page.read().lower()
    assert Image.open(os.path.join(ran["out"], "view.png")).format == "PNG"
    answer = AttentionResult.from_json(ran["results"]["attention-json"].stdout, ignore_unknown_fields=True)
    expected = by_hand(runtime, "attention-inspection", TINY_ATTENTION_ID, "the cat sat", precision="float32")
    expected = AttentionResult.from_json(json.dumps(expected))
    # The same numbers up to float32 rounding: the commands run side by side, and a request batched
    # with another (padded to its length) may round its last bit differently.
    np.testing.assert_allclose(answer.attention("encoder").as_numpy(), expected.attention("encoder").as_numpy(), rtol=1e-5, atol=1e-7)


def test_models(ran):
    rows = {line.split()[0]: line.split(maxsplit=3)[1:] for line in ran["results"]["models"].stdout.splitlines()[1:]}
    assert rows[TINY_SENTIMENT_ID][:2] == ["loaded", "SentimentClassifier"]
    assert rows["broken-model"][:2] == ["failed", "-"] and rows["broken-model"][2].startswith("HFValidationError")
    listed = {model["name"]: model for model in json.loads(ran["results"]["models-json"].stdout)["models"]}
    assert listed.keys() == rows.keys() and listed[TINY_SENTIMENT_ID]["loaded"] is True


def test_a_failed_call_exits_1_with_the_servers_code_and_message(ran):
    assert ran["results"]["error"].stderr.endswith("error (http): 404: Model 'no-such-model' not loaded\n")
    last_line = ran["results"]["error-json"].stderr.strip().splitlines()[-1]
    assert json.loads(last_line) == {"error": {"code": "NOT_FOUND", "message": "Model 'no-such-model' not loaded", "wire": "grpc"}}
    assert ran["results"]["error"].stdout == ran["results"]["error-json"].stdout == ""


# -- training -----------------------------------------------------------------------------------


TINY_TRAINING = ["--set", "hidden_size=16", "--set", "num_layers=1", "--set", "seq_length=16", "--set", "batch_size=4", "--set", "val_fraction=0"]


@pytest.fixture(scope="module")
def examples_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli-train") / "lines.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in TINY_CHAR_LINES), encoding="utf-8")
    return str(path)


def test_train_follows_the_job_to_its_end(runtime, examples_file):
    name = f"cli-char-{int(time.time() * 1000)}"
    training = ["train", "CharTextGenerator", name, "--data", examples_file, *TINY_TRAINING, "--set", "max_steps=5", "--poll", "0.3"]
    result = cli(runtime, "grpc", "--json", *training)
    assert result.returncode == 0, result.stderr[-3000:]
    started, final = [json.loads(line) for line in result.stdout.splitlines()]
    assert started["model_name"] == name and final["training_id"] == started["training_id"] and final["state"] == "COMPLETED"
    assert Client(http=runtime.http_url).generate(name, "the ", max_new_tokens=4, seed=1).generated_tokens == 4


def test_ctrl_c_asks_and_cancels_the_training(runtime, examples_file):
    name = f"cli-cancel-{int(time.time() * 1000)}"
    long_run = ["--set", "max_steps=100000", "--set", "max_seconds=120", "--poll", "0.3"]
    with subprocess.Popen(
        [CLI, "--url", runtime.http_url, "train", "CharTextGenerator", name, "--data", examples_file, *TINY_TRAINING, *long_run],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    ) as training:
        started = training.stdout.readline()
        training_id = re.match(r"training (\S+) started: model " + name, started).group(1)
        while "RUNNING" not in (line := training.stderr.readline()):
            assert line, "the command ended before the job ran"
        training.send_signal(signal.SIGINT)
        out, err = training.communicate("y\n", timeout=120)
    assert f"cancel training {training_id}? [y/N]" in err
    assert training.returncode == 1 and f"training {training_id}: CANCELED" in out, (out, err)
    assert Client(http=runtime.http_url).status(training_id).state == "CANCELED"


# -- build, report and serve ---------------------------------------------------------------------


def test_build_and_report_get_their_own_command_lines(ran):
    # build is python -m caikit_genai.bootstrap's command line: here a model that is there already
    assert "attention-minilm: already built" in ran["results"]["build"].stdout + ran["results"]["build"].stderr
    # report is caikit_genai.report's: its own usage, not this command's list of sub-commands
    assert "usage:" in ran["results"]["report-help"].stdout and "COMMAND" not in ran["results"]["report-help"].stdout


def test_serve_runs_the_runtime_from_the_working_dir(runtime, tmp_path):
    os.makedirs(tmp_path / "models")
    os.symlink(os.path.join(runtime.models_dir, TINY_SENTIMENT_ID), tmp_path / "models" / TINY_SENTIMENT_ID)
    # Free ports; models/ and training_data/ from the working dir, as `make serve` has them.
    env = runtime_env(tmp_path, env={"CONFIG_FILES": None, "RUNTIME_LOCAL_MODELS_DIR": None, "RUNTIME_TRAINING_OUTPUT_DIR": None})
    serve = [CLI, "serve", "--config", REPO_CONFIG]
    with subprocess.Popen(serve, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) as served:
        try:
            url = f"http://127.0.0.1:{env['RUNTIME_HTTP_PORT']}"
            deadline = time.monotonic() + 180
            while not _healthy(url):
                assert served.poll() is None and time.monotonic() < deadline, "caikit-genai serve did not come up"
                time.sleep(0.3)
            (label, _) = Client(http=url).classify(TINY_SENTIMENT_ID, REVIEW)
            assert label.label == "positive"
            assert (tmp_path / "training_data").is_dir()
        finally:
            served.kill()


def _healthy(url: str) -> bool:
    try:
        return requests.get(f"{url}/health", timeout=2).status_code == 200
    except requests.ConnectionError:
        return False
