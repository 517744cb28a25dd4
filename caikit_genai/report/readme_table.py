"""README's build-time table, rendered from the same records as docs/models.md, between two
markers, so the front page's figures follow the builds too (`make report` rewrites it)."""

import re
from typing import Any, Dict, List

from .cards import ranked

START = "<!-- report: build times (make report writes this table from docs/model-records) -->"
END = "<!-- /report -->"


def render_build_times(records: List[Dict[str, Any]]) -> str:
    rows = [
        "| model | built by | quick build (`make serve`, first) | full build | recorded machine |",
        "|---|---|---|---|---|",
    ]
    # Imported here: the bootstrap imports this package (it writes a record after each build).
    from ..bootstrap import BUILDERS as full_builders, QUICK_BUILDERS as quick_builders  # pylint: disable=import-outside-toplevel

    for record in ranked(records):
        target = "`make models-full`" if record.get("opt_in") else "`make serve`, `make models`"
        quick, machine = record.get("quick_build"), record.get("machine", "not recorded")
        if quick:
            quick_took = _took(quick["build_seconds"])
            if quick["machine"] != machine:
                machine = f"full build: {machine}; quick build: {quick['machine']}"
        elif record["model"] not in quick_builders:
            quick_took = "none (built only when asked)"
        elif quick_builders[record["model"]] is full_builders[record["model"]]:
            quick_took = "none needed (the full build takes seconds)"
        else:
            quick_took = "not recorded yet"
        rows.append(
            f"| [`{record['model']}`](docs/models.md#{record['model']}) | {target} | {quick_took} "
            f"| {_took(record.get('build_seconds'))} | {machine} |"
        )
    return "\n".join(rows)


def _took(seconds) -> str:
    return f"{seconds / 60:.0f} min ({seconds:,.0f} s)" if seconds and seconds >= 60 else f"{seconds or 0:,.0f} s"


def with_build_times(readme: str, records: List[Dict[str, Any]]) -> str:
    """README's text with the table between the markers replaced (the markers must be there)."""
    pattern = re.compile(re.escape(START) + r"\n.*?\n" + re.escape(END), re.S)
    if not pattern.search(readme):
        raise ValueError(f"README.md has no build-time table between {START!r} and {END!r}")
    return pattern.sub(lambda _: f"{START}\n{render_build_times(records)}\n{END}", readme)
