"""Commands in: ``{prefix}.cmd.{call_id}`` answered for the calls this process holds."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
from collections.abc import Awaitable
from typing import Any, Protocol

import msgspec
import nats.errors
import numpy as np
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from .connection import BusConnection
from .subjects import cmd_subject
from .wav import decode_wav

__all__ = ["ACTIONS", "CommandServer", "CommandTarget"]

log = logging.getLogger("streamserver.bus")

ACTIONS = ("play", "checkpoint", "clear", "send_dtmf", "stop")


class CommandTarget(Protocol):
    """What a command acts on: one live, bidirectional stream (the session implements it).

    ``play`` may wait while the socket's write buffer is full; ``checkpoint`` queues the
    mark at once and returns an awaitable that resolves to True when the audio before it
    played (False when it was cleared or the stream ended); the others act at once.
    """

    async def play(self, pcm: np.ndarray, rate: int) -> None: ...

    def checkpoint(self, name: str) -> Awaitable[bool]: ...

    def clear(self) -> None: ...

    def send_dtmf(self, digits: str) -> None: ...

    async def stop(self) -> None: ...


class CommandServer:
    """Answers ``{prefix}.cmd.{call_id}`` for the calls this process holds.

    :meth:`add` when a stream starts (subscribes; deferred while NATS is unreachable),
    :meth:`remove` when it stops (unsubscribes, so a request for the call gets NATS's
    no-responders answer). Commands of one call run in the order they arrive; a checkpoint's
    reply waits for its audio without holding up the commands after it (a ``clear``).

    Requests are JSON ``{"action": "play", "audio_b64": <WAV bytes, base64>}``,
    ``{"action": "checkpoint", "name": ...}``, ``{"action": "clear"}``,
    ``{"action": "send_dtmf", "digits": ...}``, ``{"action": "stop"}``; replies
    ``{"ok": true, ...}`` or ``{"ok": false, "error": "..."}``.
    """

    def __init__(self, conn: BusConnection) -> None:
        self.conn = conn
        self.settings = conn.settings
        self._targets: dict[str, CommandTarget] = {}
        self._subs: dict[str, Subscription] = {}
        self._waiting: set[asyncio.Task[None]] = set()
        self.handled = 0
        self.refused = 0
        conn.on_connect(self._subscribe_all)

    @property
    def calls(self) -> list[str]:
        """The calls this server answers for."""
        return list(self._targets)

    async def add(self, call_id: str, target: CommandTarget) -> None:
        """Answer commands for ``call_id`` from now on (replaces an earlier target)."""
        self._targets[call_id] = target
        if self.conn.connected and call_id not in self._subs:
            with contextlib.suppress(nats.errors.Error, OSError):
                await self._subscribe(call_id)

    async def remove(self, call_id: str, target: CommandTarget | None = None) -> None:
        """Stop answering for ``call_id`` (only if ``target`` is still its target).

        Does not wait for the server: a command racing the end of the call may time out
        instead of getting no-responders."""
        if target is not None and self._targets.get(call_id) is not target:
            return
        self._targets.pop(call_id, None)
        sub = self._subs.pop(call_id, None)
        if sub is not None:
            with contextlib.suppress(nats.errors.Error, OSError):
                await sub.unsubscribe()

    async def _subscribe(self, call_id: str) -> None:
        async def handle(msg: Msg) -> None:
            await self._handle(call_id, msg)

        sub = await self.conn.nc.subscribe(cmd_subject(self.settings.prefix, call_id), cb=handle)
        if call_id in self._targets and call_id not in self._subs:
            self._subs[call_id] = sub
        else:  # removed (or added twice) while subscribing
            await sub.unsubscribe()

    async def _subscribe_all(self) -> None:
        for call_id in list(self._targets):
            # Each await may see calls come and go: check again for every call.
            if call_id in self._targets and call_id not in self._subs:
                await self._subscribe(call_id)

    async def _handle(self, call_id: str, msg: Msg) -> None:
        # The subscription's task boundary: every failure becomes an {"ok": false} reply.
        target = self._targets.get(call_id)
        if not msg.reply or target is None:
            return
        action = "?"
        try:
            req = msgspec.json.decode(msg.data)
            if not isinstance(req, dict):
                raise ValueError("a command is a JSON object")
            action = str(req.get("action", ""))
            reply = await self._dispatch(call_id, target, action, req, msg)
        except Exception as exc:
            self.refused += 1
            reply = {"ok": False, "error": str(exc) or type(exc).__name__}
            log.info("bus: %s on call %s refused: %s", action, call_id, reply["error"])
        if reply is not None:
            await self._respond(msg, call_id, action, reply)

    async def _dispatch(
        self, call_id: str, target: CommandTarget, action: str, req: dict[str, Any], msg: Msg
    ) -> dict[str, Any] | None:
        if action == "play":
            b64 = req.get("audio_b64")
            if not isinstance(b64, str) or not b64:
                raise ValueError("play needs audio_b64 (a WAV file, base64)")
            try:
                wav = base64.b64decode(b64, validate=True)
            except ValueError:
                raise ValueError("audio_b64 is not valid base64") from None
            pcm, rate = decode_wav(wav)
            await target.play(pcm, rate)
            return {"ok": True, "samples": len(pcm), "rate": rate}
        if action == "checkpoint":
            name = req.get("name")
            if not isinstance(name, str) or not name:
                raise ValueError("checkpoint needs a name")
            waiter = target.checkpoint(name)
            task = asyncio.create_task(self._reply_checkpoint(call_id, name, waiter, msg))
            self._waiting.add(task)
            task.add_done_callback(self._waiting.discard)
            return None
        if action == "clear":
            target.clear()
            return {"ok": True}
        if action == "send_dtmf":
            digits = req.get("digits")
            if not isinstance(digits, str) or not digits:
                raise ValueError("send_dtmf needs digits")
            target.send_dtmf(digits)
            return {"ok": True}
        if action == "stop":
            await target.stop()
            return {"ok": True}
        raise ValueError(f"unknown action {action!r} (known: {', '.join(ACTIONS)})")

    async def _reply_checkpoint(
        self, call_id: str, name: str, waiter: Awaitable[bool], msg: Msg
    ) -> None:
        try:
            played = await asyncio.wait_for(waiter, self.settings.checkpoint_timeout_s)
            reply: dict[str, Any] = {"ok": True, "name": name, "played": bool(played)}
        except Exception as exc:
            self.refused += 1
            reply = {"ok": False, "error": str(exc) or type(exc).__name__}
        await self._respond(msg, call_id, "checkpoint", reply)

    async def _respond(self, msg: Msg, call_id: str, action: str, reply: dict[str, Any]) -> None:
        if reply.get("ok"):
            self.handled += 1
        reply.update(
            call_id=call_id, action=action, host=self.settings.host, worker=self.settings.worker
        )
        with contextlib.suppress(nats.errors.Error, OSError):
            await msg.respond(msgspec.json.encode(reply))

    async def aclose(self) -> None:
        """Unsubscribe from every call and cancel waiting checkpoint replies."""
        for task in list(self._waiting):
            task.cancel()
        for call_id in list(self._targets):
            await self.remove(call_id)
