"""DCGANImageGenerator's train parameters: one dataclass, and the recipe the default model is
built with. Defaults are pytorch/examples' dcgan values (nz 100, ngf = ndf = 64, batch 64,
Adam 2e-4 with beta1 0.5)."""

from dataclasses import dataclass
from typing import Optional

from ...toolkit.training.recipes import Recipe, knob, precision_knob

DEFAULT_MAX_IMAGES = 256


@dataclass
class DCGANRecipe(Recipe):
    """How a DCGAN is trained: nets, optimizer, run length, evaluation and the served cap."""

    image_size: int = knob(
        0, "Side in pixels to train at (0: the images' own, which must all match; 28, 32, 64 ...: every image is resized to it)."
    )
    channels: int = knob(0, "1 (grayscale) or 3 (RGB); 0: the images' own.")
    nz: int = knob(100, "Length of the noise vector.", minimum=1)
    ngf: int = knob(64, "Width of the generator's last hidden layer (doubling toward the noise).", minimum=1)
    ndf: int = knob(64, "Width of the discriminator's first layer (doubling toward the logit).", minimum=1)
    epochs: int = knob(5, "Passes over the images (ignored when max_steps is set).")
    max_steps: int = knob(
        0, "Training steps (one discriminator and one generator update each; 0: as many as epochs give).", minimum=0
    )
    batch_size: int = knob(64, "Real images per step.", minimum=1)
    learning_rate: float = knob(2e-4, "Adam learning rate of both networks.", above=0)
    beta1: float = knob(0.5, "Adam's beta1 (0.5 in DCGAN, not 0.9).")
    label_smoothing: float = knob(
        0.0, "One-sided label smoothing: the discriminator's target for real images is 1 - this (0: none)."
    )
    conditional: Optional[bool] = knob(None, "Feed class labels to both networks (unset: when the images have labels).")
    seed: int = knob(42, "Seeds the initialisation, shuffling and noise.")
    device: str = knob("auto", "auto (CUDA when present), cpu or cuda[:N].")
    precision: str = precision_knob()
    max_seconds: Optional[float] = knob(None, "Optional wall-clock budget.")
    eval_every: int = knob(
        0, "Evaluate (Frechet distance, sample grid, best checkpoint) every N steps (0: ten times per run)."
    )
    eval_samples: int = knob(1000, "Generated and real images per Frechet distance.", minimum=1)
    max_images: int = knob(DEFAULT_MAX_IMAGES, "The most images one request may ask the trained model for.", minimum=1)
    ema_decay: float = knob(
        0.0,
        "Also keep an exponential moving average of the generator's weights with this decay per step (0: none). "
        "Each evaluation scores it beside the generator itself, and the better of the two is kept.",
    )
    hidden_features: int = knob(
        0,
        "Width of one fully connected layer added to each net (0: none, pytorch/examples' nets; "
        "1024: the InfoGAN nets Lucic et al. 2018 measure on).",
    )

    PRESETS = {
        # pytorch/examples' dcgan at Fashion-MNIST's own 28x28, class-conditional, with the FC 1024
        # layer of the InfoGAN nets and a weight average (both measured better FD here), in bf16 where
        # the CPU has it (about twice the steps in the build's budget).
        "dcgan-fashion": {
            "nz": 100,
            "ngf": 64,
            "ndf": 64,
            "batch_size": 64,
            "learning_rate": 2e-4,
            "beta1": 0.5,
            "label_smoothing": 0.0,
            "epochs": 30,
            "hidden_features": 1024,
            "eval_every": 500,
            "eval_samples": 2000,
            "seed": 42,
            "ema_decay": 0.999,
            "conditional": True,
            "precision": "bf16",
        },
        # What `make serve` builds first (half the width, about a minute of training); the full
        # `dcgan-fashion` replaces it live.
        "dcgan-fashion-quick": {
            "nz": 100,
            "ngf": 32,
            "ndf": 32,
            "batch_size": 64,
            "learning_rate": 2e-4,
            "beta1": 0.5,
            "epochs": 30,
            "hidden_features": 256,
            "eval_every": 200,
            "eval_samples": 500,
            "seed": 42,
            "ema_decay": 0.99,
            "conditional": True,
        },
    }

    def check_together(self) -> None:
        """The half-open ranges and the rules between knobs (ValueError, as train always raised)."""
        if self.max_steps == 0 and self.epochs < 1:
            raise ValueError(f"give epochs >= 1 or max_steps >= 1, got epochs={self.epochs}, max_steps={self.max_steps}")
        _below("beta1", self.beta1, 1)
        _below("label_smoothing", self.label_smoothing, 0.5)
        _below("ema_decay", self.ema_decay, 1, " (0: no average)")
        if self.hidden_features < 0:
            raise ValueError(f"hidden_features must be 0 (no hidden layer) or more, got {self.hidden_features}")
        if self.hidden_features and self.batch_size < 2:
            raise ValueError("hidden_features needs batch_size >= 2: its BatchNorm1d layers cannot normalise one image")


def _below(name: str, value: float, bound: float, note: str = "") -> None:
    if not 0 <= value < bound:
        raise ValueError(f"{name} must be in [0, {bound}){note}, got {value}")
