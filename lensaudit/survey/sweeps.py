"""Sweep-file naming of the Legacy Surveys (DR8-DR10).

A sweep file covers a box of ``ra_step`` x ``dec_step`` degrees with corners on a
regular grid and is named ``sweep-<ra1><p|m><dec1>-<ra2><p|m><dec2>.fits`` with RA as
three digits and |Dec| as three digits, e.g. ``sweep-310m005-320p000.fits``.  The real
DR8-DR10 releases use 10 deg (RA) x 5 deg (Dec) boxes; the step is a parameter so that
other tilings can be named the same way.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

SWEEP_RA_STEP_DEG = 10.0
SWEEP_DEC_STEP_DEG = 5.0
_NAME_RE = re.compile(r"^sweep-(\d{3})([pm])(\d{3})-(\d{3})([pm])(\d{3})\.fits$")


@dataclass(frozen=True)
class SweepBox:
    ra1: float
    dec1: float
    ra2: float
    dec2: float

    @property
    def name(self) -> str:
        return sweep_name_for_box(self.ra1, self.dec1, self.ra2, self.dec2)

    def contains(self, ra_deg, dec_deg):
        """Half-open containment [ra1, ra2) x [dec1, dec2); works on numpy arrays."""
        return (ra_deg >= self.ra1) & (ra_deg < self.ra2) & (dec_deg >= self.dec1) & (dec_deg < self.dec2)


def _fmt_dec(dec: float) -> str:
    return f"{'p' if dec >= 0 else 'm'}{int(round(abs(dec))):03d}"


def sweep_name_for_box(ra1: float, dec1: float, ra2: float, dec2: float) -> str:
    return f"sweep-{int(round(ra1)):03d}{_fmt_dec(dec1)}-{int(round(ra2)):03d}{_fmt_dec(dec2)}.fits"


def sweep_box(ra_deg: float, dec_deg: float, ra_step: float = SWEEP_RA_STEP_DEG,
              dec_step: float = SWEEP_DEC_STEP_DEG) -> SweepBox:
    """The sweep box containing (ra, dec)."""
    if not (math.isfinite(ra_deg) and math.isfinite(dec_deg)) or abs(dec_deg) > 90:
        raise ValueError(f"invalid coordinates ra={ra_deg!r} dec={dec_deg!r}")
    ra1 = math.floor((ra_deg % 360.0) / ra_step) * ra_step
    dec1 = math.floor(dec_deg / dec_step) * dec_step
    return SweepBox(ra1, dec1, ra1 + ra_step, dec1 + dec_step)


def sweep_name(ra_deg: float, dec_deg: float, ra_step: float = SWEEP_RA_STEP_DEG,
               dec_step: float = SWEEP_DEC_STEP_DEG) -> str:
    return sweep_box(ra_deg, dec_deg, ra_step, dec_step).name


def is_sweep_file_name(name: str) -> bool:
    """True for a bare sweep file name (``sweep-310m005-320p000.fits``), not a path."""
    return bool(_NAME_RE.match(name))


def parse_sweep_name(name: str) -> SweepBox:
    """Box of a sweep file name (a path is accepted); ValueError if it is not one."""
    base = name.rsplit("/", 1)[-1]
    m = _NAME_RE.match(base)
    if not m:
        raise ValueError(f"not a sweep file name: {name!r}")
    ra1, s1, d1, ra2, s2, d2 = m.groups()
    dec1 = int(d1) * (1 if s1 == "p" else -1)
    dec2 = int(d2) * (1 if s2 == "p" else -1)
    return SweepBox(float(ra1), float(dec1), float(ra2), float(dec2))
