"""Helpers of the reliability tests: the scenario's spec and dates, full pipeline runs, copies of a world.

Everything here drives the real components (DuckDB warehouse, dbt, GX, scikit-learn, Evidently, a real S3
server); nothing is mocked. Faults are injected the way they happen in production: bad rows written into
the raw warehouse table, an object store that cannot be reached.
"""

from __future__ import annotations

import secrets
import shutil
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

from mlplatform import pipeline
from mlplatform.settings import Settings, load_settings
from mlplatform.spec import UseCaseSpec, get_spec
from mlplatform.storage import ObjectStore

HISTORY_START = date(2024, 6, 1)
CHAMPION_DATE = date(2025, 6, 30)  # first full run: its model becomes the champion
BACKFILL_DATE = date(2025, 6, 15)  # full run after CHAMPION_DATE, for an earlier date
PRE_DRIFT_DATE = date(2025, 7, 5)  # after the champion, before the drift
DRIFT_START = date(2025, 7, 7)     # demand x2, prices x sqrt(2), promotions likelier from this day on
DRIFTED_DATE = date(2025, 7, 28)   # 22 of the 28 monitored days are drifted
DRIFT_FACTOR = 2.0

# The use case's own source size (4 stores x 12 SKUs, seed 42) with a shorter history and drift injected
# after every date the other tests run for. Why not 2 x 3 series: with 6 series the 28-day window differs
# from the 180-day reference by seasonality alone (Evidently's normed Wasserstein >= 0.1 on 4-6 of the 7
# monitored columns on every pre-drift date tried), so "no drift" could not be asserted (see the report).
SOURCE_PARAMS = {"n_stores": 4, "n_skus": 12, "seed": 42,
                 "drift_start": DRIFT_START.isoformat(), "drift_factor": DRIFT_FACTOR}
N_SERIES = SOURCE_PARAMS["n_stores"] * SOURCE_PARAMS["n_skus"]

RAW_TABLE = "raw.retail_sales"


def make_spec(history_start: date = HISTORY_START, **params: Any) -> UseCaseSpec:
    spec = get_spec("demand_forecast")
    source = spec.source.model_copy(update={"history_start": history_start,
                                            "params": {**SOURCE_PARAMS, **params}})
    return spec.model_copy(update={"source": source})


def settings_for(data_dir: Path) -> Settings:
    return load_settings({"MLPLATFORM_DATA_DIR": str(data_dir)})


def new_store(client: Any) -> ObjectStore:
    store = ObjectStore(client, "rel-" + secrets.token_hex(6))
    store.ensure_bucket()
    return store


def single_openmp_thread() -> Any:
    """Context limiting OpenMP (scikit-learn's HistGradientBoosting) to one thread.

    Why: on a shared 2-core CI box, two spinning OpenMP threads per fit make training 10-20x slower
    (measured 126-183 s instead of ~8 s per train_model) whenever another process competes for the cores.
    Results are identical for any thread count (checked: same predictions with 1 and 2 threads).
    """
    import sklearn.ensemble  # noqa: F401 - loads the OpenMP runtime, so the limit applies to it
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="openmp")


STAGES: tuple[str, ...] = ("land_raw", "build_features", "validate_features", "monitor_drift",
                           "evaluate_accuracy", "decide_retrain", "train_model", "score_and_publish")


def stage_calls(spec: UseCaseSpec, run_date: date, settings: Settings,
                store: ObjectStore) -> dict[str, Callable[[], dict]]:
    """Each Airflow task of the DAG, in DAG order, as a zero-argument call (Airflow-free)."""
    return dict(pipeline.stage_calls(spec, run_date, settings, store))


def full_run(spec: UseCaseSpec, run_date: date, settings: Settings, store: ObjectStore,
             stages: tuple[str, ...] = STAGES) -> dict[str, dict]:
    """Run ``stages`` for ``run_date`` as the DAG would; return each stage's XCom-sized result."""
    calls = stage_calls(spec, run_date, settings, store)
    with single_openmp_thread():
        return {name: calls[name]() for name in stages}


# --- warehouse ---------------------------------------------------------------------------------------


def query(settings: Settings, sql: str, params: list | None = None) -> Any:
    """A read-only query on the warehouse, as a DataFrame."""
    from mlplatform.warehouse import connect

    with connect(settings.duckdb_path, read_only=True) as con:
        return con.execute(sql, params or []).df()


def raw_rows(settings: Settings, day: date | None = None) -> Any:
    """Raw sales rows (of one day, or all), in a stable order."""
    where = "where sales_date = ?" if day else ""
    return query(settings, f"select * from {RAW_TABLE} {where} "
                           "order by sales_date, store_id, sku_id, units_sold, unit_price",
                 [day] if day else [])


def raw_count(settings: Settings) -> int:
    return int(query(settings, f"select count(*) as n from {RAW_TABLE}")["n"].iloc[0])


def replace_raw_day(settings: Settings, day: date, frame: Any) -> None:
    """What a bad (re-)delivery does: the day's rows in the raw table become ``frame``."""
    from mlplatform.warehouse import connect

    with connect(settings.duckdb_path) as con:
        con.begin()
        con.execute(f"delete from {RAW_TABLE} where sales_date = ?", [day])
        con.register("_delivery", frame)
        con.execute(f"insert into {RAW_TABLE} select cast(sales_date as date), store_id, sku_id, units_sold, "
                    "unit_price, list_price, on_promotion, stockout_flag from _delivery")
        con.unregister("_delivery")
        con.commit()


def copy_data_dir(src: Path, dst: Path) -> Path:
    """Copy a world's data directory (warehouse file, dbt target) except dbt logs."""
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("logs"))
    return dst


# --- object storage ----------------------------------------------------------------------------------


def bucket_contents(store: ObjectStore, prefix: str = "") -> dict[str, bytes]:
    return {key: store.get_bytes(key) for key in store.list_keys(prefix)}


def clone_bucket(source: ObjectStore) -> ObjectStore:
    """A new bucket with every object of ``source``, as if the runs had written to the new bucket.

    Binary objects are copied server-side; JSON objects (manifests, metadata, results) embed their own
    s3:// URIs, so the source bucket name in them is replaced by the new one. Checksums recorded in them
    cover Parquet and model bytes only, which are copied unchanged.
    """
    target = new_store(source.client)
    old, new = f"s3://{source.bucket}/".encode(), f"s3://{target.bucket}/".encode()
    for key in source.list_keys(""):
        if key.endswith(".json"):
            target.put_bytes(key, source.get_bytes(key).replace(old, new), "application/json")
        else:
            target.client.copy_object(Bucket=target.bucket, Key=key,
                                      CopySource={"Bucket": source.bucket, "Key": key})
    return target


def key_of(store: ObjectStore, uri: str) -> str:
    prefix = f"s3://{store.bucket}/"
    assert uri.startswith(prefix), f"{uri} is not in bucket {store.bucket}"
    return uri[len(prefix):]
