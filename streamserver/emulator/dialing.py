"""``<Dial>`` on a simulated call: ring every ``<Number>``/``<User>`` at once as a new call
leg (a B leg, ``parent_call_uuid`` the caller's), bridge the first that answers, then tell
``action`` how it went.

Each B leg's callee is simulated like any other (:mod:`.outcomes`: the number, the
``sipHeaders`` of the ``<Dial>``): busy and failed lines end at once, a rejecting one after
ringing, an unanswered one when the ``<Dial timeout>`` runs out; one that answers talks
(its audio, ``caller_audio_by_number`` or ``caller_audio``, is what the caller hears) and
hangs up ``caller_hangup_after_audio_s`` later, or when ``timeLimit`` is reached, or when
the caller hangs up. Legs still ringing when another answers are cancelled.

``callbackUrl`` gets ``DialAnswer`` when the bridge starts and ``DialHangup`` when the B
leg ends (``DialAction``, ``DialALegUUID``, ``DialBLegUUID``, ``DialBLegStatus``, and on
hang-up ``DialBLegHangupCause``, ``DialBLegDuration``, ``DialBLegBillDuration``).
``action`` gets ``DialStatus`` (completed, busy, failed, no-answer), ``DialALegUUID``,
``DialBLegUUID`` (empty if nobody answered), ``DialRingStatus`` and ``DialHangupCause``;
with several numbers and no answer those are the first number's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass

import httpx
import numpy as np

from ..audio import PCM
from . import media
from .callbacks import Webhooks
from .callstate import (
    DIAL_LOST,
    NORMAL_CALLEE,
    NORMAL_CALLER,
    RING_TIMEOUT,
    STOP_TIMEOUT_S,
    TIME_LIMIT,
    UNANSWERED,
    UNANSWERED_STATUS,
    Action,
    CallRuntime,
    Cursor,
    Fetch,
)
from .context import SimContext
from .media import MediaError
from .outcomes import outcome_for
from .prompts import Prompts
from .store import Call
from .values import cdr_time, new_uuid
from .xml_dial import DialTarget, DialVerb

__all__ = ["Dialing"]

log = logging.getLogger("streamserver.emulator")

#: DialStatus of a leg that ended unanswered with a CallStatus (else "failed").
_DIAL_STATUS = {"busy": "busy", "no-answer": "no-answer", "cancel": "no-answer"}


@dataclass
class _Leg:
    """One B leg: its call record, its runtime, whether it rang."""

    call: Call
    rt: CallRuntime
    rang: bool = False


class Dialing:
    """Runs ``<Dial>``: the B legs, the bridge, the callbacks."""

    def __init__(self, ctx: SimContext, hooks: Webhooks, prompts: Prompts) -> None:
        self._ctx = ctx
        self._hooks = hooks
        self._prompts = prompts

    async def dial(self, rt: CallRuntime, verb: DialVerb) -> Action | None:
        """Run ``<Dial>`` to its end; return what the call does next (None: next element)."""
        rt.begin_voice()
        legs = [self._new_leg(rt, verb, target) for target in verb.targets]
        winner: _Leg | None = None
        try:
            winner = await self._ring_all(legs, verb)
            if winner is not None:
                await self._bridge(rt, verb, winner)
        finally:
            live = [leg for leg in legs if not leg.rt.ended.is_set()]
            for leg in live:
                leg.rt.request_end(NORMAL_CALLER)
                if leg.rt.task is None or leg.rt.task.done():
                    self._finish(leg)  # answered, not bridged yet: nothing runs for it
            waits = [asyncio.ensure_future(leg.rt.ended.wait()) for leg in live]
            if waits:
                await asyncio.wait(waits, timeout=STOP_TIMEOUT_S)
        return await self._report(rt, verb, legs, winner)

    def _new_leg(self, rt: CallRuntime, verb: DialVerb, target: DialTarget) -> _Leg:
        a = rt.call
        settings = self._ctx.settings
        uuid = new_uuid()
        call = Call(
            auth_id=a.auth_id,
            call_uuid=uuid,
            request_uuid=uuid,
            from_number=verb.caller_id or a.from_number,
            to_number=target.address,
            caller_name=verb.caller_name or a.caller_name,
            parent_call_uuid=a.call_uuid,
            sip_headers=dict(verb.sip_headers),
            send_digits=target.send_digits,
            status="ringing",
            initiation_time=time.time(),
        )
        leg_rt = CallRuntime(call, asyncio.get_running_loop().time(), -1.0)
        try:
            leg_rt.outcome = outcome_for(
                target.address, call.sip_headers, settings.outcome_by_number
            )
        except ValueError as exc:
            log.warning("emulator: <Dial> leg %s: %s; it answers", uuid, exc)
        call.runtime = leg_rt
        self._ctx.store.calls[uuid] = call
        leg = _Leg(call, leg_rt)
        leg_rt.task = self._ctx.spawn(self._ring(leg, verb), f"dial leg {uuid}")
        log.info("emulator: call %s dials %s (leg %s, %s)", a.call_uuid, target.address, uuid,
                 leg_rt.outcome)  # fmt: skip
        return leg

    async def _ring(self, leg: _Leg, verb: DialVerb) -> None:
        """Ring one leg; it ends here unless it is about to answer (``answered`` set)."""
        rt = leg.rt
        try:
            unanswered = UNANSWERED.get(rt.outcome)
            leg.rang = rt.outcome not in ("busy", "failed")
            ring_s = self._ctx.settings.ring_s
            if rt.outcome == "no-answer" or (unanswered is None and ring_s >= verb.timeout_s):
                await asyncio.sleep(verb.timeout_s)
                rt.end = RING_TIMEOUT
            elif leg.rang and ring_s > 0:
                await asyncio.sleep(ring_s)
            rt.end = rt.end or unanswered
            if rt.end is None:
                rt.answered.set()
                return
        except asyncio.CancelledError:
            pass  # cancelled (another leg answered, the caller left, the API): rt.end says
        self._finish(leg)

    async def _ring_all(self, legs: list[_Leg], verb: DialVerb) -> _Leg | None:
        """Wait for the first leg to answer (the first in order when several do at once)."""
        pending = {leg.rt.task for leg in legs if leg.rt.task is not None}
        while pending:
            _done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            ready = [leg for leg in legs if leg.rt.answered.is_set()]
            if ready:
                winner = ready[0]
                for leg in legs:
                    if leg is not winner and not leg.rt.ended.is_set():
                        leg.rt.request_end(DIAL_LOST)
                        if leg.rt.answered.is_set():
                            self._finish(leg)  # answered at the same moment, but lost
                return winner
        return None

    async def _bridge(self, rt: CallRuntime, verb: DialVerb, leg: _Leg) -> None:
        """The B leg answered: talk until one side hangs up or ``timeLimit``."""
        call = leg.call
        call.status = "in-progress"
        call.answer_time = time.time()
        if call.send_digits:
            leg.rt.digits_sent.append(call.send_digits)
        self._callback(rt, verb, leg, "DialAnswer")
        settings = self._ctx.settings
        try:
            voice = await asyncio.to_thread(
                media.load_audio_file, settings.audio_for(call.to_number)
            )
        except MediaError as exc:
            log.warning("emulator: <Dial> leg %s: %s; the callee stays silent", call.call_uuid, exc)
            voice = np.zeros(0, dtype=np.int16)
        talk = self._ctx.spawn(self._talk(rt, leg, voice, verb), f"dial bridge {call.call_uuid}")
        leg.rt.task = talk
        await leg.rt.ended.wait()

    async def _talk(self, rt: CallRuntime, leg: _Leg, voice: PCM, verb: DialVerb) -> None:
        after = self._ctx.settings.caller_hangup_after_audio_s

        async def conversation() -> None:
            await self._prompts.play_once(rt, voice, Cursor())  # what the caller hears
            if after >= 0:
                await asyncio.sleep(after)
            else:
                await asyncio.Event().wait()  # a callee who never hangs up

        try:
            await asyncio.wait_for(conversation(), verb.time_limit_s)
            leg.rt.end = leg.rt.end or NORMAL_CALLEE
        except TimeoutError:
            leg.rt.end = leg.rt.end or TIME_LIMIT
        except asyncio.CancelledError:
            pass  # hung up: rt.end says by whom
        finally:
            self._finish(leg)
            self._callback(rt, verb, leg, "DialHangup")

    def _finish(self, leg: _Leg) -> None:
        """Fill in the leg's CDR once it is over."""
        call, rt = leg.call, leg.rt
        if rt.ended.is_set():
            return
        cause = rt.end = rt.end or NORMAL_CALLER
        call.end_time = time.time()
        if call.answer_time is not None:
            call.status = "completed"
        else:
            call.status = UNANSWERED_STATUS.get(cause, "failed")
        call.hangup_cause_name, call.hangup_cause_code, call.hangup_source = cause
        rt.ended.set()
        log.info("emulator: <Dial> leg %s ended: %s (%d, %s)", call.call_uuid, cause.name,
                 cause.code, cause.source)  # fmt: skip

    def _callback(self, rt: CallRuntime, verb: DialVerb, leg: _Leg, event: str) -> None:
        params = self._hooks.call_params(rt.call, event)
        b = leg.call
        params.update(
            DialAction="answer" if event == "DialAnswer" else "hangup",
            DialALegUUID=rt.call.call_uuid,
            DialBLegUUID=b.call_uuid,
            DialBLegStatus="answer" if event == "DialAnswer" else "hangup",
            DialBLegFrom=b.from_number.lstrip("+"),
            DialBLegTo=b.to_number.lstrip("+"),
        )
        if event == "DialHangup":
            params.update(
                DialBLegHangupCause=b.hangup_cause_name,
                DialBLegDuration=str(b.duration_s),
                DialBLegBillDuration=str(b.duration_s),
                DialBLegEndTime=cdr_time(b.end_time) or "",
            )
        self._hooks.callback(verb.callback_url, verb.callback_method, params, "dial")

    async def _report(
        self, rt: CallRuntime, verb: DialVerb, legs: list[_Leg], winner: _Leg | None
    ) -> Action | None:
        """Request ``action`` with how the dial went; return what the call does next."""
        leg = winner or legs[0]
        if winner is not None:
            status = "completed"
        else:
            status = _DIAL_STATUS.get(leg.call.status, "failed")
        params = {
            "DialStatus": status,
            "DialALegUUID": rt.call.call_uuid,
            "DialBLegUUID": winner.call.call_uuid if winner is not None else "",
            "DialRingStatus": "true" if any(x.rang for x in legs) else "false",
            "DialHangupCause": leg.call.hangup_cause_name,
        }
        log.info("emulator: call %s: <Dial> %s", rt.call.call_uuid, status)
        if not verb.action:
            return None
        if verb.redirect:
            return Fetch(verb.action, verb.method, "Dial", params)
        query = self._hooks.call_params(rt.call, "Dial")
        query.update(params)
        with contextlib.suppress(httpx.HTTPError):
            await self._hooks.request(verb.action, verb.method, query)
        return None
