"""The DR9/DR10 Tractor / sweep columns lensaudit reads, with dtypes and units.

Names are the lower-case versions of the FITS column names of the Legacy Surveys
catalogues (https://www.legacysurvey.org/dr10/catalogs/).  A file that lacks any of
``REQUIRED_COLUMNS`` cannot be used (DR8 files, for instance, have no SHAPE_R, SERSIC or
PSFSIZE_*: they use SHAPEDEV_*/SHAPEEXP_* and carry no PSF size).
"""

from __future__ import annotations

import re

import pyarrow as pa
from lensaudit.survey.instrument import BANDS


# (name, arrow type, description with units)
_BASE = [
    ("release", pa.int16(), "Legacy Surveys RELEASE code: camera + processing run (DR10 DECam: 9999/10000/10300)"),
    ("brickid", pa.int32(), "brick id (1-based, south to north)"),
    ("brickname", pa.string(), "brick name, e.g. 0959p805"),
    ("objid", pa.int32(), "Tractor object id within the brick"),
    ("type", pa.string(), "Tractor morphological type: PSF, REX, EXP, DEV, SER, DUP"),
    ("ra", pa.float64(), "right ascension ICRS [deg]"),
    ("dec", pa.float64(), "declination ICRS [deg]"),
    ("ebv", pa.float32(), "Galactic E(B-V) from SFD98 [mag]"),
    ("maskbits", pa.int32(), "MASKBITS bitmask (see lensaudit.survey.maskbits)"),
    ("fitbits", pa.int16(), "FITBITS bitmask (int16 in the DR9/DR10 data model)"),
    ("shape_r", pa.float32(), "half-light radius of the model [arcsec]"),
    ("shape_e1", pa.float32(), "ellipticity component 1 (Tractor convention) [dimensionless]"),
    ("shape_e2", pa.float32(), "ellipticity component 2 (Tractor convention) [dimensionless]"),
    ("sersic", pa.float32(), "Sersic index (1 for REX/EXP, 4 for DEV) [dimensionless]"),
]
_PER_BAND = [
    ("flux_{b}", pa.float32(), "model flux in {b}, not dereddened [nmgy]"),
    ("flux_ivar_{b}", pa.float32(), "inverse variance of flux_{b} [1/nmgy^2]"),
    ("mw_transmission_{b}", pa.float32(), "Galactic transmission in {b} [linear, 0-1]"),
    ("nobs_{b}", pa.int16(), "number of exposures at the object centre in {b} [count]"),
    ("psfsize_{b}", pa.float32(), "weighted average PSF FWHM in {b} [arcsec]"),
    ("psfdepth_{b}", pa.float32(), "5-sigma point-source depth in {b} as inverse variance [1/nmgy^2]"),
    ("galdepth_{b}", pa.float32(), "5-sigma 0.45\" exponential-galaxy depth in {b} as inverse variance [1/nmgy^2]"),
    ("fiberflux_{b}", pa.float32(), "flux within a 1.5\" fibre, 1\" seeing, in {b} [nmgy]"),
    ("allmask_{b}", pa.int16(), "ALLMASK bits at the centre in {b}"),
]


def _expand() -> list[tuple[str, pa.DataType, str]]:
    cols = list(_BASE)
    for tmpl, typ, desc in _PER_BAND:
        for b in BANDS:
            cols.append((tmpl.format(b=b), typ, desc.format(b=b)))
    return cols


#: unit in a description's trailing [...] -> astropy unit string ("" = dimensionless)
_UNIT_OF_BRACKET = {"nmgy": "nmgy", "1/nmgy^2": "nmgy-2", "deg": "deg", "mag": "mag", "arcsec": "arcsec",
                    "dimensionless": "", "linear, 0-1": "", "count": ""}


def _unit(desc: str) -> str:
    m = re.search(r"\[([^\]]+)\]$", desc)
    return _UNIT_OF_BRACKET[m.group(1)] if m else ""  # KeyError: a new unit must be added to the map


SWEEP_COLUMNS: list[tuple[str, pa.DataType, str]] = _expand()
#: column -> unit (astropy string, "" = dimensionless), as in the DR10 Tractor data model
SWEEP_UNITS: dict[str, str] = {n: _unit(d) for n, _, d in SWEEP_COLUMNS}
SWEEP_SCHEMA = pa.schema([pa.field(n, t, metadata={"description": d, "unit": SWEEP_UNITS[n]})
                          for n, t, d in SWEEP_COLUMNS])
REQUIRED_COLUMNS = tuple(n for n, _, _ in SWEEP_COLUMNS)
#: Optional: present in Tractor files, absent from sweeps (which hold primary rows only).
OPTIONAL_COLUMNS = ("brick_primary",)

# RELEASE codes, from the Legacy Surveys "Mapping RELEASE to camera and filters" page
# (https://www.legacysurvey.org/release/; source legacysurvey/legacysurvey pages/release.rst).
#: DR10 (south, DECam g,r,i,z): 9999 / 10000 / 10300
DR10_DECAM_RELEASES = frozenset({9999, 10000, 10300})
#: BASS + MzLS ("north", Bok g,r + Mosaic z, PHOTSYS 'N'): DR4 4000, DR6 6000, DR8 8001, DR9 9011.
#: DR10 re-used DR9 north (9011) for Dec > 32.375 deg; it re-processed only DECam data.
NORTH_RELEASES = frozenset({4000, 6000, 8001, 9011})
#: DECam rows of earlier processing runs (DR3 3000, DR5 5000, DR7 7000, DR8 8000, DR9 9010/9012)
OLD_DECAM_RELEASES = frozenset({3000, 5000, 7000, 8000, 9010, 9012})


class SchemaError(ValueError):
    """A catalogue file does not carry the columns lensaudit needs, or holds values that
    their schema types cannot carry unchanged (overflow, NaN in an integer column, ...)."""


def galaxy_id(brickname, objid) -> str:
    """Unique object id in a release: ``<brickname>_<objid>`` (as in the cutout file names)."""
    return f"{brickname}_{int(objid)}"
