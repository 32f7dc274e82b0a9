"""The ``[storage]`` table and its ``s3://bucket/prefix`` URL."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import msgspec

from ..config import struct_from_table

__all__ = ["MiB", "StorageSettings", "parse_url"]

MiB = 1024 * 1024
_MIN_PART = 5 * MiB  # S3's smallest part (but the last)


def parse_url(url: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` -> ``("bucket", "some/prefix")``."""
    if not url.startswith("s3://"):
        raise ValueError(f"url {url!r} must look like s3://bucket/prefix")
    bucket, _, prefix = url[5:].partition("/")
    if not 3 <= len(bucket) <= 63 or "/" in bucket:
        raise ValueError(f"url {url!r}: bucket name must be 3 to 63 characters")
    return bucket, prefix.strip("/")


class StorageSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The ``[storage]`` table: ``url = "s3://bucket/prefix"`` (empty: no uploads, the
    default), ``endpoint_url`` for S3-compatible servers (SeaweedFS, MinIO, ...), and
    ``record_dir``, the recorder's spool. Sizes in bytes, times in seconds."""

    url: str = ""
    endpoint_url: str = ""
    #: Default: botocore's (AWS_REGION, AWS_DEFAULT_REGION, config file), else us-east-1.
    region: str = ""
    #: "path" (bucket in the path: what S3-compatible servers expect) or "virtual"; the
    #: default is path-style with an endpoint_url, botocore's choice without.
    addressing_style: Literal["", "path", "virtual"] = ""
    record_dir: str = "recordings"
    # Limits
    multipart_threshold: int = 8 * MiB
    part_size: int = 8 * MiB
    concurrency: int = 2
    queue_size: int = 10_000
    #: Compare ETags with the MD5 of the data (turn off only for stores whose ETag is not
    #: an MD5, e.g. SSE-KMS on AWS; the size is always checked).
    verify_etag: bool = True
    delete_after_upload: bool = True
    # Retries
    retries: int = 8
    backoff_s: float = 1.0
    max_backoff_s: float = 60.0
    # Timeouts
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 60.0
    rescan_interval_s: float = 60.0
    #: Upload an unfinished recording (its process died) once untouched this long; 0 = never.
    orphan_after_s: float = 900.0

    @classmethod
    def from_table(cls, table: Mapping[str, Any]) -> StorageSettings:
        """Build from a raw ``[storage]`` table; ``ValueError`` names the wrong key."""
        return struct_from_table(cls, table, "storage")

    def __post_init__(self) -> None:
        if self.url:
            parse_url(self.url)
        if self.part_size < _MIN_PART:
            raise ValueError(f"part_size must be at least {_MIN_PART} (5 MiB, S3's minimum)")
        if self.multipart_threshold < 1 or self.concurrency < 1 or self.queue_size < 1:
            raise ValueError("multipart_threshold, concurrency and queue_size must be >= 1")
        if self.retries < 1 or self.backoff_s < 0 or self.max_backoff_s < self.backoff_s:
            raise ValueError("retries must be >= 1 and 0 <= backoff_s <= max_backoff_s")
        if min(self.connect_timeout_s, self.read_timeout_s, self.rescan_interval_s) <= 0:
            raise ValueError("connect_timeout_s, read_timeout_s, rescan_interval_s must be > 0")

    @property
    def bucket(self) -> str:
        return parse_url(self.url)[0]

    @property
    def prefix(self) -> str:
        return parse_url(self.url)[1]
