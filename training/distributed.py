"""Several processes training one run (torchrun): who this process is, and what the ranks agree on.

The worker launches a multi-device run as `python -m torch.distributed.run --standalone
--nproc-per-node=N -m training <stage> ...`; torchrun sets RANK, LOCAL_RANK and WORLD_SIZE in each
rank's environment. Without them (a plain `python -m training`) this is one process of a world of
one, and every helper here is free: no process group, no collective.

Rank 0 alone writes events (training/__main__.py points the other ranks' events at nothing) and
checkpoints; the others wait for it at a barrier. Each step the ranks all-reduce their stop flags,
so a stop asked of any rank stops all of them at the same step and none is left in a collective.
"""

from __future__ import annotations

import ctypes
import os
import signal
from datetime import timedelta

import numpy as np
import torch
import torch.distributed as dist

from training.config import ConfigError

PR_SET_PDEATHSIG = 1
# Rank 0 alone evaluates, samples and saves while the others wait at a barrier: wait that long.
COLLECTIVE_TIMEOUT = timedelta(hours=2)


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main() -> bool:
    """The process that reports and saves: rank 0, or the only process."""
    return rank() == 0


def active() -> bool:
    return dist.is_available() and dist.is_initialized()


def start(device: torch.device) -> torch.device:
    """Join the ranks (NCCL on CUDA, gloo on the CPU) and return this rank's device; `device`, as
    `runtime.pick_device` chose it, unchanged when this is a world of one."""
    if world_size() == 1:
        return device
    _die_with_torchrun()
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if not active():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=COLLECTIVE_TIMEOUT,
                                device_id=device if device.type == "cuda" else None)
    return device


def _die_with_torchrun() -> None:
    # torchrun starts each rank in a session of its own, so a SIGKILL to torchrun's process group
    # misses the ranks: make the kernel kill this rank when torchrun dies, and no rank outlives it.
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() == 1:  # torchrun died before the line above
        os.kill(os.getpid(), signal.SIGKILL)


def shard(indices: np.ndarray) -> np.ndarray:
    """This rank's slice of a global batch: rank r of N reads the r-th of N equal slices."""
    size = len(indices) // world_size()  # check_batch made it even
    return indices[rank() * size : (rank() + 1) * size]


def check_batch(batch_size: int) -> None:
    """A global batch must split evenly over the ranks (checked before any work)."""
    if batch_size % world_size():
        raise ConfigError("batch_size", f"{batch_size} does not split evenly over the run's {world_size()} devices")


def rank_batch(batch_size: int) -> int:
    """Each rank's share of a global batch, for a Trainer's `per_device_*_batch_size` (checked as
    `check_batch` checks it)."""
    check_batch(batch_size)
    return batch_size // world_size()


def wrap(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """The model as the ranks train it: DistributedDataParallel (gradients averaged over the ranks
    in backward), or the model itself in a world of one."""
    if not active():
        return model
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)


def mean(value: torch.Tensor) -> torch.Tensor:
    """The mean of `value` over the ranks (every rank gets it)."""
    if not active():
        return value
    value = value.detach().clone()
    dist.all_reduce(value, op=dist.ReduceOp.SUM)
    return value / world_size()


def any_rank(flag: bool, device: torch.device) -> bool:
    """True on every rank when `flag` is on any rank: the ranks decide together (stop at the same step,
    save at the same step), so none waits in a collective the others never enter."""
    if not active():
        return flag
    t = torch.tensor(int(flag), device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def barrier() -> None:
    if active():
        dist.barrier()


def shutdown() -> None:
    if active():
        dist.destroy_process_group()
