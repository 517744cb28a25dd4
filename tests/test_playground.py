"""The playground the runtime serves at `/` (caikit_genai/playground/), in real headless Chromium
against the session's runtime (tiny models): every tab from its shareable link and by clicking,
the DOM checked against the API's answer to the same request (same labels, text, image bytes,
attention weights), streaming text seen before its end, Stop ending the server's generation,
server errors shown where the user acted, no console errors, keyboard, labels, phone width, dark
mode, a Route's path prefix, and a runtime with training off. One browser serves every test.

The screenshots docs/playground-<tab>.png are taken here: `UPDATE_SCREENSHOTS=1` writes them into docs/.
"""

import base64
import fnmatch
import json
import os
import re
import tomllib

import numpy as np
import pytest
import requests

from chromium_devtools import Chromium
from conftest import ATTENTION_MINILM_ID, REPO_ROOT, TINY_ATTENTION_SEQ2SEQ_ID, TINY_CHAR_ID, TINY_CHAR_MAX_NEW_TOKENS_LIMIT
from conftest import TINY_DCGAN_ID, TINY_SENTIMENT_ID, TINY_TRANSLATOR_ID
from playground_page import SCREEN, Playground, api, link
from test_char_runtime import served_model, sse_events, wait_until_still
from tiny_models import TINY_CHAR_RECIPE, char_training_text

PACKAGE = os.path.join(REPO_ROOT, "caikit_genai")
STATIC = os.path.join(PACKAGE, "playground", "static")
DOCS_PAGE = os.path.join(REPO_ROOT, "docs", "playground.md")
PROMPT = "the cat "


@pytest.fixture(scope="module")
def browser():
    chromium = Chromium(*SCREEN)
    yield chromium
    chromium.close()


@pytest.fixture
def page(runtime, browser):
    """The playground; after the test, the page raised no exception and logged no console error
    (a failed request counts, unless the test expected server errors)."""
    errors, log = len(browser.errors), len(browser.log_entries)
    playground = Playground(browser, runtime.http_url)
    yield playground
    expected = re.compile(r"the server responded with a status of (400|404|422|503)")
    logged = [
        entry for entry in browser.log_entries[log:]
        if not (playground.http_errors_expected and entry.get("source") == "network" and expected.search(entry.get("text", "")))
    ]
    assert browser.errors[errors:] == [] and logged == []


# -- served as package data, same origin, no network ---------------------------------------------


def test_the_page_ships_as_package_data_and_uses_relative_urls_only():
    with open(os.path.join(REPO_ROOT, "pyproject.toml"), "rb") as pyproject:
        patterns = tomllib.load(pyproject)["tool"]["setuptools"]["package-data"]["caikit_genai.playground"]
    files = [os.path.join(root, name) for root, _, names in os.walk(STATIC) for name in names]
    assert len(files) >= 10
    for path in files:
        relative = os.path.relpath(path, os.path.join(PACKAGE, "playground"))
        assert any(fnmatch.fnmatch(relative, pattern) for pattern in patterns), relative
        with open(path, encoding="utf-8") as asset:
            text = asset.read().replace("http://www.w3.org/2000/svg", "")  # SVG's namespace name, never fetched
        assert not re.search(r"https?:|//cdn|@import", text), path
        assert not re.search(r"""\b(?:src|href)\s*=\s*["'`]/""", text), path
        assert not re.search(r"""\b(?:fetch|getJson|postJson|postStream|deleteJson)\(\s*["'`]/""", text), path


def test_docs_is_an_offline_page_and_the_cdn_pages_are_gone(runtime):
    docs = requests.get(f"{runtime.http_url}/docs", timeout=10)
    assert docs.status_code == 200 and 'href="openapi.json"' in docs.text and "docs/api.md" in docs.text
    assert "swagger-ui" not in docs.text and "cdn" not in docs.text
    assert requests.get(f"{runtime.http_url}/redoc", timeout=10).status_code == 404
    paths = requests.get(f"{runtime.http_url}/openapi.json", timeout=10).json()["paths"]
    assert "/api/v1/task/text-classification" in paths
    assert [path for path in paths if path in ("/", "/docs") or path.startswith("/playground")] == []


def test_a_model_card_and_module_are_read_from_its_own_dir_only(runtime):
    from caikit_genai import CharTextGenerator  # pylint: disable=import-outside-toplevel

    route = f"{runtime.http_url}/playground/api/models/{{}}/metrics"
    with open(os.path.join(runtime.models_dir, TINY_DCGAN_ID, "metrics.json"), encoding="utf-8") as metrics:
        assert requests.get(route.format(TINY_DCGAN_ID), timeout=10).json() == json.load(metrics)
    for name in (".hidden", "-rf", "a%20b", "%2E%2E"):
        answer = requests.get(route.format(name), timeout=10)
        assert answer.status_code == 400 and "not a valid model name" in answer.json()["details"], name
    for name in ("broken-model", "no-such-model"):
        answer = requests.get(route.format(name), timeout=10)
        assert answer.status_code == 404 and "has no metrics.json" in answer.json()["details"], name
    # The module a model dir names (caikit's /info/models says it only once the model is loaded).
    module = f"{runtime.http_url}/playground/api/models/{{}}/module"
    assert requests.get(module.format(TINY_CHAR_ID), timeout=10).json() == {"module_id": CharTextGenerator.MODULE_ID}
    assert requests.get(module.format(".hidden"), timeout=10).status_code == 400
    assert requests.get(module.format("no-such-model"), timeout=10).status_code == 404


def test_the_catalog_gives_each_module_its_own_routes_and_parameters(runtime):
    catalog = requests.get(f"{runtime.http_url}/playground/api/catalog", timeout=10).json()
    modules = {module["name"]: module for module in catalog["modules"]}
    (char,) = modules["CharTextGenerator"]["tasks"]
    assert (char["route"], char["streaming_route"]) == ("api/v1/task/text-generation", "api/v1/task/server-streaming-text-generation")
    char_parameters = {parameter["name"]: parameter for parameter in char["parameters"]}
    assert char_parameters["max_new_tokens"]["default"] == 200 and "unknown_characters" in char_parameters
    assert "num_beams" not in char_parameters and char_parameters["stop_sequences"]["type"] == "array:string"
    assert char_parameters["seed"]["description"].startswith("Seeds sampling")
    assert {task["route_name"] for task in modules["Translator"]["tasks"]} == {"text-generation", "translation", "translation-list"}
    assert catalog["training"] and catalog["training_management"] == "management/trainings"
    sentiment_train = modules["SentimentClassifier"]["train"]
    assert sentiment_train["route"] == "api/v1/TextClassificationTaskSentimentClassifierTrain"
    assert sentiment_train["training_data"] == {"type": "object", "fields": [{"name": "text", "type": "string"}, {"name": "label", "type": "string"}]}
    assert modules["CharTextGenerator"]["train"]["training_data"]["type"] == "string"


# -- each tab, from its link and by clicking -------------------------------------------------------


@pytest.mark.slow
def test_models_tab_shows_each_models_state_its_failure_and_its_card(page, runtime):
    served = {model["name"]: model for model in requests.get(f"{runtime.http_url}/info/models", timeout=10).json()["models"]}
    page.open(link(tab="models", model=TINY_CHAR_ID))
    card = page.browser.wait(
        "document.querySelector('#models-card .card dl') && Object.fromEntries([...document.querySelectorAll("
        "'#models-card .card > dl > dt')].map(dt => [dt.textContent, dt.nextElementSibling.textContent]))"
    )
    with open(os.path.join(runtime.models_dir, TINY_CHAR_ID, "metrics.json"), encoding="utf-8") as metrics_file:
        metrics = json.load(metrics_file)
    assert card["val_bits_per_char"] == str(metrics["val_bits_per_char"]) and card["steps"] == str(metrics["steps"])
    rows = page.browser.js(
        "[...document.querySelectorAll('#models-table tbody tr')].map(tr => [tr.dataset.model, tr.dataset.state,"
        " tr.querySelector('.reason')?.textContent ?? ''])"
    )
    assert sorted(model for model, _, _ in rows) == sorted(served)
    for model, state, reason in rows:
        failure = (served[model].get("metadata") or {}).get("load_error", "")
        assert (state, reason) == (("failed", failure) if failure else ("served" if served[model]["loaded"] else "loading", "")), model
    assert dict((model, state) for model, state, _ in rows)["broken-model"] == "failed"
    page.screenshot("models")
    page.browser.click(f"#models-table tr[data-model='{TINY_DCGAN_ID}'] button")
    page.browser.wait(f"document.querySelector('#models-card .card')?.dataset.model === '{TINY_DCGAN_ID}'")
    assert "ring, square, stripe" in page.texts("#models-card .card dd")
    assert page.browser.js("location.search") == f"?tab=models&model={TINY_DCGAN_ID}"


def score_rows(page):
    return [(label, float(score)) for label, score in page.browser.js(
        "[...document.querySelectorAll('#classify-output li')].map(li => [li.dataset.label, li.dataset.score])")]


@pytest.mark.slow
def test_classify_shows_the_apis_labels_and_scores(page, runtime):
    status, answer = api(runtime, "text-classification", {"model_id": TINY_SENTIMENT_ID, "inputs": "a good film"})
    assert status == 200
    page.run_link("classify", task="text-classification", model=TINY_SENTIMENT_ID, inputs="a good film")
    assert score_rows(page) == [(result["label"], result["score"]) for result in answer["results"]]
    assert page.texts("#classify-output .score") == [f"{result['score']:.3f}" for result in answer["results"]]
    page.screenshot("classify")
    # By clicking: other text, one label; its link runs the same request again.
    page.fill("#classify-inputs", "an awful boring mess")
    page.fill("#classify-top_k", "1")
    page.submit("classify")
    _, top = api(runtime, "text-classification", {"model_id": TINY_SENTIMENT_ID, "inputs": "an awful boring mess", "parameters": {"top_k": 1}})
    assert score_rows(page) == [(result["label"], result["score"]) for result in top["results"]]
    page.finish("classify", lambda: page.browser.goto(page.share_link("classify")), navigates=True)
    assert score_rows(page) == [(result["label"], result["score"]) for result in top["results"]]


@pytest.mark.slow
def test_generate_shows_the_apis_text_unary_and_streamed(page, runtime):
    parameters = {"max_new_tokens": 60, "seed": 7, "temperature": 0.9}
    status, answer = api(runtime, "text-generation", {"model_id": TINY_CHAR_ID, "inputs": PROMPT, "parameters": parameters})
    assert status == 200
    page.run_link("generate", task="text-generation", model=TINY_CHAR_ID, inputs=PROMPT, **parameters)
    assert page.browser.js("document.getElementById('generate-output').textContent") == answer["generated_text"]
    assert "MAX_TOKENS" in page.browser.js("document.getElementById('generate-status').textContent")
    # By clicking: the same request, streamed: the stream joins to the same text.
    page.browser.click("#generate-stream")
    page.submit("generate")
    body = {"model_id": TINY_CHAR_ID, "inputs": PROMPT, "parameters": parameters}
    with requests.post(f"{runtime.http_url}/api/v1/task/server-streaming-text-generation", json=body, stream=True, timeout=60) as streamed:
        joined = "".join(json.loads(data)["generated_text"] for _, data in sse_events(streamed))
    assert page.browser.js("document.getElementById('generate-output').textContent") == joined == answer["generated_text"]
    assert "task=server-streaming-text-generation" in page.share_link("generate")
    page.screenshot("generate")


@pytest.mark.slow
def test_streaming_shows_text_before_its_end_and_stop_ends_the_servers_generation(page):
    asked = TINY_CHAR_MAX_NEW_TOKENS_LIMIT
    page.open(link(task="server-streaming-text-generation", model=TINY_CHAR_ID, inputs=PROMPT, max_new_tokens=asked))
    before = served_model(TINY_CHAR_ID).chars_generated
    page.browser.click("#generate-form button[type=submit]")
    partial = page.browser.wait(
        "(() => { const o = document.getElementById('generate-output');"
        " return o.dataset.state === 'streaming' && o.textContent.length >= 20 ? o.textContent.length : 0; })()"
    )
    page.browser.click("#generate-stop")
    page.browser.wait("document.getElementById('generate-output').dataset.state === 'stopped'")
    generated = wait_until_still(lambda: served_model(TINY_CHAR_ID).chars_generated) - before
    shown = page.browser.js("document.getElementById('generate-output').textContent.length")
    assert 20 <= partial <= shown <= generated < asked // 10, (partial, shown, generated)
    assert page.browser.js("document.getElementById('generate-stop').disabled")


@pytest.mark.slow
def test_translate_shows_each_text_beside_the_apis_translation(page, runtime):
    texts = ["the cat", "a dog"]
    _, listed = api(runtime, "translation-list", {"model_id": TINY_TRANSLATOR_ID, "inputs": texts, "parameters": {"num_beams": 2}})
    page.run_link("translate", task="translation-list", model=TINY_TRANSLATOR_ID, inputs=texts, num_beams=2)
    rows = page.browser.js("[...document.querySelectorAll('#translate-output tbody tr')].map(tr => [tr.querySelector('.source').textContent, tr.querySelector('.translation').textContent])")
    assert rows == [[text, result["translation_text"]] for text, result in zip(texts, listed["results"])]
    page.screenshot("translate")
    page.browser.click("#translate-one")
    page.fill("#translate-inputs", "the cat")
    page.submit("translate")
    _, one = api(runtime, "translation", {"model_id": TINY_TRANSLATOR_ID, "inputs": "the cat", "parameters": {"num_beams": 2}})
    assert page.texts("#translate-output .translation") == [one["translation_text"]]
    assert "task=translation&" in page.share_link("translate")


def shown_images(page):
    return page.browser.js("[...document.querySelectorAll('#images-output figure')].map(f => [f.querySelector('img').src, f.querySelector('a').href, f.querySelector('a').download])")


@pytest.mark.slow
def test_images_are_the_apis_bytes_the_same_seed_the_same_image(page, runtime):
    _, answer = api(runtime, "image-generation", {"model_id": TINY_DCGAN_ID, "inputs": 3, "parameters": {"seed": 11}})
    page.run_link("images", task="image-generation", model=TINY_DCGAN_ID, inputs=3, seed=11)
    images = shown_images(page)
    assert [src.split(",", 1)[1] for src, _, _ in images] == [image["image_data"] for image in answer["images"]]
    assert all(href == src and name.endswith(".png") for src, href, name in images)
    assert "seed-12" in images[1][2] and page.texts("#images-output figcaption span")[1] == f"seed 12, {answer['labels'][1]}"
    page.screenshot("images")
    # Seed 12 alone is the second image above, byte for byte.
    page.run_link("images", task="image-generation", model=TINY_DCGAN_ID, inputs=1, seed=12)
    assert [src for src, _, _ in shown_images(page)] == [images[1][0]]
    # By clicking: a latent walk of 4 steps from two seeds, one class label.
    page.fill("#images-inputs", "2")
    page.fill("#images-interpolate_steps", "4")
    page.fill("#images-label", "square")
    page.submit("images")
    _, walk = api(runtime, "image-generation", {"model_id": TINY_DCGAN_ID, "inputs": 2, "parameters": {"seed": 12, "interpolate_steps": 4, "label": "square"}})
    assert [src.split(",", 1)[1] for src, _, _ in shown_images(page)] == [image["image_data"] for image in walk["images"]]
    assert page.browser.js("document.querySelector('#images-output .images').dataset.columns") == "4"


def decoded(group):
    """An API attention group as numpy (the data model's documented one-line recipe)."""
    return np.frombuffer(base64.b64decode(group["weights"]), group["dtype"]).reshape(group["shape"]).astype(np.float32)


def shown_weights(page):
    """The enlarged head's weights table (opened as a user would)."""
    page.browser.click(".weights-details > summary")
    return np.array(page.browser.wait(
        "document.querySelector('.weights') && [...document.querySelectorAll('.weights tbody tr')]"
        ".map(tr => [...tr.querySelectorAll('td')].map(td => Number(td.textContent)))"
    ))


@pytest.mark.slow
def test_attention_shows_every_layer_and_head_one_enlarged_cross_attention_and_rollout(page, runtime):
    request = {"model_id": TINY_ATTENTION_SEQ2SEQ_ID, "inputs": "the cat", "parameters": {"target_text": "kucing"}}
    _, answer = api(runtime, "attention-inspection", request)
    page.run_link("attention", task="attention-inspection", model=TINY_ATTENTION_SEQ2SEQ_ID, inputs="the cat", target_text="kucing")
    assert page.browser.js("document.getElementById('attention-output').dataset.kinds") == "encoder,decoder,cross"
    page.choose("#attention-kind", "2")
    cross = decoded(next(group for group in answer["attentions"] if group["kind"] == "cross"))
    layers, heads = cross.shape[:2]
    assert page.browser.js("document.querySelectorAll('#attention-output .thumb').length") == layers * heads
    page.browser.click(f".thumb[data-layer='{layers - 1}'][data-column='{heads - 1}']")
    page.browser.wait(f"document.querySelector('.head-detail')?.dataset.layer === '{layers - 1}'")
    assert page.texts(".tokens.queries li") == [token["text"] for token in answer["target_tokens"]]
    assert page.texts(".tokens.keys li") == [token["text"] for token in answer["tokens"]]
    expected = cross[layers - 1, heads - 1]
    assert page.browser.js("Number(document.querySelector('.head-view').dataset.lines)") == int((expected >= 0.01).sum())
    np.testing.assert_allclose(shown_weights(page), expected, atol=5.1e-4)
    # The keyboard moves through the overview: from the last head, left is the one before.
    page.browser.js("document.querySelector('.thumb[aria-pressed=true]').focus()")
    page.browser.press("ArrowLeft", key_code=37)
    assert page.browser.js("document.activeElement.dataset.column + '/' + document.querySelector('.head-detail').dataset.column") == f"{heads - 2}/head {heads - 2}"
    # A real encoder (MiniLM-L6): every layer x head, then rollout by clicking, on the same text.
    sentence = "The cat sat on the mat because it was tired."
    _, minilm = api(runtime, "attention-inspection", {"model_id": ATTENTION_MINILM_ID, "inputs": sentence})
    page.run_link("attention", task="attention-inspection", model=ATTENTION_MINILM_ID, inputs=sentence)
    assert page.browser.js("document.querySelectorAll('#attention-output .thumb').length") == minilm["num_layers"] * minilm["num_heads"]
    page.screenshot("attention")
    page.fill("#attention-aggregate", "rollout")
    page.submit("attention")
    _, rollout = api(runtime, "attention-inspection", {"model_id": ATTENTION_MINILM_ID, "inputs": sentence, "parameters": {"aggregate": "rollout"}})
    assert page.texts("#attention-output .overview .axis")[0] == "rollout"
    np.testing.assert_allclose(shown_weights(page), decoded(rollout["attentions"][0])[0, 0], atol=5.1e-4)


@pytest.mark.slow
def test_train_from_the_page_then_the_model_is_in_the_pickers_and_cancel_stops_one(page, runtime):
    recipe = {**TINY_CHAR_RECIPE, "max_steps": 10, "val_fraction": 0.1}
    page.open(link(tab="train", module="CharTextGenerator", model_name="page-char", **recipe))
    page.fill("#train-data", char_training_text())
    page.browser.click("#train-form button[type=submit]")
    page.browser.wait("document.getElementById('train-output').dataset.served === 'true'", timeout=240)
    assert page.browser.js("document.querySelector('#train-output .training-state').textContent") == "COMPLETED"
    assert page.browser.js("[...document.querySelectorAll('#generate-model option')].some(o => o.value === 'page-char')")
    with open(os.path.join(runtime.models_dir, "page-char", "metrics.json"), encoding="utf-8") as metrics_file:
        metrics = json.load(metrics_file)
    assert metrics["steps"] == 10 and metrics["recipe"]["hidden_size"] == recipe["hidden_size"]
    # The runtime's progress route, as the card shows it.
    training_id = page.browser.js("document.getElementById('train-output').dataset.trainingId")
    progress = requests.get(f"{runtime.http_url}/api/v1/trainings/{training_id}/progress", timeout=10).json()
    assert progress["step"] == 10 and progress["finished"]
    shown = page.browser.js("document.querySelector('#train-output .training-progress').textContent")
    assert shown.startswith("step 10/10, 100%, loss "), shown
    page.screenshot("train")
    # A long one, cancelled while it runs: no model is left.
    page.fill("#train-name", "page-char-cancelled")
    page.fill("#train-max_steps", "1000000")
    page.browser.click("#train-form button[type=submit]")
    page.browser.wait("['QUEUED', 'RUNNING'].includes(document.getElementById('train-output').dataset.state) && !document.getElementById('train-cancel').disabled")
    page.browser.click("#train-cancel")
    page.browser.wait("document.getElementById('train-output').dataset.state === 'CANCELED'", timeout=60)
    assert not os.path.exists(os.path.join(runtime.models_dir, "page-char-cancelled"))


# -- errors, accessibility, deployment -------------------------------------------------------------


@pytest.mark.slow
def test_the_servers_message_is_shown_where_the_user_acted(page, runtime):
    page.http_errors_expected = True
    cases = [
        ("classify", "text-classification", {"model_id": TINY_SENTIMENT_ID, "inputs": "a good film", "parameters": {"top_k": -3}}),
        ("classify", "text-classification", {"model_id": "no-such-model", "inputs": "a good film", "parameters": {}}),
        ("images", "image-generation", {"model_id": TINY_DCGAN_ID, "inputs": 1.5, "parameters": {}}),
        ("generate", "text-generation", {"model_id": TINY_CHAR_ID, "inputs": PROMPT, "parameters": {"max_new_tokens": -5}}),
    ]
    for tab, route, body in cases:
        status, answer = api(runtime, route, body)
        assert status in (400, 404, 422), answer
        page.run_link(tab, task=route, model=body["model_id"], inputs=body["inputs"], **body["parameters"])
        assert page.error(tab) == f"{status}: {answer['details']}", (tab, body)
    # A stream the model refuses answers 200, then an SSE error event: shown the same way.
    body = {"model_id": TINY_CHAR_ID, "inputs": PROMPT, "parameters": {"max_new_tokens": -5}}
    with requests.post(f"{runtime.http_url}/api/v1/task/server-streaming-text-generation", json=body, stream=True, timeout=60) as streamed:
        ((event, data),) = list(sse_events(streamed))
    assert event == "error"
    page.run_link("generate", task="server-streaming-text-generation", model=TINY_CHAR_ID, inputs=PROMPT, max_new_tokens=-5)
    assert page.error("generate") == f"400: {json.loads(data)['details']}"
    # 503: a TGIS model whose server is down (the `tgis` extra's stand-ins; absent without it).
    if "tgis-down" in [model["name"] for model in requests.get(f"{runtime.http_url}/info/models", timeout=10).json()["models"]]:
        status, answer = api(runtime, "text-generation", {"model_id": "tgis-down", "inputs": "hello"})
        assert status == 503
        page.run_link("generate", task="text-generation", model="tgis-down", inputs="hello")
        assert page.error("generate") == f"503 (busy or a backend is down: try again in a moment): {answer['details']}"
    # A train request the server refuses (a model name that is a path), and data the page cannot read.
    page.open(link(tab="train", module="CharTextGenerator", model_name="../escape"))
    page.fill("#train-data", char_training_text())
    page.browser.click("#train-form button[type=submit]")
    message = page.browser.wait("(() => { const e = document.querySelector('#train-form .error'); return !e.hidden && e.textContent; })()")
    assert message.startswith("400: ") and "../escape" in message and "not a valid model name" in message
    page.choose("#train-module", "SentimentClassifier")
    page.fill("#train-data", '{"text": "good", "colour": "red"}')
    page.browser.click("#train-form button[type=submit]")
    assert page.browser.wait("document.querySelector('#train-form .error').textContent.includes('\"colour\" is not a field')")


@pytest.mark.slow
def test_keyboard_labels_phone_width_and_dark_mode(page, browser):
    page.open(link(tab="models"))
    unlabelled = browser.js(
        "(() => { const missing = []; for (const tab of document.querySelectorAll('[role=tab]')) { tab.click();"
        " for (const e of document.querySelectorAll('main input, main select, main textarea, main button')) {"
        " if (e.closest('[hidden]')) continue;"
        " const name = e.labels?.length || e.getAttribute('aria-label') || (e.tagName === 'BUTTON' && e.textContent.trim());"
        " if (!name) missing.push(tab.dataset.tab + ': ' + (e.id || e.outerHTML.slice(0, 80))); } } return missing; })()"
    )
    assert unlabelled == []
    browser.js("document.getElementById('tab-models').click(); document.getElementById('tab-models').focus()")
    browser.press("ArrowRight", key_code=39)
    assert browser.js("[document.activeElement.id, document.getElementById('panel-classify').hidden]") == ["tab-classify", False]
    browser.press("End", key_code=35)
    assert browser.js("document.activeElement.id") == "tab-train"
    browser.press("Home", key_code=36)
    browser.press("ArrowRight", key_code=39)
    browser.js("document.getElementById('classify-inputs').focus()")
    browser.page("Input.insertText", text="a good film")
    page.finish("classify", lambda: browser.press("Enter", key_code=13, modifiers=2))  # Ctrl+Enter runs
    assert len(score_rows(page)) == 2
    # Phone width: no tab scrolls sideways, whatever it shows.
    browser.viewport(390, 844, mobile=True)
    for query in (link(tab="models"), link(task="attention-inspection", model=ATTENTION_MINILM_ID, inputs="a phone sized page", run=1),
                  link(task="image-generation", model=TINY_DCGAN_ID, inputs=4, interpolate_steps=8, run=1), link(tab="train")):
        page.open(query)
        browser.wait("document.querySelector('[role=tabpanel]:not([hidden])').dataset.busy !== 'true'")
        assert browser.js("document.documentElement.scrollWidth <= window.innerWidth"), query
    browser.viewport(*SCREEN)
    # Dark: the page follows prefers-color-scheme.
    light = browser.js("getComputedStyle(document.body).backgroundColor")
    browser.color_scheme("dark")
    try:
        assert browser.js("getComputedStyle(document.body).backgroundColor") == "rgb(21, 23, 27)" != light
        page.run_link("generate", task="text-generation", model=TINY_CHAR_ID, inputs=PROMPT, max_new_tokens=80, seed=3)
        page.screenshot("dark")
    finally:
        browser.color_scheme("light")


@pytest.mark.slow
def test_the_page_works_behind_a_path_prefix(page, runtime, browser):
    """As behind a Route that strips a prefix: a request without it fails, and none may."""
    origin, prefix = runtime.http_url, "/serving/caikit-genai"
    browser.rewrite_urls(f"{origin}/*", lambda url: origin + url[len(origin + prefix):] if url.startswith(origin + prefix) else None)
    try:
        for opened in (f"{origin}{prefix}/", f"{origin}{prefix}"):
            query = link(task="text-classification", model=TINY_SENTIMENT_ID, inputs="a good film", run=1)
            page.finish("classify", lambda: browser.goto(f"{opened}?{query}"), navigates=True)
            assert len(score_rows(page)) == 2
        query = link(task="server-streaming-text-generation", model=TINY_CHAR_ID, inputs=PROMPT, max_new_tokens=30, seed=1, run=1)
        page.finish("generate", lambda: browser.goto(f"{origin}{prefix}/?{query}"), navigates=True)
        assert browser.js("document.getElementById('generate-output').dataset.state") == "done"
        assert browser.js("location.pathname") == f"{prefix}/"
    finally:
        browser.rewrite_urls("", None)
    assert browser.blocked == []


@pytest.mark.slow
def test_a_runtime_with_training_off_says_so_and_serves_the_page_from_its_entry_point(page, runtime, browser):
    """`python -m caikit.runtime` (mend 16 applied by the entry point), with no train routes."""
    from served_runtime import ServedRuntime  # pylint: disable=import-outside-toplevel

    served = ServedRuntime(
        {TINY_SENTIMENT_ID: os.path.join(runtime.models_dir, TINY_SENTIMENT_ID)},
        env={"RUNTIME_SERVICE_GENERATION_ENABLE_TRAINING": "false"},
    )
    try:
        served.wait_ready(lambda url: requests.get(f"{url}/info/models", timeout=2).json()["models"] != [])
        page.open(link(tab="train"), url=served.http_url)
        assert "Training is turned off" in browser.js("document.getElementById('train-off').textContent")
        assert browser.js("[document.getElementById('train-off').hidden, document.getElementById('train-form').hidden]") == [False, True]
        page.run_link("classify", url=served.http_url, task="text-classification", model=TINY_SENTIMENT_ID, inputs="a good film")
        assert [label for label, _ in score_rows(page)] == [result["label"] for result in api(runtime, "text-classification", {"model_id": TINY_SENTIMENT_ID, "inputs": "a good film"})[1]["results"]]
    finally:
        served.stop()


# Each documented link's tab, by its `task` route name or its `tab`.
TABS = {"text-classification": "classify", "text-generation": "generate", "server-streaming-text-generation": "generate",
        "translation": "translate", "translation-list": "translate", "image-generation": "images", "attention-inspection": "attention"}


@pytest.mark.slow
def test_the_links_in_docs_open_as_documented(page):
    with open(DOCS_PAGE, encoding="utf-8") as docs:
        queries = re.findall(r"http://localhost:8080/\?([^\s)`>]+)", docs.read())
    assert len(queries) >= 5
    for query in queries:
        state = dict(re.findall(r"([^&=]+)=([^&]*)", query))
        tab = TABS.get(state.get("task"), state.get("tab"))
        if state.get("run") == "1":
            page.finish(tab, lambda: page.open(query), navigates=True)
        else:
            page.open(query)
        assert page.browser.js("document.querySelector('[role=tabpanel]:not([hidden])').id") == f"panel-{tab}", query
        assert page.texts(".error:not([hidden])") == [], query
