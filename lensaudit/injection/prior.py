"""The default injection prior (DESIGN s3 "Injection engine"), one draw per host.

Lens: theta_E ~ U(0.5, 3.0)", |e| ~ U(0, 0.3) at a uniform angle (lenstronomy e1, e2),
external shear gamma ~ U(0, 0.05) at a uniform angle, centred on the host.
Source: Sersic n ~ U(0.5, 4), R_e ~ U(0.05, 0.5)", |e| ~ U(0, 0.3); unlensed r ~ U(22, 26)
AB, g - r ~ U(0, 1), r - z ~ U(-0.2, 0.8); offset beta = theta_E x U(0.05, 0.5) at a uniform
angle (inside the caustic region for most draws, so arcs and rings dominate).
Hosts supply the per-band PSF FWHM (psfsize_<band>, arcsec).  The mock sky draws its
lenses' sources from the same prior, so the realism gates test the machinery there.
"""

from __future__ import annotations

import numpy as np
from lensaudit.survey.instrument import BANDS, MOFFAT_BETA

THETA_E_RANGE = (0.5, 3.0)
SRC_MAG_R_RANGE = (22.0, 26.0)
G_R_RANGE = (0.0, 1.0)
R_Z_RANGE = (-0.2, 0.8)
N_SERSIC_RANGE = (0.5, 4.0)
R_SERSIC_RANGE = (0.05, 0.5)
BETA_FRACTION_RANGE = (0.05, 0.5)


def _ecomp(rng, n, emax):
    e = rng.uniform(0, emax, n)
    a = rng.uniform(0, np.pi, n)
    return e * np.cos(2 * a), e * np.sin(2 * a)


def draw_source_and_lens(rng: np.random.Generator, n: int, theta_e_range: tuple[float, float] = THETA_E_RANGE,
                         src_mag_r_range: tuple[float, float] = SRC_MAG_R_RANGE) -> dict[str, np.ndarray]:
    """``n`` draws of the prior; ``theta_e_range`` [arcsec] and ``src_mag_r_range`` [AB] default to
    the injection prior's (the mock sky's known lenses use their own, ``MockSkyConfig``)."""
    theta = rng.uniform(*theta_e_range, n)
    e1, e2 = _ecomp(rng, n, 0.3)
    g = rng.uniform(0, 0.05, n)
    ga = rng.uniform(0, np.pi, n)
    se1, se2 = _ecomp(rng, n, 0.3)
    beta = theta * rng.uniform(*BETA_FRACTION_RANGE, n)
    phi = rng.uniform(0, 2 * np.pi, n)
    mag_r = rng.uniform(*src_mag_r_range, n)
    return {"theta_e_arcsec": theta, "e1": e1, "e2": e2, "gamma1": g * np.cos(2 * ga), "gamma2": g * np.sin(2 * ga),
            "center_x_arcsec": np.zeros(n), "center_y_arcsec": np.zeros(n),
            "src_x_arcsec": beta * np.cos(phi), "src_y_arcsec": beta * np.sin(phi),
            "src_r_sersic_arcsec": rng.uniform(*R_SERSIC_RANGE, n), "src_n_sersic": rng.uniform(*N_SERSIC_RANGE, n),
            "src_e1": se1, "src_e2": se2, "src_mag_r": mag_r, "src_mag_g": mag_r + rng.uniform(*G_R_RANGE, n),
            "src_mag_z": mag_r - rng.uniform(*R_Z_RANGE, n)}


CLUMPS_MAX = 6
CLUMP_COUNT_RANGE = (2, 6)
CLUMP_FLUX_FRACTION_RANGE = (0.10, 0.40)


def draw_clumps(rng: np.random.Generator, r_sersic_arcsec: np.ndarray) -> dict[str, np.ndarray]:
    """Clumpy sources (DESIGN s3: 2-6 Gaussian knots carrying 10-40 % of the flux): per
    source K ~ U{2..6} knots sharing a total fraction ~ U(0.1, 0.4) equally, offsets ~ N(0, R_e)
    per axis [arcsec] from the source centre, widths ~ U(0.2, 0.5) R_e [arcsec].  Arrays of
    shape (N, 6); absent knots have frac 0."""
    r = np.asarray(r_sersic_arcsec, float)
    n = len(r)
    k = rng.integers(CLUMP_COUNT_RANGE[0], CLUMP_COUNT_RANGE[1] + 1, n)
    total = rng.uniform(*CLUMP_FLUX_FRACTION_RANGE, n)
    present = np.arange(CLUMPS_MAX)[None, :] < k[:, None]
    return {"clump_dx": rng.normal(0, 1, (n, CLUMPS_MAX)) * r[:, None],
            "clump_dy": rng.normal(0, 1, (n, CLUMPS_MAX)) * r[:, None],
            "clump_sigma": rng.uniform(0.2, 0.5, (n, CLUMPS_MAX)) * r[:, None],
            "clump_frac": np.where(present, (total / k)[:, None], 0.0)}


def injection_seed(seed: int, key: str) -> np.random.SeedSequence:
    """The deterministic seed of one injection: (run seed, CRC32 of its key)."""
    import zlib

    return np.random.SeedSequence([int(seed), zlib.crc32(str(key).encode())])


def prior_for_hosts(hosts, seed: int, key_column: str = "galaxy_id") -> dict[str, np.ndarray]:
    """Parameter columns for ``render_arcs`` for each host row (psfsize_g/r/z needed).
    Each injection draws from its own seed (``injection_seed``), so its parameters do not
    depend on which other hosts are in the batch."""
    n = len(hosts)
    draws = [draw_source_and_lens(np.random.default_rng(injection_seed(seed, k)), 1) for k in hosts[key_column]]
    cols = {k: np.concatenate([d[k] for d in draws]) if draws else np.zeros(0) for k in draw_source_and_lens(
        np.random.default_rng(0), 0)}
    for b in BANDS:
        cols[f"psf_fwhm_{b}_arcsec"] = np.asarray(hosts[f"psfsize_{b}"], dtype=np.float64)
    cols["moffat_beta"] = np.full(n, MOFFAT_BETA)
    cols["supersample"] = np.full(n, 4.0)
    return cols
