"""The offline views: `python -m caikit_genai.attention_view` writes an HTML page and a PNG from a
text (in-process) or from a saved runtime response; headless Chromium (Debian's, which `make test`
installs) opens the page with no network, and its DOM says what it drew."""

import html.parser
import json
import os
import re
import shutil
import subprocess

import numpy as np
import pytest
import requests
from google.protobuf import json_format
from PIL import Image

from caikit_genai.attention_view import main
from chromium_devtools import CHROMIUM_FLAGS
from conftest import TINY_ATTENTION_ID, TINY_ATTENTION_SEQ2SEQ_ID
from test_attention_module import panel_grid

TEXT = "the cat sat on the mat"


def chromium(tmp_path, page, *flags) -> str:
    """Run headless Chromium on a local page; its stdout (the DOM, with --dump-dom)."""
    binary = shutil.which("chromium")
    assert binary, "chromium is not installed: `make test` installs it (apt-get install chromium)"
    profile = tmp_path / f"profile-{len(list(tmp_path.iterdir()))}"
    completed = subprocess.run(
        [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *flags, f"file://{page}"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return completed.stdout


class DrawnPage(html.parser.HTMLParser):
    """What the page script drew: <body>'s data-* attributes and the token and thumbnail elements."""

    def __init__(self, dom: str):
        super().__init__()
        self.body, self.queries, self.keys, self.thumbs, self.head_toggles = {}, [], [], 0, 0
        self._collect = None
        self.feed(dom)

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        classes = (attributes.get("class") or "").split()
        if tag == "body":
            self.body = {name[5:]: value for name, value in attrs if name.startswith("data-")}
        if "token" in classes:
            self._collect = self.queries if "query" in classes else self.keys
        if tag == "canvas" and "thumb" in classes:
            self.thumbs += 1
        if "head-toggle" in classes:
            self.head_toggles += 1

    def handle_data(self, data):
        if self._collect is not None:
            self._collect.append(data)
            self._collect = None


def view(tmp_path, *arguments):
    html_path, png_path = tmp_path / "view.html", tmp_path / "view.png"
    assert main([*arguments, "--html", str(html_path), "--png", str(png_path)]) == 0
    page = html_path.read_text(encoding="utf-8")
    return page, html_path, png_path


def test_html_view_of_a_text_draws_every_layer_head_and_token_offline(runtime, tmp_path):
    model_dir = os.path.join(runtime.models_dir, TINY_ATTENTION_ID)
    page, html_path, png_path = view(tmp_path, "--model", model_dir, "--text", TEXT, "--text-pair", "a dog")
    assert not re.search(r"https?://|<script src|<link", page), "the page must fetch nothing"

    drawn = DrawnPage(chromium(tmp_path, html_path, "--dump-dom", "--virtual-time-budget=5000"))
    assert drawn.body["drawn"] == "true"
    assert (drawn.body["layers"], drawn.body["heads"], drawn.body["thumbs"]) == ("2", "2", "4")
    assert drawn.thumbs == 4 and drawn.head_toggles == 2
    tokens = json.loads(drawn.body["tokens"])
    assert tokens[0] == "[CLS]" and tokens.count("[SEP]") == 2
    assert drawn.queries == tokens and drawn.keys == tokens
    assert int(drawn.body["lines"]) > 0

    screenshot = tmp_path / "screenshot.png"
    chromium(tmp_path, html_path, f"--screenshot={screenshot}", "--window-size=1000,800", "--hide-scrollbars")
    pixels = np.asarray(Image.open(screenshot).convert("RGB"))
    assert pixels.shape[:2] == (800, 1000)
    dark_blue = np.all(pixels == [8, 48, 107], axis=-1)
    assert dark_blue.sum() > 50, "the model view's heatmaps did not render"
    # The PNG export of the same data: 2 layers x 2 heads.
    assert panel_grid(png_path.read_bytes()) == (2, 2)


def test_views_of_saved_http_and_grpc_responses_of_an_encoder_decoder(runtime, tmp_path):
    body = {
        "model_id": TINY_ATTENTION_SEQ2SEQ_ID,
        "inputs": TEXT,
        "parameters": {"target_text": "kucing itu duduk", "layers": [1]},
    }
    http_response = requests.post(runtime.http_url + "/api/v1/task/attention-inspection", json=body, timeout=30)
    assert http_response.status_code == 200, http_response.text
    saved_http = tmp_path / "http.json"
    saved_http.write_text(http_response.text, encoding="utf-8")
    page, html_path, png_path = view(tmp_path, "--response", str(saved_http))
    drawn = DrawnPage(chromium(tmp_path, html_path, "--dump-dom"))
    assert drawn.body["kinds"] == "encoder,decoder,cross"
    assert (drawn.body["kind"], drawn.body["layers"], drawn.body["heads"]) == ("encoder", "1", "2")
    # One grid row per kind, as many columns as the widest (4 decoder heads).
    assert panel_grid(png_path.read_bytes()) == (3, 4)

    # grpcurl prints protobuf JSON (camelCase names, 64-bit integers as strings): read that too.
    request = runtime.message("AttentionInspectionTaskRequest", text=TEXT, target_text="kucing itu duduk", kinds=["cross"])
    grpc_response = runtime.inference.AttentionInspectionTaskPredict(
        request, metadata=[("mm-model-id", TINY_ATTENTION_SEQ2SEQ_ID)], timeout=30
    )
    saved_grpc = tmp_path / "grpc.json"
    saved_grpc.write_text(json_format.MessageToJson(grpc_response), encoding="utf-8")
    assert '"targetTokens"' in saved_grpc.read_text(encoding="utf-8")
    page, html_path, _ = view(tmp_path, "--response", str(saved_grpc))
    drawn = DrawnPage(chromium(tmp_path, html_path, "--dump-dom"))
    assert (drawn.body["kind"], drawn.body["layers"], drawn.body["heads"]) == ("cross", "3", "4")
    assert drawn.queries[0] == "</s>" and drawn.keys[0] == "<s>"


def test_the_command_line_refuses_a_model_without_a_text(capsys):
    with pytest.raises(SystemExit):
        main(["--model", "models/attention-minilm", "--html", "x.html"])
    assert "--model needs --text" in capsys.readouterr().err
