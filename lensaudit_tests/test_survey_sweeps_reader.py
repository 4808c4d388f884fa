import numpy as np
import pytest
from astropy.io import fits

from lensaudit.survey.reader import read_catalog_fits
from lensaudit.survey.schema import SchemaError
from lensaudit.survey.sweeps import parse_sweep_name, sweep_box, sweep_name

DR8 = "dr8_desitarget_fixtures"


def test_sweep_names_of_real_files(real_data):
    for f in sorted((real_data / DR8).glob("sweep-*.fits")):
        box = parse_sweep_name(f.name)
        assert box.name == f.name
        rows = fits.getdata(f, 1)
        # every row of a real sweep lies in the box its name says
        assert np.all(box.contains(rows["RA"], rows["DEC"]))
        assert all(sweep_name(r, d) == f.name for r, d in zip(rows["RA"], rows["DEC"]))


def test_sweep_name_boundaries():
    assert sweep_name(314.6, -3.37) == "sweep-310m005-320p000.fits"
    assert sweep_name(0.0, 0.0) == "sweep-000p000-010p005.fits"
    assert sweep_name(359.99, -0.01) == "sweep-350m005-360p000.fits"
    assert sweep_box(10.0, -5.0).name == "sweep-010m005-020p000.fits"
    with pytest.raises(ValueError):
        parse_sweep_name("tractor-3301m002.fits")
    with pytest.raises(ValueError):
        sweep_name(float("nan"), 1.0)


def test_reads_real_dr9_row(real_data):
    # a DR9 *north* (BASS/MzLS, RELEASE 9011) row: read with the RELEASE check off
    t = read_catalog_fits(real_data / "dr9_tractor_fastspecfit" / "tractor-1054p567.fits", releases=None).to_pylist()
    assert len(t) == 1
    r = t[0]
    assert (r["type"], r["brickname"], r["release"]) == ("REX", "1054p567", 9011)
    assert r["shape_r"] == pytest.approx(0.388, abs=1e-3)
    assert r["psfsize_r"] == pytest.approx(1.71, abs=1e-2)
    assert (r["nobs_g"], r["nobs_r"], r["nobs_z"]) == (4, 3, 3)
    assert r["brick_primary"] is True
    assert all(k == k.lower() for k in r)


@pytest.mark.parametrize("name", ["sweep-310m005-320p000.fits", "tractor-3301m002.fits"])
def test_refuses_dr8_files_naming_missing_columns(real_data, name):
    with pytest.raises(SchemaError) as e:
        read_catalog_fits(real_data / DR8 / name)
    msg = str(e.value)
    assert name in msg
    for col in ("shape_r", "sersic", "psfsize_g", "psfsize_r", "psfsize_z"):
        assert col in msg


def test_missing_single_column_named(tmp_path, real_data):
    src = real_data / "dr9_tractor_fastspecfit" / "tractor-1054p567.fits"
    with fits.open(src) as h:
        cols = [c for c in h[1].columns if c.name != "NOBS_Z"]
        bad = fits.BinTableHDU.from_columns(fits.ColDefs(cols))
        fits.HDUList([fits.PrimaryHDU(), bad]).writeto(tmp_path / "sweep-000p000-010p005.fits")
    with pytest.raises(SchemaError, match=r"sweep-000p000-010p005\.fits.*\['nobs_z'\]"):
        read_catalog_fits(tmp_path / "sweep-000p000-010p005.fits")


def test_corrupt_and_empty_files(tmp_path):
    p = tmp_path / "corrupt.fits"
    p.write_bytes(b"SIMPLE  = garbage" * 10)
    with pytest.raises(SchemaError, match="corrupt.fits"):
        read_catalog_fits(p)
    e = tmp_path / "empty.fits"
    fits.HDUList([fits.PrimaryHDU()]).writeto(e)
    with pytest.raises(SchemaError, match="not a binary table"):
        read_catalog_fits(e)
