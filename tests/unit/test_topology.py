"""The team topology overlay (mlplatform.topology): values, validation, and layering over airflow_env."""

from __future__ import annotations

import base64
import subprocess
import sys
from pathlib import Path

import pytest

from mlplatform.errors import ConfigError
from mlplatform.localstack import airflow_env
from mlplatform.topology import EXECUTORS, new_fernet_key, team_airflow_env

PG = "postgresql+psycopg2://postgres@127.0.0.1:5432/airflow_team"
BROKER = "redis://127.0.0.1:6379/3"
BACKEND = "db+postgresql://postgres@127.0.0.1:5432/airflow_team"


def test_celery_overlay_sets_db_executor_broker_backend_queue_and_concurrency():
    key = new_fernet_key()
    env = team_airflow_env(metadata_db_url=PG, broker_url=BROKER, result_backend=BACKEND,
                           queue="mlp-team-1", worker_concurrency=3, fernet_key=key)
    assert env == {
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": PG,
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__CELERY__BROKER_URL": BROKER,
        "AIRFLOW__CELERY__RESULT_BACKEND": BACKEND,
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": "3",
        "AIRFLOW__OPERATORS__DEFAULT_QUEUE": "mlp-team-1",
        "AIRFLOW__CORE__FERNET_KEY": key,
    }
    assert all(isinstance(v, str) for v in env.values())


def test_local_executor_needs_no_broker_and_sets_no_celery_keys():
    env = team_airflow_env(metadata_db_url=PG, executor="LocalExecutor")
    assert env == {"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": PG, "AIRFLOW__CORE__EXECUTOR": "LocalExecutor"}


def test_default_queue_is_left_to_airflow_when_not_given():
    env = team_airflow_env(metadata_db_url=PG, broker_url=BROKER, result_backend=BACKEND)
    assert "AIRFLOW__OPERATORS__DEFAULT_QUEUE" not in env
    assert "AIRFLOW__CORE__FERNET_KEY" not in env
    assert env["AIRFLOW__CELERY__WORKER_CONCURRENCY"] == "2"


def test_overlay_wins_over_the_embedded_environment(tmp_path):
    base = airflow_env(airflow_home=tmp_path / "a", data_dir=tmp_path / "d", s3_connection_json="{}",
                       jwt_secret="s", passwords_file=tmp_path / "p.json", api_port=18080)
    env = {**base, **team_airflow_env(metadata_db_url=PG, broker_url=BROKER, result_backend=BACKEND,
                                      parallelism=8)}
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__CORE__PARALLELISM"] == "8"
    assert env["AIRFLOW__API__PORT"] == "18080"  # untouched keys of the base stay


def test_unknown_executor_names_the_value_and_the_allowed_ones():
    with pytest.raises(ConfigError) as err:
        team_airflow_env(metadata_db_url=PG, executor="KubernetesExecutor")
    message = str(err.value)
    assert "KubernetesExecutor" in message
    assert all(name in message for name in EXECUTORS)


@pytest.mark.parametrize("url", ["sqlite:////tmp/airflow.db", "", "127.0.0.1:5432/db"])
def test_metadata_db_must_be_a_server_database(url):
    with pytest.raises(ConfigError, match="metadata_db_url"):
        team_airflow_env(metadata_db_url=url, executor="LocalExecutor")


def test_celery_requires_broker_and_result_backend():
    with pytest.raises(ConfigError, match="broker_url is empty"):
        team_airflow_env(metadata_db_url=PG, result_backend=BACKEND)
    with pytest.raises(ConfigError, match="result_backend is empty"):
        team_airflow_env(metadata_db_url=PG, broker_url=BROKER)
    with pytest.raises(ConfigError, match="broker_url .*'http'"):
        team_airflow_env(metadata_db_url=PG, broker_url="http://127.0.0.1:6379", result_backend=BACKEND)


def test_passwords_are_redacted_in_errors():
    with pytest.raises(ConfigError) as err:
        team_airflow_env(metadata_db_url=PG, broker_url="http://user:s3cret@host/0", result_backend=BACKEND)
    assert "s3cret" not in str(err.value)
    assert "user:***@" in str(err.value)


@pytest.mark.parametrize("kwargs, match", [
    ({"worker_concurrency": 0}, "worker_concurrency"),
    ({"worker_concurrency": True}, "worker_concurrency"),
    ({"queue": "has space"}, "queue"),
    ({"queue": ""}, "queue"),
    ({"fernet_key": "not-a-key"}, "Fernet"),
    ({"parallelism": 0}, "parallelism"),
])
def test_invalid_values_are_refused(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        team_airflow_env(metadata_db_url=PG, broker_url=BROKER, result_backend=BACKEND, **kwargs)


def test_new_fernet_key_is_32_urlsafe_bytes_and_fresh():
    key = new_fernet_key()
    assert len(base64.urlsafe_b64decode(key)) == 32
    assert key != new_fernet_key()
    from cryptography.fernet import Fernet

    assert Fernet(key.encode()).decrypt(Fernet(key.encode()).encrypt(b"x")) == b"x"


def test_module_imports_neither_airflow_nor_drivers():
    code = ("import sys, mlplatform.topology; "
            "bad = [m for m in ('airflow', 'celery', 'psycopg2', 'redis', 'sqlalchemy') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                            cwd=Path(__file__).parent)
    assert result.returncode == 0, result.stdout + result.stderr
