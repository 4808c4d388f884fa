"""Data-parallel scoring (``detector.score.score_store_ranks``): two processes of a gloo group on the
CPU give the single-process logits, every rank all of them; the row split covers the index once."""

import json

import numpy as np
import pandas as pd
import pytest

from lensaudit.detector.ranks import rank_rows
from lensaudit_tests._ranks import run_two_gloo_ranks

WORKER = r'''
import json, os, sys
import numpy as np, pandas as pd, torch, torch.distributed as dist
from lensaudit.cutouts.store import CutoutReader
from lensaudit.detector.models import build_model
from lensaudit.detector.score import score_store_ranks
store = sys.argv[1]
dist.init_process_group("gloo")
torch.manual_seed(0)
model = build_model("resnet18").eval()
idx = pd.read_parquet(os.path.join(store, "index.parquet"))
got = score_store_ranks(idx, CutoutReader(store), model, "cpu", crop=64, batch=4, workers=2)
with open(os.path.join(store, f"rank{dist.get_rank()}.json"), "w") as f:
    json.dump(got.tolist(), f)
dist.barrier()  # both ranks done before either tears gloo down (a rank torn down early aborted the other)
dist.destroy_process_group()
'''


def test_rank_rows_split_the_index_once_in_order():
    for n in (0, 1, 7, 10, 11):
        for world in (1, 2, 3, 4):
            rows = [list(range(n))[rank_rows(n, r, world)] for r in range(world)]
            assert sum(rows, []) == list(range(n))
            assert max(map(len, rows)) - min(map(len, rows)) <= 1
    with pytest.raises(ValueError, match="outside"):
        rank_rows(5, 2, 2)


def test_two_gloo_ranks_give_the_single_process_logits(tmp_path):
    import torch

    from lensaudit.cutouts.store import CutoutReader, write_shard
    from lensaudit.detector.models import build_model
    from lensaudit.detector.score import score_store, score_store_ranks

    rng = np.random.default_rng(3)
    write_shard(tmp_path / "shards/s-0.npy", rng.normal(0, 1, (11, 3, 101, 101)).astype(np.float32))
    idx = pd.DataFrame({"cutout_path": "shards/s-0.npy", "cutout_offset": [4, 5, 6, 0, 1, 2, 3, 9, 10], "cutout_ok": True})
    idx.to_parquet(tmp_path / "index.parquet")
    torch.manual_seed(0)
    model = build_model("resnet18").eval()
    want = score_store(idx, CutoutReader(tmp_path), model, "cpu", crop=64, batch=4, workers=2)
    run_two_gloo_ranks(WORKER, tmp_path)
    for rank in (0, 1):
        got = np.array(json.loads((tmp_path / f"rank{rank}.json").read_text()))
        assert got.shape == want.shape and np.allclose(got, want, atol=1e-5)
    with pytest.raises(RuntimeError, match="process group"):
        score_store_ranks(idx, CutoutReader(tmp_path), model, "cpu")
