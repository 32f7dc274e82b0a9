"""Log integrity: network strings cannot forge lines or fill the log (issue 16, defect 7)."""

from __future__ import annotations

import logging
from typing import Any

import plivo_frames as pf
import pytest
from session_support import feed, finish, make_session

from streamserver.logs import clean, setup_logging

FORGED = "5\n2026-12-01 10:00:00.000 ERROR   streamserver: FORGED LINE"


def test_clean_escapes_control_characters_and_truncates() -> None:
    assert clean("CA-123") == "CA-123"
    assert clean(None) == "-"
    assert clean(42) == "42"
    assert clean("a\nb\r\tc\x1b[31m\x00\x85\u2028") == "a\\nb\\r\\tc\\x1b[31m\\x00\\x85\\u2028"
    long = clean("9" * 60_000, limit=16)
    assert long == "9" * 16 + "...(+59984 chars)"
    assert "\n" not in clean("\n" * 1000, limit=10)


def test_the_text_formatter_keeps_one_record_on_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    setup_logging("INFO", "text")
    try:
        logging.getLogger("streamserver.test").warning("got %s", FORGED)
        logging.getLogger("streamserver.test").error("boom", exc_info=ValueError("x"))
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].endswith("got 5\\n2026-12-01 10:00:00.000 ERROR   streamserver: FORGED LINE")
    assert not any(line.startswith("2026-12-01 10:00:00.000") for line in lines)
    assert lines[-1] == "ValueError: x"  # exception text keeps its own lines


async def test_a_forged_or_huge_dtmf_digit_is_an_invalid_frame_not_an_event(caplog: Any) -> None:
    s, _ = make_session()
    with caplog.at_level(logging.DEBUG, "streamserver.session"):
        bad = [pf.dtmf(FORGED), pf.dtmf("7" * 60_000), pf.dtmf(""), pf.dtmf("12")]
        feed(s, pf.start(), *bad, pf.dtmf("#"), pf.dtmf("b"))
        await finish(s)
    assert s.metrics.frames_invalid["dtmf"] == 4
    assert s.metrics.dtmf_received == 2
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "FORGED LINE" not in text.replace("\\n2026", "")  # only ever escaped
    assert "\n2026" not in text
    assert max(len(r.getMessage()) for r in caplog.records) < 1000


async def test_a_track_with_a_newline_is_escaped_in_the_dtmf_line(caplog: Any) -> None:
    s, _ = make_session()
    with caplog.at_level(logging.INFO, "streamserver.session"):
        feed(s, pf.start(), pf.dtmf("1", track="inbound\nERROR forged"))
        await finish(s)
    lines = [r.getMessage() for r in caplog.records if "dtmf" in r.getMessage()]
    assert lines and all("\n" not in line for line in lines)
