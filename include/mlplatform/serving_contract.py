"""Models served only within their contract: a version serves a spec only if it was trained for its shape.

A version is trained for one kind, frequency, horizon, set of quantiles, series keys and feature set.
When the spec changes under it (say ``forecast.horizon`` goes from 28 to 366), the version cannot produce
what the spec now promises: scoring it anyway would publish rows it was never backtested for, under a
manifest that says otherwise. So the same check is applied at three points:

- ``decide_retrain``: a champion that breaks the current spec's contract is a retraining trigger;
- the promotion gate: such a champion cannot be compared with the challenger on the new rows, so the
  challenger is judged against the baseline alone (the champion cannot serve the spec anyway);
- ``score_and_publish``: a serving version that breaks the contract is refused before anything is
  written, with the mismatch and the ways out.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlplatform.errors import SpecError
from mlplatform.spec import UseCaseSpec

if TYPE_CHECKING:
    from mlplatform.storage import ObjectStore


def _declared_features(spec_dump: dict[str, Any]) -> set[str]:
    features = spec_dump.get("features") or {}
    return {*features.get("numeric", []), *features.get("categorical", [])}


def contract_problems(meta: dict[str, Any], spec: UseCaseSpec) -> list[str]:
    """What the version ``meta`` (registry metadata) was trained for that the current spec contradicts."""
    trained = meta.get("spec") or {}
    problems = []
    if meta.get("kind", spec.kind) != spec.kind:
        problems.append(f"kind: trained as {meta.get('kind')}, the spec now says {spec.kind}")
    if spec.kind == "forecast":
        frequency = meta.get("frequency") or "daily"  # versions saved before frequencies existed are daily
        if frequency != spec.frequency:
            problems.append(f"frequency: trained on {frequency} periods, the spec now says {spec.frequency}")
        if meta.get("horizon") is not None and meta["horizon"] != spec.horizon:
            problems.append(f"forecast.horizon: trained for {meta['horizon']} periods, the spec now says "
                            f"{spec.horizon}")
        if meta.get("quantiles") and list(meta["quantiles"]) != list(spec.model.quantiles):
            problems.append(f"model.quantiles: trained for {meta['quantiles']}, the spec now says "
                            f"{spec.model.quantiles}")
    keys = (trained.get("features") or {}).get("series_keys")
    if keys is not None and list(keys) != list(spec.features.series_keys):
        problems.append(f"features.series_keys: trained on {keys}, the spec now says {spec.features.series_keys}")
    gone = sorted(_declared_features(trained) - {*spec.features.numeric, *spec.features.categorical})
    if gone:
        problems.append(f"features: the version uses {gone}, which the spec no longer declares")
    return problems


def check_serving_contract(meta: dict[str, Any], spec: UseCaseSpec) -> None:
    """Refuse to serve ``meta`` for ``spec`` if it breaks the contract: SpecError naming the way out."""
    problems = contract_problems(meta, spec)
    if problems:
        raise SpecError(
            f"use case {spec.name!r}: model version {meta['version']} cannot serve the current spec: "
            f"{'; '.join(problems)}. Nothing was published. Either retrain with the new spec (a run whose "
            f"champion breaks the spec retrains, and the new version is judged against the baseline), or "
            f"restore the spec the version was trained with (spec fingerprint {meta.get('spec_fingerprint')})")


def unservable_champions(specs: list[UseCaseSpec], store: ObjectStore) -> dict[str, list[str]]:
    """Per use case whose current champion breaks its spec's contract: [champion version, *problems].

    What ``mlplatform specs --registry`` reports when a spec is edited, before any run publishes.
    """
    from mlplatform import registry
    from mlplatform.storage import Layout

    out = {}
    for spec in specs:
        meta = registry.champion(store, Layout(spec.name))
        problems = contract_problems(meta, spec) if meta else []
        if problems:
            out[spec.name] = [meta["version"], *problems]
    return out
