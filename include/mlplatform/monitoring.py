"""Feature drift: compare the latest window of features with a reference window using Evidently.

The result is both a machine-readable summary (stored as JSON, read by alerting and the CLI) and
the self-contained Evidently HTML report (stored next to it for humans). Column types are decided
here, explicitly, rather than left to Evidently's inference: the stat test depends on the type,
and a 0/1 flag tested as a continuous number gives misleading scores.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mlplatform.errors import PlatformError

if TYPE_CHECKING:
    from mlplatform.spec import UseCaseSpec

# Integer columns with at most this many distinct values (flags, weekdays) are tested as categories.
MAX_CATEGORICAL_INT_VALUES = 10


@dataclass
class DriftReport:
    """Drift verdict, per-column scores, and the Evidently artefacts (HTML for humans, JSON snapshot)."""

    drift_detected: bool
    drift_share: float
    drifted_share: float
    drifted_count: int
    n_columns: int
    drifted_columns: list[str]
    column_scores: dict[str, dict[str, Any]]
    column_types: dict[str, list[str]]
    reference_rows: int
    current_rows: int
    reference_rows_total: int
    current_rows_total: int
    html: bytes = field(repr=False, default=b"")
    json: bytes = field(repr=False, default=b"")

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe summary (no HTML/JSON blobs): what alerting and the run manifest store."""
        return {
            "drift_detected": self.drift_detected,
            "drift_share": self.drift_share,
            "drifted_share": self.drifted_share,
            "drifted_count": self.drifted_count,
            "n_columns": self.n_columns,
            "drifted_columns": list(self.drifted_columns),
            "column_scores": {c: dict(s) for c, s in self.column_scores.items()},
            "column_types": {k: list(v) for k, v in self.column_types.items()},
            "reference_rows": self.reference_rows,
            "current_rows": self.current_rows,
            "reference_rows_total": self.reference_rows_total,
            "current_rows_total": self.current_rows_total,
        }


def monitored_columns(spec: UseCaseSpec) -> list[str]:
    """Columns to monitor for a use case: ``monitoring.columns``, or (empty) the target and all features."""
    if spec.monitoring.columns:
        return list(spec.monitoring.columns)
    cols = [spec.features.target, *spec.features.numeric, *spec.features.categorical]
    return list(dict.fromkeys(cols))


def detect_drift(
    reference: Any,
    current: Any,
    columns: Sequence[str],
    drift_share: float,
    max_rows: int,
    seed: int = 0,
) -> DriftReport:
    """Compare ``current`` with ``reference`` on ``columns``; drift if the drifted share >= ``drift_share``.

    Each side is sampled down to ``max_rows`` rows with a fixed ``seed`` so reruns of the same run date
    give the same verdict and Evidently's runtime stays bounded.
    """
    columns = list(dict.fromkeys(columns))
    _check_inputs(reference, current, columns, drift_share, max_rows)
    ref = _sample(reference[columns], max_rows, seed)
    cur = _sample(current[columns], max_rows, seed)
    empty = _empty_columns(ref, cur, columns)
    numerical, categorical = split_column_types(ref, cur, [c for c in columns if c not in empty])
    snapshot = _run_evidently(ref, cur, numerical, categorical, drift_share)
    report = _summarise(snapshot.dict(), columns, drift_share, empty)
    return DriftReport(
        **report,
        column_types={"numerical": numerical, "categorical": categorical, "empty": list(empty)},
        reference_rows=len(ref),
        current_rows=len(cur),
        reference_rows_total=len(reference),
        current_rows_total=len(current),
        html=snapshot.get_html_str(as_iframe=False).lstrip().encode("utf-8"),
        json=snapshot.json().encode("utf-8"),
    )


def _check_inputs(
    reference: Any, current: Any, columns: list[str], drift_share: float, max_rows: int
) -> None:
    """Fail early with the names a user needs, instead of an Evidently traceback deep in a DAG task."""
    if not columns:
        raise PlatformError("no columns to monitor: pass at least one column (see monitored_columns(spec))")
    if not 0.0 < drift_share <= 1.0:
        raise PlatformError(f"drift_share must be in (0, 1], got {drift_share}")
    if max_rows < 1:
        raise PlatformError(f"max_rows must be >= 1, got {max_rows}")
    for side, frame in (("reference", reference), ("current", current)):
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise PlatformError(f"drift check: {side} data lacks monitored column(s) {missing}")
        if len(frame) == 0:
            raise PlatformError(f"drift check: {side} data is empty (0 rows); nothing to compare")


def _sample(frame: Any, max_rows: int, seed: int) -> Any:
    """Deterministic down-sampling: same input and seed, same rows."""
    if len(frame) > max_rows:
        frame = frame.sample(n=max_rows, random_state=seed)
    return frame.reset_index(drop=True)


def _empty_columns(ref: Any, cur: Any, columns: list[str]) -> dict[str, str]:
    """Columns with no value on a side ({col: 'reference'|'current'|'both'}): Evidently rejects them.

    A column that empties on one side (e.g. a lag lost in a dbt change) is reported as drifted; one
    empty on both sides has nothing to compare and is reported as not drifted.
    """
    empty = {}
    for col in columns:
        sides = [
            side for side, frame in (("reference", ref), ("current", cur)) if frame[col].notna().sum() == 0
        ]
        if sides:
            empty[col] = "both" if len(sides) == 2 else sides[0]
    if len(empty) == len(columns):
        raise PlatformError(f"drift check: every monitored column is entirely null on some side: {empty}")
    return empty


def split_column_types(reference: Any, current: Any, columns: list[str]) -> tuple[list[str], list[str]]:
    """(numerical, categorical): text, bool and category columns, and integers with few values, are categorical."""
    import pandas as pd

    numerical, categorical = [], []
    for col in columns:
        both = pd.concat([reference[col], current[col]], ignore_index=True)
        if pd.api.types.is_datetime64_any_dtype(both) or pd.api.types.is_timedelta64_dtype(both):
            raise PlatformError(
                f"drift check: column {col!r} is a date/time; a time axis always drifts, drop it"
            )
        if _is_categorical(both):
            categorical.append(col)
        else:
            numerical.append(col)
    return numerical, categorical


def _is_categorical(values: Any) -> bool:
    import pandas as pd

    types = pd.api.types
    if types.is_bool_dtype(values) or not types.is_numeric_dtype(values):
        return True
    return types.is_integer_dtype(values) and values.nunique(dropna=True) <= MAX_CATEGORICAL_INT_VALUES


def _run_evidently(
    ref: Any, cur: Any, numerical: list[str], categorical: list[str], drift_share: float
) -> Any:
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    definition = DataDefinition(numerical_columns=numerical, categorical_columns=categorical)
    preset = DataDriftPreset(columns=[*numerical, *categorical], drift_share=drift_share)
    report = Report([preset], include_tests=True)
    # Evidently's argument order is (current, reference).
    return report.run(
        Dataset.from_pandas(cur, data_definition=definition),
        Dataset.from_pandas(ref, data_definition=definition),
    )


def _summarise(
    snapshot: dict[str, Any], columns: list[str], drift_share: float, empty: dict[str, str]
) -> dict[str, Any]:
    """Pull the verdict and per-column scores out of the snapshot dict (stable across report layouts)."""
    statuses = {
        t.get("metric_config", {}).get("metric_id"): t.get("status") for t in snapshot.get("tests", [])
    }
    scores: dict[str, dict[str, Any]] = {}
    for metric in snapshot.get("metrics", []):
        config = metric.get("config", {})
        if config.get("type", "").endswith(":ValueDrift") and config.get("column") in columns:
            scores[config["column"]] = _column_score(
                config, metric.get("value"), statuses.get(metric.get("id"))
            )
    for col, side in empty.items():
        method = "no values on either side" if side == "both" else f"no values in {side}"
        scores[col] = {"method": method, "score": None, "threshold": None, "drifted": side != "both"}
    ordered = {c: scores[c] for c in columns if c in scores}
    drifted = [c for c, s in ordered.items() if s["drifted"]]
    share = len(drifted) / len(columns)
    return {
        "drift_detected": share >= drift_share,
        "drift_share": drift_share,
        "drifted_share": share,
        "drifted_count": len(drifted),
        "n_columns": len(columns),
        "drifted_columns": drifted,
        "column_scores": ordered,
    }


def _column_score(config: dict[str, Any], value: Any, status: str | None) -> dict[str, Any]:
    """One column's test: p-value methods drift below the threshold, distance methods at or above it."""
    method = str(config.get("method"))
    threshold = float(config["threshold"])
    score = _finite_or_none(value)
    if status in ("FAIL", "SUCCESS"):
        drifted = status == "FAIL"
    elif score is None:
        drifted = False
    else:
        drifted = score < threshold if "p_value" in method else score >= threshold
    return {"method": method, "score": score, "threshold": threshold, "drifted": drifted}


def _finite_or_none(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None
