import numpy as np
import pytest
from scipy.stats import beta

from lensaudit.auc import roc_auc
from lensaudit.evaluation.metrics import (beta_interval, calibration_errors, recall_precision, stratified_bootstrap,
                                          threshold_at_fpr, threshold_at_purity)
from lensaudit.spec import PurityPoint


def test_recall_precision_against_sklearn():
    from sklearn.metrics import precision_score, recall_score

    rng = np.random.default_rng(0)
    y = rng.random(500) < 0.3
    s = rng.normal(y * 1.0, 1.0)
    r, p = recall_precision(s, y, 0.5)
    assert r == pytest.approx(recall_score(y, s >= 0.5)) and p == pytest.approx(precision_score(y, s >= 0.5))
    assert np.isnan(recall_precision(s, y, 99.0)[1])  # nothing selected: precision undefined, not 0 or 1


def test_threshold_at_fpr():
    rng = np.random.default_rng(1)
    y = np.r_[np.ones(100), np.zeros(5000)].astype(bool)
    s = rng.normal(y * 2.0, 1.0)
    t, ok = threshold_at_fpr(s, y, 1e-3)
    assert ok and ((s[~y] >= t).sum() <= 5) and ((s[~y] >= np.nextafter(t, -np.inf) - 1e-9).sum() >= 5)
    t, ok = threshold_at_fpr(s, y, 1e-4)
    assert not ok and np.isinf(t)  # 5000 negatives cannot resolve 1e-4


# 4 positives, 8 negatives; sorted: 5P 4.5N 4P 3N 2P 1P 0N -1N -2N -3N -4N -5N
_POS, _NEG = [5.0, 4.0, 2.0, 1.0], [4.5, 3.0, 0.0, -1.0, -2.0, -3.0, -4.0, -5.0]


def _hand():
    return np.r_[_POS, _NEG], np.r_[np.ones(4), np.zeros(8)].astype(int)


def test_threshold_at_purity_hand_computed():
    """Prevalence 0.5, so purity = TPR / (TPR + FPR).  Per distinct score u (select >= u):
    5: 1/4, 0/8 -> 1; 4.5: 1/4, 1/8 -> 0.667; 4: 2/4, 1/8 -> 0.8; 3: 2/4, 2/8 -> 0.667;
    2: 3/4, 2/8 -> 0.75; 1: 4/4, 2/8 -> 0.8; 0: 4/4, 3/8 -> 0.727; -1: 4/4, 4/8 -> 0.667; lower: less.
    Target 0.7: the lowest u reaching it is 0 (purity is not monotone: 3 and 4.5 miss it), so
    the threshold is one ulp above the next lower score, -1."""
    s, y = _hand()
    r = threshold_at_purity(s, y, PurityPoint(0.7, 0.5))
    assert r["sufficient"] and r["logit"] == np.nextafter(-1.0, np.inf)
    assert (r["tpr"], r["fpr"]) == (1.0, 3 / 8) and r["purity"] == pytest.approx(1 / 1.375)
    assert "smallest logit with validation purity >= 0.7 at prevalence 0.5" in r["reason"]
    # target 0.78: u = 1 (0.8) is the lowest; the threshold sits just above 0
    r = threshold_at_purity(s, y, PurityPoint(0.78, 0.5))
    assert r["sufficient"] and r["logit"] == np.nextafter(0.0, np.inf) and r["fpr"] == 2 / 8
    # a prevalence of 0.2: purity = TPR / (TPR + 4 FPR); u = 4 gives 0.5 / (0.5 + 0.5) = 0.5,
    # u = 1 gives 1 / (1 + 1) = 0.5, u = 0: 1 / 2.5 = 0.4.  Target 0.45 -> u = 1
    r = threshold_at_purity(s, y, PurityPoint(0.45, 0.2))
    assert r["sufficient"] and r["logit"] == np.nextafter(0.0, np.inf)


def test_threshold_at_purity_insufficient_cases():
    s, y = _hand()
    # only u = 5 (zero false positives) reaches 0.85; at recall 1/4 that purity needs
    # FPR <= 0.5 * 0.25 * 0.15 / (0.85 * 0.5) = 0.044 < 1/8: not resolved by 8 negatives
    r = threshold_at_purity(s, y, PurityPoint(0.85, 0.5))
    assert not r["sufficient"] and np.isinf(r["logit"]) and "zero validation false positives" in r["reason"]
    assert "1/8" in r["reason"]
    # purity 0.9 at prevalence 1e-3 needs FPR <= 1.11e-4 even at recall 1: 8 negatives < 8991
    r = threshold_at_purity(s, y, PurityPoint(0.9, 1e-3))
    assert not r["sufficient"] and "8 validation negatives < 8991 needed" in r["reason"]
    # no positive
    r = threshold_at_purity(s, np.zeros_like(y), PurityPoint(0.7, 0.5))
    assert not r["sufficient"] and "no validation positive" in r["reason"]
    # the top score a negative: purity 0.9 is never reached (highest 0.8)
    s2, y2 = np.r_[s, 9.0], np.r_[y, 0]
    r = threshold_at_purity(s2, y2, PurityPoint(0.9, 0.5))
    assert not r["sufficient"] and "no validation threshold reaches purity 0.9" in r["reason"]
    with pytest.raises(ValueError, match="prevalence"):
        PurityPoint(0.001, 0.01)  # selecting everything already has purity 0.01


def test_threshold_at_purity_is_the_lowest_reaching_selection():
    rng = np.random.default_rng(4)
    y = np.r_[np.ones(50), np.zeros(4000)].astype(int)
    s = np.round(rng.normal(y * 3.0, 1.0), 2)  # ties
    point = PurityPoint(0.5, 1e-3)
    r = threshold_at_purity(s, y, point)
    assert r["sufficient"]
    t = r["logit"]
    tpr, fpr = (s[y == 1] >= t).mean(), (s[y == 0] >= t).mean()
    assert point.purity(tpr, fpr) >= 0.5 and fpr == r["fpr"] and tpr == r["tpr"]
    for u in np.unique(s[s < t]):  # every lower selection misses the purity
        assert point.purity((s[y == 1] >= u).mean(), (s[y == 0] >= u).mean()) < 0.5


def test_calibration_errors_hand_case():
    p = np.r_[np.full(50, 0.2), np.full(50, 0.8)]
    y = np.r_[np.zeros(40), np.ones(10), np.zeros(10), np.ones(40)]  # perfectly calibrated
    ece, mce = calibration_errors(p, y, n_bins=2)
    assert ece == pytest.approx(0.0) and mce == pytest.approx(0.0)
    ece, mce = calibration_errors(np.r_[np.full(50, 0.5), np.full(50, 0.9)], y, n_bins=2)
    assert ece == pytest.approx(0.5 * 0.3 + 0.5 * 0.1) and mce == pytest.approx(0.3)
    with pytest.raises(ValueError):
        calibration_errors(p[:5], y[:5])


def test_beta_interval_against_scipy():
    lo, hi = beta_interval(7, 20, 0.68)
    assert lo == pytest.approx(beta.ppf(0.16, 8, 14)) and hi == pytest.approx(beta.ppf(0.84, 8, 14))
    # k = 0 and k = n: the HPD interval, which contains the point estimate
    lo, hi = beta_interval(0, 10, 0.95)
    assert lo == 0.0 and hi == pytest.approx(beta.ppf(0.95, 1, 11))
    lo, hi = beta_interval(10, 10, 0.95)
    assert hi == 1.0 and lo == pytest.approx(beta.ppf(0.05, 11, 1))
    assert all(np.isnan(beta_interval(0, 0, 0.68)))


def test_bootstrap_coverage_of_a_known_auc():
    from scipy.stats import norm

    true = norm.cdf(1 / np.sqrt(2))
    hits68 = hits95 = 0
    for k in range(30):
        rng = np.random.default_rng(50 + k)
        y = np.r_[np.ones(150), np.zeros(300)]
        s = np.r_[rng.normal(1, 1, 150), rng.normal(0, 1, 300)]
        b = stratified_bootstrap(lambda s_, y_: roc_auc(s_[y_ == 1], s_[y_ == 0]), s, y, n_boot=300, seed=k)
        hits68 += b["lo68"] <= true <= b["hi68"]
        hits95 += b["lo95"] <= true <= b["hi95"]
    assert 0.45 <= hits68 / 30 <= 0.9 and hits95 / 30 >= 0.8
    with pytest.raises(ValueError):
        stratified_bootstrap(lambda s_, y_: 0.0, [1.0, 2.0], [1, 1])


def test_stratified_bootstrap_agrees_with_scipy():
    """``stratified_bootstrap`` is kept beside ``scipy.stats.bootstrap`` (see its docstring);
    on the same data, scipy's independent per-sample (stratified) percentile bootstrap gives
    the same 68 % and 95 % AUC intervals within Monte-Carlo error."""
    from scipy.stats import bootstrap

    rng = np.random.default_rng(7)
    pos, neg = rng.normal(1, 1, 150), rng.normal(0, 1, 300)
    s, y = np.r_[pos, neg], np.r_[np.ones(150), np.zeros(300)]
    ours = stratified_bootstrap(lambda s_, y_: roc_auc(s_[y_ == 1], s_[y_ == 0]), s, y, n_boot=2000, seed=3)
    for level, tag in ((0.68, "68"), (0.95, "95")):
        ref = bootstrap((pos, neg), roc_auc, n_resamples=2000, vectorized=False, paired=False,
                        confidence_level=level, method="percentile", random_state=np.random.default_rng(4))
        ci = ref.confidence_interval
        assert abs(ours[f"lo{tag}"] - ci.low) < 0.01 and abs(ours[f"hi{tag}"] - ci.high) < 0.01, (tag, ours, ci)
