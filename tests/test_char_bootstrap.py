"""The Austen reader and the char-austen build, on small slices of the real novels
(`make .data/janeaustenr` unpacks them; `make test` does it first)."""

import json
import os

from caikit_genai import CharTextGenerator
from caikit_genai.bootstrap import BUILDERS, build_char_austen, char_austen_splits
from caikit_genai.toolkit.offline_data.jane_austen import AUSTEN_NOVELS, austen_novels


def test_austen_novels_are_read_from_the_debian_package():
    novels = austen_novels(["persuasion", "northangerabbey"])
    assert list(novels) == ["northangerabbey", "persuasion"]  # publication order, whatever was asked
    persuasion = novels["persuasion"]
    assert persuasion.startswith("Persuasion\n")
    assert "Anne Elliot" in persuasion
    assert persuasion.rstrip().endswith("Finis")
    assert 450_000 < len(persuasion) < 480_000
    assert len(AUSTEN_NOVELS) == 6


def test_the_test_tail_is_the_end_and_never_in_the_training_text():
    train, test = char_austen_splits(max_chars=40_000, novels=["persuasion"])
    assert len(train) + len(test) == 40_000
    assert len(test) == 2_000
    assert austen_novels(["persuasion"])["persuasion"][:40_000] == train + test


def test_build_char_austen_on_a_slice_writes_a_served_model_with_held_out_metrics(tmp_path):
    model_path = str(tmp_path / "char-austen")
    metrics = build_char_austen(
        model_path,
        max_chars=20_000,
        novels=["persuasion"],
        sample_chars=40,
        hidden_size=32,
        num_layers=1,
        embedding_dim=16,
        seq_length=32,
        batch_size=8,
        max_steps=100_000,
        max_seconds=2.0,
        val_fraction=0.05,
        eval_every=0,
    )
    assert metrics["stopped_by_time_budget"]
    assert metrics["test_chars"] == 1_000
    assert 0 < metrics["test_loss_nats_per_char"] < 6
    assert [sample["temperature"] for sample in metrics["samples"]] == [0.5, 0.8, 1.0]
    assert all(len(sample["text"]) == 40 for sample in metrics["samples"])
    with open(os.path.join(model_path, "metrics.json"), encoding="utf-8") as metrics_file:
        written = json.load(metrics_file)
    for key in ("test_loss_nats_per_char", "val_loss_nats_per_char", "train_seconds", "samples"):
        assert written[key] == metrics[key]
    assert CharTextGenerator.load(model_path).run("Anne", max_new_tokens=5, seed=1).generated_tokens == 5
    assert BUILDERS["char-austen"] is build_char_austen
