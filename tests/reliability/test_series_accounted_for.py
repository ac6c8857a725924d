"""Every series accounted for: a publication that lacks series says which and why, and by policy a
rerun that would drop the largest series never replaces the good partition of its date.

A monthly `warehouse`-source use case as a data engineer adds one (an external loader's table, plain
features and calendar marts in the real DuckDB warehouse, dbt for the holiday staging, the real S3
server): six regions of very different size. The two largest stop delivering eight months before the
run date, as in a real panel whose largest series ended early: nothing failed, the partition held four
of six series, and nothing said so.
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
from mlplatform.errors import DataQualityError
from mlplatform.publishing import read_manifest, read_published
from mlplatform.settings import Settings, load_settings
from mlplatform.spec import UseCaseSpec
from mlplatform.storage import Layout

pytestmark = pytest.mark.reliability

RUN = date(2025, 3, 14)          # latest complete month: 2025-02-28
STOPPED_AFTER = "2024-06-30"     # the two largest series' last month
SERIES = ("r0", "r1", "r2", "r3", "r4", "r5")
LARGEST = ("r5", "r4")
FAST_PARAMS = {"max_iter": 40, "learning_rate": 0.15, "max_leaf_nodes": 15, "min_samples_leaf": 10}


def _features() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    months = pd.date_range("2016-01-31", "2025-02-28", freq="ME")
    frames = []
    for i, series in enumerate(SERIES):
        t = np.arange(len(months))
        level = 10.0 ** (1 + i / 2) * (1 + 0.01 * t) * (1 + 0.2 * np.sin(2 * np.pi * months.month / 12))
        frame = pd.DataFrame({"series_id": series, "month_end": months.date,
                              "sales": level * rng.lognormal(0, 0.03, len(t))})
        by = frame["sales"]
        frame["lag_1"], frame["lag_12"] = by.shift(1), by.shift(12)
        frame["month_of_year"] = months.month
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def _write_features(settings: Settings, features: pd.DataFrame) -> None:
    with duckdb.connect(str(settings.duckdb_path)) as con:
        con.execute("create or replace table analytics.fct_acct_features as select * from features")


def _stop_largest(settings: Settings) -> None:
    features = _features()
    late = features["series_id"].isin(LARGEST) & (pd.to_datetime(features["month_end"]) > STOPPED_AFTER)
    _write_features(settings, features[~late])


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    settings = load_settings({"MLPLATFORM_DATA_DIR": str(tmp_path / "data")})
    settings.duckdb_path.parent.mkdir(parents=True)
    features = _features()
    raw = features[["series_id", "month_end", "sales"]]  # noqa: F841 - registered below by name
    calendar = pd.DataFrame({"calendar_date": pd.date_range("2016-01-31", "2027-12-31", freq="ME").date})
    calendar["month_of_year"] = pd.to_datetime(calendar["calendar_date"]).dt.month
    with duckdb.connect(str(settings.duckdb_path)) as con:
        con.execute("create schema raw; create schema analytics")
        con.execute("create table raw.acct_sales as select * from raw")
        con.execute("create table analytics.dim_acct_calendar as select * from calendar")
    _write_features(settings, features)
    return settings


def make_spec(tmp_path: Path, on_breach: str = "warn") -> UseCaseSpec:
    suite = tmp_path / "suite.json"
    suite.write_text(json.dumps({"name": "acct", "expectations": [
        {"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 1},
         "meta": {"severity": "critical"}}]}))
    return UseCaseSpec.model_validate({
        "name": "acct_monthly", "description": "Monthly sales of six regions, six months ahead.", "owner": "tests",
        "kind": "forecast", "frequency": "monthly", "start_date": "2025-01-01",
        "source": {"type": "warehouse", "table": "raw.acct_sales", "date_column": "month_end",
                   "history_start": "2016-01-31"},
        "transform": {"select": "stg_holidays", "features_model": "fct_acct_features",
                      "calendar_model": "dim_acct_calendar"},
        "validation": {"suite": str(suite)},
        "features": {"time_column": "month_end", "series_keys": ["series_id"], "target": "sales",
                     "numeric": ["lag_1", "lag_12", "month_of_year"], "calendar": ["month_of_year"]},
        "model": {"params": FAST_PARAMS, "training_window": 96, "candidates": ["seasonal_naive", "gbm_scaled"]},
        "forecast": {"horizon": 6},
        "backtest": {"folds": 3, "fold_step": 3, "season_length": 12, "min_improvement": 0.0},
        "retrain": {"every_days": 45, "on_drift": False},
        "monitoring": {"window_days": 365, "reference_days": 1460},
        "publish": {"series": {"top_n": 2, "on_breach": on_breach}},
    })


def run(spec: UseCaseSpec, settings: Settings, store, stages: tuple[str, ...] | None = None, day: date = RUN) -> dict:
    return {name: call() for name, call in pipeline.stage_calls(spec, day, settings, store)
            if stages is None or name in stages}


def test_series_that_stopped_are_listed_with_their_reason_and_flag_a_breach(tmp_path, settings, object_store):
    spec = make_spec(tmp_path)
    _stop_largest(settings)
    run(spec, settings, object_store)
    layout = Layout(spec.name)
    block = read_manifest(object_store, layout.forecasts(RUN))["series"]
    assert (block["in_features"], block["forecast"], block["left_out"]) == (6, 4, 2)
    listed = {s["series_id"]: s for s in block["series"]}
    assert set(listed) == set(LARGEST)
    assert all(s["reason"] == "stopped: last observed 2024-06-30, before the origin 2025-02-28" and s["top_n"]
               for s in listed.values())
    assert "33.3%" in block["breach"] and "2 of the 2 largest series left out" in block["breach"]
    assert sorted(read_published(object_store, layout.forecasts(RUN))["series_id"].unique()) == ["r0", "r1", "r2", "r3"]
    summary = pipeline.run_summary(spec, RUN, object_store)
    assert summary["series"]["left_out"] == 2


def test_by_policy_a_rerun_that_drops_the_largest_series_keeps_the_good_partition(tmp_path, settings, object_store):
    spec = make_spec(tmp_path, on_breach="block")
    run(spec, settings, object_store)
    layout = Layout(spec.name)
    prefix = layout.forecasts(RUN)
    assert read_manifest(object_store, prefix)["series"]["left_out"] == 0
    good = {k: object_store.get_bytes(k) for k in object_store.list_keys(prefix)}
    _stop_largest(settings)
    with pytest.raises(DataQualityError) as refused:
        run(spec, settings, object_store, ("build_features", "validate_features", "score_and_publish"))
    message = str(refused.value)
    assert "2 of the 2 largest series left out" in message and "Nothing was published" in message
    assert "series_id=r5: stopped: last observed 2024-06-30" in message
    manifest = read_manifest(object_store, prefix)
    assert manifest["series"]["left_out"] == 0
    assert {k: object_store.get_bytes(k) for k in object_store.list_keys(prefix)} == good  # byte for byte


def test_a_series_deleted_at_the_source_is_accounted_for_against_the_previous_partition(
        tmp_path, settings, object_store):
    spec = make_spec(tmp_path)
    run(spec, settings, object_store)
    features = _features()
    _write_features(settings, features[features["series_id"] != "r0"])  # gone from the source entirely
    nxt = date(2025, 3, 15)
    run(spec, settings, object_store, ("land_raw", "build_features", "validate_features", "score_and_publish"), nxt)
    block = read_manifest(object_store, Layout(spec.name).forecasts(nxt))["series"]
    assert (block["in_features"], block["expected"], block["forecast"], block["left_out"]) == (5, 6, 5, 1)
    assert block["series"][0]["series_id"] == "r0"
    assert block["series"][0]["reason"] == (f"gone: in the partition of {RUN}, absent from the features as of the "
                                            "run date")
    assert "1 of 6 series (16.7%) left out" in block["breach"]
