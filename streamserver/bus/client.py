"""For other services: read call events and command the process holding a call.

:class:`BusClient` raises :class:`BusError` subclasses: :class:`CallNotFoundError` (no
process holds the call), :class:`CommandError` (the command was refused) and
:class:`BusUnavailableError` (NATS cannot be reached or did not answer in time).
"""

from __future__ import annotations

import base64
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, fields
from typing import Any

import msgspec
import nats.errors
import numpy as np
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js.api import ConsumerConfig, DeliverPolicy

from .jetstream import ensure_stream
from .settings import DEFAULT_PREFIX, DEFAULT_STREAM, BusSettings, safe_url
from .subjects import cmd_subject, subject_token
from .wav import encode_wav

__all__ = [
    "BusClient",
    "BusError",
    "BusUnavailableError",
    "CallEvent",
    "CallNotFoundError",
    "CommandError",
]

log = logging.getLogger("streamserver.bus")


class BusError(Exception):
    """Root of this package's errors."""


class CallNotFoundError(BusError):
    """No process on the bus holds a stream of ``call_id`` (NATS answered no-responders)."""

    def __init__(self, call_id: str) -> None:
        super().__init__(f"no live stream of call {call_id!r} on the bus")
        self.call_id = call_id


class CommandError(BusError):
    """The process holding the call answered ``{"ok": false, "error": ...}``."""

    def __init__(self, call_id: str, action: str, error: str) -> None:
        super().__init__(f"{action} on call {call_id!r} failed: {error}")
        self.call_id = call_id
        self.action = action
        self.error = error


class BusUnavailableError(BusError):
    """NATS could not be reached, or did not answer within the timeout."""


@dataclass(frozen=True)
class CallEvent:
    """One event read from the bus. ``seq`` is its JetStream stream sequence."""

    kind: str
    call_id: str
    stream_id: str
    provider: str
    host: str
    worker: str
    time: float
    data: dict[str, Any]
    id: str
    seq: int
    subject: str

    @classmethod
    def from_msg(cls, msg: Msg) -> CallEvent:
        body = msgspec.json.decode(msg.data)
        if not isinstance(body, dict):
            raise ValueError("an event is a JSON object")
        try:
            seq = msg.metadata.sequence.stream
        except nats.errors.NotJSMessageError:
            seq = 0
        data = body.get("data")
        return cls(
            kind=str(body.get("kind", "")),
            call_id=str(body.get("call_id", "")),
            stream_id=str(body.get("stream_id", "")),
            provider=str(body.get("provider", "")),
            host=str(body.get("host", "")),
            worker=str(body.get("worker", "")),
            time=float(body.get("time", 0.0)),
            data=data if isinstance(data, dict) else {"value": data},
            id=str(body.get("id", "")),
            seq=seq,
            subject=msg.subject,
        )

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


class BusClient:
    """For other services: read call events and command the process holding a call.

    ::

        async with BusClient("nats://127.0.0.1:4222") as bus:
            async for ev in bus.events():              # every call, oldest kept first
                if ev.kind == "stream.started":
                    await bus.play(ev.call_id, pcm, 8000)
    """

    def __init__(
        self,
        url: str = "nats://127.0.0.1:4222",
        *,
        prefix: str = DEFAULT_PREFIX,
        stream: str = DEFAULT_STREAM,
        timeout_s: float = 5.0,
        connect_timeout_s: float = 2.0,
    ) -> None:
        self.settings = BusSettings(
            url=url,
            prefix=prefix,
            stream=stream,
            ack_timeout_s=timeout_s,
            connect_timeout_s=connect_timeout_s,
        )
        self.timeout_s = timeout_s
        self.nc = NatsClient()

    async def connect(self) -> BusClient:
        """Connect once; :class:`BusUnavailableError` if NATS cannot be reached."""
        try:
            await self.nc.connect(
                self.settings.url,
                name="streamserver bus client",
                connect_timeout=self.settings.connect_timeout_s,  # type: ignore[arg-type]
                allow_reconnect=False,
                error_cb=_quiet,
            )
        except (nats.errors.Error, OSError, TimeoutError) as exc:
            raise BusUnavailableError(
                f"cannot reach NATS at {safe_url(self.settings.url)}: {exc or type(exc).__name__}"
            ) from exc
        return self

    async def aclose(self) -> None:
        with contextlib.suppress(Exception):
            await self.nc.close()

    async def __aenter__(self) -> BusClient:
        return await self.connect()

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def events(
        self, call_id: str | None = None, *, new_only: bool = False, from_seq: int | None = None
    ) -> AsyncIterator[CallEvent]:
        """Events in stream order (so in order per call): every event the stream holds,
        then new ones as they come. ``new_only`` skips what is stored, ``from_seq`` starts at
        that stream sequence (resume after the last :attr:`CallEvent.seq` seen), ``call_id``
        filters. Raises :class:`BusUnavailableError` if the connection is lost.
        """
        js = self.nc.jetstream(timeout=self.timeout_s)
        try:
            await ensure_stream(js, self.settings)
        except (nats.errors.Error, OSError) as exc:
            raise BusUnavailableError(f"JetStream unavailable: {exc}") from exc
        token = subject_token(call_id) if call_id is not None else "*"
        subject = f"{self.settings.prefix}.events.{token}.>"
        if from_seq is not None:
            policy, config = DeliverPolicy.BY_START_SEQUENCE, ConsumerConfig(opt_start_seq=from_seq)
        else:
            policy, config = (DeliverPolicy.NEW if new_only else DeliverPolicy.ALL), None
        sub = await js.subscribe(
            subject,
            stream=self.settings.stream,
            ordered_consumer=True,
            deliver_policy=policy,
            config=config,
        )
        try:
            async for msg in sub.messages:
                try:
                    ev = CallEvent.from_msg(msg)
                except (msgspec.DecodeError, ValueError, TypeError):
                    log.warning("bus: skipping a malformed event on %s", msg.subject)
                    continue
                if call_id is None or ev.call_id == call_id:
                    yield ev
            # The subscription ends only when the connection does.
            raise BusUnavailableError(f"lost the connection to {safe_url(self.settings.url)}")
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def command(
        self, call_id: str, action: str, *, timeout_s: float | None = None, **fields: Any
    ) -> dict[str, Any]:
        """Send one command; its reply on success. Raises :class:`CallNotFoundError`,
        :class:`CommandError` or :class:`BusUnavailableError`."""
        payload = msgspec.json.encode({"action": action, **fields})
        try:
            msg = await self.nc.request(
                cmd_subject(self.settings.prefix, call_id),
                payload,
                timeout=timeout_s or self.timeout_s,
            )
        except nats.errors.NoRespondersError:
            raise CallNotFoundError(call_id) from None
        except nats.errors.TimeoutError:
            raise BusUnavailableError(
                f"{action} on call {call_id!r}: no answer within {timeout_s or self.timeout_s} s"
            ) from None
        except nats.errors.MaxPayloadError:
            raise CommandError(
                call_id, action, f"command larger than NATS max_payload ({self.nc.max_payload} B)"
            ) from None
        except (nats.errors.Error, OSError) as exc:
            raise BusUnavailableError(f"{action} on call {call_id!r}: {exc}") from exc
        reply = msgspec.json.decode(msg.data)
        if not isinstance(reply, dict):
            raise CommandError(call_id, action, f"unexpected reply {reply!r}")
        if not reply.get("ok"):
            raise CommandError(call_id, action, str(reply.get("error", "refused")))
        return reply

    async def play_wav(self, call_id: str, wav: bytes) -> dict[str, Any]:
        """Play a WAV file's bytes into the call."""
        return await self.command(call_id, "play", audio_b64=base64.b64encode(wav).decode())

    async def play(self, call_id: str, pcm: np.ndarray, rate: int) -> dict[str, Any]:
        """Play ``pcm`` (mono int16, or float in -1..1) at ``rate`` Hz into the call."""
        return await self.play_wav(call_id, encode_wav(pcm, rate))

    async def checkpoint(self, call_id: str, name: str, *, timeout_s: float = 300.0) -> bool:
        """Mark the audio queued so far; True once it played, False if cleared first."""
        reply = await self.command(call_id, "checkpoint", name=name, timeout_s=timeout_s)
        return bool(reply.get("played"))

    async def clear(self, call_id: str) -> None:
        """Drop the call's queued, unplayed audio (barge-in)."""
        await self.command(call_id, "clear")

    async def send_dtmf(self, call_id: str, digits: str) -> None:
        """Play DTMF tones into the call."""
        await self.command(call_id, "send_dtmf", digits=digits)

    async def stop(self, call_id: str) -> None:
        """End the call's stream."""
        await self.command(call_id, "stop")


async def _quiet(exc: Exception) -> None:
    # The client reports connection errors by raising; nats-py's default prints them.
    return None
