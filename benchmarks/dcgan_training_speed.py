"""Training images per second of DCGANImageGenerator's training (the shared loop's two-optimizer
step) against a plain loop written as pytorch/examples' dcgan/main.py writes it: same nets, same
batch size, same data, same run. The nets are dcgan-fashion's (--hidden-features: its recipe's
value by default; 0 gives pytorch/examples' nets unchanged).

    python benchmarks/dcgan_training_speed.py [--steps 200] [--batch-size 64] [--hidden-features 1024] [--device cuda]

Data: the first images of Fashion-MNIST (`make .data/fashion-mnist`), or, with --synthetic, random
uint8 images (speed does not depend on content). Both run on --device (default cpu); on CUDA the
plain loop stays in float32, as pytorch/examples writes it, and ours uses its mixed precision. Our side is the module's real train path, one
evaluation (64 samples) included; the plain loop has none, so the ratio slightly favours it.
"""

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F

from caikit_genai import DCGANImageGenerator
from caikit_genai.bootstrap.dcgan_fashion import DCGAN_FASHION_RECIPE
from caikit_genai.modules.dcgan_image_generator import to_unit_range
from caikit_genai.nets import Discriminator, Generator


def plain_loop(images: np.ndarray, label_ids: torch.Tensor, classes: int, steps: int, batch_size: int, nz: int, seed: int, hidden: int, device: str) -> float:
    """pytorch/examples dcgan: D on real then fake, step D; G on fake labelled real, step G."""
    torch.manual_seed(seed)
    size, channels = images.shape[1], images.shape[3]
    net_g = Generator(size, channels, nz, 64, classes, hidden).to(device)
    net_d = Discriminator(size, channels, 64, classes, hidden).to(device)
    optimizer_d = torch.optim.Adam(net_d.parameters(), lr=2e-4, betas=(0.5, 0.999))
    optimizer_g = torch.optim.Adam(net_g.parameters(), lr=2e-4, betas=(0.5, 0.999))
    pixels = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous().to(device)
    label_ids = label_ids.to(device)
    started, done = time.perf_counter(), 0
    while done < steps:
        order = torch.randperm(len(pixels))
        for start in range(0, len(order) - batch_size + 1, batch_size):
            chosen = order[start : start + batch_size]
            real, labels = to_unit_range(pixels[chosen]), label_ids[chosen]
            net_d.zero_grad()
            output = net_d(real, labels)
            error_real = F.binary_cross_entropy_with_logits(output, torch.ones_like(output))
            error_real.backward()
            fake = net_g(torch.randn(batch_size, nz, device=device), labels)
            output = net_d(fake.detach(), labels)
            error_fake = F.binary_cross_entropy_with_logits(output, torch.zeros_like(output))
            error_fake.backward()
            optimizer_d.step()
            net_g.zero_grad()
            output = net_d(fake, labels)
            F.binary_cross_entropy_with_logits(output, torch.ones_like(output)).backward()
            optimizer_g.step()
            done += 1
            if done == steps:
                break
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return steps * batch_size / (time.perf_counter() - started)


def ours(images: np.ndarray, labels, steps: int, batch_size: int, nz: int, seed: int, hidden: int, device: str) -> float:
    started = time.perf_counter()
    DCGANImageGenerator.train_arrays(
        images, labels, nz=nz, batch_size=batch_size, max_steps=steps, eval_every=steps + 1, eval_samples=64, seed=seed, device=device,
        hidden_features=hidden,
    )
    return steps * batch_size / (time.perf_counter() - started)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--images", type=int, default=6400)
    parser.add_argument("--nz", type=int, default=100)
    parser.add_argument("--synthetic", action="store_true", help="random images instead of Fashion-MNIST")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="cpu or cuda: both loops run there")
    parser.add_argument("--hidden-features", type=int, default=DCGAN_FASHION_RECIPE["hidden_features"])
    args = parser.parse_args(argv)
    if args.synthetic:
        rng = np.random.default_rng(args.seed)
        images = rng.integers(0, 256, size=(args.images, 28, 28, 1), dtype=np.uint8)
        labels = [str(index % 10) for index in range(args.images)]
    else:
        from caikit_genai.toolkit.offline_data.fashion_mnist import fashion_mnist  # pylint: disable=import-outside-toplevel

        images, labels = fashion_mnist("train", args.images)
    names = sorted(set(labels))
    label_ids = torch.tensor([names.index(label) for label in labels])
    print(f"{len(images)} images {images.shape[1]}x{images.shape[2]}, batch {args.batch_size}, {args.steps} steps, "
          f"conditional ({len(names)} classes), ngf = ndf = 64, hidden_features {args.hidden_features}, {torch.get_num_threads()} threads, device {args.device}", flush=True)
    plain = plain_loop(images, label_ids, len(names), args.steps, args.batch_size, args.nz, args.seed, args.hidden_features, args.device)
    print(f"plain pytorch/examples loop: {plain:.1f} images/s", flush=True)
    shared = ours(images, labels, args.steps, args.batch_size, args.nz, args.seed, args.hidden_features, args.device)
    print(f"DCGANImageGenerator.train (shared loop): {shared:.1f} images/s", flush=True)
    print(f"ratio ours / plain: {shared / plain:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
