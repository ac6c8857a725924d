# Image for the Airflow services of docker-compose.yaml: the project, its pinned dependencies, nothing else.
FROM python:3.11-slim-bookworm

ENV PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    AIRFLOW_HOME=/opt/airflow \
    MLPLATFORM_PROJECT_ROOT=/opt/project \
    MLPLATFORM_DATA_DIR=/opt/data \
    AIRFLOW__CORE__DAGS_FOLDER=/opt/project/dags \
    AIRFLOW__CORE__PLUGINS_FOLDER=/opt/project/plugins \
    AIRFLOW__CORE__LOAD_EXAMPLES=False \
    GX_ANALYTICS_ENABLED=false DO_NOT_TRACK=1 DBT_SEND_ANONYMOUS_USAGE_STATS=false SCARF_ANALYTICS=false \
    AIRFLOW__COSMOS__ENABLE_TELEMETRY=False

WORKDIR /opt/project
COPY requirements.txt constraints.txt ./
RUN pip install -r requirements.txt -c constraints.txt
COPY . .
RUN pip install --no-deps -e . \
 && cd dbt_project && MLPLATFORM_DUCKDB_PATH=/tmp/parse.duckdb dbt parse --quiet --profiles-dir . --target duckdb
