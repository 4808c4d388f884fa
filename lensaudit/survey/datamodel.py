"""The DR10 Tractor data model of the columns lensaudit reads, and checks against it.

``DR10_TRACTOR_MODEL`` transcribes, for every column of ``lensaudit.survey.schema``, the
type and unit of the Legacy Surveys DR10 catalogue data model
(https://www.legacysurvey.org/dr10/catalogs/, source ``legacysurvey/legacysurvey``
``pages/dr10/catalogs.rst``).  Types are FITS TFORM codes (I int16, J int32, E float32,
D float64, L logical, nA char[n]); units are astropy unit strings ("" = dimensionless;
``nmgy`` = nanomaggy, ``nmgy-2`` = 1/nanomaggy^2).  The DR9 model is the same for these
columns except ``MASKBITS`` (int16 in DR9, int32 in DR10: DR10 added bits above 15).

``fits_mismatches(path)`` compares a FITS file (a real Tractor/sweep file or a mock sweep)
with the model, ``schema_mismatches()`` compares ``SWEEP_SCHEMA``/``SWEEP_UNITS``.  Run as
a script to check files: ``python -m lensaudit.survey.datamodel FILE...`` (exit 1 on a
mismatch).
"""

from __future__ import annotations

import os
import re
import sys

from lensaudit.survey.instrument import BANDS
from lensaudit.survey.schema import REQUIRED_COLUMNS, SWEEP_SCHEMA, SWEEP_UNITS

_BASE = {
    "release": ("I", ""), "brickid": ("J", ""), "brickname": ("8A", ""), "objid": ("J", ""),
    "type": ("3A", ""), "ra": ("D", "deg"), "dec": ("D", "deg"), "ebv": ("E", "mag"),
    "maskbits": ("J", ""), "fitbits": ("I", ""), "shape_r": ("E", "arcsec"), "shape_e1": ("E", ""),
    "shape_e2": ("E", ""), "sersic": ("E", ""),
}
_PER_BAND = {
    "flux_{b}": ("E", "nmgy"), "flux_ivar_{b}": ("E", "nmgy-2"), "mw_transmission_{b}": ("E", ""),
    "nobs_{b}": ("I", ""), "psfsize_{b}": ("E", "arcsec"), "psfdepth_{b}": ("E", "nmgy-2"),
    "galdepth_{b}": ("E", "nmgy-2"), "fiberflux_{b}": ("E", "nmgy"), "allmask_{b}": ("I", ""),
}
#: column -> (FITS TFORM, astropy unit) in the DR10 Tractor data model
DR10_TRACTOR_MODEL: dict[str, tuple[str, str]] = {
    **_BASE, **{t.format(b=b): v for t, v in _PER_BAND.items() for b in BANDS}}
#: the DR9 model differs from DR10 for these columns only
DR9_TRACTOR_MODEL: dict[str, tuple[str, str]] = {**DR10_TRACTOR_MODEL, "maskbits": ("I", "")}

_ARROW_TO_TFORM = {"int16": "I", "int32": "J", "int64": "K", "float": "E", "double": "D", "bool": "L", "string": "A"}


def _tform(fmt: str) -> str:
    """Normalised TFORM of a scalar column: '1J' -> 'J', '8A' stays '8A'."""
    m = re.fullmatch(r"(\d*)([A-Z])", fmt.strip().upper())
    if not m:
        return fmt.strip().upper()
    rep, code = m.groups()
    return f"{int(rep)}A" if code == "A" else (code if rep in ("", "1") else f"{rep}{code}")


def _same_unit(a: str, b: str) -> bool:
    import astropy.units as u

    try:
        return u.Unit(a or "") == u.Unit(b or "")
    except ValueError:
        return False


def fits_columns(path: str | os.PathLike, hdu: int = 1) -> dict[str, tuple[str, str]]:
    """Lower-case column name -> (normalised TFORM, TUNIT or "") of a FITS table."""
    from astropy.io import fits

    with fits.open(os.fspath(path)) as h:
        return {c.name.lower(): (_tform(str(c.format)), (c.unit or "").strip()) for c in h[hdu].columns}


def fits_mismatches(path: str | os.PathLike, hdu: int = 1, model: dict[str, tuple[str, str]] = DR10_TRACTOR_MODEL,
                    columns: tuple[str, ...] = REQUIRED_COLUMNS) -> list[str]:
    """Where a FITS file's ``columns`` differ from ``model``: missing, other type, other
    unit (a TUNIT is compared when the file has one; files without TUNIT pass)."""
    have = fits_columns(path, hdu)
    out = []
    for name in columns:
        want_t, want_u = model[name]
        if name not in have:
            out.append(f"{name}: missing")
            continue
        t, unit = have[name]
        if t != want_t:
            out.append(f"{name}: TFORM {t}, data model {want_t}")
        if unit and not _same_unit(unit, want_u):
            out.append(f"{name}: TUNIT {unit!r}, data model {want_u or 'dimensionless'!r}")
    return out


def schema_mismatches(model: dict[str, tuple[str, str]] = DR10_TRACTOR_MODEL) -> list[str]:
    """Where ``SWEEP_SCHEMA`` types / ``SWEEP_UNITS`` differ from ``model`` (string widths
    are the writer's business and are checked on files)."""
    out = []
    for f in SWEEP_SCHEMA:
        want_t, want_u = model[f.name]
        t = _ARROW_TO_TFORM.get(str(f.type), str(f.type))
        if t != (want_t[-1] if want_t.endswith("A") else want_t):
            out.append(f"{f.name}: schema {f.type} ({t}), data model {want_t}")
        if not _same_unit(SWEEP_UNITS[f.name], want_u):
            out.append(f"{f.name}: schema unit {SWEEP_UNITS[f.name]!r}, data model {want_u!r}")
    return out


def main(argv: list[str] | None = None) -> int:
    paths = sys.argv[1:] if argv is None else argv
    problems = [f"SWEEP_SCHEMA: {m}" for m in schema_mismatches()]
    for p in paths:
        problems += [f"{p}: {m}" for m in fits_mismatches(p)]
    print("\n".join(problems) if problems else f"OK: schema and {len(paths)} file(s) match the DR10 data model")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
