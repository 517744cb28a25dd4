"""Torch's CPU threads sized to the container's CPU limit, not the node's cores.

In a pod limited to 2 CPUs on a 64-core node, torch starts 64 OpenMP threads per forward pass,
and the kernel's CFS quota throttles them all: latency collapses. Kubernetes passes the limit
as a cgroup quota (cgroup v2 `cpu.max`, v1 `cpu.cfs_quota_us` / `cpu.cfs_period_us`). An
explicit `OMP_NUM_THREADS` (the manifests set it from `limits.cpu`) always wins.
"""

import math
import os
from typing import Optional

import alog

log = alog.use_channel("CPU")

CGROUP_ROOT = "/sys/fs/cgroup"


def _read(path: str) -> Optional[str]:
    try:
        with open(path, encoding="ascii") as cgroup_file:
            return cgroup_file.read().strip()
    except OSError:
        return None


def cgroup_cpu_limit(root: str = CGROUP_ROOT) -> Optional[float]:
    """The CPUs this process's cgroup may use (quota / period), or None when unlimited or unknown."""
    cpu_max = _read(os.path.join(root, "cpu.max"))  # v2: "<quota|max> <period>"
    if cpu_max:
        quota, _, period = cpu_max.partition(" ")
        if quota != "max" and period:
            return int(quota) / int(period)
        return None
    quota, period = _read(os.path.join(root, "cpu", "cpu.cfs_quota_us")), _read(os.path.join(root, "cpu", "cpu.cfs_period_us"))
    if quota and period and int(quota) > 0:
        return int(quota) / int(period)
    return None


def size_torch_threads(root: str = CGROUP_ROOT) -> Optional[int]:
    """Lower torch's intra-op threads to the CPU limit (rounded up) unless OMP_NUM_THREADS is set;
    the thread count set, or None when left alone."""
    if os.environ.get("OMP_NUM_THREADS"):
        return None
    limit = cgroup_cpu_limit(root)
    if limit is None:
        return None
    import torch  # pylint: disable=import-outside-toplevel

    threads = max(1, math.ceil(limit))
    if threads >= torch.get_num_threads():
        return None
    torch.set_num_threads(threads)
    log.info("torch uses %d CPU threads: the container's CPU limit is %.2f", threads, limit)
    return threads
