import numpy as np
import pandas as pd
import pytest

from lensaudit.survey.bricks import brick_at, brick_name, bricks_of


@pytest.mark.parametrize("table", ["dr10_bricks_primary_phase1p6.csv", "dr10_bricks_backup_phase1p6.csv"])
def test_reproduces_real_dr10_bricks(real_data, table):
    t = pd.read_csv(real_data / "dr10_derived_tables" / table)
    assert len(t) > 40
    for r in t.itertuples():
        b = brick_at(r.ra, r.dec)
        assert b.brickname == r.brickname
        assert (b.ra1, b.ra2, b.dec1, b.dec2) == pytest.approx((r.ra1, r.ra2, r.dec1, r.dec2), abs=1e-9)
        # any point inside the brick maps to it, including its lower edges
        assert brick_at(r.ra1, r.dec1).brickname == r.brickname
        assert brick_at(r.ra2 - 1e-9, r.dec2 - 1e-9).brickname == r.brickname


def test_reproduces_real_dr6_and_dr9_brick_rows(real_data):
    from astropy.table import Table

    dr6 = Table.read(real_data / "dr6_coadd_brick_0959p805" / "survey-bricks-dr6.fits.gz")[0]
    b = brick_at(float(dr6["ra"]), float(dr6["dec"]))
    assert b.brickname == "0959p805" and b.ra == pytest.approx(float(dr6["ra"]), abs=1e-9)
    dr9 = Table.read(real_data / "dr9_decam_ccd_psfex_legacypipe_testcase3" / "survey-bricks.fits.gz")[0]
    b = brick_at(float(dr9["ra"]), float(dr9["dec"]))
    assert (b.brickname, b.brickid, b.brickrow) == (dr9["brickname"], dr9["brickid"], dr9["brickrow"])
    assert (b.ra1, b.ra2, b.dec1, b.dec2) == pytest.approx((dr9["ra1"], dr9["ra2"], dr9["dec1"], dr9["dec2"]))


def test_names_and_poles():
    assert brick_name(232.625, 0.0) == "2326p000"
    assert brick_name(10.0, -0.25) == "0100m002"
    pole = brick_at(123.0, 90.0)
    assert (pole.ra1, pole.ra2, pole.dec1, pole.dec2) == (0.0, 360.0, 89.875, 90.0)
    assert brick_at(359.9999, 0.0).brickname == brick_at(-0.0001, 0.0).brickname
    with pytest.raises(ValueError):
        brick_at(float("nan"), 0.0)
    with pytest.raises(ValueError):
        brick_at(10.0, 91.0)


def test_vectorised_matches_scalar():
    rng = np.random.default_rng(1)
    ra = rng.uniform(0, 360, 500)
    dec = np.rad2deg(np.arcsin(rng.uniform(-1, 1, 500)))
    names, ids = bricks_of(np.append(ra, np.nan), np.append(dec, 0.0))
    for a, d, n, i in zip(ra, dec, names, ids):
        b = brick_at(a, d)
        assert (b.brickname, b.brickid) == (n, i)
    assert names[-1] == "" and ids[-1] == 0
