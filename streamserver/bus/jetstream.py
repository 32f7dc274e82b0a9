"""The JetStream stream that captures ``{prefix}.events.>`` (made or extended on demand)."""

from __future__ import annotations

import logging

import nats.js.errors
from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, StorageType, StreamConfig

from .settings import BusSettings

__all__ = ["ensure_stream"]

log = logging.getLogger("streamserver.bus")


async def ensure_stream(js: JetStreamContext, settings: BusSettings) -> None:
    """Create the JetStream stream capturing ``{prefix}.events.>`` if missing; add the
    subject to an existing stream of that name that lacks it."""
    subject = f"{settings.prefix}.events.>"
    try:
        info = await js.stream_info(settings.stream)
    except nats.js.errors.NotFoundError:
        await _add_stream(js, settings, subject)
        return
    subjects = list(info.config.subjects or [])
    if subject not in subjects:
        info.config.subjects = [*subjects, subject]
        await js.update_stream(info.config)
        log.info("added %s to JetStream stream %s", subject, settings.stream)


async def _add_stream(js: JetStreamContext, settings: BusSettings, subject: str) -> None:
    try:
        await js.add_stream(
            StreamConfig(
                name=settings.stream,
                description="streamserver call events",
                subjects=[subject],
                storage=StorageType.FILE,
                discard=DiscardPolicy.OLD,
                max_age=settings.max_age_s or None,
                max_bytes=settings.max_bytes,
                # Publishes retried after a lost ack are stored once (Nats-Msg-Id).
                duplicate_window=120.0,
            )
        )
    except nats.js.errors.BadRequestError:
        # Another process created it a moment ago (with other settings): it exists, which
        # is all we need; a stream that truly cannot be made fails again here.
        await js.stream_info(settings.stream)
        return
    log.info("created JetStream stream %s for %s", settings.stream, subject)
