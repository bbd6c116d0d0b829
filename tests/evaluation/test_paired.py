"""Paired SA − baseline statistics (skinattn.evaluation.paired) and the verdict rule (paired_report.verdict)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import roc_auc_score

from skinattn.errors import DataError
from skinattn.evaluation.metrics import compute_metrics
from skinattn.evaluation.paired import (
    balanced_accuracy_rows,
    compare_arms,
    delong_covariance,
    delong_test,
    holm,
    macro_auc_rows,
    mcnemar_test,
    paired_bootstrap,
)
from skinattn.evaluation.paired_report import verdict

CLASSES = ["a", "b", "c"]


def _probabilities(rng: np.random.Generator, y: np.ndarray, skill: float, num_classes: int = 3) -> np.ndarray:
    """Softmax of noise plus ``skill`` on the true class: higher skill, better model."""
    logits = rng.normal(size=(len(y), num_classes))
    logits[np.arange(len(y)), y] += skill
    return np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)


def _arms(seed: int, n: int, seeds: int, skill_baseline: float, skill_treated: float):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    baseline = np.stack([_probabilities(rng, y, skill_baseline) for _ in range(seeds)])
    treated = np.stack([_probabilities(rng, y, skill_treated) for _ in range(seeds)])
    return y, baseline, treated


# ---- metrics and DeLong --------------------------------------------------------------------------------------


def test_fast_metrics_equal_the_evaluation_metrics():
    y, baseline, _ = _arms(0, 120, 2, 1.0, 1.0)
    y[:3] = 2  # make sure every class is present
    for probs in baseline:
        reference = compute_metrics(y, probs, CLASSES, n_bootstrap=0, progress=False)
        assert balanced_accuracy_rows(y, probs.argmax(1)[None], 3)[0] == pytest.approx(reference["balanced_accuracy"])
        assert macro_auc_rows(y, probs[None])[0] == pytest.approx(reference["macro_avg"]["auc"])


def test_delong_aucs_are_sklearns_and_its_variance_matches_a_bootstrap():
    rng = np.random.default_rng(1)
    y = np.r_[np.ones(120, bool), np.zeros(180, bool)]
    shared = rng.normal(size=y.size)  # the two scores are correlated, as two models on the same images are
    score_a = shared + 0.9 * y + rng.normal(scale=0.8, size=y.size)
    score_b = shared + 1.3 * y + rng.normal(scale=0.8, size=y.size)
    aucs, covariance = delong_covariance(y, np.vstack([score_a, score_b]))
    assert aucs == pytest.approx([roc_auc_score(y, score_a), roc_auc_score(y, score_b)])
    test = delong_test(y, score_a, score_b)
    assert test.difference == pytest.approx(aucs[1] - aucs[0])

    # DeLong treats positives and negatives as two samples: the bootstrap that matches resamples each. AUC
    # = Mann-Whitney U / (m n), computed by scipy for all resamples at once.
    positives, negatives = np.flatnonzero(y), np.flatnonzero(~y)
    resamples = 3000
    pos = rng.choice(positives, (resamples, positives.size))
    neg = rng.choice(negatives, (resamples, negatives.size))
    scale = positives.size * negatives.size
    auc_a = stats.mannwhitneyu(score_a[pos], score_a[neg], axis=1).statistic / scale
    auc_b = stats.mannwhitneyu(score_b[pos], score_b[neg], axis=1).statistic / scale
    assert test.variance == pytest.approx(np.var(auc_b - auc_a), rel=0.15)
    assert covariance[0, 0] == pytest.approx(np.var(auc_a), rel=0.15)
    # the shared component makes the difference far less variable than the two AUCs taken separately
    assert test.variance < 0.6 * (covariance[0, 0] + covariance[1, 1])


def test_delong_p_values():
    rng = np.random.default_rng(2)
    y = np.r_[np.ones(150, bool), np.zeros(150, bool)]
    weak = y + rng.normal(scale=2.0, size=y.size)
    strong = y + rng.normal(scale=0.4, size=y.size)
    assert delong_test(y, weak, strong).p_value < 1e-6
    same = delong_test(y, weak, weak)
    assert same.difference == 0 and same.p_value == 1.0
    with pytest.raises(DataError, match="at least 2 positive"):
        delong_test(np.array([1, 0, 0, 0], bool), weak[:4], strong[:4])


# ---- McNemar and Holm ----------------------------------------------------------------------------------------


def test_mcnemar_exact_and_mid_p_on_a_known_table():
    # 1 image only the baseline got right, 9 only the treated arm, 20 both, 5 neither: the discordant pairs
    # are Binomial(10, 1/2) under the null, P(X <= 1) = 11/1024.
    baseline = np.r_[np.ones(1), np.zeros(9), np.ones(20), np.zeros(5)].astype(bool)
    treated = np.r_[np.zeros(1), np.ones(9), np.ones(20), np.zeros(5)].astype(bool)
    result = mcnemar_test(baseline, treated)
    assert (result.only_baseline, result.only_treated) == (1, 9)
    assert result.p_exact == pytest.approx(22 / 1024)
    assert result.p_exact == pytest.approx(stats.binomtest(1, 10, 0.5).pvalue)
    assert result.p_mid == pytest.approx((22 - 10) / 1024)  # minus P(X = 1) = 10/1024
    balanced = mcnemar_test(np.r_[True, False, True], np.r_[False, True, True])
    assert (balanced.p_exact, balanced.p_mid) == pytest.approx((1.0, 1.0))
    assert mcnemar_test(np.ones(4, bool), np.ones(4, bool)).p_exact == 1.0


def test_holm_adjustment():
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    adjusted = holm([0.5, math.nan])
    assert adjusted[0] == 0.5 and math.isnan(adjusted[1])


# ---- the paired bootstrap ------------------------------------------------------------------------------------


def _correctness_arms(rng: np.random.Generator, n: int, seeds: int, p_baseline: float, p_treated: float):
    """Arms whose every prediction is right with a known probability, whatever the class: the true
    balanced-accuracy difference is exactly ``p_treated - p_baseline``."""
    y = np.repeat(np.arange(3), n // 3)

    def arm(p: float) -> np.ndarray:
        right = rng.random((seeds, y.size)) < p
        predicted = np.where(right, y, (y + rng.integers(1, 3, (seeds, y.size))) % 3)
        probs = np.full((seeds, y.size, 3), 0.1)
        np.put_along_axis(probs, predicted[..., None], 0.8, axis=2)
        return probs

    return y, arm(p_baseline), arm(p_treated)


def test_paired_bootstrap_ci_covers_the_true_difference():
    rng = np.random.default_rng(3)
    truth, covered, runs = 0.70 - 0.60, 0, 40
    for run in range(runs):
        y, baseline, treated = _correctness_arms(rng, 240, 2, 0.60, 0.70)
        interval = paired_bootstrap(y, baseline, treated, n_resamples=300, seed=run)["balanced_accuracy"]
        covered += interval.low <= truth <= interval.high
        assert interval.replicates == 300 and interval.confidence == 0.95
    # 95 % intervals: about 38 of 40; fewer than 33 would be a broken interval, not bad luck (P < 0.01)
    assert covered >= 33


def test_paired_bootstrap_uses_the_same_images_for_both_arms():
    """Equal arms give a zero-width interval: the shared image noise cancels exactly in the difference."""
    y, baseline, _ = _arms(4, 90, 2, 1.0, 1.0)
    interval = paired_bootstrap(y, baseline, baseline.copy(), n_resamples=50)
    assert interval["balanced_accuracy"].low == interval["balanced_accuracy"].high == 0.0
    assert interval["macro_auc"].low == interval["macro_auc"].high == 0.0


def test_paired_bootstrap_refuses_arms_of_different_shapes():
    y, baseline, treated = _arms(5, 30, 2, 1.0, 1.0)
    with pytest.raises(DataError, match="same"):
        paired_bootstrap(y, baseline, treated[:1])


# ---- the comparison and the verdict ----------------------------------------------------------------------------


def test_identical_arms_are_not_beyond_noise():
    y, baseline, _ = _arms(6, 300, 3, 1.2, 1.2)
    rng = np.random.default_rng(60)
    # the same skill, other draws: any difference is noise
    treated = np.stack([_probabilities(rng, y, 1.2) for _ in range(3)])
    comparison = compare_arms(y, baseline, treated, CLASSES, n_resamples=300)
    result = verdict("resnet34", comparison)
    assert result.outcome == "not beyond noise"
    assert result.sentence.startswith("On this data Soft Attention did not ")
    assert "beyond noise: balanced accuracy " in result.sentence
    assert "95 % CI " in result.sentence and "3 seeds, higher in " in result.sentence and "McNemar p" in result.sentence


def test_a_clearly_better_arm_helped_and_a_clearly_worse_one_hurt():
    y, baseline, treated = _arms(7, 300, 3, 0.5, 2.5)
    comparison = compare_arms(y, baseline, treated, CLASSES, n_resamples=300)
    assert comparison.intervals["balanced_accuracy"].low > 0
    assert all(d > 0 for d in comparison.per_seed_difference["balanced_accuracy"])
    helped = verdict("vgg16", comparison)
    assert helped.outcome == "helped"
    points = 100 * comparison.mean_difference["balanced_accuracy"]
    assert helped.sentence.startswith(f"On this data Soft Attention helped vgg16 beyond noise: balanced accuracy +{points:.1f} points")
    assert "higher in 3 of 3" in helped.sentence
    assert comparison.mcnemar.only_treated > comparison.mcnemar.only_baseline and comparison.mcnemar.p_mid < 0.001
    assert all(entry.test.p_value < 0.05 for entry in comparison.delong)

    hurt = verdict("vgg16", compare_arms(y, treated, baseline, CLASSES, n_resamples=300))
    assert hurt.outcome == "hurt" and "hurt vgg16 beyond noise: balanced accuracy \u2212" in hurt.sentence


def test_a_ci_above_zero_is_not_enough_without_a_majority_of_seeds():
    y, baseline, treated = _arms(8, 300, 3, 0.5, 2.5)
    comparison = compare_arms(y, baseline, treated, CLASSES, n_resamples=200)
    # the same interval, but only one seed of three improved
    flipped = dict(comparison.per_seed_difference, balanced_accuracy=[0.2, -0.01, -0.02])
    import dataclasses

    assert verdict("x", dataclasses.replace(comparison, per_seed_difference=flipped)).outcome == "not beyond noise"


def test_one_seed_says_seed_noise_cannot_be_judged():
    y, baseline, treated = _arms(9, 300, 1, 0.5, 2.5)
    result = verdict("resnet34", compare_arms(y, baseline, treated, CLASSES, n_resamples=100))
    assert result.outcome == "cannot judge"
    assert result.sentence.startswith("With 1 seed per arm the seed-to-seed noise cannot be judged for resnet34")


def test_no_bootstrap_cannot_judge():
    y, baseline, treated = _arms(10, 120, 2, 0.5, 2.5)
    comparison = compare_arms(y, baseline, treated, CLASSES, n_resamples=0)
    assert comparison.intervals == {}
    assert verdict("resnet34", comparison).outcome == "cannot judge"
