"""The local S3 server restarts cleanly: stop returns only once its ports are free, start only once an
object can be written and read, so `s3-stop` then `s3-start` never fails on a held port or a first read."""

from __future__ import annotations

import secrets

import pytest

from mlplatform.localstack import SeaweedS3, can_listen

pytestmark = pytest.mark.reliability


def test_a_stopped_server_frees_every_port_and_restarts_at_once_with_its_data(tmp_path):
    server = SeaweedS3(tmp_path / "s3", "mlprestart" + secrets.token_hex(4), secrets.token_urlsafe(24),
                       buckets=("restart",))
    server.start(timeout=90)
    try:
        server.client().put_object(Bucket="restart", Key="kept.txt", Body=b"still here")
        server.stop()
        held = [p for p in server.ports() if not can_listen(p)]
        assert held == [], f"ports still held right after stop(): {held}"
        server.start(timeout=90)  # the same ports, immediately
        body = server.client().get_object(Bucket="restart", Key="kept.txt")["Body"].read()
        assert body == b"still here"
        keys = [o["Key"] for o in server.client().list_objects_v2(Bucket="restart").get("Contents", [])]
        assert keys == ["kept.txt"]  # the readiness probe leaves nothing behind
    finally:
        server.stop()
