"""``--profile bot`` for real: a started streamserver with the player handler and the
generated prompt, a few calls for a few seconds; what the callers heard is measured."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
import soundfile as sf

from streamserver.loadtest import LoadTestConfig, Subject, Thresholds, run_loadtest
from streamserver.loadtest.bot import BotScript
from streamserver.loadtest.cli import main
from streamserver.loadtest.target import default_server_cmd
from streamserver.loadtest.verdict import GRADES

LOOSE = Thresholds(
    max_lateness_p99_ms=200.0, max_rtt_p99_ms=2000.0, max_cpu_pct=1000.0, max_loop_lag_ms=5000.0
)
#: Two turns of 2.6 s: the bot's 2.2 s prompt on start and on DTMF, the caller speaking at
#: 1.6 s into each (after the prompt's first checkpoint, at 1 s, has played).
SCRIPT = BotScript(turn_s=2.6, speech_at_s=1.6, speech_s=0.4, prompt_s=2.2)
STREAMS = 3


async def test_bot_profile_measures_first_audio_barge_in_and_playout(tmp_path: Path) -> None:
    out = tmp_path / "out"
    cfg = LoadTestConfig(
        subjects=[Subject("bot", cmd=default_server_cmd(["recorder", "player"]))],
        profile="bot",
        bot=SCRIPT,
        streams=STREAMS,
        duration_s=2 * SCRIPT.turn_s,
        ramp_s=0.2,
        tail_s=0.5,
        verify=True,
        out_dir=out,
        progress=None,
        seed=1,
        thresholds=LOOSE,  # function, not speed: deterministic on a busy machine
    )
    result = await asyncio.wait_for(run_loadtest(cfg), 120)  # bounds a hang only
    (lv,) = result.subjects[0].levels
    assert lv.failures == [] and lv.held, lv.failures
    assert lv.recordings is not None and lv.recordings.exact == STREAMS
    # Every call heard the bot's greeting, once.
    assert lv.first_audio_ms is not None and lv.first_audio_ms.count == STREAMS
    assert lv.first_audio_missing == 0 and lv.first_audio_ms.p50 > 0
    # Turn 1 starts with the digit (turn 2 would begin as the call ends).
    assert lv.dtmf_sent == STREAMS
    # The player stopped for the caller: each clear is a barge-in or counted as unexpected.
    bi = lv.barge_in_ms
    assert bi is not None and bi.count >= 1 and bi.p50 > 0
    assert 1 <= bi.count + lv.barge_in_missed <= 2 * STREAMS
    assert lv.clears == bi.count + lv.unexpected_clears
    assert lv.checkpoints_answered >= 1
    # The simulated playout: the bot's speech was played out, every gap counted in ticks.
    assert 0 < lv.playout_minutes < STREAMS * cfg.duration_s / 60
    assert lv.underruns_per_min is not None and lv.underruns_per_min >= 0
    assert lv.longest_silence_ms is not None and lv.longest_silence_ms % 20 == pytest.approx(0)
    assert 0 <= lv.streams_with_underruns <= STREAMS
    assert lv.qoe_grade in GRADES and lv.qoe.startswith(lv.qoe_grade + ": ")
    # The outputs carry it all.
    doc = json.loads((out / "result.json").read_text())
    assert doc["settings"]["profile"] == "bot"
    assert doc["settings"]["bot"]["turn_s"] == SCRIPT.turn_s
    level = doc["subjects"][0]["levels"][0]
    assert level["barge_in_ms"]["count"] == bi.count and level["qoe"] == lv.qoe
    report = (out / "report.md").read_text()
    assert "What the callers heard:" in report and lv.qoe in report
    assert (out / "plots" / "heard.png").stat().st_size > 10_000
    prompt, rate = sf.read(str(out / "bot" / "prompt.wav"), dtype="int16")
    assert rate == 8000 and prompt.shape[0] == round(SCRIPT.prompt_s * 8000)


def test_the_bot_profile_needs_the_player(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["--profile", "bot", "--handlers", "recorder", "--out", str(tmp_path), "-q"])
    assert code == 2
    assert "--profile bot needs the player handler" in capsys.readouterr().err
    code = main(["--profile", "bot", "--echo", "--out", str(tmp_path), "-q"])
    assert code == 2
    assert "no --echo" in capsys.readouterr().err
