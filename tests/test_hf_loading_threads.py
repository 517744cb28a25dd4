"""Hugging Face loads on many threads at once (the runtime's loader threads, a request thread,
a training) must not leave other threads building networks on the meta device or uninitialised.

transformers' from_pretrained swaps the process-wide `nn.Module.register_parameter` and
`torch.nn.init`'s functions while it loads; without
runtime_mends/hf_loading_threads.make_hf_loading_thread_safe, a network that another thread
builds meanwhile gets meta tensors or keeps `torch.empty`'s garbage (a training's first loss
NaN), and interleaved loads can leave the meta swap in place for good.
Each run is a fresh process (the fix is process-wide once applied): bare transformers shows the
race, the same race with the fix applied shows none."""

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow

RACE = r"""
import sys, threading
import torch
from transformers import AutoModel, modeling_utils
if sys.argv[2] == "fixed":
    from caikit_genai.runtime_mends.hf_loading_threads import make_hf_loading_thread_safe
    make_hf_loading_thread_safe()
stop, meta, uninitialised = threading.Event(), [], []

def load():
    for _ in range(6):
        AutoModel.from_pretrained(sys.argv[1])
    stop.set()

def build():
    while not stop.is_set():
        layer = torch.nn.Linear(4, 4)
        if layer.weight.is_meta:
            meta.append(1)
        weights = torch.nn.init.uniform_(torch.full((8,), float("nan")))
        if weights is None or not modeling_utils._init_weights:  # transformers' skip: a no-op init
            uninitialised.append(1)

threads = [threading.Thread(target=load), threading.Thread(target=load)] + [threading.Thread(target=build) for _ in range(2)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
after = torch.nn.Linear(4, 4).weight.is_meta
print(f"meta while loading: {len(meta)}; uninitialised while loading: {len(uninitialised)}; meta after: {after}")
"""


def race(model_dir: str, mode: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", RACE, model_dir, mode],
        capture_output=True, text=True, timeout=300, check=True, env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    return result.stdout.strip().splitlines()[-1]


def test_the_race_is_real_in_bare_transformers(tiny_bert_dir):
    meta, uninitialised, _ = race(tiny_bert_dir, "bare").split("; ")
    assert meta != "meta while loading: 0" and uninitialised != "uninitialised while loading: 0"


def test_no_network_is_built_on_meta_or_left_uninitialised_with_the_fix(tiny_bert_dir):
    assert race(tiny_bert_dir, "fixed") == "meta while loading: 0; uninitialised while loading: 0; meta after: False"
