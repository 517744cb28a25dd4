"""Build the default models in models/ from offline sources: `python -m caikit_genai.bootstrap`.

One file per default model. Each builder is seeded, writes its model dir atomically (the
runtime's lazy loader serves it as soon as it appears, and swaps in a replaced one live), and
records what it measured in the model dir's metrics.json. `--missing` builds only what is not
there yet, or is only a quick build; `--quick` builds the quick versions. `make serve` runs
`--missing --quick` (every task answers within minutes), then `--missing` (each full build
replaces its quick model live).
"""

import argparse
import functools
import json
import os
import sys
import time
from typing import Callable, Dict

import alog

from ..report.records import RECORDS_DIR, record_build
from ..toolkit.models.model_dir import read_metrics
from .attention import build_attention_minilm, build_attention_mpnet
from .char_austen import CHAR_AUSTEN_RECIPE, build_char_austen, char_austen_splits
from .dcgan_fashion import DCGAN_FASHION_RECIPE, build_dcgan_fashion
from .sentiment import SENTIMENT_MINILM_RECIPE, SENTIMENT_RECIPE, build_sentiment, build_sentiment_minilm, sentiment_splits
from .translator import TRANSLATOR_EN_ID_RECIPE, build_translator_en_id

log = alog.use_channel("BOOTSTRAP")

# The full builds, cheapest first (on 2 CPU cores: seconds, then about 17, 20, 30 and 45 minutes).
BUILDERS: Dict[str, Callable[..., Dict]] = {
    "attention-minilm": build_attention_minilm,
    "char-austen": build_char_austen,
    "dcgan-fashion": build_dcgan_fashion,
    "sentiment": build_sentiment,
    "translator-en-id": build_translator_en_id,
}
# The quick builds, cheapest first: each a minute or two of CPU, marked `quick` in its
# metrics.json and in /info/models. attention-minilm has none: its full build takes seconds.
QUICK_BUILDERS: Dict[str, Callable[..., Dict]] = {
    "attention-minilm": build_attention_minilm,
    "char-austen": functools.partial(build_char_austen, quick=True),
    "sentiment": functools.partial(build_sentiment, quick=True),
    "dcgan-fashion": functools.partial(build_dcgan_fashion, quick=True),
    "translator-en-id": functools.partial(build_translator_en_id, quick=True),
}
# Built only when named (`--only ...`, what `make models-full` runs): a 419 MB copy of MPNet-base
# for attention, and the cheaper MiniLM sentiment model, distilled from the built `sentiment`
# (another 30 min).
OPT_IN_BUILDERS: Dict[str, Callable[..., Dict]] = {
    "attention-mpnet": build_attention_mpnet,
    "sentiment-minilm": build_sentiment_minilm,
}


def is_quick_build(model_path: str) -> bool:
    """Whether the model dir holds a quick build (its metrics.json says so)."""
    try:
        return bool(read_metrics(model_path, {}).get("quick"))
    except (OSError, ValueError, AttributeError):  # no readable metrics.json: not a quick build
        return False


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models-dir", default=os.environ.get("RUNTIME_LOCAL_MODELS_DIR", "models"))
    parser.add_argument(
        "--only", choices=sorted({**BUILDERS, **OPT_IN_BUILDERS}), action="append", help="build just these"
    )
    parser.add_argument(
        "--missing", action="store_true", help="skip models already built (a quick build counts as missing unless --quick)"
    )
    parser.add_argument("--quick", action="store_true", help="the quick builds (a minute or two each on 2 cores)")
    parser.add_argument("--quick-first", action="store_true", help="--quick, then the full builds (as `make serve` runs them)")
    parser.add_argument(
        "--records-dir",
        help=f"where each build writes its model's record for docs/models.md (default: {RECORDS_DIR} when building "
        "into ./models, as `make models` does; builds anywhere else write none)",
    )
    args = parser.parse_args(argv)
    alog.configure(default_level="info", formatter="pretty")
    if args.records_dir is None and os.path.abspath(args.models_dir) == os.path.abspath("models"):
        args.records_dir = RECORDS_DIR
    if args.quick_first:
        full = [arg for arg in (argv if argv is not None else sys.argv[1:]) if arg != "--quick-first"]
        return max(main([*full, "--quick"]), main(full))
    builders = QUICK_BUILDERS if args.quick else {**BUILDERS, **OPT_IN_BUILDERS}
    names = args.only or list(QUICK_BUILDERS if args.quick else BUILDERS)
    if args.quick and set(names) - set(QUICK_BUILDERS):
        parser.error(f"no quick build of {', '.join(sorted(set(names) - set(QUICK_BUILDERS)))}")
    failures = 0
    for name in names:
        model_path = os.path.join(args.models_dir, name)
        if args.missing and os.path.isdir(model_path) and (args.quick or not is_quick_build(model_path)):
            log.info("%s: already built at %s", name, model_path)
            continue
        started = time.monotonic()
        try:
            metrics = builders[name](model_path)
        except Exception:  # pylint: disable=broad-exception-caught
            log.error("%s: build failed", name, exc_info=True)
            failures += 1
            continue
        build_seconds = time.monotonic() - started
        quick = bool(metrics.get("quick"))
        summary = {key: value for key, value in metrics.items() if not isinstance(value, (list, dict))}
        print(f"built {name}{' (quick)' if quick else ''} in {build_seconds:.0f} s: {json.dumps(summary)}", flush=True)
        if args.records_dir:
            record_build(name, model_path, build_seconds, args.records_dir, opt_in=name in OPT_IN_BUILDERS, quick=quick)
    return 1 if failures else 0
