"""Coarse DR10 DECam ("south", DECaLS + DES) footprint.

A source is in the footprint when it is observed with DECam in DR10: Dec below
32.375 deg in the north Galactic cap (above that BASS/MzLS images it, DR9/DR10
"north"), any Dec above -68 deg in the south Galactic cap, and away from the Galactic
plane (|b| >= 15 deg).  This is the resolution rule of the Legacy Surveys
(https://www.legacysurvey.org/dr9/description/#resolve) with a coarse plane cut; a real
run can replace it by the survey's own coverage maps.  Angles in degrees.
"""

from __future__ import annotations

import numpy as np

NORTH_SOUTH_DEC_DEG = 32.375
SOUTH_LIMIT_DEC_DEG = -68.0
MIN_ABS_GAL_B_DEG = 15.0

# ICRS -> Galactic rotation (Hipparcos / astropy's definition), used vectorised here
# because it sits on the hot path of the negative-pool kernel.
_R = np.array([[-0.0548755604162154, -0.8734370902348850, -0.4838350155487132],
               [0.4941094278755837, -0.4448296299600112, 0.7469822444972189],
               [-0.8676661490190047, -0.1980763734312015, 0.4559837761750669]])


def galactic_lb(ra_deg, dec_deg):
    ra = np.deg2rad(np.asarray(ra_deg, dtype=np.float64))
    dec = np.deg2rad(np.asarray(dec_deg, dtype=np.float64))
    v = np.stack([np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra), np.sin(dec)])
    g = np.tensordot(_R, v, axes=1)
    lon = np.rad2deg(np.arctan2(g[1], g[0])) % 360.0
    lat = np.rad2deg(np.arcsin(np.clip(g[2], -1, 1)))
    return lon, lat


def in_decals_footprint(ra_deg, dec_deg):
    """Boolean array: inside the coarse DR10 DECam footprint (NaN -> False)."""
    ra = np.asarray(ra_deg, dtype=np.float64)
    dec = np.asarray(dec_deg, dtype=np.float64)
    _, b = galactic_lb(ra, dec)
    with np.errstate(invalid="ignore"):
        south_of_line = np.where(b > 0, dec < NORTH_SOUTH_DEC_DEG, True)
        return np.isfinite(ra) & np.isfinite(dec) & south_of_line & (dec > SOUTH_LIMIT_DEC_DEG) & (np.abs(b) >= MIN_ABS_GAL_B_DEG)
