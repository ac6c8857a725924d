"""Source freshness as of the run date: real ``dbt source freshness`` with the spec's thresholds.

The spec's ``freshness.sources`` maps raw tables to warn/error thresholds in days. They reach dbt as the
vars ``freshness_warn_after_days`` / ``freshness_error_after_days`` ({table: days}), which the sources
yml renders into each dated raw table's ``freshness`` config (a table the spec does not name has no
criteria, so dbt skips it). Each dated raw table's ``loaded_at_query`` (macro
``source_freshness_loaded_at``) shifts its newest business date on or before ``run_date`` onto the
wall clock, so the age dbt measures is exactly ``run_date - newest`` in days: freshness is judged as of
the run's logical date, and a backfill of a past date with its data landed passes.

A source is ``warn`` when its newest row is more than ``warn_after_days`` before the run date and
``error`` when more than ``error_after_days``. For monthly and quarterly use cases the age counts from
the latest period end on or before the run date (:func:`freshness_as_of`): a monthly source is fresh
on the 14th when it holds the last month end, as it cannot hold more. ``blocking`` is true when a source is at ``error`` and
the spec says ``on_error: block`` (``publish_stale`` scores and publishes with ``stale: true``);
warnings never block.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from mlplatform import constants as C
from mlplatform.errors import DataQualityError, SpecError, TransformError

if TYPE_CHECKING:
    from mlplatform.settings import Settings
    from mlplatform.spec import UseCaseSpec

VAR_WARN = "freshness_warn_after_days"
VAR_ERROR = "freshness_error_after_days"
STATUSES = ("pass", "warn", "error")  # in order of severity
NOT_CONFIGURED = "not_configured"
_SECONDS_PER_DAY = 86400


def freshness_as_of(spec: UseCaseSpec, run_date: date) -> date:
    """The day a source's age is measured from: the run date, or for monthly and quarterly use cases the
    latest period end on or before it (data of the running period cannot exist yet). Weekly counts from
    the run date: the week-ending weekday is the data's, unknown before the check."""
    from mlplatform.calendars import latest_period_end

    if spec.frequency in ("monthly", "quarterly"):
        return latest_period_end(run_date, spec.frequency)
    return run_date


def freshness_vars(spec: UseCaseSpec, run_date: date) -> dict[str, Any]:
    """The dbt vars of the check: the as-of date and the spec's thresholds per raw table."""
    sources = spec.freshness.sources
    return {
        "run_date": freshness_as_of(spec, run_date).isoformat(),
        VAR_WARN: {t: th.warn_after_days for t, th in sources.items() if th.warn_after_days is not None},
        VAR_ERROR: {t: th.error_after_days for t, th in sources.items() if th.error_after_days is not None},
    }


def _base(spec: UseCaseSpec, run_date: date) -> dict[str, Any]:
    return {"use_case": spec.name, "run_date": run_date.isoformat(), "on_error": spec.freshness.on_error}


def check_freshness(spec: UseCaseSpec, run_date: date, settings: Settings) -> dict[str, Any]:
    """``dbt source freshness`` of the spec's declared raw tables as of ``run_date`` (one dbt call).

    Returns a JSON-safe dict::

        {"use_case", "run_date", "on_error",
         "status": "pass" | "warn" | "error" | "not_configured",
         "blocking": bool,   # status "error" and on_error "block"
         "stale": bool,      # status "error" (publish with stale: true under on_error publish_stale)
         "sources": {table: {"table": "raw.<table>", "newest": "YYYY-MM-DD" | None, "age_days": int | None,
                             "warn_after_days": int | None, "error_after_days": int | None,
                             "status": "pass" | "warn" | "error"}},
         "messages": [one line per source at warn or error], "message": one-line summary,
         "elapsed_s": float, "target": dbt target}

    ``newest`` is the newest business date on or before the run date (None: no row up to it, which
    counts as infinitely old). No declared sources: status ``not_configured`` without calling dbt.
    SpecError when a declared table is not a dbt source with a freshness check (the message names
    ``freshness.sources.<table>`` and the known tables); TransformError when dbt fails otherwise.
    """
    from mlplatform.transform import run_source_freshness

    declared = spec.freshness.sources
    if not declared:
        return {**_base(spec, run_date), "status": NOT_CONFIGURED, "blocking": False, "stale": False,
                "sources": {}, "messages": [], "message": "no source freshness thresholds in the spec",
                "elapsed_s": 0.0, "target": settings.dbt_target}
    select = [f"source:*.{table}" for table in sorted(declared)]
    run = run_source_freshness(spec.name, select, freshness_vars(spec, run_date), settings)
    raw = _raw_sources(run["sources"])
    _check_declared(declared, raw)
    if run["runtime_errors"]:
        detail = "\n".join(f"  - {line}" for line in run["runtime_errors"])
        raise TransformError(f"dbt source freshness for use case {spec.name!r} as of {run_date.isoformat()} "
                             f"could not check {len(run['runtime_errors'])} source(s):\n{detail}")
    results = {r["unique_id"]: r for r in run["results"]}
    sources = {}
    for table in sorted(declared):
        uid = raw[table]["unique_id"]
        if uid not in results:
            raise TransformError(f"dbt source freshness for use case {spec.name!r} returned no result for "
                                 f"{uid} (freshness.sources.{table}); see the dbt log in {run['target_path']}")
        sources[table] = _source_result(table, results[uid], declared[table], freshness_as_of(spec, run_date))
    status = max((s["status"] for s in sources.values()), key=STATUSES.index)
    messages = [_describe(s, run_date, freshness_as_of(spec, run_date)) for s in sources.values()
                if s["status"] != "pass"]
    blocking = status == "error" and spec.freshness.on_error == "block"
    return {**_base(spec, run_date), "status": status, "blocking": blocking, "stale": status == "error",
            "sources": sources, "messages": messages, "message": _summary(status, sources, messages, blocking),
            "elapsed_s": run["elapsed_s"], "target": settings.dbt_target}


def require_fresh(result: dict[str, Any]) -> None:
    """DataQualityError when ``result`` (of :func:`check_freshness`) blocks the run; else nothing."""
    if result.get("blocking"):
        raise DataQualityError(f"{result['use_case']}: stale sources block the run as of {result['run_date']} "
                               f"(freshness.on_error: block): {'; '.join(result['messages'])}. Rerun the date once "
                               "the loader has caught up, or set freshness.on_error: publish_stale to publish "
                               "flagged as stale")


def _raw_sources(manifest_sources: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Raw table name -> manifest node of every dbt source on schema raw."""
    return {str(node.get("identifier") or node.get("name")).lower(): node
            for node in manifest_sources.values() if str(node.get("schema", "")).lower() == C.RAW_SCHEMA}


def _checkable(node: dict[str, Any]) -> bool:
    """dbt can judge the source's freshness: it has a loaded_at query (or field)."""
    return bool(node.get("loaded_at_query") or node.get("loaded_at_field"))


def _check_declared(declared: dict[str, Any], raw: dict[str, dict[str, Any]]) -> None:
    problems = []
    for table in sorted(declared):
        if table not in raw:
            problems.append(f"freshness.sources.{table}: the dbt project has no raw source table {table!r}")
        elif not _checkable(raw[table]):
            problems.append(f"freshness.sources.{table}: raw table {table!r} has no date column to judge "
                            "freshness by (a dimension, replaced on every landing)")
    if problems:
        known = ", ".join(sorted(t for t, node in raw.items() if _checkable(node))) or "none"
        raise SpecError(f"{'; '.join(problems)}; raw tables with a freshness check: {known}")


def _source_result(table: str, result: dict[str, Any], threshold: Any, as_of: date) -> dict[str, Any]:
    status = str(result["status"])
    if status not in STATUSES:
        raise TransformError(f"dbt source freshness returned status {status!r} for {result['unique_id']}")
    newest, age_days = None, None
    if not str(result.get("max_loaded_at", "")).startswith("0001-"):  # dbt's "no row" sentinel
        age_days = round(float(result["max_loaded_at_time_ago_in_s"]) / _SECONDS_PER_DAY)
        newest = (as_of - timedelta(days=age_days)).isoformat()
    return {"table": f"{C.RAW_SCHEMA}.{table}", "newest": newest, "age_days": age_days,
            "warn_after_days": threshold.warn_after_days, "error_after_days": threshold.error_after_days,
            "status": status}


def _describe(s: dict[str, Any], run_date: date, as_of: date | None = None) -> str:
    limit = s["error_after_days"] if s["status"] == "error" else s["warn_after_days"]
    as_of = as_of or run_date
    since = f"the run date {run_date.isoformat()}" if as_of == run_date else \
        f"the latest period end {as_of.isoformat()} (run date {run_date.isoformat()})"
    if s["newest"] is None:
        return f"{s['table']} has no row on or before {since} ({s['status']})"
    return (f"{s['table']}: newest row {s['newest']} is {s['age_days']} day(s) before {since} "
            f"({s['status']} after {limit})")


def _summary(status: str, sources: dict[str, Any], messages: list[str], blocking: bool) -> str:
    if status == "pass":
        return f"{len(sources)} source(s) fresh as of the run date"
    consequence = {"warn": "warning only", "error": "blocks scoring" if blocking else "published as stale"}[status]
    return f"{status} ({consequence}): " + "; ".join(messages)
