"""Pure parts of the emulator (no event loop): answer XML, settings, shapes, media helpers,
and the ``streamserver emulate`` command line (as a real subprocess)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile as sf

from streamserver.emulator import DEFAULT_AUTH_ID, DEFAULT_AUTH_TOKEN, SAMPLES_DIR
from streamserver.emulator.api.common import ApiError, paginate, parse_filter_time
from streamserver.emulator.media import Tts, silent_frames, tone_for_text, write_recording
from streamserver.emulator.settings import (
    EmulatorConfigError,
    EmulatorSettings,
    load_emulator_settings,
    parse_dtmf_script,
)
from streamserver.emulator.store import Recording
from streamserver.emulator.values import cdr_time
from streamserver.emulator.xml import (
    ConferenceVerb,
    HangupVerb,
    PlayVerb,
    RecordVerb,
    RedirectVerb,
    SpeakVerb,
    StreamVerb,
    WaitVerb,
    XmlError,
    parse_answer_xml,
    parse_extra_headers,
)

# --- answer XML -------------------------------------------------------------------------------


def test_xml_verbs_and_defaults() -> None:
    verbs = parse_answer_xml(
        """<?xml version="1.0" encoding="UTF-8"?>
        <Response>
          <Stream bidirectional="true" keepCallAlive="true" contentType="audio/x-mulaw;rate=8000"
                  streamTimeout="120" statusCallbackUrl="https://app.example/s"
                  statusCallbackMethod="get" extraHeaders="a=1,b=2">wss://media.example/stream</Stream>
          <Play loop="3">https://cdn.example/p.wav</Play>
          <Speak voice="MAN" language="en-GB"><prosody rate="slow">Hello</prosody> world</Speak>
          <Wait length="2" silence="true" minSilence="500"/>
          <Record action="https://app.example/r" maxLength="30" timeout="5" finishOnKey="*"
                  fileFormat="wav" redirect="false" recordSession="false"/>
          <Conference muted="true">Room</Conference>
          <Redirect method="GET">https://app.example/next</Redirect>
          <Hangup schedule="60" reason="busy"/>
        </Response>"""
    )
    assert verbs[0] == StreamVerb(
        url="wss://media.example/stream",
        bidirectional=True,
        audio_track="inbound",
        stream_timeout_s=120,
        status_callback_url="https://app.example/s",
        status_callback_method="GET",
        content_type="audio/x-mulaw;rate=8000",
        extra_headers="a=1,b=2",
        keep_call_alive=True,
    )
    assert verbs[1] == PlayVerb("https://cdn.example/p.wav", loop=3)
    assert verbs[2] == SpeakVerb("Hello world", voice="MAN", language="en-GB")
    assert verbs[3] == WaitVerb(length_s=2, silence=True, min_silence_ms=500)
    assert verbs[4] == RecordVerb(
        action="https://app.example/r", max_length_s=30, timeout_s=5, finish_on_key="*",
        file_format="wav", redirect=False,
    )  # fmt: skip
    assert verbs[5] == ConferenceVerb("Room", muted=True)
    assert verbs[6] == RedirectVerb("https://app.example/next", method="GET")
    assert verbs[7] == HangupVerb(reason="busy", schedule_s=60)
    # Plivo's documented stream defaults.
    (plain,) = parse_answer_xml("<Response><Stream>ws://h/s</Stream></Response>")
    assert plain == StreamVerb(url="ws://h/s")
    assert plain.content_type == "audio/x-l16;rate=8000" and plain.stream_timeout_s == 86400


def test_xml_skips_what_it_does_not_simulate(caplog: pytest.LogCaptureFixture) -> None:
    verbs = parse_answer_xml(
        "<Response><PreAnswer><Speak>hi</Speak></PreAnswer><Blink/><Hangup/></Response>"
    )
    assert verbs == [HangupVerb()]
    assert "not simulated" in caplog.text and "unknown element <Blink>" in caplog.text


@pytest.mark.parametrize(
    ("xml", "error"),
    [
        ("<Response>", "not well-formed"),
        ("<Speak>hi</Speak>", "root element must be <Response>"),
        ("<Response><Stream/></Response>", "ws:// or wss://"),
        ("<Response><Stream bidirectional='yes'>ws://h</Stream></Response>", "true or false"),
        (
            "<Response><Stream bidirectional='true' audioTrack='outbound'>ws://h</Stream></Response>",
            "audioTrack must be inbound",
        ),
        ("<Response><Stream contentType='audio/wav'>ws://h</Stream></Response>", "must be one of"),
        ("<Response><Stream extraHeaders='a=b-c'>ws://h</Stream></Response>", "letters and digits"),
        ("<Response><Stream noiseCancellationLevel='10'>ws://h</Stream></Response>", "between 60"),
        ("<Response><Stream streamTimeout='0'>ws://h</Stream></Response>", "at least 1"),
        ("<Response><Play/></Response>", "needs the URL"),
        ("<Response><Speak/></Response>", "needs text"),
        ("<Response><Wait length='x'/></Response>", "must be an integer"),
        ("<Response><Record action='ftp://x'/></Response>", "http(s) URL"),
        ("<Response><Record fileFormat='ogg'/></Response>", "mp3, wav"),
        ("<Response><Redirect>/relative</Redirect></Response>", "http(s) URL"),
        ("<Response><Hangup reason='tired'/></Response>", "must be one of"),
        ("<Response><DTMF>12x</DTMF></Response>", "needs digits"),
    ],
)
def test_xml_errors(xml: str, error: str) -> None:
    with pytest.raises(XmlError, match=error.replace("(", r"\(").replace(")", r"\)")):
        parse_answer_xml(xml)


def test_extra_headers() -> None:
    assert parse_extra_headers("a=1,Bb=x2") == {"a": "1", "Bb": "x2"}
    assert parse_extra_headers("") == {}
    with pytest.raises(XmlError, match="512"):
        parse_extra_headers(",".join(f"k{i}=v{i}" for i in range(100)))


# --- settings ---------------------------------------------------------------------------------


def test_settings_from_toml_env_and_overrides(tmp_path: Path) -> None:
    config = tmp_path / "emu.toml"
    config.write_text(
        """
        [server]
        port = 1   # other tables are not ours

        [emulator]
        port = 9000
        ring_s = 2
        caller_audio = "voices/hello.wav"
        caller_dtmf = "5@2.0, #@4.5"
        recordings_dir = "rec"

        [emulator.caller_audio_by_number]
        "+14155550100" = "/abs/other.wav"
        """
    )
    env = {"STREAMSERVER_EMULATOR__CALLS_PER_SECOND": "5", "PLIVO_AUTH_ID": "bad"}
    s = load_emulator_settings(config, environ=env, overrides={"host": "0.0.0.0", "port": None})
    assert (s.port, s.host, s.ring_s, s.calls_per_second) == (9000, "0.0.0.0", 2.0, 5.0)
    assert s.caller_audio == str(tmp_path / "voices" / "hello.wav")
    assert s.recordings_dir == str(tmp_path / "rec")
    assert s.caller_dtmf == [(2.0, "5"), (4.5, "#")]
    assert s.audio_for("+14155550100") == Path("/abs/other.wav")
    assert s.audio_for("14155550199") == tmp_path / "voices" / "hello.wav"
    # An invalid PLIVO_AUTH_ID is not taken: the local defaults are.
    assert (s.auth_id, s.auth_token) == (DEFAULT_AUTH_ID, DEFAULT_AUTH_TOKEN)
    assert EmulatorSettings().audio_for("1") == SAMPLES_DIR / "hello-8k.wav"


def test_settings_credentials_precedence() -> None:
    env = {"PLIVO_AUTH_ID": "MAABCDEFGHIJKLMNOPQR", "PLIVO_AUTH_TOKEN": "env-token-123"}
    s = load_emulator_settings(environ=env)
    assert (s.auth_id, s.auth_token) == ("MAABCDEFGHIJKLMNOPQR", "env-token-123")
    table = {"auth_id": "SA00000000000000000X", "auth_token": "table-token"}
    s = load_emulator_settings(table=table, environ=env)
    assert (s.auth_id, s.auth_token) == ("SA00000000000000000X", "table-token")
    assert load_emulator_settings(environ={}).auth_id == DEFAULT_AUTH_ID
    assert len(DEFAULT_AUTH_ID) == 20 and len(DEFAULT_AUTH_TOKEN) == 40


@pytest.mark.parametrize(
    ("table", "error"),
    [
        ({"prot": 1}, "emulator.prot: unknown key"),
        ({"port": "80"}, "emulator.port: expected an integer"),
        ({"port": 70000}, "emulator.port: 70000 is not a TCP port"),
        ({"ring_s": "slow"}, "emulator.ring_s: expected a number"),
        ({"ring_s": -1}, "emulator.ring_s: must be >= 0"),
        ({"callbacks": "yes"}, "emulator.callbacks: expected true or false"),
        ({"auth_id": "MA123"}, "emulator.auth_id"),
        ({"tts": "polly"}, "emulator.tts"),
        ({"caller_dtmf": "5"}, "emulator.caller_dtmf: '5' is not digit@seconds"),
        ({"caller_dtmf": ["5@1"]}, "emulator.caller_dtmf: expected a string"),
        ({"caller_audio_by_number": {"1": 2}}, "emulator.caller_audio_by_number"),
        ({"public_url": "ws://x"}, "emulator.public_url"),
    ],
)
def test_settings_errors_name_the_key(table: dict[str, object], error: str) -> None:
    with pytest.raises(EmulatorConfigError, match=error):
        load_emulator_settings(table=table, environ={})


def test_settings_file_errors(tmp_path: Path) -> None:
    with pytest.raises(EmulatorConfigError, match="not found"):
        load_emulator_settings(tmp_path / "missing.toml", environ={})
    bad = tmp_path / "bad.toml"
    bad.write_text("[emulator\n")
    with pytest.raises(EmulatorConfigError, match="not valid TOML"):
        load_emulator_settings(bad, environ={})
    assert parse_dtmf_script("") == []


# --- shapes ---------------------------------------------------------------------------------


def test_pagination_and_times() -> None:
    page, meta = paginate(list(range(7)), {"limit": "3", "offset": "3"}, "/v1/X/", keep=["q"])
    assert page == [3, 4, 5]
    assert meta == {
        "limit": 3, "next": "/v1/X/?limit=3&offset=6", "offset": 3,
        "previous": "/v1/X/?limit=3&offset=0", "total_count": 7,
    }  # fmt: skip
    _, meta = paginate([1], {"q": "a b"}, "/v1/X/", keep=["q"], count_key="count")
    assert meta["count"] == 1 and meta["next"] is None
    _, meta = paginate(list(range(30)), {"q": "a b"}, "/v1/X/", keep=["q"])
    assert meta["next"] == "/v1/X/?limit=20&offset=20&q=a%20b"
    with pytest.raises(ApiError) as exc:
        paginate([], {"limit": "0"}, "/")
    assert exc.value.status_code == 400
    assert cdr_time(0) == "1970-01-01 05:30:00+05:30"
    assert parse_filter_time("k", "1970-01-01 00:01") == 60.0
    assert parse_filter_time("k", "1970-01-01 00:00:01.5") == 1.5
    with pytest.raises(ApiError, match="k should be in the format"):
        parse_filter_time("k", "1970-01-01T00:00")
    rec = Recording("MA", "r1", "http://x/r1.mp3", "/tmp/r1.mp3", "mp3", 1000, 8560).to_json()
    assert rec["recording_duration_ms"] == "7560.00000"
    assert rec["recording_start_ms"] == "1000.00000" and rec["rounded_recording_duration"] == 60


# --- media ----------------------------------------------------------------------------------


def test_media_helpers(tmp_path: Path) -> None:
    tone = tone_for_text("one two three")
    assert len(tone) == int((0.3 + 3 * 0.4) * 8000) and np.abs(tone).max() > 1000
    pcm = np.concatenate([np.zeros(1600, np.int16), np.full(1600, 3000, np.int16)])
    assert silent_frames(pcm).tolist() == [True] * 10 + [False] * 10
    assert write_recording(tmp_path / "a.wav", pcm, "wav") == "wav"
    back, rate = sf.read(tmp_path / "a.wav", dtype="int16")
    assert rate == 8000 and np.array_equal(back, pcm)
    fmt = write_recording(tmp_path / "b.mp3", pcm, "mp3")
    assert (tmp_path / f"b.{fmt}").stat().st_size > 0
    stereo = np.stack([pcm, pcm[::-1]], axis=1)
    write_recording(tmp_path / "c.wav", stereo, "wav")
    assert sf.info(str(tmp_path / "c.wav")).channels == 2


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")
async def test_speak_uses_espeak_ng_when_present() -> None:
    tts = Tts("auto")
    assert tts.engine == "espeak-ng"
    speech = await tts.synthesize("Hello there", "WOMAN", "en-US")
    assert 0.4 < len(speech) / 8000 < 3.0 and np.abs(speech).max() > 1000
    # An unknown language falls back to English rather than silence.
    assert len(await tts.synthesize("Hello", "MAN", "xx-YY")) > 0
    assert Tts("tone").engine == "tone"


def test_samples_are_short_speech() -> None:
    files = sorted(SAMPLES_DIR.glob("*.wav"))
    assert {f.name for f in files} >= {"hello-8k.wav", "digits-8k.wav"}
    assert sum(f.stat().st_size for f in files) < 400_000
    for f in files:
        info = sf.info(str(f))
        assert (info.samplerate, info.channels, info.subtype) == (8000, 1, "PCM_16")
        assert f.stat().st_size < 100_000 and 1.0 < info.duration < 7.0


# --- command line ---------------------------------------------------------------------------


def test_emulate_command_runs_prints_credentials_and_stops(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PLIVO_", "STREAMSERVER_"))}
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamserver", "emulate", "--port", "0", "--log-level", "WARNING"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.startswith("Plivo emulator listening on http://127.0.0.1:"), first
        base = first.split()[-1]
        lines = [proc.stdout.readline() for _ in range(3)]
        assert DEFAULT_AUTH_ID in lines[1] and DEFAULT_AUTH_TOKEN not in lines[2]
        assert "plivo-emulator.env" in lines[2]
        env_file = (tmp_path / "plivo-emulator.env").read_text()
        assert f"export PLIVO_AUTH_TOKEN={DEFAULT_AUTH_TOKEN}\n" in env_file
        r = httpx.get(
            f"{base}/v1/Account/{DEFAULT_AUTH_ID}/Call/", auth=(DEFAULT_AUTH_ID, DEFAULT_AUTH_TOKEN)
        )
        assert r.status_code == 200 and r.json()["objects"] == []
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_emulate_command_bad_config_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[emulator]\nport = 'x'\n")
    result = subprocess.run(
        [sys.executable, "-m", "streamserver", "emulate", "--config", str(bad)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "emulator.port: expected an integer" in result.stderr
