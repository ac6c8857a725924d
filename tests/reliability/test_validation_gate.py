"""Data that dbt lets through with a warning but the GX suite marks critical stops the run for that date.

Realistic path, no tampering with snapshots: the raw rows of an already published date are re-delivered
with price spikes (``datagen.inject_faults(..., "price_spike")``: unit_price x10..x100, e.g. cents booked
as euros). dbt's checks pass (prices stay positive; its discount_pct range test has severity warn), so
build_features writes a new snapshot for the date; the GX suite's *critical*
expect_column_values_to_be_between(discount_pct, 0, 1) then fails on the negative discounts.
"""

from __future__ import annotations

import json

import pytest
import reliability_support as rs

from mlplatform import datagen, pipeline, registry
from mlplatform.errors import DataQualityError
from mlplatform.publishing import read_manifest, read_published
from mlplatform.storage import Layout

pytestmark = pytest.mark.reliability

DAY = rs.CHAMPION_DATE
EXPECTATION = "expect_column_values_to_be_between(discount_pct)"


@pytest.fixture(scope="module")
def failed_validation(module_world_copy):
    """Re-deliver DAY with price spikes, rebuild its features, and run the GX gate (which must fail)."""
    world_copy = module_world_copy
    spec, settings, store = world_copy.spec, world_copy.settings, world_copy.store
    spiked = datagen.inject_faults(rs.raw_rows(settings, DAY), "price_spike", rate=0.1, seed=5)
    rs.replace_raw_day(settings, DAY, spiked)
    built = pipeline.build_features(spec, DAY, settings, store)
    with pytest.raises(DataQualityError) as failure:
        pipeline.validate_features(spec, DAY, store)
    return world_copy, built, str(failure.value)


def test_critical_expectation_failure_raises_naming_expectation_and_offending_values(failed_validation):
    world_copy, built, message = failed_validation
    original = json.loads(world_copy.objects[f"{Layout(world_copy.spec.name).features(DAY)}/_manifest.json"])
    assert built["fingerprint"] != original["fingerprint"]  # the spiked data did reach a new snapshot
    assert built["dbt_nodes"].get("warn", 0) >= 1, built   # dbt only warned (discount_pct range)
    assert EXPECTATION in message, message
    assert f"feature snapshot for {DAY}" in message
    key = f"{Layout(world_copy.spec.name).validation(DAY)}/{pipeline.VALIDATION_FILE}"
    result = world_copy.store.get_json(key)
    row = next(r for r in result["results"] if r["expectation"] == "expect_column_values_to_be_between"
               and r["column"] == "discount_pct")
    assert row["severity"] == "critical" and row["success"] is False
    assert row["unexpected_count"] >= 1
    assert row["sample_values"] and all(v < 0 for v in row["sample_values"]), row
    assert json.dumps(row["sample_values"]) in message  # the operator sees the offending values


def test_failed_validation_result_is_stored_with_success_false_for_the_new_snapshot(failed_validation):
    world_copy, built, _ = failed_validation
    key = f"{Layout(world_copy.spec.name).validation(DAY)}/{pipeline.VALIDATION_FILE}"
    result = world_copy.store.get_json(key)
    assert result["success"] is False
    assert result["failed_critical"] >= 1
    assert result["data_fingerprint"] == built["fingerprint"]
    assert result["data_fingerprint"] != json.loads(world_copy.objects[key])["data_fingerprint"]


@pytest.mark.parametrize("stage", ["train_model", "score_and_publish"])
def test_stages_after_a_failed_validation_refuse_the_date_and_keep_the_earlier_publication(
        failed_validation, stage):
    world_copy, _, _ = failed_validation
    spec, store = world_copy.spec, world_copy.store
    layout = Layout(spec.name)
    before = rs.bucket_contents(store)

    with pytest.raises(DataQualityError, match=f"snapshot for {DAY} did not pass validation"):
        getattr(pipeline, stage)(spec, DAY, store)

    assert rs.bucket_contents(store) == before  # nothing written: no model version, no partition
    manifest_key = f"{layout.forecasts(DAY)}/_manifest.json"
    assert store.get_bytes(manifest_key) == world_copy.objects[manifest_key]
    manifest = read_manifest(store, layout.forecasts(DAY))
    frame = read_published(store, layout.forecasts(DAY))  # checksums verified against the manifest
    assert len(frame) == manifest["row_count"] and manifest["validation"]["success"] is True
    assert registry.champion(store, layout)["version"] == manifest["model_version"]
