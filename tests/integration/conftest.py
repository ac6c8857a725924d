"""Fixtures for whole-DAG runs: a migrated Airflow metadata DB (SQLite) in the session's Airflow home."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def airflow_db(s3_server):
    """`airflow db migrate` plus the warehouse pool, as `make airflow-init` does."""
    airflow = str(Path(sys.executable).parent / "airflow")
    subprocess.run([airflow, "db", "migrate"], env=os.environ, check=True, capture_output=True, timeout=300)
    subprocess.run([airflow, "pools", "set", "mlplatform_warehouse", "1", "DuckDB single writer"],
                   env=os.environ, check=True, capture_output=True, timeout=120)
    return True


@pytest.fixture(scope="session")
def dagbag(airflow_db):
    from airflow.dag_processing.dagbag import BundleDagBag

    from mlplatform import constants as C

    dags = C.PROJECT_ROOT / "dags"
    bag = BundleDagBag(dag_folder=dags, bundle_path=dags, bundle_name="dags-folder")
    assert not bag.import_errors, bag.import_errors
    return bag
