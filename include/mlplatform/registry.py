"""Model registry on object storage: immutable versions plus a champion pointer.

Layout per use case (see storage.Layout):
    models/<version>/model.joblib      the fitted model (written first)
    models/<version>/reference.parquet drift reference sample of the training data
    models/<version>/metadata.json     lineage, metrics and the promotion decision (written last: a version
                                        without metadata.json is incomplete and ignored)
    registry/champion.json             pointer to the current champion version

Version ids are derived from content (run date + data, spec and code fingerprints), so rerunning a date
finds its version already registered instead of creating a duplicate. Existing versions are never
overwritten.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING

from mlplatform.errors import ModelNotAvailableError, PlatformError
from mlplatform.lineage import combine
from mlplatform.storage import Layout, ObjectStore, sha256_hex

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

METADATA = "metadata.json"
MODEL = "model.joblib"
REFERENCE = "reference.parquet"


def version_id(run_date: date, data_fingerprint: str, spec_fingerprint: str, source_hash: str) -> str:
    """'v20250630-1a2b3c4d5e': sortable by training date, unique per data/spec/code content."""
    return f"v{run_date:%Y%m%d}-{combine(data_fingerprint, spec_fingerprint, source_hash)[:10]}"


@dataclass(frozen=True)
class Decision:
    eligible: bool   # beats the baseline: may serve any date on or after its training end
    promoted: bool   # the champion pointer moved to this version
    reason: str

    def to_dict(self) -> dict:
        return {"eligible": self.eligible, "promoted": self.promoted, "reason": self.reason}


def decide(metrics: dict, training_end: str, champion: dict | None) -> Decision:
    """Promotion rule: beat the seasonal-naive baseline by the spec's margin, and never move the pointer
    back in time (a backfill's older model stays eligible for its own dates but is not the champion)."""
    model_wape, base_wape = metrics["model"]["wape"], metrics["baseline"]["wape"]
    if not metrics["beats_baseline"]:
        return Decision(False, False, (
            f"not promoted: backtest WAPE {model_wape:.4f} vs seasonal-naive {base_wape:.4f} "
            f"(improvement {metrics['improvement']:.1%} < required {metrics['min_improvement']:.1%})"))
    if champion and champion["training_window"]["end"] > training_end:
        return Decision(True, False, (
            f"eligible for its own dates but not promoted: champion {champion['version']} was trained on "
            f"newer data (to {champion['training_window']['end']})"))
    return Decision(True, True, (
        f"promoted: backtest WAPE {model_wape:.4f} beats seasonal-naive {base_wape:.4f} "
        f"by {metrics['improvement']:.1%} (required {metrics['min_improvement']:.1%})"))


def read_metadata(store: ObjectStore, layout: Layout, version: str) -> dict:
    return store.get_json(f"{layout.model(version)}/{METADATA}")


def is_registered(store: ObjectStore, layout: Layout, version: str) -> bool:
    """A version counts as registered once its metadata (written last) exists."""
    return store.exists(f"{layout.model(version)}/{METADATA}")


def list_versions(store: ObjectStore, layout: Layout) -> list[dict]:
    """Metadata of every complete version, oldest training window first."""
    keys = [k for k in store.list_keys(layout.models() + "/") if k.endswith("/" + METADATA)]
    metas = [store.get_json(k) for k in keys]
    return sorted(metas, key=lambda m: (m["training_window"]["end"], m["version"]))


def champion(store: ObjectStore, layout: Layout) -> dict | None:
    """Metadata of the current champion, or None before the first promotion."""
    key = layout.champion_pointer()
    if not store.exists(key):
        return None
    return read_metadata(store, layout, store.get_json(key)["version"])


def register(store: ObjectStore, layout: Layout, metadata: dict, model_bytes: bytes,
             reference: pd.DataFrame) -> tuple[dict, bool]:
    """Store a version immutably; return (metadata as stored, created?). Idempotent for the same version."""
    version = metadata["version"]
    prefix = layout.model(version)
    if store.exists(f"{prefix}/{METADATA}"):
        existing = read_metadata(store, layout, version)
        if existing["artifact"]["model_sha256"] != sha256_hex(model_bytes):
            raise PlatformError(
                f"model version {version} already exists with different model bytes; versions are immutable "
                "(training is expected to be deterministic for the same data, spec and code)")
        return existing, False
    store.put_bytes(f"{prefix}/{MODEL}", model_bytes)
    ref = store.put_parquet(f"{prefix}/{REFERENCE}", reference)
    metadata = {**metadata, "artifact": {
        "model_uri": store.uri(f"{prefix}/{MODEL}"), "model_sha256": sha256_hex(model_bytes),
        "reference_uri": store.uri(f"{prefix}/{REFERENCE}"), "reference_sha256": ref["sha256"],
        "reference_rows": ref["rows"]}}
    store.put_json(f"{prefix}/{METADATA}", metadata)
    return metadata, True


def set_champion(store: ObjectStore, layout: Layout, metadata: dict) -> None:
    store.put_json(layout.champion_pointer(), {
        "version": metadata["version"], "training_end": metadata["training_window"]["end"],
        "reason": metadata["decision"]["reason"]})


def champion_as_of(store: ObjectStore, layout: Layout, run_date: date) -> dict:
    """The version that serves ``run_date``: the newest eligible version trained on data up to that date.

    A backfill therefore never uses a model that saw data after the date it scores.
    """
    current = champion(store, layout)
    if current and current["training_window"]["end"] <= run_date.isoformat():
        return current
    eligible = [m for m in list_versions(store, layout)
                if m["decision"]["eligible"] and m["training_window"]["end"] <= run_date.isoformat()]
    if not eligible:
        raise ModelNotAvailableError(
            f"use case {layout.use_case!r}: no eligible model version trained on data up to {run_date} "
            "(none registered yet, or none beat the seasonal-naive baseline); see the train task's decision")
    return eligible[-1]


def load_model_bytes(store: ObjectStore, layout: Layout, metadata: dict) -> bytes:
    data = store.get_bytes(f"{layout.model(metadata['version'])}/{MODEL}")
    if sha256_hex(data) != metadata["artifact"]["model_sha256"]:
        raise PlatformError(f"model {metadata['version']}: stored bytes do not match the registered sha256")
    return data


def load_reference(store: ObjectStore, layout: Layout, metadata: dict) -> pd.DataFrame:
    return store.get_parquet(f"{layout.model(metadata['version'])}/{REFERENCE}")
