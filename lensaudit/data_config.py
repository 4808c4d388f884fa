"""The real-data configuration: where a run finds the survey (a YAML file such as
``configs/dr10_south.yaml``).

One file names the sweep files, the cutout source, the survey-bricks table and the cutout
service's rate limit; read with ``yaml.safe_load`` and validated here (typed, unknown keys
refused, every error one line naming the file and the key).  It is chosen per run, never
at import: ``LensauditSettings.data_config`` (the Dagster launchpad's
``resources.settings.config.data_config``), else ``$LENSAUDIT_DATA_CONFIG`` of the run's
process (``lensaudit materialize --data-config FILE`` sets it), else none, and then the
``sweeps`` and ``cutout_source`` resources keep the locations they were given
(``LENSAUDIT_SWEEPS``, ``LENSAUDIT_CUTOUT_SOURCE``, ``LENSAUDIT_CUTOUT_LOCATION``).

A local path in the file (no ``scheme://``) that is relative is read relative to the file's
own folder.  Layouts (the Legacy Surveys' own):

- ``sweeps.location``: a directory, an ``http(s)://`` mirror's index page or an
  ``s3://bucket/prefix`` holding ``sweep-<ra1><p|m><dec1>-<ra2><p|m><dec2>.fits`` files
  (DR10 south: ``.../dr10/south/sweep/10.1/``).
- ``cutouts.kind: coadd``: ``cutouts.location`` is the root holding
  ``coadd/<aaa>/<brick>/legacysurvey-<brick>-image-<band>.fits.fz`` and the ``-invvar-``
  images (DR10 south: ``.../dr10/south``; ``lensaudit.cutouts.coadd``).
  ``cutouts.kind: http``: ``cutouts.location`` is the ``fits-cutout`` service URL
  (``lensaudit.cutouts.http``), and ``rate_limit`` is required.
- ``survey_bricks``: the survey-bricks table (FITS or CSV: brickname, ra, dec,
  psfsize_<grz> [arcsec], psfdepth_<grz> [1/nmgy^2]), coverage, depth and PSF per brick
  (``lensaudit.survey.bricks.read_survey_bricks``).
- ``rate_limit``: the service's global rate (requests/s, all machines together); each
  machine waits ``nodes / global_requests_per_s`` between requests (``nodes`` from the Spark
  conf unless given; ``lensaudit.cutouts.ratelimit``), and a run may spend at most
  ``retry_budget_per_run`` retries over all its cutouts.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

#: the environment variable naming the run's data configuration file
DATA_CONFIG_ENV = "LENSAUDIT_DATA_CONFIG"


class DataConfigError(ValueError):
    """A data configuration file that cannot be used (missing, not YAML, invalid)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _remote(location: str) -> bool:
    return "://" in location


class SweepsConfig(_Strict):
    location: str = Field(description="directory, http(s):// mirror index or s3:// prefix of sweep-*.fits files")

    @field_validator("location")
    @classmethod
    def _scheme(cls, v: str) -> str:
        v = v.strip()
        if not v:
            raise ValueError("must not be empty")
        if _remote(v) and v.split("://", 1)[0].lower() not in ("http", "https", "s3", "s3a"):
            raise ValueError(f"{v!r}: use a directory, http(s):// or s3://")
        return v


class CutoutsConfig(_Strict):
    kind: Literal["coadd", "http"] = Field(description="coadd: brick images and invvar; http: the cutout service")
    location: str = Field(description="coadd: the root of coadd/<aaa>/<brick>/; http: the fits-cutout URL")
    layer: str = Field(default="ls-dr10", description="the cutout service's layer (http only)")

    @model_validator(mode="after")
    def _location(self):
        loc = self.location.strip()
        if not loc:
            raise ValueError("cutouts.location must not be empty")
        if self.kind == "http" and loc.split("://", 1)[0].lower() not in ("http", "https"):
            raise ValueError(f"cutouts.location of kind http must be an http(s):// URL, got {loc!r}")
        return self


class RateLimitConfig(_Strict):
    global_requests_per_s: float = Field(gt=0, description="what the service allows from all our machines together")
    nodes: int | None = Field(default=None, ge=1, description="machines sharing the rate; null: from the Spark conf")
    retry_budget_per_run: int = Field(default=1000, ge=0, description="retries of all cutouts of one run together")
    retries_per_cutout: int = Field(default=4, ge=0)
    timeout_s: float = Field(default=30.0, gt=0)


class DataConfig(_Strict):
    """A validated data configuration (see the module docstring)."""

    name: str = ""
    sweeps: SweepsConfig
    cutouts: CutoutsConfig
    survey_bricks: str = Field(default="", description="survey-bricks table (FITS or CSV), path or URL")
    rate_limit: RateLimitConfig | None = None
    source_file: str = Field(default="", exclude=True, description="the file it was read from (set by the loader)")

    @model_validator(mode="after")
    def _http_needs_rate(self):
        if self.cutouts.kind == "http" and self.rate_limit is None:
            raise ValueError("cutouts.kind http needs a rate_limit section (global_requests_per_s)")
        return self


def _format(exc: ValidationError) -> str:
    parts = []
    for e in exc.errors():
        where = ".".join(str(p) for p in e["loc"]) or "(top level)"
        if e["type"] == "extra_forbidden":
            parts.append(f"unknown key {where!r}")
        elif e["type"] == "missing":
            parts.append(f"missing key {where!r}")
        else:
            parts.append(f"{where}: {e['msg']}")
    return "; ".join(parts)


def _resolve_local(location: str, base: Path) -> str:
    if not location or _remote(location) or Path(location).is_absolute():
        return location
    return str((base / location).resolve())


def parse_data_config(raw: object, source: str = "<data config>", base: Path | None = None) -> DataConfig:
    """Validate ``raw`` (the YAML document, a mapping); relative local paths are resolved
    against ``base``.  ``DataConfigError`` naming ``source`` and the offending keys."""
    if not isinstance(raw, dict):
        raise DataConfigError(f"{source}: a data configuration is a mapping of keys (sweeps, cutouts, ...), "
                              f"got {type(raw).__name__}")
    if "source_file" in raw:
        raise DataConfigError(f"{source}: unknown key 'source_file'")
    try:
        cfg = DataConfig(**raw, source_file=source)
    except ValidationError as exc:
        raise DataConfigError(f"{source}: {_format(exc)}") from None
    except TypeError as exc:  # e.g. a non-string key
        raise DataConfigError(f"{source}: {exc}") from None
    if base is None:
        return cfg
    return cfg.model_copy(update={
        "sweeps": cfg.sweeps.model_copy(update={"location": _resolve_local(cfg.sweeps.location, base)}),
        "cutouts": cfg.cutouts.model_copy(update={"location": _resolve_local(cfg.cutouts.location, base)}),
        "survey_bricks": _resolve_local(cfg.survey_bricks, base),
    })


def load_data_config(path: str | os.PathLike) -> DataConfig:
    """Read and validate a data configuration file (``DataConfigError`` with one clear line)."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise DataConfigError(f"data configuration {str(path)!r} is not a file")
    try:
        raw = yaml.safe_load(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise DataConfigError(f"{p}: cannot be read: {exc}") from None
    except yaml.YAMLError as exc:
        raise DataConfigError(f"{p}: not valid YAML: {' '.join(str(exc).split())}") from None
    return parse_data_config(raw, str(p), p.resolve().parent)


def data_config_at_run_time(explicit: str = "") -> DataConfig | None:
    """The run's data configuration, resolved now: ``explicit`` (a path), else
    ``$LENSAUDIT_DATA_CONFIG``, else None."""
    path = explicit or os.environ.get(DATA_CONFIG_ENV, "")
    return load_data_config(path) if path else None
