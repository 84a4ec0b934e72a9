"""Assertions shared by the test modules (pytest puts this folder on sys.path)."""

from __future__ import annotations

import subprocess
from pathlib import Path


def assert_one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> None:
    """A command failed with one clear line on stderr (no traceback) that mentions every needle."""
    assert proc.returncode != 0
    err = proc.stderr.strip()
    assert err.count('\n') == 0, f'expected one line, got:\n{err}'
    assert 'Traceback' not in err
    for needle in needles:
        assert needle in err, err


#: The repository's root, and the Python sources the ament linters check (test_flake8, test_pep257,
#: test_copyright): the package, the tests, the launch file, the scripts and benchmarks, setup.py.
REPO = Path(__file__).resolve().parents[1]
LINTED = [REPO / name for name in ('pilotnet_optimized', 'test', 'launch', 'scripts', 'benchmarks', 'setup.py')]


def linted_python_files() -> list[Path]:
    """Every ``.py`` file under :data:`LINTED`, sorted."""
    files: list[Path] = []
    for path in LINTED:
        files += [path] if path.is_file() else sorted(p for p in path.rglob('*.py') if '__pycache__' not in p.parts)
    return files
