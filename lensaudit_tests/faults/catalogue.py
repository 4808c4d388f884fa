"""The fault catalogue: every fault the tests and the gates must catch, and who catches it.

Three kinds:

- ``stored``: planted here into a copy of the small home (``faults/home.py``) by
  ``plant(home)``; every gate in ``gates`` must turn red (ERROR, blocking), and every such
  gate is green on the healthy home.
- ``code``: a function of the package replaced by a faulty twin (its ``__code__`` is
  swapped, so every caller sees it however it imported the function); every test in
  ``tests`` must fail under the fault (and pass without it), and where ``produce`` is given
  the producer is re-run on a copy of the small home under the fault and every gate in
  ``gates`` must turn red.
- ``planted_elsewhere``: a fault an existing test already plants and sees caught
  (``tests``: the node ids); listed so that the catalogue is complete, not re-run here.

``test_fault_suite.py`` runs the first two kinds and the meta-test checks that every
fault names at least one existing catcher.  Test ids are ``<file>::<function>`` relative to
``lensaudit_tests/``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch  # noqa: F401 - the faulty twins run in their target module's globals

from lensaudit_tests.faults import home as H


@dataclass(frozen=True)
class Fault:
    name: str
    kind: str  # stored | code | planted_elsewhere
    description: str
    gates: tuple[str, ...] = ()
    tests: tuple[str, ...] = ()
    plant: Callable | None = None  # stored: plant(home); code: the faulty twin
    target: str = ""  # code: "module:function" or "module:Class.method"
    produce: Callable | None = None  # code: producer re-run on the home under the fault
    kwargs: dict = field(default_factory=dict)


# ---- stored-data faults ------------------------------------------------------------------

def _manifest(home: Path) -> pd.DataFrame:
    return H.table(home, "training_manifest")


def _write_manifest(home: Path, m: pd.DataFrame) -> None:
    from lensaudit.spark_jobs.manifest import MANIFEST_SCHEMA

    H.write_table(home, "training_manifest", m, schema=MANIFEST_SCHEMA)


def _sweep(home: Path) -> pd.DataFrame:
    return H.table(home, "sweep_catalog")


def _write_sweep(home: Path, s: pd.DataFrame) -> None:
    H.write_table(home, "sweep_catalog", s, partition=H.STEM)


def _edit(home: Path, gid: str, manifest: dict | None = None, sweep: dict | None = None) -> None:
    if manifest:
        m = _manifest(home)
        for k, val in manifest.items():
            m.loc[m["galaxy_id"] == gid, k] = val
        _write_manifest(home, m)
    if sweep:
        s = _sweep(home)
        for k, val in sweep.items():
            s.loc[s["galaxy_id"] == gid, k] = val
        _write_sweep(home, s)


def _lens_offset(home: Path, arcsec: float) -> tuple[float, float]:
    """A point ``arcsec`` north of the first positive's (real lenscat) lens."""
    p = _manifest(home).query("label == 1").iloc[0]
    return float(p.ra), float(p.dec) + arcsec / 3600


def _restamp_positives(home: Path, how: Callable[[np.ndarray], np.ndarray]) -> None:
    """Rewrite the store with the positives' stamps changed, shards re-hashed and renamed and
    the index re-pointed (a consistent store), its QC columns left from the true stamps."""
    m = _manifest(home)
    true = {g: H._stamp(g) for g in m["galaxy_id"]}
    changed = {g: how(true[g].copy()) for g in m.loc[m["label"] == 1, "galaxy_id"]}
    H.write_store(home, m, stamps=changed, qc_from=true)


def _nan_core(x: np.ndarray) -> np.ndarray:
    c = x.shape[-1] // 2
    x[:, c - 5:c + 6, c - 5:c + 6] = np.nan
    return x


def _set_rows(home: Path, asset: str, where: Callable[[pd.DataFrame], pd.Series], **values) -> None:
    t = H.table(home, asset)
    mask = where(t)
    assert mask.any(), f"nothing to plant into in {asset}"
    for k, v in values.items():
        t.loc[mask, k] = v
    H.write_table(home, asset, t)


def _a_train_negative(home: Path) -> str:
    return "trainneg3_0"


def _injections_on_train_negative(home: Path) -> None:
    t = H.table(home, "completeness_injections")
    t.loc[t.index[:3], "galaxy_id"] = _a_train_negative(home)
    H.write_table(home, "completeness_injections", t)


def _host_pointer_at_a_positive(home: Path) -> None:
    idx = H.table(home, "cutouts")
    pos = idx[(idx["label"] == 1) & idx["cutout_ok"]].iloc[0]
    hosts = H.table(home, "injection_hosts")
    used = H.table(home, "completeness_injections")["galaxy_id"].iloc[0]
    hosts.loc[hosts["galaxy_id"] == used, ["cutout_path", "cutout_offset"]] = [pos.cutout_path, pos.cutout_offset]
    H.write_table(home, "injection_hosts", hosts)


def _last_host_pointer_at_another_stamp(home: Path) -> None:
    hosts = H.table(home, "injection_hosts")
    cols = ["cutout_path", "cutout_offset"]
    hosts.loc[hosts.index[-1], cols] = hosts.loc[hosts.index[0], cols].to_numpy()
    H.write_table(home, "injection_hosts", hosts)


def _null_control_on_val_negative(home: Path) -> None:
    _set_rows(home, "adversarial_scores", lambda t: t.index == t.index[t["test"] == "null_control"][0],
              galaxy_id="valneg4_0")


def _arc_suppression_on_train_positive(home: Path) -> None:
    _set_rows(home, "adversarial_scores", lambda t: t.index == t.index[t["test"] == "arc_suppression"][0],
              galaxy_id="pos0_0")


def _missed_injection_of_another_host(home: Path) -> None:
    t = H.table(home, "failure_missed_injections")
    hosts = H.table(home, "injection_hosts")["galaxy_id"]
    t.loc[t.index[0], "galaxy_id"] = next(g for g in hosts if g != t["galaxy_id"].iloc[0])  # a real host, wrong one
    H.write_table(home, "failure_missed_injections", t)


def _realism_injection_on_train_negative(home: Path) -> None:
    _set_rows(home, "injection_realism", lambda t: t.index == t.index[t["kind"] == "injected"][0],
              galaxy_id=_a_train_negative(home))


def _host_moved_to_train(home: Path) -> None:
    used = H.table(home, "completeness_injections")["galaxy_id"].iloc[0]
    _edit(home, used, manifest={"split": "train"})


def _two_index_rows_swap_stamps(home: Path) -> None:
    idx = H.table(home, "cutouts")
    hosts = H.table(home, "injection_hosts")["galaxy_id"]
    a, b = (idx.index[idx["galaxy_id"] == g][0] for g in hosts.iloc[:2])
    cols = ["cutout_path", "cutout_offset"]
    idx.loc[[a, b], cols] = idx.loc[[b, a], cols].to_numpy()
    from lensaudit.spark_jobs.cutouts import INDEX_SCHEMA

    H.write_table(home, "cutouts", idx, schema=INDEX_SCHEMA, partition=H.STEM)


def _negative_near_lens(home: Path, manifest_only: bool = False) -> None:
    ra, dec = _lens_offset(home, 8.0)
    gid = "testneg5_0"
    _edit(home, gid, manifest={"ra": ra, "dec": dec}, sweep=None if manifest_only else {"ra": ra, "dec": dec})


def _positive_relabelled_negative(home: Path) -> None:
    gid = _manifest(home).query("label == 1")["galaxy_id"].iloc[0]
    _edit(home, gid, manifest={"label": 0, "tier": "N1", "pool": "N1", "lens_id": ""})


def _drop_sweep_row(home: Path) -> None:
    s = _sweep(home)
    _write_sweep(home, s[s["galaxy_id"] != "valneg6_0"])


def _negative_relabelled_as_an_unknown_lens(home: Path) -> None:
    _edit(home, "testneg3_0", manifest={"label": 1, "tier": "A", "pool": "positive", "sample_weight": 1.0,
                                        "lens_id": "mock_fake_0000"})


def _positive_demoted_to_tier_b(home: Path) -> None:
    gid = _manifest(home).query("label == 1")["galaxy_id"].iloc[0]
    _edit(home, gid, manifest={"tier": "B", "sample_weight": 0.5})


def _positive_moved_off_its_lens(home: Path) -> None:
    p = _manifest(home).query("label == 1").iloc[1]
    _edit(home, p.galaxy_id, manifest={"dec": float(p.dec) + 5 / 3600}, sweep={"dec": float(p.dec) + 5 / 3600})


STORED: list[Fault] = [
    Fault("negative_relabelled_as_a_positive_of_an_unknown_lens", "stored",
          "a test negative relabelled a tier-A positive of a lens no catalogue holds (labels, tier and weight consistent)",
          gates=("manifest_positives_are_known_lenses",), plant=_negative_relabelled_as_an_unknown_lens),
    Fault("positive_tier_not_its_lens_grading", "stored", "a confident (tier-A) lens's positive stored as tier B, weight 0.5",
          gates=("manifest_positives_are_known_lenses",), plant=_positive_demoted_to_tier_b),
    Fault("positive_moved_off_its_lens", "stored", "a positive 5\" from its lens in the manifest and the sweep",
          gates=("manifest_positives_are_known_lenses",), plant=_positive_moved_off_its_lens),
    Fault("positives_flux_x1000", "stored", "positives' stamps x1000 in a consistently re-hashed store, index QC stale",
          gates=("cutout_qc_recomputed",), plant=lambda h: _restamp_positives(h, lambda x: x * 1000)),
    Fault("positives_nan_cores", "stored", "NaN cores in the positives only (re-hashed store, index QC stale)",
          gates=("cutout_qc_recomputed",), plant=lambda h: _restamp_positives(h, _nan_core)),
    Fault("index_rows_swap_stamps", "stored", "two hosts' index rows exchange their stamp pointers",
          gates=("cutout_qc_recomputed", "completeness_injections_provenance"), plant=_two_index_rows_swap_stamps),
    Fault("manifest_negative_8arcsec_from_a_lens", "stored", "a test negative 8\" from a known lens (manifest and sweep)",
          gates=("training_manifest_negatives_far_from_known_lenses",), plant=_negative_near_lens),
    Fault("manifest_negative_moved_in_the_manifest_only", "stored",
          "a negative's manifest coordinates moved 8\" from a lens, its sweep row untouched",
          gates=("training_manifest_negatives_far_from_known_lenses", "training_manifest_negatives_satisfy_cuts"),
          plant=lambda h: _negative_near_lens(h, manifest_only=True)),
    Fault("positive_relabelled_negative", "stored", "a positive relabelled as an N1 negative (it sits on its lens)",
          gates=("training_manifest_negatives_far_from_known_lenses",), plant=_positive_relabelled_negative),
    Fault("manifest_negative_nobs_g_2", "stored", "a negative whose sweep row has nobs_g = 2",
          gates=("training_manifest_negatives_satisfy_cuts",), plant=lambda h: _edit(h, "trainneg4_0", sweep={"nobs_g": 2})),
    Fault("manifest_negative_type_exp", "stored", "a negative with TYPE EXP in the manifest's copy",
          gates=("training_manifest_negatives_satisfy_cuts",), plant=lambda h: _edit(h, "valneg5_0", manifest={"type": "EXP"})),
    Fault("manifest_negative_bright_star_mask", "stored", "a negative under the BRIGHT maskbit",
          gates=("training_manifest_negatives_satisfy_cuts",), plant=lambda h: _edit(h, "testneg6_0", sweep={"maskbits": 2})),
    Fault("manifest_negative_fainter_than_z20", "stored", "a negative at z = 21 mag in the manifest and its sweep row",
          gates=("training_manifest_negatives_satisfy_cuts",),
          plant=lambda h: _edit(h, "trainneg7_0", manifest={"flux_z": 3.98}, sweep={"flux_z": 3.98})),
    Fault("manifest_negative_at_dec_40", "stored", "a negative at dec 40 deg in the manifest and its sweep row",
          gates=("training_manifest_negatives_satisfy_cuts",),
          plant=lambda h: _edit(h, "trainneg8_0", manifest={"dec": 40.0}, sweep={"dec": 40.0})),
    Fault("manifest_negative_not_brick_primary", "stored", "a negative that is not brick_primary",
          gates=("training_manifest_negatives_satisfy_cuts",),
          plant=lambda h: _edit(h, "valneg7_0", sweep={"brick_primary": False})),
    Fault("manifest_negative_without_sweep_row", "stored", "a negative whose sweep row is gone",
          gates=("training_manifest_negatives_satisfy_cuts",), plant=_drop_sweep_row),
    Fault("injections_hosted_on_a_train_negative", "stored", "three injections re-hosted on a train-split negative",
          gates=("completeness_injections_provenance",), plant=_injections_on_train_negative),
    Fault("host_stamp_pointer_at_a_positive", "stored", "a used host's stamp pointer aimed at a positive's stamp",
          gates=("completeness_injections_provenance",), plant=_host_pointer_at_a_positive),
    Fault("unused_host_pointer_at_another_stamp", "stored", "the last host's stamp pointer aimed at another host's stamp",
          gates=("completeness_injections_provenance",), plant=_last_host_pointer_at_another_stamp),
    Fault("injection_rendered_with_another_psf", "stored", "an injection's r-band PSF FWHM 30 % off its host's",
          gates=("completeness_injections_provenance",),
          plant=lambda h: _set_rows(h, "completeness_injections", lambda t: t.index == t.index[0],
                                    psf_fwhm_r_arcsec=1.56)),
    Fault("injection_in_another_depth_bin", "stored", "an injection planned in a depth bin its host is not in",
          gates=("completeness_injections_provenance",),
          plant=lambda h: _set_rows(h, "completeness_injections", lambda t: t.index == t.index[1], depth_bin=4)),
    Fault("null_control_on_a_val_negative", "stored", "a null control hosted on a val-split negative",
          gates=("completeness_injections_provenance",), plant=_null_control_on_val_negative),
    Fault("arc_suppression_on_a_train_positive", "stored", "an arc-suppression row on a train-split positive",
          gates=("completeness_injections_provenance",), plant=_arc_suppression_on_train_positive),
    Fault("missed_injection_of_another_host", "stored", "a missed injection attributed to another host",
          gates=("failure_missed_injections_provenance",), plant=_missed_injection_of_another_host),
    Fault("realism_injection_on_a_train_negative", "stored", "a realism injection hosted on a train negative",
          gates=("injection_realism_hosts_provenance",), plant=_realism_injection_on_train_negative),
    Fault("host_moved_to_the_train_split", "stored", "a used host's manifest row moved to the train split",
          gates=("injection_hosts_held_out", "completeness_injections_provenance", "training_manifest_splits_disjoint"),
          plant=_host_moved_to_train),
]


# ---- code faults: faulty twins (run in their target module's globals) ---------------------

def _annulus_snr_max_pixel(stamps, sigma=None):
    """002's fault: the arc S/N read as the brightest annulus pixel over sigma."""
    n, c, h, w = stamps.shape
    ann_idx = torch.as_tensor(_geometry(h)[1], device=stamps.device)  # noqa: F821
    x = stamps.to(torch.float64).reshape(n, c, h * w)[:, :, ann_idx]
    peak = torch.nan_to_num(x, nan=0.0).amax(-1)
    if sigma is None:
        sigma = outer_sigma(stamps)  # noqa: F821
    return peak / sigma.to(peak.dtype)


def _mag_to_nmgy_x1000(mag_ab):
    """The 002 units bug: fluxes 1000x too bright."""
    return 1000.0 * 10.0 ** (-0.4 * (np.asarray(mag_ab, dtype=np.float64) - AB_ZEROPOINT_NMGY))  # noqa: F821


def _render_mag_to_nmgy_x1000(mag):
    return 1000.0 * 10.0 ** (-0.4 * (mag - AB_ZEROPOINT_NMGY))  # noqa: F821


def _render_unit_lensed_flux_normalised(p, npix, supersample, pixscale, suppress_inner=False, n_clumps=0):
    """002 s1.5: the lensed image rescaled to the source's total flux (magnification lost)."""
    t = p["theta_e_arcsec"]
    ax1 = subpixel_axis(npix, supersample, pixscale, t.dtype, t.device)  # noqa: F821
    col = {k: (v[:, None, None] if v.ndim == 1 else v) for k, v in p.items()}
    sb = _lensed_sb(ax1[None, None, :], ax1[None, :, None], col, n_clumps, lambda v: v[:, :, None, None],  # noqa: F821
                    suppress_inner)
    img = sb.reshape(sb.shape[0], npix, supersample, npix, supersample).mean(dim=(2, 4))
    return img / img.sum(dim=(1, 2), keepdim=True)


def _depth_ivar_to_mag5sigma_as_sigma(depth_ivar_per_nmgy2):
    """A units slip: the inverse variance read as a sigma."""
    d = np.asarray(depth_ivar_per_nmgy2, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(d > 0, AB_ZEROPOINT_NMGY - 2.5 * np.log10(5.0 * np.where(d > 0, d, 1.0)), np.nan)  # noqa: F821


def _mw_transmission_wrong_sign(ebv, band: str):
    return 10.0 ** (0.4 * EXTINCTION_COEFF[band] * np.asarray(ebv, dtype=np.float64))  # noqa: F821


def _moffat_alpha_gaussian_sigma(fwhm_arcsec, beta):
    """A conversion slip: the Gaussian FWHM -> sigma factor used for the Moffat alpha."""
    return fwhm_arcsec / 2.3548 * (1 + 0 * beta)


def _within_xyz_arcmin(self, xyz, radius_arcsec=11.0):
    """A units slip: the exclusion radius taken in arcmin of a degree-based separation."""
    sep = self.nearest_arcsec_xyz(xyz, max_arcsec=radius_arcsec / 60 + 1.0)
    return np.isfinite(sep) & (sep <= radius_arcsec / 60)


def _detections_counting_host_fp(records, threshold_logit):
    host_fp = records["host_logit"].to_numpy(float) >= threshold_logit
    det = records["logit"].to_numpy(float) >= threshold_logit
    return det, host_fp


def _select_hosts_from_val(manifest, index):
    """Hosts drawn from the validation split (a held-out leak)."""
    m = manifest.merge(index[["galaxy_id", "cutout_path", "cutout_offset", "cutout_ok", "fail_reason"]],
                       on="galaxy_id", how="left")
    test_neg = m[(m["split"] == "val") & (m["label"] == 0)]
    bad_cut = ~test_neg["cutout_ok"].fillna(False).astype(bool)
    hosts = test_neg[~bad_cut].sort_values("galaxy_id", kind="stable")
    hosts = hosts[HOST_COLUMNS].reset_index(drop=True)  # noqa: F821
    hosts = pd.concat([hosts, host_bins(hosts).reset_index(drop=True)], axis=1)  # noqa: F821
    return hosts, {"test_negatives": int(len(test_neg)), "cutout_not_ok": int(bad_cut.sum()),
                   "in_train_or_val_pixel": 0, "outside_grid": 0}


def _roc_auc_inverted(scores_pos, scores_neg):
    p = np.asarray(scores_pos, dtype=np.float64)
    n = np.asarray(scores_neg, dtype=np.float64)
    if len(p) == 0 or len(n) == 0:
        raise ValueError("AUC needs both classes")
    ranks = rankdata(np.concatenate([p, n]))  # noqa: F821
    u = ranks[: len(p)].sum() - len(p) * (len(p) + 1) / 2
    return float(1 - u / (len(p) * len(n)))


def _coadd_cutouts_one_read_per_target(self, ra, dec, bands="grz", size=101):
    """Brick grouping lost: every target opens and decompresses its brick bands again."""
    self.cache_bricks = 0
    return [self.cutout(float(a), float(d), bands=bands, size=size) for a, d in zip(np.ravel(ra), np.ravel(dec))]


def _rebuild_hosts_and_plan(home: Path) -> None:
    from lensaudit.config import get_profile
    from lensaudit.selection.inject import plan_injections
    from lensaudit.selection.run import build_hosts

    build_hosts(home, get_profile(H.PROFILE))
    H.write_table(home, "completeness_injections", plan_injections(H.table(home, "injection_hosts"), 1, 0))


CODE: list[Fault] = [
    Fault("arc_snr_as_max_pixel", "code", "arc S/N computed as the brightest annulus pixel (002)",
          tests=("test_injection_realism.py::test_arc_snr_is_standard_normal_on_pure_noise",),
          plant=_annulus_snr_max_pixel, target="lensaudit.injection.annulus:annulus_snr"),
    Fault("flux_x1000", "code", "mag -> nmgy 1000x too bright (the 002 units bug)",
          tests=("test_survey_photometry_maskbits.py::test_magnitudes",),
          plant=_mag_to_nmgy_x1000, target="lensaudit.survey.photometry:mag_to_nmgy"),
    Fault("arc_flux_x1000_in_the_renderer", "code", "the renderer's source magnitudes 1000x too bright (002 units bug)",
          tests=("test_injection.py::test_unlensed_photometry",),
          plant=_render_mag_to_nmgy_x1000, target="lensaudit.injection.render:mag_to_nmgy"),
    Fault("lensed_image_scaled_to_the_source_flux", "code",
          "the lensed image rescaled to the source's total flux, magnification lost (002 s1.5)",
          tests=("test_injection.py::test_point_like_source_magnification_matches_sis",),
          plant=_render_unit_lensed_flux_normalised, target="lensaudit.injection.render:render_unit_lensed"),
    Fault("depth_ivar_read_as_sigma", "code", "PSFDEPTH inverse variance read as a sigma (units slip)",
          tests=("test_survey_photometry_maskbits.py::test_depth_conversion",),
          plant=_depth_ivar_to_mag5sigma_as_sigma, target="lensaudit.survey.photometry:depth_ivar_to_mag5sigma"),
    Fault("extinction_sign_flipped", "code", "Milky Way transmission > 1 (extinction sign flipped)",
          tests=("test_survey_photometry_maskbits.py::test_mw_transmission_matches_real_dr9_row",),
          plant=_mw_transmission_wrong_sign, target="lensaudit.survey.photometry:mw_transmission"),
    Fault("psf_moffat_alpha_from_the_gaussian_factor", "code", "Moffat alpha = FWHM / 2.355 (kernel 2.5x too narrow)",
          tests=("test_injection.py::test_psf_kernels_and_convolution",),
          plant=_moffat_alpha_gaussian_sigma, target="lensaudit.injection.psf:moffat_alpha"),
    Fault("exclusion_radius_in_arcmin", "code", "the 11\" exclusion applied as 11/60\" (arcsec/arcmin slip)",
          tests=("test_sampling_pools.py::test_exclusion_radius_edge",),
          plant=_within_xyz_arcmin, target="lensaudit.sampling.exclusion:LensNeighbourIndex.within_xyz"),
    Fault("host_false_positives_counted_as_detections", "code", "the detection rule counts hosts that cross alone",
          tests=("test_selection.py::test_detection_rule_excludes_host_false_positives",),
          plant=_detections_counting_host_fp, target="lensaudit.selection.completeness:detections"),
    Fault("hosts_drawn_from_the_val_split", "code", "injection hosts selected among validation negatives",
          tests=("test_selection.py::test_hosts_are_held_out_test_negatives_and_a_leak_fails",),
          gates=("injection_hosts_held_out", "completeness_injections_provenance"),
          plant=_select_hosts_from_val, target="lensaudit.selection.hosts:select_hosts", produce=_rebuild_hosts_and_plan),
    Fault("coadd_brick_read_per_target", "code",
          "coadd cutouts not grouped by brick: each target reads and decompresses its brick again",
          # (test_spark_cutouts_task_reads_each_brick_band_once catches it too, but starts a JVM in the
          # fault run's subprocess: ~25 s of the suite's budget for the same verdict)
          tests=("test_coadd_grouped.py::test_grouped_cutouts_read_each_brick_band_once",),
          plant=_coadd_cutouts_one_read_per_target, target="lensaudit.cutouts.coadd:CoaddSource.cutouts"),
    Fault("roc_auc_inverted", "code", "ROC AUC computed as 1 - AUC",
          tests=("test_evaluation_metrics.py::test_bootstrap_coverage_of_a_known_auc",),
          plant=_roc_auc_inverted, target="lensaudit.auc:roc_auc"),
]


# ---- faults that an existing test plants and sees caught ----------------------------------

ELSEWHERE: list[Fault] = [Fault(n, "planted_elsewhere", d, gates=g, tests=t) for n, d, g, t in [
    ("cutout_offset_shifted_by_one", "a cutout-index offset shifted by one (stamps on the wrong rows)",
     ("cutout_qc_recomputed", "cutout_index_links_valid"), ("test_integrity_gates.py::test_offset_shifted_by_one_is_red",)),
    ("all_nan_or_zero_filled_stamp", "an all-NaN stamp or a zero-filled band behind a QC-ok index row",
     ("cutout_qc_recomputed",), ("test_integrity_gates.py::test_stamp_that_fails_qc_behind_an_ok_index_row_is_red",)),
    ("shard_bytes_changed", "a shard whose bytes no longer match its content-hash name",
     ("cutout_shards_match_content_hash",), ("test_integrity_gates.py::test_shard_bytes_changed_is_red",)),
    ("index_offset_minus_one_or_escape", "an index offset of -1, past the end, a path escaping the store, a missing shard",
     ("cutout_index_links_valid",), ("test_integrity_gates.py::test_broken_links_are_red",)),
    ("random_or_nan_checkpoint", "a randomly initialised or NaN checkpoint (hashes forged or not)",
     ("detector_logits_rescored", "detector_artefact_hashes_match"),
     ("test_integrity_gates.py::test_swapped_or_nan_checkpoint_is_red",)),
    ("logits_permuted", "logits permuted in the evaluation table (stored AUC stale)",
     ("detector_auc_recomputed", "detector_logits_rescored"), ("test_integrity_gates.py::test_permuted_logits_are_red",)),
    ("producer_ratio_10_to_1", "the 100:1 ratio changed to 10:1 in the producer's profile",
     ("manifest_ratio_per_stratum",), ("test_spec_pinned.py::test_a_changed_producer_ratio_turns_the_manifest_gate_red",)),
    ("injected_arc_flux_x1000_end_to_end", "the injected arc 1000x (and 1e-3x, 0x) too bright through run_realism (002)",
     ("realism_arc_snr_median", "realism_arc_snr_p90"),
     ("test_realism_faults.py::test_wrong_arc_flux_turns_the_snr_gates_red",)),
    ("no_arc_noise", "the injected arc added without its Poisson noise",
     ("realism_arc_noise_r",), ("test_realism_faults.py::test_no_arc_noise_turns_the_noise_gates_red",)),
    ("bands_swapped_in_the_arc", "g and z exchanged in the injected arc", ("realism_colour_g_r",),
     ("test_realism_faults.py::test_swapped_bands_turn_the_colour_gates_red",)),
    ("central_brightness_shortcut", "positives brighter in the core (002 s21 shortcut)", ("shortcut_single_feature_red",),
     ("test_cutout_store_features.py::test_shortcut_gates_flag_a_planted_shortcut",)),
    ("cusp_not_refined", "supersampling without the core refinement loses a cuspy source's flux", (),
     ("test_render_supersampling.py::test_midpoint_alone_would_lose_the_cusp",)),
    ("completeness_count_off_by_one", "k + 1 in one completeness cell; another threshold; host FPs counted",
     ("completeness_table_valid",), ("test_selection.py::test_completeness_validity_gate_red_on_planted_faults",)),
    ("trained_row_scored_as_test", "a trained row scored as test", ("detector_rows_disjoint",),
     ("test_model_and_host_gates.py::test_rows_disjoint_red_for_a_trained_row_scored_as_test",)),
    ("checkpoint_changed_since_training", "a checkpoint whose sha256 differs from run_info.json, refused at load", (),
     ("test_integrity_checkpoints.py::test_frozen_detector_refuses_a_checkpoint_changed_since_training",)),
    ("http_rate_limit_per_process", "the cutout service's rate limit kept per process: N tasks send N x the rate", (),
     ("test_http_shared_rate.py::test_a_per_process_limit_sends_several_times_the_rate",)),
    ("broken_artefact_crashes_the_gates_command", "one truncated Parquet / bad shard path / corrupt checkpoint", (),
     ("test_integrity_gates.py::test_gates_command_survives_one_broken_artefact",)),
    ("s3_object_bytes_changed", "an s3:// home's object whose bytes no longer match its recorded sha256, or that has "
     "none: never installed in a cache, a run's setup fails, lensaudit gates fails its asset's gates", (),
     ("test_s3store.py::test_hash_mismatch_and_unrecorded_objects_are_never_installed",
      "test_s3store.py::test_settings_resource_syncs_around_a_run", "test_s3_home_tiny.py::test_tiny_home_on_s3")),
    ("s3_key_outside_the_prefix", "an object key under an s3:// home that is not a plain relative path ('..', "
     "hidden or empty component): the pull is refused", (),
     ("test_s3store.py::test_key_escaping_the_prefix_is_refused",)),
]]

CATALOGUE: list[Fault] = STORED + CODE + ELSEWHERE
