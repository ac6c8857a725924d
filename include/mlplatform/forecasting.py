"""Direct multi-horizon quantile forecasting with gradient boosting.

One model per quantile serves every horizon: each training row is (series, origin period t, horizon h)
with the features known at t and the calendar of the target period t + h. "Direct" (rather than
recursive) forecasting never feeds a prediction back as an input, so errors do not compound over the
horizon and every horizon is scored by one vectorised predict call.

Time is counted in periods of ``spec.frequency`` (daily, weekly, monthly, quarterly): every date is
mapped to an integer period number (see ``Periods``), so "h periods later" is integer addition. For
non-daily frequencies a period is dated by its LAST day (week ending date, month end, quarter end), in
the features mart and the calendar alike; any other date is rejected.

Besides the spec's features each row carries ``y_origin`` (the target at t) and two seasonal
references known at t: ``y_seasonal`` (the last observed value on the target's position in the
season, i.e. the seasonal-naive forecast) and ``y_seasonal_mean`` (the mean of the last
``SEASONAL_CYCLES`` such values, censored periods left out). They give the trees the seasonal profile
of each series at every horizon, which the origin's own lags only cover for some horizons.

All lookups ("the value of series s in period p") are vectorised index lookups over the features
frame, never Python loops over rows.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlplatform.errors import DataQualityError
from mlplatform.serialise import JoblibSerialisable
from mlplatform.spec import UseCaseSpec, quantile_column

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

CALENDAR_DATE = "calendar_date"
SERIES_ID = "series_id"
ORIGIN_DATE = "origin_date"
TARGET_DATE = "target_date"
HORIZON = "horizon"
Y_ORIGIN = "y_origin"
Y = "y"
TARGET_PREFIX = "target_"
SEASONAL_LAST = "y_seasonal"
SEASONAL_MEAN = "y_seasonal_mean"
SEASONAL_CYCLES = 4
# Scale-free inputs of the scaled global model: the series' recent level at the origin (mean target over
# the last min(season, LEVEL_PERIODS) periods) and the targets one and two periods before the origin.
Y_LEVEL = "y_level"
Y_LAG_1 = "y_lag_1"
Y_LAG_2 = "y_lag_2"
LEVEL_PERIODS = 13
# Row budget per fitted model (see build_training_set). The demand_forecast spec (48 series, daily,
# 540-period window, stride 2, H = 14) yields ~175k rows per model; 3 folds + 1 final x 3 quantiles then take
# ~40 s on two cores, ~11 s with this budget, for about 1 point of backtest WAPE.
MAX_TRAINING_ROWS = 20_000


# ----------------------------------------------------------------------------------------------- helpers


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


def to_timestamp(value: Any) -> pd.Timestamp:
    """A date-like (date, datetime, str, Timestamp) as a naive midnight Timestamp: one type for comparisons."""
    import pandas as pd

    ts = pd.Timestamp(value)
    if ts.tzinfo is not None:  # e.g. an Airflow logical date: keep its wall-clock date, drop the zone
        ts = ts.tz_localize(None)
    return ts.normalize()


def _day_numbers(values: Any, what: str) -> np.ndarray:
    """Days since 1970-01-01 as int64: integer day arithmetic makes shifted-date lookups exact and fast."""
    import numpy as np
    import pandas as pd

    dates = pd.to_datetime(pd.Series(values), errors="raise")
    if dates.isna().any():
        raise DataQualityError(f"{what}: {int(dates.isna().sum())} row(s) have no date")
    return dates.to_numpy().astype("datetime64[D]").astype(np.int64)


def _to_datetime(days: np.ndarray) -> pd.DatetimeIndex:
    import pandas as pd

    return pd.DatetimeIndex(days.astype("datetime64[D]").astype("datetime64[ns]"))


# ------------------------------------------------------------------------------------------- periods

_EPOCH_MONTH = 1970 * 12  # month number (year * 12 + month - 1) of 1970-01, numpy's datetime64[M] zero
_EPOCH_WEEKDAY = 3  # day number 0 (1970-01-01) was a Thursday (Monday = 0)
DEFAULT_WEEK_END = 6  # Sunday (ISO weeks), used for weekly only when no dates show the week-ending day
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
FREQUENCIES = ("daily", "weekly", "monthly", "quarterly")


@dataclass(frozen=True)
class Periods:
    """Integer period numbers of one frequency, and their period-end dates.

    daily: days since 1970-01-01; weekly: days since epoch // 7 of the week-ending date (all week ends
    share the weekday ``week_end``, Monday = 0, so consecutive weeks differ by exactly 1); monthly:
    year * 12 + month - 1; quarterly: year * 4 + (month - 1) // 3. Why integers: shifting by h periods
    or a season is then exact, vectorised addition, whatever the month lengths.
    """

    frequency: str = "daily"
    week_end: int = DEFAULT_WEEK_END

    def __post_init__(self) -> None:
        if self.frequency not in FREQUENCIES:
            raise ValueError(f"unknown frequency {self.frequency!r}; expected one of {FREQUENCIES}")
        if not 0 <= self.week_end <= 6:
            raise ValueError(f"week_end must be a weekday 0 (Monday) .. 6 (Sunday), got {self.week_end}")

    @property
    def _week_offset(self) -> int:
        """Day number modulo 7 of every week-ending date."""
        return (self.week_end - _EPOCH_WEEKDAY) % 7

    @property
    def convention(self) -> str:
        """What a valid date of this frequency is, for error messages."""
        return {
            "daily": "a calendar date",
            "weekly": f"a week-ending date (the week's last day, a {WEEKDAYS[self.week_end]})",
            "monthly": "a month end (the month's last day, e.g. 2025-03-31)",
            "quarterly": "a quarter end (03-31, 06-30, 09-30 or 12-31)",
        }[self.frequency]

    def containing(self, days: np.ndarray) -> np.ndarray:
        """Number of the period each day number falls in (any day, not only period ends)."""
        import numpy as np

        days = np.asarray(days, dtype=np.int64)
        if self.frequency == "daily":
            return days
        if self.frequency == "weekly":
            return (days + (self._week_offset - days) % 7) // 7
        months = days.astype("datetime64[D]").astype("datetime64[M]").astype(np.int64) + _EPOCH_MONTH
        return months if self.frequency == "monthly" else months // 3

    def end_days(self, periods: np.ndarray) -> np.ndarray:
        """Day number of each period's last day: the canonical date of a period."""
        import numpy as np

        periods = np.asarray(periods, dtype=np.int64)
        if self.frequency == "daily":
            return periods
        if self.frequency == "weekly":
            return periods * 7 + self._week_offset
        last_month = periods if self.frequency == "monthly" else periods * 3 + 2
        next_month = (last_month - _EPOCH_MONTH + 1).astype("datetime64[M]")
        return next_month.astype("datetime64[D]").astype(np.int64) - 1

    def ends(self, periods: np.ndarray) -> pd.DatetimeIndex:
        """Period-end dates (midnight timestamps) of period numbers."""
        return _to_datetime(self.end_days(periods))

    def numbers(self, values: Any, what: str) -> np.ndarray:
        """Period numbers of dates that must be period ends; DataQualityError naming ``what`` otherwise.

        A mid-period date would silently be read as "that whole period" and shift targets by up to a
        period, so it is refused with the convention the data must follow.
        """
        days = _day_numbers(values, what)
        if self.frequency == "daily":
            return days
        periods = self.containing(days)
        wrong = self.end_days(periods) != days
        if wrong.any():
            examples = sorted({str(d) for d in _to_datetime(days[wrong][:1000]).date})[:3]
            raise DataQualityError(
                f"{what}: {int(wrong.sum())} date(s) are not {self.convention}, e.g. {examples}; with "
                f"frequency '{self.frequency}' the features mart's time column and the calendar's "
                f"{CALENDAR_DATE} must hold each period's last day (week ending date, month end, quarter end)"
            )
        return periods

    def latest(self, value: Any) -> int:
        """Number of the latest period ending on or before ``value`` (any date)."""
        day = _day_numbers([to_timestamp(value)], "date")
        period = self.containing(day)
        return int(period[0] - (self.end_days(period)[0] != day[0]))

    def origin(self, value: Any) -> pd.Timestamp:
        """The latest period end on or before ``value``: the forecast origin of a run on that date."""
        import numpy as np

        return self.ends(np.array([self.latest(value)]))[0]


def periods_for(spec: UseCaseSpec, dates: Any = None, what: str = "dates") -> Periods:
    """The spec's ``Periods``; for weekly, the week-ending weekday is the most common one of ``dates``.

    Why infer: week-ending conventions differ (Saturday in retail, Sunday for ISO weeks) and the
    features mart already fixes one. Dates on another weekday are then reported as not period ends.
    Without dates (or none at all) weekly uses ``DEFAULT_WEEK_END``.
    """
    import numpy as np

    if spec.frequency != "weekly" or dates is None:
        return Periods(spec.frequency)
    days = _day_numbers(dates, what)
    if days.size == 0:
        return Periods(spec.frequency)
    weekdays = np.bincount((days + _EPOCH_WEEKDAY) % 7, minlength=7)
    return Periods(spec.frequency, int(weekdays.argmax()))


def forecast_origin(run_date: Any, spec: UseCaseSpec, dates: Any = None) -> pd.Timestamp:
    """Forecast origin of a run on ``run_date``: the latest period end on or before it (daily: the date).

    The run date is arbitrary (a monthly use case may run on the 14th); only complete periods are
    known then. ``dates`` (the features' time column) fixes the week-ending weekday for weekly.
    """
    return periods_for(spec, dates, "features").origin(run_date)


def _as_float(values: pd.Series) -> np.ndarray:
    """A numeric, boolean or nullable column as float64 with NaN for missing (what the trees expect)."""
    import numpy as np
    import pandas as pd

    return pd.to_numeric(values, errors="raise").to_numpy(dtype="float64", na_value=np.nan)


def censored_mask(frame: pd.DataFrame, spec: UseCaseSpec) -> np.ndarray:
    """Boolean array: rows whose target is censored (missing flag values count as not censored)."""
    import numpy as np

    flag = spec.features.censored_flag
    if not flag:
        return np.zeros(len(frame), dtype=bool)
    return frame[flag].astype("boolean").fillna(False).to_numpy(dtype=bool)


def require_columns(frame: pd.DataFrame, columns: Iterable[str], what: str) -> None:
    """Fail with the list of missing columns instead of a bare KeyError deep inside a merge."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataQualityError(f"{what} frame is missing column(s) {missing}; it has {list(frame.columns)}")


def feature_input_columns(spec: UseCaseSpec) -> list[str]:
    """Columns of the features frame this module reads."""
    f = spec.features
    flag = [f.censored_flag] if f.censored_flag else []
    return _unique([*f.series_keys, f.time_column, f.target, *f.numeric, *f.categorical, *flag])


def required_history_periods(spec: UseCaseSpec) -> int:
    """Periods of history before an origin that its features look up (seasonal references).

    The oldest reference is ``SEASONAL_CYCLES`` seasons back; the statistical candidates and the series
    scale of the conformal intervals may look further (``candidates.history_periods``). Scoring trims the
    features frame to this window so memory does not grow with the length of history.
    """
    from mlplatform.candidates import history_periods

    return max(spec.backtest.season_length * SEASONAL_CYCLES, history_periods(spec))


class _Panel:
    """Vectorised (series, period) -> row lookup over a features frame.

    Series are numbered by their keys and dates become integer period numbers (``Periods``), so "value
    of series s in period p" for a million (s, p) pairs is one ``Index.get_indexer`` call (a hash join),
    not a loop.
    """

    def __init__(self, features: pd.DataFrame, spec: UseCaseSpec) -> None:
        import numpy as np
        import pandas as pd

        f = spec.features
        require_columns(features, feature_input_columns(spec), "features")
        self.frame = features.reset_index(drop=True)
        what = f"features column '{f.time_column}'"
        self.periods = periods_for(spec, self.frame[f.time_column], what)
        self.sid = self.frame.groupby(f.series_keys, sort=True, dropna=False).ngroup().to_numpy(np.int64)
        self.period = self.periods.numbers(self.frame[f.time_column], what)
        self.target = self.frame[f.target].to_numpy(dtype=float, na_value=np.nan)
        self.censored = censored_mask(self.frame, spec)
        self.min_period = int(self.period.min()) if len(self.period) else 0
        self.span = int(self.period.max()) - self.min_period + 1 if len(self.period) else 1
        self._index = pd.Index(self._key(self.sid, self.period))
        if not self._index.is_unique:
            dupes = int(self._index.duplicated().sum())
            raise DataQualityError(f"features frame has {dupes} duplicate (series, {f.time_column}) row(s)")

    def _key(self, sid: np.ndarray, period: np.ndarray) -> np.ndarray:
        return sid * self.span + (period - self.min_period)

    def positions(self, sid: np.ndarray, period: np.ndarray) -> np.ndarray:
        """Row position of each (series, period) pair, -1 where the frame has no such row."""
        import numpy as np

        pos = np.full(period.shape, -1, dtype=np.int64)
        inside = (period >= self.min_period) & (period < self.min_period + self.span)
        pos[inside] = self._index.get_indexer(self._key(sid[inside], period[inside]))
        return pos

    def target_at(self, sid: np.ndarray, period: np.ndarray, mask_censored: bool) -> np.ndarray:
        """Target of each (series, period) pair; NaN where missing (and where censored if asked)."""
        import numpy as np

        pos = self.positions(sid, period)
        found = pos >= 0
        out = np.where(found, self.target[pos], np.nan)
        if mask_censored:
            out[found & self.censored[pos]] = np.nan
        return out

    def origin_numbers(self, origins: Iterable[Any]) -> np.ndarray:
        """Period numbers of origin dates, which must be period ends like the frame's dates."""
        import numpy as np

        origins = list(origins)
        return self.periods.numbers(origins, "origins") if origins else np.array([], dtype=np.int64)

    def origin_rows(self, origins: np.ndarray | None) -> np.ndarray:
        """Positions of the rows in an origin period, ordered by (period, series): input-order invariant."""
        import numpy as np

        rows = np.arange(len(self.frame))
        if origins is not None:
            rows = np.flatnonzero(np.isin(self.period, origins))
        order = np.lexsort((self.sid[rows], self.period[rows]))
        return rows[order]


def _seasonal_back(horizon: np.ndarray, season_length: int) -> np.ndarray:
    """Periods from the target back to the latest same-season period on or before the origin."""
    return season_length * ((horizon + season_length - 1) // season_length)


# ------------------------------------------------------------------------------------- supervised frame


def _calendar_features(
    calendar: pd.DataFrame, spec: UseCaseSpec, periods: Periods, target_period: np.ndarray
) -> dict:
    """Calendar columns of each target period, prefixed ``target_`` (NaN where the calendar has no row).

    The calendar has one row per period, dated by its end like the features; with no target at all it
    is not read, so an empty frame never fails on a calendar it does not need.
    """
    import numpy as np
    import pandas as pd

    columns = spec.features.calendar
    if not columns:
        return {}
    require_columns(calendar, [CALENDAR_DATE, *columns], "calendar")
    if target_period.size == 0:
        return {TARGET_PREFIX + col: np.empty(0) for col in columns}
    index = pd.Index(periods.numbers(calendar[CALENDAR_DATE], f"calendar column '{CALENDAR_DATE}'"))
    if not index.is_unique:
        raise DataQualityError(f"calendar frame has duplicate {CALENDAR_DATE} rows")
    pos = index.get_indexer(target_period)  # -1 where missing: picks the NaN appended below
    return {TARGET_PREFIX + col: np.append(_as_float(calendar[col]), np.nan)[pos] for col in columns}


def _seasonal_features(
    panel: _Panel, spec: UseCaseSpec, sid: np.ndarray, target_period: np.ndarray, horizon: np.ndarray
) -> dict:
    """Last and mean same-season target known at the origin (censored periods left out)."""
    import numpy as np

    season = spec.backtest.season_length
    back = _seasonal_back(horizon, season)
    total = np.zeros(target_period.shape)
    count = np.zeros(target_period.shape)
    last = None
    for k in range(SEASONAL_CYCLES):  # a fixed handful of vectorised lookups, not a loop over rows
        values = panel.target_at(sid, target_period - back - k * season, mask_censored=True)
        last = values if last is None else last
        ok = np.isfinite(values)
        total[ok] += values[ok]
        count += ok
    mean = np.divide(total, count, out=np.full(total.shape, np.nan), where=count > 0)
    return {SEASONAL_LAST: last, SEASONAL_MEAN: mean}


def _level_features(panel: _Panel, spec: UseCaseSpec, sid: np.ndarray, origin_period: np.ndarray) -> dict:
    """Recent level (mean observed target of the last few periods up to the origin) and two lags."""
    import numpy as np

    periods = max(1, min(spec.backtest.season_length, LEVEL_PERIODS))
    total = np.zeros(origin_period.shape)
    count = np.zeros(origin_period.shape)
    for k in range(periods):
        values = panel.target_at(sid, origin_period - k, mask_censored=True)
        ok = np.isfinite(values)
        total[ok] += values[ok]
        count += ok
    level = np.divide(total, count, out=np.full(total.shape, np.nan), where=count > 0)
    return {Y_LEVEL: level, Y_LAG_1: panel.target_at(sid, origin_period - 1, mask_censored=True),
            Y_LAG_2: panel.target_at(sid, origin_period - 2, mask_censored=True)}


def _carried_columns(spec: UseCaseSpec, frame: pd.DataFrame) -> list[str]:
    f = spec.features
    return _unique([*series_columns(frame, f.series_keys), *f.numeric, *f.categorical])


def _expand(panel: _Panel, spec: UseCaseSpec, origins: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """(row position, horizon) for every row in an origin period (None = all) and h = 1..H, aligned."""
    import numpy as np

    rows = panel.origin_rows(origins)
    horizon_len = spec.forecast.horizon
    pos = np.repeat(rows, horizon_len)
    horizon = np.tile(np.arange(1, horizon_len + 1, dtype=np.int64), rows.size)
    return pos, horizon


def _observed_target(panel: _Panel, pos: np.ndarray, horizon: np.ndarray) -> np.ndarray:
    """Target at t + h; NaN where missing or censored (a stock-out records sales, not demand)."""
    return panel.target_at(panel.sid[pos], panel.period[pos] + horizon, mask_censored=True)


def _assemble(
    panel: _Panel, calendar: pd.DataFrame, spec: UseCaseSpec, pos: np.ndarray, horizon: np.ndarray
) -> pd.DataFrame:
    """The supervised frame for given (origin row, horizon) pairs: carried, calendar and seasonal columns."""
    import pandas as pd

    sid, origin_period = panel.sid[pos], panel.period[pos]
    target_period = origin_period + horizon
    carried = panel.frame[_carried_columns(spec, panel.frame)].iloc[pos].reset_index(drop=True)
    new = {
        ORIGIN_DATE: panel.periods.ends(origin_period),
        TARGET_DATE: panel.periods.ends(target_period),
        HORIZON: horizon,
        Y_ORIGIN: panel.target[pos],
        **_calendar_features(calendar, spec, panel.periods, target_period),
        **_seasonal_features(panel, spec, sid, target_period, horizon),
        **_level_features(panel, spec, sid, origin_period),
    }
    return pd.concat([carried, pd.DataFrame(new)], axis=1)


def make_supervised(
    features: pd.DataFrame,
    calendar: pd.DataFrame,
    spec: UseCaseSpec,
    origins: Iterable[Any] | None = None,
    with_target: bool = True,
) -> pd.DataFrame:
    """One row per (origin row, horizon h in 1..H): the model's training or scoring frame.

    ``origins`` are origin dates, period ends of ``spec.frequency`` (None = every date of
    ``features``); each row of ``features`` dated on an origin becomes H rows with the origin's numeric
    and categorical features, ``y_origin``, ``horizon``, ``origin_date``, ``target_date`` (the end of
    period t + h), the target period's calendar columns prefixed ``target_`` and the seasonal
    references. ``with_target`` adds ``y`` (the target at t + h) and drops rows whose target is missing
    from ``features`` or censored: a stock-out records sales, not demand, so learning from it would
    bias the forecast down.

    Leakage is the caller's responsibility: targets are looked up in ``features`` as given, so pass
    only rows up to the cutoff (``build_training_set`` does).
    """
    import numpy as np

    panel = _Panel(features, spec)
    pos, horizon = _expand(panel, spec, None if origins is None else panel.origin_numbers(origins))
    if not with_target:
        return _assemble(panel, calendar, spec, pos, horizon)
    y = _observed_target(panel, pos, horizon)
    keep = np.isfinite(y)
    out = _assemble(panel, calendar, spec, pos[keep], horizon[keep])
    out[Y] = y[keep]
    return out


def _training_periods(cutoff_period: int, spec: UseCaseSpec) -> np.ndarray:
    """Origin period numbers of the training window ending at ``cutoff_period``, ascending."""
    import numpy as np

    first = cutoff_period - spec.model.training_window + 1
    periods = np.arange(cutoff_period - 1, first - 1, -spec.model.origin_stride, dtype=np.int64)
    return np.sort(periods)


def training_origins(cutoff: Any, spec: UseCaseSpec, periods: Periods | None = None) -> pd.DatetimeIndex:
    """Origin dates for a model trained at ``cutoff``: every stride-th period of the training window.

    The window is the ``training_window`` periods ending at the latest period end on or before the
    cutoff; origins step back from the period before it (the latest origin with an observed target).
    Striding thins out near-duplicate neighbouring origins, which cuts training time with little loss
    of information. ``periods`` fixes the week-ending weekday (weekly); default ``periods_for(spec)``.
    """
    periods = periods or periods_for(spec)
    return periods.ends(_training_periods(periods.latest(cutoff), spec))


def _sample(selected: np.ndarray, max_rows: int | None, seed: int) -> np.ndarray:
    """At most ``max_rows`` of the selected positions: a seeded uniform sample, original order kept."""
    import numpy as np

    if max_rows is None or selected.size <= max_rows:
        return selected
    return np.sort(np.random.default_rng(seed).choice(selected, size=max_rows, replace=False))


def build_training_set(
    features: pd.DataFrame,
    calendar: pd.DataFrame,
    spec: UseCaseSpec,
    cutoff: Any,
    max_rows: int | None = MAX_TRAINING_ROWS,
) -> pd.DataFrame:
    """``make_supervised`` rows of the training window whose targets are observed and <= ``cutoff``.

    The cutoff may be any date: the window ends at the latest period end on or before it. Rows after
    the cutoff are dropped before any lookup, so no target (nor seasonal reference) from after the
    cutoff can leak in. ``max_rows`` bounds fitting time and memory however many series a
    use case has: neighbouring origins overlap heavily (each target date recurs in about H / stride
    rows per series), so a seeded uniform sample loses little accuracy while each quantile fit gets
    proportionally cheaper; the sample is drawn before the frame is assembled. ``None`` keeps all rows.
    """
    import numpy as np
    import pandas as pd

    cutoff = to_timestamp(cutoff)
    time_col = spec.features.time_column
    time = pd.to_datetime(features[time_col])
    known = (time <= cutoff).to_numpy()
    periods = periods_for(spec, time[known], f"features column '{time_col}'")
    origins = _training_periods(periods.latest(cutoff), spec)
    if origins.size:  # only the window's origins and the seasons they look back on are read
        first = periods.ends(np.array([origins.min() - required_history_periods(spec) - 1]))[0]
        known &= (time > first).to_numpy()
    panel = _Panel(features.loc[known], spec)
    cutoff_period = panel.periods.latest(cutoff)
    selected, rows = _observed_pairs(panel, spec, _training_periods(cutoff_period, spec), cutoff_period)
    selected = _sample(selected, max_rows, spec.model.random_state)
    horizon_len = spec.forecast.horizon
    pos, horizon = rows[selected // horizon_len], selected % horizon_len + 1
    train = _assemble(panel, calendar, spec, pos, horizon)
    train[Y] = _observed_target(panel, pos, horizon)
    return train


def _observed_pairs(
    panel: _Panel, spec: UseCaseSpec, origins: np.ndarray, cutoff_period: int
) -> tuple[np.ndarray, np.ndarray]:
    """(flat indices i * H + h - 1 of the usable (origin row i, horizon h) pairs, origin rows).

    Usable: target at t + h observed, uncensored and <= the cutoff. Same order as ``_expand``'s pairs,
    but tested one horizon at a time, so memory holds one boolean per pair instead of every pair's
    index arrays (tens of millions of pairs for ten thousand series).
    """
    import numpy as np

    rows = panel.origin_rows(origins)
    horizon_len = spec.forecast.horizon
    ok = np.zeros((rows.size, horizon_len), dtype=bool)
    sid, period = panel.sid[rows], panel.period[rows]
    for h in range(1, horizon_len + 1):
        target = period + h
        ok[:, h - 1] = np.isfinite(panel.target_at(sid, target, mask_censored=True)) & (target <= cutoff_period)
    return np.flatnonzero(ok.ravel()), rows


def series_columns(frame: pd.DataFrame, series_keys: list[str]) -> list[str]:
    """Series keys plus ``series_id`` when the frame has it (consumers join on either)."""
    sid = [SERIES_ID] if SERIES_ID in frame.columns and SERIES_ID not in series_keys else []
    return [*series_keys, *sid]


def _id_columns(frame: pd.DataFrame, series_keys: list[str]) -> list[str]:
    return [*series_columns(frame, series_keys), ORIGIN_DATE, TARGET_DATE, HORIZON]


# ---------------------------------------------------------------------------------------------- model


class QuantileForecaster(JoblibSerialisable):
    """One HistGradientBoostingRegressor (quantile loss) per quantile, shared by all horizons.

    Only plain Python state is kept besides the estimators (no spec object), so a pickled model stays
    loadable when the spec class evolves. Category levels are learnt at fit time and stored, so the
    encoding at predict time is identical; unseen levels become missing values instead of errors.

    ``quantiles`` overrides the spec's (the forecast candidates fit the P50 only; their intervals are
    conformal). ``scaled``: targets and the target-derived inputs are divided by each row's recent series
    level (``y_level``) and predictions multiplied back, so one model serves series of any size and a
    trend shows as a ratio above one rather than as a level the trees never saw.
    """

    def __init__(self, spec: UseCaseSpec, quantiles: list[float] | None = None, scaled: bool = False) -> None:
        f = spec.features
        self.use_case = spec.name
        self.spec_fingerprint = spec.fingerprint()
        self.series_keys = list(f.series_keys)
        self.categorical = list(f.categorical)
        self.scaled = scaled
        lags = [Y_LAG_1, Y_LAG_2] if scaled else []
        self.numeric = _unique(
            [
                *f.numeric,
                Y_ORIGIN,
                *lags,
                HORIZON,
                *(TARGET_PREFIX + c for c in f.calendar),
                SEASONAL_LAST,
                SEASONAL_MEAN,
            ]
        )
        self.feature_names = _unique([*self.numeric, *self.categorical])
        self.quantiles = sorted(quantiles) if quantiles else list(spec.model.quantiles)
        self.quantile_columns = [quantile_column(q) for q in self.quantiles]
        self.params = dict(spec.model.params)
        self.random_state = spec.model.random_state
        self.horizon = spec.forecast.horizon
        self.frequency = spec.frequency  # horizon and season are counted in periods of this frequency
        self.categories: dict[str, list[str]] = {}
        self.estimators: list[Any] = []
        self.nonnegative = True
        self.n_training_rows = 0

    # --- design matrix

    def _learn_categories(self, frame: pd.DataFrame) -> None:
        """Stable levels per categorical column, capped at max_bins (the estimator's hard limit).

        The most frequent levels are kept (ties by name), the rest are treated as missing.
        """
        max_bins = int(self.params.get("max_bins", 255))
        self.categories = {}
        for col in self.categorical:
            counts = frame[col].astype("string").value_counts(dropna=True)
            ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:max_bins]
            self.categories[col] = sorted(level for level, _ in ranked)

    def _design(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Model inputs in a fixed column order: numeric as float, categorical with the stored levels."""
        import pandas as pd

        require_columns(frame, self.feature_names, "supervised")
        data = {col: _as_float(frame[col]) for col in self.numeric}
        if getattr(self, "scaled", False):  # versions saved before scaling existed are unscaled
            level = self._level(frame)
            for col in (Y_ORIGIN, Y_LAG_1, Y_LAG_2, SEASONAL_LAST, SEASONAL_MEAN):
                data[col] = data[col] / level
        for col in self.categorical:
            data[col] = pd.Categorical(frame[col].astype("string"), categories=self.categories[col])
        return pd.DataFrame(data, columns=self.feature_names)

    @staticmethod
    def _level(frame: pd.DataFrame) -> np.ndarray:
        """Each row's divisor: its series' recent level; 1 where the level is missing or not positive."""
        import numpy as np

        level = _as_float(frame[Y_LEVEL]) if Y_LEVEL in frame.columns else np.ones(len(frame))
        return np.where(np.isfinite(level) & (level > 0), level, 1.0)

    # --- fit / predict

    def fit(self, train: pd.DataFrame) -> QuantileForecaster:
        """Fit one estimator per quantile on a ``make_supervised(..., with_target=True)`` frame."""
        from sklearn.ensemble import HistGradientBoostingRegressor

        if train.empty or Y not in train.columns:
            raise DataQualityError("no training rows with an observed target: is the history long enough?")
        self._learn_categories(train)
        X = self._design(train)
        y = train[Y].to_numpy(dtype=float)
        self.nonnegative = bool((y >= 0).all())
        if self.scaled:
            y = y / self._level(train)
        self.estimators = []
        for q in self.quantiles:
            est = HistGradientBoostingRegressor(
                **{
                    **self.params,
                    "loss": "quantile",
                    "quantile": q,
                    "categorical_features": "from_dtype",
                    "random_state": self.random_state,
                }
            )
            self.estimators.append(est.fit(X, y))
        self.n_training_rows = len(train)
        return self

    def predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Quantile forecasts for a supervised frame: ids, origin/target dates, horizon, p10/p50/p90.

        Independently fitted quantile models can cross; sorting across quantiles per row restores a
        valid (monotone) distribution, and a target never seen below zero is clipped at zero.
        """
        import numpy as np
        import pandas as pd

        if not self.estimators:
            raise RuntimeError("QuantileForecaster.predict called before fit")
        ids = frame[_id_columns(frame, self.series_keys)].reset_index(drop=True)
        if frame.empty:
            return ids.assign(**{c: pd.Series(dtype=float) for c in self.quantile_columns})
        X = self._design(frame)
        preds = np.column_stack([est.predict(X) for est in self.estimators])
        if getattr(self, "scaled", False):
            preds = preds * self._level(frame)[:, None]
        preds = np.sort(preds, axis=1)
        if getattr(self, "nonnegative", True):  # versions saved before this attribute clipped always
            preds = np.clip(preds, 0.0, None)
        return pd.concat([ids, pd.DataFrame(preds, columns=self.quantile_columns)], axis=1)


# ------------------------------------------------------------------------------------------- baseline


def seasonal_naive(features: pd.DataFrame, spec: UseCaseSpec, origin_date: Any) -> pd.DataFrame:
    """Seasonal-naive forecast from ``origin_date``: y_hat(t+h) = y(t + h - m * ceil(h / m)).

    m is ``spec.backtest.season_length`` periods: each target period repeats the latest observed
    same-season period on or before the origin (a period end). This is the baseline a model must beat
    to be worth promoting. Output has the shape of ``QuantileForecaster.predict`` with a single ``p50``
    column (NaN where the reference period is missing).
    """
    import pandas as pd

    panel = _Panel(features, spec)
    pos, horizon = _expand(panel, spec, panel.origin_numbers([to_timestamp(origin_date)]))
    target_period = panel.period[pos] + horizon
    reference = target_period - _seasonal_back(horizon, spec.backtest.season_length)
    frame = panel.frame.iloc[pos].reset_index(drop=True)
    ids = frame[series_columns(frame, spec.features.series_keys)]
    extra = {
        ORIGIN_DATE: panel.periods.ends(panel.period[pos]),
        TARGET_DATE: panel.periods.ends(target_period),
        HORIZON: horizon,
        quantile_column(0.5): panel.target_at(panel.sid[pos], reference, mask_censored=False),
    }
    return pd.concat([ids, pd.DataFrame(extra)], axis=1)
