"""Mock stamps: deterministic, physical units, arcs for true lenses, artefacts, failure rows."""

from dataclasses import asdict, replace

import numpy as np
import pandas as pd
import pytest

from lensaudit.cutouts.qc import quality
from lensaudit.mock.config import MOCK_SWEEP_BOXES, MockSkyConfig
from lensaudit.mock.render import MockSweepImager
from lensaudit.mock.writer import read_truth, write_mock_sweep
from lensaudit.survey.reader import read_catalog_fits

CFG = MockSkyConfig(n_objects_per_sweep=4000)


@pytest.fixture(scope="module")
def sweep(tmp_path_factory, lenscat_all):
    d = tmp_path_factory.mktemp("mock")
    name = MOCK_SWEEP_BOXES[1].name
    p = write_mock_sweep(CFG, name, d / "s", d / "t", lenscat_all)
    rows = read_catalog_fits(p).to_pandas()
    rows["galaxy_id"] = rows.brickname + "_" + rows.objid.astype(str)
    return d, name, rows, read_truth(d / "t")


def test_stamps_are_deterministic_and_in_nanomaggies(sweep):
    d, name, rows, truth = sweep
    im = MockSweepImager(rows, truth, CFG)
    gal = rows[(rows.type == "DEV") & (rows.flux_r > 10) & np.isfinite(rows.ra)].iloc[0]
    a, b = im.stamp(gal), MockSweepImager(rows, truth, CFG).stamp(gal)
    assert a.dtype == np.float32 and a.shape == (3, 101, 101) and np.array_equal(a, b, equal_nan=True)
    # the stamp holds the object's catalogue flux (plus neighbours and noise)
    total = np.nansum(a[1][40:61, 40:61])
    assert 0.6 * gal.flux_r < total < 1.6 * gal.flux_r + 1.0


def test_true_lenses_carry_an_arc(sweep):
    d, name, rows, truth = sweep
    lenses = truth[(truth.role == "lens") & (truth.is_true_lens == True)]  # noqa: E712
    assert len(lenses)
    gid = lenses.sort_values("src_mag_r").galaxy_id.iloc[0]
    target = rows[rows.galaxy_id == gid].iloc[0]
    with_arc = MockSweepImager(rows, truth, CFG).stamp(target)
    no_arc_truth = truth.copy()
    no_arc_truth.loc[no_arc_truth.galaxy_id == gid, "is_true_lens"] = False
    without = MockSweepImager(rows, no_arc_truth, CFG).stamp(target)
    diff = np.nansum(with_arc - without, axis=(1, 2))
    row = lenses[lenses.galaxy_id == gid].iloc[0]
    unlensed_r = 10 ** (-0.4 * (row.src_mag_r - 22.5))
    assert diff[1] > unlensed_r  # lensing magnifies: more than the unlensed source flux


def test_artefacts_at_their_rates_become_qc_failures(sweep):
    d, name, rows, truth = sweep
    cfg = replace(CFG, nan_patch_rate=0.0, missing_band_rate=1.0, spike_rate=0.0)
    im = MockSweepImager(rows, truth, cfg)
    s = im.stamp(rows[np.isfinite(rows.ra)].iloc[0])
    assert quality(s, "grz")["qc_reason"].startswith("missing_band_")


def test_partition_job_turns_every_failure_into_a_row(sweep, tmp_path):
    from lensaudit.spark_jobs.cutouts import cutouts_one_partition

    d, name, rows, truth = sweep
    pq = tmp_path / "sweep.parquet"
    rows.to_parquet(pq)
    man = rows[(rows.type == "SER") & np.isfinite(rows.ra)].head(6)[["galaxy_id", "ra", "dec", "brickname"]].copy()
    man["sweep"], man["label"], man["split"] = name, 0, "train"
    man = pd.concat([man, pd.DataFrame([{"galaxy_id": "9999p999_1", "ra": 1.0, "dec": 1.0, "brickname": "9999p999",
                                        "sweep": name, "label": 0, "split": "train"}])])
    spec = {"kind": "mock", "mock_config": asdict(CFG), "sweep_parquet": {name: str(pq)}, "truth_dir": str(d / "t")}
    info = cutouts_one_partition(name, man, spec, str(tmp_path / "store"), str(tmp_path / "idx.parquet"))
    idx = pd.read_parquet(tmp_path / "idx.parquet")
    assert len(idx) == 7 and info["ok"] == int(idx.cutout_ok.sum()) >= 5
    bad = idx[idx.galaxy_id == "9999p999_1"].iloc[0]
    assert not bad.cutout_ok and "not a row of this mock sweep" in bad.fail_reason and bad.cutout_offset == -1
    # re-running gives the same shards (content-hashed names) and bytes
    first = sorted(p.name for p in (tmp_path / "store" / "shards").iterdir())
    b1 = (tmp_path / "idx.parquet").read_bytes()
    cutouts_one_partition(name, man, spec, str(tmp_path / "store"), str(tmp_path / "idx.parquet"))
    assert sorted(p.name for p in (tmp_path / "store" / "shards").iterdir()) == first
    assert (tmp_path / "idx.parquet").read_bytes() == b1
