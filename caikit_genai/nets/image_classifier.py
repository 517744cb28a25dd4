"""A small CNN classifier for 28x28 (or any size) images: two conv blocks and a hidden layer.

Its penultimate layer (128 features) is the feature space of the project's Frechet distance
for Fashion-MNIST generators (toolkit/metrics/frechet.py), as the Inception-v3 pool features are FID's;
its class predictions check that a conditional generator makes the class it was asked for.
"""

import torch
from torch import nn


class ImageClassifier(nn.Module):
    """conv 32 - pool - conv 64 - pool - linear 128 (features) - linear classes."""

    def __init__(self, num_classes: int = 10, channels: int = 1, image_size: int = 28, feature_dim: int = 128):
        super().__init__()
        self.num_classes, self.channels, self.image_size, self.feature_dim = num_classes, channels, image_size, feature_dim
        self.conv = nn.Sequential(
            nn.Conv2d(channels, 32, 3, padding=1), nn.ReLU(True), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(True), nn.MaxPool2d(2),
        )
        self.hidden = nn.Sequential(nn.Flatten(), nn.Linear(64 * (image_size // 4) ** 2, feature_dim), nn.ReLU(True))
        self.head = nn.Linear(feature_dim, num_classes)

    def hyperparameters(self) -> dict:
        return {"num_classes": self.num_classes, "channels": self.channels, "image_size": self.image_size, "feature_dim": self.feature_dim}

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Penultimate activations [batch, feature_dim] for images in [-1, 1]."""
        return self.hidden(self.conv(images))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images))
