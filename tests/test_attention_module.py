"""AttentionInspector in-process: the numbers against transformers' own, selection, aggregates,
rollout, encodings, tokens, encoder-decoder models (a tiny BART, a Translator-shaped dir), save/load."""

import io

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import AutoModel, AutoModelForSeq2SeqLM, AutoTokenizer, BertTokenizer

from caikit.core.exceptions.caikit_core_exception import CaikitCoreException
from caikit_genai import AttentionInspector
from caikit_genai.toolkit.models.hf_models import hf_source
from caikit_genai.views.attention_heatmap import PANEL_FRAME
from tiny_models import build_tiny_translator_dir

TEXT = "the cat sat on the mat"
PAIR = "a dog was on the log"
TARGET = "kucing itu duduk di atas tikar"
# float16 keeps 11 significant bits: a weight in [0, 1] is off by at most 2**-11.
FLOAT16_ERROR = 2**-11


@pytest.fixture(scope="module")
def bert(tiny_bert_dir):
    return AttentionInspector.bootstrap(tiny_bert_dir)


@pytest.fixture(scope="module")
def bart(tiny_bart_dir):
    return AttentionInspector.bootstrap(tiny_bart_dir)


def reference_encoder_attention(model_dir, text, text_pair=None):
    """[layers, heads, n, n] straight from transformers, as its docs show it."""
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModel.from_pretrained(model_dir, attn_implementation="eager").eval()
    with torch.no_grad():
        outputs = model(**tokenizer(text, text_pair, return_tensors="pt"), output_attentions=True)
    return torch.stack(outputs.attentions)[:, 0].numpy()


def reference_seq2seq_attention(model_dir, text, target_text):
    """(encoder, decoder, cross) from a teacher-forced pass: decoder reads [start] + target[:-1]."""
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSeq2SeqLM.from_pretrained(model_dir, attn_implementation="eager").eval()
    labels = tokenizer(text_target=target_text, return_tensors="pt").input_ids
    decoder_input_ids = torch.cat([torch.tensor([[model.config.decoder_start_token_id]]), labels[:, :-1]], dim=1)
    with torch.no_grad():
        outputs = model(**tokenizer(text, return_tensors="pt"), decoder_input_ids=decoder_input_ids, output_attentions=True)
    return tuple(
        torch.stack(stack)[:, 0].numpy()
        for stack in (outputs.encoder_attentions, outputs.decoder_attentions, outputs.cross_attentions)
    )


def numpy_rollout(weights):
    """Abnar & Zuidema (2020), written out again: A = 0.5 mean_heads(W) + 0.5 I, rows normalised,
    rollout(l) = A(l) ... A(0)."""
    result, rollouts = None, []
    for layer in weights.astype(np.float64):
        mixed = 0.5 * layer.mean(axis=0) + 0.5 * np.eye(layer.shape[-1])
        mixed = mixed / mixed.sum(axis=-1, keepdims=True)
        result = mixed if result is None else mixed @ result
        rollouts.append(result)
    return np.stack(rollouts)


def test_weights_equal_transformers_own_to_the_float16_error(bert, tiny_bert_dir):
    expected = reference_encoder_attention(tiny_bert_dir, TEXT, PAIR)
    result = bert.run(TEXT, text_pair=PAIR)
    group = result.attention("encoder")
    assert group.dtype == "<f2" and group.shape == list(expected.shape)
    assert result.num_layers == 2 and result.num_heads == 2 and result.num_decoder_layers == 0
    np.testing.assert_allclose(group.as_numpy(), expected, atol=FLOAT16_ERROR)
    # The README's one line gives the same array.
    one_line = np.frombuffer(group.weights, group.dtype).reshape(group.shape)
    np.testing.assert_array_equal(one_line, group.as_numpy())
    np.testing.assert_allclose(group.as_numpy().sum(axis=-1), 1.0, atol=group.shape[-1] * FLOAT16_ERROR)
    assert "not an explanation" in result.note


def test_float32_is_exact_and_uint8_is_within_half_a_step_per_row(bert, tiny_bert_dir):
    expected = reference_encoder_attention(tiny_bert_dir, TEXT)
    exact = bert.run(TEXT, precision="float32").attention("encoder")
    assert exact.dtype == "<f4" and not exact.row_scales
    np.testing.assert_allclose(exact.as_numpy(), expected, atol=1e-6)
    quantized = bert.run(TEXT, precision="uint8").attention("encoder")
    assert quantized.dtype == "u1" and len(quantized.weights) == expected.size
    assert len(quantized.row_scales) == 4 * expected.size // expected.shape[-1]
    step = expected.max(axis=-1, keepdims=True) / 255
    assert np.all(np.abs(quantized.as_numpy() - expected) <= step / 2 + 1e-6)


def test_tokens_carry_offsets_and_segments(bert):
    result = bert.run(TEXT, text_pair=PAIR)
    texts = [token.text for token in result.tokens]
    assert texts[0] == "[CLS]" and texts[-1] == "[SEP]" and texts.count("[SEP]") == 2
    second = texts.index("[SEP]") + 1
    assert result.token_segments == [0] * second + [1] * (len(texts) - second)
    for token, segment in zip(result.tokens, result.token_segments):
        source = TEXT if segment == 0 else PAIR
        if token.text not in ("[CLS]", "[SEP]"):
            assert source[token.start : token.end] == token.text.replace("##", "")


def test_selection_returns_exactly_what_was_asked_in_that_order(bert, tiny_bert_dir):
    expected = reference_encoder_attention(tiny_bert_dir, TEXT)
    group = bert.run(TEXT, layers=[1], heads=[1, 0]).attention("encoder")
    assert group.layers == [1] and group.heads == [1, 0] and group.shape[:2] == [1, 2]
    np.testing.assert_allclose(group.as_numpy()[0], expected[1][[1, 0]], atol=FLOAT16_ERROR)


def test_mean_max_and_rollout_match_numpy(bert, tiny_bert_dir):
    expected = reference_encoder_attention(tiny_bert_dir, TEXT)
    mean = bert.run(TEXT, aggregate="mean", precision="float32").attention("encoder")
    np.testing.assert_allclose(mean.as_numpy()[:, 0], expected.mean(axis=1), atol=1e-6)
    largest = bert.run(TEXT, aggregate="max", heads=[0, 1], precision="float32").attention("encoder")
    np.testing.assert_allclose(largest.as_numpy()[:, 0], expected.max(axis=1), atol=1e-6)
    rollout = bert.run(TEXT, aggregate="rollout", precision="float32").attention("encoder")
    assert rollout.aggregate == "rollout" and rollout.shape[:2] == [2, 1]
    np.testing.assert_allclose(rollout.as_numpy()[:, 0], numpy_rollout(expected), atol=1e-5)
    np.testing.assert_allclose(rollout.as_numpy().sum(axis=-1), 1.0, atol=1e-5)
    # The rollout of layer 1 alone is still computed through layer 0.
    last = bert.run(TEXT, aggregate="rollout", layers=[1], precision="float32").attention("encoder")
    np.testing.assert_allclose(last.as_numpy()[0, 0], numpy_rollout(expected)[1], atol=1e-5)


def test_excluding_special_tokens_drops_their_rows_and_columns_and_renormalizes(bert, tiny_bert_dir):
    expected = reference_encoder_attention(tiny_bert_dir, TEXT)[:, :, 1:-1, 1:-1]
    expected = expected / expected.sum(axis=-1, keepdims=True)
    result = bert.run(TEXT, exclude_special_tokens=True, precision="float32")
    assert "[CLS]" not in [token.text for token in result.tokens]
    group = result.attention("encoder")
    assert group.renormalized
    np.testing.assert_allclose(group.as_numpy(), expected, atol=1e-6)


def test_long_input_is_refused_unless_max_tokens_cuts_it(bert):
    long_text = "the cat sat " * 40
    with pytest.raises(CaikitCoreException, match="max_tokens"):
        bert.run(long_text)
    result = bert.run(long_text, max_tokens=20)
    assert result.truncated and len(result.tokens) == 20
    assert result.attention("encoder").shape[-2:] == [20, 20]


def test_seq2seq_gives_encoder_decoder_and_cross_attention_as_transformers_does(bart, tiny_bart_dir):
    encoder, decoder, cross = reference_seq2seq_attention(tiny_bart_dir, TEXT, TARGET)
    result = bart.run(TEXT, target_text=TARGET)
    assert [group.kind for group in result.attentions] == ["encoder", "decoder", "cross"]
    assert (result.num_layers, result.num_heads, result.num_decoder_layers, result.num_decoder_heads) == (2, 2, 3, 4)
    for kind, expected in (("encoder", encoder), ("decoder", decoder), ("cross", cross)):
        np.testing.assert_allclose(result.attention(kind).as_numpy(), expected, atol=FLOAT16_ERROR)
    # Teacher-forced rows line up with the target: the start token, then the target's tokens.
    assert len(result.target_tokens) == decoder.shape[-1] == cross.shape[-2]
    assert result.target_tokens[0].text == "</s>"
    assert "".join(token.text for token in result.target_tokens[2:]).replace("Ġ", " ") == TARGET
    # Decoder self-attention is causal: nothing above the diagonal.
    assert np.all(np.triu(result.attention("decoder").as_numpy(), k=1) == 0)
    # Without target_text only the encoder runs.
    assert [group.kind for group in bart.run(TEXT).attentions] == ["encoder"]


def test_a_translator_shaped_dir_loads_as_is_with_its_target_tokenizer(tmp_path, tiny_bert_dir):
    translator_dir = build_tiny_translator_dir(str(tmp_path / "translator"), tiny_bert_dir)
    for base_model in (translator_dir, f"{translator_dir}/hf_model"):
        inspector = AttentionInspector.bootstrap(base_model)
        result = inspector.run(TEXT, target_text="kucing itu duduk")
        assert [token.text for token in result.target_tokens] == ["[BOS]", "kucing", "itu", "duduk"]
        assert result.attention("cross").shape == [1, 4, 4, len(result.tokens)]
    inspector.save(str(tmp_path / "wrapped"))
    reloaded = AttentionInspector.load(str(tmp_path / "wrapped"))
    assert reloaded.run(TEXT, target_text="kucing").attention("cross").weights == inspector.run(
        TEXT, target_text="kucing"
    ).attention("cross").weights


def test_save_load_round_trip_gives_the_same_bytes(bert, tmp_path):
    bert.save(str(tmp_path / "attention"))
    reloaded = AttentionInspector.load(str(tmp_path / "attention"))
    assert reloaded.stacks == bert.stacks and reloaded.max_response_bytes == bert.max_response_bytes
    assert reloaded.run(TEXT).attention("encoder").weights == bert.run(TEXT).attention("encoder").weights


def test_slow_tokenizers_get_offsets_by_search(bert, tiny_bert_dir):
    slow = AttentionInspector(BertTokenizer.from_pretrained(tiny_bert_dir), bert.model)
    fast_tokens = bert.run(TEXT, text_pair=PAIR).tokens
    slow_result = slow.run(TEXT, text_pair=PAIR)
    assert [(t.text, t.start, t.end) for t in slow_result.tokens] == [(t.text, t.start, t.end) for t in fast_tokens]
    assert slow_result.attention("encoder").weights == bert.run(TEXT, text_pair=PAIR).attention("encoder").weights


def panel_grid(png_bytes):
    """(rows, most panels in a row) of heatmap panels in a PNG, found by their grey frames'
    top-left corners."""
    pixels = np.asarray(Image.open(io.BytesIO(png_bytes)).convert("RGB"))
    frame = np.pad(np.all(pixels == PANEL_FRAME, axis=-1), 1)
    corners = frame[1:-1, 1:-1] & frame[1:-1, 2:] & frame[2:, 1:-1] & ~frame[1:-1, :-2] & ~frame[:-2, 1:-1]
    counts = np.unique(np.nonzero(corners)[0], return_counts=True)[1]
    return len(counts), int(counts.max()) if counts.size else 0


def test_heatmap_is_a_png_of_the_returned_matrices_one_panel_each(bert):
    assert Image.open(io.BytesIO(bert.run(TEXT, heatmap=True).heatmap.image_data)).format == "PNG"
    assert panel_grid(bert.run(TEXT, layers=[0], heads=[1], heatmap=True).heatmap.image_data) == (1, 1)
    assert panel_grid(bert.run(TEXT, layers=[1], heatmap=True).heatmap.image_data) == (1, 2)
    assert panel_grid(bert.run(TEXT, heatmap=True).heatmap.image_data) == (2, 2)
    assert panel_grid(bert.run(TEXT, aggregate="mean", heatmap=True).heatmap.image_data) == (2, 1)
    one = np.asarray(Image.open(io.BytesIO(bert.run(TEXT, layers=[0], heads=[1], heatmap=True).heatmap.image_data)))
    assert (one[..., :3].min(axis=-1) < 100).any(), "the heatmap has no dark (high-weight) cells"


def test_a_model_loaded_with_sdpa_returns_no_weights_and_is_refused(tiny_bart_dir):
    # BART's sdpa kernel returns None for the weights (transformers 5 does so for every model).
    model = AutoModelForSeq2SeqLM.from_pretrained(tiny_bart_dir, attn_implementation="sdpa")
    with pytest.raises(RuntimeError, match="attn_implementation='eager'"):
        AttentionInspector(AutoTokenizer.from_pretrained(tiny_bart_dir), model)


def test_hub_ids_stay_hub_ids_and_paths_must_exist():
    assert not hf_source("sentence-transformers/all-MiniLM-L6-v2").local
    with pytest.raises(CaikitCoreException, match="not a directory"):
        hf_source("/no/such/dir")


def test_there_is_nothing_to_train():
    assert "train" not in AttentionInspector.__dict__
