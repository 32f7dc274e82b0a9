"""README.md's snippets, for the tests that run them (``test_readme.py``, the handler
example in ``test_cli_handler_cwd.py``).

A fenced block is a snippet when its language is ``sh`` or ``python``. An HTML comment on
the line just before the fence can say how to treat it:

- ``<!-- snippet: skip REASON -->`` it is not run (REASON says why; it must be given);
- ``<!-- snippet: file NAME -->`` a Python file the next snippets use (written, not run).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"

_FENCE = re.compile(r"^```(\w*)\s*$")
_MARKER = re.compile(r"^<!--\s*snippet:\s*(skip|file)\s*(.*?)\s*-->\s*$")


@dataclass
class Snippet:
    """One fenced block of the README."""

    lang: str
    code: str
    line: int  # 1-based line of the opening fence
    marker: str | None = None  # "skip" or "file"
    arg: str = ""  # the skip reason or the file name

    @property
    def where(self) -> str:
        return f"README.md:{self.line}"


def snippets(text: str | None = None) -> list[Snippet]:
    """Every ``sh`` and ``python`` block, in order, with its marker."""
    lines = (README.read_text(encoding="utf-8") if text is None else text).splitlines()
    found: list[Snippet] = []
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m or not m.group(1):
            i += 1
            continue
        start, lang = i, m.group(1)
        body = []
        i += 1
        while i < len(lines) and lines[i].strip() != "```":
            body.append(lines[i])
            i += 1
        i += 1
        if lang not in ("sh", "python"):
            continue
        marker, arg = None, ""
        k = start - 1
        while k >= 0 and not lines[k].strip():
            k -= 1
        mm = _MARKER.match(lines[k]) if k >= 0 else None
        if mm:
            marker, arg = mm.group(1), mm.group(2)
        found.append(Snippet(lang, "\n".join(body) + "\n", start + 1, marker, arg))
    return found


def handler_example() -> Snippet:
    """The ``myhandlers.py`` of "Write your own handler"."""
    (found,) = [s for s in snippets() if s.marker == "file" and s.arg == "myhandlers.py"]
    return found
