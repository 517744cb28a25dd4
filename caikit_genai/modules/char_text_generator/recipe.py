"""CharTextGenerator's train parameters: one dataclass, and the recipe the default model
(char-austen) is built with."""

from dataclasses import dataclass
from typing import Optional

from ...nets.char_rnn import CELLS
from ...toolkit.training.recipes import Recipe, knob, precision_knob

# The most characters one request may ask for, unless a model says otherwise.
DEFAULT_MAX_NEW_TOKENS_LIMIT = 4096


@dataclass
class CharRecipe(Recipe):
    """How a character-level LSTM/GRU is trained: net, truncated BPTT, optimizer, run length."""

    cell: str = knob("lstm", "lstm or gru.")
    hidden_size: int = knob(512, "Units per recurrent layer.", minimum=1)
    num_layers: int = knob(2, "Stacked recurrent layers.", minimum=1)
    embedding_dim: int = knob(64, "Width of each character's embedding.", minimum=1)
    dropout: float = knob(0.0, "Dropout between recurrent layers and before the read-out.")
    seq_length: int = knob(64, "Characters per chunk of truncated backpropagation through time.", minimum=1)
    batch_size: int = knob(
        32,
        "Parallel streams of text per step. (The defaults, 64-character chunks in batches of 32, are char-austen's "
        "recipe: on 2 CPU cores, at equal characters per second, they beat 128-character chunks.)",
        minimum=1,
    )
    learning_rate: float = knob(
        3e-3, "Peak AdamW learning rate (short warm-up, then cosine decay to a tenth).", above=0
    )
    weight_decay: float = knob(0.0, "AdamW weight decay.")
    epochs: int = knob(1, "Passes over the training text (ignored when max_steps is set).")
    max_steps: int = knob(0, "Optimizer steps to take (0: as many as epochs give).", minimum=0)
    grad_clip: float = knob(1.0, "Clip the gradient norm to this (0: no clipping).")
    val_fraction: float = knob(0.05, "The tail of the text held out for validation loss (0: none).")
    eval_every: int = knob(0, "Validate every N steps (0: ten times per run).")
    seed: int = knob(42, "Seeds the initialisation, dropout and chunk offsets.")
    device: str = knob("auto", "auto (CUDA when present), cpu or cuda[:N].")
    precision: str = precision_knob()
    max_seconds: Optional[float] = knob(None, "Optional wall-clock budget; the learning-rate schedule is paced to it.")
    max_new_tokens_limit: int = knob(
        DEFAULT_MAX_NEW_TOKENS_LIMIT, "The most characters one request may ask the trained model for.", minimum=1
    )
    sample_prompt: str = knob("", "Prompt for the sample written into the metrics (default: the start of the text).")

    PRESETS = {
        # A 2x512 LSTM on Jane Austen's novels (bootstrap/char_austen.py), bounded by the clock
        # (35 minutes: about 6 epochs on 2 cores, where its validation loss bottoms out; longer
        # overfits, and dropout that prevents it slows learning as much; weight decay curbs the
        # overfitting without the slowdown); bf16 where the CPU has it (1.6x the steps of fp32 in
        # the same budget).
        "char-austen": {
            "cell": "lstm",
            "hidden_size": 512,
            "num_layers": 2,
            "embedding_dim": 64,
            "dropout": 0.0,
            "seq_length": 64,
            "batch_size": 32,
            "learning_rate": 3e-3,
            "weight_decay": 0.05,
            "epochs": 20,
            "val_fraction": 0.01,
            "eval_every": 200,
            "seed": 42,
            "max_seconds": 35 * 60,
            "sample_prompt": "The next morning",
            "precision": "bf16",
        },
        # What `make serve` builds first, so the task answers within minutes; the full build
        # replaces it live.
        "char-austen-quick": {
            "cell": "lstm",
            "hidden_size": 256,
            "num_layers": 1,
            "embedding_dim": 64,
            "seq_length": 64,
            "batch_size": 32,
            "learning_rate": 3e-3,
            "epochs": 20,
            "val_fraction": 0.01,
            "eval_every": 100,
            "seed": 42,
            "max_seconds": 45,
            "sample_prompt": "The next morning",
        },
    }

    def check_together(self) -> None:
        """The choices and half-open ranges whose messages train always gave (as ValueError),
        and the rule between epochs and max_steps."""
        if self.cell not in CELLS:
            raise ValueError(f"cell must be lstm or gru, got {self.cell!r}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if not 0 <= self.val_fraction < 0.5:
            raise ValueError(f"val_fraction must be in [0, 0.5), got {self.val_fraction}")
        if self.max_steps == 0 and self.epochs < 1:
            raise ValueError(f"give epochs >= 1 or max_steps >= 1, got epochs={self.epochs}, max_steps={self.max_steps}")
