"""Coadd cutouts grouped by brick: each brick band is read once for all its targets, and the
stamps are byte-identical to one-target reads (real DR6 brick; a synthetic grz brick for the
Spark cutouts job)."""

from collections import Counter

import numpy as np
import pandas as pd
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from lensaudit.cutouts.coadd import CoaddSource
from lensaudit.spark_jobs.cutouts import brick_chunks, cutouts_one_partition
from lensaudit.survey.bricks import brick_at

BRICK = "dr6_coadd_brick_0959p805"


def _count_opens(monkeypatch) -> Counter:
    """Counts the FITS files opened (by file name) through astropy.io.fits.open (a plain
    helper, not a fixture: the fault suite calls these tests with conftest fixtures only)."""
    counts: Counter = Counter()
    real_open = fits.open

    def counting(path, *a, **kw):
        counts[str(path).rsplit("/", 1)[-1]] += 1
        return real_open(path, *a, **kw)

    monkeypatch.setattr(fits, "open", counting)
    return counts


def _same(a, b):
    assert a.ok == b.ok and a.reason == b.reason and a.bands == b.bands, (a.reason, b.reason)
    assert a.meta == b.meta
    if a.ok:
        assert a.data.dtype == b.data.dtype == np.float32 and a.data.shape == b.data.shape
        assert a.data.tobytes() == b.data.tobytes()  # NaN patterns included
    else:
        assert a.data is None and b.data is None


def _targets(real_data):
    """Targets on the real brick: inside its data, in its image margin (another brick: not
    here), past its edge for a large stamp, and an invalid coordinate."""
    hdr = fits.getheader(real_data / BRICK / "legacysurvey-0959p805-image-g.fits.fz", 1)
    wcs = WCS(hdr)
    rng = np.random.default_rng(3)
    pix = np.c_[rng.uniform(60, 820, 40), rng.uniform(60, 1800, 40)]
    pix = np.r_[pix, [[10.0, 951.0], [300.0, 400.5], [411.0, 951.0]]]
    ra, dec = wcs.pixel_to_world_values(pix[:, 0], pix[:, 1])
    b = brick_at(95.95, 80.5)
    ra = np.r_[ra, (b.ra1 + b.ra2) / 2, np.nan]
    dec = np.r_[dec, b.dec2 - 0.001, 1.0]
    return ra, dec


@pytest.mark.parametrize("bands,size", [("g", 101), ("gr", 101), ("g", 301), ("g", 64)])
def test_grouped_cutouts_are_byte_identical_to_one_target_reads(real_data, bands, size):
    ra, dec = _targets(real_data)
    grouped = CoaddSource(str(real_data / BRICK)).cutouts(ra, dec, bands=bands, size=size)
    one = CoaddSource(str(real_data / BRICK))  # one target per call (its LRU cache keeps the brick)
    assert len(grouped) == len(ra)
    for g, a, d in zip(grouped, ra, dec):
        _same(g, one.cutout(float(a), float(d), bands=bands, size=size))
    reasons = Counter(c.reason for c in grouped)
    if bands == "g" and size == 101:
        assert reasons[""] >= 30 and reasons["missing_band_g"] >= 1 and reasons["invalid_coords"] == 1
    if bands == "gr":
        assert reasons["missing_band_r"] >= 30 and reasons[""] == 0
    if size == 301:
        assert reasons["brick_edge"] >= 1
    if size == 64:
        assert reasons["size must be odd, got 64"] == len(ra) - 1  # and one invalid_coords


def test_grouped_cutouts_read_each_brick_band_once(real_data, monkeypatch):
    opens = _count_opens(monkeypatch)
    ra, dec = _targets(real_data)
    cuts = CoaddSource(str(real_data / BRICK)).cutouts(ra, dec, bands="g")
    assert sum(c.ok for c in cuts) >= 30
    assert opens["legacysurvey-0959p805-image-g.fits.fz"] == 1
    assert opens["legacysurvey-0959p805-invvar-g.fits.fz"] == 1
    opens.clear()
    one = CoaddSource(str(real_data / BRICK), cache_bricks=0)
    for a, d in zip(ra[:5], dec[:5]):
        one.cutout(float(a), float(d), bands="g")
    assert opens["legacysurvey-0959p805-image-g.fits.fz"] == 5  # the per-target path it replaces


def test_grouped_cutouts_refuse_mismatched_coordinates(real_data):
    with pytest.raises(ValueError, match="differ in length"):
        CoaddSource(str(real_data / BRICK)).cutouts([1.0, 2.0], [1.0])


def test_brick_chunks_never_split_a_brick():
    names = ["a"] * 3 + ["b"] * 5 + ["c"] * 2 + ["d"] * 9 + ["e"]
    chunks = brick_chunks(names, max_rows=8)
    assert chunks == [(0, 8), (8, 10), (10, 19), (19, 20)]
    assert brick_chunks([], 8) == []


def _grz_brick(root, brick):
    """A 400x400 grz brick at ``brick``'s centre, Legacy Surveys layout, RICE-compressed like
    the survey's .fits.fz (image + invvar, a no-data block)."""
    b = brick_at(*brick)
    ra, dec = (b.ra1 + b.ra2) / 2, (b.dec1 + b.dec2) / 2
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [ra, dec]
    w.wcs.crpix = [200.5, 200.5]
    w.wcs.cdelt = [-0.262 / 3600, 0.262 / 3600]
    d = root / "coadd" / b.brickname[:3] / b.brickname
    d.mkdir(parents=True)
    rng = np.random.default_rng(7)
    for band in "grz":
        img = (0.05 + rng.normal(0, 0.01, (400, 400))).astype(np.float32)  # sky level: quantised zeros rare
        ivar = np.full((400, 400), 1e4, np.float32)
        ivar[:40, :40] = 0
        for kind, arr in (("image", img), ("invvar", ivar)):
            fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(arr, w.to_header(), compression_type="RICE_1")]).writeto(
                d / f"legacysurvey-{b.brickname}-{kind}-{band}.fits.fz")
    return b, w


def test_spark_cutouts_task_reads_each_brick_band_once(tmp_path, monkeypatch):
    b, w = _grz_brick(tmp_path / "mirror", (95.95, 80.5))
    opens = _count_opens(monkeypatch)
    rng = np.random.default_rng(1)
    x, y = rng.uniform(80, 320, 300), rng.uniform(80, 320, 300)  # more rows than one batch
    ra, dec = w.pixel_to_world_values(x, y)
    far = brick_at(10.0, 10.0).brickname
    man = pd.DataFrame({"galaxy_id": [f"{b.brickname}_{i}" for i in range(300)] + [f"{far}_0"],
                        "ra": np.r_[ra, 10.0], "dec": np.r_[dec, 10.0],
                        "brickname": [b.brickname] * 300 + [far]})
    man["sweep"], man["label"], man["split"] = "sweep-x.fits", 0, "train"
    spec = {"kind": "coadd", "location": str(tmp_path / "mirror")}
    info = cutouts_one_partition("sweep-x.fits", man, spec, str(tmp_path / "store"), str(tmp_path / "idx.parquet"))
    assert info["rows"] == 301 and info["ok"] == 300
    assert info["fail_reasons"] == {"source: missing_band_g": 1}
    for band in "grz":  # 300 targets, one read of each file
        for kind in ("image", "invvar"):
            assert opens[f"legacysurvey-{b.brickname}-{kind}-{band}.fits.fz"] == 1
    idx = pd.read_parquet(tmp_path / "idx.parquet").set_index("galaxy_id")
    from lensaudit.cutouts.store import CutoutReader

    ok = idx[idx["cutout_ok"]].reset_index()
    stamps = CutoutReader(tmp_path / "store").read(ok)
    one = CoaddSource(str(tmp_path / "mirror"))
    for k in (0, 137, 299):
        r = ok.iloc[k]
        assert stamps[k].tobytes() == one.cutout(float(r.ra), float(r.dec)).data.tobytes()
