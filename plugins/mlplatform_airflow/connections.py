"""Object storage from the Airflow connection named by MLPLATFORM_S3_CONN_ID (default mlplatform_s3)."""

from __future__ import annotations

from mlplatform.settings import Settings
from mlplatform.storage import ObjectStore


def object_store(settings: Settings) -> ObjectStore:
    """An ObjectStore whose boto3 client comes from the amazon provider's S3Hook (credentials never logged)."""
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    client = S3Hook(aws_conn_id=settings.s3_conn_id).get_conn()
    return ObjectStore(client, settings.bucket)
