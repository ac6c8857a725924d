"""Airflow DAGs for every use case: one DAG per spec in include/use_cases/.

This module only wires: mlplatform_airflow.factory builds each DAG from its spec. Adding a use case is a
spec file plus dbt models; no Python. An invalid spec is logged (file, field, fix) and skipped, so the
other use cases' DAGs still load.
"""

from mlplatform_airflow.factory import register_all

SPEC_ERRORS = register_all(globals())
