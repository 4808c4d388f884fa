"""Where stamps come from: the mock sky's renderer (default), coadd bricks, or the
Legacy Surveys cutout service.  LENSAUDIT_CUTOUT_SOURCE / LENSAUDIT_CUTOUT_LOCATION pick
them when the code location loads.  ``http_min_interval_s``: the cutout service's rate
limit, one request per interval per machine, shared by all Spark tasks there through a
lock file; on a cluster of N machines set it to N x the service's allowed interval."""

from dataclasses import asdict
from pathlib import Path

import dagster as dg

from lensaudit.store import asset_files


class CutoutSourceResource(dg.ConfigurableResource):
    kind: str = "mock"  # mock | coadd | http
    location: str = ""  # coadd: directory or URL prefix of bricks; http: the fits-cutout URL
    http_min_interval_s: float = 0.2  # = lensaudit.cutouts.http.DEFAULT_MIN_INTERVAL_S (a test pins them)

    def spec(self, home: Path, profile) -> dict:
        """A JSON-able description that a Spark task turns into a source."""
        if self.kind == "mock":
            sweeps = {f.stem + ".fits": str(f) for f in asset_files(home, "sweep_catalog")}
            truth = home / "mock_sky" / "truth"
            if not truth.is_dir():
                raise dg.Failure("the mock cutout source needs the mock sky's truth tables; "
                                 "it only works with the mock sweeps (LENSAUDIT_SWEEPS=mock)")
            return {"kind": "mock", "mock_config": asdict(profile.mock), "sweep_parquet": sweeps, "truth_dir": str(truth)}
        if self.kind == "coadd":
            if not self.location:
                raise dg.Failure("coadd cutout source needs a location (LENSAUDIT_CUTOUT_LOCATION)")
            return {"kind": "coadd", "location": self.location}
        if self.kind == "http":
            from lensaudit.cutouts.http import DEFAULT_BASE_URL

            if not self.http_min_interval_s >= 0:
                raise dg.Failure(f"http_min_interval_s must be >= 0, got {self.http_min_interval_s}")
            return {"kind": "http", "location": self.location or DEFAULT_BASE_URL, "cache_dir": str(home / "http_cache"),
                    "min_interval_s": float(self.http_min_interval_s)}
        raise dg.Failure(f"unknown cutout source kind {self.kind!r} (mock, coadd, http)")
