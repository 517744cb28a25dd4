"""DCGANImageGenerator in-process: nets sized by image size, seeded generation, grids, walks,
labels, the bad-input matrix, save/load, reading training images, and a tiny training run."""

import io
import os

import numpy as np
import pytest
import torch
from PIL import Image as PILImage

from caikit.core.exceptions.caikit_core_exception import CaikitCoreException, CaikitCoreStatusCode
from caikit_genai import DCGANImageGenerator
from caikit_genai.modules.dcgan_image_generator import AveragedGenerator, read_training_images, tile
from caikit_genai.nets import Discriminator, Generator
from caikit_genai.toolkit.models.device import cpu_has_native_bf16
from tiny_models import seeded

CLASSES = ["circle", "square", "stripe"]


def decode(image):
    return PILImage.open(io.BytesIO(image.image_data))


@pytest.fixture(scope="module")
def untrained():
    with seeded(0):
        generator = Generator(image_size=16, channels=1, nz=8, ngf=8, num_classes=3)
    return DCGANImageGenerator(generator, CLASSES, max_images=32)


@pytest.mark.parametrize("size, channels", [(28, 1), (32, 3), (64, 1), (16, 3)])
@pytest.mark.parametrize("num_classes", [0, 10])
@pytest.mark.parametrize("hidden_features", [0, 32])
def test_nets_make_and_judge_images_of_each_size(size, channels, num_classes, hidden_features):
    generator = Generator(size, channels, nz=100, ngf=8, num_classes=num_classes, hidden_features=hidden_features)
    discriminator = Discriminator(size, channels, ndf=8, num_classes=num_classes, hidden_features=hidden_features)
    labels = torch.tensor([0, num_classes - 1]) if num_classes else None
    images = generator(torch.randn(2, 100), labels)
    assert images.shape == (2, channels, size, size)
    assert images.min() >= -1 and images.max() <= 1
    assert discriminator(images, labels).shape == (2,)
    hidden_layers = [layer for net in (generator, discriminator) for layer in net.modules() if isinstance(layer, torch.nn.Linear)]
    assert [layer.out_features for layer in hidden_layers][::2] == ([hidden_features] * 2 if hidden_features else [])


def test_a_generator_with_a_hidden_layer_round_trips_through_its_model_dir(tmp_path):
    with seeded(0):
        generator = Generator(image_size=28, channels=1, nz=8, ngf=8, num_classes=3, hidden_features=16)
    model = DCGANImageGenerator(generator, CLASSES, max_images=8)
    model.save(str(tmp_path / "hidden"))
    loaded = DCGANImageGenerator.load(str(tmp_path / "hidden"))
    assert loaded.generator.hyperparameters()["hidden_features"] == 16
    assert loaded.run(3, seed=5).images[2].image_data == model.run(3, seed=5).images[2].image_data


def test_a_size_the_nets_cannot_make_is_refused():
    with pytest.raises(ValueError, match="image_size"):
        Generator(30)


def test_a_seed_fixes_its_image_whatever_num_images(untrained):
    many = untrained.run(6, seed=100)
    assert many.seeds == list(range(100, 106))
    for index in (0, 3, 5):
        alone = untrained.run(1, seed=100 + index)
        assert alone.images[0].image_data == many.images[index].image_data
    assert untrained.run(6, seed=100).images[4].image_data == many.images[4].image_data
    picture = decode(many.images[0])
    assert picture.format == "PNG" and picture.size == (16, 16) and picture.mode == "L"
    assert many.image_size == 16 and many.channels == 1


def test_without_a_label_classes_cycle_with_the_seed_and_a_label_picks_one(untrained):
    assert untrained.run(4, seed=3).labels == ["circle", "square", "stripe", "circle"]
    assert untrained.run(2, seed=3, label="Square").labels == ["square", "square"]
    assert untrained.run(1, seed=3, label="2").labels == ["stripe"]
    assert untrained.run(1, seed=3, label="square").images[0].image_data != untrained.run(1, seed=3, label="stripe").images[0].image_data


def test_grid_interpolation_latents_and_jpeg(untrained):
    grid = untrained.run(5, seed=1, as_grid=True)
    assert len(grid.images) == 1 and grid.columns == 3 and len(grid.seeds) == 5
    assert decode(grid.images[0]).size == (3 * 18 + 2, 2 * 18 + 2)
    walk = untrained.run(2, seed=1, interpolate_steps=5)
    assert len(walk.images) == 10 and walk.columns == 5 and walk.seeds == [1, 2]
    # A walk starts at its seed's image and ends at the next seed's (same class along the walk).
    assert walk.images[0].image_data == untrained.run(1, seed=1).images[0].image_data
    walk_grid = untrained.run(2, seed=1, interpolate_steps=5, as_grid=True)
    assert decode(walk_grid.images[0]).size == (5 * 18 + 2, 2 * 18 + 2)
    latents = untrained.run(2, latents=[0.5] * 16, label="circle")
    assert latents.images[0].image_data == latents.images[1].image_data
    assert decode(untrained.run(1, seed=1, image_format="jpeg").images[0]).format == "JPEG"


@pytest.mark.parametrize(
    "arguments, message",
    [
        ({"num_images": 0}, "num_images must be between 1 and 32"),
        ({"num_images": -2}, "num_images must be between 1 and 32"),
        ({"num_images": 33}, "num_images must be between 1 and 32"),
        ({"num_images": None}, "num_images is required"),
        ({"num_images": 1, "latents": [0.1] * 7}, "latents must hold num_images x nz = 1 x 8 = 8"),
        ({"num_images": 1, "latents": [float("nan")] * 8}, "latents must all be finite"),
        ({"num_images": 1, "latents": [float("inf")] * 8}, "latents must all be finite"),
        ({"num_images": 1, "image_format": "gif"}, "image_format must be one of png, jpeg"),
        ({"num_images": 1, "label": "Sneaker"}, "unknown label 'Sneaker'"),
        ({"num_images": 1, "label": "3"}, "unknown label '3'"),
        ({"num_images": 1, "interpolate_steps": 1}, "interpolate_steps must be 0 (off) or between 2 and 64"),
        ({"num_images": 1, "interpolate_steps": 65}, "interpolate_steps must be 0 (off) or between 2 and 64"),
        ({"num_images": 8, "interpolate_steps": 8}, "above this model's max_images 32"),
        ({"num_images": 1, "seed": -1}, "seed must be between 0 and"),
        ({"num_images": 2, "latents": [0.1] * 16, "interpolate_steps": 3}, "not both"),
    ],
)
def test_bad_requests_are_invalid_argument_naming_the_problem(untrained, arguments, message):
    with pytest.raises(CaikitCoreException) as caught:
        untrained.run(**arguments)
    assert caught.value.status_code == CaikitCoreStatusCode.INVALID_ARGUMENT
    assert message in str(caught.value)


def test_a_label_on_an_unconditional_model_is_refused():
    model = DCGANImageGenerator(Generator(16, 1, nz=8, ngf=8), [])
    assert model.run(2, seed=0).labels == []
    with pytest.raises(CaikitCoreException, match="without class labels"):
        model.run(1, label="circle")


def test_save_and_load_give_the_same_images(untrained, tmp_path):
    untrained.save(str(tmp_path / "model"))
    loaded = DCGANImageGenerator.load(str(tmp_path / "model"))
    assert loaded.class_names == CLASSES and loaded.max_images == 32
    assert loaded.run(3, seed=7).images[2].image_data == untrained.run(3, seed=7).images[2].image_data


def test_tile_lays_images_out_in_rows():
    images = np.full((5, 4, 4, 1), 255, dtype=np.uint8)
    grid = tile(images, 3)
    assert grid.shape == (2 * 6 + 2, 3 * 6 + 2, 1)
    assert grid[2:6, 2:6].min() == 255 and grid[0].max() == 0


# -- training in-process -------------------------------------------------------------------

from tiny_models import TINY_DCGAN_CLASSES, TINY_DCGAN_RECIPE, dcgan_training_images  # noqa: E402


def write_folder(root, images, labels):
    for index, (image, label) in enumerate(zip(images, labels)):
        os.makedirs(root / label, exist_ok=True)
        PILImage.fromarray(image[..., 0]).save(root / label / f"{index}.png")


def test_train_from_an_image_folder_keeps_the_best_checkpoint_and_a_grid_per_evaluation(tmp_path):
    images, labels = dcgan_training_images(48)
    write_folder(tmp_path / "shapes", images, labels)
    with seeded(0):
        model = DCGANImageGenerator.train(str(tmp_path / "shapes"), **{**TINY_DCGAN_RECIPE, "max_steps": 6, "eval_every": 2})
    metrics = model.metrics
    assert model.class_names == sorted(TINY_DCGAN_CLASSES) and metrics["recipe"]["conditional"]
    assert [evaluation["step"] for evaluation in metrics["evaluations"]] == [2, 4, 6]
    scores = [evaluation["frechet_distance"] for evaluation in metrics["evaluations"]]
    assert metrics["best_frechet_distance"] == round(min(scores), 4)
    best = metrics["evaluations"][scores.index(min(scores))]["sample_grid"]
    assert metrics["best_sample_grid"] == best
    assert sorted(model.artifacts) == ["samples/eval-00.png", "samples/eval-01.png", "samples/eval-02.png"]
    assert decode_bytes(model.artifacts[best]).size == (7 * 18 + 2, 7 * 18 + 2)  # 48 eval samples: a 7x7 grid
    assert set(metrics["last_losses"]) == {"D", "G"} and metrics["steps"] == 6
    model.save(str(tmp_path / "model"))
    assert sorted(os.listdir(tmp_path / "model" / "samples")) == ["eval-00.png", "eval-01.png", "eval-02.png"]
    assert DCGANImageGenerator.load(str(tmp_path / "model")).run(1, seed=2).images[0].image_data == model.run(1, seed=2).images[0].image_data


def test_the_same_seed_trains_the_same_generator():
    images, labels = dcgan_training_images(32)
    runs = [DCGANImageGenerator.train((images, labels), **{**TINY_DCGAN_RECIPE, "max_steps": 3}) for _ in range(2)]
    assert runs[0].run(2, seed=0).images[1].image_data == runs[1].run(2, seed=0).images[1].image_data


def test_training_with_hidden_layers_keeps_them_in_the_saved_generator(tmp_path):
    images, labels = dcgan_training_images(32)
    model = DCGANImageGenerator.train((images, labels), **{**TINY_DCGAN_RECIPE, "max_steps": 3, "hidden_features": 24, "ema_decay": 0.9})
    assert model.metrics["recipe"]["hidden_features"] == 24
    assert [layer.out_features for layer in model.generator.modules() if isinstance(layer, torch.nn.Linear)][0] == 24
    model.save(str(tmp_path / "hidden"))
    loaded = DCGANImageGenerator.load(str(tmp_path / "hidden"))
    assert loaded.run(2, seed=3, label="square").images[1].image_data == model.run(2, seed=3, label="square").images[1].image_data


def test_training_in_bf16_keeps_fp32_weights_and_records_the_dtype_it_ran():
    images, labels = dcgan_training_images(48)
    with seeded(0):
        model = DCGANImageGenerator.train((images, labels), **{**TINY_DCGAN_RECIPE, "max_steps": 4, "eval_every": 2, "precision": "bf16", "ema_decay": 0.5})
    assert model.metrics["precision"] == ("bfloat16" if cpu_has_native_bf16() else "float32")
    assert model.metrics["recipe"]["precision"] == "bf16"
    assert all(parameter.dtype == torch.float32 for parameter in model.generator.parameters())
    assert all(np.isfinite(list(model.metrics["last_losses"].values())))
    assert np.asarray(decode(model.run(1, seed=0).images[0])).std() > 0
    with pytest.raises(CaikitCoreException, match="precision") as refused:
        DCGANImageGenerator.train((images, labels), **{**TINY_DCGAN_RECIPE, "precision": "fp8"})
    assert refused.value.status_code == CaikitCoreStatusCode.INVALID_ARGUMENT


def test_an_averaged_generator_is_scored_beside_the_trained_one_and_the_better_kept():
    images, labels = dcgan_training_images(48)
    with seeded(0):
        model = DCGANImageGenerator.train((images, labels), **{**TINY_DCGAN_RECIPE, "max_steps": 6, "eval_every": 2, "ema_decay": 0.5})
    evaluations = model.metrics["evaluations"]
    assert [evaluation["step"] for evaluation in evaluations] == [2, 4, 6]
    scored = [(e["frechet_distance"], "trained") for e in evaluations] + [(e["frechet_distance_averaged"], "averaged") for e in evaluations]
    best_score, best_weights = min(scored)
    assert model.metrics["best_frechet_distance"] == best_score and model.metrics["kept_weights"] == best_weights
    assert model.metrics["recipe"]["ema_decay"] == 0.5


@pytest.mark.parametrize("hidden_features", [0, 16])
def test_the_average_warms_up_then_moves_by_one_minus_decay_and_measures_its_own_batchnorm_statistics(hidden_features):
    with seeded(0):
        generator = Generator(image_size=16, channels=1, nz=8, ngf=8, num_classes=3, hidden_features=hidden_features)
    averaged = AveragedGenerator(generator, decay=0.75, batches=4, batch_size=8)
    for updates, decay in ((0, 0.1), (100, 0.75)):  # min(decay, (1 + t) / (10 + t)) at update t
        averaged.average.updates = updates
        before = [parameter.clone() for parameter in averaged.net.parameters()]
        with torch.no_grad():
            for parameter in generator.parameters():
                parameter.add_(1.0)
        averaged.update(generator)
        for old, new, current in zip(before, averaged.net.parameters(), generator.parameters()):
            torch.testing.assert_close(new, decay * old + (1 - decay) * current)
    assert averaged.average.updates == 101
    net = averaged.with_standing_statistics()
    norms = [layer for layer in net.modules() if isinstance(layer, torch.nn.modules.batchnorm._BatchNorm)]
    assert len([norm for norm in norms if isinstance(norm, torch.nn.BatchNorm1d)]) == (2 if hidden_features else 0)
    assert not net.training and norms and all(int(norm.num_batches_tracked) == 4 for norm in norms)
    assert all(norm.momentum == 0.1 for norm in norms)
    again = [norm.running_mean.clone() for norm in norms]
    averaged.with_standing_statistics()  # seeded noise: the same statistics each time
    assert all(torch.equal(first, norm.running_mean) for first, norm in zip(again, norms))


def decode_bytes(data):
    return PILImage.open(io.BytesIO(data))


def test_reading_training_images(tmp_path):
    images, labels = dcgan_training_images(6)
    arrays, read_labels = read_training_images((images, labels))
    assert arrays.shape == (6, 16, 16, 1) and read_labels == labels
    resized, _ = read_training_images(images, image_size=32, channels=3)
    assert resized.shape == (6, 32, 32, 3)
    write_folder(tmp_path / "flat", images, ["x"] * 6)
    flat, flat_labels = read_training_images(str(tmp_path / "flat" / "x"))
    assert flat.shape == (6, 16, 16, 1) and flat_labels is None


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda root: (root / "a.png").write_bytes(b"not a png"), "a.png is not a readable PNG or JPEG file"),
        (lambda root: [PILImage.new("L", (16 + i * 16, 16 + i * 16)).save(root / f"{i}.png") for i in range(2)], "mixed sizes"),
        (lambda root: PILImage.new("L", (30, 30)).save(root / "odd.png"), "a size the nets cannot make"),
        (lambda root: PILImage.new("L", (16, 32)).save(root / "tall.png"), "must be square"),
        (lambda root: (root / "notes.txt").write_text("no images"), "holds no .png, .jpg or .jpeg files"),
    ],
    ids=["unreadable", "mixed", "odd-size", "not-square", "empty"],
)
def test_bad_training_images_are_refused_with_the_reason(tmp_path, make, message):
    make(tmp_path)
    with pytest.raises(ValueError, match=message):
        read_training_images(str(tmp_path))


def test_bad_training_arguments():
    images, labels = dcgan_training_images(8)
    with pytest.raises(ValueError, match="fewer than one batch"):
        DCGANImageGenerator.train((images, labels), batch_size=16)
    with pytest.raises(ValueError, match="label all of them or none"):
        read_training_images([{"image": _png(images[0]), "label": "ring"}, {"image": _png(images[1])}])
    with pytest.raises(ValueError, match="image_size must be"):
        read_training_images(images, image_size=30)
    with pytest.raises(ValueError, match=r"ema_decay must be in \[0, 1\)"):
        DCGANImageGenerator.train((images, labels), batch_size=4, ema_decay=1.0)
    with pytest.raises(ValueError, match="hidden_features must be 0"):
        DCGANImageGenerator.train((images, labels), batch_size=4, hidden_features=-1)
    with pytest.raises(ValueError, match="hidden_features needs batch_size >= 2"):
        DCGANImageGenerator.train((images, labels), batch_size=1, hidden_features=8)


def _png(image):
    buffer = io.BytesIO()
    PILImage.fromarray(image[..., 0]).save(buffer, format="PNG")
    return buffer.getvalue()
