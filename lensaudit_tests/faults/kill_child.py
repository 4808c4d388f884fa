"""Child process of ``test_kill_resume.py``: one cutouts partition job, optionally stopped
inside a write so that the parent can SIGKILL it there.

    python kill_child.py HOME [shard:K | parquet:K]

Runs the real ``spark_jobs.cutouts.cutouts_one_partition`` (shards named by content hash,
then the index written with ``store.write_parquet_atomic``) on a deterministic in-memory
stamp source (40 galaxies, every 7th a source failure, 8 stamps a shard).  With
``shard:K`` the K-th shard write, with ``parquet:K`` the K-th Parquet write, puts half of
its bytes into its temporary file, fsyncs, prints ``IN_WRITE <temporary path>`` and waits
for the kill: the kill lands inside the write, never by a race against a sleep.
"""

from __future__ import annotations

import io
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

import lensaudit.spark_jobs.cutouts as job
from lensaudit_tests.faults.home import _stamp

SWEEP = "sweep-100p000-110p005.fits"
SHARD_ROWS = 8


def manifest() -> pd.DataFrame:
    n = 40
    return pd.DataFrame({"galaxy_id": [f"b{i // 10:03d}_{i}" for i in range(n)], "brickname": [f"b{i // 10:03d}" for i in range(n)],
                         "ra": 100.0 + np.arange(n) * 0.01, "dec": 2.0, "label": (np.arange(n) % 5 == 0).astype(np.int8),
                         "split": "train", "sweep": SWEEP})


def source(spec, sweep):
    def get(r):
        if int(r.galaxy_id.split("_")[1]) % 7 == 3:
            raise job._SourceFailure("missing_band_g")
        return _stamp(r.galaxy_id)
    return get


def _park(path) -> None:
    print(f"IN_WRITE {path}", flush=True)
    while True:  # wait for SIGKILL
        time.sleep(3600)


def hook(kind: str, k: int) -> None:
    calls = {"n": 0}
    if kind == "shard":  # the bytes written inside write_shard's temporary file (lensaudit.cutouts.store)
        from lensaudit.cutouts import store

        real_write = store._write_npy

        def write_npy(f, shape, rows):
            calls["n"] += 1
            if calls["n"] != k:
                return real_write(f, shape, rows)
            buf = io.BytesIO()
            real_write(buf, shape, rows)
            data = buf.getvalue()
            f.write(data[: len(data) // 2])
            f.flush()
            os.fsync(f.fileno())
            _park(f.name)
        store._write_npy = write_npy
    elif kind == "parquet":
        real_write = pq.write_table

        def write_table(table, where, *a, **kw):
            calls["n"] += 1
            real_write(table, where, *a, **kw)
            if calls["n"] == k:
                size = os.path.getsize(where)
                with open(where, "r+b") as f:
                    f.truncate(size // 2)
                    os.fsync(f.fileno())
                _park(where)
        pq.write_table = write_table
    else:
        raise SystemExit(f"unknown hook {kind!r}")


def main(argv: list[str]) -> int:
    home = Path(argv[0])
    if len(argv) > 1 and argv[1]:
        kind, k = argv[1].split(":")
        hook(kind, int(k))
    job._source = source
    out = home / "assets" / "cutouts" / f"{SWEEP.replace('.fits', '')}.parquet"
    info = job.cutouts_one_partition(SWEEP, manifest(), {"kind": "test"}, str(home / "cutout_store"), str(out),
                                     shard_rows=SHARD_ROWS)
    print(f"DONE {info['rows']} {info['ok']} {len(info['shards'])}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
