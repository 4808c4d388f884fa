"""The fused Triton renderer (``render_arcs(fused=True)``) against the reference renderer, on the
CPU through Triton's interpreter (the same kernel code the GPU compiles), and pixelised PSFs."""

import numpy as np
import pytest
import torch

from lensaudit.injection.psf import kernel_half_width, moffat_kernels
from lensaudit.injection.render import render_arcs
from lensaudit_tests.test_injection import PARITY_ROWS, cols_of, row
from lensaudit_tests.test_render_supersampling import _far_lens_rows

pytest.importorskip("triton")


def _close(out, ref, tol):
    o, r = out.images.double(), ref.images.double()
    peak = r.amax(dim=(2, 3))
    dpix = float(((o - r).abs().amax(dim=(2, 3)) / peak).max())
    dflux = float((o.sum(dim=(2, 3)) / r.sum(dim=(2, 3)) - 1).abs().max())
    assert dpix <= tol and dflux <= tol, (dpix, dflux)
    return dpix, dflux


def test_fused_matches_the_reference_on_the_lenstronomy_parity_rows():
    """The rows that test_parity_with_lenstronomy holds to 1 % of lenstronomy: the fused image
    is the reference's to float32 rounding (same algorithm), far inside 1 % flux / 1 % of peak."""
    cols = cols_of(PARITY_ROWS)
    ref = render_arcs(cols)  # float64, the CPU reference
    out = render_arcs(cols, fused=True)
    _close(out, ref, 0.01)
    _close(out, ref, 1e-4)
    assert np.allclose(out.magnification.numpy(), ref.magnification.numpy(), rtol=1e-4)


def test_fused_keeps_cuspy_cores_clumps_and_the_inner_mask():
    # n = 4, R_e = 0.05": the pixels near the core go through the reference's cusp refinement
    cols = cols_of(_far_lens_rows(4.0, 0.05))
    out = render_arcs(cols, fused=True)
    _close(out, render_arcs(cols), 1e-4)
    mu = 1 + 1e-3 / 2.4
    assert np.allclose(out.magnification.numpy(), mu, rtol=0.01)
    # clumps + suppress_inner
    r = row(theta_e_arcsec=1.2, src_x_arcsec=0.2, src_r_sersic_arcsec=0.15)
    cols = cols_of([r, dict(r, src_n_sersic=3.0, e1=0.0, e2=0.0)])
    cols["clump_dx"] = np.array([[0.1, -0.1], [0.05, 0.0]])
    cols["clump_dy"] = np.array([[0.05, 0.1], [-0.1, 0.0]])
    cols["clump_sigma"] = np.array([[0.04, 0.05], [0.05, 0.05]])
    cols["clump_frac"] = np.array([[0.15, 0.1], [0.2, 0.0]])
    for suppress in (False, True):
        ref = render_arcs(cols, npix=61, suppress_inner=suppress)
        _close(render_arcs(cols, npix=61, suppress_inner=suppress, fused=True), ref, 1e-4)
    assert float(ref.magnification[0]) < float(render_arcs(cols, npix=61).magnification[0])


def test_pixelised_psfs():
    rows = PARITY_ROWS[1:3]
    cols = cols_of(rows)
    fwhm = torch.tensor([[r[f"psf_fwhm_{b}_arcsec"] for b in "grz"] for r in rows], dtype=torch.float64)
    h = kernel_half_width(float(fwhm.max()), 0.262)
    moffat = moffat_kernels(fwhm, torch.full_like(fwhm, 3.5), 0.262, h)
    ref = render_arcs(cols)
    # the Moffat kernels handed over as pixels (scaled: normalised inside) give the Moffat images
    _close(render_arcs(cols, psf_kernels=moffat * 3.0), ref, 1e-12)
    _close(render_arcs(cols, psf_kernels=moffat, fused=True), ref, 1e-4)
    # one shared pixelised PSF per band: the reference convolves with it exactly (scipy), the fused path agrees
    from scipy.signal import fftconvolve

    shared = moffat[0].clone()
    shared[:, h, h + 3] += 0.05  # an asymmetric feature
    shared = shared / shared.sum(dim=(1, 2), keepdim=True)
    out = render_arcs(cols, psf_kernels=shared)
    for i in range(2):
        flux = 10 ** (-0.4 * (np.array([rows[i][f"src_mag_{b}"] for b in "grz"]) - 22.5))
        for c in range(3):
            want = fftconvolve(out.unit_lensed[i].numpy(), shared[c].numpy(), mode="same") * flux[c]
            assert np.allclose(out.images[i, c].numpy(), want, atol=1e-12 * want.max())
    _close(render_arcs(cols, psf_kernels=shared, fused=True), out, 1e-4)


@pytest.mark.parametrize("kern,msg", [(np.ones((3, 4, 4)), "K odd"), (np.ones((2, 5, 5)), "(3, K, K)"),
                                      (np.zeros((3, 5, 5)), "positive sum"), (np.ones((3, 103, 103)), "exceeds")])
def test_bad_pixelised_psf_is_a_clear_error(kern, msg):
    with pytest.raises(ValueError, match=msg.replace("(", r"\(").replace(")", r"\)")):
        render_arcs(cols_of([row()]), psf_kernels=kern)
