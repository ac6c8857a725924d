"""The dbt project is portable: built on Postgres, its marts equal the marts built on DuckDB.

Raw data of every use case is landed by each profile the way the pipeline lands it (mlplatform.warehouse):
the embedded profile into a DuckDB file, the production profile into a fresh Postgres database (never a
shared one). Each use case is built on both targets by mlplatform.transform (its selection, run_date and
horizon_days) as of a run date earlier than the last landed day, and the marts must hold the same rows
and values.
"""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from mlplatform import transform, warehouse
from mlplatform.settings import Settings, load_settings
from mlplatform.spec import UseCaseSpec, get_spec
from postgres_support import fresh_database, warehouse_env

pytestmark = pytest.mark.integration

HISTORY_START = date(2024, 3, 4)  # a Monday; > 364 days before RUN_DATE, so lag_364 has values
RUN_DATE = date(2025, 3, 31)  # a quarter end: month- and quarter-end windows are exercised
LANDED_THROUGH = RUN_DATE + timedelta(days=15)  # raw data past the run date must stay out on both targets
PARAMS = {
    "demand_forecast": {"n_stores": 2, "n_skus": 3, "seed": 7},
    "revenue_forecast": {"n_business_units": 2, "n_regions": 2, "seed": 7},
    "credit_risk": {"n_customers": 400, "seed": 7},
}
OK_STATUSES = {"success", "pass"}
RTOL = 1e-9
ATOL = 1e-9

def _spec(name: str) -> UseCaseSpec:
    base = get_spec(name)
    source = base.source.model_copy(update={"history_start": HISTORY_START, "params": PARAMS[name]})
    return base.model_copy(update={"source": source})


SPECS = {name: _spec(name) for name in PARAMS}


def _build(spec: UseCaseSpec, settings: Settings) -> dict:
    """The use case's ``dbt build`` as of RUN_DATE, exactly as the pipeline runs it (TransformError on failure)."""
    return transform.run_dbt_build(spec, RUN_DATE, settings)


@pytest.fixture(scope="module")
def warehouses(tmp_path_factory: pytest.TempPathFactory):
    """Raw data landed by each profile into its own warehouse, then every use case built on both."""
    work = tmp_path_factory.mktemp("dbt_postgres")
    duck = load_settings({"MLPLATFORM_DATA_DIR": str(work / "duck")})
    with fresh_database("mlp_dbt_pg") as dbname:
        pg = load_settings({"MLPLATFORM_PROFILE": "production", "MLPLATFORM_DATA_DIR": str(work / "pg"),
                            **warehouse_env(dbname)})
        profiles = (("postgres", pg), ("duckdb", duck))
        landed = {(target, name): warehouse.land_source(spec, LANDED_THROUGH, settings)
                  for name, spec in SPECS.items() for target, settings in profiles}
        builds = {(target, name): _build(spec, settings)
                  for name, spec in SPECS.items() for target, settings in profiles}
        yield {"duckdb": duck, "postgres": pg, "landed": landed, "builds": builds}


def _normalised(frame: pd.DataFrame, like: pd.DataFrame) -> pd.DataFrame:
    """``frame``'s columns converted to the kind of ``like``'s: datetimes, floats (nulls as NaN) or text."""
    out = {}
    for name in like.columns:
        kind, column = like[name], frame[name]
        if pd.api.types.is_datetime64_any_dtype(kind):
            out[name] = pd.to_datetime(column).astype("datetime64[ns]")
        elif pd.api.types.is_bool_dtype(kind) or pd.api.types.is_numeric_dtype(kind):
            out[name] = pd.to_numeric(column.astype(object).where(column.notna(), np.nan)).astype(float)
        else:
            out[name] = column.astype(object).where(column.notna(), None)
    return pd.DataFrame(out)


def _assert_same_mart(pg: pd.DataFrame, duck: pd.DataFrame, keys: list[str], mart: str) -> None:
    assert list(pg.columns) == list(duck.columns), f"{mart}: columns differ"
    assert len(pg) == len(duck) > 0, f"{mart}: {len(pg)} rows on Postgres, {len(duck)} on DuckDB"
    pg, duck = _normalised(pg, duck), _normalised(duck, duck)
    pg = pg.sort_values(keys).reset_index(drop=True)
    duck = duck.sort_values(keys).reset_index(drop=True)
    assert not duck.duplicated(keys).any(), f"{mart}: keys {keys} not unique"
    pd.testing.assert_frame_equal(pg[keys], duck[keys], obj=f"{mart} keys")
    for name in duck.columns:
        a, b = pg[name], duck[name]
        if b.dtype.kind == "f":
            np.testing.assert_allclose(a.to_numpy(), b.to_numpy(), rtol=RTOL, atol=ATOL, equal_nan=True,
                                       err_msg=f"{mart}.{name}")
        else:
            assert a.equals(b), f"{mart}.{name}: values differ between Postgres and DuckDB"


MARTS = [(name, spec.transform.features_model, [*spec.features.series_keys, spec.features.time_column])
         for name, spec in SPECS.items()]
MARTS += [(name, spec.transform.calendar_model, ["calendar_date"])
          for name, spec in SPECS.items() if spec.transform.calendar_model]


def test_both_profiles_land_the_same_raw_rows(warehouses: dict) -> None:
    for name in SPECS:
        on_pg, on_duck = warehouses["landed"][("postgres", name)], warehouses["landed"][("duckdb", name)]
        assert on_pg == on_duck and on_pg["rows_landed"] > 0, name
    for table in ("retail_sales", "ledger_entries", "credit_reviews", "default_events", "customers"):
        pg = warehouse.read_relation(warehouses["postgres"], f"raw.{table}")
        duck = warehouse.read_relation(warehouses["duckdb"], f"raw.{table}")
        assert len(pg) == len(duck) > 0, f"raw.{table}: {len(pg)} rows on Postgres, {len(duck)} on DuckDB"


@pytest.mark.parametrize(("use_case", "mart", "keys"), MARTS, ids=[f"{m[0]}:{m[1]}" for m in MARTS])
def test_mart_is_identical_on_postgres_and_duckdb(warehouses: dict, use_case: str, mart: str,
                                                  keys: list[str]) -> None:
    relation = warehouse.relation_name(mart)
    pg = warehouse.read_relation(warehouses["postgres"], relation)
    duck = warehouse.read_relation(warehouses["duckdb"], relation)
    _assert_same_mart(pg, duck, keys, mart)
    if mart == SPECS[use_case].transform.features_model:  # as of RUN_DATE although raw data goes further
        assert pd.to_datetime(duck[SPECS[use_case].features.time_column]).max() == pd.Timestamp(RUN_DATE)


def test_every_node_ran_on_both_targets(warehouses: dict) -> None:
    builds = warehouses["builds"]
    for name in SPECS:
        pg, duck = builds[("postgres", name)], builds[("duckdb", name)]
        assert pg["nodes"] == duck["nodes"], f"{name}: {pg} vs {duck}"
        assert pg["target"] == "postgres" and duck["target"] == "duckdb"
        assert pg["nodes"].get("success", 0) >= 3 and pg["nodes"].get("pass", 0) > 0
