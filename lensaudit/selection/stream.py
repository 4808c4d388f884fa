"""The selection function streamed over groups of hosts, for plans larger than memory.

The plan's rows are ordered by the (PSF, depth) bin of their host (a host belongs to one
bin, so each bin's injections need only that bin's hosts) and cut, at bin boundaries, into
groups of at least ``group_rows`` injections.  Per group: its hosts are read from the
cutout store (``READ_THREADS`` threads, each a slice of the group's hosts) and, on a GPU,
uploaded on a side stream (``device_upload.to_device_beside``, from one reused pageable
buffer: no pinned allocation while the device works) by a background thread, up to
``PREFETCH_GROUPS`` groups ahead of the group the device works on (``host_load`` counts
only the wait); scored without an arc (``host_logit``), and ``inject_and_score`` runs on the
group's injections (arc noise seeded by (seed, group number)) in equal chunks of at most
``chunk`` rows.  Memory stays bounded by the largest group: 1 + ``PREFETCH_GROUPS`` groups'
stamps on the device, one in host memory, the plan and the per-injection results on the host.

Results are those of ``inject_and_score`` plus ``host_logit``, in plan order (index 0 .. N-1).  The same
seed, plan and ``group_rows`` give the same numbers; another ``group_rows`` redraws the
arc noise (the noise stream is per group).
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import torch

from lensaudit.device_upload import to_device, to_device_beside
from lensaudit.selection.adversarial import score_batches_on_device
from lensaudit.selection.grid import DEPTH
from lensaudit.selection.inject import inject_and_score_tensor, result_frame

READ_THREADS = 8  # threads reading one group's hosts (numpy copies out of the memory-mapped shards release the GIL)
PREFETCH_GROUPS = 2  # groups read ahead of the one on the device (the first group's read is not hidden)
#: on a GPU, the loader thread uploads each group on a side stream (False: into pinned host memory,
#: copied by the main thread: the previous path, ``bench_selection.py --pinned-group-uploads``)
UPLOAD_BESIDE = True


def host_groups(plan: pd.DataFrame, group_rows: int) -> list[np.ndarray]:
    """Positional row indices of ``plan`` per group: rows sorted (stably) by host bin, cut at
    bin boundaries once a group holds ``group_rows`` rows."""
    if group_rows < 1:
        raise ValueError(f"group_rows must be >= 1, got {group_rows}")
    key = plan["psf_bin"].to_numpy(np.int64) * DEPTH.n + plan["depth_bin"].to_numpy(np.int64)
    order = np.argsort(key, kind="stable")
    edges = np.flatnonzero(np.r_[True, key[order][1:] != key[order][:-1]])  # start of each bin in ``order``
    groups, start = [], 0
    for e in list(edges[1:]) + [len(order)]:
        if e - start >= group_rows or e == len(order):
            if e > start:
                groups.append(order[start:e])
            start = e
    return groups


def group_seed(seed: int, group: int) -> int:
    return int(np.random.SeedSequence([int(seed), int(group)]).generate_state(1, np.uint64)[0] >> np.uint64(1))


def stream_inject_and_score(model, reader, hosts: pd.DataFrame, plan: pd.DataFrame, params: pd.DataFrame, crop: int,
                            device: str, seed: int, *, group_rows: int = 65536, chunk: int = 8192,
                            compiled: bool = False, timings: dict | None = None, psf=None,
                            fused: bool = False, compiled_detector: bool = False,
                            detector_bf16: bool = False) -> pd.DataFrame:
    """``inject_and_score`` + ``host_logit`` for every row of ``plan`` (``params`` row-aligned),
    hosts read from ``reader`` (a ``CutoutReader``) group by group; see the module docstring.
    ``psf``: PSFEx injection PSFs (``inject.inject_batch``; None: Moffat); ``compiled_detector`` /
    ``detector_bf16``: hosts and injections scored by the compiled detector / under bf16 autocast
    (``inject.score_stamps``)."""
    if len(plan) != len(params):
        raise ValueError(f"plan ({len(plan)} rows) and params ({len(params)} rows) differ in length")
    cuda = str(device).startswith("cuda")
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    t = timings if timings is not None else {}
    host_index = pd.Index(hosts["galaxy_id"])
    all_pos = host_index.get_indexer(plan["galaxy_id"])
    if (all_pos < 0).any():
        raise ValueError("plan names hosts that are not in the host table")
    size = (reader.bands, reader.size, reader.size)

    beside = cuda and UPLOAD_BESIDE
    staging: list[np.ndarray] = []  # the loader's pageable buffer, reused group after group (``beside``)

    def load(rows: np.ndarray, readers: ThreadPoolExecutor):
        """(hosts' positions, each row's host, the hosts' stamps (on the device when ``beside``,
        else in pinned host memory on a GPU), the rows' parameters, the hosts' rows)."""
        uniq, inv = np.unique(all_pos[rows], return_inverse=True)
        if beside:
            if not staging or len(staging[0]) < len(uniq):
                staging[:] = [np.empty((max(len(uniq), largest), *size), np.float32)]
            arr = staging[0][:len(uniq)]
        else:
            buf = torch.empty((len(uniq), *size), dtype=torch.float32, pin_memory=cuda)
            arr = buf.numpy()
        index = hosts.iloc[uniq].assign(cutout_ok=True)
        cuts = np.linspace(0, len(uniq), min(n_read, len(uniq)) + 1).astype(int)
        list(readers.map(lambda i, o: reader.read(i, out=o), [index.iloc[a:b] for a, b in zip(cuts[:-1], cuts[1:])],
                         [arr[a:b] for a, b in zip(cuts[:-1], cuts[1:])]))
        if beside:  # finished on the side stream before returning: the buffer is free for the next group
            buf = to_device_beside(torch.from_numpy(arr), device)
        return uniq, inv, buf, params.iloc[rows].reset_index(drop=True), hosts.iloc[uniq].reset_index(drop=True)

    groups = host_groups(plan, group_rows)
    largest = max((len(np.unique(all_pos[rows])) for rows in groups), default=0)
    n_read = max(1, min(READ_THREADS, os.cpu_count() or 1))
    idx, vals = [], []  # per group: plan rows, (rows, 13) float64 results on the device (one transfer at the end)
    with ThreadPoolExecutor(1) as loader, ThreadPoolExecutor(n_read) as readers:
        ahead = [loader.submit(load, rows, readers) for rows in groups[:1 + PREFETCH_GROUPS]]
        for g, rows in enumerate(groups):
            t0 = time.perf_counter()
            uniq, inv, buf, group_params, group_hosts = ahead.pop(0).result()
            if g + 1 + PREFETCH_GROUPS < len(groups):
                ahead.append(loader.submit(load, groups[g + 1 + PREFETCH_GROUPS], readers))
            if beside:
                stamps = buf
                stamps.record_stream(torch.cuda.current_stream(stamps.device))  # made on the side stream, used on this one
            else:
                stamps = buf.to(device, non_blocking=True)  # pinned: the host runs on (the buffer lives until the loop moves on)
            if timings is not None:
                sync()
            t["host_load"] = t.get("host_load", 0.0) + time.perf_counter() - t0
            t0 = time.perf_counter()
            host_logit = score_batches_on_device(model, stamps, crop, device, chunk=chunk,  # the hosts without an arc
                                                 compiled=compiled_detector, bf16=detector_bf16)
            if timings is not None:
                sync()
            t["host_score"] = t.get("host_score", 0.0) + time.perf_counter() - t0
            v = inject_and_score_tensor(model, stamps, inv, group_params, group_hosts, crop, device, group_seed(seed, g),
                                        chunk=-(-len(rows) // -(-len(rows) // chunk)), compiled=compiled,
                                        timings=timings, psf=psf, fused=fused, compiled_detector=compiled_detector,
                                        detector_bf16=detector_bf16)
            idx.append(rows)
            vals.append(torch.cat([v, host_logit[to_device(inv, host_logit.device)][:, None]], dim=1))
    if not idx:
        return pd.DataFrame(columns=["host_logit"])
    t0 = time.perf_counter()
    rows = np.concatenate(idx)  # a permutation of the plan's positions (the groups partition them)
    v = torch.cat(vals)[to_device(np.argsort(rows), vals[0].device)].cpu().numpy()  # put in plan order on the device
    res = result_frame(v[:, :12])
    res["host_logit"] = v[:, 12]
    if timings is not None:
        t["detectability"] = t.get("detectability", 0.0) + time.perf_counter() - t0
    return res
