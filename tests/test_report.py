"""docs/models.md is what the committed records render (drift), every default model has a record
that says where its figures came from, and a real (tiny) build's metrics.json becomes a record and
a card through the bootstrap's own hook."""

import functools
import json
import os
import re
import statistics

import pytest

from caikit_genai.bootstrap import BUILDERS, QUICK_BUILDERS, build_sentiment, main as bootstrap_main
from caikit_genai.report import main, read_records, record_build, render_card
from caikit_genai.report.records import card_subset
from caikit_genai.report.seed_spread import main as seed_spread_main
from conftest import REPO_ROOT

RECORDS = os.path.join(REPO_ROOT, "docs", "model-records")
PAGE = os.path.join(REPO_ROOT, "docs", "models.md")
README = os.path.join(REPO_ROOT, "README.md")


def test_models_page_is_what_the_records_render():
    assert main(["--check", "--records-dir", RECORDS, "--output", PAGE, "--readme", README]) == 0, "run `make report`"
    with open(os.path.join(REPO_ROOT, "Makefile"), encoding="utf-8") as makefile:
        assert "\nreport: $(INSTALLED)\n\t$(PY) -m caikit_genai.report\n" in makefile.read()


def test_check_names_the_page_and_the_command_when_they_differ(tmp_path, capsys):
    stale, readme = tmp_path / "models.md", tmp_path / "README.md"
    with open(PAGE, encoding="utf-8") as page:
        rendered = page.read()
    stale_page = re.sub(r"\*\*\d+\.\d%\*\*", "**0.1%**", rendered, count=1)  # a figure gone stale
    assert stale_page != rendered
    stale.write_text(stale_page)
    with open(README, encoding="utf-8") as page:
        readme.write_text(page.read().replace("| `make serve`, `make models` |", "| `make models-force` |", 1))
    arguments = ["--records-dir", RECORDS, "--output", str(stale), "--readme", str(readme)]
    assert main(["--check", *arguments]) == 1
    complaint = capsys.readouterr().err
    assert str(stale) in complaint and str(readme) in complaint and "make report" in complaint
    assert main(arguments) == 0  # `make report` mends both
    assert main(["--check", *arguments]) == 0


def test_every_default_model_has_a_record_of_figures_its_card_shows():
    records = {record["model"]: record for record in read_records(RECORDS)}
    assert set(BUILDERS) <= set(records)
    for name, record in records.items():
        assert record["source"] and record["built"] and record["machine"], name
        # Nothing in a record that the card does not show (a record is that subset of metrics.json).
        assert card_subset(record["metrics"]) == record["metrics"], name
        assert f"{name}.json" in os.listdir(RECORDS), f"the record of {name} is not in {name}.json"


def test_a_build_writes_its_record_and_the_card_shows_its_metrics(tmp_path, tiny_bert_dir, monkeypatch):
    # The real builder and the real hook in bootstrap's main, on a slice of the data with a tiny BERT.
    tiny_sentiment = functools.partial(build_sentiment, base_model=tiny_bert_dir, limit=64, epochs=1, batch_size=16, freeze_layers=1)
    monkeypatch.setitem(BUILDERS, "sentiment", tiny_sentiment)
    records_dir, models_dir = tmp_path / "records", tmp_path / "models"
    records_dir.mkdir()
    assert bootstrap_main(["--models-dir", str(models_dir), "--only", "sentiment", "--records-dir", str(records_dir)]) == 0

    with open(models_dir / "sentiment" / "metrics.json", encoding="utf-8") as metrics_file:
        metrics = json.load(metrics_file)
    with open(records_dir / "sentiment.json", encoding="utf-8") as record_file:
        record = json.load(record_file)
    assert record["metrics"]["test_accuracy"] == metrics["test_accuracy"]
    assert record["metrics"]["test_accuracy_95ci"] == metrics["test_accuracy_95ci"]
    assert record["metrics"]["recipe"] == metrics["recipe"]
    assert "evaluations" not in record["metrics"] and "evaluations" in metrics
    assert record["build_seconds"] == metrics["build_seconds"] and record["model_dir_mib"] > 0
    assert "cores" in record["machine"] and not record["opt_in"]

    card = render_card(record)
    low, high = metrics["test_accuracy_95ci"]
    assert f"**{100 * metrics['test_accuracy']:.1f}%** of {metrics['test_examples']} examples" in card
    assert f"95% interval {100 * low:.1f}-{100 * high:.1f}%" in card
    assert f"{metrics['latency_ms_p50']:.1f} / {metrics['latency_ms_p95']:.1f} ms" in card
    page = tmp_path / "models.md"
    assert main(["--records-dir", str(records_dir), "--output", str(page)]) == 0
    assert card in page.read_text()

    # A quick build (`make serve`'s first) lands in the same record as `quick_build`; the next full
    # build keeps it, and the card and README's table show it.
    monkeypatch.setitem(QUICK_BUILDERS, "sentiment", functools.partial(tiny_sentiment, quick=True))
    assert bootstrap_main(["--models-dir", str(models_dir), "--quick", "--only", "sentiment", "--records-dir", str(records_dir)]) == 0
    with open(records_dir / "sentiment.json", encoding="utf-8") as record_file:
        with_quick = json.load(record_file)
    quick = with_quick.pop("quick_build")
    assert with_quick == record  # the full build's figures stay
    assert quick["metrics"]["quick"] is True and quick["build_seconds"] > 0
    assert bootstrap_main(["--models-dir", str(models_dir), "--missing", "--only", "sentiment", "--records-dir", str(records_dir)]) == 0
    with open(records_dir / "sentiment.json", encoding="utf-8") as record_file:
        rebuilt = json.load(record_file)
    assert rebuilt["quick_build"] == quick and rebuilt["metrics"]["quick"] is False  # --missing rebuilt the quick dir
    assert f"| quick build (`make serve` serves it first) | {quick['build_seconds']:.0f} s, built {quick['built']}; accuracy:" in render_card(rebuilt)

    # Outside a checkout (no records dir) a build writes no record.
    assert record_build("sentiment", str(models_dir / "sentiment"), 1.0, str(tmp_path / "absent")) is None
    assert not (tmp_path / "absent").exists()


def test_seed_spread_puts_each_seed_and_their_spread_on_the_shipped_builds_card(tmp_path, tiny_bert_dir, monkeypatch, capsys):
    # Real (tiny) builds of one recipe on three seeds; the first is recorded as its builder records it.
    tiny_sentiment = functools.partial(build_sentiment, base_model=tiny_bert_dir, limit=64, epochs=1, batch_size=16, freeze_layers=1)
    monkeypatch.setitem(BUILDERS, "sentiment", tiny_sentiment)
    records_dir, models_dir = tmp_path / "records", tmp_path / "models"
    records_dir.mkdir()
    assert bootstrap_main(["--models-dir", str(models_dir), "--only", "sentiment", "--records-dir", str(records_dir)]) == 0
    shipped, seed6, seed7, other_recipe = (str(models_dir / "sentiment"), str(tmp_path / "seed6"), str(tmp_path / "seed7"), str(tmp_path / "lr"))
    accuracies = [tiny_sentiment(path, seed=seed)["test_accuracy"] for path, seed in ((seed6, 6), (seed7, 7))]
    tiny_sentiment(other_recipe, seed=6, learning_rate=1e-3)
    recorded = json.loads((records_dir / "sentiment.json").read_text())
    recorded["built"] = "2026-01-01"  # the build's facts stay as recorded
    (records_dir / "sentiment.json").write_text(json.dumps(recorded))

    assert seed_spread_main(["--model-dir", shipped, "--records-dir", str(records_dir), seed6, seed7]) == 0
    values = [recorded["metrics"]["test_accuracy"], *accuracies]
    spread = json.loads((models_dir / "sentiment" / "metrics.json").read_text())["seed_spread"]
    assert spread["seeds"] == [{"seed": 42, "value": values[0]}, {"seed": 6, "value": values[1]}, {"seed": 7, "value": values[2]}]
    assert spread["mean"] == round(statistics.fmean(values), 4) and spread["std"] == round(statistics.stdev(values), 4)
    assert f"test_accuracy over 3 seeds: {spread['mean']} +- {spread['std']}" in capsys.readouterr().out
    refreshed = json.loads((records_dir / "sentiment.json").read_text())
    assert refreshed["metrics"]["seed_spread"] == spread
    assert {**refreshed, "metrics": recorded["metrics"]} == {**recorded, "metrics": recorded["metrics"]}
    card = render_card(refreshed)
    assert f"{100 * spread['mean']:.1f}% +- {100 * spread['std']:.1f} points over 3 seeds (mean +- sample std): {100 * values[0]:.1f}% (seed 42)" in card

    # Measured again (another seed's build came later): the new spread replaces the recorded one.
    assert seed_spread_main(["--model-dir", shipped, "--records-dir", str(records_dir), seed6]) == 0
    again = json.loads((records_dir / "sentiment.json").read_text())["metrics"]["seed_spread"]
    assert [run["seed"] for run in again["seeds"]] == [42, 6] and again["mean"] == round(statistics.fmean(values[:2]), 4)

    # Refused, each with what was wrong: another recipe, a seed twice, a dir that is not the recorded build.
    for arguments, reason in (
        ([other_recipe], "was built with another recipe"),
        ([seed6, seed6], "distinct recorded seeds"),
    ):
        with pytest.raises(SystemExit):
            seed_spread_main(["--model-dir", shipped, "--records-dir", str(records_dir), *arguments])
        assert reason in capsys.readouterr().err
    with pytest.raises(SystemExit):
        seed_spread_main(["--model-dir", seed6, "--name", "sentiment", "--records-dir", str(records_dir), seed7])
    assert "is not the build recorded in" in capsys.readouterr().err
    assert "seed_spread" not in json.loads((tmp_path / "seed6" / "metrics.json").read_text())  # left as it was
