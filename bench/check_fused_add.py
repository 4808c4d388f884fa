"""GPU check and benchmark of ``selection.fused_add`` (issue 16): the one-pass adding of arc, noise
and host against the torch path it replaces, in one process on the same rendered batch.

For a batch of ``--batch`` injections (synthetic hosts and the spec's plan and parameters, as
``bench_selection``; rendered once by the fused renderer): ``inject.inject_batch`` with
``FUSED_ADD`` on and off, the renderer's output reused (so both time only what follows the
render: sigma_pix, the arc, its noise, the host, the matched-filter energy and the added rms).
Checks that the injected stamps, the signal, the matched energy and the rms are identical
(NaN where both are NaN), for injections and null controls, then times both (CUDA events,
median of ``--repeat``) and prints the ratio.  Exit 1 if any value differs.
Run: PYTHONPATH=. python bench/check_fused_add.py [--batch 8192] [--repeat 20]
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from _scratch import scratch_dir


def _same(a, b) -> bool:
    import torch

    if a is None or b is None:
        return a is None and b is None
    return a.dtype == b.dtype and a.shape == b.shape and bool(((a == b) | (torch.isnan(a) & torch.isnan(b))).all())


def main() -> int:
    import torch

    sys.path.insert(0, "bench")
    import bench_selection as B
    from lensaudit.cutouts.store import CutoutReader
    from lensaudit.injection.annulus import outer_sigma
    from lensaudit.selection import inject
    from lensaudit.selection.inject import plan_and_parameters

    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=8192)
    ap.add_argument("--hosts", type=int, default=4096)
    ap.add_argument("--repeat", type=int, default=20)
    ns = ap.parse_args()
    if not torch.cuda.is_available():
        print("check_fused_add.py compares the kernel with the torch path on a CUDA device; none here "
              "(the CPU equality tests are lensaudit_tests/test_fused_add.py)")
        return 2
    dev = "cuda"
    store = scratch_dir("fused_add_")
    hosts = B.synthetic_hosts(ns.hosts, store, np.random.default_rng(0))
    plan, params = plan_and_parameters(hosts, max(1, -(-ns.batch // 385)), seed=1)
    plan, params = plan.iloc[:ns.batch].reset_index(drop=True), params.iloc[:ns.batch].reset_index(drop=True)
    stamps = torch.from_numpy(CutoutReader(store).read(hosts)).to(dev)
    pos = hosts.set_index("galaxy_id").index.get_indexer(plan["galaxy_id"])
    sigma_host = outer_sigma(stamps)[torch.as_tensor(pos, device=dev)]
    rendered = inject.render_arcs
    cache = {}

    def render_once(*a, **k):  # the renderer's output of the first call, reused
        if "res" not in cache:
            cache["res"] = rendered(*a, **k)
        return cache["res"]
    inject.render_arcs = render_once

    def batch(fused_add: bool, null: bool):
        inject.FUSED_ADD = fused_add
        gen = torch.Generator(device=dev).manual_seed(7)
        return inject.inject_batch(stamps, pos, params, hosts, dev, gen, null=null, fused=True, sigma_host=sigma_host)

    print(f"device: {torch.cuda.get_device_name(0)} torch={torch.__version__}; batch {ns.batch:,} injections "
          f"(101^2, 3 bands), hosts {ns.hosts:,}")
    ok = True
    for null in (False, True):
        a, b = batch(True, null), batch(False, null)
        same = {k: _same(getattr(a, k), getattr(b, k)) for k in ("stamps", "signal", "arc_energy", "added_rms", "sigma_pix")}
        ok &= all(same.values())
        print(f"{'null controls' if null else 'injections'}: fused_add vs torch path identical: "
              + ", ".join(f"{k} {'yes' if v else 'NO'}" for k, v in same.items()))
    times = {}
    for fused_add in (False, True, False, True):  # alternating, after a warm-up of each
        batch(fused_add, False)
        ms = []
        for _ in range(ns.repeat):
            t0, t1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            t0.record()
            batch(fused_add, False)
            t1.record()
            t1.synchronize()
            ms.append(t0.elapsed_time(t1))
        times.setdefault(fused_add, []).append(float(np.median(ms)))
    ref, new = min(times[False]), min(times[True])
    print(f"after the render, per batch (median of {ns.repeat}, the better of two rounds): torch path (reference) "
          f"{ref:.2f} ms, fused_add {new:.2f} ms; {ref / new:.2f}x; per 77,000 injections: "
          f"{ref * 77000 / ns.batch:.0f} ms vs {new * 77000 / ns.batch:.0f} ms")
    print(f"rounds: torch {', '.join(f'{t:.2f}' for t in times[False])} ms; "
          f"fused {', '.join(f'{t:.2f}' for t in times[True])} ms")
    print("all identical" if ok else "DIFFERENT")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
