"""Retraining triggers: decide, for one logical date, whether the pipeline retrains.

A normal day scores with the current champion and does not retrain. A run retrains when any of the
spec's triggers fires; every firing trigger is recorded with the evidence behind it, so an operator
can see in the run (and in object storage) *why* a model was or was not retrained.

A retrain the gate refused is not repeated every day on nearly the same evidence
(:func:`repeated_refusal`): while the triggers are of the same kinds as at the refused attempt and fewer
than ``backtest.fold_step`` periods of new data have arrived since, the run keeps the champion and says
when it will try again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from mlplatform.calendars import add_periods, latest_period_end, periods_between
from mlplatform.spec import UseCaseSpec

NO_CHAMPION = "no_champion"
SCHEDULE = "schedule"
DRIFT = "drift"
ACCURACY_DECAY = "accuracy_decay"
PINNED = "pinned_version"
SPEC_CHANGED = "spec_changed"


@dataclass(frozen=True)
class Trigger:
    name: str
    detail: str

    def to_dict(self) -> dict:
        return {"trigger": self.name, "detail": self.detail}


def retrain_triggers(spec: UseCaseSpec, run_date: date, champion: dict | None, drift: dict | None,
                     accuracy: dict | None) -> list[Trigger]:
    """The triggers that fire for ``run_date`` given the champion serving it and today's checks.

    ``champion`` is the registry metadata of the champion as of ``run_date`` (None if there is none);
    ``drift`` and ``accuracy`` are the summaries the monitoring and accuracy stages stored for the date.
    """
    if champion is None:
        return [Trigger(NO_CHAMPION, f"no champion as of {run_date}: train one")]
    from mlplatform.serving_contract import contract_problems

    problems = contract_problems(champion, spec)
    fired = [Trigger(SPEC_CHANGED, f"champion {champion['version']} cannot serve the current spec: "
                                   f"{'; '.join(problems)}")] if problems else []
    r = spec.retrain
    trained_to = date.fromisoformat(champion["training_window"]["end"])
    age = (run_date - trained_to).days
    if r.every_days is not None and age >= r.every_days:
        fired.append(Trigger(SCHEDULE, f"champion {champion['version']} was trained on data up to "
                                       f"{trained_to}, {age} days ago (retrain.every_days {r.every_days})"))
    if r.on_drift and drift and drift.get("drift_detected"):
        fired.append(Trigger(DRIFT, f"data drift in {drift.get('drifted_share', 0):.0%} of monitored columns "
                                    f"({', '.join(drift.get('drifted_columns', [])[:6])})"))
    if r.on_accuracy_decay and accuracy and accuracy.get("breach"):
        fired.append(Trigger(ACCURACY_DECAY, accuracy.get("breach_reason") or "realised accuracy decayed"))
    return fired


@dataclass(frozen=True)
class RefusedAttempt:
    """The latest training attempt after the incumbent champion, which the gate did not promote."""

    version: str
    run_date: date  # the date it was trained for
    trained_to: date  # the last period of data it saw (its training window's end)
    reason: str  # the gate's reason
    triggers: tuple[str, ...] | None  # trigger kinds that fired on run_date; None if not recorded

    def to_dict(self) -> dict:
        return {"version": self.version, "run_date": self.run_date.isoformat(),
                "trained_to": self.trained_to.isoformat(), "reason": self.reason,
                "triggers": list(self.triggers) if self.triggers is not None else None}


def repeated_refusal(spec: UseCaseSpec, run_date: date, fired: list[Trigger],
                     attempt: RefusedAttempt | None) -> dict | None:
    """Why retraining on ``run_date`` would only repeat a refused attempt (None: go ahead and retrain).

    Skip when all three hold: the latest attempt since the incumbent was refused; every trigger firing
    now also fired then (same kinds of evidence: a schedule or an accuracy alert that simply persists);
    and fewer than ``backtest.fold_step`` periods of new data have arrived since its training end. Why
    fold_step: the backtest's folds are fold_step periods apart, so only after that many new periods
    does the gate see a genuinely new fold; before, a retrain meets nearly the same rows and is refused
    again, at full training cost, every day. A new kind of trigger retrains at once. An attempt whose
    triggers were not recorded is never assumed to match.
    """
    if attempt is None or attempt.triggers is None or not fired:
        return None
    kinds = sorted({t.name for t in fired})
    if not set(kinds) <= set(attempt.triggers):
        return None
    frequency = spec.frequency if spec.kind == "forecast" else "daily"  # tabular fold_step counts days
    latest = latest_period_end(run_date, frequency, attempt.trained_to.weekday())
    new_periods = periods_between(attempt.trained_to, latest, frequency)
    step = spec.backtest.fold_step
    if new_periods >= step:
        return None
    retry_from = add_periods(attempt.trained_to, step, frequency)
    unit = {"daily": "day", "weekly": "week", "monthly": "month", "quarterly": "quarter"}[frequency]
    reason = (f"retraining skipped: the last attempt, {attempt.version} (trained for {attempt.run_date} on data up "
              f"to {attempt.trained_to}), was refused by the gate ({attempt.reason}); the same kind of trigger "
              f"fires now ({', '.join(kinds)}) and only {new_periods} new {unit}(s) of data have arrived since "
              f"(backtest.fold_step {step}), so a retrain would meet nearly the same backtest. Next attempt: the "
              f"run on or after {retry_from}, or earlier if another kind of trigger fires")
    return {"reason": reason, "retry_from": retry_from.isoformat(), "new_periods": new_periods,
            "refused_attempt": attempt.to_dict()}
