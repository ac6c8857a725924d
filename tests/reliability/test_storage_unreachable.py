"""Object storage that cannot be reached fails the stage clearly and leaves every publication as it was.

The unreachable store is an ObjectStore for the *same bucket* as a working copy of the world, but its
client points at a closed loopback port (short connect/read timeouts, two attempts): what a stage sees
when the S3 endpoint is down. Afterwards the bucket is inspected through the working client.
"""

from __future__ import annotations

import pytest
import reliability_support as rs

from mlplatform import pipeline
from mlplatform.errors import PlatformError
from mlplatform.localstack import free_port
from mlplatform.publishing import read_manifest, read_published
from mlplatform.storage import Layout, ObjectStore

pytestmark = pytest.mark.reliability


@pytest.fixture
def unreachable(world_copy, s3_server):
    import boto3
    from botocore.config import Config

    endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    client = boto3.client(
        "s3", endpoint_url=endpoint, aws_access_key_id=s3_server.access_key,
        aws_secret_access_key=s3_server.secret_key, region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}, connect_timeout=1, read_timeout=2,
                      retries={"max_attempts": 2, "mode": "standard"}),
    )
    return endpoint, ObjectStore(client, world_copy.store.bucket)


def _assert_clear_endpoint_error(error: BaseException, endpoint: str) -> None:
    assert isinstance(error, PlatformError), type(error)
    assert "unreachable" in str(error) and endpoint in str(error), str(error)


def _assert_publications_intact(world_copy) -> None:
    store, layout = world_copy.store, Layout(world_copy.spec.name)
    assert rs.bucket_contents(store) == world_copy.objects  # not one object added, changed or removed
    for day in (rs.BACKFILL_DATE, rs.CHAMPION_DATE):
        manifest = read_manifest(store, layout.forecasts(day))
        assert len(read_published(store, layout.forecasts(day))) == manifest["row_count"]


def test_build_features_with_storage_down_fails_naming_the_endpoint_after_dbt_and_writes_nothing(
        world_copy, unreachable):
    endpoint, dead = unreachable
    spec = world_copy.spec
    with pytest.raises(Exception) as failure:  # noqa: B017 - the type is checked below
        pipeline.build_features(spec, rs.CHAMPION_DATE, world_copy.settings, dead)
    _assert_clear_endpoint_error(failure.value, endpoint)
    _assert_publications_intact(world_copy)


def test_score_and_publish_with_storage_down_fails_naming_the_endpoint_and_a_retry_republishes_the_same(
        world_copy, unreachable):
    endpoint, dead = unreachable
    spec, store = world_copy.spec, world_copy.store
    with pytest.raises(Exception) as failure:  # noqa: B017 - the type is checked below
        pipeline.score_and_publish(spec, rs.CHAMPION_DATE, dead)
    _assert_clear_endpoint_error(failure.value, endpoint)
    _assert_publications_intact(world_copy)

    # storage is back: the retried task publishes the same partition, byte for byte
    with rs.single_openmp_thread():
        pipeline.score_and_publish(spec, rs.CHAMPION_DATE, store)
    assert rs.bucket_contents(store) == world_copy.objects
