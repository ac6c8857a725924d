"""Thin DuckDB I/O layer of the embedded profile: land raw source data, read dbt-built relations.

Schema naming (what the dbt project in ``dbt_project/`` builds):

* ``raw.<table>``: raw source data landed here (``raw.retail_sales``, ``raw.stores``, ``raw.products``);
  dbt reads it as source ``raw``. Raw data is append-only: a landed day is never rewritten.
* ``analytics.<model>``: every dbt model and seed (staging and intermediate as views, marts as tables),
  e.g. ``analytics.fct_demand_features``; :func:`relation_name` maps a model name to it.

duckdb and pandas are imported inside functions so importing this module (DAG parsing) stays cheap.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlplatform import constants as C
from mlplatform.errors import PlatformError

if TYPE_CHECKING:
    import duckdb
    import pandas as pd

    from mlplatform.settings import Settings
    from mlplatform.spec import UseCaseSpec

# Target schema of the dbt project (profiles.yml `schema:`); every model and seed is built in it.
DBT_SCHEMA = "analytics"
FACT_TABLE = f"{C.RAW_SCHEMA}.retail_sales"
LAND_CHUNK_DAYS = 90
LOCK_ATTEMPTS = 60
LOCK_WAIT_S = 0.5

_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_RELATION = re.compile(rf"^{_IDENT}(\.{_IDENT}){{0,2}}$")

_RAW_DDL = {
    "retail_sales": """
        create table if not exists raw.retail_sales (
            sales_date date not null,
            store_id varchar,
            sku_id varchar,
            units_sold bigint,
            unit_price double,
            list_price double,
            on_promotion boolean,
            stockout_flag boolean
        )""",
    "stores": "create table if not exists raw.stores "
              "(store_id varchar, region varchar, store_format varchar, opened_on date)",
    "products": "create table if not exists raw.products (sku_id varchar, category varchar, list_price double)",
}


# ------------------------------------------------------------------------------------------ connection


def _is_lock_error(exc: Exception) -> bool:
    return "lock" in str(exc).lower()


@contextmanager
def connect(path: Path, *, read_only: bool = False, attempts: int | None = None,
            wait_s: float | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
    """A DuckDB connection that waits briefly while another process (e.g. a dbt build) holds the file.

    Why: DuckDB allows one writer process per file; Airflow tasks of different use cases can overlap,
    so a short retry turns a race into a wait, and a persistent lock into an error naming the file.
    """
    import duckdb

    path = Path(path)
    if read_only and not path.is_file():
        raise PlatformError(f"DuckDB warehouse {path} does not exist: land the source and run dbt first")
    attempts = attempts or LOCK_ATTEMPTS
    wait_s = LOCK_WAIT_S if wait_s is None else wait_s
    con, last = None, None
    for attempt in range(attempts):
        try:
            con = duckdb.connect(str(path), read_only=read_only)
            break
        except (duckdb.IOException, duckdb.ConnectionException) as exc:
            if not _is_lock_error(exc):
                raise PlatformError(f"cannot open DuckDB warehouse {path}: {exc}") from exc
            last = exc
            if attempt + 1 < attempts:
                time.sleep(wait_s)
    if con is None:
        raise PlatformError(
            f"DuckDB warehouse {path} is locked by another process (gave up after {attempts} attempts, "
            f"{attempts * wait_s:.1f} s); wait for the other task to finish or stop it. Cause: {last}"
        )
    try:
        yield con
    finally:
        con.close()


# --------------------------------------------------------------------------------------------- landing


def _ensure_raw_tables(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(f"create schema if not exists {C.RAW_SCHEMA}")
    for ddl in _RAW_DDL.values():
        con.execute(ddl)


def _replace_dimensions(con: duckdb.DuckDBPyConnection, tables: dict[str, pd.DataFrame]) -> None:
    """Dimensions are small and deterministic: replace them wholesale (idempotent)."""
    for name, frame in tables.items():
        view = f"_land_{name}"
        con.register(view, frame)
        con.execute(f"delete from {C.RAW_SCHEMA}.{name}")
        con.execute(f"insert into {C.RAW_SCHEMA}.{name} by name select * from {view}")
        con.unregister(view)


def _missing_days(con: duckdb.DuckDBPyConnection, start: date, end: date) -> list[date]:
    """Days in [start, end] without any row in the fact table (landed days are never touched again)."""
    if end < start:
        return []
    landed = {
        row[0] for row in con.execute(
            f"select distinct sales_date from {FACT_TABLE} where sales_date between ? and ?", [start, end]
        ).fetchall()
    }
    return [d for d in (start + timedelta(days=i) for i in range((end - start).days + 1)) if d not in landed]


def _runs(days: list[date], max_len: int) -> list[tuple[date, date]]:
    """Contiguous runs of ``days`` (sorted), each at most ``max_len`` days: the insert chunks."""
    runs: list[tuple[date, date]] = []
    for day in days:
        if runs and day - runs[-1][1] == timedelta(days=1) and (day - runs[-1][0]).days < max_len:
            runs[-1] = (runs[-1][0], day)
        else:
            runs.append((day, day))
    return runs


def _insert_facts(con: duckdb.DuckDBPyConnection, frame: pd.DataFrame) -> int:
    con.register("_land_facts", frame)
    con.execute(
        f"insert into {FACT_TABLE} select cast(sales_date as date), store_id, sku_id, units_sold, "
        "unit_price, list_price, on_promotion, stockout_flag from _land_facts"
    )
    con.unregister("_land_facts")
    return len(frame)


def land_source(spec: UseCaseSpec, run_date: date, settings: Settings) -> dict[str, Any]:
    """Make raw history complete from ``spec.source.history_start`` through ``run_date``.

    Only missing days are generated and inserted, all in one transaction, so reruns and backfills are
    cheap and raw data already landed stays byte-for-byte intact. A run for an earlier date than
    already landed lands nothing (dbt applies the as-of filter on run_date).
    """
    from mlplatform import datagen

    settings.duckdb_path.parent.mkdir(parents=True, exist_ok=True)
    rows = 0
    with connect(settings.duckdb_path) as con:
        con.begin()
        try:
            _ensure_raw_tables(con)
            _replace_dimensions(con, datagen.dimension_tables(spec.source))
            missing = _missing_days(con, spec.source.history_start, run_date)
            for lo, hi in _runs(missing, LAND_CHUNK_DAYS):
                for frame in datagen.fact_chunks(spec.source, lo, hi, LAND_CHUNK_DAYS):
                    rows += _insert_facts(con, frame)
            con.commit()
        except BaseException:
            con.rollback()
            raise
    return {"rows_landed": rows, "days_landed": len(missing),
            "first_missing": missing[0].isoformat() if missing else None,
            "last_day": run_date.isoformat(), "table": FACT_TABLE}


# --------------------------------------------------------------------------------------------- reading


def relation_name(model: str) -> str:
    """Schema-qualified relation dbt builds for ``model`` (all models live in :data:`DBT_SCHEMA`)."""
    if not re.fullmatch(_IDENT, model):
        raise PlatformError(f"not a dbt model name: {model!r}")
    return f"{DBT_SCHEMA}.{model}"


def read_relation(settings: Settings, relation: str, where: str | None = None,
                  params: list[Any] | None = None) -> pd.DataFrame:
    """Read a relation through a read-only connection (never blocks a writer longer than the read).

    ``where`` is trusted SQL written by platform code; pass values through ``params`` (``?``).
    """
    if not _RELATION.match(relation):
        raise PlatformError(f"not a relation name: {relation!r} (expected schema.table)")
    sql = f"select * from {relation}" + (f" where {where}" if where else "")
    with connect(settings.duckdb_path, read_only=True) as con:
        return con.execute(sql, params or []).df()
