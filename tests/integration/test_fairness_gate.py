"""The fairness gate on the real credit-risk path: land, dbt build, validate, train, register, publish.

Two synthetic worlds of the credit_risk use case (its shipped fairness limits, 3000 customers instead of
5000 for speed) share one registry. Without group disparity the model is promoted and its card shows the
fairness section; with a strong disparity by age band (group_disparity 2.5) the next version breaches
the demographic parity limit, the recorded check holds the numbers and the champion alias stays where
it was. Monitoring then reports fairness on realised outcomes of the published scores.
"""

from __future__ import annotations

import secrets
from datetime import date

import pytest

from mlplatform import pipeline, registry
from mlplatform.publishing import read_published
from mlplatform.settings import Settings, load_settings
from mlplatform.spec import UseCaseSpec, get_spec
from mlplatform.storage import Layout, ObjectStore

pytestmark = pytest.mark.integration

FIRST, SECOND = date(2025, 5, 31), date(2025, 6, 30)
# Labels of reviews scored on FIRST are all known 90 days after the latest of them.
OUTCOMES_KNOWN = date(2025, 8, 31)
N_CUSTOMERS = 3000
STRONG = 2.5


def _spec(disparity: float) -> UseCaseSpec:
    """credit_risk with fewer customers; only the fairness gate may block (the others have their tests)."""
    base = get_spec("credit_risk")
    params = {**base.source.params, "n_customers": N_CUSTOMERS, "group_disparity": disparity}
    return base.model_copy(update={
        "source": base.source.model_copy(update={"params": params}),
        "backtest": base.backtest.model_copy(update={"min_improvement": 0.0}),
        "accuracy": base.accuracy.model_copy(update={"lookback_days": 120}),  # > 90-day label delay + 31
    })


def _settings(tmp_path_factory: pytest.TempPathFactory, name: str) -> Settings:
    """One warehouse per world: landed days are never re-landed, so worlds must not share one."""
    return load_settings({"MLPLATFORM_DATA_DIR": str(tmp_path_factory.mktemp(name) / "data")})


def _train(spec: UseCaseSpec, run_date: date, settings: Settings, store: ObjectStore) -> dict:
    pipeline.land_raw(spec, run_date, settings, store)
    pipeline.build_features(spec, run_date, settings, store)
    pipeline.validate_features(spec, run_date, store)
    return pipeline.train_model(spec, run_date, store, actor="test")


def _card(store: ObjectStore, meta: dict) -> str:
    return store.get_bytes(meta["artifact"]["model_card_uri"].split(f"s3://{store.bucket}/")[1]).decode()


@pytest.fixture(scope="module")
def store(s3_server) -> ObjectStore:
    store = ObjectStore(s3_server.client(), "fair-" + secrets.token_hex(6))
    store.ensure_bucket()
    return store


@pytest.fixture(scope="module")
def fair_world(tmp_path_factory, store) -> tuple[UseCaseSpec, Settings, dict]:
    spec, settings = _spec(0.0), _settings(tmp_path_factory, "fair")
    return spec, settings, _train(spec, FIRST, settings, store)


@pytest.fixture(scope="module")
def skewed_run(tmp_path_factory, store, fair_world) -> dict:
    return _train(_spec(STRONG), SECOND, _settings(tmp_path_factory, "skewed"), store)


def test_without_disparity_the_fairness_check_passes_and_the_model_is_promoted(fair_world, store):
    spec, _, run = fair_world
    assert run["decision"]["promoted"], run["decision"]
    check = run["decision"]["checks"]["fairness"]
    numbers = check["differences"]["age_band"]
    assert check["passed"] and numbers["max_demographic_parity_difference"] == 0.25
    assert numbers["demographic_parity_difference"] < 0.25 and numbers["equalized_odds_difference"] < 0.45
    meta = registry.champion(store, Layout(spec.name))
    assert meta["version"] == run["version"]
    groups = meta["metrics"]["fairness"]["attributes"]["age_band"]["groups"]
    assert set(groups) == {"18-25", "26-35", "36-50", "51-65", "66+"} and all(g["gated"] for g in groups.values())
    assert "age_band" not in meta["feature_names"]  # measured, never a model input
    card = _card(store, meta)
    assert "## Fairness" in card and "### age_band" in card and "**Fairness check: passed**" in card


def test_a_strong_disparity_fails_the_check_with_its_numbers_and_the_champion_stays(fair_world, skewed_run, store):
    spec, _, first = fair_world
    decision = skewed_run["decision"]
    assert not decision["promoted"] and not decision["eligible"]
    check = decision["checks"]["fairness"]
    dpd = check["differences"]["age_band"]["demographic_parity_difference"]
    assert not check["passed"] and dpd > 0.25
    assert f"age_band: demographic parity difference {dpd:.4f} > max 0.2500" in decision["reason"]
    assert decision["checks"]["baseline"]["passed"]  # the fairness limit is what blocked it
    layout = Layout(spec.name)
    assert registry.alias_version(store, layout, registry.CHAMPION) == first["version"]
    assert registry.alias_version(store, layout, registry.CHALLENGER) == skewed_run["version"]
    meta = registry.read_metadata(store, layout, skewed_run["version"])
    assert meta["decision"]["checks"]["fairness"] == check
    assert "**Fairness check: FAILED**" in _card(store, meta)


def test_monitoring_reports_fairness_on_realised_outcomes_of_the_published_scores(fair_world, store):
    spec, settings, first = fair_world
    pipeline.score_and_publish(spec, FIRST, store)
    published = read_published(store, Layout(spec.name).forecasts(FIRST))
    assert "age_band" not in published.columns  # joined from the snapshot for monitoring, never published
    pipeline.land_raw(spec, OUTCOMES_KNOWN, settings, store)
    pipeline.build_features(spec, OUTCOMES_KNOWN, settings, store)
    result = pipeline.evaluate_accuracy(spec, OUTCOMES_KNOWN, store)
    summary = store.get_json(result["summary_uri"].split(f"s3://{store.bucket}/")[1])
    fairness = summary["fairness"]
    assert fairness["n_rows"] == len(published) == result["realised_rows"]
    assert fairness["model_versions"] == [first["version"]]
    assert set(fairness["attributes"]["age_band"]["groups"]) == {"18-25", "26-35", "36-50", "51-65", "66+"}
    assert set(fairness["check"]) >= {"passed", "detail", "differences"}
