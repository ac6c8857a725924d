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
LANDED_TABLE = f"{C.RAW_SCHEMA}._landed_days"
LANDED_DDL = f"create table if not exists {LANDED_TABLE} (source varchar not null, day date not null, rows bigint not null)"
PARAMS_TABLE = f"{C.RAW_SCHEMA}._source_params"
PARAMS_DDL = f"create table if not exists {PARAMS_TABLE} (source varchar primary key, params varchar not null)"
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
    con.execute(LANDED_DDL)
    con.execute(PARAMS_DDL)
    for ddl in _RAW_DDL.values():
        con.execute(ddl)


def _table_exists(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    return bool(con.execute(
        "select count(*) from information_schema.tables where table_schema = ? and table_name = ?",
        [C.RAW_SCHEMA, table]).fetchone()[0])


def _create_like(con: duckdb.DuckDBPyConnection, table: str, view: str) -> None:
    """Tables of a source without a declared DDL take the column types of their first landed rows."""
    if not _table_exists(con, table):
        con.execute(f"create table {C.RAW_SCHEMA}.{table} as select * from {view} where false")


def _replace_dimensions(con: duckdb.DuckDBPyConnection, tables: dict[str, pd.DataFrame]) -> None:
    """Dimensions are small and deterministic: replace them wholesale (idempotent)."""
    for name, frame in tables.items():
        view = f"_land_{name}"
        con.register(view, frame)
        _create_like(con, name, view)
        con.execute(f"delete from {C.RAW_SCHEMA}.{name}")
        con.execute(f"insert into {C.RAW_SCHEMA}.{name} by name select * from {view}")
        con.unregister(view)


def _check_params(con: duckdb.DuckDBPyConnection, spec: UseCaseSpec) -> None:
    """A generator's raw tables are shared by every spec naming it, so all must use the same params.

    Landing days with other params into the same tables would mix two datasets silently; refusing names
    both parameter sets and the way out.
    """
    import json

    params = json.dumps(spec.source.params, sort_keys=True, default=str)
    row = con.execute(f"select params from {PARAMS_TABLE} where source = ?", [spec.source.generator]).fetchone()
    if row is None:
        con.execute(f"insert into {PARAMS_TABLE} values (?, ?)", [spec.source.generator, params])
    elif row[0] != params:
        from mlplatform.errors import DataQualityError

        raise DataQualityError(
            f"{spec.name}: source.params {params} differ from {row[0]}, with which generator "
            f"{spec.source.generator!r} already landed raw data in this warehouse; specs sharing a generator "
            "share its raw tables, so use the same params (or a separate warehouse)")


def _landed_days(con: duckdb.DuckDBPyConnection, source: str, table: str, date_column: str,
                 start: date, end: date) -> set[date]:
    """Days already landed: those with rows in the primary table, plus days recorded as landed empty.

    Recording empty days matters for sparse sources (a ledger has no postings on Sundays): such a day is
    landed once, not regenerated on every run. A day that had rows and lost them (deleted by an
    operator to force a reload) counts as missing and is landed again.
    """
    days = {row[0] for row in con.execute(
        f"select day from {LANDED_TABLE} where source = ? and rows = 0 and day between ? and ?",
        [source, start, end]).fetchall()}
    if _table_exists(con, table):
        days |= {row[0] for row in con.execute(
            f"select distinct cast({date_column} as date) from {C.RAW_SCHEMA}.{table} "
            f"where {date_column} between ? and ?", [start, end]).fetchall()}
    return days


def _missing_days(landed: set[date], start: date, end: date) -> list[date]:
    """Days in [start, end] not landed yet (landed days are never touched again)."""
    if end < start:
        return []
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


def _insert_facts(con: duckdb.DuckDBPyConnection, table: str, frame: pd.DataFrame) -> int:
    if frame.empty:
        return 0
    con.register("_land_facts", frame)
    _create_like(con, table, "_land_facts")
    con.execute(f"insert into {C.RAW_SCHEMA}.{table} by name select * from _land_facts")
    con.unregister("_land_facts")
    return len(frame)


def _record_landed(con: duckdb.DuckDBPyConnection, source: str, table: str, date_column: str,
                   lo: date, hi: date) -> None:
    """Row counts per landed day of the primary table (0 marks a day that is legitimately empty)."""
    con.execute(f"delete from {LANDED_TABLE} where source = ? and day between ? and ?", [source, lo, hi])
    counts = (f"select cast({date_column} as date) as day, count(*) as n from {C.RAW_SCHEMA}.{table} "
              f"where {date_column} between ? and ? group by 1") if _table_exists(con, table) else \
        "select null::date as day, 0 as n where false"
    params = [lo, hi] if _table_exists(con, table) else []
    con.execute(f"insert into {LANDED_TABLE} select ?, cast(d as date), coalesce(c.n, 0) from "
                "generate_series(cast(? as date), cast(? as date), interval 1 day) t(d) "
                f"left join ({counts}) c on c.day = cast(t.d as date)", [source, lo, hi, *params])


def land_source(spec: UseCaseSpec, run_date: date, settings: Settings) -> dict[str, Any]:
    """Make raw history complete from ``spec.source.history_start`` through ``run_date``.

    Only missing days are generated and inserted, all in one transaction, so reruns and backfills are
    cheap and raw data already landed stays byte-for-byte intact. A run for an earlier date than
    already landed lands nothing (dbt applies the as-of filter on run_date). A ``warehouse`` source is
    loaded by an external tool: it is only checked for readiness.
    """
    if spec.source.type == "warehouse":
        return check_external_source(spec, run_date, settings)
    from mlplatform import datagen

    source = datagen.get_source(spec.source.generator)
    table, date_column = source.primary
    settings.duckdb_path.parent.mkdir(parents=True, exist_ok=True)
    rows = 0
    with connect(settings.duckdb_path) as con:
        con.begin()
        try:
            _ensure_raw_tables(con)
            _check_params(con, spec)
            _replace_dimensions(con, datagen.dimension_tables(spec.source))
            landed = _landed_days(con, spec.source.generator, table, date_column,
                                  spec.source.history_start, run_date)
            missing = _missing_days(landed, spec.source.history_start, run_date)
            for lo, hi in _runs(missing, LAND_CHUNK_DAYS):
                for chunk in datagen.fact_chunks(spec.source, lo, hi, LAND_CHUNK_DAYS):
                    rows += sum(_insert_facts(con, t, frame) for t, frame in chunk.items())
                _record_landed(con, spec.source.generator, table, date_column, lo, hi)
            con.commit()
        except BaseException:
            con.rollback()
            raise
    return {"rows_landed": rows, "days_landed": len(missing),
            "first_missing": missing[0].isoformat() if missing else None,
            "last_day": run_date.isoformat(), "table": f"{C.RAW_SCHEMA}.{table}",
            "tables": [f"{C.RAW_SCHEMA}.{t}" for t in source.facts]}


def check_external_source(spec: UseCaseSpec, run_date: date, settings: Settings) -> dict[str, Any]:
    """Readiness of a table an external loader fills: it must hold rows dated ``run_date`` or later.

    Running on a source that has not caught up would silently train and score on stale data, so it is
    an error naming the table, its latest date and the run date (the task retries; a later run succeeds).
    """
    from mlplatform.errors import DataQualityError

    table, column = spec.source.table, spec.source.date_column
    if not (_RELATION.match(table or "") and re.fullmatch(_IDENT, column or "")):
        raise PlatformError(f"source.table/date_column are not identifiers: {table!r}, {column!r}")
    with connect(settings.duckdb_path, read_only=True) as con:
        schema, name = table.split(".")
        exists = con.execute("select count(*) from information_schema.tables where table_schema = ? "
                             "and table_name = ?", [schema, name]).fetchone()[0]
        if not exists:
            raise DataQualityError(f"{spec.name}: source table {table} does not exist in the warehouse "
                                   f"{settings.duckdb_path}; load it before running the pipeline")
        latest, rows = con.execute(
            f"select max(cast({column} as date)), count(*) from {table} where {column} <= ?",
            [run_date]).fetchone()
    if latest is None or latest < run_date:
        raise DataQualityError(f"{spec.name}: source table {table} is not ready for {run_date}: latest "
                               f"{column} is {latest}; the loader has not delivered that day yet")
    return {"rows_landed": 0, "days_landed": 0, "first_missing": None, "last_day": run_date.isoformat(),
            "table": table, "rows_as_of": int(rows), "external": True}


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
