"""Events out and commands in over NATS: the server's side and a client for other services.

Subjects (``prefix`` defaults to ``streamserver``)::

    {prefix}.events.{call_id}.{kind}    JSON events, captured by the JetStream stream
                                        STREAMSERVER_EVENTS ({prefix}.events.>)
    {prefix}.cmd.{call_id}              request/reply, answered by the process holding the call

Server side: :class:`Bus` owns one NATS connection (:class:`BusConnection`) shared by an
:class:`EventPublisher` and a :class:`CommandServer`. Nothing here ever makes the media loop
wait: :meth:`EventPublisher.publish` is a plain function that appends to a bounded backlog;
a background task sends it to JetStream and waits for the acks, so an event is dropped only
when the backlog is full (counted, and logged once per outage). While NATS is unreachable —
at start or later — the connection keeps retrying and the backlog keeps the events in order
until it returns. Each event carries a ``Nats-Msg-Id``, so a publish retried after a lost
ack is stored once.

Client side: :class:`BusClient` reads events through an ordered JetStream consumer (a
consumer that starts late still sees what the stream holds, in order) and sends commands.

This package imports nats-py; nothing else in streamserver imports it unless ``[bus] url`` is
set, so the default server runs without a NATS anywhere.

Modules, each importing only ones listed before it: ``subjects`` (subject names), ``wav`` (audio
in commands), ``settings`` (the ``[bus]`` table), ``jetstream`` (the event stream),
``connection``, ``events`` (:class:`EventPublisher`), ``commands``
(:class:`CommandServer`), ``server`` (:class:`Bus`) and ``client`` (:class:`BusClient`
and the errors).

Exceptions::

    BusError
    ├── CallNotFoundError     no process holds the call (NATS's no-responders answer)
    ├── CommandError          the process holding the call refused the command
    └── BusUnavailableError   NATS cannot be reached or did not answer in time
"""

from __future__ import annotations

from .client import (
    BusClient,
    BusError,
    BusUnavailableError,
    CallEvent,
    CallNotFoundError,
    CommandError,
)
from .commands import CommandServer, CommandTarget
from .connection import BusConnection
from .events import EventPublisher
from .server import Bus
from .settings import DEFAULT_PREFIX, DEFAULT_STREAM, BusSettings
from .subjects import cmd_subject, event_subject, subject_token
from .wav import decode_wav, encode_wav

__all__ = [
    "DEFAULT_PREFIX",
    "DEFAULT_STREAM",
    "Bus",
    "BusClient",
    "BusConnection",
    "BusError",
    "BusSettings",
    "BusUnavailableError",
    "CallEvent",
    "CallNotFoundError",
    "CommandError",
    "CommandServer",
    "CommandTarget",
    "EventPublisher",
    "cmd_subject",
    "decode_wav",
    "encode_wav",
    "event_subject",
    "subject_token",
]
