"""A monthly `warehouse`-source use case runs on dates that are not month ends (issue 13).

An external loader's monthly table holds one row per series and month end. The use case runs, as
``make demo`` does, for two consecutive days in the middle of a month: each run must find its source ready
(data through the previous month end, not the run date), build and snapshot the features as of the date,
train once and publish forecasts for the months after the latest complete one. Everything but dbt's
holiday staging is prepared in the test's own DuckDB warehouse (the features and calendar marts are
plain tables), so the test depends on no dataset beyond the rows it writes.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from mlplatform import pipeline
from mlplatform.publishing import read_manifest, read_published
from mlplatform.settings import Settings, load_settings
from mlplatform.spec import UseCaseSpec
from mlplatform.storage import Layout

pytestmark = pytest.mark.integration

DAYS = (date(2025, 3, 13), date(2025, 3, 14))  # `make demo`: the day before RUN_DATE, then RUN_DATE
SERIES = ("north", "south")
FAST_PARAMS = {"max_iter": 60, "learning_rate": 0.15, "max_leaf_nodes": 15, "min_samples_leaf": 10}


def _months(first: str, last: str) -> pd.DatetimeIndex:
    return pd.date_range(first, last, freq="ME")


def _sales() -> pd.DataFrame:
    """Trend x yearly season x noise per series, through mid-2025 (rows after the run dates must be ignored)."""
    rng = np.random.default_rng(7)
    rows = []
    for i, series in enumerate(SERIES):
        months = _months("2016-01-31", "2025-06-30")
        t = np.arange(len(months))
        level = (100 + 40 * i) * (1 + 0.01 * t) * (1 + 0.25 * np.sin(2 * np.pi * months.month / 12))
        rows.append(pd.DataFrame({"series_id": series, "month_end": months.date,
                                  "sales": level * rng.lognormal(0, 0.03, len(t))}))
    return pd.concat(rows, ignore_index=True)


def _features(sales: pd.DataFrame) -> pd.DataFrame:
    out = sales.sort_values(["series_id", "month_end"]).copy()
    by = out.groupby("series_id")["sales"]
    out["lag_1"], out["lag_12"] = by.shift(1), by.shift(12)
    out["rolling_mean_3"] = by.transform(lambda s: s.rolling(3).mean())
    out["month_of_year"] = pd.to_datetime(out["month_end"]).dt.month
    return out


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    settings = load_settings({"MLPLATFORM_DATA_DIR": str(tmp_path / "data")})
    settings.duckdb_path.parent.mkdir(parents=True)
    sales = _sales()
    features = _features(sales)  # noqa: F841 - registered below by name
    calendar = pd.DataFrame({"calendar_date": _months("2016-01-31", "2027-12-31").date})
    calendar["month_of_year"] = pd.to_datetime(calendar["calendar_date"]).dt.month
    with duckdb.connect(str(settings.duckdb_path)) as con:
        con.execute("create schema raw; create schema analytics")
        con.execute("create table raw.monthly_sales as select * from sales")  # the external loader's table
        con.execute("create table analytics.fct_test_monthly_features as select * from features")
        con.execute("create table analytics.dim_test_monthly_calendar as select * from calendar")
    return settings


@pytest.fixture
def spec(tmp_path: Path) -> UseCaseSpec:
    suite = tmp_path / "suite.json"
    suite.write_text(json.dumps({"name": "test_monthly", "expectations": [
        {"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 1},
         "meta": {"severity": "critical"}}]}))
    return UseCaseSpec.model_validate({
        "name": "test_monthly", "description": "Monthly sales per region, six months ahead.", "owner": "tests",
        "kind": "forecast", "frequency": "monthly", "start_date": "2025-01-01",
        "source": {"type": "warehouse", "table": "raw.monthly_sales", "date_column": "month_end",
                   "history_start": "2016-01-31"},
        "transform": {"select": "stg_holidays", "features_model": "fct_test_monthly_features",
                      "calendar_model": "dim_test_monthly_calendar"},
        "validation": {"suite": str(suite)},  # an absolute path wins over the expectations folder
        "features": {"time_column": "month_end", "series_keys": ["series_id"], "target": "sales",
                     "numeric": ["lag_1", "lag_12", "rolling_mean_3", "month_of_year"],
                     "calendar": ["month_of_year"]},
        "model": {"params": FAST_PARAMS, "training_window": 96},
        "forecast": {"horizon": 6},
        "backtest": {"folds": 3, "fold_step": 3, "season_length": 12},
        "retrain": {"every_days": 45, "on_drift": False},  # a trending series drifts by design
        "monitoring": {"window_days": 365, "reference_days": 1460},
    })


def test_a_monthly_warehouse_source_runs_on_days_that_are_not_month_ends(spec, settings, object_store):
    assert spec.schedule == "0 0 1 * *"  # derived: the day after each month end
    layout = Layout(spec.name)
    results = {}
    for day in DAYS:
        results[day] = {name: call() for name, call in pipeline.stage_calls(spec, day, settings, object_store)}

    first, second = (results[d] for d in DAYS)
    # readiness: data through the latest month end on or before the run date, not the run date itself
    assert first["land_raw"]["ready_through"] == second["land_raw"]["ready_through"] == "2025-02-28"
    assert first["land_raw"]["holiday_calendar"] == "US" and first["land_raw"]["holiday_rows"] > 0
    assert first["decide_retrain"]["retrain"] and not second["decide_retrain"]["retrain"], \
        (first["train_model"]["decision"], second["decide_retrain"])  # trained once
    for day in DAYS:
        snapshot = pipeline.load_snapshot(spec, day, object_store)[2]
        assert snapshot["features"]["last_date"] == "2025-02-28"  # later raw rows are ignored
        frame = read_published(object_store, layout.forecasts(day))
        assert len(frame) == len(SERIES) * 6
        assert sorted(frame["target_date"].astype(str).unique()) == [
            "2025-03-31", "2025-04-30", "2025-05-31", "2025-06-30", "2025-07-31", "2025-08-31"]
        manifest = read_manifest(object_store, layout.forecasts(day))
        assert manifest["model"]["training_window"]["end"].startswith("2025-02-28")
    with duckdb.connect(str(settings.duckdb_path), read_only=True) as con:
        holidays = con.execute("select count(*) from analytics.stg_holidays "
                               "where holiday_date between '2016-01-01' and '2025-12-31'").fetchone()[0]
    assert holidays >= 10 * 10  # every year of the history, not only 2020 onwards
