"""The data-quality gate: the repo's suite passes clean features and names every critical fault."""

from __future__ import annotations

import datetime as dt
import decimal
import json

import numpy as np
import pandas as pd
import pytest

from mlplatform import constants as C
from mlplatform.errors import DataQualityError, PlatformError, SpecError
from mlplatform.validation import (
    CRITICAL,
    WARNING,
    ValidationReport,
    json_safe,
    load_suite,
    raise_for_failures,
    validate_frame,
)

SUITE = C.EXPECTATIONS_DIR / "demand_forecast_features.json"
WHERE = "demand_forecast features run_date=2024-06-08"


def feature_frame(n_days: int = 160, stores: int = 2, skus: int = 2, seed: int = 0) -> pd.DataFrame:
    """A clean feature frame shaped like fct_demand_features (lags NaN in each series' first days)."""
    rng = np.random.default_rng(seed)
    dates = pd.date_range("2024-01-01", periods=n_days, freq="D")
    parts = []
    for s in range(stores):
        for k in range(skus):
            units = pd.Series(rng.poisson(6, n_days).astype(float))
            list_price = np.full(n_days, 10.0 + k)
            discount = np.where(rng.random(n_days) < 0.2, 0.2, 0.0)
            lagged = units.shift(1)
            parts.append(
                pd.DataFrame(
                    {
                        "series_id": f"S{s}-K{k}",
                        "store_id": f"S{s}",
                        "sku_id": f"K{k}",
                        "category": "food",
                        "region": "north",
                        "sales_date": dates,
                        "units_sold": units,
                        "is_stockout": units == 0,
                        "unit_price": list_price * (1 - discount),
                        "list_price": list_price,
                        "discount_pct": discount,
                        "on_promotion": (discount > 0).astype(int),
                        "lag_1": lagged,
                        "lag_7": units.shift(7),
                        "lag_14": units.shift(14),
                        "lag_28": units.shift(28),
                        "rolling_mean_7": lagged.rolling(7).mean(),
                        "rolling_mean_28": lagged.rolling(28).mean(),
                        "rolling_std_28": lagged.rolling(28).std(),
                        "day_of_week": dates.dayofweek + 1,
                        "day_of_month": dates.day,
                        "month": dates.month,
                        "is_holiday": (dates.dayofyear % 45 == 0).astype(int),
                    }
                )
            )
    return pd.concat(parts, ignore_index=True)


@pytest.fixture(scope="module")
def clean() -> pd.DataFrame:
    return feature_frame()


def _error(frame: pd.DataFrame, sample_size: int = 5) -> str:
    report = validate_frame(frame, SUITE, sample_size=sample_size)
    assert not report.success
    with pytest.raises(DataQualityError) as exc_info:
        raise_for_failures(report, WHERE)
    return str(exc_info.value)


def test_clean_frame_passes_without_warnings(clean):
    report = validate_frame(clean, SUITE)
    assert report.success, [r for r in report.results if not r["success"]]
    assert report.failures() == []
    assert report.suite == "demand_forecast_features"
    assert report.evaluated == len(load_suite(SUITE)["expectations"]) == len(report.results)
    assert report.rows == len(clean)
    raise_for_failures(report, WHERE)  # does not raise


def test_results_follow_suite_order_and_are_json_safe(clean):
    report = validate_frame(clean, SUITE)
    suite = load_suite(SUITE)
    assert [r["expectation"] for r in report.results] == [e["type"] for e in suite["expectations"]]
    payload = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert payload["success"] is True and payload["failed_critical"] == 0
    row = payload["results"][0]
    for key in (
        "expectation",
        "column",
        "columns",
        "severity",
        "success",
        "unexpected_count",
        "unexpected_percent",
        "sample_values",
        "why",
    ):
        assert key in row


def test_negative_units_fail_with_samples(clean):
    frame = clean.copy()
    frame.loc[[3, 5, 8], "units_sold"] = [-4.0, -1.0, -7.0]
    message = _error(frame)
    assert WHERE in message
    assert "expect_column_values_to_be_between(units_sold): 3 unexpected" in message
    assert "[-4.0, -1.0, -7.0]" in message


def test_null_price_fails_naming_rows(clean):
    frame = clean.copy()
    frame.loc[[10, 11], "unit_price"] = np.nan
    message = _error(frame)
    line = next(x for x in message.splitlines() if "expect_column_values_to_not_be_null(unit_price)" in x)
    assert "2 unexpected" in line and "[null, null]" in line and "rows [10, 11]" in line


def test_duplicate_keys_fail_with_timestamps_in_samples(clean):
    frame = pd.concat([clean, clean.iloc[[0]]], ignore_index=True)
    report = validate_frame(frame, SUITE)
    (dup,) = [
        r for r in report.failures(CRITICAL) if r["expectation"] == "expect_compound_columns_to_be_unique"
    ]
    assert dup["columns"] == ["store_id", "sku_id", "sales_date"]
    assert dup["unexpected_count"] == 2
    assert dup["sample_values"][0] == {"store_id": "S0", "sku_id": "K0", "sales_date": "2024-01-01T00:00:00"}
    json.dumps(report.to_dict(), allow_nan=False)
    with pytest.raises(
        DataQualityError, match=r"expect_compound_columns_to_be_unique\(store_id, sku_id, sales_date\)"
    ):
        raise_for_failures(report, WHERE)


def test_discount_out_of_range_fails(clean):
    frame = clean.copy()
    frame.loc[7, "discount_pct"] = 1.5
    message = _error(frame)
    assert "expect_column_values_to_be_between(discount_pct): 1 unexpected" in message
    assert "[1.5]" in message


def test_each_failed_critical_on_its_own_line(clean):
    frame = clean.copy()
    frame.loc[3, "units_sold"] = -2.0
    frame.loc[4, "on_promotion"] = 3
    frame.loc[5, "day_of_week"] = 0
    lines = _error(frame).splitlines()
    assert "3 critical expectation(s)" in lines[0]
    for label in ("(units_sold)", "(on_promotion)", "(day_of_week)"):
        assert sum(label in x for x in lines[1:]) == 1


def test_missing_column_and_empty_frame(clean):
    message = _error(clean.drop(columns=["region", "units_sold"]))
    assert 'missing columns ["region", "units_sold"]' in message
    assert "could not be evaluated" in message  # expectations on units_sold itself
    assert "expect_table_row_count_to_be_between: observed 0" in _error(clean.iloc[:0])


def test_sample_size_limits_quoted_values(clean):
    frame = clean.copy()
    frame.loc[:19, "units_sold"] = -1.0
    report = validate_frame(frame, SUITE, sample_size=2)
    (row,) = [r for r in report.failures(CRITICAL) if r["column"] == "units_sold"]
    assert row["unexpected_count"] == 20 and row["sample_values"] == [-1.0, -1.0]


def test_warnings_are_reported_but_never_raise(clean):
    frame = clean.copy()
    frame.loc[::10, "unit_price"] = frame.loc[::10, "list_price"] * 1.5  # 10 % above list price
    report = validate_frame(frame, SUITE)
    assert report.success
    assert report.failures(CRITICAL) == []
    (warn,) = report.failures(WARNING)
    assert warn["expectation"] == "expect_column_pair_values_a_to_be_greater_than_b"
    assert warn["columns"] == ["list_price", "unit_price"] and warn["why"]
    raise_for_failures(report, WHERE)
    with pytest.raises(ValueError):
        report.failures("fatal")


def test_warnings_are_mentioned_when_criticals_raise(clean):
    frame = clean.copy()
    frame.loc[::10, "unit_price"] = frame.loc[::10, "list_price"] * 1.5
    frame.loc[1, "units_sold"] = -1.0
    assert "also 1 warning(s): expect_column_pair_values_a_to_be_greater_than_b" in _error(frame)


def test_missing_suite_file_names_path(tmp_path, clean):
    path = tmp_path / "nope.json"
    with pytest.raises(SpecError, match="nope.json"):
        validate_frame(clean, path)


def test_invalid_json_suite_names_path(tmp_path, clean):
    path = tmp_path / "broken.json"
    path.write_text('{"name": "x", "expectations": [')
    with pytest.raises(SpecError, match=r"broken\.json is not valid JSON"):
        validate_frame(clean, path)


@pytest.mark.parametrize(
    ("expectation", "match"),
    [
        ({"type": "expect_column_to_exist", "kwargs": {"column": "a"}, "meta": {}}, "meta.severity"),
        (
            {"type": "expect_column_to_exist", "kwargs": {"column": "a"}, "meta": {"severity": "fatal"}},
            "fatal",
        ),
        ({"type": "expect_no_such_thing", "kwargs": {}, "meta": {"severity": "warning"}}, "not a valid GX"),
        (
            {
                "type": "expect_column_values_to_be_between",
                "kwargs": {"min_value": 0},
                "meta": {"severity": "critical"},
            },
            r"expectations\[0\] \(expect_column_values_to_be_between\) is not a valid GX expectation",
        ),
    ],
)
def test_bad_expectation_names_path(tmp_path, clean, expectation, match):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"name": "bad", "expectations": [expectation]}))
    with pytest.raises(SpecError, match=match) as exc_info:
        validate_frame(clean, path)
    assert str(path) in str(exc_info.value)
    assert isinstance(exc_info.value, PlatformError)


def test_repo_suite_contract():
    """Every expectation explains itself and the critical gate covers the agreed checks."""
    suite = load_suite(SUITE)
    for exp in suite["expectations"]:
        assert exp["meta"]["severity"] in (CRITICAL, WARNING)
        assert exp["meta"]["why"].strip()
    critical = {
        (e["type"], e["kwargs"].get("column"))
        for e in suite["expectations"]
        if e["meta"]["severity"] == CRITICAL
    }
    for needed in [
        ("expect_table_row_count_to_be_between", None),
        ("expect_table_columns_to_match_set", None),
        ("expect_compound_columns_to_be_unique", None),
        ("expect_column_values_to_be_between", "units_sold"),
        ("expect_column_values_to_be_between", "unit_price"),
        ("expect_column_values_to_be_between", "discount_pct"),
        ("expect_column_values_to_be_in_set", "on_promotion"),
        ("expect_column_values_to_be_in_set", "day_of_week"),
        ("expect_column_values_to_not_be_null", "units_sold"),
        ("expect_column_values_to_not_be_null", "unit_price"),
        ("expect_column_values_to_not_be_null", "store_id"),
    ]:
        assert needed in critical


def test_json_safe_handles_pandas_and_numpy_values():
    values = [
        np.int64(3),
        np.float64("nan"),
        np.bool_(True),
        pd.Timestamp("2024-01-02"),
        pd.NaT,
        float("inf"),
        dt.date(2024, 1, 3),
        decimal.Decimal("1.25"),
        (1, "a"),
        pd.NA,
        np.array([1, 2]),
    ]
    assert json_safe(values) == [
        3,
        None,
        True,
        "2024-01-02T00:00:00",
        None,
        None,
        "2024-01-03",
        1.25,
        [1, "a"],
        None,
        [1, 2],
    ]


def test_report_dataclass_defaults():
    report = ValidationReport(suite="s", success=True, evaluated=0, rows=0)
    assert report.to_dict()["results"] == [] and report.failures() == []
