"""Forecast accuracy metrics, pure numpy.

Every metric takes array-likes of equal length. Pairs in which any input is NaN are ignored (the
callers already exclude censored or unobserved targets; a stray NaN must not turn a whole backtest
into NaN). When a denominator is zero, or no pair is left, the metric is ``nan``: a number that would
look valid (0 or inf) would be misread by the promotion gate, and ``nan`` is serialised as ``null``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import ArrayLike


def _aligned(*arrays: ArrayLike) -> list[np.ndarray]:
    """Equal-length float arrays restricted to the positions where every input is finite.

    Why: all metrics share one rule for missing values, so a metric never sees half a pair.
    """
    import numpy as np

    arrs = [np.asarray(a, dtype=float).ravel() for a in arrays]
    if len({a.size for a in arrs}) > 1:
        raise ValueError(f"metric inputs must have equal length, got {[a.size for a in arrs]}")
    mask = np.ones(arrs[0].size, dtype=bool)
    for a in arrs:
        mask &= np.isfinite(a)
    return [a[mask] for a in arrs]


def wape(actual: ArrayLike, forecast: ArrayLike) -> float:
    """Weighted absolute percentage error: sum|forecast - actual| / sum|actual|.

    Scale-free and robust to the many zero-demand days that break MAPE. ``nan`` when sum|actual| is 0
    (no demand at all: relative error is undefined) or no finite pair exists.
    """
    import numpy as np

    a, f = _aligned(actual, forecast)
    denom = np.abs(a).sum()
    if a.size == 0 or denom == 0:
        return float("nan")
    return float(np.abs(f - a).sum() / denom)


def bias(actual: ArrayLike, forecast: ArrayLike) -> float:
    """Relative bias: sum(forecast - actual) / sum(actual); > 0 means over-forecasting.

    ``nan`` when sum(actual) is 0 or no finite pair exists.
    """
    a, f = _aligned(actual, forecast)
    denom = a.sum()
    if a.size == 0 or denom == 0:
        return float("nan")
    return float((f - a).sum() / denom)


def mase(actual: ArrayLike, forecast: ArrayLike, scale: ArrayLike | float) -> float:
    """Mean absolute scaled error: mean over rows of |forecast - actual| / scale.

    ``scale`` is a scalar or one value per row: the in-sample seasonal MAE of the row's series (see
    ``seasonal_scale``). Scaling each row by its own series makes series of different volume
    comparable; pooling rows weights each series by its number of evaluated rows (with equal rows per
    series this is the mean of per-series MASE). Rows whose scale is not finite and positive (constant
    or too-short history) are left out; ``nan`` if no row is left.
    """
    import numpy as np

    a = np.asarray(actual, dtype=float).ravel()
    s = np.broadcast_to(np.asarray(scale, dtype=float), a.shape)
    a, f, s = _aligned(a, forecast, s)
    keep = s > 0
    if not keep.any():
        return float("nan")
    return float(np.mean(np.abs(f[keep] - a[keep]) / s[keep]))


def seasonal_scale(history: ArrayLike, season_length: int) -> float:
    """In-sample MASE scale of one series: mean |y[t] - y[t - season_length]| over a daily history.

    ``history`` is ordered and evenly spaced; NaN entries (censored or missing days) drop the pairs
    they take part in. ``nan`` if fewer than ``season_length + 1`` values or no finite pair.
    """
    import numpy as np

    if season_length < 1:
        raise ValueError(f"season_length must be >= 1, got {season_length}")
    y = np.asarray(history, dtype=float).ravel()
    if y.size <= season_length:
        return float("nan")
    diff = np.abs(y[season_length:] - y[:-season_length])
    diff = diff[np.isfinite(diff)]
    return float(diff.mean()) if diff.size else float("nan")


def interval_coverage(actual: ArrayLike, lower: ArrayLike, upper: ArrayLike) -> float:
    """Share of actuals inside the closed interval [lower, upper].

    For a P10-P90 interval a calibrated model covers about 0.8. ``nan`` when no finite triple exists.
    """
    import numpy as np

    a, lo, hi = _aligned(actual, lower, upper)
    if a.size == 0:
        return float("nan")
    return float(np.mean((a >= lo) & (a <= hi)))


# ------------------------------------------------------------------------------- comparing two models

HIGHER_IS_BETTER = frozenset({"roc_auc"})


def relative_improvement(metric: str, candidate: float | None, reference: float | None) -> float:
    """How much better ``candidate`` is than ``reference`` on ``metric``, as a fraction (> 0 = better).

    Errors and losses (wape, mae, log_loss...): 1 - candidate / reference. Scores where higher is
    better (roc_auc): candidate / reference - 1. ``nan`` when either value is missing or the reference
    is 0, so the gate never promotes on an undefined comparison.
    """
    import math

    if candidate is None or reference is None:
        return float("nan")
    c, r = float(candidate), float(reference)
    if not (math.isfinite(c) and math.isfinite(r)) or r == 0:
        return float("nan")
    return c / r - 1.0 if metric in HIGHER_IS_BETTER else 1.0 - c / r


# ------------------------------------------------------------------- regression and classification

PROBABILITY_EPS = 1e-15
CALIBRATION_BINS = 10


def mae(actual: ArrayLike, forecast: ArrayLike) -> float:
    """Mean absolute error, in the target's unit. ``nan`` when no finite pair exists."""
    import numpy as np

    a, f = _aligned(actual, forecast)
    return float(np.mean(np.abs(f - a))) if a.size else float("nan")


def rmse(actual: ArrayLike, forecast: ArrayLike) -> float:
    """Root mean squared error: like MAE but large misses weigh more. ``nan`` when no finite pair exists."""
    import numpy as np

    a, f = _aligned(actual, forecast)
    return float(np.sqrt(np.mean((f - a) ** 2))) if a.size else float("nan")


def _binary_labels(actual: np.ndarray, metric: str) -> np.ndarray:
    """Labels as a boolean array; anything but 0/1 is a caller bug, not something to guess about."""
    import numpy as np

    if not np.isin(actual, (0.0, 1.0)).all():
        raise ValueError(f"{metric} needs 0/1 labels, got values {sorted(set(actual.tolist()))[:5]}")
    return actual == 1.0


def log_loss(actual: ArrayLike, probability: ArrayLike) -> float:
    """Mean negative log-likelihood of 0/1 labels under the predicted probabilities of class 1.

    Probabilities are clipped to [1e-15, 1 - 1e-15] (as sklearn does), so one confident miss costs
    about 34.5 instead of making the whole metric infinite. ``nan`` when no finite pair exists.
    """
    import numpy as np

    y, p = _aligned(actual, probability)
    if y.size == 0:
        return float("nan")
    positive = _binary_labels(y, "log_loss")
    p = np.clip(p, PROBABILITY_EPS, 1.0 - PROBABILITY_EPS)
    return float(-np.mean(np.where(positive, np.log(p), np.log1p(-p))))


def brier(actual: ArrayLike, probability: ArrayLike) -> float:
    """Brier score: mean squared difference between probability and 0/1 label (bounded, unlike log loss).

    ``nan`` when no finite pair exists.
    """
    import numpy as np

    y, p = _aligned(actual, probability)
    if y.size == 0:
        return float("nan")
    _binary_labels(y, "brier")
    return float(np.mean((p - y) ** 2))


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks, ties sharing their average rank (what the Mann-Whitney statistic needs)."""
    import numpy as np

    order = np.argsort(values, kind="mergesort")
    _, first, counts = np.unique(values[order], return_index=True, return_counts=True)
    ranks = np.empty(values.size, dtype=float)
    ranks[order] = np.repeat(first + (counts + 1) / 2.0, counts)
    return ranks


def roc_auc(actual: ArrayLike, score: ArrayLike) -> float:
    """Area under the ROC curve: probability that a random positive scores above a random negative.

    Computed from ranks (Mann-Whitney U), ties counting one half, so it is O(n log n) and exact.
    ``nan`` when only one class is present: ranking needs both, and 0.5 would look like a real value.
    """
    y, s = _aligned(actual, score)
    if y.size == 0:
        return float("nan")
    positive = _binary_labels(y, "roc_auc")
    n_pos = int(positive.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    rank_sum = float(_average_ranks(s)[positive].sum())
    return (rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)


def expected_calibration_error(actual: ArrayLike, probability: ArrayLike, n_bins: int = CALIBRATION_BINS) -> float:
    """Mean |observed rate - mean probability| over equal-width probability bins, weighted by bin size.

    0 means that among rows predicted at about p, a share p were positive: what a consumer who reads
    the probability as a rate relies on. Probabilities are clipped to [0, 1]; 1.0 falls in the last
    bin. ``nan`` when no finite pair exists.
    """
    import numpy as np

    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    y, p = _aligned(actual, probability)
    if y.size == 0:
        return float("nan")
    _binary_labels(y, "expected_calibration_error")
    p = np.clip(p, 0.0, 1.0)
    bins = np.minimum((p * n_bins).astype(int), n_bins - 1)
    count = np.bincount(bins, minlength=n_bins)
    gap = np.abs(np.bincount(bins, weights=y, minlength=n_bins) - np.bincount(bins, weights=p, minlength=n_bins))
    return float(gap.sum() / count.sum())
