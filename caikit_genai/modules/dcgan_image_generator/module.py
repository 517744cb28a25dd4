"""DCGANImageGenerator: a DCGAN (optionally class-conditional) trained adversarially here and
served as seeded image generation.

Serving (`ImageGenerationTask`: RPC `ImageGenerationTaskPredict`, HTTP
`/api/v1/task/image-generation`): each image's noise comes from its own seeded CPU generator, and
the generator network runs in eval() on calls of exactly RENDER_CHUNK images (zero noise fills
the last), so a seed fixes its image whatever `num_images` is and whatever else shares its call
(image i of a request with seed s is image 0 of a request with seed s + i). That is what lets
requests from many threads share generator calls (toolkit/serving/batching.py). Tanh outputs in [-1, 1]
become uint8 pixels, then PNG (or JPEG). Training lives in recipe.py and training.py.
"""

import math
import os
import random
import threading
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from caikit.core import ModuleBase, ModuleConfig, ModuleSaver, module
from caikit.core.data_model import DataStream

from ...data_model.image import GeneratedImages, LabeledImage
from ...nets.dcgan import Generator
from ...nets.image_classifier import ImageClassifier
from ...tasks import ImageGenerationTask
from ...toolkit.serving import limits
from ...toolkit.serving.batching import DynamicBatcher, model_id_of
from ...toolkit.models.device import serving_device
from ...toolkit.serving.errors import choice, invalid_argument, number_in_range, whole_number
from ...toolkit.models.model_dir import BuildInfo, atomic_model_dir, read_metrics, write_metrics
from ...toolkit.training.recipes import recipe_train
from .images import seeded_noise, slerp, tile, to_image, to_uint8
from .recipe import DEFAULT_MAX_IMAGES, DCGANRecipe
from .training import train_dcgan
from .training_images import read_training_images

GENERATOR_FILE = "generator.pt"
IMAGE_FORMATS = ("png", "jpeg")  # the first is the default
MAX_INTERPOLATE_STEPS = 64
MAX_SEED = 2**63 - 1
# Images per generator call, always: on a fixed shape each image's bytes depend on its own noise
# and label alone (convolution kernels pick their algorithm by batch size, which changes low bits).
RENDER_CHUNK = 8


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


@module(id="744ae8f0-d51d-45a4-9fb4-e3c0b303ad87", name="DCGANImageGenerator", version="0.1.0", task=ImageGenerationTask)
class DCGANImageGenerator(BuildInfo, ModuleBase):
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
        self.device = serving_device(device)
        # eval(): BatchNorm uses its running statistics, so no image depends on its batch.
        self.generator = generator.to(self.device).eval()
        self.class_names = list(class_names)
        self.max_images = int(max_images)
        self.metrics = metrics or {}
        # Extra files for the model dir, by relative path: the sample grid of each training
        # evaluation (samples/eval-NN.png), a build's quality classifier.
        self.artifacts = dict(artifacts or {})
        # Images rendered so far: the limits tests read it to prove a refused request did no work.
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
        labels = [index for index in request.label_ids for _ in range(request.interpolate_steps or 1)]
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
        label_ids = [self._label_id(label)] * num_images if label not in (None, "") else self.seed_labels(seeds)
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

    def seed_labels(self, seeds: List[int]) -> List[int]:
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
    @recipe_train(
        DCGANRecipe,
        """
        training_data: Images: LabeledImage elements with image bytes, or a path (a PNG/JPEG file, or a directory of them whose sub-folders are the classes) inside the training data dir. In-process, also a directory path, or a uint8 array [n, h, w(, c)] or (array, labels).
        """,
    )
    def train(cls, training_data: DataStream[LabeledImage], preset: str = "", **knobs) -> "DCGANImageGenerator":
        """Train a DCGAN (a cDCGAN when the images have class labels) from scratch."""
        recipe = DCGANRecipe.build(preset, **knobs)
        images, labels = read_training_images(training_data, recipe.image_size, recipe.channels)
        return train_dcgan(cls, images, labels, recipe)

    @classmethod
    def train_arrays(
        cls,
        images: np.ndarray,
        labels: Optional[List[str]],
        preset: str = "",
        feature_net: Optional[ImageClassifier] = None,
        progress_description: str = "dcgan",
        **knobs,
    ) -> "DCGANImageGenerator":
        """train() on images already read, uint8 [n, size, size, channels] with a label each (or
        None), for builds and benchmarks: `feature_net` measures the Frechet distance."""
        return train_dcgan(cls, images, labels, DCGANRecipe.build(preset, **knobs), feature_net, progress_description)
