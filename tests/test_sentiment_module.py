"""SentimentClassifier in-process: training, batching, save/load, bootstrap and bad input."""

import os
import sys

import numpy as np
import pytest
import torch
from transformers import AutoConfig, AutoModel

from caikit.core.data_model import DataStream
from caikit.core.exceptions.caikit_core_exception import CaikitCoreException, CaikitCoreStatusCode
from caikit_genai import SentimentClassifier
from caikit_genai.data_model import LabeledText
from caikit_genai.toolkit.training.temperature import rescale
from conftest import REPO_ROOT
from hammer import failures, hammer
from tiny_models import sentiment_examples


@pytest.fixture(scope="module")
def classifier(tiny_bert_dir):
    stream = DataStream.from_iterable([LabeledText(**example) for example in sentiment_examples(200)])
    return SentimentClassifier.train(
        stream, base_model=tiny_bert_dir, epochs=6, batch_size=16, learning_rate=3e-3, val_fraction=0.2
    )


def test_training_learns_the_labels_from_the_data(classifier):
    assert classifier.labels == ["negative", "positive"]
    assert classifier.metrics["validation_examples"] == 40
    assert classifier.metrics["val_accuracy"] >= 0.9
    assert classifier.run("a lovely superb story").results[0].label == "positive"
    assert classifier.run("a tedious stale plot").results[0].label == "negative"


def test_three_labels_are_learned_too(tiny_bert_dir):
    examples = sentiment_examples(120) + [{"text": f"the film is {w}", "label": "neutral"} for w in ("a", "it") * 20]
    model = SentimentClassifier.train(examples, base_model=tiny_bert_dir, epochs=2, batch_size=16, learning_rate=3e-3)
    assert model.labels == ["negative", "neutral", "positive"]
    assert len(model.run("good film").results) == 3


def test_run_batch_matches_run(classifier):
    texts = ["a good film", "an awful boring mess", "charming and lovely acting"]
    batched = classifier.run_batch(texts)
    for text, result in zip(texts, batched):
        single = classifier.run(text)
        assert [r.label for r in result.results] == [r.label for r in single.results]
        assert result.results[0].score == pytest.approx(single.results[0].score, abs=1e-5)


def test_save_load_round_trip_gives_identical_scores(classifier, tmp_path):
    classifier.save(str(tmp_path / "model"))
    assert sorted(os.listdir(tmp_path)) == ["model"]  # no partial dir left beside it
    loaded = SentimentClassifier.load(str(tmp_path / "model"))
    for text in ["a good film", "a dull mess", "the plot"]:
        before, after = classifier.run(text), loaded.run(text)
        assert [(r.label, r.score) for r in before.results] == [(r.label, r.score) for r in after.results]
    assert loaded.metrics["val_accuracy"] == classifier.metrics["val_accuracy"]


def test_save_over_an_existing_model_replaces_it(classifier, tmp_path):
    target = tmp_path / "model"
    target.mkdir()
    (target / "stale.txt").write_text("old")
    classifier.save(str(target))
    assert not (target / "stale.txt").exists()
    assert (target / "config.yml").exists()


def test_bootstrap_wraps_a_saved_hf_classifier(classifier, tmp_path):
    hf_dir = str(tmp_path / "hf")
    classifier.model.save_pretrained(hf_dir)
    classifier.tokenizer.save_pretrained(hf_dir)
    wrapped = SentimentClassifier.bootstrap(hf_dir)
    assert wrapped.labels == classifier.labels
    assert wrapped.run("a good film").results[0].score == pytest.approx(
        classifier.run("a good film").results[0].score, abs=1e-5
    )


def test_a_mean_pooled_head_learns_reads_the_unpadded_mean_and_round_trips(tiny_bert_dir, tmp_path):
    """pooling=mean: the head reads the masked mean of the token states; the saved dir is the
    encoder (AutoModel loads it) plus the head's weights, and loads back to the same scores."""
    model = SentimentClassifier.train(
        sentiment_examples(200), base_model=tiny_bert_dir, pooling="mean",
        epochs=6, batch_size=16, learning_rate=3e-3, val_fraction=0.2, calibrate=True,
    )
    assert type(model.model).__name__ == "MeanPooledClassifier"
    assert model.metrics["val_accuracy"] >= 0.9
    # Padding changes nothing: a short text scores the same alone and beside a long one.
    alone = model.scores_of(["a good film"])
    model.frozen_states = None
    beside = model.run_batch(["a good film", "a dull and tedious and stale and boring mess of a film"])
    assert beside[0].results[0].score == pytest.approx(float(alone.max()), abs=1e-5)
    # The logits are the head over the masked mean of the encoder's last states.
    ids = model.tokenizer(["a lovely superb story"])["input_ids"]
    with torch.no_grad():
        states = model.model.encoder(input_ids=torch.tensor(ids)).last_hidden_state
        expected = torch.softmax(model.model.classifier(states.mean(dim=1)), dim=-1).numpy()
    assert np.allclose(model.scores_of(["a lovely superb story"]), expected, atol=1e-5)

    model.save(str(tmp_path / "mean"))
    hf_dir = tmp_path / "mean" / "hf_model"
    assert (hf_dir / "pooled_classifier.safetensors").exists()
    assert AutoConfig.from_pretrained(str(hf_dir)).classifier_pooling == "mean"
    loaded = SentimentClassifier.load(str(tmp_path / "mean"))
    texts = ["a good film", "a dull mess", "the plot"]
    assert np.array_equal(loaded.scores_of(texts), model.scores_of(texts))
    # Served means concurrent: many request threads at once get what a lone call gets.
    def answer(text):
        best = loaded.run(text).results[0]
        return best.label, round(best.score, 4)

    alone_answers = [answer(text) for text in texts]
    results = hammer(lambda index: answer(texts[index % 3]), requests=48, threads=12)
    assert not failures(results), failures(results)
    assert results == [alone_answers[index % 3] for index in range(48)]
    # The serving benchmark's floor (no pipeline loads this head) scores it the same, padded or not.
    sys.path.insert(0, os.path.join(REPO_ROOT, "benchmarks"))
    from serving import plain_classifier  # pylint: disable=import-outside-toplevel

    classify = plain_classifier(str(hf_dir))
    assert np.allclose(classify(texts, batch_size=3), model.scores_of(texts), atol=1e-5)
    assert np.allclose(classify(texts[0]), model.scores_of(texts[:1]), atol=1e-5)


def test_bootstrap_of_a_bare_encoder_names_its_labels(tiny_bert_dir):
    wrapped = SentimentClassifier.bootstrap(tiny_bert_dir, labels=["bad", "good"])
    assert sorted(r.label for r in wrapped.run("film").results) == ["bad", "good"]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"text": None}, "non-empty"),
        ({"text": ""}, "non-empty"),
        ({"text": 12}, "must be a string"),
        ({"text": "good", "top_k": -1}, "top_k"),
        ({"text": "good " * 100}, "tokens long"),
        ({"text": "good", "truncate_input_tokens": -2}, "truncate_input_tokens"),
    ],
)
def test_bad_input_raises_invalid_argument(classifier, kwargs, message):
    with pytest.raises(CaikitCoreException) as raised:
        classifier.run(**kwargs)
    assert raised.value.status_code == CaikitCoreStatusCode.INVALID_ARGUMENT
    assert message in str(raised.value)


def test_truncation_only_when_asked(classifier):
    long_text = "good " * 100
    assert classifier.run(long_text, truncate_input_tokens=-1).results
    assert classifier.run(long_text, truncate_input_tokens=10).results


def test_layer_lr_decay_tunes_the_lower_layers_slower(tiny_bert_dir):
    """With layer_lr_decay the lowest layer moves far less than it does at one rate for all
    (the rates themselves: test_toolkit)."""
    base = AutoModel.from_pretrained(tiny_bert_dir).encoder.layer[0].state_dict()

    def lowest_layer_shift(model):
        tuned = model.model.bert.encoder.layer[0].state_dict()
        return sum(float((tuned[name] - base[name]).abs().sum()) for name in base)

    common = dict(base_model=tiny_bert_dir, epochs=4, batch_size=16, learning_rate=3e-3, val_fraction=0.2, seed=3)
    one_rate = SentimentClassifier.train(sentiment_examples(160), **common)
    decayed = SentimentClassifier.train(sentiment_examples(160), layer_lr_decay=0.3, **common)
    assert one_rate.metrics["val_accuracy"] >= 0.9
    assert lowest_layer_shift(decayed) < lowest_layer_shift(one_rate) / 5


@pytest.mark.parametrize(
    "data, kwargs, message",
    [
        ([], {}, "empty"),
        ([{"text": "good", "label": "positive"}] * 3, {}, "at least 2 distinct labels"),
        ([{"text": "", "label": "positive"}], {}, "no text"),
        (sentiment_examples(10), {"epochs": 0}, "epochs"),
        (sentiment_examples(10), {"learning_rate": -1.0}, "learning_rate"),
        (sentiment_examples(10), {"base_model": "/no/such/dir"}, "not a directory"),
        (sentiment_examples(10), {"calibrate": True}, "calibrate fits a temperature on validation data"),
        (sentiment_examples(10), {"precision": "fp8"}, "precision"),
        (sentiment_examples(10), {"pooling": "max"}, "pooling must be one of ['cls', 'mean']"),
        (sentiment_examples(10), {"layer_lr_decay": 1.5}, "layer_lr_decay"),
        (sentiment_examples(10), {"ema_decay": 1.0}, "ema_decay must be 0 (no average) or below 1"),
        (sentiment_examples(10), {"ema_decay": 0.9}, "ema_decay keeps the weights or their average"),
    ],
)
def test_bad_training_arguments_are_rejected(tiny_bert_dir, data, kwargs, message):
    kwargs = {"base_model": tiny_bert_dir, **kwargs}
    with pytest.raises((ValueError, CaikitCoreException)) as raised:
        SentimentClassifier.train(data, **kwargs)
    assert message in str(raised.value)


@pytest.mark.parametrize("extra", [{}, {"freeze_layers": 1, "ema_decay": 0.9}], ids=["weights", "weights-or-their-average"])
def test_the_best_validation_evaluation_is_kept(tiny_bert_dir, extra):
    """Each evaluation scores the weights and, with ema_decay, their moving average (over the
    cached states of frozen layers here); the kept weights serve the best validation score."""
    validation = [(e["text"], e["label"]) for e in sentiment_examples(40, seed=9)]
    model = SentimentClassifier.train(
        sentiment_examples(120),
        validation_data=[{"text": t, "label": l} for t, l in validation],
        base_model=tiny_bert_dir,
        epochs=4,
        batch_size=16,
        learning_rate=3e-3,
        **extra,
    )
    evaluations = model.metrics["evaluations"]
    candidates = (("", "trained"), ("_averaged", "averaged")) if extra else (("", "trained"),)
    scored = [(e[f"val_accuracy{suffix}"], e["step"], weights) for e in evaluations for suffix, weights in candidates]
    best = max(score for score, _, _ in scored)
    assert len(evaluations) == 4
    assert model.metrics["val_accuracy"] == best
    assert model.accuracy(validation) == pytest.approx(best)
    if extra:
        assert (best, model.metrics["kept_weights_of_step"], model.metrics["kept_weights"]) in scored
        # The average is not the weights: somewhere their validation scores differ.
        assert any(e["val_ece"] != e["val_ece_averaged"] for e in evaluations)
    else:
        assert "kept_weights" not in model.metrics and "val_accuracy_averaged" not in evaluations[0]


def test_calibration_keeps_the_labels_and_lowers_the_validation_calibration_error(tiny_bert_dir):
    """The temperature is fitted on the validation split and folded into the head: served
    scores are the calibrated ones, the labels are the uncalibrated model's."""
    validation = [(e["text"], e["label"]) for e in sentiment_examples(60, seed=9)]
    common = dict(
        validation_data=[{"text": t, "label": l} for t, l in validation],
        base_model=tiny_bert_dir,
        epochs=8,
        batch_size=16,
        learning_rate=3e-3,
    )
    plain = SentimentClassifier.train(sentiment_examples(160), **common)
    calibrated = SentimentClassifier.train(sentiment_examples(160), calibrate=True, **common)
    assert "calibration_temperature" not in plain.metrics
    temperature = calibrated.metrics["calibration_temperature"]
    assert temperature != 1.0
    assert calibrated.metrics["val_ece_calibrated"] <= calibrated.metrics["val_ece"]
    texts = [text for text, _ in validation]
    before, after = plain.scores_of(texts), calibrated.scores_of(texts)
    assert (before.argmax(axis=1) == after.argmax(axis=1)).all()
    # Same weights (same seed), logits divided by the temperature.
    assert np.allclose(after, rescale(before, temperature), atol=1e-4)
