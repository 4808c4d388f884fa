"""Rows per process of a ``torch.distributed`` group (one process per GPU, as ``torchrun`` starts
them; NCCL on GPUs, gloo on the CPU) and the all-gather that puts every rank's rows back in order.
Used by data-parallel scoring (``score.score_store_ranks``) and training (``train.train(...,
data_parallel=True)``)."""

from __future__ import annotations

import numpy as np
import torch


def process_group(caller: str) -> tuple[int, int]:
    """(rank, world size) of the initialised default process group; a clear error without one."""
    import torch.distributed as dist

    if not dist.is_available() or not dist.is_initialized():
        raise RuntimeError(f"{caller} needs an initialised torch.distributed process group "
                           "(e.g. started by torchrun, then torch.distributed.init_process_group)")
    return dist.get_rank(), dist.get_world_size()


def rank_rows(n: int, rank: int, world: int) -> slice:
    """The contiguous rows ``[start, stop)`` of ``n`` rows that ``rank`` of ``world`` takes
    (``np.array_split``'s sizes: the first ``n % world`` ranks one row more), so each rank reads its own
    run of shards in store order."""
    if not 0 <= rank < world:
        raise ValueError(f"rank {rank} outside a world of {world}")
    base, extra = divmod(n, world)
    start = rank * base + min(rank, extra)
    return slice(start, start + base + (rank < extra))


def all_gather_rows(local: np.ndarray, n: int, device: str) -> np.ndarray:
    """Every rank's ``rank_rows(n, ...)`` share of a 1-d float array, all-gathered in rank order (each
    share padded to the largest, rank 0's), so every rank returns the whole float64 array."""
    import torch.distributed as dist

    rank, world = process_group("all_gather_rows")
    sizes = [len(range(n)[rank_rows(n, r, world)]) for r in range(world)]
    if len(local) != sizes[rank]:
        raise ValueError(f"rank {rank} holds {len(local)} rows, its share of {n} is {sizes[rank]}")
    comm = "cpu" if dist.get_backend() == "gloo" else device
    padded = torch.zeros(max(sizes), dtype=torch.float64, device=comm)
    padded[:len(local)] = torch.from_numpy(np.asarray(local, np.float64)).to(comm)
    gathered = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(gathered, padded)
    return np.concatenate([g[:k].cpu().numpy() for g, k in zip(gathered, sizes)])
