"""Benchmark: batched arc renderer vs lenstronomy on the same parameters.

One run, one process: N random injections (3 bands, 101x101, supersampling 4, Moffat
PSF) rendered by lenstronomy (one ImageModel per band, the reference) and by
``lensaudit.injection.render`` on CPU (float32 and float64), pinned to one core; the
outputs are compared (flux 1 %, peak 1 %) before the rates are printed.  With
``--device cuda`` it times the GPU at ``--batch`` (default 4096) instead.

Run: python bench/bench_injection.py [--n 48] | [--device cuda --batch 4096 [--fused]]
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


PARITY_SUPERSAMPLE = 16  # lenstronomy's sub-pixels per pixel side for the parity check (untimed)


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
    h = kernel_half_width(float(max(cols[f"psf_fwhm_{b}_arcsec"].max() for b in "grz")), 0.262)

    def kernels(r):
        f = torch.tensor([[r["psf_fwhm_g_arcsec"], r["psf_fwhm_r_arcsec"], r["psf_fwhm_z_arcsec"]]], dtype=torch.float64)
        return moffat_kernels(f, torch.full_like(f, 3.5), 0.262, h)[0].numpy()

    t0 = time.perf_counter()
    for r in rows:  # the timed reference: lenstronomy at the same nominal supersampling (4 x 4, every pixel)
        lenstronomy_render(r, kernels(r))
    tref = time.perf_counter() - t0
    # parity against lenstronomy at 16 x 16 sub-pixels, untimed (as test_parity_with_lenstronomy): at 4 x 4 its
    # midpoint rule misses up to tens of per cent of a cuspy, compact source's core, which the adaptive
    # refinement keeps (until 2026-12-07 this compared with 4 x 4 and its assertion failed since that refinement)
    ref = np.stack([lenstronomy_render(dict(r, supersample=PARITY_SUPERSAMPLE), kernels(r)) for r in rows])
    peak = ref.max(axis=(2, 3))
    dpix = np.max([np.abs(o - ref).max(axis=(2, 3)) / peak for o in (ours32, ours64)], axis=0)  # (rows, bands)
    dflux = np.max([np.abs(o.sum(axis=(2, 3)) / ref.sum(axis=(2, 3)) - 1) for o in (ours32, ours64)], axis=0)
    worst, flux = float(dpix.max()), float(dflux.max())
    assert worst <= 0.1 and flux <= 0.1, (worst, flux)  # a units or convention slip, not a sampling difference
    beyond = np.flatnonzero((dpix.max(axis=1) > 0.01) | (dflux.max(axis=1) > 0.01))
    print(f"machine: {platform.machine()} cores={os.cpu_count()} torch={torch.__version__} python={platform.python_version()}")
    print(f"stamps: {ns.n} (3 bands, 101x101, supersampling 4, Moffat PSF); one core")
    print(f"lenstronomy (ImageModel per band):   {ns.n / tref:9.1f} stamps/s")
    print(f"lensaudit renderer float32 (CPU):    {ns.n / t32:9.1f} stamps/s   ratio {tref / t32:6.1f}x")
    print(f"lensaudit renderer float64 (CPU):    {ns.n / t64:9.1f} stamps/s   ratio {tref / t64:6.1f}x")
    print(f"parity vs lenstronomy at {PARITY_SUPERSAMPLE} x {PARITY_SUPERSAMPLE} sub-pixels: max |dpix|/peak = "
          f"{worst:.2e}, max |dflux|/flux = {flux:.2e}; rows beyond 1 %: {len(beyond)} of {ns.n}")
    for i in beyond:
        r = rows[i]
        print(f"  row {i}: |dpix|/peak {dpix[i].max():.2e}, |dflux|/flux {dflux[i].max():.2e} (theta_E "
              f"{r['theta_e_arcsec']:.2f}\", R_e {r['src_r_sersic_arcsec']:.3f}\", n {r['src_n_sersic']:.2f})")
    print(f"target >= 10x lenstronomy per core: {'MET' if tref / t32 >= 10 else 'NOT MET'}")


def _rows_cols(n: int, seed: int = 0) -> dict:
    from lensaudit.injection.params import validate_rows

    rows = random_rows(n, seed)
    parts = [validate_rows(rows[i:i + 2000]) for i in range(0, len(rows), 2000)]  # validate_rows takes <= 2000 rows
    return {k: np.concatenate([np.asarray(c[k]) for c in parts]) for k in parts[0]}


def _rate(run, batch: int, reps: int = 5) -> tuple[float, float, object]:
    import torch

    t0 = time.perf_counter()
    for _ in range(2):
        out = run()
    torch.cuda.synchronize()
    warm = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(reps):
        out = run()
    torch.cuda.synchronize()
    dt = (time.perf_counter() - t0) / reps
    return batch / dt, warm, out


def _parity(out, base) -> str:
    d = (out.images - base.images).abs().amax(dim=(2, 3)) / base.images.amax(dim=(2, 3))
    f = (out.images.sum(dim=(2, 3)) / base.images.sum(dim=(2, 3)) - 1).abs()
    return f"max |dpix|/peak = {float(d.max()):.2e}, max |dflux|/flux = {float(f.max()):.2e}"


def gpu(ns) -> None:
    import torch

    from lensaudit.injection.render import render_arcs

    cols = _rows_cols(ns.batch)
    dev = torch.device(ns.device)
    print(f"device: {torch.cuda.get_device_name(0)} torch={torch.__version__}")
    variants = [("eager", dict(compiled=False)), ("compiled", dict(compiled=True))] if not ns.fused_only else []
    if ns.fused or ns.fused_only:
        variants.append(("fused", dict(fused=True)))
    rates, base = {}, None
    for name, kw in variants:
        run = lambda: render_arcs(cols, dtype=torch.float32, device=dev, chunk=ns.chunk, **kw)  # noqa: E731
        rate, warm, out = _rate(run, ns.batch)
        rates[name] = rate
        print(f"batch {ns.batch}, chunk {ns.chunk}, float32, {name}: {rate:,.0f} stamps/s "
              f"({ns.batch / rate * 1e3:.1f} ms per batch; first two calls {warm:.1f} s)")
        if base is None:
            base = render_arcs(cols, dtype=torch.float32, device=dev, chunk=min(ns.chunk, 8192))
        print(f"  {name} vs eager (same rows): {_parity(out, base)}")
        del out
    if "fused" in rates and "compiled" in rates:
        print(f"fused / compiled = {rates['fused'] / rates['compiled']:.2f}x, fused / eager = "
              f"{rates['fused'] / rates['eager']:.2f}x")
    if (ns.fused or ns.fused_only) and not ns.no_extras:
        _fused_extras(ns, cols, dev, base)
    if ns.profile:
        from torch.profiler import ProfilerActivity, profile

        # the operations with their input shapes (which elementwise kernel belongs to which tensor)
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA], record_shapes=True) as prof:
            render_arcs(cols, dtype=torch.float32, device=dev, chunk=ns.chunk, fused=ns.fused or ns.fused_only)
            torch.cuda.synchronize()
        print(prof.key_averages(group_by_input_shape=True).table(sort_by="cuda_time_total", row_limit=40,
                                                                  max_name_column_width=40, max_shapes_column_width=70))


def _fused_extras(ns, cols, dev, base) -> None:
    """Pixelised PSFs (per-row and shared), the stage breakdown (device synchronised), the fraction
    of pixels supersampled and of pixels refined in torch."""
    import torch

    from lensaudit.injection import fused as F
    from lensaudit.injection.psf import (convolve_same, fast_fft_size, kernel_half_width, moffat_half_spectra,
                                        moffat_kernels, moffat_spectra)
    from lensaudit.device_upload import columns_to_device
    from lensaudit.injection.render import mag_to_nmgy, render_arcs

    B = ns.batch
    # the pixel kernel's program layout: tiles (PIXEL_BLOCK, PIXEL_TILE_W) or runs of pixels in row order (w = 0)
    default = F.PIXEL_BLOCK, F.PIXEL_TILE_W
    mine = render_arcs(cols, device=dev, chunk=ns.chunk, fused=True)
    for blk, w in ((256, 0), (256, 16), (256, 32), (128, 16), (64, 8), (256, 0), default):
        F.PIXEL_BLOCK, F.PIXEL_TILE_W = blk, w
        rate, _, out = _rate(lambda: render_arcs(cols, device=dev, chunk=ns.chunk, fused=True), B)
        same = torch.equal(out.images, mine.images) and torch.equal(out.unit_lensed, mine.unit_lensed)
        print(f"fused, pixel kernel {'tiles ' + str(w) + ' x ' + str(blk // w) if w else 'runs of ' + str(blk)} "
              f"pixels: {rate:,.0f} stamps/s; images {'equal' if same else 'DIFFER'} to the default's {default}")
    F.PIXEL_BLOCK, F.PIXEL_TILE_W = default
    del mine
    F.CUSP_IN_TRITON = False
    rate, _, out = _rate(lambda: render_arcs(cols, device=dev, chunk=ns.chunk, fused=True), B)
    F.CUSP_IN_TRITON = True
    print(f"fused with the cusp pixels by the reference's torch code (compiled): {rate:,.0f} stamps/s; "
          f"vs eager: {_parity(out, base)}")
    from lensaudit.injection import render as R

    packed = R.FUSED_PACKED_INVERSE
    for flag in (not packed, packed, not packed):  # the other setting around the default, one more time
        R.FUSED_PACKED_INVERSE = flag
        rate, _, out = _rate(lambda: render_arcs(cols, device=dev, chunk=ns.chunk, fused=True), B)
        print(f"fused, inverse transform {'by one c2c ifft2 per pair of stamps' if flag else 'by irfft2 per stamp (c2r)'}"
              f"{' (the default)' if flag == packed else ''}: {rate:,.0f} stamps/s; vs eager: {_parity(out, base)}")
    R.FUSED_PACKED_INVERSE = packed
    R.FUSED_SPECTRAL_PRODUCT = False
    rate, _, out = _rate(lambda: render_arcs(cols, device=dev, chunk=ns.chunk, fused=True), B)
    R.FUSED_SPECTRAL_PRODUCT = True
    print(f"fused, PSF stage as before (normalised, mirrored spectra written, torch's products, rfft2 of a padded "
          f"copy, irfft2 normalised after): "
          f"{rate:,.0f} stamps/s; vs eager: {_parity(out, base)}")
    sizes0 = R.FUSED_FFT_SIZES
    R.FUSED_FFT_SIZES = ()
    rate, _, out = _rate(lambda: render_arcs(cols, device=dev, chunk=ns.chunk, fused=True), B)
    print(f"fused, Moffat spectra without FFT, transform at the smallest 5-smooth size: {rate:,.0f} stamps/s; "
          f"vs eager: {_parity(out, base)}")
    R.FUSED_MOFFAT_SPECTRA = False
    rate, _, out = _rate(lambda: render_arcs(cols, device=dev, chunk=ns.chunk, fused=True), B)
    R.FUSED_MOFFAT_SPECTRA, R.FUSED_FFT_SIZES = True, sizes0
    print(f"fused with the Moffat spectra by rfft2 of each kernel at the 5-smooth size (previous): {rate:,.0f} "
          f"stamps/s; vs eager: {_parity(out, base)}")
    # pixelised PSFs: the Moffat kernels themselves, handed over as pixels (parity with the Moffat path), and
    # one shared pixelised PSF per band (a Moffat with a bright wing) for the rate
    p = columns_to_device(cols, dev, torch.float32)
    fwhm = torch.stack([p[f"psf_fwhm_{b}_arcsec"] for b in "grz"], dim=1)
    h = kernel_half_width(float(fwhm.max()), 0.262)
    kern = moffat_kernels(fwhm, torch.full_like(fwhm, 3.5), 0.262, h)
    rate, _, out = _rate(lambda: render_arcs(cols, device=dev, chunk=ns.chunk, fused=True, psf_kernels=kern), B)
    print(f"fused, pixelised PSF per row (B, 3, {kern.shape[-1]}, {kern.shape[-1]}): {rate:,.0f} stamps/s; "
          f"vs eager Moffat: {_parity(out, base)}")
    ax = torch.arange(-h, h + 1, device=dev, dtype=torch.float32)
    r2 = ax[None] ** 2 + ax[:, None] ** 2
    shared = torch.stack([(1 + r2 / a**2) ** -2.5 + 0.02 * torch.exp(-r2 / (2 * (3 * a) ** 2)) for a in (4.0, 3.6, 3.3)])
    rate, _, out = _rate(lambda: render_arcs(cols, device=dev, chunk=ns.chunk, fused=True, psf_kernels=shared), B)
    ref = render_arcs(cols, dtype=torch.float32, device=dev, chunk=min(ns.chunk, 8192), psf_kernels=shared)
    print(f"fused, one pixelised PSF (3, {shared.shape[-1]}, {shared.shape[-1]}) for all rows: {rate:,.0f} stamps/s; "
          f"vs eager with the same PSF: {_parity(out, ref)}")
    del out, ref
    # stage breakdown of one chunk, synchronised
    n = min(B, ns.chunk)
    sl = {k: v[:n] for k, v in p.items()}
    t = {}

    def clock(name, fn):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        r = fn()
        torch.cuda.synchronize()
        t[name] = t.get(name, 0.0) + time.perf_counter() - t0
        return r

    for rep in range(3):
        t.clear()
        clock("params_to_device", lambda: columns_to_device({k: v[:n] for k, v in cols.items()}, dev, torch.float32))
        tab, cl = clock("stamp_table", lambda: F.stamp_table(sl, 0, 5.0))
        bx = torch.empty((n, 101, 101), device=dev)
        by, img, st = torch.empty_like(bx), torch.empty_like(bx), torch.empty_like(bx)
        grid = (F.triton.cdiv(101 * 101, F.BLOCK), n)
        clock("centre_kernel", lambda: F._centre_kernel[grid](tab, bx, by, 101, 50.0, 0.262, F.NCOL, F.BLOCK))
        clock("pixel_kernel", lambda: F._pixel_kernel[F.pixel_grid(101, n)](
            tab, cl, bx, by, img, st, 101, 50.0, 0.262, 0.262**2, F.CUSP_NEAR, 101 * 101, 101, F.NCOL, 4, 0, 1, False,
            F.PIXEL_BLOCK, F.PIXEL_TILE_W, num_warps=max(1, F.PIXEL_BLOCK // 64)))
        nflag = int((st > 0).sum())
        unit = clock("unit_total(incl_cusp_fixup)", lambda: F.render_unit_lensed_fused(sl, 101, 4, 0.262))
        kk = clock("moffat_kernels", lambda: moffat_kernels(fwhm[:n], torch.full_like(fwhm[:n], 3.5), 0.262, h))
        flux = mag_to_nmgy(torch.stack([sl[f"src_mag_{b}"] for b in "grz"], dim=1))
        clock("fft_convolve(3 bands; kernel rfft2, previous)", lambda: convolve_same(unit[:, None], kk) * flux[:, :, None, None])
        nfft = R.fused_fft_size(101 + h)
        sp = clock(f"moffat_spectra(no FFT, n={nfft})", lambda: moffat_spectra(fwhm[:n], torch.full_like(fwhm[:n], 3.5),
                                                                                0.262, h, nfft, dtype=torch.float32))
        clock("fft_convolve(3 bands; spectra given)", lambda: torch.fft.irfft2(torch.fft.rfft2(unit, s=(nfft, nfft))[:, None] * sp
                                                                         * flux[:, :, None, None], s=(nfft, nfft))[..., :101, :101])
        del sp
        half = clock(f"moffat_half_spectra(n={nfft})", lambda: moffat_half_spectra(
            fwhm[:n], torch.full_like(fwhm[:n], 3.5), 0.262, h, nfft, dtype=torch.float32))
        clock("fft_convolve(3 bands; spectral_product)", lambda: torch.fft.irfft2(
            F.spectral_product(torch.fft.rfft2(unit, s=(nfft, nfft)), half, flux / nfft**2), s=(nfft, nfft),
            norm="forward")[..., :101, :101])
        del half
    t["cusp_fixup(unit_total - kernels)"] = t["unit_total(incl_cusp_fixup)"] - t["centre_kernel"] - t["pixel_kernel"]
    print(f"stages for {n} stamps (synchronised, 3rd repeat): " + ", ".join(f"{k} {v * 1e3:.2f} ms" for k, v in t.items()))
    print(f"pixels flagged for the torch cusp refinement: {nflag:,} ({nflag / n:.1f} per stamp)")
    # FFT sizes for the convolution (size >= 101 + h is exact): rfft2 of the unit image, product, irfft2
    sizes = {}
    for nfft in (fast_fft_size(101 + h), 140, 144, 150, 160, 192):
        sp = moffat_spectra(fwhm[:n], torch.full_like(fwhm[:n], 3.5), 0.262, h, nfft, dtype=torch.float32)
        for rep in range(3):
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            torch.fft.irfft2(torch.fft.rfft2(unit, s=(nfft, nfft))[:, None] * sp * flux[:, :, None, None],
                             s=(nfft, nfft))[..., :101, :101].contiguous()
            torch.cuda.synchronize()
        sizes[nfft] = time.perf_counter() - t0
        del sp
    print(f"convolution (3 bands, spectra given) by FFT size, {n} stamps: "
          + ", ".join(f"{k} {v * 1e3:.2f} ms" for k, v in sizes.items()))


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=48)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch", type=int, default=4096)
    ap.add_argument("--chunk", type=int, default=4096)
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--fused", action="store_true", help="also time the fused Triton renderer (render_arcs(fused=True))")
    ap.add_argument("--fused-only", action="store_true", help="time only the fused renderer")
    ap.add_argument("--no-extras", action="store_true",
                    help="without the fused renderer's variants and stage breakdown (e.g. for a previous tree)")
    ns = ap.parse_args()
    cpu(ns) if ns.device == "cpu" else gpu(ns)
