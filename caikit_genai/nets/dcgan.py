"""DCGAN generator and discriminator (Radford et al. 2015, as pytorch/examples `dcgan/main.py`
writes them), sized by image size and channels, optionally class-conditional (a cDCGAN).

Generator: noise [batch, nz] -> ConvTranspose2d stack with BatchNorm + ReLU, doubling the side
each layer from a 4x4 (or 7x7 for 28 and 56) start, -> Tanh image in [-1, 1].
Discriminator: the mirror image, Conv2d stride 2 with LeakyReLU 0.2 (no BatchNorm on its first
layer), -> one real/fake logit per image. It returns logits rather than pytorch/examples'
sigmoid outputs: BCEWithLogits is the same loss, numerically safer and allowed under autocast.

Conditional: the generator reads [noise, embedding(label)], the discriminator gets the label
as one extra input channel (an embedding the size of the image).

hidden_features > 0 adds one fully connected layer of that width to each net, as the InfoGAN
nets that Lucic et al. 2018 measure on (Fashion-)MNIST have (FC 1024 - FC 7x7x128 - deconv 64 -
deconv 1; conv 64 - conv 128 - FC 1024 - FC 1): the generator maps its input through it to the
first stage's feature map, the discriminator reads its last feature map through it to the logit.
Those Linear layers keep PyTorch's default initialisation (the runs measured with them did).
"""

from typing import List, Optional

import torch
from torch import nn


def layout(image_size: int) -> List[int]:
    """The side of each stage, smallest first: 28 -> [7, 14, 28], 64 -> [4, 8, 16, 32, 64]."""
    base = 7 if image_size % 7 == 0 else 4
    sides = [image_size]
    while sides[0] > base and sides[0] % 2 == 0:
        sides.insert(0, sides[0] // 2)
    if sides[0] != base or len(sides) < 3:
        raise ValueError(f"image_size must be 4 or 7 times a power of two, at least 16 (28, 32, 64 ...), got {image_size}")
    return sides


def init_weights(module: nn.Module) -> None:
    """DCGAN's init: conv weights ~ N(0, 0.02), BatchNorm scales ~ N(1, 0.02), biases 0."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
    elif isinstance(module, nn.BatchNorm2d):  # BatchNorm1d (hidden_features) keeps PyTorch's init
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Embedding):
        nn.init.normal_(module.weight, 0.0, 1.0)


class Generator(nn.Module):
    """Noise (and a class label) to an image in [-1, 1]."""

    def __init__(
        self, image_size: int = 64, channels: int = 1, nz: int = 100, ngf: int = 64, num_classes: int = 0, hidden_features: int = 0
    ):
        super().__init__()
        self.image_size, self.channels, self.nz, self.ngf, self.num_classes = image_size, channels, nz, ngf, num_classes
        self.hidden_features = hidden_features
        sides = layout(image_size)
        width = ngf * 2 ** (len(sides) - 2)
        self.label_embedding = nn.Embedding(num_classes, nz) if num_classes else None
        in_features = nz * 2 if num_classes else nz
        self.start_shape = (width, sides[0], sides[0])
        if hidden_features:
            self.project = nn.Sequential(
                nn.Linear(in_features, hidden_features, bias=False), nn.BatchNorm1d(hidden_features), nn.ReLU(True),
                nn.Linear(hidden_features, width * sides[0] ** 2, bias=False), nn.BatchNorm1d(width * sides[0] ** 2), nn.ReLU(True),
            )
            layers = []
        else:
            self.project = None
            layers = [
                nn.ConvTranspose2d(in_features, width, sides[0], 1, 0, bias=False),
                nn.BatchNorm2d(width),
                nn.ReLU(True),
            ]
        for _ in sides[1:-1]:
            layers += [nn.ConvTranspose2d(width, width // 2, 4, 2, 1, bias=False), nn.BatchNorm2d(width // 2), nn.ReLU(True)]
            width //= 2
        layers += [nn.ConvTranspose2d(width, channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.main = nn.Sequential(*layers)
        self.apply(init_weights)

    def hyperparameters(self) -> dict:
        return {
            "image_size": self.image_size, "channels": self.channels, "nz": self.nz, "ngf": self.ngf,
            "num_classes": self.num_classes, "hidden_features": self.hidden_features,
        }

    def forward(self, noise: torch.Tensor, labels: Optional[torch.Tensor] = None) -> torch.Tensor:
        if self.label_embedding is not None:
            noise = torch.cat([noise, self.label_embedding(labels)], dim=1)
        if self.project is not None:
            return self.main(self.project(noise).view(-1, *self.start_shape))
        return self.main(noise[:, :, None, None])


class Discriminator(nn.Module):
    """An image (and its class label) to one logit: real > 0 > generated."""

    def __init__(self, image_size: int = 64, channels: int = 1, ndf: int = 64, num_classes: int = 0, hidden_features: int = 0):
        super().__init__()
        self.image_size, self.channels, self.ndf, self.num_classes = image_size, channels, ndf, num_classes
        self.hidden_features = hidden_features
        sides = layout(image_size)
        self.label_embedding = nn.Embedding(num_classes, image_size * image_size) if num_classes else None
        width = ndf
        layers = [nn.Conv2d(channels + (1 if num_classes else 0), width, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, True)]
        for _ in sides[1:-1]:
            layers += [nn.Conv2d(width, width * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(width * 2), nn.LeakyReLU(0.2, True)]
            width *= 2
        if hidden_features:
            layers += [
                nn.Flatten(), nn.Linear(width * sides[0] ** 2, hidden_features, bias=False),
                nn.BatchNorm1d(hidden_features), nn.LeakyReLU(0.2, True), nn.Linear(hidden_features, 1),
            ]
        else:
            layers += [nn.Conv2d(width, 1, sides[0], 1, 0, bias=False)]
        self.main = nn.Sequential(*layers)
        self.apply(init_weights)

    def hyperparameters(self) -> dict:
        return {
            "image_size": self.image_size, "channels": self.channels, "ndf": self.ndf,
            "num_classes": self.num_classes, "hidden_features": self.hidden_features,
        }

    def forward(self, images: torch.Tensor, labels: Optional[torch.Tensor] = None) -> torch.Tensor:
        if self.label_embedding is not None:
            label_map = self.label_embedding(labels).view(-1, 1, self.image_size, self.image_size)
            images = torch.cat([images, label_map], dim=1)
        return self.main(images).view(-1)
