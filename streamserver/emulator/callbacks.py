"""HTTP out: the signed requests Plivo makes to the user's application.

Answer URLs, status callbacks and async API replies are signed with
``X-Plivo-Signature-V3`` (+ nonce, + ``-Ma-V3``) and carry the legacy V2 pair too, as Plivo's
webhooks do. Callbacks run in the background and never fail a call: errors are logged.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import httpx

from ..signature import HEADER_NONCE_V2, HEADER_NONCE_V3, HEADER_V2, compute_v2, sign_headers
from .context import SimContext
from .store import Call
from .values import session_time

__all__ = ["Webhooks"]

log = logging.getLogger("streamserver.emulator")


class Webhooks:
    """Signed webhook requests and fire-and-forget callbacks for one emulated account."""

    def __init__(self, ctx: SimContext) -> None:
        self._ctx = ctx

    def _signed(self, url: str, method: str, params: Mapping[str, str] | None) -> dict[str, str]:
        token = self._ctx.settings.auth_token
        headers = sign_headers(url, token, params or None, method=method)
        # The legacy V2 pair still rides along on Plivo's webhooks.
        nonce2 = headers[HEADER_NONCE_V3]
        headers[HEADER_V2] = compute_v2(url, nonce2, token)
        headers[HEADER_NONCE_V2] = nonce2
        return headers

    async def request(self, url: str, method: str, params: Mapping[str, str]) -> httpx.Response:
        """A signed webhook request: form body for POST, query parameters for GET."""
        method = method.upper()
        headers = self._signed(url, method, params)
        http = self._ctx.http
        if method == "GET":
            return await http.get(url, params=dict(params), headers=headers)
        return await http.post(url, data=dict(params), headers=headers)

    async def post_json(self, url: str, method: str, payload: Mapping[str, Any]) -> None:
        """Deliver an async API reply (JSON) to its ``callback_url``, signed over the URL."""
        http = self._ctx.http
        try:
            if method.upper() == "GET":
                flat = {k: str(v) for k, v in payload.items()}
                await http.get(url, params=flat, headers=self._signed(url, "GET", flat))
            else:
                await http.post(url, json=dict(payload), headers=self._signed(url, "POST", None))
        except httpx.HTTPError as exc:
            why = str(exc) or type(exc).__name__
            log.warning("emulator: async reply to %s failed: %s", url, why)

    def callback(self, url: str, method: str, params: Mapping[str, str], what: str) -> None:
        """Fire a signed callback in the background (if callbacks are on and a URL is set)."""
        ctx = self._ctx
        if not url or not ctx.settings.callbacks or not ctx.started:
            return

        async def send() -> None:
            try:
                response = await self.request(url, method, params)
                if response.status_code >= 400:
                    log.warning("emulator: %s callback to %s got HTTP %d", what, url,
                                response.status_code)  # fmt: skip
            except httpx.HTTPError as exc:
                log.warning("emulator: %s callback to %s failed: %s", what, url,
                            str(exc) or type(exc).__name__)  # fmt: skip

        ctx.spawn(send(), f"{what} callback")

    def call_params(self, call: Call, event: str) -> dict[str, str]:
        """The parameters of every call webhook (answer, ring, hangup, actions)."""
        started = call.answer_time if call.answer_time is not None else call.initiation_time
        params = {
            "ALegRequestUUID": call.request_uuid,
            "ALegUUID": call.call_uuid,
            "BillRate": "0.00850",
            "CallStatus": call.status,
            "CallUUID": call.call_uuid,
            "CallerName": call.caller_name,
            "Direction": call.direction,
            "Event": event,
            "From": call.from_number.lstrip("+"),
            "ParentAuthID": self._ctx.settings.auth_id,
            "RequestUUID": call.request_uuid,
            "SessionStart": session_time(started),
            "To": call.to_number.lstrip("+"),
        }
        for key, value in call.sip_headers.items():
            params[f"X-PH-{key}"] = value
        return params
