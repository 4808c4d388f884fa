"""The streamed selection function (``selection.stream``) and the exact fast medians/footprints
that the GPU path takes; all on the CPU, in seconds."""

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from lensaudit.cutouts.store import CutoutReader, write_shard
from lensaudit.detector.preprocess import median_last_finite, nanmedian_last
from lensaudit.selection.grid import DEPTH, PSF, host_bins
from lensaudit.survey.photometry import mag5sigma_to_depth_ivar


def _store(tmp_path, n=24):
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:101, :101] - 50
    galaxy = (0.5 * np.exp(-np.hypot(xx, yy) / 4.0)).astype(np.float32)
    stack = rng.normal(0, 0.01, (n, 3, 101, 101)).astype(np.float32) + galaxy
    write_shard(tmp_path / "shards" / "h-0000.npy", stack)
    psf = np.resize([PSF.centres[0], PSF.centres[3], PSF.centres[6]], n)  # three PSF bins
    depth = mag5sigma_to_depth_ivar(np.full(n, DEPTH.centres[2]))
    hosts = pd.DataFrame({"galaxy_id": [f"h{i:03d}" for i in range(n)], "cutout_path": "shards/h-0000.npy",
                          "cutout_offset": np.arange(n), "cutout_ok": True, "psfsize_g": psf * 1.1, "psfsize_r": psf,
                          "psfsize_z": psf * 0.9, "psfdepth_g": depth * 1.5, "psfdepth_r": depth,
                          "psfdepth_z": depth * 0.2})
    return pd.concat([hosts, host_bins(hosts)], axis=1), CutoutReader(tmp_path)


class _Tiny(torch.nn.Module):
    """A fixed linear scorer (mean of the normalised centre, band-weighted): any frozen model does."""

    def forward(self, x):
        return (x * torch.tensor([0.2, 0.5, 0.3])[None, :, None, None]).mean(dim=(1, 2, 3))[:, None]


def _plan(hosts, per_cell=1):
    from lensaudit.selection.inject import draw_parameters, plan_injections

    plan = plan_injections(hosts, per_cell, seed=3)
    plan = plan[plan["theta_e_bin"] % 5 == 0].reset_index(drop=True)  # 3 theta_E bins x 3 PSF bins, fast
    return plan, draw_parameters(plan, hosts, seed=3).reset_index(drop=True)


def test_host_groups_cover_every_row_once_and_keep_bins_whole(tmp_path):
    from lensaudit.selection.stream import host_groups

    hosts, _ = _store(tmp_path)
    plan, _ = _plan(hosts, per_cell=4)
    for rows in (1, 10, 10_000):
        groups = host_groups(plan, rows)
        allrows = np.concatenate(groups)
        assert np.array_equal(np.sort(allrows), np.arange(len(plan)))
        bins = [set(zip(plan.psf_bin.iloc[g], plan.depth_bin.iloc[g])) for g in groups]
        assert sum(len(b) for b in bins) == len(set().union(*bins))  # no bin split across groups
        assert all(len(g) >= rows for g in groups[:-1])
    with pytest.raises(ValueError, match="group_rows"):
        host_groups(plan, 0)


def test_stream_is_deterministic_and_scores_each_host(tmp_path):
    from lensaudit.selection.inject import score_stamps
    from lensaudit.selection.stream import stream_inject_and_score

    hosts, reader = _store(tmp_path)
    plan, params = _plan(hosts)
    model = _Tiny().eval()
    a = stream_inject_and_score(model, reader, hosts, plan, params, 64, "cpu", 5, group_rows=4, chunk=3)
    b = stream_inject_and_score(model, reader, hosts, plan, params, 64, "cpu", 5, group_rows=4, chunk=3)
    pd.testing.assert_frame_equal(a, b)
    assert np.array_equal(a.index.to_numpy(), np.arange(len(plan))) and a.notna().all().all()
    pos = pd.Index(hosts.galaxy_id).get_indexer(plan.galaxy_id)
    own = score_stamps(model, torch.from_numpy(reader.read(hosts.iloc[pos])), 64, "cpu").numpy()
    assert np.allclose(a["host_logit"], own, rtol=0, atol=1e-6)
    # the arcs do not depend on the grouping (only the arc noise stream does)
    c = stream_inject_and_score(model, reader, hosts, plan, params, 64, "cpu", 5, group_rows=10_000, chunk=64)
    assert np.allclose(a["magnification"], c["magnification"]) and np.allclose(a["host_logit"], c["host_logit"])
    # (the PSF kernel's truncation radius follows the widest PSF of each render call: ~1e-4)
    assert np.allclose(a["arc_snr_matched"], c["arc_snr_matched"], rtol=1e-3)


def test_stream_rejects_unknown_hosts_and_misaligned_params(tmp_path):
    from lensaudit.selection.stream import stream_inject_and_score

    hosts, reader = _store(tmp_path)
    plan, params = _plan(hosts)
    with pytest.raises(ValueError, match="differ in length"):
        stream_inject_and_score(_Tiny(), reader, hosts, plan, params.iloc[:-1], 64, "cpu", 5)
    bad = plan.assign(galaxy_id=plan.galaxy_id.where(plan.index > 0, "nobody"))
    with pytest.raises(ValueError, match="not in the host table"):
        stream_inject_and_score(_Tiny(), reader, hosts, bad, params, 64, "cpu", 5)


def test_bf16_scoring_off_a_gpu_is_a_clear_error(tmp_path):
    from lensaudit.selection.inject import score_stamps
    from lensaudit.selection.stream import stream_inject_and_score

    hosts, reader = _store(tmp_path)
    plan, params = _plan(hosts)
    with pytest.raises(ValueError, match="bf16 scoring needs a CUDA device"):
        score_stamps(_Tiny(), torch.zeros((2, 3, 101, 101)), 64, "cpu", bf16=True)
    with pytest.raises(ValueError, match="bf16 scoring needs a CUDA device"):
        stream_inject_and_score(_Tiny(), reader, hosts, plan, params, 64, "cpu", 5, detector_bf16=True)


def test_trace_gaps_charge_the_idle_device_to_the_code_that_ended_it(tmp_path):
    """bench/_trace_gaps.py on a hand-made chrome trace: one 40 us gap, ended by a kernel that
    ``f`` (called by ``g``) launched, and one stream synchronisation inside ``g``."""
    import json

    from bench._trace_gaps import report

    f, g = "lensaudit/x.py(1): f", "lensaudit/y.py(2): g"
    ev = [{"cat": "kernel", "name": "k1", "ts": 0.0, "dur": 10.0, "args": {"correlation": 1}},
          {"cat": "kernel", "name": "k2", "ts": 50.0, "dur": 10.0, "args": {"correlation": 2}},
          {"cat": "kernel", "name": "k3", "ts": 62.0, "dur": 1.0, "args": {"correlation": 3}},  # a 2 us gap: ignored
          {"cat": "cuda_runtime", "name": "cudaLaunchKernel", "ts": 45.0, "dur": 1.0, "tid": 1,
           "args": {"correlation": 2}},
          {"cat": "cuda_runtime", "name": "cudaStreamSynchronize", "ts": 20.0, "dur": 5.0, "tid": 1, "args": {}},
          {"cat": "cuda_runtime", "name": "cudaMalloc", "ts": 12.0, "dur": 30.0, "tid": 1, "args": {}},
          {"cat": "python_function", "name": g, "ts": 0.0, "dur": 100.0, "tid": 1},
          {"cat": "python_function", "name": f, "ts": 40.0, "dur": 8.0, "tid": 1},
          {"cat": "python_function", "name": "torch/x.py(3): h", "ts": 44.0, "dur": 2.0, "tid": 1}]
    path = tmp_path / "trace.json"
    path.write_text(json.dumps({"traceEvents": ev}))
    out = report(str(path))
    assert "busy 0.000 s" in out and "1 gaps >= 10 us" in out
    lines = out.splitlines()
    launch = lines.index(next(ln for ln in lines if ln.startswith("-- idle charged to the frame launching")))
    assert f"{f}  <  {g}" in lines[launch + 1] and "0.000" in lines[launch + 1] and " 1  " in lines[launch + 1]
    sync = lines.index(next(ln for ln in lines if ln.startswith("-- host waits")))
    assert lines[sync + 1].strip().endswith(g)
    work = lines.index(next(ln for ln in lines if ln.startswith("-- device time")))
    charged = {" ".join(ln.split()[1:]) for ln in lines[work + 1:work + 3]}  # count and frame of each line
    assert charged == {f"1 {f} < {g}", "2 (launch not found)"}  # k2 launched by f; k1 and k3 unmatched
    inside = lines.index(next(ln for ln in lines if ln.startswith("-- idle time inside")))
    assert lines[inside + 1].split() == ["0.000", "1", "cudaMalloc"]  # 30 of the gap's 40 us
    assert [ln.split()[2] for ln in lines[inside + 2:inside + 4]] == ["cudaStreamSynchronize", "cudaLaunchKernel"]


@pytest.mark.parametrize("n", [1, 2, 7, 8, 64, 1960])
def test_selection_median_equals_the_sorting_median(n):
    rng = np.random.default_rng(n)
    for v in (rng.normal(size=(20, 3, n)).astype(np.float32), np.round(rng.normal(size=(20, 3, n))).astype(np.float32)):
        a = torch.from_numpy(v)  # second case: many ties
        assert torch.equal(median_last_finite(a), nanmedian_last(a))
        assert np.array_equal(median_last_finite(a, torch.float64).numpy(), np.median(v.astype(np.float64), axis=-1))


def test_renderer_footprint_equals_max_pool():
    from lensaudit.injection.render import _box3

    a = torch.randn(3, 101, 101)
    lo, hi = _box3(a)
    assert torch.equal(hi, F.max_pool2d(a[:, None], 3, stride=1, padding=1)[:, 0])
    assert torch.equal(lo, -F.max_pool2d(-a[:, None], 3, stride=1, padding=1)[:, 0])


def test_cluster_bootstrap_does_not_depend_on_the_thread_count(monkeypatch):
    import lensaudit.selection.completeness as C

    rng = np.random.default_rng(0)
    cell = np.repeat(np.arange(12), 60)
    host = rng.integers(0, 15, cell.size)
    det = rng.random(cell.size) < 0.4
    monkeypatch.setattr(C, "BOOTSTRAP_THREADS", 1)
    one = C.cluster_bootstrap(cell, host, det, 200, 7)
    monkeypatch.setattr(C, "BOOTSTRAP_THREADS", 4)
    pd.testing.assert_frame_equal(one, C.cluster_bootstrap(cell, host, det, 200, 7))
    assert one.cluster_ok.all() and (one.cluster_lo95 <= one.cluster_hi95).all()


def test_packed_resampled_ratio_equals_the_two_float_sums():
    from lensaudit.selection.completeness import resampled_ratio

    rng = np.random.default_rng(1)
    n_h = rng.integers(1, 40, 57).astype(float)
    k_h = np.floor(n_h * rng.random(57))
    idx = rng.integers(0, 57, (300, 57))
    fast = resampled_ratio(k_h, n_h, idx)
    assert np.array_equal(fast, resampled_ratio(k_h, n_h, idx, packed=False))
    assert np.array_equal(fast, np.take(k_h, idx).sum(axis=1) / np.take(n_h, idx).sum(axis=1))
    big = resampled_ratio(k_h, n_h * 2**26, idx)  # sums past 2^31: the two float sums
    assert np.array_equal(big, np.take(k_h, idx).sum(axis=1) / np.take(n_h * 2**26, idx).sum(axis=1))


def test_stream_equals_inject_and_score_per_group(tmp_path):
    """The stream keeps results on the device and moves them once: the same numbers as the
    public per-group calls (``inject_and_score`` + ``adversarial.score_batches``)."""
    from lensaudit.selection.adversarial import score_batches
    from lensaudit.selection.inject import inject_and_score
    from lensaudit.selection.stream import group_seed, host_groups, stream_inject_and_score

    hosts, reader = _store(tmp_path)
    plan, params = _plan(hosts, per_cell=2)
    model = _Tiny().eval()
    got = stream_inject_and_score(model, reader, hosts, plan, params, 64, "cpu", 5, group_rows=5, chunk=4)
    pos_all = pd.Index(hosts.galaxy_id).get_indexer(plan.galaxy_id)
    parts = []
    for g, rows in enumerate(host_groups(plan, 5)):
        uniq, inv = np.unique(pos_all[rows], return_inverse=True)
        stamps = torch.from_numpy(reader.read(hosts.iloc[uniq]))
        res = inject_and_score(model, stamps, inv, params.iloc[rows].reset_index(drop=True),
                               hosts.iloc[uniq].reset_index(drop=True), 64, "cpu", group_seed(5, g),
                               chunk=-(-len(rows) // -(-len(rows) // 4)))
        res["host_logit"] = score_batches(model, stamps, 64, "cpu", chunk=4)[inv]
        res.index = rows
        parts.append(res)
    pd.testing.assert_frame_equal(got, pd.concat(parts).sort_index())


def test_cluster_bootstrap_on_a_torch_device_gives_the_numpy_numbers(monkeypatch):
    """The device bootstrap (numpy's raw PCG64 outputs mapped by Lemire's rule in torch, here on
    the CPU) equals the numpy bootstrap exactly; a cell whose draws would need a redraw (planted:
    all-zero raw outputs) falls back to numpy's own ``integers``, still the same numbers."""
    import lensaudit.selection.bootstrap_draws as bootstrap_draws
    import lensaudit.selection.completeness as C

    rng = np.random.default_rng(2)
    cell = np.repeat(np.arange(9), 70)
    host = rng.integers(0, 25, cell.size) + 100 * (cell % 3)  # cells of different host counts
    host[cell == 8] = rng.integers(0, 3, (cell == 8).sum())  # too few hosts: no bootstrap
    det = rng.random(cell.size) < 0.3
    ref = C.cluster_bootstrap(cell, host, det, 300, 11)
    assert ref.cluster_ok.sum() == 8
    pd.testing.assert_frame_equal(C.cluster_bootstrap(cell, host, det, 300, 11, device="cpu"), ref)
    monkeypatch.setattr(bootstrap_draws, "raw_uint32", lambda seed, c, count: np.zeros(count, np.uint32))
    pd.testing.assert_frame_equal(C.cluster_bootstrap(cell, host, det, 300, 11, device="cpu"), ref)


def test_bootstrap_draws_made_ahead_give_the_same_table():
    """The raw draws made from the plan before any score exists (in a background thread; an
    upper bound of each cell's hosts) give the table of drawing at the end and of numpy, for
    every threshold (host false positives remove hosts: shorter prefixes of the same streams);
    a cell the draws do not cover, or draws for another seed, are drawn anew."""
    from lensaudit.selection.bootstrap_draws import BootstrapDraws, raw_uint32
    from lensaudit.selection.completeness import completeness_table

    rng = np.random.default_rng(4)
    cell = np.repeat(np.arange(10), 80)
    host = np.array([f"h{i:03d}" for i in rng.integers(0, 30, cell.size) + 40 * (cell % 4)], dtype=object)
    host_logit = pd.Series(rng.normal(-1, 1, 200), index=[f"h{i:03d}" for i in range(200)])
    rec = pd.DataFrame({"cell": cell, "galaxy_id": host, "logit": rng.normal(0, 1, cell.size),
                        "host_logit": host_logit.loc[host].to_numpy(), "observable": rng.random(cell.size) < 0.5})
    ahead = BootstrapDraws.for_injections(rec["cell"], rec["galaxy_id"], 3, 250, "cpu", background=True)
    partial = BootstrapDraws.for_injections(rec["cell"][rec["cell"] < 5], rec["galaxy_id"][rec["cell"] < 5], 3, 250, "cpu")
    other_seed = BootstrapDraws.for_injections(rec["cell"], rec["galaxy_id"], 4, 250, "cpu")
    for threshold in (0.2, 0.6, 9.0):  # 0.2 and 0.6: hosts set aside as false positives in most cells
        ref = completeness_table(rec, threshold, "t", n_boot=250, seed=3)  # numpy on the host
        assert ref["cluster_ok"].sum() == 10
        for draws in (None, ahead, partial, other_seed):
            got = completeness_table(rec, threshold, "t", n_boot=250, seed=3, device="cpu", draws=draws)
            pd.testing.assert_frame_equal(got, ref)
    assert not other_seed.matches(3, 250, "cpu") and ahead.matches(3, 250, "cpu")
    # the prefix property the draws rely on, and rows() reading each cell's own stream
    assert np.array_equal(raw_uint32(3, 7, 1001), raw_uint32(3, 7, 5000)[:1001])
    rows = ahead.rows([7, 2], 1001).numpy().view(np.uint32)
    assert np.array_equal(rows[0], raw_uint32(3, 7, 1001)) and np.array_equal(rows[1], raw_uint32(3, 2, 1001))


def test_per_cell_host_equals_the_pandas_groupby():
    from lensaudit.selection.completeness import per_cell_host

    rng = np.random.default_rng(5)
    cell = rng.integers(0, 30, 2000)
    det = rng.random(2000) < 0.3
    for host in (np.array([f"h{i:05d}" for i in rng.integers(0, 400, 2000)], dtype=object), rng.integers(0, 400, 2000)):
        per = pd.DataFrame({"cell": cell, "host": host, "det": det.astype(np.int64)}).groupby(
            ["cell", "host"], sort=True)["det"].agg(["sum", "size"]).reset_index()
        c, k, n = per_cell_host(cell, host, det)
        assert np.array_equal(c, per["cell"]) and np.array_equal(k, per["sum"].to_numpy(float))
        assert np.array_equal(n, per["size"].to_numpy(float))
    c, k, n = per_cell_host(np.zeros(0, int), np.zeros(0, object), np.zeros(0, bool))
    assert len(c) == len(k) == len(n) == 0


def test_sorted_ring_medians_equal_the_per_ring_and_nan_medians():
    """The GPU path of ``annulus_snr``'s ring medians (one sort of rings padded with -inf / +inf)
    against ``nanmedian_last`` of the NaN-padded rings and, where all is finite, against one
    ``median_last_finite`` per ring: NaN, +-inf, ties, empty rings and even/odd counts."""
    from lensaudit.injection.annulus import _geometry, _ring_index, ring_medians_sorted

    rng = np.random.default_rng(4)
    x = torch.from_numpy(rng.normal(size=(24, 3, 101 * 101)).astype(np.float32))
    x[0, 0, :5000] = float("nan")
    x[1, 1, ::7] = float("inf")
    x[2, 2, ::3] = -float("inf")
    x[3] = float("nan")  # every ring empty: NaN
    x[4] = torch.round(x[4])  # ties
    pad = torch.as_tensor(_geometry(101)[0])
    nanpad = torch.cat([x.double(), torch.full((24, 3, 1), float("nan"), dtype=torch.float64)], dim=2)
    want = nanmedian_last(nanpad[:, :, pad])
    got = ring_medians_sorted(x)
    assert got.dtype == torch.float64 and torch.equal(torch.nan_to_num(got, nan=-9.0), torch.nan_to_num(want, nan=-9.0))
    finite = x[5:]
    per_ring = torch.stack([median_last_finite(finite[:, :, r], torch.float64) for r in _ring_index(101, "cpu")], dim=-1)
    assert torch.equal(ring_medians_sorted(finite), per_ring)


def test_annulus_finite_flag_sees_only_the_annulus():
    """``AnnulusFinite`` (the flag ``inject_and_score_tensor`` makes before queueing the scoring,
    which picks ``annulus_snr``'s ring-median path on a GPU) is False for a non-finite annulus
    pixel and True for non-finite pixels outside the annulus."""
    from lensaudit.injection.annulus import AnnulusFinite

    rng = np.random.default_rng(6)
    x = torch.from_numpy(rng.normal(size=(4, 3, 101, 101)).astype(np.float32))
    assert bool(AnnulusFinite(x))
    y = x.clone()
    y[1, 2, 50, 50 + 10] = float("nan")  # r = 10 px: inside the 4-16 px annulus
    assert not bool(AnnulusFinite(y))
    z = x.clone()
    z[2, 0, 0, 0] = float("inf")  # the corner: outside it
    z[3, 1, 50, 50] = float("nan")  # the centre: inside r < 4 px
    assert bool(AnnulusFinite(z))


def test_draw_parameters_takes_each_host_psf_and_names_an_unknown_host(tmp_path):
    """Each injection's PSF FWHM is its own host's (found by position), and a plan naming a host
    that the host table lacks is a clear error."""
    from lensaudit.selection.inject import draw_parameters

    hosts, _ = _store(tmp_path)
    plan, params = _plan(hosts, per_cell=2)
    own = hosts.set_index("galaxy_id").loc[plan["galaxy_id"]]
    for b in "grz":
        assert np.array_equal(params[f"psf_fwhm_{b}_arcsec"].to_numpy(), own[f"psfsize_{b}"].to_numpy(float))
    with pytest.raises(ValueError, match="not in the host table"):
        draw_parameters(plan.assign(galaxy_id=plan.galaxy_id.where(plan.index > 0, "nobody")), hosts, seed=3)


def test_short_switch_interval_is_put_back(tmp_path):
    """``gil_switch``: at most the given interval inside, the value found afterwards (also after an
    exception); disabled (the CPU stream) leaves it alone; the stream restores it."""
    import sys

    from lensaudit.gil_switch import short_switch_interval
    from lensaudit.selection.stream import stream_inject_and_score

    before = sys.getswitchinterval()
    with short_switch_interval(0.0002):
        assert sys.getswitchinterval() == pytest.approx(0.0002, abs=2e-6)  # kept in whole microseconds
        with short_switch_interval(0.01):  # never lengthened
            assert sys.getswitchinterval() == pytest.approx(0.0002, abs=2e-6)  # kept in whole microseconds
    assert sys.getswitchinterval() == before
    with pytest.raises(RuntimeError), short_switch_interval(0.0002):
        raise RuntimeError
    assert sys.getswitchinterval() == before
    with short_switch_interval(0.0002, enabled=False):
        assert sys.getswitchinterval() == before
    hosts, reader = _store(tmp_path, n=6)
    plan, params = _plan(hosts)
    stream_inject_and_score(_Tiny(), reader, hosts, plan.iloc[:3], params.iloc[:3], 64, "cpu", 5)
    assert sys.getswitchinterval() == before


def test_pinned_blocks_registered_in_threads_unless_the_user_configured_the_allocator(monkeypatch):
    """``pinned_host``: with CUDA, PyTorch's allocator is told to page-lock new pinned blocks from
    PINNED_REGISTER_THREADS threads (cudaHostRegister); a user's own PYTORCH_CUDA_ALLOC_CONF or
    PYTORCH_ALLOC_CONF stands (nothing set), and without CUDA nothing is set.  The time it saves
    is measured on a GPU (bench_selection.py; bench/RESULTS.md, session 20)."""
    import torch

    from lensaudit import pinned_host

    calls = []
    monkeypatch.setattr(pinned_host, "_applied", {})
    monkeypatch.setattr(torch.cuda.memory, "_set_allocator_settings", calls.append)
    for var in ("PYTORCH_CUDA_ALLOC_CONF", "PYTORCH_ALLOC_CONF"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert pinned_host.register_pinned_in_threads() is False and calls == []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert pinned_host.register_pinned_in_threads() is True
    assert pinned_host.register_pinned_in_threads() is True  # handed to torch once per process
    assert calls == [f"pinned_use_cuda_host_register:True,pinned_num_register_threads:{pinned_host.PINNED_REGISTER_THREADS}"]
    for var in ("PYTORCH_CUDA_ALLOC_CONF", "PYTORCH_ALLOC_CONF"):
        monkeypatch.setenv(var, "expandable_segments:True")
        assert pinned_host.register_pinned_in_threads() is False
        monkeypatch.delenv(var)
    assert len(calls) == 1

    def refuse(settings):
        raise RuntimeError("Unrecognized key")

    monkeypatch.setattr(torch.cuda.memory, "_set_allocator_settings", refuse)
    monkeypatch.setattr(pinned_host, "_applied", {})
    with pytest.warns(RuntimeWarning, match="page-locked by one thread"):
        assert pinned_host.register_pinned_in_threads() is False
    assert pinned_host.register_pinned_in_threads() is False  # warned once, not on every call
