"""Run the dbt project in-process: the transformation step of every use case.

Why in-process (``dbtRunner``) rather than a subprocess: the structured results name each failed node
with its message, so a failure surfaces as one clear TransformError instead of a log to grep.

Every run writes its target and logs under ``<data_dir>/dbt`` (never into the repository) and passes
the as-of date as the dbt var ``run_date``: the models filter raw data by it, so a rerun or backfill
for a date sees exactly the data of that date.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlplatform import constants as C
from mlplatform.errors import TransformError

if TYPE_CHECKING:
    from mlplatform.settings import Settings
    from mlplatform.spec import UseCaseSpec

FAILED_STATUSES = frozenset({"error", "fail", "runtime error"})
_MAX_MESSAGE = 500


def target_dir(settings: Settings, use_case: str | None = None) -> Path:
    """dbt's target folder; one per use case, so builds of different use cases on one worker never
    overwrite each other's manifest and run results (each keeps its own partial-parse cache)."""
    base = settings.data_dir / "dbt"
    return base / "target" if use_case is None else base / "target" / use_case


def freshness_target_dir(settings: Settings, use_case: str) -> Path:
    """dbt's target folder for ``dbt source freshness`` of a use case: apart from the build's, so a
    freshness check never overwrites the manifest and run results of the use case's last build."""
    return settings.data_dir / "dbt" / "freshness" / use_case


def log_dir(settings: Settings) -> Path:
    return settings.data_dir / "dbt" / "logs"


@contextmanager
def _dbt_env(settings: Settings) -> Iterator[None]:
    """Environment profiles.yml reads (restored afterwards: the process may be a long-lived worker)."""
    values = {C.ENV_DUCKDB_PATH: str(settings.duckdb_path), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
              **settings.pg.dbt_env()}
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


def _common_args(settings: Settings, target_path: Path) -> list[str]:
    target_path.mkdir(parents=True, exist_ok=True)
    log_dir(settings).mkdir(parents=True, exist_ok=True)
    return [
        "--target", settings.dbt_target,
        "--project-dir", str(C.DBT_PROJECT_DIR),
        "--profiles-dir", str(C.DBT_PROFILES_DIR),
        "--target-path", str(target_path),
        "--log-path", str(log_dir(settings)),
    ]


def _release_duckdb() -> None:
    """Close the DuckDB database dbt-duckdb keeps open in-process after an invocation.

    Why: dbt-duckdb caches its environment (and the open database) on a class attribute; left open, it
    holds the file lock and makes any later read-only connection in this process fail with "different
    configuration". Private API, so any incompatibility is ignored (a later run recreates it anyway).
    """
    try:
        from dbt.adapters.duckdb.connections import DuckDBConnectionManager
    except ImportError:
        return
    with DuckDBConnectionManager._LOCK:
        env, DuckDBConnectionManager._ENV = DuckDBConnectionManager._ENV, None
        if env is not None:
            try:
                env.close()
            except Exception:  # noqa: BLE001 - best effort; never mask the dbt result
                pass


def _invoke(args: list[str], settings: Settings) -> Any:
    from dbt.cli.main import dbtRunner

    with _dbt_env(settings):
        try:
            return dbtRunner().invoke(args)
        finally:
            _release_duckdb()


def _status(result: Any) -> str:
    return str(getattr(result.status, "value", result.status))


def _failures(res: Any) -> list[str]:
    """One line per failed or errored node: its unique_id, status and (shortened) message."""
    lines = []
    for r in getattr(res.result, "results", None) or []:
        status = _status(r)
        if status in FAILED_STATUSES:
            message = " ".join(str(r.message or "").split())[:_MAX_MESSAGE]
            lines.append(f"{r.node.unique_id} [{status}]: {message}")
    return lines


def _raise_on_failure(res: Any, what: str) -> None:
    failures = _failures(res)
    if res.success and not failures:
        return
    if res.exception is not None and not failures:
        failures = [f"{type(res.exception).__name__}: {res.exception}"]
    skipped = sum(_status(r) == "skipped" for r in getattr(res.result, "results", None) or [])
    detail = "\n".join(f"  - {line}" for line in failures) or "  - dbt reported failure without node results"
    raise TransformError(f"{what} failed ({len(failures)} node(s) failed, {skipped} skipped):\n{detail}")


PERIOD_DAYS = {"daily": 1, "weekly": 7, "monthly": 31, "quarterly": 92}


def horizon_days(spec: UseCaseSpec) -> int:
    """Calendar days past the run date the calendar marts must cover (at least 1 for tabular kinds)."""
    return max(1, spec.horizon * PERIOD_DAYS[spec.frequency])


def run_dbt_build(spec: UseCaseSpec, run_date: date, settings: Settings) -> dict[str, Any]:
    """``dbt build`` of the use case's selection as of ``run_date``; TransformError names failed nodes."""
    target = target_dir(settings, spec.name)
    dbt_vars = {"run_date": run_date.isoformat(), "horizon_days": horizon_days(spec),
                "holiday_calendar": spec.holidays.key}
    args = ["build", "--select", *spec.transform.select.split(), "--vars", json.dumps(dbt_vars),
            *_common_args(settings, target)]
    started = time.monotonic()
    res = _invoke(args, settings)
    elapsed = time.monotonic() - started
    _raise_on_failure(res, f"dbt build for use case {spec.name!r} as of {run_date.isoformat()}")
    statuses = Counter(_status(r) for r in res.result.results)
    return {"manifest_hash": manifest_hash(target / "manifest.json"), "nodes": dict(sorted(statuses.items())),
            "elapsed_s": round(elapsed, 2), "target_path": str(target), "target": settings.dbt_target}


def _read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise TransformError(f"cannot read {what} {path}: {exc}") from exc


def run_source_freshness(use_case: str, select: list[str], dbt_vars: dict[str, Any],
                         settings: Settings) -> dict[str, Any]:
    """``dbt source freshness --select <select>`` with ``dbt_vars``, in the use case's freshness target.

    Returns {"results": sources.json results, "sources": the manifest's source nodes by unique_id,
    "runtime_errors": one line per source dbt could not check, "elapsed_s", "target_path"}. A source past
    its error threshold is a verdict (status "error" in the results), not a failure; dbt failing as a
    whole (project, profile or connection) raises TransformError with dbt's message. An empty
    selection returns no results without calling dbt.
    """
    target = freshness_target_dir(settings, use_case)
    if not select:
        return {"results": [], "sources": {}, "runtime_errors": [], "elapsed_s": 0.0, "target_path": str(target)}
    sources_json = target / "sources.json"
    sources_json.unlink(missing_ok=True)  # never read a previous check's verdict
    args = ["source", "freshness", "--select", *select, "--vars", json.dumps(dbt_vars, sort_keys=True),
            *_common_args(settings, target)]
    started = time.monotonic()
    res = _invoke(args, settings)
    elapsed = time.monotonic() - started
    what = f"dbt source freshness for use case {use_case!r}"
    if res.exception is not None or res.result is None:
        detail = f"{type(res.exception).__name__}: {res.exception}" if res.exception is not None else \
            "dbt returned no result"
        raise TransformError(f"{what} failed: {' '.join(detail.split())[:2 * _MAX_MESSAGE]}")
    runtime_errors = []
    for r in getattr(res.result, "results", None) or []:
        if _status(r) == "runtime error":
            message = " ".join(str(r.message or "").split())[:_MAX_MESSAGE]
            runtime_errors.append(f"{r.node.unique_id}: {message}")
    results = _read_json(sources_json, "dbt freshness results")["results"] if sources_json.is_file() else []
    manifest = _read_json(target / "manifest.json", "dbt manifest")
    return {"results": results, "sources": manifest.get("sources") or {}, "runtime_errors": runtime_errors,
            "elapsed_s": round(elapsed, 2), "target_path": str(target)}


def parse_project(settings: Settings, target_path: Path | None = None) -> Path:
    """``dbt parse`` (no warehouse access, no vars needed): writes manifest.json and returns its path.

    Used at install time so tooling that renders the dbt graph has a manifest; defaults to
    ``constants.DBT_MANIFEST_PATH``'s directory.
    """
    target = Path(target_path) if target_path is not None else C.DBT_MANIFEST_PATH.parent
    res = _invoke(["parse", *_common_args(settings, target)], settings)
    _raise_on_failure(res, "dbt parse")
    manifest = target / "manifest.json"
    if not manifest.is_file():
        raise TransformError(f"dbt parse succeeded but wrote no manifest at {manifest}")
    return manifest


def _node_fingerprint(node: dict[str, Any]) -> str:
    """A node's content checksum plus, for generic tests, their arguments (the checksum omits them)."""
    checksum = (node.get("checksum") or {}).get("checksum", "")
    kwargs = (node.get("test_metadata") or {}).get("kwargs")
    return checksum if kwargs is None else f"{checksum}:{json.dumps(kwargs, sort_keys=True, default=str)}"


def manifest_hash(manifest_path: Path) -> str:
    """sha256 over sorted (unique_id, checksum) of the manifest's nodes, unit tests and project macros.

    Why not the file bytes: manifest.json carries generation timestamps and invocation ids, so two
    parses of the same project differ byte-wise. This hash changes only when a model, seed, test or
    project macro changes: it identifies the transformation code a model version was trained on.
    """
    try:
        manifest = json.loads(Path(manifest_path).read_text())
    except (OSError, ValueError) as exc:
        raise TransformError(f"cannot read dbt manifest {manifest_path}: {exc}") from exc
    project = (manifest.get("metadata") or {}).get("project_name")
    pairs = [(uid, _node_fingerprint(node)) for uid, node in (manifest.get("nodes") or {}).items()]
    pairs += [(uid, json.dumps({"given": t.get("given"), "expect": t.get("expect"),
                                "overrides": t.get("overrides")}, sort_keys=True, default=str))
              for uid, t in (manifest.get("unit_tests") or {}).items()]
    pairs += [(uid, hashlib.sha256(m.get("macro_sql", "").encode()).hexdigest())
              for uid, m in (manifest.get("macros") or {}).items() if m.get("package_name") == project]
    digest = hashlib.sha256()
    for uid, checksum in sorted(pairs):
        digest.update(f"{uid}\0{checksum}\n".encode())
    return digest.hexdigest()
