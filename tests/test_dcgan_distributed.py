"""The shared loop's two-optimizer step, data-parallel: two CPU ranks (gloo, launched by torchrun)
train the tiny cDCGAN; gradients of each network are averaged before its optimizer steps, so both
ranks end with the same weights in both networks, and only rank 0 writes the model dir."""

import os
import subprocess
import sys
import textwrap

import pytest

from caikit_genai import DCGANImageGenerator
from conftest import REPO_ROOT, free_port

pytestmark = pytest.mark.slow

SCRIPT = textwrap.dedent(
    """
    import sys
    import alog
    sys.path.insert(0, {tests!r})
    alog.configure(default_level="info")
    from caikit_genai import DCGANImageGenerator
    from tiny_models import TINY_DCGAN_RECIPE, dcgan_training_images

    images, labels = dcgan_training_images(64)
    model = DCGANImageGenerator.train((images, labels), device="cpu", **{{**TINY_DCGAN_RECIPE, "max_steps": 6}})
    model.save({model_dir!r})
    """
)


def test_two_ranks_train_both_networks_to_the_same_weights(tmp_path):
    model_dir = str(tmp_path / "models" / "dcgan-ddp")
    script = tmp_path / "train_dcgan.py"
    script.write_text(SCRIPT.format(tests=os.path.join(REPO_ROOT, "tests"), model_dir=model_dir))
    torchrun = os.path.join(os.path.dirname(sys.executable), "torchrun")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        [torchrun, "--nnodes", "1", "--nproc-per-node", "2", "--master-addr", "127.0.0.1", "--master-port", str(free_port()), str(script)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600, check=False,
    )
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-4000:]
    assert "rank 1 of 2 joined (gloo)" in log and "parameters agree across 2 ranks" in log
    assert "rank 1 leaves" in log
    assert os.listdir(tmp_path / "models") == ["dcgan-ddp"]
    assert DCGANImageGenerator.load(model_dir).run(2, seed=0).images
