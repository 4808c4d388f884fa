"""Benchmark: batched arc renderer vs lenstronomy on the same parameters.

One run, one process: N random injections (3 bands, 101x101, supersampling 4, Moffat
PSF) rendered by lenstronomy (one ImageModel per band, the reference) and by
``lensaudit.injection.render`` on CPU (float32 and float64), pinned to one core; the
outputs are compared (flux 1 %, peak 1 %) before the rates are printed.  With
``--device cuda`` it times the GPU at ``--batch`` (default 4096) instead.

Run: python bench/bench_injection.py [--n 48] | [--device cuda --batch 4096]
"""

from __future__ import annotations

import argparse
import os
import platform
import time

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import numpy as np  # noqa: E402


def random_rows(n: int, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        e = rng.uniform(0, 0.3)
        a = rng.uniform(0, np.pi)
        se = rng.uniform(0, 0.3)
        sa = rng.uniform(0, np.pi)
        rows.append(dict(
            theta_e_arcsec=rng.uniform(0.5, 3.0), e1=e * np.cos(a), e2=e * np.sin(a), gamma1=rng.uniform(-0.07, 0.07),
            gamma2=rng.uniform(-0.07, 0.07), center_x_arcsec=rng.uniform(-0.1, 0.1), center_y_arcsec=rng.uniform(-0.1, 0.1),
            src_x_arcsec=rng.uniform(-0.5, 0.5), src_y_arcsec=rng.uniform(-0.5, 0.5),
            src_r_sersic_arcsec=rng.uniform(0.05, 0.5), src_n_sersic=rng.uniform(0.5, 4.0),
            src_e1=se * np.cos(sa), src_e2=se * np.sin(sa), src_mag_r=rng.uniform(22, 26),
            psf_fwhm_g_arcsec=rng.uniform(1.0, 1.8), psf_fwhm_r_arcsec=rng.uniform(0.9, 1.7),
            psf_fwhm_z_arcsec=rng.uniform(0.85, 1.6), moffat_beta=3.5, supersample=4))
        rows[-1]["src_mag_g"] = rows[-1]["src_mag_r"] + rng.uniform(0, 1)
        rows[-1]["src_mag_z"] = rows[-1]["src_mag_r"] - rng.uniform(-0.2, 0.8)
    return rows


def cpu(ns) -> None:
    import torch

    torch.set_num_threads(1)
    try:
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    except (AttributeError, OSError):
        pass
    from lensaudit.injection.params import validate_rows
    from lensaudit.injection.psf import kernel_half_width, moffat_kernels
    from lensaudit.injection.reference import lenstronomy_render
    from lensaudit.injection.render import render_arcs

    rows = random_rows(ns.n)
    cols = validate_rows(rows)
    render_arcs(validate_rows(rows[:2]), dtype=torch.float32)  # warm-up
    lenstronomy_render(rows[0], np.ones((3, 3, 3)) / 9)  # warm-up (imports, numba)
    t0 = time.perf_counter()
    ours32 = render_arcs(cols, dtype=torch.float32, chunk=16).images.numpy()
    t32 = time.perf_counter() - t0
    t0 = time.perf_counter()
    ours64 = render_arcs(cols, dtype=torch.float64, chunk=16).images.numpy()
    t64 = time.perf_counter() - t0
    refs = []
    t0 = time.perf_counter()
    for r in rows:
        f = torch.tensor([[r["psf_fwhm_g_arcsec"], r["psf_fwhm_r_arcsec"], r["psf_fwhm_z_arcsec"]]], dtype=torch.float64)
        h = kernel_half_width(float(max(cols[f"psf_fwhm_{b}_arcsec"].max() for b in "grz")), 0.262)
        k = moffat_kernels(f, torch.full_like(f, 3.5), 0.262, h)[0].numpy()
        refs.append(lenstronomy_render(r, k))
    tref = time.perf_counter() - t0
    ref = np.stack(refs)
    peak = ref.max(axis=(2, 3))
    worst = max(float((np.abs(o - ref).max(axis=(2, 3)) / peak).max()) for o in (ours32, ours64))
    flux = max(float(np.abs(o.sum(axis=(2, 3)) / ref.sum(axis=(2, 3)) - 1).max()) for o in (ours32, ours64))
    assert worst <= 0.01 and flux <= 0.01, (worst, flux)
    print(f"machine: {platform.machine()} cores={os.cpu_count()} torch={torch.__version__} python={platform.python_version()}")
    print(f"stamps: {ns.n} (3 bands, 101x101, supersampling 4, Moffat PSF); one core")
    print(f"lenstronomy (ImageModel per band):   {ns.n / tref:9.1f} stamps/s")
    print(f"lensaudit renderer float32 (CPU):    {ns.n / t32:9.1f} stamps/s   ratio {tref / t32:6.1f}x")
    print(f"lensaudit renderer float64 (CPU):    {ns.n / t64:9.1f} stamps/s   ratio {tref / t64:6.1f}x")
    print(f"parity on these stamps: max |dpix|/peak = {worst:.2e}, max |dflux|/flux = {flux:.2e}")
    print(f"target >= 10x lenstronomy per core: {'MET' if tref / t32 >= 10 else 'NOT MET'}")


def gpu(ns) -> None:
    import torch

    from lensaudit.injection.params import validate_rows
    from lensaudit.injection.render import render_arcs

    rows = random_rows(ns.batch)
    parts = [validate_rows(rows[i:i + 2000]) for i in range(0, len(rows), 2000)]  # validate_rows takes <= 2000 rows
    cols = {k: np.concatenate([np.asarray(c[k]) for c in parts]) for k in parts[0]}
    dev = torch.device(ns.device)
    print(f"device: {torch.cuda.get_device_name(0)} torch={torch.__version__}")
    for compiled in (False, True):
        run = lambda: render_arcs(cols, dtype=torch.float32, device=dev, chunk=ns.chunk, compiled=compiled)  # noqa: E731
        t0 = time.perf_counter()
        for _ in range(2):
            ref = run()
        torch.cuda.synchronize()
        warm = time.perf_counter() - t0
        reps = 5
        t0 = time.perf_counter()
        for _ in range(reps):
            out = run()
        torch.cuda.synchronize()
        dt = (time.perf_counter() - t0) / reps
        print(f"batch {ns.batch}, chunk {ns.chunk}, float32, torch.compile={compiled}: {ns.batch / dt:,.0f} stamps/s "
              f"({dt * 1e3:.1f} ms per batch; first two calls {warm:.1f} s)")
        if compiled:
            base = render_arcs(cols, dtype=torch.float32, device=dev, chunk=ns.chunk)
            d = (out.images - base.images).abs().amax(dim=(2, 3)) / base.images.amax(dim=(2, 3))
            print(f"  compiled vs eager: max |dpix|/peak = {float(d.max()):.2e}")
    if ns.profile:
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            render_arcs(cols, dtype=torch.float32, device=dev, chunk=ns.chunk)
            torch.cuda.synchronize()
        print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=15))


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=48)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch", type=int, default=4096)
    ap.add_argument("--chunk", type=int, default=4096)
    ap.add_argument("--profile", action="store_true")
    ns = ap.parse_args()
    cpu(ns) if ns.device == "cpu" else gpu(ns)
