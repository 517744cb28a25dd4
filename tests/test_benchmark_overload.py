"""benchmarks/overload.py runs end to end, tiny: mixed requests to every module (unary, streaming,
list forms, gRPC and HTTP) all answered, then more clients at once than the runtime admits (its
concurrency limits lowered to LIMIT for the run), every one answered or refused, some refused,
none hung, and the runtime answering every request kind right after. No timing is asserted."""

import os
import re
import subprocess
import sys

import pytest

from conftest import REPO_ROOT, TINY_ATTENTION_ID, TINY_CHAR_ID, TINY_DCGAN_ID, TINY_SENTIMENT_ID, TINY_TRANSLATOR_ID

pytestmark = pytest.mark.slow

MODELS = [TINY_SENTIMENT_ID, TINY_CHAR_ID, TINY_TRANSLATOR_ID, TINY_DCGAN_ID, TINY_ATTENTION_ID]
REQUESTS, CONCURRENCY, OVERLOAD_CLIENTS, OVERLOAD_REQUESTS = 300, 8, 40, 120
# Per wire: above the mixed phase's clients, below the overload's (about half of them per wire).
LIMIT = 12


def test_overload_script_answers_every_request_and_serves_after(models_dir):
    result = subprocess.run(
        [
            sys.executable, os.path.join(REPO_ROOT, "benchmarks", "overload.py"),
            "--models-dir", models_dir, "--model-ids", *MODELS,
            "--requests", str(REQUESTS), "--concurrency", str(CONCURRENCY), "--overload-clients", str(OVERLOAD_CLIENTS),
            "--overload-requests", str(OVERLOAD_REQUESTS), "--max-seconds", "600",
            "--runtime-env", f"RUNTIME_GRPC_MAXIMUM_CONCURRENT_RPCS={LIMIT}", f"RUNTIME_HTTP_SERVER_CONFIG_LIMIT_CONCURRENCY={LIMIT}",
        ],
        capture_output=True, text=True, timeout=900, check=False, env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    output = result.stdout
    assert result.returncode == 0, output[-4000:] + result.stderr[-4000:]
    mixed = re.search(rf"^mixed: (\d+) requests, {CONCURRENCY} concurrent: (\d+) answered, (\d+) refused, (\d+) errors, (\d+) hung, (\d+) not sent", output, re.M)
    assert mixed, output
    assert [int(value) for value in mixed.groups()] == [REQUESTS, REQUESTS, 0, 0, 0, 0], mixed.group(0)
    # Every module's every request kind, over both wires, was in the mix and answered.
    mixed_kinds = output[output.index("\n", mixed.end()) : output.index("\nrss: ")]
    kinds = re.findall(r"^  (grpc|http) (\S+) (\S+) +\{'OK': \d+\}$", mixed_kinds, re.M)
    assert len(kinds) == len(mixed_kinds.strip().splitlines()), mixed_kinds
    assert {model for _, model, _ in kinds} == set(MODELS), output
    assert ("grpc", TINY_TRANSLATOR_ID, "TranslationListTaskPredict") in kinds
    assert ("http", TINY_CHAR_ID, "server-streaming-text-generation") in kinds
    assert ("grpc", TINY_CHAR_ID, "ServerStreamingTextGenerationTaskPredict") in kinds
    assert re.search(r"^rss: before [\d,]+ MiB, after [\d,]+ MiB", output, re.M), output
    overload = re.search(r"^overload: (\d+) clients, (\d+) requests: (\d+) answered, (\d+) refused .*, (\d+) errors, (\d+) hung, (\d+) not sent", output, re.M)
    assert overload, output
    clients, count, answered, refused, errors, hung, not_sent = (int(value) for value in overload.groups())
    assert (clients, count, errors, hung, not_sent) == (OVERLOAD_CLIENTS, OVERLOAD_REQUESTS, 0, 0, 0), overload.group(0)
    assert answered + refused == OVERLOAD_REQUESTS and answered > 0 and refused > 0, overload.group(0)
    after = re.search(r"^after: (\d+) of (\d+) request kinds answered$", output, re.M)
    assert after and after.group(1) == after.group(2) == str(len(kinds)), output
