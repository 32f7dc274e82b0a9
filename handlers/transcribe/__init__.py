"""Speech to text for live calls: voice-activity segmentation, engines, the ``transcriber``.

``handlers.transcribe.vad`` finds utterances (WebRTC VAD), ``handlers.transcribe.engines``
recognises them, and :class:`Transcriber` is the handler tying both to a stream.
"""

from __future__ import annotations

from .engines import (
    CallableEngine,
    Engine,
    EngineError,
    EngineStream,
    OpenAIEngine,
    OpenAIOptions,
    Recognition,
    StreamingEngine,
    UtteranceInfo,
    wav_bytes,
)
from .sphinx import PocketsphinxEngine, PocketsphinxOptions
from .transcriber import (
    SpeechEnded,
    SpeechStarted,
    Transcriber,
    TranscriberOptions,
    Transcript,
    create_engine,
    stats,
)
from .vad import Segmenter, SpeechStart, Utterance, VadOptions

__all__ = [
    "CallableEngine",
    "Engine",
    "EngineError",
    "EngineStream",
    "OpenAIEngine",
    "OpenAIOptions",
    "PocketsphinxEngine",
    "PocketsphinxOptions",
    "Recognition",
    "Segmenter",
    "SpeechEnded",
    "SpeechStart",
    "SpeechStarted",
    "StreamingEngine",
    "Transcriber",
    "TranscriberOptions",
    "Transcript",
    "Utterance",
    "UtteranceInfo",
    "VadOptions",
    "create_engine",
    "stats",
    "wav_bytes",
]
