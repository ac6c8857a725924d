"""Test-wide set-up: an isolated Airflow home, a real local S3 server, and no telemetry.

Airflow reads its configuration on import, so the environment is prepared here, before any test module
imports airflow. Nothing touches the developer's .local/ or .airflow/.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from pathlib import Path

import pytest

from mlplatform.localstack import airflow_env, free_port

_SESSION_DIR = Path(tempfile.mkdtemp(prefix="mlplatform-tests-"))
(_SESSION_DIR / "passwords.json").write_text('{"admin": "admin"}')
os.environ.update(airflow_env(
    airflow_home=_SESSION_DIR / "airflow", data_dir=_SESSION_DIR / "data",
    s3_connection_json='{"conn_type": "aws"}',  # replaced by the s3_server fixture
    jwt_secret=secrets.token_urlsafe(64), passwords_file=_SESSION_DIR / "passwords.json", api_port=free_port(),
))
os.environ.pop("MLPLATFORM_PROFILE", None)


@pytest.fixture(scope="session")
def session_dir() -> Path:
    return _SESSION_DIR


@pytest.fixture(scope="session")
def s3_server(session_dir):
    """A real SeaweedFS S3 server on free loopback ports for the whole session."""
    from mlplatform.localstack import SeaweedS3

    server = SeaweedS3(session_dir / "seaweedfs", "mlptest" + secrets.token_hex(4), secrets.token_urlsafe(24),
                       buckets=("mlplatform",))
    server.start(timeout=90)
    os.environ["AIRFLOW_CONN_MLPLATFORM_S3"] = server.connection_json()
    yield server
    server.stop()


@pytest.fixture
def object_store(s3_server):
    """An ObjectStore on a fresh bucket per test, so tests never see each other's objects."""
    from mlplatform.storage import ObjectStore

    store = ObjectStore(s3_server.client(), "t-" + secrets.token_hex(6))
    store.ensure_bucket()
    return store
