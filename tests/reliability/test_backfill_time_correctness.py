"""A backfill (a full run for an earlier date after a later one) uses only what was known on its date.

The world fixture ran CHAMPION_DATE (2025-06-30) and then BACKFILL_DATE (2025-06-15), in that order.
"""

from __future__ import annotations

import pandas as pd
import pytest
import reliability_support as rs

from mlplatform import registry
from mlplatform.pipeline import FEATURES_FILE
from mlplatform.publishing import read_manifest, read_published
from mlplatform.storage import Layout

pytestmark = pytest.mark.reliability


def test_backfill_model_is_trained_only_on_data_up_to_its_run_date(world):
    version = world.runs[rs.BACKFILL_DATE]["train_model"]["version"]
    meta = registry.read_metadata(world.store, Layout(world.spec.name), version)
    assert meta["trained_for_run_date"] == rs.BACKFILL_DATE.isoformat()
    assert meta["training_window"]["end"] <= rs.BACKFILL_DATE.isoformat()
    assert meta["data"]["snapshot_uri"].endswith(f"/features/run_date={rs.BACKFILL_DATE}/")
    # there was no champion as of the backfilled date: it trained and became champion *for that date* only
    assert world.runs[rs.BACKFILL_DATE]["decide_retrain"]["triggers"][0]["trigger"] == "no_champion"
    assert meta["decision"]["eligible"] is True and meta["decision"]["promoted"] is True, meta["decision"]
    assert registry.serving_model(world.store, Layout(world.spec.name), rs.BACKFILL_DATE)["version"] == version


def test_backfill_forecasts_carry_the_backfill_model_not_the_newer_champion(world):
    layout = Layout(world.spec.name)
    backfill_version = world.runs[rs.BACKFILL_DATE]["train_model"]["version"]
    champion_version = world.runs[rs.CHAMPION_DATE]["train_model"]["version"]
    assert backfill_version != champion_version

    manifest = read_manifest(world.store, layout.forecasts(rs.BACKFILL_DATE))
    frame = read_published(world.store, layout.forecasts(rs.BACKFILL_DATE))
    assert manifest["model_version"] == backfill_version
    assert manifest["model"]["training_window"]["end"] <= rs.BACKFILL_DATE.isoformat()
    assert set(frame["model_version"]) == {backfill_version}
    assert len(frame) == rs.N_SERIES * world.spec.forecast.horizon
    assert pd.to_datetime(frame["target_date"]).min().date() > rs.BACKFILL_DATE
    # no model served the days before the backfilled date, so there was no drift reference either
    assert world.runs[rs.BACKFILL_DATE]["monitor_drift"]["model_version"] is None


def test_backfill_leaves_the_current_champion_and_the_later_partition_alone(world):
    layout = Layout(world.spec.name)
    champion_version = world.runs[rs.CHAMPION_DATE]["train_model"]["version"]
    alias = world.store.get_json(layout.alias(registry.CHAMPION))
    assert alias["version"] == champion_version and alias["effective_date"] == rs.CHAMPION_DATE.isoformat()
    assert registry.champion(world.store, layout)["version"] == champion_version
    moves = [(e["to_version"], e["effective_date"]) for e in registry.audit_log(world.store, layout)]
    backfill_version = world.runs[rs.BACKFILL_DATE]["train_model"]["version"]
    assert moves == [(champion_version, rs.CHAMPION_DATE.isoformat()), (backfill_version, rs.BACKFILL_DATE.isoformat())]
    later = read_published(world.store, layout.forecasts(rs.CHAMPION_DATE))
    assert set(later["model_version"]) == {champion_version}


def test_backfill_feature_snapshot_holds_no_row_after_its_run_date(world):
    prefix = Layout(world.spec.name).features(rs.BACKFILL_DATE)
    features = world.store.get_parquet(f"{prefix}/{FEATURES_FILE}")
    manifest = world.store.get_json(f"{prefix}/_manifest.json")
    last = pd.to_datetime(features[world.spec.features.time_column]).max().date()
    assert last == rs.BACKFILL_DATE  # complete up to, and not beyond, the run date
    assert manifest["features"]["last_date"] == rs.BACKFILL_DATE.isoformat()
    # raw data up to CHAMPION_DATE was already landed when the backfill ran; none of it leaked in
    assert rs.raw_rows(world.settings)["sales_date"].max().date() >= rs.CHAMPION_DATE
