"""`mlplatform registry` on the real S3 server: versions, audit log, and an audited one-command rollback."""

from __future__ import annotations

import secrets
from datetime import date

import pandas as pd
import pytest

from mlplatform import cli, registry
from mlplatform import constants as C
from mlplatform.storage import Layout, ObjectStore

pytestmark = pytest.mark.integration

L = Layout("demand_forecast")


@pytest.fixture
def store(s3_server, monkeypatch) -> ObjectStore:
    bucket = "cli-" + secrets.token_hex(6)
    monkeypatch.setenv(C.ENV_BUCKET, bucket)
    monkeypatch.setenv(registry.ENV_ACTOR, "cli:test-operator")
    store = ObjectStore(s3_server.client(), bucket)
    store.ensure_bucket()
    for version, end, wape in (("v20250601-aaaaaaaaaa", "2025-06-01", 0.45), ("v20250608-bbbbbbbbbb", "2025-06-08", 0.43)):
        meta = {"version": version, "training_window": {"start": "2024-01-01", "end": end},
                "metrics": {"metric": "wape", "model": {"wape": wape}, "baseline": {"wape": 0.58}},
                "decision": {"eligible": True, "promoted": True, "reason": "promoted: test"}}
        stored, _ = registry.register(store, L, meta, version.encode(), pd.DataFrame({"x": [1.0]}))
        registry.move_alias(store, L, registry.CHAMPION, stored, effective_date=date.fromisoformat(end),
                            actor="airflow:scheduler", reason="promoted: test", action="promote")
    return store


def test_versions_lists_metrics_and_aliases(store, capsys):
    assert cli.main(["registry", "versions", "demand_forecast"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("v20250601-aaaaaaaaaa") and "wape 0.450 (baseline 0.580)" in out[0]
    assert out[1].startswith("v20250608-bbbbbbbbbb") and out[1].endswith("champion")


def test_rollback_is_one_command_and_lands_in_the_audit_log(store, capsys):
    assert cli.main(["registry", "rollback", "demand_forecast", "--to", "v20250601-aaaaaaaaaa",
                     "--reason", "June retrain over-forecasts promotions"]) == 0
    assert registry.champion(store, L)["version"] == "v20250601-aaaaaaaaaa"
    capsys.readouterr()
    assert cli.main(["registry", "audit", "demand_forecast"]) == 0
    last = capsys.readouterr().out.splitlines()[-1]
    assert "rollback" in last and "v20250608-bbbbbbbbbb -> v20250601-aaaaaaaaaa" in last
    assert "by cli:test-operator: June retrain over-forecasts promotions" in last


def test_rollback_to_an_unknown_version_fails_with_a_clear_error(store, capsys):
    assert cli.main(["registry", "rollback", "demand_forecast", "--to", "v2099", "--reason", "x"]) == 2
    assert "no registered model version 'v2099'" in capsys.readouterr().err
    assert registry.champion(store, L)["version"] == "v20250608-bbbbbbbbbb"


def test_the_rollback_dag_moves_the_champion_with_the_operator_reason(store, dagbag):
    from datetime import UTC, datetime

    from dag_runs import run_dag

    conf = {"use_case": "demand_forecast", "version": "v20250601-aaaaaaaaaa", "reason": "rollback from the UI"}
    run_dag(dagbag.dags["mlplatform_model_rollback"], datetime(2025, 7, 1, tzinfo=UTC), run_conf=conf)
    assert registry.champion(store, L)["version"] == "v20250601-aaaaaaaaaa"
    event = registry.audit_log(store, L)[-1]
    assert event["action"] == "rollback" and event["reason"] == "rollback from the UI"
    assert event["actor"].startswith("airflow:") and "mlplatform_model_rollback/" in event["actor"]
