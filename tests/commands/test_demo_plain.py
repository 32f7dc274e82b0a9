"""The demo in plain words: each transcript beside its sample's script with a word error
rate, the numbers explained, and an output folder that holds exactly one run."""

from __future__ import annotations

import ast
import json
from pathlib import Path

from readme_support import ROOT

from streamserver.cli import main
from streamserver.commands.demo.results import CallResult, DemoResult
from streamserver.commands.demo.script import SAMPLE_SCRIPTS, word_errors, words
from streamserver.commands.demo.summary import format_summary
from streamserver.emulator import SAMPLES_DIR


def test_word_error_rate() -> None:
    assert words("Hello, this is a test. Didn't") == ["hello", "this", "is", "a", "test", "didn't"]
    assert word_errors("one two three", "One, two three.") == (0, 3)
    # "this is a test" -> "it didn't have to": 4 substitutions of 10 words.
    errors = word_errors(
        SAMPLE_SCRIPTS["hello-8k.wav"], "hello it didn't have to call can you hear me"
    )
    assert errors == (4, 10) and errors.rate == 0.4
    assert word_errors("a b", "a x b c") == (2, 2)  # insertions count too
    assert word_errors("a b c", "") == (3, 3)


def test_scripts_are_the_texts_the_samples_were_made_from() -> None:
    tree = ast.parse((ROOT / "scripts" / "make_samples.py").read_text())
    (table,) = [
        node.value
        for node in tree.body
        if isinstance(node, ast.AnnAssign) and getattr(node.target, "id", "") == "SAMPLES"
    ]
    made = {k: v[-1] for k, v in ast.literal_eval(table).items()}
    assert made == SAMPLE_SCRIPTS
    assert {p.name for p in SAMPLES_DIR.glob("*.wav")} == set(SAMPLE_SCRIPTS)


def test_summary_shows_the_script_the_rate_and_explains_its_words() -> None:
    call = CallResult("14155550101", "hello-8k.wav", call_uuid="c", stream_id="s")
    call.stream_ok, call.frames_sent, call.server_frames = True, 215, 215
    call.script = SAMPLE_SCRIPTS["hello-8k.wav"]
    call.transcripts = ["hello it didn't have to call can you hear me"]
    call.word_errors, call.script_words, call.word_error_rate = 4, 10, 0.4
    call.callbacks, call.callbacks_live = ["StartStream", "Hangup"], ["StartStream"]
    text = format_summary(DemoResult("/tmp/x", [call], 5.0, "on", loop_lag_max_ms=3.0))
    assert f'script    "{call.script}"' in text
    assert "(word error rate 40%: 4 of 10 words wrong)" in text
    assert "reached the live stream" not in text
    assert "StartStream delivered during the stream" in text
    for word in ("frames", "gaps", "dropped", "word error rate", "event loop delay"):
        assert f"\n  {word} " in text, word
    assert "replaced on every run" in text


def test_each_run_replaces_the_last(tmp_path: Path) -> None:
    out = tmp_path / "demo-output"
    (out / "recordings" / "an-earlier-call").mkdir(parents=True)
    (out / "heard").mkdir()
    (out / "heard" / "old.wav").write_bytes(b"")
    (out / "notes.txt").write_text("mine")  # not the demo's: left alone
    for _ in range(2):
        assert main(["demo", "--out", str(out), "--calls", "1", "--no-transcribe"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    calls = {c["call_uuid"] for c in summary["calls"]}
    assert {p.name for p in (out / "recordings").iterdir()} == calls
    assert {p.stem for p in (out / "heard").iterdir()} == calls
    assert (out / "notes.txt").read_text() == "mine"
