"""Data-parallel training across processes, GPUs and nodes, with torch.distributed as `torchrun`
launches it (and Kubeflow's PyTorchJob launches torchrun).

Nothing changes for one process. With WORLD_SIZE > 1 in the environment, the shared training
loop (training.py) joins the process group (NCCL on CUDA, gloo on CPU), starts every rank from
rank 0's weights, feeds each rank its own shard of the batches, averages gradients across ranks
before every optimizer step, and stops all ranks at the same step. Only rank 0 evaluates for the
record, and only rank 0 writes a model dir (model_dir.py asks `is_main_process`).

Gradients are averaged by one all-reduce of the flattened gradients per optimizer step rather
than by wrapping the model in DistributedDataParallel: a step function may reach into
sub-networks (a GAN's generator and discriminator, a translator's decoder), which DDP's forward
hooks would not see. The cost is that communication does not overlap the backward pass.
"""

import datetime
import os
from typing import Any, Iterable, Iterator, List

import torch
import torch.distributed as dist

import alog

log = alog.use_channel("DIST")


def world_size() -> int:
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    return int(os.environ.get("RANK", "0"))


def is_main_process() -> bool:
    return rank() == 0


def local_cuda_device() -> torch.device:
    """This rank's GPU: torchrun gives each process of a node its LOCAL_RANK."""
    return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))


def start(device: torch.device) -> bool:
    """Join the process group when launched as one of several ranks; False when alone."""
    if world_size() <= 1:
        return False
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend=backend, timeout=datetime.timedelta(minutes=30))
        log.info("rank %d of %d joined (%s)", dist.get_rank(), dist.get_world_size(), backend)
    return True


def broadcast_parameters(model: torch.nn.Module) -> None:
    """Every rank starts from rank 0's weights and buffers."""
    with torch.no_grad():
        for tensor in list(model.parameters()) + list(model.buffers()):
            dist.broadcast(tensor.data, src=0)


def shard(batches: Iterable[Any]) -> Iterator[Any]:
    """This rank's batches: the rank-th of every group of world-size batches. A last, incomplete
    group is dropped, so every rank takes the same number of steps."""
    size, me = world_size(), rank()
    group: List[Any] = []
    for batch in batches:
        group.append(batch)
        if len(group) == size:
            yield group[me]
            group = []


def average_gradients(parameters: Iterable[torch.nn.Parameter]) -> None:
    """Average the gradients of `parameters` over all ranks, in one all-reduce."""
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= dist.get_world_size()
    offset = 0
    for grad in grads:
        grad.copy_(flat[offset : offset + grad.numel()].view_as(grad))
        offset += grad.numel()


def any_rank(flag: bool, device: torch.device) -> bool:
    """True on every rank if it is true on any (e.g. one rank ran out of time)."""
    tensor = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return bool(tensor.item() > 0)


def parameters_agree(model: torch.nn.Module, device: torch.device) -> bool:
    """Whether every rank ended with the same weights (a check that gradients were averaged)."""
    with torch.no_grad():
        checksum = torch.stack([p.detach().double().sum() for p in model.parameters()]).to(device)
        lowest, highest = checksum.clone(), checksum.clone()
        dist.all_reduce(lowest, op=dist.ReduceOp.MIN)
        dist.all_reduce(highest, op=dist.ReduceOp.MAX)
    return bool(torch.allclose(lowest, highest, rtol=1e-6, atol=1e-6))
