"""The DCGAN trainer: images and a recipe -> a trained DCGANImageGenerator.

The generator and the discriminator take turns (pytorch/examples' dcgan: BCE, Adam with beta1
0.5, N(0, 0.02) init) through the shared loop's two-optimizer step; evaluation.py scores each
checkpoint and keeps the best."""

from typing import Iterator, List, Optional

import numpy as np
import torch
import torch.nn.functional as F

import alog

from ...nets.dcgan import Discriminator, Generator
from ...nets.image_classifier import ImageClassifier
from ...toolkit.training import distributed
from ...toolkit.models.device import amp_dtype, describe, dtype_name, resolve_device
from ...toolkit.training.loop import TrainingReport, run_training
from .evaluation import AveragedGenerator, Evaluation
from .images import to_unit_range
from .recipe import DCGANRecipe

log = alog.use_channel("DCGAN")


def train_dcgan(
    module_class,
    images: np.ndarray,
    labels: Optional[List[str]],
    recipe: DCGANRecipe,
    feature_net: Optional[ImageClassifier] = None,
    progress_description: str = "dcgan",
):
    """A `module_class` model trained on uint8 images [n, size, size, channels] and a label per
    image (or None). `feature_net` gives the Frechet distance's features (default: a fixed, seeded,
    untrained CNN of the same shape, which still ranks checkpoints)."""
    if len(images) < recipe.batch_size:
        raise ValueError(f"the training data has {len(images)} images, fewer than one batch ({recipe.batch_size}): lower batch_size")
    class_names = _class_names(labels, recipe.conditional)
    label_ids = torch.tensor([class_names.index(label) for label in labels] if class_names else [0] * len(images))
    size, channels = images.shape[1], images.shape[3]
    device = resolve_device(recipe.device)
    torch.manual_seed(recipe.seed)
    generator = Generator(size, channels, recipe.nz, recipe.ngf, len(class_names), recipe.hidden_features).to(device)
    discriminator = Discriminator(size, channels, recipe.ndf, len(class_names), recipe.hidden_features).to(device)
    # Data-parallel ranks start from rank 0's weights (the loop broadcasts them) but draw their own noise.
    torch.manual_seed(recipe.seed + distributed.rank())
    optimizers = {
        "discriminator": torch.optim.Adam(discriminator.parameters(), lr=recipe.learning_rate, betas=(recipe.beta1, 0.999)),
        "generator": torch.optim.Adam(generator.parameters(), lr=recipe.learning_rate, betas=(recipe.beta1, 0.999)),
    }
    pixels = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).contiguous()  # uint8 [n, c, h, w]
    total_steps = recipe.max_steps if recipe.max_steps > 0 else recipe.epochs * (len(images) // recipe.batch_size)
    conditional = bool(class_names)
    log.info(
        "training a %dx%dx%d %sDCGAN on %d images (%d classes), %s",
        size, size, channels, "c" if conditional else "", len(images), len(class_names), describe(device),
    )
    averaged = AveragedGenerator(generator, recipe.ema_decay) if recipe.ema_decay > 0 else None
    evaluation = Evaluation(generator, averaged, pixels, label_ids, conditional, recipe.eval_samples, device, feature_net)
    report = run_training(
        torch.nn.ModuleDict({"generator": generator, "discriminator": discriminator}),
        optimizers,
        shuffled_batches(pixels, label_ids, recipe.batch_size, recipe.seed),
        adversarial_step(generator, discriminator, recipe, conditional, averaged),
        total_steps=total_steps,
        device=device,
        grad_clip=None,
        evaluate=evaluation,
        eval_every=recipe.eval_every or max(1, total_steps // 10),
        max_seconds=recipe.max_seconds,
        description=progress_description,
        precision=recipe.precision,
    )
    generator.load_state_dict(evaluation.best_state)
    model = module_class(generator.eval(), class_names, recipe.max_images, str(device), artifacts=evaluation.grids)
    model.metrics = _training_metrics(recipe, images, class_names, (generator, discriminator), report, evaluation, device)
    return model


def _class_names(labels: Optional[List[str]], conditional: Optional[bool]) -> List[str]:
    """The classes to condition on, sorted: none when unlabeled, turned off, or (unasked) only one."""
    if conditional and not labels:
        raise ValueError("conditional training needs a class label on every image")
    class_names = sorted(set(labels)) if labels and conditional is not False else []
    if labels and conditional is None and len(class_names) < 2:
        return []  # one class: nothing to condition on
    return class_names


def adversarial_step(generator, discriminator, recipe: DCGANRecipe, conditional: bool, averaged: Optional[AveragedGenerator]):
    """The loop's two-optimizer step: the discriminator on real and fake, then the generator."""
    real_target = 1.0 - recipe.label_smoothing

    def step_fn(_nets, batch, update):
        real, real_labels = batch["images"], batch["labels"] if conditional else None
        noise = torch.randn(real.shape[0], recipe.nz, device=real.device)
        fake = generator(noise, real_labels)
        real_logits = discriminator(real, real_labels)
        fake_logits = discriminator(fake.detach(), real_labels)
        loss_d = F.binary_cross_entropy_with_logits(
            real_logits.float(), torch.full_like(real_logits, real_target, dtype=torch.float32)
        ) + F.binary_cross_entropy_with_logits(fake_logits.float(), torch.zeros_like(fake_logits, dtype=torch.float32))
        update("discriminator", loss_d)
        # Non-saturating generator loss: make the discriminator call the fakes real.
        fooled_logits = discriminator(fake, real_labels)
        loss_g = F.binary_cross_entropy_with_logits(fooled_logits.float(), torch.ones_like(fooled_logits, dtype=torch.float32))
        update("generator", loss_g)
        if averaged is not None:
            averaged.update(generator)
        return {"D": loss_d, "G": loss_g}

    return step_fn


def shuffled_batches(pixels: torch.Tensor, label_ids: torch.Tensor, batch_size: int, seed: int) -> Iterator[dict]:
    """Endless shuffled batches (a new seeded order each epoch, the last partial batch dropped),
    as images in [-1, 1] and their class ids."""
    rng = torch.Generator().manual_seed(seed)
    while True:
        order = torch.randperm(len(pixels), generator=rng)
        for start in range(0, len(order) - batch_size + 1, batch_size):
            chosen = order[start : start + batch_size]
            yield {"images": to_unit_range(pixels[chosen]), "labels": label_ids[chosen]}


def _training_metrics(recipe, images, class_names, nets, report: TrainingReport, evaluation: Evaluation, device) -> dict:
    """What the model dir's metrics.json records about its run."""
    generator, discriminator = nets
    images_seen = report.steps * recipe.batch_size
    return {
        "recipe": {
            "image_size": images.shape[1], "channels": images.shape[3], "nz": recipe.nz, "ngf": recipe.ngf, "ndf": recipe.ndf,
            "batch_size": recipe.batch_size, "learning_rate": recipe.learning_rate, "beta1": recipe.beta1,
            "label_smoothing": recipe.label_smoothing, "conditional": bool(class_names), "seed": recipe.seed,
            "max_seconds": recipe.max_seconds, "ema_decay": recipe.ema_decay, "hidden_features": recipe.hidden_features,
            "precision": recipe.precision,
        },
        "class_names": class_names,
        "generator_parameters": sum(p.numel() for p in generator.parameters()),
        "discriminator_parameters": sum(p.numel() for p in discriminator.parameters()),
        "train_images": len(images),
        "steps": report.steps,
        "images_seen": images_seen,
        "epochs_seen": round(images_seen / len(images), 3),
        "train_seconds": round(report.seconds, 1),
        "images_per_second": round(images_seen / max(report.seconds, 1e-9), 1),
        "stopped_by_time_budget": report.stopped_by_time_budget,
        "device": describe(device),
        "precision": dtype_name(amp_dtype(device, recipe.precision)),
        "last_losses": {name: round(value, 4) for name, value in report.last_losses.items()},
        "quality_metric": evaluation.metric_name,
        "eval_samples": evaluation.sample_count,
        "best_sample_grid": evaluation.best_grid,
        "best_frechet_distance": round(evaluation.best_score, 4),
        "kept_weights": evaluation.best_weights,
        "evaluations": report.evaluations,
    }
