"""The Postgres warehouse goes away in the middle of landing: a clear error, no partial data, a clean retry.

The fault is real: while ``land_source`` is inserting raw rows, another session terminates its backend
(``pg_terminate_backend``, what a database failover or restart does to open connections). Landing runs
in one transaction, so the failed attempt must leave nothing behind, and the retry (Airflow's) must land
every day exactly once.
"""

from __future__ import annotations

import threading
import time
from datetime import date

import psycopg2
import pytest

from mlplatform import warehouse
from mlplatform.errors import PlatformError
from mlplatform.settings import load_settings
from mlplatform.spec import SourceSpec, get_spec
from postgres_support import PG_ADMIN_USER, PG_HOST, PG_PORT, fresh_database, warehouse_env

pytestmark = pytest.mark.reliability

HISTORY_START = date(2023, 1, 1)
RUN_DATE = date(2025, 6, 30)


@pytest.fixture
def spec():
    base = get_spec("demand_forecast")
    return base.model_copy(update={"source": SourceSpec(generator="retail_sales", history_start=HISTORY_START,
                                                         params={"n_stores": 4, "n_skus": 12, "seed": 3})})


@pytest.fixture
def pg(tmp_path):
    with fresh_database("mlp_outage") as dbname:
        yield dbname, load_settings({"MLPLATFORM_PROFILE": "production", "MLPLATFORM_DATA_DIR": str(tmp_path),
                                     **warehouse_env(dbname)})


def _kill_when_inserting(dbname: str, killed: list[int], timeout: float = 120) -> None:
    """Terminate the landing session as soon as it is inserting fact rows."""
    admin = psycopg2.connect(host=PG_HOST, port=PG_PORT, user=PG_ADMIN_USER, dbname="postgres")
    admin.autocommit = True
    deadline = time.monotonic() + timeout
    try:
        with admin.cursor() as cur:
            while time.monotonic() < deadline and not killed:
                cur.execute("select pid from pg_stat_activity where datname = %s and application_name = "
                            "'mlplatform' and query ilike 'insert into raw.retail_sales%%'", [dbname])
                pids = [row[0] for row in cur.fetchall()]
                for pid in pids:
                    cur.execute("select pg_terminate_backend(%s)", [pid])
                    killed.append(pid)
                time.sleep(0.01)
    finally:
        admin.close()


def _count(settings, table: str) -> int:
    return len(warehouse.read_relation(settings, table))


def test_warehouse_killed_mid_landing_fails_clearly_keeps_nothing_and_the_retry_lands_each_day_once(spec, pg):
    dbname, settings = pg
    killed: list[int] = []
    killer = threading.Thread(target=_kill_when_inserting, args=(dbname, killed))
    killer.start()
    try:
        with pytest.raises(PlatformError, match="rolled back .* can simply be retried") as failure:
            warehouse.land_source(spec, RUN_DATE, settings)
    finally:
        killer.join(timeout=130)
    assert killed, "the landing finished before its session could be terminated"
    assert "postgres://" in str(failure.value) and dbname in str(failure.value)

    assert _count(settings, "raw.retail_sales") == 0       # the failed attempt left no row behind
    assert _count(settings, "raw._landed_days") == 0       # and recorded no day as landed

    retry = warehouse.land_source(spec, RUN_DATE, settings)  # the database is back: Airflow retries
    days = (RUN_DATE - HISTORY_START).days + 1
    assert retry["days_landed"] == days
    sales = warehouse.read_relation(settings, "raw.retail_sales")
    assert len(sales) == retry["rows_landed"] and not sales.duplicated(["sales_date", "store_id", "sku_id"]).any()
    assert sales["sales_date"].nunique() == days
