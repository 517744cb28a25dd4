"""Translator in-process: a tiny encoder-decoder trained on the toy pairs (see tiny_models.py)."""

import math

import numpy as np
import pytest
import torch

from caikit.core.exceptions.caikit_core_exception import CaikitCoreException
from caikit.interfaces.nlp.data_model import FinishReason

from caikit_genai import AttentionInspector, Translator
from caikit_genai.modules.translator.module import DEFAULT_NUM_BEAMS
from caikit_genai.toolkit.models.device import amp_dtype, dtype_name, resolve_device
from caikit_genai.toolkit.metrics.translation_report import looped, translation_report
from tiny_models import TINY_TRANSLATOR_RECIPE, toy_translation_pairs

PAIRS = toy_translation_pairs()


@pytest.fixture(scope="module")
def translator(tiny_translator_dir):
    return Translator.load(tiny_translator_dir)


def test_the_tiny_translator_learned_the_toy_pairs(translator):
    outputs = translator.translate_all([pair["source"] for pair in PAIRS])
    correct = sum(output == pair["target"] for output, pair in zip(outputs, PAIRS))
    # Seeded: the same count every run on this code; half is far above chance (1 in 48 per slot).
    assert correct >= len(PAIRS) // 2, list(zip(outputs, [pair["target"] for pair in PAIRS]))[:8]
    assert translator.metrics["final_train_loss"] < 1.0
    assert translator.metrics["steps"] == TINY_TRANSLATOR_RECIPE["max_steps"]


def test_run_and_honest_token_counts(translator):
    result = translator.run("the cat sees the fish")
    assert result.translation_text == translator.translate_all(["the cat sees the fish"])[0]
    assert result.input_token_count == len(translator.tokenizer("the cat sees the fish")["input_ids"])
    target_ids = translator.target_tokenizer(result.translation_text)["input_ids"]
    assert result.generated_tokens == len(target_ids) - 1  # the tokenizer adds [EOS], not counted
    assert result.finish_reason == FinishReason.EOS_TOKEN and result.sentences == 1


def test_the_list_form_equals_one_call_per_text(translator):
    texts = [pair["source"] for pair in PAIRS[:7]] + ["the dog likes the water . the hen eats the rice"]
    listed = translator.run_list(texts).results
    assert [result.translation_text for result in listed] == [translator.run(text).translation_text for text in texts]


def test_the_list_form_runs_length_sorted_batches(translator, monkeypatch):
    widths = []
    generate = translator.model.generate

    def recording_generate(**kwargs):
        widths.append(kwargs["attention_mask"].sum(dim=1).tolist())
        return generate(**kwargs)

    monkeypatch.setattr(translator.model, "generate", recording_generate)
    monkeypatch.setattr(translator, "batch_size", 2)
    texts = ["the cat", "the dog likes the water", "the hen", "the bird eats the rice"]
    translator.run_list(texts)
    assert len(widths) == 2
    assert widths == [[7, 7], [4, 4]]  # longest first, alike together


def test_greedy_generation_matches_translation(translator):
    generated = translator.run_generate("the bird likes the bread")  # caikit-nlp's default: greedy
    assert generated.generated_text == translator.run("the bird likes the bread", num_beams=1).translation_text
    assert generated.seed is None


def test_translation_decodes_the_models_default_way(translator, monkeypatch, tmp_path):
    widths = []
    generate = translator.model.generate

    def recording_generate(**kwargs):
        widths.append(kwargs["num_beams"])
        return generate(**kwargs)

    monkeypatch.setattr(translator.model, "generate", recording_generate)
    short, longer = "the cat", "the dog likes the water"
    assert translator.default_num_beams == DEFAULT_NUM_BEAMS and translator.beams_up_to_tokens == 0
    assert translator.run(short).translation_text == translator.run(short, num_beams=DEFAULT_NUM_BEAMS).translation_text
    translator.run_list([short, longer])
    translator.run(short, num_beams=1)
    assert widths == [DEFAULT_NUM_BEAMS] * 3 + [1]
    # beams_up_to_tokens: inputs past it decode greedily; the translation_* scores use it too.
    monkeypatch.setattr(translator, "beams_up_to_tokens", len(translator.tokenizer(short)["input_ids"]))
    widths.clear()
    translator.run(short), translator.run(longer), translator.run(longer, num_beams=2)
    assert widths == [DEFAULT_NUM_BEAMS, 1, 2]
    widths.clear()
    assert translator.translate_all([longer, short]) == [translator.run(longer).translation_text, translator.run(short).translation_text]
    assert sorted(widths[:2]) == [1, DEFAULT_NUM_BEAMS]
    # A model dir keeps its default decoding.
    monkeypatch.setattr(translator, "default_num_beams", 2)
    translator.save(str(tmp_path / "saved"))
    loaded = Translator.load(str(tmp_path / "saved"))
    assert (loaded.default_num_beams, loaded.beams_up_to_tokens) == (2, translator.beams_up_to_tokens)


def test_the_translation_report_counts_loops_and_dropped_clauses():
    assert looped("buka buka buka berkas") and looped("a b a b a b") and looped("x a b c a b c a b c")
    assert not looped("buku-buku baru") and not looped("a b a b") and not looped("")
    report = translation_report(["buka berkas", "simpan simpan simpan simpan"], ["buka berkas", "simpan dokumen sebagai PDF"])
    assert report["looped"] == 0.5 and report["short"] == 0.0 and 0 < report["bleu"] < 100
    assert translation_report(["buka"], ["buka berkas itu sekarang"])["short"] == 1.0


def test_stream_joins_to_the_unary_text_for_the_same_seed(translator):
    for seed in (1, 2, 3):
        unary = translator.run_generate("the dog sees the rice", decoding_method="SAMPLING", temperature=1.5, seed=seed)
        chunks = list(translator.run_stream_out("the dog sees the rice", decoding_method="SAMPLING", temperature=1.5, seed=seed))
        assert "".join(chunk.generated_text for chunk in chunks) == unary.generated_text
        assert chunks[-1].details.generated_tokens == unary.generated_tokens
        assert chunks[-1].details.finish_reason == unary.finish_reason
        assert all(chunk.details.finish_reason == FinishReason.NOT_FINISHED for chunk in chunks[:-1])


def test_beam_search_for_unary_calls(translator):
    beams = translator.run_generate("the cat eats the bread", num_beams=4)
    assert beams.generated_text and beams.generated_tokens > 0
    assert translator.run("the cat eats the bread", num_beams=4).translation_text == beams.generated_text
    with pytest.raises(CaikitCoreException, match="unary calls only"):
        translator.run_stream_out("the cat eats the bread", num_beams=4)
    with pytest.raises(CaikitCoreException, match="num_beams must be in"):
        translator.run("the cat", num_beams=translator.max_num_beams + 1)


def test_max_new_tokens_cuts_and_says_so(translator):
    result = translator.run_generate("the hen likes the water", max_new_tokens=1)
    assert result.generated_tokens == 1 and result.finish_reason == FinishReason.MAX_TOKENS
    assert translator.run("the hen likes the water", max_new_tokens=1).finish_reason == FinishReason.MAX_TOKENS


def test_long_input_is_split_into_sentences(translator, monkeypatch):
    monkeypatch.setattr(translator, "max_input_tokens", 8)
    first, second = "the cat sees the fish.", "the dog eats the rice."
    result = translator.run(f"{first} {second}")
    assert result.sentences == 2
    assert result.translation_text == translator.run(first).translation_text + " " + translator.run(second).translation_text
    streamed = "".join(chunk.generated_text for chunk in translator.run_stream_out(f"{first} {second}"))
    assert streamed == translator.run_generate(f"{first} {second}").generated_text
    long_sentence = "the cat sees the fish and the dog eats the rice"
    with pytest.raises(CaikitCoreException, match="over this model's limit of 8"):
        translator.run(long_sentence)
    assert translator.run(long_sentence, truncate_input_tokens=8).input_token_count == 8


def test_save_load_round_trip_gives_the_same_output(translator, tmp_path):
    translator.save(str(tmp_path / "copy"))
    again = Translator.load(str(tmp_path / "copy"))
    texts = [pair["source"] for pair in PAIRS[:10]]
    assert again.translate_all(texts) == translator.translate_all(texts)
    assert again.run_generate(texts[0], decoding_method="SAMPLING", seed=5).generated_text == translator.run_generate(
        texts[0], decoding_method="SAMPLING", seed=5
    ).generated_text
    assert (tmp_path / "copy" / "target_tokenizer").is_dir() and (tmp_path / "copy" / "hf_model").is_dir()


def test_attentions_of_a_teacher_forced_pass(translator):
    attentions = translator.attentions("the cat sees the fish", "kucing itu melihat ikan")
    encoder, decoder, cross = attentions["encoder"], attentions["decoder"], attentions["cross"]
    sources, targets = len(attentions["source_tokens"]), len(attentions["target_tokens"])
    assert encoder.shape == (2, 2, sources, sources)
    assert decoder.shape == (1, 2, targets, targets) and cross.shape == (1, 2, targets, sources)
    for matrices in (encoder, decoder, cross):
        np.testing.assert_allclose(matrices.sum(axis=-1), 1.0, atol=1e-4)
    assert attentions["target_tokens"][0] == "[BOS]"
    assert np.allclose(np.triu(decoder[0, 0], k=1), 0)  # the decoder never looks ahead


def test_the_attention_inspector_loads_a_translator_dir(tiny_translator_dir):
    result = AttentionInspector.bootstrap(tiny_translator_dir).run("the cat sees the fish", target_text="kucing itu")
    assert sorted(group.kind for group in result.attentions) == ["cross", "decoder", "encoder"]


def test_any_hf_seq2seq_dir_is_served(tiny_bart_dir):
    bart = Translator.bootstrap(tiny_bart_dir)
    assert isinstance(bart.run("the cat sat on the mat", max_new_tokens=5).translation_text, str)
    chunks = list(bart.run_stream_out("open the file", max_new_tokens=6, decoding_method="SAMPLING", seed=4))
    assert "".join(c.generated_text for c in chunks) == bart.run_generate(
        "open the file", max_new_tokens=6, decoding_method="SAMPLING", seed=4
    ).generated_text


@pytest.mark.parametrize(
    "pairs, message",
    [
        ([{"source": "the cat", "target": "kucing"}, {"source": "", "target": "anjing"}], "pair 1 has no source"),
        ([{"source": "the cat", "target": None}], "pair 0 has no target"),
        ([], "training_data is empty"),
    ],
)
def test_a_bad_pair_is_named(pairs, message, toy_encoder_dir):
    with pytest.raises(ValueError, match=message):
        Translator.train(pairs, encoder_model=toy_encoder_dir, max_steps=1)


def test_fine_tuning_a_given_seq2seq_model(tiny_translator_dir):
    tuned = Translator.train(PAIRS, base_model=tiny_translator_dir, max_steps=3, batch_size=16, val_fraction=0.2)
    assert tuned.metrics["steps"] == 3 and not tuned.metrics["recipe"]["freeze_encoder"]
    assert tuned.metrics["recipe"]["encoder_learning_rate"] is None  # a given model is tuned whole at one rate
    assert {"val_loss", "val_bleu", "val_chrf"} <= set(tuned.metrics["validation"])


def test_the_speed_benchmark_runs(tiny_translator_dir, capsys):
    import importlib.util
    import os

    path = os.path.join(os.path.dirname(os.path.dirname(__file__)), "benchmarks", "translation_speed.py")
    spec = importlib.util.spec_from_file_location("translation_speed", path)
    benchmark = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(benchmark)
    texts = [pair["source"] for pair in PAIRS[:6]]
    assert benchmark.main(["--model-dir", tiny_translator_dir, "--texts", *texts, "--beams", "1", "2"]) == 0
    table = capsys.readouterr().out
    assert "| greedy |" in table and "| 2 beams |" in table and "6/6" in table


def test_tuned_top_encoder_layers_train_over_cached_states(toy_encoder_dir, tmp_path):
    from caikit_genai.toolkit.training.frozen_layers import encoder_layers

    recipe = {**TINY_TRANSLATOR_RECIPE, "max_steps": 4, "eval_every": 0, "max_seconds": None}
    before = Translator.train(PAIRS, encoder_model=toy_encoder_dir, **recipe)
    tuned = Translator.train(PAIRS, encoder_model=toy_encoder_dir, tuned_encoder_layers=1, **recipe)
    assert tuned.metrics["recipe"]["tuned_encoder_layers"] == 1
    assert tuned.metrics["recipe"]["encoder_learning_rate"] == pytest.approx(recipe["learning_rate"] / 10)
    assert before.metrics["recipe"]["encoder_learning_rate"] is None  # nothing of the encoder trained
    first, *_, top = encoder_layers(tuned.model.get_encoder())[1]
    first_before, *_, top_before = encoder_layers(before.model.get_encoder())[1]
    changed = lambda a, b: any(not torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert changed(top, top_before) and not changed(first, first_before)  # only the top layer was trained
    whole = Translator.train(PAIRS, encoder_model=toy_encoder_dir, freeze_encoder=False, **recipe)
    assert whole.metrics["recipe"]["encoder_learning_rate"] == pytest.approx(recipe["learning_rate"] / 10)
    assert changed(encoder_layers(whole.model.get_encoder())[1][0], first_before)  # all of it trained
    tuned.save(str(tmp_path / "tuned"))
    assert Translator.load(str(tmp_path / "tuned")).translate_all(["the cat"]) == tuned.translate_all(["the cat"])
    layer_count = len(encoder_layers(tuned.model.get_encoder())[1])
    with pytest.raises(ValueError, match="tuned_encoder_layers must be below"):
        Translator.train(PAIRS, encoder_model=toy_encoder_dir, tuned_encoder_layers=layer_count, **recipe)
    with pytest.raises(ValueError, match="tuned_encoder_layers must be 0 or more"):
        Translator.train(PAIRS, encoder_model=toy_encoder_dir, tuned_encoder_layers=-1, **recipe)


def test_training_in_bf16_keeps_fp32_weights_and_records_the_dtype_it_ran(toy_encoder_dir):
    """precision=bf16 autocasts the steps where the device computes bf16 natively (CUDA, or a CPU
    with AVX512-BF16/AMX); the weights stay fp32 and metrics.json says which dtype ran."""
    recipe = {**TINY_TRANSLATOR_RECIPE, "max_steps": 4, "eval_every": 0, "max_seconds": None}
    model = Translator.train(PAIRS, encoder_model=toy_encoder_dir, precision="bf16", **recipe)
    assert model.metrics["recipe"]["precision"] == "bf16"
    assert model.metrics["precision"] == dtype_name(amp_dtype(resolve_device("auto"), "bf16"))
    assert all(parameter.dtype == torch.float32 for parameter in model.model.parameters())
    assert math.isfinite(model.metrics["final_train_loss"])
    assert model.translate_all(["the cat"])[0]
    with pytest.raises((ValueError, CaikitCoreException), match="precision"):
        Translator.train(PAIRS, encoder_model=toy_encoder_dir, precision="fp8", **recipe)
