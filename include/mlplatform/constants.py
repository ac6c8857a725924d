"""Constants and paths in one place.

Paths resolve from this file's location so the package works from any working directory; each can be
overridden by an environment variable (containers mount the project elsewhere).
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = Path(os.environ.get("MLPLATFORM_PROJECT_ROOT", PACKAGE_DIR.parents[1])).resolve()

USE_CASES_DIR = Path(os.environ.get("MLPLATFORM_USE_CASES_DIR", PROJECT_ROOT / "include" / "use_cases"))
DEFAULTS_SPEC_NAME = "_defaults.yaml"
EXPECTATIONS_DIR = PROJECT_ROOT / "include" / "expectations"
DBT_PROJECT_DIR = Path(os.environ.get("MLPLATFORM_DBT_PROJECT_DIR", PROJECT_ROOT / "dbt_project"))
DBT_PROFILES_DIR = DBT_PROJECT_DIR
DBT_MANIFEST_PATH = DBT_PROJECT_DIR / "target" / "manifest.json"

# Runtime state of the embedded profile (warehouse file, dbt logs); never committed.
DEFAULT_DATA_DIR = PROJECT_ROOT / ".local" / "data"

# Environment variable names (values are read in settings.py only).
ENV_PROFILE = "MLPLATFORM_PROFILE"
ENV_DATA_DIR = "MLPLATFORM_DATA_DIR"
ENV_DUCKDB_PATH = "MLPLATFORM_DUCKDB_PATH"
ENV_BUCKET = "MLPLATFORM_BUCKET"
ENV_S3_CONN_ID = "MLPLATFORM_S3_CONN_ID"
ENV_CODE_VERSION = "MLPLATFORM_CODE_VERSION"
# Production warehouse (Postgres); dbt_project/profiles.yml reads the same variables.
ENV_PG_HOST = "MLPLATFORM_PG_HOST"
ENV_PG_PORT = "MLPLATFORM_PG_PORT"
ENV_PG_USER = "MLPLATFORM_PG_USER"
ENV_PG_PASSWORD = "MLPLATFORM_PG_PASSWORD"
ENV_PG_DBNAME = "MLPLATFORM_PG_DBNAME"

PROFILE_EMBEDDED = "embedded"
PROFILE_PRODUCTION = "production"
PROFILES = (PROFILE_EMBEDDED, PROFILE_PRODUCTION)

DEFAULT_BUCKET = "mlplatform"
DEFAULT_S3_CONN_ID = "mlplatform_s3"
WAREHOUSE_POOL = "mlplatform_warehouse"

# Warehouse schema the raw source data lands in (dbt reads it as a source).
RAW_SCHEMA = "raw"

# Object-storage layout, relative to the bucket. One prefix per use case; every run-scoped artefact sits
# under run_date=YYYY-MM-DD so a rerun or backfill replaces exactly its own partition.
FEATURES_PREFIX = "{use_case}/features/run_date={run_date}"
VALIDATION_PREFIX = "{use_case}/validation/run_date={run_date}"
MONITORING_PREFIX = "{use_case}/monitoring/run_date={run_date}"
FORECASTS_PREFIX = "{use_case}/forecasts/run_date={run_date}"
MODELS_PREFIX = "{use_case}/models"
REGISTRY_PREFIX = "{use_case}/registry"
MANIFEST_NAME = "_manifest.json"
ACCURACY_PREFIX = "{use_case}/accuracy/run_date={run_date}"
LIFECYCLE_PREFIX = "{use_case}/lifecycle/run_date={run_date}"
# Per-invocation records (dbt invocation, the Airflow run that last wrote the date): they change on every
# rerun by nature, so they live apart from the byte-reproducible outputs.
LINEAGE_PREFIX = "{use_case}/lineage/run_date={run_date}"
# OpenLineage: the namespace of the jobs, and where the development file transport writes its events.
OPENLINEAGE_NAMESPACE = "mlplatform"
ENV_OPENLINEAGE_TRANSPORT = "AIRFLOW__OPENLINEAGE__TRANSPORT"
ALERTS_PREFIX = "{use_case}/alerts"
ROLLUPS_PREFIX = "{use_case}/rollups/{rollup}/run_date={run_date}"
