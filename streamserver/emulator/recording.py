"""Recordings: of one call (the Record API, ``recordSession``, a multiparty member), the
``<Record>`` verb, and the mixed recordings of conferences and multiparty calls.

A call recording is the callee's timeline between two positions (stereo: with what they
heard on the second channel); a group recording mixes its members' voices over the time
each was in. Files are written in a thread; the recording callback is signed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import soundfile as sf

from . import media
from .callbacks import Webhooks
from .callstate import Action, CallRecording, CallRuntime, Fetch
from .context import SimContext
from .media import FRAME, RATE
from .store import Call, Conference, MultiPartyCall, Recording
from .values import new_api_id, new_uuid
from .xml import RecordVerb

__all__ = ["GroupRecording", "Recordings"]

log = logging.getLogger("streamserver.emulator")

_MP3 = "MP3" in sf.available_formats()


@dataclass
class GroupRecording:
    """A conference or multiparty-call recording: the mix of its members' voices."""

    recording_id: str
    url: str
    file_format: str
    start_loop: float
    start_wall: float
    callback_url: str
    callback_method: str
    #: call_uuid -> [runtime, joined (loop time), left (loop time) or None]
    members: dict[str, list[Any]] = field(default_factory=dict)
    pauses: list[list[float]] = field(default_factory=list)


class Recordings:
    """Starts, stops and writes every recording of the emulated account."""

    def __init__(self, ctx: SimContext, hooks: Webhooks) -> None:
        self._ctx = ctx
        self._hooks = hooks

    def target(self, file_format: str) -> tuple[str, str, str]:
        """A new recording id, its effective format, and its public URL."""
        recording_id = new_uuid()
        fmt = file_format if (file_format != "mp3" or _MP3) else "wav"
        base = f"{self._ctx.public_url}/v1/Account/{self._ctx.settings.auth_id}"
        url = f"{base}/Recording/{recording_id}.{fmt}"
        return recording_id, fmt, url

    def start_call_recording(
        self,
        call: Call,
        *,
        time_limit_s: int,
        file_format: str,
        stereo: bool,
        callback_url: str,
        callback_method: str,
        mpc: MultiPartyCall | None = None,
    ) -> tuple[str, str]:
        """Record what the far end says from now on; return (recording_id, url)."""
        rt: CallRuntime = call.runtime
        rt.begin_voice()
        recording_id, fmt, url = self.target(file_format)
        rec = CallRecording(
            recording_id=recording_id,
            url=url,
            file_format=fmt,
            stereo=stereo,
            start_pos=rt.position(),
            start_wall=time.time(),
            callback_url=callback_url,
            callback_method=callback_method,
            mpc=mpc,
        )
        rt.recordings.append(rec)
        rec.timer = asyncio.get_running_loop().call_later(
            time_limit_s,
            lambda: self._ctx.spawn(self.finish_call_recording(rt, rec), "recording time limit"),
        )
        log.info("emulator: call %s: recording %s started", call.call_uuid, recording_id)
        return recording_id, url

    async def stop_call_recording(self, call: Call, url: str | None) -> None:
        """Stop the call's recordings (or only the one at ``url``) and write them."""
        rt: CallRuntime = call.runtime
        for rec in list(rt.recordings):
            if url is None or rec.url == url:
                await self.finish_call_recording(rt, rec)

    async def finish_call_recording(self, rt: CallRuntime, rec: CallRecording) -> Recording | None:
        """Stop a call recording and write it (once; None if it was already done)."""
        if rec.done:
            return None
        rec.done = True
        if rec.timer is not None:
            rec.timer.cancel()
        with contextlib.suppress(ValueError):
            rt.recordings.remove(rec)
        end = rt.position()
        if rt.hangup_pos is not None:
            end = min(end, max(rec.start_pos, rt.hangup_pos))
        return await self._save_call_audio(
            rt, rec.recording_id, rec.url, rec.file_format, rec.start_pos, end, rec.stereo,
            rec.start_wall, rec.callback_url, rec.callback_method, rec.mpc,
        )  # fmt: skip

    async def _save_call_audio(
        self,
        rt: CallRuntime,
        recording_id: str,
        url: str,
        fmt: str,
        start: int,
        end: int,
        stereo: bool,
        start_wall: float,
        callback_url: str,
        callback_method: str,
        mpc: MultiPartyCall | None = None,
    ) -> Recording:
        """Write the far end's audio ``[start, end)`` and register the recording."""
        inbound = rt.caller_slice(start, end)
        pcm: Any = inbound
        if stereo:
            pcm = np.stack([inbound, rt.outbound_slice(start, end)], axis=1)
        call = rt.call
        return await self._save(
            recording_id, url, fmt, pcm, start_wall, callback_url, callback_method,
            call_uuid=call.call_uuid, from_number=call.from_number, to_number=call.to_number,
            mpc=mpc,
        )  # fmt: skip

    async def _save(
        self,
        recording_id: str,
        url: str,
        fmt: str,
        pcm: Any,
        start_wall: float,
        callback_url: str,
        callback_method: str,
        *,
        call_uuid: str = "",
        from_number: str = "",
        to_number: str = "",
        conference_name: str = "",
        mpc: MultiPartyCall | None = None,
    ) -> Recording:
        assert self._ctx.recordings_dir is not None
        path = self._ctx.recordings_dir / f"{recording_id}.{fmt}"
        written = await asyncio.to_thread(media.write_recording, path, pcm, fmt)
        path = path.with_suffix(f".{written}")
        if written != fmt:
            url = url.rsplit(".", 1)[0] + f".{written}"
        duration_ms = round(len(pcm) * 1000 / RATE)
        start_ms = round(start_wall * 1000)
        rec = Recording(
            auth_id=self._ctx.settings.auth_id,
            recording_id=recording_id,
            recording_url=url,
            path=str(path),
            recording_format=written,
            start_ms=start_ms,
            end_ms=start_ms + duration_ms,
            call_uuid=call_uuid,
            from_number=from_number,
            to_number=to_number,
            conference_name=conference_name,
            mpc_name=mpc.friendly_name if mpc else "",
            mpc_uuid=mpc.mpc_uuid if mpc else "",
            recording_type="conference" if conference_name else ("mpc" if mpc else "normal"),
        )
        self._ctx.store.recordings[recording_id] = rec
        log.info("emulator: recording %s saved (%.2f s, %s)", recording_id, duration_ms / 1000,
                 written)  # fmt: skip
        self._hooks.callback(
            callback_url,
            callback_method,
            {
                "api_id": new_api_id(),
                "call_uuid": call_uuid,
                "record_url": url,
                "recording_duration": str(math.ceil(duration_ms / 1000)),
                "recording_duration_ms": str(duration_ms),
                "recording_end_ms": str(rec.end_ms),
                "recording_id": recording_id,
                "recording_start_ms": str(start_ms),
            },
            "recording",
        )
        return rec

    async def record_verb(self, rt: CallRuntime, verb: RecordVerb) -> Action | None:
        """``<Record>``: record what the callee says until silence, a key, the limit or hangup."""
        call = rt.call
        if verb.record_session:
            self.start_call_recording(
                call,
                time_limit_s=call.time_limit_s,
                file_format=verb.file_format,
                stereo=False,
                callback_url=verb.callback_url,
                callback_method=verb.callback_method,
            )
            return None
        loop = asyncio.get_running_loop()
        recording_id, fmt, url = self.target(verb.file_format)
        start = rt.position()
        start_wall = time.time()
        end = start + verb.max_length_s * RATE
        pressed = ""
        if verb.timeout_s > 0:
            quiet = media.silent_frames(rt.caller_slice(start, end))
            run_end = media.end_of_silence_run(quiet, verb.timeout_s * 50)
            if run_end is not None:
                end = min(end, start + run_end * FRAME)
        for at, digit in self._ctx.settings.caller_dtmf:
            pos = int(at * RATE)
            if digit in verb.finish_on_key and start <= pos < end:
                end, pressed = pos, digit
                break
        if rt.hangup_pos is not None and rt.hangup_pos < end:
            end, pressed = max(start, rt.hangup_pos), "hangup"
        saved = False
        try:
            await asyncio.sleep(max(0.0, rt.loop_time_of(end) - loop.time()))
            saved = True
        finally:
            # A hang-up mid-recording still keeps what was said so far.
            stop = end if saved else min(end, rt.position())
            rec = await asyncio.shield(
                self._save_call_audio(
                    rt, recording_id, url, fmt, start, stop, False, start_wall,
                    verb.callback_url, verb.callback_method,
                )
            )  # fmt: skip
        if not verb.action:
            return None
        params = {
            "Digits": pressed,
            "RecordFile": rec.recording_url,
            "RecordUrl": rec.recording_url,
            "RecordingDuration": str(math.ceil(rec.duration_ms / 1000)),
            "RecordingDurationMs": str(rec.duration_ms),
            "RecordingEndMs": str(rec.end_ms),
            "RecordingID": rec.recording_id,
            "RecordingStartMs": str(rec.start_ms),
        }
        if verb.redirect:
            return Fetch(verb.action, verb.method, "Record", params)
        merged = self._hooks.call_params(call, "Record")
        merged.update(params)
        self._hooks.callback(verb.action, verb.method, merged, "record action")
        return None

    def start_group_recording(
        self,
        group: Conference | MultiPartyCall,
        *,
        file_format: str,
        callback_url: str,
        callback_method: str,
    ) -> tuple[str, str]:
        """Record the mix of a conference's or multiparty call's members; (id, url)."""
        existing: GroupRecording | None = (
            group.runtime if isinstance(group, MultiPartyCall) else group.recording
        )
        if existing is not None:
            return existing.recording_id, existing.url
        recording_id, fmt, url = self.target(file_format)
        rec = GroupRecording(
            recording_id=recording_id,
            url=url,
            file_format=fmt,
            start_loop=asyncio.get_running_loop().time(),
            start_wall=time.time(),
            callback_url=callback_url,
            callback_method=callback_method,
        )
        for rt in self._group_runtimes(group):
            self.group_join(rec, rt)
        if isinstance(group, MultiPartyCall):
            group.runtime = rec
            group.recording = "recording"
        else:
            group.recording = rec
        return recording_id, url

    def pause_group_recording(self, mpc: MultiPartyCall, pause: bool) -> None:
        """Pause or resume a multiparty call's recording (paused time is silence)."""
        rec: GroupRecording | None = mpc.runtime
        if rec is None:
            return
        now = asyncio.get_running_loop().time()
        if pause:
            rec.pauses.append([now, math.inf])
            mpc.recording = "paused"
        else:
            if rec.pauses and rec.pauses[-1][1] == math.inf:
                rec.pauses[-1][1] = now
            mpc.recording = "recording"

    async def stop_group_recording(self, group: Conference | MultiPartyCall) -> None:
        """Stop and write a group recording (no-op if none is running)."""
        if isinstance(group, MultiPartyCall):
            rec: GroupRecording | None = group.runtime
            group.runtime = None
            group.recording = "not-recording"
        else:
            rec = group.recording
            group.recording = None
        if rec is None:
            return
        loop = asyncio.get_running_loop()
        now = loop.time()
        total = int((now - rec.start_loop) * RATE)
        mix = np.zeros(total, dtype=np.int32)
        for rt, joined, left in rec.members.values():
            if rt.voice_t0 is None:
                continue
            a = max(joined, rec.start_loop)
            b = min(left if left is not None else now, now)
            if b <= a:
                continue
            pa = int((a - rt.voice_t0) * RATE)
            voice = rt.caller_slice(pa, pa + int((b - a) * RATE))
            offset = int((a - rec.start_loop) * RATE)
            n = min(voice.shape[0], total - offset)
            if n > 0:
                mix[offset : offset + n] += voice[:n]
        for p0, p1 in rec.pauses:
            a, b = int((p0 - rec.start_loop) * RATE), int((min(p1, now) - rec.start_loop) * RATE)
            mix[max(0, a) : max(0, b)] = 0
        pcm = np.clip(mix, -32768, 32767).astype(np.int16)
        if isinstance(group, MultiPartyCall):
            await self._save(rec.recording_id, rec.url, rec.file_format, pcm, rec.start_wall,
                             rec.callback_url, rec.callback_method, mpc=group)  # fmt: skip
        else:
            await self._save(rec.recording_id, rec.url, rec.file_format, pcm, rec.start_wall,
                             rec.callback_url, rec.callback_method,
                             conference_name=group.name)  # fmt: skip

    def _group_runtimes(self, group: Conference | MultiPartyCall) -> list[CallRuntime]:
        if isinstance(group, Conference):
            uuids = [m.call_uuid for m in group.members.values()]
        else:
            uuids = [p.call_uuid for p in group.active_participants()]
        calls = [self._ctx.store.calls.get(u) for u in uuids]
        return [c.runtime for c in calls if c is not None and c.runtime is not None]

    def group_join(self, rec: GroupRecording | None, rt: CallRuntime) -> None:
        """A call enters a group whose recording ``rec`` runs (None: not recording)."""
        if rec is not None:
            rec.members[rt.call.call_uuid] = [rt, asyncio.get_running_loop().time(), None]

    def group_leave(self, rec: GroupRecording | None, rt: CallRuntime) -> None:
        """A call leaves a group whose recording ``rec`` runs (None: not recording)."""
        if rec is not None and rt.call.call_uuid in rec.members:
            rec.members[rt.call.call_uuid][2] = asyncio.get_running_loop().time()
