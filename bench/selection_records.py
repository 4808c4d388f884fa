"""The selection function's numbers of one tree, saved, and two trees' numbers compared byte for byte.

``save PREFIX``: ``bench_selection.run`` of the tree on PYTHONPATH (a seeded ResNet-18, 4,096 synthetic
hosts, 385 x 60 injections, the fused renderer, CUDA) writes its per-injection records and its
completeness table to PREFIX_rec.parquet and PREFIX_table.parquet.  ``compare A B``: exit 1 unless both
are identical.  Run in one device command for this tree and the previous commit's (``git archive``),
e.g. ``bash bench/run_determinism_gpu.sh same_numbers``: a change meant to keep the numbers keeps them
on the GPU too, not only in the CPU tests.
"""

from __future__ import annotations

import sys

from _scratch import scratch_dir


def save(prefix: str) -> None:
    import numpy as np
    import torch

    sys.path.insert(0, "bench")
    import bench_selection as B
    from lensaudit.cutouts.store import CutoutReader
    from lensaudit.detector.models import build_model

    store = scratch_dir("sel_records_")
    hosts = B.synthetic_hosts(4096, store, np.random.default_rng(0))
    torch.manual_seed(0)
    model = build_model("resnet18").to("cuda").eval().to(memory_format=torch.channels_last)
    B.run(hosts, CutoutReader(store), model, "cuda", 60, 8192, 16384, False, False, True)
    B.LAST["rec"].to_parquet(f"{prefix}_rec.parquet")
    B.LAST["table"].to_parquet(f"{prefix}_table.parquet")
    print(f"saved {prefix}: {len(B.LAST['rec']):,} injections, {len(B.LAST['table'])} cells")


def compare(a: str, b: str) -> int:
    """1 unless both trees' records and tables are identical; where they differ, per column how many
    values and the largest relative difference."""
    import numpy as np
    import pandas as pd

    differ = 0
    for part in ("rec", "table"):
        x, y = pd.read_parquet(f"{a}_{part}.parquet"), pd.read_parquet(f"{b}_{part}.parquet")
        try:
            pd.testing.assert_frame_equal(x, y, check_exact=True)
            print(f"{part}: identical {x.shape}")
        except AssertionError as e:
            differ += 1
            print(f"{part}: DIFFER {str(e)[:400]}")
            if x.shape == y.shape and list(x.columns) == list(y.columns):
                for c in x.columns:
                    u, v = x[c].to_numpy(), y[c].to_numpy()
                    if u.dtype.kind == "f" and v.dtype.kind == "f":
                        ne = ~((u == v) | (np.isnan(u) & np.isnan(v)))
                        if ne.any():
                            print(f"  {c}: {int(ne.sum()):,} of {len(u):,} differ, largest difference "
                                  f"{np.nanmax(np.abs(u[ne] - v[ne])):.3g}")
                    elif not np.array_equal(u, v):
                        print(f"  {c}: {int((u != v).sum()):,} of {len(u):,} differ")
    return 1 if differ else 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "save":
        save(sys.argv[2])
    elif len(sys.argv) == 4 and sys.argv[1] == "compare":
        sys.exit(compare(sys.argv[2], sys.argv[3]))
    else:
        sys.exit("usage: selection_records.py save PREFIX | compare PREFIX_A PREFIX_B")
