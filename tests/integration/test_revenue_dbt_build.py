"""Real dbt build of the revenue-forecast models on a short landed ledger: as-of features, fiscal
calendar over the horizon, reconciliation to the ledger, the GX suite and the raw-data quality gate."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from mlplatform import transform, validation, warehouse
from mlplatform.errors import TransformError
from mlplatform.settings import Settings, load_settings
from mlplatform.spec import UseCaseSpec, get_spec
from mlplatform.synthetic import revenue_ledger as rl

pytestmark = pytest.mark.integration

HISTORY_START = date(2024, 9, 2)  # a Monday: every series (B2B units too) posts on day one
RUN_DATE = date(2025, 1, 31)  # a month end: the window and quarter-end flags are exercised
LANDED_THROUGH = RUN_DATE + timedelta(days=10)  # raw data past the run date must not leak in
N_DAYS = (RUN_DATE - HISTORY_START).days + 1
PARAMS = {"n_business_units": 4, "n_regions": 3, "seed": 42}
N_SERIES = PARAMS["n_business_units"] * PARAMS["n_regions"]


@pytest.fixture(scope="module")
def spec() -> UseCaseSpec:
    base = get_spec("revenue_forecast")
    source = base.source.model_copy(update={"history_start": HISTORY_START, "params": PARAMS})
    return base.model_copy(update={"source": source})


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return load_settings({"MLPLATFORM_DATA_DIR": str(tmp_path_factory.mktemp("revenue_dbt") / "data")})


@pytest.fixture(scope="module")
def landed(spec: UseCaseSpec, settings: Settings) -> dict:
    return warehouse.land_source(spec, LANDED_THROUGH, settings)


@pytest.fixture(scope="module")
def built(spec: UseCaseSpec, settings: Settings, landed: dict) -> dict:
    result = transform.run_dbt_build(spec, RUN_DATE, settings)
    read = warehouse.read_relation
    return {
        "result": result,
        "features": read(settings, warehouse.relation_name(spec.transform.features_model)),
        "calendar": read(settings, warehouse.relation_name(spec.transform.calendar_model)),
    }


def test_landing_and_build_succeed(landed: dict, built: dict) -> None:
    assert landed["days_landed"] == (LANDED_THROUGH - HISTORY_START).days + 1
    assert landed["table"] == "raw.ledger_entries" and landed["rows_landed"] > 0
    result = built["result"]
    assert len(result["manifest_hash"]) == 64
    assert set(result["nodes"]) <= {"success", "pass", "warn"}
    assert result["nodes"]["success"] >= 7  # seed, 5 views, 2 tables


def test_features_are_as_of_run_date_with_one_row_per_series_day(settings: Settings, built: dict) -> None:
    feats = built["features"]
    assert feats["revenue_date"].max() == pd.Timestamp(RUN_DATE)
    assert feats["revenue_date"].min() == pd.Timestamp(HISTORY_START)
    raw_later = warehouse.read_relation(settings, "raw.ledger_entries", "posting_date > ?", [RUN_DATE])
    assert len(raw_later) > 0  # later postings were landed, yet no feature row reaches past run_date
    assert not feats.duplicated(["business_unit", "region", "revenue_date"]).any()
    assert len(feats) == N_DAYS * N_SERIES
    assert (feats["series_id"] == feats["business_unit"] + "-" + feats["region"]).all()
    assert feats["segment"].notna().all()


def test_revenue_reconciles_to_the_ledger_and_lags_shift_it(built: dict) -> None:
    feats = built["features"].sort_values(["series_id", "revenue_date"]).reset_index(drop=True)
    ledger = rl.generate_ledger(HISTORY_START, RUN_DATE, **PARAMS)
    daily = (ledger.groupby(["business_unit", "region", "posting_date"], as_index=False)
             .agg(ledger_revenue=("amount", "sum"), ledger_n=("amount", "size")))
    merged = feats.merge(daily, left_on=["business_unit", "region", "revenue_date"],
                         right_on=["business_unit", "region", "posting_date"], how="left")
    assert len(merged) == len(feats)
    expected = merged["ledger_revenue"].fillna(0.0).round(2)
    pd.testing.assert_series_equal(merged["revenue"], expected, check_names=False, atol=1e-6)
    assert (merged["n_postings"] == merged["ledger_n"].fillna(0)).all()
    assert (merged["revenue"] == 0).any()  # weekends of B2B units are zero-filled, not missing
    by_series = feats.groupby("series_id")["revenue"]
    for lag in (1, 7, 28, 91):
        pd.testing.assert_series_equal(feats[f"lag_{lag}"], by_series.shift(lag), check_names=False)
    assert feats["lag_364"].isna().all()  # less than a year of history
    expected_mean_28 = by_series.transform(lambda s: s.rolling(28).mean())
    pd.testing.assert_series_equal(feats["rolling_mean_28"], expected_mean_28, check_names=False, rtol=1e-9)
    assert (feats["day_of_week"] == feats["revenue_date"].dt.dayofweek + 1).all()


def test_fiscal_calendar_covers_the_horizon_and_matches_the_generator(spec: UseCaseSpec, built: dict) -> None:
    cal = built["calendar"]
    assert cal["calendar_date"].min() == pd.Timestamp(HISTORY_START)
    assert cal["calendar_date"].max() == pd.Timestamp(RUN_DATE + timedelta(days=spec.forecast.horizon))
    assert cal["calendar_date"].is_unique and len(cal) == N_DAYS + spec.forecast.horizon
    day = cal["calendar_date"].dt.date
    assert (cal["is_month_end_window"] == day.map(lambda d: int(rl.month_end_rank(d) is not None))).all()
    assert (cal["is_business_day"] == day.map(lambda d: int(rl.is_business_day(d)))).all()
    # January 2025 ends on a Friday: the window is Wed 29th .. Fri 31st; March is a quarter end.
    window = cal.loc[cal["is_month_end_window"] == 1, "calendar_date"].dt.date
    assert {date(2025, 1, 29), date(2025, 1, 30), date(2025, 1, 31)} <= set(window)
    quarter_end = set(cal.loc[cal["is_quarter_end_window"] == 1, "calendar_date"].dt.date)
    assert {d for d in quarter_end if d.year == 2025} == {date(2025, 3, 27), date(2025, 3, 28), date(2025, 3, 31)}
    assert (cal["days_to_month_end"] == (cal["calendar_date"] + pd.offsets.MonthEnd(0) - cal["calendar_date"]).dt.days).all()


def test_features_pass_the_expectation_suite(spec: UseCaseSpec, built: dict) -> None:
    report = validation.validate_frame(built["features"], spec.suite_path)
    assert report.success, [validation.describe_failure(r) for r in report.failures()]
    assert report.failures() == []  # warnings too: the synthetic ledger is clean
    assert report.evaluated == len(validation.load_suite(spec.suite_path)["expectations"])


def test_bad_postings_fail_the_build_naming_the_tests(spec: UseCaseSpec, tmp_path: Path) -> None:
    settings = load_settings({"MLPLATFORM_DATA_DIR": str(tmp_path / "data")})
    short = spec.model_copy(update={"source": spec.source.model_copy(update={"history_start": date(2025, 1, 1)})})
    bad_day = date(2025, 1, 10)
    warehouse.land_source(short, bad_day, settings)
    with duckdb.connect(str(settings.duckdb_path)) as con:
        con.execute("insert into raw.ledger_entries select * from raw.ledger_entries "
                    "where posting_date = ? limit 2", [bad_day])
        con.execute("update raw.ledger_entries set currency = 'EUR' "
                    "where entry_id = (select min(entry_id) from raw.ledger_entries)")
    with pytest.raises(TransformError) as err:
        transform.run_dbt_build(short, bad_day, settings)
    message = str(err.value)
    assert "unique_stg_finance__ledger_entries_entry_id" in message
    assert "stg_finance__ledger_entries_currency_is_usd" in message
    assert "[fail]" in message
