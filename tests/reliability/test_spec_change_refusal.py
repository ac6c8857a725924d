"""Models served only within their contract: a spec change the champion cannot serve never publishes
rows the champion was not trained for.

The world's warehouse and bucket (real DuckDB, real dbt, real S3 server) hold a champion trained for a
14-day horizon. The spec is then changed to forecast 7 days. Scoring with the old champion is refused
before anything is written, naming the mismatch and the ways out; a full run instead retrains (the
`spec_changed` trigger), judges the new version against the baseline alone (the old champion cannot be
compared on rows it cannot forecast), promotes it and publishes 7 periods per series.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
import reliability_support as rs

from mlplatform import registry
from mlplatform.errors import SpecError
from mlplatform.publishing import read_manifest, read_published
from mlplatform.serving_contract import unservable_champions
from mlplatform.storage import Layout

pytestmark = pytest.mark.reliability

LATER = rs.CHAMPION_DATE + timedelta(days=1)
NEW_HORIZON = 7


def shorter_horizon(spec):
    return spec.model_copy(update={"forecast": spec.forecast.model_copy(update={"horizon": NEW_HORIZON})})


def test_the_spec_check_reports_a_champion_the_edited_spec_breaks_before_any_run(world):
    assert unservable_champions([world.spec], world.store) == {}
    [(name, [version, problem])] = unservable_champions([shorter_horizon(world.spec)], world.store).items()
    assert name == world.spec.name and version == registry.champion(world.store, Layout(name))["version"]
    assert problem.startswith("forecast.horizon")


def test_scoring_refuses_a_champion_trained_for_another_horizon_and_publishes_nothing(world_copy):
    world = world_copy
    spec = shorter_horizon(world.spec)
    layout = Layout(spec.name)
    champion = registry.champion_on(world.store, layout, LATER)
    assert champion["horizon"] == world.spec.horizon != NEW_HORIZON
    before = rs.bucket_contents(world.store, layout.forecasts(rs.CHAMPION_DATE))
    calls = rs.stage_calls(spec, LATER, world.settings, world.store)
    for stage in ("land_raw", "build_features", "validate_features"):
        calls[stage]()
    with pytest.raises(SpecError) as refused:
        calls["score_and_publish"]()
    message = str(refused.value)
    assert champion["version"] in message
    assert f"forecast.horizon: trained for {world.spec.horizon} periods, the spec now says {NEW_HORIZON}" in message
    assert "retrain with the new spec" in message and "restore the spec" in message
    assert not rs.bucket_contents(world.store, layout.forecasts(LATER))  # nothing half-written
    assert rs.bucket_contents(world.store, layout.forecasts(rs.CHAMPION_DATE)) == before  # nothing lost


def test_a_run_under_the_changed_spec_retrains_and_publishes_the_new_horizon(world_copy):
    world = world_copy
    spec = shorter_horizon(world.spec)
    layout = Layout(spec.name)
    old = registry.champion_on(world.store, layout, LATER)
    runs = rs.full_run(spec, LATER, world.settings, world.store)
    triggers = {t["trigger"]: t["detail"] for t in runs["decide_retrain"]["triggers"]}
    assert "spec_changed" in triggers and "forecast.horizon" in triggers["spec_changed"]
    decision = runs["train_model"]["decision"]
    assert decision["promoted"] is True, decision["reason"]
    assert f"champion {old['version']} cannot serve the current spec" in decision["reason"]
    published = runs["score_and_publish"]
    assert published["model_version"] == runs["train_model"]["version"] != old["version"]
    rows = read_published(world.store, layout.forecasts(LATER))
    assert len(rows) == rs.N_SERIES * NEW_HORIZON
    assert read_manifest(world.store, layout.forecasts(LATER))["horizon"] == NEW_HORIZON
