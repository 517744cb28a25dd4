#!/usr/bin/env bash
# What a session lent a GPU machine runs there (the device tool; see docs/performance.md):
# the module tests on CUDA (device auto picks it; mixed precision on), the concurrent served
# runtime on CUDA, GPU vs CPU figures of the training and generation benchmarks measured in
# the same run, and a short char-austen build on the GPU. Logs go to $OUT (or ./gpu-check).
# The machine has its own torch; caikit and the pinned packages travel as wheels in .whl/
# (`make gpu-wheels` here first; the device tool's run carries [".whl", ".data/janeaustenr"]).
set -u
OUT=${OUT:-gpu-check}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false CAIKIT_GENAI_UNTESTED_VERSIONS=1
if [ -d .whl ]; then
  rm -rf /tmp/site; python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
fi
# transformers finds torch by its distribution metadata; give the machine's torch one if it has none.
python3 - <<'PY'
import importlib.metadata as m, os, torch
try:
    print("torch distribution", m.version("torch"))
except m.PackageNotFoundError:
    info = f"/tmp/site/torch-{torch.__version__.split('+')[0]}.dist-info"
    os.makedirs(info, exist_ok=True)
    open(f"{info}/METADATA", "w").write(f"Metadata-Version: 2.1\nName: torch\nVersion: {torch.__version__}\n")
    print("torch had no distribution metadata: wrote", info)
PY
# The machine's numpy is 2.x (its scipy needs it); caikit 0.28.3's HTTP server still calls
# np.issubclass_, gone in numpy 2 (why pyproject pins numpy<2): put it back at startup.
[ -d /tmp/site ] && echo 'import numpy; numpy.issubclass_ = getattr(numpy, "issubclass_", issubclass)' > /tmp/site/sitecustomize.py
export USE_TORCH=1 USE_TF=0
step() { local name=$1 limit=$2; shift 2; echo "== $name"; local t0=$SECONDS
  timeout "$limit" "$@" > "$OUT/$name.log" 2>&1; local rc=$?
  echo "== $name: exit $rc after $((SECONDS - t0)) s"; tail -n "${TAIL:-8}" "$OUT/$name.log"; }
nvidia-smi -L; python3 -c 'import torch, transformers, caikit; from transformers.utils import import_utils as u; print("torch", torch.__version__, "cuda", torch.cuda.is_available(), torch.cuda.get_device_name(0), "transformers", transformers.__version__, "sees torch", u.is_torch_available())'
TAIL=25 step module-tests 200 python3 -m pytest -q -p no:cacheprovider -o addopts="" tests/test_char_module.py tests/test_dcgan_module.py \
  tests/test_sentiment_module.py tests/test_translator_module.py tests/test_sentiment_distillation.py tests/test_toolkit.py
step dcgan-train-cuda 90 python3 benchmarks/dcgan_training_speed.py --synthetic --device cuda --steps 300
step dcgan-train-cpu 90 python3 benchmarks/dcgan_training_speed.py --synthetic --device cpu --steps 40
step char-generate-cuda 60 python3 benchmarks/char_generation_speed.py --device cuda --lengths 1000 10000 --naive-budget 5
step char-generate-cpu 60 python3 benchmarks/char_generation_speed.py --device cpu --lengths 1000 10000 --naive-budget 5
TAIL=30 step served-overload 150 python3 benchmarks/overload.py --requests 1500 --concurrency 32 --overload-clients 200 --overload-requests 600 --max-seconds 60
[ -d .data/janeaustenr ] && TAIL=12 step char-austen-gpu 120 python3 -c "
import json, sys, torch; from caikit_genai.bootstrap.char_austen import build_char_austen
m = build_char_austen('/tmp/char-austen-gpu', max_seconds=75)
print(json.dumps({k: v for k, v in m.items() if k != 'samples'}, default=str))
print(m['samples'][1]['text'][:300])"
exit 0
