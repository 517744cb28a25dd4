"""The default `translator-en-id` model: English -> Indonesian, trained here from LibreOffice's help
pages, its UI catalogs and the FreeDict dictionary (`make data` unpacks the Debian packages).

The pretrained MiniLM-L6 encoder (packaged, English) is frozen below its top two layers, whose
input states are computed once per batch (the top two are trained over them); a 3-layer decoder
with cross-attention and an 8k Indonesian BPE vocabulary are trained from scratch, bounded by the
clock. The held-out help sentences and UI strings (a hash split of the
English text, see toolkit/offline_data/en_id.py) and an outside set (Django's messages) are scored
with sacrebleu's BLEU and chrF, with the shares of looped and short translations, greedy, with 4
beams and the model's default way.
"""

import time
from typing import Dict, Optional

import torch

import alog

from ..modules.translator.recipe import TranslatorRecipe
from ..toolkit.metrics.translation_report import translation_report
from ..toolkit.offline_data import stable_split
from ..toolkit.offline_data.en_id import en_id_splits

log = alog.use_channel("BOOTSTRAP")

# Under 45 minutes for the whole CPU build: reading the data (~30 s), 40 min of training, then the
# held-out translations, greedy and 4 beams (about 4 minutes on 2 cores; 4 beams is also the
# served default, so its translations are not made twice).
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
VALIDATION_SALT = "translator-en-id-validation"
TEST_BEAMS = 4  # the held-out sets are scored greedy, with this many beams and the model's default way
OUTSIDE_TEST_SET = (
    "Django 5.2.19's Indonesian messages (its PyPI wheel's catalogs): another program's strings, none of whose "
    "English any training source holds; templates and plural forms left out"
)


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
    train, validation = stable_split(splits.train, VALIDATION_FRACTION, VALIDATION_SALT)
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
    test = {
        name: score_translations(translator, pairs[:max_test_sentences] if max_test_sentences else pairs)
        for name, pairs in (("help", splits.help_test), ("ui", splits.ui_test), ("outside", splits.outside_test))
    }
    translator.metrics.update(
        {
            "dataset": "LibreOffice 7.4 help pages (en-US + id) and UI catalogs (Debian libreoffice-help-en-us, "
            "libreoffice-help-id, libreoffice-l10n-id), FreeDict eng-ind (dict-freedict-eng-ind)",
            "outside_test_set": OUTSIDE_TEST_SET,
            "source_pairs": splits.sources,
            **{  # test_help_bleu ... test_outside_chrf_default
                f"test_{name}_{score}{way}": test[name][f"{score}{way}"]
                for name in test
                for score in ("bleu", "chrf")
                for way in ("", f"_{TEST_BEAMS}_beams", "_default")
            },
            "test": test,
            "test_seconds": round(time.monotonic() - scored_at, 1),
            "build_seconds": round(time.monotonic() - started, 1),
            "quick": quick,
            "decoding": f"greedy (test_*), {TEST_BEAMS} beams (test_*_{TEST_BEAMS}_beams) and the model's default "
            f"(test_*_default: {default_decoding(translator)}); sacrebleu defaults (13a tokenizer for BLEU); looped: a run "
            "of 1-4 words said three times in a row; short: under 60% of the reference's characters",
        }
    )
    translator.save(model_path)
    log.info(
        "translator-en-id, the default decoding: help BLEU %.2f, UI chrF %.2f, Django's messages BLEU %.2f / chrF %.2f; saved to %s",
        test["help"]["bleu_default"], test["ui"]["chrf_default"], test["outside"]["bleu_default"],
        test["outside"]["chrf_default"], model_path,
    )
    return translator.metrics


def default_decoding(translator) -> str:
    beams = translator.default_num_beams
    if beams <= 1:
        return "greedy"
    limit = translator.beams_up_to_tokens
    return f"{beams} beams" + (f" for inputs of up to {limit} source tokens, greedy beyond" if limit else "")


def score_translations(translator, pairs) -> Dict:
    """BLEU, chrF and the looped and short shares of one held-out set, decoded greedy, with
    TEST_BEAMS beams and the model's default way, with the first few translations."""
    sources, references = [source for source, _ in pairs], [target for _, target in pairs]
    decoded = {"": translator.translate_all(sources, num_beams=1)}
    decoded[f"_{TEST_BEAMS}_beams"] = translator.translate_all(sources, num_beams=TEST_BEAMS)
    same_as_served = {1: "", TEST_BEAMS: f"_{TEST_BEAMS}_beams"}.get(translator.default_num_beams)
    if translator.beams_up_to_tokens == 0 and same_as_served is not None:
        decoded["_default"] = decoded[same_as_served]  # decoding is deterministic: the same translations
    else:
        decoded["_default"] = translator.translate_all(sources)
    scores: Dict = {"sentences": len(pairs)}
    for way, hypotheses in decoded.items():
        scores.update({f"{name}{way}": value for name, value in translation_report(hypotheses, references).items()})
    scores["examples"] = [
        {"source": source, "reference": target, "translation": greedy, f"translation_{TEST_BEAMS}_beams": beams, "translation_default": default}
        for (source, target), greedy, beams, default in list(zip(pairs, *decoded.values()))[:5]
    ]
    return scores
