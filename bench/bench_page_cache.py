"""Benchmark: what writing new files costs through the page cache, against O_DIRECT, on this machine.

The cutout step writes the demo's 3.8 GB of new shards; its system time ran from 9.5 to 60.5
core-seconds in four fresh homes of one session (bench/RESULTS.md, session 24). Each round,
alternating, in this process, files of ``--mib`` MiB under ``--dir`` written in 16 MiB chunks from
one reused buffer:

* buffered, fresh: a new file through the page cache, after ``--pause`` seconds with the previous
  round's files deleted (freed memory the host of a virtual machine may take back meanwhile);
* buffered, recycled: another new file right after deleting the first (the page cache pages just
  freed are reused at once);
* O_DIRECT: a new file written around the page cache (no page-cache pages; Linux only).

Prints wall and system seconds of each write (``resource.getrusage``) and microseconds of system
time per 4 KiB page, and the machine's free memory before and after.

Run: PYTHONPATH=. python bench/bench_page_cache.py [--mib 1024] [--rounds 2] [--pause 10] [--dir DIR]
"""

from __future__ import annotations

import argparse
import mmap
import os
import platform
import resource
import time
from pathlib import Path

from _scratch import scratch_dir
from bench_cutouts import _cpu_model

CHUNK = 16 * 2**20
PAGE = 4096


def _free_mib() -> str:
    info = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines())
    return f"MemFree {int(info['MemFree'].split()[0]) // 1024} MiB, Cached {int(info['Cached'].split()[0]) // 1024} MiB"


def _write(path: Path, mib: int, buf: mmap.mmap, direct: bool) -> tuple[float, float]:
    """(wall s, system s) of writing ``mib`` MiB to a new file ``path`` (fsync'd, so the data are on disk)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | (os.O_DIRECT if direct else 0)
    s0, t0 = resource.getrusage(resource.RUSAGE_SELF).ru_stime, time.perf_counter()
    fd = os.open(path, flags, 0o644)
    try:
        for _ in range(mib * 2**20 // CHUNK):
            os.write(fd, buf)
        os.fsync(fd)
    finally:
        os.close(fd)
    return time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF).ru_stime - s0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mib", type=int, default=1024)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--pause", type=float, default=10.0)
    ap.add_argument("--dir", default=None, help="directory on the filesystem of the home (default: a scratch dir)")
    ns = ap.parse_args()
    if not hasattr(os, "O_DIRECT"):
        raise SystemExit("O_DIRECT is not available on this platform")
    root = Path(ns.dir) if ns.dir else scratch_dir("bench_page_cache_")
    root.mkdir(parents=True, exist_ok=True)
    buf = mmap.mmap(-1, CHUNK)  # page-aligned, as O_DIRECT needs
    buf.write(os.urandom(2**20) * (CHUNK // 2**20))
    pages = ns.mib * 2**20 // PAGE
    print(f"machine: {_cpu_model()} ({platform.machine()}), {os.cpu_count()} cores, kernel {platform.release()}; "
          f"{ns.mib} MiB per file ({pages:,} pages) under {root}")
    print(f"before: {_free_mib()}")
    rows = []
    for r in range(ns.rounds):
        time.sleep(ns.pause)
        a, b, c = root / f"fresh{r}", root / f"recycled{r}", root / f"direct{r}"
        order = [("buffered, fresh", a, False), ("buffered, recycled", b, False), ("O_DIRECT", c, True)]
        try:
            for name, path, direct in order:
                if name == "buffered, recycled":
                    a.unlink()  # its page-cache pages are freed right before the next file takes pages
                wall, sys_s = _write(path, ns.mib, buf, direct)
                rows.append((r, name, wall, sys_s))
                print(f"round {r}: {name:20s} {wall:7.2f} s wall {sys_s:7.2f} s system  "
                      f"{sys_s / pages * 1e6:6.1f} us system per page", flush=True)
        finally:  # a --dir of the user's keeps nothing of this benchmark
            for path in (a, b, c):
                path.unlink(missing_ok=True)
    print(f"after: {_free_mib()}")
    for name in ("buffered, fresh", "buffered, recycled", "O_DIRECT"):
        s = sorted(x[3] for x in rows if x[1] == name)
        print(f"{name:20s} system per page: {min(s) / pages * 1e6:.1f}-{max(s) / pages * 1e6:.1f} us")


if __name__ == "__main__":
    main()
