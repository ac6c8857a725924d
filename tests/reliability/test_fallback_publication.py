"""Never a silent gap: a use case whose first model is refused by the gate still publishes, flagged.

The world's warehouse (real DuckDB, real dbt snapshots) with an EMPTY registry (a fresh bucket), and a
spec whose gate no model can pass (min_improvement 0.99): the first run trains, the version is refused,
and the run publishes the best forecast that needs no learning (the seasonal naive or a statistical
candidate), marked in every row, the manifest, the summary and the model card. A later run whose model
clears the gate replaces it, and its rows are no longer flagged.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
import reliability_support as rs

from mlplatform import pipeline, registry
from mlplatform.errors import ModelNotAvailableError
from mlplatform.publishing import read_manifest, read_published
from mlplatform.storage import Layout

pytestmark = pytest.mark.reliability

FIRST = rs.CHAMPION_DATE
LATER = rs.CHAMPION_DATE + timedelta(days=1)


def unpassable(spec):
    return spec.model_copy(update={"backtest": spec.backtest.model_copy(update={"min_improvement": 0.99})})


@pytest.fixture(scope="module")
def refused(module_world_copy, s3_server):
    """A fresh bucket: no champion; the first run's model is refused, and the run still publishes."""
    world = module_world_copy
    store = rs.new_store(s3_server.client())
    spec = unpassable(world.spec)
    runs = rs.full_run(spec, FIRST, world.settings, store)
    return spec, store, world.settings, runs


def test_a_refused_first_model_still_publishes_a_flagged_fallback(refused):
    spec, store, _, runs = refused
    layout = Layout(spec.name)
    decision = runs["train_model"]["decision"]
    assert decision["promoted"] is False and "not promoted" in decision["reason"]
    assert registry.champion_on(store, layout, FIRST) is None

    published = runs["score_and_publish"]
    assert published["fallback"] is True and published["rows"] > 0
    meta = registry.read_metadata(store, layout, published["model_version"])
    assert meta["decision"]["fallback"] is True and meta["decision"]["eligible"] is False
    assert meta["fallback_for"] == runs["train_model"]["version"]
    assert meta["model"]["candidate"] in ("seasonal_naive", "auto_ets", "auto_theta")

    rows = read_published(store, layout.forecasts(FIRST))
    assert rows["is_fallback"].all()
    assert (rows["p10"] <= rows["p50"]).all() and (rows["p50"] <= rows["p90"]).all()
    manifest = read_manifest(store, layout.forecasts(FIRST))
    assert manifest["fallback"]["refused_version"] == runs["train_model"]["version"]
    assert "fallback" in manifest["model"]["selected_by"]
    assert "is_fallback" in manifest["columns"]
    summary = pipeline.run_summary(spec, FIRST, store)
    assert summary["fallback"]["candidate"] == meta["model"]["description"]
    card = store.get_bytes(rs.key_of(store, meta["artifact"]["model_card_uri"])).decode()
    assert "FALLBACK" in card and "## Candidates" in card


def test_the_refused_version_cannot_be_pinned_and_the_message_says_why(refused):
    spec, store, _, runs = refused
    with pytest.raises(ModelNotAvailableError, match="may not serve"):
        pipeline.score_and_publish(spec, FIRST, store, pinned=runs["train_model"]["version"])


def test_a_rerun_of_the_date_republishes_the_same_fallback_bytes(refused):
    spec, store, settings, _ = refused
    layout = Layout(spec.name)
    before = rs.bucket_contents(store, layout.forecasts(FIRST))
    with rs.single_openmp_thread():
        pipeline.train_model(spec, FIRST, store)
        pipeline.score_and_publish(spec, FIRST, store)
    assert rs.bucket_contents(store, layout.forecasts(FIRST)) == before


def test_a_model_that_clears_the_gate_replaces_the_fallback(refused, module_world_copy):
    spec, store, settings, _ = refused
    runs = rs.full_run(module_world_copy.spec, LATER, settings, store)  # the shipped gate (5 % over naive)
    assert runs["train_model"]["decision"]["promoted"] is True
    assert runs["score_and_publish"]["fallback"] is False
    rows = read_published(store, Layout(spec.name).forecasts(LATER))
    assert not rows["is_fallback"].any()
    # the earlier date keeps what it served then: the fallback
    assert registry.serving_model(store, Layout(spec.name), FIRST)["decision"].get("fallback") is True
