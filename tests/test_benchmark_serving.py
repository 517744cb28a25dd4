"""benchmarks/serving.py runs end to end on small served models (a short run), every workload:
sentiment (the tiny classifier), the translator's list form (the tiny translator) and attention
(the packaged MiniLM-L6): every row answers every request without errors, the overload rows
refuse or answer without errors, and the ratios are printed. No timing is asserted."""

import os
import re
import subprocess
import sys

import pytest

from conftest import ATTENTION_MINILM_ID, REPO_ROOT, TINY_SENTIMENT_ID, TINY_TRANSLATOR_ID

pytestmark = pytest.mark.slow

WORKLOADS = {"sentiment": TINY_SENTIMENT_ID, "translation-list": TINY_TRANSLATOR_ID, "attention": ATTENTION_MINILM_ID}


def test_serving_benchmark_runs_without_errors(models_dir):
    models = [argument for name, model_id in WORKLOADS.items() for argument in ("--model", f"{name}={models_dir}/{model_id}")]
    result = subprocess.run(
        [
            sys.executable, os.path.join(REPO_ROOT, "benchmarks", "serving.py"), *models,
            "--requests", "16", "--clients", "1", "4", "--overload-clients", "16",
        ],
        capture_output=True, text=True, timeout=900, check=False, env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    sections = re.split(r"^\n(?=\S+ \()", result.stdout, flags=re.M)[1:]
    assert [section.split(" ", 1)[0] for section in sections] == list(WORKLOADS), result.stdout
    for section in sections:
        rows = re.findall(r"^(grpc|http)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s", section, re.M)
        assert len(rows) == 4, section
        for wire, clients, answered, refused, errors in rows:
            assert (int(answered), int(refused), int(errors)) == (16, 0, 0), (wire, clients, section)
        overload = re.findall(r"^overload (\w+): .* (\d+) errors; one request right after: (\w+)$", section, re.M)
        assert overload == [("grpc", "0", "OK"), ("http", "0", "OK")], section
        assert "ratios" in section and "in-process: one call p50" in section
    assert "runtime ready" in result.stdout
