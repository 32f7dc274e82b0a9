"""``streamserver demo`` end to end, and config/demo.toml kept in step with it."""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Iterator
from importlib.metadata import entry_points
from pathlib import Path

import pytest
import soundfile as sf

from streamserver.cli import main
from streamserver.commands.demo import DEMO_CALLS, ROUTE, Progress, demo_settings
from streamserver.control import load_control_settings
from streamserver.emulator import SAMPLES_DIR, load_emulator_settings
from streamserver.settings import load_settings

REPO = Path(__file__).resolve().parents[2]


def _transcriber_loads() -> bool:
    if not any(ep.name == "transcriber" for ep in entry_points(group="streamserver.handlers")):
        return False
    try:
        import pocketsphinx  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """The demo sets up logging for its process; leave the test session's as it was."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    ws_level = logging.getLogger("websockets").level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.getLogger("websockets").setLevel(ws_level)


def test_demo_runs_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "demo"
    t0 = time.monotonic()
    rc = main(["demo", "--out", str(out), "--calls", "2"])
    elapsed = time.monotonic() - t0
    captured = capsys.readouterr()
    assert rc == 0, captured.out + captured.err
    assert elapsed < 60.0  # bounds a hang; the demo's speed is a benchmark's business

    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["ok"] is True and summary["error"] == ""
    assert len(summary["calls"]) == 2
    for call, (_, sample) in zip(summary["calls"], DEMO_CALLS, strict=False):
        assert call["sample"] == sample
        assert call["status"] == "completed" and "Normal Hangup" in call["hangup"]
        assert call["stream_ok"] and call["frames_sent"] > 100
        # The server got every frame the emulator sent, in order, without gaps.
        assert call["server_frames"] == call["frames_sent"]
        assert call["gaps"] == 0 and call["handler_drops"] == 0
        # What the server recorded is as long as the callee's voice.
        (recording,) = call["recordings"]
        said = sf.info(str(SAMPLES_DIR / sample)).duration
        assert sf.info(recording).duration == pytest.approx(call["recorded_s"], abs=0.01)
        assert call["recorded_s"] >= said - 0.1
        # The caller heard the echo (the last frames may still be on their way back when
        # the callee hangs up), and it is not silence.
        assert call["echo_frames"] >= 0.9 * call["frames_sent"]
        heard = sf.info(call["heard_path"])
        assert heard.samplerate == 8000 and heard.duration >= 0.9 * call["recorded_s"]
        assert call["heard_rms_dbfs"] > -40
        # Plivo's callbacks came back to the control app.
        assert {"StartStream", "StopStream", "Hangup"} <= set(call["callbacks"])
    assert summary["signatures_ok"] == 2 and summary["signatures_rejected"] == 0
    assert summary["callbacks"]["answer"] == 2 and summary["callbacks"]["hangup"] == 2
    if _transcriber_loads():
        assert summary["transcriber"] == "on"
        assert any(call["transcripts"] for call in summary["calls"])
    else:
        assert summary["transcriber"] != "on"

    text = captured.out
    assert text.startswith("streamserver demo: 2 call(s) through the local Plivo emulator")
    assert "echo of" in text and "recorded" in text and "heard" in text
    assert "signatures: 2 stream upgrade(s)" in text
    assert "[demo]" in captured.err  # live progress


def test_demo_without_transcriber_and_bad_arguments(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["demo", "--calls", "0"]) == 2
    assert main(["demo", "--timeout", "0"]) == 2
    assert "--calls" in capsys.readouterr().err


def test_progress_lines_without_a_terminal() -> None:
    buf = io.StringIO()
    p = Progress(buf, expected_frames=100)
    p.update(answered=1, ended=0, calls=2, live=1, rx=50, tx=49)
    p.update(answered=2, ended=0, calls=2, live=2, rx=60, tx=60)  # within a second: skipped
    p.done()
    lines = buf.getvalue().splitlines()
    assert len(lines) == 1
    assert "calls 1/2 answered" in lines[0] and "[##########          ]" in lines[0]


def test_config_demo_toml_matches_the_demo(tmp_path: Path) -> None:
    path = REPO / "config" / "demo.toml"
    settings = load_settings(path, environ={})
    control = load_control_settings(settings)
    assert control.enabled and control.route == ROUTE
    built = demo_settings(tmp_path, transcribe=False, auth_id="MA", auth_token="t")
    assert settings.routes[ROUTE].handlers == built.routes[ROUTE].handlers
    assert settings.routes[ROUTE].bidirectional
    assert settings.server.verify_signatures and settings.server.public_url
    emu = load_emulator_settings(path, environ={})
    assert emu.auth_id == settings.plivo.auth_id and emu.auth_token == settings.plivo.auth_token
    assert emu.calls_per_second == 0
    for number, sample in DEMO_CALLS:
        assert Path(emu.audio_for(number)).resolve() == (SAMPLES_DIR / sample).resolve()
