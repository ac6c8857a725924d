"""Running a whole DAG in-process with dag.test(), failing fast.

dag.test() honours task retries and waits out the retry delay (5 minutes in the specs), so a failing
task would stall a test for many minutes before the failure shows. Tests run the DAG with retries off:
the first failure ends the run, and the assertion prints every task's state.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any


def run_dag(dag: Any, logical_date: datetime, **kwargs: Any) -> dict[str, str]:
    """Run ``dag`` for ``logical_date``; assert success; return {task_id: state}."""
    for task in dag.tasks:
        task.retries = 0
    dr = dag.test(logical_date=logical_date, **kwargs)
    states = {ti.task_id: ti.state for ti in dr.get_task_instances()}
    assert dr.state == "success", f"{dag.dag_id} run for {logical_date:%Y-%m-%d} {dr.state}: {states}"
    return states
