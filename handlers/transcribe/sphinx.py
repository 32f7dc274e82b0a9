"""The ``pocketsphinx`` engine: offline CMU PocketSphinx in a pool of worker processes."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import tempfile
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

import msgspec
import numpy as np

from streamserver import audio

from .engines import Engine, EngineError, Recognition
from .vad import PCM, Utterance

__all__ = ["DecoderPool", "PocketsphinxEngine", "PocketsphinxOptions", "decoder_pool"]


class PocketsphinxOptions(msgspec.Struct, forbid_unknown_fields=True):
    """``[handler.transcriber.pocketsphinx]``: the offline CMU PocketSphinx engine."""

    #: JSGF grammar: a file path, or the grammar text itself (starting with ``#JSGF``).
    grammar: str = ""
    #: Keyword spotting instead of free text: report only these words/phrases.
    keywords: list[str] = msgspec.field(default_factory=list)
    #: Detection threshold for ``keywords`` (smaller finds more, and more false alarms).
    keyword_threshold: float = 1e-20
    #: Acoustic model directory, pronunciation dictionary, language model ("" = the
    #: US English ones inside the pocketsphinx package).
    hmm: str = ""
    dict: str = ""
    lm: str = ""

    def __post_init__(self) -> None:
        if self.grammar and self.keywords:
            raise ValueError("pocketsphinx: use either grammar or keywords, not both")
        if self.grammar and not _is_inline_jsgf(self.grammar):
            if not os.path.isfile(self.grammar):
                raise ValueError(f"pocketsphinx: grammar file {self.grammar!r} not found")
        for name in ("hmm", "dict", "lm"):
            path = getattr(self, name)
            if path and not os.path.exists(path):
                raise ValueError(f"pocketsphinx: {name} {path!r} not found")
        if any(not k.strip() or "/" in k for k in self.keywords):
            raise ValueError("pocketsphinx: keywords must be non-empty words without '/'")


def _is_inline_jsgf(grammar: str) -> bool:
    return grammar.lstrip().startswith("#JSGF")


#: The bundled acoustic model is trained on 16 kHz audio; 8 kHz calls are upsampled to it.
_PS_RATE = 16000
_PS_FILLERS = frozenset({"<s>", "</s>", "<sil>", "NULL", "[NOISE]", "[SPEECH]"})


def _make_decoder(o: PocketsphinxOptions) -> Any:
    from pocketsphinx import Decoder

    kw: dict[str, Any] = {"samprate": _PS_RATE, "loglevel": "FATAL"}
    if o.hmm:
        kw["hmm"] = o.hmm
    if o.dict:
        kw["dict"] = o.dict
    if o.grammar or o.keywords:
        kw["lm"] = None
    elif o.lm:
        kw["lm"] = o.lm
    decoder = Decoder(**kw)
    if o.grammar:
        text = o.grammar
        if not _is_inline_jsgf(text):
            with open(text, encoding="utf-8") as f:
                text = f.read()
        decoder.add_jsgf_string("grammar", text)
        decoder.activate_search("grammar")
    elif o.keywords:
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "keywords.kws")
            with open(path, "w", encoding="utf-8") as f:
                for k in o.keywords:
                    f.write(f"{k.lower()} /{o.keyword_threshold:g}/\n")
            decoder.add_kws("keywords", path)
        decoder.activate_search("keywords")
    return decoder


# In a decoder worker process: its one decoder.
_worker_decoder: Any = None


def _worker_init(options_json: bytes) -> None:
    global _worker_decoder
    _worker_decoder = _make_decoder(msgspec.json.decode(options_json, type=PocketsphinxOptions))


def _worker_ready() -> bool:
    return _worker_decoder is not None


def _worker_decode(samples: PCM, rate: int) -> tuple[str, float | None] | None:
    d = _worker_decoder
    pcm = audio.resample(samples, rate, _PS_RATE) if rate != _PS_RATE else samples
    d.start_utt()
    d.process_raw(pcm.astype("<i2", copy=False).tobytes(), full_utt=True)
    d.end_utt()
    hyp = d.hyp()
    if hyp is None or not hyp.hypstr.strip():
        return None
    # Mean posterior of the recognised words (pocketsphinx's per-word confidence).
    probs = [s.prob for s in d.seg() if s.word not in _PS_FILLERS]
    confidence = float(np.clip(np.mean(probs), 0.0, 1.0)) if probs else None
    return hyp.hypstr.strip(), confidence


class DecoderPool:
    """Worker processes that each own a pocketsphinx decoder.

    pocketsphinx holds the GIL while it decodes (about 35 ms per second of audio here), so in
    a thread it would stall the event loop; worker processes keep the loop free and use the
    other cores. One pool serves every stream with the same configuration, and its size
    bounds the CPU spent on recognition by the whole server.
    """

    def __init__(self, options: PocketsphinxOptions, workers: int) -> None:
        self.options = options
        self.workers = workers
        # spawn, not fork: forking a process with threads and a running event loop is unsafe.
        self.executor = ProcessPoolExecutor(
            workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_worker_init,
            initargs=(msgspec.json.encode(options),),
        )
        for _ in range(workers):  # start the processes and load the model now
            self.executor.submit(_worker_ready)

    async def decode(self, samples: PCM, rate: int) -> Recognition | None:
        """Recognise int16 ``samples`` at ``rate`` Hz in a worker process."""
        loop = asyncio.get_running_loop()
        result = await loop.run_in_executor(self.executor, _worker_decode, samples, rate)
        return Recognition(*result) if result is not None else None


_pools: dict[tuple[bytes, int], DecoderPool] = {}
_pools_lock = threading.Lock()


def decoder_pool(options: PocketsphinxOptions, workers: int) -> DecoderPool:
    """The process-wide pool for this configuration (created on first use)."""
    key = (msgspec.json.encode(options), workers)
    with _pools_lock:
        pool = _pools.get(key)
        if pool is None:
            pool = _pools[key] = DecoderPool(options, workers)
        return pool


def _discard_pool(pool: DecoderPool) -> None:
    """Forget a broken pool (a worker died) so the next utterance starts a new one."""
    with _pools_lock:
        for key, p in list(_pools.items()):
            if p is pool:
                del _pools[key]
    pool.executor.shutdown(wait=False, cancel_futures=True)


class PocketsphinxEngine(Engine):
    """Offline recognition with CMU PocketSphinx (``pip install 'streamserver[asr]'``).

    Free-text English with the bundled language model (rough on telephone audio), or much
    more reliable IVR-style recognition with a JSGF ``grammar`` or a ``keywords`` list.
    Decoding runs in a process-wide :class:`DecoderPool` of ``max_concurrency`` processes.
    """

    name = "pocketsphinx"

    def __init__(self, options: PocketsphinxOptions, *, max_concurrency: int = 2) -> None:
        self._options = options
        self._workers = max_concurrency
        self._pool = decoder_pool(options, max_concurrency)

    async def transcribe(self, utterance: Utterance) -> Recognition | None:
        pool = self._pool
        try:
            return await pool.decode(utterance.samples, utterance.sample_rate)
        except BrokenProcessPool as exc:
            _discard_pool(pool)
            self._pool = decoder_pool(self._options, self._workers)
            raise EngineError(f"a pocketsphinx worker process died: {exc}") from exc
