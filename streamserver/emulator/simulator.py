"""The call simulator: what happens on the emulated Plivo's side of every call.

Placing a call through the API starts one task per call leg: wait for a CPS slot ("call
queued"), ring (``ring_url`` callback), answer, then fetch the answer URL (signed with
``X-Plivo-Signature-V3``, ``-Ma-V3`` and the nonce, plus the legacy V2 pair) and run the
returned XML: ``<Stream>``, ``<Play>``, ``<Speak>``, ``<Wait>``, ``<Record>``, ``<Hangup>``,
``<Redirect>``, ``<DTMF>``, ``<Conference>`` and ``<MultiPartyCall>``. At the end the CDR is
filled in and the hangup callback sent.

The far end of each call (the person who answered) is simulated too: from the moment of
answer they "say" an audio file (``caller_audio``, or one per dialled number), press DTMF
digits at scripted times, and hang up some seconds after their audio ends. This timeline is
what streams carry (through :class:`~.streamclient.PlivoStreamClient`), what ``<Record>`` and
the Record API write to disk, and what ``<Wait silence>`` listens to. What the far end
*hears* (``<Play>``, ``<Speak>``, the API's Play/Speak) is kept as the call's outbound track
(stereo recordings, ``audioTrack="outbound"`` streams); on bidirectional streams the stream
client records what the server played, in its report.

Hangup causes the emulator reports (name, code, source): the reference's
``Normal Hangup`` 4000, ``End Of XML Instructions`` 4010, ``Canceled`` 1000 and
``Invalid Destination Address`` 2000, plus its own ``Invalid Answer XML`` 8011,
``Answer URL Unreachable`` 8001, ``Scheduled Hangup`` 5010 and ``Time Limit Reached`` 5020.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
import re
import tempfile
import time
from collections import deque
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import httpx
import numpy as np
import soundfile as sf

from ..audio import PCM
from ..signature import HEADER_NONCE_V2, HEADER_V2, compute_v2, sign_headers
from . import media
from .media import RATE, MediaError, Tts
from .settings import EmulatorSettings
from .store import (
    Call,
    Conference,
    ConferenceMember,
    MultiPartyCall,
    Participant,
    Recording,
    Store,
    Stream,
    cdr_time,
    new_api_id,
    new_uuid,
    session_time,
)
from .streamclient import PlivoStreamClient, StreamClientOptions, StreamReport
from .xml import (
    ConferenceVerb,
    DtmfVerb,
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
    parse_extra_headers,
)

__all__ = ["HangupCause", "Simulator"]

log = logging.getLogger("streamserver.emulator")

_FRAME = RATE // 50
#: A never-hanging-up callee's stream is fed at most this much audio (memory bound).
_MAX_STREAM_AUDIO_S = 600.0
_STREAM_CONNECT_ATTEMPTS = 3  # Plivo retries a failed stream connect twice
_STREAM_RETRY_DELAY_S = 0.25
_STOP_TIMEOUT_S = 10.0
_MP3 = "MP3" in sf.available_formats()


class HangupCause(NamedTuple):
    """Why a call ended, as its CDR and hangup callback report it."""

    name: str
    code: int
    source: str


NORMAL_CALLEE = HangupCause("Normal Hangup", 4000, "Callee")
NORMAL_API = HangupCause("Normal Hangup", 4000, "API Request")
NORMAL_XML = HangupCause("Normal Hangup", 4000, "Answer XML")
NORMAL_PLIVO = HangupCause("Normal Hangup", 4000, "Plivo")
END_OF_XML = HangupCause("End Of XML Instructions", 4010, "Plivo")
CANCELED = HangupCause("Canceled", 1000, "API Request")
INVALID_DESTINATION = HangupCause("Invalid Destination Address", 2000, "Plivo")
INVALID_XML = HangupCause("Invalid Answer XML", 8011, "Plivo")
ANSWER_URL_FAILED = HangupCause("Answer URL Unreachable", 8001, "Plivo")
SCHEDULED = HangupCause("Scheduled Hangup", 5010, "Answer XML")
TIME_LIMIT = HangupCause("Time Limit Reached", 5020, "Plivo")
SHUTDOWN = HangupCause("Normal Hangup", 4000, "Plivo")

_DESTINATION_RE = re.compile(r"^(\+?\d{2,18}|sip:[^@\s]+@[^@\s]+)$")


class _Hangup(Exception):
    """Raised inside a call's XML run to end the call with ``cause``."""

    def __init__(self, cause: HangupCause) -> None:
        super().__init__(cause.name)
        self.cause = cause


@dataclass
class _Fetch:
    """Fetch a document and run it (answer URL, Redirect, Record action, transfer)."""

    url: str
    method: str
    event: str
    params: dict[str, str] = field(default_factory=dict)


@dataclass
class _JoinMpc:
    """Join a multiparty call directly (participants added through the API)."""

    mpc: MultiPartyCall
    options: dict[str, Any]


_Action = _Fetch | _JoinMpc


@dataclass
class _Segment:
    """Audio the far end hears from ``start`` (samples since answer); truncated on stop."""

    start: int
    pcm: PCM


@dataclass
class _Cursor:
    """Where a sequence of prompts has played up to (samples on the callee's timeline)."""

    end: int = 0


@dataclass
class _CallRecording:
    """A recording of one call in progress (Record API, ``recordSession``, MPC member)."""

    recording_id: str
    url: str
    file_format: str
    stereo: bool
    start_pos: int
    start_wall: float
    callback_url: str
    callback_method: str
    mpc: MultiPartyCall | None = None
    timer: asyncio.TimerHandle | None = None
    done: bool = False


@dataclass
class _GroupRecording:
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


@dataclass
class _StreamRuntime:
    task: asyncio.Task[None] | None = None
    client: PlivoStreamClient | None = None
    report: StreamReport | None = None
    stopping: bool = False
    done: asyncio.Event = field(default_factory=asyncio.Event)


class _CallRuntime:
    """The live state of one call leg."""

    def __init__(self, call: Call, dispatch_at: float) -> None:
        self.call = call
        self.dispatch_at = dispatch_at
        self.task: asyncio.Task[None] | None = None
        self.xml_task: asyncio.Task[_Action | None] | None = None
        self.initial: _Action | None = None
        self.interrupt: _Action | None = None
        self.end: HangupCause | None = None
        #: Loop time of sample 0 of the callee's audio (see Simulator._begin_voice).
        self.voice_t0: float | None = None
        self.caller: PCM = np.zeros(0, dtype=np.int16)
        self.hangup_pos: int | None = None
        self.outbound: list[_Segment] = []
        self.xml_cursor = _Cursor()
        self.streams: dict[str, Stream] = {}
        self.recordings: list[_CallRecording] = []
        self.timers: list[asyncio.TimerHandle] = []
        self.api_play: asyncio.Task[None] | None = None
        self.api_speak: asyncio.Task[None] | None = None
        self.conference: tuple[Conference, ConferenceMember] | None = None
        self.mpc: tuple[MultiPartyCall, Participant] | None = None
        self.leave = asyncio.Event()
        self.leave_cause = ""
        self.digits_sent: list[str] = []
        self.answered = asyncio.Event()
        self.ended = asyncio.Event()

    def position(self) -> int:
        """Samples of the callee's timeline elapsed (0 before they start talking)."""
        if self.voice_t0 is None:
            return 0
        return max(0, int((asyncio.get_running_loop().time() - self.voice_t0) * RATE))

    def loop_time_of(self, pos: int) -> float:
        assert self.voice_t0 is not None
        return self.voice_t0 + pos / RATE

    def caller_slice(self, start: int, end: int) -> PCM:
        """What the far end says in ``[start, end)``, silence past their audio."""
        out = np.zeros(max(0, end - start), dtype=np.int16)
        src = self.caller[start:end]
        out[: src.shape[0]] = src
        return out

    def outbound_slice(self, start: int, end: int) -> PCM:
        """What the far end hears in ``[start, end)`` from Play/Speak, mixed."""
        mix = np.zeros(max(0, end - start), dtype=np.int32)
        for seg in self.outbound:
            a, b = max(start, seg.start), min(end, seg.start + seg.pcm.shape[0])
            if a < b:
                mix[a - start : b - start] += seg.pcm[a - seg.start : b - seg.start]
        return np.clip(mix, -32768, 32767).astype(np.int16)


class Simulator:
    """Runs every call of the emulated account; the REST app calls into it.

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
        #: Base of ``recording_url``: settings.public_url, else set by the server once bound.
        self.public_url = settings.public_url.rstrip("/")
        self.tts = Tts(settings.tts)
        self._http = http
        self._own_http = http is None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._dispatches: deque[float] = deque()
        self._tmpdir: tempfile.TemporaryDirectory[str] | None = None
        self.recordings_dir = Path(settings.recordings_dir) if settings.recordings_dir else None
        self._closing = False

    # --- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Create the HTTP client and the recordings directory."""
        if self._http is None:
            self._http = httpx.AsyncClient(
                timeout=self.settings.http_timeout_s,
                follow_redirects=True,
                trust_env=False,  # webhooks go straight to the app, never via a proxy
                headers={"User-Agent": "PlivoHTTPClient/emulator"},
            )
        if self.recordings_dir is None:
            self._tmpdir = tempfile.TemporaryDirectory(prefix="plivo-emulator-recordings-")
            self.recordings_dir = Path(self._tmpdir.name)
        else:
            self.recordings_dir.mkdir(parents=True, exist_ok=True)

    async def aclose(self) -> None:
        """Hang up every call, wait for their cleanup, and release resources."""
        self._closing = True
        for call in list(self.store.calls.values()):
            if not call.ended and call.runtime is not None:
                self._end(call.runtime, SHUTDOWN)
        pending = [
            c.runtime.task for c in self.store.calls.values() if c.runtime and c.runtime.task
        ]
        if pending:
            await asyncio.wait(pending, timeout=_STOP_TIMEOUT_S)
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=_STOP_TIMEOUT_S)
        if self._own_http and self._http is not None:
            await self._http.aclose()
        if self._tmpdir is not None:
            self._tmpdir.cleanup()
            self._tmpdir = None

    @property
    def http(self) -> httpx.AsyncClient:
        if self._http is None:
            raise RuntimeError("Simulator.start() was not called")
        return self._http

    def spawn(self, coro: Coroutine[Any, Any, Any], what: str) -> asyncio.Task[Any]:
        """Run ``coro`` in the background; failures are logged, never lost."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)

        def done(t: asyncio.Task[Any]) -> None:
            self._tasks.discard(t)
            if not t.cancelled() and t.exception() is not None:
                log.error("emulator: %s failed", what, exc_info=t.exception())

        task.add_done_callback(done)
        return task

    # --- helpers for callers (tests, demo) ------------------------------------------------

    async def wait_call_ended(self, call_uuid: str, timeout_s: float = 30.0) -> Call:
        """Wait until the call has ended and its cleanup is done; return it."""
        call = self.store.calls[call_uuid]
        if call.runtime is not None:
            await asyncio.wait_for(call.runtime.ended.wait(), timeout_s)
        return call

    async def wait_call_answered(self, call_uuid: str, timeout_s: float = 30.0) -> Call:
        """Wait until the call is answered (or has ended); return it."""
        call = self.store.calls[call_uuid]
        rt: _CallRuntime = call.runtime
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

    def stream_report(self, stream_id: str) -> StreamReport | None:
        """The stream client's report (frames sent, what the caller heard...), once ended."""
        stream = self.store.streams.get(stream_id)
        if stream is None or stream.runtime is None:
            return None
        report: StreamReport | None = stream.runtime.report
        return report

    def streams_of(self, call_uuid: str) -> list[Stream]:
        """Every stream of a call, oldest first (reports via :meth:`stream_report`)."""
        return [s for s in self.store.streams.values() if s.call_uuid == call_uuid]

    def digits_sent(self, call_uuid: str) -> list[str]:
        """DTMF sent to the far end of a call (API and ``<DTMF>``), in order."""
        call = self.store.calls[call_uuid]
        return list(call.runtime.digits_sent) if call.runtime else []

    # --- HTTP out ---------------------------------------------------------------------------

    def _signed(self, url: str, method: str, params: Mapping[str, str] | None) -> dict[str, str]:
        token = self.settings.auth_token
        headers = sign_headers(url, token, params or None, method=method)
        # The legacy V2 pair still rides along on Plivo's webhooks.
        nonce2 = headers["X-Plivo-Signature-V3-Nonce"]
        headers[HEADER_V2] = compute_v2(url, nonce2, token)
        headers[HEADER_NONCE_V2] = nonce2
        return headers

    async def request(self, url: str, method: str, params: Mapping[str, str]) -> httpx.Response:
        """A signed webhook request: form body for POST, query parameters for GET."""
        method = method.upper()
        headers = self._signed(url, method, params)
        if method == "GET":
            return await self.http.get(url, params=dict(params), headers=headers)
        return await self.http.post(url, data=dict(params), headers=headers)

    async def post_json(self, url: str, method: str, payload: Mapping[str, Any]) -> None:
        """Deliver an async API reply (JSON) to its ``callback_url``, signed over the URL."""
        try:
            if method.upper() == "GET":
                flat = {k: str(v) for k, v in payload.items()}
                await self.http.get(url, params=flat, headers=self._signed(url, "GET", flat))
            else:
                await self.http.post(
                    url, json=dict(payload), headers=self._signed(url, "POST", None)
                )
        except httpx.HTTPError as exc:
            log.warning("emulator: async reply to %s failed: %s", url, exc)

    def callback(self, url: str, method: str, params: Mapping[str, str], what: str) -> None:
        """Fire a signed callback in the background (if callbacks are on and a URL is set)."""
        if not url or not self.settings.callbacks or self._http is None:
            return

        async def send() -> None:
            try:
                response = await self.request(url, method, params)
                if response.status_code >= 400:
                    log.warning("emulator: %s callback to %s got HTTP %d", what, url,
                                response.status_code)  # fmt: skip
            except httpx.HTTPError as exc:
                log.warning("emulator: %s callback to %s failed: %s", what, url, exc)

        self.spawn(send(), f"{what} callback")

    def _call_params(self, call: Call, event: str) -> dict[str, str]:
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
            "ParentAuthID": self.settings.auth_id,
            "RequestUUID": call.request_uuid,
            "SessionStart": session_time(started),
            "To": call.to_number.lstrip("+"),
        }
        for key, value in call.sip_headers.items():
            params[f"X-PH-{key}"] = value
        return params

    # --- making calls ---------------------------------------------------------------------

    def _cps_slot(self) -> float:
        """Loop time at which the next call may be dispatched (sliding one-second window)."""
        now = asyncio.get_running_loop().time()
        cps = self.settings.calls_per_second
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
            slot = self._cps_slot()
            call.status = "queued" if slot > now + 0.001 else "ringing"
            self._launch(call, slot)
            calls.append(call)
        return calls

    def _launch(self, call: Call, slot: float, initial: _Action | None = None) -> _CallRuntime:
        rt = _CallRuntime(call, slot)
        rt.initial = initial
        call.runtime = rt
        self.store.calls[call.call_uuid] = call
        rt.task = self.spawn(self._run_call(rt), f"call {call.call_uuid}")
        log.info(
            "emulator: call %s from %s to %s %s",
            call.call_uuid, call.from_number, call.to_number,
            "queued" if call.status == "queued" else "fired",
        )  # fmt: skip
        return rt

    async def _run_call(self, rt: _CallRuntime) -> None:
        call = rt.call
        loop = asyncio.get_running_loop()
        try:
            delay = rt.dispatch_at - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            call.status = "ringing"
            self.callback(call.ring_url, call.ring_method, self._call_params(call, "Ring"), "ring")
            if self.settings.ring_s > 0:
                await asyncio.sleep(self.settings.ring_s)
            if not _DESTINATION_RE.match(call.to_number):
                rt.end = INVALID_DESTINATION
                return
            await self._answer(rt)
            action: _Action | None = rt.initial or _Fetch(
                call.answer_url, call.answer_method, "StartApp"
            )
            while action is not None:
                rt.xml_task = loop.create_task(self._run_action(rt, action))
                try:
                    action = await rt.xml_task
                except asyncio.CancelledError:
                    task = asyncio.current_task()
                    if (task is not None and task.cancelling()) or rt.interrupt is None:
                        raise
                    action, rt.interrupt = rt.interrupt, None  # transferred
            rt.end = rt.end or END_OF_XML
        except _Hangup as exc:
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

    async def _answer(self, rt: _CallRuntime) -> None:
        call = rt.call
        path = self.settings.audio_for(call.to_number)
        try:
            rt.caller = await asyncio.to_thread(media.load_audio_file, path)
        except MediaError as exc:
            log.warning("emulator: call %s: %s; the callee stays silent", call.call_uuid, exc)
        call.status = "in-progress"
        call.answer_time = time.time()
        rt.answered.set()
        if call.send_digits:
            rt.digits_sent.append(call.send_digits)
        self._timer(rt, float(call.time_limit_s), TIME_LIMIT)
        log.info("emulator: call %s answered (caller audio %s, %.1f s)", call.call_uuid,
                 path.name, rt.caller.shape[0] / RATE)  # fmt: skip

    def _begin_voice(self, rt: _CallRuntime) -> None:
        """The callee starts talking: sample 0 of their audio is now.

        That is when the first answer XML starts to run, so a ``<Stream>`` at its top
        carries the callee's audio from its very first sample (deterministic for tests),
        however long the answer URL took.
        """
        if rt.voice_t0 is not None:
            return
        rt.voice_t0 = asyncio.get_running_loop().time()
        after = self.settings.caller_hangup_after_audio_s
        if after >= 0:
            rt.hangup_pos = rt.caller.shape[0] + int(after * RATE)
            self._timer(rt, rt.hangup_pos / RATE, NORMAL_CALLEE)

    def _timer(self, rt: _CallRuntime, delay_s: float, cause: HangupCause) -> None:
        handle = asyncio.get_running_loop().call_later(delay_s, self._end, rt, cause)
        rt.timers.append(handle)

    def _end(self, rt: _CallRuntime, cause: HangupCause) -> None:
        """Request the end of a call (idempotent; the first cause wins)."""
        if rt.call.ended or rt.end is not None:
            return
        rt.end = cause
        if rt.task is not None and rt.task is not asyncio.current_task():
            rt.task.cancel()

    async def _finish_call(self, rt: _CallRuntime) -> None:
        call = rt.call
        cause = rt.end or END_OF_XML
        rt.end = cause
        call.end_time = time.time()
        if call.answer_time is not None:
            call.status = "completed"
        elif cause is CANCELED or cause is NORMAL_API or cause is SHUTDOWN:
            call.status = "cancel"
            cause = rt.end = CANCELED if cause is NORMAL_API else cause
        else:
            call.status = "failed"
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
                await self.stop_stream(stream)
            for rec in list(rt.recordings):
                await self._finish_call_recording(rt, rec)
        params = self._call_params(call, "Hangup")
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
        hangup_url = call.hangup_url or call.answer_url
        self.callback(hangup_url, call.hangup_method, params, "hangup")
        rt.ended.set()
        log.info(
            "emulator: call %s ended: %s (%d, %s) after %d s",
            call.call_uuid, cause.name, cause.code, cause.source, duration,
        )  # fmt: skip

    # --- running documents ----------------------------------------------------------------

    async def _run_action(self, rt: _CallRuntime, action: _Action) -> _Action | None:
        if isinstance(action, _JoinMpc):
            self._begin_voice(rt)
            await self._in_mpc(rt, action.mpc, action.options)
            raise _Hangup(NORMAL_PLIVO)
        text = await self._fetch_document(rt, action)
        try:
            verbs = parse_answer_xml(text)
        except XmlError as exc:
            log.warning("emulator: call %s: invalid XML from %s: %s", rt.call.call_uuid,
                        action.url, exc)  # fmt: skip
            raise _Hangup(INVALID_XML) from None
        self._begin_voice(rt)
        for verb in verbs:
            follow = await self._run_verb(rt, verb)
            if follow is not None:
                return follow
        return None

    async def _fetch_document(self, rt: _CallRuntime, fetch: _Fetch) -> str:
        call = rt.call
        params = self._call_params(call, fetch.event)
        params.update(fetch.params)
        targets = [(fetch.url, fetch.method)]
        if fetch.event == "StartApp" and call.fallback_url:
            targets.append((call.fallback_url, call.fallback_method))
        problem = ""
        for url, method in targets:
            try:
                response = await self.request(url, method, params)
            except httpx.HTTPError as exc:
                problem = f"{url}: {exc or type(exc).__name__}"
                continue
            if 200 <= response.status_code < 300:
                return response.text
            problem = f"{url}: HTTP {response.status_code}"
        log.warning("emulator: call %s: cannot fetch XML (%s)", call.call_uuid, problem)
        raise _Hangup(ANSWER_URL_FAILED)

    async def _run_verb(self, rt: _CallRuntime, verb: Verb) -> _Action | None:
        if isinstance(verb, StreamVerb):
            stream = self.start_stream(rt.call, verb)
            if verb.keep_call_alive:
                assert stream.runtime is not None
                await stream.runtime.done.wait()
        elif isinstance(verb, PlayVerb):
            try:
                pcm = await media.fetch_audio(self.http, verb.url)
            except MediaError as exc:
                log.warning("emulator: call %s: <Play> %s", rt.call.call_uuid, exc)
                return None
            await self._play_blocking(rt, pcm, verb.loop)
        elif isinstance(verb, SpeakVerb):
            pcm = await self.tts.synthesize(verb.text, verb.voice, verb.language)
            await self._play_blocking(rt, pcm, verb.loop)
        elif isinstance(verb, WaitVerb):
            await self._wait(rt, verb)
        elif isinstance(verb, RecordVerb):
            return await self._record_verb(rt, verb)
        elif isinstance(verb, HangupVerb):
            if verb.schedule_s > 0:
                self._timer(rt, float(verb.schedule_s), SCHEDULED)
            else:
                raise _Hangup(NORMAL_XML)
        elif isinstance(verb, RedirectVerb):
            return _Fetch(verb.url, verb.method, "Redirect")
        elif isinstance(verb, DtmfVerb):
            rt.digits_sent.append(verb.digits)
            await asyncio.sleep(0.1 * len(verb.digits))
        elif isinstance(verb, ConferenceVerb):
            await self._in_conference(rt, verb)
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
            mpc = self._mpc_by_name(verb.name)
            await self._in_mpc(rt, mpc, options)
        return None

    async def _play_blocking(self, rt: _CallRuntime, pcm: PCM, loop: int) -> None:
        """Play ``pcm`` to the far end ``loop`` times (0: until the call moves on)."""
        count = 0
        while loop == 0 or count < loop:
            count += 1
            await self._play_once(rt, pcm, rt.xml_cursor)

    async def _play_once(self, rt: _CallRuntime, pcm: PCM, cursor: _Cursor) -> None:
        """Play ``pcm`` from now, or right after what ``cursor`` last played (no gap)."""
        if pcm.shape[0] == 0:
            await asyncio.sleep(0)
            return
        self._begin_voice(rt)
        seg = _Segment(max(rt.position(), cursor.end), pcm)
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

    async def _wait(self, rt: _CallRuntime, verb: WaitVerb) -> None:
        if not verb.silence:
            await asyncio.sleep(verb.length_s)
            return
        # Wait for the far end to be silent for minSilence, at most ``length`` seconds.
        start = rt.position()
        limit = start + verb.length_s * RATE
        need = max(1, math.ceil(verb.min_silence_ms / 20))
        quiet = media.silent_frames(rt.caller_slice(start, limit))
        end = _end_of_silence_run(quiet, need)
        target = limit if end is None else start + end * _FRAME
        await asyncio.sleep(max(0.0, rt.loop_time_of(target) - asyncio.get_running_loop().time()))

    # --- streams --------------------------------------------------------------------------

    def start_stream(self, call: Call, spec: StreamVerb) -> Stream:
        """Start a stream on an answered call (from ``<Stream>`` or the REST API)."""
        rt: _CallRuntime = call.runtime
        self._begin_voice(rt)
        stream = Stream(
            auth_id=self.settings.auth_id,
            stream_id=new_uuid(),
            call_uuid=call.call_uuid,
            service_url=spec.url,
            audio_track=spec.audio_track,
            bidirectional=spec.bidirectional,
            content_type=spec.content_type,
            stream_timeout_s=spec.stream_timeout_s,
            status_callback_url=spec.status_callback_url,
            status_callback_method=spec.status_callback_method,
            extra_headers=spec.extra_headers,
            keep_call_alive=spec.keep_call_alive,
        )
        srt = _StreamRuntime()
        stream.runtime = srt
        self.store.streams[stream.stream_id] = stream
        rt.streams[stream.stream_id] = stream
        srt.task = self.spawn(self._run_stream(rt, stream), f"stream {stream.stream_id}")
        return stream

    async def stop_stream(self, stream: Stream) -> None:
        """Stop a stream (``stop`` sent, socket closed) and wait until it has ended."""
        srt: _StreamRuntime = stream.runtime
        srt.stopping = True
        if srt.client is not None:
            await srt.client.aclose()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(srt.done.wait(), _STOP_TIMEOUT_S)

    def _stream_options(
        self, rt: _CallRuntime, stream: Stream, started: Any
    ) -> StreamClientOptions:
        pos = rt.position() // _FRAME * _FRAME
        if rt.hangup_pos is not None:
            end = max(pos, rt.hangup_pos)
        else:
            end = pos + int(min(stream.stream_timeout_s, _MAX_STREAM_AUDIO_S) * RATE)
        inbound = rt.caller_slice(pos, end)
        outbound = rt.outbound_slice(pos, end) if stream.audio_track != "inbound" else None
        dtmf = [
            (at - pos / RATE, digit)
            for at, digit in self.settings.caller_dtmf
            if pos <= at * RATE < end
        ]
        return StreamClientOptions(
            url=stream.service_url,
            inbound=inbound,
            source_rate=RATE,
            content_type=stream.content_type,
            tracks=stream.audio_track,
            outbound=outbound,
            bidirectional=stream.bidirectional,
            extra_headers=parse_extra_headers(stream.extra_headers),
            dtmf=dtmf,
            speed=1.0,
            send_stop=True,
            call_id=rt.call.call_uuid,
            stream_id=stream.stream_id,
            account_id=self.settings.auth_id,
            auth_token=self.settings.auth_token,
            on_progress=started,
        )

    async def _run_stream(self, rt: _CallRuntime, stream: Stream) -> None:
        srt: _StreamRuntime = stream.runtime
        loop = asyncio.get_running_loop()
        error = ""

        def started(frames_sent: int, frames_total: int) -> None:
            if stream.start_time is None:
                stream.start_time = time.time()
                stream.status = "in-progress"
                log.info("emulator: stream %s of call %s connected to %s", stream.stream_id,
                         rt.call.call_uuid, stream.service_url)  # fmt: skip
                self._stream_callback(rt, stream, "StartStream")

        try:
            for attempt in range(_STREAM_CONNECT_ATTEMPTS):
                if srt.stopping:
                    break
                try:
                    client = PlivoStreamClient(self._stream_options(rt, stream, started))
                except ValueError as exc:
                    error = str(exc)
                    break
                srt.client = client
                timer = loop.call_later(stream.stream_timeout_s, self._stream_timeout, client)
                try:
                    report = await client.run()
                finally:
                    timer.cancel()
                srt.report = report
                if report.connected:
                    if not report.ok and not srt.stopping and report.closed_by_server is False:
                        error = "; ".join(report.errors) or "connection lost"
                    break
                error = "; ".join(report.errors) or "connection failed"
                log.warning("emulator: stream %s connect attempt %d failed: %s",
                            stream.stream_id, attempt + 1, error)  # fmt: skip
                if attempt + 1 < _STREAM_CONNECT_ATTEMPTS and not srt.stopping:
                    await asyncio.sleep(_STREAM_RETRY_DELAY_S)
        finally:
            stream.end_time = time.time()
            connected = srt.report is not None and srt.report.connected
            if srt.stopping and not connected:
                error = ""  # stopped before it connected: a stop, not a drop
            stream.status = "stopped" if connected or not error else "failed"
            event = "DroppedStream" if error else "StopStream"
            self._stream_callback(rt, stream, event, error)
            rt.streams.pop(stream.stream_id, None)
            srt.done.set()
            final = srt.report
            log.info(
                "emulator: stream %s ended (%s): %d frames sent%s",
                stream.stream_id, event, final.frames_sent if final else 0,
                f", {error}" if error else "",
            )  # fmt: skip

    def _stream_timeout(self, client: PlivoStreamClient) -> None:
        self.spawn(client.aclose(), "stream timeout")

    def _stream_callback(
        self, rt: _CallRuntime, stream: Stream, event: str, error: str = ""
    ) -> None:
        params = {
            "CallUUID": rt.call.call_uuid,
            "Event": event,
            "From": rt.call.from_number.lstrip("+"),
            "ServiceURL": stream.service_url,
            "StreamID": stream.stream_id,
            "Timestamp": cdr_time(time.time()) or "",
            "To": rt.call.to_number.lstrip("+"),
        }
        if error:
            params["Error"] = error
        self.callback(
            stream.status_callback_url, stream.status_callback_method, params, "stream status"
        )

    # --- API actions on live calls --------------------------------------------------------

    async def hangup(self, call: Call) -> None:
        """Hang up a call (``DELETE Call/{uuid}/``) and wait for it to end."""
        rt: _CallRuntime = call.runtime
        self._end(rt, NORMAL_API)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(rt.ended.wait(), _STOP_TIMEOUT_S)

    async def cancel_request(self, request_uuid: str) -> bool:
        """Cancel a call not yet answered (``DELETE Request/{uuid}/``); False if none."""
        for call in self.store.calls.values():
            if call.request_uuid == request_uuid and not call.ended and call.answer_time is None:
                self._end(call.runtime, CANCELED)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(call.runtime.ended.wait(), _STOP_TIMEOUT_S)
                return True
        return False

    async def transfer(self, call: Call, url: str, method: str) -> None:
        """Interrupt the call's XML and run the document at ``url`` instead."""
        rt: _CallRuntime = call.runtime
        rt.interrupt = _Fetch(url, method, "Transfer")
        if rt.xml_task is not None and not rt.xml_task.done():
            rt.xml_task.cancel()

    def play(self, call: Call, urls: list[str], length_s: int | None, loop: bool) -> None:
        """Play URLs to the far end in the background (``POST Call/{uuid}/Play/``)."""
        rt: _CallRuntime = call.runtime
        if rt.api_play is not None:
            rt.api_play.cancel()
        rt.api_play = self.spawn(self._api_play(rt, urls, None, length_s, loop), "play")

    def stop_play(self, call: Call) -> None:
        rt: _CallRuntime = call.runtime
        if rt.api_play is not None:
            rt.api_play.cancel()

    def speak(self, call: Call, text: str, voice: str, language: str, loop: bool) -> None:
        """Speak text to the far end in the background (``POST Call/{uuid}/Speak/``)."""
        rt: _CallRuntime = call.runtime
        if rt.api_speak is not None:
            rt.api_speak.cancel()
        speech = (text, voice, language)
        rt.api_speak = self.spawn(self._api_play(rt, [], speech, None, loop), "speak")

    def stop_speak(self, call: Call) -> None:
        rt: _CallRuntime = call.runtime
        if rt.api_speak is not None:
            rt.api_speak.cancel()

    def play_to_call(self, call_uuid: str, urls: list[str]) -> None:
        """Play to a conference or multiparty member's call, if it is live."""
        call = self.store.calls.get(call_uuid)
        if call is not None and call.status == "in-progress":
            self.play(call, urls, None, False)

    def stop_play_to_call(self, call_uuid: str) -> None:
        call = self.store.calls.get(call_uuid)
        if call is not None and call.runtime is not None:
            self.stop_play(call)

    def speak_to_call(self, call_uuid: str, text: str, voice: str, language: str) -> None:
        call = self.store.calls.get(call_uuid)
        if call is not None and call.status == "in-progress":
            self.speak(call, text, voice, language, False)

    def stop_speak_to_call(self, call_uuid: str) -> None:
        call = self.store.calls.get(call_uuid)
        if call is not None and call.runtime is not None:
            self.stop_speak(call)

    async def _api_play(
        self,
        rt: _CallRuntime,
        urls: list[str],
        speech: tuple[str, str, str] | None,
        length_s: int | None,
        loop: bool,
    ) -> None:
        parts: list[PCM] = []
        if speech is not None:
            parts.append(await self.tts.synthesize(*speech))
        for url in urls:
            try:
                parts.append(await media.fetch_audio(self.http, url))
            except MediaError as exc:
                log.warning("emulator: call %s: play %s", rt.call.call_uuid, exc)
        pcm = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int16)
        if pcm.shape[0] == 0:
            return
        deadline = None if length_s is None else asyncio.get_running_loop().time() + length_s
        cursor = _Cursor()
        while True:
            chunk = pcm
            if deadline is not None:
                left = int((deadline - asyncio.get_running_loop().time()) * RATE)
                if left <= 0:
                    return
                chunk = pcm[:left]
            await self._play_once(rt, chunk, cursor)
            if not loop:
                return

    def send_digits(self, call: Call, value: str, leg: str) -> None:
        """Send DTMF to the far end (``POST Call/{uuid}/DTMF/``): recorded, then ignored."""
        rt: _CallRuntime = call.runtime
        rt.digits_sent.append(value)
        log.info("emulator: call %s: digits %s sent to the %s", call.call_uuid, value, leg)

    # --- recordings -----------------------------------------------------------------------

    def _recording_target(self, file_format: str) -> tuple[str, str, str]:
        """A new recording id, its effective format, and its public URL."""
        recording_id = new_uuid()
        fmt = file_format if (file_format != "mp3" or _MP3) else "wav"
        url = f"{self.public_url}/v1/Account/{self.settings.auth_id}/Recording/{recording_id}.{fmt}"
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
        rt: _CallRuntime = call.runtime
        self._begin_voice(rt)
        recording_id, fmt, url = self._recording_target(file_format)
        rec = _CallRecording(
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
            lambda: self.spawn(self._finish_call_recording(rt, rec), "recording time limit"),
        )
        log.info("emulator: call %s: recording %s started", call.call_uuid, recording_id)
        return recording_id, url

    async def stop_call_recording(self, call: Call, url: str | None) -> None:
        """Stop the call's recordings (or only the one at ``url``) and write them."""
        rt: _CallRuntime = call.runtime
        for rec in list(rt.recordings):
            if url is None or rec.url == url:
                await self._finish_call_recording(rt, rec)

    async def _finish_call_recording(
        self, rt: _CallRuntime, rec: _CallRecording
    ) -> Recording | None:
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
        rt: _CallRuntime,
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
        assert self.recordings_dir is not None
        path = self.recordings_dir / f"{recording_id}.{fmt}"
        written = await asyncio.to_thread(media.write_recording, path, pcm, fmt)
        path = path.with_suffix(f".{written}")
        if written != fmt:
            url = url.rsplit(".", 1)[0] + f".{written}"
        duration_ms = round(len(pcm) * 1000 / RATE)
        start_ms = round(start_wall * 1000)
        rec = Recording(
            auth_id=self.settings.auth_id,
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
        self.store.recordings[recording_id] = rec
        log.info("emulator: recording %s saved (%.2f s, %s)", recording_id, duration_ms / 1000,
                 written)  # fmt: skip
        self.callback(
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

    async def _record_verb(self, rt: _CallRuntime, verb: RecordVerb) -> _Action | None:
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
        recording_id, fmt, url = self._recording_target(verb.file_format)
        start = rt.position()
        start_wall = time.time()
        end = start + verb.max_length_s * RATE
        pressed = ""
        if verb.timeout_s > 0:
            quiet = media.silent_frames(rt.caller_slice(start, end))
            run_end = _end_of_silence_run(quiet, verb.timeout_s * 50)
            if run_end is not None:
                end = min(end, start + run_end * _FRAME)
        for at, digit in self.settings.caller_dtmf:
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
            return _Fetch(verb.action, verb.method, "Record", params)
        merged = self._call_params(call, "Record")
        merged.update(params)
        self.callback(verb.action, verb.method, merged, "record action")
        return None

    # --- conferences ----------------------------------------------------------------------

    async def _in_conference(self, rt: _CallRuntime, verb: ConferenceVerb) -> None:
        call = rt.call
        conf = self.store.conferences.get(verb.name)
        if conf is None:
            conf = Conference(verb.name)
            self.store.conferences[verb.name] = conf
        if len(conf.members) >= verb.max_members:
            log.info("emulator: conference %s is full; call %s moves on", verb.name, call.call_uuid)
            return
        member = ConferenceMember(
            member_id=self.store.next_member_id(),
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
        self._group_join(conf.recording, rt)
        try:
            await asyncio.wait_for(rt.leave.wait(), verb.time_limit_s or None)
        except TimeoutError:
            pass
        finally:
            rt.conference = None
            conf.members.pop(member.member_id, None)
            self._group_leave(conf.recording, rt)
            if verb.end_conference_on_exit:
                self.member_kick(conf, list(conf.members))
            if not conf.members:
                if self.store.conferences.get(conf.name) is conf:
                    del self.store.conferences[conf.name]
                if conf.recording is not None:
                    self.spawn(self.stop_group_recording(conf), "conference recording")

    async def conference_hangup(self, conf: Conference) -> None:
        """Hang up every member's call."""
        for member in list(conf.members.values()):
            await self._hangup_uuid(member.call_uuid)

    async def member_hangup(self, conf: Conference, member_ids: list[str]) -> None:
        for member_id in member_ids:
            member = conf.members.get(member_id)
            if member is not None:
                await self._hangup_uuid(member.call_uuid)

    def member_kick(self, conf: Conference, member_ids: list[str]) -> None:
        """Take members out of the conference; their calls go on with the next XML."""
        for member_id in member_ids:
            member = conf.members.get(member_id)
            call = self.store.calls.get(member.call_uuid) if member else None
            if call is not None and call.runtime is not None:
                call.runtime.leave.set()

    async def _hangup_uuid(self, call_uuid: str) -> None:
        call = self.store.calls.get(call_uuid)
        if call is not None and not call.ended and call.runtime is not None:
            await self.hangup(call)

    # --- group recordings (conference, multiparty) ----------------------------------------

    def start_group_recording(
        self,
        group: Conference | MultiPartyCall,
        *,
        file_format: str,
        callback_url: str,
        callback_method: str,
    ) -> tuple[str, str]:
        """Record the mix of a conference's or multiparty call's members; (id, url)."""
        existing: _GroupRecording | None = (
            group.runtime if isinstance(group, MultiPartyCall) else group.recording
        )
        if existing is not None:
            return existing.recording_id, existing.url
        recording_id, fmt, url = self._recording_target(file_format)
        rec = _GroupRecording(
            recording_id=recording_id,
            url=url,
            file_format=fmt,
            start_loop=asyncio.get_running_loop().time(),
            start_wall=time.time(),
            callback_url=callback_url,
            callback_method=callback_method,
        )
        for rt in self._group_runtimes(group):
            self._group_join(rec, rt)
        if isinstance(group, MultiPartyCall):
            group.runtime = rec
            group.recording = "recording"
        else:
            group.recording = rec
        return recording_id, url

    def pause_group_recording(self, mpc: MultiPartyCall, pause: bool) -> None:
        rec: _GroupRecording | None = mpc.runtime
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
            rec: _GroupRecording | None = group.runtime
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

    def _group_runtimes(self, group: Conference | MultiPartyCall) -> list[_CallRuntime]:
        if isinstance(group, Conference):
            uuids = [m.call_uuid for m in group.members.values()]
        else:
            uuids = [p.call_uuid for p in group.active_participants()]
        calls = [self.store.calls.get(u) for u in uuids]
        return [c.runtime for c in calls if c is not None and c.runtime is not None]

    def _group_join(self, rec: _GroupRecording | None, rt: _CallRuntime) -> None:
        if rec is not None:
            rec.members[rt.call.call_uuid] = [rt, asyncio.get_running_loop().time(), None]

    def _group_leave(self, rec: _GroupRecording | None, rt: _CallRuntime) -> None:
        if rec is not None and rt.call.call_uuid in rec.members:
            rec.members[rt.call.call_uuid][2] = asyncio.get_running_loop().time()

    # --- multiparty calls -----------------------------------------------------------------

    def _mpc_by_name(self, name: str) -> MultiPartyCall:
        mpc = self.store.find_mpc(f"name_{name}")
        if mpc is None or mpc.ended:
            mpc = MultiPartyCall(self.settings.auth_id, new_uuid(), name)
            self.store.mpcs[mpc.mpc_uuid] = mpc
        return mpc

    async def mpc_add_participant(
        self,
        mpc_id: str,
        options: dict[str, Any],
        from_number: str,
        destinations: list[str],
        call_uuid: str | None,
    ) -> tuple[MultiPartyCall, list[Call], str]:
        """Add a participant: an existing call joins, or new calls are placed to join."""
        if mpc_id.startswith("name_"):
            mpc = self._mpc_by_name(mpc_id[len("name_") :])
        else:
            found = self.store.find_mpc(mpc_id)
            assert found is not None
            mpc = found
        request_uuid = new_uuid()
        if call_uuid is not None:
            call = self.store.calls[call_uuid]
            rt: _CallRuntime = call.runtime
            rt.interrupt = _JoinMpc(mpc, options)
            if rt.xml_task is not None and not rt.xml_task.done():
                rt.xml_task.cancel()
            return mpc, [call], request_uuid
        calls: list[Call] = []
        now = asyncio.get_running_loop().time()
        for to in destinations:
            new = Call(
                auth_id=self.settings.auth_id,
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
            slot = self._cps_slot()
            new.status = "queued" if slot > now + 0.001 else "ringing"
            self._launch(new, slot, _JoinMpc(mpc, options))
            calls.append(new)
        return mpc, calls, request_uuid

    async def _in_mpc(
        self, rt: _CallRuntime, mpc: MultiPartyCall, options: Mapping[str, Any]
    ) -> None:
        if mpc.ended:
            log.info("emulator: multiparty call %s has ended; call %s cannot join",
                     mpc.friendly_name, rt.call.call_uuid)  # fmt: skip
            return
        part = Participant(
            auth_id=self.settings.auth_id,
            mpc_uuid=mpc.mpc_uuid,
            member_id=self.store.next_member_id(),
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
            self.mpc_start(mpc)
        rt.mpc = (mpc, part)
        rt.leave.clear()
        rt.leave_cause = ""
        self._group_join(mpc.runtime, rt)
        try:
            await rt.leave.wait()
        finally:
            rt.mpc = None
            part.exit_time = time.time()
            part.exit_cause = rt.leave_cause or "Participant Call Hangup"
            self._group_leave(mpc.runtime, rt)
            if not mpc.ended:
                if part.end_mpc_on_exit:
                    self.spawn(self.mpc_end(mpc, "Participant Exited", 1020), "end multiparty call")
                elif not mpc.active_participants():
                    self.spawn(self.mpc_end(mpc, "No Active Participants", 1000),
                               "end multiparty call")  # fmt: skip

    def mpc_start(self, mpc: MultiPartyCall) -> None:
        """Make a multiparty call Active (``status=active`` or a start-on-enter member)."""
        if mpc.status == "Initialized":
            mpc.status = "Active"
            mpc.start_time = time.time()

    async def mpc_end(self, mpc: MultiPartyCall, cause: str, code: int) -> None:
        """End a multiparty call: every participant leaves; the recording is written."""
        if mpc.ended:
            return
        mpc.status = "Ended"
        mpc.end_time = time.time()
        mpc.termination_cause, mpc.termination_cause_code = cause, code
        if mpc.start_time is None:
            mpc.start_time = mpc.end_time
        await self.mpc_kick(mpc, mpc.active_participants(), "MPC Ended")
        await self.stop_group_recording(mpc)

    async def mpc_kick(
        self, mpc: MultiPartyCall, parts: list[Participant], cause: str = "Kicked"
    ) -> None:
        """Take participants out; calls the API added are hung up, XML ones go on."""
        for part in parts:
            call = self.store.calls.get(part.call_uuid)
            if call is None or call.runtime is None:
                continue
            rt: _CallRuntime = call.runtime
            rt.leave_cause = cause
            rt.leave.set()


def _end_of_silence_run(quiet: np.ndarray[Any, np.dtype[np.bool_]], need: int) -> int | None:
    """Index just past the first run of ``need`` consecutive True frames, or None."""
    if need <= 0:
        return 0
    run = 0
    for i, q in enumerate(quiet.tolist()):
        run = run + 1 if q else 0
        if run >= need:
            return i + 1
    return None
