"""The Fashion-MNIST reader and the dcgan-fashion build, on a small slice of the real data
(`make .data/fashion-mnist` unpacks it; `make test` does it first)."""

import json
import os

from PIL import Image as PILImage

from caikit_genai import DCGANImageGenerator
from caikit_genai.bootstrap import BUILDERS, build_dcgan_fashion
from caikit_genai.toolkit.offline_data.fashion_mnist import FASHION_MNIST_CLASSES, fashion_mnist


def test_fashion_mnist_is_read_from_the_debian_package():
    images, labels = fashion_mnist("test")
    assert images.shape == (10_000, 28, 28, 1) and images.dtype.name == "uint8"
    assert {name: labels.count(name) for name in FASHION_MNIST_CLASSES} == {name: 1000 for name in FASHION_MNIST_CLASSES}
    train, train_labels = fashion_mnist("train", limit=100)
    assert train.shape == (100, 28, 28, 1) and len(train_labels) == 100
    assert train_labels[:3] == ["Ankle boot", "T-shirt/top", "T-shirt/top"]  # the dataset's first three


def test_build_dcgan_fashion_on_a_slice_writes_a_served_model_with_its_figures(tmp_path):
    model_path = str(tmp_path / "dcgan-fashion")
    metrics = build_dcgan_fashion(
        model_path, limit=600, test_limit=300, quality_samples=200, classifier_recipe={"epochs": 1},
        ngf=16, ndf=16, max_steps=6, eval_every=3, eval_samples=100,
    )
    quality = metrics["frechet_distance"]
    assert quality["samples"] == 200
    assert 0 <= quality["floor_real_train_vs_test"] < quality["ceiling_untrained_generator"]
    assert quality["model"] > 0
    assert set(metrics["label_agreement"]) == set(FASHION_MNIST_CLASSES)
    assert 0 <= metrics["quality_classifier"]["test_accuracy"] <= 1
    assert metrics["steps"] == 6 and [e["step"] for e in metrics["evaluations"]] == [3, 6]
    with open(os.path.join(model_path, "metrics.json"), encoding="utf-8") as metrics_file:
        assert json.load(metrics_file)["frechet_distance"] == quality
    names = sorted(os.listdir(os.path.join(model_path, "samples")))
    assert names == ["eval-00.png", "eval-01.png", "grid-8x8-seed0.png"]
    assert PILImage.open(os.path.join(model_path, "samples", "grid-8x8-seed0.png")).size == (8 * 30 + 2, 8 * 30 + 2)
    assert os.path.exists(os.path.join(model_path, "quality_classifier.pt"))
    model = DCGANImageGenerator.load(model_path)
    assert model.run(2, seed=7, label="sneaker").labels == ["Sneaker", "Sneaker"]
    assert BUILDERS["dcgan-fashion"] is build_dcgan_fashion
