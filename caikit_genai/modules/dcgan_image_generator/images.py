"""Noise and pixels: seeded noise and walks, the generator's [-1, 1] range to uint8 and back,
grids, and PNG/JPEG bytes. Shared by serving, training and the dcgan-fashion build."""

import io
import math

import numpy as np
import torch
from PIL import Image as PILImage

from caikit.interfaces.vision.data_model import Image

GRID_PADDING = 2


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
