"""Multiparty calls: participants join (from ``<MultiPartyCall>`` or the API) and stay until
they leave or hang up; the call starts on the first start-on-enter member and ends when
the last one (or an end-on-exit one) leaves."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from .callstate import CallRuntime
from .context import SimContext
from .recording import Recordings
from .store import MultiPartyCall, Participant
from .values import new_uuid

__all__ = ["Multiparty"]

log = logging.getLogger("streamserver.emulator")


class Multiparty:
    """The account's multiparty calls: joining, starting, ending and kicking."""

    def __init__(self, ctx: SimContext, recordings: Recordings) -> None:
        self._ctx = ctx
        self._recordings = recordings

    def by_name(self, name: str) -> MultiPartyCall:
        """The live multiparty call of that name, created when there is none."""
        mpc = self._ctx.store.find_mpc(f"name_{name}")
        if mpc is None or mpc.ended:
            mpc = MultiPartyCall(self._ctx.settings.auth_id, new_uuid(), name)
            self._ctx.store.mpcs[mpc.mpc_uuid] = mpc
        return mpc

    async def join(self, rt: CallRuntime, mpc: MultiPartyCall, options: Mapping[str, Any]) -> None:
        """Sit in the multiparty call as a participant until told to leave or hung up."""
        if mpc.ended:
            log.info("emulator: multiparty call %s has ended; call %s cannot join",
                     mpc.friendly_name, rt.call.call_uuid)  # fmt: skip
            return
        part = Participant(
            auth_id=self._ctx.settings.auth_id,
            mpc_uuid=mpc.mpc_uuid,
            member_id=self._ctx.store.next_member_id(),
            call_uuid=rt.call.call_uuid,
            role=str(options.get("role", "customer")),
            coach_mode=bool(options.get("coach_mode", True)),
            mute=bool(options.get("mute", False)),
            hold=bool(options.get("hold", False)),
            start_mpc_on_enter=bool(options.get("start_mpc_on_enter", True)),
            end_mpc_on_exit=bool(options.get("end_mpc_on_exit", False)),
        )
        mpc.participants[part.member_id] = part
        mpc.stay_alone = mpc.stay_alone or bool(options.get("stay_alone", False))
        if part.start_mpc_on_enter:
            self.start(mpc)
        rt.mpc = (mpc, part)
        rt.leave.clear()
        rt.leave_cause = ""
        self._recordings.group_join(mpc.runtime, rt)
        try:
            await rt.leave.wait()
        finally:
            rt.mpc = None
            part.exit_time = time.time()
            part.exit_cause = rt.leave_cause or "Participant Call Hangup"
            self._recordings.group_leave(mpc.runtime, rt)
            if not mpc.ended:
                if part.end_mpc_on_exit:
                    self._ctx.spawn(
                        self.end(mpc, "Participant Exited", 1020), "end multiparty call"
                    )
                elif not mpc.active_participants():
                    self._ctx.spawn(self.end(mpc, "No Active Participants", 1000),
                               "end multiparty call")  # fmt: skip

    def start(self, mpc: MultiPartyCall) -> None:
        """Make a multiparty call Active (``status=active`` or a start-on-enter member)."""
        if mpc.status == "Initialized":
            mpc.status = "Active"
            mpc.start_time = time.time()

    async def end(self, mpc: MultiPartyCall, cause: str, code: int) -> None:
        """End a multiparty call: every participant leaves; the recording is written."""
        if mpc.ended:
            return
        mpc.status = "Ended"
        mpc.end_time = time.time()
        mpc.termination_cause, mpc.termination_cause_code = cause, code
        if mpc.start_time is None:
            mpc.start_time = mpc.end_time
        await self.kick(mpc, mpc.active_participants(), "MPC Ended")
        await self._recordings.stop_group_recording(mpc)

    async def kick(
        self, mpc: MultiPartyCall, parts: list[Participant], cause: str = "Kicked"
    ) -> None:
        """Take participants out; calls the API added are hung up, XML ones go on."""
        for part in parts:
            call = self._ctx.store.calls.get(part.call_uuid)
            if call is None or call.runtime is None:
                continue
            rt: CallRuntime = call.runtime
            rt.leave_cause = cause
            rt.leave.set()
