"""The pipeline's stages: one function per Airflow task.

Each stage takes the use-case spec, the logical date and its I/O handles, reads its inputs from the
warehouse or object storage *as of that date*, writes its outputs under that date's partition, and returns
a small JSON-safe dict (what the DAG passes on through XCom). Stages hand data to each other through
object storage, never through XCom, so any stage can be rerun on its own for a date.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from typing import TYPE_CHECKING

from mlplatform import approval, registry
from mlplatform import constants as C
from mlplatform.errors import DataQualityError, PlatformError, SpecError
from mlplatform.lineage import code_version, library_versions
from mlplatform.publishing import publish_partition, read_manifest
from mlplatform.settings import Settings
from mlplatform.spec import UseCaseSpec
from mlplatform.storage import Layout, ObjectStore

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from mlplatform.lifecycle import RefusedAttempt

log = logging.getLogger(__name__)

ENV_TRAINING_THREADS = "MLPLATFORM_TRAINING_THREADS"

FEATURES_FILE = "features.parquet"
CALENDAR_FILE = "calendar.parquet"
VALIDATION_FILE = "result.json"
DRIFT_FILE = "drift.json"
DRIFT_HTML = "report.html"
DRIFT_SNAPSHOT = "evidently_snapshot.json"
DBT_INVOCATION_FILE = "dbt_invocation.json"
FRESHNESS_FILE = "freshness.json"
AIRFLOW_RUN_FILE = "airflow_run.json"


# --- land and transform (the warehouse stages) -------------------------------------------------------

def _require_history(spec: UseCaseSpec, run_date: date) -> None:
    """A date whose latest complete period ends before the source's first day has no data: say so,
    instead of failing deep in dbt. (Weekly: the run date itself, as the week-ending day is not known yet.)"""
    from mlplatform.calendars import latest_period_end

    through = run_date if spec.frequency == "weekly" else latest_period_end(run_date, spec.frequency)
    if through < spec.source.history_start:
        period = "" if through == run_date else f" (its latest complete {spec.frequency} period ends {through})"
        raise DataQualityError(
            f"{spec.name}: run date {run_date}{period} is before source.history_start {spec.source.history_start}; "
            "there is no raw data as of that date (run a later date, or move history_start in the spec)")


def land_raw(spec: UseCaseSpec, run_date: date, settings: Settings, store: ObjectStore | None = None) -> dict:
    """Land raw source data up to ``run_date`` in the warehouse; days already landed stay untouched.

    A ``files`` source is checked against its contract on the way in (``mlplatform.ingest``): blocking
    problems stop the run, bad rows are quarantined to ``store``, and the landing report is stored. A
    ``warehouse`` source is only checked for readiness (the latest complete period as of the date).
    Every type also lands the spec's holiday calendar (``raw.holidays``) for the years it needs.
    """
    from mlplatform.warehouse import land_holidays, land_source

    _require_history(spec, run_date)
    if spec.source.type == "generator":
        return land_source(spec, run_date, settings)  # lands the holiday calendar in the same transaction
    if spec.source.type == "files":
        from mlplatform.ingest import land_files

        result = land_files(spec, run_date, settings, store)
    else:
        result = land_source(spec, run_date, settings)  # a warehouse source: readiness only
    return {**result, **land_holidays(spec, run_date, settings)}


def check_freshness(spec: UseCaseSpec, run_date: date, settings: Settings, store: ObjectStore) -> dict:
    """dbt source freshness of the raw tables as of ``run_date``; stop the run if a stale source blocks.

    The verdict is stored (``lifecycle/run_date=D/freshness.json``) for the manifest and the run summary:
    with ``on_error: publish_stale`` the run goes on and the partition says ``stale: true``.
    """
    from mlplatform.freshness import check_freshness as dbt_source_freshness
    from mlplatform.freshness import require_fresh

    result = dbt_source_freshness(spec, run_date, settings)
    stored = {k: v for k, v in result.items() if k != "elapsed_s"}  # same verdict, same bytes on a rerun
    uri = store.put_json(f"{Layout(spec.name).lifecycle(run_date)}/{FRESHNESS_FILE}", stored)
    log.info("%s %s: source freshness %s", spec.name, run_date, result["message"])
    require_fresh(result)
    return {**result, "result_uri": uri}


def run_freshness(spec: UseCaseSpec, run_date: date, store: ObjectStore) -> dict:
    """The date's stored freshness verdict (what the UI's freshness_warning task shows)."""
    return _freshness_of(store, Layout(spec.name), run_date) or {"status": "not_checked", "messages": []}


def _freshness_of(store: ObjectStore, layout: Layout, run_date: date) -> dict | None:
    stored = _stored(store, f"{layout.lifecycle(run_date)}/{FRESHNESS_FILE}")
    if stored is None:
        return None
    return {"status": stored["status"], "on_error": stored["on_error"], "messages": stored["messages"],
            "sources": {t: {k: s.get(k) for k in ("newest", "age_days", "status")} for t, s in stored["sources"].items()}}


def build_features(spec: UseCaseSpec, run_date: date, settings: Settings, store: ObjectStore) -> dict:
    """dbt build as of ``run_date``, then snapshot the feature and calendar marts to object storage.

    The snapshot is the exact training/scoring input of this run: immutable per date, fingerprinted, and
    readable by later stages without touching the (single-writer) warehouse.
    """
    from mlplatform.transform import run_dbt_build
    from mlplatform.warehouse import read_relation, relation_name

    _require_history(spec, run_date)
    dbt = run_dbt_build(spec, run_date, settings)
    time_col = spec.features.time_column
    features = read_relation(settings, relation_name(spec.transform.features_model),
                             where=f"{time_col} <= ?", params=[run_date])
    features = _normalise(features, spec.features.series_keys, time_col)
    calendar = _read_calendar(spec, run_date, settings)
    if features.empty:
        raise DataQualityError(f"{spec.name}: the feature mart {spec.transform.features_model} has no rows up "
                               f"to {run_date}; was raw data landed from {spec.source.history_start}?")
    result = _write_snapshot(spec, run_date, store, features, calendar, dbt)
    return {**result, **record_dbt_invocation(spec, run_date, store, dbt)}


def record_dbt_invocation(spec: UseCaseSpec, run_date: date, store: ObjectStore, dbt: dict) -> dict:
    """Keep dbt's own record of the build that made the date's features (run_results.json).

    The invocation id and per-node results change on every rebuild, so they live under ``lineage/``,
    apart from the byte-reproducible snapshot; every manifest links this record.
    """
    import json
    from pathlib import Path

    path = Path(dbt.get("target_path") or "") / "run_results.json"
    if not path.is_file():
        return {}
    results = json.loads(path.read_text())
    meta = results.get("metadata", {})
    record = {
        "use_case": spec.name, "run_date": run_date.isoformat(), "invocation_id": meta.get("invocation_id"),
        "dbt_version": meta.get("dbt_version"), "generated_at": meta.get("generated_at"),
        "select": spec.transform.select, "target": dbt.get("target"), "manifest_hash": dbt.get("manifest_hash"),
        "elapsed_s": results.get("elapsed_time"),
        "nodes": [{"unique_id": r.get("unique_id"), "status": r.get("status")} for r in results.get("results", [])],
    }
    key = f"{Layout(spec.name).lineage(run_date)}/{DBT_INVOCATION_FILE}"
    return {"dbt_invocation_id": record["invocation_id"], "dbt_invocation_uri": store.put_json(key, record)}


def _read_calendar(spec: UseCaseSpec, run_date: date, settings: Settings) -> pd.DataFrame:
    """The calendar mart through the end of the horizon (known in advance); empty for tabular kinds."""
    import pandas as pd

    from mlplatform.transform import horizon_days
    from mlplatform.warehouse import read_relation, relation_name

    if not spec.transform.calendar_model:
        return pd.DataFrame({"calendar_date": pd.Series(dtype="datetime64[ns]")})
    last_day = run_date + timedelta(days=horizon_days(spec))
    calendar = read_relation(settings, relation_name(spec.transform.calendar_model),
                             where="calendar_date <= ?", params=[last_day])
    return _normalise(calendar, [], "calendar_date")


def _normalise(frame: pd.DataFrame, keys: list[str], time_col: str) -> pd.DataFrame:
    """Stable order and dtypes, so equal data gives equal bytes and fingerprints."""
    import pandas as pd

    frame = frame.copy()
    frame[time_col] = pd.to_datetime(frame[time_col]).astype("datetime64[ns]")
    return frame.sort_values([*keys, time_col], kind="mergesort").reset_index(drop=True)


def _write_snapshot(spec: UseCaseSpec, run_date: date, store: ObjectStore, features: pd.DataFrame,
                    calendar: pd.DataFrame, dbt: dict) -> dict:
    from mlplatform.lineage import combine

    prefix = Layout(spec.name).features(run_date)
    feat = store.put_parquet(f"{prefix}/{FEATURES_FILE}", features)
    cal = store.put_parquet(f"{prefix}/{CALENDAR_FILE}", calendar)
    time_col = spec.features.time_column
    manifest = {
        "use_case": spec.name, "run_date": run_date.isoformat(),
        "fingerprint": combine(feat["sha256"], cal["sha256"]),
        "features": {**feat, "uri": store.uri(feat["key"]),
                     "first_date": features[time_col].min().date().isoformat(),
                     "last_date": features[time_col].max().date().isoformat(),
                     "series": int(features.groupby(spec.features.series_keys).ngroups)},
        "calendar": {**cal, "uri": store.uri(cal["key"])},
        "dbt_manifest_hash": dbt["manifest_hash"],
        "dbt_target": dbt.get("target"),
    }
    store.put_json(f"{prefix}/_manifest.json", manifest)
    log.info("feature snapshot %s: %s rows, fingerprint %s", store.uri(prefix), feat["rows"],
             manifest["fingerprint"][:12])
    return {"snapshot_uri": store.uri(prefix + "/"), "rows": feat["rows"], "fingerprint": manifest["fingerprint"],
            "dbt_manifest_hash": dbt["manifest_hash"], "dbt_nodes": dbt.get("nodes")}


def load_snapshot(spec: UseCaseSpec, run_date: date, store: ObjectStore) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    prefix = Layout(spec.name).features(run_date)
    if not store.exists(f"{prefix}/_manifest.json"):
        raise PlatformError(f"{spec.name}: no feature snapshot for {run_date} at {store.uri(prefix)}/; "
                            "run the build_features task for this date first")
    manifest = store.get_json(f"{prefix}/_manifest.json")
    features = store.get_parquet(f"{prefix}/{FEATURES_FILE}")
    calendar = store.get_parquet(f"{prefix}/{CALENDAR_FILE}")
    last = features[spec.features.time_column].max()
    if last.date() > run_date:
        raise DataQualityError(f"{spec.name}: snapshot for {run_date} holds data up to {last.date()} (future leak)")
    return features, calendar, manifest


# --- validate ----------------------------------------------------------------------------------------

def validate_features(spec: UseCaseSpec, run_date: date, store: ObjectStore) -> dict:
    """Run the use case's GX suite on the feature snapshot; store the result; stop the run on failure."""
    from mlplatform.privacy import redact_validation
    from mlplatform.validation import raise_for_failures, validate_frame

    features, _, snapshot = load_snapshot(spec, run_date, store)
    report = validate_frame(features, spec.suite_path, sample_size=spec.validation.sample_size)
    report = redact_validation(report, spec.privacy.pii_columns)  # no PII value in the result or the error
    key = f"{Layout(spec.name).validation(run_date)}/{VALIDATION_FILE}"
    result = {"use_case": spec.name, "run_date": run_date.isoformat(), "suite": spec.validation.suite,
              "data_fingerprint": snapshot["fingerprint"], **report.to_dict()}
    uri = store.put_json(key, result)
    raise_for_failures(report, where=f"{spec.name} feature snapshot for {run_date} (result: {uri})")
    warnings = [r["expectation"] for r in report.failures()]
    return {"success": True, "result_uri": uri, "warnings": warnings, "evaluated": len(report.results)}


def _require_validation(spec: UseCaseSpec, run_date: date, store: ObjectStore, fingerprint: str) -> dict:
    """Training and publishing refuse data that has not passed validation (even if a task is re-run alone)."""
    key = f"{Layout(spec.name).validation(run_date)}/{VALIDATION_FILE}"
    if not store.exists(key):
        raise DataQualityError(f"{spec.name}: no validation result for {run_date} at {store.uri(key)}; "
                               "run validate_features first")
    result = store.get_json(key)
    if not result["success"] or result["data_fingerprint"] != fingerprint:
        raise DataQualityError(f"{spec.name}: the feature snapshot for {run_date} did not pass validation "
                               f"(or changed since): see {store.uri(key)}")
    return {"success": True, "result_uri": store.uri(key), "suite": result["suite"],
            "warnings": [r["expectation"] for r in result["results"] if not r["success"]]}


@contextmanager
def training_threads() -> Iterator[None]:
    """Cap OpenMP/BLAS threads while fitting (MLPLATFORM_TRAINING_THREADS, default 1).

    HistGradientBoosting's OpenMP threads spin; when Airflow runs several tasks on the same cores they
    oversubscribe them and a 5 s fit becomes minutes. Results are identical for any thread count.
    """
    import sklearn.ensemble  # noqa: F401 - load the OpenMP runtime first: threadpoolctl limits loaded ones
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=int(os.environ.get(ENV_TRAINING_THREADS, "1"))):
        yield


# --- lifecycle: accuracy on actuals, retraining triggers ---------------------------------------------

ACCURACY_FILE = "summary.json"
ACCURACY_ROWS = "realised.parquet"
RETRAIN_FILE = "retrain.json"


def evaluate_accuracy(spec: UseCaseSpec, run_date: date, store: ObjectStore) -> dict:
    """Join recently published outputs to the actuals known as of ``run_date``; store realised metrics.

    Stored per published run date (and horizon): ``accuracy/run_date=D/realised.parquet``; the verdict on
    the serving model (``summary.json``) says whether realised accuracy decayed past the spec's limit. A
    breach is also written to ``alerts/`` for the alerting callback and feeds the retraining trigger.
    With ``fairness.sensitive_attributes`` the summary also holds the group report on realised outcomes
    (``fairness``), the attributes joined from the features snapshot, never from the published files.
    """
    import pandas as pd

    from mlplatform import accuracy as A
    from mlplatform.publishing import published_dates, read_published

    features, _, _ = load_snapshot(spec, run_date, store)
    layout = Layout(spec.name)
    dates = A.lookback_dates(published_dates(store, layout.forecasts_root()), run_date,
                             spec.accuracy.lookback_days)
    known = A.actuals(features, spec)
    parts = []
    for published in dates:
        rows = A.join_actuals(read_published(store, layout.forecasts(published)), known, spec)
        parts.append(rows.assign(**{A.PUBLISHED_RUN_DATE: published.isoformat()}))
    rows = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    serving = registry.incumbent(store, layout, run_date)
    verdict = A.assess(rows, spec, serving)
    prefix = layout.accuracy(run_date)
    table = A.breakdown(rows, spec) if len(rows) else pd.DataFrame()
    rows_uri = None if table.empty else store.uri(store.put_parquet(f"{prefix}/{ACCURACY_ROWS}", table)["key"])
    summary = {"use_case": spec.name, "run_date": run_date.isoformat(), "published_dates":
               [d.isoformat() for d in dates], "realised_uri": rows_uri, **verdict}
    fairness = A.realised_fairness(rows, features, spec)  # None unless fairness.sensitive_attributes
    if fairness is not None:
        summary["fairness"] = fairness
        if not fairness["check"]["passed"]:
            log.warning("%s: realised fairness for %s: %s", spec.name, run_date, fairness["check"]["detail"])
    uri = store.put_json(f"{prefix}/{ACCURACY_FILE}", summary)
    if verdict["breach"]:
        store.put_json(f"{layout.alerts()}/accuracy-{run_date.isoformat()}.json",
                       {**summary, "alert": "accuracy_decay", "summary_uri": uri})
        log.warning("%s: accuracy alert for %s: %s", spec.name, run_date, verdict["breach_reason"])
    return {"summary_uri": uri, "breach": verdict["breach"], "breach_reason": verdict["breach_reason"],
            "realised_rows": verdict["overall"]["n"], "published_dates": len(dates),
            "serving": verdict.get("serving")}


def decide_retrain(spec: UseCaseSpec, run_date: date, store: ObjectStore, pinned: str | None = None) -> dict:
    """Whether this run retrains, and why: the spec's triggers applied to today's drift and accuracy.

    Firing triggers retrain unless that would repeat a refused attempt on nearly the same evidence
    (``lifecycle.repeated_refusal``): then the stored decision says what was refused when, and from which
    run date the next attempt comes.
    """
    from mlplatform.lifecycle import PINNED, repeated_refusal, retrain_triggers

    layout = Layout(spec.name)
    if pinned:
        result = {"retrain": False, "triggers": [], "skipped": f"{PINNED}: {pinned} serves this run"}
    else:
        champion = registry.incumbent(store, layout, run_date)
        drift = _stored(store, f"{layout.monitoring(run_date)}/{DRIFT_FILE}")
        acc = _stored(store, f"{layout.accuracy(run_date)}/{ACCURACY_FILE}")
        fired = retrain_triggers(spec, run_date, champion, drift, acc)
        repeat = repeated_refusal(spec, run_date, fired, _refused_attempt(spec, store, layout, champion, run_date)) \
            if fired else None
        result = {"retrain": bool(fired) and repeat is None, "triggers": [t.to_dict() for t in fired],
                  "champion": champion["version"] if champion else None}
        if repeat:
            result.update(skipped=repeat["reason"], refused_attempt=repeat["refused_attempt"],
                          retry_from=repeat["retry_from"])
    store.put_json(f"{layout.lifecycle(run_date)}/{RETRAIN_FILE}",
                   {"use_case": spec.name, "run_date": run_date.isoformat(), **result})
    log.info("%s %s: %s", spec.name, run_date,
             "retrain: " + "; ".join(t["detail"] for t in result["triggers"]) if result["retrain"]
             else result.get("skipped") or "no retraining trigger fired")
    return result


def _refused_attempt(spec: UseCaseSpec, store: ObjectStore, layout: Layout, champion: dict | None,
                     run_date: date) -> RefusedAttempt | None:
    """The latest training attempt for a date before ``run_date`` and after the incumbent's, if the gate
    refused it (None otherwise), with the trigger kinds its run recorded. The date's own attempt never
    counts, so a rerun of the date decides as the first run did. An attempt made under another spec or
    code (say the operator lowered backtest.min_improvement after the refusal) is new evidence: None."""
    from mlplatform.lifecycle import RefusedAttempt
    from mlplatform.lineage import source_hash

    since = champion.get("trained_for_run_date", "") if champion else ""
    attempts = sorted((m for m in registry.list_versions(store, layout)
                       if not m["decision"].get("fallback")
                       and since < m.get("trained_for_run_date", "") < run_date.isoformat()),
                      key=lambda m: (m["trained_for_run_date"], m["version"]))
    if not attempts or attempts[-1]["decision"]["promoted"]:
        return None
    last = attempts[-1]
    if last.get("spec_fingerprint") != spec.fingerprint() or (last.get("code") or {}).get("source_hash") != source_hash():
        return None
    stored = _stored(store, f"{layout.lifecycle(date.fromisoformat(last['trained_for_run_date']))}/{RETRAIN_FILE}")
    triggers = tuple(t["trigger"] for t in stored["triggers"]) if stored and stored.get("retrain") else None
    return RefusedAttempt(last["version"], date.fromisoformat(last["trained_for_run_date"]),
                          date.fromisoformat(last["training_window"]["end"][:10]), last["decision"]["reason"], triggers)


def _stored(store: ObjectStore, key: str) -> dict | None:
    return store.get_json(key) if store.exists(key) else None


# --- train and register --------------------------------------------------------------------------------

def train_model(spec: UseCaseSpec, run_date: date, store: ObjectStore, actor: str = "pipeline",
                run_id: str | None = None) -> dict:
    """Backtest and fit on data up to ``run_date``; register the version; move the aliases it earns.

    The version id is derived from the data, spec and code before training, so a rerun of a date whose
    version is already registered returns that version without retraining (versions are immutable), and
    re-applies its decision (moves already recorded are not recorded twice).
    """
    features, calendar, snapshot = load_snapshot(spec, run_date, store)
    _require_validation(spec, run_date, store, snapshot["fingerprint"])
    layout = Layout(spec.name)
    code = code_version()
    version = registry.version_id(run_date, snapshot["fingerprint"], spec.fingerprint(), code["source_hash"])
    if registry.is_registered(store, layout, version):
        stored, created = registry.read_metadata(store, layout, version), False
    else:
        _require_reachable_min_rows(spec, run_date, snapshot)
        stored, created = _train_and_register(spec, run_date, store, features, calendar, snapshot, version, code)
    awaiting = bool(stored["decision"]["promoted"] and spec.approval.required)
    moves = _apply_decision(store, layout, stored, run_date, actor, run_id, awaiting)
    moves += _apply_fallback(spec, store, layout, stored, snapshot, code, run_date, actor, run_id)
    if awaiting:
        approval.open_request(spec, run_date, store, stored)
    log.info("model %s (%s): %s%s", version, "new" if created else "already registered, not retrained",
             stored["decision"]["reason"], "; awaiting human approval" if awaiting else "")
    m = stored["metrics"]
    return {"version": version, "created": created, "decision": stored["decision"], "metric": m["metric"],
            "model_value": m["model"].get(m["metric"]), "baseline_value": m["baseline"].get(m["metric"]),
            "alias_moves": moves, "awaiting_approval": awaiting, "model_uri": stored["artifact"]["model_uri"],
            "training_data": stored["data"]["snapshot_uri"]}


def _require_reachable_min_rows(spec: UseCaseSpec, run_date: date, snapshot: dict) -> None:
    """SpecError before any fit when the spec's explicit ``backtest.champion_min_rows`` exceeds what the
    backtest can compare for the data's series count (folds x horizon x series): every retrain would be
    refused for lack of evidence. Spec validation checks this at load only when a generator's params
    fix the series count; here the feature snapshot says how many series the data has."""
    from mlplatform.spec import champion_min_rows_problem

    n_series = snapshot["features"].get("series")
    problem = n_series and spec.kind == "forecast" and champion_min_rows_problem(spec.backtest, spec.horizon, n_series)
    if problem:
        raise SpecError(f"{C.USE_CASES_DIR / (spec.name + '.yaml')}: field {problem} (the feature snapshot for "
                        f"{run_date} holds {n_series} series)")


def _apply_decision(store: ObjectStore, layout: Layout, stored: dict, run_date: date, actor: str,
                    run_id: str | None, awaiting_approval: bool = False) -> list[dict]:
    """Promoted: the champion alias moves; otherwise the version becomes the challenger. Both audited.

    A use case that requires approval keeps a gate-passing version as the challenger: the champion moves
    only when a person approves it (``approval.record_decision``).
    """
    promoted = stored["decision"]["promoted"] and not awaiting_approval
    alias, action = (registry.CHAMPION, "promote") if promoted else (registry.CHALLENGER, "register_challenger")
    reason = stored["decision"]["reason"] + ("; awaiting human approval" if awaiting_approval else "")
    event = registry.move_alias(store, layout, alias, stored, effective_date=run_date, actor=actor,
                                reason=reason, action=action, run_id=run_id)
    return [event] if event else []


# --- human approval (specs with approval: required) ------------------------------------------------------

def approval_request(spec: UseCaseSpec, run_date: date, store: ObjectStore) -> dict | None:
    """The promotion request waiting for a person on this date, or None (nothing to approve)."""
    return approval.pending_request(spec, run_date, store)


def record_approval(spec: UseCaseSpec, run_date: date, store: ObjectStore, *, outcome: str,
                    responded_by: dict | None, responded_at: object, run_id: str | None = None) -> dict:
    """Apply and audit the answer to the date's promotion request (see ``mlplatform.approval``)."""
    return approval.record_decision(spec, run_date, store, outcome=outcome, responded_by=responded_by,
                                    responded_at=responded_at, run_id=run_id)


def _champion_for_gate(store: ObjectStore, layout: Layout, spec: UseCaseSpec, run_date: date) -> tuple:
    """(metadata, trainer input) of the champion as of ``run_date``, or (None, None)."""
    from mlplatform import models

    meta = registry.incumbent(store, layout, run_date)
    if meta is None:
        return None, None
    model = models.load(spec, registry.load_model_bytes(store, layout, meta))
    return meta, models.champion_input(meta["version"], model, meta["training_window"]["end"])


def _train_and_register(spec: UseCaseSpec, run_date: date, store: ObjectStore, features: pd.DataFrame,
                        calendar: pd.DataFrame, snapshot: dict, version: str, code: dict) -> tuple[dict, bool]:
    from mlplatform import models
    from mlplatform.model_card import reference_statistics, render
    from mlplatform.serving_contract import contract_problems

    layout = Layout(spec.name)
    current, champion_in = _champion_for_gate(store, layout, spec, run_date)
    unservable = "; ".join(contract_problems(current, spec)) if current else ""
    with training_threads():  # a champion that cannot serve the spec cannot be compared on its rows either
        result = models.train(spec, features, calendar, run_date, champion=None if unservable else champion_in)
        model_bytes = result.model.to_bytes()
        sanity = models.sanity_check(spec, model_bytes, features, calendar, run_date, spec.publish.chunk_rows)
    decision = registry.decide(result.metrics, current, *spec.champion_min_rows_for(snapshot["features"].get("series")),
                               champion_unservable=unservable or None)
    if not sanity["passed"]:
        decision = registry.Decision(False, False, "not promoted: broken model: " + "; ".join(sanity["problems"]),
                                     {**decision.checks, "sanity": sanity})
    else:
        decision.checks["sanity"] = sanity
    stats = reference_statistics(result.reference)
    metadata = {
        "version": version, "use_case": spec.name, "kind": spec.kind, "frequency": spec.frequency,
        "trained_for_run_date": run_date.isoformat(),
        "training_window": result.training_window, "n_training_rows": result.n_training_rows,
        "data": {"snapshot_uri": store.uri(layout.features(run_date) + "/"),
                 "fingerprint": snapshot["fingerprint"], "rows": snapshot["features"]["rows"]},
        "dbt_manifest_hash": snapshot["dbt_manifest_hash"], "code": code,
        "spec_fingerprint": spec.fingerprint(), "spec": spec.model_dump(mode="json"),
        "feature_names": result.feature_names,
        "quantiles": spec.model.quantiles if spec.kind == "forecast" else None, "horizon": spec.horizon,
        "model": _model_description(spec, result.model),
        "library_versions": library_versions(), "metrics": result.metrics, "decision": decision.to_dict(),
        "reference_statistics": stats,
    }
    card = render(spec, metadata, stats)
    registered = registry.register(store, layout, metadata, model_bytes, result.reference, card=card)
    if current is None and getattr(result, "fallback", None) is not None:
        _register_fallback(spec, store, layout, result, registered[0], stats)
    return registered


def _model_description(spec: UseCaseSpec, model: object) -> dict:
    """What the version's model is: the estimator and, for forecasts, the candidate the backtest chose."""
    out = {"estimator": spec.model.estimator, "params": spec.model.params}
    if spec.kind == "forecast":
        out.update(candidate=getattr(model, "candidate", "gbm"), members=getattr(model, "members", ["gbm"]),
                   description=getattr(model, "description", "gbm"),
                   fallback=bool(getattr(model, "fallback", False)))
    return out


def fallback_version(run_date: date, snapshot: dict, spec: UseCaseSpec, code: dict) -> str:
    """Id of the fallback registered beside ``version``: same data, spec and code, its own content hash."""
    return registry.version_id(run_date, snapshot["fingerprint"], spec.fingerprint(), code["source_hash"] + ":fallback")


def _register_fallback(spec: UseCaseSpec, store: ObjectStore, layout: Layout, result: object, main: dict,
                       stats: dict) -> dict:
    """Register the best forecast that needs no learning (seasonal naive or a statistical model), calibrated,
    beside a use case's first trained version. It serves, flagged, only while no version is champion:
    a use case whose first model is refused still publishes numbers, clearly marked, instead of nothing.
    It can be neither pinned nor rolled back to (not eligible): a champion always replaces it.
    """
    from mlplatform.model_card import render

    fb = result.fallback_metrics
    data = {"fingerprint": main["data"]["fingerprint"]}
    version = fallback_version(date.fromisoformat(main["trained_for_run_date"]), data, spec, main["code"])
    metrics = {**main["metrics"], "model": {k: fb.get(k) for k in ("wape", "mase", "bias", "coverage")},
               "chosen": fb["candidate"], "members": [fb["candidate"]]}
    reason = (f"fallback: {fb['candidate']} serves, flagged, while no version has cleared the gate "
              f"({main['version']}: {main['decision']['reason']})")
    metadata = {**{k: v for k, v in main.items() if k != "artifact"}, "version": version, "metrics": metrics,
                "model": _model_description(spec, result.fallback), "feature_names": [spec.features.target],
                "decision": {"eligible": False, "promoted": False, "fallback": True, "reason": reason,
                             "checks": main["decision"]["checks"]},
                "fallback_for": main["version"]}
    card = render(spec, metadata, stats)
    stored, _ = registry.register(store, layout, metadata, result.fallback.to_bytes(), result.reference, card=card)
    return stored


def _apply_fallback(spec: UseCaseSpec, store: ObjectStore, layout: Layout, stored: dict, snapshot: dict,
                    code: dict, run_date: date, actor: str, run_id: str | None) -> list[dict]:
    """Point the fallback alias at the date's fallback version when no champion serves the date."""
    if spec.kind != "forecast" or registry.champion_on(store, layout, run_date) is not None:
        return []
    version = fallback_version(run_date, snapshot, spec, code)
    if not registry.is_registered(store, layout, version):
        return []
    meta = registry.read_metadata(store, layout, version)
    event = registry.move_alias(store, layout, registry.FALLBACK, meta, effective_date=run_date, actor=actor,
                                reason=meta["decision"]["reason"], action="serve_fallback", run_id=run_id)
    return [event] if event else []


# --- monitor -------------------------------------------------------------------------------------------

def monitor_drift(spec: UseCaseSpec, run_date: date, store: ObjectStore, pinned: str | None = None) -> dict:
    """Compare the latest window with the incumbent's (or the pinned version's) training reference.

    The incumbent is the champion going into the date (see ``registry.incumbent``). With no champion yet
    there is no reference: the check is skipped (and says so), and the 'no champion' trigger fires.
    """
    from mlplatform.monitoring import detect_drift
    from mlplatform.privacy import without_pii

    layout = Layout(spec.name)
    prefix = layout.monitoring(run_date)
    incumbent = registry.incumbent(store, layout, run_date)
    if pinned is None and incumbent is None:
        summary = {"use_case": spec.name, "run_date": run_date.isoformat(), "model_version": None,
                   "skipped": f"no champion before {run_date}: nothing to compare with",
                   "drift_detected": False, "drifted_share": 0.0, "drifted_columns": []}
        uri = store.put_json(f"{prefix}/{DRIFT_FILE}", summary)
        return {"drift_detected": False, "skipped": summary["skipped"], "summary_uri": uri, "model_version": None}
    features, _, _ = load_snapshot(spec, run_date, store)
    model = registry.serving_model(store, layout, run_date, pinned) if pinned else incumbent
    reference = registry.load_reference(store, layout, model)
    time_col = spec.features.time_column
    window_end = _latest_complete(spec, run_date, features[time_col])
    window_start = window_end - timedelta(days=spec.monitoring.window_days - 1)
    current = features[features[time_col].dt.date >= window_start]
    columns = without_pii(spec.monitoring.columns or [*spec.features.numeric, *spec.features.categorical],
                          spec.privacy.pii_columns)  # drift reports profile values: never of PII columns
    report = detect_drift(reference, current, columns, spec.monitoring.drift_share, spec.monitoring.max_rows)
    html_uri = store.put_bytes(f"{prefix}/{DRIFT_HTML}", report.html, "text/html")
    store.put_bytes(f"{prefix}/{DRIFT_SNAPSHOT}", report.json, "application/json")
    summary = {"use_case": spec.name, "run_date": run_date.isoformat(), "model_version": model["version"],
               "current_window": {"start": window_start.isoformat(), "end": window_end.isoformat()},
               "report_uri": html_uri, **report.to_dict()}
    uri = store.put_json(f"{prefix}/{DRIFT_FILE}", summary)
    return {"drift_detected": report.drift_detected, "drifted_share": report.drifted_share,
            "drifted_columns": report.drifted_columns, "summary_uri": uri, "report_uri": html_uri,
            "model_version": model["version"]}


def _latest_complete(spec: UseCaseSpec, run_date: date, dates: pd.Series) -> date:
    """The end of the latest complete period as of ``run_date`` (daily: the date itself), so a monthly
    use case run on the 30th monitors the window up to the last month end rather than an empty one.
    Weekly: the week ends on the weekday of the data's latest date."""
    from mlplatform.calendars import DEFAULT_WEEK_END, latest_period_end

    if spec.frequency == "daily":
        return run_date
    week_end = dates.max().weekday() if len(dates) else DEFAULT_WEEK_END
    return latest_period_end(run_date, spec.frequency, week_end)


# --- score and publish ---------------------------------------------------------------------------------

def score_and_publish(spec: UseCaseSpec, run_date: date, store: ObjectStore, pinned: str | None = None,
                      run: dict | None = None) -> dict:
    """The serving model (champion as of the date, or a pinned version) scores; publish atomically.

    ``run`` names the orchestrator run ({"dag_id", "run_id"}; None outside Airflow): with the model
    version, the dbt invocation and the checks, the manifest links everything a published number came
    from (``mlplatform lineage``). Only stable ids go in, so a cleared and rerun task rewrites the same bytes.
    """
    from mlplatform import models
    from mlplatform.serving_contract import check_serving_contract

    features, calendar, snapshot = load_snapshot(spec, run_date, store)
    validation = _require_validation(spec, run_date, store, snapshot["fingerprint"])
    layout = Layout(spec.name)
    model_meta = registry.serving_model(store, layout, run_date, pinned)
    check_serving_contract(model_meta, spec)  # before anything is written: the published date stays as it was
    model = models.load(spec, registry.load_model_bytes(store, layout, model_meta))
    chunks = models.score(spec, model, features, calendar, run_date, spec.publish.chunk_rows)
    fallback = _fallback_of(model_meta)
    finalize = None
    if spec.kind == "forecast":  # every row says whether it is a fallback forecast
        chunks = (chunk.assign(**{FALLBACK_COLUMN: fallback is not None}) for chunk in chunks)
        chunks, finalize = _accounted(spec, run_date, store, features, chunks)
    freshness = _freshness_of(store, layout, run_date)
    stamp = {"use_case": spec.name, "run_date": run_date.isoformat(), "model_version": model_meta["version"]}
    manifest = publish_partition(store, layout.forecasts(run_date), chunks, stamp, {
        "kind": spec.kind, "horizon": spec.horizon,
        "columns": models.output_columns(spec) + ([FALLBACK_COLUMN] if spec.kind == "forecast" else []),
        "quantiles": spec.quantile_columns if spec.kind == "forecast" else [],
        "model": {"version": model_meta["version"], "uri": model_meta["artifact"]["model_uri"],
                  "model_card_uri": model_meta["artifact"].get("model_card_uri"),
                  "selected_by": f"pinned by the run ({pinned})" if pinned else
                  (f"fallback as of {run_date}: no version has cleared the gate yet" if fallback
                   else f"champion as of {run_date}"),
                  "candidate": model_meta["model"].get("description"),
                  "training_window": model_meta["training_window"],
                  "backtest": {"metric": model_meta["metrics"].get("metric", "wape"),
                               "model": model_meta["metrics"]["model"],
                               "baseline": model_meta["metrics"]["baseline"]}},
        "lineage": {"features_snapshot": snapshot["features"]["uri"], "data_fingerprint": snapshot["fingerprint"],
                    "dbt_manifest_hash": snapshot["dbt_manifest_hash"], "code": code_version(),
                    "dbt_invocation_uri": _existing_uri(store, f"{layout.lineage(run_date)}/{DBT_INVOCATION_FILE}"),
                    "airflow_run_uri": _record_run(store, layout, run_date, run)},
        "validation": validation,
        "drift": _drift_summary(store, layout, run_date),
        "approval": _approval_of(store, layout, model_meta["version"]),
        "fallback": fallback,
        "freshness": freshness,
        "stale": bool(freshness and freshness["status"] == "error"),
    }, finalize=finalize)
    return {"partition_uri": manifest["partition_uri"], "rows": manifest["row_count"],
            "files": len(manifest["files"]), "model_version": model_meta["version"],
            "run_date": run_date.isoformat(), "model_uri": model_meta["artifact"]["model_uri"],
            "features_snapshot": snapshot["features"]["uri"], "stale": manifest["stale"],
            "fallback": fallback is not None}


FALLBACK_COLUMN = "is_fallback"


def _accounted(spec: UseCaseSpec, run_date: date, store: ObjectStore, features: pd.DataFrame,
               chunks: Iterator[pd.DataFrame]) -> tuple[Iterator[pd.DataFrame], Callable[[], dict]]:
    """(chunks, finalize): the chunks as they stream, and the manifest's ``series`` block once they are
    written: every series of the features as of the date, or of the previous partition, forecast or
    listed with why it is not (``accounting``); a breach of ``publish.series`` is logged, or refuses the
    publication."""
    from mlplatform.accounting import SeriesTally, account, enforce
    from mlplatform.forecasting import periods_for, to_timestamp

    time_col = spec.features.time_column
    origin = periods_for(spec, features[time_col], f"features column '{time_col}'").origin(to_timestamp(run_date))
    tally = SeriesTally(spec.features.series_keys)

    def finalize() -> dict:
        previous = _previous_series(spec, store, run_date)
        block = account(features, spec, origin, tally.seen, previous)
        return {"series": enforce(spec, block, f"run date {run_date}")}

    return tally.watch(chunks), finalize


def _previous_series(spec: UseCaseSpec, store: ObjectStore, run_date: date) -> tuple[date, set[tuple]] | None:
    """(date, series keys) of the latest partition published for an earlier date, or None: a series it
    held that is gone from the features now must be accounted for too (only the key columns are read)."""
    import io

    import pandas as pd

    from mlplatform.publishing import published_dates

    layout = Layout(spec.name)
    earlier = [d for d in published_dates(store, layout.forecasts_root()) if d < run_date]
    if not earlier:
        return None
    keys = list(spec.features.series_keys)
    manifest = read_manifest(store, layout.forecasts(earlier[-1]))
    frames = [pd.read_parquet(io.BytesIO(store.get_bytes(f["key"])), columns=keys) for f in manifest["files"]]
    found = pd.concat(frames, ignore_index=True).drop_duplicates() if frames else pd.DataFrame(columns=keys)
    return earlier[-1], set(found.itertuples(index=False, name=None))


def _fallback_of(model_meta: dict) -> dict | None:
    """Why a fallback serves (None for a champion or a pinned version): the manifest's ``fallback``."""
    if not model_meta["decision"].get("fallback"):
        return None
    return {"candidate": model_meta["model"].get("description"), "reason": model_meta["decision"]["reason"],
            "refused_version": model_meta.get("fallback_for")}


def _record_run(store: ObjectStore, layout: Layout, run_date: date, run: dict | None) -> str | None:
    """Record which orchestrator run publishes the date (before the manifest that links it).

    The manifest links this record rather than embedding the run id, so a republication of the date by
    another run (a backfill, a manual rerun) still writes a byte-identical manifest, while the record
    names the run that last published it and its OpenLineage namespace.
    """
    if not run:
        return None
    record = {**run, "run_date": run_date.isoformat(), "openlineage_namespace": C.OPENLINEAGE_NAMESPACE}
    return store.put_json(f"{layout.lineage(run_date)}/{AIRFLOW_RUN_FILE}", record)


def _existing_uri(store: ObjectStore, key: str) -> str | None:
    return store.uri(key) if store.exists(key) else None


def _approval_of(store: ObjectStore, layout: Layout, version: str) -> dict | None:
    """The human decision that made the serving version champion, if its use case required one."""
    event = approval.decision_for(store, layout, version)
    if event is None:
        return None
    return {k: event.get(k) for k in ("outcome", "approver", "responded_at", "run_id", "request_uri")}


def _drift_summary(store: ObjectStore, layout: Layout, run_date: date) -> dict | None:
    key = f"{layout.monitoring(run_date)}/{DRIFT_FILE}"
    if not store.exists(key):
        return None
    drift = store.get_json(key)
    return {"drift_detected": drift["drift_detected"], "drifted_share": drift["drifted_share"],
            "drifted_columns": drift["drifted_columns"], "report_uri": drift.get("report_uri"),
            "skipped": drift.get("skipped"), "model_version": drift.get("model_version"),
            "summary_uri": store.uri(key)}


def stage_calls(spec: UseCaseSpec, run_date: date, settings: Settings, store: ObjectStore,
                pinned: str | None = None, actor: str = "pipeline") -> list[tuple[str, Callable[[], dict]]]:
    """The stages in DAG order as (task id, call) pairs: how to run a pipeline without Airflow.

    ``train_model`` runs only if ``decide_retrain`` (run just before it) said so, as the DAG's branch does.
    """
    decision: dict = {}

    def decide() -> dict:
        decision.update(decide_retrain(spec, run_date, store, pinned))
        return decision

    def train() -> dict:
        if not decision.get("retrain"):
            return {"skipped": "no retraining trigger fired"}
        return train_model(spec, run_date, store, actor=actor)

    freshness = ([("check_freshness", lambda: check_freshness(spec, run_date, settings, store))]
                 if spec.freshness.sources else [])
    return [
        ("land_raw", lambda: land_raw(spec, run_date, settings, store)),
        *freshness,
        ("build_features", lambda: build_features(spec, run_date, settings, store)),
        ("validate_features", lambda: validate_features(spec, run_date, store)),
        ("monitor_drift", lambda: monitor_drift(spec, run_date, store, pinned)),
        ("evaluate_accuracy", lambda: evaluate_accuracy(spec, run_date, store)),
        ("decide_retrain", decide),
        ("train_model", train),
        ("score_and_publish", lambda: score_and_publish(spec, run_date, store, pinned)),
    ]


def run_summary(spec: UseCaseSpec, run_date: date, store: ObjectStore) -> dict:
    """What an operator wants after a run: where outputs landed, which model, how good, drift verdict."""
    layout = Layout(spec.name)
    manifest = read_manifest(store, layout.forecasts(run_date))
    return {
        "use_case": spec.name, "kind": spec.kind, "run_date": run_date.isoformat(),
        "forecasts_uri": manifest["partition_uri"], "rows": manifest["row_count"],
        "files": len(manifest["files"]), "model_version": manifest["model_version"],
        "model": manifest["model"].get("candidate"), "fallback": manifest.get("fallback"),
        "backtest": manifest["model"]["backtest"], "validation": manifest["validation"],
        "drift": manifest["drift"],
        "retrain": _stored(store, f"{layout.lifecycle(run_date)}/{RETRAIN_FILE}"),
        "accuracy": _stored(store, f"{layout.accuracy(run_date)}/{ACCURACY_FILE}"),
        "landing": _stored(store, f"{spec.name}/landing/run_date={run_date.isoformat()}/report.json"),
        "approval": approval.stored_decision(spec, run_date, store) if spec.approval.required else None,
        "freshness": manifest.get("freshness"), "stale": manifest.get("stale", False),
        "series": manifest.get("series"),
    }
