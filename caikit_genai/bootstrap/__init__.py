"""Build the default models in models/ from offline sources: `python -m caikit_genai.bootstrap`.

One file per default model. Each builder is seeded, writes its model dir atomically (the
runtime's lazy loader serves it as soon as it appears), and records what it measured in the
model dir's metrics.json. `--missing` builds only what is not there yet (what `make serve` runs).
"""

import argparse
import json
import os
import time
from typing import Callable, Dict

import alog

from ..report.records import RECORDS_DIR, record_build
from .attention import build_attention_minilm, build_attention_mpnet
from .char_austen import CHAR_AUSTEN_RECIPE, build_char_austen, char_austen_splits
from .dcgan_fashion import DCGAN_FASHION_RECIPE, build_dcgan_fashion
from .sentiment import SENTIMENT_MINILM_RECIPE, SENTIMENT_RECIPE, build_sentiment, build_sentiment_minilm, sentiment_splits
from .translator import TRANSLATOR_EN_ID_RECIPE, build_translator_en_id

log = alog.use_channel("BOOTSTRAP")

# In build order: the attention model is a copy of packaged weights (seconds), so it goes first.
BUILDERS: Dict[str, Callable[..., Dict]] = {
    "attention-minilm": build_attention_minilm,
    "sentiment": build_sentiment,
    "char-austen": build_char_austen,
    "dcgan-fashion": build_dcgan_fashion,
    "translator-en-id": build_translator_en_id,
}
# Built only when named (`--only ...`, what `make models-full` runs): a 419 MB copy of MPNet-base
# for attention, and the cheaper MiniLM sentiment model, distilled from the built `sentiment`
# (another 30 min).
OPT_IN_BUILDERS: Dict[str, Callable[..., Dict]] = {
    "attention-mpnet": build_attention_mpnet,
    "sentiment-minilm": build_sentiment_minilm,
}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models-dir", default=os.environ.get("RUNTIME_LOCAL_MODELS_DIR", "models"))
    parser.add_argument(
        "--only", choices=sorted({**BUILDERS, **OPT_IN_BUILDERS}), action="append", help="build just these"
    )
    parser.add_argument("--missing", action="store_true", help="skip models whose dir already exists")
    parser.add_argument("--records-dir", default=RECORDS_DIR, help="where each build writes its model's record for docs/models.md (if that dir exists)")
    args = parser.parse_args(argv)
    alog.configure(default_level="info", formatter="pretty")
    failures = 0
    for name in args.only or list(BUILDERS):
        model_path = os.path.join(args.models_dir, name)
        if args.missing and os.path.isdir(model_path):
            log.info("%s: already built at %s", name, model_path)
            continue
        started = time.monotonic()
        try:
            metrics = {**BUILDERS, **OPT_IN_BUILDERS}[name](model_path)
        except Exception:  # pylint: disable=broad-exception-caught
            log.error("%s: build failed", name, exc_info=True)
            failures += 1
            continue
        build_seconds = time.monotonic() - started
        summary = {key: value for key, value in metrics.items() if not isinstance(value, (list, dict))}
        print(f"built {name} in {build_seconds:.0f} s: {json.dumps(summary)}", flush=True)
        record_build(name, model_path, build_seconds, args.records_dir, opt_in=name in OPT_IN_BUILDERS)
    return 1 if failures else 0
