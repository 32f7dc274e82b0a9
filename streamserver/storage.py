"""Finished recordings to S3-compatible storage: upload, verify, then free the spool.

The recorder keeps writing to local disk first (its ≤ 1 s kill -9 promise stands); this
module moves what it finished into a bucket. A recording is *finished* when its JSON sidecar
(``{record_dir}/{call_id}/{stream_id}.json``) has a ``stop_reason``: the recorder writes that
only after closing the audio files. Each one goes up as::

    s3://{bucket}/{prefix}/{call_id}/{stream_id}.inbound.wav   (each audio file, then)
    s3://{bucket}/{prefix}/{call_id}/{stream_id}.json          (the sidecar, last)

Audio above ``multipart_threshold`` (8 MiB) goes up in parts. Every object is verified
after the upload (its size, and its ETag against the MD5 of what was sent — per part and
for the whole); the local copy is deleted only then, audio first and the sidecar last, so a
crash at any point leaves a sidecar behind and the recording is taken up again.

:class:`RecordingUploader` runs on its own thread with its own event loop: hashing, signing
and file reads never touch the media loop. :meth:`~RecordingUploader.submit` is a
non-blocking, thread-safe call into a bounded queue; the spool directory itself is the
durable queue — a re-scan at start, and every ``rescan_interval_s``, picks up whatever a
crash, a full queue or exhausted retries left behind. A recording whose process died
before it finished (no ``stop_reason``) is uploaded as *recovered* once none of its files
changed for ``orphan_after_s``.

Credentials and region come from botocore's usual chain (``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``, ``AWS_PROFILE``, ``AWS_REGION``...).
Needs the ``s3`` extra (aiobotocore).

Exceptions::

    StorageError
    ├── VerificationError   the stored object does not match what was sent
    └── UploadFailedError   all retries failed (the recording stays in the spool)
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import contextlib
import hashlib
import json
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Coroutine, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Literal, TypeVar

import msgspec

if TYPE_CHECKING:
    from types_aiobotocore_s3.client import S3Client

__all__ = [
    "RecordingUploader",
    "StorageError",
    "StorageSettings",
    "StoredObject",
    "UploadFailedError",
    "UploadResult",
    "VerificationError",
    "find_recordings",
    "parse_url",
]

log = logging.getLogger("streamserver.storage")

MiB = 1024 * 1024
_MIN_PART = 5 * MiB  # S3's smallest part (but the last)
_CONTENT_TYPES = {".wav": "audio/wav", ".flac": "audio/flac", ".json": "application/json"}
T = TypeVar("T")


class StorageError(Exception):
    """Root of this module's errors."""


class VerificationError(StorageError):
    """The object stored under ``key`` is not what was sent (``expected`` vs ``got``)."""

    def __init__(self, key: str, what: str, expected: object, got: object) -> None:
        super().__init__(f"{key}: {what} is {got!r}, expected {expected!r}")
        self.key = key
        self.what = what
        self.expected = expected
        self.got = got


class UploadFailedError(StorageError):
    """Uploading the recording of ``sidecar`` failed ``attempts`` times in a row."""

    def __init__(self, sidecar: Path, attempts: int, cause: BaseException) -> None:
        super().__init__(f"upload of {sidecar} failed {attempts} times: {cause}")
        self.sidecar = sidecar
        self.attempts = attempts
        self.cause = cause


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
        try:
            return msgspec.convert(dict(table), cls, strict=False)
        except msgspec.ValidationError as exc:
            raise ValueError(f"[storage] {exc}".replace("`$.", "`storage.")) from None

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


@dataclass(frozen=True)
class StoredObject:
    """One uploaded, verified object."""

    path: str
    key: str
    url: str
    size: int
    etag: str


@dataclass(frozen=True)
class UploadResult:
    """A recording in the bucket: its audio ``files`` by track (both tracks name the same
    object in stereo layout) and its ``sidecar``."""

    call_id: str
    stream_id: str
    files: dict[str, StoredObject]
    sidecar: StoredObject
    recovered: bool = False

    @property
    def url(self) -> str:
        """The sidecar's ``s3://`` URL: the recording's handle."""
        return self.sidecar.url

    def event_data(self) -> dict[str, Any]:
        """The ``data`` of a ``recording.ready`` event."""
        objects = {o.key: o for o in self.files.values()}
        return {
            "stream_id": self.stream_id,
            "url": self.url,
            "files": {track: o.url for track, o in self.files.items()},
            "bytes": sum(o.size for o in objects.values()) + self.sidecar.size,
            "recovered": self.recovered,
        }


# -- the spool ---------------------------------------------------------------------------------


def _read_sidecar(path: Path) -> dict[str, Any] | None:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("files"), dict):
        return None  # not a recorder sidecar
    return doc


def _finished(doc: Mapping[str, Any]) -> bool:
    return doc.get("stop_reason") is not None or bool(doc.get("recovered"))


def _audio_paths(sidecar: Path, doc: Mapping[str, Any]) -> dict[str, Path]:
    # The sidecar holds absolute paths of when it was written; the files sit next to it.
    return {
        str(track): sidecar.parent / Path(str(p)).name
        for track, p in doc["files"].items()
        if isinstance(p, str) and p
    }


def _last_change(sidecar: Path, doc: Mapping[str, Any]) -> float:
    times = []
    for p in [sidecar, *_audio_paths(sidecar, doc).values()]:
        with contextlib.suppress(OSError):
            times.append(p.stat().st_mtime)
    return max(times, default=0.0)


def find_recordings(
    record_dir: str | os.PathLike[str], *, orphan_after_s: float = 0.0, now: float | None = None
) -> Iterator[Path]:
    """Sidecars under ``record_dir`` ready for upload: finished ones, and (with
    ``orphan_after_s`` > 0) unfinished ones untouched for that long."""
    root = Path(record_dir)
    now = time.time() if now is None else now
    try:
        call_dirs = [d for d in root.iterdir() if d.is_dir()]
    except OSError:
        return
    for d in sorted(call_dirs):
        for sidecar in sorted(d.glob("*.json")):
            doc = _read_sidecar(sidecar)
            if doc is None:
                continue
            if _finished(doc):
                yield sidecar
            elif orphan_after_s > 0 and now - _last_change(sidecar, doc) >= orphan_after_s:
                yield sidecar


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1000):03d}Z"


def _mark_recovered(sidecar: Path, doc: dict[str, Any]) -> dict[str, Any]:
    """An orphan's sidecar says so before it goes up: ``recovered``, and its end time is
    the last write (the process died before writing its own)."""
    doc = dict(doc, recovered=True, end_time=_iso(_last_change(sidecar, doc)))
    tmp = sidecar.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, sidecar)
    return doc


def _absolute(path: str | os.PathLike[str]) -> Path:
    return Path(path).absolute()


def _md5(data: bytes) -> Any:
    return hashlib.md5(data, usedforsecurity=False)


def _read_md5(src: Path | BinaryIO, size: int = -1) -> tuple[bytes, Any]:
    """The next ``size`` bytes of ``src`` (a whole file for a path) and their MD5."""
    data = src.read_bytes() if isinstance(src, Path) else src.read(size)
    return data, _md5(data)


def _delete_spool(files: list[Path], sidecar: Path) -> None:
    # Audio first, the sidecar last: whatever a crash interrupts, the sidecar remains.
    for path in files:
        path.unlink(missing_ok=True)
    sidecar.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        sidecar.parent.rmdir()  # only when empty


def _unquote(etag: str) -> str:
    return etag.strip().strip('"').lower()


# -- the uploader ------------------------------------------------------------------------------


class _NotReady(Exception):
    """The sidecar is gone or the recording is not finished (nothing to do now)."""


class RecordingUploader:
    """Uploads finished recordings from the spool on a background thread.

    ``on_uploaded(result)`` and ``on_failed(sidecar, error)`` are called on the event loop
    that called :meth:`start` (e.g. to publish ``recording.ready``); they must not block.
    """

    def __init__(
        self,
        settings: StorageSettings,
        *,
        on_uploaded: Callable[[UploadResult], object] | None = None,
        on_failed: Callable[[Path, UploadFailedError], object] | None = None,
    ) -> None:
        if not settings.url:
            raise ValueError("storage.url is empty: no bucket to upload to")
        self.settings = settings
        self.bucket, self.prefix = parse_url(settings.url)
        self.record_dir = Path(settings.record_dir)
        self.on_uploaded = on_uploaded
        self.on_failed = on_failed
        self._lock = threading.Lock()
        self._pending: set[Path] = set()  # queued or in progress
        self._owner: asyncio.AbstractEventLoop | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._queue: asyncio.Queue[Path] | None = None
        self._stop: asyncio.Event | None = None
        self._client: S3Client | None = None
        # Counters
        self.uploaded = 0
        self.failed = 0
        self.rejected = 0
        self.retried = 0
        self.bytes = 0

    def stats(self) -> dict[str, int]:
        """Counters for metrics; ``pending`` is queued or uploading now."""
        with self._lock:
            pending = len(self._pending)
        return {
            "uploaded": self.uploaded,
            "failed": self.failed,
            "rejected": self.rejected,
            "retried": self.retried,
            "bytes": self.bytes,
            "pending": pending,
        }

    # -- lifecycle (owner's loop) ---------------------------------------------------------

    async def start(self) -> None:
        """Start the upload thread, then re-scan the spool (uploads left by a crash).

        Raises :class:`StorageError` if the client cannot be created (bad settings, no
        aiobotocore); an unreachable server is not an error here, only retried later.
        """
        if self._thread is not None:
            return
        self._owner = asyncio.get_running_loop()
        started: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._thread = threading.Thread(
            target=self._thread_main, args=(started,), name="storage-uploader", daemon=True
        )
        self._thread.start()
        try:
            await asyncio.wrap_future(started)
        except Exception:
            self._thread.join()
            self._thread = None
            raise
        # Before returning: whatever the spool holds is queued (a quick directory walk).
        await self.rescan()

    async def aclose(self, timeout_s: float = 10.0) -> None:
        """Let the uploads under way finish (up to ``timeout_s``), then stop. What is left
        stays in the spool for the next start."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        await self.wait_idle(timeout_s)
        stop = self._stop
        assert stop is not None
        loop.call_soon_threadsafe(stop.set)
        await asyncio.to_thread(thread.join)
        self._thread = self._loop = None

    async def wait_idle(self, timeout_s: float | None = None) -> bool:
        """Wait until nothing is queued or uploading; False after ``timeout_s``."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while self.stats()["pending"]:
            if deadline is not None and time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.02)
        return True

    def submit(self, sidecar: str | os.PathLike[str]) -> bool:
        """Queue the recording of ``sidecar`` (thread-safe, never blocks). False when the
        queue is full; the next re-scan takes it up then."""
        loop, queue = self._loop, self._queue
        if loop is None or queue is None:
            raise RuntimeError("RecordingUploader.submit() before start()")
        path = _absolute(sidecar)
        with self._lock:
            if path in self._pending:
                return True
            if len(self._pending) >= self.settings.queue_size:
                self.rejected += 1
                return False
            self._pending.add(path)
        loop.call_soon_threadsafe(queue.put_nowait, path)
        return True

    async def upload(self, sidecar: str | os.PathLike[str]) -> UploadResult | None:
        """Upload one recording now (on the upload thread) and return where it went; None
        if it is not finished. Raises :class:`UploadFailedError` after all retries."""
        return await self._call(self._process_with_retries(_absolute(sidecar)))

    async def rescan(self) -> int:
        """Queue every recording the spool holds that is due; how many were queued."""
        return await self._call(self._rescan())

    async def verify(self, obj: StoredObject) -> None:
        """Check that the bucket still holds ``obj`` as uploaded (size and ETag); raises
        :class:`VerificationError` if not."""
        await self._call(self._verify(obj.key, obj.size, obj.etag))

    async def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        if self._loop is None:
            coro.close()
            raise RuntimeError("RecordingUploader used before start()")
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self._loop))

    def _notify(self, fn: Callable[..., object] | None, *args: Any) -> None:
        if fn is not None and self._owner is not None and not self._owner.is_closed():
            with contextlib.suppress(RuntimeError):  # the owner's loop closed meanwhile
                self._owner.call_soon_threadsafe(fn, *args)

    # -- the upload thread ----------------------------------------------------------------

    def _thread_main(self, started: concurrent.futures.Future[None]) -> None:
        try:
            import uvloop

            loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
        except ImportError:  # pragma: no cover - uvloop is a dependency except on Windows
            loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(self._main(started))
        finally:
            loop.close()

    async def _main(self, started: concurrent.futures.Future[None]) -> None:
        try:
            from aiobotocore.config import AioConfig
            from aiobotocore.session import get_session
        except ImportError as exc:
            started.set_exception(
                StorageError(f"[storage] needs aiobotocore: pip install 'streamserver[s3]' ({exc})")
            )
            return
        s = self.settings
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
        try:
            async with session.create_client(
                "s3", region_name=region, endpoint_url=s.endpoint_url or None, config=config
            ) as client:
                self._client = client
                self._queue = asyncio.Queue()
                self._stop = asyncio.Event()
                self._loop = asyncio.get_running_loop()
                started.set_result(None)
                await self._serve()
        except Exception as exc:
            if not started.done():
                started.set_exception(StorageError(f"cannot create the S3 client: {exc}"))
                return
            raise
        finally:
            self._client = None

    async def _serve(self) -> None:
        assert self._stop is not None
        tasks = [
            asyncio.create_task(self._worker(), name=f"storage-upload-{i}")
            for i in range(self.settings.concurrency)
        ]
        tasks.append(asyncio.create_task(self._rescan_loop(), name="storage-rescan"))
        try:
            await self._stop.wait()
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _rescan_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.rescan_interval_s)  # start() did the first
            try:
                n = await self._rescan()
                if n:
                    log.info("storage: %d recording(s) from the spool queued for upload", n)
            except Exception:  # a task boundary: the next round tries again
                log.exception("storage: re-scan of %s failed", self.record_dir)

    async def _rescan(self) -> int:
        found = find_recordings(self.record_dir, orphan_after_s=self.settings.orphan_after_s)
        return sum(1 for p in found if _absolute(p) not in self._pending and self.submit(p))

    async def _worker(self) -> None:
        queue = self._queue
        assert queue is not None
        while True:
            path = await queue.get()
            try:
                await self._process_with_retries(path)
            except UploadFailedError:
                pass  # counted and reported; the re-scan takes it up again
            except Exception:  # a task boundary: one bad recording must not stop the worker
                log.exception("storage: unexpected error uploading %s", path)
            finally:
                with self._lock:
                    self._pending.discard(path)

    async def _process_with_retries(self, sidecar: Path) -> UploadResult | None:
        s = self.settings
        delay = s.backoff_s
        for attempt in range(1, s.retries + 1):
            try:
                result = await self._process(sidecar)
            except _NotReady:
                return None
            except Exception as exc:
                if attempt == s.retries:
                    self.failed += 1
                    err = UploadFailedError(sidecar, attempt, exc)
                    log.error("storage: %s; kept in the spool for the next re-scan", err)
                    self._notify(self.on_failed, sidecar, err)
                    raise err from exc
                self.retried += 1
                # The first failure says why; the retries after it only at debug level.
                log.log(
                    logging.WARNING if attempt == 1 else logging.DEBUG,
                    "storage: upload of %s failed (attempt %d of %d): %s; retrying in %.1f s",
                    sidecar.name,
                    attempt,
                    s.retries,
                    exc,
                    delay,
                )
                await asyncio.sleep(delay * random.uniform(0.8, 1.2))
                delay = min(delay * 2, s.max_backoff_s)
            else:
                self.uploaded += 1
                self._notify(self.on_uploaded, result)
                return result
        raise AssertionError("unreachable")  # pragma: no cover

    def _key(self, path: Path) -> str:
        parts = [self.prefix, path.parent.name, path.name]
        return "/".join(p for p in parts if p)

    async def _process(self, sidecar: Path) -> UploadResult:
        doc = _read_sidecar(sidecar)
        if doc is None:
            raise _NotReady
        recovered = False
        if not _finished(doc):
            orphan_after = self.settings.orphan_after_s
            if not orphan_after or time.time() - _last_change(sidecar, doc) < orphan_after:
                raise _NotReady
            doc = _mark_recovered(sidecar, doc)
            recovered = True
        recovered = recovered or bool(doc.get("recovered"))
        by_track = _audio_paths(sidecar, doc)
        stored: dict[Path, StoredObject] = {}
        for path in dict.fromkeys(by_track.values()):
            stored[path] = await self._put_file(path)
        side = await self._put_file(sidecar)
        if self.settings.delete_after_upload:
            await asyncio.to_thread(_delete_spool, list(stored), sidecar)
        result = UploadResult(
            call_id=str(doc.get("call_id") or sidecar.parent.name),
            stream_id=str(doc.get("stream_id") or sidecar.stem),
            files={track: stored[p] for track, p in by_track.items()},
            sidecar=side,
            recovered=recovered,
        )
        log.info(
            "storage: uploaded %s (%d file(s), %d bytes)",
            result.url,
            len(stored) + 1,
            result.event_data()["bytes"],
        )
        return result

    async def _put_file(self, path: Path) -> StoredObject:
        client = self._client
        assert client is not None
        key = self._key(path)
        try:
            size = (await asyncio.to_thread(path.stat)).st_size
        except FileNotFoundError:
            # Deleted after an earlier upload whose sidecar outlived a crash: the object
            # must be there.
            head = await client.head_object(Bucket=self.bucket, Key=key)
            return self._stored(path, key, head["ContentLength"], head["ETag"])
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
        await self._verify(key, size, etag)
        self.bytes += size
        return self._stored(path, key, size, etag)

    async def _verify(self, key: str, size: int, etag: str) -> None:
        assert self._client is not None
        head = await self._client.head_object(Bucket=self.bucket, Key=key)
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
        client = self._client
        assert client is not None
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
