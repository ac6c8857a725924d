"""Data-quality gate: run a Great Expectations suite kept in the repo against a pandas frame.

The suite is a plain GX 1.x JSON file under ``include/expectations/`` so data engineers review
it like code. Every expectation carries ``meta.severity``: ``critical`` failures stop the pipeline
(``raise_for_failures``), ``warning`` failures are only reported. GX runs in an ephemeral context:
no project directory, no data docs, no network, so the gate behaves the same in a DAG task, the
CLI and a unit test.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlplatform.errors import DataQualityError, SpecError

CRITICAL = "critical"
WARNING = "warning"
SEVERITIES = (CRITICAL, WARNING)

# Key added to each expectation's meta (in memory only) to map GX results back to suite order.
_INDEX_KEY = "_mlplatform_index"


@dataclass
class ValidationReport:
    """Outcome of one suite run; ``success`` ignores warnings on purpose (they must not block runs)."""

    suite: str
    success: bool
    evaluated: int
    rows: int
    results: list[dict[str, Any]] = field(default_factory=list)

    def failures(self, severity: str | None = None) -> list[dict[str, Any]]:
        """Failed results, optionally only those of one severity ('critical' or 'warning')."""
        if severity is not None and severity not in SEVERITIES:
            raise ValueError(f"severity must be one of {SEVERITIES} or None, got {severity!r}")
        return [r for r in self.results if not r["success"] and severity in (None, r["severity"])]

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable summary, stored next to the run's features as the validation artefact."""
        return {
            "suite": self.suite,
            "success": self.success,
            "evaluated": self.evaluated,
            "rows": self.rows,
            "failed_critical": len(self.failures(CRITICAL)),
            "failed_warning": len(self.failures(WARNING)),
            "results": [dict(r) for r in self.results],
        }


# --------------------------------------------------------------------------------------------- suite


def load_suite(suite_path: Path | str) -> dict[str, Any]:
    """Read and check a suite file; errors name the path because the file is hand-written."""
    path = Path(suite_path)
    if not path.is_file():
        raise SpecError(f"expectation suite not found: {path} (check validation.suite in the use-case spec)")
    try:
        suite = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SpecError(f"expectation suite {path} is not valid JSON: {exc}") from exc
    if not isinstance(suite, dict) or not isinstance(suite.get("expectations"), list):
        raise SpecError(f"expectation suite {path} must be an object with a list 'expectations'")
    for i, exp in enumerate(suite["expectations"]):
        _check_expectation(path, i, exp)
    suite.setdefault("name", path.stem)
    return suite


def _check_expectation(path: Path, index: int, exp: Any) -> None:
    """Each expectation needs a type and a known severity, so a typo never silently downgrades a check."""
    where = f"expectation suite {path}, expectations[{index}]"
    if not isinstance(exp, dict) or not isinstance(exp.get("type"), str):
        raise SpecError(f"{where}: must be an object with a string 'type'")
    severity = (exp.get("meta") or {}).get("severity")
    if severity not in SEVERITIES:
        raise SpecError(
            f"{where} ({exp['type']}): meta.severity must be one of {SEVERITIES}, got {severity!r}"
        )


def _build_suite(gx: Any, suite: dict[str, Any], path: Path) -> Any:
    """GX suite object; each expectation's position is stashed in meta to map results back in order.

    Expectations are built one by one because ``gx.ExpectationSuite`` only logs an invalid
    expectation and drops it: a typo would silently remove a critical check.
    """
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    expectations = []
    for i, exp in enumerate(suite["expectations"]):
        meta = dict(exp.get("meta") or {}, **{_INDEX_KEY: i})
        config = ExpectationConfiguration(type=exp["type"], kwargs=exp.get("kwargs") or {}, meta=meta)
        try:
            expectations.append(config.to_domain_obj())
        except Exception as exc:  # GX raises several unrelated types (not found, pydantic errors)
            raise SpecError(
                f"expectation suite {path}, expectations[{i}] ({exp['type']}) is not a valid GX expectation: "
                f"{' '.join(str(exc).split())}"
            ) from exc
    return gx.ExpectationSuite(name=suite["name"], expectations=expectations, meta=suite.get("meta"))


# ---------------------------------------------------------------------------------------- validation


def validate_frame(frame: Any, suite_path: Path | str, sample_size: int = 5) -> ValidationReport:
    """Validate ``frame`` against the suite at ``suite_path``; never raises on data problems.

    Use ``raise_for_failures`` to turn critical failures into a DataQualityError; keeping the two
    apart lets the caller store the report (including warnings) before the run fails.
    """
    path = Path(suite_path)
    suite = load_suite(path)
    gx_result = _run_gx(frame, suite, path, sample_size)
    # GX reorders results; restore suite order so reports and error messages read like the suite file.
    indexed = sorted(((_suite_index(r), r) for r in gx_result.results), key=lambda pair: pair[0])
    results = [_result_row(r, suite["expectations"][i], sample_size) for i, r in indexed]
    critical_failed = any(not r["success"] and r["severity"] == CRITICAL for r in results)
    return ValidationReport(
        suite=suite["name"],
        success=not critical_failed,
        evaluated=len(results),
        rows=len(frame),
        results=results,
    )


def _run_gx(frame: Any, suite: dict[str, Any], path: Path, sample_size: int) -> Any:
    """One ephemeral GX context per call: cheap (milliseconds) and free of shared state between runs."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    ctx = gx.get_context(mode="ephemeral")
    ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
    batch = ctx.data_sources.add_pandas("pandas").add_dataframe_asset("frame")
    batch_definition = batch.add_batch_definition_whole_dataframe("all")
    gx_suite = ctx.suites.add(_build_suite(gx, suite, path))
    definition = ctx.validation_definitions.add(
        gx.ValidationDefinition(name="validate", data=batch_definition, suite=gx_suite)
    )
    # SUMMARY with a partial list bounds memory on big failures (COMPLETE lists every offending row).
    result_format = {"result_format": "SUMMARY", "partial_unexpected_count": sample_size}
    return definition.run(batch_parameters={"dataframe": frame}, result_format=result_format)


def _suite_index(gx_result: Any) -> int:
    return int(gx_result.expectation_config.meta[_INDEX_KEY])


def _result_row(gx_result: Any, expectation: dict[str, Any], sample_size: int) -> dict[str, Any]:
    """Flatten one GX result into the report's row (JSON-safe)."""
    config = gx_result.expectation_config
    meta = expectation.get("meta") or {}
    kwargs = config.kwargs
    columns = _columns(kwargs)
    result = gx_result.result or {}
    error = _exception_message(gx_result.exception_info)
    return {
        "expectation": config.type,
        "column": ", ".join(columns) if columns else None,
        "columns": columns,
        "severity": meta["severity"],
        "success": bool(gx_result.success) and error is None,
        "unexpected_count": _int_or_none(result.get("unexpected_count")),
        "unexpected_percent": _float_or_none(result.get("unexpected_percent")),
        "sample_values": _samples(result, sample_size),
        "sample_rows": json_safe(list(result.get("partial_unexpected_index_list") or [])[:sample_size]),
        "observed_value": json_safe(result.get("observed_value")),
        "error": error,
        "why": meta.get("why"),
    }


def _columns(kwargs: dict[str, Any]) -> list[str]:
    if "column" in kwargs:
        return [kwargs["column"]]
    if "column_list" in kwargs:
        return list(kwargs["column_list"])
    return [kwargs[k] for k in ("column_A", "column_B") if k in kwargs]


def _samples(result: dict[str, Any], sample_size: int) -> list[Any]:
    """Offending values; for the column-set check, the missing columns are the useful sample."""
    if "partial_unexpected_list" in result:
        return json_safe(list(result["partial_unexpected_list"])[:sample_size])
    missing = ((result.get("details") or {}).get("mismatched") or {}).get("missing")
    return json_safe(sorted(missing)[:sample_size]) if missing else []


def _exception_message(info: Any) -> str | None:
    """GX reports metric errors (e.g. a missing column) as a flat dict or a dict of dicts per metric."""
    if not isinstance(info, dict):
        return None
    if "raised_exception" in info:
        if not info["raised_exception"]:
            return None
        return info.get("exception_message") or "unknown error"
    messages = {_exception_message(v) for v in info.values()} - {None}
    return "; ".join(sorted(messages)) or None


def _int_or_none(value: Any) -> int | None:
    return None if value is None else int(value)


def _float_or_none(value: Any) -> float | None:
    return None if value is None else json_safe(float(value))


def json_safe(value: Any) -> Any:
    """Convert numpy/pandas scalars, timestamps, NaN and tuples to plain JSON values (NaN -> None)."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if type(value).__name__ in {"NaTType", "NAType"}:  # before datetime: NaT is a datetime subclass
        return None
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [json_safe(v) for v in value]
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    return _json_safe_foreign(value)


def _json_safe_foreign(value: Any) -> Any:
    """numpy scalars expose .item(), arrays .tolist(); Decimal (warehouse NUMERIC) becomes float."""
    if isinstance(value, decimal.Decimal):
        return json_safe(float(value))
    item = getattr(value, "item", None)
    if callable(item):
        try:
            return json_safe(item())
        except (TypeError, ValueError):
            pass
    tolist = getattr(value, "tolist", None)
    if callable(tolist):
        return json_safe(tolist())
    return str(value)


# ------------------------------------------------------------------------------------------- raising


def raise_for_failures(report: ValidationReport, where: str) -> None:
    """Raise DataQualityError listing every failed critical expectation, one per line, with samples.

    ``where`` names the dataset (e.g. "demand_forecast features run_date=2025-01-01") so the Airflow
    log line alone tells an on-call engineer what broke and where. Warnings never raise.
    """
    critical = report.failures(CRITICAL)
    if not critical:
        return
    lines = [
        f"data quality check failed for {where}: {len(critical)} critical expectation(s) of suite "
        f"'{report.suite}' failed on {report.rows} rows:"
    ]
    lines += [f"  - {describe_failure(r)}" for r in critical]
    warnings = report.failures(WARNING)
    if warnings:
        lines.append(f"also {len(warnings)} warning(s): " + "; ".join(_label(r) for r in warnings))
    raise DataQualityError("\n".join(lines))


def describe_failure(row: dict[str, Any]) -> str:
    """One line per failure: 'expect_x(col): 3 unexpected (0.5%), e.g. [-4.0, -1.0] at rows [2, 7]'."""
    label = _label(row)
    if row.get("error"):
        return f"{label}: could not be evaluated: {row['error']}"
    if row.get("unexpected_count") is not None:
        text = f"{label}: {row['unexpected_count']} unexpected"
        if row.get("unexpected_percent") is not None:
            text += f" ({row['unexpected_percent']:.3g}%)"
        if row.get("sample_values"):
            text += f", e.g. {json.dumps(row['sample_values'])}"
        if row.get("sample_rows"):
            text += f" at rows {json.dumps(row['sample_rows'])}"
        return text
    if row["expectation"] == "expect_table_columns_to_match_set" and row.get("sample_values"):
        return f"{label}: missing columns {json.dumps(row['sample_values'])}"
    return f"{label}: observed {json.dumps(row.get('observed_value'))}"


def _label(row: dict[str, Any]) -> str:
    return f"{row['expectation']}({row['column']})" if row.get("column") else row["expectation"]
