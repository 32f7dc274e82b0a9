"""Load tester: many paced, simulated Plivo calls against a stream server, measured.

``streamserver loadtest`` / ``scripts/loadtest.py`` on the command line;
:func:`run_loadtest` with a :class:`LoadTestConfig` from Python. The generator
(:mod:`.engine`) drives every stream from one shared ticker over lean asyncio protocols,
so one core paces thousands of streams; :mod:`.runner` starts and watches the server;
:mod:`.collector` merges the generators' windows, :mod:`.measure` fills the
:mod:`.results`, :mod:`.judge` holds them against the :class:`Thresholds`;
:mod:`.report` and :mod:`.plots` write the outputs. Arrows point down: the runner fills
the results, the report and plots only read them.
"""

from __future__ import annotations

from .cli import add_parser, main
from .config import LoadTestConfig, Subject, Thresholds
from .engine import Engine, EnginePlan, EngineResult, StreamRecord, Window
from .results import LevelResult, RunResult, SubjectResult
from .runner import run_loadtest
from .stats import Histogram, LatencySummary
from .verify import VerifyResult, verify_recordings

__all__ = [
    "Engine",
    "EnginePlan",
    "EngineResult",
    "Histogram",
    "LatencySummary",
    "LevelResult",
    "LoadTestConfig",
    "RunResult",
    "StreamRecord",
    "Subject",
    "SubjectResult",
    "Thresholds",
    "VerifyResult",
    "Window",
    "add_parser",
    "main",
    "run_loadtest",
    "verify_recordings",
]
