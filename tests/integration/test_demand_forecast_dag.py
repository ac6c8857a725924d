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


def test_lineage_answers_where_a_published_number_came_from(demand_run, capsys):
    """One command from a published partition to the model version, its training data, the dbt
    invocation, the code, the checks, the Airflow run and that run's OpenLineage events."""
    import json

    from mlplatform import cli
    from mlplatform.lineage import openlineage_file_from_env, trace

    store, spec, _, _ = demand_run
    manifest = read_manifest(store, Layout(spec.name).forecasts(RUN_DATE.date()))
    t = trace(store, spec.name, RUN_DATE.date())
    assert t["partition"]["uri"] == manifest["partition_uri"] and t["model"]["version"] == manifest["model_version"]
    assert t["training_data"]["snapshot_uri"].startswith("s3://") and t["training_data"]["fingerprint"]
    assert t["model"]["checks"]["baseline"] is True and t["model"]["approval"] is None
    assert t["dbt"]["invocation_id"] and t["dbt"]["nodes"] > 0 and t["dbt"]["manifest_hash"]
    assert t["code"]["training"]["source_hash"] and t["checks"]["validation"]["success"]
    assert t["airflow"]["dag_id"] == "demand_forecast" and t["airflow"]["run_id"]
    # Airflow's OpenLineage provider wrote the run's events to the development file transport, with the
    # task's real inputs and outputs (collected from the tasks through hook lineage).
    assert openlineage_file_from_env() is not None
    jobs = {e["job"] for e in t["openlineage"]}
    assert {"demand_forecast.build_features", "demand_forecast.score_and_publish"} <= jobs, jobs
    publish = [e for e in t["openlineage"] if e["job"] == "demand_forecast.score_and_publish"
               and e["eventType"] == "COMPLETE"]
    assert publish and any(manifest["partition_uri"].rstrip("/").split("/", 3)[-1] in o
                           for e in publish for o in e["outputs"]), publish

    assert cli.main(["lineage", spec.name, RUN_DATE.date().isoformat(), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["model"]["version"] == manifest["model_version"]
    assert cli.main(["lineage", spec.name, RUN_DATE.date().isoformat()]) == 0
    text = capsys.readouterr().out
    for line in ("partition", "model", "training", "dbt", "code", "validation", "airflow", "openlineage"):
        assert f"\n{line}" in "\n" + text, line


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
    # Per-invocation records (which dbt invocation and which Airflow run last built/published the date)
    # change by design; everything else, the manifest included, is byte-identical.
    changed = sorted(k for k in before if before[k] != after[k] and not k.endswith((".html", "evidently_snapshot.json"))
                     and "/lineage/" not in k)
    assert changed == [], f"rerun changed objects: {changed}"


def test_maintenance_dag_applies_retention_and_keeps_every_published_partition(demand_run, dagbag):
    """The daily maintenance DAG runs each use case's retention policy as of its logical date (a dry run
    by param first), stores and returns the report, and leaves every published partition readable."""
    store, spec, _, _ = demand_run
    dag = dagbag.dags["mlplatform_maintenance"]
    assert {f"retention__{name}" for name in ("demand_forecast", "credit_risk", "revenue_forecast")} <= set(dag.task_ids)
    # Before any cutoff reaches this session's data (raw from 2023 kept 1095 days, reports 400 days): the
    # shared warehouse and bucket other tests read stay whole; tests/integration/test_retention.py deletes.
    day = datetime(2025, 12, 31, tzinfo=UTC)
    key = f"{spec.name}/maintenance/run_date={day.date()}/retention.json"
    dry_day = day - timedelta(days=1)
    run_dag(dag, dry_day, run_conf={"dry_run": True})
    assert not store.exists(key.replace(str(day.date()), str(dry_day.date()))), "a dry run stores nothing"
    run_dag(dag, day, run_conf={"dry_run": False})  # explicit: dag.test() keeps the last conf's params
    report = store.get_json(key)
    assert report["use_case"] == spec.name and report["dry_run"] is False
    assert report["counts"]["objects"] == 0 and report["counts"]["raw_rows"] == 0
    assert report["policy"]["raw_days"] == 1095
    for run_date in (FIRST_DATE.date(), RUN_DATE.date()):
        frame = read_published(store, Layout(spec.name).forecasts(run_date))
        assert len(frame) > 0
    assert registry.champion(store, Layout(spec.name)) is not None
