"""Airflow DAGs for every use case in include/use_cases/.

This module only wires: mlplatform_airflow.factory builds, per spec, the pipeline DAG (and, when the spec
declares roll-ups, its Asset-scheduled consumer DAG), plus the manual model-rollback DAG. Adding a use
case is a spec file plus dbt models; no Python. An invalid spec is logged (file, field, fix) and skipped,
so the other use cases' DAGs still load.
"""

from mlplatform_airflow.factory import register_all

SPEC_ERRORS = register_all(globals())
