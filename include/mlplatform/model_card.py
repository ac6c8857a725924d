"""Model cards: a generated, human-readable record of each model version (Markdown, next to the model).

Everything in a card comes from the version's registry metadata and its drift reference sample, so a
card can never disagree with what the registry says was trained, on which data, and how well it did.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlplatform.spec import UseCaseSpec

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd


def reference_statistics(reference: pd.DataFrame, top: int = 5) -> dict[str, dict[str, Any]]:
    """Per column: count, null share, mean/std/p05/p50/p95 (numeric) or the top levels (categorical).

    These are the statistics drift is measured against; writing them down lets a reviewer see what
    'normal' looked like when the model was trained.
    """
    import pandas as pd

    stats: dict[str, dict[str, Any]] = {}
    for col in reference.columns:
        s = reference[col]
        entry: dict[str, Any] = {"count": int(s.notna().sum()), "null_share": round(float(s.isna().mean()), 4)}
        if pd.api.types.is_bool_dtype(s) or not pd.api.types.is_numeric_dtype(s):
            shares = s.astype("string").value_counts(normalize=True, dropna=True).head(top)
            entry["top"] = {str(k): round(float(v), 4) for k, v in shares.items()}
        else:
            x = s.astype(float)
            entry.update({k: _num(v) for k, v in {
                "mean": x.mean(), "std": x.std(), "p05": x.quantile(0.05), "p50": x.quantile(0.5),
                "p95": x.quantile(0.95)}.items()})
        stats[str(col)] = entry
    return stats


def _num(value: Any) -> float | None:
    value = float(value)
    return None if value != value else round(value, 4)  # NaN -> None


def _metric_rows(metrics: dict) -> list[str]:
    names = sorted(set(metrics.get("model", {})) | set(metrics.get("baseline", {})))
    rows = ["| metric | model | baseline |", "|---|---|---|"]
    for name in names:
        rows.append(f"| {name} | {_cell(metrics['model'].get(name))} | {_cell(metrics['baseline'].get(name))} |")
    return rows


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return "–" if value is None else str(value)


def _model_lines(metadata: dict) -> list[str]:
    model = metadata["model"]
    if "candidate" not in model:
        return [f"- **Estimator:** {model['estimator']} {model['params']}"]
    lines = [f"- **Model:** {model['description']} (chosen by the backtest among the candidates below)"]
    if model.get("fallback") or metadata["decision"].get("fallback"):
        lines.append("- **FALLBACK:** this version serves only while no version has cleared the promotion gate; "
                     "its published rows say `is_fallback: true`")
    if any(m in ("gbm", "gbm_scaled") for m in model.get("members", [])):
        lines.append(f"- **Gradient boosting:** {model['estimator']} {model['params']}")
    return lines


def _candidates_section(metrics: dict) -> list[str]:
    """Every candidate's backtest on the same rows, its interval coverage and fit time, or why it was skipped."""
    candidates = metrics.get("candidates")
    if not candidates:
        return []
    metric = metrics.get("metric", "wape")
    rows = [f"## Candidates (same backtest rows; chosen: `{metrics.get('chosen')}`)", "",
            f"| candidate | {metric} | {metric} per fold | mase | bias | P-low..P-high coverage | fit seconds "
            "| status |",
            "|---|---|---|---|---|---|---|---|"]
    for name, c in candidates.items():
        label = f"{name} ({', '.join(c['members'])})" if c.get("members") else name
        per_fold = " / ".join(_cell(v) for v in c.get(f"fold_{metric}") or []) or "–"
        rows.append(f"| {label} | {_cell(c.get(metric))} | {per_fold} | {_cell(c.get('mase'))} | "
                    f"{_cell(c.get('bias'))} | {_cell(c.get('coverage'))} | {_cell(c.get('fit_seconds'))} | "
                    f"{c.get('status')} |")
    cal = metrics.get("calibration") or {}
    rule = ("the lowest pooled error" if metrics.get("selection") == "best" else
            "the simplest candidate that no other beats both pooled and on every fold (per-fold scores above)")
    rows += ["", f"Chosen by `model.selection: {metrics.get('selection', 'consistent')}`: {rule}."]
    rows += ["", f"Intervals: {cal.get('method', 'conformal')} from {cal.get('n_residuals')} backtest residuals "
             f"per horizon; coverage above is {'cross-fitted (each fold calibrated on the others)' if cal.get('cross_fitted') else 'in-sample (one fold)'}.",
             ""]
    return rows


def _limitations(spec: UseCaseSpec) -> list[str]:
    if spec.kind == "forecast":
        return ["Trained on the data named above only. Intervals are conformal: calibrated on backtest residuals "
                "per horizon, they hold on average over series and origins, not for every series; quantiles are "
                "per row, and sums of quantiles over many rows are not quantiles of the sum. Statistical "
                "candidates are refitted on each series' recent window at every run."]
    return ["Trained on the data named above only; scores are per row and their calibration holds on average."]


def _champion_section(metrics: dict) -> list[str]:
    cmp = metrics.get("champion")
    if not cmp:
        return ["No champion existed when this version was trained."]
    if cmp.get("error"):
        return [f"Compared with champion `{cmp['version']}`: {cmp['error']}"]
    name = cmp["metric"]
    return [f"Compared with champion `{cmp['version']}` on the {cmp['n_eval_rows']} backtest rows neither had "
            f"seen: {name} {_cell(cmp['challenger'].get(name))} vs {_cell(cmp['champion'].get(name))} "
            f"(improvement {_cell(cmp.get('improvement'))}, required {cmp.get('margin')})."]


def _rate(value: Any) -> str:
    return "–" if value is None else f"{value:.3f}"


def _fairness_groups(block: dict) -> list[str]:
    rows = ["| group | rows | positives | selection rate | TPR | FPR | gated |", "|---|---|---|---|---|---|---|"]
    for group, g in block.get("groups", {}).items():
        rows.append(f"| {group} | {g['rows']} | {g['positives']} | {_rate(g['selection_rate'])} | "
                    f"{_rate(g['tpr'])} | {_rate(g['fpr'])} | {'yes' if g['gated'] else 'no (too few rows)'} |")
    return rows


def _fairness_limits(numbers: dict) -> list[str]:
    lines = []
    for key, limit_key, label in (
            ("demographic_parity_difference", "max_demographic_parity_difference", "Demographic parity difference"),
            ("equalized_odds_difference", "max_equalized_odds_difference", "Equalized odds difference")):
        value, limit = numbers.get(key), numbers.get(limit_key)
        verdict = ("not gated" if limit is None else "not measurable (too few large groups)" if value is None
                   else "pass" if value <= limit else "FAIL")
        lines.append(f"- {label}: {_rate(value)} (max {_rate(limit)}): {verdict}")
    return lines


def _fairness_section(metrics: dict) -> list[str]:
    """Per-group rates and the two differences against the spec's limits, when the spec asks for them.

    Why in the card: a reviewer deciding whether a model may serve should see how it treats each group
    next to how accurate it is, with the same numbers the promotion gate used.
    """
    fair = metrics.get("fairness")
    if not fair:
        return []
    verdict = fair.get("check") or {}
    use = "model inputs as well" if fair.get("use_as_features") else "measurement only, not model inputs"
    lines = ["## Fairness",
             f"Backtest rows with a known outcome: {fair.get('n_rows')}; a row counts as selected when its "
             f"probability is >= {fair.get('threshold')}; groups with fewer than {fair.get('min_group_rows')} "
             f"rows are reported but not gated. Sensitive attributes: {use}.", ""]
    for attribute, block in fair.get("attributes", {}).items():
        lines += [f"### {attribute}", *_fairness_groups(block), "",
                  *_fairness_limits((verdict.get("differences") or {}).get(attribute, {})), ""]
    lines += [f"**Fairness check: {'passed' if verdict.get('passed') else 'FAILED'}** ({verdict.get('detail')})", ""]
    return lines


def _stats_rows(stats: dict[str, dict[str, Any]]) -> list[str]:
    rows = ["| column | count | nulls | summary |", "|---|---|---|---|"]
    for col, s in stats.items():
        if "top" in s:
            summary = ", ".join(f"{k} {v:.0%}" for k, v in s["top"].items())
        else:
            summary = f"mean {_cell(s['mean'])}, std {_cell(s['std'])}, p05 {_cell(s['p05'])}, " \
                      f"p50 {_cell(s['p50'])}, p95 {_cell(s['p95'])}"
        rows.append(f"| {col} | {s['count']} | {s['null_share']:.1%} | {summary} |")
    return rows


def render(spec: UseCaseSpec, metadata: dict, stats: dict[str, dict[str, Any]]) -> str:
    """The Markdown model card of one version."""
    m, data, decision = metadata["metrics"], metadata["data"], metadata["decision"]
    window = metadata["training_window"]
    lines = [
        f"# Model card: {spec.name} {metadata['version']}",
        "",
        spec.description,
        "",
        f"- **Kind:** {spec.kind} ({spec.frequency})" + (f", horizon {spec.horizon}" if spec.horizon else ""),
        f"- **Owner:** {spec.owner}",
        f"- **Intended consumers:** {', '.join(spec.consumers) or '–'}",
        *_model_lines(metadata),
        f"- **Decision:** {decision['reason']}",
        "",
        "## Training data",
        f"- Window: {window['start']} to {window['end']} ({metadata['n_training_rows']} training rows)",
        f"- Snapshot: `{data['snapshot_uri']}` ({data['rows']} rows)",
        f"- Data fingerprint: `{data['fingerprint']}`",
        f"- dbt manifest: `{metadata['dbt_manifest_hash']}`; code: `{metadata['code'].get('source_hash')}` "
        f"(git {metadata['code'].get('git_commit') or 'n/a'}); spec: `{metadata['spec_fingerprint'][:16]}`",
        "",
        "## Features",
        ", ".join(f"`{f}`" for f in metadata["feature_names"]),
        "",
        f"## Backtest ({len(m.get('folds', []))} rolling-origin folds, gate metric `{m.get('metric')}`)",
        *_metric_rows(m),
        "",
        f"Improvement over the baseline: {_cell(m.get('improvement'))} (required {m.get('min_improvement')}).",
        "",
        *_candidates_section(m),
        *_champion_section(m),
        "",
        *_fairness_section(m),
        "## Drift reference statistics",
        *_stats_rows(stats),
        "",
        "## Limitations",
        *_limitations(spec),
        "",
    ]
    return "\n".join(lines)
