"""Fashion-MNIST (Xiao et al. 2017, MIT): 60,000 training and 10,000 test 28x28 grayscale images
of ten garment classes, from Debian's dataset-fashion-mnist (`make data` unpacks it into .data/;
a system-wide install is read too)."""

import gzip
import os
from typing import List, Optional, Tuple

import numpy as np

from . import DATA_DIR

FASHION_MNIST_SUBDIR = os.path.join("usr", "share", "datasets", "fashion-mnist")
# The dataset's own class names, in label order.
FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)


def fashion_mnist_dir(package_dir: Optional[str] = None) -> str:
    """The directory holding the four idx files."""
    candidates = [os.path.join(package_dir, FASHION_MNIST_SUBDIR)] if package_dir else [
        os.path.join(DATA_DIR, "fashion-mnist", FASHION_MNIST_SUBDIR),
        os.path.join(os.sep, FASHION_MNIST_SUBDIR),
    ]
    for directory in candidates:
        if os.path.exists(os.path.join(directory, "t10k-labels-idx1-ubyte.gz")):
            return directory
    raise FileNotFoundError(
        f"Fashion-MNIST is not at {' or '.join(candidates)}: run `make .data/fashion-mnist` "
        "(apt-get download dataset-fashion-mnist, then dpkg -x into .data/fashion-mnist)"
    )


def fashion_mnist(split: str = "train", limit: Optional[int] = None, package_dir: Optional[str] = None) -> Tuple[np.ndarray, List[str]]:
    """uint8 images [n, 28, 28, 1] and their class names, for split train (60,000) or test (10,000);
    `limit` keeps only the first n (for tests)."""
    prefix = {"train": "train", "test": "t10k"}[split]
    directory = fashion_mnist_dir(package_dir)
    with gzip.open(os.path.join(directory, f"{prefix}-images-idx3-ubyte.gz")) as images_file:
        images = np.frombuffer(images_file.read(), np.uint8, offset=16).reshape(-1, 28, 28, 1)
    with gzip.open(os.path.join(directory, f"{prefix}-labels-idx1-ubyte.gz")) as labels_file:
        label_ids = np.frombuffer(labels_file.read(), np.uint8, offset=8)
    if limit:
        images, label_ids = images[:limit], label_ids[:limit]
    return images.copy(), [FASHION_MNIST_CLASSES[index] for index in label_ids]
