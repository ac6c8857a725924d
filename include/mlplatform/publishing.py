"""Atomic, idempotent publication of a run-date partition.

Protocol (what consumers rely on):
1. Data parts are written first, each named after its content hash: part-00000-<sha10>.parquet.
2. ``_manifest.json`` is written last, in one PUT: it lists every part with its row count and sha256, the
   model version and the upstream checks. A partition without a manifest is not published; a consumer
   reads exactly the files the manifest lists, so it never sees a half-written partition.
3. Only after the new manifest is in place are parts that it does not list deleted.
If publication fails midway, the previous manifest and the parts it lists are untouched and stay valid.
A rerun with identical content writes identical keys and bytes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import date
from typing import TYPE_CHECKING

from mlplatform import constants as C
from mlplatform.errors import PublishError
from mlplatform.storage import ObjectStore, frame_to_parquet, sha256_hex

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

MANIFEST_SCHEMA_VERSION = 1


def _stamp(chunk: pd.DataFrame, stamp: dict) -> pd.DataFrame:
    """Add the lineage columns to every row (use case, run date, model version), lineage columns first.

    Built column by column (no copy of the chunk's own columns): the chunk is only read.
    """
    import pandas as pd

    columns = {column: pd.Series([value] * len(chunk), index=chunk.index, dtype=object if isinstance(value, str)
                                 else None) for column, value in stamp.items()}
    columns.update({c: chunk[c] for c in chunk.columns if c not in stamp})
    return pd.DataFrame(columns, index=chunk.index)


def _write_part(store: ObjectStore, prefix: str, index: int, chunk: pd.DataFrame, stamp: dict) -> dict:
    data = frame_to_parquet(_stamp(chunk, stamp))
    digest = sha256_hex(data)
    key = f"{prefix}/part-{index:05d}-{digest[:10]}.parquet"
    store.put_bytes(key, data)
    return {"key": key, "rows": len(chunk), "bytes": len(data), "sha256": digest}


def write_parts(store: ObjectStore, prefix: str, chunks: Iterable[pd.DataFrame], stamp: dict) -> list[dict]:
    """Write each chunk as its own Parquet object; memory holds at most two chunks at a time.

    Encoding and uploading part i runs on one background thread while the producer (scoring) makes
    chunk i + 1: Parquet encoding, hashing and the upload release the GIL, so on two cores the I/O
    hides behind the model's predictions. Parts keep their order and names; an error in either the
    producer or an upload stops the loop and propagates (no manifest is written then).
    """
    from concurrent.futures import ThreadPoolExecutor

    files: list[dict] = []
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="publish") as pool:
        pending, future = None, None
        try:
            for index, chunk in enumerate(chunks):
                future = pool.submit(_write_part, store, prefix, index, chunk, stamp)
                if pending is not None:
                    files.append(pending.result())
                pending = future
            if pending is not None:
                files.append(pending.result())
        except BaseException:
            if future is not None:
                future.cancel()  # a failed upload stops the queue: no more writes to a store that failed
            raise
    return files


def publish_partition(store: ObjectStore, prefix: str, chunks: Iterable[pd.DataFrame], stamp: dict,
                      manifest_fields: dict, finalize: Callable[[], dict] | None = None) -> dict:
    """Publish ``chunks`` under ``prefix`` atomically; return the manifest.

    ``finalize`` returns manifest fields known only once every chunk is written (say, which series the
    partition holds); it may raise to refuse the publication, and then no manifest is written: the
    earlier partition of the date, if any, stays exactly as it was.
    """
    files = write_parts(store, prefix, chunks, stamp)
    if not files or sum(f["rows"] for f in files) == 0:
        raise PublishError(f"nothing to publish under {store.uri(prefix)}: no rows; the previous "
                           "publication (if any) is left as it was")
    try:
        late = finalize() if finalize else {}
    except Exception:
        _discard_attempt(store, prefix, files)
        raise
    manifest = {
        "manifest_version": MANIFEST_SCHEMA_VERSION,
        **stamp,
        **manifest_fields,
        **late,
        "row_count": sum(f["rows"] for f in files),
        "files": files,
        "partition_uri": store.uri(prefix + "/"),
    }
    store.put_json(f"{prefix}/{C.MANIFEST_NAME}", manifest)
    _delete_unlisted(store, prefix, files)
    return manifest


def _discard_attempt(store: ObjectStore, prefix: str, files: list[dict]) -> None:
    """Remove the parts of a refused publication that the standing manifest (if any) does not list."""
    key = f"{prefix}/{C.MANIFEST_NAME}"
    standing = {f["key"] for f in store.get_json(key)["files"]} if store.exists(key) else set()
    store.delete_keys([f["key"] for f in files if f["key"] not in standing])


def _delete_unlisted(store: ObjectStore, prefix: str, files: list[dict]) -> None:
    keep = {f["key"] for f in files} | {f"{prefix}/{C.MANIFEST_NAME}"}
    stale = [k for k in store.list_keys(prefix + "/") if k not in keep]
    store.delete_keys(stale)


def read_manifest(store: ObjectStore, prefix: str) -> dict:
    return store.get_json(f"{prefix}/{C.MANIFEST_NAME}")


def read_published(store: ObjectStore, prefix: str, verify: bool = True) -> pd.DataFrame:
    """What a consumer does: read exactly the manifest's files, checking each checksum."""
    import io

    import pandas as pd

    manifest = read_manifest(store, prefix)
    frames = []
    for entry in manifest["files"]:
        data = store.get_bytes(entry["key"])
        if verify and sha256_hex(data) != entry["sha256"]:
            raise PublishError(f"{store.uri(entry['key'])}: checksum does not match the manifest")
        frames.append(pd.read_parquet(io.BytesIO(data)))
    return pd.concat(frames, ignore_index=True)


def published_dates(store: ObjectStore, root_prefix: str) -> list[date]:
    """Run dates with a complete (manifested) partition under ``root_prefix``."""
    out = []
    for key in store.list_keys(root_prefix):
        if key.endswith("/" + C.MANIFEST_NAME) and "run_date=" in key:
            out.append(date.fromisoformat(key.split("run_date=")[1].split("/")[0]))
    return sorted(out)
