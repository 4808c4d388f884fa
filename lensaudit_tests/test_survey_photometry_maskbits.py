import numpy as np
import pytest

from lensaudit.survey.maskbits import N1_EXCLUDED_BITS, bit_names, has_any_bit
from lensaudit.survey.photometry import (depth_ivar_to_mag5sigma, mag5sigma_to_depth_ivar, mag_to_nmgy,
                                         mw_transmission, nmgy_to_mag)


def test_magnitudes():
    assert nmgy_to_mag(1.0) == pytest.approx(22.5)
    assert nmgy_to_mag(10.0) == 20.0  # exactly: the z < 20 boundary
    assert np.isnan(nmgy_to_mag(0.0)) and np.isnan(nmgy_to_mag(-1.0)) and np.isnan(nmgy_to_mag(np.nan))
    m = np.linspace(15, 26, 12)
    assert np.allclose(nmgy_to_mag(mag_to_nmgy(m)), m)


def test_depth_conversion():
    # sigma = 1 nmgy (ivar 1) -> 5 sigma = 5 nmgy -> 22.5 - 2.5 log10 5
    assert depth_ivar_to_mag5sigma(1.0) == pytest.approx(22.5 - 2.5 * np.log10(5.0))
    assert np.isnan(depth_ivar_to_mag5sigma(0.0))
    assert depth_ivar_to_mag5sigma(mag5sigma_to_depth_ivar(24.0)) == pytest.approx(24.0)


def test_mw_transmission_matches_real_dr9_row(real_data):
    from astropy.io import fits

    r = fits.getdata(real_data / "dr9_tractor_fastspecfit" / "tractor-1054p567.fits", 1)[0]
    for b in "grz":
        assert mw_transmission(r["EBV"], b) == pytest.approx(r[f"MW_TRANSMISSION_{b.upper()}"], rel=2e-3)


def test_maskbits():
    assert set(N1_EXCLUDED_BITS) == {1, 5, 6, 7, 11, 12, 13}
    assert bit_names(2 + 4096) == ["BRIGHT", "GALAXY"]
    vals = np.array([0, 1 << 1, 1 << 2, 1 << 13, 1 << 8])
    assert has_any_bit(vals, N1_EXCLUDED_BITS).tolist() == [False, True, False, True, False]
