"""Identity of code, data and environment, so every published number can be traced back.

Fingerprints are content hashes, never wall-clock times: rerunning a date reproduces the same ids.
"""

from __future__ import annotations

import hashlib
import os
import platform
import subprocess
from functools import lru_cache
from pathlib import Path

from mlplatform import __version__
from mlplatform import constants as C

# What counts as "the code" of a pipeline: the package, the DAG wiring, the dbt project and the specs.
_SOURCE_GLOBS = (
    "include/mlplatform/**/*.py",
    "plugins/**/*.py",
    "dags/**/*.py",
    "include/use_cases/*.yaml",
    "include/expectations/*.json",
    "dbt_project/dbt_project.yml",
    "dbt_project/models/**/*",
    "dbt_project/macros/**/*",
    "dbt_project/seeds/**/*",
)


@lru_cache(maxsize=1)
def source_hash(root: Path = C.PROJECT_ROOT) -> str:
    """sha256 over the project's source files (path and content), independent of git."""
    digest = hashlib.sha256()
    files = sorted({p for pattern in _SOURCE_GLOBS for p in root.glob(pattern) if p.is_file()})
    for path in files:
        if "__pycache__" in path.parts:
            continue
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


@lru_cache(maxsize=1)
def git_commit(root: Path = C.PROJECT_ROOT) -> str | None:
    """HEAD commit when the project is a git checkout (containers may ship without .git)."""
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def code_version() -> dict:
    """Package version, git commit (if any) and the source hash; MLPLATFORM_CODE_VERSION can pin a release tag."""
    return {
        "package_version": __version__,
        "release": os.environ.get(C.ENV_CODE_VERSION),
        "git_commit": git_commit(),
        "source_hash": source_hash(),
    }


def library_versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    names = ("scikit-learn", "pandas", "numpy", "pyarrow", "dbt-core", "dbt-duckdb", "dbt-postgres", "great-expectations",
             "evidently", "apache-airflow")
    out = {"python": platform.python_version()}
    for name in names:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def combine(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


# --- "where did this number come from?" -----------------------------------------------------------------


def _key(uri: str | None, bucket: str) -> str | None:
    prefix = f"s3://{bucket}/"
    return uri[len(prefix):] if uri and uri.startswith(prefix) else None


def _read(store, uri: str | None) -> dict | None:
    key = _key(uri, store.bucket)
    return store.get_json(key) if key and store.exists(key) else None


def openlineage_events(path: Path | None, dag_id: str, run_id: str) -> list[dict]:
    """The OpenLineage events (file transport, JSON lines) of one Airflow DAG run and its tasks."""
    import json

    if path is None or not Path(path).is_file():
        return []
    out = []
    for line in Path(path).read_text().splitlines():
        if run_id not in line or dag_id not in line:
            continue
        try:
            event = json.loads(line)
        except ValueError:
            continue
        job = (event.get("job") or {}).get("name", "")
        if job == dag_id or job.startswith(dag_id + "."):
            out.append({"eventType": event.get("eventType"), "eventTime": event.get("eventTime"), "job": job,
                        "runId": (event.get("run") or {}).get("runId"),
                        "inputs": [f"{d.get('namespace')}/{d.get('name')}" for d in event.get("inputs") or []],
                        "outputs": [f"{d.get('namespace')}/{d.get('name')}" for d in event.get("outputs") or []]})
    return out


def openlineage_file_from_env() -> Path | None:
    """The file the OpenLineage file transport writes to, when that is the configured transport."""
    import json

    raw = os.environ.get(C.ENV_OPENLINEAGE_TRANSPORT)
    try:
        config = json.loads(raw) if raw else {}
    except ValueError:
        return None
    return Path(config["log_file_path"]) if config.get("type") == "file" and config.get("log_file_path") else None


def trace(store, use_case: str, run_date, openlineage_file: Path | None = None) -> dict:
    """Everything one published partition came from, read from the manifest and what it links.

    The manifest (written last, after the data) names the model version; the version's metadata names
    its training data snapshot, the code (commit and source hash), the spec, the libraries and the gate
    checks it passed; the lineage record names the dbt invocation that built the features; the manifest
    names the validation and drift results, the human approval (if required) and the Airflow run, whose
    OpenLineage events are read from the file transport when there is one.
    """
    from mlplatform import registry
    from mlplatform.publishing import read_manifest
    from mlplatform.storage import Layout

    layout = Layout(use_case)
    manifest = read_manifest(store, layout.forecasts(run_date))
    meta = registry.read_metadata(store, layout, manifest["model_version"])
    lineage = manifest.get("lineage") or {}
    airflow = _read(store, lineage.get("airflow_run_uri"))
    dbt = _read(store, lineage.get("dbt_invocation_uri"))
    return {
        "partition": {"uri": manifest["partition_uri"], "rows": manifest["row_count"],
                      "files": [{"key": f["key"], "sha256": f["sha256"], "rows": f["rows"]} for f in manifest["files"]]},
        "model": {"version": meta["version"], "selected_by": manifest["model"]["selected_by"],
                  "uri": meta["artifact"]["model_uri"], "sha256": meta["artifact"]["model_sha256"],
                  "model_card_uri": meta["artifact"].get("model_card_uri"),
                  "training_window": meta["training_window"], "decision": meta["decision"]["reason"],
                  "checks": {k: v.get("passed") for k, v in meta["decision"].get("checks", {}).items()
                             if isinstance(v, dict)},
                  "approval": manifest.get("approval")},
        "training_data": meta["data"],
        "scoring_data": {"snapshot": lineage.get("features_snapshot"), "fingerprint": lineage.get("data_fingerprint")},
        "code": {"scoring": lineage.get("code"), "training": meta.get("code"),
                 "spec_fingerprint": meta.get("spec_fingerprint"), "libraries": meta.get("library_versions")},
        "dbt": {"manifest_hash": lineage.get("dbt_manifest_hash"), "invocation_uri": lineage.get("dbt_invocation_uri"),
                "invocation_id": (dbt or {}).get("invocation_id"), "dbt_version": (dbt or {}).get("dbt_version"),
                "nodes": len((dbt or {}).get("nodes") or [])},
        "checks": {"validation": manifest.get("validation"), "drift": manifest.get("drift"),
                   "freshness": manifest.get("freshness"), "stale": manifest.get("stale", False)},
        "airflow": airflow,
        "openlineage": openlineage_events(openlineage_file or openlineage_file_from_env(), airflow["dag_id"],
                                          airflow["run_id"]) if airflow else [],
    }


def render_trace(t: dict) -> str:
    """The trace as the short text an auditor reads."""
    m, d, a = t["model"], t["dbt"], t["airflow"]
    validation = (t["checks"].get("validation") or {})
    lines = [
        f"partition   {t['partition']['uri']}  ({t['partition']['rows']} rows, {len(t['partition']['files'])} files, sha256 listed in the manifest)",
        f"model       {m['version']}  ({m['selected_by']}; trained on {m['training_window']['start']}..{m['training_window']['end']})",
        f"            {m['decision']}",
        "            checks: " + (", ".join(k + (" passed" if v else " FAILED") for k, v in m["checks"].items()) or "-"),
        f"            approval: {(m['approval'] or {}).get('outcome', 'not required')}"
        + (f" by {m['approval']['approver'].get('name')} at {m['approval']['responded_at']}" if (m['approval'] or {}).get('approver') else ""),
        f"            card {m['model_card_uri']}",
        f"training    {t['training_data'].get('snapshot_uri')}  fingerprint {str(t['training_data'].get('fingerprint'))[:16]}",
        f"scoring     {t['scoring_data']['snapshot']}  fingerprint {str(t['scoring_data']['fingerprint'])[:16]}",
        f"dbt         invocation {d['invocation_id'] or '-'} (dbt {d['dbt_version'] or '-'}, {d['nodes']} nodes), manifest {str(d['manifest_hash'])[:16]}",
        f"code        commit {(t['code']['training'] or {}).get('git_commit') or '-'}, source {str((t['code']['training'] or {}).get('source_hash'))[:16]}, spec {str(t['code']['spec_fingerprint'])[:16]}",
        f"validation  {'passed' if validation.get('success') else validation.get('success', '-')}  {validation.get('result_uri', '')}",
        f"airflow     {a['dag_id']} / {a['run_id']}" if a else "airflow     - (published outside Airflow)",
        f"openlineage {len(t['openlineage'])} events" + (": " + ", ".join(sorted({e['job'] for e in t['openlineage']})) if t['openlineage'] else ""),
    ]
    return "\n".join(lines)
