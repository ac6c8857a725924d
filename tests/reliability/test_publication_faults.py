"""Faults while a partition is being published: consumers never see a partial partition, nothing is lost.

The guarantee under test is the publication protocol (mlplatform.publishing): content-addressed parts
first, ``_manifest.json`` last in one PUT, unlisted parts removed only after it. Each fault hits the
scoring task of a date that is already published (a rerun, as after a clear in the UI), so "the old
manifest still stands and every file it lists is readable" is checked after the fault, and the retry
must publish a complete partition with the same rows.

Faults are real: the S3 server process is stopped, the worker process is SIGKILLed, runs really overlap.
What triggers them at the right moment is a hook on the store's ``put_bytes`` (the only injected code).
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import textwrap
import threading

import pandas as pd
import pytest
import reliability_support as rs

from mlplatform import pipeline
from mlplatform.localstack import SeaweedS3
from mlplatform.publishing import read_manifest, read_published
from mlplatform.storage import Layout, ObjectStore

pytestmark = pytest.mark.reliability

CHUNK_ROWS = 100  # 48 series x 14 days = 672 rows -> 7 parts, so a fault can land between two of them


def _small_parts(spec):
    """The spec with parts of CHUNK_ROWS rows (below the spec's minimum: model_copy does not validate)."""
    return spec.model_copy(update={"publish": spec.publish.model_copy(update={"chunk_rows": CHUNK_ROWS})})


def _is_part(key: str) -> bool:
    return "/forecasts/" in key and "/part-" in key


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    keys = ["series_id", "target_date"] if "series_id" in frame.columns else list(frame.columns[:3])
    return frame.sort_values(keys).reset_index(drop=True)


def _assert_old_publication_stands(store: ObjectStore, prefix: str, old_manifest: dict,
                                   old_rows: pd.DataFrame) -> None:
    """The consumer's view is exactly the previous publication: same manifest, every listed file intact."""
    assert read_manifest(store, prefix) == old_manifest
    pd.testing.assert_frame_equal(_sorted(read_published(store, prefix)), _sorted(old_rows))


def _assert_complete_republication(store: ObjectStore, prefix: str, old_rows: pd.DataFrame) -> dict:
    """A complete new partition: manifest lists every part present (nothing else), same rows as before."""
    manifest = read_manifest(store, prefix)
    listed = {f["key"] for f in manifest["files"]}
    present = {k for k in store.list_keys(prefix + "/") if not k.endswith("_manifest.json")}
    assert present == listed and len(listed) == -(-len(old_rows) // CHUNK_ROWS)
    pd.testing.assert_frame_equal(_sorted(read_published(store, prefix)), _sorted(old_rows))
    return manifest


# ------------------------------------------------------------------------------ S3 stops mid-scoring


class _StopsServerAfterParts(ObjectStore):
    """Stops the real S3 server process right before the (n+1)-th forecast part is written."""

    def __init__(self, client, bucket: str, server: SeaweedS3, parts_before_fault: int) -> None:
        super().__init__(client, bucket)
        self.server, self.parts, self.limit = server, 0, parts_before_fault

    def put_bytes(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> str:
        if _is_part(key):
            self.parts += 1
            if self.parts == self.limit + 1:
                self.server.stop()
        return super().put_bytes(key, data, content_type)


@pytest.fixture
def private_s3(world_copy, tmp_path):
    """A SeaweedFS server of this test's own (it gets stopped) holding a copy of the world's bucket."""
    server = SeaweedS3(tmp_path / "s3", "mlpfault" + secrets.token_hex(4), secrets.token_urlsafe(24),
                       buckets=(world_copy.store.bucket,))
    server.start(timeout=90)
    store = ObjectStore(server.client(), world_copy.store.bucket)
    for key, data in world_copy.objects.items():
        store.put_bytes(key, data)
    yield server, store
    server.stop()


def _short_timeout_client(server: SeaweedS3):
    import boto3
    from botocore.config import Config

    return boto3.client("s3", endpoint_url=server.endpoint_url, aws_access_key_id=server.access_key,
                        aws_secret_access_key=server.secret_key, region_name="us-east-1",
                        config=Config(s3={"addressing_style": "path"}, connect_timeout=2, read_timeout=5,
                                      retries={"max_attempts": 2, "mode": "standard"}))


def test_s3_stopping_mid_publication_leaves_the_old_manifest_and_the_retry_publishes_a_full_partition(
        world_copy, private_s3):
    server, store = private_s3
    spec, day = _small_parts(world_copy.spec), rs.CHAMPION_DATE
    prefix = Layout(spec.name).forecasts(day)
    old_manifest, old_rows = read_manifest(store, prefix), read_published(store, prefix)

    faulty = _StopsServerAfterParts(_short_timeout_client(server), store.bucket, server, parts_before_fault=2)
    with rs.single_openmp_thread(), pytest.raises(Exception, match=server.endpoint_url.split("//")[1]):
        pipeline.score_and_publish(spec, day, faulty)
    # The server really went away mid-publication. Parts are uploaded on a background thread while the
    # next chunk scores, so the part queued behind the failed one may still be attempted (3 or 4 tries).
    assert faulty.parts in (3, 4) and server.process is None

    server.start(timeout=90)  # S3 is back (same data directory and ports)
    _assert_old_publication_stands(store, prefix, old_manifest, old_rows)
    written = [k for k in store.list_keys(prefix + "/") if _is_part(k) and k not in
               {f["key"] for f in old_manifest["files"]}]
    assert len(written) == 2  # the parts written before the fault exist, but no manifest lists them

    with rs.single_openmp_thread():
        pipeline.score_and_publish(spec, day, store)  # the task's retry
    _assert_complete_republication(store, prefix, old_rows)


# ------------------------------------------------------------------------- SIGKILL mid-write (worker)

_KILLED_WORKER = textwrap.dedent("""
    import json, os, signal, sys
    from datetime import date
    from mlplatform import pipeline
    from mlplatform.spec import UseCaseSpec
    from mlplatform.storage import ObjectStore, s3_client

    cfg = json.loads(sys.argv[1])
    parts = 0
    original = ObjectStore.put_bytes

    def put_bytes(self, key, data, content_type="application/octet-stream"):
        global parts
        if "/forecasts/" in key and "/part-" in key:
            parts += 1
            if parts == cfg["kill_at_part"]:
                os.kill(os.getpid(), signal.SIGKILL)  # the worker dies with this part half-way out
        return original(self, key, data, content_type)

    ObjectStore.put_bytes = put_bytes
    store = ObjectStore(s3_client(cfg["endpoint"], cfg["key"], cfg["secret"]), cfg["bucket"])
    spec = UseCaseSpec.model_validate_json(cfg["spec"])
    spec = spec.model_copy(update={"publish": spec.publish.model_copy(update={"chunk_rows": cfg["chunk_rows"]})})
    pipeline.score_and_publish(spec, date.fromisoformat(cfg["day"]), store)
""")


def test_a_worker_killed_mid_write_leaves_the_old_manifest_and_the_retry_publishes_a_full_partition(
        world_copy, s3_server):
    spec, day, store = _small_parts(world_copy.spec), rs.CHAMPION_DATE, world_copy.store
    prefix = Layout(spec.name).forecasts(day)
    old_manifest, old_rows = read_manifest(store, prefix), read_published(store, prefix)
    cfg = {"endpoint": s3_server.endpoint_url, "key": s3_server.access_key, "secret": s3_server.secret_key,
           "bucket": store.bucket, "spec": world_copy.spec.model_dump_json(), "chunk_rows": CHUNK_ROWS,
           "day": day.isoformat(), "kill_at_part": 4}
    worker = subprocess.run([sys.executable, "-c", _KILLED_WORKER, json.dumps(cfg)], capture_output=True,
                            text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert worker.returncode == -signal.SIGKILL, worker.stderr[-2000:]

    _assert_old_publication_stands(store, prefix, old_manifest, old_rows)
    with rs.single_openmp_thread():
        pipeline.score_and_publish(spec, day, store)
    _assert_complete_republication(store, prefix, old_rows)


# -------------------------------------------------------------------------- the same date, concurrently


def test_concurrent_runs_of_one_date_publish_one_consistent_partition(world_copy):
    """Deterministic, content-addressed keys: overlapping runs write the same bytes to the same keys, and
    whichever manifest lands last lists exactly the parts that exist (no duplicate, no mixed output)."""
    spec, day, store = _small_parts(world_copy.spec), rs.CHAMPION_DATE, world_copy.store
    prefix = Layout(spec.name).forecasts(day)
    old_rows = read_published(store, prefix)
    errors: list[BaseException] = []
    start = threading.Barrier(3)

    def run() -> None:
        try:
            start.wait()
            pipeline.score_and_publish(spec, day, store)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    with rs.single_openmp_thread():
        threads = [threading.Thread(target=run) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=300)
    assert not errors, errors
    manifest = _assert_complete_republication(store, prefix, old_rows)

    before = rs.bucket_contents(store, prefix + "/")
    with rs.single_openmp_thread():
        pipeline.score_and_publish(spec, day, store)  # a lone run afterwards changes nothing
    assert rs.bucket_contents(store, prefix + "/") == before
    assert read_manifest(store, prefix) == manifest


# ------------------------------------------------------------------------------- three reruns, same bytes

def _comparable(objects: dict[str, bytes]) -> dict[str, bytes]:
    """Every object but Evidently's HTML report and snapshot, which embed random element ids (the verdict,
    drift.json, and the monitoring manifest are compared), and dbt's per-invocation record under lineage/
    (a new invocation id per rebuild, by design; the manifest's link to it is compared)."""
    return {k: v for k, v in objects.items()
            if not ("/monitoring/" in k and not k.endswith(("drift.json", "_manifest.json")))
            and "/lineage/" not in k}


def test_three_full_reruns_of_a_date_leave_identical_objects(world_copy):
    """Every stage of the world's last run (BACKFILL_DATE) again, three times: no object added, removed or
    changed, so the whole bucket equals the original run's. (A rerun of CHAMPION_DATE after that
    backfill legitimately differs: the backfill gave 06-30 an incumbent it did not have at first.)"""
    spec, store, settings = world_copy.spec, world_copy.store, world_copy.settings
    snapshots = []
    for _ in range(3):
        rs.full_run(spec, rs.BACKFILL_DATE, settings, store)
        snapshots.append(_comparable(rs.bucket_contents(store)))
    assert snapshots[0] == snapshots[1] == snapshots[2] == _comparable(world_copy.objects)
    assert set(rs.bucket_contents(store)) == set(world_copy.objects)
