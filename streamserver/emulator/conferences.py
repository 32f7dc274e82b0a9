"""Conferences by name: members join from ``<Conference>`` and sit in it until they leave
(kicked, the conference ended on someone's exit, the time limit) or hang up."""

from __future__ import annotations

import asyncio
import logging

from .callstate import NORMAL_API, CallRuntime
from .context import SimContext
from .recording import Recordings
from .store import Conference, ConferenceMember
from .xml import ConferenceVerb

__all__ = ["Conferences"]

log = logging.getLogger("streamserver.emulator")


class Conferences:
    """The account's conferences: joining, leaving, hanging up and kicking members."""

    def __init__(self, ctx: SimContext, recordings: Recordings) -> None:
        self._ctx = ctx
        self._recordings = recordings

    async def join(self, rt: CallRuntime, verb: ConferenceVerb) -> None:
        """``<Conference>``: sit in the room until kicked, the time limit, or hangup."""
        call = rt.call
        conf = self._ctx.store.conferences.get(verb.name)
        if conf is None:
            conf = Conference(verb.name)
            self._ctx.store.conferences[verb.name] = conf
        if len(conf.members) >= verb.max_members:
            log.info("emulator: conference %s is full; call %s moves on", verb.name, call.call_uuid)
            return
        member = ConferenceMember(
            member_id=self._ctx.store.next_member_id(),
            call_uuid=call.call_uuid,
            from_number=call.from_number,
            to_number=call.to_number,
            caller_name=call.caller_name,
            direction=call.direction,
            muted=verb.muted,
        )
        conf.members[member.member_id] = member
        rt.conference = (conf, member)
        rt.leave.clear()
        self._recordings.group_join(conf.recording, rt)
        try:
            await asyncio.wait_for(rt.leave.wait(), verb.time_limit_s or None)
        except TimeoutError:
            pass
        finally:
            rt.conference = None
            conf.members.pop(member.member_id, None)
            self._recordings.group_leave(conf.recording, rt)
            if verb.end_conference_on_exit:
                self.member_kick(conf, list(conf.members))
            if not conf.members:
                if self._ctx.store.conferences.get(conf.name) is conf:
                    del self._ctx.store.conferences[conf.name]
                if conf.recording is not None:
                    self._ctx.spawn(
                        self._recordings.stop_group_recording(conf), "conference recording"
                    )

    async def hangup(self, conf: Conference) -> None:
        """Hang up every member's call."""
        for member in list(conf.members.values()):
            await self._hang_up(member.call_uuid)

    async def member_hangup(self, conf: Conference, member_ids: list[str]) -> None:
        """Hang up the calls of these members."""
        for member_id in member_ids:
            member = conf.members.get(member_id)
            if member is not None:
                await self._hang_up(member.call_uuid)

    def member_kick(self, conf: Conference, member_ids: list[str]) -> None:
        """Take members out of the conference; their calls go on with the next XML."""
        for member_id in member_ids:
            member = conf.members.get(member_id)
            call = self._ctx.store.calls.get(member.call_uuid) if member else None
            if call is not None and call.runtime is not None:
                call.runtime.leave.set()

    async def _hang_up(self, call_uuid: str) -> None:
        call = self._ctx.store.calls.get(call_uuid)
        if call is not None and not call.ended and call.runtime is not None:
            await call.runtime.hang_up(NORMAL_API)
