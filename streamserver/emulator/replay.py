"""``streamserver replay``: stream an audio file to a stream server the way Plivo would.

A quick way to exercise a server without a phone line: the file is mixed down to mono,
resampled to the stream's rate and sent as a Plivo Audio Stream on a real-time 20 ms clock
(or as fast as possible), with DTMF, extra headers and signed upgrade headers if asked.
On a bidirectional stream what the server plays back is heard, timed and can be saved.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import time
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit

from ..audio import PCM, AudioFormat, resample, to_int16
from ..netfaults import NetFaults
from ..protocol.detect import PROVIDER_FORMATS, provider_format
from .replay_summary import summary
from .settings import EmulatorConfigError, parse_dtmf_script
from .streamclient import PlivoStreamClient, StreamClientOptions

__all__ = ["add_parser", "replay_main"]

_PROG = "streamserver replay"
_DIALECTS = tuple(PROVIDER_FORMATS)


def _content_types(dialect: str) -> list[str]:
    return [f"{encoding};rate={rate}" for encoding, rate in PROVIDER_FORMATS[dialect]]


_DESCRIPTION = """\
Stream an audio file to a stream server as Plivo would during a call.

AUDIO is any file libsndfile reads (WAV, FLAC, OGG, ...), any sample rate, mixed down to
mono and resampled to the stream's rate. It is sent as the caller's voice: a `start`
message, then 20 ms `media` frames on a real-time clock, DTMF digits at their time, then
`stop` and a normal close. With --bidirectional the server's playAudio is played back in
real time, checkpoints are answered with playedStream and clearAudio with clearedAudio.

--dialect plays another provider instead, in its own messages: twilio (connected, start,
media, dtmf, mark echoes, stop; after a clear the pending marks are echoed too), telnyx
(PCMU, PCMA or big-endian L16), exotel (16-bit PCM at 8/16/24 kHz) or vonage
(websocket:connected, then binary L16 frames; notify and clear answered)."""

_EPILOG = """\
examples:
  # a caller speaking into a local server, real time, μ-law 8 kHz
  streamserver replay caller.wav --url ws://127.0.0.1:8080/stream

  # a voice bot: hear what it says back and keep it
  streamserver replay caller.wav --url ws://127.0.0.1:8080/stream --bidirectional \\
      --save-heard heard.wav

  # 16 kHz linear audio, both call legs, as fast as the server takes it
  streamserver replay caller.flac --url ws://127.0.0.1:8080/stream \\
      --content-type 'audio/x-l16;rate=16000' --tracks both --speed max

  # the same caller as a Twilio Media Stream, or as Vonage at 16 kHz
  streamserver replay caller.wav --url ws://127.0.0.1:8080/stream --dialect twilio
  streamserver replay caller.wav --url ws://127.0.0.1:8080/stream --dialect vonage

  # the caller presses 5 after 2 s and # after 4.5 s; extra headers; signed upgrade
  streamserver replay caller.wav --url wss://media.example.com/stream \\
      --dtmf '5@2.0,#@4.5' --extra-headers 'lang=en;tier=gold' --auth-token "$PLIVO_AUTH_TOKEN"

  # a bad network: 5 % of frames lost, 1 % twice, reordering, jitter; a reproducible run
  streamserver replay caller.wav --url ws://127.0.0.1:8080/stream \
      --faults 'drop=5,dup=1,reorder=10:3,jitter=40,seed=7'

  # the socket vanishes at 3 s without a FIN and the stream resumes on a new one 1 s later
  streamserver replay caller.wav --url ws://127.0.0.1:8080/stream \
      --faults 'vanish=3:abort,reconnect=1'

Ctrl-C hangs up early (stop, close 1000) and still prints the summary.

exit status: 0 the stream ran and closed normally; 1 the stream failed (connection refused,
upgrade refused, closed with an error code); 2 bad arguments or an unreadable audio file;
130 interrupted."""


# --- argument types (argparse turns their errors into exit status 2 with usage) ----------


def _ws_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a WebSocket URL; use ws://host:port/path or wss://host/path"
        )
    return value


def _content_type(value: str) -> str:
    try:
        return AudioFormat.from_content_type(value).content_type
    except ValueError as exc:
        every = sorted({t for d in _DIALECTS for t in _content_types(d)})
        raise argparse.ArgumentTypeError(f"{exc}; use one of: {', '.join(every)}") from None


def _dtmf(value: str) -> list[tuple[float, str]]:
    try:
        return parse_dtmf_script(value, "--dtmf")
    except EmulatorConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _speed(value: str) -> float | None:
    v = value.strip().lower()
    if v in ("realtime", "real-time", "1", "1x"):
        return 1.0
    if v in ("max", "fast", "none"):
        return None
    try:
        speed = float(v.removesuffix("x"))
    except ValueError:
        speed = 0.0
    if not speed > 0 or speed == float("inf"):
        raise argparse.ArgumentTypeError(
            f"bad speed {value!r}; use realtime, max, or a factor such as 2 (twice real time)"
        )
    return speed


def _extra_headers(value: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in value.split(";"):
        part = part.strip()
        if not part:
            continue
        key, sep, val = part.partition("=")
        if not sep or not key.strip():
            raise argparse.ArgumentTypeError(
                f"bad extra header {part!r}; write key=value pairs separated by ';', "
                "e.g. 'lang=en;tier=gold'"
            )
        out[key.strip()] = val.strip()
    return out


def _faults(value: str) -> NetFaults:
    try:
        return NetFaults.parse(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds < float("inf"):
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of seconds >= 0")
    return seconds


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the ``replay`` subcommand (run it with :func:`replay_main`)."""
    p = subparsers.add_parser(
        "replay",
        help="stream an audio file to a stream server as Plivo would",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("audio", metavar="AUDIO", type=Path, help="the caller's audio file")
    p.add_argument(
        "--url",
        required=True,
        type=_ws_url,
        help="the stream server's WebSocket URL (ws:// or wss://; path and query are kept)",
    )
    p.add_argument(
        "--bidirectional",
        action="store_true",
        help="let the server talk back (playAudio, checkpoint, clearAudio, sendDTMF)",
    )
    p.add_argument(
        "--dialect",
        choices=_DIALECTS,
        default="plivo",
        help="the provider to play, in its own messages (default: %(default)s)",
    )
    p.add_argument(
        "--content-type",
        default=None,
        type=_content_type,
        metavar="TYPE",
        help="stream audio format; plivo: "
        + ", ".join(_content_types("plivo"))
        + "; twilio: μ-law 8 kHz; telnyx adds audio/x-alaw;rate=8000; exotel: audio/x-l16 "
        "at 8000, 16000 or 24000; vonage: audio/x-l16 at 16000 or 8000 "
        "(default: the dialect's first)",
    )
    p.add_argument(
        "--tracks",
        choices=("inbound", "outbound", "both"),
        default="inbound",
        help="which call legs to stream, Plivo's audioTrack (default: %(default)s); "
        "a bidirectional stream must be inbound",
    )
    p.add_argument(
        "--outbound",
        metavar="AUDIO2",
        type=Path,
        help="audio for the outbound track with --tracks both (default: silence); "
        "with --tracks outbound, AUDIO itself is the outbound track",
    )
    p.add_argument(
        "--dtmf",
        type=_dtmf,
        default=[],
        metavar="D@S,...",
        help="DTMF digits to press, DIGIT@SECONDS from the stream start, e.g. '5@2.0,#@4.5'",
    )
    p.add_argument(
        "--speed",
        type=_speed,
        default=1.0,
        metavar="SPEED",
        help="realtime (default), max (as fast as the server takes it) or a factor like 2",
    )
    p.add_argument(
        "--extra-headers",
        type=_extra_headers,
        default={},
        metavar="K=V;K=V",
        help="Plivo extraHeaders, sent in start/media/dtmf as 'k=v;k=v'",
    )
    p.add_argument("--no-stop", action="store_true", help="close without sending a stop event")
    p.add_argument(
        "--auth-token",
        metavar="TOKEN",
        help="sign the upgrade with X-Plivo-Signature-V3 (+ nonce, Ma-V3) using this auth token",
    )
    p.add_argument(
        "--save-heard",
        type=Path,
        metavar="WAV",
        help="write what the caller heard (the server's playback, at its play time) to a WAV",
    )
    p.add_argument(
        "--tail",
        type=_seconds,
        default=0.5,
        metavar="SECONDS",
        help="after the last frame, keep listening this long for echoes and playedStream "
        "(default: %(default)s); queued playback is then allowed to finish",
    )
    p.add_argument(
        "--faults",
        type=_faults,
        default=NetFaults(),
        metavar="SPEC",
        help="make the network bad, e.g. 'drop=5,dup=1,reorder=10:3,jitter=40,burst=2:300,"
        "drift=200,vanish=3:silent,reconnect=1,second=2,slow-read=1:5:2000,seed=7' "
        "(see docs/bad-networks.md); the summary prints the seed to repeat the run",
    )
    p.add_argument("--call-id", help="callId to send in start (default: a random UUID)")
    p.add_argument("--stream-id", help="streamId to send (default: a random UUID)")
    p.add_argument(
        "--connect-timeout",
        type=_seconds,
        default=10.0,
        metavar="SECONDS",
        help="give up connecting after this long (default: %(default)s)",
    )
    p.add_argument("--no-progress", action="store_true", help="do not draw a progress bar")
    p.set_defaults(func=replay_main)


# --- running ------------------------------------------------------------------------------


class _AudioFileError(Exception):
    pass


def _read_audio(path: Path) -> tuple[PCM, int]:
    """Read any libsndfile format as mono int16 at the file's own rate."""
    import soundfile as sf  # only this subcommand needs it

    if not path.is_file():
        raise _AudioFileError(f"{path}: no such file; give the path of a WAV/FLAC/OGG file")
    try:
        data, rate = sf.read(str(path), dtype="int16", always_2d=True)
    except (RuntimeError, OSError, ValueError) as exc:  # LibsndfileError is a RuntimeError
        raise _AudioFileError(
            f"{path}: cannot read audio ({exc}); use a format libsndfile reads, e.g. WAV or FLAC"
        ) from None
    if data.shape[0] == 0:
        raise _AudioFileError(f"{path}: the file holds no audio")
    return to_int16(data), int(rate)


def _error(message: str) -> int:
    print(f"{_PROG}: error: {message}", file=sys.stderr)
    return 2


class _ProgressBar:
    """A one-line ``\\r`` progress bar on stderr, redrawn at most 10 times a second."""

    def __init__(self, stream: TextIO, width: int = 30) -> None:
        self._stream = stream
        self._width = width
        self._last = 0.0
        self._drawn = False

    def __call__(self, sent: int, total: int) -> None:
        now = time.monotonic()
        if sent < total and now - self._last < 0.1:
            return
        self._last = now
        fraction = sent / total if total else 1.0
        filled = round(fraction * self._width)
        bar = "#" * filled + "-" * (self._width - filled)
        self._stream.write(f"\r[{bar}] {fraction:4.0%}  {sent}/{total} frames")
        self._stream.flush()
        self._drawn = True

    def close(self) -> None:
        if self._drawn:
            self._stream.write("\n")
            self._stream.flush()


def _write_wav(path: Path, pcm: PCM, rate: int) -> None:
    import soundfile as sf

    sf.write(str(path), pcm, rate, subtype="PCM_16")


async def replay_main(args: argparse.Namespace) -> int:
    """Run ``streamserver replay`` with parsed arguments; return the exit status."""
    if args.bidirectional and args.tracks != "inbound":
        return _error("--bidirectional needs --tracks inbound (Plivo streams both ways only then)")
    if args.outbound is not None and args.tracks != "both":
        return _error("--outbound is only used with --tracks both")
    if args.content_type is not None:
        fmt = AudioFormat.from_content_type(args.content_type)
        try:
            provider_format(args.dialect, fmt.encoding, fmt.sample_rate)
        except ValueError as exc:
            return _error(f"--content-type: {exc}")
    if args.save_heard is not None and not args.save_heard.parent.is_dir():
        return _error(f"--save-heard: directory {args.save_heard.parent} does not exist")
    try:
        pcm, rate = await asyncio.to_thread(_read_audio, args.audio)
        outbound: PCM | None = None
        if args.tracks == "outbound":
            outbound = pcm
        elif args.outbound is not None:
            other, other_rate = await asyncio.to_thread(_read_audio, args.outbound)
            outbound = resample(other, other_rate, rate)
    except _AudioFileError as exc:
        return _error(str(exc))

    progress: _ProgressBar | None = None
    if not args.no_progress and sys.stderr.isatty():
        progress = _ProgressBar(sys.stderr)
    ids: dict[str, Any] = {}
    if args.call_id:
        ids["call_id"] = args.call_id
    if args.stream_id:
        ids["stream_id"] = args.stream_id
    try:
        client = PlivoStreamClient(
            StreamClientOptions(
                url=args.url,
                inbound=pcm,
                source_rate=rate,
                content_type=args.content_type,
                dialect=args.dialect,
                tracks=args.tracks,
                outbound=outbound,
                bidirectional=args.bidirectional,
                extra_headers=args.extra_headers,
                dtmf=args.dtmf,
                speed=args.speed,
                send_stop=not args.no_stop,
                auth_token=args.auth_token,
                tail_s=args.tail,
                connect_timeout_s=args.connect_timeout,
                faults=args.faults,
                on_progress=progress,
                **ids,
            )
        )
    except ValueError as exc:
        return _error(str(exc))

    # Ctrl-C hangs up like a caller: stop, close, and still print the summary.
    loop = asyncio.get_running_loop()
    hangups: list[asyncio.Task[None]] = []
    handled = False
    with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
        loop.add_signal_handler(
            signal.SIGINT, lambda: hangups.append(loop.create_task(client.aclose()))
        )
        handled = True
    try:
        report = await client.run()
    finally:
        if handled:
            loop.remove_signal_handler(signal.SIGINT)
        if progress is not None:
            progress.close()
    await asyncio.gather(*hangups, return_exceptions=True)

    print(summary(report, _PROG))
    if args.save_heard is not None and report.connected:
        try:
            await asyncio.to_thread(_write_wav, args.save_heard, report.heard, report.sample_rate)
        except (RuntimeError, OSError) as exc:
            print(f"{_PROG}: error: cannot write {args.save_heard}: {exc}", file=sys.stderr)
            return 1
        played = sum(end - start for start, end in report.played_segments)
        print(
            f"  heard      {args.save_heard} ({len(report.heard) / report.sample_rate:.2f} s, "
            f"{played:.2f} s of playback)"
        )
    if hangups:
        return 130  # interrupted: the conventional status for SIGINT
    return 0 if report.ok else 1
