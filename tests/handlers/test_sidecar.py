"""The recorder's sidecar writes: atomic, padded at first, finalized in place when no new
file can be written, and never a ``.json.tmp`` left behind."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from handlers.sidecar import RESERVE_BYTES, write_sidecar


def test_the_first_write_reserves_a_block_and_stays_valid_json(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    write_sidecar(path, {"end_time": None}, reserve=True)
    assert path.stat().st_size == RESERVE_BYTES
    assert json.loads(path.read_text()) == {"end_time": None}
    write_sidecar(path, {"end_time": "t", "samples": {"inbound": 8000}})
    assert json.loads(path.read_text())["samples"] == {"inbound": 8000}
    assert path.stat().st_size < RESERVE_BYTES  # the final one is not padded
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.json"]


def test_when_no_new_file_can_be_written_the_final_one_goes_in_place(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    write_sidecar(path, {"end_time": None}, reserve=True)
    # The temporary file cannot be created (here: something else holds its name).
    (tmp_path / "s.json.tmp").mkdir()
    write_sidecar(path, {"end_time": "t", "error": "No space left on device (ENOSPC)"})
    doc = json.loads(path.read_text())
    assert doc == {"end_time": "t", "error": "No space left on device (ENOSPC)"}


def test_a_first_write_that_fails_leaves_no_temporary_file(tmp_path: Path) -> None:
    path = tmp_path / "gone" / "s.json"  # its directory does not exist
    with pytest.raises(OSError):
        write_sidecar(path, {"end_time": None}, reserve=True)
    assert not path.with_suffix(".json.tmp").exists()


def test_a_final_document_bigger_than_the_reserve_fails_cleanly(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    write_sidecar(path, {"end_time": None}, reserve=True)
    (tmp_path / "s.json.tmp").mkdir()
    with pytest.raises(OSError):
        write_sidecar(path, {"extra": "x" * (2 * RESERVE_BYTES)})
    assert json.loads(path.read_text()) == {"end_time": None}  # the old one is intact
