"""The Translator's train parameters: one dataclass (defaults, ranges, docs) and the presets the
default models are built with (`train(..., preset="translator-en-id")` trains as that one was)."""

import math
from dataclasses import dataclass
from typing import Any, ClassVar, Dict, Optional

from ...toolkit.training.recipes import Recipe, knob, precision_knob

# The most target tokens one request may ask for, unless a model says otherwise.
DEFAULT_MAX_NEW_TOKENS_LIMIT = 512


@dataclass
class TranslatorRecipe(Recipe):
    """How to fine-tune a given seq2seq model, or build one: a pretrained encoder, a decoder with
    cross-attention trained from scratch and a target-side BPE vocabulary."""

    base_model: str = knob("", "A local seq2seq model dir (or one of ours) to fine-tune whole; empty: build one.")
    encoder_model: str = knob(
        "", "No base_model only: a local HF encoder dir to warm-start the encoder from (empty: the packaged MiniLM-L6)."
    )
    freeze_encoder: bool = knob(
        True,
        "No base_model only: keep the pretrained encoder fixed (its states are then computed once per batch and "
        "reused); false trains it too.",
    )
    tuned_encoder_layers: int = knob(
        0,
        "No base_model, freeze_encoder only: still train the top N encoder layers, over the cached states of the "
        "layers below them (0: none). Trained encoder layers learn at a tenth of learning_rate.",
    )
    target_vocab_size: int = knob(8000, "No base_model only: subword vocabulary of the target side, trained here.", minimum=1)
    decoder_layers: int = knob(3, "No base_model only: decoder layers (the decoder's width is the encoder's).", minimum=1)
    decoder_heads: int = knob(6, "No base_model only: attention heads per decoder layer.", minimum=1)
    max_source_tokens: int = knob(128, "Source texts are cut to this many tokens; the model's input limit.", minimum=1)
    max_target_tokens: int = knob(128, "Target texts are cut to this many tokens.", minimum=1)
    batch_size: int = knob(32, "Pairs per step (batches group texts of similar length).", minimum=1)
    learning_rate: float = knob(
        0.0, "Peak AdamW learning rate (0: 7e-4 for a new decoder, 5e-5 to fine-tune).", minimum=0.0
    )
    weight_decay: float = knob(0.01, "AdamW weight decay.")
    label_smoothing: float = knob(0.1, "Label smoothing of the cross-entropy loss.")
    epochs: int = knob(1, "Passes over the training pairs (ignored when max_steps is set).")
    max_steps: int = knob(0, "Optimizer steps to take (0: as many as epochs give).", minimum=0)
    grad_clip: float = knob(1.0, "Clip the gradient norm to this (0: no clipping).")
    val_fraction: float = knob(0.05, "Share of training_data held out for validation when no validation_data is given.")
    eval_every: int = knob(0, "Validate every N steps (0: five times per run).")
    max_eval_sentences: int = knob(200, "Validation pairs translated for BLEU and chrF at each evaluation.")
    seed: int = knob(42, "Seeds the decoder's initialisation, the batch order and dropout.")
    device: str = knob("auto", "auto (CUDA when present), cpu or cuda[:N].")
    max_seconds: Optional[float] = knob(None, "Optional wall-clock budget; the learning-rate schedule is paced to it.")
    max_new_tokens_limit: int = knob(
        DEFAULT_MAX_NEW_TOKENS_LIMIT, "The most target tokens one request may ask the trained model for.", minimum=1
    )
    precision: str = precision_knob()

    PRESETS: ClassVar[Dict[str, Dict[str, Any]]] = {
        # English -> Indonesian (bootstrap/translator.py): MiniLM-L6 frozen below its top two
        # layers, a 3-layer decoder, under 45 minutes for the whole CPU build.
        "translator-en-id": {
            "tuned_encoder_layers": 2,
            "decoder_layers": 3,
            "decoder_heads": 6,
            "target_vocab_size": 8000,
            "max_source_tokens": 96,
            "max_target_tokens": 128,
            "batch_size": 48,
            "learning_rate": 7e-4,
            "label_smoothing": 0.1,
            "epochs": 50,
            "val_fraction": 0.0,  # the builder passes validation_data: a hash split of the training pairs
            "eval_every": 1000,
            "max_eval_sentences": 200,
            "seed": 42,
            "max_seconds": 40 * 60,
        },
        # What `make serve` builds first: the encoder frozen whole, a 2-layer decoder and two
        # minutes of training (rough translations); the full `translator-en-id` replaces it live.
        "translator-en-id-quick": {
            "tuned_encoder_layers": 0,
            "decoder_layers": 2,
            "decoder_heads": 6,
            "target_vocab_size": 4000,
            "max_source_tokens": 96,
            "max_target_tokens": 128,
            "batch_size": 48,
            "learning_rate": 1e-3,
            "label_smoothing": 0.1,
            "epochs": 50,
            "val_fraction": 0.0,
            "eval_every": 400,
            "max_eval_sentences": 50,
            "seed": 42,
            "max_seconds": 120,
        },
    }

    def check_together(self) -> None:
        """The rules between knobs, and the ranges whose messages say more than a bare bound."""
        if self.tuned_encoder_layers < 0:
            raise ValueError(f"tuned_encoder_layers must be 0 or more, got {self.tuned_encoder_layers}")
        if not math.isfinite(self.learning_rate):
            raise ValueError(f"learning_rate must be positive (or 0 for the default), got {self.learning_rate}")
        if self.max_steps == 0 and self.epochs < 1:
            raise ValueError(f"give epochs >= 1 or max_steps >= 1, got epochs={self.epochs}, max_steps={self.max_steps}")
        if not 0 <= self.val_fraction < 0.5:
            raise ValueError(f"val_fraction must be in [0, 0.5), got {self.val_fraction}")
