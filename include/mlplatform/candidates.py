"""Forecast candidates, chosen per use case by the rolling-origin backtest, and the model that serves.

No single estimator suits every use case: trees on target levels cannot extrapolate a trend nor share
structure across series whose sizes differ by orders of magnitude, while per-series statistical models
cannot use promotions, prices or a calendar. So every forecast use case backtests a set of candidates
(``model.candidates`` in the spec) on the same rows and serves the best:

- ``seasonal_naive``: the baseline itself, always evaluated; the floor.
- ``auto_ets`` / ``auto_theta``: statsforecast's per-series AutoETS and AutoTheta, fitted on the last
  ``model.statistical.window`` periods of each series at the forecast origin (within a series budget).
  A season longer than ETS can model (24 periods) is removed by MSTL first (``_statistical_model``).
- ``gbm``: the global gradient-boosting model on target levels (``forecasting.QuantileForecaster``).
- ``gbm_scaled``: the same model on targets divided by each series' recent level, so one model learns
  across series of any size and follows trends.
- ``ensemble``: the median of the ``model.ensemble_size`` best single candidates (combinations won M4).

Intervals are not fitted per quantile: every quantile other than P50 is the P50 plus a conformal offset,
the empirical quantile of the backtest's out-of-sample residuals at that horizon, each residual divided
by its series' scale at the origin (``conformal``). The served ``ForecastModel`` is a value: the chosen
candidate, its fitted global models, and the calibration table.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from mlplatform.forecasting import (
    HORIZON,
    QuantileForecaster,
    _Panel,
    make_supervised,
    seasonal_naive,
    series_columns,
    to_timestamp,
)
from mlplatform.serialise import JoblibSerialisable
from mlplatform.spec import (
    DEFAULT_STATISTICAL_WINDOW,
    STATISTICAL_CANDIDATES,
    UseCaseSpec,
    quantile_column,
)

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

P50 = "p50"
ENSEMBLE = "ensemble"
SEASONAL_NAIVE = "seasonal_naive"
# Periods over which a series' scale (spread of its one-period changes) is measured at an origin.
SCALE_WINDOW_MIN, SCALE_WINDOW_MAX = 8, 60
# Residuals pooled per horizon at least: neighbouring horizons join until there are this many.
MIN_CALIBRATION_RESIDUALS = 40
# Fewer observed periods than this in a series' window: its statistical forecast is the seasonal naive.
MIN_STATISTICAL_HISTORY = 8


def statistical_window(spec: UseCaseSpec) -> int:
    """Periods of history each per-series statistical fit sees (spec, else the frequency's default)."""
    return spec.model.statistical.window or DEFAULT_STATISTICAL_WINDOW[spec.frequency]


def statistical_season(spec: UseCaseSpec) -> int:
    """Season length the statistical models use: the spec's, when the window holds two seasons of it.

    A 364-day season (same weekday last year) cannot be estimated from 16 weeks of days; daily data then
    falls back to its weekly cycle, other frequencies to no seasonality.
    """
    window, m = statistical_window(spec), spec.backtest.season_length
    if window >= 2 * m:
        return m
    return 7 if spec.frequency == "daily" and window >= 14 else 1


def scale_window(spec: UseCaseSpec) -> int:
    """Periods looked back on for a series' scale: three seasons, within [8, 60]."""
    return min(max(3 * spec.backtest.season_length, SCALE_WINDOW_MIN), SCALE_WINDOW_MAX)


def history_periods(spec: UseCaseSpec) -> int:
    """Periods of history before an origin that the candidates read (beyond the trees' own look-back)."""
    needed = scale_window(spec) + 1
    if set(spec.model.candidates) & STATISTICAL_CANDIDATES:
        needed = max(needed, statistical_window(spec))
    return needed


def statistical_budget(spec: UseCaseSpec, n_series: int) -> str | None:
    """Why the statistical candidates are skipped for this many series, or None if they fit the budget."""
    limit = spec.model.statistical.max_series
    if n_series > limit:
        return (f"skipped: {n_series} series > model.statistical.max_series {limit} "
                "(one fit per series and origin; raise the budget to try them)")
    return None


# ------------------------------------------------------------------------------------- per-series views


def _origin_panel(recent: pd.DataFrame, spec: UseCaseSpec, origin: Any) -> tuple[_Panel, np.ndarray, int]:
    """(panel, row positions of the series present at the origin in supervised order, origin period)."""
    import numpy as np

    panel = _Panel(recent, spec)
    period = int(panel.origin_numbers([to_timestamp(origin)])[0])
    return panel, panel.origin_rows(np.array([period])), period


def _window_values(panel: _Panel, sids: np.ndarray, last: int, length: int) -> np.ndarray:
    """(series x length) targets of the periods last - length + 1 .. last; NaN where missing or censored."""
    import numpy as np

    grid = np.arange(last - length + 1, last + 1, dtype=np.int64)
    values = panel.target_at(np.repeat(sids, length), np.tile(grid, sids.size), mask_censored=True)
    return values.reshape(sids.size, length)


def series_scale(recent: pd.DataFrame, spec: UseCaseSpec, origin: Any) -> np.ndarray:
    """Per series present at the origin (supervised order): the standard deviation of its period-to-period
    changes y(t) - y(t-1) over the scale window.

    What a forecast error is measured against when residuals of series of different size are pooled:
    each series' own unpredictable movement. The spread of the changes, not their mean size: a steadily
    trending series (population) moves a lot every period yet is easy to forecast, and measuring its
    errors against its drift made the pooled bands too narrow for volatile series (on the quarterly macro
    data, P10-P90 coverage 71 % with mean |change|, 78 % with this). Falls back to the mean |change|
    (an exactly linear series), then the mean |y| of the window, then 1 (a series that never moves or
    has too few observations).
    """
    import warnings

    import numpy as np

    panel, rows, period = _origin_panel(recent, spec, origin)
    values = _window_values(panel, panel.sid[rows], period, scale_window(spec) + 1)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows: handled by the fallbacks below
        changes = np.diff(values, axis=1)
        enough = np.isfinite(changes).sum(axis=1) >= 2
        spread = np.where(enough, np.nanstd(changes, axis=1), np.nan)
        moves = np.nanmean(np.abs(changes), axis=1)
        level = np.nanmean(np.abs(values), axis=1)
    scale = level
    for candidate in (moves, spread):  # the first usable of: spread, mean |change|, mean |y|
        scale = np.where(np.isfinite(candidate) & (candidate > 0), candidate, scale)
    return np.where(np.isfinite(scale) & (scale > 0), scale, 1.0)


def _interpolated(values: np.ndarray) -> np.ndarray:
    """A series' window without leading gaps, inner gaps filled linearly (statsforecast wants no NaN)."""
    import numpy as np

    seen = np.flatnonzero(np.isfinite(values))
    if seen.size == 0:
        return values[:0]
    values = values[seen[0]:]
    idx = np.arange(values.size)
    ok = np.isfinite(values)
    return np.interp(idx, idx[ok], values[ok])


# Longest season statsforecast's AutoETS models; beyond it, ETS forecasts the MSTL-deseasonalised series.
MAX_ETS_SEASON = 24


def _statistical_model(method: str, season: int) -> Any:
    """The statsforecast model behind a statistical candidate.

    ETS cannot model a season longer than 24 periods (statsforecast then silently fits a non-seasonal
    ETS: on weekly CO2 with its 52-week cycle, 2-8x the error of AutoTheta at some origins, good at
    others). So ``auto_ets`` with a longer season is ETS on the series with its season removed by MSTL
    (statsforecast's own recipe for long seasonality), the season added back; Theta deseasonalises itself.
    """
    from statsforecast.models import MSTL, AutoETS, AutoTheta

    if method != "auto_ets":
        return AutoTheta(season_length=season)
    if season > MAX_ETS_SEASON:
        return MSTL(season_length=season, trend_forecaster=AutoETS(model="ZZN"))
    return AutoETS(season_length=season)


def _fit_forecast(method: str, y: np.ndarray, season: int, horizon: int) -> np.ndarray:
    """One series' point forecast h = 1..H; NaN when the history is too short or the fit fails."""
    import warnings

    import numpy as np

    if y.size < max(MIN_STATISTICAL_HISTORY, 2 * season if season > 1 else 0):
        season = 1
    if y.size < MIN_STATISTICAL_HISTORY:
        return np.full(horizon, np.nan)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mean = _statistical_model(method, season).forecast(y=y, h=horizon)["mean"]
        return np.asarray(mean, dtype=float)
    except Exception:  # noqa: BLE001 - one series' failed fit falls back to the seasonal naive
        return np.full(horizon, np.nan)


def statistical_p50(recent: pd.DataFrame, spec: UseCaseSpec, origin: Any, method: str,
                    window: int | None = None, season: int | None = None) -> np.ndarray:
    """``method``'s P50 for every (series present at the origin, h = 1..H), in supervised row order.

    Each series is fitted on its last ``window`` periods up to the origin only (never later data).
    """
    import numpy as np

    panel, rows, period = _origin_panel(recent, spec, origin)
    window = window or statistical_window(spec)
    season = season or statistical_season(spec)
    horizon = spec.forecast.horizon
    values = _window_values(panel, panel.sid[rows], period, window)
    out = np.full((rows.size, horizon), np.nan)
    for i in range(rows.size):
        out[i] = _fit_forecast(method, _interpolated(values[i]), season, horizon)
    return out.ravel()


def seasonal_naive_p50(recent: pd.DataFrame, spec: UseCaseSpec, origin: Any) -> np.ndarray:
    """The baseline's P50 in supervised row order (``seasonal_naive`` on the same frame orders alike)."""
    return seasonal_naive(recent, spec, origin)[P50].to_numpy(dtype=float)


def gbm_model(spec: UseCaseSpec, name: str) -> QuantileForecaster:
    """An unfitted global model for candidate ``name``: the P50 only (intervals are conformal)."""
    return QuantileForecaster(spec, quantiles=[0.5], scaled=name == "gbm_scaled")


# ------------------------------------------------------------------------------------------ conformal


def _pooled(horizons: np.ndarray, h: int, max_h: int) -> np.ndarray:
    """Mask of residuals at horizons within a window around h holding MIN_CALIBRATION_RESIDUALS."""
    import numpy as np

    width = 0
    mask = horizons == h
    while mask.sum() < MIN_CALIBRATION_RESIDUALS and width < max_h:
        width += 1
        mask = np.abs(horizons - h) <= width
    return mask


def _conformal_level(q: float, n: int) -> float:
    """Quantile level with the split-conformal finite-sample correction (wider for small n)."""
    if q > 0.5:
        return min(1.0, math.ceil((n + 1) * q) / n)
    return max(0.0, math.floor((n + 1) * q) / n)


def calibrate(z: np.ndarray, horizons: np.ndarray, horizon: int, quantiles: list[float]) -> dict[str, list[float]]:
    """Offsets per quantile column and horizon (scaled units) from normalised residuals z = (y - p50) / s.

    Per horizon, the empirical quantile of the residuals there (neighbouring horizons pooled in until
    there are enough); then the band never narrows with the horizon (uncertainty does not shrink with
    lead time), which also smooths the noise of small samples. P50's offset is zero, lower quantiles'
    offsets are at most zero and upper ones at least zero, so the published P50 is the point forecast.
    """
    import numpy as np

    ok = np.isfinite(z)
    z, horizons = z[ok], horizons[ok]
    table: dict[str, list[float]] = {}
    for q in quantiles:
        col = quantile_column(q)
        if q == 0.5 or z.size == 0:
            table[col] = [0.0] * horizon
            continue
        offsets = []
        for h in range(1, horizon + 1):
            sample = z[_pooled(horizons, h, horizon)]
            method = "higher" if q > 0.5 else "lower"  # order statistics, as split conformal prescribes
            offsets.append(float(np.quantile(sample, _conformal_level(q, sample.size), method=method)))
        arr = np.asarray(offsets)
        # never narrower with the horizon, and never on the wrong side of the P50 (which stays the point)
        arr = np.maximum.accumulate(np.maximum(arr, 0.0)) if q > 0.5 else np.minimum.accumulate(np.minimum(arr, 0.0))
        table[col] = [float(v) for v in arr]
    return table


def apply_calibration(p50: np.ndarray, scale: np.ndarray, horizons: np.ndarray,
                      table: dict[str, list[float]], nonnegative: bool) -> dict[str, np.ndarray]:
    """Quantile columns from the P50, the row's series scale and the calibration table; monotone."""
    import numpy as np

    columns = sorted(table, key=lambda c: int(c[1:]))
    out = np.column_stack([p50 + np.asarray(table[c])[horizons - 1] * scale for c in columns])
    out = np.sort(out, axis=1)
    if nonnegative:
        out = np.clip(out, 0.0, None)
    return {c: out[:, i] for i, c in enumerate(columns)}


def normalised_residuals(rows: pd.DataFrame, point: str) -> np.ndarray:
    """(actual - point) / series scale at the origin, for rows with ``actual`` and ``cal_scale``."""
    return ((rows["actual"] - rows[point]) / rows["cal_scale"]).to_numpy(dtype=float)


def cross_fitted_bands(rows: pd.DataFrame, point: str, spec: UseCaseSpec) -> tuple[dict[str, np.ndarray], bool]:
    """Every quantile column for backtest rows, each fold calibrated on the OTHER folds' residuals.

    Why cross-fit: calibrating on the very residuals it is scored on would report the nominal coverage
    by construction. With one fold there is nothing else to calibrate on: the bands are in-sample and
    the flag (second value) says so.
    """
    import numpy as np

    z = normalised_residuals(rows, point)
    horizons = rows[HORIZON].to_numpy(dtype=np.int64)
    folds = rows["fold"].to_numpy()
    cross = len(np.unique(folds)) > 1
    columns = [quantile_column(q) for q in spec.model.quantiles]
    out = {c: np.full(len(rows), np.nan) for c in columns}
    for fold in np.unique(folds):
        this = folds == fold
        train = ~this if cross else this
        table = calibrate(z[train], horizons[train], spec.forecast.horizon, spec.model.quantiles)
        bands = apply_calibration(rows[point].to_numpy(dtype=float)[this], rows["cal_scale"].to_numpy()[this],
                                  horizons[this], table, nonnegative=False)
        for c in columns:
            out[c][this] = bands[c]
    return out, cross


# ------------------------------------------------------------------------------------------ the model


class ForecastModel(JoblibSerialisable):
    """What a forecast version serves: the chosen candidate (or ensemble), fitted global models, intervals.

    Statistical members are refitted on each series' recent window at every forecast origin (a local
    model's parameters belong to the series' latest data; the version pins the method, its window and
    season, and the calibration). Global members are fitted once, at training, on data up to the
    training origin. Only plain Python state and fitted estimators are kept, so the pickle stays loadable
    when the spec class evolves.
    """

    def __init__(self, spec: UseCaseSpec, candidate: str, members: list[str],
                 gbms: dict[str, QuantileForecaster], calibration: dict[str, list[float]], nonnegative: bool,
                 fallback: bool = False) -> None:
        self.use_case = spec.name
        self.spec_fingerprint = spec.fingerprint()
        self.series_keys = list(spec.features.series_keys)
        self.candidate = candidate
        self.members = list(members)
        self.gbms = dict(gbms)
        self.calibration = calibration
        self.nonnegative = nonnegative
        self.fallback = fallback
        self.quantiles = list(spec.model.quantiles)
        self.quantile_columns = [quantile_column(q) for q in self.quantiles]
        self.horizon = spec.forecast.horizon
        self.frequency = spec.frequency
        self.season_length = spec.backtest.season_length
        self.window = statistical_window(spec)
        self.season = statistical_season(spec)
        names: list[str] = []
        for gbm in self.gbms.values():
            names += [n for n in gbm.feature_names if n not in names]
        self.feature_names = names
        self.n_training_rows = sum(g.n_training_rows for g in self.gbms.values())

    @property
    def description(self) -> str:
        """'ensemble (median of auto_ets, gbm_scaled, auto_theta)', or the single candidate's name."""
        if self.candidate == ENSEMBLE:
            return f"ensemble (median of {', '.join(self.members)})"
        return self.candidate

    def member_p50(self, name: str, recent: pd.DataFrame, supervised: pd.DataFrame, spec: UseCaseSpec,
                   origin: Any, floor: np.ndarray) -> np.ndarray:
        """One member's P50 for the supervised rows of ``origin``.

        A local forecast that does not exist (a statistical fit that failed for a series) falls back to
        ``floor`` (see ``point``). A global model's output is never patched: NaN there means a broken
        model, which the promotion's sanity check must see.
        """
        import numpy as np

        if name in self.gbms:
            return self.gbms[name].predict(supervised)[P50].to_numpy(dtype=float)
        if name in STATISTICAL_CANDIDATES:
            p50 = statistical_p50(recent, spec, origin, name, self.window, self.season)
            return np.where(np.isnan(p50), floor, p50)
        return floor

    def point(self, recent: pd.DataFrame, supervised: pd.DataFrame, spec: UseCaseSpec, origin: Any) -> np.ndarray:
        """The served P50: the member's, or the median of the members' (NaN if any member is NaN).

        The floor of the local members, computed once: the seasonal naive, then the last observed value
        where a series has no seasonal reference yet (a new series), so a gap in history never publishes NaN.
        """
        import numpy as np

        floor = None
        if any(m not in self.gbms for m in self.members):
            naive = seasonal_naive_p50(recent, spec, origin)
            floor = np.where(np.isnan(naive), supervised["y_origin"].to_numpy(dtype=float), naive)
        parts = [self.member_p50(m, recent, supervised, spec, origin, floor) for m in self.members]
        return parts[0] if len(parts) == 1 else np.median(np.column_stack(parts), axis=1)

    def forecast(self, recent: pd.DataFrame, calendar: pd.DataFrame, spec: UseCaseSpec, origin: Any) -> pd.DataFrame:
        """Quantile forecasts h = 1..H from ``origin`` for every series present there (supervised order).

        ``recent`` holds each series' rows up to the origin (at least ``required_history_periods``).
        """
        import numpy as np
        import pandas as pd

        supervised = make_supervised(recent, calendar, spec, [origin], with_target=False)
        ids = supervised[[*series_columns(supervised, self.series_keys), "origin_date", "target_date", HORIZON]]
        ids = ids.reset_index(drop=True)
        if supervised.empty:
            return ids.assign(**{c: pd.Series(dtype=float) for c in self.quantile_columns})
        p50 = self.point(recent, supervised, spec, origin)
        scale = np.repeat(series_scale(recent, spec, origin), spec.forecast.horizon)
        horizons = supervised[HORIZON].to_numpy(dtype=np.int64)
        bands = apply_calibration(p50, scale, horizons, self.calibration, self.nonnegative)
        return pd.concat([ids, pd.DataFrame({c: bands[c] for c in self.quantile_columns})], axis=1)


def forecast_frame(model: Any, recent: pd.DataFrame, calendar: pd.DataFrame, spec: UseCaseSpec,
                   origin: Any) -> pd.DataFrame:
    """Forecasts of any registered forecast model: a ``ForecastModel``, or a version saved before
    candidates existed (a bare ``QuantileForecaster``, which predicts supervised rows)."""
    if isinstance(model, ForecastModel):
        return model.forecast(recent, calendar, spec, origin)
    return model.predict(make_supervised(recent, calendar, spec, [origin], with_target=False))
