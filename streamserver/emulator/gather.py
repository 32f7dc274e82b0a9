"""``<GetDigits>`` and ``<GetInput>`` on a simulated call: play the nested prompts, let the
scripted callee enter their next answer, send it to ``action``.

Each listening attempt plays the prompts (and a beep with ``playBeep``), takes the
callee's next input answer (:mod:`.outcomes`; none left: they enter nothing) and the
``caller_dtmf`` presses that fall in it, works out what that adds up to
(:func:`.keypad.collect`), waits on the call's clock until then, and either submits or
tries again (``<GetDigits retries>``); with nothing entered the call goes on with the next
element. Submitting requests ``action`` with ``Digits`` (``<GetInput>``: ``InputType``,
``Digits``, ``Speech``, ``SpeechConfidenceScore``, ``BargeIn``); with ``redirect="true"``
(the default) the call continues with the XML it returns, else with the next element.
An invalid key (``validDigits``) plays ``invalidDigitsSound`` and ends the attempt.
"""

from __future__ import annotations

import asyncio
import logging

import httpx
import numpy as np

from . import media
from .callbacks import Webhooks
from .callstate import Action, CallRuntime, Fetch
from .context import SimContext
from .keypad import KEY_DELAY_S, DigitRules, Entry, Press, answer_presses, collect, speech_span
from .media import RATE, MediaError
from .outcomes import InputAnswer
from .prompts import Prompts
from .xml_base import PlayVerb, Prompt
from .xml_input import GetDigitsVerb, GetInputVerb

__all__ = ["Gather"]

log = logging.getLogger("streamserver.emulator")

#: ``playBeep``: a quarter second at 1 kHz.
_BEEP = (np.sin(2 * np.pi * 1000 * np.arange(RATE // 4) / RATE) * 8000).astype(np.int16)


class Gather:
    """Runs the input elements of a call's XML."""

    def __init__(self, ctx: SimContext, hooks: Webhooks, prompts: Prompts) -> None:
        self._ctx = ctx
        self._hooks = hooks
        self._prompts = prompts

    async def get_digits(self, rt: CallRuntime, verb: GetDigitsVerb) -> Action | None:
        """Run ``<GetDigits>``; return what the call does next (None: the next element)."""
        rules = DigitRules(
            first_timeout=verb.timeout_s * RATE,
            digit_timeout=verb.digit_timeout_s * RATE,
            finish_on_key=verb.finish_on_key,
            num_digits=verb.num_digits,
            valid_digits=verb.valid_digits,
        )
        for _attempt in range(verb.retries):
            listen_from, prompts_end = await self._prompt(rt, verb.prompts, verb.play_beep)
            answer = rt.inputs.popleft() if rt.inputs else InputAnswer()
            presses = self._presses(answer, listen_from, prompts_end)
            entry = collect(presses, listen_from=listen_from, prompts_end=prompts_end, rules=rules)
            await self._until(rt, entry.end)
            log.info("emulator: call %s: <GetDigits> %s %r", rt.call.call_uuid, entry.kind,
                     entry.digits)  # fmt: skip
            if entry.kind == "digits":
                params = {"Digits": entry.digits}
                return await self._submit(rt, verb, "GetDigits", params)
            if entry.kind == "invalid" and verb.invalid_digits_sound:
                await self._play_url(rt, verb.invalid_digits_sound)
        return None

    async def get_input(self, rt: CallRuntime, verb: GetInputVerb) -> Action | None:
        """Run ``<GetInput>``; return what the call does next (None: the next element)."""
        listen_from, prompts_end = await self._prompt(rt, verb.prompts, False)
        answer = rt.inputs.popleft() if rt.inputs else InputAnswer()
        deadline = prompts_end + verb.execution_timeout_s * RATE
        entry = Entry("timeout", "", deadline)
        if "dtmf" in verb.input_type:
            rules = DigitRules(
                first_timeout=verb.execution_timeout_s * RATE,
                digit_timeout=verb.digit_end_timeout_s * RATE,
                finish_on_key=verb.finish_on_key,
                num_digits=verb.num_digits,
            )
            presses = self._presses(answer, listen_from, prompts_end)
            entry = collect(presses, listen_from=listen_from, prompts_end=prompts_end, rules=rules)
        spoke = prompts_end + round(KEY_DELAY_S * RATE)
        speech = (
            "speech" in verb.input_type
            and bool(answer.speech)
            and spoke <= deadline
            and (entry.first is None or entry.first > spoke)
        )
        if speech:
            end = spoke + speech_span(answer.speech, RATE) + verb.speech_end_timeout_s * RATE
            entry = Entry("digits", "", end, spoke)
        await self._until(rt, entry.end)
        kind = "speech" if speech else entry.kind
        log.info("emulator: call %s: <GetInput> %s %r", rt.call.call_uuid, kind,
                 answer.speech if speech else entry.digits)  # fmt: skip
        if entry.kind != "digits":
            return None
        params = {
            "InputType": "speech" if speech else "dtmf",
            "Digits": "" if speech else entry.digits,
            "Speech": answer.speech if speech else "",
            # The simulated recognizer hears exactly what the callee was scripted to say.
            "SpeechConfidenceScore": "1.0" if speech else "",
            "BargeIn": "true" if entry.first is not None and entry.first < prompts_end else "false",
        }
        return await self._submit(rt, verb, "GetInput", params)

    def _presses(self, answer: InputAnswer, listen_from: int, prompts_end: int) -> list[Press]:
        """The callee's scheduled presses from ``listen_from`` on, and their answer's keys."""
        scheduled = [
            Press(round(at * RATE), digit)
            for at, digit in self._ctx.settings.caller_dtmf
            if at * RATE >= listen_from
        ]
        typed = answer_presses(answer.digits, prompts_end + round(KEY_DELAY_S * RATE), RATE)
        return scheduled + typed

    async def _prompt(
        self, rt: CallRuntime, prompts: tuple[Prompt, ...], beep: bool
    ) -> tuple[int, int]:
        """Play the prompts (and the beep); return (listening start, prompts end) samples."""
        rt.begin_voice()
        listen_from = rt.position()
        for prompt in prompts:
            if isinstance(prompt, PlayVerb):
                try:
                    pcm = await media.fetch_audio(self._ctx.http, prompt.url)
                except MediaError as exc:
                    log.warning("emulator: call %s: <Play> %s", rt.call.call_uuid, exc)
                    continue
            else:
                pcm = await self._ctx.tts.synthesize(prompt.text, prompt.voice, prompt.language)
            await self._prompts.play_blocking(rt, pcm, prompt.loop or 1)
        if beep:
            await self._prompts.play_blocking(rt, _BEEP, 1)
        played = prompts or beep
        return listen_from, max(listen_from, rt.xml_cursor.end) if played else listen_from

    async def _play_url(self, rt: CallRuntime, url: str) -> None:
        try:
            pcm = await media.fetch_audio(self._ctx.http, url)
        except MediaError as exc:
            log.warning("emulator: call %s: invalidDigitsSound %s", rt.call.call_uuid, exc)
            return
        await self._prompts.play_blocking(rt, pcm, 1)

    async def _until(self, rt: CallRuntime, pos: int) -> None:
        """Wait until sample ``pos`` of the callee's timeline."""
        loop = asyncio.get_running_loop()
        await asyncio.sleep(max(0.0, rt.loop_time_of(pos) - loop.time()))

    async def _submit(
        self,
        rt: CallRuntime,
        verb: GetDigitsVerb | GetInputVerb,
        event: str,
        params: dict[str, str],
    ) -> Action | None:
        """Send what was entered to ``action``: the next document, or just a request."""
        if not verb.action:
            return None
        if verb.redirect:
            return Fetch(verb.action, verb.method, event, params)
        query = self._hooks.call_params(rt.call, event)
        query.update(params)
        try:
            await self._hooks.request(verb.action, verb.method, query)
        except httpx.HTTPError as exc:
            log.warning("emulator: call %s: %s action %s failed: %s", rt.call.call_uuid, event,
                        verb.action, exc)  # fmt: skip
        return None
