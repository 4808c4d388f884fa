"""The selection function streamed over groups of hosts, for plans larger than memory.

The plan's rows are ordered by the (PSF, depth) bin of their host (a host belongs to one
bin, so each bin's injections need only that bin's hosts) and cut, at bin boundaries, into
groups of at least ``group_rows`` injections.  Per group: its hosts are read from the
cutout store into pinned host memory by a background thread while the device works on
the previous group (``host_load`` counts only the wait), copied to the device, scored
without an arc (``host_logit``), and ``inject_and_score`` runs on the group's injections
(arc noise seeded by (seed, group number)) in equal chunks of at most ``chunk`` rows.  On a GPU
the interpreter's switch interval is shortened meanwhile (``gil_switch``: the thread that
launches waits less for the GIL the reader thread holds).  Memory stays bounded by the largest group:
the group's stamps on the device, the plan and the per-injection results on the host.

Results are those of ``inject_and_score`` plus ``host_logit``, in plan order (index 0 .. N-1).  The same
seed, plan and ``group_rows`` give the same numbers; another ``group_rows`` redraws the
arc noise (the noise stream is per group).
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import torch

from lensaudit.device_upload import to_device
from lensaudit.gil_switch import short_switch_interval
from lensaudit.pinned_host import register_pinned_in_threads
from lensaudit.selection.adversarial import score_batches_on_device
from lensaudit.selection.grid import DEPTH
from lensaudit.selection.inject import inject_and_score_tensor, result_frame


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

    def load(rows: np.ndarray):
        uniq, inv = np.unique(all_pos[rows], return_inverse=True)
        buf = torch.empty((len(uniq), *size), dtype=torch.float32, pin_memory=cuda)
        reader.read(hosts.iloc[uniq].assign(cutout_ok=True), out=buf.numpy())
        return uniq, inv, buf

    if cuda:
        register_pinned_in_threads()  # the first groups' pinned blocks are created in less time
    groups = host_groups(plan, group_rows)
    idx, vals = [], []  # per group: plan rows, (rows, 13) float64 results on the device (one transfer at the end)
    with ThreadPoolExecutor(1) as pool, short_switch_interval(enabled=cuda):  # the launching thread waits less for the GIL
        nxt = pool.submit(load, groups[0]) if groups else None
        for g, rows in enumerate(groups):
            t0 = time.perf_counter()
            uniq, inv, buf = nxt.result()
            if g + 1 < len(groups):
                nxt = pool.submit(load, groups[g + 1])
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
            v = inject_and_score_tensor(model, stamps, inv, params.iloc[rows].reset_index(drop=True),
                                        hosts.iloc[uniq].reset_index(drop=True), crop, device, group_seed(seed, g),
                                        chunk=-(-len(rows) // -(-len(rows) // chunk)), compiled=compiled,
                                        timings=timings, psf=psf, fused=fused, compiled_detector=compiled_detector,
                                        detector_bf16=detector_bf16)
            idx.append(rows)
            vals.append(torch.cat([v, host_logit[to_device(inv, host_logit.device)][:, None]], dim=1))
    if not idx:
        return pd.DataFrame(columns=["host_logit"])
    t0 = time.perf_counter()
    placed = np.concatenate(idx)  # a permutation of the plan's positions (the groups partition them)
    v = torch.cat(vals)[to_device(np.argsort(placed), vals[0].device)].cpu().numpy()  # put in plan order on the device
    res = result_frame(v[:, :12])
    res["host_logit"] = v[:, 12]
    if timings is not None:
        t["detectability"] = t.get("detectability", 0.0) + time.perf_counter() - t0
    return res
