"""DuckDB landing layer: incremental, idempotent, raw data never rewritten; clear lock errors."""

from __future__ import annotations

import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pytest

from mlplatform import warehouse
from mlplatform.errors import PlatformError
from mlplatform.settings import Settings, load_settings
from mlplatform.spec import SourceSpec, UseCaseSpec, get_spec

HISTORY_START = date(2024, 1, 1)


@pytest.fixture(scope="module")
def spec() -> UseCaseSpec:
    base = get_spec("demand_forecast")
    source = SourceSpec(generator="retail_sales", history_start=HISTORY_START,
                        params={"n_stores": 2, "n_skus": 3, "seed": 5})
    return base.model_copy(update={"source": source})


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings({"MLPLATFORM_DATA_DIR": str(tmp_path / "data")})


def _raw_fingerprint(settings: Settings) -> tuple:
    with duckdb.connect(str(settings.duckdb_path), read_only=True) as con:
        return con.execute(
            "select count(*), sum(units_sold), sum(hash(sales_date, store_id, sku_id, units_sold, unit_price)) "
            "from raw.retail_sales"
        ).fetchone()


def test_land_source_lands_history_once(spec: UseCaseSpec, settings: Settings) -> None:
    run_date = HISTORY_START + timedelta(days=29)
    first = warehouse.land_source(spec, run_date, settings)
    assert first == {"rows_landed": 30 * 6, "days_landed": 30, "first_missing": "2024-01-01",
                     "last_day": run_date.isoformat(), "table": "raw.retail_sales",
                     "tables": ["raw.retail_sales"], "holiday_calendar": "US", "holiday_rows": 11}
    assert settings.duckdb_path.is_file()
    before = _raw_fingerprint(settings)
    again = warehouse.land_source(spec, run_date, settings)
    assert again["rows_landed"] == 0 and again["days_landed"] == 0 and again["first_missing"] is None
    assert _raw_fingerprint(settings) == before
    earlier = warehouse.land_source(spec, run_date - timedelta(days=10), settings)
    assert earlier["rows_landed"] == 0
    assert _raw_fingerprint(settings) == before


def test_land_source_appends_only_missing_days(spec: UseCaseSpec, settings: Settings) -> None:
    warehouse.land_source(spec, date(2024, 1, 10), settings)
    with duckdb.connect(str(settings.duckdb_path)) as con:  # a tampered landed day stays as it is
        con.execute("update raw.retail_sales set units_sold = 999 where sales_date = '2024-01-05'")
        con.execute("delete from raw.retail_sales where sales_date = '2024-01-07'")  # a hole is refilled
    out = warehouse.land_source(spec, date(2024, 1, 12), settings)
    assert out["days_landed"] == 3 and out["first_missing"] == "2024-01-07" and out["rows_landed"] == 18
    raw = warehouse.read_relation(settings, "raw.retail_sales")
    assert len(raw) == 12 * 6 and not raw.duplicated(["sales_date", "store_id", "sku_id"]).any()
    assert (raw.loc[raw["sales_date"] == "2024-01-05", "units_sold"] == 999).all()


def test_dimensions_are_replaced_not_duplicated(spec: UseCaseSpec, settings: Settings) -> None:
    warehouse.land_source(spec, date(2024, 1, 3), settings)
    warehouse.land_source(spec, date(2024, 1, 4), settings)
    stores = warehouse.read_relation(settings, "raw.stores")
    products = warehouse.read_relation(settings, "raw.products")
    assert stores["store_id"].tolist() == ["S001", "S002"]
    assert products["sku_id"].tolist() == ["SKU0001", "SKU0002", "SKU0003"]


def test_read_relation_with_params_and_relation_name(spec: UseCaseSpec, settings: Settings) -> None:
    warehouse.land_source(spec, date(2024, 1, 5), settings)
    rows = warehouse.read_relation(settings, "raw.retail_sales", "sales_date > ? and store_id = ?",
                                   [date(2024, 1, 3), "S002"])
    assert len(rows) == 2 * 3 and set(rows["store_id"]) == {"S002"}
    assert warehouse.relation_name("fct_demand_features") == "analytics.fct_demand_features"
    with pytest.raises(PlatformError):
        warehouse.relation_name("fct; drop table x")
    with pytest.raises(PlatformError, match="not a relation"):
        warehouse.read_relation(settings, "raw.retail_sales; drop table raw.stores")


def test_read_relation_on_missing_warehouse_is_clear(settings: Settings) -> None:
    with pytest.raises(PlatformError, match="does not exist"):
        warehouse.read_relation(settings, "raw.retail_sales")


def test_locked_file_raises_platform_error_naming_the_file(settings: Settings) -> None:
    settings.duckdb_path.parent.mkdir(parents=True)
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('ready', flush=True); time.sleep(60)",
         str(settings.duckdb_path)],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "ready"
        with pytest.raises(PlatformError, match="locked by another process") as err:
            with warehouse.connect(settings.duckdb_path, attempts=2, wait_s=0.05):
                pass
        assert str(settings.duckdb_path) in str(err.value)
    finally:
        holder.kill()
        holder.wait()


def test_specs_sharing_a_generator_must_share_its_params(spec: UseCaseSpec, settings: Settings) -> None:
    from mlplatform.errors import DataQualityError

    warehouse.land_source(spec, date(2024, 1, 5), settings)
    before = _raw_fingerprint(settings)
    other = spec.model_copy(update={"source": spec.source.model_copy(update={"params": {
        "n_stores": 2, "n_skus": 3, "seed": 6}})})
    with pytest.raises(DataQualityError, match=r"differ from .*\"seed\": 5.*share its raw tables"):
        warehouse.land_source(other, date(2024, 1, 8), settings)
    assert _raw_fingerprint(settings) == before  # nothing landed


def test_a_source_with_several_tables_lands_each_day_once(settings: Settings) -> None:
    """The ledger source (fact table + dimension) lands through the same idempotent path as retail."""
    revenue = get_spec("revenue_forecast")
    source = revenue.source.model_copy(update={"history_start": date(2024, 1, 1)})
    spec = revenue.model_copy(update={"source": source})
    first = warehouse.land_source(spec, date(2024, 1, 14), settings)
    again = warehouse.land_source(spec, date(2024, 1, 14), settings)
    assert first["days_landed"] == 14 and first["rows_landed"] > 0
    assert again["days_landed"] == 0 and again["rows_landed"] == 0


def _external_spec(table: str = "raw.pos_sales") -> UseCaseSpec:
    base = get_spec("demand_forecast")
    source = SourceSpec(type="warehouse", table=table, date_column="sales_date", history_start=HISTORY_START)
    return base.model_copy(update={"source": source})


def test_a_warehouse_source_is_checked_for_readiness_not_landed(settings: Settings) -> None:
    settings.duckdb_path.parent.mkdir(parents=True)
    with duckdb.connect(str(settings.duckdb_path)) as con:
        con.execute("create schema raw; create table raw.pos_sales (sales_date date, units bigint)")
        con.execute("insert into raw.pos_sales values ('2024-01-01', 3), ('2024-01-02', 4), ('2024-01-03', 5)")
    out = warehouse.land_source(_external_spec(), date(2024, 1, 2), settings)
    assert out == {"rows_landed": 0, "days_landed": 0, "first_missing": None, "last_day": "2024-01-02",
                   "table": "raw.pos_sales", "rows_as_of": 2, "external": True, "ready_through": "2024-01-02"}
    from mlplatform.errors import DataQualityError

    with pytest.raises(DataQualityError, match=r"raw.pos_sales is not ready for 2024-01-05: latest sales_date is 2024-01-03"):
        warehouse.land_source(_external_spec(), date(2024, 1, 5), settings)
    with pytest.raises(DataQualityError, match=r"source table raw.nope does not exist"):
        warehouse.land_source(_external_spec("raw.nope"), date(2024, 1, 2), settings)


def _monthly_external_spec() -> UseCaseSpec:
    from forecast_fixtures import make_spec

    return make_spec({"frequency": "monthly", "backtest": {"season_length": 12},
                      "source": {"type": "warehouse", "generator": None, "params": {}, "table": "raw.monthly_sales",
                                 "date_column": "month_end", "history_start": "2023-01-31"}})


def test_a_monthly_source_is_ready_mid_month_once_it_holds_the_last_month_end(settings: Settings) -> None:
    """A monthly use case run on the 14th needs the previous month end, not data dated the 14th."""
    from mlplatform.errors import DataQualityError

    settings.duckdb_path.parent.mkdir(parents=True)
    with duckdb.connect(str(settings.duckdb_path)) as con:
        con.execute("create schema raw; create table raw.monthly_sales (month_end date, sales double)")
        con.execute("insert into raw.monthly_sales values ('2025-01-31', 3), ('2025-02-28', 4), ('2025-03-31', 5)")
    spec = _monthly_external_spec()
    out = warehouse.land_source(spec, date(2025, 3, 14), settings)
    assert out["ready_through"] == "2025-02-28" and out["rows_as_of"] == 2
    assert warehouse.land_source(spec, date(2025, 3, 31), settings)["ready_through"] == "2025-03-31"
    with pytest.raises(DataQualityError, match=r"not ready for 2025-05-02: latest month_end is 2025-03-31, it must "
                                               r"reach 2025-04-30 \(the latest monthly period end on or before"):
        warehouse.land_source(spec, date(2025, 5, 2), settings)


def test_holidays_land_for_every_needed_year_idempotently_beside_other_calendars(settings: Settings) -> None:
    from mlplatform.pipeline import land_raw

    spec = _monthly_external_spec()
    settings.duckdb_path.parent.mkdir(parents=True)
    with duckdb.connect(str(settings.duckdb_path)) as con:
        con.execute("create schema raw; create table raw.monthly_sales (month_end date, sales double)")
        con.execute("insert into raw.monthly_sales values ('2025-02-28', 4)")
    gb = spec.model_copy(update={"holidays": spec.holidays.model_copy(update={"country": "GB"})})
    warehouse.land_holidays(gb, date(2025, 3, 14), settings)
    first = land_raw(spec, date(2025, 3, 14), settings)  # a warehouse source: readiness, then the holidays
    again = land_raw(spec, date(2025, 3, 14), settings)
    assert first["ready_through"] == "2025-02-28" and first["holiday_calendar"] == "US"
    # history 2023 through the horizon's end (14 months ahead of 2025-03-14: 2026)
    assert first["holiday_years"] == [2023, 2026] and first == again
    with duckdb.connect(str(settings.duckdb_path), read_only=True) as con:
        counts = dict(con.execute("select holiday_calendar, count(*) from raw.holidays group by 1").fetchall())
        dupes = con.execute("select count(*) from (select holiday_calendar, holiday_date from raw.holidays "
                            "group by 1, 2 having count(*) > 1)").fetchone()[0]
    from mlplatform.calendars import holidays_between

    assert counts["US"] == first["holiday_rows"] == len(holidays_between("US", None, 2023, 2026))
    assert counts["GB"] > 0 and dupes == 0
