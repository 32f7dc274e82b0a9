"""``streamserver demo``: the whole system in one process, a few calls, a readable summary.

One event loop runs the stream server (recorder, echo, and the transcriber when installed),
its control app and the local Plivo emulator. The demo places calls through
:class:`~streamserver.rest.AsyncPlivoClient` to the emulator; each callee "says" one of the
bundled speech samples; the emulator fetches the control app's ``/answer`` (signed), whose
``<Stream>`` sends the call audio to the server in real time; the echo plays it back and the
emulator records what the caller heard. Stream upgrades and callbacks are signed and
verified. Afterwards the summary shows each call, its stream's numbers, the recording, what
the caller heard (saved as WAV) and any transcript beside the sample's script with its word
error rate (``script.py``), then what those numbers mean. Nothing leaves the loopback interface
and no Plivo account is needed.

Output (``--out``, default ``./demo-output``; each run first removes the previous run's
``recordings/``, ``heard/`` and ``summary.json``, and nothing else)::

    recordings/{call_id}/{stream_id}.inbound.wav   what the server recorded (+ .json sidecar)
    heard/{call_id}.wav                            what the caller heard (the echo)
    summary.json                                   the summary, machine-readable
"""

from __future__ import annotations

from .cli import add_parser, demo_main
from .results import CallResult, DemoResult, StreamResult
from .run import DEMO_CALLS, ROUTE, demo_settings, run_demo
from .summary import Progress, format_summary

__all__ = [
    "DEMO_CALLS",
    "ROUTE",
    "CallResult",
    "DemoResult",
    "Progress",
    "StreamResult",
    "add_parser",
    "demo_main",
    "demo_settings",
    "format_summary",
    "run_demo",
]
