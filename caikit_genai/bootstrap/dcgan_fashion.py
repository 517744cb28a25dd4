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

from ..modules.dcgan_image_generator import DCGANImageGenerator, DCGANRecipe, seeded_noise, shuffled_batches, to_unit_range, train_dcgan
from ..nets.dcgan import Generator
from ..nets.image_classifier import ImageClassifier
from ..toolkit.models.device import resolve_device
from ..toolkit.metrics.frechet import extract_features, frechet_distance_of
from ..toolkit.offline_data.fashion_mnist import FASHION_MNIST_CLASSES, fashion_mnist
from ..toolkit.training.loop import run_training

log = alog.use_channel("BOOTSTRAP")

CLASSIFIER_FILE = "quality_classifier.pt"
PRESET = "dcgan-fashion"
QUICK_PRESET = "dcgan-fashion-quick"
DCGAN_FASHION_RECIPE = DCGANRecipe.PRESETS[PRESET]
# The GAN trains for what is left of the build budget after the classifier and before the final
# figures: a slower machine trains the GAN for less time, the build does not take longer.
DCGAN_FASHION_BUILD_SECONDS = 20 * 60
DCGAN_FIGURES_SECONDS = 90
CLASSIFIER_RECIPE = {"epochs": 2, "batch_size": 128, "learning_rate": 1e-3, "seed": 0}
QUALITY_SAMPLES = 10_000
# The full build's and the quick build's (what `make serve` builds first) budget and cuts.
BUILD_CUTS = {
    PRESET: {"budget_seconds": DCGAN_FASHION_BUILD_SECONDS, "figures_seconds": DCGAN_FIGURES_SECONDS, "quality_samples": QUALITY_SAMPLES, "classifier_epochs": 2},
    QUICK_PRESET: {"budget_seconds": 100, "figures_seconds": 15, "quality_samples": 1000, "classifier_epochs": 1},
}


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
    run_training(
        classifier, optimizer, shuffled_batches(pixels, label_ids, batch_size, seed), lambda net, batch: F.cross_entropy(net(batch["images"]), batch["labels"]),
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
    quality_samples: Optional[int] = None,
    classifier_recipe: Optional[dict] = None,
    budget_seconds: Optional[float] = None,
    quick: bool = False,
    **overrides,
) -> Dict:
    """Train the classifier and the cDCGAN (the dcgan-fashion preset; `overrides` are recipe
    knobs), measure FD floor / model / ceiling and per-label agreement, save the model dir (with
    an 8x8 sample grid). `limit` and `test_limit` take the first images of each split (tests).
    `quick`: the dcgan-fashion-quick recipe and its BUILD_CUTS (what `make serve` builds first)."""
    started = time.monotonic()
    preset = QUICK_PRESET if quick else PRESET
    cuts = BUILD_CUTS[preset]
    budget_seconds = budget_seconds or cuts["budget_seconds"]
    quality_samples = quality_samples or cuts["quality_samples"]
    train_images, train_labels = fashion_mnist("train", limit)
    test_images, test_labels = fashion_mnist("test", test_limit)
    log.info("dcgan-fashion: %d training / %d test images", len(train_images), len(test_images))
    classifier_settings = {**CLASSIFIER_RECIPE, "epochs": cuts["classifier_epochs"], **(classifier_recipe or {})}
    classifier = train_quality_classifier(train_images, train_labels, **classifier_settings)
    test_pixels = to_unit_range(torch.from_numpy(test_images).permute(0, 3, 1, 2))
    test_ids = np.array([FASHION_MNIST_CLASSES.index(label) for label in test_labels])
    classifier_accuracy = float((classify(classifier, test_pixels) == test_ids).mean())
    log.info("dcgan-fashion: quality classifier test accuracy %.4f", classifier_accuracy)

    left = budget_seconds - (time.monotonic() - started) - cuts["figures_seconds"]
    recipe = DCGANRecipe.build(preset, **{"max_seconds": round(max(30.0 if quick else 60.0, left), 1), **overrides})
    model = train_dcgan(
        DCGANImageGenerator, train_images, train_labels, recipe, feature_net=classifier, progress_description=preset
    )
    count = min(quality_samples, len(test_images))
    generated, requested = generate_per_class(model, count)
    ceiling_images, _ = generate_per_class(DCGANImageGenerator(untrained_like(model, recipe.seed), model.class_names), count)
    quality = {
        "feature_net": f"the quality classifier's {classifier.feature_dim} penultimate features (test accuracy {classifier_accuracy:.4f})",
        **frechet_figures(classifier, generated, ceiling_images, train_images[:count], test_pixels[:count]),
    }
    agreement = label_agreement(model.class_names, classify(classifier, generated), requested)
    buffer = io.BytesIO()
    torch.save(classifier.state_dict(), buffer)
    model.artifacts[CLASSIFIER_FILE] = buffer.getvalue()
    model.artifacts["samples/grid-8x8-seed0.png"] = model.run(64, seed=0, as_grid=True).images[0].image_data  # the classes in turn
    model.metrics.update(
        {
            "dataset": "Fashion-MNIST (Xiao et al. 2017, MIT), Debian dataset-fashion-mnist",
            "quality_classifier": {"file": CLASSIFIER_FILE, "net": classifier.hyperparameters(), "test_accuracy": round(classifier_accuracy, 4), "recipe": classifier_settings},
            "frechet_distance": quality,
            "label_agreement": agreement,
            "label_agreement_mean": round(float(np.mean(list(agreement.values()))), 4),
            "build_budget_seconds": budget_seconds,
            "build_seconds": round(time.monotonic() - started, 1),
            "quick": quick,
        }
    )
    model.save(model_path)
    log.info("dcgan-fashion: FD %s (floor %s, ceiling %s), saved to %s", quality["model"], quality["floor_real_train_vs_test"], quality["ceiling_untrained_generator"], model_path)
    return model.metrics


def frechet_figures(classifier: ImageClassifier, generated: torch.Tensor, ceiling_images: torch.Tensor, train_images: np.ndarray, test_pixels: torch.Tensor) -> Dict:
    """FD on the classifier's features against the test images: the model's, the floor (real
    training images) and the ceiling (the untrained generator's), on as many images each."""
    count = len(test_pixels)
    test_features = extract_features(classifier.features, test_pixels)
    train_pixels = to_unit_range(torch.from_numpy(train_images).permute(0, 3, 1, 2))

    def distance(images: torch.Tensor) -> float:
        return round(frechet_distance_of(extract_features(classifier.features, images), test_features), 4)

    return {
        "samples": count,
        "reference": f"the first {count} Fashion-MNIST test images",
        "model": distance(generated),
        "floor_real_train_vs_test": distance(train_pixels),
        "ceiling_untrained_generator": distance(ceiling_images),
    }


def label_agreement(class_names, predicted: np.ndarray, requested: np.ndarray) -> Dict[str, float]:
    """Per class: the share of images drawn for it that the classifier calls that class."""
    agreement = {}
    for index, name in enumerate(class_names):
        # The classifier's own class ids are FASHION_MNIST_CLASSES order; the model's are sorted names.
        agreement[name] = round(float((predicted[requested == index] == FASHION_MNIST_CLASSES.index(name)).mean()), 4)
    return agreement


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
    label_ids = np.array(model.seed_labels(seeds))
    noise = torch.stack([seeded_noise(seed, model.nz) for seed in seeds])
    labels = torch.from_numpy(label_ids) if model.class_names else None
    images = [
        model.generator(noise[start : start + 500], None if labels is None else labels[start : start + 500]).float()
        for start in range(0, count, 500)
    ]
    return torch.cat(images), label_ids
