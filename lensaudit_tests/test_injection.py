"""Injection engine: analytic checks, lenstronomy parity, photometry, CLI."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from lensaudit.injection.lens import sie_deflection, sie_potential
from lensaudit.injection.params import InvalidParameters, validate_rows
from lensaudit.injection.psf import convolve_same, kernel_half_width, moffat_kernels
from lensaudit.injection.render import render_arcs, render_unit_lensed
from lensaudit.injection.source import sersic_sb, sersic_unit_flux_amp

REPO = Path(__file__).resolve().parents[1]
T = torch.float64


def row(**kw):
    base = dict(theta_e_arcsec=1.5, e1=0.1, e2=-0.05, gamma1=0.03, gamma2=0.01, center_x_arcsec=0.05,
                center_y_arcsec=-0.1, src_x_arcsec=0.1, src_y_arcsec=0.05, src_r_sersic_arcsec=0.2, src_n_sersic=1.0,
                src_e1=0.1, src_e2=0.0, src_mag_g=23.0, src_mag_r=22.5, src_mag_z=22.0, psf_fwhm_g_arcsec=1.3,
                psf_fwhm_r_arcsec=1.2, psf_fwhm_z_arcsec=1.1, moffat_beta=3.5, supersample=4)
    base.update(kw)
    return base


def cols_of(rows):
    return validate_rows(rows)


def test_sie_deflection_is_the_gradient_of_the_potential():
    rng = np.random.default_rng(0)
    x = torch.tensor(rng.uniform(-3, 3, 200), dtype=T)
    y = torch.tensor(rng.uniform(-3, 3, 200), dtype=T)
    for te, e1, e2 in ((1.2, 0.2, -0.1), (2.5, -0.3, 0.15), (0.7, 0.0, 0.0), (1.0, 1e-9, 0.0)):
        args = [torch.tensor(v, dtype=T) for v in (te, e1, e2, 0.1, -0.2)]
        ax, ay = sie_deflection(x, y, *args)
        h = 1e-6
        gx = (sie_potential(x + h, y, *args) - sie_potential(x - h, y, *args)) / (2 * h)
        gy = (sie_potential(x, y + h, *args) - sie_potential(x, y - h, *args)) / (2 * h)
        assert torch.allclose(ax, gx, atol=1e-6) and torch.allclose(ay, gy, atol=1e-6)


def test_sis_deflection_and_float32_near_round():
    x, y = torch.tensor([3.0, 0.0], dtype=T), torch.tensor([0.0, -2.0], dtype=T)
    z = torch.tensor(0.0, dtype=T)
    ax, ay = sie_deflection(x, y, torch.tensor(1.5, dtype=T), z, z, z, z)
    assert torch.allclose(ax, torch.tensor([1.5, 0.0], dtype=T)) and torch.allclose(ay, torch.tensor([0.0, -1.5], dtype=T))
    f = torch.float32
    ax, ay = sie_deflection(x.to(f), y.to(f), torch.tensor(1.5, dtype=f), torch.tensor(1e-6, dtype=f), torch.tensor(0.0, dtype=f),
                            torch.tensor(0.0, dtype=f), torch.tensor(0.0, dtype=f))
    assert torch.isfinite(ax).all() and abs(float(ax[0]) - 1.5) < 1e-4


@pytest.mark.parametrize("n,r", [(0.5, 0.3), (1.0, 0.3), (2.5, 0.2)])
def test_sersic_total_flux_is_one(n, r):
    ax1 = (torch.arange(2001, dtype=T) - 1000) * 0.005
    x, y = ax1[None, :], ax1[:, None]
    nn, rr = torch.tensor(n, dtype=T), torch.tensor(r, dtype=T)
    sb = sersic_sb(x, y, sersic_unit_flux_amp(rr, nn), rr, nn, torch.tensor(0.3, dtype=T), torch.tensor(-0.1, dtype=T),
                   torch.tensor(0.0, dtype=T), torch.tensor(0.0, dtype=T))
    assert float(sb.sum() * 0.005**2) == pytest.approx(1.0, rel=0.01)


@pytest.mark.parametrize("n", [0.5, 1.0, 4.0, 6.0])
def test_sersic_normalisation_radial_integral(n):
    """2 pi int r I(r) dr = 1 for the unit-flux amplitude (round profile, to infinity)."""
    from scipy.integrate import quad

    nn, rr = torch.tensor(n, dtype=T), torch.tensor(0.3, dtype=T)
    amp = sersic_unit_flux_amp(rr, nn)
    z = torch.tensor(0.0, dtype=T)

    def f(r):
        return 2 * np.pi * r * float(sersic_sb(torch.tensor(r, dtype=T), z, amp, rr, nn, z, z, z, z))

    total = sum(quad(f, a, b, limit=200)[0] for a, b in ((0, 0.3), (0.3, 30), (30, 3e4)))
    assert total == pytest.approx(1.0, rel=1e-3)


def test_unlensed_photometry():
    """A negligible lens leaves the source flux equal to its magnitude, per band."""
    res = render_arcs(cols_of([row(theta_e_arcsec=1e-6, gamma1=0.0, gamma2=0.0, src_r_sersic_arcsec=0.3, src_n_sersic=1.0)]))
    want = 10 ** (-0.4 * (np.array([23.0, 22.5, 22.0]) - 22.5))
    assert np.allclose(res.images[0].sum(dim=(1, 2)).numpy(), want, rtol=0.01)
    assert float(res.magnification[0]) == pytest.approx(1.0, rel=0.01)


def test_point_like_source_magnification_matches_sis():
    """SIS, source at beta < theta_E: |mu+| + |mu-| = 2 theta_E / beta."""
    te, beta = 1.5, 0.3
    r = row(theta_e_arcsec=te, e1=0.0, e2=0.0, gamma1=0.0, gamma2=0.0, center_x_arcsec=0.0, center_y_arcsec=0.0,
            src_x_arcsec=beta, src_y_arcsec=0.0, src_r_sersic_arcsec=0.03, src_n_sersic=1.0, src_e1=0.0, supersample=16)
    p = {k: torch.as_tensor(v, dtype=T) for k, v in cols_of([r]).items()}
    mu = float(render_unit_lensed(p, 101, 16, 0.262).sum())
    assert mu == pytest.approx(2 * te / beta, rel=0.02)


def test_psf_kernels_and_convolution():
    fwhm = torch.tensor([[1.0, 1.4, 2.0]], dtype=T)
    h = kernel_half_width(2.0, 0.262)
    assert 2 * h + 1 >= 2 * 4 * 2.0 / 0.262  # radius >= 4 FWHM
    k = moffat_kernels(fwhm, torch.full_like(fwhm, 3.5), 0.262, h)
    assert torch.allclose(k.sum(dim=(-2, -1)), torch.ones(1, 3, dtype=T))
    # measured FWHM of the kernel profile
    prof = k[0, 1, h, :].numpy()
    half = prof.max() / 2
    above = np.flatnonzero(prof >= half)
    assert (above[-1] - above[0] + 1) * 0.262 == pytest.approx(1.4, abs=0.262)
    from scipy.signal import fftconvolve

    img = torch.tensor(np.random.default_rng(1).random((1, 3, 101, 101)), dtype=T)
    out = convolve_same(img, k)
    for c in range(3):
        assert np.allclose(out[0, c].numpy(), fftconvolve(img[0, c].numpy(), k[0, c].numpy(), mode="same"), atol=1e-12)


PARITY_ROWS = [
    row(theta_e_arcsec=0.5, e1=0.0, e2=0.0, gamma1=0.0, gamma2=0.0, src_r_sersic_arcsec=0.05, src_n_sersic=0.5),
    row(theta_e_arcsec=1.0, e1=0.17, e2=0.05, gamma1=0.05, gamma2=-0.03, src_r_sersic_arcsec=0.1, src_n_sersic=1.0),
    row(theta_e_arcsec=1.5, e1=-0.2, e2=0.1, gamma1=0.1, gamma2=0.0, src_x_arcsec=0.4, src_y_arcsec=-0.3,
        src_r_sersic_arcsec=0.3, src_n_sersic=2.0, src_e1=-0.2, src_e2=0.1),
    row(theta_e_arcsec=2.0, e1=0.3, e2=-0.1, gamma1=-0.07, gamma2=0.07, src_x_arcsec=-0.5, src_y_arcsec=0.0,
        src_r_sersic_arcsec=0.5, src_n_sersic=4.0),
    row(theta_e_arcsec=3.0, e1=0.02, e2=0.0, gamma1=0.0, gamma2=0.1, center_x_arcsec=-0.3, center_y_arcsec=0.2,
        src_x_arcsec=0.2, src_y_arcsec=0.5, src_r_sersic_arcsec=0.25, src_n_sersic=3.0, psf_fwhm_g_arcsec=1.8),
    row(theta_e_arcsec=2.5, e1=0.33, e2=0.0, src_x_arcsec=0.05, src_y_arcsec=0.05, src_r_sersic_arcsec=0.15,
        src_n_sersic=1.5, moffat_beta=2.5),
]


@pytest.mark.parametrize("i", range(len(PARITY_ROWS)))
def test_parity_with_lenstronomy(i):
    from lensaudit.injection.reference import lenstronomy_render

    r = PARITY_ROWS[i]
    ours = render_arcs(cols_of([r]))
    fwhm = torch.tensor([[r["psf_fwhm_g_arcsec"], r["psf_fwhm_r_arcsec"], r["psf_fwhm_z_arcsec"]]], dtype=T)
    h = kernel_half_width(float(fwhm.max()), 0.262)
    k = moffat_kernels(fwhm, torch.full_like(fwhm, r["moffat_beta"]), 0.262, h)[0].numpy()
    # lenstronomy at 16 x 16 sub-pixels: at 4 x 4 its midpoint rule misses up to ~2 % of the peak of cuspy
    # cores, which our adaptive core refinement keeps (test_render_supersampling)
    ref = lenstronomy_render(dict(r, supersample=16), k)
    o = ours.images[0].numpy()
    assert np.allclose(o.sum(axis=(1, 2)), ref.sum(axis=(1, 2)), rtol=0.01)
    assert (np.abs(o - ref).max(axis=(1, 2)) <= 0.01 * ref.max(axis=(1, 2))).all()
    # float32 (the GPU path) stays within the same tolerances
    o32 = render_arcs(cols_of([r]), dtype=torch.float32).images[0].numpy()
    assert (np.abs(o32 - ref).max(axis=(1, 2)) <= 0.01 * ref.max(axis=(1, 2))).all()


def test_suppress_inner_removes_the_counter_image():
    r = row(e1=0.0, e2=0.0, gamma1=0.0, gamma2=0.0, center_x_arcsec=0.0, center_y_arcsec=0.0, src_x_arcsec=0.4,
            src_y_arcsec=0.0, src_r_sersic_arcsec=0.05)
    full = render_arcs(cols_of([r]))
    outer = render_arcs(cols_of([r]), suppress_inner=True)
    # SIS: images at theta_E + beta (flux ratio (tE/b+1)) and theta_E - beta ((tE/b-1)); only the outer survives
    te, b = 1.5, 0.4
    ratio = float(outer.magnification[0] / full.magnification[0])
    assert ratio == pytest.approx((te / b + 1) / (2 * te / b), rel=0.03)


def test_validation_names_row_and_key():
    with pytest.raises(InvalidParameters, match=r"row 1: key 'src_r_sersic_arcsec'"):
        validate_rows([row(), row(src_r_sersic_arcsec=-0.1)])
    with pytest.raises(InvalidParameters, match=r"row 0: keys 'e1'/'e2'.*q out of range"):
        validate_rows([row(e1=0.96)])
    with pytest.raises(InvalidParameters, match=r"row 0: key 'theta_e_arcsec' must be a finite number"):
        validate_rows([row(theta_e_arcsec=float("nan"))])
    with pytest.raises(InvalidParameters, match=r"row 0: missing key 'gamma1'"):
        validate_rows([{k: v for k, v in row().items() if k != "gamma1"}])
    with pytest.raises(InvalidParameters):
        validate_rows([])
    with pytest.raises(ValueError, match="exceeds"):
        render_arcs(cols_of([row(psf_fwhm_g_arcsec=4.5)]))


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "lensaudit_cli.main", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=300)


def test_inject_cli(tmp_path):
    p = tmp_path / "p.json"
    p.write_text(json.dumps([PARITY_ROWS[1], PARITY_ROWS[2]]))
    out = tmp_path / "o.npz"
    r = _cli("inject", "--params", str(p), "--out", str(out))
    assert r.returncode == 0, r.stderr
    z = np.load(out)
    assert z["images"].shape == (2, 3, 101, 101) and z["images"].dtype == np.float32
    assert z["magnification"].shape == (2,) and "arc_snr" not in z.files
    direct = render_arcs(cols_of([PARITY_ROWS[1], PARITY_ROWS[2]])).images.numpy().astype(np.float32)
    assert np.array_equal(z["images"], direct)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([PARITY_ROWS[1], dict(PARITY_ROWS[1], src_n_sersic=float("nan"))]).replace("NaN", "NaN"))
    r = _cli("inject", "--params", str(bad), "--out", str(tmp_path / "x.npz"))
    assert r.returncode == 1 and "row 1" in r.stderr and "src_n_sersic" in r.stderr
    assert not (tmp_path / "x.npz").exists()


def test_clumps_keep_the_unlensed_flux_and_add_knots():
    """2-6 Gaussian knots carrying 10-40 % of the flux: the unlensed total is unchanged."""
    r = row(theta_e_arcsec=1e-6, gamma1=0.0, gamma2=0.0, src_x_arcsec=0.0, src_y_arcsec=0.0, src_r_sersic_arcsec=0.3)
    cols = cols_of([r, r])
    cols["clump_dx"] = np.array([[0.3, -0.2, 0.0], [0.0, 0.0, 0.0]])
    cols["clump_dy"] = np.array([[0.1, 0.25, -0.3], [0.0, 0.0, 0.0]])
    cols["clump_sigma"] = np.array([[0.05, 0.05, 0.05], [0.05, 0.05, 0.05]])
    cols["clump_frac"] = np.array([[0.1, 0.1, 0.1], [0.0, 0.0, 0.0]])
    res = render_arcs(cols, adaptive=False)
    want = 10 ** (-0.4 * (np.array([23.0, 22.5, 22.0]) - 22.5))
    assert np.allclose(res.images.sum(dim=(2, 3)).numpy(), want[None], rtol=0.01)
    assert not torch.allclose(res.images[0], res.images[1])  # the knots change the morphology
    assert (res.images[0] - res.images[1]).abs().max() > 0.01 * res.images[1].max()
    lensed = dict(cols, theta_e_arcsec=np.array([1.5, 1.5]), src_x_arcsec=np.array([0.2, 0.2]))
    full = render_arcs(lensed, adaptive=False).images
    adaptive = render_arcs(lensed, adaptive=True).images
    assert ((full - adaptive).abs().amax(dim=(2, 3)) <= 0.01 * full.amax(dim=(2, 3))).all()
