"""AttentionInspector served by the real runtime, over real gRPC and HTTP on loopback: the same
numbers as in-process, encoder-decoder kinds, the size cap, bad input, many requests at once."""

import base64
import io
import os

import grpc
import numpy as np
import pytest
import requests
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from PIL import Image

from caikit_genai import AttentionInspector
from caikit_genai.data_model import AttentionResult
from conftest import ATTENTION_MINILM_ID, TINY_ATTENTION_ID, TINY_ATTENTION_MAX_RESPONSE_BYTES, TINY_ATTENTION_SEQ2SEQ_ID
from hammer import failures, hammer

ROUTE = "/api/v1/task/attention-inspection"
RPC = "AttentionInspectionTaskPredict"
TEXT = "the cat sat on the mat"
PAIR = "a dog was on the log"
TARGET = "kucing itu duduk"


def inspect_grpc(runtime, model_id=TINY_ATTENTION_ID, **fields) -> AttentionResult:
    request = runtime.message("AttentionInspectionTaskRequest", **fields)
    metadata = [("mm-model-id", model_id)] if model_id else []
    return AttentionResult.from_proto(getattr(runtime.inference, RPC)(request, metadata=metadata, timeout=30))


def inspect_http(runtime, model_id=TINY_ATTENTION_ID, text=TEXT, **parameters) -> requests.Response:
    body = {"model_id": model_id, "inputs": text, "parameters": parameters}
    return requests.post(runtime.http_url + ROUTE, json=body, timeout=30)


def decoded_http(response) -> AttentionResult:
    assert response.status_code == 200, response.text
    return AttentionResult.from_json(response.text)


@pytest.fixture(scope="module")
def in_process(runtime):
    """The same model dirs the runtime serves, loaded in this process."""
    return {
        model_id: AttentionInspector.load(os.path.join(runtime.models_dir, model_id))
        for model_id in (TINY_ATTENTION_ID, TINY_ATTENTION_SEQ2SEQ_ID)
    }


def test_grpc_http_and_in_process_give_the_same_numbers(runtime, in_process):
    local = in_process[TINY_ATTENTION_ID].run(TEXT, text_pair=PAIR)
    over_grpc = inspect_grpc(runtime, text=TEXT, text_pair=PAIR)
    over_http = decoded_http(inspect_http(runtime, text_pair=PAIR))
    for served in (over_grpc, over_http):
        assert served.attention("encoder").weights == local.attention("encoder").weights
        assert served.attention("encoder").shape == local.attention("encoder").shape == [2, 2, len(local.tokens), len(local.tokens)]
        assert [(t.text, t.start, t.end) for t in served.tokens] == [(t.text, t.start, t.end) for t in local.tokens]
        assert served.token_segments == local.token_segments
        assert (served.num_layers, served.num_heads) == (2, 2)
        np.testing.assert_allclose(served.attention("encoder").as_numpy().sum(axis=-1), 1.0, atol=len(local.tokens) * 2**-11)


def test_http_json_carries_the_matrices_as_base64_for_the_one_numpy_line(runtime):
    body = inspect_http(runtime, layers=[1], heads=[0]).json()
    group = body["attentions"][0]
    weights = np.frombuffer(base64.b64decode(group["weights"]), group["dtype"]).reshape(group["shape"])
    assert group["dtype"] == "<f2" and weights.shape == (1, 1, len(body["tokens"]), len(body["tokens"]))
    assert "not an explanation" in body["note"]


def test_seq2seq_kinds_over_grpc_and_http_match_in_process(runtime, in_process):
    local = in_process[TINY_ATTENTION_SEQ2SEQ_ID].run(TEXT, target_text=TARGET)
    over_grpc = inspect_grpc(runtime, TINY_ATTENTION_SEQ2SEQ_ID, text=TEXT, target_text=TARGET)
    over_http = decoded_http(inspect_http(runtime, TINY_ATTENTION_SEQ2SEQ_ID, target_text=TARGET))
    for served in (over_grpc, over_http):
        assert [group.kind for group in served.attentions] == ["encoder", "decoder", "cross"]
        assert (served.num_decoder_layers, served.num_decoder_heads) == (3, 4)
        for kind in ("encoder", "decoder", "cross"):
            assert served.attention(kind).weights == local.attention(kind).weights
        assert [token.text for token in served.target_tokens] == [token.text for token in local.target_tokens]
    only_cross = inspect_grpc(runtime, TINY_ATTENTION_SEQ2SEQ_ID, text=TEXT, target_text=TARGET, kinds=["cross"])
    assert [group.kind for group in only_cross.attentions] == ["cross"]


def test_selection_aggregates_and_precisions_over_http(runtime, in_process):
    local = in_process[TINY_ATTENTION_ID]
    for parameters in (
        {"layers": [1], "heads": [1]},
        {"aggregate": "rollout", "layers": [0, 1]},
        {"aggregate": "max", "precision": "uint8"},
        {"exclude_special_tokens": True, "precision": "float32"},
    ):
        served = decoded_http(inspect_http(runtime, **parameters)).attention("encoder")
        assert served.weights == local.run(TEXT, **parameters).attention("encoder").weights, parameters


def test_heatmap_travels_as_a_png_and_counts_toward_the_cap(runtime):
    body = inspect_http(runtime, TINY_ATTENTION_SEQ2SEQ_ID, layers=[0], heatmap=True).json()
    image = Image.open(io.BytesIO(base64.b64decode(body["heatmap"]["image_data"])))
    assert image.format == "PNG" and image.width > 200
    assert inspect_grpc(runtime, TINY_ATTENTION_SEQ2SEQ_ID, text=TEXT, heatmap=True).heatmap.as_pil().size[0] > 200
    # The tiny model's 16 KiB cap holds its matrices but not a grid PNG as well.
    over = inspect_http(runtime, TINY_ATTENTION_ID, heatmap=True)
    assert over.status_code == 400 and "with its heatmap" in over.text


def test_over_the_cap_is_a_clear_invalid_argument_not_a_transport_error(runtime):
    long_text = "the cat sat " * 7  # ~58 tiny-vocabulary tokens: 2 x 2 x 58 x 58 float16 is over the 16 kB cap
    with pytest.raises(grpc.RpcError) as raised:
        inspect_grpc(runtime, text=long_text)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    for advice in ("cap", "layers", "heads", "aggregate", "uint8", "max_tokens"):
        assert advice in raised.value.details()
    assert inspect_http(runtime, text=long_text).status_code == 400
    # Narrowed as the message says, the same input passes.
    narrowed = inspect_grpc(runtime, text=long_text, layers=[1]).attention("encoder")
    assert narrowed.shape[:2] == [1, 2] and 2 * 2 * narrowed.shape[2] ** 2 * 2 > TINY_ATTENTION_MAX_RESPONSE_BYTES


def test_the_default_model_keeps_a_128_token_request_under_grpcs_4_mib(runtime):
    text = " ".join(["word"] * 126)  # 126 words + [CLS] + [SEP]
    served = inspect_grpc(runtime, ATTENTION_MINILM_ID, text=text)
    group = served.attention("encoder")
    assert group.shape == [6, 12, 128, 128] and group.dtype == "<f2"
    assert served.to_proto().ByteSize() < 3 * 2**20


BAD_INPUT = [
    ({"layers": [2]}, "layers [2] out of range"),
    ({"heads": [0, 5]}, "heads [5] out of range"),
    ({"layers": [0, 0]}, "twice"),
    ({"aggregate": "median"}, "aggregate must be one of none, mean, max, rollout"),
    ({"precision": "float8"}, "precision must be one of float16, uint8, float32"),
    ({"target_text": "kucing"}, "encoder only"),
    ({"kinds": ["cross"]}, "no cross attention"),
    ({"max_tokens": -1}, "max_tokens"),
    ({"max_tokens": 2}, "too few"),
]


@pytest.mark.parametrize("parameters, message", BAD_INPUT)
def test_grpc_bad_input_is_invalid_argument_naming_it(runtime, parameters, message):
    with pytest.raises(grpc.RpcError) as raised:
        inspect_grpc(runtime, text=TEXT, **parameters)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in raised.value.details()


@pytest.mark.parametrize("parameters, message", BAD_INPUT)
def test_http_bad_input_is_a_400_naming_it(runtime, parameters, message):
    response = inspect_http(runtime, **parameters)
    assert response.status_code == 400, response.text
    assert message in response.text


@pytest.mark.parametrize(
    "model_id, text, parameters, status, message",
    [
        (TINY_ATTENTION_ID, "", {}, 400, "non-empty"),
        (TINY_ATTENTION_ID, "   ", {}, 400, "non-empty"),
        (TINY_ATTENTION_ID, "the cat " * 40, {}, 400, "set max_tokens"),
        (TINY_ATTENTION_ID, 5, {}, 422, "valid string"),
        (TINY_ATTENTION_ID, TEXT, {"layers": "all"}, 422, "list"),
        (TINY_ATTENTION_SEQ2SEQ_ID, TEXT, {"kinds": ["decoder"]}, 400, "needs a target_text"),
        (TINY_ATTENTION_SEQ2SEQ_ID, TEXT, {"target_text": TARGET, "aggregate": "rollout", "kinds": ["cross"]}, 400, "rollout"),
        ("no-such-model", TEXT, {}, 404, "no-such-model"),
    ],
)
def test_http_more_bad_input(runtime, model_id, text, parameters, status, message):
    response = inspect_http(runtime, model_id, text, **parameters)
    assert response.status_code == status, response.text
    assert message in response.text


def test_many_concurrent_requests_over_grpc_and_http_all_succeed_with_the_lone_answer(runtime):
    """Request threads share the model and its fast tokenizer, called with different truncation
    settings (what makes an unguarded HF tokenizer fail with "Already borrowed"): none may fail
    or differ from a lone call."""
    requests_made = [
        {"text": "The cat sat on the mat.", "layers": [5]},
        {"text": "A dog was on the log, asleep.", "text_pair": "It was tired.", "layers": [5]},
        {"text": "Attention is not an explanation, said the paper.", "max_tokens": 8, "layers": [5]},
        {"text": "Rollout multiplies the layers.", "aggregate": "rollout", "max_tokens": 6},
    ]
    alone = [inspect_grpc(runtime, ATTENTION_MINILM_ID, **fields) for fields in requests_made]

    def call(index):
        fields = dict(requests_made[index % len(requests_made)])
        if index % 2:
            return inspect_grpc(runtime, ATTENTION_MINILM_ID, **fields)
        return decoded_http(inspect_http(runtime, ATTENTION_MINILM_ID, fields.pop("text"), **fields))

    results = hammer(call, requests=96, threads=16)
    assert not failures(results), failures(results)
    for index, result in enumerate(results):
        expected = alone[index % len(requests_made)]
        # Requests share padded forward passes (toolkit/serving/batching.py), which can move a float16
        # weight by one step: the same matrices, to float16's resolution.
        got, want = result.attention("encoder").as_numpy(), expected.attention("encoder").as_numpy()
        assert got.shape == want.shape and np.allclose(got, want, atol=2e-3), index
        assert [token.text for token in result.tokens] == [token.text for token in expected.tokens], index


def test_reflection_and_openapi_name_the_task(runtime):
    stub = reflection_pb2_grpc.ServerReflectionStub(runtime.channel)
    request = reflection_pb2.ServerReflectionRequest(file_containing_symbol="caikit.runtime.Nlp.NlpService")
    replies = list(stub.ServerReflectionInfo(iter([request]), timeout=10))
    assert RPC.encode() in b"".join(b"".join(reply.file_descriptor_response.file_descriptor_proto) for reply in replies)
    spec = requests.get(runtime.http_url + "/openapi.json", timeout=10).json()
    schema = spec["paths"][ROUTE]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert set(schema["properties"]) == {"inputs", "parameters", "model_id"}


def test_the_module_has_no_train_rpc(runtime):
    methods = runtime.training_service.descriptor.methods_by_name
    assert methods and not [name for name in methods if "AttentionInspector" in name]
