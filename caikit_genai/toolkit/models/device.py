"""Device and precision choice shared by every module and trainer.

`device="auto"` picks CUDA when present and falls back to the CPU; on CUDA, matrix work runs
under autocast in bf16 (or fp16 with a loss scaler on GPUs without bf16). A trainer's
`precision="bf16"` also trains in bf16 on a CPU that computes it natively (AVX512-BF16, AMX):
there a transformer step costs about half of an fp32 one.
"""

import contextlib
import functools
import os
from typing import Optional

import torch

import alog

from ..training import distributed

log = alog.use_channel("DEVICE")


def resolve_device(device: str = "auto") -> torch.device:
    """Turn 'auto', 'cpu', 'cuda' or 'cuda:N' into a torch.device, refusing a missing GPU."""
    name = (device or "auto").strip().lower()
    if name == "auto":
        if not torch.cuda.is_available():
            return torch.device("cpu")
        # One process per GPU under torchrun: this rank's own.
        return distributed.local_cuda_device() if distributed.world_size() > 1 else torch.device("cuda")
    try:
        resolved = torch.device(name)
    except RuntimeError as err:
        raise ValueError(f"unknown device {device!r}: use auto, cpu or cuda[:N]") from err
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} was asked for, but CUDA is not available here")
    return resolved


# What a trainer's `precision` knob takes.
PRECISIONS = ("auto", "bf16", "fp32")
# /proc/cpuinfo flags of CPUs that compute bf16 natively (elsewhere torch emulates it, slower than fp32).
NATIVE_BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


@functools.lru_cache(maxsize=None)
def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 natively (read from /proc/cpuinfo; False where it is missing)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            flags = next((line.split(":", 1)[1].split() for line in cpuinfo if line.startswith("flags")), [])
    except OSError:
        return False
    return any(flag in flags for flag in NATIVE_BF16_CPU_FLAGS)


def check_precision(precision: str) -> str:
    """`precision`, or ValueError naming the choices."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    return precision


def amp_dtype(device: torch.device, precision: str = "auto") -> Optional[torch.dtype]:
    """The autocast dtype, or None for fp32. auto: bf16 (fp16 without bf16) on CUDA, fp32 on a
    CPU; bf16: also bf16 on a CPU with native bf16; fp32: never autocast."""
    check_precision(precision)
    if precision == "fp32":
        return None
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if precision == "bf16" and device.type == "cpu" and cpu_has_native_bf16():
        return torch.bfloat16
    return None


def dtype_name(dtype: Optional[torch.dtype]) -> str:
    """What metrics.json says a training computed in: bfloat16, float16, or float32 for no autocast."""
    return str(dtype or torch.float32).replace("torch.", "")


def autocast(device: torch.device, precision: str = "auto"):
    """Mixed precision where `amp_dtype` picks it, a no-op context elsewhere."""
    dtype = amp_dtype(device, precision)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def grad_scaler(device: torch.device, precision: str = "auto") -> Optional["torch.amp.GradScaler"]:
    """A loss scaler only for fp16 autocast; bf16 and fp32 need none."""
    if amp_dtype(device, precision) is torch.float16:
        return torch.amp.GradScaler("cuda")
    return None


def describe(device: torch.device) -> str:
    """A one-line description for logs and metrics files."""
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"cpu ({torch.get_num_threads()} threads)"


# Overrides every served model's `device` (cpu, cuda, cuda:1): where a node's GPU is not for serving.
DEVICE_OVERRIDE_ENV = "CAIKIT_GENAI_DEVICE"


def serving_device(device: str = "auto") -> torch.device:
    """The device a loaded model serves on: CAIKIT_GENAI_DEVICE when set, else `device`."""
    return resolve_device(os.environ.get(DEVICE_OVERRIDE_ENV) or device)
