"""Every size cap (the Limits table of docs/reliability.md) is refused before work starts, over gRPC and HTTP, with a
message naming the setting; the table documents runtime_config.yaml's defaults; and lowered caps
in a runtime's config are honoured (a runtime process with every cap lowered)."""

import http.client
import json
import os
import re
from dataclasses import fields
from types import SimpleNamespace

import caikit
import pytest
import requests
import yaml
from caikit.runtime.model_management.model_manager import ModelManager

from caikit_genai.toolkit.serving import limits
from caikit_genai.toolkit.serving.limits import Limits
from conftest import REPO_ROOT, TINY_ATTENTION_ID, TINY_CHAR_ID, TINY_DCGAN_ID, TINY_TRANSLATOR_ID
from served_runtime import ServedRuntime
from test_bad_input_matrix import GRPC, HTTP, INVALID, ROUTES, SEND, Case

WIRES = (GRPC, HTTP)
GRPC_MESSAGE_KEY = "grpc.max_receive_message_length"


def route(task, model_id):
    return next(row for row in ROUTES if row.task == task and row.model_id == model_id and not row.streaming)


def answer(handle, wire, task, model_id, **request_fields):
    """(outcome, message) of one request, as the matrix sends it."""
    row = route(task, model_id)
    return SEND[wire](handle, row, Case("limit", request_fields, (), model_id=model_id))


def served(model_id):
    return ModelManager.get_instance().retrieve_model(model_id)


# -- the helper that reads genai.limits ------------------------------------------------------


def test_limits_are_read_from_a_config_mapping():
    assert Limits.from_config(None) == Limits()
    read = Limits.from_config({"max_text_chars": 10, "max_new_tokens": 7, "max_images": None})
    assert (read.max_text_chars, read.max_new_tokens, read.max_images) == (10, 7, None)
    assert read.max_list_items == Limits().max_list_items


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"max_txt_chars": 10}, "unknown keys ['max_txt_chars']"),
        ({"max_text_chars": 0}, "max_text_chars must be a whole number >= 1"),
        ({"max_text_chars": None}, "max_text_chars must be a whole number >= 1, got None"),
        ({"max_list_items": True}, "max_list_items"),
        ({"max_new_tokens": "5"}, "max_new_tokens must be a whole number >= 1 or null"),
    ],
)
def test_bad_limits_config_is_refused_naming_the_key(settings, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        Limits.from_config(settings)


def test_size_check_refuses_long_texts_and_lists_and_passes_the_rest():
    caps = Limits(max_text_chars=5, max_list_items=2)
    limits.check_sizes({"text": "12345", "texts": ["a", "b"], "latents": [0.5] * 10, "num_images": 10**6}, caps)
    with pytest.raises(Exception, match=r"`text` is 6 characters, over the limit of 5 \(genai.limits.max_text_chars\)"):
        limits.check_sizes({"text": "123456"}, caps)
    with pytest.raises(Exception, match=r"`texts` has 3 items, over the limit of 2 \(genai.limits.max_list_items\)"):
        limits.check_sizes({"texts": ["a", "b", "c"]}, caps)
    with pytest.raises(Exception, match=r"`stop_sequences\[1\]` is 6 characters"):
        limits.check_sizes({"stop_sequences": ["ok", "123456"]}, caps)


# -- docs/reliability.md documents the caps runtime_config.yaml sets --------------------------------------


def limits_table():
    with open(os.path.join(REPO_ROOT, "docs", "reliability.md"), encoding="utf-8") as page:
        section = page.read().split("## Limits", 1)[1].split("\n## ", 1)[0]
    return [line for line in section.splitlines() if line.startswith("| `")]


def test_the_limits_table_shows_every_cap_with_its_configured_default():
    with open(os.path.join(REPO_ROOT, "runtime_config.yaml"), encoding="utf-8") as config_file:
        config = yaml.safe_load(config_file)
    configured = {f"genai.limits.{name}": value for name, value in config["genai"]["limits"].items()}
    configured[f"runtime.grpc.options.{GRPC_MESSAGE_KEY}"] = config["runtime"]["grpc"]["options"][GRPC_MESSAGE_KEY]
    assert set(configured) - {f"genai.limits.{name}" for name in (field.name for field in fields(Limits))} == {
        f"runtime.grpc.options.{GRPC_MESSAGE_KEY}"
    }
    rows = limits_table()
    for key, value in configured.items():
        row = next((row for row in rows if f"`{key}`" in row), None)
        assert row is not None, f"docs/reliability.md's Limits table has no row for {key}"
        shown = "null" if value is None else f"{value:,}"
        assert f"| {shown} " in row or f"| `{value}` " in row or f"| {value} " in row, (key, value, row)
    assert Limits.from_config(config["genai"]["limits"]) == Limits(), "the code's defaults and the config's differ"


# -- the session runtime's caps, over both wires ---------------------------------------------


# (what, task, model, the model's work counter, request fields, what the message says): the
# fields and the message may depend on the served model's own caps.
REFUSED_BEFORE_WORK = [
    (
        "a text over max_text_chars", "TextGenerationTask", TINY_CHAR_ID, "chars_generated",
        lambda model: {"text": "the " * 25_001, "max_new_tokens": 4},
        lambda model: ["`text` is 100,004 characters", "genai.limits.max_text_chars"],
    ),
    (
        "a list over max_list_items", "TranslationListTask", TINY_TRANSLATOR_ID, "tokens_generated",
        lambda model: {"texts": ["the cat sees the fish"] * (limits.current().max_list_items + 1)},
        lambda model: [f"`texts` has {limits.current().max_list_items + 1} items", "genai.limits.max_list_items"],
    ),
    (
        "num_images over the model's max_images", "ImageGenerationTask", TINY_DCGAN_ID, "images_generated",
        lambda model: {"num_images": model.max_images + 1},
        lambda model: [f"between 1 and {model.max_images} (this model's max_images)"],
    ),
    (
        "max_new_tokens over the model's limit", "TextGenerationTask", TINY_TRANSLATOR_ID, "tokens_generated",
        lambda model: {"text": "the cat sees the fish", "max_new_tokens": model.max_new_tokens_limit + 1},
        lambda model: [f"max_new_tokens is {model.max_new_tokens_limit + 1}", "this model's max_new_tokens_limit"],
    ),
]


@pytest.mark.parametrize("wire", WIRES)
@pytest.mark.parametrize("what, task, model_id, counter, request_fields, says", REFUSED_BEFORE_WORK, ids=[row[0] for row in REFUSED_BEFORE_WORK])
def test_a_cap_is_refused_before_any_work(runtime, wire, what, task, model_id, counter, request_fields, says):  # pylint: disable=unused-argument
    model = served(model_id)
    before = getattr(model, counter)
    code, message = answer(runtime, wire, task, model_id, **request_fields(model))
    assert code == INVALID and all(part in message for part in says(model)), message
    assert getattr(model, counter) == before


@pytest.mark.parametrize("wire", WIRES)
def test_attention_input_over_the_models_tokens_is_refused(runtime, wire):
    limit = served(TINY_ATTENTION_ID).max_input_tokens
    code, message = answer(runtime, wire, "AttentionInspectionTask", TINY_ATTENTION_ID, text="good " * limit)
    assert code == INVALID and f"at most {limit} are taken (this model's input limit)" in message, message


def test_http_body_over_max_request_body_bytes_is_a_413_before_it_is_read(runtime):
    cap = limits.current().max_request_body_bytes
    # Only the headers go out: the Content-Length alone is refused, no byte of the body is read.
    connection = http.client.HTTPConnection("127.0.0.1", runtime.http_port, timeout=30)
    connection.putrequest("POST", route("TextGenerationTask", TINY_CHAR_ID).http_route)
    connection.putheader("Content-Type", "application/json")
    connection.putheader("Content-Length", str(cap + 1))
    connection.endheaders()
    response = connection.getresponse()
    detail = json.loads(response.read())["detail"]
    connection.close()
    assert response.status == 413 and f"{cap + 1:,} bytes" in detail and "genai.limits.max_request_body_bytes" in detail, detail
    # A body under the cap with a text over the text cap reaches the text cap.
    code, message = answer(runtime, HTTP, "TextGenerationTask", TINY_CHAR_ID, text="a" * (cap // 8))
    assert code == INVALID and "max_text_chars" in message


def test_grpc_message_over_the_servers_cap_is_resource_exhausted(runtime):
    cap = caikit.get_config().runtime.grpc.options[GRPC_MESSAGE_KEY]
    code, message = answer(runtime, GRPC, "TextGenerationTask", TINY_CHAR_ID, text="a" * (cap + 1))
    assert code == "RESOURCE_EXHAUSTED" and "larger than max" in message and str(cap) in message, message
    assert answer(runtime, GRPC, "TextGenerationTask", TINY_CHAR_ID, text="the cat ", max_new_tokens=2)[0] == "OK"


# -- lowered caps in a runtime's config are honoured -----------------------------------------

LOWERED = {
    "genai": {
        "limits": {
            "max_text_chars": 40,
            "max_list_items": 3,
            "max_request_body_bytes": 2048,
            "max_new_tokens": 5,
            "max_images": 2,
            "max_attention_tokens": 8,
        }
    },
    "runtime": {"grpc": {"options": {GRPC_MESSAGE_KEY: 4096}}},
}
SERVED = (TINY_CHAR_ID, TINY_TRANSLATOR_ID, TINY_DCGAN_ID, TINY_ATTENTION_ID)


@pytest.fixture(scope="module")
def lowered(runtime, models_dir, tmp_path_factory):
    """`python -m caikit.runtime` with runtime_config.yaml and a second config file lowering every cap."""
    directory = tmp_path_factory.mktemp("lowered-limits")
    (directory / "limits.yaml").write_text(yaml.safe_dump(LOWERED))
    models = {model_id: os.path.join(models_dir, model_id) for model_id in SERVED}
    with ServedRuntime(
        models, workdir=directory, copy_models=True, config_files=[directory / "limits.yaml"], log_level=None
    ) as served:
        handle = SimpleNamespace(
            http_url=served.http_url, channel=served.channel,
            inference_service=runtime.inference_service, message=runtime.message,
        )

        def every_model_answers(_):
            # Lazily loaded: a model answers once its first request has loaded it.
            for row in (route("TextGenerationTask", TINY_CHAR_ID), route("TranslationTask", TINY_TRANSLATOR_ID),
                        route("ImageGenerationTask", TINY_DCGAN_ID), route("AttentionInspectionTask", TINY_ATTENTION_ID)):
                outcome = answer(handle, GRPC, row.task, row.model_id, **row.good)
                if outcome[0] != "OK":
                    assert outcome[0] in ("UNAVAILABLE", "NOT_FOUND"), (row.model_id, outcome)
                    return False
            return True

        served.wait_ready(every_model_answers, timeout=180)
        yield handle


@pytest.mark.slow
@pytest.mark.parametrize("wire", WIRES)
def test_lowered_text_and_list_caps_are_honoured(lowered, wire):
    at_cap = "the cat " * 5  # 40 characters
    assert answer(lowered, wire, "TextGenerationTask", TINY_CHAR_ID, text=at_cap, max_new_tokens=2)[0] == "OK"
    code, message = answer(lowered, wire, "TextGenerationTask", TINY_CHAR_ID, text=at_cap + "a", max_new_tokens=2)
    assert code == INVALID and "over the limit of 40 (genai.limits.max_text_chars)" in message, message
    texts = ["the cat sees the fish"] * 3
    assert answer(lowered, wire, "TranslationListTask", TINY_TRANSLATOR_ID, texts=texts)[0] == "OK"
    code, message = answer(lowered, wire, "TranslationListTask", TINY_TRANSLATOR_ID, texts=texts + texts[:1])
    assert code == INVALID and "over the limit of 3 (genai.limits.max_list_items)" in message, message


@pytest.mark.slow
@pytest.mark.parametrize("wire", WIRES)
def test_lowered_ceilings_lower_the_models_own_caps(lowered, wire):
    assert answer(lowered, wire, "TextGenerationTask", TINY_CHAR_ID, text="the cat ", max_new_tokens=5)[0] == "OK"
    code, message = answer(lowered, wire, "TextGenerationTask", TINY_CHAR_ID, text="the cat ", max_new_tokens=6)
    assert code == INVALID and "above the limit of 5 characters (the runtime's genai.limits.max_new_tokens)" in message, message
    assert answer(lowered, wire, "ImageGenerationTask", TINY_DCGAN_ID, num_images=2)[0] == "OK"
    code, message = answer(lowered, wire, "ImageGenerationTask", TINY_DCGAN_ID, num_images=3)
    assert code == INVALID and "between 1 and 2 (the runtime's genai.limits.max_images)" in message, message
    assert answer(lowered, wire, "AttentionInspectionTask", TINY_ATTENTION_ID, text="a good film")[0] == "OK"
    # Ten one-letter words are ten tokens in any vocab, plus [CLS] and [SEP]: over the cap of 8 (and under 40 chars).
    code, message = answer(lowered, wire, "AttentionInspectionTask", TINY_ATTENTION_ID, text="a b c d e f g h i j")
    assert code == INVALID and "at most 8 are taken (the runtime's genai.limits.max_attention_tokens)" in message, message


@pytest.mark.slow
def test_lowered_body_and_message_caps_are_honoured(lowered):
    body = json.dumps({"model_id": TINY_CHAR_ID, "inputs": "the cat " * 300}).encode()  # 2.4 kB: over both byte caps
    url = lowered.http_url + route("TextGenerationTask", TINY_CHAR_ID).http_route
    sized = requests.post(url, data=body, headers={"Content-Type": "application/json"}, timeout=30)
    chunked = requests.post(url, data=(body[start : start + 512] for start in range(0, len(body), 512)), timeout=30)
    for response in (sized, chunked):  # refused by its Content-Length, and as it streams in
        assert response.status_code == 413 and "over the limit of 2,048" in response.json()["detail"], response.text
    assert f"{len(body):,} bytes" in sized.json()["detail"]
    code, message = answer(lowered, GRPC, "TextGenerationTask", TINY_CHAR_ID, text="the cat " * 600)
    assert code == "RESOURCE_EXHAUSTED" and "4096" in message, message
    assert answer(lowered, GRPC, "TextGenerationTask", TINY_CHAR_ID, text="the cat ", max_new_tokens=2)[0] == "OK"
