"""A stale source blocks the run, or publishes flagged stale, per the spec (dbt source freshness as of D).

The world's raw data is landed through 2025-06-30. Raw data is landed here only through 2025-07-03, and
the run is for 2025-07-05: the newest row is 2 days before the run date, past an error threshold of 1.
"""

from __future__ import annotations

from datetime import date

import pytest
import reliability_support as rs

from mlplatform import pipeline
from mlplatform.errors import DataQualityError, TransformError
from mlplatform.spec import FreshnessSpec, FreshnessThreshold
from mlplatform.storage import Layout

LANDED_TO, RUN_DATE = date(2025, 7, 3), date(2025, 7, 5)


def _spec(world_copy, on_error: str, warn: int | None = 1, error: int | None = 1):
    freshness = FreshnessSpec(sources={"retail_sales": FreshnessThreshold(warn_after_days=warn, error_after_days=error)},
                              on_error=on_error)
    return world_copy.spec.model_copy(update={"freshness": freshness})


def test_a_stale_source_blocks_the_run_before_anything_is_built(world_copy) -> None:
    spec, store, settings = _spec(world_copy, "block"), world_copy.store, world_copy.settings
    pipeline.land_raw(spec, LANDED_TO, settings, store)
    before = rs.bucket_contents(store)
    with pytest.raises(DataQualityError, match=r"retail_sales.*2 day\(s\) before the run date 2025-07-05"):
        pipeline.check_freshness(spec, RUN_DATE, settings, store)
    verdict = store.get_json(f"{Layout(spec.name).lifecycle(RUN_DATE)}/freshness.json")
    assert verdict["status"] == "error" and verdict["blocking"] is True
    assert verdict["sources"]["retail_sales"]["newest"] == LANDED_TO.isoformat()
    # only the verdict was written: no snapshot, no model, no partition
    assert set(rs.bucket_contents(store)) - set(before) == {f"{Layout(spec.name).lifecycle(RUN_DATE)}/freshness.json"}


def test_a_warning_never_fails_the_run(world_copy) -> None:
    spec, store, settings = _spec(world_copy, "block", warn=1, error=5), world_copy.store, world_copy.settings
    pipeline.land_raw(spec, LANDED_TO, settings, store)
    result = pipeline.check_freshness(spec, RUN_DATE, settings, store)
    assert result["status"] == "warn" and result["blocking"] is False and result["stale"] is False
    assert pipeline.run_freshness(spec, RUN_DATE, store)["messages"]


def test_publish_stale_lets_the_run_past_the_gate_but_not_past_the_completeness_tests(world_copy) -> None:
    """``on_error: publish_stale`` does not stop at the freshness gate: the verdict (stored, ``stale: true``)
    travels to the manifest of whatever is published. Daily facts two days short still cannot be published:
    dbt's completeness tests stop the build, so a stale flag never covers missing rows."""
    spec, store, settings = _spec(world_copy, "publish_stale"), world_copy.store, world_copy.settings
    pipeline.land_raw(spec, LANDED_TO, settings, store)
    result = pipeline.check_freshness(spec, RUN_DATE, settings, store)
    assert result["status"] == "error" and result["blocking"] is False and result["stale"] is True
    assert pipeline.run_freshness(spec, RUN_DATE, store)["status"] == "error"
    with pytest.raises(TransformError, match="not_null_fct_demand_features"):
        pipeline.build_features(spec, RUN_DATE, settings, store)
    assert not store.exists(f"{Layout(spec.name).forecasts(RUN_DATE)}/_manifest.json")
