"""The mock sky's correlated-noise option (``MockSkyConfig.noise_block_factor``): its 5x5
block-noise factor is the one measured here on the six real DR10 cutouts, each pixel keeps
the depth's sigma, off means white noise, and the empirical aperture-noise factor of the
selection function (``detectability.noise_correlation_factor``) follows the true noise of
correlated stamps where a white-noise S/N reads high."""

import numpy as np
import pytest
import torch
from scipy.signal import fftconvolve

from lensaudit.cutouts.npz import read_npz
from lensaudit.mock.config import MockSkyConfig
from lensaudit.mock.render import StampSpec, render_stamps, stamp_psfs
from lensaudit.survey.instrument import DR10_BLOCK_NOISE_FACTOR
from lensaudit.survey.noise import correlation_kernel, expected_factor, stamp_noise_factors

FWHM = np.array([1.4, 1.25, 1.15])  # arcsec, g r z
DEPTH = np.array([2500.0, 900.0, 250.0])  # psfdepth, 1/nmgy^2 (~24.9, 23.9, 22.9 mag 5-sigma)
NO_ARTEFACTS = dict(spike_rate=0.0, nan_patch_rate=0.0, missing_band_rate=0.0)


@pytest.fixture(scope="module")
def real_factors(real_data) -> np.ndarray:
    """(6, 3) block-noise factors of the real DR10 cutouts' g, r, z bands."""
    files = sorted((real_data / "dr10_cutouts_lens_candidates").glob("*.npz"))
    assert len(files) == 6
    return np.array([[r.factor for r in stamp_noise_factors(read_npz(f, expect_bands="grz").data).values()]
                     for f in files])


def _sky_specs(n: int, tag: str = "sky") -> list[StampSpec]:
    z = np.zeros(0)
    return [StampSpec(galaxy_id=f"{tag}{i}", fwhm_arcsec=FWHM, psfdepth=DEPTH, src_x=z, src_y=z,
                      src_flux=np.zeros((0, 3)), src_r_half=z, src_n=z, src_e1=z, src_e2=z, point_x=z, point_y=z,
                      point_flux=np.zeros((0, 3))) for i in range(n)]


def _factors(stamps: np.ndarray) -> np.ndarray:
    return np.array([[r.factor for r in stamp_noise_factors(s).values()] for s in stamps])


def test_dr10_constant_is_the_measured_value(real_factors):
    lo, hi = real_factors.min(), real_factors.max()
    assert lo > 1.15 and lo <= DR10_BLOCK_NOISE_FACTOR <= hi
    assert DR10_BLOCK_NOISE_FACTOR == pytest.approx(np.median(real_factors), abs=0.03)


def test_kernel_has_the_factor_and_keeps_the_pixel_sigma():
    for f in (1.2, 1.36, 1.6):
        k = correlation_kernel(f)
        assert expected_factor(k) == pytest.approx(f, abs=1e-6) and (k ** 2).sum() == pytest.approx(1.0)
        assert k.shape[0] <= 9  # a small kernel
    assert np.array_equal(correlation_kernel(1.0), [[1.0]])
    for bad in (0.9, 3.5, float("nan")):
        with pytest.raises(ValueError, match="block_factor"):
            correlation_kernel(bad)


def test_option_gives_the_real_block_factor_and_the_depth_sigma(real_factors):
    want = float(np.median(real_factors))  # measured now, on the real cutouts
    cfg = MockSkyConfig(noise_block_factor=want, **NO_ARTEFACTS)
    stamps = render_stamps(_sky_specs(12), cfg)
    f = _factors(stamps)
    assert real_factors.min() <= np.median(f) <= real_factors.max()
    assert np.median(f) == pytest.approx(want, rel=0.05)  # the estimator reads white noise ~2 % low
    # every pixel keeps the sigma implied by the depth (the kernel has unit sum of squares)
    _, sigma = stamp_psfs(FWHM[None], DEPTH[None])
    assert stamps.reshape(len(stamps), 3, -1).std(axis=-1).mean(axis=0) == pytest.approx(sigma[0], rel=0.02)


def test_off_is_white_noise():
    stamps = render_stamps(_sky_specs(12), MockSkyConfig(**NO_ARTEFACTS))
    f = _factors(stamps)
    assert 0.93 < np.median(f) < 1.05 and f.max() < 1.12
    same = render_stamps(_sky_specs(3), MockSkyConfig(noise_block_factor=1.0, **NO_ARTEFACTS))
    assert np.array_equal(same, stamps[:3])  # 1.0 is the off switch, the same bytes


def test_aperture_noise_tracks_true_noise_where_white_reads_high():
    """A PSF-wide arc (template m) on correlated mock sky: the true noise of its
    template-weighted sum is sigma ||m * k|| (k the correlation kernel), checked against the
    scatter over 300 noise draws; the selection function's matched S/N with the host's
    measured aperture factor is within 12 % of the truth, the white-noise formula ~1.35x high."""
    from lensaudit.injection.annulus import outer_sigma
    from lensaudit.injection.visibility import matched_snr, noise_correlation_factor
    from lensaudit.stamps import radius_map

    factor = DR10_BLOCK_NOISE_FACTOR
    n = 300
    stamps = render_stamps(_sky_specs(n, "ap"), MockSkyConfig(noise_block_factor=factor, **NO_ARTEFACTS))
    r = radius_map(101)
    yy, xx = np.mgrid[:101, :101]
    arc = 0.01 * np.exp(-(r - 10) ** 2 / (2 * 1.5 ** 2)) * (np.abs(np.arctan2(yy - 50, xx - 50)) < 1.0)
    m = np.broadcast_to(arc, (3, 101, 101))
    _, sigma = stamp_psfs(FWHM[None], DEPTH[None])
    signal = (m ** 2).sum(axis=(-2, -1))
    true_noise = sigma[0] * np.sqrt((fftconvolve(arc, correlation_kernel(factor)) ** 2).sum())
    drawn = (m[None] * stamps).sum(axis=(-2, -1)).std(axis=0)
    assert drawn == pytest.approx(true_noise, rel=0.1)  # the exact noise, by Monte Carlo
    true_snr = signal / true_noise

    t = torch.from_numpy(stamps.astype(np.float64))
    sig = outer_sigma(t)
    corr = noise_correlation_factor(t, sigma=sig)
    model = torch.from_numpy(np.ascontiguousarray(np.broadcast_to(m, t.shape)))
    est = np.median(matched_snr(model, sig, corr).numpy(), axis=0)
    white = np.median(matched_snr(model, sig, torch.ones_like(corr)).numpy(), axis=0)
    assert np.allclose(est / true_snr, 1.0, atol=0.12)
    assert (white / true_snr > 1.25).all()
    # on white mock noise the two agree (the factor measures ~1)
    w = torch.from_numpy(render_stamps(_sky_specs(40, "apw"), MockSkyConfig(**NO_ARTEFACTS)).astype(np.float64))
    assert abs(float(noise_correlation_factor(w).mean()) - 1.0) < 0.05


def test_the_option_leaves_the_sweep_files_alone():
    """Images only: the mock sweeps' configuration hash (their MOCKHASH header, the reuse key)
    does not see it, so a sky written before the option existed is reused byte for byte."""
    from dataclasses import replace

    from lensaudit.mock.writer import config_hash

    cfg = MockSkyConfig()
    assert config_hash(replace(cfg, noise_block_factor=DR10_BLOCK_NOISE_FACTOR)) == config_hash(cfg)
    assert config_hash(replace(cfg, ring_fraction=0.1)) != config_hash(cfg)
