"""SentimentClassifier's train parameters: one dataclass, and the recipes the default models
are built with (bootstrap/sentiment.py)."""

from dataclasses import dataclass
from typing import Optional

from ...nets.pooled_classifier import POOLINGS
from ...toolkit.training.recipes import Recipe, knob, precision_knob


@dataclass
class SentimentRecipe(Recipe):
    """How a classifier is fine-tuned: the base, the optimizer, the run length and the levers
    that make a big base affordable (frozen lower layers) or a small one better (distillation)."""

    base_model: str = knob(
        "", "A local HF dir (encoder or classifier) or hub id; empty means the packaged MiniLM-L6 encoder."
    )
    epochs: int = knob(3, "Passes over the training data.", minimum=1)
    batch_size: int = knob(32, "Examples per optimizer step.", minimum=1)
    learning_rate: float = knob(5e-5, "Peak AdamW learning rate (linear warm-up, then linear decay).", above=0)
    weight_decay: float = knob(0.01, "AdamW weight decay.", minimum=0)
    max_length: int = knob(128, "Training examples are cut to this many tokens.", minimum=4)
    val_fraction: float = knob(
        0.0,
        "Hold out this fraction of each label's examples for validation when no validation_data is given "
        "(rounded down; a label's last example always stays in training).",
    )
    seed: int = knob(42, "Seeds the shuffle, the head's initialisation and dropout.")
    device: str = knob("auto", "auto (CUDA when present), cpu or cuda[:N].")
    precision: str = precision_knob()
    max_seconds: Optional[float] = knob(
        None,
        "Optional wall-clock budget for the whole call, counted from its start (caching, teacher scoring and "
        "training); training stops after the step that passes it, and the learning rate decays by time as well "
        "as by steps, so a slower machine ends with fewer steps, not a longer run.",
    )
    freeze_layers: int = knob(
        0,
        "0 tunes every layer; N > 0 freezes the embeddings and the lowest N encoder layers, computes their "
        "output once and trains only the layers above over it (each epoch then costs a fraction of a full one).",
    )
    calibrate: bool = knob(
        False,
        "After training, fit a softmax temperature on the validation data (Guo et al. 2017) and fold it into the "
        "head: the labels stay, the scores say how often they are right. Needs validation data.",
    )
    teacher_model: str = knob(
        "",
        "A sentiment model dir (ours, or an HF sequence classifier with the same labels) to distil from: the "
        "student learns the teacher's scores as well as the gold labels (DistilBERT's recipe). In-process, "
        "a SentimentClassifier.",
    )
    temperature: float = knob(
        2.0,
        "Softens the teacher's and the student's scores in the distillation loss (scaled by temperature "
        "squared, as Hinton et al. do).",
    )
    distillation_weight: float = knob(
        0.5,
        "With a teacher, the share of the loss that is distillation (the rest is cross-entropy on gold labels).",
        minimum=0.0,
        maximum=1.0,
    )
    # Knobs added after the train RPC was published: pooling last among the knobs (it moved
    # unlabelled_texts and preset up one), later ones `late` (numbered after preset).
    pooling: str = knob(
        "cls",
        "What the head reads: cls (the first token's state, Hugging Face's classifiers; the saved dir loads in "
        "transformers.pipeline) or mean (the mean of the token states, how sentence encoders such as MPNet and "
        "MiniLM were trained; the saved dir needs SentimentClassifier.load).",
    )
    layer_lr_decay: float = knob(
        1.0,
        "Layer-wise learning-rate decay: each encoder layer trains at this times the rate of the layer above it "
        "(the top layer at learning_rate times it, the head at learning_rate); 1.0 turns it off.",
        above=0,
        maximum=1.0,
        late=True,
    )
    ema_decay: float = knob(
        0.0,
        "Also keep an exponential moving average of the trained weights with this decay per step (0: none); "
        "each evaluation scores it beside the weights themselves, and the better of the two on the validation "
        "data is kept. Needs validation data.",
        minimum=0,
        late=True,
    )

    PRESETS = {
        # MPNet-base (the builder names it) with its lowest 4 layers frozen, trained in bf16 where
        # the CPU has it (half the step time of fp32, so 8 layers and 3 epochs fit the budget),
        # with a moving average of the weights (about an epoch long), calibrated on the
        # validation split. Chosen on the validation split, never on the test split; the weights
        # (or average) of the best evaluation on it are kept.
        "sentiment": {
            "freeze_layers": 4,
            "epochs": 3,
            "batch_size": 32,
            "learning_rate": 5e-5,
            "max_length": 64,
            "seed": 42,
            "precision": "bf16",
            "calibrate": True,
            "ema_decay": 0.997,
        },
        # What `make serve` builds first: the packaged MiniLM-L6 (no MPNet download), its lowest
        # 4 layers frozen, one minute of training; the full `sentiment` replaces it live.
        "sentiment-quick": {
            "freeze_layers": 4,
            "epochs": 1,
            "batch_size": 32,
            "learning_rate": 1e-4,
            "max_length": 64,
            "seed": 42,
            "max_seconds": 60,
        },
        # MiniLM-L6 distilled from `sentiment` (the builder hands in the teacher).
        "sentiment-minilm": {
            "epochs": 3,
            "batch_size": 32,
            "learning_rate": 1e-4,
            "max_length": 64,
            "seed": 42,
            "temperature": 2.0,
            "distillation_weight": 0.5,
        },
    }

    def check_together(self) -> None:
        """The ranges whose messages say what a value means (ValueError, as train always raised)."""
        if not 0 <= self.val_fraction < 1:
            raise ValueError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        if self.pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {list(POOLINGS)}, got {self.pooling!r}")
        if self.freeze_layers < 0:
            raise ValueError(f"freeze_layers must be 0 (tune every layer) or a positive layer count, got {self.freeze_layers!r}")
        if not 0 <= self.ema_decay < 1:
            raise ValueError(f"ema_decay must be 0 (no average) or below 1, got {self.ema_decay}")
        if not self.temperature > 0:
            raise ValueError(f"temperature must be positive, got {self.temperature}")
