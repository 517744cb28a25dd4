"""benchmarks/translator_decoding.py runs end to end on the tiny translator and a slice of the real
validation split: one row per setting asked for, each with its scores and shares. No timing or
score is asserted: the toy model translates no real English."""

import os
import re
import subprocess
import sys

import pytest

from conftest import REPO_ROOT

pytestmark = pytest.mark.slow


def test_the_decoding_benchmark_scores_each_setting(tiny_translator_dir):
    result = subprocess.run(
        [
            sys.executable, os.path.join(REPO_ROOT, "benchmarks", "translator_decoding.py"), "--model-dir", tiny_translator_dir,
            "--max-help-pages", "40", "--limit", "24", "--settings", "greedy", "4 beams, no repeated 4-grams",
        ],
        capture_output=True, text=True, timeout=600, check=False, cwd=REPO_ROOT, env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert re.search(r": 24 validation pairs \(\d+ of 8 words or fewer\)", result.stdout), result.stdout
    rows = [line for line in result.stdout.splitlines() if line.startswith("| greedy") or line.startswith("| 4 beams")]
    assert [row.split(" | ")[0] for row in rows] == ["| greedy", "| 4 beams, no repeated 4-grams"]
    for row in rows:
        cells = row.strip("|").split(" | ")
        assert len(cells) == 8 and re.fullmatch(r"\d+\.\d / \d+\.\d", cells[1]) and cells[2].endswith("%"), row
