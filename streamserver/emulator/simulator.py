"""The call simulator: what happens on the emulated Plivo's side of every call.

Placing a call through the API starts one task per call leg: wait for a CPS slot ("call
queued"), ring (``ring_url`` callback), answer, then fetch the answer URL (signed with
``X-Plivo-Signature-V3``, ``-Ma-V3`` and the nonce, plus the legacy V2 pair) and run the
returned XML: ``<Stream>``, ``<Play>``, ``<Speak>``, ``<Wait>``, ``<Record>``, ``<Hangup>``,
``<Redirect>``, ``<DTMF>``, ``<Conference>``, ``<MultiPartyCall>``, ``<GetDigits>``,
``<GetInput>`` and ``<Dial>``. At the end the CDR is filled in and the hangup callback sent.
Calls also fail as real ones do (``docs/emulator.md``): busy, rejected, unanswered and dead
lines, answering machines, dropped and slow streams (:mod:`.outcomes`, :mod:`.streams`).

The far end of each call (the person who answered) is simulated too: from the moment of
answer they "say" an audio file (``caller_audio``, or one per dialled number), press DTMF
digits at scripted times, answer input elements from a script, and hang up some seconds
after their audio ends. This timeline is
what streams carry (through :class:`~.streamclient.PlivoStreamClient`), what ``<Record>`` and
the Record API write to disk, and what ``<Wait silence>`` listens to. What the far end
*hears* (``<Play>``, ``<Speak>``, the API's Play/Speak) is kept as the call's outbound track
(stereo recordings, ``audioTrack="outbound"`` streams); on bidirectional streams the stream
client records what the server played, in its report.

:class:`Simulator` puts the parts together and is what the REST API and the tests hold:

- :mod:`.calls`: call legs from dial to CDR, CPS, the API's actions on live calls;
- :mod:`.verbs`: running answer XML (:mod:`.gather`: input elements, :mod:`.dialing`:
  ``<Dial>``); :mod:`.prompts`: what the far end hears;
- :mod:`.streams`: audio streams; :mod:`.recording`: every kind of recording;
- :mod:`.conferences`, :mod:`.multiparty`: rooms calls sit in;
- :mod:`.callbacks`: signed webhooks; :mod:`.callstate`: one call's live state and hangup
  causes; :mod:`.context`: the resources they share.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Mapping
from typing import Any

import httpx

from .callbacks import Webhooks
from .calls import Calls
from .callstate import HangupCause
from .conferences import Conferences
from .context import SimContext
from .multiparty import Multiparty
from .prompts import Prompts
from .recording import Recordings
from .settings import EmulatorSettings
from .store import Call, Store, Stream
from .streamclient import StreamReport
from .streams import Streams
from .verbs import Verbs

__all__ = ["HangupCause", "Simulator"]


class Simulator:
    """Runs every call of the emulated account; the REST app calls into its parts.

    Use as an async resource: :meth:`start` before serving, :meth:`aclose` to hang up all
    calls, stop streams and remove the temporary recordings directory.
    """

    def __init__(
        self,
        settings: EmulatorSettings,
        store: Store | None = None,
        *,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self.settings = settings
        self.store = store or Store(settings.auth_id)
        self._ctx = ctx = SimContext(settings, self.store, http)
        self.webhooks = hooks = Webhooks(ctx)
        self.recordings = Recordings(ctx, hooks)
        self.streams = Streams(ctx, hooks)
        self.prompts = Prompts(ctx)
        self.conferences = Conferences(ctx, self.recordings)
        self.multiparty = Multiparty(ctx, self.recordings)
        verbs = Verbs(
            ctx, hooks, self.prompts, self.streams, self.recordings, self.conferences,
            self.multiparty,
        )  # fmt: skip
        self.calls = Calls(ctx, hooks, verbs, self.streams, self.recordings, self.multiparty)

    # --- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        """Create the HTTP client and the recordings directory."""
        await self._ctx.start()

    async def aclose(self) -> None:
        """Hang up every call, wait for their cleanup, and release resources."""
        await self.calls.shutdown()
        await self._ctx.aclose()

    @property
    def public_url(self) -> str:
        """Base of ``recording_url``: settings.public_url, else set by the server once bound."""
        return self._ctx.public_url

    @public_url.setter
    def public_url(self, value: str) -> None:
        self._ctx.public_url = value.rstrip("/")

    @property
    def http(self) -> httpx.AsyncClient:
        """The client for webhooks and media (after :meth:`start`)."""
        return self._ctx.http

    def spawn(self, coro: Coroutine[Any, Any, Any], what: str) -> asyncio.Task[Any]:
        """Run ``coro`` in the background; failures are logged, never lost."""
        return self._ctx.spawn(coro, what)

    async def post_json(self, url: str, method: str, payload: Mapping[str, Any]) -> None:
        """Deliver an async API reply (JSON) to its ``callback_url``, signed."""
        await self.webhooks.post_json(url, method, payload)

    # --- for callers (tests, demo) ------------------------------------------------------

    async def wait_call_ended(self, call_uuid: str, timeout_s: float = 30.0) -> Call:
        """Wait until the call has ended and its cleanup is done; return it."""
        return await self.calls.wait_call_ended(call_uuid, timeout_s)

    async def wait_call_answered(self, call_uuid: str, timeout_s: float = 30.0) -> Call:
        """Wait until the call is answered (or has ended); return it."""
        return await self.calls.wait_call_answered(call_uuid, timeout_s)

    def stream_report(self, stream_id: str) -> StreamReport | None:
        """The stream client's report (frames sent, what the caller heard...), once ended."""
        return self.streams.report(stream_id)

    def stream_reports(self, stream_id: str) -> list[StreamReport]:
        """Every socket's report of a stream, oldest first (reconnects add one each)."""
        return self.streams.reports(stream_id)

    def streams_of(self, call_uuid: str) -> list[Stream]:
        """Every stream of a call, oldest first (reports via :meth:`stream_report`)."""
        return self.streams.of_call(call_uuid)

    def digits_sent(self, call_uuid: str) -> list[str]:
        """DTMF sent to the far end of a call (API and ``<DTMF>``), in order."""
        return self.calls.digits_sent(call_uuid)
