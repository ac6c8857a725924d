"""Synthetic retail source: determinism, realism and fault injection."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from mlplatform import datagen
from mlplatform.errors import SpecError
from mlplatform.spec import SourceSpec

PARAMS = {"n_stores": 3, "n_skus": 6, "seed": 7}


@pytest.fixture(scope="module")
def two_years() -> pd.DataFrame:
    return datagen.generate_sales(date(2023, 1, 1), date(2024, 12, 31), **PARAMS)


def test_columns_dtypes_and_one_row_per_store_sku_day(two_years: pd.DataFrame) -> None:
    df = two_years
    assert list(df.columns) == list(datagen.SALES_COLUMNS)
    assert str(df["sales_date"].dtype).startswith("datetime64")
    assert df["units_sold"].dtype == "int64" and (df["units_sold"] >= 0).all()
    assert df["unit_price"].dtype == "float64" and df["list_price"].dtype == "float64"
    assert df["on_promotion"].dtype == bool and df["stockout_flag"].dtype == bool
    assert len(df) == 731 * 3 * 6
    assert not df.duplicated(["sales_date", "store_id", "sku_id"]).any()
    assert set(df["store_id"]) == {"S001", "S002", "S003"}
    assert sorted(set(df["sku_id"]))[0] == "SKU0001"
    assert (df["sales_date"] == df["sales_date"].dt.normalize()).all()


def test_rows_do_not_depend_on_the_requested_range(two_years: pd.DataFrame) -> None:
    start, end = date(2023, 12, 20), date(2024, 1, 20)
    window = two_years[two_years["sales_date"].between(pd.Timestamp(start), pd.Timestamp(end))]
    day_by_day = pd.concat(
        [datagen.generate_sales(start + timedelta(days=i), start + timedelta(days=i), **PARAMS)
         for i in range((end - start).days + 1)],
        ignore_index=True,
    )
    odd_chunks = pd.concat(list(datagen.iter_sales(start, end, chunk_days=5, **PARAMS)), ignore_index=True)
    pd.testing.assert_frame_equal(day_by_day, window.reset_index(drop=True))
    pd.testing.assert_frame_equal(odd_chunks, window.reset_index(drop=True))


def test_seed_changes_the_data() -> None:
    a = datagen.generate_sales(date(2024, 1, 1), date(2024, 1, 31), **PARAMS)
    b = datagen.generate_sales(date(2024, 1, 1), date(2024, 1, 31), **{**PARAMS, "seed": 8})
    assert not a["units_sold"].equals(b["units_sold"])


def test_weekly_and_yearly_seasonality_visible(two_years: pd.DataFrame) -> None:
    df = two_years[~two_years["on_promotion"]]
    by_dow = df.groupby(df["sales_date"].dt.dayofweek)["units_sold"].mean()
    assert by_dow[5] > 1.15 * by_dow[1]  # Saturday vs Tuesday
    products = datagen.generate_products(PARAMS["n_skus"], PARAMS["seed"])
    beverages = set(products.loc[products["category"] == "beverages", "sku_id"])
    bev = df[df["sku_id"].isin(beverages)]
    by_month = bev.groupby(bev["sales_date"].dt.month)["units_sold"].mean()
    assert by_month[[6, 7, 8]].mean() > 1.2 * by_month[[12, 1, 2]].mean()


def test_promotions_discount_price_and_lift_demand(two_years: pd.DataFrame) -> None:
    df = two_years
    promo = df[df["on_promotion"]]
    assert 0.02 < df["on_promotion"].mean() < 0.2
    assert (promo["unit_price"] < promo["list_price"]).all()
    assert (df.loc[~df["on_promotion"], "unit_price"] == df.loc[~df["on_promotion"], "list_price"]).all()
    lift = df.groupby(["store_id", "sku_id", "on_promotion"])["units_sold"].mean().unstack()
    assert (lift[True] > lift[False]).mean() > 0.8


def test_holidays_come_from_the_holidays_package_and_raise_demand(two_years: pd.DataFrame) -> None:
    from mlplatform.calendars import holidays_between

    # the same function and calendar the land stage writes to raw.holidays for dbt
    us = holidays_between("US", None, 2023, 2024)
    assert datagen.load_holidays(2023, 2024) == frozenset(d for d, _ in us)
    assert {date(2024, 7, 4), date(2024, 11, 28), date(2024, 12, 25)} <= datagen.load_holidays(2024, 2024)
    assert date(1955, 7, 4) in datagen.load_holidays(1955, 1955)  # any year, not only 2020 onwards
    df = two_years[~two_years["on_promotion"]]
    is_holiday = df["sales_date"].dt.date.isin(datagen.load_holidays(2023, 2024))
    assert df.loc[is_holiday, "units_sold"].mean() > 1.15 * df.loc[~is_holiday, "units_sold"].mean()


def test_zero_days_and_censored_stockouts_present(two_years: pd.DataFrame) -> None:
    df = two_years
    assert 0.02 < (df["units_sold"] == 0).mean() < 0.6
    assert 0.005 < df["stockout_flag"].mean() < 0.08
    out = df.groupby(["store_id", "sku_id", "stockout_flag"])["units_sold"].mean().unstack()
    assert (out[True] < out[False]).mean() > 0.8
    assert df["units_sold"].var() > df["units_sold"].mean()  # over-dispersed counts


def test_drift_changes_demand_and_prices_only_from_drift_start() -> None:
    start, drift_at, end = date(2024, 1, 1), date(2024, 3, 1), date(2024, 4, 30)
    base = datagen.generate_sales(start, end, **PARAMS)
    drifted = datagen.generate_sales(start, end, **PARAMS, drift_start=drift_at, drift_factor=2.0)
    before = base["sales_date"] < pd.Timestamp(drift_at)
    pd.testing.assert_frame_equal(base[before], drifted[before])
    assert drifted.loc[~before, "units_sold"].mean() > 1.6 * base.loc[~before, "units_sold"].mean()
    assert drifted.loc[~before, "list_price"].mean() > 1.3 * base.loc[~before, "list_price"].mean()
    iso = datagen.generate_sales(start, end, **PARAMS, drift_start="2024-03-01", drift_factor=2.0)
    pd.testing.assert_frame_equal(iso, drifted)


def test_dimensions() -> None:
    stores = datagen.generate_stores(12, seed=1)
    assert list(stores.columns) == ["store_id", "region", "store_format", "opened_on"]
    assert stores["store_id"].tolist()[:2] == ["S001", "S002"] and stores["store_id"].is_unique
    assert set(stores["store_format"]) <= set(datagen.STORE_FORMATS)
    assert all(isinstance(d, date) and d < date(2020, 1, 1) for d in stores["opened_on"])
    products = datagen.generate_products(12, seed=1)
    assert list(products.columns) == ["sku_id", "category", "list_price"]
    assert products["sku_id"].iloc[-1] == "SKU0012" and (products["list_price"] > 0).all()
    assert set(products["category"]) == {c.name for c in datagen.CATEGORIES}
    pd.testing.assert_frame_equal(stores, datagen.generate_stores(12, seed=1))


def test_unknown_generator_params_are_rejected() -> None:
    with pytest.raises(TypeError, match="n_store"):
        datagen.generate_sales(date(2024, 1, 1), date(2024, 1, 2), n_store=2, n_skus=2, seed=1,
                               n_stores=1)
    src = SourceSpec(generator="retail_sales", history_start=date(2024, 1, 1),
                     params={**PARAMS, "n_regions": 3})
    with pytest.raises(SpecError, match="n_regions"):
        datagen.source_tables(src, date(2024, 1, 1), date(2024, 1, 2))
    with pytest.raises(SpecError, match="seed"):
        datagen.source_params(SourceSpec(generator="retail_sales", history_start=date(2024, 1, 1),
                                         params={"n_stores": 1, "n_skus": 1}))
    with pytest.raises(SpecError, match="drift_start"):
        datagen.source_params(SourceSpec(generator="retail_sales", history_start=date(2024, 1, 1),
                                         params={**PARAMS, "drift_start": "March"}))


def test_source_tables_from_spec_params() -> None:
    src = SourceSpec(generator="retail_sales", history_start=date(2024, 1, 1),
                     params={**PARAMS, "drift_start": "2024-01-03", "drift_factor": 1.5})
    tables = datagen.source_tables(src, date(2024, 1, 1), date(2024, 1, 4))
    assert set(tables) == {"retail_sales", "stores", "products"}
    assert len(tables["retail_sales"]) == 4 * 3 * 6
    assert len(tables["stores"]) == 3 and len(tables["products"]) == 6
    empty = datagen.source_tables(src, date(2024, 1, 4), date(2024, 1, 1))["retail_sales"]
    assert empty.empty and list(empty.columns) == list(datagen.SALES_COLUMNS)


@pytest.mark.parametrize("fault", datagen.FAULTS)
def test_inject_faults_returns_a_corrupted_copy(fault: str) -> None:
    sales = datagen.generate_sales(date(2024, 1, 1), date(2024, 1, 10), **PARAMS)
    original = sales.copy()
    bad = datagen.inject_faults(sales, fault, rate=0.05, seed=3)
    pd.testing.assert_frame_equal(sales, original)
    n = round(0.05 * len(sales))
    if fault == "negative_units":
        assert (bad["units_sold"] < 0).sum() == n
    elif fault == "null_price":
        assert bad["unit_price"].isna().sum() == n
    elif fault == "duplicate_rows":
        assert len(bad) == len(sales) + n
        assert bad.duplicated(["sales_date", "store_id", "sku_id"]).sum() == n
    else:
        assert (bad["unit_price"] > 5 * bad["list_price"]).sum() == n
    again = datagen.inject_faults(sales, fault, rate=0.05, seed=3)
    pd.testing.assert_frame_equal(bad, again)


def test_inject_faults_rejects_unknown_fault_and_bad_rate() -> None:
    sales = datagen.generate_sales(date(2024, 1, 1), date(2024, 1, 1), **PARAMS)
    with pytest.raises(ValueError, match="negative_units, null_price, duplicate_rows, price_spike"):
        datagen.inject_faults(sales, "gremlins", rate=0.1, seed=0)
    with pytest.raises(ValueError, match="rate"):
        datagen.inject_faults(sales, "null_price", rate=0.0, seed=0)


def test_chunked_iterator_bounds_memory() -> None:
    chunks = list(datagen.iter_sales(date(2024, 1, 1), date(2024, 3, 31), chunk_days=30, **PARAMS))
    assert [c["sales_date"].nunique() for c in chunks] == [30, 30, 30, 1]
    assert np.all(np.diff(pd.concat(chunks)["sales_date"].to_numpy()).astype("int64") >= 0)
