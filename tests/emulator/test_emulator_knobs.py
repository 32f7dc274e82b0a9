"""The pure pieces behind the emulator's failure modes, without an event loop: outcome and
input knobs, digit collection on the sample clock, the stream backlog, the new verbs' XML,
and the settings that carry them."""

from __future__ import annotations

import pytest

from streamserver.emulator.keypad import (
    KEY_DELAY_S,
    DigitRules,
    Entry,
    Press,
    answer_presses,
    collect,
    speech_span,
)
from streamserver.emulator.outcomes import (
    MAGIC_NUMBERS,
    InputAnswer,
    input_for,
    outcome_for,
    parse_caller_input,
    parse_input_answer,
)
from streamserver.emulator.settings import EmulatorConfigError, load_emulator_settings
from streamserver.emulator.stream_backlog import SendBacklog
from streamserver.emulator.xml import (
    DialTarget,
    DialVerb,
    GetDigitsVerb,
    GetInputVerb,
    SpeakVerb,
    XmlError,
    parse_answer_xml,
)

RATE = 8000
S = RATE  # samples in a second


# --- outcomes --------------------------------------------------------------------------


def test_outcome_header_beats_table_beats_magic_numbers() -> None:
    table = {"14155550123": "no-answer", "15550100486": "answer"}
    assert outcome_for("+15550100603", {}, table) == "rejected"
    assert outcome_for("15550100486", {}, table) == "answer"  # the table overrides
    assert outcome_for("+14155550123", {}, table) == "no-answer"
    assert outcome_for("14155550999", {}, table) == "answer"
    assert outcome_for("14155550123", {"X-PH-EmulatorOutcome": "Busy"}, table) == "busy"
    assert outcome_for("14155550123", {"emulatoroutcome": "failed"}, table) == "failed"
    with pytest.raises(ValueError, match="must be one of"):
        outcome_for("1", {"EmulatorOutcome": "sometimes"}, {})
    assert set(MAGIC_NUMBERS.values()) == {
        "answer",
        "machine",
        "busy",
        "no-answer",
        "rejected",
        "failed",
    }


def test_input_answers_parse_and_the_header_replaces_the_default() -> None:
    assert parse_caller_input(" 1 | 23*# |say: yes  please| ") == [
        "1",
        "23*#",
        "say: yes  please",
        "",
    ]
    assert parse_caller_input("") == []
    assert parse_input_answer("a1") == InputAnswer(digits="A1")
    assert parse_input_answer("SAY:Hi   there") == InputAnswer(speech="Hi there")
    assert parse_input_answer("") == InputAnswer()
    for bad in ("12x", "say:", "1 2"):
        with pytest.raises(ValueError):
            parse_input_answer(bad)
    assert input_for({}, ["1"]) == [InputAnswer(digits="1")]
    assert input_for({"EmulatorInput": "9|say:no"}, ["1"]) == [
        InputAnswer(digits="9"),
        InputAnswer(speech="no"),
    ]


def test_settings_carry_the_knobs_and_name_bad_keys() -> None:
    s = load_emulator_settings(
        table={
            "caller_input": "1|say:ok",
            "outcome_by_number": {"+14155550123": "busy"},
            "stream_retries": 3,
            "stream_retry_delay_s": 0.1,
            "stream_buffer_s": 10.0,
        },
        environ={},
    )
    assert s.caller_input == ["1", "say:ok"]
    assert s.outcome_by_number == {"14155550123": "busy"}
    assert (s.stream_retries, s.stream_retry_delay_s, s.stream_buffer_s) == (3, 0.1, 10.0)
    listed = load_emulator_settings(table={"caller_input": ["12", ""]}, environ={})
    assert listed.caller_input == ["12", ""]
    env = load_emulator_settings(environ={"STREAMSERVER_EMULATOR__CALLER_INPUT": "5#"})
    assert env.caller_input == ["5#"]
    bad = [
        ({"caller_input": "1|x"}, "emulator.caller_input"),
        ({"outcome_by_number": {"1": "hold"}}, "emulator.outcome_by_number"),
        ({"stream_retries": -1}, "stream_retries"),
        ({"stream_buffer_s": 0}, "emulator.stream_buffer_s"),
    ]
    for table, key in bad:
        with pytest.raises(EmulatorConfigError, match=key):
            load_emulator_settings(table=table, environ={})


# --- digit collection ------------------------------------------------------------------


def rules(**kw: object) -> DigitRules:
    values: dict[str, object] = {"first_timeout": 5 * S, "digit_timeout": 2 * S}
    values.update(kw)
    return DigitRules(**values)  # type: ignore[arg-type]


def test_collect_applies_timeouts_finish_key_and_count() -> None:
    typed = answer_presses("123#9", 10 * S, RATE)
    assert [p.at for p in typed[:2]] == [10 * S, 10 * S + round(0.3 * S)]
    # The finish key submits, without itself and without what follows.
    e = collect(typed, listen_from=0, prompts_end=9 * S, rules=rules())
    assert (e.kind, e.digits, e.end, e.first) == ("digits", "123", typed[3].at, 10 * S)
    # numDigits cuts; no finish key: the timeout after the last key submits.
    e = collect(typed, listen_from=0, prompts_end=9 * S, rules=rules(num_digits=2))
    assert (e.kind, e.digits, e.end) == ("digits", "12", typed[1].at)
    e = collect(answer_presses("42", S, RATE), listen_from=0, prompts_end=0, rules=rules())
    assert (e.kind, e.digits, e.end) == ("digits", "42", S + round(0.3 * S) + 2 * S)
    # Nothing within the first timeout (counted from the prompts' end).
    late = [Press(20 * S, "1")]
    assert collect(late, listen_from=0, prompts_end=9 * S, rules=rules()) == Entry(
        "timeout", "", 14 * S
    )
    # A key too long after the last one is not part of the entry.
    spaced = [Press(S, "1"), Press(4 * S, "2")]
    e = collect(spaced, listen_from=0, prompts_end=0, rules=rules())
    assert (e.digits, e.end) == ("1", 3 * S)
    # An invalid key ends the attempt; presses before listening are ignored.
    e = collect(
        [Press(0, "5"), Press(S, "7"), Press(2 * S, "*")],
        listen_from=S // 2,
        prompts_end=0,
        rules=rules(valid_digits="0123456789"),
    )
    assert (e.kind, e.digits, e.end) == ("invalid", "7", 2 * S)
    # No finish key at all: '#' is a digit like any other.
    e = collect(
        answer_presses("1#", 0, RATE), listen_from=0, prompts_end=0, rules=rules(finish_on_key="")
    )
    assert e.digits == "1#"
    # An entry is never over before the prompts are.
    e = collect([Press(S, "#")], listen_from=0, prompts_end=3 * S, rules=rules())
    assert (e.kind, e.digits, e.end, e.first) == ("digits", "", 3 * S, S)


def test_speech_lasts_by_the_word() -> None:
    assert speech_span("yes", RATE) == speech_span("yes please", RATE) == round(0.6 * S)
    assert speech_span("I would like a refund", RATE) == round(1.5 * S)
    assert KEY_DELAY_S == 0.5


# --- stream backlog --------------------------------------------------------------------


def test_backlog_reports_each_level_once_then_full() -> None:
    b = SendBacklog(40.0, 0.02)
    assert b.backlog_s(100.0) == 0.0 and b.check(100.0) == []  # not started
    b.progress(100.0, 1)  # tick 0 went out at t=100
    assert b.backlog_s(100.01) == 0.0  # on time: tick 1 is due at 100.02
    assert b.backlog_s(101.02) == pytest.approx(1.0)
    assert b.check(112.02) == [30]
    assert b.check(113.0) == []
    assert b.check(150.0) == [60, 90]  # both crossed since the last look
    assert not b.full(139.0) and b.full(140.02)
    b.progress(150.0, 2500)  # caught up
    assert b.backlog_s(150.0) == 0.0 and b.check(190.0 - 0.03) == []  # levels never repeat
    assert b.peak_s == pytest.approx(50.0 - 0.02)
    b.progress(200.0, 2600, done=True)
    assert b.backlog_s(1000.0) == 0.0  # all audio sent: nothing is held
    with pytest.raises(ValueError):
        SendBacklog(0.0, 0.02)


# --- the new verbs' XML ----------------------------------------------------------------


def test_get_digits_get_input_and_dial_parse_with_plivos_defaults() -> None:
    verbs = parse_answer_xml(
        "<Response>"
        '<GetDigits action="https://a.example/d" numDigits="4" finishOnKey="none">'
        "<Speak>PIN please</Speak><Wait/></GetDigits>"
        '<GetInput action="https://a.example/i" inputType="speech  dtmf" digitEndTimeout="3"/>'
        '<Dial timeout="20" sipHeaders="EmulatorOutcome=busy,Team=red" callerId="14155550100">'
        '<Number sendDigits="1w2">+14155550111</Number><User>sip:bob@phone.plivo.com</User>'
        "</Dial></Response>"
    )
    digits, inp, dial = verbs
    assert digits == GetDigitsVerb(
        action="https://a.example/d",
        num_digits=4,
        finish_on_key="",
        prompts=(SpeakVerb("PIN please"),),
    )
    assert (digits.timeout_s, digits.digit_timeout_s, digits.retries, digits.redirect) == (
        5,
        2,
        1,
        True,
    )
    assert inp == GetInputVerb(
        action="https://a.example/i", input_type="dtmf speech", digit_end_timeout_s=3
    )
    assert (inp.execution_timeout_s, inp.speech_end_timeout_s) == (15, 1)
    assert dial == DialVerb(
        targets=(
            DialTarget("+14155550111", send_digits="1w2"),
            DialTarget("sip:bob@phone.plivo.com"),
        ),
        timeout_s=20,
        caller_id="14155550100",
        sip_headers=(("EmulatorOutcome", "busy"), ("Team", "red")),
    )


@pytest.mark.parametrize(
    ("xml", "error"),
    [
        ("<GetDigits finishOnKey='##'/>", "finishOnKey"),
        ("<GetDigits validDigits='12x'/>", "validDigits"),
        ("<GetDigits retries='0'/>", "retries"),
        ("<GetInput/>", "needs an action URL"),
        ("<GetInput action='https://a/i' inputType='voice'/>", "inputType"),
        ("<GetInput action='https://a/i' executionTimeout='61'/>", "executionTimeout"),
        ("<GetInput action='https://a/i' speechEndTimeout='1'/>", "speechEndTimeout"),
        ("<Dial/>", "needs a <Number> or <User>"),
        ("<Dial><Number>abc</Number></Dial>", "phone number"),
        ("<Dial><User>bob</User></Dial>", "sip:user@host"),
        ("<Dial sipHeaders='novalue'><Number>123</Number></Dial>", "sipHeaders"),
        ("<Dial action='ftp://x'><Number>123</Number></Dial>", "http"),
    ],
)
def test_invalid_input_and_dial_xml_names_the_problem(xml: str, error: str) -> None:
    with pytest.raises(XmlError, match=error):
        parse_answer_xml(f"<Response>{xml}</Response>")
