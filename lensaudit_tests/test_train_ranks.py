"""Data-parallel training (``detector.train.train(data_parallel=True)``): two processes of a gloo
group on the CPU.  Every rank returns the same weights and history; one step's all-reduced gradient
is the whole batch's (checked against the same step done by hand in one process, on ranks' shares
of unequal size and unequal weights, where averaging the shares' own weighted means would differ);
an epoch's last batch of fewer rows than ranks is skipped on every rank alike; without a process
group the call fails clearly."""

import json

import numpy as np
import pytest

from lensaudit_tests._ranks import run_two_gloo_ranks

WORKER = r'''
import json, os, sys
import numpy as np, torch, torch.distributed as dist
from lensaudit.detector.train import TrainConfig, train
d = sys.argv[1]
z = np.load(os.path.join(d, "data.npz"))
dist.init_process_group("gloo")
torch.set_num_threads(1)
rank = dist.get_rank()
for name, cfg in (("step", TrainConfig(epochs=1, batch_size=7, max_steps_per_epoch=1, seed=7)),
                  ("run", TrainConfig(epochs=2, batch_size=7, patience=5, seed=7))):
    state, history, info = train(cfg, z["x"], z["y"], z["w"], z["xv"], z["yv"], "cpu", log=lambda m: None,
                                 data_parallel=True)
    torch.save(state, os.path.join(d, f"{name}{rank}.pt"))
    with open(os.path.join(d, f"{name}{rank}.json"), "w") as f:
        json.dump({"history": history, "info": info}, f)
dist.barrier()  # both ranks done before either tears gloo down (a rank torn down early aborted the other)
dist.destroy_process_group()
'''


def _data(tmp_path):
    rng = np.random.default_rng(11)
    n, nv = 36, 10  # batches of 7: 7, 7, 7, 7, 7, 1 -> shares of 4 and 3 rows; the last one skipped
    y = (np.arange(n) % 4 == 0).astype(np.int64)
    w = np.where(y == 1, rng.choice([0.5, 1.0], n), 1.0)
    x = (rng.normal(0, 1, (n, 3, 64, 64)) + 0.5 * y[:, None, None, None]).astype(np.float32)
    yv = (np.arange(nv) % 3 == 0).astype(np.int64)
    xv = (rng.normal(0, 1, (nv, 3, 64, 64)) + 0.5 * yv[:, None, None, None]).astype(np.float32)
    np.savez(tmp_path / "data.npz", x=x, y=y, w=w, xv=xv, yv=yv)
    return x, y, w


def _one_step_by_hand(x, y, w, shares_weighted_by_batch: bool):
    """The first step of ``TrainConfig(batch_size=7, seed=7)`` on two ranks, in one process: the same
    draws, each rank's share forward (its own batch-norm statistics, as gloo ranks), gradients summed."""
    import torch

    from lensaudit.detector.models import build_model
    from lensaudit.detector.ranks import rank_rows
    from lensaudit.detector.train import dihedral, seed_everything, weighted_bce

    seed_everything(7)
    gen = torch.Generator().manual_seed(7)
    model = build_model("resnet18")
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4, weight_decay=1e-4)
    idx = torch.randperm(len(x), generator=gen)[:7].sort().values
    code = torch.randint(0, 8, (7,), generator=gen)
    xt, yt, wt = torch.as_tensor(x), torch.as_tensor(y, dtype=torch.float32), torch.as_tensor(w, dtype=torch.float32)
    model.train()
    opt.zero_grad()
    total = wt[idx].sum()
    for r in range(2):
        share = rank_rows(7, r, 2)
        i = idx[share]
        logits = model(dihedral(xt[i], code[share])).squeeze(1)
        if shares_weighted_by_batch:
            loss = weighted_bce(logits, yt[i], wt[i], total)
        else:  # the planted fault: the mean of the shares' own weighted means
            loss = weighted_bce(logits, yt[i], wt[i]) / 2
        loss.backward()
    opt.step()
    return {k: v.detach() for k, v in model.named_parameters()}


def test_two_gloo_ranks_train_as_one_batch(tmp_path):
    import torch

    x, y, w = _data(tmp_path)
    run_two_gloo_ranks(WORKER, tmp_path)
    for name in ("step", "run"):
        s0, s1 = (torch.load(tmp_path / f"{name}{r}.pt", weights_only=True) for r in (0, 1))
        assert s0.keys() == s1.keys() and all(torch.equal(s0[k], s1[k]) for k in s0)  # the same state on each rank
        r0, r1 = (json.loads((tmp_path / f"{name}{r}.json").read_text()) for r in (0, 1))
        assert [h["val_auc"] for h in r0["history"]] == [h["val_auc"] for h in r1["history"]]
        assert r0["info"]["data_parallel_ranks"] == 2 and r0["info"]["sync_batchnorm"] is False
    run = json.loads((tmp_path / "run0.json").read_text())
    assert len(run["history"]) == 2 and all(np.isfinite(h["train_loss"]) for h in run["history"])
    assert run["info"]["train_images_per_s"] > 0

    step = torch.load(tmp_path / "step0.pt", weights_only=True)
    want = _one_step_by_hand(x, y, w, shares_weighted_by_batch=True)
    wrong = _one_step_by_hand(x, y, w, shares_weighted_by_batch=False)
    err = max(float((step[k] - v).abs().max()) for k, v in want.items())
    err_wrong = max(float((step[k] - v).abs().max()) for k, v in wrong.items())
    # AdamW's first step moves each weight by ~lr = 3e-4 along its gradient's sign, so a float-order
    # difference shows only where a gradient is ~0 (measured 6.6e-7); the fault moves weights by ~lr
    assert err < 1e-5, err
    assert err_wrong > 1e-4, (err, err_wrong)  # the check tells the right gradient from the fault


def test_data_parallel_training_needs_a_process_group():
    from lensaudit.detector.train import TrainConfig, train

    x = np.zeros((4, 3, 64, 64), np.float32)
    with pytest.raises(RuntimeError, match="process group"):
        train(TrainConfig(epochs=1, batch_size=2), x, [0, 1, 0, 1], [1.0] * 4, x, [0, 1, 0, 1], data_parallel=True)


def test_a_world_of_one_trains_as_one_process(tmp_path):
    """In a one-process gloo group, data-parallel training gives the plain training's weights; the
    all-gather checks each rank's share length."""
    import torch
    import torch.distributed as dist

    from lensaudit.detector.ranks import all_gather_rows
    from lensaudit.detector.train import TrainConfig, train

    x, y, w = _data(tmp_path)
    z = np.load(tmp_path / "data.npz")
    cfg = TrainConfig(epochs=1, batch_size=7, max_steps_per_epoch=2, seed=3)
    plain, _, _ = train(cfg, x, y, w, z["xv"], z["yv"], log=lambda m: None)
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'group'}", rank=0, world_size=1)
    try:
        ranked, _, info = train(cfg, x, y, w, z["xv"], z["yv"], log=lambda m: None, data_parallel=True)
        assert all_gather_rows(np.arange(3.0), 3, "cpu").tolist() == [0.0, 1.0, 2.0]
        with pytest.raises(ValueError, match="share"):
            all_gather_rows(np.arange(2.0), 3, "cpu")
    finally:
        dist.destroy_process_group()
    assert info["data_parallel_ranks"] == 1
    assert all(torch.equal(plain[k], ranked[k]) for k in plain)
