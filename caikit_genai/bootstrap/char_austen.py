"""The default `char-austen` model: a character-level LSTM trained on Jane Austen's six novels."""

import math
import time
from typing import Dict, Optional

import alog

from ..modules.char_text_generator import CharRecipe, CharTextGenerator
from ..toolkit.offline_data.jane_austen import austen_text

log = alog.use_channel("BOOTSTRAP")

# The six Austen novels, in publication order; the last 5% (the end of Persuasion) is the test
# tail: never trained on, never used to choose anything, read only to report the loss.
CHAR_AUSTEN_TEST_FRACTION = 0.05
CHAR_AUSTEN_SAMPLE_TEMPERATURES = (0.5, 0.8, 1.0)
PRESET = "char-austen"
QUICK_PRESET = "char-austen-quick"
CHAR_AUSTEN_RECIPE = CharRecipe.PRESETS[PRESET]


def char_austen_splits(max_chars: Optional[int] = None, novels=None):
    """(training text, test tail) from the novels; `max_chars` keeps only the start (for tests)."""
    text = austen_text(novels)
    if max_chars:
        text = text[:max_chars]
    cut = len(text) - int(len(text) * CHAR_AUSTEN_TEST_FRACTION)
    return text[:cut], text[cut:]


def build_char_austen(
    model_path: str, max_chars: Optional[int] = None, novels=None, sample_chars: int = 400, quick: bool = False, **overrides
) -> Dict:
    """Train the char-level LSTM on Austen, score it on the held-out tail, save it with samples.
    `quick`: the char-austen-quick recipe (what `make serve` builds first)."""
    train_text, test_text = char_austen_splits(max_chars, novels)
    log.info("char-austen: %d training / %d test characters", len(train_text), len(test_text))
    generator = CharTextGenerator.train([train_text], preset=QUICK_PRESET if quick else PRESET, **overrides)
    prompt, seed = CHAR_AUSTEN_RECIPE["sample_prompt"], generator.metrics["recipe"]["seed"]
    started = time.monotonic()
    # A character the training text never had cannot be scored; the novels have none.
    known_test_text = "".join(char for char in test_text if char in generator.char_ids)
    test_loss = generator.loss_on(known_test_text)
    samples = [
        {
            "temperature": temperature,
            "seed": seed,
            "prompt": prompt,
            "text": generator.run(
                prompt,
                max_new_tokens=min(sample_chars, generator.max_new_tokens_limit),
                temperature=temperature,
                seed=seed,
            ).generated_text,
        }
        for temperature in CHAR_AUSTEN_SAMPLE_TEMPERATURES
    ]
    generator.metrics.update(
        {
            "dataset": "Jane Austen's six novels, Debian r-cran-janeaustenr (public domain)",
            "test_chars": len(test_text),
            "test_chars_skipped": len(test_text) - len(known_test_text),
            "test_loss_nats_per_char": round(test_loss, 4),
            "test_bits_per_char": round(test_loss / math.log(2), 4),
            "test_seconds": round(time.monotonic() - started, 1),
            "samples": samples,
            "quick": quick,
        }
    )
    generator.save(model_path)
    log.info("char-austen: held-out test loss %.4f nats/char, saved to %s", test_loss, model_path)
    return generator.metrics
