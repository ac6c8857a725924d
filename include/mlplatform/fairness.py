"""Group fairness of a classifier over the spec's sensitive attributes, measured with fairlearn.

A row counts as *selected* when its probability is at or above ``fairness.threshold`` (for credit risk:
flagged as high risk). Per sensitive attribute and group the report gives rows, positives, selection
rate, true positive rate and false positive rate, and across groups the two differences the gate reads:

* demographic parity difference: largest minus smallest selection rate (are groups flagged at
  different rates, whatever their outcomes?);
* equalized odds difference: the larger of the TPR and FPR gaps between groups (among customers who do
  / do not default, are groups flagged at different rates?).

Why gate only on groups with ``min_group_rows`` rows: a rate measured on a handful of rows swings by
tens of points from one fold to the next, and a gate on noise blocks good models at random. Small groups
are still reported, so a reviewer sees them. A group without both outcomes has no TPR (or no FPR) and is
left out of the equalized odds difference for the same reason: fairlearn would count its undefined rate
as 0.

Everything here is a pure function of arrays: training calls it on the pooled backtest rows, monitoring
on realised outcomes of published scores, and the registry reads the stored verdict.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from mlplatform.errors import DataQualityError
from mlplatform.spec import FairnessSpec

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import pandas as pd

MISSING_GROUP = "__missing__"
DPD = "demographic_parity_difference"
EOD = "equalized_odds_difference"
LIMITS = {DPD: "max_demographic_parity_difference", EOD: "max_equalized_odds_difference"}
LABELS = {DPD: "demographic parity difference", EOD: "equalized odds difference"}


def _float(value: Any) -> float | None:
    """A finite Python float, else None (strict JSON has no NaN)."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _arrays(y_true: Any, y_prob: Any, groups: pd.DataFrame, attributes: list[str]) -> tuple:
    """(labels, probabilities, groups) as checked arrays; raises naming the problem."""
    import numpy as np

    y, p = np.asarray(y_true, dtype=float), np.asarray(y_prob, dtype=float)
    if not len(y) == len(p) == len(groups):
        raise ValueError(f"fairness: {len(y)} labels, {len(p)} probabilities and {len(groups)} group rows "
                         "must have the same length")
    missing = [a for a in attributes if a not in groups.columns]
    if missing:
        raise DataQualityError(f"fairness.sensitive_attributes {missing} are not columns of the evaluated "
                               f"rows (columns: {sorted(map(str, groups.columns))}); add them to the features mart")
    labelled = ~np.isnan(y)
    if (~np.isfinite(p[labelled])).any():
        raise DataQualityError(f"fairness: {int((~np.isfinite(p[labelled])).sum())} labelled row(s) have no "
                               "finite probability")
    if not np.isin(y[labelled], (0.0, 1.0)).all():
        raise DataQualityError("fairness: labels must be 0, 1 or missing (NaN)")
    return y, p, groups


def _group_labels(values: pd.Series) -> np.ndarray:
    """Group names as strings; a missing attribute value is its own group (reported, never dropped)."""
    return values.astype("string").fillna(MISSING_GROUP).to_numpy(dtype=object)


def _groups_table(y: np.ndarray, pred: np.ndarray, groups: np.ndarray) -> pd.DataFrame:
    """Per group: rows, positives, negatives, selection_rate, tpr, fpr (fairlearn MetricFrame)."""
    import numpy as np
    import pandas as pd
    from fairlearn.metrics import MetricFrame, count, false_positive_rate, selection_rate, true_positive_rate

    frame = MetricFrame(
        metrics={"rows": count, "selection_rate": selection_rate, "tpr": true_positive_rate,
                 "fpr": false_positive_rate},
        y_true=y.astype(int), y_pred=pred, sensitive_features=pd.Series(groups, name="group"))
    table = frame.by_group.copy()
    outcomes = pd.DataFrame({"group": groups, "y": y}).groupby("group")["y"]
    table["positives"] = outcomes.sum().reindex(table.index).astype(int)
    table["negatives"] = table["rows"].astype(int) - table["positives"]
    # fairlearn reports 0 for a rate whose denominator is empty: undefined, not zero.
    table["tpr"] = table["tpr"].where(table["positives"] > 0, np.nan)
    table["fpr"] = table["fpr"].where(table["negatives"] > 0, np.nan)
    return table


def _difference(metric: Any, y: np.ndarray, pred: np.ndarray, groups: np.ndarray, keep: list[str]) -> float | None:
    """The fairlearn difference over rows of the ``keep`` groups; None with fewer than two of them."""
    import numpy as np

    if len(keep) < 2:
        return None
    rows = np.isin(groups, keep)
    return _float(metric(y[rows].astype(int), pred[rows], sensitive_features=groups[rows]))


def _attribute_report(y: np.ndarray, pred: np.ndarray, values: pd.Series, fairness: FairnessSpec) -> dict:
    """One attribute: the per-group table and the two differences over the groups that are gated."""
    from fairlearn.metrics import demographic_parity_difference, equalized_odds_difference

    groups = _group_labels(values)
    table = _groups_table(y, pred, groups)
    sized = table.index[table["rows"] >= fairness.min_group_rows].tolist()
    both = [g for g in sized if table.at[g, "positives"] > 0 and table.at[g, "negatives"] > 0]
    return {
        "groups": {str(g): {"rows": int(r["rows"]), "positives": int(r["positives"]),
                            "selection_rate": _float(r["selection_rate"]), "tpr": _float(r["tpr"]),
                            "fpr": _float(r["fpr"]), "gated": g in sized}
                   for g, r in table.sort_index().iterrows()},
        "gated_groups": sorted(map(str, sized)),
        "small_groups": sorted(str(g) for g in table.index if g not in sized),
        DPD: _difference(demographic_parity_difference, y, pred, groups, sized),
        EOD: _difference(equalized_odds_difference, y, pred, groups, both),
    }


def group_report(y_true: Any, y_prob: Any, groups: pd.DataFrame, fairness: FairnessSpec) -> dict[str, Any]:
    """Selection rate, TPR and FPR per group of each sensitive attribute, and the two differences.

    ``groups`` holds the sensitive attribute columns, row-aligned with ``y_true`` (0/1, NaN = not
    labelled yet) and ``y_prob``. Unlabelled rows are excluded (counted in ``n_unlabelled``): TPR and
    FPR need an outcome, and selection rates over a different row set than the rates they sit next to
    would not be comparable. The result is JSON-safe (str keys, floats or None).
    """
    import numpy as np

    y, p, groups = _arrays(y_true, y_prob, groups, fairness.sensitive_attributes)
    labelled = ~np.isnan(y)
    y, p = y[labelled], p[labelled]
    pred = (p >= fairness.threshold).astype(int)
    frame = groups.loc[labelled].reset_index(drop=True)
    attributes = {a: _attribute_report(y, pred, frame[a], fairness) for a in fairness.sensitive_attributes} \
        if len(y) else {a: _empty_attribute() for a in fairness.sensitive_attributes}
    return {
        "threshold": fairness.threshold, "min_group_rows": fairness.min_group_rows,
        "use_as_features": fairness.use_as_features,
        "n_rows": int(len(y)), "n_unlabelled": int((~labelled).sum()),
        "selection_rate": _float(pred.mean()) if len(y) else None,
        "positive_rate": _float(y.mean()) if len(y) else None,
        "attributes": attributes,
    }


def _empty_attribute() -> dict:
    return {"groups": {}, "gated_groups": [], "small_groups": [], DPD: None, EOD: None}


def _verdicts(attribute: str, block: dict, fairness: FairnessSpec) -> tuple[dict, list[str], list[str]]:
    """(numbers, failures, notes) of one attribute against the spec's limits."""
    numbers, failures, notes = {}, [], []
    for key, limit_name in LIMITS.items():
        value, limit = block.get(key), getattr(fairness, limit_name)
        numbers[key], numbers[limit_name] = value, limit
        if limit is None:
            continue
        if value is None:
            notes.append(f"{attribute}: {LABELS[key]} not measurable (fewer than 2 groups with >= "
                         f"{fairness.min_group_rows} rows{' and both outcomes' if key == EOD else ''}): not gated")
        elif value > limit:
            failures.append(f"{attribute}: {LABELS[key]} {value:.4f} > max {limit:.4f}")
        else:
            notes.append(f"{attribute}: {LABELS[key]} {value:.4f} <= max {limit:.4f}")
    return numbers, failures, notes


def check(report: dict[str, Any], fairness: FairnessSpec) -> dict[str, Any]:
    """The fairness gate, shaped like the registry's checks: passed, the numbers, and a detail line.

    Fails when any measured difference exceeds its limit (a null limit never fails). A difference that
    cannot be measured (too few large-enough groups) does not fail: the detail says it was not gated.
    """
    differences, failures, notes = {}, [], []
    for attribute, block in report.get("attributes", {}).items():
        differences[attribute], failed, noted = _verdicts(attribute, block, fairness)
        failures += failed
        notes += noted
    detail = "; ".join(failures) if failures else ("; ".join(notes) or "no sensitive attributes")
    return {"passed": not failures, "threshold": report.get("threshold"), "n_rows": report.get("n_rows"),
            "differences": differences, "failures": failures,
            "detail": f"{detail} (on {report.get('n_rows')} labelled rows, selected at p >= "
                      f"{report.get('threshold')})"}


def assess(y_true: Any, y_prob: Any, groups: pd.DataFrame, fairness: FairnessSpec) -> dict[str, Any]:
    """The report with its verdict under ``check``: what training and monitoring store."""
    report = group_report(y_true, y_prob, groups, fairness)
    return {**report, "check": check(report, fairness)}
