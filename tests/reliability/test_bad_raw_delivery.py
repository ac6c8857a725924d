"""A bad raw delivery stops the run at the dbt gate, and damages nothing that was there before.

The delivery for BAD_DAY (the day after the world's last landed day) arrives corrupted: the day's rows
come from the real generator, corrupted with ``datagen.inject_faults``, and are written straight into the
raw warehouse table (as an upstream loader would). The run for BAD_DAY then lands nothing (the day is
present) and its dbt build must fail on the staging test that names the problem.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
import reliability_support as rs

from mlplatform import datagen, pipeline
from mlplatform.errors import TransformError
from mlplatform.publishing import read_manifest, read_published
from mlplatform.storage import Layout

pytestmark = pytest.mark.reliability

BAD_DAY = rs.CHAMPION_DATE + timedelta(days=1)

# fault -> the dbt data test that must name it in the error
FAULT_TESTS = {
    "negative_units": "stg_retail_sales_units_sold_non_negative",
    "null_price": "stg_retail_sales_unit_price_not_null",
    "duplicate_rows": "stg_retail_sales_one_row_per_store_sku_day",
}


@pytest.mark.parametrize("fault", sorted(FAULT_TESTS))
def test_bad_raw_delivery_fails_build_features_naming_the_dbt_test_and_keeps_raw_and_publication(
        world_copy, fault):
    spec, settings, store = world_copy.spec, world_copy.settings, world_copy.store
    day_rows = datagen.generate_sales(BAD_DAY, BAD_DAY, **datagen.source_params(spec.source))
    delivery = datagen.inject_faults(day_rows, fault, rate=0.1, seed=3)
    rs.replace_raw_day(settings, BAD_DAY, delivery)
    raw_before = rs.raw_rows(settings)
    layout = Layout(spec.name)
    published_key = f"{layout.forecasts(rs.CHAMPION_DATE)}/_manifest.json"

    landed = pipeline.land_raw(spec, BAD_DAY, settings)
    with pytest.raises(TransformError) as failure:
        pipeline.build_features(spec, BAD_DAY, settings, store)

    message = str(failure.value)
    assert FAULT_TESTS[fault] in message, message
    assert f"as of {BAD_DAY.isoformat()}" in message and repr(spec.name) in message
    # the raw table is untouched: same rows (bad ones included), nothing deleted or rewritten
    assert landed["rows_landed"] == 0
    raw_after = rs.raw_rows(settings)
    assert len(raw_after) == len(raw_before)
    assert raw_after.equals(raw_before)
    # no snapshot for the bad day, and the earlier publication is byte-identical and still readable
    assert not store.list_keys(layout.features(BAD_DAY) + "/")
    assert rs.bucket_contents(store) == world_copy.objects
    assert store.get_bytes(published_key) == world_copy.objects[published_key]
    manifest = read_manifest(store, layout.forecasts(rs.CHAMPION_DATE))
    frame = read_published(store, layout.forecasts(rs.CHAMPION_DATE))
    assert len(frame) == manifest["row_count"] == rs.N_SERIES * spec.forecast.horizon
