"""Jane Austen's six novels (public domain), from Debian r-cran-janeaustenr's R data files."""

import os
from typing import Dict, Optional, Sequence

from . import DATA_DIR

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
