"""The ``approve_promotion`` task: Airflow's own ApprovalOperator, asking about the date's challenger.

On Airflow 3.3 the task parks in the ``awaiting_input`` state (no worker slot, no triggerer) and shows
up under Browse -> Required Actions. The request's subject and body (Markdown: the backtest comparison,
the gate checks and the model card) come from ``mlplatform.approval``, read when the task runs. The
answer goes back through one function of ``mlplatform.pipeline``: approve promotes, reject or timeout
leaves the champion in place, and all three are audited with who and when.

Unlike the stock operator, a rejection does not skip downstream tasks: the run still publishes, with the
champion that stays in place. The decision is the task's XCom.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.providers.standard.operators.hitl import ApprovalOperator, HITLOperator
from airflow.sdk.exceptions import AirflowSkipException

from mlplatform.spec import UseCaseSpec


class PromotionApprovalOperator(ApprovalOperator):
    """Approve or reject the promotion a run's training proposed; the timeout answers "Reject"."""

    def __init__(self, *, spec: UseCaseSpec, **kwargs: Any) -> None:
        approvers = [{"id": user, "name": user} for user in spec.approval.approvers] or None
        super().__init__(
            subject=f"{spec.name}: promote a new champion?",
            body="The request is filled in when training proposes a promotion.",
            defaults=[ApprovalOperator.REJECT],
            response_timeout=timedelta(hours=spec.approval.timeout_hours),
            assigned_users=approvers,
            **kwargs,
        )
        self.use_case = spec.name

    def _io(self) -> tuple[Any, Any]:
        from mlplatform_airflow.factory import _io

        spec, _, store = _io(self.use_case)
        return spec, store

    @staticmethod
    def _run_date(context: Any):
        moment = context.get("logical_date") or context["dag_run"].run_after
        return moment.date()

    def execute(self, context: Any) -> Any:
        from mlplatform import pipeline as p

        spec, store = self._io()
        request = p.approval_request(spec, self._run_date(context), store)
        if request is None:
            raise AirflowSkipException("no promotion awaits approval for this date (the gate did not pass, "
                                       "or the version was already decided)")
        self.subject, self.body = request["subject"], request["body"]
        return super().execute(context)

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        """Record the answer; deliberately skip ApprovalOperator's "reject skips downstream" step."""
        from mlplatform import pipeline as p

        answer = HITLOperator.execute_complete(self, context, event)
        chosen = answer["chosen_options"][0]
        outcome = ("timed_out" if event.get("timedout") else
                   "approved" if chosen == ApprovalOperator.APPROVE else "rejected")
        spec, store = self._io()
        run = context["dag_run"]
        return p.record_approval(spec, self._run_date(context), store, outcome=outcome,
                                 responded_by=answer["responded_by_user"], responded_at=answer["responded_at"],
                                 run_id=f"{run.dag_id}/{run.run_id}")
