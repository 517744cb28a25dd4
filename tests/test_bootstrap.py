"""The default-model build, run on small slices of the same offline data."""

import json
import os

import pytest

from caikit_genai import SentimentClassifier
from caikit_genai.bootstrap import SENTIMENT_RECIPE, BUILDERS, build_sentiment, build_sentiment_minilm, main, sentiment_splits
from caikit_genai.toolkit.models.device import cpu_has_native_bf16
from caikit_genai.toolkit.offline_data.rotten_tomatoes import rotten_tomatoes_snippets


def test_rotten_tomatoes_snippets_are_read_offline():
    snippets = rotten_tomatoes_snippets()
    labels = [label for _, label in snippets]
    assert 12_000 < len(snippets) < 13_000  # 7,403 fresh + 5,405 rotten, less duplicates
    assert set(labels) == {"positive", "negative"}
    assert labels.count("positive") > labels.count("negative")
    assert len({text for text, _ in snippets}) == len(snippets)


def test_test_split_never_overlaps_training():
    train, validation, test = sentiment_splits()
    train_texts, validation_texts, test_texts = ({t for t, _ in split} for split in (train, validation, test))
    assert not train_texts & test_texts and not validation_texts & test_texts and not train_texts & validation_texts
    total = len(train) + len(validation) + len(test)
    assert 0.08 < len(test) / total < 0.12


def _assert_held_out_report(metrics, model_path):
    assert 0.0 <= metrics["test_accuracy"] <= 1.0
    assert metrics["test_examples"] == 16
    low, high = metrics["test_accuracy_95ci"]
    assert low <= metrics["test_accuracy"] <= high
    assert set(metrics["test_per_class"]) == {"negative", "positive"}
    assert 0.0 <= metrics["test_ece"] <= 1.0 and metrics["latency_ms_p50"] > 0
    assert 0 < metrics["build_seconds"] and metrics["build_budget_seconds"] > 0
    with open(os.path.join(model_path, "metrics.json"), encoding="utf-8") as metrics_file:
        assert json.load(metrics_file)["test_accuracy"] == metrics["test_accuracy"]
    assert SentimentClassifier.load(model_path).run("A moving film.").results


def test_build_sentiment_then_minilm_on_a_slice_write_served_models_with_held_out_metrics(tmp_path, tiny_bert_dir):
    model_path = str(tmp_path / "sentiment")
    metrics = build_sentiment(model_path, base_model=tiny_bert_dir, limit=64, epochs=1, batch_size=16, freeze_layers=1)
    _assert_held_out_report(metrics, model_path)
    assert metrics["freeze_layers"] == 1 and metrics["cache_seconds"] >= 0  # the cached-lower-layers path
    assert metrics["recipe"]["learning_rate"] == SENTIMENT_RECIPE["learning_rate"]  # the rest is the recipe's
    # The recipe's bf16 where this CPU has it natively, and its temperature fitted on the validation slice.
    assert metrics["precision"] == ("bfloat16" if cpu_has_native_bf16() else "float32")
    assert metrics["calibration_temperature"] > 0 and 0 <= metrics["val_ece_calibrated"] <= 1

    student_path = str(tmp_path / "sentiment-minilm")
    student = build_sentiment_minilm(student_path, base_model=tiny_bert_dir, limit=64, epochs=1, batch_size=16)
    _assert_held_out_report(student, student_path)
    assert student["teacher"]["test_accuracy"] == metrics["test_accuracy"]  # distilled from `sentiment` beside it
    assert student["teacher_model"] and student["unlabelled_examples"] == 64


def test_sentiment_minilm_refuses_to_build_without_its_teacher(tmp_path):
    with pytest.raises(FileNotFoundError, match="make models"):
        build_sentiment_minilm(str(tmp_path / "sentiment-minilm"), limit=8)
    assert not os.path.exists(tmp_path / "sentiment-minilm")


def test_missing_only_skips_models_that_exist(tmp_path):
    for name in BUILDERS:
        (tmp_path / name).mkdir()
    assert main(["--models-dir", str(tmp_path), "--missing"]) == 0
    assert all(os.listdir(tmp_path / name) == [] for name in BUILDERS)
