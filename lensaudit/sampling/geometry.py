"""Angular geometry on the unit sphere (degrees in, arcsec for separations)."""

from __future__ import annotations

import numpy as np

ARCSEC_PER_RAD = 206264.80624709636


def unit_vectors(ra_deg, dec_deg) -> np.ndarray:
    """(N, 3) unit vectors; NaN coordinates give NaN rows."""
    ra = np.deg2rad(np.asarray(ra_deg, dtype=np.float64))
    dec = np.deg2rad(np.asarray(dec_deg, dtype=np.float64))
    cd = np.cos(dec)
    return np.stack([cd * np.cos(ra), cd * np.sin(ra), np.sin(dec)], axis=-1)


def chord_of_arcsec(sep_arcsec: float) -> float:
    """Chord length on the unit sphere for an angular separation."""
    return 2.0 * np.sin(np.asarray(sep_arcsec) / ARCSEC_PER_RAD / 2.0)


def arcsec_of_chord(chord) -> np.ndarray:
    return 2.0 * np.arcsin(np.clip(np.asarray(chord) / 2.0, 0, 1)) * ARCSEC_PER_RAD


def separation_arcsec(ra1, dec1, ra2, dec2) -> np.ndarray:
    """Great-circle separation (haversine-stable) in arcsec."""
    return arcsec_of_chord(np.linalg.norm(unit_vectors(ra1, dec1) - unit_vectors(ra2, dec2), axis=-1))
