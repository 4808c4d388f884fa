"""The gate type, the stored-data view the gates read, and the helpers that register a gate.

``StoreView`` reads what is stored under ``$LENSAUDIT_HOME/assets`` (cached per view, so one
evaluation reads each table once for all gates), and only assets and declared side tables
(``lensaudit.tables.readable_table``); ``GateSpec`` binds a gate function to its asset, severity
and description; ``spec`` wraps the function so that a gate that cannot be computed (missing
table, missing column, bad value, undeclared table) fails instead of raising.
Gate families import from here and declare their gates in their own ``specs()`` (name and
severity written once, in the family module); ``lensaudit.gates.registry`` concatenates them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Callable

import pandas as pd
import pyarrow.parquet as pq

from lensaudit.config import Profile
from lensaudit.gates.result import ERROR, GateResult, cannot_compute
from lensaudit.gates.schema_gates import schema_matches
from lensaudit.store import asset_files
from lensaudit.tables import SCHEMAS, read_table, readable_table


@dataclass
class StoreView:
    home: Path
    profile: Profile
    _memo: dict = field(default_factory=dict, repr=False)

    def _where(self, asset: str) -> Path:
        """The home whose ``assets/`` folder holds ``asset`` (the view's own home here)."""
        return self.home

    def has(self, asset: str) -> bool:
        return bool(asset_files(self._where(readable_table(asset)), asset))

    def memo(self, key: str, compute: Callable):
        """``compute()`` once per view (stored tables are read once for all gates)."""
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]

    def table(self, asset: str) -> pd.DataFrame:
        """An asset's rows or a declared side table's (``lensaudit.tables.SIDE_TABLES``); any
        other name raises ``UndeclaredTableError``, so the gate reading it cannot be computed."""
        return self.memo(f"table:{asset}", lambda: read_table(self._where(asset), asset))

    @cached_property
    def lenscat_all(self) -> pd.DataFrame:
        """Every known lens of the run: lenscat, plus the mock sky's own lenses when the home holds
        the mock sky (recomputed from the profile, never read from what the producer stored)."""
        from lensaudit.catalogs.lenscat_catalog import load_lenscat
        from lensaudit.mock.config import holds_mock_sky
        from lensaudit.mock.lens_supplement import known_lenses

        return known_lenses(load_lenscat(), self.profile.mock if holds_mock_sky(self.home) else None)


@dataclass(frozen=True)
class GateSpec:
    name: str
    asset: str
    severity: str
    blocking: bool
    description: str
    evaluate: Callable[[StoreView], GateResult]
    plot: str = ""  # a PNG under $LENSAUDIT_HOME/plots/ that the asset draws for this gate


def schema_gate(asset: str) -> GateSpec:
    def run(v: StoreView) -> GateResult:
        return schema_matches(asset, [pq.read_schema(f) for f in asset_files(v.home, asset)], SCHEMAS[asset])

    return GateSpec(f"{asset}_schema", asset, ERROR, True, f"stored {asset} matches its declared column schema", run)


def guard(spec_name: str, asset: str, severity: str, fn):
    def run(v: StoreView) -> GateResult:
        try:
            return fn(v)
        except FileNotFoundError as exc:
            return cannot_compute(spec_name, asset, severity, str(exc))
        except (KeyError, ValueError) as exc:
            return cannot_compute(spec_name, asset, severity, f"{type(exc).__name__}: {exc}")
    return run


def spec(name, asset, severity, blocking, description, fn, plot: str = "") -> GateSpec:
    return GateSpec(name, asset, severity, blocking, description, guard(name, asset, severity, fn), plot)


def audit_rng() -> tuple["np.random.Generator", int]:
    """(generator, seed) for a gate's random sample: seeded from the OS's entropy, so whoever wrote
    the stored table cannot know which rows will be checked; the seed goes into the gate's
    details, so a failing sample can be drawn again."""
    import os

    import numpy as np

    seed = int.from_bytes(os.urandom(8), "little")
    return np.random.default_rng(seed), seed


def with_audit_rng(fn: Callable[[StoreView, "np.random.Generator"], GateResult]) -> Callable[[StoreView], GateResult]:
    """The gate ``fn(view, rng)`` run with a fresh ``audit_rng()``, its seed recorded in the result's
    details (``random_sample_seed``)."""
    def run(v: StoreView) -> GateResult:
        rng, seed = audit_rng()
        res = fn(v, rng)
        res.details["random_sample_seed"] = seed
        return res
    return run


def audit_sample(n: int, k: int, rng: "np.random.Generator") -> "np.ndarray":
    """Sorted positions among ``n`` rows: ``k`` evenly spaced (the same every run) and up to
    ``k`` more drawn by ``rng`` from the others (all ``n`` when n <= 2k)."""
    import numpy as np

    fixed = np.unique(np.linspace(0, n - 1, min(k, n)).round().astype(int)) if n else np.zeros(0, int)
    rest = np.setdiff1d(np.arange(n), fixed)
    drawn = rng.choice(rest, min(k, len(rest)), replace=False) if len(rest) else rest
    return np.sort(np.concatenate([fixed, drawn]).astype(int))


def one_of(results: list[GateResult], name: str) -> GateResult:
    """The result named ``name`` among those a gate function computed together (e.g. the three
    S/N quantile gates); a gate is found by its name, never by its position in the list."""
    for r in results:
        if r.name == name:
            return r
    raise KeyError(f"gate {name!r} not among the computed results {[r.name for r in results]}")
