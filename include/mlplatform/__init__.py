"""mlplatform: the Airflow-free core of the use-case pipelines.

Every pipeline stage (landing, transformation, validation, training, monitoring, scoring,
publishing) is a plain function of this package, unit-tested without Airflow. The DAG modules
under ``dags/`` only wire these functions together.
"""

__version__ = "0.1.0"
