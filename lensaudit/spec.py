"""The specification's numbers that the gates judge against (DESIGN.md s3 "Evaluation",
"Adversarial gates on the trained detector", "Selection function").

Producers read their settings from the run profile (``lensaudit.config``); the gates read
*these* values, so a changed producer setting (a profile edited to a looser threshold, a
different operating FPR) makes a gate red instead of moving the gate's target with it.
``lensaudit_tests/test_spec_pinned.py`` pins every value to the design document.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class OperatingPoint:
    """A detector operating threshold chosen on the **validation** split at a fixed
    false-positive rate: the smallest logit t with FPR(score >= t) <= ``target_fpr`` on the
    validation negatives; *insufficient* when the split holds fewer than 1/target_fpr
    negatives (never extrapolated).  p = 0.5 is not an operating point for a model
    calibrated to a 1:100 prior (DESIGN s3 "Evaluation")."""

    target_fpr: float

    @property
    def name(self) -> str:
        return f"fpr{self.target_fpr:g}"

    @property
    def min_negatives(self) -> int:
        return int(round(1.0 / self.target_fpr))


#: two-sided levels of the intervals every reported proportion and metric carries (columns
#: ``lo68``/``hi68``, ``lo95``/``hi95``; DESIGN s3 "Evaluation", "Selection function")
INTERVAL_LEVELS: tuple[float, ...] = (0.68, 0.95)


def interval_tag(level: float) -> str:
    """The column suffix of an interval level: 0.68 -> "68"."""
    return f"{round(level * 100)}"


#: operating points, the first is the primary one (the default completeness table, the
#: ring gate, the failure taxonomy); each table is named after its point
OPERATING_POINTS: tuple[OperatingPoint, ...] = (OperatingPoint(1e-2), OperatingPoint(1e-3))
PRIMARY = OPERATING_POINTS[0]


@dataclass(frozen=True)
class PurityPoint:
    """A detector operating threshold chosen on the **validation** split at a fixed purity
    for a stated prevalence pi (DESIGN s3 "Evaluation": "fixed purity at a stated prevalence
    on request").  Purity is the prevalence-weighted precision, the fraction of true lenses
    among the selected objects of a sky where a fraction pi are lenses:

        purity(t) = pi TPR(t) / (pi TPR(t) + (1 - pi) FPR(t))

    (TPR, FPR of score >= t: the precision Bayes' rule gives at prior pi, independent of the
    split's own class ratio, as lens-finder purity is forecast at a survey's lens rate).  The threshold is the smallest logit whose
    validation purity >= ``target_purity`` (``evaluation.metrics.threshold_at_purity``).
    *Insufficient* when the validation split has no positive, when it cannot resolve the
    FPR the purity needs (that FPR is below 1/n_val_negatives: even at recall 1 the purity
    needs FPR <= ``max_fpr``, or the chosen threshold reaches the purity only through zero
    validation false positives), or when no threshold reaches the purity: never extrapolated.
    ``target_purity`` must exceed ``prevalence`` (selecting everything has purity pi)."""

    target_purity: float
    prevalence: float

    def __post_init__(self):
        if not (0.0 < self.prevalence < self.target_purity < 1.0):
            raise ValueError(f"purity point needs 0 < prevalence ({self.prevalence}) < target purity "
                             f"({self.target_purity}) < 1")

    @property
    def name(self) -> str:
        return f"purity{self.target_purity:g}_prev{self.prevalence:g}"

    def purity(self, tpr, fpr):
        """pi TPR / (pi TPR + (1 - pi) FPR); NaN where both rates are 0 (nothing selected)."""
        import numpy as np

        num = self.prevalence * np.asarray(tpr, float)
        den = num + (1.0 - self.prevalence) * np.asarray(fpr, float)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)

    def needed_fpr(self, tpr: float) -> float:
        """The largest FPR at which recall ``tpr`` still reaches the target purity:
        pi TPR (1 - P) / (P (1 - pi))."""
        p, pi = self.target_purity, self.prevalence
        return pi * float(tpr) * (1.0 - p) / (p * (1.0 - pi))

    @property
    def max_fpr(self) -> float:
        """The FPR the purity needs at recall 1 (the loosest it can be)."""
        return self.needed_fpr(1.0)

    @property
    def min_negatives(self) -> int:
        """Validation negatives needed to resolve ``max_fpr`` (1/n_neg <= max_fpr)."""
        import math

        return int(math.ceil(round(1.0 / self.max_fpr, 6)))


#: the stated prevalence of the purity points: 1e-3, the order of magnitude of the
#: galaxy-scale strong-lens rate among DR10 galaxies (ours: DESIGN gives no number)
PURITY_PREVALENCE: float = 1e-3
#: fixed-purity operating points (ours: DESIGN asks for them "on request" without numbers).
#: Reported beside the FPR points in evaluation.json (``purity_thresholds``) and the audit
#: report; the selection function keeps using ``PRIMARY``.
PURITY_POINTS: tuple[PurityPoint, ...] = (PurityPoint(0.5, PURITY_PREVALENCE), PurityPoint(0.9, PURITY_PREVALENCE))


@dataclass(frozen=True)
class SelectionSpec:
    """Gate targets of the selection function and the adversarial tests."""

    #: injections per cell for a completeness value to be ``sufficient``
    sufficient_n: int = 200
    #: synthetic ring: fraction of hosts below the threshold that the ring may push over
    ring_max_pushed_fraction: float = 0.05
    #: null controls: mean probability of the controls at most this (reference/002 s18 "mean p < 0.2")
    null_max_mean_probability: float = 0.2
    #: null controls: fraction of controls whose host was below the threshold and that cross it
    null_max_pushed_fraction: float = 0.05
    #: trend gates: fewer detections than this is "no signal" (a failure)
    trend_min_detections: int = 20
    #: one-sided level of the trend bounds (lower bound of rho and of the tercile difference)
    trend_one_sided_level: float = 0.95
    #: arc suppression: two-sided level of the interval of the mean logit drop that must exclude 0
    suppression_level: float = 0.95
    #: bootstrap resamples of the cluster (host) bootstrap of trends and completeness
    n_boot: int = 1000
    #: null / ring / trend gates: fewer rows (below the threshold, or injections) cannot be judged
    adversarial_min_rows: int = 10
    #: arc suppression: fewer real test lenses cannot be judged
    suppression_min_lenses: int = 3


SELECTION = SelectionSpec()


@dataclass(frozen=True)
class ParitySpec:
    """The sky/type domain of the negatives (DESIGN s3 N1 cuts) that positives are held to as
    well, and the balance bound of the positive-vs-negative condition distributions."""

    dec_min_deg: float = -18.0
    dec_max_deg: float = 32.0
    min_nobs: int = 3
    types: tuple[str, ...] = ("SER", "DEV", "REX")
    #: |standardised mean difference| of depth / PSF / declination, positives vs negatives,
    #: whose 95 % bootstrap lower bound must stay below this (Stuart 2010's 0.25 balance rule)
    max_abs_smd: float = 0.25
    #: one-sided level of the bootstrap lower bound of |SMD| (its 5th percentile at 0.95)
    balance_level: float = 0.95
    #: bootstrap resamples of the |SMD| lower bound
    balance_n_boot: int = 1000
    #: fewer positives or negatives cannot be judged
    balance_min_rows: int = 3
    #: manifest positives per split: chi-square goodness-of-fit p-value against the split
    #: fractions must exceed this
    min_split_pvalue: float = 0.01
    #: fewer manifest positives cannot be judged by the chi-square test
    min_split_positives: int = 10


PARITY = ParitySpec()


@dataclass(frozen=True)
class DataSpec:
    """Gate targets of the data half (DESIGN s3 "Negatives", "Splits", "Manifest", "Cutouts",
    "Shortcut gates")."""

    match_radius_arcsec: float = 1.5
    min_match_rate: float = 0.9
    exclusion_radius_arcsec: float = 11.0
    max_mag_z: float = 20.0
    n1_excluded_maskbits: tuple[int, ...] = (1, 5, 6, 7, 11, 12, 13)
    split_fractions: dict = field(default_factory=lambda: {"train": 0.70, "val": 0.15, "test": 0.15})
    split_tolerance: float = 0.03
    negatives_per_positive: int = 100
    max_shortfall_fraction: float = 0.05
    n2_fraction: float = 0.15
    n2_tolerance: float = 0.01
    max_cutout_failure_rate: float = 0.02
    shortcut_yellow: float = 0.60
    shortcut_red: float = 0.70
    #: single-feature AUC: stratified bootstrap resamples, interval level and seed
    shortcut_n_boot: int = 200
    shortcut_level: float = 0.68
    shortcut_seed: int = 0
    #: fewer positives or negatives (per feature, per split of the core-only LR) cannot be judged
    shortcut_min_per_class: int = 5
    core_lr_warn: float = 0.70


DATA = DataSpec()


@dataclass(frozen=True)
class RealismSpec:
    """Gate targets of the realism gates, injected arcs vs real lenses (DESIGN s3 "Realism
    gates"): arc S/N quantiles within [0.5, 2] x, arc colours within 0.2 mag in the median,
    injected arc noise against the real pixel noise per band."""

    #: median, p10, p90 of the combined arc S/N: the injected / real ratio band
    snr_ratio_lo: float = 0.5
    snr_ratio_hi: float = 2.0
    #: S/N floor of the ratio (max(q, floor)): below 1 sigma an arc is indistinguishable from noise
    snr_floor: float = 1.0
    #: two-sided level of the bootstrap interval of the ratio that must meet the band
    snr_level: float = 0.68
    snr_n_boot: int = 1000
    #: |median injected - median real| colour bound [mag]
    colour_tol_mag: float = 0.2
    #: colours are compared among stamps with at least this S/N in both bands of the colour
    colour_min_snr: float = 3.0
    #: fewer finite S/N values or selected colours (each side) cannot be judged
    min_n: int = 5
    #: KS distance of the arc-footprint noise (in Poisson sigmas) to N(0, 1), per band
    noise_max_ks: float = 0.1
    #: fewer arc-footprint pixels per band cannot be judged
    noise_min_pixels: int = 100


REALISM = RealismSpec()


@dataclass(frozen=True)
class ModelSpec:
    """Gate targets of the detector evaluation (DESIGN s3 "Evaluation")."""

    #: the 95 % lower bound of the test ROC AUC must exceed this (better than chance)
    min_auc_lo95: float = 0.5


MODEL = ModelSpec()


def negative_cuts():
    """The N1/N2 parity cuts with the spec's values (for gates that recompute them)."""
    from lensaudit.sampling.pools import NegativeCuts

    return NegativeCuts(dec_min_deg=PARITY.dec_min_deg, dec_max_deg=PARITY.dec_max_deg, min_nobs=PARITY.min_nobs,
                        max_mag_z=DATA.max_mag_z, types=PARITY.types, excluded_maskbits=DATA.n1_excluded_maskbits,
                        exclusion_radius_arcsec=DATA.exclusion_radius_arcsec)
