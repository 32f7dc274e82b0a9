"""The control app: answer XML for Plivo, signed callbacks, and a live view of the streams.

A small Starlette app that ``streamserver serve`` runs beside the stream server, in the same
event loop, on its own port (``[control]`` in the config)::

    GET|POST /answer               answer XML: <Response><Stream ...>ws(s)://.../route</Stream>
    GET|POST /callbacks/stream     stream status: StartStream, StopStream, DroppedStream, ...
    GET|POST /callbacks/hangup     the call ended
    GET|POST /callbacks/recording  a recording is ready
    GET      /streams              live streams as JSON (ids, route, handlers, counters)
    GET      /healthz              200 while running

Give Plivo ``{public_url}/answer`` as a call's answer URL (and
``{public_url}/callbacks/hangup`` as its hangup URL). The ``<Stream>`` it answers points
at the stream server's public URL plus the configured route, with the configured options, and
its status callback comes back to ``/callbacks/stream``. ``/answer?stream_url=wss://...``
streams to another WebSocket URL instead (the query is covered by Plivo's signature).

Every request from Plivo carries ``X-Plivo-Signature-V3``; when an auth token is configured
(``[plivo]`` or ``PLIVO_AUTH_TOKEN``) and ``verify_signatures`` is on, it is checked over
``public_url`` + path (+ query) and the form fields, and a missing, wrong or replayed
signature gets 403. A verified callback is logged, counted in ``/metrics``
(``streamserver_callbacks_total{kind=...}``) and published to the live streams it concerns
(same call id, and same stream id when the callback names one) as a
:class:`~streamserver.handler.BusEvent` with topic :data:`CALLBACK_TOPIC` and a
:class:`Callback` as data, so handlers see Plivo's view of their call in ``on_event``.
"""

from __future__ import annotations

from .app import CALLBACK_TOPIC, Callback, CallbackKind, ControlApp
from .settings import ControlSettings, load_control_settings

__all__ = [
    "CALLBACK_TOPIC",
    "Callback",
    "CallbackKind",
    "ControlApp",
    "ControlSettings",
    "load_control_settings",
]
