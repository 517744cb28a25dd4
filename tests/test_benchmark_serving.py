"""benchmarks/serving.py runs end to end on the tiny sentiment model (a short run): every row
answers every request without errors and the ratios are printed. No timing is asserted."""

import os
import re
import subprocess
import sys

from conftest import REPO_ROOT, TINY_SENTIMENT_ID


def test_serving_benchmark_runs_without_errors(models_dir):
    result = subprocess.run(
        [
            sys.executable, os.path.join(REPO_ROOT, "benchmarks", "serving.py"),
            "--model-dir", os.path.join(models_dir, TINY_SENTIMENT_ID),
            "--requests", "24", "--clients", "1", "4", "--overload-clients", "24",
        ],
        capture_output=True, text=True, timeout=600, check=False, env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    rows = re.findall(r"^(grpc|http)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s", result.stdout, re.M)
    assert len(rows) == 4, result.stdout
    for wire, clients, answered, refused, errors in rows:
        assert (int(answered), int(refused), int(errors)) == (24, 0, 0), (wire, clients, result.stdout)
    overload = re.findall(r"^overload (\w+): .* (\d+) errors; one request right after: (\w+)$", result.stdout, re.M)
    assert [(wire, errors, after) for wire, errors, after in overload] == [("grpc", "0", "OK"), ("http", "0", "OK")]
    assert "runtime ready" in result.stdout and "ratios" in result.stdout
