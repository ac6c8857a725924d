"""The whole demand-forecast DAG through dag.test() on a real S3 server and real dbt-duckdb."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mlplatform import registry
from mlplatform.publishing import read_manifest, read_published
from mlplatform.settings import load_settings
from mlplatform.spec import get_spec
from mlplatform.storage import Layout, ObjectStore

pytestmark = pytest.mark.integration

RUN_DATE = datetime(2025, 6, 30, tzinfo=UTC)


def _run(dag) -> None:
    dr = dag.test(logical_date=RUN_DATE)
    states = {ti.task_id: ti.state for ti in dr.get_task_instances()}
    assert dr.state == "success", f"DAG run {dr.state}: {states}"


def _bucket_snapshot(store: ObjectStore, prefix: str) -> dict[str, bytes]:
    return {key: store.get_bytes(key) for key in store.list_keys(prefix)}


@pytest.fixture(scope="module")
def demand_run(dagbag, s3_server):
    """Run the DAG once for RUN_DATE; yield the store and the spec."""
    store = ObjectStore(s3_server.client(), load_settings().bucket)
    _run(dagbag.dags["demand_forecast"])
    return store, get_spec("demand_forecast")


def test_forecasts_land_in_the_run_date_partition_with_a_manifest(demand_run):
    store, spec = demand_run
    prefix = Layout(spec.name).forecasts(RUN_DATE.date())
    manifest = read_manifest(store, prefix)
    n_series = spec.source.params["n_stores"] * spec.source.params["n_skus"]
    assert manifest["row_count"] == n_series * spec.forecast.horizon
    assert manifest["partition_uri"] == f"s3://{store.bucket}/demand_forecast/forecasts/run_date=2025-06-30/"
    frame = read_published(store, prefix)
    assert len(frame) == manifest["row_count"]
    assert (frame["p10"] <= frame["p50"]).all() and (frame["p50"] <= frame["p90"]).all()
    assert frame["target_date"].min() == RUN_DATE.date() + timedelta(days=1)
    assert frame["target_date"].max() == RUN_DATE.date() + timedelta(days=spec.forecast.horizon)


def test_every_row_carries_the_champion_model_version(demand_run):
    store, spec = demand_run
    layout = Layout(spec.name)
    frame = read_published(store, layout.forecasts(RUN_DATE.date()))
    champion = registry.champion(store, layout)
    assert set(frame["model_version"]) == {champion["version"]}
    assert champion["decision"]["promoted"]
    assert champion["metrics"]["model"]["wape"] < champion["metrics"]["baseline"]["wape"]


def test_model_metadata_traces_data_code_and_dbt(demand_run):
    store, spec = demand_run
    meta = registry.champion(store, Layout(spec.name))
    for key in ("version", "training_window", "data", "code", "dbt_manifest_hash", "feature_names",
                "library_versions", "metrics", "decision", "artifact"):
        assert meta.get(key), f"model metadata lacks {key}"
    assert meta["training_window"]["end"] <= "2025-06-30"
    assert meta["code"]["source_hash"] and meta["library_versions"]["scikit-learn"]


def test_manifest_records_validation_and_drift_with_reports_in_storage(demand_run):
    store, spec = demand_run
    manifest = read_manifest(store, Layout(spec.name).forecasts(RUN_DATE.date()))
    assert manifest["validation"]["success"] is True
    assert store.exists(manifest["validation"]["result_uri"].split(f"s3://{store.bucket}/")[1])
    drift = manifest["drift"]
    assert isinstance(drift["drift_detected"], bool)
    html_key = drift["report_uri"].split(f"s3://{store.bucket}/")[1]
    assert html_key == "demand_forecast/monitoring/run_date=2025-06-30/report.html"
    assert store.get_bytes(html_key).lstrip().lower().startswith(b"<!doctype html") or b"<html" in store.get_bytes(html_key)[:500]


def test_second_run_of_the_same_date_leaves_identical_content(demand_run, dagbag):
    store, spec = demand_run
    before = _bucket_snapshot(store, spec.name + "/")
    _run(dagbag.dags["demand_forecast"])
    after = _bucket_snapshot(store, spec.name + "/")
    assert sorted(after) == sorted(before), "rerun added or removed objects"
    changed = sorted(k for k in before if before[k] != after[k] and not k.endswith((".html", "evidently_snapshot.json")))
    assert changed == [], f"rerun changed objects: {changed}"
