"""Recordings: list, read, delete and download (``Recording/``). All retry-safe."""

from __future__ import annotations

from datetime import datetime
from os import PathLike
from pathlib import Path

from . import _request as r
from . import _validate as v
from ._ops import AsyncResource, SyncResource, aop, apager, dest_path, op, pager
from ._request import Request
from .models import Page, Recording

__all__ = ["AsyncRecordings", "Recordings"]

TimeFilter = str | datetime | None
DEFAULT_CHUNK_BYTES = 64 * 1024


def _list(
    *,
    call_uuid: str | None = None,
    from_number: str | None = None,
    to_number: str | None = None,
    conference_name: str | None = None,
    conference_uuid: str | None = None,
    mpc_name: str | None = None,
    mpc_uuid: str | None = None,
    add_time: TimeFilter = None,
    add_time__gt: TimeFilter = None,
    add_time__gte: TimeFilter = None,
    add_time__lt: TimeFilter = None,
    add_time__lte: TimeFilter = None,
    recording_storage_duration: int | None = None,
    recording_storage_duration__gt: int | None = None,
    recording_storage_duration__gte: int | None = None,
    recording_storage_duration__lt: int | None = None,
    recording_storage_duration__lte: int | None = None,
    limit: int | None = None,
    offset: int | None = None,
) -> Request[Page[Recording]]:
    """Recordings, newest first, filtered (``add_time`` in UTC; storage duration in days)."""
    params: dict[str, object] = {
        "call_uuid": call_uuid,
        "from_number": from_number,
        "to_number": to_number,
        "conference_name": conference_name,
        "conference_uuid": conference_uuid,
        "mpc_name": mpc_name,
        "mpc_uuid": mpc_uuid,
        **r.time_filters(
            "add_time",
            {
                "": add_time,
                "__gt": add_time__gt,
                "__gte": add_time__gte,
                "__lt": add_time__lt,
                "__lte": add_time__lte,
            },
        ),
        **r.number_filters(
            "recording_storage_duration",
            {
                "": recording_storage_duration,
                "__gt": recording_storage_duration__gt,
                "__gte": recording_storage_duration__gte,
                "__lt": recording_storage_duration__lt,
                "__lte": recording_storage_duration__lte,
            },
        ),
        **r.page_args(limit, offset),
    }
    return r.get(r.path("Recording"), r.page(Recording), params)


def _get(recording_id: str) -> Request[Recording]:
    """One recording."""
    return r.get(r.path("Recording", ("recording_id", recording_id)), r.model(Recording))


def _delete(recording_id: str) -> Request[None]:
    """Delete a recording for good."""
    return r.delete(r.path("Recording", ("recording_id", recording_id)))


def _direct_url(recording: str | Recording) -> str | None:
    """The file URL if the caller gave one (or a Recording that has one), else ``None``."""
    if isinstance(recording, Recording):
        if not recording.recording_url:
            raise ValueError("recording has no recording_url")
        return v.url("recording.recording_url", recording.recording_url)
    if "://" in recording:
        return v.url("recording", recording)
    return None


class Recordings(SyncResource):
    """``client.recordings``: list, read, delete and download recordings."""

    __slots__ = ()
    list = op(_list)
    iter = pager(_list)
    get = op(_get)
    delete = op(_delete)

    def download(
        self,
        recording: str | Recording,
        dest: str | PathLike[str],
        *,
        chunk_size: int = DEFAULT_CHUNK_BYTES,
    ) -> Path:
        """Save a recording's audio to ``dest`` and return its path.

        ``recording`` is a recording id (its URL is looked up first), a :class:`Recording`,
        or the file URL itself. The body is streamed to a temporary file beside ``dest``
        and renamed over it only when complete, so ``dest`` never holds half a file.
        """
        target = dest_path(dest)
        v.integer("chunk_size", chunk_size, 1)
        url = _direct_url(recording)
        if url is None:
            found = self.get(str(recording))
            url = _direct_url(found)
            assert url is not None
        return self._client._download(url, target, chunk_size)


class AsyncRecordings(AsyncResource):
    """``client.recordings``: list, read, delete and download recordings."""

    __slots__ = ()
    list = aop(_list)
    iter = apager(_list)
    get = aop(_get)
    delete = aop(_delete)

    async def download(
        self,
        recording: str | Recording,
        dest: str | PathLike[str],
        *,
        chunk_size: int = DEFAULT_CHUNK_BYTES,
    ) -> Path:
        """Save a recording's audio to ``dest`` and return its path.

        ``recording`` is a recording id (its URL is looked up first), a :class:`Recording`,
        or the file URL itself. The body is streamed to a temporary file beside ``dest``
        (disk writes run in a worker thread) and renamed over it only when complete, so
        ``dest`` never holds half a file.
        """
        target = dest_path(dest)
        v.integer("chunk_size", chunk_size, 1)
        url = _direct_url(recording)
        if url is None:
            found = await self.get(str(recording))
            url = _direct_url(found)
            assert url is not None
        return await self._client._download(url, target, chunk_size)
