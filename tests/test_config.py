"""The one typed config reader (streamserver.config): strict casts that name the key."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from streamserver.config import ConfigError, cast, env_value, read_table


@pytest.mark.parametrize(
    ("value", "typ", "expected"),
    [
        (True, bool, True),
        (False, bool, False),
        (8, int, 8),
        (-1, int, -1),
        (3, float, 3.0),
        (2.5, float, 2.5),
        ("x", str, "x"),
        (["a", "b"], list[str], ["a", "b"]),
        ("a, b,", list[str], ["a", "b"]),
    ],
)
def test_cast_accepts_its_type(value: Any, typ: Any, expected: Any) -> None:
    got = cast(value, typ, "t.k")
    assert got == expected and type(got) is type(expected)


@pytest.mark.parametrize(
    ("value", "typ", "words"),
    [
        ("true", bool, "true or false"),
        ("yes", bool, "true or false"),
        (1, bool, "true or false"),
        ("8", int, "an integer"),
        (True, int, "an integer"),
        (8.0, int, "an integer"),
        ("2.5", float, "a number"),
        (False, float, "a number"),
        (5, str, "a string"),
        ([1], list[str], "a list of strings"),
        ({"a": 1}, list[str], "a list of strings"),
    ],
)
def test_cast_refuses_other_types_naming_the_key(value: Any, typ: Any, words: str) -> None:
    with pytest.raises(ConfigError) as exc:
        cast(value, typ, "t.k")
    assert str(exc.value).startswith("t.k: expected ") and words in str(exc.value)
    assert repr(value) in str(exc.value)


def test_cast_raises_the_callers_error_class() -> None:
    class MyError(ConfigError):
        pass

    with pytest.raises(MyError, match=r"t\.k"):
        cast("x", int, "t.k", error=MyError)
    with pytest.raises(MyError, match="unsupported"):
        cast(1, complex, "t.k", error=MyError)


@pytest.mark.parametrize(
    ("raw", "typ", "expected"),
    [
        ("8", int, 8),
        ("1_000", int, 1000),
        ("2.5", float, 2.5),
        ("true", bool, True),
        ("yes", bool, "yes"),  # text: cast refuses it, naming the key
        ("12345", str, "12345"),
        ('"a b"', str, "a b"),
        ("0.0.0.0", str, "0.0.0.0"),
        ('["a", "b"]', list[str], ["a", "b"]),
        ("a, b", list[str], "a, b"),
        ("8", None, 8),
        ("flac", None, "flac"),
    ],
)
def test_env_value(raw: str, typ: Any, expected: Any) -> None:
    assert env_value(raw, typ) == expected


@dataclass
class _Table:
    port: int = 1
    name: str = ""
    tags: dict[str, str] = field(default_factory=dict)


def test_read_table_names_unknown_keys_and_uses_readers() -> None:
    got = read_table(
        _Table,
        {"port": 9, "tags": "a"},
        "t",
        readers={"tags": lambda value, key: {key: value}},
    )
    assert got == {"port": 9, "tags": {"t.tags": "a"}}
    known = r"\(did you mean 'port'\?\) \(known: name, port, tags\)"
    with pytest.raises(ConfigError, match=r"t\.prot: unknown key " + known):
        read_table(_Table, {"prot": 9}, "t")
    with pytest.raises(ConfigError, match=r"t\.tags: unsupported type"):
        read_table(_Table, {"tags": {}}, "t")


def test_server_and_emulator_share_the_rules() -> None:
    from streamserver.emulator.settings import EmulatorConfigError, load_emulator_settings
    from streamserver.settings import load_settings

    for raw in ("yes", "1", "True"):
        with pytest.raises(ConfigError, match=r"server\.gc_freeze: expected true or false"):
            load_settings(environ={"STREAMSERVER_SERVER__GC_FREEZE": raw})
        with pytest.raises(EmulatorConfigError, match=r"emulator\.callbacks: expected true or"):
            load_emulator_settings(environ={"STREAMSERVER_EMULATOR__CALLBACKS": raw})
    env = {"STREAMSERVER_EMULATOR__CALLBACKS": "false", "STREAMSERVER_EMULATOR__RING_S": "0"}
    s = load_emulator_settings(environ=env | {"STREAMSERVER_EMULATOR__VERIFICATION_OTP": "0042"})
    assert s.callbacks is False and s.ring_s == 0.0 and s.verification_otp == "0042"
    assert issubclass(EmulatorConfigError, ConfigError)
