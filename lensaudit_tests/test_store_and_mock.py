import hashlib

import numpy as np
import pandas as pd
import pytest
from astropy.io import fits

from lensaudit.mock.config import MOCK_SWEEP_BOXES, MockSkyConfig
from lensaudit.mock.writer import read_truth, write_mock_sweep
from lensaudit.store import atomic_path, safe_join, write_parquet_atomic
from lensaudit.survey.footprint import in_decals_footprint
from lensaudit.survey.reader import read_catalog_fits
from lensaudit.survey.schema import REQUIRED_COLUMNS

SMALL = MockSkyConfig(n_objects_per_sweep=3000, nan_coord_rate=0.005)


def test_safe_join_refuses_escapes(tmp_path):
    assert safe_join(tmp_path, "assets", "x.parquet") == tmp_path.resolve() / "assets" / "x.parquet"
    for bad in ("..", "../etc", "/etc/passwd", "a/../../b", ".hidden", ""):
        with pytest.raises(ValueError):
            safe_join(tmp_path, bad)


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "t.parquet"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("killed")
    assert not target.exists() and list(tmp_path.iterdir()) == []
    write_parquet_atomic(pd.DataFrame({"a": [1, 2]}), target)
    assert pd.read_parquet(target)["a"].tolist() == [1, 2]


def _sha(p):
    return hashlib.sha256(p.read_bytes()).hexdigest()


def test_mock_sweep_is_deterministic_real_schema_and_keeps_truth_apart(tmp_path, lenscat_all):
    name = MOCK_SWEEP_BOXES[0].name
    a = write_mock_sweep(SMALL, name, tmp_path / "a" / "sweeps", tmp_path / "a" / "truth", lenscat_all)
    b = write_mock_sweep(SMALL, name, tmp_path / "b" / "sweeps", tmp_path / "b" / "truth", lenscat_all)
    assert _sha(a) == _sha(b)
    cols = {n.lower() for n in fits.getdata(a, 1).names}
    assert set(REQUIRED_COLUMNS) <= cols
    assert not cols & {"role", "morphology", "is_true_lens", "theta_e_arcsec", "corrupt"}  # truth never in the sweep
    t = read_catalog_fits(a).to_pandas()
    truth = read_truth(tmp_path / "a" / "truth")
    assert len(truth) == len(t)
    box = MOCK_SWEEP_BOXES[0]
    ok = np.isfinite(t.ra)
    assert box.contains(t.ra[ok], t.dec[ok]).mean() > 0.999  # companions may spill by arcsec
    assert (~ok).sum() == truth["corrupt"].sum() > 0  # corrupt rows exist and are known
    assert set(t.type) <= {"PSF", "REX", "EXP", "DEV", "SER"}


def test_mock_lenses_sit_at_lenscat_positions(tmp_path, lenscat_all):
    name = MOCK_SWEEP_BOXES[1].name
    p = write_mock_sweep(SMALL, name, tmp_path / "s", tmp_path / "t", lenscat_all)
    t = read_catalog_fits(p).to_pandas()
    truth = read_truth(tmp_path / "t")
    lenses = truth[truth.role == "lens"].merge(lenscat_all[["lens_id", "ra", "dec", "grading"]], on="lens_id")
    assert len(lenses) > 3
    rows = t.assign(galaxy_id=t.brickname + "_" + t.objid.astype(str)).set_index("galaxy_id").loc[lenses.galaxy_id]
    sep = np.hypot((rows.ra.to_numpy() - lenses.ra.to_numpy()) * np.cos(np.deg2rad(lenses.dec.to_numpy())),
                   rows.dec.to_numpy() - lenses.dec.to_numpy()) * 3600
    assert sep.max() < 1.0
    assert (lenses.loc[lenses.grading == "confident", "is_true_lens"]).all()


def test_mock_covers_inside_and_outside_the_footprint():
    inside = [bool(in_decals_footprint(np.array([(b.ra1 + b.ra2) / 2]), np.array([(b.dec1 + b.dec2) / 2]))[0])
              for b in MOCK_SWEEP_BOXES]
    assert sum(inside) >= 8 and not all(inside)
    assert any(b.dec1 < -18 < b.dec2 for b in MOCK_SWEEP_BOXES)
