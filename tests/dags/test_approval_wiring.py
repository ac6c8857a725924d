"""``approval: required`` adds Airflow's ApprovalOperator between training and publication, and only then."""

from __future__ import annotations

from datetime import timedelta

import pytest
import yaml

from mlplatform import constants as C
from mlplatform.spec import load_spec


def _spec(tmp_path, approval):
    raw = yaml.safe_load((C.USE_CASES_DIR / "demand_forecast.yaml").read_text())
    raw["approval"] = approval
    path = tmp_path / "demand_forecast.yaml"
    path.write_text(yaml.safe_dump(raw))
    return load_spec(path, yaml.safe_load((C.USE_CASES_DIR / C.DEFAULTS_SPEC_NAME).read_text()))


def test_spec_accepts_the_shorthand_and_the_full_form(tmp_path) -> None:
    assert _spec(tmp_path, "required").approval.required
    full = _spec(tmp_path, {"mode": "required", "timeout_hours": 8, "approvers": ["risk.officer"]}).approval
    assert (full.required, full.timeout_hours, full.approvers) == (True, 8, ["risk.officer"])
    assert not _spec(tmp_path, "none").approval.required


def test_a_wrong_approval_mode_names_the_field(tmp_path) -> None:
    from mlplatform.errors import SpecError

    with pytest.raises(SpecError, match=r"approval\.mode"):
        _spec(tmp_path, "maybe")


def test_required_approval_parks_promotion_in_an_approval_operator(tmp_path) -> None:
    from airflow.providers.standard.operators.hitl import ApprovalOperator

    from mlplatform_airflow.factory import build_dag

    spec = _spec(tmp_path, {"mode": "required", "timeout_hours": 8, "approvers": ["risk.officer"]})
    dag = build_dag(spec)
    approve = dag.get_task("approve_promotion")
    assert isinstance(approve, ApprovalOperator)
    assert approve.defaults == ["Reject"]  # the timeout answers Reject: the champion stays
    assert approve.response_timeout == timedelta(hours=8)
    assert approve.assigned_users == [{"id": "risk.officer", "name": "risk.officer"}]
    assert approve.upstream_task_ids == {"train_model"}
    assert dag.get_task("score_and_publish").upstream_task_ids == {"train_model", "approve_promotion",
                                                                   "keep_champion"}
    assert "Approval required" in dag.doc_md


def test_without_approval_there_is_no_approval_task(tmp_path) -> None:
    from mlplatform_airflow.factory import build_dag

    dag = build_dag(_spec(tmp_path, "none"))
    assert "approve_promotion" not in dag.task_ids
    assert dag.get_task("score_and_publish").upstream_task_ids == {"train_model", "keep_champion"}
