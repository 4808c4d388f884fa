"""The specification's numbers that the gates judge against (DESIGN.md s3 "Evaluation",
"Adversarial gates on the trained detector", "Selection function").

Producers read their settings from the run profile (``lensaudit.config``); the gates read
*these* values, so a changed producer setting (a profile edited to a looser threshold, a
different operating FPR) makes a gate red instead of moving the gate's target with it.
``lensaudit_tests/test_spec_pinned.py`` pins every value to the design document.
"""

from __future__ import annotations

from dataclasses import dataclass


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


#: operating points, the first is the primary one (the default completeness table, the
#: ring gate, the failure taxonomy); each table is named after its point
OPERATING_POINTS: tuple[OperatingPoint, ...] = (OperatingPoint(1e-2), OperatingPoint(1e-3))
PRIMARY = OPERATING_POINTS[0]


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


PARITY = ParitySpec()
