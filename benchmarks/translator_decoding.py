"""How the Translator's decoding settings score, on the validation split the recipe watches
(never the test sets: this is where the default decoding is chosen), same model, same run.

    python benchmarks/translator_decoding.py [--model-dir models/translator-en-id] [--limit N]

Each setting translates the same validation pairs (the builder's hash split, see
bootstrap/translator.py) in the list form; the table gives BLEU, chrF, the share of looped and of
short (dropped-clause) translations (toolkit/metrics/translation_report.py), for all pairs and
for short inputs alone (SHORT_INPUT_WORDS words or fewer), and the seconds each setting took.
"""

import argparse
import time

import torch

from caikit_genai import Translator
from caikit_genai.bootstrap.translator import VALIDATION_FRACTION, VALIDATION_SALT
from caikit_genai.toolkit.metrics.translation_report import translation_report
from caikit_genai.toolkit.offline_data import stable_split
from caikit_genai.toolkit.offline_data.en_id import en_id_splits

SHORT_INPUT_WORDS = 8  # scored apart as well: what a UI label or a first call most likely is
SETTINGS = {
    "greedy": {},
    "greedy, no repeated 4-grams": {"no_repeat_ngram_size": 4},
    "greedy, repetition penalty 1.2": {"repetition_penalty": 1.2},
    "4 beams": {"num_beams": 4},
    "4 beams, no repeated 4-grams": {"num_beams": 4, "no_repeat_ngram_size": 4},
    "4 beams, length penalty 1.3": {"num_beams": 4, "length_penalty": 1.3},
}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", default="models/translator-en-id")
    parser.add_argument("--limit", type=int, help="score only the first N validation pairs")
    parser.add_argument("--max-help-pages", type=int, help="read only the first N help pages (a quick check)")
    parser.add_argument("--settings", nargs="+", choices=list(SETTINGS), default=list(SETTINGS))
    args = parser.parse_args(argv)

    translator = Translator.load(args.model_dir)
    _, validation = stable_split(en_id_splits(max_help_pages=args.max_help_pages).train, VALIDATION_FRACTION, VALIDATION_SALT)
    validation = validation[: args.limit] if args.limit else validation
    short = [index for index, (source, _) in enumerate(validation) if len(source.split()) <= SHORT_INPUT_WORDS]
    print(
        f"model {args.model_dir}: {len(validation)} validation pairs ({len(short)} of {SHORT_INPUT_WORDS} words or "
        f"fewer), torch threads {torch.get_num_threads()}"
    )
    print("| decoding | BLEU / chrF | looped | short | short inputs: BLEU / chrF | looped | short | seconds |")
    print("|---|---|---|---|---|---|---|---|")
    sources, references = [source for source, _ in validation], [target for _, target in validation]
    for name in args.settings:
        started = time.perf_counter()
        hypotheses = translator.translate_all(sources, **SETTINGS[name])
        seconds = time.perf_counter() - started
        every = translation_report(hypotheses, references)
        few = translation_report([hypotheses[i] for i in short], [references[i] for i in short])
        print(
            f"| {name} | {every['bleu']:.1f} / {every['chrf']:.1f} | {every['looped']:.1%} | {every['short']:.1%} "
            f"| {few['bleu']:.1f} / {few['chrf']:.1f} | {few['looped']:.1%} | {few['short']:.1%} | {seconds:.0f} |",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
