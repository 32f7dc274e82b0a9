"""RecordingUploader: finished recordings from the spool into the bucket, on its own thread.

Each recording goes up as its audio files, then its sidecar; the local copy is deleted only
once every object is verified, audio first and the sidecar last, so a crash at any point
leaves a sidecar behind and the recording is taken up again.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from .errors import StorageError, UploadFailedError
from .s3 import Bucket, StoredObject, create_client
from .settings import StorageSettings, parse_url
from .spool import (
    audio_paths,
    claim,
    delete_spool,
    find_recordings,
    is_finished,
    last_change,
    mark_recovered,
    read_sidecar,
)

__all__ = ["RecordingUploader", "UploadResult"]

log = logging.getLogger("streamserver.storage")

T = TypeVar("T")


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


def _absolute(path: str | os.PathLike[str]) -> Path:
    return Path(path).absolute()


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
        self._bucket: Bucket | None = None
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
            client = create_client(self.settings)
        except StorageError as exc:
            started.set_exception(exc)
            return
        try:
            async with client as s3:
                self._bucket = Bucket(s3, self.settings)
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
            self._bucket = None

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

    async def _process(self, sidecar: Path) -> UploadResult:
        with claim(sidecar) as mine:
            if not mine:  # another worker of this host is uploading it
                raise _NotReady
            return await self._process_claimed(sidecar)

    async def _process_claimed(self, sidecar: Path) -> UploadResult:
        doc = read_sidecar(sidecar)
        if doc is None:
            raise _NotReady
        recovered = False
        if not is_finished(doc):
            orphan_after = self.settings.orphan_after_s
            if not orphan_after or time.time() - last_change(sidecar, doc) < orphan_after:
                raise _NotReady
            doc = mark_recovered(sidecar, doc)
            recovered = True
        recovered = recovered or bool(doc.get("recovered"))
        by_track = audio_paths(sidecar, doc)
        stored: dict[Path, StoredObject] = {}
        for path in dict.fromkeys(by_track.values()):
            stored[path] = await self._put_file(path)
        side = await self._put_file(sidecar)
        if self.settings.delete_after_upload:
            await asyncio.to_thread(delete_spool, list(stored), sidecar)
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
        bucket = self._bucket
        assert bucket is not None
        try:
            size = (await asyncio.to_thread(path.stat)).st_size
        except FileNotFoundError:
            # Deleted after an earlier upload whose sidecar outlived a crash: the object
            # must be there.
            return await bucket.stored(path)
        stored = await bucket.put(path, size)
        self.bytes += size
        return stored

    async def _verify(self, key: str, size: int, etag: str) -> None:
        assert self._bucket is not None
        await self._bucket.verify(key, size, etag)
