"""Retraining triggers: decide, for one logical date, whether the pipeline retrains.

A normal day scores with the current champion and does not retrain. A run retrains when any of the
spec's triggers fires; every firing trigger is recorded with the evidence behind it, so an operator
can see in the run (and in object storage) *why* a model was or was not retrained.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from mlplatform.spec import UseCaseSpec

NO_CHAMPION = "no_champion"
SCHEDULE = "schedule"
DRIFT = "drift"
ACCURACY_DECAY = "accuracy_decay"
PINNED = "pinned_version"


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
    fired = []
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
