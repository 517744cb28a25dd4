"""SentimentClassifier.train's levers for the default recipe: frozen lower layers over cached
states, distillation from a teacher (with unlabelled text), and the held-out report."""

import os

import numpy as np
import pytest
import torch

from caikit_genai import SentimentClassifier
from caikit_genai.modules.sentiment_classifier import UNLABELLED, distillation_loss
from caikit_genai.toolkit.metrics.classification_report import (
    classification_report,
    expected_calibration_error,
    wilson_interval,
)
from tiny_models import sentiment_examples


def as_pairs(examples):
    return [(example["text"], example["label"]) for example in examples]


@pytest.fixture(scope="module")
def teacher(tiny_bert_dir, tmp_path_factory):
    model = SentimentClassifier.train(
        sentiment_examples(200), base_model=tiny_bert_dir, epochs=6, batch_size=16, learning_rate=3e-3
    )
    path = str(tmp_path_factory.mktemp("teacher") / "teacher")
    model.save(path)
    return path


def flipped(examples):
    return [
        {"text": example["text"], "label": "negative" if example["label"] == "positive" else "positive"}
        for example in examples
    ]


def test_frozen_layers_stay_as_they_were_and_the_rest_learns(teacher):
    """Start from a trained classifier and teach it the opposite labels with its lower layer
    frozen: it starts at about 0% and must relearn above the frozen layer (a random tiny BERT's
    frozen features make a flaky test; trained ones are what freezing is for)."""
    base_dir = os.path.join(teacher, "hf_model")
    validation = as_pairs(flipped(sentiment_examples(40, seed=5)))
    base = SentimentClassifier.bootstrap(base_dir)
    assert base.accuracy(validation) < 0.2
    model = SentimentClassifier.train(
        flipped(sentiment_examples(200)),
        validation_data=[{"text": t, "label": l} for t, l in validation],
        base_model=base_dir,
        freeze_layers=1,
        epochs=6,
        batch_size=16,
        learning_rate=3e-3,
    )
    before, after = base.model.state_dict(), model.model.state_dict()
    frozen = [name for name in before if name.startswith(("bert.embeddings.", "bert.encoder.layer.0."))]
    tuned = [name for name in before if name.startswith("bert.encoder.layer.1.")]
    assert frozen and tuned
    assert all(torch.equal(before[name], after[name]) for name in frozen)
    assert not all(torch.equal(before[name], after[name]) for name in tuned)
    assert model.metrics["freeze_layers"] == 1
    assert model.metrics["trained_parameters"] < sum(p.numel() for p in base.model.parameters())
    # Validation ran over the cached states; serving runs every layer: the two must agree.
    assert model.metrics["val_accuracy"] == pytest.approx(model.accuracy(validation))
    assert model.metrics["val_accuracy"] >= 0.9
    assert all(p.requires_grad for p in model.model.parameters())  # a saved model is whole again
    # Its own training texts are scored over the cached states: as serving scores them.
    texts = [example["text"] for example in flipped(sentiment_examples(200))][:50]
    served = model.run_batch(texts)
    expected = [[{one.label: one.score for one in result.results}[name] for name in model.labels] for result in served]
    texts.append("a never seen lovely film")  # not cached: scored by a full forward pass
    expected.append([one.score for one in sorted(model.run(texts[-1]).results, key=lambda one: model.labels.index(one.label))])
    assert len(model.frozen_states["states"]) == 200
    np.testing.assert_allclose(model.scores_of(texts), np.array(expected), atol=1e-2)


def test_a_student_follows_its_teacher_over_the_gold_labels(tiny_bert_dir, teacher):
    """distillation_weight 1 learns only the teacher's scores: a student given flipped gold labels
    still agrees with its teacher, which it could not do without the teacher."""
    flipped = [
        {"text": example["text"], "label": "negative" if example["label"] == "positive" else "positive"}
        for example in sentiment_examples(200, seed=3)
    ]
    student = SentimentClassifier.train(
        flipped, base_model=tiny_bert_dir, teacher_model=teacher, distillation_weight=1.0,
        temperature=1.0, epochs=6, batch_size=16, learning_rate=3e-3,
    )
    served_teacher = SentimentClassifier.load(teacher)
    held_out = [example["text"] for example in sentiment_examples(60, seed=11)]
    agreement = sum(
        student.run(text).results[0].label == served_teacher.run(text).results[0].label for text in held_out
    ) / len(held_out)
    assert agreement >= 0.9
    assert student.metrics["teacher_model"] == teacher
    assert student.metrics["distillation_weight"] == 1.0


def test_unlabelled_texts_teach_through_the_teacher(tiny_bert_dir, teacher):
    """Eight labelled examples and 200 unlabelled ones: the student learns from the teacher."""
    labelled = sentiment_examples(8, seed=1)
    unlabelled = [example["text"] for example in sentiment_examples(200, seed=2)]
    student = SentimentClassifier.train(
        labelled, base_model=tiny_bert_dir, teacher_model=teacher, unlabelled_texts=unlabelled,
        epochs=6, batch_size=16, learning_rate=3e-3,
    )
    assert student.metrics["unlabelled_examples"] == 200
    assert student.accuracy(as_pairs(sentiment_examples(60, seed=12))) >= 0.9


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"freeze_layers": 2}, "freeze_layers must be between 1 and 1"),
        ({"freeze_layers": -1}, "freeze_layers must be 0"),
        ({"temperature": 0.0}, "temperature must be positive"),
        ({"distillation_weight": 1.5}, "distillation_weight"),
        ({"unlabelled_texts": ["a good film"]}, "give teacher_model too"),
        ({"unlabelled_texts": "a good film", "teacher_model": "x"}, "list of strings"),
        ({"teacher_model": "/no/such/teacher"}, "not a directory"),
    ],
)
def test_bad_distillation_arguments_are_rejected(tiny_bert_dir, kwargs, message):
    with pytest.raises(Exception) as raised:
        SentimentClassifier.train(sentiment_examples(20), base_model=tiny_bert_dir, **kwargs)
    assert message in str(raised.value)


def test_a_teacher_with_other_labels_is_refused(tiny_bert_dir, teacher):
    other = [{"text": e["text"], "label": "good" if e["label"] == "positive" else "bad"} for e in sentiment_examples(20)]
    with pytest.raises(ValueError, match="teacher_model has labels"):
        SentimentClassifier.train(other, base_model=tiny_bert_dir, teacher_model=teacher)


def test_distillation_loss_is_cross_entropy_at_weight_zero_and_zero_kl_on_own_scores():
    logits = torch.tensor([[2.0, -1.0], [0.5, 0.3], [-1.0, 1.5]])
    labels = torch.tensor([0, 1, 1])
    plain = distillation_loss(logits, {"labels": labels}, temperature=2.0, weight=0.0)
    assert plain.item() == pytest.approx(torch.nn.functional.cross_entropy(logits, labels).item())
    own = torch.softmax(logits / 2.0, dim=-1)
    only_teacher = distillation_loss(logits, {"labels": labels, "soft": own}, temperature=2.0, weight=1.0)
    assert only_teacher.item() == pytest.approx(0.0, abs=1e-6)
    unlabelled = torch.tensor([UNLABELLED] * 3)
    assert distillation_loss(logits, {"labels": unlabelled, "soft": own}, 2.0, 0.5).item() == pytest.approx(0.0, abs=1e-6)


def test_wilson_interval_and_calibration_error_on_known_cases():
    low, high = wilson_interval(88, 100)
    assert low == pytest.approx(0.8020, abs=1e-3) and high == pytest.approx(0.9302, abs=1e-3)
    assert expected_calibration_error([0.9] * 10, [True] * 9 + [False]) == pytest.approx(0.0)
    assert expected_calibration_error([1.0] * 4, [True, False, True, False]) == pytest.approx(0.5)


def test_the_held_out_report_counts_what_it_says(teacher):
    model = SentimentClassifier.load(teacher)
    examples = as_pairs(sentiment_examples(50, seed=21))
    report = classification_report(model, examples, latency_requests=10)
    assert report["test_examples"] == 50
    assert report["test_accuracy"] == pytest.approx(model.accuracy(examples), abs=1e-4)
    low, high = report["test_accuracy_95ci"]
    assert low <= report["test_accuracy"] <= high
    assert sum(one["support"] for one in report["test_per_class"].values()) == 50
    assert 0.0 <= report["test_ece"] <= 1.0
    assert 0 < report["latency_ms_p50"] <= report["latency_ms_p95"]
