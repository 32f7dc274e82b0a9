"""The spool's per-recording claim: one uploader of a host's workers at a time."""

from __future__ import annotations

from pathlib import Path

from streamserver.storage.spool import claim, delete_spool, lock_path


def test_claim_is_exclusive_and_released(tmp_path: Path) -> None:
    call = tmp_path / "call-1"
    call.mkdir()
    sidecar = call / "s-1.json"
    sidecar.write_text("{}")
    with claim(sidecar) as first:
        assert first
        with claim(sidecar) as second:  # another open file: as another worker would be
            assert not second
    with claim(sidecar) as again:
        assert again
        delete_spool([], sidecar)
    assert not lock_path(sidecar).exists()
    assert not call.exists()  # the lock file does not keep the call directory


def test_claim_of_a_gone_recording_is_refused(tmp_path: Path) -> None:
    with claim(tmp_path / "gone" / "s.json") as mine:
        assert not mine
