"""Strict sweep reading and the RELEASE/PHOTSYS check, on small real-format FITS files.

Each file is the real DR9 Tractor row (``dr9_tractor_fastspecfit``), repeated, with the
schema columns only and one planted fault.
"""

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from lensaudit.survey.reader import (
    REASON_NORTH,
    REASON_OLD_DECAM,
    REASON_PHOTSYS,
    REASON_UNKNOWN,
    read_catalog,
    read_catalog_fits,
    removed_counts,
)
from lensaudit.survey.schema import REQUIRED_COLUMNS, SchemaError

N = 6


@pytest.fixture()
def base(real_data) -> Table:
    """N copies of the real DR9 row, DR10 DECam release, schema columns + BRICK_PRIMARY."""
    t = Table.read(real_data / "dr9_tractor_fastspecfit" / "tractor-1054p567.fits", hdu=1)
    t = t[[c.upper() for c in REQUIRED_COLUMNS] + ["BRICK_PRIMARY"]][np.zeros(N, dtype=int)]
    t["OBJID"] = np.arange(N, dtype=np.int32)
    t["RELEASE"] = np.full(N, 10000, dtype=np.int16)
    return t


def _write(t: Table, path) -> str:
    fits.HDUList([fits.PrimaryHDU(), fits.table_to_hdu(t)]).writeto(path)
    return str(path)


def test_healthy_file_reads_with_exact_values(base, tmp_path):
    base["NOBS_Z"] = np.array([0, 1, 2, 3, 32767, 5], dtype=np.int32)  # wider on disk, all in range
    r = read_catalog(_write(base, tmp_path / "ok.fits"))
    assert r.n_read == N and r.removed == {} and r.table.num_rows == N
    assert r.table.column("nobs_z").to_pylist() == [0, 1, 2, 3, 32767, 5]
    assert r.table.schema.field("nobs_z").type == "int16"
    assert r.table.column("brick_primary").to_pylist() == [True] * N


def test_int32_overflow_is_refused_not_wrapped(base, tmp_path):
    base["NOBS_Z"] = np.array([3, 40002, 3, 3, -40000, 3], dtype=np.int32)  # 40002 would wrap to -25534
    with pytest.raises(SchemaError) as e:
        read_catalog_fits(_write(base, tmp_path / "wrap.fits"))
    msg = str(e.value)
    assert "wrap.fits" in msg and "column nobs_z" in msg and "rows [1, 4]" in msg and "40002" in msg
    assert "-25534" not in msg


def test_nan_in_integer_column_is_refused(base, tmp_path):
    base["NOBS_G"] = np.array([4.0, np.nan, 4.0, 4.0, 4.0, np.nan])
    with pytest.raises(SchemaError, match=r"column nobs_g: stored as float64.*expected int16.*NaN/inf at rows \[1, 5\]"):
        read_catalog_fits(_write(base, tmp_path / "nan.fits"))


def test_fraction_in_integer_column_is_refused(base, tmp_path):
    base["OBJID"] = np.array([0.0, 1.0, 2.7, 3.0, 4.0, 5.0])
    with pytest.raises(SchemaError, match=r"column objid: .*non-integer values \[2\.7\] at rows \[2\]"):
        read_catalog_fits(_write(base, tmp_path / "frac.fits"))


def test_string_booleans_are_refused(base, tmp_path):
    base["BRICK_PRIMARY"] = np.array(["T", "F", "T", "T", "F", "T"])  # 'F' would read as True
    with pytest.raises(SchemaError, match=r"column brick_primary: stored as .*expected a FITS logical"):
        read_catalog_fits(_write(base, tmp_path / "bool.fits"))


def test_integer_booleans_and_numeric_strings_are_refused(base, tmp_path):
    base["BRICK_PRIMARY"] = np.array([1, 0, 1, 1, 1, 1], dtype=np.int16)
    base["TYPE"] = np.arange(N, dtype=np.int16)
    with pytest.raises(SchemaError) as e:
        read_catalog_fits(_write(base, tmp_path / "types.fits"))
    msg = str(e.value)
    assert "2 column problem(s)" in msg and "column type: stored as int16" in msg and "column brick_primary" in msg


def test_float32_overflow_and_string_in_float_column(base, tmp_path):
    base["FLUX_R"] = np.array([1.0, 1e39, 1.0, 1.0, 1.0, 1.0])  # float64 on disk, inf in float32
    base["EBV"] = np.array(["0.01"] * N)
    with pytest.raises(SchemaError) as e:
        read_catalog_fits(_write(base, tmp_path / "float.fits"))
    msg = str(e.value)
    assert "column flux_r: rows [1]" in msg and "float32 range" in msg and "column ebv: stored as" in msg


def test_nan_stays_allowed_in_float_columns(base, tmp_path):
    base["RA"][2] = np.nan
    base["SHAPE_R"][3] = np.nan
    t = read_catalog_fits(_write(base, tmp_path / "nanfloat.fits"))
    assert np.isnan(t.column("ra").to_numpy()[2]) and np.isnan(t.column("shape_r").to_numpy()[3])


def test_mixed_release_file_keeps_dr10_decam_and_counts_the_rest(base, tmp_path):
    base["RELEASE"] = np.array([10000, 9011, 10300, 9010, 8001, 1234], dtype=np.int16)
    r = read_catalog(_write(base, tmp_path / "sweep-100p050-110p055.fits"))
    assert r.n_read == N and r.table.num_rows == 2
    assert r.table.column("objid").to_pylist() == [0, 2]
    assert r.removed == {REASON_NORTH: 2, REASON_OLD_DECAM: 1, REASON_UNKNOWN: 1} and r.n_removed == 4
    t = read_catalog_fits(tmp_path / "sweep-100p050-110p055.fits")
    assert t.num_rows == 2 and removed_counts(t) == r.removed
    # the check can be switched off explicitly, never silently
    assert read_catalog(tmp_path / "sweep-100p050-110p055.fits", releases=None).table.num_rows == N


def test_photsys_column_is_cross_checked(base, tmp_path):
    base["PHOTSYS"] = np.array(["S", "N", "S", "U", "S", "S"])
    base["RELEASE"] = np.array([10000, 10000, 9011, 10000, 10000, 10000], dtype=np.int16)
    r = read_catalog(_write(base, tmp_path / "photsys.fits"))
    assert r.table.column("objid").to_pylist() == [0, 4, 5]
    assert r.removed == {REASON_NORTH: 2, REASON_PHOTSYS: 1}


def test_real_dr9_north_row_is_removed_as_north(real_data):
    r = read_catalog(real_data / "dr9_tractor_fastspecfit" / "tractor-1054p567.fits")
    assert r.n_read == 1 and r.table.num_rows == 0 and r.removed == {REASON_NORTH: 1}


def test_real_dr8_south_rows_photsys_s_are_not_dr10(real_data):
    """The real DR8 files carry RELEASE 8000 / PHOTSYS 'S': DECam, but not DR10."""
    from lensaudit.survey.reader import release_removal_reasons

    rows = fits.getdata(real_data / "dr8_desitarget_fixtures" / "sweep-310m005-320p000.fits", 1)
    assert set(rows["PHOTSYS"]) == {"S"}
    assert set(release_removal_reasons(rows["RELEASE"], rows["PHOTSYS"])) == {REASON_OLD_DECAM}


def test_tnull_in_integer_column_is_refused(base, tmp_path):
    hdu = fits.table_to_hdu(base)
    cols = [c if c.name != "NOBS_R" else fits.Column(name="NOBS_R", format="I", null=-1,
                                                    array=np.array([3, -1, 3, 3, 3, -1], np.int16))
            for c in hdu.columns]
    fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns(cols)]).writeto(tmp_path / "tnull.fits")
    with pytest.raises(SchemaError, match=r"column nobs_r: rows \[1, 5\] are null \(TNULL=-1\)"):
        read_catalog_fits(tmp_path / "tnull.fits")
