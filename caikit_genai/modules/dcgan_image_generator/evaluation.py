"""What a GAN run measures and keeps: each evaluation scores the generator (and its weight
average) by Frechet distance to real images, draws a sample grid from fixed noise, and keeps
the best generator so far; the model saved is that one, not the last (GANs collapse late)."""

import copy
import math
from typing import Dict

import torch

from ...nets.dcgan import Generator
from ...nets.image_classifier import ImageClassifier
from ...toolkit.metrics.frechet import extract_features, frechet_distance, statistics
from ...toolkit.training.weight_average import WeightAverage
from .images import encode, tile, to_uint8, to_unit_range

SAMPLES_DIR = "samples"
# A fixed seed for the evaluation noise and the untrained feature net, so every evaluation of
# every run measures the same way.
EVAL_SEED = 1234
GRID_IMAGES = 64
SCORE_BATCH = 500


class Evaluation:
    """The evaluate() of a GAN run: Frechet distance of generated vs real features, a sample grid
    from fixed noise, and the best generator so far (by that distance)."""

    def __init__(self, generator, averaged, pixels, label_ids, conditional, eval_samples, device, feature_net):
        self.generator, self.averaged = generator, averaged
        rng = torch.Generator().manual_seed(EVAL_SEED)
        count = min(eval_samples, len(pixels))
        chosen = torch.randperm(len(pixels), generator=rng)[:count]
        if feature_net is None:
            feature_net = _untrained_feature_net(generator.num_classes, pixels.shape[1], pixels.shape[2])
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
        grid_count = min(GRID_IMAGES, count)
        self.grid_columns = math.ceil(math.sqrt(grid_count))
        self.grid_noise = self.noise[:grid_count]
        self.grid_labels = torch.arange(grid_count, device=device) % generator.num_classes if conditional else None
        self.grids: Dict[str, bytes] = {}
        self.best_score, self.best_grid, self.best_state = math.inf, None, copy.deepcopy(generator.state_dict())
        self.best_weights = "trained"

    @torch.inference_mode()
    def _score(self, net) -> float:
        fakes = torch.cat([
            net(self.noise[start : start + SCORE_BATCH], None if self.labels is None else self.labels[start : start + SCORE_BATCH]).float()
            for start in range(0, len(self.noise), SCORE_BATCH)
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


def _untrained_feature_net(num_classes: int, channels: int, image_size: int) -> ImageClassifier:
    """A fixed, seeded, untrained CNN: without a trained classifier it still ranks checkpoints."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(EVAL_SEED)
        return ImageClassifier(num_classes=max(2, num_classes), channels=channels, image_size=image_size)


class AveragedGenerator:
    """An exponential moving average of a generator's weights (as ProGAN, BigGAN and StyleGAN
    serve; toolkit/training/weight_average.py): it wanders less than the adversarially trained
    weights. Averaged weights make other activations than the BatchNorm running statistics saw,
    so those are measured anew over seeded noise ("standing statistics", BigGAN) before the
    average is scored or kept."""

    def __init__(self, generator: Generator, decay: float, batches: int = 32, batch_size: int = 64):
        self.batches, self.batch_size = batches, batch_size
        self.net = copy.deepcopy(generator).eval().requires_grad_(False)
        self.average = WeightAverage(list(self.net.parameters()), decay)

    def update(self, generator: Generator) -> None:
        self.average.update(generator.parameters())

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
