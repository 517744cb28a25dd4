"""The default models' cards: `python -m caikit_genai.report` (`make report`) renders docs/models.md
and README's build-time table from the records in docs/model-records/; `--check` exits 1 when
either differs from them.

Each real build writes its model's record (records.record_build, called by caikit_genai.bootstrap),
so `make models` followed by `make report` brings the cards up to date; a record written by hand,
from figures a build reported elsewhere, says where they came from in its `source`.
"""

import argparse
import os
import sys
from typing import List, Optional

from .cards import render_card, render_page
from .readme_table import with_build_times
from .records import RECORDS_DIR, read_records, record_build, record_from_model_dir

MODELS_PAGE = os.path.join("docs", "models.md")
README = "README.md"

__all__ = ["main", "render_card", "render_page", "read_records", "record_build", "record_from_model_dir"]


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="caikit-genai report", description=__doc__.splitlines()[0])
    parser.add_argument("--records-dir", default=RECORDS_DIR, help="the records (default: %(default)s)")
    parser.add_argument("--output", default=MODELS_PAGE, help="the page (default: %(default)s)")
    parser.add_argument("--readme", help=f"the page with the build-time table (default: {README}, with the default records)")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 when a page differs from the records")
    args = parser.parse_args(argv)
    if not os.path.isdir(args.records_dir):
        print(f"no records at {args.records_dir}: run from the repo's root", file=sys.stderr)
        return 2
    records = read_records(args.records_dir)
    rendered = {args.output: render_page(records)}
    # Other records (a test's, a trial build's) never rewrite the front page unless it is named.
    readme = args.readme or (README if args.records_dir == RECORDS_DIR else None)
    if readme and os.path.exists(readme):
        rendered[readme] = with_build_times(_read(readme), records)
    if args.check:
        stale = [path for path, text in rendered.items() if (_read(path) if os.path.exists(path) else None) != text]
        for path in stale:
            print(f"{path} differs from what {args.records_dir} renders: run `make report`", file=sys.stderr)
        if not stale:
            print(f"{', '.join(rendered)} match the {len(records)} records in {args.records_dir}")
        return 1 if stale else 0
    for path, text in rendered.items():
        with open(path, "w", encoding="utf-8") as page_file:
            page_file.write(text)
    print(f"wrote {', '.join(rendered)}: {len(records)} model cards from {args.records_dir}")
    return 0


def _read(path: str) -> str:
    with open(path, encoding="utf-8") as page_file:
        return page_file.read()
