"""Code identity and environment settings."""

from __future__ import annotations

import pytest

from mlplatform import lineage
from mlplatform.errors import ConfigError
from mlplatform.settings import load_settings


def test_source_hash_is_deterministic_and_covers_the_specs():
    lineage.source_hash.cache_clear()
    first = lineage.source_hash()
    lineage.source_hash.cache_clear()
    assert first == lineage.source_hash() and len(first) == 64


def test_code_version_names_package_and_source_hash():
    version = lineage.code_version()
    assert version["package_version"] and version["source_hash"] == lineage.source_hash()


def test_library_versions_include_the_training_stack():
    versions = lineage.library_versions()
    assert versions["scikit-learn"] and versions["pandas"] and versions["python"].startswith("3.11")


def test_settings_default_to_the_embedded_profile(tmp_path):
    settings = load_settings({"MLPLATFORM_DATA_DIR": str(tmp_path)})
    assert settings.profile == "embedded" and settings.dbt_target == "duckdb"
    assert settings.duckdb_path == tmp_path / "warehouse.duckdb"
    assert settings.bucket == "mlplatform" and settings.s3_conn_id == "mlplatform_s3"


def test_production_profile_switches_the_dbt_target(tmp_path):
    settings = load_settings({"MLPLATFORM_PROFILE": "production", "MLPLATFORM_DATA_DIR": str(tmp_path)})
    assert settings.dbt_target == "postgres"


def test_unknown_profile_is_rejected_with_the_valid_choices():
    with pytest.raises(ConfigError, match="use one of embedded, production"):
        load_settings({"MLPLATFORM_PROFILE": "staging"})

