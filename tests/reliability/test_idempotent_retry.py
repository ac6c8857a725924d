"""Retrying the warehouse stages (as Airflow does after a failure) reproduces the snapshot byte for byte."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import reliability_support as rs

from mlplatform import pipeline
from mlplatform.storage import Layout

pytestmark = pytest.mark.reliability

RETRY_DAY = rs.CHAMPION_DATE + timedelta(days=2)  # two days newer than anything the world landed


def _snapshot(store, spec, day) -> dict[str, bytes]:
    return rs.bucket_contents(store, Layout(spec.name).features(day) + "/")


@pytest.fixture(scope="module")
def retried(module_world_copy):
    """land_raw, land_raw, build_features, build_features for RETRY_DAY; snapshot bytes after each build."""
    spec, settings, store = module_world_copy.spec, module_world_copy.settings, module_world_copy.store
    lands = [pipeline.land_raw(spec, RETRY_DAY, settings)]
    raw_after_first = rs.raw_rows(settings)
    lands.append(pipeline.land_raw(spec, RETRY_DAY, settings))
    raw_after_second = rs.raw_rows(settings)
    builds, snapshots = [], []
    for _ in range(2):
        builds.append(pipeline.build_features(spec, RETRY_DAY, settings, store))
        snapshots.append(_snapshot(store, spec, RETRY_DAY))
    return module_world_copy, lands, (raw_after_first, raw_after_second), builds, snapshots


def test_landing_twice_lands_the_day_once(retried):
    _, lands, (raw_first, raw_second), _, _ = retried
    assert lands[0]["days_landed"] == 2 and lands[0]["rows_landed"] == 2 * rs.N_SERIES
    assert lands[1]["days_landed"] == 0 and lands[1]["rows_landed"] == 0
    assert raw_second.equals(raw_first)


def test_building_twice_gives_identical_snapshot_bytes_and_fingerprint(retried):
    _, _, _, builds, snapshots = retried
    assert builds[0]["fingerprint"] == builds[1]["fingerprint"]
    assert builds[0]["rows"] == builds[1]["rows"]
    assert len(snapshots[0]) == 3  # features.parquet, calendar.parquet, _manifest.json
    assert snapshots[0] == snapshots[1]


def test_rebuilding_an_older_date_after_newer_landings_reproduces_its_snapshot(retried):
    """A retry of an earlier date's task (after later days were landed) must not change its inputs."""
    copy, _, _, _, _ = retried
    prefix = Layout(copy.spec.name).features(rs.CHAMPION_DATE) + "/"
    original = {key: data for key, data in copy.objects.items() if key.startswith(prefix)}
    assert len(original) == 3
    rebuilt = pipeline.build_features(copy.spec, rs.CHAMPION_DATE, copy.settings, copy.store)
    assert _snapshot(copy.store, copy.spec, rs.CHAMPION_DATE) == original
    assert rebuilt["fingerprint"] == json.loads(original[prefix + "_manifest.json"])["fingerprint"]
