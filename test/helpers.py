"""Assertions shared by the test modules (pytest puts this folder on sys.path)."""

from __future__ import annotations

import subprocess


def assert_one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> None:
    """A command failed with one clear line on stderr (no traceback) that mentions every needle."""
    assert proc.returncode != 0
    err = proc.stderr.strip()
    assert err.count('\n') == 0, f'expected one line, got:\n{err}'
    assert 'Traceback' not in err
    for needle in needles:
        assert needle in err, err
