"""Call legs from dial to CDR: CPS pacing ("call queued"), ringing, answering, running
the call's documents, the API's actions on live calls, and the end (CDR, hangup callback).

Placing a call starts one task per leg: wait for a CPS slot, ring (``ring_url`` callback),
answer, then fetch the answer URL and run it (:mod:`.verbs`) until the XML ends, the call
is transferred or hung up. A leg whose outcome (:mod:`.outcomes`) is busy or failed ends
at once without ringing, a rejected one after ringing, an unanswered one when its
``ring_timeout`` runs out. At the end the streams and recordings are stopped, the CDR
filled in and the hangup callback sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
import re
import time
from collections import deque
from typing import Any

from . import media
from .callbacks import Webhooks
from .callstate import (
    CANCELED,
    END_OF_XML,
    INVALID_DESTINATION,
    NORMAL_API,
    RING_TIMEOUT,
    SHUTDOWN,
    STOP_TIMEOUT_S,
    TIME_LIMIT,
    UNANSWERED,
    UNANSWERED_STATUS,
    Action,
    CallRuntime,
    Fetch,
    Hangup,
    JoinMpc,
)
from .context import SimContext
from .machine import MachineDetection
from .media import RATE, MediaError
from .multiparty import Multiparty
from .outcomes import input_for, outcome_for
from .recording import Recordings
from .store import Call, MultiPartyCall
from .streams import Streams
from .values import cdr_time, new_uuid
from .verbs import Verbs

__all__ = ["Calls"]

log = logging.getLogger("streamserver.emulator")

_DESTINATION_RE = re.compile(r"^(\+?\d{2,18}|sip:[^@\s]+@[^@\s]+)$")


class Calls:
    """Every call leg of the emulated account, from dial to CDR."""

    def __init__(
        self,
        ctx: SimContext,
        hooks: Webhooks,
        verbs: Verbs,
        streams: Streams,
        recordings: Recordings,
        multiparty: Multiparty,
    ) -> None:
        self._ctx = ctx
        self._hooks = hooks
        self._verbs = verbs
        self._streams = streams
        self._recordings = recordings
        self._multiparty = multiparty
        self._machine = MachineDetection(hooks)
        self._dispatches: deque[float] = deque()

    async def shutdown(self) -> None:
        """Hang up every call and wait (bounded) for their cleanup."""
        calls = self._ctx.store.calls.values()
        for call in list(calls):
            if not call.ended and call.runtime is not None:
                call.runtime.request_end(SHUTDOWN)
        pending = [c.runtime.task for c in calls if c.runtime and c.runtime.task]
        for call in list(calls):
            # A dial still waiting for its CPS slot or ringing has nothing to clean up:
            # cancel it rather than let thousands of them wake up one by one.
            rt = call.runtime
            if rt is not None and rt.task is not None and call.answer_time is None:
                rt.task.cancel()
        if pending:
            _, late = await asyncio.wait(pending, timeout=STOP_TIMEOUT_S)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late, timeout=STOP_TIMEOUT_S)

    async def wait_call_ended(self, call_uuid: str, timeout_s: float = 30.0) -> Call:
        """Wait until the call has ended and its cleanup is done; return it."""
        call = self._ctx.store.calls[call_uuid]
        if call.runtime is not None:
            await asyncio.wait_for(call.runtime.ended.wait(), timeout_s)
        return call

    async def wait_call_answered(self, call_uuid: str, timeout_s: float = 30.0) -> Call:
        """Wait until the call is answered (or has ended); return it."""
        call = self._ctx.store.calls[call_uuid]
        rt: CallRuntime = call.runtime
        answered = asyncio.ensure_future(rt.answered.wait())
        ended = asyncio.ensure_future(rt.ended.wait())
        try:
            await asyncio.wait([answered, ended], timeout=timeout_s, return_when="FIRST_COMPLETED")
        finally:
            answered.cancel()
            ended.cancel()
        if call.answer_time is None and not call.ended:
            raise TimeoutError(f"call {call_uuid} not answered within {timeout_s} s")
        return call

    def digits_sent(self, call_uuid: str) -> list[str]:
        """DTMF sent to the far end of a call (API and ``<DTMF>``), in order."""
        call = self._ctx.store.calls[call_uuid]
        return list(call.runtime.digits_sent) if call.runtime else []

    def _cps_slot(self, now: float) -> float:
        """Loop time at which the next call may be dispatched (sliding one-second window)."""
        cps = self._ctx.settings.calls_per_second
        if cps <= 0:
            return now
        burst = max(1, math.floor(cps))
        window = burst / cps
        slots = self._dispatches
        t = now if len(slots) < burst else max(now, slots[-burst] + window)
        slots.append(t)
        while len(slots) > burst:
            slots.popleft()
        return t

    def make_calls(self, template: Call, destinations: list[str]) -> list[Call]:
        """Create one call per destination and start them; queued ones wait for CPS."""
        calls: list[Call] = []
        now = asyncio.get_running_loop().time()
        for to in destinations:
            call_uuid = new_uuid()
            call = dataclasses.replace(
                template,
                call_uuid=call_uuid,
                request_uuid=call_uuid,
                to_number=to,
                initiation_time=time.time(),
                sip_headers=dict(template.sip_headers),
            )
            self._dial(call, now)
            calls.append(call)
        return calls

    def _dial(self, call: Call, now: float, initial: Action | None = None) -> None:
        """Start a new call leg at its CPS slot: "queued" until then, else "ringing"."""
        # One clock reading for both: on a busy machine a second reading may be later.
        slot = self._cps_slot(now)
        call.status = "queued" if slot > now + 0.001 else "ringing"
        self._launch(call, slot, initial)

    def _launch(self, call: Call, slot: float, initial: Action | None) -> CallRuntime:
        settings = self._ctx.settings
        rt = CallRuntime(call, slot, settings.caller_hangup_after_audio_s)
        rt.initial = initial
        try:
            rt.outcome = outcome_for(call.to_number, call.sip_headers, settings.outcome_by_number)
            rt.inputs.extend(input_for(call.sip_headers, settings.caller_input))
        except ValueError as exc:  # the Call API checked them; a multiparty dial did not
            log.warning("emulator: call %s: %s; ignored", call.call_uuid, exc)
        call.runtime = rt
        self._ctx.store.calls[call.call_uuid] = call
        rt.task = self._ctx.spawn(self._run_call(rt), f"call {call.call_uuid}")
        log.info(
            "emulator: call %s from %s to %s %s",
            call.call_uuid, call.from_number, call.to_number,
            "queued" if call.status == "queued" else "fired",
        )  # fmt: skip
        return rt

    async def _run_call(self, rt: CallRuntime) -> None:
        call = rt.call
        loop = asyncio.get_running_loop()
        try:
            delay = rt.dispatch_at - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            call.status = "ringing"
            if not await self._ring(rt):
                return
            await self._answer(rt)
            action: Action | None = rt.initial or Fetch(
                call.answer_url, call.answer_method, "StartApp"
            )
            while action is not None:
                rt.xml_task = loop.create_task(self._verbs.run_action(rt, action))
                try:
                    action = await rt.xml_task
                except asyncio.CancelledError:
                    task = asyncio.current_task()
                    if (task is not None and task.cancelling()) or rt.interrupt is None:
                        raise
                    action, rt.interrupt = rt.interrupt, None  # transferred
            rt.end = rt.end or END_OF_XML
        except Hangup as exc:
            rt.end = rt.end or exc.cause
        except asyncio.CancelledError:
            # Hung up (rt.end says why): the cancellation is handled here, so the cleanup
            # below runs its own timeouts normally.
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
        except Exception:
            log.exception("emulator: call %s failed", call.call_uuid)
            rt.end = rt.end or SHUTDOWN
        finally:
            await self._finish_call(rt)

    async def _ring(self, rt: CallRuntime) -> bool:
        """Ring as the callee's outcome says; False (``rt.end`` set) if never answered."""
        call = rt.call
        unanswered = UNANSWERED.get(rt.outcome)
        if rt.outcome not in ("busy", "failed"):  # a busy or dead line never rings
            self._hooks.callback(
                call.ring_url, call.ring_method, self._hooks.call_params(call, "Ring"), "ring"
            )
        ring_s = self._ctx.settings.ring_s
        if rt.outcome == "no-answer" or (unanswered is None and ring_s >= call.ring_timeout_s):
            await asyncio.sleep(call.ring_timeout_s)
            rt.end = RING_TIMEOUT
            return False
        if ring_s > 0 and rt.outcome not in ("busy", "failed"):
            await asyncio.sleep(ring_s)
        if not _DESTINATION_RE.match(call.to_number):
            rt.end = INVALID_DESTINATION
            return False
        if unanswered is not None:
            rt.end = unanswered
            return False
        return True

    async def _answer(self, rt: CallRuntime) -> None:
        call = rt.call
        path = self._ctx.settings.audio_for(call.to_number)
        try:
            rt.caller = await asyncio.to_thread(media.load_audio_file, path)
        except MediaError as exc:
            log.warning("emulator: call %s: %s; the callee stays silent", call.call_uuid, exc)
        call.status = "in-progress"
        call.answer_time = time.time()
        rt.answered.set()
        if call.send_digits:
            rt.digits_sent.append(call.send_digits)
        rt.end_after(float(call.time_limit_s), TIME_LIMIT)
        self._machine.start(rt)
        log.info("emulator: call %s answered (caller audio %s, %.1f s)", call.call_uuid,
                 path.name, rt.caller.shape[0] / RATE)  # fmt: skip

    async def _finish_call(self, rt: CallRuntime) -> None:
        call = rt.call
        cause = rt.end or END_OF_XML
        rt.end = cause
        call.end_time = time.time()
        # A call still waiting for its CPS slot when the emulator stops was never placed:
        # no hangup callback for it (thousands of them would swamp the way out).
        unplaced = call.status == "queued" and cause is SHUTDOWN
        if call.answer_time is not None:
            call.status = "completed"
        elif cause is CANCELED or cause is NORMAL_API or cause is SHUTDOWN:
            call.status = "cancel"
            cause = rt.end = CANCELED if cause is NORMAL_API else cause
        else:
            call.status = UNANSWERED_STATUS.get(cause, "failed")
        call.hangup_cause_name, call.hangup_cause_code, call.hangup_source = cause
        for handle in rt.timers:
            handle.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            for task in (rt.xml_task, rt.api_play, rt.api_speak):
                if task is not None and not task.done():
                    task.cancel()
                    with contextlib.suppress(Exception):
                        await task
            for stream in list(rt.streams.values()):
                await self._streams.stop(stream)
            for rec in list(rt.recordings):
                await self._recordings.finish_call_recording(rt, rec)
        params = self._hooks.call_params(call, "Hangup")
        duration = call.duration_s
        params.update(
            AnswerTime=cdr_time(call.answer_time) or "",
            BillDuration=str(duration),
            Duration=str(duration),
            EndTime=cdr_time(call.end_time) or "",
            HangupCause=cause.name,
            HangupCauseCode=str(cause.code),
            HangupCauseName=cause.name,
            HangupSource=cause.source,
            StartTime=cdr_time(call.initiation_time) or "",
            TotalCost=call.cdr_json()["total_amount"],
        )
        if not unplaced:
            hangup_url = call.hangup_url or call.answer_url
            self._hooks.callback(hangup_url, call.hangup_method, params, "hangup")
        rt.ended.set()
        log.info(
            "emulator: call %s ended: %s (%d, %s) after %d s",
            call.call_uuid, cause.name, cause.code, cause.source, duration,
        )  # fmt: skip

    async def hangup(self, call: Call) -> None:
        """Hang up a call (``DELETE Call/{uuid}/``) and wait for it to end."""
        rt: CallRuntime = call.runtime
        await rt.hang_up(NORMAL_API)

    async def cancel_request(self, request_uuid: str) -> bool:
        """Cancel a call not yet answered (``DELETE Request/{uuid}/``); False if none."""
        for call in self._ctx.store.calls.values():
            if call.request_uuid == request_uuid and not call.ended and call.answer_time is None:
                await call.runtime.hang_up(CANCELED)
                return True
        return False

    async def transfer(self, call: Call, url: str, method: str) -> None:
        """Interrupt the call's XML and run the document at ``url`` instead."""
        rt: CallRuntime = call.runtime
        rt.switch_to(Fetch(url, method, "Transfer"))

    def send_digits(self, call: Call, value: str, leg: str) -> None:
        """Send DTMF to the far end (``POST Call/{uuid}/DTMF/``): recorded, then ignored."""
        rt: CallRuntime = call.runtime
        rt.digits_sent.append(value)
        log.info("emulator: call %s: digits %s sent to the %s", call.call_uuid, value, leg)

    async def add_to_mpc(
        self,
        mpc_id: str,
        options: dict[str, Any],
        from_number: str,
        destinations: list[str],
        call_uuid: str | None,
    ) -> tuple[MultiPartyCall, list[Call], str]:
        """Add a participant: an existing call joins, or new calls are placed to join."""
        if mpc_id.startswith("name_"):
            mpc = self._multiparty.by_name(mpc_id[len("name_") :])
        else:
            found = self._ctx.store.find_mpc(mpc_id)
            assert found is not None
            mpc = found
        request_uuid = new_uuid()
        if call_uuid is not None:
            call = self._ctx.store.calls[call_uuid]
            rt: CallRuntime = call.runtime
            rt.switch_to(JoinMpc(mpc, options))
            return mpc, [call], request_uuid
        calls: list[Call] = []
        now = asyncio.get_running_loop().time()
        for to in destinations:
            new = Call(
                auth_id=self._ctx.settings.auth_id,
                call_uuid=new_uuid(),
                request_uuid=request_uuid,
                from_number=from_number,
                to_number=to,
                caller_name=options.get("caller_name") or from_number,
                ring_timeout_s=options.get("ring_timeout_s", 45),
                time_limit_s=options.get("max_duration_s", 14400),
                hangup_url=options.get("call_status_callback_url", ""),
                hangup_method=options.get("call_status_callback_method", "POST"),
            )
            self._dial(new, now, JoinMpc(mpc, options))
            calls.append(new)
        return mpc, calls, request_uuid
