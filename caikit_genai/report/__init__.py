"""The default models' cards: `python -m caikit_genai.report` (`make report`) renders docs/models.md
from the records in docs/model-records/; `--check` exits 1 when the page differs from them.

Each real build writes its model's record (records.record_build, called by caikit_genai.bootstrap),
so `make models` followed by `make report` brings the cards up to date; a record written by hand,
from figures a build reported elsewhere, says where they came from in its `source`.
"""

import argparse
import os
import sys
from typing import List, Optional

from .cards import render_card, render_page
from .records import RECORDS_DIR, read_records, record_build, record_from_model_dir

MODELS_PAGE = os.path.join("docs", "models.md")

__all__ = ["main", "render_card", "render_page", "read_records", "record_build", "record_from_model_dir"]


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="caikit-genai report", description=__doc__.splitlines()[0])
    parser.add_argument("--records-dir", default=RECORDS_DIR, help="the records (default: %(default)s)")
    parser.add_argument("--output", default=MODELS_PAGE, help="the page (default: %(default)s)")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 when the page differs from the records")
    args = parser.parse_args(argv)
    if not os.path.isdir(args.records_dir):
        print(f"no records at {args.records_dir}: run from the repo's root", file=sys.stderr)
        return 2
    records = read_records(args.records_dir)
    page = render_page(records)
    if args.check:
        current = None
        if os.path.exists(args.output):
            with open(args.output, encoding="utf-8") as page_file:
                current = page_file.read()
        if current != page:
            print(f"{args.output} differs from what {args.records_dir} renders: run `make report`", file=sys.stderr)
            return 1
        print(f"{args.output} matches the {len(records)} records in {args.records_dir}")
        return 0
    with open(args.output, "w", encoding="utf-8") as page_file:
        page_file.write(page)
    print(f"wrote {args.output}: {len(records)} model cards from {args.records_dir}")
    return 0
