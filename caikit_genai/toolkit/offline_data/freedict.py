"""English -> Indonesian dictionary words, from the FreeDict/WikDict dictionary in Debian
`dict-freedict-eng-ind` (dictd format: a tab-separated index into a gzip-compressed text)."""

import gzip
import os
import re
from typing import List, Optional, Tuple

from . import DATA_DIR

FREEDICT_DIR = os.path.join(DATA_DIR, "dict-freedict-eng-ind")
FREEDICT_BASE = os.path.join("usr", "share", "dictd", "freedict-eng-ind")

_B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
SENSE_NUMBER = re.compile(r"^\s*\d+\.\s*|\s*\d+\.\s*$")


def _dictd_number(digits: str) -> int:
    value = 0
    for digit in digits:
        value = value * 64 + _B64.index(digit)
    return value


def dictionary_pairs(package_dir: Optional[str] = None) -> List[Tuple[str, str]]:
    """(English headword, its first Indonesian translation), one per headword.

    An entry is a headword line (word, pronunciation, part of speech), then the translations
    (comma-separated, a sense number like "2." ending the line before the next sense), then a gloss.
    """
    base = os.path.join(package_dir or FREEDICT_DIR, FREEDICT_BASE)
    if not os.path.exists(base + ".index"):
        raise FileNotFoundError(
            f"the FreeDict eng-ind dictionary is not at {base}.index: run `make .data/dict-freedict-eng-ind`"
        )
    with gzip.open(base + ".dict.dz", "rb") as compressed:
        body = compressed.read()
    pairs, seen = [], set()
    with open(base + ".index", encoding="utf-8") as index:
        for line in index:
            fields = line.rstrip("\n").split("\t")
            if len(fields) != 3 or fields[0].startswith("00database"):
                continue
            headword, offset, length = fields[0], _dictd_number(fields[1]), _dictd_number(fields[2])
            lines = body[offset : offset + length].decode("utf-8").split("\n")
            if len(lines) < 2 or headword in seen:
                continue
            translation = SENSE_NUMBER.sub("", lines[1]).split(",")[0].strip()
            if translation and translation != headword:
                seen.add(headword)
                pairs.append((headword, translation))
    return pairs
