"""Human approval of promotions, for use cases whose spec says ``approval: required``.

A challenger that passes the automatic gate is registered and pointed to by the ``challenger`` alias,
but the champion does not move. Instead the run opens a request (``lifecycle/run_date=D/approval_request.json``)
that the DAG's ``approve_promotion`` task (Airflow's ``ApprovalOperator``) shows a person: the model card
and the backtest comparison. The answer is recorded here, whichever it is:

* approved: the champion alias moves to the version from the run date on, with the approver as the actor;
* rejected or timed out: the champion stays where it was.

Either way the decision, the approver's identity and the time are appended to the registry's audit log
(an event with ``alias: null``, so replaying the aliases ignores it), and to
``lifecycle/run_date=D/approval.json`` for the run summary. A decision is final for its version: a rerun
of the date finds it and neither asks again nor records it twice.
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime
from typing import Any

from mlplatform import registry
from mlplatform.errors import PlatformError
from mlplatform.lineage import combine
from mlplatform.spec import UseCaseSpec
from mlplatform.storage import Layout, ObjectStore

log = logging.getLogger(__name__)

REQUEST_FILE = "approval_request.json"
DECISION_FILE = "approval.json"
APPROVED, REJECTED, TIMED_OUT = "approved", "rejected", "timed_out"
ACTIONS = {APPROVED: "approval_approved", REJECTED: "approval_rejected", TIMED_OUT: "approval_timed_out"}


def _request_key(layout: Layout, run_date: date) -> str:
    return f"{layout.lifecycle(run_date)}/{REQUEST_FILE}"


def _decision_key(layout: Layout, run_date: date) -> str:
    return f"{layout.lifecycle(run_date)}/{DECISION_FILE}"


def _fmt(value: Any) -> str:
    return "-" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)


def _comparison_table(metadata: dict) -> list[str]:
    """Challenger vs baseline (and vs the champion on the rows both could be judged on), per metric."""
    metrics = metadata["metrics"]
    champion = metrics.get("champion") or {}
    names = sorted(metrics["model"])
    rows = ["| metric | challenger | baseline | champion (same rows) | challenger (same rows) |",
            "|---|---|---|---|---|"]
    for name in names:
        rows.append(f"| {name}{' (gate)' if name == metrics.get('metric') else ''} | {_fmt(metrics['model'].get(name))} "
                    f"| {_fmt(metrics['baseline'].get(name))} | {_fmt((champion.get('champion') or {}).get(name))} "
                    f"| {_fmt((champion.get('challenger') or {}).get(name))} |")
    return rows


def _body(spec: UseCaseSpec, metadata: dict, incumbent: dict | None, card: str) -> str:
    """The Markdown an approver reads in the Airflow UI: what changes, the evidence, where the card is."""
    decision = metadata["decision"]
    checks = "\n".join(f"- **{name}**: {'passed' if c.get('passed') else 'FAILED'} - {c.get('detail', '')}"
                       for name, c in decision.get("checks", {}).items() if isinstance(c, dict))
    return "\n".join([
        f"**{spec.name}**: promote `{metadata['version']}` to champion "
        f"(replacing `{incumbent['version'] if incumbent else 'no champion yet'}`).",
        "",
        f"Trained on data up to {metadata['training_window']['end']}; automatic gate: {decision['reason']}",
        "",
        *_comparison_table(metadata),
        "",
        "Gate checks:",
        checks or "- (none recorded)",
        "",
        f"Model card: `{metadata['artifact'].get('model_card_uri', '-')}`",
        "",
        "Approve: the version becomes champion from this run date on. Reject (or no answer before the "
        f"timeout of {spec.approval.timeout_hours:g} h): the current champion keeps serving.",
        "",
        "<details><summary>Model card</summary>",
        "",
        card,
        "",
        "</details>",
    ])


def open_request(spec: UseCaseSpec, run_date: date, store: ObjectStore, metadata: dict) -> dict:
    """Record that ``metadata['version']`` passed the gate and now waits for a person (idempotent)."""
    layout = Layout(spec.name)
    key = _request_key(layout, run_date)
    if store.exists(key) and store.get_json(key)["version"] == metadata["version"]:
        return store.get_json(key)
    incumbent = registry.incumbent(store, layout, run_date)
    card_key = f"{layout.model(metadata['version'])}/{registry.MODEL_CARD}"
    card = store.get_bytes(card_key).decode() if store.exists(card_key) else "(no model card)"
    request = {
        "use_case": spec.name, "run_date": run_date.isoformat(), "version": metadata["version"],
        "incumbent": incumbent["version"] if incumbent else None,
        "subject": f"{spec.name}: promote {metadata['version']} to champion?",
        "body": _body(spec, metadata, incumbent, card),
        "model_card_uri": metadata["artifact"].get("model_card_uri"),
        "gate": metadata["decision"], "timeout_hours": spec.approval.timeout_hours,
        "approvers": list(spec.approval.approvers),
    }
    store.put_json(key, request)
    log.info("%s %s: %s passed the automatic gate and awaits approval", spec.name, run_date, metadata["version"])
    return request


def pending_request(spec: UseCaseSpec, run_date: date, store: ObjectStore) -> dict | None:
    """The request a person must answer for the date, or None (none opened, or already decided)."""
    layout = Layout(spec.name)
    key = _request_key(layout, run_date)
    if not store.exists(key):
        return None
    request = store.get_json(key)
    return None if decision_for(store, layout, request["version"]) else request


def decision_for(store: ObjectStore, layout: Layout, version: str) -> dict | None:
    """The recorded approval decision about a version, if any (the first one counts)."""
    events = [e for e in registry.audit_log(store, layout)
              if e.get("action") in ACTIONS.values() and e.get("to_version") == version]
    return events[0] if events else None


def _approver(responded_by: dict | None) -> str | None:
    if not responded_by:
        return None
    name, ident = responded_by.get("name"), responded_by.get("id")
    return f"{name} (id {ident})" if ident and ident != name else str(name or ident)


def record_decision(spec: UseCaseSpec, run_date: date, store: ObjectStore, *, outcome: str,
                    responded_by: dict | None, responded_at: datetime | str | None,
                    run_id: str | None = None) -> dict:
    """Apply a person's answer (or the timeout) to the date's request and audit it.

    ``responded_by`` is Airflow's HITL user ({"id", "name"}), None on timeout. Approval moves the champion
    (effective on the run date, so reruns of the date serve the approved version); rejection and timeout
    move nothing. Returns the decision record.
    """
    if outcome not in ACTIONS:
        raise PlatformError(f"unknown approval outcome {outcome!r}; expected one of {sorted(ACTIONS)}")
    layout = Layout(spec.name)
    key = _request_key(layout, run_date)
    if not store.exists(key):
        raise PlatformError(f"{spec.name} {run_date}: no approval request at {store.uri(key)}")
    request = store.get_json(key)
    version = request["version"]
    existing = decision_for(store, layout, version)
    if existing:
        log.info("%s %s: %s was already %s; nothing recorded twice", spec.name, run_date, version,
                 existing["outcome"])
        return existing
    approver = _approver(responded_by)
    at = responded_at.isoformat() if isinstance(responded_at, datetime) else responded_at
    meta = registry.read_metadata(store, layout, version)
    move = None
    if outcome == APPROVED:
        if not meta["decision"]["eligible"]:
            raise PlatformError(f"{version} is not eligible to serve ({meta['decision']['reason']}); "
                                "an approval cannot override the automatic checks")
        move = registry.move_alias(store, layout, registry.CHAMPION, meta, effective_date=run_date,
                                   actor=f"approver:{approver}", action="promote_approved", run_id=run_id,
                                   reason=f"approved by {approver} at {at}; {meta['decision']['reason']}")
    now = datetime.now(UTC)
    event = {
        "use_case": spec.name, "alias": None, "action": ACTIONS[outcome], "outcome": outcome,
        "from_version": request["incumbent"], "to_version": version,
        "champion_after": registry.alias_version(store, layout, registry.CHAMPION, run_date),
        "effective_date": run_date.isoformat(), "recorded_at": now.isoformat(timespec="microseconds"),
        "actor": f"approver:{approver}" if approver else "airflow:timeout",
        "approver": responded_by, "responded_at": at, "run_id": run_id,
        "reason": {APPROVED: f"approved by {approver}", REJECTED: f"rejected by {approver}",
                   TIMED_OUT: f"no answer within {request['timeout_hours']:g} h"}[outcome],
        "request_uri": store.uri(key), "promotion_event": bool(move),
    }
    audit_key = f"{layout.audit()}{now:%Y%m%dT%H%M%S%fZ}-approval-{combine(str(event))[:8]}.json"
    store.put_json(audit_key, event)
    store.put_json(_decision_key(layout, run_date), event)
    log.info("%s %s: %s %s; champion as of the date: %s", spec.name, run_date, version, event["reason"],
             event["champion_after"])
    return event


def stored_decision(spec: UseCaseSpec, run_date: date, store: ObjectStore) -> dict | None:
    """The date's approval state for the run summary: decided, pending, or None (no request)."""
    layout = Layout(spec.name)
    key = _decision_key(layout, run_date)
    if store.exists(key):
        return store.get_json(key)
    request = pending_request(spec, run_date, store)
    return {"outcome": "pending", "to_version": request["version"]} if request else None
