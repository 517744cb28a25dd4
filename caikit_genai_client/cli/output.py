"""Printing for the sub-commands: JSON for machines, aligned text for people."""

import json
from typing import Any, List, Sequence


def print_json(value: Any) -> None:
    print(json.dumps(value, ensure_ascii=False), flush=True)


def print_table(rows: List[Sequence[str]]) -> None:
    """Rows of columns, each column as wide as its widest cell; the last column is not padded."""
    if not rows:
        return
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]) - 1)]
    for row in rows:
        print("  ".join([cell.ljust(width) for cell, width in zip(row, widths)] + [row[-1]]).rstrip())


def parse_value(text: str) -> Any:
    """A `--set`/`--param` value: JSON where it reads as JSON (2, 0.5, true, [1, 2]), else the text."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def key_values(pairs: List[str], flag: str) -> dict:
    """`KEY=VALUE` words as a dict, values read by parse_value."""
    values = {}
    for pair in pairs or []:
        key, equals, value = pair.partition("=")
        if not equals or not key:
            raise ValueError(f"{flag} {pair!r}: write it as KEY=VALUE")
        values[key] = parse_value(value)
    return values
