"""Direct multi-horizon quantile forecasting with gradient boosting.

One model per quantile serves every horizon: each training row is (series, origin date t, horizon h)
with the features known at t and the calendar of the target date t + h. "Direct" (rather than
recursive) forecasting never feeds a prediction back as an input, so errors do not compound over the
horizon and every horizon is scored by one vectorised predict call.

Besides the spec's features each row carries ``y_origin`` (the target at t) and two seasonal
references known at t: ``y_seasonal`` (the last observed value on the target's position in the
season, i.e. the seasonal-naive forecast) and ``y_seasonal_mean`` (the mean of the last
``SEASONAL_WEEKS`` such values, censored days left out). They give the trees the weekly profile of
each series at every horizon, which the origin's own lags only cover for some horizons.

All lookups ("the value of series s on day d") are vectorised index lookups over the features frame,
never Python loops over rows.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from mlplatform.errors import DataQualityError
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
SEASONAL_WEEKS = 4
# Row budget per fitted model (see build_training_set). The demand_forecast spec (48 series, 540-day
# window, stride 2, H = 14) yields ~175k rows per model; 3 folds + 1 final x 3 quantiles then take
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


def required_history_days(spec: UseCaseSpec) -> int:
    """Days of history before an origin that its features look up (seasonal references).

    The oldest reference is ``SEASONAL_WEEKS`` seasons back; scoring trims the features frame to this
    window so memory does not grow with the length of history.
    """
    return spec.backtest.season_length * SEASONAL_WEEKS


class _Panel:
    """Vectorised (series, day) -> row lookup over a features frame.

    Series are numbered by their keys and days are integers, so "value of series s on day d" for a
    million (s, d) pairs is one ``Index.get_indexer`` call (a hash join), not a loop.
    """

    def __init__(self, features: pd.DataFrame, spec: UseCaseSpec) -> None:
        import numpy as np
        import pandas as pd

        f = spec.features
        require_columns(features, feature_input_columns(spec), "features")
        self.frame = features.reset_index(drop=True)
        self.sid = self.frame.groupby(f.series_keys, sort=True, dropna=False).ngroup().to_numpy(np.int64)
        self.day = _day_numbers(self.frame[f.time_column], "features")
        self.target = self.frame[f.target].to_numpy(dtype=float, na_value=np.nan)
        self.censored = censored_mask(self.frame, spec)
        self.min_day = int(self.day.min()) if len(self.day) else 0
        self.span = int(self.day.max()) - self.min_day + 1 if len(self.day) else 1
        self._index = pd.Index(self._key(self.sid, self.day))
        if not self._index.is_unique:
            dupes = int(self._index.duplicated().sum())
            raise DataQualityError(f"features frame has {dupes} duplicate (series, {f.time_column}) row(s)")

    def _key(self, sid: np.ndarray, day: np.ndarray) -> np.ndarray:
        return sid * self.span + (day - self.min_day)

    def positions(self, sid: np.ndarray, day: np.ndarray) -> np.ndarray:
        """Row position of each (series, day) pair, -1 where the frame has no such row."""
        import numpy as np

        pos = np.full(day.shape, -1, dtype=np.int64)
        inside = (day >= self.min_day) & (day < self.min_day + self.span)
        pos[inside] = self._index.get_indexer(self._key(sid[inside], day[inside]))
        return pos

    def target_at(self, sid: np.ndarray, day: np.ndarray, mask_censored: bool) -> np.ndarray:
        """Target of each (series, day) pair; NaN where missing (and where censored if asked)."""
        import numpy as np

        pos = self.positions(sid, day)
        found = pos >= 0
        out = np.where(found, self.target[pos], np.nan)
        if mask_censored:
            out[found & self.censored[pos]] = np.nan
        return out

    def origin_rows(self, origins: Iterable[Any] | None) -> np.ndarray:
        """Positions of the rows dated on an origin, ordered by (date, series) for input-order invariance."""
        import numpy as np

        rows = np.arange(len(self.frame))
        if origins is not None:
            origins = list(origins)
            days = _day_numbers(origins, "origins") if origins else np.array([], dtype=np.int64)
            rows = np.flatnonzero(np.isin(self.day, days))
        order = np.lexsort((self.sid[rows], self.day[rows]))
        return rows[order]


def _seasonal_back(horizon: np.ndarray, season_length: int) -> np.ndarray:
    """Days from the target date back to the latest same-season day on or before the origin."""
    return season_length * ((horizon + season_length - 1) // season_length)


# ------------------------------------------------------------------------------------- supervised frame


def _calendar_features(calendar: pd.DataFrame, spec: UseCaseSpec, target_day: np.ndarray) -> dict:
    """Calendar columns of each target date, prefixed ``target_`` (NaN where the calendar has no row)."""
    import numpy as np
    import pandas as pd

    columns = spec.features.calendar
    if not columns:
        return {}
    require_columns(calendar, [CALENDAR_DATE, *columns], "calendar")
    index = pd.Index(_day_numbers(calendar[CALENDAR_DATE], "calendar"))
    if not index.is_unique:
        raise DataQualityError(f"calendar frame has duplicate {CALENDAR_DATE} rows")
    pos = index.get_indexer(target_day)  # -1 where missing: picks the NaN appended below
    return {TARGET_PREFIX + col: np.append(_as_float(calendar[col]), np.nan)[pos] for col in columns}


def _seasonal_features(
    panel: _Panel, spec: UseCaseSpec, sid: np.ndarray, target_day: np.ndarray, horizon: np.ndarray
) -> dict:
    """Last and mean same-season target known at the origin (censored days left out)."""
    import numpy as np

    season = spec.backtest.season_length
    back = _seasonal_back(horizon, season)
    total = np.zeros(target_day.shape)
    count = np.zeros(target_day.shape)
    last = None
    for k in range(SEASONAL_WEEKS):  # a fixed handful of vectorised lookups, not a loop over rows
        values = panel.target_at(sid, target_day - back - k * season, mask_censored=True)
        last = values if last is None else last
        ok = np.isfinite(values)
        total[ok] += values[ok]
        count += ok
    mean = np.divide(total, count, out=np.full(total.shape, np.nan), where=count > 0)
    return {SEASONAL_LAST: last, SEASONAL_MEAN: mean}


def _carried_columns(spec: UseCaseSpec, frame: pd.DataFrame) -> list[str]:
    f = spec.features
    return _unique([*series_columns(frame, f.series_keys), *f.numeric, *f.categorical])


def _expand(panel: _Panel, spec: UseCaseSpec, origins: Iterable[Any] | None) -> tuple[np.ndarray, np.ndarray]:
    """(row position, horizon) for every origin row and h = 1..H, as two aligned arrays."""
    import numpy as np

    rows = panel.origin_rows(origins)
    horizon_len = spec.forecast.horizon
    pos = np.repeat(rows, horizon_len)
    horizon = np.tile(np.arange(1, horizon_len + 1, dtype=np.int64), rows.size)
    return pos, horizon


def _observed_target(panel: _Panel, pos: np.ndarray, horizon: np.ndarray) -> np.ndarray:
    """Target at t + h; NaN where missing or censored (a stock-out records sales, not demand)."""
    return panel.target_at(panel.sid[pos], panel.day[pos] + horizon, mask_censored=True)


def _assemble(
    panel: _Panel, calendar: pd.DataFrame, spec: UseCaseSpec, pos: np.ndarray, horizon: np.ndarray
) -> pd.DataFrame:
    """The supervised frame for given (origin row, horizon) pairs: carried, calendar and seasonal columns."""
    import pandas as pd

    sid, origin_day = panel.sid[pos], panel.day[pos]
    target_day = origin_day + horizon
    carried = panel.frame[_carried_columns(spec, panel.frame)].iloc[pos].reset_index(drop=True)
    new = {
        ORIGIN_DATE: _to_datetime(origin_day),
        TARGET_DATE: _to_datetime(target_day),
        HORIZON: horizon,
        Y_ORIGIN: panel.target[pos],
        **_calendar_features(calendar, spec, target_day),
        **_seasonal_features(panel, spec, sid, target_day, horizon),
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

    ``origins`` are origin dates (None = every date of ``features``); each row of ``features`` dated on
    an origin becomes H rows with the origin's numeric and categorical features, ``y_origin``,
    ``horizon``, ``origin_date``, ``target_date``, the target date's calendar columns prefixed
    ``target_`` and the seasonal references. ``with_target`` adds ``y`` (the target at t + h) and drops
    rows whose target is missing from ``features`` or censored: a stock-out day records sales, not
    demand, so learning from it would bias the forecast down.

    Leakage is the caller's responsibility: targets are looked up in ``features`` as given, so pass
    only rows up to the cutoff (``build_training_set`` does).
    """
    import numpy as np

    panel = _Panel(features, spec)
    pos, horizon = _expand(panel, spec, origins)
    if not with_target:
        return _assemble(panel, calendar, spec, pos, horizon)
    y = _observed_target(panel, pos, horizon)
    keep = np.isfinite(y)
    out = _assemble(panel, calendar, spec, pos[keep], horizon[keep])
    out[Y] = y[keep]
    return out


def training_origins(cutoff: Any, spec: UseCaseSpec) -> pd.DatetimeIndex:
    """Origin dates for a model trained at ``cutoff``: every stride-th day of the training window.

    The window is the ``training_window_days`` days ending at the cutoff; origins step back from the
    day before the cutoff (the latest origin with an observed target). Striding thins out
    near-duplicate neighbouring origins, which cuts training time with little loss of information.
    """
    import numpy as np

    cutoff_day = int(_day_numbers([to_timestamp(cutoff)], "cutoff")[0])
    first = cutoff_day - spec.model.training_window_days + 1
    days = np.arange(cutoff_day - 1, first - 1, -spec.model.origin_stride_days, dtype=np.int64)
    return _to_datetime(np.sort(days))


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

    Rows after the cutoff are dropped before any lookup, so no target (nor seasonal reference) from
    after the cutoff can leak in. ``max_rows`` bounds fitting time and memory however many series a
    use case has: neighbouring origins overlap heavily (each target date recurs in about H / stride
    rows per series), so a seeded uniform sample loses little accuracy while each quantile fit gets
    proportionally cheaper; the sample is drawn before the frame is assembled. ``None`` keeps all rows.
    """
    import numpy as np
    import pandas as pd

    cutoff = to_timestamp(cutoff)
    history = features.loc[pd.to_datetime(features[spec.features.time_column]) <= cutoff]
    panel = _Panel(history, spec)
    pos, horizon = _expand(panel, spec, training_origins(cutoff, spec))
    y = _observed_target(panel, pos, horizon)
    cutoff_day = int(_day_numbers([cutoff], "cutoff")[0])
    selected = np.flatnonzero(np.isfinite(y) & (panel.day[pos] + horizon <= cutoff_day))
    selected = _sample(selected, max_rows, spec.model.random_state)
    train = _assemble(panel, calendar, spec, pos[selected], horizon[selected])
    train[Y] = y[selected]
    return train


def series_columns(frame: pd.DataFrame, series_keys: list[str]) -> list[str]:
    """Series keys plus ``series_id`` when the frame has it (consumers join on either)."""
    sid = [SERIES_ID] if SERIES_ID in frame.columns and SERIES_ID not in series_keys else []
    return [*series_keys, *sid]


def _id_columns(frame: pd.DataFrame, series_keys: list[str]) -> list[str]:
    return [*series_columns(frame, series_keys), ORIGIN_DATE, TARGET_DATE, HORIZON]


# ---------------------------------------------------------------------------------------------- model


class QuantileForecaster:
    """One HistGradientBoostingRegressor (quantile loss) per quantile, shared by all horizons.

    Only plain Python state is kept besides the estimators (no spec object), so a pickled model stays
    loadable when the spec class evolves. Category levels are learnt at fit time and stored, so the
    encoding at predict time is identical; unseen levels become missing values instead of errors.
    """

    def __init__(self, spec: UseCaseSpec) -> None:
        f = spec.features
        self.use_case = spec.name
        self.spec_fingerprint = spec.fingerprint()
        self.series_keys = list(f.series_keys)
        self.categorical = list(f.categorical)
        self.numeric = _unique(
            [
                *f.numeric,
                Y_ORIGIN,
                HORIZON,
                *(TARGET_PREFIX + c for c in f.calendar),
                SEASONAL_LAST,
                SEASONAL_MEAN,
            ]
        )
        self.feature_names = _unique([*self.numeric, *self.categorical])
        self.quantiles = list(spec.model.quantiles)
        self.quantile_columns = [quantile_column(q) for q in self.quantiles]
        self.params = dict(spec.model.params)
        self.random_state = spec.model.random_state
        self.horizon = spec.forecast.horizon
        self.categories: dict[str, list[str]] = {}
        self.estimators: list[Any] = []
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
        for col in self.categorical:
            data[col] = pd.Categorical(frame[col].astype("string"), categories=self.categories[col])
        return pd.DataFrame(data, columns=self.feature_names)

    # --- fit / predict

    def fit(self, train: pd.DataFrame) -> QuantileForecaster:
        """Fit one estimator per quantile on a ``make_supervised(..., with_target=True)`` frame."""
        from sklearn.ensemble import HistGradientBoostingRegressor

        if train.empty or Y not in train.columns:
            raise DataQualityError("no training rows with an observed target: is the history long enough?")
        self._learn_categories(train)
        X = self._design(train)
        y = train[Y].to_numpy(dtype=float)
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
        valid (monotone) distribution, and demand is clipped at zero.
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
        preds = np.clip(np.sort(preds, axis=1), 0.0, None)
        return pd.concat([ids, pd.DataFrame(preds, columns=self.quantile_columns)], axis=1)

    # --- persistence

    def to_bytes(self) -> bytes:
        """Serialised model (joblib, compressed) for the model store."""
        import joblib

        buffer = io.BytesIO()
        joblib.dump(self, buffer, compress=3)
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> QuantileForecaster:
        """Inverse of ``to_bytes``; refuses anything that is not a QuantileForecaster."""
        import joblib

        model = joblib.load(io.BytesIO(data))
        if not isinstance(model, cls):
            raise TypeError(f"expected a serialised {cls.__name__}, got {type(model).__name__}")
        return model


# ------------------------------------------------------------------------------------------- baseline


def seasonal_naive(features: pd.DataFrame, spec: UseCaseSpec, origin_date: Any) -> pd.DataFrame:
    """Seasonal-naive forecast from ``origin_date``: y_hat(t+h) = y(t + h - m * ceil(h / m)).

    m is ``spec.backtest.season_length``: each target day repeats the latest observed same-season day
    on or before the origin. This is the baseline a model must beat to be worth promoting. Output has
    the shape of ``QuantileForecaster.predict`` with a single ``p50`` column (NaN where the reference
    day is missing).
    """
    import pandas as pd

    panel = _Panel(features, spec)
    pos, horizon = _expand(panel, spec, [to_timestamp(origin_date)])
    target_day = panel.day[pos] + horizon
    reference = target_day - _seasonal_back(horizon, spec.backtest.season_length)
    frame = panel.frame.iloc[pos].reset_index(drop=True)
    ids = frame[series_columns(frame, spec.features.series_keys)]
    extra = {
        ORIGIN_DATE: _to_datetime(panel.day[pos]),
        TARGET_DATE: _to_datetime(target_day),
        HORIZON: horizon,
        quantile_column(0.5): panel.target_at(panel.sid[pos], reference, mask_censored=False),
    }
    return pd.concat([ids, pd.DataFrame(extra)], axis=1)
