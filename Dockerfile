# Image of every Airflow service of docker-compose.yaml (api-server, scheduler, dag-processor, triggerer,
# Celery workers, flower): the project and its pinned dependencies, nothing else. Runs as `airflow`
# (uid 50000, gid 0, the official Airflow image's convention); the code is root-owned and read-only to it.
#   docker-compose build            (or: docker build --build-arg MLPLATFORM_CODE_VERSION=v1.2.3 -t ... .)
FROM python:3.11-slim-bookworm

ARG MLPLATFORM_CODE_VERSION=dev
LABEL org.opencontainers.image.title="mlplatform-airflow" \
      org.opencontainers.image.description="ML use cases as Airflow pipelines: dbt, Great Expectations, scikit-learn, Evidently, S3" \
      org.opencontainers.image.version="${MLPLATFORM_CODE_VERSION}" \
      org.opencontainers.image.base.name="python:3.11-slim-bookworm"

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    AIRFLOW_HOME=/opt/airflow \
    MLPLATFORM_PROJECT_ROOT=/opt/project \
    MLPLATFORM_DATA_DIR=/opt/data \
    MLPLATFORM_CODE_VERSION=${MLPLATFORM_CODE_VERSION} \
    AIRFLOW__CORE__DAGS_FOLDER=/opt/project/dags \
    AIRFLOW__CORE__PLUGINS_FOLDER=/opt/project/plugins \
    AIRFLOW__CORE__LOAD_EXAMPLES=False \
    GX_ANALYTICS_ENABLED=false DO_NOT_TRACK=1 DBT_SEND_ANONYMOUS_USAGE_STATS=false SCARF_ANALYTICS=false \
    AIRFLOW__COSMOS__ENABLE_TELEMETRY=False

# curl: the api-server and flower health checks. Nothing else from apt (psycopg2-binary bundles libpq).
RUN apt-get update \
 && apt-get install -y --no-install-recommends curl \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --uid 50000 --gid 0 --no-log-init --create-home --home-dir /opt/airflow --shell /bin/bash airflow

WORKDIR /opt/project
COPY requirements.txt constraints.txt ./
RUN pip install -r requirements.txt -c constraints.txt
COPY . .
# Writable by `airflow`: AIRFLOW_HOME (logs, auth volumes start from these directories), the data dir
# (dbt target and logs of each run) and the dbt project's own target/logs (the manifest parsed below).
RUN pip install --no-deps -e . \
 && mkdir -p /opt/airflow/logs /opt/airflow/auth /opt/data dbt_project/target dbt_project/logs \
 && chown -R airflow:0 /opt/airflow /opt/data dbt_project/target dbt_project/logs \
 && chmod 700 /opt/airflow/auth

USER airflow
RUN cd dbt_project && MLPLATFORM_DUCKDB_PATH=/tmp/parse.duckdb dbt parse --quiet --profiles-dir . --target duckdb \
 && rm -f /tmp/parse.duckdb

# 8080 api-server, 8793 worker log server, 5555 flower
EXPOSE 8080 8793 5555
CMD ["airflow", "version"]
