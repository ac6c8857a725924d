"""The whole demand-forecast DAG through dag.test() on a real S3 server and real dbt-duckdb.

Two consecutive dates: the first has no champion, so it trains and promotes; the second is a normal day
(no trigger fires), so it branches past training, monitors drift against the incumbent and scores with it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from dag_runs import run_dag

from mlplatform import registry
from mlplatform.publishing import read_manifest, read_published
from mlplatform.settings import load_settings
from mlplatform.spec import get_spec
from mlplatform.storage import Layout, ObjectStore

pytestmark = pytest.mark.integration

FIRST_DATE = datetime(2025, 6, 29, tzinfo=UTC)
RUN_DATE = datetime(2025, 6, 30, tzinfo=UTC)


def _run(dag, logical_date: datetime = RUN_DATE) -> dict[str, str]:
    return run_dag(dag, logical_date)


def _bucket_snapshot(store: ObjectStore, prefix: str) -> dict[str, bytes]:
    return {key: store.get_bytes(key) for key in store.list_keys(prefix)}


@pytest.fixture(scope="module")
def demand_run(dagbag, s3_server):
    """Run the DAG once for RUN_DATE; yield the store and the spec."""
    store = ObjectStore(s3_server.client(), load_settings().bucket)
    first = _run(dagbag.dags["demand_forecast"], FIRST_DATE)
    second = _run(dagbag.dags["demand_forecast"], RUN_DATE)
    return store, get_spec("demand_forecast"), first, second


def test_the_first_date_trains_and_the_next_normal_day_branches_past_training(demand_run):
    store, spec, first, second = demand_run
    assert first["train_model"] == "success" and first["keep_champion"] == "skipped"
    assert second["train_model"] == "skipped" and second["keep_champion"] == "success"
    layout = Layout(spec.name)
    assert store.get_json(f"{layout.lifecycle(FIRST_DATE.date())}/retrain.json")["triggers"][0]["trigger"] == "no_champion"
    assert store.get_json(f"{layout.lifecycle(RUN_DATE.date())}/retrain.json")["retrain"] is False
    [event] = registry.audit_log(store, layout)
    assert event["action"] == "promote" and event["effective_date"] == FIRST_DATE.date().isoformat()
    assert event["actor"] == "airflow:scheduler" or event["actor"].startswith("airflow:")


def test_accuracy_on_actuals_scores_the_previous_days_forecasts(demand_run):
    store, spec, _, _ = demand_run
    summary = store.get_json(f"{Layout(spec.name).accuracy(RUN_DATE.date())}/summary.json")
    n_series = spec.source.params["n_stores"] * spec.source.params["n_skus"]
    assert summary["published_dates"] == [FIRST_DATE.date().isoformat()]
    assert summary["overall"]["n"] <= n_series and summary["overall"]["n"] > n_series // 2  # censored left out
    assert summary["overall"]["wape"] is not None and summary["breach"] is False


def test_forecasts_land_in_the_run_date_partition_with_a_manifest(demand_run):
    store, spec, _, _ = demand_run
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
    store, spec, _, _ = demand_run
    layout = Layout(spec.name)
    frame = read_published(store, layout.forecasts(RUN_DATE.date()))
    champion = registry.champion(store, layout)
    assert set(frame["model_version"]) == {champion["version"]}
    assert champion["training_window"]["end"] == FIRST_DATE.date().isoformat()
    card = store.get_bytes(champion["artifact"]["model_card_uri"].split(f"s3://{store.bucket}/")[1]).decode()
    assert champion["version"] in card and "## Drift reference statistics" in card
    assert champion["decision"]["promoted"]
    assert champion["metrics"]["model"]["wape"] < champion["metrics"]["baseline"]["wape"]


def test_model_metadata_traces_data_code_and_dbt(demand_run):
    store, spec, _, _ = demand_run
    meta = registry.champion(store, Layout(spec.name))
    for key in ("version", "training_window", "data", "code", "dbt_manifest_hash", "feature_names",
                "library_versions", "metrics", "decision", "artifact"):
        assert meta.get(key), f"model metadata lacks {key}"
    assert meta["training_window"]["end"] <= "2025-06-30"
    assert meta["code"]["source_hash"] and meta["library_versions"]["scikit-learn"]


def test_manifest_records_validation_and_drift_with_reports_in_storage(demand_run):
    store, spec, _, _ = demand_run
    manifest = read_manifest(store, Layout(spec.name).forecasts(RUN_DATE.date()))
    assert manifest["validation"]["success"] is True
    assert store.exists(manifest["validation"]["result_uri"].split(f"s3://{store.bucket}/")[1])
    drift = manifest["drift"]
    assert isinstance(drift["drift_detected"], bool)
    html_key = drift["report_uri"].split(f"s3://{store.bucket}/")[1]
    assert html_key == "demand_forecast/monitoring/run_date=2025-06-30/report.html"
    assert store.get_bytes(html_key).lstrip().lower().startswith(b"<!doctype html") or b"<html" in store.get_bytes(html_key)[:500]


def test_second_run_of_the_same_date_leaves_identical_content(demand_run, dagbag):
    store, spec, _, _ = demand_run
    before = _bucket_snapshot(store, spec.name + "/")
    _run(dagbag.dags["demand_forecast"], RUN_DATE)
    after = _bucket_snapshot(store, spec.name + "/")
    assert sorted(after) == sorted(before), "rerun added or removed objects"
    changed = sorted(k for k in before if before[k] != after[k] and not k.endswith((".html", "evidently_snapshot.json")))
    assert changed == [], f"rerun changed objects: {changed}"
