#!/usr/bin/env bash
# First-start initialisation of the Postgres container (mounted into /docker-entrypoint-initdb.d; the
# official image runs it once, on an empty data directory, as the superuser before the server listens on
# TCP). It creates:
#   - role AIRFLOW_DB_USER (default airflow), owner of database AIRFLOW_DB_NAME (default airflow): the
#     Airflow metadata database and the Celery result backend; no superuser, no CREATEDB/CREATEROLE.
#   - role MLPLATFORM_PG_USER (default mlplatform) for the warehouse database MLPLATFORM_PG_DBNAME
#     (default warehouse): least privilege: CONNECT/TEMPORARY/CREATE (schemas) on that database only, owner
#     of the schemas `raw` (landed source data) and `analytics` (dbt target schema); not the database
#     owner (it cannot drop the database), no superuser, no CREATEDB/CREATEROLE/REPLICATION/BYPASSRLS, and
#     no access to the Airflow metadata database.
# Passwords are passed as psql variables (never interpolated by the shell into SQL text). Changing a
# password in .env later does not re-run this script: use ALTER ROLE ... PASSWORD (deploy/README.md).
set -euo pipefail

: "${AIRFLOW_DB_PASSWORD:?AIRFLOW_DB_PASSWORD is not set}"
: "${MLPLATFORM_PG_PASSWORD:?MLPLATFORM_PG_PASSWORD is not set}"
airflow_user="${AIRFLOW_DB_USER:-airflow}"
airflow_db="${AIRFLOW_DB_NAME:-airflow}"
warehouse_user="${MLPLATFORM_PG_USER:-mlplatform}"
warehouse_db="${MLPLATFORM_PG_DBNAME:-warehouse}"

psql -v ON_ERROR_STOP=1 --no-psqlrc --username "${POSTGRES_USER:-postgres}" --dbname "${POSTGRES_DB:-postgres}" \
  -v airflow_user="$airflow_user" -v airflow_db="$airflow_db" -v airflow_password="$AIRFLOW_DB_PASSWORD" \
  -v warehouse_user="$warehouse_user" -v warehouse_db="$warehouse_db" \
  -v warehouse_password="$MLPLATFORM_PG_PASSWORD" <<'SQL'
\set QUIET on

-- Airflow metadata database (and Celery result backend).
CREATE ROLE :"airflow_user" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS
  PASSWORD :'airflow_password';
CREATE DATABASE :"airflow_db" OWNER :"airflow_user";
REVOKE ALL ON DATABASE :"airflow_db" FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE :"airflow_db" TO :"airflow_user";

-- Warehouse database: owned by the superuser; the pipeline role gets only what dbt and the landing need.
CREATE ROLE :"warehouse_user" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS NOINHERIT
  PASSWORD :'warehouse_password';
CREATE DATABASE :"warehouse_db";
REVOKE ALL ON DATABASE :"warehouse_db" FROM PUBLIC;
-- CREATE: dbt and the landing step run `create schema if not exists`, which checks this privilege.
GRANT CONNECT, TEMPORARY, CREATE ON DATABASE :"warehouse_db" TO :"warehouse_user";

\connect :"warehouse_db"
REVOKE ALL ON SCHEMA public FROM PUBLIC;
CREATE SCHEMA raw AUTHORIZATION :"warehouse_user";
CREATE SCHEMA analytics AUTHORIZATION :"warehouse_user";
SQL

echo "mlplatform: created databases ${airflow_db} (role ${airflow_user}) and ${warehouse_db} (role ${warehouse_user})"
