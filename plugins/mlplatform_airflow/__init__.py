"""Airflow glue for mlplatform: builds one DAG per use-case spec and resolves connections.

Kept apart from the Airflow-free ``mlplatform`` package, which holds all the logic.
"""
