"""The finance (forecast, 90 days, monthly roll-up) and credit-risk (classification) DAGs end to end.

Both run through dag.test() on the real S3 server and real dbt-duckdb, from specs and dbt models only:
no use-case-specific Python. The roll-up consumer DAG then reads the finance partition it is scheduled on.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from dag_runs import run_dag

from mlplatform import registry
from mlplatform.publishing import read_manifest, read_published
from mlplatform.settings import load_settings
from mlplatform.spec import get_spec
from mlplatform.storage import Layout, ObjectStore

pytestmark = pytest.mark.integration

RUN_DATE = datetime(2025, 6, 30, tzinfo=UTC)


def _run(dag, **kwargs) -> dict[str, str]:
    return run_dag(dag, RUN_DATE, **kwargs)


@pytest.fixture(scope="module")
def store(s3_server) -> ObjectStore:
    return ObjectStore(s3_server.client(), load_settings().bucket)


@pytest.fixture(scope="module")
def finance_run(dagbag, store):
    _run(dagbag.dags["revenue_forecast"])
    return get_spec("revenue_forecast")


@pytest.fixture(scope="module")
def risk_run(dagbag, store):
    _run(dagbag.dags["credit_risk"])
    return get_spec("credit_risk")


def test_finance_publishes_90_days_per_business_unit_and_region_from_a_model_beating_its_baseline(finance_run, store):
    spec, layout = finance_run, Layout("revenue_forecast")
    manifest = read_manifest(store, layout.forecasts(RUN_DATE.date()))
    frame = read_published(store, layout.forecasts(RUN_DATE.date()))
    n_series = spec.source.params["n_business_units"] * spec.source.params["n_regions"]
    assert manifest["kind"] == "forecast" and len(frame) == manifest["row_count"] == n_series * 90
    assert frame["target_date"].min() == RUN_DATE.date() + timedelta(days=1)
    assert frame["target_date"].max() == RUN_DATE.date() + timedelta(days=90)
    champion = registry.champion(store, layout)
    m = champion["metrics"]
    assert m["metric"] == "wape" and m["beats_baseline"] and m["improvement"] >= spec.backtest.min_improvement
    assert set(frame["model_version"]) == {champion["version"]}


def test_publishing_records_an_asset_event_naming_the_run_date_and_partition(finance_run):
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        events = session.execute(
            select(AssetEvent.extra, AssetEvent.source_task_id).join(AssetModel, AssetModel.id == AssetEvent.asset_id)
            .where(AssetModel.name == "revenue_forecast_forecasts")).all()
    extras = [e.extra for e in events if e.source_task_id == "score_and_publish"]
    assert {"run_date": "2025-06-30", "rows": 1080}.items() <= extras[-1].items()
    assert extras[-1]["partition_uri"].endswith("/revenue_forecast/forecasts/run_date=2025-06-30/")


def test_the_rollup_consumer_publishes_monthly_totals_that_add_up_to_the_daily_forecasts(finance_run, dagbag, store):
    _run(dagbag.dags["revenue_forecast__rollups"], run_conf={"run_date": RUN_DATE.date().isoformat()})
    layout = Layout("revenue_forecast")
    daily = read_published(store, layout.forecasts(RUN_DATE.date()))
    monthly = read_published(store, layout.rollup("monthly", RUN_DATE.date()))
    manifest = read_manifest(store, layout.rollup("monthly", RUN_DATE.date()))
    assert manifest["source_partition"].endswith("/revenue_forecast/forecasts/run_date=2025-06-30/")
    assert monthly["forecast"].sum() == pytest.approx(daily["p50"].sum())
    july = monthly[pd.to_datetime(monthly["period_start"]) == pd.Timestamp("2025-07-01")]
    assert len(july) == daily.groupby(["business_unit", "region"]).ngroups and july["complete_period"].all()
    september = monthly[pd.to_datetime(monthly["period_start"]) == pd.Timestamp("2025-09-01")]
    assert (~september["complete_period"]).all() and (september["days_forecast"] == 28).all()


def test_risk_scores_every_active_customer_with_a_calibrated_probability(risk_run, store):
    spec, layout = risk_run, Layout("credit_risk")
    manifest = read_manifest(store, layout.forecasts(RUN_DATE.date()))
    frame = read_published(store, layout.forecasts(RUN_DATE.date()))
    assert manifest["kind"] == "classification" and manifest["columns"] == ["probability", "risk_band"]
    assert frame["customer_id"].is_unique and len(frame) > 100
    assert frame["probability"].between(0, 1).all() and set(frame["risk_band"]) <= {"low", "medium", "high"}
    lookback = RUN_DATE.date() - timedelta(days=spec.tabular.score_lookback_days)
    assert (pd.to_datetime(frame["observation_date"]).dt.date > lookback).all()
    assert (pd.to_datetime(frame["observation_date"]).dt.date <= RUN_DATE.date()).all()


def test_risk_model_is_compared_with_the_logistic_baseline_on_log_loss_auc_and_calibration(risk_run, store):
    champion = registry.champion(store, Layout("credit_risk"))
    m = champion["metrics"]
    assert m["metric"] == "log_loss" and m["beats_baseline"], m
    for key in ("log_loss", "brier", "roc_auc", "calibration_error"):
        assert m["model"][key] is not None and m["baseline"][key] is not None
    assert m["model"]["roc_auc"] > 0.7 and m["model"]["calibration_error"] < 0.05
    card = store.get_bytes(champion["artifact"]["model_card_uri"].split(f"s3://{store.bucket}/")[1]).decode()
    assert "| log_loss |" in card and "credit-risk-analytics" in card


def test_a_stale_review_feed_publishes_risk_scores_flagged_stale(risk_run, store):
    """``freshness.on_error: publish_stale`` on the credit use case, whose scores need no daily
    completeness: reviews landed through 07-01 only, run 07-05 (newest review 4 days old, error after 2).
    The run goes on, scores with the champion and publishes with ``stale: true`` and the verdict."""
    from datetime import date

    from mlplatform import pipeline
    from mlplatform.spec import FreshnessSpec, FreshnessThreshold

    freshness = FreshnessSpec(sources={"credit_reviews": FreshnessThreshold(warn_after_days=1, error_after_days=2)},
                              on_error="publish_stale")
    spec = risk_run.model_copy(update={"freshness": freshness})
    settings, landed_to, run_date = load_settings(), date(2025, 7, 1), date(2025, 7, 5)
    pipeline.land_raw(spec, landed_to, settings, store)
    verdict = pipeline.check_freshness(spec, run_date, settings, store)
    assert (verdict["status"], verdict["blocking"], verdict["stale"]) == ("error", False, True)
    assert verdict["sources"]["credit_reviews"]["newest"] == landed_to.isoformat()
    pipeline.build_features(spec, run_date, settings, store)
    pipeline.validate_features(spec, run_date, store)
    published = pipeline.score_and_publish(spec, run_date, store)
    manifest = read_manifest(store, Layout(spec.name).forecasts(run_date))
    assert published["stale"] is True and manifest["stale"] is True
    assert manifest["freshness"]["sources"]["credit_reviews"] == {"newest": "2025-07-01", "age_days": 4,
                                                                  "status": "error"}
    assert pipeline.run_summary(spec, run_date, store)["stale"] is True
