"""A clone's parent folder on PYTHONPATH makes the clone itself a namespace package named
``streamserver`` that hides the installed one: the CLI says so in one line and exits 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "how", [["-m", "streamserver"], ["-c", "from streamserver.cli import main; main()"]]
)
def test_clone_parent_on_pythonpath_is_explained(tmp_path: Path, how: list[str]) -> None:
    parent = tmp_path / "src"
    parent.mkdir()
    (parent / "streamserver").symlink_to(REPO, target_is_directory=True)  # "the clone"
    env = {**os.environ, "PYTHONPATH": str(parent)}
    proc = subprocess.run(
        [sys.executable, *how, "--version"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "PYTHONPATH" in lines[0] and str(parent) in lines[0]
    assert "unset PYTHONPATH" in lines[0]
