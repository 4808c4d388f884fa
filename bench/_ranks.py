"""What the data-parallel benchmarks share: one process per GPU as ``torchrun`` starts them (NCCL),
gloo on a CPU machine, and timing across all ranks."""

from __future__ import annotations

import os
import time


def init_ranks() -> tuple[bool, int, int, int, str]:
    """Join the process group: (cuda, rank, world, local rank, device string)."""
    import torch
    import torch.distributed as dist

    cuda = torch.cuda.is_available()
    local = int(os.environ.get("LOCAL_RANK", 0))
    if cuda:
        torch.cuda.set_device(local)
    # NCCL with the rank's device named (else NCCL guesses it from the global rank and warns)
    dist.init_process_group("nccl" if cuda else "gloo", **({"device_id": torch.device(f"cuda:{local}")} if cuda else {}))
    return cuda, dist.get_rank(), dist.get_world_size(), local, f"cuda:{local}" if cuda else "cpu"


def timed(fn, cuda: bool):
    """(fn(), seconds) with every rank starting together and the clock stopped when all have finished."""
    import torch
    import torch.distributed as dist

    dist.barrier()
    if cuda:
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    out = fn()
    if cuda:
        torch.cuda.synchronize()
    dist.barrier()
    return out, time.perf_counter() - t0
