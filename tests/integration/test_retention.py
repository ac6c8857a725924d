"""Retention on a real S3 server (and real DuckDB / Postgres warehouses) with fabricated history.

The bucket holds what months of runs leave behind: published partitions and their manifests, reports
of published and unpublished dates, quarantine, model versions (referenced in every way the policy
protects, and unreferenced), the audit log. Each test applies ``retention.apply`` as the maintenance DAG
would and checks exactly what went, what stayed and why, and that a second run removes nothing.
"""

from __future__ import annotations

import logging
from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import pytest

from mlplatform import registry, retention, warehouse
from mlplatform.ingest import land_files
from mlplatform.settings import Settings, load_settings
from mlplatform.spec import (
    FilesSourceSpec,
    FileTableSpec,
    RetentionSpec,
    SourceSpec,
    UseCaseSpec,
    get_spec,
)
from mlplatform.storage import Layout, ObjectStore
from postgres_support import fresh_database, warehouse_env

pytestmark = pytest.mark.integration

UC = "demand_forecast"
TODAY = date(2025, 7, 31)
OLD = date(2025, 3, 1)          # published; older than every cutoff
UNPUBLISHED = date(2025, 4, 1)  # a failed run: reports only
RECENT = date(2025, 7, 25)      # younger than every cutoff
OLD_QUARANTINE = date(2025, 6, 15)  # older than quarantine_days, younger than reports_days

V_PUB = "v20250201-aaaaaaaaaa"       # named by the published manifest (a pinned run)
V_OLD_CHAMP = "v20250115-bbbbbbbbbb"  # champion as of the published run date, replaced since
V_DRIFT = "v20250220-cccccccccc"     # named only by the drift summary the manifest links
V_CHAMP = "v20250701-dddddddddd"     # current champion
V_CHALL = "v20250710-eeeeeeeeee"     # current challenger
V_OLD_1 = "v20250110-1111111111"     # unreferenced, old: removed
V_OLD_2 = "v20250301-2222222222"     # unreferenced, old: removed
V_NEW = "v20250720-3333333333"       # unreferenced, newest: kept (model_versions_keep 1)
V_PARTIAL = "v20250105-4444444444"   # no metadata.json: left alone
VERSION_FILES = ("model.joblib", "reference.parquet", "model_card.md", "metadata.json")


def _spec(**policy) -> UseCaseSpec:
    return get_spec(UC).model_copy(update={"retention": RetentionSpec(**policy)})


POLICY = {"quarantine_days": 30, "reports_days": 60, "model_versions_keep": 1}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings({"MLPLATFORM_DATA_DIR": str(tmp_path / "data")})


def _version(store: ObjectStore, layout: Layout, version: str, end: str) -> dict:
    prefix = layout.model(version)
    for name in VERSION_FILES[:-1]:
        store.put_bytes(f"{prefix}/{name}", f"{version} {name}".encode())
    meta = {"version": version, "training_window": {"start": "2024-01-01", "end": end},
            "metrics": {"metric": "wape", "model": {"wape": 0.4}, "baseline": {"wape": 0.5}},
            "decision": {"eligible": True, "promoted": False, "reason": "fabricated"},
            "artifact": {"model_uri": store.uri(f"{prefix}/model.joblib"),
                         "model_card_uri": store.uri(f"{prefix}/model_card.md")}}
    store.put_json(f"{prefix}/metadata.json", meta)
    return meta


def _move(store: ObjectStore, layout: Layout, alias: str, meta: dict, effective: date) -> None:
    registry.move_alias(store, layout, alias, meta, effective_date=effective, actor="test", reason="fabricated",
                        action="promote")


def _reports(store: ObjectStore, layout: Layout, day: date) -> None:
    store.put_json(f"{layout.validation(day)}/result.json", {"success": True})
    store.put_json(f"{layout.monitoring(day)}/drift.json",
                   {"model_version": V_DRIFT, "report_uri": store.uri(f"{layout.monitoring(day)}/report.html")})
    store.put_bytes(f"{layout.monitoring(day)}/report.html", b"<html/>")
    store.put_bytes(f"{layout.monitoring(day)}/evidently_snapshot.json", b"{}")
    store.put_json(f"{UC}/landing/run_date={day}/report.json", {"rows_landed": 1})
    store.put_json(f"{layout.accuracy(day)}/summary.json", {"breach": False})
    store.put_bytes(f"{layout.accuracy(day)}/realised.parquet", b"PAR1")
    store.put_json(f"{layout.lifecycle(day)}/retrain.json", {"retrain": False})
    store.put_json(f"{layout.alerts()}/accuracy-{day}.json", {"alert": "accuracy_decay"})
    store.put_json(f"{layout.lineage(day)}/dbt_invocation.json", {"invocation_id": f"inv-{day}"})
    store.put_json(f"{layout.lineage(day)}/airflow_run.json", {"dag_id": UC, "run_id": f"scheduled__{day}"})


def _publish(store: ObjectStore, layout: Layout, day: date, version: str) -> None:
    prefix, mon = layout.forecasts(day), layout.monitoring(day)
    store.put_bytes(f"{prefix}/part-00000-0123456789.parquet", b"PAR1")
    store.put_json(f"{prefix}/_manifest.json", {
        "use_case": UC, "run_date": day.isoformat(), "model_version": version,
        "model": {"version": version, "uri": store.uri(f"{layout.model(version)}/model.joblib"),
                  "model_card_uri": store.uri(f"{layout.model(version)}/model_card.md")},
        "lineage": {"features_snapshot": store.uri(f"{layout.features(day)}/features.parquet"),
                    "dbt_invocation_uri": store.uri(f"{layout.lineage(day)}/dbt_invocation.json"),
                    "airflow_run_uri": store.uri(f"{layout.lineage(day)}/airflow_run.json")},
        "validation": {"result_uri": store.uri(f"{layout.validation(day)}/result.json")},
        "drift": {"summary_uri": store.uri(f"{mon}/drift.json"), "report_uri": store.uri(f"{mon}/report.html")},
        "partition_uri": store.uri(prefix + "/")})
    store.put_json(f"{layout.rollup('monthly', day)}/_manifest.json", {"model_version": version})


@pytest.fixture
def history(object_store: ObjectStore) -> ObjectStore:
    """Months of fabricated runs in a fresh bucket."""
    store, layout = object_store, Layout(UC)
    metas = {v: _version(store, layout, v, f"{v[1:5]}-{v[5:7]}-{v[7:9]}") for v in
             (V_PUB, V_OLD_CHAMP, V_DRIFT, V_CHAMP, V_CHALL, V_OLD_1, V_OLD_2, V_NEW)}
    store.put_bytes(f"{layout.model(V_PARTIAL)}/model.joblib", b"half-registered")
    _move(store, layout, registry.CHAMPION, metas[V_OLD_CHAMP], date(2025, 1, 15))
    _move(store, layout, registry.CHAMPION, metas[V_CHAMP], date(2025, 7, 1))
    _move(store, layout, registry.CHALLENGER, metas[V_CHALL], date(2025, 7, 10))
    for day in (OLD, UNPUBLISHED, RECENT):
        _reports(store, layout, day)
    _publish(store, layout, OLD, V_PUB)
    store.put_bytes(f"{layout.features(OLD)}/features.parquet", b"PAR1")
    for day in (OLD, OLD_QUARANTINE, RECENT):
        store.put_bytes(f"{UC}/quarantine/run_date={day}/retail_sales/{day}-part-000-abcd1234.parquet", b"PAR1")
    store.put_json(retention.report_key(UC, OLD), {"removed": []})  # an earlier maintenance report
    return store


def _expected_removed(layout: Layout) -> set[str]:
    old_reports = {f"{UC}/landing/run_date={OLD}/report.json", f"{layout.accuracy(OLD)}/summary.json",
                   f"{layout.accuracy(OLD)}/realised.parquet", f"{layout.lifecycle(OLD)}/retrain.json",
                   f"{layout.alerts()}/accuracy-{OLD}.json", f"{layout.alerts()}/accuracy-{UNPUBLISHED}.json"}
    unpublished = {f"{layout.validation(UNPUBLISHED)}/result.json", f"{layout.monitoring(UNPUBLISHED)}/drift.json",
                   f"{layout.monitoring(UNPUBLISHED)}/report.html",
                   f"{layout.monitoring(UNPUBLISHED)}/evidently_snapshot.json",
                   f"{UC}/landing/run_date={UNPUBLISHED}/report.json", f"{layout.accuracy(UNPUBLISHED)}/summary.json",
                   f"{layout.accuracy(UNPUBLISHED)}/realised.parquet", f"{layout.lifecycle(UNPUBLISHED)}/retrain.json",
                   # which dbt invocation / Airflow run built a date nothing was published for
                   f"{layout.lineage(UNPUBLISHED)}/dbt_invocation.json", f"{layout.lineage(UNPUBLISHED)}/airflow_run.json"}
    quarantine = {f"{UC}/quarantine/run_date={d}/retail_sales/{d}-part-000-abcd1234.parquet"
                  for d in (OLD, OLD_QUARANTINE)}
    versions = {f"{layout.model(v)}/{name}" for v in (V_OLD_1, V_OLD_2) for name in VERSION_FILES}
    return old_reports | unpublished | quarantine | versions


def _removed_keys(report: dict) -> set[str]:
    return {e["key"] for e in report["removed"] if e["kind"] == "object"}


def test_retention_removes_old_unreferenced_objects_and_keeps_everything_referenced(history, settings, caplog):
    store, layout, spec = history, Layout(UC), _spec(**POLICY)
    before = set(store.list_keys(""))
    with caplog.at_level(logging.INFO, logger="mlplatform.retention"):
        report = retention.apply(spec, store, settings, TODAY)

    expected = _expected_removed(layout)
    assert _removed_keys(report) == expected
    assert set(store.list_keys("")) == (before - expected) | {retention.report_key(UC, TODAY)}
    # the published partition, roll-up, features, audit log, aliases and earlier maintenance report stay
    for prefix in (layout.forecasts(OLD), layout.rollups_root("monthly"), layout.features(OLD), layout.registry(),
                   retention.report_key(UC, OLD)):
        assert store.list_keys(prefix) and not expected & set(store.list_keys(prefix))
    assert store.list_keys(layout.model(V_PARTIAL) + "/") == [f"{layout.model(V_PARTIAL)}/model.joblib"]

    kept = {k["key"]: " ".join(k["referenced_by"]) for k in report["kept_referenced"]}
    manifest = f"published manifest {layout.forecasts(OLD)}/_manifest.json"
    assert manifest in kept[f"{layout.validation(OLD)}/"]
    assert manifest in kept[f"{layout.monitoring(OLD)}/"]  # kept whole, the unlinked snapshot too
    assert store.exists(f"{layout.monitoring(OLD)}/evidently_snapshot.json")
    assert manifest in kept[f"{layout.model(V_PUB)}/"]
    assert manifest in kept[f"{layout.model(V_DRIFT)}/"]  # via the drift summary the manifest links
    assert f"champion as of published run date {OLD}" in kept[f"{layout.model(V_OLD_CHAMP)}/"]
    assert "current champion alias" in kept[f"{layout.model(V_CHAMP)}/"]
    assert "current challenger alias" in kept[f"{layout.model(V_CHALL)}/"]
    assert f"{layout.model(V_NEW)}/" not in kept and store.exists(f"{layout.model(V_NEW)}/metadata.json")

    reasons = {e["key"]: e["reason"] for e in report["removed"]}
    assert "retention.reports_days 60" in reasons[f"{layout.lifecycle(OLD)}/retrain.json"]
    assert "retention.quarantine_days 30" in reasons[f"{UC}/quarantine/run_date={OLD_QUARANTINE}/retail_sales/"
                                                     f"{OLD_QUARANTINE}-part-000-abcd1234.parquet"]
    assert "retention.model_versions_keep" in reasons[f"{layout.model(V_OLD_1)}/model.joblib"]
    assert any(V_PARTIAL in n for n in report["notes"])
    assert report["counts"]["objects"] == len(expected) and report["dry_run"] is False
    assert report["cutoffs"] == {"quarantine": "2025-07-01", "reports": "2025-06-01", "raw": None}

    stored = store.get_json(retention.report_key(UC, TODAY))
    assert {k: v for k, v in report.items() if k != "report_uri"} == stored
    assert report["report_uri"] == store.uri(retention.report_key(UC, TODAY))
    logged = caplog.text
    assert all(key in logged for key in expected)
    assert registry.alias_version(store, layout, registry.CHAMPION) == V_CHAMP  # the registry still works
    assert len(registry.audit_log(store, layout)) == 3


def test_dry_run_reports_the_same_removals_and_deletes_nothing(history, settings):
    store, spec = history, _spec(**POLICY)
    before = {k: store.get_bytes(k) for k in store.list_keys("")}
    dry = retention.apply(spec, store, settings, TODAY, dry_run=True)
    assert dry["dry_run"] is True and "report_uri" not in dry
    assert {k: store.get_bytes(k) for k in store.list_keys("")} == before  # nothing deleted, no report stored
    assert _removed_keys(dry) == _expected_removed(Layout(UC))
    assert retention.plan(spec, store, settings, TODAY).to_report(True) == dry


def test_a_second_run_removes_nothing_and_leaves_the_report(history, settings):
    store, spec = history, _spec(**POLICY)
    first = retention.apply(spec, store, settings, TODAY)
    after_first = {k: store.get_bytes(k) for k in store.list_keys("")}
    second = retention.apply(spec, store, settings, TODAY)
    assert second["removed"] == [] and second["counts"]["objects"] == 0
    assert second["kept_referenced"] == first["kept_referenced"]
    assert {k: store.get_bytes(k) for k in store.list_keys("")} == after_first
    assert second["report_uri"] == first["report_uri"]


def test_null_policy_keeps_everything(history, settings):
    store = history
    before = set(store.list_keys(""))
    report = retention.apply(_spec(), store, settings, TODAY)
    assert report["removed"] == [] and report["kept_referenced"] == []
    assert set(store.list_keys("")) == before | {retention.report_key(UC, TODAY)}


# ---------------------------------------------------------------------------------------- raw history

HISTORY_START = date(2024, 1, 1)
RAW_TODAY = date(2024, 6, 30)
RAW_DAYS = 120


def _small_spec(name: str = UC, **source) -> UseCaseSpec:
    """A small demand use case whose windows need 105 days of raw history (see minimum_raw_days)."""
    base = get_spec(UC)
    source = source or {"generator": "retail_sales", "history_start": HISTORY_START,
                        "params": {"n_stores": 2, "n_skus": 3, "seed": 5}}
    return base.model_copy(update={
        "name": name, "source": SourceSpec(**source),
        # global candidates only: the feature look-back stays the trees' 4 x 7 days (statistical ones read 112)
        "model": base.model.model_copy(update={"training_window": 28, "candidates": ["seasonal_naive", "gbm"]}),
        "backtest": base.backtest.model_copy(update={"folds": 1}),
        "monitoring": base.monitoring.model_copy(update={"window_days": 7, "reference_days": 7}),
        "accuracy": base.accuracy.model_copy(update={"lookback_days": 7}),
        "retention": RetentionSpec(raw_days=RAW_DAYS)})


def _count(settings: Settings, table: str, column: str, before: date | None = None) -> int:
    where = f" where cast({column} as date) < ?" if before else ""
    with warehouse.open_warehouse(settings, read_only=True) as db:
        return int(db.fetchall(f"select count(*) from raw.{table}{where}", [before] if before else [])[0][0])


@pytest.fixture(params=["duckdb", "postgres"])
def any_warehouse(request, tmp_path: Path):
    if request.param == "duckdb":
        yield load_settings({"MLPLATFORM_DATA_DIR": str(tmp_path / "duck")})
        return
    with fresh_database("mlp_ret") as dbname:
        yield load_settings({"MLPLATFORM_PROFILE": "production", "MLPLATFORM_DATA_DIR": str(tmp_path / "pg"),
                             **warehouse_env(dbname)})


def test_raw_days_are_deleted_in_the_warehouse_and_not_landed_again(object_store, any_warehouse):
    spec, settings = _small_spec(), any_warehouse
    assert sum(retention.minimum_raw_days(spec).values()) == 105
    warehouse.land_source(spec, RAW_TODAY, settings)
    cutoff = RAW_TODAY - timedelta(days=RAW_DAYS)
    old, total = _count(settings, "retail_sales", "sales_date", cutoff), _count(settings, "retail_sales", "sales_date")
    assert old == (cutoff - HISTORY_START).days * 6

    dry = retention.apply(spec, object_store, settings, RAW_TODAY, dry_run=True)
    assert [(e["table"], e["rows"]) for e in dry["removed"]] == [("raw.retail_sales", old)]
    assert _count(settings, "retail_sales", "sales_date") == total

    report = retention.apply(spec, object_store, settings, RAW_TODAY)
    assert [(e["table"], e["rows"], e["before"]) for e in report["removed"]] == \
        [("raw.retail_sales", old, cutoff.isoformat())]
    assert "retention.raw_days" in report["removed"][0]["reason"] and report["cutoffs"]["raw"] == cutoff.isoformat()
    assert _count(settings, "retail_sales", "sales_date", cutoff) == 0
    assert _count(settings, "retail_sales", "sales_date") == total - old

    later = warehouse.land_source(spec, RAW_TODAY + timedelta(days=1), settings)
    assert later["days_landed"] == 1 and later["rows_landed"] == 6  # the retired days are not generated again
    again = retention.apply(spec, object_store, settings, RAW_TODAY)
    assert again["removed"] == []


ORDERS = {"order_date": "date", "order_id": "string", "units": "integer"}


def _files_spec() -> UseCaseSpec:
    tables = {"orders": FileTableSpec(kind="fact", columns=ORDERS, keys=["order_date", "order_id"],
                                      date_column="order_date"),
              "regions": FileTableSpec(kind="dimension", columns={"region": "string"}, keys=["region"])}
    return _small_spec("retention_files", type="files", history_start=HISTORY_START,
                       files=FilesSourceSpec(inbox="inbox/retention", tables=tables))


def _deliver_orders(store: ObjectStore, day: date) -> str:
    key = f"inbox/retention/orders/day={day}/part-000.csv"
    rows = "".join(f"{day},o{i},{i + 1}\n" for i in range(3))
    store.put_bytes(key, f"order_date,order_id,units\n{rows}".encode())
    return key


def test_files_source_deliveries_and_raw_rows_go_and_are_not_landed_again(object_store, settings):
    spec, store = _files_spec(), object_store
    end = date(2024, 4, 30)
    for i in range((end - HISTORY_START).days + 1):
        _deliver_orders(store, HISTORY_START + timedelta(days=i))
    for day in (date(2024, 1, 1), date(2024, 2, 1)):
        store.put_bytes(f"inbox/retention/regions/day={day}/regions.csv", b"region\nnorth\nsouth\n")
    land_files(spec, end, settings, store)

    report = retention.apply(spec, store, settings, end)
    cutoff = end - timedelta(days=RAW_DAYS)  # 2024-01-01: nothing before it
    assert cutoff == HISTORY_START and report["removed"] == []
    report = retention.apply(spec, store, settings, end + timedelta(days=10))
    cutoff = HISTORY_START + timedelta(days=10)
    files = {e["key"] for e in report["removed"] if e["kind"] == "object"}
    assert files == {f"inbox/retention/orders/day={HISTORY_START + timedelta(days=i)}/part-000.csv"
                     for i in range(10)} | {"inbox/retention/regions/day=2024-01-01/regions.csv"}
    assert store.exists("inbox/retention/regions/day=2024-02-01/regions.csv")  # the dimension's current file
    assert [(e["table"], e["rows"]) for e in report["removed"] if e["kind"] == "raw_rows"] == [("raw.orders", 30)]
    assert _count(settings, "orders", "order_date", cutoff) == 0

    _deliver_orders(store, end + timedelta(days=1))
    landed = land_files(spec, end + timedelta(days=1), settings, store)
    assert landed["rows_landed"] == 3  # the deleted days stay deleted (their files are recorded as ingested)
    assert retention.apply(spec, store, settings, end + timedelta(days=10))["removed"] == []
    frame = warehouse.read_relation(settings, "raw.orders")
    assert pd.to_datetime(frame["order_date"]).min().date() == cutoff
