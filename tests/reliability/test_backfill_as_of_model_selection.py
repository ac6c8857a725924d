"""A backfill over several past dates serves each date with the version that was champion on that date.

Scenario (its own warehouse and bucket): daily runs on 2025-06-02, 06-05, 06-09 and 06-12 with weekly
retraining (retrain.every_days 7). 06-02 trains (no champion); 06-05 and 06-12 are normal days; 06-09
retrains on schedule, and the gate decides whether its version becomes champion. Then, with the champion
moved on by a later run (06-20), the dates are backfilled: each must reproduce its original partition
byte for byte, with the model the audit log says was champion on that date.
"""

from __future__ import annotations

from datetime import date

import pytest
import reliability_support as rs

from mlplatform import pipeline, registry
from mlplatform.errors import ModelNotAvailableError
from mlplatform.storage import Layout

pytestmark = pytest.mark.reliability

DATES = [date(2025, 6, 2), date(2025, 6, 5), date(2025, 6, 9), date(2025, 6, 12)]
LATER = date(2025, 6, 20)
SKIP = ("evidently_snapshot.json", "report.html")  # Evidently embeds random ids; its verdict is compared


@pytest.fixture(scope="module")
def history(s3_server, tmp_path_factory):
    spec = rs.make_spec()
    spec = spec.model_copy(update={"retrain": spec.retrain.model_copy(update={"every_days": 7})})
    settings = rs.settings_for(tmp_path_factory.mktemp("as-of") / "data")
    store = rs.new_store(s3_server.client())
    runs = {d: rs.full_run(spec, d, settings, store) for d in DATES}
    originals = {d: rs.bucket_contents(store, Layout(spec.name).forecasts(d) + "/") for d in DATES}
    runs[LATER] = rs.full_run(spec, LATER, settings, store)
    return spec, settings, store, runs, originals


def test_retraining_happens_only_when_a_trigger_fires(history):
    _, _, _, runs, _ = history
    fired = {d: [t["trigger"] for t in runs[d]["decide_retrain"]["triggers"]] for d in DATES}
    assert fired == {DATES[0]: ["no_champion"], DATES[1]: [], DATES[2]: ["schedule"], DATES[3]: []}
    assert runs[DATES[1]]["train_model"] == {"skipped": "no retraining trigger fired"}


def test_each_date_was_served_by_the_champion_of_that_date_per_the_audit_log(history):
    spec, _, store, runs, _ = history
    layout = Layout(spec.name)
    v1 = runs[DATES[0]]["train_model"]["version"]
    v2 = runs[DATES[2]]["train_model"]["version"]
    promoted = registry.read_metadata(store, layout, v2)["decision"]["promoted"]
    expected = {DATES[0]: v1, DATES[1]: v1, DATES[2]: v2 if promoted else v1, DATES[3]: v2 if promoted else v1}
    assert {d: runs[d]["score_and_publish"]["model_version"] for d in DATES} == expected
    assert {d: registry.champion_on(store, layout, d)["version"] for d in DATES} == expected
    # the gate compared 06-09's challenger with the champion going into 06-09, and said why
    checks = registry.read_metadata(store, layout, v2)["decision"]["checks"]
    assert checks["champion"]["champion"] == v1


def test_a_backfill_after_the_champion_moved_on_reproduces_every_partition(history):
    spec, settings, store, runs, originals = history
    layout = Layout(spec.name)
    current = registry.champion(store, layout)["version"]
    for d in DATES:
        again = rs.full_run(spec, d, settings, store)
        assert again["score_and_publish"]["model_version"] == runs[d]["score_and_publish"]["model_version"]
        assert rs.bucket_contents(store, layout.forecasts(d) + "/") == originals[d], d
    assert registry.champion(store, layout)["version"] == current  # the backfill moved no alias
    events = registry.audit_log(store, layout)
    assert len(events) == len({(e["alias"], e["to_version"], e["effective_date"]) for e in events})


def test_a_pinned_version_serves_later_dates_but_never_an_earlier_one(history):
    spec, _, store, runs, _ = history
    v1 = runs[DATES[0]]["train_model"]["version"]
    pinned = pipeline.score_and_publish(spec, DATES[3], store, pinned=v1)
    assert pinned["model_version"] == v1
    manifest = store.get_json(f"{Layout(spec.name).forecasts(DATES[3])}/_manifest.json")
    assert manifest["model"]["selected_by"] == f"pinned by the run ({v1})"
    later_version = runs[DATES[2]]["train_model"]["version"]
    with pytest.raises(ModelNotAvailableError, match="would leak the future"):
        pipeline.score_and_publish(spec, DATES[1], store, pinned=later_version)


def test_decayed_accuracy_on_actuals_alerts_and_triggers_a_retrain(history):
    """With a strict WAPE limit the incumbent's realised error on the published days is a breach."""
    spec, _, store, _, _ = history
    strict = spec.model_copy(update={"accuracy": spec.accuracy.model_copy(update={"max_wape": 0.05,
                                                                                  "min_rows": 10})})
    result = pipeline.evaluate_accuracy(strict, LATER, store)
    layout = Layout(spec.name)
    summary = store.get_json(f"{layout.accuracy(LATER)}/summary.json")
    assert result["realised_rows"] > 100 and summary["published_dates"] == [d.isoformat() for d in DATES]
    assert summary["serving"]["realised"]["wape"] > 0.05  # daily demand per SKU is never that predictable
    assert result["breach"] is True and "realised wape" in result["breach_reason"]
    alert = store.get_json(f"{layout.alerts()}/accuracy-{LATER.isoformat()}.json")
    assert alert["alert"] == "accuracy_decay" and alert["breach_reason"] == result["breach_reason"]
    decision = pipeline.decide_retrain(strict, LATER, store)
    assert "accuracy_decay" in [t["trigger"] for t in decision["triggers"]]
    realised = store.get_parquet(f"{layout.accuracy(LATER)}/realised.parquet")
    assert {"published_run_date", "horizon", "wape", "bias", "coverage", "n"} <= set(realised.columns)
