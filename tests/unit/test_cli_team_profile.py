"""`mlplatform local init --profile team`: one switch from the embedded stack to the team topology."""

from __future__ import annotations

import argparse
import json

import pytest

from mlplatform import cli
from mlplatform.errors import PlatformError
from mlplatform.topology import new_fernet_key


@pytest.fixture
def local_dir(tmp_path, monkeypatch):
    """The CLI's .local/ redirected to a temp folder; database creation recorded instead of done."""
    created: list[tuple[str, tuple[str, ...]]] = []
    monkeypatch.setattr(cli, "LOCAL_DIR", tmp_path)
    monkeypatch.setattr(cli, "ENV_FILE", tmp_path / "local.env")
    monkeypatch.setattr(cli, "S3_STATE", tmp_path / "s3.json")
    monkeypatch.setattr(cli, "_ensure_databases", lambda url, names: created.append((url, names)))
    return tmp_path, created


def _env_file(path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        if line.startswith("export "):
            key, value = line[len("export "):].split("=", 1)
            out[key] = value.strip("'")
    return out


def _init(*argv: str) -> int:
    return cli.main(["local", "init", *argv])


def test_embedded_profile_is_sqlite_local_executor_and_duckdb(local_dir) -> None:
    path, created = local_dir
    assert _init() == 0
    env = _env_file(path / "local.env")
    assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    assert "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN" not in env and "MLPLATFORM_PROFILE" not in env
    assert env["MLPLATFORM_LOCAL_PROFILE"] == "embedded" and not created


def test_team_profile_switches_metadata_executor_and_warehouse_together(local_dir) -> None:
    path, created = local_dir
    assert _init("--profile", "team", "--pg-url", "postgresql://ops@db.internal:6543",
                 "--redis-url", "redis://cache:6379/3") == 0
    env = _env_file(path / "local.env")
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == "postgresql+psycopg2://ops@db.internal:6543/mlplatform_airflow"
    assert env["AIRFLOW__CELERY__BROKER_URL"] == "redis://cache:6379/3"
    assert env["AIRFLOW__CELERY__RESULT_BACKEND"] == "db+postgresql://ops@db.internal:6543/mlplatform_airflow"
    assert env["AIRFLOW__OPERATORS__DEFAULT_QUEUE"] == cli.TEAM_QUEUE
    assert env["MLPLATFORM_PROFILE"] == "production"
    assert (env["MLPLATFORM_PG_HOST"], env["MLPLATFORM_PG_PORT"], env["MLPLATFORM_PG_DBNAME"]) == (
        "db.internal", "6543", "mlplatform_warehouse")
    assert created == [("postgresql://ops@db.internal:6543", ("mlplatform_airflow", "mlplatform_warehouse"))]
    state = json.loads((path / "s3.json").read_text())
    assert env["AIRFLOW__CORE__FERNET_KEY"] == state["fernet_key"]
    assert oct((path / "local.env").stat().st_mode)[-3:] == "600"


def test_switching_back_keeps_the_credentials(local_dir) -> None:
    path, _ = local_dir
    _init("--profile", "team")
    team = _env_file(path / "local.env")
    _init()
    embedded = _env_file(path / "local.env")
    assert embedded["AIRFLOW_CONN_MLPLATFORM_S3"] == team["AIRFLOW_CONN_MLPLATFORM_S3"]
    assert embedded["AIRFLOW__API_AUTH__JWT_SECRET"] == team["AIRFLOW__API_AUTH__JWT_SECRET"]
    assert "MLPLATFORM_PROFILE" not in embedded


def test_team_profile_refuses_a_url_that_is_not_a_postgres_server(local_dir) -> None:
    args = argparse.Namespace(pg_url="mysql://root@db:3306", redis_url="redis://x:6379/0", worker_concurrency=2)
    with pytest.raises(PlatformError, match="postgresql://user@host:5432"):
        cli._team_env(args, {"fernet_key": new_fernet_key()})
