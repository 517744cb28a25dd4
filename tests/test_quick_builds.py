"""`make serve`'s quick builds, on small slices of the same data: each writes a model marked
quick that the runtime serves and answers every task with, /info/models says which are quick,
a full build swaps in for its quick model live, and `bootstrap --missing` rebuilds a quick dir."""

import json
import os
import time

import pytest

from caikit_genai.bootstrap import QUICK_BUILDERS, build_attention_minilm, build_char_austen, is_quick_build, main as bootstrap_main
from caikit_genai_client import Client
from conftest import ATTENTION_MINILM_ID, REPO_ROOT

pytestmark = pytest.mark.slow

# Each quick build's own code path, cut to seconds (the quick recipes' other knobs stand).
CHAR_SLICE = {"max_chars": 20_000, "novels": ["persuasion"], "sample_chars": 20, "hidden_size": 32, "embedding_dim": 16, "max_seconds": 2.0, "eval_every": 0}


def quick_slices(tiny_bert_dir: str, toy_encoder_dir: str) -> dict:
    return {
        "char-austen": CHAR_SLICE,
        "sentiment": {"base_model": tiny_bert_dir, "limit": 64, "freeze_layers": 1, "max_seconds": 5.0},
        "dcgan-fashion": {
            "limit": 600, "test_limit": 300, "quality_samples": 200, "ngf": 16, "ndf": 16, "hidden_features": 32,
            "max_steps": 6, "eval_every": 3, "eval_samples": 100,
        },
        "translator-en-id": {
            "max_help_pages": 40, "max_test_sentences": 20, "encoder_model": toy_encoder_dir, "decoder_layers": 1,
            "decoder_heads": 2, "target_vocab_size": 300, "batch_size": 16, "max_seconds": 3.0, "eval_every": 0,
            "max_eval_sentences": 10,
        },
    }


def listed_quick(client: Client) -> dict:
    return {model.name: model.quick for model in client.models(wire="http")}


def test_quick_builds_answer_every_task_and_full_builds_replace_them_live(runtime, tiny_bert_dir, toy_encoder_dir):
    assert list(QUICK_BUILDERS) == ["attention-minilm", "char-austen", "sentiment", "dcgan-fashion", "translator-en-id"]
    assert QUICK_BUILDERS["attention-minilm"] is build_attention_minilm  # its full build takes seconds
    ids = {}
    for name, slice_knobs in quick_slices(tiny_bert_dir, toy_encoder_dir).items():
        ids[name] = f"quick-{name}"
        path = os.path.join(runtime.models_dir, ids[name])
        metrics = QUICK_BUILDERS[name](path, **slice_knobs)
        assert metrics["quick"] is True and is_quick_build(path), name
        assert metrics["recipe"]["seed"] == 42
    for model_id in ids.values():
        runtime.wait_for_model(model_id)

    client = Client(grpc=f"127.0.0.1:{runtime.grpc_port}", http=runtime.http_url)
    assert client.generate(ids["char-austen"], "Anne", max_new_tokens=5, seed=1).generated_tokens == 5
    assert {label.label for label in client.classify(ids["sentiment"], "A moving film.")} == {"negative", "positive"}
    images = client.images(ids["dcgan-fashion"], 2, seed=3, label="Sneaker")
    assert len(images.images) == 2 and images.labels == ["Sneaker", "Sneaker"]
    assert client.translate(ids["translator-en-id"], "Open the file", max_new_tokens=5).generated_tokens <= 5
    assert client.attention(ATTENTION_MINILM_ID, "Quick answers first.").arrays["encoder"].ndim == 4
    quick = listed_quick(client)
    assert all(quick[model_id] for model_id in ids.values()), quick
    assert quick[ATTENTION_MINILM_ID] is False

    # The full build lands on the quick model's path (as `make serve`'s second pass does) and the
    # runtime swaps it in: /info/models stops calling it quick.
    full = build_char_austen(os.path.join(runtime.models_dir, ids["char-austen"]), **CHAR_SLICE)
    assert full["quick"] is False
    deadline = time.monotonic() + 60  # a deadline, not a speed check
    while listed_quick(client)[ids["char-austen"]]:
        client.generate(ids["char-austen"], "Anne", max_new_tokens=2, seed=1)  # loads the swapped-in model
        assert time.monotonic() < deadline, "the full build did not replace the quick one within 60 s"
        time.sleep(0.5)
    client.close()


def test_missing_rebuilds_a_quick_dir_and_quick_skips_any_built_one(tmp_path):
    models_dir = tmp_path / "models"
    repo_record = os.path.join(REPO_ROOT, "docs", "model-records", "attention-minilm.json")
    with open(repo_record, encoding="utf-8") as record_file:
        recorded = record_file.read()
    path = models_dir / "attention-minilm"
    assert bootstrap_main(["--models-dir", str(models_dir), "--only", "attention-minilm", "--quick"]) == 0
    metrics_file = path / "metrics.json"
    marked = {**json.loads(metrics_file.read_text()), "quick": True}
    metrics_file.write_text(json.dumps(marked))
    assert is_quick_build(str(path))

    assert bootstrap_main(["--models-dir", str(models_dir), "--missing", "--quick", "--only", "attention-minilm"]) == 0
    assert json.loads(metrics_file.read_text()) == marked  # already there: --quick --missing leaves it

    assert bootstrap_main(["--models-dir", str(models_dir), "--missing", "--only", "attention-minilm"]) == 0
    assert not is_quick_build(str(path))  # a quick dir counts as missing for the full builds
    with open(repo_record, encoding="utf-8") as record_file:
        assert record_file.read() == recorded  # a build outside ./models writes no record unless told where
    assert json.loads(metrics_file.read_text())["quick"] is False
    with pytest.raises(SystemExit):
        bootstrap_main(["--models-dir", str(models_dir), "--quick", "--only", "attention-mpnet"])
