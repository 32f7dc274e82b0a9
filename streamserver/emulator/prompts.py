"""Prompts: audio the far end of a call hears (``<Play>``, ``<Speak>``, the Play and Speak
APIs), laid on the callee's timeline so back-to-back prompts neither overlap nor drift, and
kept as the call's outbound track."""

from __future__ import annotations

import asyncio
import logging

import numpy as np

from ..audio import PCM
from . import media
from .callstate import CallRuntime, Cursor, Segment
from .context import SimContext
from .media import RATE, MediaError
from .store import Call

__all__ = ["Prompts"]

log = logging.getLogger("streamserver.emulator")


class Prompts:
    """Plays prompts to calls: blocking for XML verbs, in the background for the API."""

    def __init__(self, ctx: SimContext) -> None:
        self._ctx = ctx

    async def play_blocking(self, rt: CallRuntime, pcm: PCM, loop: int) -> None:
        """Play ``pcm`` to the far end ``loop`` times (0: until the call moves on)."""
        count = 0
        while loop == 0 or count < loop:
            count += 1
            await self.play_once(rt, pcm, rt.xml_cursor)

    async def play_once(self, rt: CallRuntime, pcm: PCM, cursor: Cursor) -> None:
        """Play ``pcm`` from now, or right after what ``cursor`` last played (no gap)."""
        if pcm.shape[0] == 0:
            await asyncio.sleep(0)
            return
        rt.begin_voice()
        seg = Segment(max(rt.position(), cursor.end), pcm)
        cursor.end = seg.start + pcm.shape[0]
        rt.outbound.append(seg)
        loop = asyncio.get_running_loop()
        try:
            # Sleep to the segment's end on the call's sample clock, so back-to-back
            # prompts neither overlap nor drift apart.
            await asyncio.sleep(max(0.0, rt.loop_time_of(cursor.end) - loop.time()))
        except asyncio.CancelledError:
            # Stopped or hung up midway: the rest was never heard.
            seg.pcm = seg.pcm[: max(0, rt.position() - seg.start)]
            raise

    def play(self, call: Call, urls: list[str], length_s: int | None, loop: bool) -> None:
        """Play URLs to the far end in the background (``POST Call/{uuid}/Play/``)."""
        rt: CallRuntime = call.runtime
        if rt.api_play is not None:
            rt.api_play.cancel()
        rt.api_play = self._ctx.spawn(self._api_play(rt, urls, None, length_s, loop), "play")

    def stop_play(self, call: Call) -> None:
        """Stop the API Play on the call (``DELETE Call/{uuid}/Play/``)."""
        rt: CallRuntime = call.runtime
        if rt.api_play is not None:
            rt.api_play.cancel()

    def speak(self, call: Call, text: str, voice: str, language: str, loop: bool) -> None:
        """Speak text to the far end in the background (``POST Call/{uuid}/Speak/``)."""
        rt: CallRuntime = call.runtime
        if rt.api_speak is not None:
            rt.api_speak.cancel()
        speech = (text, voice, language)
        rt.api_speak = self._ctx.spawn(self._api_play(rt, [], speech, None, loop), "speak")

    def stop_speak(self, call: Call) -> None:
        """Stop the API Speak on the call (``DELETE Call/{uuid}/Speak/``)."""
        rt: CallRuntime = call.runtime
        if rt.api_speak is not None:
            rt.api_speak.cancel()

    def play_to_call(self, call_uuid: str, urls: list[str]) -> None:
        """Play to a conference or multiparty member's call, if it is live."""
        call = self._ctx.store.calls.get(call_uuid)
        if call is not None and call.status == "in-progress":
            self.play(call, urls, None, False)

    def stop_play_to_call(self, call_uuid: str) -> None:
        """Stop playing to a member's call, if it still runs."""
        call = self._ctx.store.calls.get(call_uuid)
        if call is not None and call.runtime is not None:
            self.stop_play(call)

    def speak_to_call(self, call_uuid: str, text: str, voice: str, language: str) -> None:
        """Speak to a conference or multiparty member's call, if it is live."""
        call = self._ctx.store.calls.get(call_uuid)
        if call is not None and call.status == "in-progress":
            self.speak(call, text, voice, language, False)

    def stop_speak_to_call(self, call_uuid: str) -> None:
        """Stop speaking to a member's call, if it still runs."""
        call = self._ctx.store.calls.get(call_uuid)
        if call is not None and call.runtime is not None:
            self.stop_speak(call)

    async def _api_play(
        self,
        rt: CallRuntime,
        urls: list[str],
        speech: tuple[str, str, str] | None,
        length_s: int | None,
        loop: bool,
    ) -> None:
        parts: list[PCM] = []
        if speech is not None:
            parts.append(await self._ctx.tts.synthesize(*speech))
        for url in urls:
            try:
                parts.append(await media.fetch_audio(self._ctx.http, url))
            except MediaError as exc:
                log.warning("emulator: call %s: play %s", rt.call.call_uuid, exc)
        pcm = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int16)
        if pcm.shape[0] == 0:
            return
        deadline = None if length_s is None else asyncio.get_running_loop().time() + length_s
        cursor = Cursor()
        while True:
            chunk = pcm
            if deadline is not None:
                left = int((deadline - asyncio.get_running_loop().time()) * RATE)
                if left <= 0:
                    return
                chunk = pcm[:left]
            await self.play_once(rt, chunk, cursor)
            if not loop:
                return
