"""Running answer XML: fetch a document (signed, with the fallback URL for the first one),
parse it and run its verbs on the call, one after the other.

``<Stream>``, ``<Play>``, ``<Speak>``, ``<Wait>``, ``<Record>``, ``<Hangup>``, ``<Redirect>``,
``<DTMF>``, ``<Conference>``, ``<MultiPartyCall>``, ``<GetDigits>``/``<GetInput>``
(:mod:`.gather`) and ``<Dial>`` (:mod:`.dialing`). A verb that moves the call on
(``<Redirect>``, a ``<Record>``, ``<GetDigits>`` or ``<Dial>`` action) returns the next
:data:`~.callstate.Action`.
"""

from __future__ import annotations

import asyncio
import logging
import math

import httpx

from . import media
from .callbacks import Webhooks
from .callstate import (
    ANSWER_URL_FAILED,
    INVALID_XML,
    NORMAL_PLIVO,
    NORMAL_XML,
    SCHEDULED,
    Action,
    CallRuntime,
    Fetch,
    Hangup,
    JoinMpc,
)
from .conferences import Conferences
from .context import SimContext
from .dialing import Dialing
from .gather import Gather
from .media import FRAME, RATE, MediaError
from .multiparty import Multiparty
from .prompts import Prompts
from .recording import Recordings
from .streams import Streams
from .xml import (
    ConferenceVerb,
    DialVerb,
    DtmfVerb,
    GetDigitsVerb,
    GetInputVerb,
    HangupVerb,
    MultiPartyCallVerb,
    PlayVerb,
    RecordVerb,
    RedirectVerb,
    SpeakVerb,
    StreamVerb,
    Verb,
    WaitVerb,
    XmlError,
    parse_answer_xml,
)

__all__ = ["Verbs"]

log = logging.getLogger("streamserver.emulator")


class Verbs:
    """Runs a call's documents and their verbs."""

    def __init__(
        self,
        ctx: SimContext,
        hooks: Webhooks,
        prompts: Prompts,
        streams: Streams,
        recordings: Recordings,
        conferences: Conferences,
        multiparty: Multiparty,
    ) -> None:
        self._ctx = ctx
        self._hooks = hooks
        self._prompts = prompts
        self._streams = streams
        self._recordings = recordings
        self._conferences = conferences
        self._multiparty = multiparty
        self._gather = Gather(ctx, hooks, prompts)
        self._dialing = Dialing(ctx, hooks, prompts)

    async def run_action(self, rt: CallRuntime, action: Action) -> Action | None:
        """Run one document (or join a multiparty call); return what the call does next."""
        if isinstance(action, JoinMpc):
            rt.begin_voice()
            await self._multiparty.join(rt, action.mpc, action.options)
            raise Hangup(NORMAL_PLIVO)
        text = await self._fetch_document(rt, action)
        try:
            verbs = parse_answer_xml(text)
        except XmlError as exc:
            log.warning("emulator: call %s: invalid XML from %s: %s", rt.call.call_uuid,
                        action.url, exc)  # fmt: skip
            raise Hangup(INVALID_XML) from None
        rt.begin_voice()
        for verb in verbs:
            follow = await self._run_verb(rt, verb)
            if follow is not None:
                return follow
        return None

    async def _fetch_document(self, rt: CallRuntime, fetch: Fetch) -> str:
        call = rt.call
        params = self._hooks.call_params(call, fetch.event)
        params.update(fetch.params)
        targets = [(fetch.url, fetch.method)]
        if fetch.event == "StartApp" and call.fallback_url:
            targets.append((call.fallback_url, call.fallback_method))
        problem = ""
        for url, method in targets:
            try:
                response = await self._hooks.request(url, method, params)
            except httpx.HTTPError as exc:
                problem = f"{url}: {str(exc) or type(exc).__name__}"
                continue
            if 200 <= response.status_code < 300:
                return response.text
            problem = f"{url}: HTTP {response.status_code}"
        log.warning("emulator: call %s: cannot fetch XML (%s)", call.call_uuid, problem)
        raise Hangup(ANSWER_URL_FAILED)

    async def _run_verb(self, rt: CallRuntime, verb: Verb) -> Action | None:
        if isinstance(verb, StreamVerb):
            stream = self._streams.start(rt.call, verb)
            if verb.keep_call_alive:
                assert stream.runtime is not None
                await stream.runtime.done.wait()
        elif isinstance(verb, PlayVerb):
            try:
                pcm = await media.fetch_audio(self._ctx.http, verb.url)
            except MediaError as exc:
                log.warning("emulator: call %s: <Play> %s", rt.call.call_uuid, exc)
                return None
            await self._prompts.play_blocking(rt, pcm, verb.loop)
        elif isinstance(verb, SpeakVerb):
            pcm = await self._ctx.tts.synthesize(verb.text, verb.voice, verb.language)
            await self._prompts.play_blocking(rt, pcm, verb.loop)
        elif isinstance(verb, WaitVerb):
            await self._wait(rt, verb)
        elif isinstance(verb, RecordVerb):
            return await self._recordings.record_verb(rt, verb)
        elif isinstance(verb, HangupVerb):
            if verb.schedule_s > 0:
                rt.end_after(float(verb.schedule_s), SCHEDULED)
            else:
                raise Hangup(NORMAL_XML)
        elif isinstance(verb, RedirectVerb):
            return Fetch(verb.url, verb.method, "Redirect")
        elif isinstance(verb, DtmfVerb):
            rt.digits_sent.append(verb.digits)
            await asyncio.sleep(0.1 * len(verb.digits))
        elif isinstance(verb, GetDigitsVerb):
            return await self._gather.get_digits(rt, verb)
        elif isinstance(verb, GetInputVerb):
            return await self._gather.get_input(rt, verb)
        elif isinstance(verb, DialVerb):
            return await self._dialing.dial(rt, verb)
        elif isinstance(verb, ConferenceVerb):
            await self._conferences.join(rt, verb)
        elif isinstance(verb, MultiPartyCallVerb):
            options = {
                "role": verb.role,
                "coach_mode": verb.coach_mode,
                "mute": verb.mute,
                "hold": verb.hold,
                "start_mpc_on_enter": verb.start_mpc_on_enter,
                "end_mpc_on_exit": verb.end_mpc_on_exit,
                "stay_alone": verb.stay_alone,
            }
            mpc = self._multiparty.by_name(verb.name)
            await self._multiparty.join(rt, mpc, options)
        return None

    async def _wait(self, rt: CallRuntime, verb: WaitVerb) -> None:
        if not verb.silence:
            await asyncio.sleep(verb.length_s)
            return
        # Wait for the far end to be silent for minSilence, at most ``length`` seconds.
        start = rt.position()
        limit = start + verb.length_s * RATE
        need = max(1, math.ceil(verb.min_silence_ms / 20))
        quiet = media.silent_frames(rt.caller_slice(start, limit))
        end = media.end_of_silence_run(quiet, need)
        target = limit if end is None else start + end * FRAME
        await asyncio.sleep(max(0.0, rt.loop_time_of(target) - asyncio.get_running_loop().time()))
