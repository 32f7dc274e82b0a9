"""The transcriber's options (``[handler.transcriber]`` and its nested tables) and the engine
they name."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import msgspec

from .engines import (
    CallableEngine,
    Engine,
    OpenAIEngine,
    OpenAIOptions,
    resolve_callable,
)
from .sphinx import PocketsphinxEngine, PocketsphinxOptions
from .vad import VadOptions

__all__ = ["BUILTIN_ENGINES", "TranscriberOptions", "create_engine"]

BUILTIN_ENGINES = ("pocketsphinx", "openai")


class TranscriberOptions(msgspec.Struct, forbid_unknown_fields=True):
    """``[handler.transcriber]`` options (nested tables ``vad``, ``pocketsphinx``,
    ``openai``, ``engine_options``)."""

    #: "pocketsphinx", "openai", or "package.module:callable" (an Engine class or function).
    engine: str = "pocketsphinx"
    #: Tracks to transcribe; empty means every track of the stream.
    tracks: list[Literal["inbound", "outbound"]] = msgspec.field(default_factory=list)
    #: Transcripts go to {record_dir}/{call_id}/{stream_id}.transcript.jsonl.
    record_dir: str = "recordings"
    write_jsonl: bool = True
    #: Log each transcript's text at INFO (turn off where transcripts are sensitive).
    log_text: bool = True
    #: Utterances waiting for the engine, per stream; more drop the oldest waiting one.
    max_backlog: int = 8
    #: Engine calls running at once in the whole process (pocketsphinx: worker processes).
    max_concurrency: int = 2
    #: One engine call taking longer than this fails (the utterance is counted as failed).
    engine_timeout_s: float = 30.0
    #: At stream end, wait this long for utterances still waiting or being recognised.
    stop_timeout_s: float = 5.0
    #: Publish transcripts whose text is empty (nothing recognised).
    publish_empty: bool = False
    vad: VadOptions = msgspec.field(default_factory=VadOptions)
    pocketsphinx: PocketsphinxOptions = msgspec.field(default_factory=PocketsphinxOptions)
    openai: OpenAIOptions = msgspec.field(default_factory=OpenAIOptions)
    #: Passed to a ``module:Class`` engine's constructor.
    engine_options: dict[str, Any] = msgspec.field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.max_backlog < 1 or self.max_concurrency < 1:
            raise ValueError("max_backlog and max_concurrency must be at least 1")
        if self.engine_timeout_s <= 0 or self.stop_timeout_s < 0:
            raise ValueError("engine_timeout_s must be > 0 and stop_timeout_s >= 0")
        if ":" in self.engine:
            resolve_callable(self.engine)  # fail at start-up, not on the first call
        elif self.engine not in BUILTIN_ENGINES:
            raise ValueError(
                f"unknown engine {self.engine!r}: use {', '.join(BUILTIN_ENGINES)} "
                "or 'package.module:callable'"
            )
        elif self.engine == "pocketsphinx":
            try:
                import pocketsphinx  # noqa: F401
            except ImportError:
                raise ValueError(
                    "engine 'pocketsphinx' needs the pocketsphinx package: "
                    "pip install 'streamserver[asr]'"
                ) from None


def create_engine(
    options: TranscriberOptions, *, environ: Mapping[str, str] | None = None
) -> Engine:
    """The engine named by ``options.engine``, configured from its table."""
    name = options.engine
    if name == "pocketsphinx":
        return PocketsphinxEngine(options.pocketsphinx, max_concurrency=options.max_concurrency)
    if name == "openai":
        return OpenAIEngine(options.openai, environ=environ)
    obj = resolve_callable(name)
    if isinstance(obj, type) and issubclass(obj, Engine):
        engine = obj(**options.engine_options)
        if engine.name == Engine.name:
            engine.name = name
        return engine
    return CallableEngine(obj, name, max_concurrency=options.max_concurrency)
