"""Paired comparison of two arms (Soft Attention vs its baseline) trained with several seeds and evaluated
on the same test images: statistics only (numpy, scipy, and the stratified resampling of
skinattn.evaluation.metrics), no files and no text.

An arm is an ``(S, N, K)`` array of class probabilities: S training seeds, N test images (the same images in
the same order for both arms), K classes. Seed ``s`` of one arm is paired with seed ``s`` of the other (the
ablation trains both arms of a replicate with the same training seed).

- :func:`paired_bootstrap`: percentile CI of the seed-averaged metric difference (SA − baseline) for
  balanced accuracy and macro AUC. Each replicate draws image indices once, stratified by true class like
  the evaluation's own CIs (the test split is stratified by design, and a rare class that vanished from a
  replicate would change what the macro average means), and applies the same indices to both arms and
  every seed: the variation between images that both arms share cancels in the difference.
- :func:`mcnemar_test`: exact and mid-p McNemar test on per-image correctness. It is applied to each arm's
  seed ensemble (argmax of the seed-averaged probabilities), not per seed: the seeds see the same images,
  so per-seed tests are not independent evidence to combine, and a majority vote of correctness ties with
  an even number of seeds. The ensemble is also what the DeLong tests compare.
- :func:`delong_test` / :func:`delong_covariance`: DeLong, DeLong & Clarke-Pearson (1988) test of two
  correlated ROC AUCs on the same images, computed with the midrank algorithm of Sun & Xu (2014); applied
  one-vs-rest per class to the seed-averaged probabilities.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np
from scipy import stats

from skinattn.errors import DataError
from skinattn.evaluation.metrics import percentile_interval, stratified_resample_index

DEFAULT_RESAMPLES = 1000
DEFAULT_CONFIDENCE = 0.95
# The metrics whose seed-averaged difference gets a paired bootstrap CI.
BOOTSTRAP_METRICS: tuple[str, ...] = ("balanced_accuracy", "macro_auc")


# ---- metrics of many (arm, seed) rows at once ------------------------------------------------------------


def balanced_accuracy_rows(y_true: np.ndarray, predicted: np.ndarray, num_classes: int) -> np.ndarray:
    """Balanced accuracy (mean recall over the classes present in ``y_true``) of each row of ``predicted``
    (R, N) class indices; the convention of ``skinattn.evaluation.metrics``."""
    onehot = np.eye(num_classes)[y_true]  # (N, K)
    support = onehot.sum(axis=0)
    present = support > 0
    correct_per_class = (predicted == y_true).astype(np.float64) @ onehot  # (R, K)
    return (correct_per_class[:, present] / support[present]).mean(axis=1)


def macro_auc_rows(y_true: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Macro one-vs-rest ROC AUC of each row of ``scores`` (R, N, K): the mean over the classes that have
    both positives and negatives (Mann-Whitney with midranks, equal to scikit-learn's roc_auc_score)."""
    aucs = []
    for k in range(scores.shape[2]):
        positives = y_true == k
        m = int(positives.sum())
        n = len(y_true) - m
        if m == 0 or n == 0:
            continue
        ranks = stats.rankdata(scores[:, :, k], axis=1)
        aucs.append((ranks[:, positives].sum(axis=1) - m * (m + 1) / 2.0) / (m * n))
    if not aucs:
        return np.full(scores.shape[0], np.nan)
    return np.mean(aucs, axis=0)


def _metric_rows(y_true: np.ndarray, probabilities: np.ndarray) -> dict[str, np.ndarray]:
    return {
        "balanced_accuracy": balanced_accuracy_rows(y_true, probabilities.argmax(axis=2), probabilities.shape[2]),
        "macro_auc": macro_auc_rows(y_true, probabilities),
    }


# ---- paired bootstrap ------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Interval:
    """A percentile bootstrap interval of a difference; ``replicates`` is the number of finite replicates."""

    low: float
    high: float
    confidence: float
    replicates: int


def _check_arms(y_true: np.ndarray, baseline: np.ndarray, treated: np.ndarray) -> None:
    if baseline.ndim != 3 or baseline.shape != treated.shape:
        raise DataError(
            f"paired arms need the same (seeds, images, classes) shape, got {baseline.shape} and {treated.shape}"
        )
    if baseline.shape[1] != len(y_true) or len(y_true) == 0:
        raise DataError(f"{len(y_true)} labels for {baseline.shape[1]} images per seed")


def paired_bootstrap(
    y_true: np.ndarray,
    baseline: np.ndarray,
    treated: np.ndarray,
    *,
    n_resamples: int = DEFAULT_RESAMPLES,
    confidence: float = DEFAULT_CONFIDENCE,
    seed: int = 0,
) -> dict[str, Interval]:
    """CI of ``mean over seeds(metric(treated)) − mean over seeds(metric(baseline))`` for every metric of
    :data:`BOOTSTRAP_METRICS`; see the module docstring for the resampling."""
    _check_arms(y_true, baseline, treated)
    if n_resamples < 1:
        raise DataError(f"the paired bootstrap needs at least 1 resample, got {n_resamples}")
    if not 0 < confidence < 1:
        raise DataError(f"confidence must lie in (0, 1), got {confidence}")
    seeds = baseline.shape[0]
    stacked = np.concatenate([baseline, treated])  # rows 0..S-1 baseline, S..2S-1 treated
    rng = np.random.default_rng(seed)
    by_class = [np.flatnonzero(y_true == k) for k in np.unique(y_true)]
    differences: dict[str, list[float]] = {name: [] for name in BOOTSTRAP_METRICS}
    for _ in range(n_resamples):
        index = stratified_resample_index(rng, by_class)
        for name, values in _metric_rows(y_true[index], stacked[:, index, :]).items():
            differences[name].append(float(np.mean(values[seeds:]) - np.mean(values[:seeds])))
    intervals = {}
    for name, values in differences.items():
        finite = np.asarray([v for v in values if math.isfinite(v)])
        low, high = percentile_interval(finite, confidence)
        intervals[name] = Interval(low, high, confidence, int(finite.size))
    return intervals


# ---- McNemar ---------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class McNemar:
    """``only_baseline``: images only the baseline got right; ``only_treated``: only the treated arm."""

    only_baseline: int
    only_treated: int
    p_exact: float
    p_mid: float


def mcnemar_test(baseline_correct: np.ndarray, treated_correct: np.ndarray) -> McNemar:
    """Two-sided McNemar test on paired per-image correctness: the exact binomial test of the discordant
    pairs, and its mid-p version (Fagerland, Lydersen & Laake 2013: less conservative, close to nominal)."""
    baseline_correct = np.asarray(baseline_correct, dtype=bool)
    treated_correct = np.asarray(treated_correct, dtype=bool)
    if baseline_correct.shape != treated_correct.shape:
        raise DataError(f"McNemar needs paired outcomes, got {baseline_correct.shape} and {treated_correct.shape}")
    b = int(np.sum(baseline_correct & ~treated_correct))
    c = int(np.sum(~baseline_correct & treated_correct))
    n, smaller = b + c, min(b, c)
    if n == 0:
        return McNemar(b, c, 1.0, 1.0)
    tail = float(stats.binom.cdf(smaller, n, 0.5))
    point = float(stats.binom.pmf(smaller, n, 0.5))
    return McNemar(b, c, min(1.0, 2.0 * tail), min(1.0, 2.0 * tail - point))


# ---- DeLong ----------------------------------------------------------------------------------------------


def delong_covariance(y_binary: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The AUCs of ``scores`` (k classifiers × N images) for the 0/1 labels ``y_binary``, and DeLong's
    (k × k) covariance matrix of those AUCs, by Sun & Xu's midrank algorithm.

    With m positives X and n negatives Y, for each classifier: T_X, T_Y, T_Z are the midranks of its scores
    among the positives, among the negatives, and among all images; AUC = (Σ_X T_Z − m(m+1)/2) / (m n); the
    structural components are V10_i = (T_Z,i − T_X,i) / n for the positives and V01_j = 1 − (T_Z,j −
    T_Y,j) / m for the negatives; the covariance is S10 / m + S01 / n with S10, S01 the sample covariance
    matrices of V10 and V01 across the k classifiers.
    """
    y_binary = np.asarray(y_binary).astype(bool)
    scores = np.atleast_2d(np.asarray(scores, dtype=np.float64))
    m, n = int(y_binary.sum()), int((~y_binary).sum())
    if m < 2 or n < 2:
        raise DataError(f"DeLong needs at least 2 positive and 2 negative images, got {m} and {n}")
    positives, negatives = scores[:, y_binary], scores[:, ~y_binary]
    t_x = stats.rankdata(positives, axis=1)
    t_y = stats.rankdata(negatives, axis=1)
    t_z = stats.rankdata(np.concatenate([positives, negatives], axis=1), axis=1)
    aucs = (t_z[:, :m].sum(axis=1) - m * (m + 1) / 2.0) / (m * n)
    v10 = (t_z[:, :m] - t_x) / n
    v01 = 1.0 - (t_z[:, m:] - t_y) / m
    covariance = np.atleast_2d(np.cov(v10)) / m + np.atleast_2d(np.cov(v01)) / n
    return aucs, covariance


@dataclasses.dataclass(frozen=True)
class DeLong:
    """Two correlated AUCs, their difference (treated − baseline), its variance and the two-sided p."""

    auc_baseline: float
    auc_treated: float
    difference: float
    variance: float
    z: float
    p_value: float


def delong_test(y_binary: np.ndarray, baseline_scores: np.ndarray, treated_scores: np.ndarray) -> DeLong:
    """DeLong's test of AUC(treated) = AUC(baseline) on the same images (normal approximation)."""
    aucs, covariance = delong_covariance(y_binary, np.vstack([baseline_scores, treated_scores]))
    difference = float(aucs[1] - aucs[0])
    variance = float(covariance[0, 0] + covariance[1, 1] - 2.0 * covariance[0, 1])
    if variance <= 1e-15:  # identical rankings: no evidence either way
        z, p = 0.0, 1.0 if abs(difference) < 1e-12 else 0.0
    else:
        z = difference / math.sqrt(variance)
        p = float(2.0 * stats.norm.sf(abs(z)))
    return DeLong(float(aucs[0]), float(aucs[1]), difference, max(variance, 0.0), z, p)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment (family-wise error) of several p-values; NaN stays NaN."""
    values = np.asarray(p_values, dtype=np.float64)
    adjusted = np.full(values.shape, np.nan)
    finite = np.flatnonzero(~np.isnan(values))
    order = finite[np.argsort(values[finite])]
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (len(order) - rank) * values[index]))
        adjusted[index] = running
    return adjusted.tolist()


# ---- the whole comparison of one architecture ---------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ClassDeLong:
    """DeLong's test of one class's one-vs-rest AUC on the seed-averaged probabilities (None: too few images
    of the class, or of the rest, to test)."""

    class_name: str
    test: DeLong | None
    p_holm: float


@dataclasses.dataclass(frozen=True)
class PairedComparison:
    """Everything measured about one architecture with and without the treatment (Soft Attention)."""

    seeds: int
    images: int
    per_seed_difference: dict[str, list[float]]  # metric → treated − baseline, seed by seed (full test set)
    mean_difference: dict[str, float]  # metric → mean over seeds of the difference
    intervals: dict[str, Interval]  # metric → paired bootstrap CI of the mean difference (empty: no bootstrap)
    mcnemar: McNemar
    delong: list[ClassDeLong]


def compare_arms(
    y_true: np.ndarray,
    baseline: np.ndarray,
    treated: np.ndarray,
    class_names: Sequence[str],
    *,
    n_resamples: int = DEFAULT_RESAMPLES,
    confidence: float = DEFAULT_CONFIDENCE,
    seed: int = 0,
) -> PairedComparison:
    """Per-seed and seed-averaged differences, their paired bootstrap CIs (none with ``n_resamples`` 0),
    McNemar on the seed ensembles' correctness and DeLong per class on the seed-averaged probabilities."""
    y_true = np.asarray(y_true, dtype=np.int64)
    baseline, treated = np.asarray(baseline, dtype=np.float64), np.asarray(treated, dtype=np.float64)
    _check_arms(y_true, baseline, treated)
    if baseline.shape[2] != len(class_names):
        raise DataError(f"{baseline.shape[2]} probability columns for {len(class_names)} classes")
    seeds = baseline.shape[0]
    rows = _metric_rows(y_true, np.concatenate([baseline, treated]))
    per_seed = {name: (values[seeds:] - values[:seeds]).tolist() for name, values in rows.items()}
    mean_difference = {name: float(np.mean(values)) for name, values in per_seed.items()}
    intervals = (
        paired_bootstrap(y_true, baseline, treated, n_resamples=n_resamples, confidence=confidence, seed=seed)
        if n_resamples > 0 else {}
    )  # fmt: skip
    ensemble_baseline, ensemble_treated = baseline.mean(axis=0), treated.mean(axis=0)
    mcnemar = mcnemar_test(ensemble_baseline.argmax(axis=1) == y_true, ensemble_treated.argmax(axis=1) == y_true)
    tests: list[DeLong | None] = []
    for k in range(len(class_names)):
        positives = y_true == k
        if min(int(positives.sum()), int((~positives).sum())) < 2:
            tests.append(None)
            continue
        tests.append(delong_test(positives, ensemble_baseline[:, k], ensemble_treated[:, k]))
    adjusted = holm([t.p_value if t is not None else math.nan for t in tests])
    delong = [ClassDeLong(name, test, p) for name, test, p in zip(class_names, tests, adjusted)]
    return PairedComparison(seeds, len(y_true), per_seed, mean_difference, intervals, mcnemar, delong)


__all__ = [
    "BOOTSTRAP_METRICS", "ClassDeLong", "DeLong", "Interval", "McNemar", "PairedComparison",
    "balanced_accuracy_rows", "compare_arms", "delong_covariance", "delong_test", "holm", "macro_auc_rows",
    "mcnemar_test", "paired_bootstrap",
]  # fmt: skip
