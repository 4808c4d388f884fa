"""Benchmark (GPU): can the GPU pull whole cutout-store shards straight from the page cache?

An alternative to the scan's reader threads (``detector.score.score_store``: a CPU copy of each
stamp's window into pinned buffers, then a DMA): register a shard's memory-mapped file with
``cudaHostRegister`` (read-only + portable), DMA the whole shard to the device, unregister.  Measured
per shard (2,048 stamps of 101^2 x 3 float32, 251 MB): register / unregister time and DMA rate, and
the shard-wise pipeline (register + DMA + unregister) on 1-8 threads.  Reference in the same run:
plain (pageable) copies of the same memory maps, which CUDA stages through its own pinned buffers.
Run: PYTHONPATH=. python bench/bench_shard_dma.py [n_shards]   (bench/RESULTS.md "The scan's read path")
"""

from __future__ import annotations

import mmap
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from _scratch import scratch_dir

#: cudaHostRegisterPortable | cudaHostRegisterReadOnly (the maps are read-only)
REGISTER_FLAGS = 1 | 8


def main() -> None:
    import torch

    from lensaudit.cutouts.store import SHARD_ROWS, write_shard

    n_shards = int(sys.argv[1]) if len(sys.argv) > 1 else 16
    folder = scratch_dir("bench_dma_")
    rng = np.random.default_rng(0)
    maps = []
    for k in range(n_shards):
        path = folder / f"s-{k:04d}.npy"
        write_shard(path, rng.normal(0, 0.01, (SHARD_ROWS, 3, 101, 101)).astype(np.float32))
        f = open(path, "rb")
        a = np.frombuffer(mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ), dtype=np.uint8)
        int(a[::4096].sum())  # page cache warm, pages mapped
        maps.append(a)
    cudart = torch.cuda.cudart()
    nbytes = maps[0].nbytes
    print(f"device: {torch.cuda.get_device_name(0)} torch={torch.__version__}; {n_shards} shards of {SHARD_ROWS} "
          f"stamps, {nbytes / 1e6:.0f} MB each")
    dev = torch.empty(nbytes, dtype=torch.uint8, device="cuda")
    for _ in range(2):  # the second pass is reported
        a = maps[0]
        t0 = time.perf_counter()
        err = cudart.cudaHostRegister(a.ctypes.data, nbytes, REGISTER_FLAGS)
        t_reg = time.perf_counter() - t0
        if int(err) != 0:
            print(f"cudaHostRegister of a read-only file map failed: {err}")
            return
        host = torch.from_numpy(a)
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(5):
            dev.copy_(host, non_blocking=True)
        torch.cuda.synchronize()
        dma = 5 * nbytes / (time.perf_counter() - t0) / 1e9
        same = bool((dev.cpu().numpy() == a).all())
        t0 = time.perf_counter()
        cudart.cudaHostUnregister(a.ctypes.data)
        t_unreg = time.perf_counter() - t0
    print(f"  one shard: register {t_reg * 1e3:.1f} ms, DMA from the registered page cache {dma:.1f} GB/s "
          f"(is_pinned {host.is_pinned()}, bytes equal {same}), unregister {t_unreg * 1e3:.1f} ms")

    def pipeline(threads: int, register: bool) -> float:
        streams = [torch.cuda.Stream() for _ in range(threads)]
        devs = [torch.empty(nbytes, dtype=torch.uint8, device="cuda") for _ in range(threads)]

        def one(k: int) -> None:
            a, s = maps[k], k % threads
            if register:
                cudart.cudaHostRegister(a.ctypes.data, nbytes, REGISTER_FLAGS)
            with torch.cuda.stream(streams[s]):
                devs[s].copy_(torch.from_numpy(a), non_blocking=True)
            streams[s].synchronize()
            if register:
                cudart.cudaHostUnregister(a.ctypes.data)
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(one, range(n_shards)))
        return time.perf_counter() - t0
    for register, label in ((True, "register + DMA + unregister"), (False, "pageable copies (reference)")):
        for threads in (1, 2, 4, 8):
            dt = pipeline(threads, register)
            print(f"  {label}, whole shards, {threads} threads: {n_shards * nbytes / dt / 1e9:.1f} GB/s = "
                  f"{n_shards * SHARD_ROWS / dt:,.0f} stamps/s")


if __name__ == "__main__":
    import warnings

    warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
    main()
