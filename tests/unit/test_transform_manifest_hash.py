"""manifest_hash identifies the dbt project's content, not the manifest file's bytes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlplatform import transform
from mlplatform.errors import TransformError
from mlplatform.settings import load_settings


@pytest.fixture(scope="module")
def two_manifests(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("parse")
    settings = load_settings({"MLPLATFORM_DATA_DIR": str(root / "data")})
    return (transform.parse_project(settings, root / "a"), transform.parse_project(settings, root / "b"))


def test_hash_is_stable_across_two_parses(two_manifests: tuple[Path, Path]) -> None:
    a, b = two_manifests
    assert a.read_bytes() != b.read_bytes()  # timestamps and invocation ids differ
    assert transform.manifest_hash(a) == transform.manifest_hash(b)
    assert len(transform.manifest_hash(a)) == 64


def test_hash_changes_with_a_model_or_test_change(two_manifests: tuple[Path, Path], tmp_path: Path) -> None:
    manifest = json.loads(two_manifests[0].read_text())
    baseline = transform.manifest_hash(two_manifests[0])
    model = manifest["nodes"]["model.mlplatform.fct_demand_features"]
    model["checksum"]["checksum"] = "0" * 64
    changed = tmp_path / "changed.json"
    changed.write_text(json.dumps(manifest))
    assert transform.manifest_hash(changed) != baseline

    manifest = json.loads(two_manifests[0].read_text())
    test = next(n for n in manifest["nodes"].values() if (n.get("test_metadata") or {}).get("name") == "accepted_range")
    test["test_metadata"]["kwargs"]["min_value"] = -1
    changed.write_text(json.dumps(manifest))
    assert transform.manifest_hash(changed) != baseline


def test_unreadable_manifest_raises_transform_error(tmp_path: Path) -> None:
    with pytest.raises(TransformError, match="manifest"):
        transform.manifest_hash(tmp_path / "missing.json")
