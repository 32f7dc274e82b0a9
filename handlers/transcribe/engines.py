"""Speech-recognition engines for the ``transcriber`` handler.

An engine turns an :class:`~handlers.transcribe.vad.Utterance` into a :class:`Recognition`.
Two shapes plug in:

- **batch** (:class:`Engine`): ``await engine.transcribe(utterance)`` once the utterance has
  ended. Built in: ``pocketsphinx`` (offline, in worker processes:
  :mod:`handlers.transcribe.sphinx`) and ``openai`` (any OpenAI-compatible
  ``/v1/audio/transcriptions`` endpoint over HTTP).
- **streaming** (:class:`StreamingEngine`): :meth:`StreamingEngine.open_stream` is called when
  speech starts; the stream is fed the utterance's audio as it arrives and yields partial
  results, then a final one after :meth:`EngineStream.close` (a WebSocket ASR service, say).

``module:callable`` names a user engine: an :class:`Engine` subclass (instantiated with the
``engine_options`` table) or a plain function ``f(utterance) -> str | Recognition | None``,
sync (run in a thread pool) or async.

Engines are created once per stream and closed with :meth:`Engine.aclose` when it ends;
what is expensive to load (pocketsphinx decoders) is shared by the whole process.
"""

from __future__ import annotations

import abc
import asyncio
import importlib
import inspect
import io
import os
import threading
import wave
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
import msgspec

from .vad import PCM, Utterance

__all__ = [
    "CallableEngine",
    "Engine",
    "EngineError",
    "EngineStream",
    "OpenAIEngine",
    "OpenAIOptions",
    "Recognition",
    "StreamingEngine",
    "UtteranceInfo",
    "resolve_callable",
    "wav_bytes",
]


class EngineError(Exception):
    """An engine failed on one utterance (the transcriber logs it and goes on)."""


@dataclass(frozen=True, slots=True)
class Recognition:
    """What an engine heard: ``text``, a ``confidence`` in 0..1 if it knows one.

    ``is_final`` is False for a streaming engine's partial (interim) results.
    """

    text: str
    confidence: float | None = None
    is_final: bool = True


@dataclass(frozen=True, slots=True)
class UtteranceInfo:
    """An utterance that has just started (for streaming engines)."""

    track: str
    sample_rate: int
    start_sample: int
    index: int


def wav_bytes(samples: PCM, sample_rate: int) -> bytes:
    """A 16-bit mono PCM WAV file holding ``samples``."""
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(samples.astype("<i2", copy=False).tobytes())
    return buf.getvalue()


class Engine(abc.ABC):
    """A batch engine: one call per finished utterance.

    ``transcribe`` must not block the event loop: run CPU-bound work in a thread
    (``asyncio.to_thread`` or an executor). Return None (or empty text) for "nothing heard";
    raise for a failure. The transcriber bounds concurrency and time around each call.
    """

    #: Name reported in transcripts (``Transcript.engine``).
    name: str = "custom"

    @abc.abstractmethod
    async def transcribe(self, utterance: Utterance) -> Recognition | None:
        """Recognise one utterance."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook, most engines hold nothing
        """Release per-stream resources (connections); called once when the stream ends."""


class EngineStream(abc.ABC):
    """One utterance being recognised by a streaming engine.

    :meth:`feed` must return at once (buffer, and send from your own task);
    :meth:`results` yields partial results while audio comes in and the final one(s) after
    :meth:`close`, then ends.
    """

    @abc.abstractmethod
    def feed(self, pcm: PCM) -> None:
        """More audio of the utterance (int16 at the stream's rate)."""

    @abc.abstractmethod
    def results(self) -> AsyncIterator[Recognition]:
        """Partial results (``is_final=False``), then final ones; ends after :meth:`close`."""

    @abc.abstractmethod
    async def close(self) -> None:
        """No more audio: finish recognition (the final result follows in :meth:`results`)."""


class StreamingEngine(Engine):
    """An engine that recognises while the caller speaks (see :class:`EngineStream`)."""

    @abc.abstractmethod
    def open_stream(self, info: UtteranceInfo) -> EngineStream:
        """Start recognising an utterance that has just begun."""

    async def transcribe(self, utterance: Utterance) -> Recognition | None:
        """Batch use of a streaming engine: feed everything, return the last final result."""
        stream = self.open_stream(
            UtteranceInfo(
                utterance.track, utterance.sample_rate, utterance.start_sample, utterance.index
            )
        )
        stream.feed(utterance.samples)
        await stream.close()
        final: Recognition | None = None
        async for rec in stream.results():
            if rec.is_final:
                final = rec
        return final


# --- OpenAI-compatible HTTP -------------------------------------------------------------------


class OpenAIOptions(msgspec.Struct, forbid_unknown_fields=True):
    """``[handler.transcriber.openai]``: any OpenAI-compatible transcription endpoint."""

    #: The server; ``/v1/audio/transcriptions`` is appended (a trailing ``/v1`` is allowed).
    base_url: str = "https://api.openai.com"
    model: str = "whisper-1"
    #: The API key, or empty to read it from the environment variable ``api_key_env``.
    api_key: str = ""
    api_key_env: str = "OPENAI_API_KEY"
    #: ISO-639-1 language hint ("" = let the server detect it).
    language: str = ""
    #: Vocabulary/context hint sent as ``prompt`` ("" = none).
    prompt: str = ""
    #: Sampling temperature; 0 leaves the server's default (not sent).
    temperature: float = 0.0
    timeout_s: float = 30.0
    #: Retries after a transport error or a 5xx/429 answer (0 = none).
    max_retries: int = 1

    def __post_init__(self) -> None:
        if not self.base_url.startswith(("http://", "https://")):
            raise ValueError(f"openai.base_url {self.base_url!r} must start with http(s)://")
        if self.timeout_s <= 0 or self.max_retries < 0:
            raise ValueError("openai.timeout_s must be > 0 and max_retries >= 0")

    @property
    def endpoint(self) -> str:
        base = self.base_url.rstrip("/")
        if base.endswith("/v1"):
            base = base[:-3]
        return f"{base}/v1/audio/transcriptions"


class OpenAIEngine(Engine):
    """POSTs each utterance as a WAV file to ``{base_url}/v1/audio/transcriptions``.

    OpenAI's API and many local servers (whisper.cpp, faster-whisper, vLLM...) speak this
    shape: multipart form with ``file`` and ``model``; the answer's ``text`` is the result.
    """

    name = "openai"

    def __init__(self, options: OpenAIOptions, *, environ: Mapping[str, str] | None = None):
        self.options = options
        env = os.environ if environ is None else environ
        key = options.api_key or (env.get(options.api_key_env, "") if options.api_key_env else "")
        self._headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._client: httpx.AsyncClient | None = None

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=self.options.timeout_s, headers=self._headers, trust_env=False
            )
        return self._client

    async def transcribe(self, utterance: Utterance) -> Recognition | None:
        o = self.options
        data: dict[str, str] = {"model": o.model, "response_format": "json"}
        if o.language:
            data["language"] = o.language
        if o.prompt:
            data["prompt"] = o.prompt
        if o.temperature:
            data["temperature"] = str(o.temperature)
        files = {"file": ("utterance.wav", wav_bytes(utterance.samples, utterance.sample_rate))}
        attempt = 0
        while True:
            try:
                r = await self._http().post(o.endpoint, data=data, files=files)
            except httpx.TransportError as exc:
                if attempt < o.max_retries:
                    attempt += 1
                    await asyncio.sleep(0.2 * 2**attempt)
                    continue
                raise EngineError(f"POST {o.endpoint}: {type(exc).__name__}: {exc}") from exc
            if (r.status_code >= 500 or r.status_code == 429) and attempt < o.max_retries:
                attempt += 1
                await asyncio.sleep(0.2 * 2**attempt)
                continue
            break
        if r.status_code != 200:
            raise EngineError(f"POST {o.endpoint}: HTTP {r.status_code}: {r.text[:200]}")
        try:
            body = r.json()
            text = body["text"]
        except (ValueError, KeyError, TypeError) as exc:
            raise EngineError(f"POST {o.endpoint}: unexpected answer {r.text[:200]!r}") from exc
        if not isinstance(text, str):
            raise EngineError(f"POST {o.endpoint}: 'text' is not a string")
        confidence = body.get("confidence") if isinstance(body, dict) else None
        return Recognition(
            text.strip(), float(confidence) if isinstance(confidence, int | float) else None
        )

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


# --- user engines -----------------------------------------------------------------------------

UserFunction = Callable[
    [Utterance], "str | Recognition | Awaitable[str | Recognition | None] | None"
]

_call_pools: dict[int, ThreadPoolExecutor] = {}
_call_pools_lock = threading.Lock()


def _call_pool(workers: int) -> ThreadPoolExecutor:
    with _call_pools_lock:
        pool = _call_pools.get(workers)
        if pool is None:
            pool = _call_pools[workers] = ThreadPoolExecutor(
                workers, thread_name_prefix="transcriber-engine"
            )
        return pool


class CallableEngine(Engine):
    """Wraps a user function: async functions are awaited, sync ones run in a thread pool."""

    def __init__(self, fn: UserFunction, name: str, *, max_concurrency: int = 2) -> None:
        self._fn = fn
        self.name = name
        self._async = inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
            getattr(fn, "__call__", None)  # noqa: B004 - a callable object's async __call__
        )
        self._pool = _call_pool(max_concurrency)

    async def transcribe(self, utterance: Utterance) -> Recognition | None:
        if self._async:
            result: Any = await self._fn(utterance)  # type: ignore[misc]
        else:
            loop = asyncio.get_running_loop()
            result = await loop.run_in_executor(self._pool, self._fn, utterance)
            if inspect.isawaitable(result):
                result = await result
        if result is None or isinstance(result, Recognition):
            return result
        if isinstance(result, str):
            return Recognition(result)
        raise EngineError(
            f"engine {self.name} returned {type(result).__name__}; "
            "expected str, Recognition or None"
        )


def resolve_callable(spec: str) -> Any:
    """Import ``module:attr`` (dotted attr allowed); ValueError with a clear message."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ValueError(f"engine {spec!r}: expected 'package.module:callable'")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"engine {spec!r}: cannot import {module_name!r}: {exc}") from exc
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ValueError(f"engine {spec!r}: {module_name!r} has no {attr!r}") from None
    if not callable(obj):
        raise ValueError(f"engine {spec!r} is not callable")
    return obj
