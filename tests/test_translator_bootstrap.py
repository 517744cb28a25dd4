"""The translator-en-id build, on a small slice of the same data (`make data` unpacks it)."""

import json
import os

import pytest

from caikit_genai import Translator
from caikit_genai.bootstrap import BUILDERS, build_translator_en_id

pytestmark = pytest.mark.slow


def test_build_translator_en_id_on_a_slice_writes_a_served_model_with_held_out_scores(tmp_path, toy_encoder_dir):
    model_path = str(tmp_path / "translator-en-id")
    metrics = build_translator_en_id(
        model_path,
        max_help_pages=40,
        max_test_sentences=20,
        encoder_model=toy_encoder_dir,  # the recipe's MiniLM-L6, swapped for speed
        tuned_encoder_layers=1,  # of the toy encoder's 2 (the recipe tunes MiniLM's top 2 of 6)
        decoder_layers=1,
        decoder_heads=2,
        target_vocab_size=300,
        batch_size=16,
        max_steps=100_000,
        max_seconds=3.0,
        eval_every=0,
        max_eval_sentences=10,
    )
    assert metrics["stopped_by_time_budget"]
    assert metrics["test"]["help"]["sentences"] == 20 and metrics["test"]["ui"]["sentences"] == 20
    for key in ("test_help_bleu", "test_help_chrf", "test_ui_bleu", "test_ui_chrf"):
        assert 0 <= metrics[key] <= 100 and 0 <= metrics[f"{key}_4_beams"] <= 100
    assert metrics["recipe"]["tuned_encoder_layers"] == 1
    assert {"val_loss", "val_bleu", "val_chrf"} <= set(metrics["validation"])
    assert metrics["source_pairs"]["ui_strings"] > 15_000 and metrics["source_pairs"]["dictionary"] > 9_000
    with open(os.path.join(model_path, "metrics.json"), encoding="utf-8") as metrics_file:
        assert json.load(metrics_file)["test_help_bleu"] == metrics["test_help_bleu"]
    translation = Translator.load(model_path).run("Open the file", max_new_tokens=5)
    assert translation.generated_tokens <= 5
    assert BUILDERS["translator-en-id"] is build_translator_en_id
