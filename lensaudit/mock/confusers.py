"""Draws of the mock sky's ring confusers, shared by the batched renderer and its reference.

Ring galaxies (collisional and resonance rings) are the hard negatives reference/002 asks for
("add ring-galaxy and spiral-arm hard negatives"): a Gaussian ring of radius
``RING_RADIUS_RANGE_ARCSEC`` (over and beyond the lensed arcs' radii) and width
``RING_WIDTH_RANGE_ARCSEC``, carrying a fraction of the host's r-band flux drawn log-uniformly
from ``RING_FLUX_FRACTION_R_RANGE`` (faint outer rings to star-forming rings 1.5x as bright as
their host's old stellar body, as in collisional and star-forming ring galaxies: a single ratio
made every ring a fixed fraction of its host, so rings around faint hosts, which look like a
bright arc, never occurred; with at most 60 % the demo detector let the DESIGN's synthetic
ring (~7.5 nmgy) push 22 % of the r = 20-21 hosts over its threshold, hosts whose training
rings never carried more than 60 % of their flux), with
the blue colours of star-forming rings (g - r ~ U(0, 0.7), r - z ~ U(-0.1, 0.5) AB): as blue as
lensed arcs, so colour alone does not tell a ring from an arc.
"""

from __future__ import annotations

import numpy as np

from lensaudit.mock.config import RING_RADIUS_RANGE_ARCSEC

RING_WIDTH_RANGE_ARCSEC = (0.2, 0.5)
#: ring flux / host flux in r, drawn log-uniformly
RING_FLUX_FRACTION_R_RANGE = (0.03, 1.5)
RING_G_R_RANGE = (0.0, 0.7)
RING_R_Z_RANGE = (-0.1, 0.5)


def ring_draw(rng: np.random.Generator, host_flux_grz_nmgy) -> tuple[float, float, np.ndarray]:
    """(radius [arcsec], Gaussian width [arcsec], ring flux per band g, r, z [nmgy])."""
    r0 = rng.uniform(*RING_RADIUS_RANGE_ARCSEC)
    w = rng.uniform(*RING_WIDTH_RANGE_ARCSEC)
    g_r, r_z = rng.uniform(*RING_G_R_RANGE), rng.uniform(*RING_R_Z_RANGE)
    lo, hi = RING_FLUX_FRACTION_R_RANGE
    f_r = float(np.exp(rng.uniform(np.log(lo), np.log(hi)))) * max(float(np.asarray(host_flux_grz_nmgy, float)[1]), 0.0)
    return r0, w, np.array([f_r * 10 ** (-0.4 * g_r), f_r, f_r * 10 ** (0.4 * r_z)])
