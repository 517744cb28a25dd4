"""README's build-time table, rendered from the same records as docs/models.md, between two
markers, so the front page's figures follow the builds too (`make report` rewrites it)."""

import re
from typing import Any, Dict, List

from .cards import ranked

START = "<!-- report: build times (make report writes this table from docs/model-records) -->"
END = "<!-- /report -->"


def render_build_times(records: List[Dict[str, Any]]) -> str:
    rows = [
        "| model | built by | first build on the recorded machine | recorded machine |",
        "|---|---|---|---|",
    ]
    for record in ranked(records):
        target = "`make models-full`" if record.get("opt_in") else "`make models`"
        seconds = record.get("build_seconds")
        took = f"{seconds / 60:.0f} min ({seconds:,.0f} s)" if seconds and seconds >= 60 else f"{seconds or 0:,.0f} s"
        rows.append(f"| [`{record['model']}`](docs/models.md#{record['model']}) | {target} | {took} | {record.get('machine', 'not recorded')} |")
    return "\n".join(rows)


def with_build_times(readme: str, records: List[Dict[str, Any]]) -> str:
    """README's text with the table between the markers replaced (the markers must be there)."""
    pattern = re.compile(re.escape(START) + r"\n.*?\n" + re.escape(END), re.S)
    if not pattern.search(readme):
        raise ValueError(f"README.md has no build-time table between {START!r} and {END!r}")
    return pattern.sub(lambda _: f"{START}\n{render_build_times(records)}\n{END}", readme)
