"""``<Dial>``: call one or more ``<Number>``/``<User>`` children at once and bridge the first
that answers with the caller; then report to ``action``.

Plivo's attributes, checked; the emulator runs ``action``, ``method``, ``redirect``,
``timeout``, ``timeLimit``, ``callerId``, ``callerName``, ``callbackUrl``,
``callbackMethod`` and ``sipHeaders`` (the far end reads ``EmulatorOutcome`` there) and
accepts the rest (``confirmSound``, ``dialMusic``, ``hangupOnStar``...) without
simulating them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from xml.etree import ElementTree

from .xml_base import Attrs, XmlError, element_text

__all__ = ["DEFAULT_DIAL_TIMEOUT_S", "DialTarget", "DialVerb", "parse_dial", "parse_sip_headers"]

#: How long a ``<Dial>`` without ``timeout`` lets its numbers ring.
DEFAULT_DIAL_TIMEOUT_S = 120
_NUMBER_RE = re.compile(r"^\+?\d{2,18}$")
_SIP_RE = re.compile(r"^sip:[^@\s]+@[^@\s]+$")
_HEADER_KEY_RE = re.compile(r"^[A-Za-z0-9-]+$")


@dataclass(frozen=True, slots=True)
class DialTarget:
    """One ``<Number>`` or ``<User>`` to ring."""

    address: str
    send_digits: str = ""


@dataclass(frozen=True, slots=True)
class DialVerb:
    targets: tuple[DialTarget, ...]
    action: str = ""
    method: str = "POST"
    redirect: bool = True
    timeout_s: int = DEFAULT_DIAL_TIMEOUT_S
    time_limit_s: int = 14400
    caller_id: str = ""
    caller_name: str = ""
    callback_url: str = ""
    callback_method: str = "POST"
    sip_headers: tuple[tuple[str, str], ...] = ()


def parse_sip_headers(value: str, where: str) -> tuple[tuple[str, str], ...]:
    """``k1=v1,k2=v2`` into pairs; keys are letters, digits and ``-``."""
    pairs: list[tuple[str, str]] = []
    for item in filter(None, (p.strip() for p in value.split(","))):
        key, sep, val = item.partition("=")
        if not sep or not _HEADER_KEY_RE.match(key.strip()) or not val.strip():
            raise XmlError(f"{where}: sipHeaders {item!r} is not key=value")
        pairs.append((key.strip(), val.strip()))
    return tuple(pairs)


def _target(elem: ElementTree.Element, where: str) -> DialTarget:
    address = element_text(elem)
    pattern = _NUMBER_RE if elem.tag == "Number" else _SIP_RE
    if not pattern.match(address):
        wanted = "a phone number" if elem.tag == "Number" else "a sip:user@host URI"
        raise XmlError(f"{where}: <{elem.tag}> needs {wanted}, got {address!r}")
    return DialTarget(address=address, send_digits=Attrs(elem, where).text("sendDigits"))


def parse_dial(elem: ElementTree.Element, a: Attrs, where: str) -> DialVerb:
    targets = tuple(
        _target(child, f"{where} > <{child.tag}>")
        for child in elem
        if child.tag in ("Number", "User")
    )
    if not targets:
        raise XmlError(f"{where}: <Dial> needs a <Number> or <User> inside")
    caller_name = a.text("callerName")
    if len(caller_name) > 50:
        raise a.fail("callerName", "must be at most 50 characters")
    return DialVerb(
        targets=targets,
        action=a.url("action"),
        method=a.method("method"),
        redirect=a.flag("redirect", True),
        timeout_s=a.integer("timeout", DEFAULT_DIAL_TIMEOUT_S, 1),
        time_limit_s=a.integer("timeLimit", 14400, 1),
        caller_id=a.text("callerId"),
        caller_name=caller_name,
        callback_url=a.url("callbackUrl"),
        callback_method=a.method("callbackMethod"),
        sip_headers=parse_sip_headers(a.text("sipHeaders"), where),
    )
