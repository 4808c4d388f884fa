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


def roc_plot(fpr, tpr, auc: dict, title: str) -> bytes:
    """ROC curve (log FPR axis) with the AUC and its 95 % interval in the legend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(8, 3.4))
    label = f"AUC {auc['value']:.3f} [{auc['lo95']:.3f}, {auc['hi95']:.3f}] 95%"
    for ax, log in zip(axes, (False, True)):
        f = np.asarray(fpr)
        ax.step(np.clip(f, 1e-5, 1) if log else f, tpr, where="post", color="C0", label=label)
        ax.plot([1e-5 if log else 0, 1], [1e-5 if log else 0, 1], ls=":", color="0.5")
        ax.set_xscale("log" if log else "linear")
        ax.set_xlabel("false positive rate (test negatives)")
        ax.set_ylabel("recall (test lenses)")
    axes[0].legend(frameon=False, loc="lower right", fontsize=8)
    fig.suptitle(title, fontsize=9)
    return _png(fig)


def reliability_plot(table: list[dict], ece: dict, title: str) -> bytes:
    """Observed positive fraction vs mean predicted probability in equal-frequency bins."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.2, 3.6))
    p = [r["mean_prob"] for r in table]
    o = [r["frac_pos"] for r in table]
    ax.plot([0, 1], [0, 1], ls=":", color="0.5")
    ax.plot(p, o, "o-", color="C1", ms=4,
            label=f"ECE {ece['value']:.3g} [{ece['lo95']:.3g}, {ece['hi95']:.3g}] 95%")
    ax.set_xlabel("mean predicted probability (bin)")
    ax.set_ylabel("fraction of lenses (bin)")
    ax.set_title(title, fontsize=9)
    ax.legend(frameon=False, fontsize=8)
    return _png(fig)


def completeness_heatmaps(table, title: str, label: str = "completeness") -> bytes:
    """C(theta_E, PSF) (or another per-cell fraction in the ``completeness`` column) per
    depth slice; cells without injections (n = 0) grey."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    depths = sorted(table["depth_bin"].unique())
    fig, axes = plt.subplots(1, len(depths), figsize=(3.1 * len(depths), 3.3), squeeze=False)
    for ax, d in zip(axes[0], depths):
        t = table[table["depth_bin"] == d]
        grid = t.pivot(index="psf_bin", columns="theta_e_bin", values="completeness").sort_index()
        n = t.pivot(index="psf_bin", columns="theta_e_bin", values="n").sort_index()
        ax.set_facecolor("0.85")
        im = ax.imshow(np.ma.masked_invalid(grid.to_numpy(float)), origin="lower", vmin=0, vmax=1, cmap="viridis",
                       aspect="auto")
        th = sorted(t.groupby("theta_e_bin")[["theta_e_lo", "theta_e_hi"]].first().mean(axis=1))
        ps = sorted(t.groupby("psf_bin")[["psf_lo", "psf_hi"]].first().mean(axis=1))
        ax.set_xticks(range(len(th))[::2], [f"{v:.2g}" for v in th][::2])
        ax.set_yticks(range(len(ps)), [f"{v:.2f}" for v in ps])
        lo, hi = t["depth_lo"].iloc[0], t["depth_hi"].iloc[0]
        ax.set_title(f"depth r {lo:.2f}-{hi:.2f} mag", fontsize=8)
        ax.set_xlabel("theta_E [arcsec]")
        if n.to_numpy().max() == 0:
            ax.text(0.5, 0.5, "no hosts", transform=ax.transAxes, ha="center")
    axes[0][0].set_ylabel("PSF FWHM r [arcsec]")
    fig.colorbar(im, ax=axes[0].tolist(), shrink=0.8, label=label)
    fig.suptitle(title, fontsize=9)
    return _png(fig)


def marginal_curves(marginals: dict, title: str) -> bytes:
    """Completeness vs each grid axis (pooled over the others) with 68 % / 95 % Beta bands."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(marginals), figsize=(3.3 * len(marginals), 3), squeeze=False)
    for ax, (axis, m) in zip(axes[0], marginals.items()):
        x = (m[f"{axis}_lo"] + m[f"{axis}_hi"]) / 2
        ax.fill_between(x, m["lo95"], m["hi95"], color="C0", alpha=0.15, lw=0)
        ax.fill_between(x, m["lo68"], m["hi68"], color="C0", alpha=0.3, lw=0)
        ax.plot(x, m["completeness"], "o-", color="C0", ms=3)
        ax.set_ylim(0, 1)
        ax.set_xlabel({"theta_e": "theta_E [arcsec]", "psf": "PSF FWHM r [arcsec]", "depth": "depth r [5-sigma AB mag]"}[axis])
    axes[0][0].set_ylabel("completeness")
    fig.suptitle(title, fontsize=9)
    return _png(fig)


def stamp_gallery(stamps: np.ndarray, labels: list[str], title: str, ncol: int = 8) -> bytes:
    """gri (z, r, g as RGB) asinh-stretched thumbnails of (N, 3, H, W) nmgy stamps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = max(1, len(stamps))
    nrow = int(np.ceil(n / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(1.3 * ncol, 1.45 * nrow + 0.3), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, s, lab in zip(axes.ravel(), stamps, labels):
        x = np.nan_to_num(np.asarray(s, float))
        scale = np.nanpercentile(np.abs(x), 99.5) or 1.0
        rgb = np.arcsinh(x[::-1].transpose(1, 2, 0) / (0.1 * scale)) / np.arcsinh(10)
        ax.imshow(np.clip(rgb, 0, 1), origin="lower")
        ax.set_title(lab, fontsize=6)
    if not len(stamps):
        axes[0][0].text(0.5, 0.5, "none", ha="center")
    fig.suptitle(title, fontsize=9)
    return _png(fig)


def gate_bound_plot(name: str, metric: float, bound: tuple, passed: bool, interval: tuple | None = None) -> bytes:
    """A gate's metric beside its threshold: the accepted range of the metric shaded green (open
    sides run to the plot's edge), the metric a dot (green passed, red failed) with the decision
    interval as an error bar where the gate decides on one."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lo, hi = bound
    pts = [v for v in (metric, lo, hi, *(interval or ())) if v is not None and np.isfinite(v)]
    span = (max(pts) - min(pts)) or max(abs(pts[0]), 1.0)
    x0, x1 = min(pts) - 0.3 * span, max(pts) + 0.3 * span
    fig, ax = plt.subplots(figsize=(4.5, 1.1))
    ax.axvspan(lo if lo is not None else x0, hi if hi is not None else x1, color="C2", alpha=0.18, lw=0,
               label="accepted")
    for v in (lo, hi):
        if v is not None:
            ax.axvline(v, color="C2", lw=1.2)
    colour = "C2" if passed else "C3"
    if interval is not None:
        ax.errorbar([metric], [0], xerr=[[metric - interval[0]], [interval[1] - metric]], fmt="o", color=colour,
                    capsize=3)
    else:
        ax.plot([metric], [0], "o", color=colour, ms=7)
    ax.set_xlim(x0, x1)
    ax.set_yticks([])
    ax.set_title(f"{name}: {metric:.4g} ({'pass' if passed else 'FAIL'})", fontsize=8)
    ax.tick_params(labelsize=7)
    return _png(fig)
