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
