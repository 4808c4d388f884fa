"""Mock sweeps, the schema and the real DR9 Tractor file against the DR9/DR10 data model."""

import numpy as np
from astropy.io import fits
from astropy.table import Table

from lensaudit.mock.config import MOCK_SWEEP_BOXES, MockSkyConfig
from lensaudit.mock.writer import write_mock_sweep
from lensaudit.survey.datamodel import (
    DR9_TRACTOR_MODEL,
    DR10_TRACTOR_MODEL,
    fits_columns,
    fits_mismatches,
    main,
    schema_mismatches,
)
from lensaudit.survey.reader import read_catalog
from lensaudit.survey.schema import REQUIRED_COLUMNS

DR9_ROW = ("dr9_tractor_fastspecfit", "tractor-1054p567.fits")
TINY = MockSkyConfig(n_objects_per_sweep=200, nan_coord_rate=0.0)


def test_schema_types_and_units_are_the_dr10_model():
    assert set(DR10_TRACTOR_MODEL) == set(REQUIRED_COLUMNS)
    assert schema_mismatches() == []
    # the check can fail: a model that says otherwise is reported column by column
    other = {**DR10_TRACTOR_MODEL, "nobs_g": ("J", ""), "flux_r": ("E", "mag")}
    assert set(schema_mismatches(other)) == {"nobs_g: schema int16 (I), data model J",
                                             "flux_r: schema unit 'nmgy', data model 'mag'"}


def test_real_dr9_file_matches_the_dr9_model_and_differs_from_dr10_only_in_maskbits(real_data):
    f = real_data.joinpath(*DR9_ROW)
    assert fits_mismatches(f, model=DR9_TRACTOR_MODEL) == []
    assert fits_mismatches(f) == ["maskbits: TFORM I, data model J"]


def test_mock_sweep_has_every_column_with_the_dr10_type(tmp_path, lenscat_all, real_data):
    box = MOCK_SWEEP_BOXES[0].name
    p = write_mock_sweep(TINY, box, tmp_path / "sweeps", tmp_path / "truth", lenscat_all)
    assert fits_mismatches(p) == []
    mock, real = fits_columns(p), fits_columns(real_data.joinpath(*DR9_ROW))
    shared = set(mock) & set(real)
    assert set(REQUIRED_COLUMNS) <= shared
    # every shared column has the real file's type, except the documented DR9 -> DR10 change
    differ = {c for c in shared if mock[c][0] != real[c][0]}
    assert differ == {"maskbits"}
    # the mock's rows are DR10 DECam: nothing is removed by the RELEASE check
    r = read_catalog(p)
    assert r.removed == {} and r.table.num_rows == r.n_read > 0
    assert main([str(p)]) == 0


def test_planted_type_and_unit_faults_are_reported(tmp_path, real_data):
    t = Table.read(real_data.joinpath(*DR9_ROW), hdu=1)[[c.upper() for c in REQUIRED_COLUMNS]]
    t["MASKBITS"] = t["MASKBITS"].astype(np.int32)  # now DR10-conform
    t["FITBITS"] = t["FITBITS"].astype(np.int32)  # wrong: int16 in the model
    t["FLUX_R"].unit = "mag"  # wrong unit
    t["PSFSIZE_R"].unit = "arcsec"  # right unit
    del t["NOBS_Z"]
    p = tmp_path / "bad.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.table_to_hdu(t)]).writeto(p)
    assert fits_mismatches(p) == ["fitbits: TFORM J, data model I", "flux_r: TUNIT 'mag', data model 'nmgy'",
                                  "nobs_z: missing"]
    assert main([str(p)]) == 1
