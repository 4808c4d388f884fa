"""Every gate and the planted fault that a test shows turning it red (README "Gates that can fail").

``FAULTS`` maps each gate of ``lensaudit.gates.registry.GATES`` to (the fault, the test that
plants it).  ``test_gate_faults.py`` fails when a gate has no entry or names a test that does
not exist, so no gate can be added without a test that sees it fail.  Run
``python -m lensaudit_tests.gate_faults`` to print the README's table.
"""

from __future__ import annotations

_SUITE = "faults/test_fault_suite.py::test_stored_fault_turns_its_gate_red"
_SCHEMA = ("a stored column of the wrong Arrow type, a missing file", "test_gates.py::test_schema_gate")

FAULTS: dict[str, tuple[str, str]] = {
    "lens_catalog_schema": _SCHEMA,
    "sweep_catalog_schema": _SCHEMA,
    "positives_schema": _SCHEMA,
    "negative_pool_schema": _SCHEMA,
    "spatial_splits_schema": _SCHEMA,
    "training_manifest_schema": _SCHEMA,
    "cutouts_schema": _SCHEMA,
    "shortcut_features_schema": _SCHEMA,
    "injection_realism_schema": _SCHEMA,
    "sweep_catalog_unique_galaxy_id": ("a galaxy_id in two rows", "test_gates.py::test_unique_galaxy_id_gate"),
    "positives_match_rate": ("a covered lens without a Tractor match", "test_gates.py::test_match_rate_gate"),
    "no_negative_near_known_lens": ("a negative on a known lens; NaN coordinates",
                                    "test_gates.py::test_exclusion_gate"),
    "n1_rows_satisfy_cuts": ("one row failing each parity cut; an N2 row without category",
                             "test_gates.py::test_n1_cut_gate_recomputes_each_cut"),
    "spatial_splits_splits_disjoint": ("a row copied into a second split",
                                       "test_gates.py::test_manifest_gates_pass_then_fail_on_planted_faults"),
    "spatial_splits_split_proportions": ("6 points moved from train to test", "test_gates.py::test_split_proportion_gate"),
    "training_manifest_splits_disjoint": ("a val row copied into train",
                                          "test_gates.py::test_manifest_gates_pass_then_fail_on_planted_faults"),
    "manifest_ratio_per_stratum": ("a negative dropped without a shortfall; a producer set to 10:1",
                                   "test_spec_pinned.py::test_a_changed_producer_ratio_turns_the_manifest_gate_red"),
    "manifest_n2_fraction": ("every N2 row relabelled N1",
                             "test_gates.py::test_manifest_gates_pass_then_fail_on_planted_faults"),
    "manifest_labels_and_weights": ("a positive with weight 0.5; a duplicated galaxy_id",
                                    "test_gates.py::test_manifest_gates_pass_then_fail_on_planted_faults"),
    "cutouts_complete": ("a manifest row missing from the index; 50 % failures; a failure without reason",
                         "test_cutout_store_features.py::test_cutouts_complete_gate"),
    "shortcut_single_feature_red": ("positives brighter in the core (a planted shortcut)",
                                    "test_cutout_store_features.py::test_shortcut_gates_flag_a_planted_shortcut"),
    "shortcut_single_feature_yellow": ("a weaker planted core shortcut",
                                       "test_cutout_store_features.py::test_shortcut_gates_flag_a_planted_shortcut"),
    "shortcut_core_only_lr": ("labels readable from the central pixels",
                              "test_cutout_store_features.py::test_core_only_lr_gate"),
    "realism_arc_snr_median": ("arc flux x0, x1e-3 (no observable injection) and x1000 (the 002 units bug and its "
                               "inverse); no arc_snr_matched column", "test_realism_faults.py::"
                               "test_wrong_arc_flux_turns_the_snr_gates_red"),
    "realism_arc_snr_p10": ("arc flux x0, x1e-3 (no observable injection) and x1000",
                            "test_realism_faults.py::test_wrong_arc_flux_turns_the_snr_gates_red"),
    "realism_arc_snr_p90": ("arc flux x0, x1e-3 (no observable injection) and x1000",
                            "test_realism_faults.py::test_wrong_arc_flux_turns_the_snr_gates_red"),
    "realism_colour_g_r": ("g and z exchanged in the injected arc",
                           "test_realism_faults.py::test_swapped_bands_turn_the_colour_gates_red"),
    "realism_colour_r_z": ("g and z exchanged in the injected arc",
                           "test_realism_faults.py::test_swapped_bands_turn_the_colour_gates_red"),
    "realism_arc_noise_g": ("no arc noise; arc noise with 10x the depth's sigma",
                            "test_realism_faults.py::test_wrong_depth_noise_turns_the_noise_gates_red"),
    "realism_arc_noise_r": ("no arc noise added", "test_realism_faults.py::test_no_arc_noise_turns_the_noise_gates_red"),
    "realism_arc_noise_z": ("no arc noise added", "test_realism_faults.py::test_no_arc_noise_turns_the_noise_gates_red"),
    "detector_rows_disjoint": ("a trained row scored as test; a test row in a training pixel",
                               "test_model_and_host_gates.py::test_rows_disjoint_red_for_a_trained_row_scored_as_test"),
    "detector_auc_better_than_chance": ("a detector at chance (AUC lower bound 0.45)",
                                        "test_model_and_host_gates.py::test_auc_gate_red_at_chance"),
    "detector_metrics_have_intervals": ("a metric stored without its interval",
                                        "test_detector_evaluation.py::test_missing_intervals_catches_a_bare_metric"),
    "injection_hosts_held_out": ("a train row and a positive among the hosts",
                                 "test_selection.py::test_hosts_are_held_out_test_negatives_and_a_leak_fails"),
    "injection_host_bins_populated": ("a (PSF, depth) bin with 2 hosts",
                                      "test_model_and_host_gates.py::test_host_bins_gate_flags_thin_bins"),
    "completeness_table_valid": ("k + 1 in one cell; another threshold; host false positives counted; "
                                 "a non-Beta interval; missing cells; the completeness column or the host-cluster "
                                 "interval edited alone; another operating point's table edited or at another threshold",
                                 "test_selection.py::test_completeness_validity_gate_red_on_planted_faults"),
    "completeness_brackets_recomputed": ("a bracket table's k raised; a record dropped or its host logit changed; a "
                                         "variant's logits lowered with its table recomputed; one sampled logit forged; "
                                         "an observable flag flipped", "test_pipeline_tiny.py::"
                                         "test_brackets_are_recomputed_not_trusted"),
    "adversarial_scores_rescored": ("the highest ring logit lowered by 1; arc suppression faked; null controls "
                                    "lowered by 4; a host logit forged; a null control on a training negative", "test_pipeline_tiny.py::"
                                    "test_adversarial_scores_are_rescored_not_trusted"),
    "adversarial_null_controls": ("the 'null' path adds the arc; controls bit-identical to hosts",
                                  "test_adversarial_planted_models.py::"
                                  "test_null_controls_are_never_identical_and_a_leaked_arc_turns_the_gate_red"),
    "adversarial_synthetic_ring": ("a detector that scores rings high",
                                   "test_adversarial_planted_models.py::"
                                   "test_ring_gate_red_for_a_ring_lover_green_for_a_core_model"),
    "adversarial_arc_suppression": ("a detector that only sees the core (no score drop without the arc)",
                                    "test_adversarial_planted_models.py::"
                                    "test_arc_suppression_red_for_a_model_that_only_sees_the_core"),
    "adversarial_trend_theta_e": ("a detector whose score ignores theta_E; too few detections (no signal)",
                                  "test_selection.py::test_trend_gate_healthy_ignores_theta_and_no_signal"),
    "adversarial_trend_snr": ("a trend carried by host offsets only (clustered)",
                              "test_selection.py::test_trend_bound_respects_host_clustering"),
    "cutout_index_links_valid": ("an offset past the shard, a missing shard, two rows on one stamp, a failed row "
                                 "with a link", "test_integrity_gates.py::test_broken_links_are_red"),
    "cutout_shards_match_content_hash": ("shard bytes changed under their content-hash name",
                                         "test_integrity_gates.py::test_shard_bytes_changed_is_red"),
    "cutout_qc_recomputed": ("an all-NaN / zero-filled stamp behind a QC-ok row; offsets shifted by one",
                             "test_integrity_gates.py::test_offset_shifted_by_one_is_red"),
    "detector_artefact_hashes_match": ("after training: a train row moved to val, two stamp pointers swapped, an index "
                                       "partition deleted; no input record (a swapped, random or NaN checkpoint: "
                                       "`test_swapped_or_nan_checkpoint_is_red`)",
                                       "test_integrity_gates.py::test_a_manifest_or_index_changed_after_training_is_red"),
    "detector_auc_recomputed": ("logits permuted in the scored table; a stored AUC that disagrees",
                                "test_integrity_gates.py::test_permuted_logits_are_red"),
    "detector_logits_rescored": ("a checkpoint whose scores differ from the stored logits (hashes rewritten); a test "
                                 "positive's logit raised by 6; the validation negatives' logits lowered by 0.5",
                                 "test_integrity_gates.py::test_rescoring_checks_every_positive_and_the_validation_scores"),
    "detector_scored_rows_match_manifest": ("a positive and a negative swapping labels (test or validation), a "
                                            "negative promoted to tier A, a positive dropped, a foreign row (hash rewritten)",
                                            "test_integrity_gates.py::test_scored_rows_that_are_not_the_manifests_are_red"),
    "detector_evaluation_recomputed": ("evaluation.json with a forged AUC interval, Brier score, baseline AUC or "
                                       "operating threshold, or a metric removed; the scored table edited after it",
                                       "test_integrity_gates.py::test_a_stored_evaluation_that_is_not_its_tables_is_red"),
    "manifest_positives_are_known_lenses": ("a negative relabelled a positive of an unknown lens; a tier-A lens's "
                                            "positive stored as tier B; a positive 5\" off its lens", _SUITE),
    "shortcut_features_recomputed": ("features scrambled across rows, one value edited, a row dropped or foreign, "
                                     "a label flipped",
                                     "test_integrity_gates.py::test_shortcut_features_are_recomputed_from_the_stamps"),
    "completeness_injections_rederived": ("injection logits raised by 1; matched S/N x1000; observable flags that "
                                          "are not their S/N rule; one sampled injection's logit forged by +5",
                                          "test_pipeline_tiny.py::test_injections_are_rederived_not_trusted"),
    "training_manifest_negatives_satisfy_cuts": (
        "a negative with nobs_g 2, TYPE EXP, a BRIGHT maskbit, z = 21 mag, dec 40, not brick_primary, no sweep row, "
        "or coordinates moved in the manifest only", _SUITE),
    "training_manifest_negatives_far_from_known_lenses": (
        "a negative 8\" from a known lens (manifest and sweep, or the manifest only); a positive relabelled negative",
        _SUITE),
    "completeness_injections_provenance": (
        "injections or a null control hosted on a train / val negative; a host's stamp pointer aimed at a "
        "positive's or another host's stamp; two index rows swapping stamps; an injection's PSF FWHM or depth bin "
        "not its host's; an arc-suppression row on a train positive", _SUITE),
    "failure_missed_injections_provenance": ("a missed injection attributed to another host", _SUITE),
    "failure_missed_injections_recomputed": ("half the misses dropped; a detection listed; a cause changed; a row "
                                             "twice; the list of another threshold",
                                             "test_selection.py::test_missed_injections_gate_recomputes_the_list"),
    "injection_realism_hosts_provenance": ("a realism injection hosted on a train negative", _SUITE),
    "manifest_positives_in_domain": ("a positive at dec -30; an excluded positive with a wrong reason",
                                     "test_parity.py::test_domain_gate_red_for_a_planted_positive_and_a_wrong_reason"),
    "manifest_positive_negative_balance": ("positives 2 mag deeper than the negatives",
                                           "test_parity.py::test_balance_gate_red_when_positives_sit_in_deeper_sky"),
    "training_manifest_split_fractions": ("every positive in train",
                                          "test_parity.py::test_manifest_split_gate_red_when_positives_pile_into_one_split"),
}


def markdown() -> str:
    from lensaudit.gates.registry import GATES

    rows = ["| gate | severity | checks (the registry's description, numbers from `lensaudit/spec.py`) | planted fault | test |",
            "| --- | --- | --- | --- | --- |"]
    for g in GATES:
        fault, test = FAULTS.get(g.name, ("(missing)", "(missing)"))
        sev = g.severity + (", blocking" if g.blocking else "")
        checks = g.description.replace("|", "\\|")
        rows.append(f"| `{g.name}` | {sev} | {checks} | {fault} | `{test}` |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(markdown())
