"""Injected drift is detected against the serving champion's reference; a date before it is not flagged.

The world's source has drift_start = DRIFT_START (demand x DRIFT_FACTOR, prices x sqrt, promotions
likelier). The world's full run for CHAMPION_DATE (before the drift) created the champion and monitored
its own date. Here the drifted date DRIFTED_DATE is landed, built, validated and monitored without
training, so the champion trained before the drift is the model whose reference it is compared with.
"""

from __future__ import annotations

import pytest
import reliability_support as rs

from mlplatform import pipeline, registry
from mlplatform.publishing import read_manifest
from mlplatform.storage import Layout

pytestmark = pytest.mark.reliability

UNITS_COLUMNS = {"units_sold", "lag_7", "rolling_mean_7"}  # all move with demand within 3 weeks


@pytest.fixture(scope="module")
def drifted(module_world_copy):
    copy = module_world_copy
    results = rs.full_run(copy.spec, rs.DRIFTED_DATE, copy.settings, copy.store,
                          stages=("land_raw", "build_features", "validate_features", "monitor_drift"))
    return copy, results


def test_drift_is_detected_on_units_columns_for_a_date_after_the_drift_start(drifted):
    copy, results = drifted
    drift = results["monitor_drift"]
    assert drift["model_version"] == registry.champion(copy.store, Layout(copy.spec.name))["version"]
    assert drift["drift_detected"] is True, drift
    assert drift["drifted_share"] >= copy.spec.monitoring.drift_share
    assert UNITS_COLUMNS <= set(drift["drifted_columns"]), drift["drifted_columns"]


def test_no_drift_is_reported_for_a_date_before_the_drift_start(drifted):
    copy, _ = drifted
    results = rs.full_run(copy.spec, rs.PRE_DRIFT_DATE, copy.settings, copy.store,
                          stages=("build_features", "validate_features", "monitor_drift"))
    drift = results["monitor_drift"]
    assert drift["model_version"] == registry.champion_on(copy.store, Layout(copy.spec.name), rs.CHAMPION_DATE)["version"]
    assert drift["drift_detected"] is False, drift
    assert drift["drifted_share"] < copy.spec.monitoring.drift_share
    stored = copy.store.get_json(rs.key_of(copy.store, drift["summary_uri"]))
    assert stored["drift_detected"] is False


def test_the_first_run_has_no_champion_to_compare_with_and_says_so(world):
    drift = world.runs[rs.CHAMPION_DATE]["monitor_drift"]
    assert drift["model_version"] is None and "no champion before" in drift["skipped"]


def test_drift_summary_and_html_report_are_stored_under_the_monitoring_partition(drifted):
    copy, results = drifted
    prefix = f"{copy.spec.name}/monitoring/run_date={rs.DRIFTED_DATE.isoformat()}/"
    keys = set(copy.store.list_keys(prefix))
    assert {prefix + pipeline.DRIFT_FILE, prefix + pipeline.DRIFT_HTML} <= keys, keys
    assert rs.key_of(copy.store, results["monitor_drift"]["summary_uri"]) == prefix + pipeline.DRIFT_FILE
    assert rs.key_of(copy.store, results["monitor_drift"]["report_uri"]) == prefix + pipeline.DRIFT_HTML
    summary = copy.store.get_json(prefix + pipeline.DRIFT_FILE)
    assert summary["drift_detected"] is True
    assert summary["run_date"] == rs.DRIFTED_DATE.isoformat()
    assert summary["model_version"] == results["monitor_drift"]["model_version"]
    assert summary["current_window"]["end"] == rs.DRIFTED_DATE.isoformat()
    assert set(summary["drifted_columns"]) == set(results["monitor_drift"]["drifted_columns"])
    html = copy.store.get_bytes(prefix + pipeline.DRIFT_HTML)
    assert b"<html" in html[:2000].lower()


def test_publication_for_the_drifted_date_records_the_drift_verdict(drifted):
    copy, results = drifted
    with rs.single_openmp_thread():
        published = pipeline.score_and_publish(copy.spec, rs.DRIFTED_DATE, copy.store)
    manifest = read_manifest(copy.store, Layout(copy.spec.name).forecasts(rs.DRIFTED_DATE))
    assert published["model_version"] == results["monitor_drift"]["model_version"]
    assert manifest["drift"]["drift_detected"] is True
    assert manifest["drift"]["drifted_columns"] == results["monitor_drift"]["drifted_columns"]


def test_drift_triggers_a_retrain_whose_promotion_decision_is_recorded_and_audited(drifted):
    copy, results = drifted
    layout = Layout(copy.spec.name)
    champion_before = registry.champion(copy.store, layout)["version"]
    events_before = len(registry.audit_log(copy.store, layout))
    pipeline.evaluate_accuracy(copy.spec, rs.DRIFTED_DATE, copy.store)
    decision = pipeline.decide_retrain(copy.spec, rs.DRIFTED_DATE, copy.store)
    assert decision["retrain"] is True
    assert "drift" in [t["trigger"] for t in decision["triggers"]], decision
    with rs.single_openmp_thread():
        trained = pipeline.train_model(copy.spec, rs.DRIFTED_DATE, copy.store, actor="test:drift")
    meta = registry.read_metadata(copy.store, layout, trained["version"])
    checks = meta["decision"]["checks"]
    assert checks["champion"]["champion"] == champion_before  # compared with the pre-drift champion
    assert meta["metrics"]["champion"]["n_eval_rows"] > 0
    [event] = registry.audit_log(copy.store, layout)[events_before:]
    assert event["to_version"] == trained["version"] and event["actor"] == "test:drift"
    assert event["reason"] == meta["decision"]["reason"]
    assert event["alias"] == ("champion" if meta["decision"]["promoted"] else "challenger")
    stored = copy.store.get_json(f"{layout.lifecycle(rs.DRIFTED_DATE)}/{pipeline.RETRAIN_FILE}")
    assert stored["retrain"] is True and stored["champion"] == champion_before
