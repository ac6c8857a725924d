"""Object storage behind one small interface.

Stage code talks to an ``ObjectStore`` and a ``Layout``; it never spells out S3 keys. The store wraps a
boto3 S3 client, which the caller builds from an Airflow connection (see ``mlplatform_airflow``) or,
outside Airflow, from the same connection's JSON in the environment (``client_from_connection_uri``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any

from mlplatform import constants as C
from mlplatform.errors import ConfigError, PlatformError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd


# An unreachable endpoint should fail a task in seconds, not hang it (botocore's defaults are 60 s each).
CONNECT_TIMEOUT_S = 5
READ_TIMEOUT_S = 60


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def dumps_json(obj: Any) -> bytes:
    """Canonical JSON (sorted keys, fixed indent): identical content gives identical bytes."""
    return (json.dumps(obj, sort_keys=True, indent=2, default=str) + "\n").encode()


class ObjectStore:
    """A bucket on an S3-compatible server. Keys are relative to the bucket.

    Connection failures surface as PlatformError naming the endpoint, bucket and key, so a task's error
    says which storage was unreachable (credentials are never part of the message).
    """

    def __init__(self, client: Any, bucket: str) -> None:
        self.client = _Guarded(client, bucket)
        self.bucket = bucket

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def put_bytes(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> str:
        self.client.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type)
        return self.uri(key)

    def put_json(self, key: str, obj: Any) -> str:
        return self.put_bytes(key, dumps_json(obj), "application/json")

    def get_bytes(self, key: str) -> bytes:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except self.client.exceptions.NoSuchKey:
            raise PlatformError(f"object {self.uri(key)} does not exist") from None

    def get_json(self, key: str) -> Any:
        return json.loads(self.get_bytes(key))

    def exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=key)
        except self.client.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True

    def list_keys(self, prefix: str) -> list[str]:
        return sorted(obj["Key"] for obj in self._iter_objects(prefix))

    def _iter_objects(self, prefix: str) -> Iterator[dict]:
        kwargs = {"Bucket": self.bucket, "Prefix": prefix}
        while True:
            page = self.client.list_objects_v2(**kwargs)
            yield from page.get("Contents", [])
            if not page.get("IsTruncated"):
                return
            kwargs["ContinuationToken"] = page["NextContinuationToken"]

    def delete_keys(self, keys: list[str]) -> None:
        for start in range(0, len(keys), 1000):
            batch = [{"Key": k} for k in keys[start : start + 1000]]
            if batch:
                self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})

    def put_parquet(self, key: str, frame: pd.DataFrame) -> dict:
        """Write a frame as one Parquet object; return its key, rows, bytes and sha256."""
        data = frame_to_parquet(frame)
        self.put_bytes(key, data)
        return {"key": key, "rows": len(frame), "bytes": len(data), "sha256": sha256_hex(data)}

    def get_parquet(self, key: str) -> pd.DataFrame:
        import io

        import pandas as pd

        return pd.read_parquet(io.BytesIO(self.get_bytes(key)))

    def ensure_bucket(self) -> None:
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except self.client.exceptions.ClientError:
            self.client.create_bucket(Bucket=self.bucket)


class _Guarded:
    """Proxy of a boto3 client that turns connection errors into PlatformError with context."""

    def __init__(self, client: Any, bucket: str) -> None:
        self._client = client
        self._bucket = bucket

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if not callable(attr) or name == "exceptions":
            return attr
        return self._wrap(name, attr)

    def _wrap(self, name: str, method: Any) -> Any:
        from botocore.exceptions import ConnectionError as BotoConnectionError

        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                return method(*args, **kwargs)
            except BotoConnectionError as exc:
                endpoint = self._client.meta.endpoint_url
                where = f"s3://{kwargs.get('Bucket', self._bucket)}/{kwargs.get('Key', kwargs.get('Prefix', ''))}"
                raise PlatformError(f"object storage at {endpoint} is unreachable ({name} {where}): {exc}") from exc

        return call


def frame_to_parquet(frame: pd.DataFrame) -> bytes:
    """Deterministic Parquet bytes (same frame, same library versions -> same bytes)."""
    import io

    buf = io.BytesIO()
    frame.to_parquet(buf, index=False, engine="pyarrow", compression="zstd")
    return buf.getvalue()


@dataclass(frozen=True)
class Layout:
    """Where each artefact of a use case lives in the bucket (see README, 'Storage layout')."""

    use_case: str

    def _fmt(self, template: str, run_date: date | None = None) -> str:
        return template.format(use_case=self.use_case, run_date=run_date.isoformat() if run_date else "")

    def features(self, run_date: date) -> str:
        return self._fmt(C.FEATURES_PREFIX, run_date)

    def validation(self, run_date: date) -> str:
        return self._fmt(C.VALIDATION_PREFIX, run_date)

    def monitoring(self, run_date: date) -> str:
        return self._fmt(C.MONITORING_PREFIX, run_date)

    def forecasts(self, run_date: date) -> str:
        return self._fmt(C.FORECASTS_PREFIX, run_date)

    def forecasts_root(self) -> str:
        return f"{self.use_case}/forecasts/"

    def models(self) -> str:
        return self._fmt(C.MODELS_PREFIX)

    def model(self, version: str) -> str:
        return f"{self.models()}/{version}"

    def registry(self) -> str:
        return self._fmt(C.REGISTRY_PREFIX)

    def alias(self, name: str) -> str:
        return f"{self.registry()}/aliases/{name}.json"

    def audit(self) -> str:
        return f"{self.registry()}/audit/"

    def accuracy(self, run_date: date) -> str:
        return self._fmt(C.ACCURACY_PREFIX, run_date)

    def lifecycle(self, run_date: date) -> str:
        return self._fmt(C.LIFECYCLE_PREFIX, run_date)

    def lineage(self, run_date: date) -> str:
        return self._fmt(C.LINEAGE_PREFIX, run_date)

    def alerts(self) -> str:
        return self._fmt(C.ALERTS_PREFIX)

    def rollup(self, name: str, run_date: date) -> str:
        return C.ROLLUPS_PREFIX.format(use_case=self.use_case, rollup=name, run_date=run_date.isoformat())

    def rollups_root(self, name: str) -> str:
        return f"{self.use_case}/rollups/{name}/"


def parse_connection_uri(value: str) -> dict:
    """Parse an Airflow AWS connection given as JSON (the AIRFLOW_CONN_<ID> format we use)."""
    try:
        conn = json.loads(value)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"S3 connection is not JSON ({exc.msg}); expected the AIRFLOW_CONN_ JSON form") from None
    extra = conn.get("extra") or {}
    if isinstance(extra, str):
        extra = json.loads(extra)
    return {
        "aws_access_key_id": conn.get("login"),
        "aws_secret_access_key": conn.get("password"),
        "endpoint_url": extra.get("endpoint_url"),
        "region_name": extra.get("region_name", "us-east-1"),
    }


def s3_client(endpoint_url: str | None, aws_access_key_id: str | None, aws_secret_access_key: str | None,
              region_name: str = "us-east-1") -> Any:
    """A boto3 S3 client with path-style addressing (what SeaweedFS and most on-prem S3 servers need)."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        aws_access_key_id=aws_access_key_id,
        aws_secret_access_key=aws_secret_access_key,
        region_name=region_name,
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 5, "mode": "standard"},
                      connect_timeout=CONNECT_TIMEOUT_S, read_timeout=READ_TIMEOUT_S),
    )


def client_from_connection_uri(value: str) -> Any:
    return s3_client(**parse_connection_uri(value))
