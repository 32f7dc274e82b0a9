"""Webhooks: the signature, the ``[handler.webhook]`` options and one delivery's retries.

Shared by the ``webhook`` handler (``mode = "inline"``: the media worker POSTs) and
:mod:`streamserver.webhooks.relay` (``mode = "jetstream"``: a durable JetStream consumer
in its own process delivers the bus's events; imported on its own, it needs NATS).
Modules: ``signing`` (pure), ``options``, ``delivery`` (one POST, the backoff), ``relay``.
"""

from __future__ import annotations

from .delivery import Attempt, new_client, post_once, retry_after, retry_delay
from .options import DEFAULT_EVENTS, DELIVERY_MODES, WebhookOptions
from .signing import SIGNATURE_HEADER, sign, verify_signature

__all__ = [
    "DEFAULT_EVENTS",
    "DELIVERY_MODES",
    "SIGNATURE_HEADER",
    "Attempt",
    "WebhookOptions",
    "new_client",
    "post_once",
    "retry_after",
    "retry_delay",
    "sign",
    "verify_signature",
]
