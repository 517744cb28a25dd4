"""Served means concurrent: many request threads at once against every served model, over gRPC
and HTTP, and each answer must be the one a lone call gets. A new served module adds a row here
(AttentionInspector's hammer, which also mixes truncation settings, is in test_attention_runtime.py)."""

import base64
import json
from dataclasses import dataclass
from typing import Any, Callable, Dict, List

import pytest
import requests

from conftest import TINY_CHAR_ID, TINY_DCGAN_ID, TINY_SENTIMENT_ID, TINY_TRANSLATOR_ID
from hammer import failures, hammer

# Texts of mixed lengths (some over the tiny model's 64-token limit, which the truncating call
# cuts): the length check and the padded batch call the tokenizer with different settings.
SENTIMENT_TEXTS = [
    "good",
    "a dull and lifeless film",
    "the story is very charming and the acting is quite brilliant",
    " ".join(["a lovely moving film"] * 20),
    "boring",
    "a clumsy stale mess with this plot",
]
PROMPTS = ["the cat ", "the dog sat", "a hen ", "then the"]


@dataclass
class Row:
    """How to call one served model over each wire, and the part of its answer to compare."""

    model_id: str
    grpc_call: Callable[[Any, int], Any]
    http_call: Callable[[Any, int], Dict]
    grpc_answer: Callable[[Any], Any]
    http_answer: Callable[[Dict], Any]
    # Whether two answers agree; scores of a batched forward pass may differ from a lone one's
    # in the last float bits (padding changes the reduction order), so scores compare closely.
    same: Callable[[Any, Any], bool] = lambda one, other: one == other


def classify_grpc(runtime, index):
    text = SENTIMENT_TEXTS[index % len(SENTIMENT_TEXTS)]
    request = runtime.message("TextClassificationTaskRequest", text=text, truncate_input_tokens=-1)
    return runtime.inference.TextClassificationTaskPredict(
        request, metadata=[("mm-model-id", TINY_SENTIMENT_ID)], timeout=60
    )


def classify_http(runtime, index):
    body = {
        "model_id": TINY_SENTIMENT_ID,
        "inputs": SENTIMENT_TEXTS[index % len(SENTIMENT_TEXTS)],
        "parameters": {"truncate_input_tokens": -1},
    }
    response = requests.post(runtime.http_url + "/api/v1/task/text-classification", json=body, timeout=60)
    assert response.status_code == 200, response.text
    return response.json()


def generation_parameters(index):
    return {"max_new_tokens": 40, "seed": index % 5, "temperature": 0.9}


def generate_grpc(runtime, index):
    request = runtime.message(
        "TextGenerationTaskRequest", text=PROMPTS[index % len(PROMPTS)], **generation_parameters(index)
    )
    return runtime.inference.TextGenerationTaskPredict(request, metadata=[("mm-model-id", TINY_CHAR_ID)], timeout=60)


def generate_http(runtime, index):
    body = {"model_id": TINY_CHAR_ID, "inputs": PROMPTS[index % len(PROMPTS)], "parameters": generation_parameters(index)}
    response = requests.post(runtime.http_url + "/api/v1/task/text-generation", json=body, timeout=60)
    assert response.status_code == 200, response.text
    return response.json()


def image_parameters(index):
    """1 to 3 images, 5 seeds, each class or none: a cycle of 60 distinct requests."""
    parameters = {"seed": index % 5}
    if index % 4 < 3:
        parameters["label"] = ["ring", "square", "stripe"][index % 4]
    return parameters


def images_grpc(runtime, index):
    request = runtime.message("ImageGenerationTaskRequest", num_images=1 + index % 3, **image_parameters(index))
    return runtime.inference.ImageGenerationTaskPredict(request, metadata=[("mm-model-id", TINY_DCGAN_ID)], timeout=60)


def images_http(runtime, index):
    body = {"model_id": TINY_DCGAN_ID, "inputs": 1 + index % 3, "parameters": image_parameters(index)}
    response = requests.post(runtime.http_url + "/api/v1/task/image-generation", json=body, timeout=60)
    assert response.status_code == 200, response.text
    return response.json()


# Greedy, sampled (seeded) and beam translations of mixed lengths, through both of the
# Translator's tokenizers (source and target) from many threads.
TRANSLATOR_TEXTS = ["the cat sees the fish", "the dog", "the hen likes the water . the bird eats the rice", "the bird"]


def translation_parameters(index):
    return [{}, {"decoding_method": "SAMPLING", "seed": index % 5 + 1, "temperature": 1.2}, {"num_beams": 3}][index % 3]


def translate_grpc(runtime, index):
    request = runtime.message(
        "TextGenerationTaskRequest", text=TRANSLATOR_TEXTS[index % len(TRANSLATOR_TEXTS)], **translation_parameters(index)
    )
    return runtime.inference.TextGenerationTaskPredict(request, metadata=[("mm-model-id", TINY_TRANSLATOR_ID)], timeout=60)


def translate_http(runtime, index):
    body = {
        "model_id": TINY_TRANSLATOR_ID,
        "inputs": TRANSLATOR_TEXTS[index % len(TRANSLATOR_TEXTS)],
        "parameters": translation_parameters(index),
    }
    response = requests.post(runtime.http_url + "/api/v1/task/text-generation", json=body, timeout=60)
    assert response.status_code == 200, response.text
    return response.json()


def label_scores(results: List) -> List:
    return [(result["label"], result["score"]) for result in results]


def close_scores(one: List, other: List) -> bool:
    return [label for label, _ in one] == [label for label, _ in other] and all(
        abs(a - b) <= 1e-4 for (_, a), (_, b) in zip(one, other)
    )


ROWS = {
    "sentiment": Row(
        TINY_SENTIMENT_ID,
        classify_grpc,
        classify_http,
        lambda reply: label_scores([{"label": r.label, "score": r.score} for r in reply.results]),
        lambda body: label_scores(body["results"]),
        close_scores,
    ),
    "char-generation": Row(
        TINY_CHAR_ID,
        generate_grpc,
        generate_http,
        lambda reply: reply.generated_text,
        lambda body: body["generated_text"],
    ),
    "image-generation": Row(
        TINY_DCGAN_ID,
        images_grpc,
        images_http,
        lambda reply: [base64.b64encode(image.image_data).decode() for image in reply.images],
        lambda body: [image["image_data"] for image in body["images"]],
    ),
    "translation": Row(
        TINY_TRANSLATOR_ID,
        translate_grpc,
        translate_http,
        lambda reply: reply.generated_text,
        lambda body: body["generated_text"],
    ),
}


@pytest.mark.parametrize("wire", ["grpc", "http"])
@pytest.mark.parametrize("name", sorted(ROWS))
def test_concurrent_requests_all_succeed_with_the_lone_answer(runtime, name, wire):
    row = ROWS[name]
    call = row.grpc_call if wire == "grpc" else row.http_call
    answer = row.grpc_answer if wire == "grpc" else row.http_answer
    distinct = 60  # a multiple of every cycle below (6 texts; 4 prompts x 5 seeds; 3 counts x 5 seeds x 4 labels;
    # 4 texts x 3 kinds x 5 seeds)
    alone = {index: answer(call(runtime, index)) for index in range(distinct)}

    results = hammer(lambda index: call(runtime, index), requests=160, threads=32)

    assert failures(results) == []
    mismatched = [
        index for index, result in enumerate(results) if not row.same(answer(result), alone[index % distinct])
    ]
    assert mismatched == [], f"{len(mismatched)} answers differ from a lone call's, e.g. request {mismatched[:3]}"


def test_the_tokenizer_race_is_real_without_the_guard(runtime):
    """The guard is what makes the sentiment row pass: the same calls on the bare HF tokenizer,
    from many threads with the settings run_batch uses, fail with 'Already borrowed'."""
    from caikit.runtime.model_management.model_manager import ModelManager  # pylint: disable=import-outside-toplevel

    model = ModelManager.get_instance().retrieve_model(TINY_SENTIMENT_ID)
    bare = model.tokenizer.unwrapped

    def tokenize(index):
        texts = [SENTIMENT_TEXTS[index % len(SENTIMENT_TEXTS)]] * 8
        if index % 2:
            return bare(texts, truncation=False)["input_ids"]
        return bare(texts, truncation=True, max_length=16, padding=True)["input_ids"]

    errors = [str(result) for result in hammer(tokenize, requests=4000, threads=32) if isinstance(result, Exception)]
    guarded = hammer(lambda index: model.tokenizer([SENTIMENT_TEXTS[index % 6]] * 8, truncation=bool(index % 2), max_length=16), 4000, 32)
    assert failures(guarded) == []
    assert any("Already borrowed" in error for error in errors), json.dumps(errors[:3])
