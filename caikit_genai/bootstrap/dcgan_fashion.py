"""The default `dcgan-fashion` model: a class-conditional DCGAN trained on Fashion-MNIST, with
its quality measured against a floor and a ceiling.

The build first trains a small CNN classifier on the training images (its test accuracy is
recorded). Its penultimate features are the space of the Frechet distance (FD) that picks the
kept checkpoint during training and scores the final model: 10,000 generated images (1,000 per
class) against the 10,000 test images, next to the same figure for 10,000 real training images
(the floor) and for the untrained generator (the ceiling). The classifier also checks that each
requested class is what comes out (per-label agreement). Inception FID, the figure papers report,
costs half an hour of CPU: benchmarks/dcgan_fid.py computes it once per recipe.
"""

import io
import time
from typing import Dict, Optional

import numpy as np
import torch
import torch.nn.functional as F

import alog

from ..modules.dcgan_image_generator import DCGANImageGenerator, seeded_noise, to_unit_range
from ..nets.dcgan import Generator
from ..nets.image_classifier import ImageClassifier
from ..toolkit.device import resolve_device
from ..toolkit.frechet import extract_features, frechet_distance_of
from ..toolkit.offline_data.fashion_mnist import FASHION_MNIST_CLASSES, fashion_mnist
from ..toolkit.training import run_training

log = alog.use_channel("BOOTSTRAP")

CLASSIFIER_FILE = "quality_classifier.pt"
# pytorch/examples' dcgan defaults (nz 100, ngf = ndf = 64, batch 64, Adam 2e-4, beta1 0.5) at
# Fashion-MNIST's own 28x28, conditional on the class, with the FC 1024 layer of Lucic et al.'s
# InfoGAN nets in each (hidden_features): Inception FID 91 at 1,229 steps (7 minutes) where the
# pytorch/examples nets stayed near 130 from 2,000 to 4,000 steps (1,000 vs 2,000 test images).
# The GAN trains for whatever is left of DCGAN_FASHION_BUILD_SECONDS once the classifier is
# trained, less DCGAN_FIGURES_SECONDS for the final figures: on a slower machine the GAN trains
# for less time, the build does not take longer.
# (28x28 beat 32x32 padded per minute here: classifier FD 69 vs 85 after 5 minutes each.)
DCGAN_FASHION_BUILD_SECONDS = 20 * 60
DCGAN_FIGURES_SECONDS = 90
DCGAN_FASHION_RECIPE = {
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
    # An average of the generator's weights, scored beside them at each evaluation: at step 3,000
    # it measured FD 3.07 against the weights' own 7.49 (the weights wander from one evaluation to
    # the next; the average less).
    "ema_decay": 0.999,
}
CLASSIFIER_RECIPE = {"epochs": 2, "batch_size": 128, "learning_rate": 1e-3, "seed": 0}
QUALITY_SAMPLES = 10_000


def train_quality_classifier(images: np.ndarray, labels, epochs: int = 2, batch_size: int = 128, learning_rate: float = 1e-3, seed: int = 0, device: str = "auto") -> ImageClassifier:
    """The small CNN (nets/image_classifier.py) trained on labelled 28x28 images."""
    target = resolve_device(device)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        classifier = ImageClassifier(num_classes=len(FASHION_MNIST_CLASSES)).to(target)
    label_ids = torch.tensor([FASHION_MNIST_CLASSES.index(label) for label in labels])
    pixels = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()
    optimizer = torch.optim.Adam(classifier.parameters(), lr=learning_rate)
    steps = epochs * (len(images) // batch_size)

    def batches():
        rng = torch.Generator().manual_seed(seed)
        while True:
            order = torch.randperm(len(images), generator=rng)
            for start in range(0, len(order) - batch_size + 1, batch_size):
                chosen = order[start : start + batch_size]
                yield {"images": to_unit_range(pixels[chosen]), "labels": label_ids[chosen]}

    run_training(
        classifier, optimizer, batches(), lambda net, batch: F.cross_entropy(net(batch["images"]), batch["labels"]),
        total_steps=steps, device=target, grad_clip=None, description="fashion classifier",
    )
    return classifier.eval()


@torch.inference_mode()
def classify(classifier: ImageClassifier, images: torch.Tensor) -> np.ndarray:
    """Class ids for images in [-1, 1]."""
    return torch.cat([classifier(images[start : start + 1000]).argmax(1) for start in range(0, len(images), 1000)]).cpu().numpy()


def build_dcgan_fashion(
    model_path: str,
    limit: Optional[int] = None,
    test_limit: Optional[int] = None,
    quality_samples: int = QUALITY_SAMPLES,
    classifier_recipe: Optional[dict] = None,
    budget_seconds: float = DCGAN_FASHION_BUILD_SECONDS,
    **overrides,
) -> Dict:
    """Train the classifier and the cDCGAN, measure FD floor / model / ceiling and per-label
    agreement, save the model dir (with an 8x8 sample grid). `limit` and `test_limit` take the
    first images of each split (tests)."""
    recipe = {**DCGAN_FASHION_RECIPE, **overrides}
    started = time.monotonic()
    train_images, train_labels = fashion_mnist("train", limit)
    test_images, test_labels = fashion_mnist("test", test_limit)
    log.info("dcgan-fashion: %d training / %d test images", len(train_images), len(test_images))
    classifier = train_quality_classifier(train_images, train_labels, **{**CLASSIFIER_RECIPE, **(classifier_recipe or {})})
    test_pixels = to_unit_range(torch.from_numpy(test_images).permute(0, 3, 1, 2))
    test_ids = np.array([FASHION_MNIST_CLASSES.index(label) for label in test_labels])
    classifier_accuracy = float((classify(classifier, test_pixels) == test_ids).mean())
    log.info("dcgan-fashion: quality classifier test accuracy %.4f", classifier_accuracy)

    left = budget_seconds - (time.monotonic() - started) - DCGAN_FIGURES_SECONDS
    recipe.setdefault("max_seconds", round(max(60.0, left), 1))
    model = DCGANImageGenerator.train_arrays(
        train_images, train_labels, conditional=True, feature_net=classifier, progress_description="dcgan-fashion", **recipe
    )
    untrained = DCGANImageGenerator(untrained_like(model, recipe["seed"]), model.class_names)
    count = min(quality_samples, len(test_images))
    test_features = extract_features(classifier.features, test_pixels[:count])
    train_pixels = to_unit_range(torch.from_numpy(train_images[:count]).permute(0, 3, 1, 2))
    generated, requested = generate_per_class(model, count)
    ceiling_images, _ = generate_per_class(untrained, count)
    agreement = {}
    predicted = classify(classifier, generated)
    for index, name in enumerate(model.class_names):
        mask = requested == index
        # The classifier's own class ids are FASHION_MNIST_CLASSES order; the model's are sorted names.
        agreement[name] = round(float((predicted[mask] == FASHION_MNIST_CLASSES.index(name)).mean()), 4)
    quality = {
        "feature_net": f"the quality classifier's {classifier.feature_dim} penultimate features (test accuracy {classifier_accuracy:.4f})",
        "samples": count,
        "reference": f"the first {count} Fashion-MNIST test images",
        "model": round(frechet_distance_of(extract_features(classifier.features, generated), test_features), 4),
        "floor_real_train_vs_test": round(frechet_distance_of(extract_features(classifier.features, train_pixels), test_features), 4),
        "ceiling_untrained_generator": round(frechet_distance_of(extract_features(classifier.features, ceiling_images), test_features), 4),
    }
    grid = model.run(64, seed=0, as_grid=True)  # seeds 0-63, the classes in turn
    buffer = io.BytesIO()
    torch.save(classifier.state_dict(), buffer)
    model.artifacts[CLASSIFIER_FILE] = buffer.getvalue()
    model.artifacts["samples/grid-8x8-seed0.png"] = grid.images[0].image_data
    model.metrics.update(
        {
            "dataset": "Fashion-MNIST (Xiao et al. 2017, MIT), Debian dataset-fashion-mnist",
            "quality_classifier": {"file": CLASSIFIER_FILE, "net": classifier.hyperparameters(), "test_accuracy": round(classifier_accuracy, 4), "recipe": {**CLASSIFIER_RECIPE, **(classifier_recipe or {})}},
            "frechet_distance": quality,
            "label_agreement": agreement,
            "label_agreement_mean": round(float(np.mean(list(agreement.values()))), 4),
            "build_budget_seconds": budget_seconds,
            "build_seconds": round(time.monotonic() - started, 1),
        }
    )
    model.save(model_path)
    log.info("dcgan-fashion: FD %s (floor %s, ceiling %s), saved to %s", quality["model"], quality["floor_real_train_vs_test"], quality["ceiling_untrained_generator"], model_path)
    return model.metrics


def untrained_like(model: DCGANImageGenerator, seed: int) -> Generator:
    """A generator of the same shape at its seeded initialisation (the FD ceiling)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return Generator(**model.generator.hyperparameters()).eval()


@torch.inference_mode()
def generate_per_class(model: DCGANImageGenerator, count: int):
    """`count` images in [-1, 1] from seeds 0 .. count-1 (seed i draws class i mod classes, as
    served), generated in batches, and the class id of each."""
    seeds = list(range(count))
    label_ids = np.array(model._seed_labels(seeds))  # pylint: disable=protected-access
    noise = torch.stack([seeded_noise(seed, model.nz) for seed in seeds])
    labels = torch.from_numpy(label_ids) if model.class_names else None
    images = [
        model.generator(noise[start : start + 500], None if labels is None else labels[start : start + 500]).float()
        for start in range(0, count, 500)
    ]
    return torch.cat(images), label_ids
