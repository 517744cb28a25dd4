"""Device and precision choice shared by every module and trainer.

`device="auto"` picks CUDA when present and falls back to the CPU; on CUDA, matrix work runs
under autocast in bf16 (or fp16 with a loss scaler on GPUs without bf16).
"""

import contextlib
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


def amp_dtype(device: torch.device) -> Optional[torch.dtype]:
    """The autocast dtype for this device, or None where mixed precision does not help (CPU)."""
    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def autocast(device: torch.device):
    """Mixed precision on CUDA, a no-op context elsewhere."""
    dtype = amp_dtype(device)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def grad_scaler(device: torch.device) -> Optional["torch.amp.GradScaler"]:
    """A loss scaler only for fp16 autocast; bf16 and fp32 need none."""
    if amp_dtype(device) is torch.float16:
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
