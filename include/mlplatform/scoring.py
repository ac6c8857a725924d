"""Batch scoring: forecasts from origin = run_date for every series, produced in bounded chunks.

Series are scored a block at a time and yielded as frames of at most ``chunk_rows`` rows, so the
publisher can write one Parquet part per chunk and memory stays bounded however many series exist.
Only the few weeks of history the features look back on are kept (``required_history_days``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from mlplatform.errors import DataQualityError
from mlplatform.forecasting import (
    CALENDAR_DATE,
    HORIZON,
    TARGET_DATE,
    QuantileForecaster,
    make_supervised,
    require_columns,
    required_history_days,
    series_columns,
    to_timestamp,
)
from mlplatform.spec import UseCaseSpec

if TYPE_CHECKING:
    import pandas as pd


def _scoring_history(features: pd.DataFrame, spec: UseCaseSpec, run_date: pd.Timestamp) -> pd.DataFrame:
    """Recent rows of the series present on run_date, sorted by series so blocks are contiguous slices.

    Raises DataQualityError when run_date has no feature rows: publishing a forecast for "nobody"
    would silently replace the previous publication with an empty one.
    """
    import pandas as pd

    f = spec.features
    time = pd.to_datetime(features[f.time_column])
    on_run_date = features.loc[time == run_date, f.series_keys].drop_duplicates()
    if on_run_date.empty:
        latest = time.max().date() if len(time) else None
        raise DataQualityError(
            f"no feature rows for run_date {run_date.date()} (latest feature date: {latest}); "
            "check that the features model was built for this date"
        )
    start = run_date - pd.Timedelta(days=required_history_days(spec))
    recent = features.loc[(time >= start) & (time <= run_date)].assign(**{f.time_column: time})
    recent = recent.merge(on_run_date, on=f.series_keys, how="inner")
    return recent.sort_values([*f.series_keys, f.time_column], kind="stable").reset_index(drop=True)


def _check_calendar(calendar: pd.DataFrame, spec: UseCaseSpec, run_date: pd.Timestamp) -> None:
    """The calendar must cover every target date, or calendar features would silently be missing."""
    import pandas as pd

    if not spec.features.calendar:
        return
    require_columns(calendar, [CALENDAR_DATE], "calendar")
    needed = pd.date_range(run_date + pd.Timedelta(days=1), periods=spec.forecast.horizon, freq="D")
    missing = needed.difference(pd.DatetimeIndex(pd.to_datetime(calendar[CALENDAR_DATE])).normalize())
    if len(missing):
        raise DataQualityError(
            f"calendar has no rows for {len(missing)} forecast date(s) after run_date {run_date.date()}: "
            f"{[d.date().isoformat() for d in missing[:5]]}"
        )


def _format(predictions: pd.DataFrame, model: QuantileForecaster, spec: UseCaseSpec) -> pd.DataFrame:
    """Publication columns: series keys (+ series_id), target_date as date, horizon as int, quantiles."""
    cols = [
        *series_columns(predictions, spec.features.series_keys),
        TARGET_DATE,
        HORIZON,
        *model.quantile_columns,
    ]
    out = predictions[cols].copy()
    out[TARGET_DATE] = out[TARGET_DATE].dt.date
    out[HORIZON] = out[HORIZON].astype("int64")
    return out


def forecast_chunks(
    model: QuantileForecaster,
    features: pd.DataFrame,
    calendar: pd.DataFrame,
    spec: UseCaseSpec,
    run_date: Any,
    chunk_rows: int,
) -> Iterator[pd.DataFrame]:
    """Yield forecasts for origin = run_date, h = 1..H, for every series present on run_date.

    Each yielded frame has at most ``chunk_rows`` rows; blocks of whole series are scored together
    (``chunk_rows // H`` series per block) so each series appears in exactly one chunk whenever
    ``chunk_rows >= H``.
    """
    import numpy as np

    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be >= 1, got {chunk_rows}")
    run_date = to_timestamp(run_date)
    history = _scoring_history(features, spec, run_date)
    _check_calendar(calendar, spec, run_date)
    keys = spec.features.series_keys
    codes = history.groupby(keys, sort=False, dropna=False).ngroup().to_numpy()  # ascending: sorted input
    per_block = max(1, chunk_rows // spec.forecast.horizon)
    for first in range(0, int(codes.max()) + 1, per_block):
        lo, hi = np.searchsorted(codes, [first, first + per_block])
        block = history.iloc[lo:hi]
        predictions = model.predict(make_supervised(block, calendar, spec, [run_date], with_target=False))
        out = _format(predictions, model, spec)
        for start in range(0, len(out), chunk_rows):
            yield out.iloc[start : start + chunk_rows].reset_index(drop=True)
