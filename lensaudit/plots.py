"""Small diagnostic figures (matplotlib, Agg) returned as PNG bytes for Dagster metadata."""

from __future__ import annotations

import io

import numpy as np


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return buf.getvalue()


def separation_histogram(sep_arcsec: np.ndarray, radius_arcsec: float) -> bytes:
    """Histogram of lens -> Tractor row separations (arcsec) with the match radius."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 3))
    ax.hist(np.asarray(sep_arcsec), bins=np.linspace(0, radius_arcsec, 31), color="0.3")
    ax.axvline(radius_arcsec, color="C3", ls="--", label=f"match radius {radius_arcsec}\"")
    ax.set_xlabel("separation lens - Tractor row [arcsec]")
    ax.set_ylabel("lenses")
    ax.legend(frameon=False)
    return _png(fig)


def split_sky_map(ra_deg: np.ndarray, dec_deg: np.ndarray, split: np.ndarray, max_points: int = 60000) -> bytes:
    """RA/Dec scatter coloured by split (a deterministic thinning above max_points)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(ra_deg)
    step = max(1, n // max_points)
    fig, ax = plt.subplots(figsize=(7, 3.2))
    for name, colour in (("train", "C0"), ("val", "C1"), ("test", "C2")):
        m = np.asarray(split)[::step] == name
        ax.scatter(np.asarray(ra_deg)[::step][m], np.asarray(dec_deg)[::step][m], s=0.3, c=colour, label=name,
                   rasterized=True)
    ax.set_xlabel("RA [deg]")
    ax.set_ylabel("Dec [deg]")
    ax.legend(markerscale=15, frameon=False, ncol=3, loc="upper center", bbox_to_anchor=(0.5, 1.15))
    return _png(fig)


def feature_auc_plot(table, yellow: float, red: float) -> bytes:
    """Single-feature AUC with 68 % intervals, with the yellow/red separability lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = table.dropna(subset=["auc"])
    fig, ax = plt.subplots(figsize=(6, 0.28 * max(len(t), 4) + 1))
    yy = np.arange(len(t))
    ax.errorbar(t["auc"], yy, xerr=[t["auc"] - t["lo68"], t["hi68"] - t["auc"]], fmt="o", color="0.2", ms=3)
    for v, c in ((yellow, "goldenrod"), (1 - yellow, "goldenrod"), (red, "C3"), (1 - red, "C3")):
        ax.axvline(v, color=c, ls="--", lw=0.8)
    ax.axvline(0.5, color="0.6", lw=0.8)
    ax.set_yticks(yy, t["feature"])
    ax.set_xlim(0, 1)
    ax.set_xlabel("single-feature AUC (positives vs negatives), 68 % bootstrap")
    return _png(fig)


def realism_histograms(records) -> bytes:
    """Injected vs real lenses: arc annulus S/N and annulus colours, overlaid."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axs = plt.subplots(1, 3, figsize=(11, 3))
    for ax, key, label in zip(axs, ("snr_combined", "colour_g_r", "colour_r_z"),
                              ("arc annulus S/N (combined)", "annulus g-r [mag]", "annulus r-z [mag]")):
        for kind, colour in (("injected", "C0"), ("real", "C3")):
            v = records.loc[records["kind"] == kind, key].to_numpy(float)
            v = v[np.isfinite(v)]
            if len(v):
                ax.hist(v, bins=25, density=True, histtype="step", color=colour, label=f"{kind} ({len(v)})")
        ax.set_xlabel(label)
    axs[0].legend(frameon=False)
    return _png(fig)
