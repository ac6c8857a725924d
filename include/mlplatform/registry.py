"""Model registry on object storage: immutable versions, aliases, and an append-only audit log.

Layout per use case (see storage.Layout):
    models/<version>/model.joblib      the fitted model (written first)
    models/<version>/reference.parquet drift reference sample of the training data
    models/<version>/model_card.md     generated model card
    models/<version>/metadata.json     lineage, metrics and the promotion decision (written last: a version
                                        without metadata.json is incomplete and ignored)
    registry/audit/<when>-<hash>.json  one object per alias move, never overwritten or deleted
    registry/aliases/<alias>.json      the alias's latest position (a cache of the audit log)

Aliases ('champion', 'challenger') rather than stages: a version's metadata never changes; what moves is
a name. Every move is an audit event (who, what, when, why, metrics before and after) with an
*effective date*: the logical date from which the move counts. ``alias_as_of(D)`` replays the log up to
D, so a backfill for D serves the version that was champion on D, and moves recorded later for later
dates do not rewrite what D saw.

Version ids are derived from content (run date + data, spec and code fingerprints), so rerunning a date
finds its version already registered instead of creating a duplicate.
"""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

from mlplatform.errors import ModelNotAvailableError, PlatformError
from mlplatform.lineage import combine
from mlplatform.storage import Layout, ObjectStore, sha256_hex

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

METADATA = "metadata.json"
MODEL = "model.joblib"
REFERENCE = "reference.parquet"
MODEL_CARD = "model_card.md"

CHAMPION = "champion"
CHALLENGER = "challenger"
# The forecast a use case publishes, flagged, while no version has cleared the gate yet (never a gap).
FALLBACK = "fallback"
ALIASES = (CHAMPION, CHALLENGER, FALLBACK)
ENV_ACTOR = "MLPLATFORM_ACTOR"


def version_id(run_date: date, data_fingerprint: str, spec_fingerprint: str, source_hash: str) -> str:
    """'v20250630-1a2b3c4d5e': sortable by training date, unique per data/spec/code content."""
    return f"v{run_date:%Y%m%d}-{combine(data_fingerprint, spec_fingerprint, source_hash)[:10]}"


def default_actor() -> str:
    """Who is acting when no one says: MLPLATFORM_ACTOR, else the OS user (for CLI use)."""
    if os.environ.get(ENV_ACTOR):
        return os.environ[ENV_ACTOR]
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no passwd entry (some containers)
        return "cli:unknown"


# ------------------------------------------------------------------------------------------- the gate


@dataclass(frozen=True)
class Decision:
    eligible: bool   # beats the baseline: may serve when an operator pins or rolls back to it
    promoted: bool   # the champion alias moves to this version
    reason: str
    checks: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"eligible": self.eligible, "promoted": self.promoted, "reason": self.reason,
                "checks": self.checks}


def _fmt(value: Any) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def _baseline_check(metrics: dict) -> dict:
    name = metrics.get("metric", "wape")
    return {"passed": bool(metrics["beats_baseline"]), "metric": name,
            "model": metrics["model"].get(name), "baseline": metrics["baseline"].get(name),
            "improvement": metrics.get("improvement"), "required": metrics.get("min_improvement")}


def _champion_check(metrics: dict, champion: dict | None, min_rows: int, min_rows_rule: str | None = None,
                    unservable: str | None = None) -> dict:
    """The champion comparison's verdict; its details carry the effective minimum of shared rows and
    how it was set (an explicit ``backtest.champion_min_rows``, or the size-derived default).
    A champion that cannot serve the current spec (``unservable`` says why) is no bar to clear."""
    if champion is None:
        return {"passed": True, "detail": "no champion yet"}
    if unservable:
        return {"passed": True, "champion": champion["version"],
                "detail": f"champion {champion['version']} cannot serve the current spec ({unservable}): "
                          "judged against the baseline only"}
    evidence = {"min_rows": min_rows, "min_rows_rule": min_rows_rule or f"backtest.champion_min_rows {min_rows}"}
    cmp = metrics.get("champion") or {}
    if cmp.get("version") != champion["version"]:
        return {"passed": False, "champion": champion["version"], **evidence,
                "detail": "the backtest did not compare against the current champion"}
    if not cmp.get("error") and (cmp.get("n_eval_rows") or 0) < min_rows:
        return {"passed": False, "champion": champion["version"], "n_eval_rows": cmp.get("n_eval_rows"), **evidence,
                "detail": f"only {cmp.get('n_eval_rows')} backtest rows unseen by both models "
                          f"(< {min_rows}, {evidence['min_rows_rule']}): too little evidence to replace it"}
    return {"passed": bool(cmp.get("beats_champion")), "champion": champion["version"],
            "metric": cmp.get("metric"), "challenger": (cmp.get("challenger") or {}).get(cmp.get("metric")),
            "champion_value": (cmp.get("champion") or {}).get(cmp.get("metric")),
            "improvement": cmp.get("improvement"), "required": cmp.get("margin"),
            "n_eval_rows": cmp.get("n_eval_rows"), **evidence, "detail": cmp.get("error")}


def _fairness_check(metrics: dict) -> dict | None:
    """The fairness verdict training recorded with the metrics (``mlplatform.fairness.check``), or None
    when the spec declares no sensitive attributes. Training computes it because only the spec knows the
    thresholds; a report without a verdict fails closed rather than promoting unmeasured."""
    fairness = metrics.get("fairness")
    if not fairness:
        return None
    verdict = fairness.get("check")
    if not isinstance(verdict, dict):
        return {"passed": False, "detail": "the fairness report carries no verdict (check)"}
    return {**verdict, "passed": bool(verdict.get("passed"))}


def decide(metrics: dict, champion: dict | None, champion_min_rows: int = 1,
           min_rows_rule: str | None = None, champion_unservable: str | None = None) -> Decision:
    """Promotion gate: beat the baseline by ``min_improvement`` AND the serving champion by
    ``champion_margin`` on the same backtest window (rows neither model had seen, at least
    ``champion_min_rows`` of them) AND, when the spec declares sensitive attributes, stay within its
    fairness limits. Otherwise the version stays registered (as challenger) and the reason says which
    check failed, with the numbers. A fairness breach also makes the version ineligible: an operator
    must not be able to pin or roll back to a model the spec's fairness limits refuse.
    ``champion_min_rows`` is the effective minimum for this use case (``UseCaseSpec.champion_min_rows_for``:
    sized from folds x horizon x series unless the spec sets it) and ``min_rows_rule`` says how it was set;
    both go to the champion check's details. ``champion_unservable`` (why the champion breaks the current
    spec's serving contract, see ``serving_contract``) waives the champion comparison."""
    base = _baseline_check(metrics)
    champ = _champion_check(metrics, champion, champion_min_rows, min_rows_rule, champion_unservable)
    checks = {"baseline": base, "champion": champ}
    fair = _fairness_check(metrics)
    if fair is not None:
        checks["fairness"] = fair
    name = base["metric"]
    if not base["passed"]:
        return Decision(False, False, (
            f"not promoted: backtest {name} {_fmt(base['model'])} vs baseline {_fmt(base['baseline'])} "
            f"(improvement {_pct(base['improvement'])} < required {_pct(base['required'])})"), checks)
    if fair is not None and not fair["passed"]:
        return Decision(False, False, f"not promoted: fairness limits exceeded: {fair.get('detail')}", checks)
    if not champ["passed"]:
        why = champ.get("detail") or (
            f"{champ.get('metric')} {_fmt(champ.get('challenger'))} vs champion "
            f"{_fmt(champ.get('champion_value'))} on {champ.get('n_eval_rows')} shared rows "
            f"(improvement {_pct(champ.get('improvement'))} < required {_pct(champ.get('required'))})")
        return Decision(True, False, f"not promoted: does not beat champion {champ['champion']}: {why}",
                        checks)
    versus = "" if champion is None else f"; {champ['detail']}" if champion_unservable else (
        f" and champion {champion['version']} by {_pct(champ.get('improvement'))}")
    return Decision(True, True, (
        f"promoted: backtest {name} {_fmt(base['model'])} beats baseline {_fmt(base['baseline'])} by "
        f"{_pct(base['improvement'])}{versus}"), checks)


def _pct(value: Any) -> str:
    return "n/a" if value is None else f"{value:.1%}"


# ------------------------------------------------------------------------------------------- versions


def read_metadata(store: ObjectStore, layout: Layout, version: str) -> dict:
    if not is_registered(store, layout, version):
        raise ModelNotAvailableError(f"use case {layout.use_case!r}: no registered model version {version!r}")
    return store.get_json(f"{layout.model(version)}/{METADATA}")


def is_registered(store: ObjectStore, layout: Layout, version: str) -> bool:
    """A version counts as registered once its metadata (written last) exists."""
    return store.exists(f"{layout.model(version)}/{METADATA}")


def list_versions(store: ObjectStore, layout: Layout) -> list[dict]:
    """Metadata of every complete version, oldest training window first."""
    keys = [k for k in store.list_keys(layout.models() + "/") if k.endswith("/" + METADATA)]
    metas = [store.get_json(k) for k in keys]
    return sorted(metas, key=lambda m: (m["training_window"]["end"], m["version"]))


def register(store: ObjectStore, layout: Layout, metadata: dict, model_bytes: bytes,
             reference: pd.DataFrame, card: str | None = None) -> tuple[dict, bool]:
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
    artifact = {
        "model_uri": store.uri(f"{prefix}/{MODEL}"), "model_sha256": sha256_hex(model_bytes),
        "reference_uri": store.uri(f"{prefix}/{REFERENCE}"), "reference_sha256": ref["sha256"],
        "reference_rows": ref["rows"]}
    if card is not None:
        artifact["model_card_uri"] = store.put_bytes(f"{prefix}/{MODEL_CARD}", card.encode(), "text/markdown")
    metadata = {**metadata, "artifact": artifact}
    store.put_json(f"{prefix}/{METADATA}", metadata)
    return metadata, True


def load_model_bytes(store: ObjectStore, layout: Layout, metadata: dict) -> bytes:
    data = store.get_bytes(f"{layout.model(metadata['version'])}/{MODEL}")
    if sha256_hex(data) != metadata["artifact"]["model_sha256"]:
        raise PlatformError(f"model {metadata['version']}: stored bytes do not match the registered sha256")
    return data


def load_reference(store: ObjectStore, layout: Layout, metadata: dict) -> pd.DataFrame:
    return store.get_parquet(f"{layout.model(metadata['version'])}/{REFERENCE}")


# ------------------------------------------------------------------------------- aliases and audit log


def _headline(metadata: dict | None) -> dict | None:
    """The metrics an auditor compares across a move: the gate metric for model and baseline."""
    if metadata is None:
        return None
    m = metadata.get("metrics", {})
    name = m.get("metric", "wape")
    return {"version": metadata["version"], "metric": name, "model": m.get("model", {}).get(name),
            "baseline": m.get("baseline", {}).get(name), "training_end": metadata["training_window"]["end"]}


def audit_log(store: ObjectStore, layout: Layout) -> list[dict]:
    """Every alias move ever recorded, in the order they were recorded (keys sort by time)."""
    return [store.get_json(k) for k in store.list_keys(layout.audit()) if k.endswith(".json")]


def _replay(events: list[dict], alias: str, as_of: date | None) -> dict | None:
    """The last move of ``alias`` effective on or before ``as_of`` (all moves if None)."""
    moves = [e for e in events if e["alias"] == alias
             and (as_of is None or e["effective_date"] <= as_of.isoformat())]
    moves.sort(key=lambda e: (e["effective_date"], e["recorded_at"]))
    return moves[-1] if moves else None


def alias_version(store: ObjectStore, layout: Layout, alias: str, as_of: date | None = None) -> str | None:
    """The version ``alias`` points to as of a logical date (now, if None), from the audit log."""
    if as_of is None and store.exists(layout.alias(alias)):
        return store.get_json(layout.alias(alias))["version"]
    event = _replay(audit_log(store, layout), alias, as_of)
    return event["to_version"] if event else None


def move_alias(store: ObjectStore, layout: Layout, alias: str, metadata: dict, *, effective_date: date,
               actor: str, reason: str, action: str, run_id: str | None = None) -> dict | None:
    """Point ``alias`` at ``metadata['version']`` from ``effective_date`` on; append the audit event.

    Returns the event, or None when the alias already points there as of that date (a rerun records
    nothing twice). The audit object is written first and never overwritten; the alias file is then
    updated only if this move is the latest effective one, so a backfill's move for an old date leaves
    the current alias alone.
    """
    if alias not in ALIASES:
        raise PlatformError(f"unknown alias {alias!r}; aliases are {ALIASES}")
    before_version = alias_version(store, layout, alias, effective_date)
    if before_version == metadata["version"]:
        return None
    before = read_metadata(store, layout, before_version) if before_version else None
    now = datetime.now(UTC)
    event = {
        "use_case": layout.use_case, "alias": alias, "action": action,
        "from_version": before_version, "to_version": metadata["version"],
        "effective_date": effective_date.isoformat(), "recorded_at": now.isoformat(timespec="microseconds"),
        "actor": actor, "run_id": run_id, "reason": reason,
        "metrics_before": _headline(before), "metrics_after": _headline(metadata),
    }
    key = f"{layout.audit()}{now:%Y%m%dT%H%M%S%fZ}-{alias}-{combine(str(event))[:8]}.json"
    if store.exists(key):  # same microsecond and content: the same event, already appended
        return event
    store.put_json(key, event)
    latest = _replay(audit_log(store, layout), alias, None)
    if latest and latest["to_version"] == metadata["version"]:
        store.put_json(layout.alias(alias), {"alias": alias, "version": metadata["version"],
                                             "effective_date": latest["effective_date"], "event": key})
    return event


def champion(store: ObjectStore, layout: Layout) -> dict | None:
    """Metadata of the current champion (latest effective move), or None before the first promotion."""
    version = alias_version(store, layout, CHAMPION)
    return read_metadata(store, layout, version) if version else None


def champion_on(store: ObjectStore, layout: Layout, run_date: date) -> dict | None:
    """Metadata of the version that was champion on ``run_date`` (None if there was none yet)."""
    version = alias_version(store, layout, CHAMPION, run_date)
    return read_metadata(store, layout, version) if version else None


def incumbent(store: ObjectStore, layout: Layout, run_date: date) -> dict | None:
    """The champion going into ``run_date``: moves effective before that date, not the date's own.

    Monitoring, the retraining triggers and the promotion gate of a run compare against this model, so
    a rerun of the date (after its own promotion) reaches the same verdicts and writes the same content.
    """
    from datetime import timedelta

    return champion_on(store, layout, run_date - timedelta(days=1))


def serving_model(store: ObjectStore, layout: Layout, run_date: date, pinned: str | None = None) -> dict:
    """The version that serves ``run_date``: a pinned version, else the champion as of that date, else
    (no version has cleared the gate yet) the fallback as of that date, whose metadata says ``fallback``.

    Either way the version must have been trained on data up to ``run_date`` at the latest, so a backfill
    never scores with a model that saw the future of the date it scores.
    """
    if pinned:
        meta = read_metadata(store, layout, pinned)
        if meta["training_window"]["end"] > run_date.isoformat():
            raise ModelNotAvailableError(
                f"use case {layout.use_case!r}: pinned version {pinned} was trained on data up to "
                f"{meta['training_window']['end']}, after run date {run_date}; it would leak the future")
        if not meta["decision"]["eligible"]:
            raise ModelNotAvailableError(
                f"use case {layout.use_case!r}: pinned version {pinned} may not serve: "
                f"{meta['decision']['reason']}")
        return meta
    meta = champion_on(store, layout, run_date)
    if meta is None:
        fallback = alias_version(store, layout, FALLBACK, run_date)
        meta = read_metadata(store, layout, fallback) if fallback else None
    if meta is None:
        raise ModelNotAvailableError(
            f"use case {layout.use_case!r}: no champion as of {run_date} (no version promoted for a date on "
            f"or before it, and no fallback registered); see the train task's decision. "
            f"{model_options(store, layout, run_date)}")
    return meta


def _eligible_versions(store: ObjectStore, layout: Layout, as_of: date | None = None) -> list[dict]:
    """Versions that may serve (passed the gate's baseline, fairness and sanity checks), newest first;
    with ``as_of``, only those trained on data up to that date (what a pin for the date accepts)."""
    out = [m for m in list_versions(store, layout) if m["decision"].get("eligible")
           and (as_of is None or m["training_window"]["end"] <= as_of.isoformat())]
    return out[::-1]


def _name_versions(metas: list[dict], limit: int = 5) -> str:
    names = [f"{m['version']} ({_headline(m)['metric']} {_fmt(_headline(m)['model'])})" for m in metas[:limit]]
    return ", ".join(names) + (f" and {len(metas) - limit} more" if len(metas) > limit else "")


def model_options(store: ObjectStore, layout: Layout, run_date: date, min_improvement: float | None = None,
                  spec_file: str | None = None) -> str:
    """What an operator can really do when no model may serve ``run_date`` (appended to that error).

    Only eligible versions (they passed the baseline, fairness and sanity checks) can be pinned for a
    run or rolled back to; versions the gate refused cannot, so they are named as such, never offered.
    """
    usable = _eligible_versions(store, layout, run_date)
    refused = [m for m in list_versions(store, layout)
               if not m["decision"].get("eligible") and not m["decision"].get("fallback")]
    uc = layout.use_case
    if usable:
        parts = [f"pin an eligible version for the run (param model_version, or `mlplatform run {uc} "
                 f"{run_date} --model-version <v>`) or make it champion (`mlplatform registry rollback {uc} "
                 f"--to <v> --reason ...`): {_name_versions(usable)}"]
    else:
        parts = [f"no version trained on data up to {run_date} passed the gate's baseline check, so there is "
                 "nothing to pin or roll back to"]
    if refused:
        parts.append(f"refused versions can be neither pinned nor rolled back to ({_name_versions(refused[::-1], 3)})")
    where = f" in {spec_file}" if spec_file else ""
    now = "" if min_improvement is None else f" (now {min_improvement:g})"
    parts.append(f"for a retrain to clear the gate, lower backtest.min_improvement{now}{where} and rerun the "
                 "date's train_model; a use case whose first model is refused publishes a flagged fallback "
                 "forecast instead, once train_model has run for the date")
    return "options: " + "; ".join(parts)


def rollback(store: ObjectStore, layout: Layout, to_version: str, *, reason: str, actor: str | None = None,
             effective_date: date | None = None) -> dict:
    """Point the champion back at a previously registered version, audited like any other move.

    Only versions that passed the baseline check may be rolled back to; the effective date defaults to
    today (UTC), so scheduled runs from today on serve it while backfills of earlier dates still see the
    history as it was.
    """
    if not reason.strip():
        raise PlatformError("a rollback needs a reason (it goes to the audit log)")
    meta = read_metadata(store, layout, to_version)
    if not meta["decision"]["eligible"]:
        usable = _eligible_versions(store, layout)
        offer = (f"eligible versions: {_name_versions(usable)}" if usable else
                 "no registered version is eligible, so there is nothing to roll back to")
        raise ModelNotAvailableError(
            f"version {to_version} may not serve ({meta['decision']['reason']}); refusing to make it champion. "
            f"Only versions that passed the gate's baseline, fairness and sanity checks can be rolled back to: "
            f"{offer}")
    effective = effective_date or datetime.now(UTC).date()
    event = move_alias(store, layout, CHAMPION, meta, effective_date=effective,
                       actor=actor or default_actor(), reason=reason, action="rollback")
    if event is None:
        raise PlatformError(f"{to_version} is already the champion as of {effective}; nothing to roll back")
    return event
