"""The default `translator-en-id` model: English -> Indonesian, trained here from LibreOffice's help
pages, its UI catalogs and the FreeDict dictionary (`make data` unpacks the Debian packages).

The pretrained MiniLM-L6 encoder (packaged, English) is frozen below its top two layers, whose
input states are computed once per batch (the top two are trained over them); a 3-layer decoder
with cross-attention and an 8k Indonesian BPE vocabulary are trained from scratch, bounded by the
clock. The held-out help sentences and UI strings (a hash split of the
English text, see toolkit/offline_data/en_id.py) are scored with sacrebleu's BLEU and chrF, for
greedy decoding and for 4 beams.
"""

import time
from typing import Dict, Optional

import sacrebleu
import torch

import alog

from ..modules.translator.recipe import TranslatorRecipe
from ..toolkit.offline_data import stable_split
from ..toolkit.offline_data.en_id import en_id_splits

log = alog.use_channel("BOOTSTRAP")

# Under 45 minutes for the whole CPU build: reading the data (~30 s), 40 min of training, then the
# held-out translations, greedy and 4 beams (under 3 minutes on 2 cores).
PRESET = "translator-en-id"
QUICK_PRESET = "translator-en-id-quick"
QUICK_TEST_SENTENCES = 100  # the quick build scores this many of each held-out set
# The quick build trains on the short pairs only (UI strings, dictionary entries, short help
# lines): its two minutes go to many steps on what a first call most likely sends.
QUICK_MAX_SOURCE_WORDS = 8
TRANSLATOR_EN_ID_RECIPE = TranslatorRecipe.PRESETS[PRESET]
# With CUDA the same budget buys far more steps: the encoder is fine-tuned too, with a deeper decoder.
TRANSLATOR_EN_ID_CUDA_OVERRIDES = {"decoder_layers": 6, "freeze_encoder": False, "batch_size": 64, "learning_rate": 5e-4}
VALIDATION_FRACTION = 0.02
TEST_BEAMS = 4  # the held-out sets are scored greedy (the serving default) and with this many beams


def build_translator_en_id(
    model_path: str,
    max_help_pages: Optional[int] = None,
    max_test_sentences: Optional[int] = None,
    quick: bool = False,
    **overrides,
) -> Dict:
    """Train the en->id translator, score it on both held-out test sets, save it with its figures.
    `quick`: the translator-en-id-quick recipe, scored on the first QUICK_TEST_SENTENCES of each
    set (what `make serve` builds first)."""
    from ..modules.translator import Translator  # pylint: disable=import-outside-toplevel

    started = time.monotonic()
    splits = en_id_splits(max_help_pages=max_help_pages)
    train, validation = stable_split(splits.train, VALIDATION_FRACTION, "translator-en-id-validation")
    if quick:
        train = [pair for pair in train if len(pair[0].split()) <= QUICK_MAX_SOURCE_WORDS]
    cuda = torch.cuda.is_available() and not quick
    knobs = {**(TRANSLATOR_EN_ID_CUDA_OVERRIDES if cuda else {}), **overrides}
    max_test_sentences = max_test_sentences or (QUICK_TEST_SENTENCES if quick else None)
    log.info(
        "translator-en-id: %d training, %d validation pairs; test: %d help sentences, %d UI strings",
        len(train), len(validation), len(splits.help_test), len(splits.ui_test),
    )
    translator = Translator.train(train, validation_data=validation, preset=QUICK_PRESET if quick else PRESET, **knobs)
    scored_at = time.monotonic()
    test = {}
    for name, pairs in (("help", splits.help_test), ("ui", splits.ui_test)):
        pairs = pairs[:max_test_sentences] if max_test_sentences else pairs
        sources, references = [source for source, _ in pairs], [[target for _, target in pairs]]
        greedy = translator.translate_all(sources)
        beams = translator.translate_all(sources, num_beams=TEST_BEAMS)
        test[name] = {
            "sentences": len(pairs),
            "bleu": round(sacrebleu.corpus_bleu(greedy, references).score, 2),
            "chrf": round(sacrebleu.corpus_chrf(greedy, references).score, 2),
            f"bleu_{TEST_BEAMS}_beams": round(sacrebleu.corpus_bleu(beams, references).score, 2),
            f"chrf_{TEST_BEAMS}_beams": round(sacrebleu.corpus_chrf(beams, references).score, 2),
            "examples": [
                {"source": source, "reference": target, "translation": hypothesis, f"translation_{TEST_BEAMS}_beams": beam}
                for (source, target), hypothesis, beam in list(zip(pairs, greedy, beams))[:5]
            ],
        }
    translator.metrics.update(
        {
            "dataset": "LibreOffice 7.4 help pages (en-US + id) and UI catalogs (Debian libreoffice-help-en-us, "
            "libreoffice-help-id, libreoffice-l10n-id), FreeDict eng-ind (dict-freedict-eng-ind)",
            "source_pairs": splits.sources,
            **{  # test_help_bleu ... test_ui_chrf_4_beams
                f"test_{name}_{score}": test[name][score]
                for name in ("help", "ui")
                for score in ("bleu", "chrf", f"bleu_{TEST_BEAMS}_beams", f"chrf_{TEST_BEAMS}_beams")
            },
            "test": test,
            "test_seconds": round(time.monotonic() - scored_at, 1),
            "build_seconds": round(time.monotonic() - started, 1),
            "quick": quick,
            "decoding": f"greedy (test_*) and {TEST_BEAMS} beams (test_*_{TEST_BEAMS}_beams), sacrebleu defaults "
            "(13a tokenizer for BLEU)",
        }
    )
    translator.save(model_path)
    log.info(
        "translator-en-id: help BLEU %.2f (%d beams %.2f) chrF %.2f, UI BLEU %.2f chrF %.2f (%d beams %.2f), saved to %s",
        test["help"]["bleu"], TEST_BEAMS, test["help"][f"bleu_{TEST_BEAMS}_beams"], test["help"]["chrf"],
        test["ui"]["bleu"], test["ui"]["chrf"], TEST_BEAMS, test["ui"][f"chrf_{TEST_BEAMS}_beams"], model_path,
    )
    return translator.metrics
