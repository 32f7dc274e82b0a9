"""S3 itself: the client, and a bucket whose every put is verified.

Audio above ``multipart_threshold`` goes up in parts. Every object is verified after the
upload: its size, and its ETag against the MD5 of what was sent (per part and for the
whole). Needs the ``s3`` extra (aiobotocore).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from .errors import StorageError, VerificationError
from .settings import StorageSettings, parse_url

if TYPE_CHECKING:
    from types_aiobotocore_s3.client import S3Client

__all__ = ["Bucket", "StoredObject", "create_client"]

_CONTENT_TYPES = {".wav": "audio/wav", ".flac": "audio/flac", ".json": "application/json"}


@dataclass(frozen=True)
class StoredObject:
    """One uploaded, verified object."""

    path: str
    key: str
    url: str
    size: int
    etag: str


def _md5(data: bytes) -> Any:
    return hashlib.md5(data, usedforsecurity=False)


def _read_md5(src: Path | BinaryIO, size: int = -1) -> tuple[bytes, Any]:
    """The next ``size`` bytes of ``src`` (a whole file for a path) and their MD5."""
    data = src.read_bytes() if isinstance(src, Path) else src.read(size)
    return data, _md5(data)


def _unquote(etag: str) -> str:
    return etag.strip().strip('"').lower()


def create_client(settings: StorageSettings) -> AbstractAsyncContextManager[S3Client]:
    """aiobotocore's S3 client for ``settings`` (entering the context creates it).

    Raises :class:`StorageError` without aiobotocore (the ``s3`` extra).
    """
    try:
        from aiobotocore.config import AioConfig
        from aiobotocore.session import get_session
    except ImportError as exc:
        raise StorageError(
            f"[storage] needs aiobotocore: pip install 'streamserver[s3]' ({exc})"
        ) from None
    s = settings
    style = s.addressing_style or ("path" if s.endpoint_url else "auto")
    session = get_session()
    region = s.region or session.get_config_variable("region") or "us-east-1"
    config = AioConfig(
        connect_timeout=s.connect_timeout_s,
        read_timeout=s.read_timeout_s,
        # One quick retry inside botocore; the backoff that outlasts an outage is ours.
        retries={"max_attempts": 2, "mode": "standard"},
        s3={"addressing_style": style},
        max_pool_connections=max(10, s.concurrency * 2),
    )
    return session.create_client(
        "s3", region_name=region, endpoint_url=s.endpoint_url or None, config=config
    )


class Bucket:
    """The bucket and prefix of ``settings.url``, through one S3 client."""

    def __init__(self, client: S3Client, settings: StorageSettings) -> None:
        self.client = client
        self.settings = settings
        self.bucket, self.prefix = parse_url(settings.url)

    def key(self, path: Path) -> str:
        """The key of a spool file: ``{prefix}/{call_id}/{file name}``."""
        parts = [self.prefix, path.parent.name, path.name]
        return "/".join(p for p in parts if p)

    async def stored(self, path: Path) -> StoredObject:
        """The object ``path`` went up as earlier, as the bucket holds it now."""
        key = self.key(path)
        head = await self.client.head_object(Bucket=self.bucket, Key=key)
        return self._stored(path, key, head["ContentLength"], head["ETag"])

    async def put(self, path: Path, size: int) -> StoredObject:
        """Upload the ``size`` bytes of ``path`` (in parts above ``multipart_threshold``),
        then verify the object; raises :class:`VerificationError` if it does not match."""
        client = self.client
        key = self.key(path)
        content_type = _CONTENT_TYPES.get(path.suffix, "application/octet-stream")
        if size > self.settings.multipart_threshold:
            etag = await self._put_multipart(path, key, size, content_type)
        else:
            data, md5 = await asyncio.to_thread(_read_md5, path)
            resp = await client.put_object(
                Bucket=self.bucket,
                Key=key,
                Body=data,
                ContentMD5=base64.b64encode(md5.digest()).decode(),
                ContentType=content_type,
            )
            etag = md5.hexdigest()
            self._check_etag(key, "ETag", etag, resp["ETag"])
        await self.verify(key, size, etag)
        return self._stored(path, key, size, etag)

    async def verify(self, key: str, size: int, etag: str) -> None:
        """Check the object under ``key`` has ``size`` and ``etag``; raises
        :class:`VerificationError` if not."""
        head = await self.client.head_object(Bucket=self.bucket, Key=key)
        if head["ContentLength"] != size:
            raise VerificationError(key, "size", size, head["ContentLength"])
        self._check_etag(key, "ETag", etag, head["ETag"])

    def _stored(self, path: Path, key: str, size: int, etag: str) -> StoredObject:
        return StoredObject(
            path=str(path), key=key, url=f"s3://{self.bucket}/{key}", size=size, etag=etag
        )

    def _check_etag(self, key: str, what: str, expected: str, got: str) -> None:
        if self.settings.verify_etag and _unquote(got) != expected:
            raise VerificationError(key, what, expected, _unquote(got))

    async def _put_multipart(self, path: Path, key: str, size: int, content_type: str) -> str:
        client = self.client
        part_size = self.settings.part_size
        created = await client.create_multipart_upload(
            Bucket=self.bucket, Key=key, ContentType=content_type
        )
        upload_id = created["UploadId"]
        digests: list[bytes] = []
        parts: list[Any] = []
        try:
            with path.open("rb") as f:  # reads and hashes run on a worker thread
                while True:
                    chunk, md5 = await asyncio.to_thread(_read_md5, f, part_size)
                    if not chunk:
                        break
                    number = len(parts) + 1
                    resp = await client.upload_part(
                        Bucket=self.bucket,
                        Key=key,
                        UploadId=upload_id,
                        PartNumber=number,
                        Body=chunk,
                        ContentMD5=base64.b64encode(md5.digest()).decode(),
                    )
                    self._check_etag(key, f"part {number} ETag", md5.hexdigest(), resp["ETag"])
                    digests.append(md5.digest())
                    parts.append({"ETag": resp["ETag"], "PartNumber": number})
            done = await client.complete_multipart_upload(
                Bucket=self.bucket,
                Key=key,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
            )
        except BaseException:
            with contextlib.suppress(Exception):
                await client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
            raise
        # S3's multipart ETag: MD5 of the parts' MD5s, a dash, the number of parts.
        etag = f"{_md5(b''.join(digests)).hexdigest()}-{len(parts)}"
        self._check_etag(key, "multipart ETag", etag, done.get("ETag", ""))
        return etag
