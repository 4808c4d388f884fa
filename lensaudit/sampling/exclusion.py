"""Exclusion of negatives near known lenses (DESIGN section 3: 11" = 5" + 2 theta_E,max).

Distances use a k-d tree over unit vectors (scipy.spatial.cKDTree), exact to float64
chord precision; the radius is inclusive (a source exactly at 11.0" is excluded).
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from lensaudit.sampling.geometry import arcsec_of_chord, chord_of_arcsec, unit_vectors

EXCLUSION_RADIUS_ARCSEC = 11.0


class LensNeighbourIndex:
    """Nearest-known-lens queries for many sources."""

    def __init__(self, lens_ra_deg, lens_dec_deg):
        xyz = unit_vectors(lens_ra_deg, lens_dec_deg)
        ok = np.isfinite(xyz).all(axis=1)
        if not ok.any():
            raise ValueError("no valid lens coordinates to build the exclusion index")
        self._tree = cKDTree(xyz[ok])

    def nearest_arcsec(self, ra_deg, dec_deg, max_arcsec: float = np.inf) -> np.ndarray:
        """Separation to the nearest lens in arcsec (inf beyond ``max_arcsec``; NaN input -> NaN)."""
        return self.nearest_arcsec_xyz(unit_vectors(ra_deg, dec_deg), max_arcsec)

    def nearest_arcsec_xyz(self, xyz: np.ndarray, max_arcsec: float = np.inf) -> np.ndarray:
        """As :meth:`nearest_arcsec` for precomputed (N, 3) unit vectors."""
        out = np.full(len(xyz), np.nan)
        ok = np.isfinite(xyz).all(axis=1)
        if ok.any():
            bound = chord_of_arcsec(max_arcsec) * (1 + 1e-12) if np.isfinite(max_arcsec) else np.inf
            d, _ = self._tree.query(xyz[ok], k=1, distance_upper_bound=bound)
            out[ok] = np.where(np.isfinite(d), arcsec_of_chord(d), np.inf)
        return out

    def within(self, ra_deg, dec_deg, radius_arcsec: float = EXCLUSION_RADIUS_ARCSEC) -> np.ndarray:
        """True where a known lens lies within ``radius_arcsec`` (inclusive)."""
        return self.within_xyz(unit_vectors(ra_deg, dec_deg), radius_arcsec)

    def within_xyz(self, xyz: np.ndarray, radius_arcsec: float = EXCLUSION_RADIUS_ARCSEC) -> np.ndarray:
        sep = self.nearest_arcsec_xyz(xyz, max_arcsec=radius_arcsec + 1.0)
        return np.isfinite(sep) & (sep <= radius_arcsec)
