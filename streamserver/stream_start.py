"""A stream's ``start`` event: the id rule, and the parts a started stream is built of.

:func:`stream_ids` applies the id rule (ids become path parts: :func:`safe_id`) and the
fallbacks of providers that send no ids; :func:`stream_context` builds the
:class:`~streamserver.handler.StreamContext` the stream's handlers get; :func:`log_started`
is the stream's one ``stream started`` line. The session calls them once per stream, in
its ``start`` handling; none of this is on the per-frame path.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Mapping, Sequence

from .audio import AudioFormat
from .doctor import provider_bidirectional
from .handler import StreamContext, StreamControl
from .logs import clean
from .protocol.events import Start
from .session_config import Route

__all__ = ["log_started", "safe_id", "stream_context", "stream_ids"]

#: Ids become path parts (recordings): every id a real provider sends (Plivo uuids, Twilio
#: ``MZ…``/``CA…``, Telnyx ``v3:AbC…_dEf-…``, Exotel hex) and nothing that could leave a
#: directory: no ``/``, ``\``, NUL or leading dot, no ``..``, at most 256 characters.
_SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,255}\Z")


def safe_id(value: str) -> bool:
    """True if the id from the network may become a path part."""
    return _SAFE_ID.match(value) is not None and ".." not in value


def stream_ids(start: Start, query: Mapping[str, str]) -> tuple[str, str] | str:
    """The stream and call ids (checked safe for paths), or why they are refused.

    A provider that sends no stream id (Vonage) gets a generated uuid unless the URL
    query carries ``stream_id``; no call id: the query's ``call_id``/``uuid``, else the
    stream id (the recording still gets a directory of its own).
    """
    sid = start.stream_id or query.get("stream_id") or str(uuid.uuid4())
    cid = start.call_id or query.get("call_id") or query.get("uuid") or sid
    for label, value in (("streamId", sid), ("callId", cid)):
        if not safe_id(value):
            return f"invalid {label} {value[:64]!r}: expected [A-Za-z0-9._:-], no '..'"
    if start.account_id and not safe_id(start.account_id):
        return "invalid accountId"
    return sid, cid


def stream_context(
    control: StreamControl,
    start: Start,
    route: Route,
    *,
    provider: str,
    fmt: AudioFormat,
    ids: tuple[str, str],
    path: str,
    query: Mapping[str, str],
    resumed: Mapping[str, int] | None = None,
    connection: int = 1,
) -> StreamContext:
    """The context every handler of the stream gets (``control`` is the session).

    A stream is bidirectional when its provider says so, else when its route is;
    ``resumed`` and ``connection`` say which earlier connection it continues.
    """
    sid, cid = ids
    said = provider_bidirectional(provider, start)
    return StreamContext(
        control,
        call_id=cid,
        stream_id=sid,
        account_id=start.account_id,
        format=fmt,
        tracks=start.tracks,
        extra_headers=start.extra_headers,
        path=path,
        query=query,
        route=route.path,
        bidirectional=route.bidirectional if said is None else said,
        logger=logging.LoggerAdapter(
            logging.getLogger("streamserver.handler"), {"stream_id": sid, "call_id": cid}
        ),
        provider=provider,
        resumed=resumed,
        connection=connection,
    )


def log_started(
    logger: logging.LoggerAdapter[logging.Logger],
    ctx: StreamContext,
    handlers: Sequence[str],
    peer: str,
) -> None:
    """The stream's ``stream started`` line."""
    logger.info(
        "stream started: provider=%s call=%s stream=%s account=%s route=%s format=%s "
        "tracks=%s handlers=%s peer=%s%s",
        ctx.provider,
        ctx.call_id,
        ctx.stream_id,
        ctx.account_id or "-",
        ctx.route,
        ctx.format.content_type,
        clean(",".join(ctx.tracks), 64),
        ",".join(handlers) or "-",
        peer,
        f" connection={ctx.connection} (resumed)" if ctx.connection > 1 else "",
    )
