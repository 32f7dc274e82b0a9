"""Load tester: many paced, simulated Plivo calls against a stream server, measured.

``streamserver loadtest`` / ``scripts/loadtest.py`` on the command line;
:func:`run_loadtest` with a :class:`LoadTestConfig` from Python. The generator
(:mod:`.engine`) drives every stream from one shared ticker over lean asyncio protocols,
so one core paces thousands of streams; :mod:`.runner` starts and watches the server,
merges results and judges service levels; :mod:`.report` and :mod:`.plots` write the
outputs.
"""

from __future__ import annotations

from .cli import add_parser, main
from .engine import Engine, EnginePlan, EngineResult, StreamRecord, Window
from .runner import (
    LevelResult,
    LoadTestConfig,
    RunResult,
    Subject,
    SubjectResult,
    Thresholds,
    run_loadtest,
)
from .stats import Histogram, Summary
from .verify import VerifyResult, verify_recordings

__all__ = [
    "Engine",
    "EnginePlan",
    "EngineResult",
    "Histogram",
    "LevelResult",
    "LoadTestConfig",
    "RunResult",
    "StreamRecord",
    "Subject",
    "SubjectResult",
    "Summary",
    "Thresholds",
    "VerifyResult",
    "Window",
    "add_parser",
    "main",
    "run_loadtest",
    "verify_recordings",
]
