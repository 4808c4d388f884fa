"""Find and image a mock-sky object by position (for ``lensaudit cutout --source mock``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lensaudit.cutouts.result import Cutout
from lensaudit.mock.config import MockSkyConfig, mock_sky_dirs
from lensaudit.sampling.geometry import separation_arcsec
from lensaudit.survey.instrument import BANDS, STAMP_PIX

MATCH_ARCSEC = 1.5


def mock_cutout(ra: float, dec: float, home: Path, config: MockSkyConfig, bands: str = BANDS, size: int = STAMP_PIX) -> Cutout:
    """The stamp of the mock object nearest (ra, dec) within 1.5", or a failure."""
    from lensaudit.catalogs.lenscat_catalog import load_lenscat
    from lensaudit.mock.render import MockSweepImager
    from lensaudit.mock.writer import read_truth, write_mock_sweep
    from lensaudit.survey.reader import read_catalog_fits

    if not (np.isfinite(ra) and np.isfinite(dec)):
        return Cutout.failure(bands, "invalid_coords")
    if set(bands) - set(BANDS):
        return Cutout.failure(bands, f"the mock sky has bands g, r, z only (asked {bands!r})")
    box = next((b for b in config.sweep_boxes if b.contains(ra, dec)), None)
    if box is None:
        return Cutout.failure(bands, "outside_mock_sky")
    path = write_mock_sweep(config, box.name, *mock_sky_dirs(home), load_lenscat())
    rows = read_catalog_fits(path).to_pandas()
    rows["galaxy_id"] = rows["brickname"] + "_" + rows["objid"].astype(str)
    sep = separation_arcsec(np.full(len(rows), ra), np.full(len(rows), dec), rows["ra"].to_numpy(), rows["dec"].to_numpy())
    i = int(np.nanargmin(sep)) if np.isfinite(sep).any() else -1
    if i < 0 or sep[i] > MATCH_ARCSEC:
        return Cutout.failure(bands, f"no mock object within {MATCH_ARCSEC}\"")
    truth = read_truth(mock_sky_dirs(home)[1])
    target = next(rows.iloc[[i]].itertuples(index=False))
    stamp = MockSweepImager(rows, truth[truth["sweep"] == box.name], config, size).stamp(target)
    keep = [BANDS.index(b) for b in bands]
    return Cutout(True, bands, stamp[keep], "", {"ra": float(target.ra), "dec": float(target.dec),
                                                   "galaxy_id": target.galaxy_id, "source": "mock", "sep_arcsec": float(sep[i])})
