"""<GetDigits> and <GetInput>: the scripted callee enters digits or words, the action URL
gets them, the call goes on with the XML it returns (or with the next element)."""

from __future__ import annotations

from pathlib import Path

from emulator_support import Env, running

ACTION_XML = "<Response><Speak>thanks</Speak><Hangup/></Response>"


async def run_call(env: Env, xml: str, **extra: str) -> str:
    env.hooks.xml["/action"] = ACTION_XML
    uuid = await env.call(xml, **extra)
    await env.emu.simulator.wait_call_ended(uuid)
    return uuid


async def test_get_digits_sends_the_answer_and_runs_the_returned_xml(tmp_path: Path) -> None:
    async with running(tmp_path, caller_input=["1234#"], caller_hangup_after_audio_s=-1) as env:
        xml = (
            f'<Response><GetDigits action="{env.hooks.url("/action")}" method="POST">'
            "<Speak>Enter your PIN</Speak></GetDigits><Speak>not reached</Speak></Response>"
        )
        uuid = await run_call(env, xml)
        hit = await env.hooks.next("/action")
        assert hit.method == "POST"
        assert (hit.params["Digits"], hit.params["CallUUID"]) == ("1234", uuid)
        assert hit.params["Event"] == "GetDigits"
        call = env.emu.store.calls[uuid]
        # The call went on with the action's XML and ended with its <Hangup>.
        assert (call.hangup_cause_name, call.hangup_source) == ("Normal Hangup", "Answer XML")


async def test_get_digits_rules_timeouts_retries_and_invalid_keys(tmp_path: Path) -> None:
    # Answers in order: nothing (the first attempt times out), then 5 digits of which
    # numDigits=3 are taken; then an invalid key; then nothing again.
    answers = ["", "98765", "7*", ""]
    async with running(tmp_path, caller_input=answers, caller_hangup_after_audio_s=-1) as env:
        action = env.hooks.url("/action")
        xml = (
            f'<Response><GetDigits action="{action}" timeout="1" retries="2" numDigits="3" '
            f'redirect="false"/>'
            f'<GetDigits action="{action}" validDigits="0123456789" timeout="1" '
            f'redirect="false"/>'
            f'<GetDigits action="{action}" timeout="1" finishOnKey="none" digitTimeout="1"/>'
            '<Hangup reason="busy"/></Response>'
        )
        uuid = await run_call(env, xml)
        hit = await env.hooks.next("/action")
        assert hit.params["Digits"] == "987"  # the second attempt, cut at numDigits
        calls_to_action = [h for h in env.hooks.hits if h.path == "/action"]
        # '7*': '*' is not valid: no submission; the last GetDigits got nothing.
        assert len(calls_to_action) == 1
        call = env.emu.store.calls[uuid]
        assert call.hangup_source == "Answer XML"  # the <Hangup> after them all ran


async def test_per_call_input_header_and_finish_key(tmp_path: Path) -> None:
    async with running(tmp_path, caller_hangup_after_audio_s=-1) as env:
        action = env.hooks.url("/action")
        xml = (
            f'<Response><GetDigits action="{action}" finishOnKey="*" redirect="false"/>'
            f'<GetDigits action="{action}"/></Response>'
        )
        await run_call(env, xml, sip_headers="EmulatorInput=12*9|#")
        first = await env.hooks.next("/action")
        second = await env.hooks.next("/action")
    assert first.params["Digits"] == "12"  # '*' submitted, the '9' after it unused
    assert second.params["Digits"] == ""  # '#' alone submits nothing


async def test_scheduled_presses_count_during_the_prompt(tmp_path: Path) -> None:
    # caller_dtmf presses at their time on the call's clock: '4' and '2' while the
    # 1-second prompt still plays, which Plivo calls barge-in on <GetInput>.
    dtmf = [(0.3, "4"), (0.6, "2"), (0.9, "#")]
    async with running(tmp_path, caller_dtmf=dtmf, caller_hangup_after_audio_s=-1) as env:
        env.hooks.files["/prompt.wav"] = _wav(1.0)
        xml = (
            f'<Response><GetInput action="{env.hooks.url("/action")}" inputType="dtmf">'
            f"<Play>{env.hooks.url('/prompt.wav')}</Play></GetInput></Response>"
        )
        await run_call(env, xml)
        hit = await env.hooks.next("/action")
    p = hit.params
    assert (p["InputType"], p["Digits"], p["Speech"], p["BargeIn"]) == ("dtmf", "42", "", "true")
    assert p["Event"] == "GetInput"


async def test_get_input_speech_and_no_input(tmp_path: Path) -> None:
    answers = ["say:I would like   a refund", "say:hello", "5"]
    async with running(tmp_path, caller_input=answers, caller_hangup_after_audio_s=-1) as env:
        action = env.hooks.url("/action")
        xml = (
            f'<Response><GetInput action="{action}" inputType="speech" redirect="false" '
            'speechEndTimeout="2"><Speak>How can I help?</Speak></GetInput>'
            # DTMF only: the spoken answer is not heard, the element times out.
            f'<GetInput action="{action}" inputType="dtmf" executionTimeout="5" '
            'redirect="false"/>'
            f'<GetInput action="{action}" inputType="dtmf speech" digitEndTimeout="2"/>'
            "</Response>"
        )
        await run_call(env, xml)
        speech = await env.hooks.next("/action")
        digits = await env.hooks.next("/action")
    assert (speech.params["InputType"], speech.params["Speech"]) == (
        "speech",
        "I would like a refund",
    )
    assert speech.params["SpeechConfidenceScore"] == "1.0" and speech.params["Digits"] == ""
    assert (digits.params["InputType"], digits.params["Digits"]) == ("dtmf", "5")
    assert digits.params["BargeIn"] == "false"


def _wav(seconds: float) -> bytes:
    import io

    import soundfile as sf
    from emulator_support import noise

    buf = io.BytesIO()
    sf.write(buf, noise(seconds), 8000, format="WAV", subtype="PCM_16")
    return buf.getvalue()
