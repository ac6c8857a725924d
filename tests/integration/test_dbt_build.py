"""Real dbt build on a small landed dataset: as-of features, lags, calendar horizon, quality gate."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from mlplatform import datagen, transform, warehouse
from mlplatform.errors import TransformError
from mlplatform.settings import Settings, load_settings
from mlplatform.spec import UseCaseSpec, get_spec

pytestmark = pytest.mark.integration

HISTORY_START = date(2024, 1, 1)
LANDED_THROUGH = HISTORY_START + timedelta(days=119)
EARLIER = LANDED_THROUGH - timedelta(days=20)
PARAMS = {"n_stores": 2, "n_skus": 3, "seed": 11}


@pytest.fixture(scope="module")
def spec() -> UseCaseSpec:
    base = get_spec("demand_forecast")
    source = base.source.model_copy(update={"history_start": HISTORY_START, "params": PARAMS})
    return base.model_copy(update={"source": source})


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return load_settings({"MLPLATFORM_DATA_DIR": str(tmp_path_factory.mktemp("dbt") / "data")})


@pytest.fixture(scope="module")
def landed(spec: UseCaseSpec, settings: Settings) -> dict:
    return warehouse.land_source(spec, LANDED_THROUGH, settings)


@pytest.fixture(scope="module")
def built(spec: UseCaseSpec, settings: Settings, landed: dict) -> dict:
    """One build as of the last landed day; frames read right after it (later tests rebuild)."""
    result = transform.run_dbt_build(spec, LANDED_THROUGH, settings)
    return {"result": result, "features": _features(settings, spec), "calendar": _calendar(settings, spec)}


def _features(settings: Settings, spec: UseCaseSpec) -> pd.DataFrame:
    return warehouse.read_relation(settings, warehouse.relation_name(spec.transform.features_model))


def _calendar(settings: Settings, spec: UseCaseSpec) -> pd.DataFrame:
    return warehouse.read_relation(settings, warehouse.relation_name(spec.transform.calendar_model))


def test_build_produces_as_of_features_and_calendar(spec: UseCaseSpec, landed: dict, built: dict) -> None:
    assert landed["days_landed"] == 120
    result = built["result"]
    assert len(result["manifest_hash"]) == 64 and result["nodes"]["success"] >= 7
    assert set(result["nodes"]) <= {"success", "pass", "warn"}

    feats = built["features"]
    assert len(feats) == 120 * 6
    assert feats["sales_date"].max() == pd.Timestamp(LANDED_THROUGH)
    assert not feats.duplicated(["store_id", "sku_id", "sales_date"]).any()
    assert (feats["series_id"] == feats["store_id"] + "-" + feats["sku_id"]).all()
    cal = built["calendar"]
    assert cal["calendar_date"].min() == pd.Timestamp(HISTORY_START)
    assert cal["calendar_date"].max() == pd.Timestamp(LANDED_THROUGH + timedelta(days=spec.forecast.horizon))
    assert cal["calendar_date"].is_unique


def test_lags_rolling_and_raw_values_agree(built: dict) -> None:
    feats = built["features"].sort_values(["series_id", "sales_date"]).reset_index(drop=True)
    raw = datagen.generate_sales(HISTORY_START, LANDED_THROUGH, **PARAMS)
    merged = feats.merge(raw, on=["store_id", "sku_id", "sales_date"], suffixes=("", "_raw"))
    assert len(merged) == len(feats)
    assert (merged["units_sold"] == merged["units_sold_raw"]).all()
    assert (merged["is_stockout"] == merged["stockout_flag"]).all()
    assert (merged["on_promotion"] == merged["on_promotion_raw"].astype(int)).all()
    by_series = feats.groupby("series_id")["units_sold"]
    for lag in (1, 7, 14, 28):
        pd.testing.assert_series_equal(feats[f"lag_{lag}"], by_series.shift(lag), check_names=False)
    expected_mean_7 = by_series.transform(lambda s: s.rolling(7).mean())
    pd.testing.assert_series_equal(feats["rolling_mean_7"], expected_mean_7, check_names=False)
    expected_std_28 = by_series.transform(lambda s: s.rolling(28).std())
    pd.testing.assert_series_equal(feats["rolling_std_28"], expected_std_28, check_names=False, rtol=1e-9)
    assert ((feats["discount_pct"] > 0) == (feats["on_promotion"] == 1)).all()
    assert (feats["day_of_week"] == feats["sales_date"].dt.dayofweek + 1).all()


def test_rerun_for_an_earlier_date_is_as_of_that_date(spec: UseCaseSpec, settings: Settings, landed: dict) -> None:
    transform.run_dbt_build(spec, EARLIER, settings)
    feats = _features(settings, spec)
    assert feats["sales_date"].max() == pd.Timestamp(EARLIER)
    assert len(feats) == ((EARLIER - HISTORY_START).days + 1) * 6
    cal = _calendar(settings, spec)
    assert cal["calendar_date"].max() == pd.Timestamp(EARLIER + timedelta(days=spec.forecast.horizon))
    raw = warehouse.read_relation(settings, "raw.retail_sales", "sales_date > ?", [EARLIER])
    assert len(raw) == 20 * 6  # later raw days exist, yet no feature row reaches past the run date


def test_landing_twice_lands_nothing(spec: UseCaseSpec, settings: Settings, landed: dict) -> None:
    count = len(warehouse.read_relation(settings, "raw.retail_sales"))
    again = warehouse.land_source(spec, LANDED_THROUGH, settings)
    assert again["rows_landed"] == 0 and again["days_landed"] == 0
    assert len(warehouse.read_relation(settings, "raw.retail_sales")) == count == 120 * 6


def test_bad_raw_data_fails_the_build_naming_the_tests(spec: UseCaseSpec, tmp_path: Path) -> None:
    settings = load_settings({"MLPLATFORM_DATA_DIR": str(tmp_path / "data")})
    warehouse.land_source(spec, HISTORY_START + timedelta(days=40), settings)
    bad_day = HISTORY_START + timedelta(days=41)
    rows = datagen.generate_sales(bad_day, bad_day, **PARAMS)
    rows = datagen.inject_faults(rows, "negative_units", rate=0.2, seed=1)
    rows = datagen.inject_faults(rows, "null_price", rate=0.2, seed=2)
    with duckdb.connect(str(settings.duckdb_path)) as con:
        con.register("bad", rows)
        con.execute("insert into raw.retail_sales select cast(sales_date as date), store_id, sku_id, "
                    "units_sold, unit_price, list_price, on_promotion, stockout_flag from bad")
    with pytest.raises(TransformError) as err:
        transform.run_dbt_build(spec, bad_day, settings)
    message = str(err.value)
    assert "stg_retail_sales_units_sold_non_negative" in message
    assert "stg_retail_sales_unit_price_not_null" in message
    assert "[fail]" in message


def test_missing_run_date_var_is_a_clear_compile_error(settings: Settings, landed: dict) -> None:
    args = ["compile", "--select", "stg_retail_sales",
            *transform._common_args(settings, settings.data_dir / "dbt" / "target_compile")]
    res = transform._invoke(args, settings)
    with pytest.raises(TransformError, match="run_date' is required"):
        transform._raise_on_failure(res, "dbt compile")
