"""Warehouse I/O: land raw source data, read dbt-built relations, on DuckDB or Postgres.

The profile picks the engine (``Settings.profile``): ``embedded`` is one DuckDB file, ``production`` is a
Postgres database (``MLPLATFORM_PG_*``). Both go through one small backend interface, so landing,
readiness checks and reads are the same code and the same SQL (``?`` placeholders) on either engine.

Schema naming (what the dbt project in ``dbt_project/`` builds):

* ``raw.<table>``: raw source data landed here (``raw.retail_sales``, ``raw.stores``, ``raw.products``);
  dbt reads it as source ``raw``. Raw data is append-only: a landed day is never rewritten.
  ``raw.holidays`` holds the public holidays of each calendar a use case names (``holidays:`` in its
  spec), per year it needs, from the ``holidays`` package (:func:`land_holidays`).
* ``analytics.<model>``: every dbt model and seed (staging and intermediate as views, marts as tables),
  e.g. ``analytics.fct_demand_features``; :func:`relation_name` maps a model name to it.

duckdb, psycopg2 and pandas are imported inside functions so importing this module (DAG parsing) stays
cheap.
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
HOLIDAYS_TABLE = f"{C.RAW_SCHEMA}.holidays"
LAND_CHUNK_DAYS = 90
LOCK_ATTEMPTS = 60
LOCK_WAIT_S = 0.5
PG_CONNECT_TIMEOUT_S = 10
PG_INSERT_PAGE = 5000

_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_RELATION = re.compile(rf"^{_IDENT}(\.{_IDENT}){{0,2}}$")

_RAW_DDL = {
    "retail_sales": """
        create table if not exists raw.retail_sales (
            sales_date date not null,
            store_id varchar,
            sku_id varchar,
            units_sold bigint,
            unit_price double precision,
            list_price double precision,
            on_promotion boolean,
            stockout_flag boolean
        )""",
    "stores": "create table if not exists raw.stores "
              "(store_id varchar, region varchar, store_format varchar, opened_on date)",
    "products": "create table if not exists raw.products (sku_id varchar, category varchar, "
                "list_price double precision)",
    "holidays": "create table if not exists raw.holidays (holiday_calendar varchar not null, "
                "holiday_date date not null, holiday_name varchar not null)",
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


# -------------------------------------------------------------------------------------------- backends


class _DuckBackend:
    """The embedded warehouse: one DuckDB file (one writing process at a time, see :func:`connect`)."""

    def __init__(self, con: duckdb.DuckDBPyConnection, where: str) -> None:
        self.con, self.where = con, where

    def execute(self, sql: str, params: list[Any] | None = None) -> None:
        self.con.execute(sql, params or [])

    def fetchall(self, sql: str, params: list[Any] | None = None) -> list[tuple]:
        return self.con.execute(sql, params or []).fetchall()

    def begin(self) -> None:
        self.con.begin()

    def commit(self) -> None:
        self.con.commit()

    def rollback(self) -> None:
        self.con.rollback()

    def lock(self, name: str) -> None:
        """Nothing to do: DuckDB's file lock already makes this process the only writer."""

    def insert_frame(self, table: str, frame: pd.DataFrame) -> None:
        """Insert by column name; a table without declared DDL takes the frame's column types."""
        view = f"_land_{table}"
        self.con.register(view, frame)
        try:
            if not table_exists(self, C.RAW_SCHEMA, table):
                self.con.execute(f"create table {C.RAW_SCHEMA}.{table} as select * from {view} where false")
            self.con.execute(f"insert into {C.RAW_SCHEMA}.{table} by name select * from {view}")
        finally:
            self.con.unregister(view)

    def read_frame(self, sql: str, params: list[Any] | None = None) -> pd.DataFrame:
        return self.con.execute(sql, params or []).df()


# Postgres type of each pandas dtype kind, for raw tables created from a frame (no declared DDL).
_PG_TYPES = {"b": "boolean", "i": "bigint", "u": "bigint", "f": "double precision", "M": "timestamp"}
# Postgres type OIDs read back as numbers or timestamps (psycopg2 returns Decimal / date objects).
_PG_NUMERIC_OIDS = frozenset({20, 21, 23, 700, 701, 1700})
_PG_TEMPORAL_OIDS = frozenset({1082, 1114, 1184})


def _pg_type(series: pd.Series) -> str:
    kind = series.dtype.kind
    if kind in _PG_TYPES:
        return _PG_TYPES[kind]
    first = series.dropna().head(1)
    if len(first) and isinstance(first.iloc[0], date):
        return "date"
    return "varchar"


class _PgBackend:
    """The production warehouse: a Postgres database (many writers; one transaction per landing)."""

    def __init__(self, con: Any, where: str) -> None:
        self.con, self.where = con, where

    @staticmethod
    def _sql(sql: str) -> str:
        # Platform SQL uses DuckDB's ``?`` placeholders; psycopg2 wants ``%s`` (and ``%%`` for a percent).
        return sql.replace("%", "%%").replace("?", "%s")

    def execute(self, sql: str, params: list[Any] | None = None) -> None:
        with self.con.cursor() as cur:
            cur.execute(self._sql(sql), list(params or []))

    def fetchall(self, sql: str, params: list[Any] | None = None) -> list[tuple]:
        with self.con.cursor() as cur:
            cur.execute(self._sql(sql), list(params or []))
            return cur.fetchall()

    def begin(self) -> None:
        """psycopg2 opens a transaction on the first statement; nothing to do."""

    def commit(self) -> None:
        self.con.commit()

    def rollback(self) -> None:
        self.con.rollback()

    def lock(self, name: str) -> None:
        """Serialise writers of ``name`` across workers until this transaction ends.

        Why: two runs (say a backfill and today's run) landing the same missing days at once would each
        see them missing and insert them twice, and concurrent ``create schema if not exists`` races in
        Postgres; the advisory lock makes the second writer wait, then find the work done.
        """
        self.execute("select pg_advisory_xact_lock(hashtext(?))", [f"mlplatform.{name}"])

    def insert_frame(self, table: str, frame: pd.DataFrame) -> None:
        from psycopg2.extras import execute_values

        columns = [str(c) for c in frame.columns]
        for column in columns:
            if not re.fullmatch(_IDENT, column):
                raise PlatformError(f"raw table {table}: column {column!r} is not an identifier")
        if not table_exists(self, C.RAW_SCHEMA, table):
            ddl = ", ".join(f"{c} {_pg_type(frame[c])}" for c in columns)
            self.execute(f"create table {C.RAW_SCHEMA}.{table} ({ddl})")
        values = frame.astype(object).where(frame.notna(), None)
        with self.con.cursor() as cur:
            execute_values(cur, f"insert into {C.RAW_SCHEMA}.{table} ({', '.join(columns)}) values %s",
                           values.itertuples(index=False, name=None), page_size=PG_INSERT_PAGE)

    def read_frame(self, sql: str, params: list[Any] | None = None) -> pd.DataFrame:
        """A frame with the dtypes DuckDB would give: numbers as numbers, dates as datetime64."""
        import pandas as pd

        with self.con.cursor() as cur:
            cur.execute(self._sql(sql), list(params or []))
            names = [d.name for d in cur.description]
            oids = [d.type_code for d in cur.description]
            frame = pd.DataFrame.from_records(cur.fetchall(), columns=names, coerce_float=True)
        for name, oid in zip(names, oids, strict=True):
            if oid in _PG_NUMERIC_OIDS:
                frame[name] = pd.to_numeric(frame[name])
            elif oid in _PG_TEMPORAL_OIDS:
                frame[name] = pd.to_datetime(frame[name])
        return frame


def _pg_connect(settings: Settings):
    import psycopg2

    pg = settings.pg
    try:
        con = psycopg2.connect(host=pg.host, port=pg.port, user=pg.user, password=pg.password or None,
                               dbname=pg.dbname, connect_timeout=PG_CONNECT_TIMEOUT_S,
                               application_name="mlplatform")
    except psycopg2.OperationalError as exc:
        detail = " ".join(str(exc).split())
        raise PlatformError(f"cannot connect to the Postgres warehouse {pg.describe()}: {detail} "
                            f"(check the MLPLATFORM_PG_* settings and that the server is up)") from exc
    return con


@contextmanager
def open_warehouse(settings: Settings, *, read_only: bool = False) -> Iterator[_DuckBackend | _PgBackend]:
    """The warehouse of ``settings.profile``, closed afterwards (uncommitted work is rolled back)."""
    if settings.profile == C.PROFILE_EMBEDDED:
        if not read_only:
            settings.duckdb_path.parent.mkdir(parents=True, exist_ok=True)
        with connect(settings.duckdb_path, read_only=read_only) as con:
            yield _DuckBackend(con, str(settings.duckdb_path))
        return
    import psycopg2

    con = _pg_connect(settings)
    try:
        con.set_session(readonly=read_only)
        yield _PgBackend(con, settings.pg.describe())
    except psycopg2.Error as exc:
        from mlplatform.privacy import scrub_db_error

        # Postgres quotes row values in its details (raw rows may hold personal data; this goes to logs).
        detail = scrub_db_error(" ".join(str(exc).split())) or type(exc).__name__
        raise PlatformError(
            f"Postgres warehouse {settings.pg.describe()} failed mid-transaction: {detail}; the transaction "
            "was rolled back (nothing partial is kept), so the task can simply be retried") from exc
    finally:
        if not con.closed:
            try:
                con.rollback()
            finally:
                con.close()


def table_exists(db: _DuckBackend | _PgBackend, schema: str, table: str) -> bool:
    return bool(db.fetchall(
        "select count(*) from information_schema.tables where table_schema = ? and table_name = ?",
        [schema, table])[0][0])


# --------------------------------------------------------------------------------------------- landing


def _ensure_raw_tables(db: _DuckBackend | _PgBackend) -> None:
    db.execute(f"create schema if not exists {C.RAW_SCHEMA}")
    db.execute(LANDED_DDL)
    db.execute(PARAMS_DDL)
    for ddl in _RAW_DDL.values():
        db.execute(ddl)


def _replace_dimensions(db: _DuckBackend | _PgBackend, tables: dict[str, pd.DataFrame]) -> None:
    """Dimensions are small and deterministic: replace them wholesale (idempotent)."""
    for name, frame in tables.items():
        if table_exists(db, C.RAW_SCHEMA, name):
            db.execute(f"delete from {C.RAW_SCHEMA}.{name}")
        db.insert_frame(name, frame)


def _check_params(db: _DuckBackend | _PgBackend, spec: UseCaseSpec) -> None:
    """A generator's raw tables are shared by every spec naming it, so all must use the same params.

    Landing days with other params into the same tables would mix two datasets silently; refusing names
    both parameter sets and the way out.
    """
    import json

    params = json.dumps(spec.source.params, sort_keys=True, default=str)
    rows = db.fetchall(f"select params from {PARAMS_TABLE} where source = ?", [spec.source.generator])
    if not rows:
        db.execute(f"insert into {PARAMS_TABLE} values (?, ?)", [spec.source.generator, params])
    elif rows[0][0] != params:
        from mlplatform.errors import DataQualityError

        raise DataQualityError(
            f"{spec.name}: source.params {params} differ from {rows[0][0]}, with which generator "
            f"{spec.source.generator!r} already landed raw data in this warehouse; specs sharing a generator "
            "share its raw tables, so use the same params (or a separate warehouse)")


def _as_date(value: Any) -> date:
    return value.date() if hasattr(value, "date") and callable(value.date) else value


def _landed_days(db: _DuckBackend | _PgBackend, source: str, table: str, date_column: str,
                 start: date, end: date) -> set[date]:
    """Days already landed: those with rows in the primary table, plus days recorded as landed empty.

    Recording empty days matters for sparse sources (a ledger has no postings on Sundays): such a day is
    landed once, not regenerated on every run. A day that had rows and lost them (deleted by an
    operator to force a reload) counts as missing and is landed again.
    """
    days = {_as_date(row[0]) for row in db.fetchall(
        f"select day from {LANDED_TABLE} where source = ? and rows = 0 and day between ? and ?",
        [source, start, end])}
    if table_exists(db, C.RAW_SCHEMA, table):
        days |= {_as_date(row[0]) for row in db.fetchall(
            f"select distinct cast({date_column} as date) from {C.RAW_SCHEMA}.{table} "
            f"where {date_column} between ? and ?", [start, end])}
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


def _insert_facts(db: _DuckBackend | _PgBackend, table: str, frame: pd.DataFrame) -> int:
    if frame.empty:
        return 0
    db.insert_frame(table, frame)
    return len(frame)


def _record_landed(db: _DuckBackend | _PgBackend, source: str, table: str, date_column: str,
                   lo: date, hi: date) -> None:
    """Row counts per landed day of the primary table (0 marks a day that is legitimately empty)."""
    db.execute(f"delete from {LANDED_TABLE} where source = ? and day between ? and ?", [source, lo, hi])
    counts: dict[date, int] = {}
    if table_exists(db, C.RAW_SCHEMA, table):
        counts = {_as_date(day): int(n) for day, n in db.fetchall(
            f"select cast({date_column} as date), count(*) from {C.RAW_SCHEMA}.{table} "
            f"where {date_column} between ? and ? group by 1", [lo, hi])}
    for offset in range((hi - lo).days + 1):
        day = lo + timedelta(days=offset)
        db.execute(f"insert into {LANDED_TABLE} values (?, ?, ?)", [source, day, counts.get(day, 0)])


@contextmanager
def landing_transaction(settings: Settings, lock: str,
                        extra_ddl: tuple[str, ...] = ()) -> Iterator[_DuckBackend | _PgBackend]:
    """The raw schema and control tables (committed on their own, under a DDL lock), then one
    transaction holding the writer lock ``lock``: committed if the block succeeds, rolled back if not.

    Why two steps: concurrent ``create ... if not exists`` races in Postgres, and a landing must be all
    or nothing, so the DDL is serialised and committed first and the landing itself stays atomic.
    """
    with open_warehouse(settings) as db:
        db.begin()
        db.lock("raw-ddl")
        _ensure_raw_tables(db)
        for ddl in extra_ddl:
            db.execute(ddl)
        db.commit()
        db.begin()
        try:
            db.lock(lock)
            yield db
            db.commit()
        except BaseException:
            db.rollback()
            raise


def holiday_years(spec: UseCaseSpec, run_date: date) -> tuple[int, int]:
    """The years whose holidays the use case needs as of ``run_date``: from its history start through the
    last day its calendar marts cover (``run_date`` + the horizon, to that month's end)."""
    from mlplatform.transform import horizon_days

    return spec.source.history_start.year, (run_date + timedelta(days=horizon_days(spec) + 31)).year


def _replace_holidays(db: _DuckBackend | _PgBackend, spec: UseCaseSpec, run_date: date) -> int:
    """Write the calendar's holidays of every needed year to raw.holidays (those years' rows replaced).

    Idempotent, and other calendars and years stay untouched, so use cases sharing the warehouse (and
    their backfills) never take each other's holidays away. Serialised by a lock on Postgres.
    """
    import pandas as pd

    from mlplatform.calendars import holidays_between

    first, last = holiday_years(spec, run_date)
    h = spec.holidays
    rows = holidays_between(h.country, h.subdivision, first, last)
    db.lock("holidays")
    db.execute(f"delete from {HOLIDAYS_TABLE} where holiday_calendar = ? and holiday_date between ? and ?",
               [h.key, date(first, 1, 1), date(last, 12, 31)])
    if rows:
        db.insert_frame("holidays", pd.DataFrame({
            "holiday_calendar": [h.key] * len(rows), "holiday_date": [d for d, _ in rows],
            "holiday_name": [name for _, name in rows]}))
    return len(rows)


def land_holidays(spec: UseCaseSpec, run_date: date, settings: Settings) -> dict[str, Any]:
    """Land the spec's holiday calendar for the years it needs (sources landed by others: files, warehouse)."""
    with landing_transaction(settings, "holidays") as db:
        rows = _replace_holidays(db, spec, run_date)
    return {"holiday_calendar": spec.holidays.key, "holiday_rows": rows, "holiday_years": list(holiday_years(spec, run_date))}


def land_source(spec: UseCaseSpec, run_date: date, settings: Settings) -> dict[str, Any]:
    """Make raw history complete from ``spec.source.history_start`` through ``run_date``.

    Only missing days are generated and inserted, all in one transaction, so reruns and backfills are
    cheap and raw data already landed stays byte-for-byte intact. A run for an earlier date than
    already landed lands nothing (dbt applies the as-of filter on run_date). A ``warehouse`` source is
    loaded by an external tool: it is only checked for readiness.
    """
    if spec.source.type == "warehouse":
        return check_external_source(spec, run_date, settings)
    if spec.source.type != "generator":
        raise PlatformError(f"{spec.name}: source type {spec.source.type!r} is landed by mlplatform.ingest, "
                            "not by the generator landing")
    from mlplatform import datagen

    source = datagen.get_source(spec.source.generator)
    table, date_column = source.primary
    rows = 0
    with landing_transaction(settings, f"land.{spec.source.generator}") as db:
        _check_params(db, spec)
        _replace_dimensions(db, datagen.dimension_tables(spec.source))
        holiday_rows = _replace_holidays(db, spec, run_date)
        landed = _landed_days(db, spec.source.generator, table, date_column,
                              spec.source.history_start, run_date)
        missing = _missing_days(landed, spec.source.history_start, run_date)
        for lo, hi in _runs(missing, LAND_CHUNK_DAYS):
            for chunk in datagen.fact_chunks(spec.source, lo, hi, LAND_CHUNK_DAYS):
                rows += sum(_insert_facts(db, t, frame) for t, frame in chunk.items())
            _record_landed(db, spec.source.generator, table, date_column, lo, hi)
    return {"rows_landed": rows, "days_landed": len(missing),
            "first_missing": missing[0].isoformat() if missing else None,
            "last_day": run_date.isoformat(), "table": f"{C.RAW_SCHEMA}.{table}",
            "tables": [f"{C.RAW_SCHEMA}.{t}" for t in source.facts],
            "holiday_calendar": spec.holidays.key, "holiday_rows": holiday_rows}


def expected_through(spec: UseCaseSpec, run_date: date, latest: date | None = None) -> date:
    """The last day a source must reach for a run on ``run_date``: the latest period end on or before it.

    Daily: the run date itself. A monthly use case run on the 14th needs the previous month end, not the
    14th. Weekly: the week ends on the weekday of the source's ``latest`` date when known (the data fixes
    the convention, as in forecasting.periods_for), else on Sunday.
    """
    from mlplatform.calendars import DEFAULT_WEEK_END, latest_period_end

    week_end = latest.weekday() if latest is not None and spec.frequency == "weekly" else DEFAULT_WEEK_END
    return latest_period_end(run_date, spec.frequency, week_end)


def check_external_source(spec: UseCaseSpec, run_date: date, settings: Settings) -> dict[str, Any]:
    """Readiness of a table an external loader fills: it must hold the latest complete period as of
    ``run_date`` (daily: rows dated ``run_date``; monthly run on the 14th: the previous month end).

    Running on a source that has not caught up would silently train and score on stale data, so it is
    an error naming the table, its latest date and the date it must reach. The error is deterministic
    (the task fails without retries): rerun the date once the loader has delivered.
    """
    from mlplatform.errors import DataQualityError

    table, column = spec.source.table, spec.source.date_column
    if not (_RELATION.match(table or "") and re.fullmatch(_IDENT, column or "")):
        raise PlatformError(f"source.table/date_column are not identifiers: {table!r}, {column!r}")
    with open_warehouse(settings, read_only=True) as db:
        schema, name = table.split(".")
        if not table_exists(db, schema, name):
            raise DataQualityError(f"{spec.name}: source table {table} does not exist in the warehouse "
                                   f"{db.where}; load it before running the pipeline")
        latest, rows = db.fetchall(
            f"select max(cast({column} as date)), count(*) from {table} where {column} <= ?",
            [run_date])[0]
    latest = _as_date(latest) if latest is not None else None
    needed = expected_through(spec, run_date, latest)
    if latest is None or latest < needed:
        period = "" if spec.frequency == "daily" else f" (the latest {spec.frequency} period end on or before {run_date})"
        raise DataQualityError(
            f"{spec.name}: source table {table} is not ready for {run_date}: latest {column} is {latest}, "
            f"it must reach {needed}{period}; the loader has not delivered that yet. Rerun this date once it "
            "has (clear the run), or run a later date")
    return {"rows_landed": 0, "days_landed": 0, "first_missing": None, "last_day": run_date.isoformat(),
            "table": table, "rows_as_of": int(rows), "external": True, "ready_through": needed.isoformat()}


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
    with open_warehouse(settings, read_only=True) as db:
        return db.read_frame(sql, params)
