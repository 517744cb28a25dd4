"""DCGANImageGenerator: a DCGAN (optionally class-conditional) trained adversarially here and
served as seeded image generation.

Serving (`ImageGenerationTask`: RPC `ImageGenerationTaskPredict`, HTTP
`/api/v1/task/image-generation`): each image's noise comes from its own seeded CPU generator, and
the generator network runs in eval() on calls of exactly RENDER_CHUNK images (zero noise fills
the last), so a seed fixes its image whatever `num_images` is and whatever else shares its call
(image i of a request with seed s is image 0 of a request with seed s + i). That is what lets
requests from many threads share generator calls (toolkit/batching.py). Tanh outputs in [-1, 1] become uint8 pixels, then PNG (or JPEG).

Training: the generator and the discriminator take turns (pytorch/examples' dcgan recipe: BCE,
Adam 2e-4 with beta1 0.5, N(0, 0.02) init) through the shared loop's two-optimizer step. Each
evaluation measures the Frechet distance between generated and real images on a small CNN's
features, draws a sample grid from a fixed noise batch, and keeps the generator if it is the
best so far: the model saved is the best checkpoint, not the last (GANs collapse late).
"""

import contextlib
import copy
import io
import math
import os
import random
import threading
from dataclasses import dataclass
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image as PILImage, UnidentifiedImageError

from caikit.core import ModuleBase, ModuleConfig, ModuleSaver, module
from caikit.core.data_model import DataStream
from caikit.interfaces.vision.data_model import Image
import alog

from ..data_model.image import GeneratedImages, LabeledImage
from ..nets.dcgan import Discriminator, Generator, layout
from ..nets.image_classifier import ImageClassifier
from ..tasks import ImageGenerationTask
from ..toolkit import distributed, limits
from ..toolkit.batching import DynamicBatcher, model_id_of
from ..toolkit.device import describe, resolve_device
from ..toolkit.errors import choice, invalid_argument, number_in_range, whole_number
from ..toolkit.frechet import extract_features, frechet_distance, statistics
from ..toolkit.model_dir import atomic_model_dir, read_metrics, write_metrics
from ..toolkit.training import run_training

log = alog.use_channel("DCGAN")

GENERATOR_FILE = "generator.pt"
SAMPLES_DIR = "samples"
DEFAULT_MAX_IMAGES = 256
IMAGE_FORMATS = ("png", "jpeg")  # the first is the default
MAX_INTERPOLATE_STEPS = 64
MAX_SEED = 2**63 - 1
GRID_PADDING = 2
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
# Images per generator call, always: on a fixed shape each image's bytes depend on its own noise
# and label alone (convolution kernels pick their algorithm by batch size, which changes low bits).
RENDER_CHUNK = 8
# A fixed seed for the evaluation noise and the untrained feature net, so every evaluation of
# every run measures the same way.
EVAL_SEED = 1234
# Off by default: pytorch/examples' recipe keeps no average (the default model's build sets it).
DEFAULT_EMA_DECAY = 0.0


@dataclass
class ImageRequest:
    """A checked generation request: every field valid, defaults filled in."""

    num_images: int
    seeds: List[int]
    label_ids: List[int]
    latents: Optional[torch.Tensor]
    interpolate_steps: int
    image_format: str
    as_grid: bool


@module(
    id="744ae8f0-d51d-45a4-9fb4-e3c0b303ad87",
    name="DCGANImageGenerator",
    version="0.1.0",
    task=ImageGenerationTask,
)
class DCGANImageGenerator(ModuleBase):
    """Generates images from noise with a trained DCGAN generator (class-conditional or not)."""

    def __init__(
        self,
        generator: Generator,
        class_names: Sequence[str] = (),
        max_images: int = DEFAULT_MAX_IMAGES,
        device: str = "auto",
        metrics: Optional[dict] = None,
        artifacts: Optional[Dict[str, bytes]] = None,
        model_id: str = "image-generator",
    ):
        super().__init__()
        if len(class_names) != generator.num_classes:
            raise ValueError(f"the generator has {generator.num_classes} classes, got {len(class_names)} class names")
        self.device = resolve_device(os.environ.get("CAIKIT_GENAI_DEVICE") or device)
        # eval(): BatchNorm uses its running statistics, so no image depends on its batch.
        self.generator = generator.to(self.device).eval()
        self.class_names = list(class_names)
        self.max_images = int(max_images)
        self.metrics = metrics or {}
        # Extra files for the model dir, by relative path: the sample grid of each training
        # evaluation (samples/step-NN.png), a build's quality classifier.
        self.artifacts = dict(artifacts or {})
        self.images_generated = 0
        self._counter_lock = threading.Lock()
        # Requests from many threads share generator calls; cost: images.
        self.batcher = DynamicBatcher(self._render_requests, model_id, cost=lambda item: len(item[0]))

    @property
    def nz(self) -> int:
        return self.generator.nz

    # -- inference -------------------------------------------------------------------------

    @ImageGenerationTask.taskmethod()
    def run(
        self,
        num_images: int,
        seed: Optional[int] = None,
        image_format: Optional[str] = "png",
        as_grid: bool = False,
        latents: Optional[List[float]] = None,
        interpolate_steps: Optional[int] = 0,
        label: Optional[str] = None,
    ) -> GeneratedImages:
        """Generate images from noise.

        Args:
            num_images: How many images (1 to the model's max_images; with interpolate_steps,
                how many walks).
            seed: Image i gets seed + i, and a seed fixes its image whatever num_images is.
                Unset: a random seed, reported in the result.
            image_format: png (the default) or jpeg.
            as_grid: Return one image tiling all of them (rows of ceil(sqrt(n)), or one walk
                per row) instead of a list.
            latents: Explicit noise instead of seeded noise: num_images x nz numbers, image by
                image (the model's nz is in its metrics; 100 by default).
            interpolate_steps: 2 to 64: for each image, a walk of this many images from its
                seed's noise to the next seed's (both ends included, spherical interpolation).
            label: Class-conditional models only: the class to draw, by name (e.g. Sneaker) or
                index. Unset: each image's class is its seed modulo the class count.
        """
        request = self.check_request(num_images, seed, image_format, as_grid, latents, interpolate_steps, label)
        noise = self._noise(request)
        labels = self._expand(request.label_ids, request.interpolate_steps)
        pixels = self.batcher.submit((noise, labels))
        columns = request.interpolate_steps or (math.ceil(math.sqrt(len(pixels))) if request.as_grid else 1)
        arrays = [tile(pixels, columns)] if request.as_grid else list(pixels)
        with self._counter_lock:
            self.images_generated += len(pixels)
        return GeneratedImages(
            images=[to_image(array, request.image_format) for array in arrays],
            seeds=request.seeds,
            labels=[self.class_names[index] for index in request.label_ids] if self.class_names else [],
            image_size=self.generator.image_size,
            channels=self.generator.channels,
            columns=columns if (request.as_grid or request.interpolate_steps) else 1,
        )

    def _noise(self, request: ImageRequest) -> torch.Tensor:
        """[images, nz] noise: explicit latents, seeded draws, or walks between seeded draws."""
        if request.latents is not None:
            return request.latents
        starts = torch.stack([seeded_noise(seed, self.nz) for seed in request.seeds])
        if not request.interpolate_steps:
            return starts
        ends = torch.stack([seeded_noise(seed + 1, self.nz) for seed in request.seeds])
        fractions = torch.linspace(0, 1, request.interpolate_steps)
        return torch.cat([slerp(start, end, fractions) for start, end in zip(starts, ends)])

    @staticmethod
    def _expand(label_ids: List[int], repeat: int) -> List[int]:
        return [index for index in label_ids for _ in range(repeat or 1)]

    def _render_requests(self, items: List[Tuple[torch.Tensor, List[int]]]) -> List[np.ndarray]:
        """The batcher's function: the images of all requests rendered together, then handed back."""
        pixels = self.render(torch.cat([noise for noise, _ in items]), [label for _, labels in items for label in labels])
        bounds = np.cumsum([0] + [len(noise) for noise, _ in items])
        return [pixels[start:end] for start, end in zip(bounds[:-1], bounds[1:])]

    def render(self, noise: torch.Tensor, label_ids: Sequence[int]) -> np.ndarray:
        """uint8 images [n, height, width, channels], in generator calls of exactly RENDER_CHUNK
        images, so that no image's bytes depend on what else shares its call."""
        images = []
        with torch.inference_mode():
            for start in range(0, len(noise), RENDER_CHUNK):
                chunk = noise[start : start + RENDER_CHUNK].to(self.device, torch.float32)
                count = len(chunk)
                chunk = F.pad(chunk, (0, 0, 0, RENDER_CHUNK - count))
                labels = None
                if self.generator.num_classes:
                    chunk_labels = list(label_ids[start : start + count]) + [0] * (RENDER_CHUNK - count)
                    labels = torch.tensor(chunk_labels, dtype=torch.long, device=self.device)
                images.append(to_uint8(self.generator(chunk, labels))[:count])
        return np.concatenate(images)

    # -- request checking ------------------------------------------------------------------

    def check_request(self, num_images, seed, image_format, as_grid, latents, interpolate_steps, label) -> ImageRequest:
        """Turn raw arguments into an ImageRequest, or raise INVALID_ARGUMENT naming the problem."""
        max_images = limits.cap("max_images", self.max_images)
        max_images_from = limits.cap_source("max_images", self.max_images, "max_images")
        if num_images is None:
            raise invalid_argument(
                f"num_images is required: 1 to {max_images} (over gRPC, 0 arrives as unset)"
            )
        num_images = number_in_range("num_images", num_images, 1, max_images, high_from=max_images_from)
        steps = whole_number("interpolate_steps", interpolate_steps, 0)
        if steps and not 2 <= steps <= MAX_INTERPOLATE_STEPS:
            raise invalid_argument(f"interpolate_steps must be 0 (off) or between 2 and {MAX_INTERPOLATE_STEPS}, got {steps}")
        if steps and num_images * steps > max_images:
            raise invalid_argument(
                f"num_images x interpolate_steps = {num_images * steps} images, above {max_images_from} {max_images}"
            )
        image_format = choice("image_format", image_format, IMAGE_FORMATS)
        seed = number_in_range("seed", seed, 0, MAX_SEED - num_images)
        if seed is None:
            seed = random.SystemRandom().randrange(0, 2**31)
        seeds = list(range(seed, seed + num_images))
        checked_latents = None
        if latents:
            if steps:
                raise invalid_argument("give latents or interpolate_steps, not both: a walk runs between seeds' noise")
            checked_latents = self._check_latents(latents, num_images)
        label_ids = [self._label_id(label)] * num_images if label not in (None, "") else self._seed_labels(seeds)
        return ImageRequest(num_images, seeds, label_ids, checked_latents, steps, image_format, bool(as_grid))

    def _check_latents(self, latents, num_images: int) -> torch.Tensor:
        if len(latents) != num_images * self.nz:
            raise invalid_argument(
                f"latents must hold num_images x nz = {num_images} x {self.nz} = {num_images * self.nz} numbers, got {len(latents)}"
            )
        try:
            values = np.asarray(latents, dtype=np.float64)
        except (TypeError, ValueError) as err:
            raise invalid_argument(f"latents must be numbers: {err}") from err
        if not np.isfinite(values).all():
            raise invalid_argument("latents must all be finite numbers (no NaN or infinity)")
        return torch.from_numpy(values.astype(np.float32)).view(num_images, self.nz)

    def _label_id(self, label) -> int:
        if not self.class_names:
            raise invalid_argument("this model was trained without class labels: leave label unset")
        text = str(label).strip()
        for index, name in enumerate(self.class_names):
            if text.lower() == name.lower():
                return index
        if text.isdigit() and int(text) < len(self.class_names):
            return int(text)
        raise invalid_argument(
            f"unknown label {label!r}: use one of {', '.join(self.class_names)} (or an index 0 to {len(self.class_names) - 1})"
        )

    def _seed_labels(self, seeds: List[int]) -> List[int]:
        """Without a label, each image's class follows from its seed: consecutive seeds cycle
        through the classes evenly."""
        if not self.class_names:
            return [0] * len(seeds)
        return [seed % len(self.class_names) for seed in seeds]

    # -- persistence -----------------------------------------------------------------------

    def save(self, model_path: str) -> None:
        """Write config.yml, the generator's weights, metrics and sample grids atomically."""
        with atomic_model_dir(model_path) as partial_dir:
            with ModuleSaver(self, model_path=partial_dir) as saver:
                torch.save(self.generator.state_dict(), os.path.join(partial_dir, GENERATOR_FILE))
                for relative_path, contents in self.artifacts.items():
                    path = os.path.join(partial_dir, relative_path)
                    os.makedirs(os.path.dirname(path), exist_ok=True)
                    with open(path, "wb") as artifact_file:
                        artifact_file.write(contents)
                saver.update_config(
                    {
                        "generator": GENERATOR_FILE,
                        "net": self.generator.hyperparameters(),
                        "class_names": self.class_names,
                        "max_images": self.max_images,
                        "artifacts": sorted(self.artifacts),
                        "metrics": write_metrics(partial_dir, self.metrics),
                    }
                )

    @classmethod
    def load(cls, model_path) -> "DCGANImageGenerator":
        """Load from a model dir (the runtime passes a ModuleConfig, tests and users a path)."""
        config = ModuleConfig.load(model_path)
        model_dir = config.model_path
        generator = Generator(**dict(config.get("net")))
        state_dict = torch.load(
            os.path.join(model_dir, config.get("generator", GENERATOR_FILE)), map_location="cpu", weights_only=True
        )
        generator.load_state_dict(state_dict)
        class_names = list(config.get("class_names") or [])
        max_images = int(config.get("max_images", DEFAULT_MAX_IMAGES))
        artifacts = {}
        for relative_path in config.get("artifacts") or []:
            with open(os.path.join(model_dir, relative_path), "rb") as artifact_file:
                artifacts[relative_path] = artifact_file.read()
        return cls(generator, class_names, max_images, "auto", read_metrics(model_dir, config), artifacts, model_id_of(model_dir))

    # -- training --------------------------------------------------------------------------

    @classmethod
    def train(
        cls,
        training_data: DataStream[LabeledImage],
        image_size: int = 0,
        channels: int = 0,
        nz: int = 100,
        ngf: int = 64,
        ndf: int = 64,
        epochs: int = 5,
        max_steps: int = 0,
        batch_size: int = 64,
        learning_rate: float = 2e-4,
        beta1: float = 0.5,
        label_smoothing: float = 0.0,
        conditional: Optional[bool] = None,
        seed: int = 42,
        device: str = "auto",
        max_seconds: Optional[float] = None,
        eval_every: int = 0,
        eval_samples: int = 1000,
        max_images: int = DEFAULT_MAX_IMAGES,
        ema_decay: float = DEFAULT_EMA_DECAY,
        hidden_features: int = 0,
    ) -> "DCGANImageGenerator":
        """Train a DCGAN (a cDCGAN when the images have class labels) from scratch.

        Args:
            training_data: Images: LabeledImage elements with image bytes, or a path (a PNG/JPEG
                file, or a directory of them whose sub-folders are the classes) inside the
                training data dir. In-process, also a directory path, or a uint8 array
                [n, h, w(, c)] or (array, labels).
            image_size: Side in pixels to train at (0: the images' own, which must all match;
                28, 32, 64 ...: every image is resized to it).
            channels: 1 (grayscale) or 3 (RGB); 0: the images' own.
            nz: Length of the noise vector.
            ngf: Width of the generator's last hidden layer (doubling toward the noise).
            ndf: Width of the discriminator's first layer (doubling toward the logit).
            epochs: Passes over the images (ignored when max_steps is set).
            max_steps: Training steps (one discriminator and one generator update each; 0: as
                many as epochs give).
            batch_size: Real images per step.
            learning_rate: Adam learning rate of both networks.
            beta1: Adam's beta1 (0.5 in DCGAN, not 0.9).
            label_smoothing: One-sided label smoothing: the discriminator's target for real
                images is 1 - this (0: none).
            conditional: Feed class labels to both networks (unset: when the images have labels).
            seed: Seeds the initialisation, shuffling and noise.
            device: auto (CUDA when present), cpu or cuda[:N].
            max_seconds: Optional wall-clock budget.
            eval_every: Evaluate (Frechet distance, sample grid, best checkpoint) every N steps
                (0: ten times per run).
            eval_samples: Generated and real images per Frechet distance.
            max_images: The most images one request may ask the trained model for.
            ema_decay: Also keep an exponential moving average of the generator's weights
                with this decay per step (0: none). Each evaluation scores it beside the
                generator itself, and the better of the two is kept.
            hidden_features: Width of one fully connected layer added to each net (0: none,
                pytorch/examples' nets; 1024: the InfoGAN nets Lucic et al. 2018 measure on).
        """
        images, labels = read_training_images(training_data, image_size, channels)
        return cls.train_arrays(
            images, labels, nz=nz, ngf=ngf, ndf=ndf, epochs=epochs, max_steps=max_steps, batch_size=batch_size,
            learning_rate=learning_rate, beta1=beta1, label_smoothing=label_smoothing, conditional=conditional,
            seed=seed, device=device, max_seconds=max_seconds, eval_every=eval_every, eval_samples=eval_samples,
            max_images=max_images, ema_decay=ema_decay, hidden_features=hidden_features,
        )

    @classmethod
    def train_arrays(
        cls,
        images: np.ndarray,
        labels: Optional[List[str]],
        *,
        nz: int = 100,
        ngf: int = 64,
        ndf: int = 64,
        epochs: int = 5,
        max_steps: int = 0,
        batch_size: int = 64,
        learning_rate: float = 2e-4,
        beta1: float = 0.5,
        label_smoothing: float = 0.0,
        conditional: Optional[bool] = None,
        seed: int = 42,
        device: str = "auto",
        max_seconds: Optional[float] = None,
        eval_every: int = 0,
        eval_samples: int = 1000,
        max_images: int = DEFAULT_MAX_IMAGES,
        ema_decay: float = DEFAULT_EMA_DECAY,
        hidden_features: int = 0,
        feature_net: Optional[ImageClassifier] = None,
        progress_description: str = "dcgan",
    ) -> "DCGANImageGenerator":
        """train() on images already read: uint8 [n, size, size, channels] and a label per image
        (or None). `feature_net` gives the Frechet distance's features (default: a fixed, seeded,
        untrained CNN of the same shape, which still ranks checkpoints)."""
        _check_training_arguments(images, nz, ngf, ndf, epochs, max_steps, batch_size, learning_rate, beta1, label_smoothing, eval_samples, max_images, ema_decay, hidden_features)
        if conditional and not labels:
            raise ValueError("conditional training needs a class label on every image")
        class_names = sorted(set(labels)) if labels and conditional is not False else []
        if labels and conditional is None and len(class_names) < 2:
            class_names = []  # one class: nothing to condition on
        label_ids = torch.tensor([class_names.index(label) for label in labels] if class_names else [0] * len(images))
        size, channel_count = images.shape[1], images.shape[3]

        target = resolve_device(device)
        torch.manual_seed(seed)
        generator = Generator(size, channel_count, nz, ngf, len(class_names), hidden_features).to(target)
        discriminator = Discriminator(size, channel_count, ndf, len(class_names), hidden_features).to(target)
        nets = torch.nn.ModuleDict({"generator": generator, "discriminator": discriminator})
        # Data-parallel ranks start from rank 0's weights (the loop broadcasts them) but draw
        # their own noise.
        torch.manual_seed(seed + distributed.rank())
        optimizers = {
            "discriminator": torch.optim.Adam(discriminator.parameters(), lr=learning_rate, betas=(beta1, 0.999)),
            "generator": torch.optim.Adam(generator.parameters(), lr=learning_rate, betas=(beta1, 0.999)),
        }
        pixels = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).contiguous()  # uint8 [n, c, h, w]
        steps_per_epoch = len(images) // batch_size
        total_steps = max_steps if max_steps > 0 else epochs * steps_per_epoch
        real_target = 1.0 - label_smoothing
        conditional_run = bool(class_names)
        log.info(
            "training a %dx%dx%d %sDCGAN on %d images (%d classes), %s",
            size, size, channel_count, "c" if conditional_run else "", len(images), len(class_names), describe(target),
        )

        def step_fn(_nets, batch, update):
            real, real_labels = batch["images"], batch["labels"] if conditional_run else None
            noise = torch.randn(real.shape[0], nz, device=real.device)
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

        averaged = AveragedGenerator(generator, ema_decay) if ema_decay > 0 else None
        evaluation = _Evaluation(generator, averaged, pixels, label_ids, conditional_run, eval_samples, target, feature_net)
        report = run_training(
            nets,
            optimizers,
            _shuffled_batches(pixels, label_ids, batch_size, seed),
            step_fn,
            total_steps=total_steps,
            device=target,
            grad_clip=None,
            evaluate=evaluation,
            eval_every=eval_every or max(1, total_steps // 10),
            max_seconds=max_seconds,
            description=progress_description,
        )
        generator.load_state_dict(evaluation.best_state)
        generator.eval()
        model = cls(generator, class_names, max_images, str(target), artifacts=evaluation.grids)
        images_seen = report.steps * batch_size
        model.metrics = {
            "recipe": {
                "image_size": size, "channels": channel_count, "nz": nz, "ngf": ngf, "ndf": ndf, "batch_size": batch_size,
                "learning_rate": learning_rate, "beta1": beta1, "label_smoothing": label_smoothing,
                "conditional": conditional_run, "seed": seed, "max_seconds": max_seconds, "ema_decay": ema_decay,
                "hidden_features": hidden_features,
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
            "device": describe(target),
            "last_losses": {name: round(value, 4) for name, value in report.last_losses.items()},
            "quality_metric": evaluation.metric_name,
            "eval_samples": evaluation.sample_count,
            "best_sample_grid": evaluation.best_grid,
            "best_frechet_distance": round(evaluation.best_score, 4),
            "kept_weights": evaluation.best_weights,
            "evaluations": report.evaluations,
        }
        return model


class _Evaluation:
    """The evaluate() of a GAN run: Frechet distance of generated vs real features, a sample grid
    from fixed noise, and the best generator so far (by that distance)."""

    def __init__(self, generator, averaged, pixels, label_ids, conditional, eval_samples, device, feature_net):
        self.generator, self.averaged, self.device, self.conditional = generator, averaged, device, conditional
        rng = torch.Generator().manual_seed(EVAL_SEED)
        count = min(eval_samples, len(pixels))
        chosen = torch.randperm(len(pixels), generator=rng)[:count]
        if feature_net is None:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(EVAL_SEED)
                feature_net = ImageClassifier(
                    num_classes=max(2, generator.num_classes), channels=pixels.shape[1], image_size=pixels.shape[2]
                )
            self.metric_name = "frechet_distance on a fixed untrained CNN's features"
        else:
            self.metric_name = "frechet_distance on the trained classifier's features"
        self.feature_net = feature_net.to(device).eval()
        real = to_unit_range(pixels[chosen]).to(device)
        self.real_stats = statistics(extract_features(self.feature_net.features, real))
        self.sample_count = count
        self.noise = torch.randn(count, generator.nz, generator=rng).to(device)
        # The same classes as the real sample, so a conditional model is measured on the real mix.
        self.labels = label_ids[chosen].to(device) if conditional else None
        grid_count = min(64, count)
        self.grid_columns = math.ceil(math.sqrt(grid_count))
        self.grid_noise = self.noise[:grid_count]
        self.grid_labels = (
            torch.arange(grid_count, device=device) % generator.num_classes if conditional else None
        )
        self.grids: Dict[str, bytes] = {}
        self.best_score, self.best_grid, self.best_state = math.inf, None, copy.deepcopy(generator.state_dict())
        self.best_weights = "trained"

    @torch.inference_mode()
    def _score(self, net) -> float:
        fakes = torch.cat([
            net(self.noise[start : start + 500], None if self.labels is None else self.labels[start : start + 500]).float()
            for start in range(0, len(self.noise), 500)
        ])
        return frechet_distance(*statistics(extract_features(self.feature_net.features, fakes)), *self.real_stats)

    def __call__(self) -> Dict[str, float]:
        was_training = self.generator.training
        self.generator.eval()
        candidates = {"trained": (self._score(self.generator), self.generator)}
        if self.averaged is not None:
            net = self.averaged.with_standing_statistics()
            candidates["averaged"] = (self._score(net), net)
        weights = min(candidates, key=lambda key: candidates[key][0])
        score, net = candidates[weights]
        with torch.inference_mode():
            grid = net(self.grid_noise, self.grid_labels)
        self.generator.train(was_training)
        name = f"{SAMPLES_DIR}/eval-{len(self.grids):02d}.png"
        self.grids[name] = encode(tile(to_uint8(grid), self.grid_columns), "png")
        if score < self.best_score:
            self.best_score, self.best_state, self.best_weights = score, copy.deepcopy(net.state_dict()), weights
            self.best_grid = name
        result = {"frechet_distance": round(candidates["trained"][0], 4), "sample_grid": name}
        if self.averaged is not None:
            result["frechet_distance_averaged"] = round(candidates["averaged"][0], 4)
        return result


class AveragedGenerator:
    """An exponential moving average of a generator's weights (as ProGAN, BigGAN and StyleGAN
    serve): it wanders less than the adversarially trained weights. Averaged weights make other
    activations than the BatchNorm running statistics saw, so those are measured anew over
    seeded noise ("standing statistics", BigGAN) before the average is scored or kept. The decay
    warms up as TensorFlow's ExponentialMovingAverage does with num_updates, min(decay, (1 + t) /
    (10 + t)) at update t, so the random initial weights do not linger in a short run's average."""

    def __init__(self, generator: Generator, decay: float, batches: int = 32, batch_size: int = 64):
        self.decay, self.batches, self.batch_size = decay, batches, batch_size
        self.updates = 0
        self.net = copy.deepcopy(generator).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, generator: Generator) -> None:
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        self.updates += 1
        for average, current in zip(self.net.parameters(), generator.parameters()):
            average.lerp_(current.detach(), 1.0 - decay)

    @torch.no_grad()
    def with_standing_statistics(self) -> Generator:
        net, norms = self.net, [layer for layer in self.net.modules() if isinstance(layer, torch.nn.modules.batchnorm._BatchNorm)]
        for norm in norms:
            norm.reset_running_stats()
            norm.momentum = None  # a plain mean over the batches below
        net.train()
        rng = torch.Generator().manual_seed(EVAL_SEED)
        device = next(net.parameters()).device
        for _ in range(self.batches):
            noise = torch.randn(self.batch_size, net.nz, generator=rng).to(device)
            labels = torch.randint(0, net.num_classes, (self.batch_size,), generator=rng).to(device) if net.num_classes else None
            net(noise, labels)
        for norm in norms:
            norm.momentum = 0.1
        return net.eval()


def _shuffled_batches(pixels: torch.Tensor, label_ids: torch.Tensor, batch_size: int, seed: int) -> Iterator[dict]:
    """Endless shuffled batches (a new seeded order each epoch, the last partial batch dropped),
    as images in [-1, 1] and their class ids."""
    rng = torch.Generator().manual_seed(seed)
    while True:
        order = torch.randperm(len(pixels), generator=rng)
        for start in range(0, len(order) - batch_size + 1, batch_size):
            chosen = order[start : start + batch_size]
            yield {"images": to_unit_range(pixels[chosen]), "labels": label_ids[chosen]}


def _check_training_arguments(images, nz, ngf, ndf, epochs, max_steps, batch_size, learning_rate, beta1, label_smoothing, eval_samples, max_images, ema_decay, hidden_features):
    for name, value in (("nz", nz), ("ngf", ngf), ("ndf", ndf), ("batch_size", batch_size), ("eval_samples", eval_samples), ("max_images", max_images)):
        if value < 1:
            raise ValueError(f"{name} must be at least 1, got {value}")
    if max_steps < 0 or (max_steps == 0 and epochs < 1):
        raise ValueError(f"give epochs >= 1 or max_steps >= 1, got epochs={epochs}, max_steps={max_steps}")
    if not learning_rate > 0:
        raise ValueError(f"learning_rate must be positive, got {learning_rate}")
    if not 0 <= beta1 < 1:
        raise ValueError(f"beta1 must be in [0, 1), got {beta1}")
    if not 0 <= label_smoothing < 0.5:
        raise ValueError(f"label_smoothing must be in [0, 0.5), got {label_smoothing}")
    if hidden_features < 0:
        raise ValueError(f"hidden_features must be 0 (no hidden layer) or more, got {hidden_features}")
    if hidden_features and batch_size < 2:
        raise ValueError("hidden_features needs batch_size >= 2: its BatchNorm1d layers cannot normalise one image")
    if not 0 <= ema_decay < 1:
        raise ValueError(f"ema_decay must be in [0, 1) (0: no average), got {ema_decay}")
    if len(images) < batch_size:
        raise ValueError(f"the training data has {len(images)} images, fewer than one batch ({batch_size}): lower batch_size")


# -- reading training images ---------------------------------------------------------------


def read_training_images(training_data, image_size: int = 0, channels: int = 0) -> Tuple[np.ndarray, Optional[List[str]]]:
    """uint8 images [n, size, size, channels] and their labels (None when unlabeled) from what
    train() accepts; a ValueError naming the first problem (unreadable file, mixed sizes, no images)."""
    if channels not in (0, 1, 3):
        raise ValueError(f"channels must be 1 (grayscale), 3 (RGB) or 0 (the images' own), got {channels}")
    if image_size:
        layout(image_size)  # raises for a size the nets cannot make
    if training_data is None:
        raise ValueError("training_data is required: images, or a directory of PNG/JPEG files")
    if isinstance(training_data, tuple) and len(training_data) == 2 and isinstance(training_data[0], np.ndarray):
        return _from_array(training_data[0], list(training_data[1]), image_size, channels)
    if isinstance(training_data, np.ndarray):
        return _from_array(training_data, None, image_size, channels)
    if isinstance(training_data, (str, os.PathLike)):
        entries = _image_files(os.fspath(training_data), None, os.fspath(training_data))
    else:
        entries = list(_stream_entries(training_data))
    if not entries:
        raise ValueError("training_data holds no images")
    return _decode_all(entries, image_size, channels)


def _stream_entries(stream) -> Iterator[Tuple[str, object, Optional[str]]]:
    """(name for errors, bytes or file path, label) for each image a stream element gives."""
    from ..toolkit.subprocess_training import DATA_DIR_SETTING, training_data_dir  # pylint: disable=import-outside-toplevel
    from ..toolkit.safe_paths import resolve_inside  # pylint: disable=import-outside-toplevel

    # A stream from a train request carries the runtime's training data dir (the spawned
    # training process does not have the runtime's config); in-process, the configured one.
    base_dir = getattr(stream, "base_dir", None)
    for index, element in enumerate(stream):
        if isinstance(element, dict):
            element = LabeledImage.from_json(element) if not isinstance(element.get("image"), (bytes, Image)) else LabeledImage(**element)
        image = getattr(element, "image", None)
        path = getattr(element, "path", None) or ""
        label = (getattr(element, "label", None) or "").strip() or None
        if image is not None and path:
            raise ValueError(f"training_data element {index} gives both image and path: give one")
        if image is not None:
            data = image if isinstance(image, bytes) else image.image_data
            if not data:
                raise ValueError(f"training_data element {index} has an empty image")
            yield f"element {index}", data, label
        elif path:
            base_dir = base_dir or training_data_dir()
            try:
                resolved = resolve_inside(base_dir, path, f"training_data element {index} path", DATA_DIR_SETTING)
            except Exception as err:  # INVALID_ARGUMENT from the path check: the job's reason
                raise ValueError(str(err)) from err
            if not os.path.exists(resolved):
                raise ValueError(f"training_data element {index}: {path!r} does not exist in the training data dir ({DATA_DIR_SETTING})")
            yield from _image_files(resolved, label, path)
        else:
            raise ValueError(f"training_data element {index} has neither image bytes nor a path: {element!r:.200}")


def _image_files(path: str, label: Optional[str], shown: str) -> List[Tuple[str, str, Optional[str]]]:
    """A file, or a directory's image files: ImageFolder layout (a sub-folder per class) when
    the directory has sub-folders and no label was given."""
    if os.path.isfile(path):
        return [(shown, path, label)]
    if not os.path.isdir(path):
        raise ValueError(f"training_data {shown!r} is neither an image file nor a directory")
    subdirs = sorted(name for name in os.listdir(path) if os.path.isdir(os.path.join(path, name)) and not name.startswith("."))
    entries = []
    for root, dirs, names in os.walk(path):
        dirs[:] = sorted(name for name in dirs if not name.startswith("."))
        relative = os.path.relpath(root, path)
        folder_label = label
        if label is None and subdirs and relative != ".":
            folder_label = relative.split(os.sep)[0]
        for name in sorted(names):
            if name.lower().endswith(IMAGE_SUFFIXES):
                entries.append((os.path.join(shown, relative, name) if relative != "." else os.path.join(shown, name), os.path.join(root, name), folder_label))
    if not entries:
        raise ValueError(f"training_data directory {shown!r} holds no .png, .jpg or .jpeg files")
    return entries


def _decode_all(entries, image_size: int, channels: int) -> Tuple[np.ndarray, Optional[List[str]]]:
    labels = [label for _, _, label in entries]
    labeled = sum(label is not None for label in labels)
    if 0 < labeled < len(labels):
        first = next(name for name, _, label in entries if label is None)
        raise ValueError(f"some images have a label and some do not (e.g. {first}): label all of them or none")
    decoded, first_size = [], None
    for name, source, _ in entries:
        try:
            with _opened(source) as picture:
                mode = {1: "L", 3: "RGB"}.get(channels) or ("L" if picture.mode in ("1", "L", "I;16", "I") else "RGB")
                picture = picture.convert(mode)
        except (UnidentifiedImageError, OSError, ValueError) as err:
            raise ValueError(f"training image {name} is not a readable PNG or JPEG file ({type(err).__name__})") from None
        if image_size:
            if picture.size != (image_size, image_size):
                picture = picture.resize((image_size, image_size), PILImage.BILINEAR)
        else:
            if first_size is None:
                first_size = (name, picture.size)
            elif picture.size != first_size[1]:
                raise ValueError(
                    f"training images have mixed sizes: {first_size[0]} is {first_size[1][0]}x{first_size[1][1]}, {name} is "
                    f"{picture.size[0]}x{picture.size[1]}: make them one size, or set image_size to resize them all"
                )
        decoded.append(picture)
    modes = {picture.mode for picture in decoded}
    if len(modes) > 1:  # grayscale and colour mixed, no channels given: train in colour
        decoded = [picture.convert("RGB") for picture in decoded]
    arrays = np.stack([np.asarray(picture, dtype=np.uint8) for picture in decoded])
    if arrays.ndim == 3:
        arrays = arrays[..., None]
    if arrays.shape[1] != arrays.shape[2]:
        raise ValueError(f"training images must be square, got {arrays.shape[2]}x{arrays.shape[1]}: set image_size to resize them")
    _check_size(arrays.shape[1])
    return arrays, (labels if labeled else None)


@contextlib.contextmanager
def _opened(source):
    """A loaded PIL image from bytes, a file path or a PIL image."""
    if isinstance(source, PILImage.Image):
        yield source
        return
    with PILImage.open(io.BytesIO(source) if isinstance(source, bytes) else source) as picture:
        picture.load()
        yield picture


def _check_size(size: int) -> None:
    try:
        layout(size)
    except ValueError:
        raise ValueError(f"the training images are {size}x{size}, a size the nets cannot make: set image_size (28, 32, 64 ...) to resize them") from None


def _from_array(array: np.ndarray, labels, image_size: int, channels: int):
    if array.dtype != np.uint8 or array.ndim not in (3, 4) or len(array) == 0:
        raise ValueError(f"training_data arrays must be uint8 [n, h, w] or [n, h, w, c], got {array.dtype} {array.shape}")
    if labels is not None and len(labels) != len(array):
        raise ValueError(f"got {len(array)} images and {len(labels)} labels")
    pictures = [PILImage.fromarray(image[..., 0] if image.ndim == 3 and image.shape[2] == 1 else image) for image in array]
    entries = [(f"array image {index}", picture, None if labels is None else str(labels[index])) for index, picture in enumerate(pictures)]
    return _decode_all(entries, image_size, channels)


# -- pixels and images ---------------------------------------------------------------------


def seeded_noise(seed: int, nz: int) -> torch.Tensor:
    """The noise vector of one seed, from its own CPU generator (the same on every device)."""
    return torch.randn(nz, generator=torch.Generator().manual_seed(int(seed)))


def slerp(start: torch.Tensor, end: torch.Tensor, fractions: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation [len(fractions), nz]: Gaussian noise keeps its norm along the walk."""
    cosine = torch.dot(start, end) / (start.norm() * end.norm())
    omega = torch.arccos(cosine.clamp(-1 + 1e-7, 1 - 1e-7))
    if omega.abs() < 1e-4:
        return torch.stack([torch.lerp(start, end, float(t)) for t in fractions])
    return torch.stack([(torch.sin((1 - t) * omega) * start + torch.sin(t * omega) * end) / torch.sin(omega) for t in fractions])


def to_unit_range(pixels: torch.Tensor) -> torch.Tensor:
    """uint8 [n, c, h, w] -> float in [-1, 1] (the generator's Tanh range)."""
    return pixels.float() / 127.5 - 1.0


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """Tanh outputs [n, c, h, w] in [-1, 1] -> uint8 [n, h, w, c]."""
    pixels = ((images.detach().float().cpu() + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8)
    return pixels.permute(0, 2, 3, 1).numpy()


def tile(images: np.ndarray, columns: int) -> np.ndarray:
    """One uint8 image tiling [n, h, w, c] in rows of `columns`, with black padding between."""
    count, height, width, channels = images.shape
    rows = math.ceil(count / columns)
    pad = GRID_PADDING
    grid = np.zeros((rows * (height + pad) + pad, columns * (width + pad) + pad, channels), dtype=np.uint8)
    for index, image in enumerate(images):
        row, column = divmod(index, columns)
        top, left = pad + row * (height + pad), pad + column * (width + pad)
        grid[top : top + height, left : left + width] = image
    return grid


def encode(pixels: np.ndarray, image_format: str) -> bytes:
    """PNG or JPEG bytes of a uint8 image [h, w, c]."""
    picture = PILImage.fromarray(pixels[..., 0] if pixels.shape[2] == 1 else pixels)
    buffer = io.BytesIO()
    picture.save(buffer, format="JPEG" if image_format == "jpeg" else "PNG")
    return buffer.getvalue()


def to_image(pixels: np.ndarray, image_format: str) -> Image:
    """A caikit Image that serializes as `image_format` (caikit re-encodes from PIL on access,
    keeping the format it was opened with)."""
    return Image(encode(pixels, image_format))
