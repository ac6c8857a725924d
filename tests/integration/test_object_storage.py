"""Storage, publishing and registry against a real S3 server (SeaweedFS on loopback)."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from mlplatform import registry
from mlplatform.errors import PlatformError, PublishError
from mlplatform.publishing import publish_partition, published_dates, read_manifest, read_published
from mlplatform.storage import Layout

pytestmark = pytest.mark.integration


def _chunks(n_chunks: int, rows: int, scale: float = 1.0):
    for i in range(n_chunks):
        yield pd.DataFrame({"series_id": [f"s{i}-{j}" for j in range(rows)], "p50": [scale * j for j in range(rows)]})


STAMP = {"use_case": "uc", "run_date": "2025-06-30", "model_version": "v1"}


def test_publish_writes_parts_then_manifest_with_checksums(object_store):
    prefix = Layout("uc").forecasts(date(2025, 6, 30))
    manifest = publish_partition(object_store, prefix, _chunks(3, 10), STAMP, {"extra": 1})
    assert manifest["row_count"] == 30 and len(manifest["files"]) == 3
    frame = read_published(object_store, prefix)
    assert len(frame) == 30 and set(frame["model_version"]) == {"v1"}
    assert published_dates(object_store, Layout("uc").forecasts_root()) == [date(2025, 6, 30)]


def test_rerun_with_same_content_leaves_identical_objects(object_store):
    prefix = Layout("uc").forecasts(date(2025, 6, 30))
    publish_partition(object_store, prefix, _chunks(2, 5), STAMP, {})
    before = {k: object_store.get_bytes(k) for k in object_store.list_keys(prefix)}
    publish_partition(object_store, prefix, _chunks(2, 5), STAMP, {})
    after = {k: object_store.get_bytes(k) for k in object_store.list_keys(prefix)}
    assert before == after


def test_rerun_with_new_content_replaces_the_partition_cleanly(object_store):
    prefix = Layout("uc").forecasts(date(2025, 6, 30))
    publish_partition(object_store, prefix, _chunks(3, 5), STAMP, {})
    publish_partition(object_store, prefix, _chunks(1, 5, scale=2.0), STAMP, {})
    keys = object_store.list_keys(prefix)
    assert len(keys) == 2  # one part + manifest: stale parts removed
    assert read_published(object_store, prefix)["p50"].max() == 8.0


def test_a_failed_publication_leaves_the_previous_one_valid(object_store):
    prefix = Layout("uc").forecasts(date(2025, 6, 30))
    publish_partition(object_store, prefix, _chunks(2, 5), STAMP, {})
    old = read_manifest(object_store, prefix)

    def exploding():
        yield from _chunks(1, 5, scale=3.0)
        raise RuntimeError("scoring crashed half-way")

    with pytest.raises(RuntimeError):
        publish_partition(object_store, prefix, exploding(), STAMP, {})
    assert read_manifest(object_store, prefix) == old
    assert len(read_published(object_store, prefix)) == 10


def test_a_publication_refused_after_its_parts_keeps_the_previous_manifest_and_rows(object_store):
    """finalize (fields known once every part is written) may refuse: no manifest is written then."""
    prefix = Layout("uc").forecasts(date(2025, 6, 30))
    publish_partition(object_store, prefix, _chunks(2, 5), STAMP, {})
    before = read_manifest(object_store, prefix)

    def refuse() -> dict:
        raise PlatformError("2 of the 10 largest series left out")

    with pytest.raises(PlatformError, match="largest series"):
        publish_partition(object_store, prefix, _chunks(3, 5, scale=2.0), STAMP, {}, finalize=refuse)
    assert read_manifest(object_store, prefix) == before
    assert len(read_published(object_store, prefix)) == 10
    listed = {f["key"] for f in before["files"]} | {f"{prefix}/_manifest.json"}
    assert set(object_store.list_keys(prefix)) == listed  # the refused attempt's parts are gone
    late = publish_partition(object_store, prefix, _chunks(1, 5), STAMP, {}, finalize=lambda: {"series": {"n": 5}})
    assert read_manifest(object_store, prefix)["series"] == {"n": 5} == late["series"]


def test_publishing_nothing_is_refused_and_keeps_the_previous_partition(object_store):
    prefix = Layout("uc").forecasts(date(2025, 6, 30))
    publish_partition(object_store, prefix, _chunks(1, 5), STAMP, {})
    with pytest.raises(PublishError, match="no rows"):
        publish_partition(object_store, prefix, iter([]), STAMP, {})
    assert len(read_published(object_store, prefix)) == 5


def test_tampered_part_is_detected_by_the_consumer_read(object_store):
    prefix = Layout("uc").forecasts(date(2025, 6, 30))
    manifest = publish_partition(object_store, prefix, _chunks(1, 5), STAMP, {})
    object_store.put_bytes(manifest["files"][0]["key"], b"garbage")
    with pytest.raises(PublishError, match="checksum"):
        read_published(object_store, prefix)


def _meta(version: str, end: str, eligible: bool = True, promoted: bool = True) -> dict:
    return {"version": version, "training_window": {"start": "2024-01-01", "end": end},
            "metrics": {"metric": "wape", "model": {"wape": 0.4}, "baseline": {"wape": 0.5}},
            "decision": {"eligible": eligible, "promoted": promoted, "reason": "test"}}


def _register(store, version, end, **kw):
    reference = pd.DataFrame({"x": [1.0, 2.0]})
    return registry.register(store, Layout("uc"), _meta(version, end, **kw), version.encode(), reference)


def test_registered_versions_are_immutable_and_idempotent(object_store):
    _, created = _register(object_store, "v1", "2025-05-31")
    _, created_again = _register(object_store, "v1", "2025-05-31")
    assert created and not created_again
    with pytest.raises(PlatformError, match="immutable"):
        registry.register(object_store, Layout("uc"), _meta("v1", "2025-05-31"), b"other", pd.DataFrame({"x": [1]}))


def test_model_bytes_are_checked_against_the_registered_checksum(object_store):
    stored, _ = _register(object_store, "v1", "2025-05-31")
    assert registry.load_model_bytes(object_store, Layout("uc"), stored) == b"v1"
    object_store.put_bytes("uc/models/v1/model.joblib", b"tampered")
    with pytest.raises(PlatformError, match="sha256"):
        registry.load_model_bytes(object_store, Layout("uc"), stored)
