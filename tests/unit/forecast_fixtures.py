"""Small synthetic demand data shaped like the dbt features and calendar marts, plus a test spec.

Demand per series = level x weekly profile x promotion lift, Poisson noise, occasional stock-outs
(recorded sales cut, flagged as censored). Promotions run in spells of several days, so the origin's
promotion state is informative for the next days, which a seasonal-naive forecast cannot use.

``make_period_data`` / ``make_period_spec`` build the same kind of panel for weekly, monthly or
quarterly use cases: one row per series and period, dated by the period's last day.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from mlplatform.spec import UseCaseSpec

USE_CASES = Path(__file__).resolve().parents[2] / "include" / "use_cases"
START = pd.Timestamp("2024-01-01")
WEEKLY = np.array([0.8, 0.85, 0.9, 1.0, 1.2, 1.6, 1.3])
HOLIDAYS = {pd.Timestamp("2024-01-01"), pd.Timestamp("2024-05-01"), pd.Timestamp("2024-12-25")}

FAST_PARAMS = {"max_iter": 60, "learning_rate": 0.15, "max_leaf_nodes": 15, "min_samples_leaf": 20}


def _merge(base: dict, override: dict) -> dict:
    out = dict(base)
    for key, value in override.items():
        out[key] = (
            _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
        )
    return out


def make_spec(overrides: dict[str, Any] | None = None, fast: bool = True) -> UseCaseSpec:
    """The demand_forecast spec from its YAML (merged over _defaults.yaml), with overrides.

    Built with ``UseCaseSpec.model_validate`` rather than ``get_spec`` so the tests do not depend on
    the expectation suite file. ``fast`` shrinks the estimator so unit tests stay quick.
    """
    raw = _merge(
        yaml.safe_load((USE_CASES / "_defaults.yaml").read_text()),
        yaml.safe_load((USE_CASES / "demand_forecast.yaml").read_text()),
    )
    if fast:
        raw = _merge(raw, {"model": {"params": FAST_PARAMS}})
    return UseCaseSpec.model_validate(_merge(raw, overrides or {}))


def _promotions(rng: np.random.Generator, n_series: int, n_days: int) -> np.ndarray:
    """Discount per series and day: spells of 4-10 days at 20-40 % off, roughly 20 % of days."""
    discount = np.zeros((n_series, n_days))
    for s in range(n_series):
        day = int(rng.integers(0, 10))
        while day < n_days:
            length = int(rng.integers(4, 11))
            discount[s, day : day + length] = rng.uniform(0.2, 0.4)
            day += length + int(rng.integers(10, 35))
    return discount


def _series_table(n_stores: int, n_skus: int, rng: np.random.Generator) -> pd.DataFrame:
    rows = [
        {
            "store_id": f"S{store:02d}",
            "sku_id": f"K{sku:03d}",
            "category": ["food", "drinks", "home"][sku % 3],
            "region": ["north", "south"][store % 2],
        }
        for store in range(n_stores)
        for sku in range(n_skus)
    ]
    table = pd.DataFrame(rows)
    table["series_id"] = table["store_id"] + "-" + table["sku_id"]
    table["level"] = rng.uniform(4.0, 30.0, len(table))
    table["list_price"] = rng.uniform(1.0, 20.0, len(table)).round(2)
    return table


def _add_history_features(frame: pd.DataFrame) -> pd.DataFrame:
    """Lags and rolling statistics of units_sold per series, as the dbt model computes them."""
    grouped = frame.groupby("series_id", sort=False)["units_sold"]
    for lag in (1, 7, 14, 28):
        frame[f"lag_{lag}"] = grouped.shift(lag)
    past = grouped.shift(1)
    by_series = past.groupby(frame["series_id"], sort=False)
    frame["rolling_mean_7"] = by_series.transform(lambda s: s.rolling(7).mean())
    frame["rolling_mean_28"] = by_series.transform(lambda s: s.rolling(28).mean())
    frame["rolling_std_28"] = by_series.transform(lambda s: s.rolling(28).std())
    return frame


def make_calendar(start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    dates = pd.date_range(start, end, freq="D")
    iso = dates.isocalendar()
    holiday = np.array([d in HOLIDAYS for d in dates])
    return pd.DataFrame(
        {
            "calendar_date": dates,
            "day_of_week": dates.dayofweek + 1,
            "day_of_month": dates.day,
            "month": dates.month,
            "week_of_year": iso.week.to_numpy().astype(int),
            "day_of_year": dates.dayofyear,
            "is_holiday": holiday.astype(int),
            "holiday_name": np.where(holiday, "holiday", None),
        }
    )


def make_data(
    n_stores: int = 2,
    n_skus: int = 3,
    n_days: int = 200,
    promo_lift: float = 2.5,
    stockout_rate: float = 0.02,
    seed: int = 0,
    horizon: int = 14,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(features, calendar) for ``n_stores x n_skus`` series over ``n_days`` days from 2024-01-01."""
    rng = np.random.default_rng(seed)
    series = _series_table(n_stores, n_skus, rng)
    dates = pd.date_range(START, periods=n_days, freq="D")
    n = len(series)
    discount = _promotions(rng, n, n_days)
    weekly = WEEKLY[dates.dayofweek.to_numpy()]
    mean = series["level"].to_numpy()[:, None] * weekly[None, :] * np.where(discount > 0, promo_lift, 1.0)
    demand = rng.poisson(mean).astype(float)
    stockout = rng.random((n, n_days)) < stockout_rate
    sold = np.where(stockout, np.floor(demand * 0.3), demand)

    frame = series.loc[np.repeat(np.arange(n), n_days)].reset_index(drop=True)
    frame["sales_date"] = np.tile(dates.to_numpy(), n)
    frame["units_sold"] = sold.ravel()
    frame["is_stockout"] = stockout.ravel()
    frame["discount_pct"] = discount.ravel()
    frame["unit_price"] = (frame["list_price"] * (1 - frame["discount_pct"])).round(2)
    frame["on_promotion"] = (frame["discount_pct"] > 0).astype(int)
    frame = _add_history_features(frame)
    frame["day_of_week"] = frame["sales_date"].dt.dayofweek + 1
    frame["day_of_month"] = frame["sales_date"].dt.day
    frame["month"] = frame["sales_date"].dt.month
    frame["is_holiday"] = frame["sales_date"].isin(HOLIDAYS).astype(int)
    frame = frame.drop(columns=["level"])
    calendar = make_calendar(START, dates[-1] + pd.Timedelta(days=horizon))
    return frame, calendar


def last_date(features: pd.DataFrame) -> pd.Timestamp:
    return pd.Timestamp(features["sales_date"].max())


@contextmanager
def single_threaded() -> Iterator[None]:
    """Fit with one OpenMP thread: on a shared, busy machine spinning threads make fits 10x slower."""
    import sklearn.ensemble  # noqa: F401 - load the OpenMP runtime first: threadpoolctl limits loaded ones
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        yield


# --------------------------------------------------------------------------- weekly / monthly panels

# pandas aliases of period-end dates; weekly data ends on Saturday (not the ISO Sunday) on purpose, so
# the tests show that the week-ending weekday is taken from the data.
PERIOD_FREQ = {"weekly": "W-SAT", "monthly": "ME", "quarterly": "QE"}
PERIOD_START = pd.Timestamp("2018-01-01")
# (season_length, horizon, training_window, fold_step, n_periods) per frequency: small but seasonal.
PERIOD_SHAPE = {"weekly": (4, 8, 80, 4, 130), "monthly": (12, 6, 48, 3, 84), "quarterly": (4, 4, 24, 2, 48)}
PERIOD_NUMERIC = ["unit_price", "discount_pct", "on_promotion", "lag_1", "lag_2", "rolling_mean_4", "month"]
PERIOD_CALENDAR = ["month", "season_position"]


def period_ends(frequency: str, periods: int, start: pd.Timestamp = PERIOD_START) -> pd.DatetimeIndex:
    """The first ``periods`` period-end dates on or after ``start``."""
    return pd.date_range(start, periods=periods, freq=PERIOD_FREQ[frequency])


def make_period_spec(frequency: str, overrides: dict[str, Any] | None = None) -> UseCaseSpec:
    """The demand_forecast spec turned into a ``frequency`` use case over ``make_period_data`` columns."""
    season, horizon, window, step, _ = PERIOD_SHAPE[frequency]
    base = {
        "frequency": frequency,
        "features": {"numeric": PERIOD_NUMERIC, "calendar": PERIOD_CALENDAR},
        "model": {"training_window": window, "origin_stride": 1},
        "forecast": {"horizon": horizon},
        "backtest": {"folds": 2, "fold_step": step, "season_length": season, "min_improvement": 0.0},
        "monitoring": {"columns": ["unit_price", "discount_pct", "units_sold"]},
    }
    return make_spec(_merge(base, overrides or {}))


def _period_history_features(frame: pd.DataFrame) -> pd.DataFrame:
    """Lags and a rolling mean of units_sold per series, in periods (as a dbt model would compute them)."""
    grouped = frame.groupby("series_id", sort=False)["units_sold"]
    frame["lag_1"] = grouped.shift(1)
    frame["lag_2"] = grouped.shift(2)
    past = grouped.shift(1)
    by_series = past.groupby(frame["series_id"], sort=False)
    frame["rolling_mean_4"] = by_series.transform(lambda s: s.rolling(4).mean())
    return frame


def make_period_calendar(frequency: str, periods: int) -> pd.DataFrame:
    """One calendar row per period end (the convention for non-daily frequencies)."""
    season = PERIOD_SHAPE[frequency][0]
    dates = period_ends(frequency, periods)
    return pd.DataFrame(
        {"calendar_date": dates, "month": dates.month, "season_position": np.arange(periods) % season}
    )


def make_period_data(
    frequency: str, n_stores: int = 2, n_skus: int = 3, seed: int = 0, promo_lift: float = 2.0
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(features, calendar) with one row per series and period end; the calendar runs H periods further.

    Demand = level x seasonal profile (``season_length`` periods long) x promotion lift, Poisson noise,
    occasional censored stock-outs.
    """
    season, horizon, _, _, n_periods = PERIOD_SHAPE[frequency]
    rng = np.random.default_rng(seed)
    series = _series_table(n_stores, n_skus, rng)
    dates = period_ends(frequency, n_periods)
    n = len(series)
    profile = 1.0 + 0.6 * np.sin(2 * np.pi * np.arange(season) / season)
    discount = _promotions(rng, n, n_periods)
    mean = series["level"].to_numpy()[:, None] * profile[np.arange(n_periods) % season][None, :]
    demand = rng.poisson(mean * np.where(discount > 0, promo_lift, 1.0)).astype(float)
    stockout = rng.random((n, n_periods)) < 0.02
    frame = series.loc[np.repeat(np.arange(n), n_periods)].reset_index(drop=True)
    frame["sales_date"] = np.tile(dates.to_numpy(), n)
    frame["units_sold"] = np.where(stockout, np.floor(demand * 0.3), demand).ravel()
    frame["is_stockout"] = stockout.ravel()
    frame["discount_pct"] = discount.ravel()
    frame["unit_price"] = (frame["list_price"] * (1 - frame["discount_pct"])).round(2)
    frame["on_promotion"] = (frame["discount_pct"] > 0).astype(int)
    frame["month"] = frame["sales_date"].dt.month
    frame = _period_history_features(frame).drop(columns=["level"])
    return frame, make_period_calendar(frequency, n_periods + horizon)
